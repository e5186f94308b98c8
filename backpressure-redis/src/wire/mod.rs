//! What travels through Redis: key names, the channel message format and the Lua scripts.
//!
//! Everything lives under one hash tag `{ns}` so that a Redis Cluster keeps it on one slot:
//!
//! | key                     | type       | content                                              |
//! |-------------------------|------------|------------------------------------------------------|
//! | `bp:{ns}:entries`       | sorted set | member `instance\|name\|key`, score = expiry (ms, Redis `TIME`) |
//! | `bp:{ns}:levels`        | hash       | member → `level[\|extension...]`, level in per-mille (0 = full stop) |
//! | `bp:{ns}:seq`           | string     | sequence counter, incremented once per message       |
//! | `bp:{ns}:epoch`         | string     | the counter's epoch: a new one whenever the counter is (re)created |
//! | `bp:{ns}:events`        | channel    | one message per change, carrying its epoch and sequence number |
//!
//! A channel message is one line of `|`-separated fields (`|` cannot occur in names):
//!
//! ```text
//! 2|<epoch>|<seq>|<R or X>|<redis now ms>|<expiry ms>|<level per-mille>|<instance>|<name>|<key or empty>[|<extension>...]
//! ```
//!
//! `R` raises or renews an entry until `expiry`, `X` retracts it. The receiver turns
//! `expiry - now` (both from the Redis clock) into a local TTL, so every process lets an entry
//! expire at the same moment of the Redis clock, whatever its own clock says.
//!
//! **The counter and its epoch.** Every script first checks the counter: if `seq` is missing
//! (a `FLUSHALL`, an eviction, a restart without persistence) or the epoch is, it creates a
//! new epoch (the Redis clock in µs, above the old one) so that a counter counting from 1
//! again is never mistaken for messages already seen; receivers resync when the epoch
//! changes. A `seq` that is not a number fails every script with an error naming the key
//! (nothing is written), and drops the epoch, so that the repaired counter starts a new one.
//! So does any other key of the wrong type (`entries` not a sorted set, `levels` not a hash,
//! `epoch` not a string), checked by every script whether or not it would touch that key,
//! so that no bridge reads as `Synced` while its peers' scripts fail.
//!
//! **Versions** ([`VERSION`]). The first field is the format's version; every version keeps
//! `<version>|<epoch>|<seq>|` in front, so a reader can place a message of a version it does
//! not know in the sequence without reading the rest (see `task.rs`: such a message is
//! counted and, being unreadable, triggers a resync). Within a version, new information is
//! added as trailing *extension* fields `name=value`, which readers of the same version that
//! do not know them ignore; the same extensions follow the level in the `levels` hash. Known
//! extensions: `phase=open` / `phase=half_open`, a verdict's phase (absent: a plain signal;
//! an unknown value reads as `open`, the phase that holds). The key layout above is shared by
//! every version: a new version adds keys or extensions, it never changes what these keys
//! hold.
//!
//! **Rolling upgrades.** A build that predates an extension ignores it: a build without
//! `phase` mirrors a verdict as a plain signal (it holds, and never probes it), and does not
//! subscribe to the probe channel; the builds that know it probe across processes. Neither
//! holds nor releases the other's work wrongly.
//!
//! `remote.rs` runs the scripts: it is the only code that knows which keys and arguments each
//! one takes; `message.rs` reads what comes back.

mod message;
mod permits;
mod probe;
mod rates;
mod remote;

use std::sync::Arc;
use std::time::Duration;

use backpressure::{validate_name, Phase};

pub(crate) use message::{decode_push, decode_snapshot, Push};
pub(crate) use permits::{
    decode_news, permit_channel, Answer, Call, PermitArgs, PermitKeys, PermitNews, PermitScripts,
};
pub(crate) use probe::{ProbeMessage, ProbeOp};
pub(crate) use rates::{RateAnswer, RateArgs, RateAsk, RateKeys, RateScript};
pub(crate) use remote::{answered, denied, Lease, Remote};

/// The message format version this crate writes and reads.
pub(crate) const VERSION: u32 = 2;

/// Longer messages are garbage: every field is bounded (names and keys at most 256 bytes).
pub(crate) const MAX_MESSAGE_LEN: usize = 2048;

/// The highest level (per-mille): 1000 = no throttling at all.
pub(crate) const MAX_LEVEL: u16 = 1000;

/// The Redis key names of one namespace.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    pub(crate) entries: String,
    pub(crate) levels: String,
    pub(crate) seq: String,
    pub(crate) epoch: String,
    pub(crate) channel: String,
    pub(crate) probes: String,
}

