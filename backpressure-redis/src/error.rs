//! Typed errors.

use std::time::Duration;

use backpressure::error::{NameError, PatternError};

/// Why a bridge could not be set up.
///
/// No variant ever carries a password: URLs are shown redacted (`redis://***@host:port`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL could not be parsed.
    #[error("invalid Redis URL {url}: {reason}")]
    InvalidUrl {
        /// The URL, redacted.
        url: String,
        /// What is wrong with it (credentials scrubbed).
        reason: String,
    },
    /// The namespace breaks the signal naming rules (it becomes part of Redis key names).
    #[error("invalid namespace {namespace:?}: {source}")]
    Namespace {
        /// The namespace given.
        namespace: String,
        /// Which rule it breaks.
        source: NameError,
    },
    /// The instance id breaks the naming rules or contains `/`.
    #[error("invalid instance id {0:?}: must be a signal name without '/'")]
    Instance(String),
    /// The `share` pattern does not compile.
    #[error("invalid share pattern: {0}")]
    Share(#[from] PatternError),
    /// The lease is too short to be renewed in time (at least 30 ms), or not shorter than
    /// `max_remote_lease`.
    #[error("invalid lease {0:?}: must be at least 30 ms and at most max_remote_lease")]
    Lease(Duration),
    /// No tokio runtime: [`connect`](crate::connect) must run inside one.
    #[error("backpressure-redis needs a tokio runtime")]
    NoRuntime,
    /// The server could not be reached or refused the connection.
    #[error("cannot reach Redis at {url}: {reason}")]
    Connect {
        /// The URL, redacted.
        url: String,
        /// What went wrong (credentials scrubbed).
        reason: String,
    },
    /// The server's ACL denies this user a command, key or channel of the namespace: the
    /// user must be granted the namespace's keys (`~bp:{ns}:*`), its channel
    /// (`&bp:{ns}:*`) and the bridge's commands (see the crate's README).
    #[error("Redis at {url} denies namespace {namespace:?} to this user: {reason}")]
    Denied {
        /// The URL, redacted.
        url: String,
        /// The namespace asked for.
        namespace: String,
        /// Redis's answer (credentials scrubbed).
        reason: String,
    },
    /// Connected, but the first sync did not finish in time.
    #[error("no sync with Redis at {url} within {timeout:?}")]
    Timeout {
        /// The URL, redacted.
        url: String,
        /// The configured `connect_timeout`.
        timeout: Duration,
    },
}
