//! `PolicyKind`: the health policies by the names they are configured under. Their keys and
//! defaults are in `policies.rs`, which builds on this file; error messages name a policy
//! through this file alone.

/// A health policy, by the name it is configured under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PolicyKind {
    /// `error_rate`: a breaker over errors and panics.
    ErrorRate,
    /// `slow_call`: a breaker over calls slower than `slow_after`.
    SlowCall,
    /// `adaptive`: an AIMD limit published as a level.
    Adaptive,
    /// `watermark`: the worker's own queue backing up.
    Watermark,
}

/// Every policy, in the order errors and docs list them.
pub const POLICIES: [PolicyKind; 4] = [
    PolicyKind::ErrorRate,
    PolicyKind::SlowCall,
    PolicyKind::Adaptive,
    PolicyKind::Watermark,
];

impl PolicyKind {
    /// The name as written in the attribute and in a config file.
    pub const fn name(self) -> &'static str {
        match self {
            PolicyKind::ErrorRate => "error_rate",
            PolicyKind::SlowCall => "slow_call",
            PolicyKind::Adaptive => "adaptive",
            PolicyKind::Watermark => "watermark",
        }
    }

    /// The policy called `name`, if there is one.
    pub fn from_name(name: &str) -> Option<Self> {
        POLICIES.into_iter().find(|policy| policy.name() == name)
    }
}
