//! The bridge's settings, deserializable from a config-file section.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

/// Settings of one bridge between a local sink and a Redis namespace.
///
/// Deserializes from a config-file section; every field but `url` has a default:
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let config: backpressure_redis::Config = toml::from_str(r#"
///     url = "redis://:secret@127.0.0.1:6379/0"
///     namespace = "shop"
///     lease = "5s"
///     share = "backpressure.*"
///     on_disconnect = "hold_until_reconnect"
///     limits_on_disconnect = "hold"
///     permit_batch = 1
/// "#)?;
/// assert_eq!(config.lease, std::time::Duration::from_secs(5));
/// assert_eq!(config.limits_on_disconnect, backpressure_redis::LimitsOnDisconnect::Hold);
/// assert!(!format!("{config:?}").contains("secret"));
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// The Redis URL (`redis://[user:password@]host[:port][/db]`, or `rediss://` with TLS
    /// support compiled into `redis`). The password never appears in logs, errors or `Debug`.
    pub url: RedisUrl,
    /// The namespace: processes bridged to the same namespace share signals; other
    /// namespaces on the same server are independent. Default `backpressure`.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// How long a shared entry lives in Redis unless its owner renews it (every `lease / 3`).
    /// A crashed process's signals vanish everywhere within this time. Default 15 s.
    ///
    /// It also sets how fast a dead link is noticed: the bridge sends a `PING` when Redis has
    /// answered nothing for a quarter of the lease, and gives every call a quarter of the
    /// lease to answer (at least 25 ms each, the timeout at most 2 s), so a link that goes
    /// silent reads as [`Status::Disconnected`](crate::Status::Disconnected) within half a
    /// lease of its last answer.
    #[serde(default = "default_lease", with = "humantime_serde")]
    pub lease: Duration,
    /// Which signal names are shared (a pattern: glob, comma-separated). Default `*`.
    #[serde(default = "default_share")]
    pub share: String,
    /// What happens to other processes' signals while Redis is unreachable.
    #[serde(default)]
    pub on_disconnect: OnDisconnect,
    /// This process's id in the namespace, prefixing the keys of its entries as seen by
    /// others. A signal name without `/`. Default: `<host>-<pid>-<random>`.
    #[serde(default)]
    pub instance: Option<String>,
    /// Remote entries announcing a longer remaining lease are ignored as absurd (counted in
    /// [`BridgeStats::absurd_leases`](crate::BridgeStats::absurd_leases)). Default 5 min.
    #[serde(default = "default_max_remote_lease", with = "humantime_serde")]
    pub max_remote_lease: Duration,
    /// The cap of the reconnect backoff (which starts at 50 ms and doubles). Default 2 s.
    #[serde(default = "default_reconnect_max_delay", with = "humantime_serde")]
    pub reconnect_max_delay: Duration,
    /// How long [`connect`](crate::connect) waits for the first sync. Default 5 s.
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// What the fleet-wide limits (`global_concurrency` and shared `rate`s) of the sink's
    /// workers do while Redis is unreachable. Default [`LimitsOnDisconnect::LocalShare`].
    #[serde(default)]
    pub limits_on_disconnect: LimitsOnDisconnect,
    /// How many permits of a worker's `global_concurrency` a process asks for at once when
    /// a start waits, at least 1. Default 2. A process keeps at most `permit_batch - 1`
    /// unused permits while none of its starts waits (so a busy worker takes the next item
    /// without a round trip), and lets them go at once when another process's start waits.
    #[serde(default = "default_permit_batch")]
    pub permit_batch: usize,
}

impl Config {
    /// The default settings for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: RedisUrl::new(url),
            namespace: default_namespace(),
            lease: default_lease(),
            share: default_share(),
            on_disconnect: OnDisconnect::default(),
            instance: None,
            max_remote_lease: default_max_remote_lease(),
            reconnect_max_delay: default_reconnect_max_delay(),
            connect_timeout: default_connect_timeout(),
            limits_on_disconnect: LimitsOnDisconnect::default(),
            permit_batch: default_permit_batch(),
        }
    }

    /// Sets [`limits_on_disconnect`](Self::limits_on_disconnect).
    pub fn limits_on_disconnect(mut self, policy: LimitsOnDisconnect) -> Self {
        self.limits_on_disconnect = policy;
        self
    }

    /// Sets [`permit_batch`](Self::permit_batch).
    pub fn permit_batch(mut self, batch: usize) -> Self {
        self.permit_batch = batch;
        self
    }

    /// Sets [`namespace`](Self::namespace).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Sets [`lease`](Self::lease).
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Sets [`share`](Self::share).
    pub fn share(mut self, pattern: impl Into<String>) -> Self {
        self.share = pattern.into();
        self
    }

    /// Sets [`on_disconnect`](Self::on_disconnect).
    pub fn on_disconnect(mut self, policy: OnDisconnect) -> Self {
        self.on_disconnect = policy;
        self
    }

    /// Sets [`instance`](Self::instance).
    pub fn instance(mut self, instance: impl Into<String>) -> Self {
        self.instance = Some(instance.into());
        self
    }

    /// Sets [`max_remote_lease`](Self::max_remote_lease).
    pub fn max_remote_lease(mut self, max: Duration) -> Self {
        self.max_remote_lease = max;
        self
    }

    /// Sets [`reconnect_max_delay`](Self::reconnect_max_delay).
    pub fn reconnect_max_delay(mut self, max: Duration) -> Self {
        self.reconnect_max_delay = max;
        self
    }

    /// Sets [`connect_timeout`](Self::connect_timeout).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }
}