impl Keys {
    pub(crate) fn new(namespace: &str) -> Self {
        Self {
            entries: format!("bp:{{{namespace}}}:entries"),
            levels: format!("bp:{{{namespace}}}:levels"),
            seq: format!("bp:{{{namespace}}}:seq"),
            epoch: format!("bp:{{{namespace}}}:epoch"),
            channel: format!("bp:{{{namespace}}}:events"),
            probes: format!("bp:{{{namespace}}}:probes"),
        }
    }
}

/// Where a message stands in the namespace's sequence: the counter's epoch and the number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Position {
    /// Changes whenever the counter is created anew (it then counts from 1 again).
    pub(crate) epoch: u64,
    pub(crate) seq: u64,
}

/// What a message does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// Raise or renew until `expiry_ms`.
    Raise,
    /// Retract.
    Retract,
}

/// One decoded channel message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Message {
    pub(crate) at: Position,
    pub(crate) op: Op,
    pub(crate) entry: RemoteEntry,
}

/// One entry as stored in Redis, with the Redis clock at the time it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RemoteEntry {
    pub(crate) instance: Arc<str>,
    pub(crate) name: Arc<str>,
    pub(crate) key: Option<Arc<str>>,
    /// Per-mille, `0..=1000`; 0 = full stop.
    pub(crate) level: u16,
    /// A verdict's phase (the `phase` extension); `None` for a plain signal.
    pub(crate) phase: Option<Phase>,
    pub(crate) now_ms: u64,
    pub(crate) expiry_ms: u64,
}

impl RemoteEntry {
    /// The time left on the Redis clock; `None` if already expired.
    pub(crate) fn remaining(&self) -> Option<Duration> {
        self.expiry_ms
            .checked_sub(self.now_ms)
            .filter(|ms| *ms > 0)
            .map(Duration::from_millis)
    }
}

/// Why a message or entry was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reject {
    /// Not a message of any version at all: ignored without touching the sequence.
    Malformed,
    /// Of another version than [`VERSION`]: its content is unknown. `at` is its place in
    /// the sequence if its header reads as one.
    UnknownVersion { version: u32, at: Option<Position> },
    /// Well-formed, of this version, but carries an invalid name, key, instance or level.
    Invalid(Position),
}

/// The phase among an entry's extension fields (`name=value`; the rest are ignored).
pub(crate) fn phase_of<'a>(extensions: impl Iterator<Item = &'a str>) -> Option<Phase> {
    let mut phase = None;
    for field in extensions {
        if let Some(value) = field.strip_prefix("phase=") {
            phase = Some(match value {
                "half_open" => Phase::HalfOpen,
                _ => Phase::Open,
            });
        }
    }
    phase
}

/// The extension fields that carry `phase` (empty for a plain signal).
pub(crate) fn phase_extension(phase: Option<Phase>) -> &'static str {
    match phase {
        None => "",
        Some(Phase::Open) => "|phase=open",
        Some(Phase::HalfOpen) => "|phase=half_open",
    }
}

/// Validates the parts of an entry (from a message or a snapshot).
pub(crate) fn entry_from_parts(
    instance: &str,
    name: &str,
    key: &str,
    (level, phase): (u16, Option<Phase>),
    now_ms: u64,
    expiry_ms: u64,
) -> Option<RemoteEntry> {
    if level > MAX_LEVEL || !valid_instance(instance) || validate_name(name).is_err() {
        return None;
    }
    let key = if key.is_empty() {
        None
    } else {
        validate_name(key).ok()?;
        Some(Arc::from(key))
    };
    Some(RemoteEntry {
        instance: instance.into(),
        name: name.into(),
        key,
        level,
        phase,
        now_ms,
        expiry_ms,
    })
}

/// A decimal number, digits only (a message's or snapshot's numeric field).
pub(crate) fn number<T: std::str::FromStr>(field: &str) -> Option<T> {
    if field.is_empty() || !field.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    field.parse().ok()
}

/// Splits a sorted-set member `instance|name|key`.
pub(crate) fn split_member(member: &str) -> Option<(&str, &str, &str)> {
    let mut parts = member.splitn(3, '|');
    Some((parts.next()?, parts.next()?, parts.next()?))
}

/// An instance id is a valid signal name without `/` (it prefixes mirrored keys).
pub(crate) fn valid_instance(instance: &str) -> bool {
    validate_name(instance).is_ok() && !instance.contains('/')
}

/// The local key under which a remote entry is mirrored: `instance/key`, or `instance`.
pub(crate) fn mirror_key(instance: &str, key: Option<&str>) -> String {
    match key {
        Some(key) => format!("{instance}/{key}"),
        None => instance.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_keys() {
        assert_eq!(mirror_key("a", Some("k")), "a/k");
        assert_eq!(mirror_key("a", None), "a");
        assert_eq!(split_member("i|n|"), Some(("i", "n", "")));
        assert_eq!(split_member("i|n|k"), Some(("i", "n", "k")));
    }
}