fn default_namespace() -> String {
    "backpressure".into()
}
fn default_lease() -> Duration {
    Duration::from_secs(15)
}
fn default_share() -> String {
    "*".into()
}
fn default_max_remote_lease() -> Duration {
    Duration::from_secs(300)
}
fn default_reconnect_max_delay() -> Duration {
    Duration::from_secs(2)
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_permit_batch() -> usize {
    2
}

/// What a worker's fleet-wide limits (`global_concurrency`, a shared `rate`) allow in this
/// process while Redis is unreachable. Items already running keep running under every
/// policy. For a shared rate: `LocalShare` grants from a local GCRA at the limit divided by
/// the processes last seen, `Hold` grants nothing, `Ignore` grants on demand (the rate is
/// not kept).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LimitsOnDisconnect {
    /// Run up to the limit divided by the number of processes last seen serving the worker
    /// (rounded down): the fleet stays within its limit if every process is cut off alike
    /// (default). A process that alone is cut off may run its share beside permits the
    /// others take once its leases lapse.
    #[default]
    LocalShare,
    /// Start nothing new until Redis is back (the unused permits are given up at once).
    Hold,
    /// Run up to the whole limit in this process: **breaks the fleet-wide cap** while Redis
    /// is down (each cut-off process may run the limit).
    Ignore,
}

/// What a bridge does with other processes' signals while Redis is unreachable.
///
/// Its own signals are unaffected: local raises and retracts keep working and are published
/// when the connection is back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum OnDisconnect {
    /// Keep each remote entry until its lease ends, as if its owner had crashed (default):
    /// work held by a peer's signal resumes at most one lease after Redis went away.
    #[default]
    KeepUntilLeaseEnds,
    /// Drop every remote entry at once: nothing from other processes holds work while the
    /// bridge cannot tell whether it still stands.
    Drop,
    /// Keep every remote entry until the connection is back and a fresh snapshot tells
    /// which still stand: work held by a peer stays held however long Redis is down.
    ///
    /// Nothing mirrored lapses while the link is in doubt, even before the outage is
    /// noticed: mirrors carry no local TTL, and the bridge retracts one when its lease has
    /// ended in Redis *and* the link has answered a call sent after that moment (so no
    /// renewal can still be on its way).
    HoldUntilReconnect,
}

/// A Redis URL whose password is never shown: `Debug` and `Display` print `redis://***@host`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct RedisUrl(String);

impl RedisUrl {
    /// Wraps a URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL itself, credentials included: for connecting, never for printing.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with any `user:password@` part replaced by `***@`.
    pub fn redacted(&self) -> String {
        redact_url(&self.0)
    }

    /// Replaces every occurrence of this URL's credentials in `text` by `***`.
    pub(crate) fn scrub(&self, text: &str) -> String {
        let mut text = text.replace(&self.0, &self.redacted());
        if let Some(userinfo) = userinfo(&self.0) {
            for secret in userinfo.split(':').filter(|s| s.len() >= 3) {
                text = text.replace(secret, "***");
            }
        }
        text
    }
}

impl From<&str> for RedisUrl {
    fn from(url: &str) -> Self {
        Self::new(url)
    }
}

impl From<String> for RedisUrl {
    fn from(url: String) -> Self {
        Self::new(url)
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// The `user:password` part of a URL, if any.
fn userinfo(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    authority.rsplit_once('@').map(|(userinfo, _)| userinfo)
}

fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let host = match authority.rsplit_once('@') {
        Some((_, host)) => format!("***@{host}"),
        None => authority.to_owned(),
    };
    // Query strings may carry passwords too (`?password=`): drop them.
    let path = tail.split(['?', '#']).next().unwrap_or("");
    match scheme {
        Some(scheme) => format!("{scheme}://{host}{path}"),
        None => format!("{host}{path}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_redacted() {
        let url = RedisUrl::new("redis://admin:hunter22@db.example:6380/2?password=x");
        assert_eq!(url.redacted(), "redis://***@db.example:6380/2");
        assert_eq!(format!("{url}"), "redis://***@db.example:6380/2");
        assert!(!format!("{url:?}").contains("hunter22"));
        assert_eq!(
            url.scrub("failed: auth hunter22 rejected"),
            "failed: auth *** rejected"
        );
        assert_eq!(
            RedisUrl::new("redis://127.0.0.1:6379").redacted(),
            "redis://127.0.0.1:6379"
        );
        assert_eq!(
            RedisUrl::new("redis://:pw@h/0").redacted(),
            "redis://***@h/0"
        );
    }
}
