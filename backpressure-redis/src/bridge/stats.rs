//! The bridge's counters, and the warnings logged once per kind of rejected input.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

/// Counters of a bridge, for monitoring. Every rejected input is counted here and logged
/// once per kind (at WARN) through `tracing`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BridgeStats {
    /// Channel messages that are not messages of any version of the format at all.
    pub malformed_messages: u64,
    /// Channel messages of another wire version than this build's
    /// ([`WIRE_VERSION`](crate::WIRE_VERSION)): ignored (each makes the bridge resync from
    /// the keys, unless its snapshot already covers it). A peer runs another release of
    /// this crate: see the rolling-upgrade rule in the crate's README.
    pub unknown_version_messages: u64,
    /// The highest of those versions, if any was seen.
    pub highest_unknown_version: Option<u32>,
    /// Well-formed messages or snapshot entries with an invalid name, key, instance or level.
    pub invalid_entries: u64,
    /// Remote entries announcing a remaining lease above `max_remote_lease`.
    pub absurd_leases: u64,
    /// Remote raises and retracts refused because they name one of this process's own
    /// entries (an instance id followed by a key, equal to a local key): a forgery, or an
    /// instance id that collides with local keys. The own entry is left as it is.
    pub forged_entries: u64,
    /// Gaps in the sequence numbers (each triggers a resync).
    pub sequence_gaps: u64,
    /// Messages from a new epoch of the sequence counter: it was flushed, evicted or
    /// repaired and counts from 1 again (each triggers a resync).
    pub counter_resets: u64,
    /// Snapshots taken (the first sync included).
    pub resyncs: u64,
    /// Times the bridge found it had stalled (the process frozen or starved: its timer
    /// fired, or a message was read, more than a quarter of the lease late) and resynced
    /// rather than trust what it read.
    pub stalls: u64,
    /// Script calls that published this process's changes.
    pub published: u64,
    /// Remote raises and retracts applied to the local sink.
    pub applied: u64,
    /// Failed Redis calls: unanswered ones make the bridge reconnect, answered errors (a
    /// broken counter, a denied command) make it retry a resync with backoff.
    pub redis_errors: u64,
}

/// The live counters behind [`BridgeStats`], shared by the bridge's task and its handle.
/// Counting is `Relaxed`: each counter is read on its own, nothing is ordered by them.
#[derive(Debug)]
pub(super) struct Counters {
    /// The channel named in every warning.
    channel: String,
    pub(super) malformed: AtomicU64,
    unknown_version: AtomicU64,
    /// 0: none seen.
    highest_unknown_version: AtomicU32,
    pub(super) invalid: AtomicU64,
    pub(super) absurd: AtomicU64,
    forged: AtomicU64,
    pub(super) gaps: AtomicU64,
    pub(super) counter_resets: AtomicU64,
    pub(super) resyncs: AtomicU64,
    pub(super) stalls: AtomicU64,
    pub(super) published: AtomicU64,
    pub(super) applied: AtomicU64,
    pub(super) redis_errors: AtomicU64,
    warned: [AtomicBool; 6],
}

/// The kinds of warning logged once.
#[derive(Clone, Copy)]
enum Warn {
    Malformed = 0,
    Invalid = 1,
    Absurd = 2,
    Redis = 3,
    Version = 4,
    Forged = 5,
}

impl Counters {
    pub(super) fn new(channel: &str) -> Self {
        Self {
            channel: channel.to_owned(),
            malformed: AtomicU64::new(0),
            unknown_version: AtomicU64::new(0),
            highest_unknown_version: AtomicU32::new(0),
            invalid: AtomicU64::new(0),
            absurd: AtomicU64::new(0),
            forged: AtomicU64::new(0),
            gaps: AtomicU64::new(0),
            counter_resets: AtomicU64::new(0),
            resyncs: AtomicU64::new(0),
            stalls: AtomicU64::new(0),
            published: AtomicU64::new(0),
            applied: AtomicU64::new(0),
            redis_errors: AtomicU64::new(0),
            warned: Default::default(),
        }
    }

    pub(super) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether this is the first warning of its kind (later ones are only counted).
    fn first(&self, kind: Warn) -> bool {
        !self.warned[kind as usize].swap(true, Ordering::Relaxed)
    }

    pub(super) fn snapshot(&self) -> BridgeStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        BridgeStats {
            malformed_messages: get(&self.malformed),
            unknown_version_messages: get(&self.unknown_version),
            highest_unknown_version: Some(self.highest_unknown_version.load(Ordering::Relaxed))
                .filter(|v| *v != 0),
            invalid_entries: get(&self.invalid),
            absurd_leases: get(&self.absurd),
            forged_entries: get(&self.forged),
            sequence_gaps: get(&self.gaps),
            counter_resets: get(&self.counter_resets),
            resyncs: get(&self.resyncs),
            stalls: get(&self.stalls),
            published: get(&self.published),
            applied: get(&self.applied),
            redis_errors: get(&self.redis_errors),
        }
    }

    /// Counts (and the first time logs) a message, or snapshot, that is not of this format.
    pub(super) fn malformed(&self) {
        Self::bump(&self.malformed);
        if self.first(Warn::Malformed) {
            tracing::warn!(channel = %self.channel, "ignored a malformed message (later ones are only counted)");
        }
    }

    /// Counts (and the first time logs) a message of another wire version.
    pub(super) fn unknown_version(&self, version: u32) {
        Self::bump(&self.unknown_version);
        self.highest_unknown_version
            .fetch_max(version, Ordering::Relaxed);
        if self.first(Warn::Version) {
            tracing::warn!(
                channel = %self.channel,
                version,
                ours = crate::WIRE_VERSION,
                "ignored a message of another wire version: a peer runs another release of backpressure-redis; resyncing from the keys (later ones are only counted)"
            );
        }
    }

    /// Counts (and the first time logs) a remote entry with `what` wrong with it.
    pub(super) fn invalid(&self, what: &str) {
        Self::bump(&self.invalid);
        if self.first(Warn::Invalid) {
            tracing::warn!(channel = %self.channel, "ignored a remote entry with {what} (later ones are only counted)");
        }
    }

    /// Counts (and the first time logs) a remote entry of `signal` announcing `lease`.
    pub(super) fn absurd(&self, signal: &str, lease: std::time::Duration) {
        Self::bump(&self.absurd);
        if self.first(Warn::Absurd) {
            tracing::warn!(
                channel = %self.channel,
                signal = %signal,
                lease_ms = lease.as_millis() as u64,
                "ignored a remote entry with an absurd lease (later ones are only counted)"
            );
        }
    }

    /// Counts (and the first time logs) a remote entry of `signal` that names an own entry.
    pub(super) fn forged(&self, signal: &str) {
        Self::bump(&self.forged);
        if self.first(Warn::Forged) {
            tracing::warn!(
                channel = %self.channel,
                signal = %signal,
                "refused a remote entry that names one of this process's own entries (a forgery, or an instance id equal to a local key; later ones are only counted)"
            );
        }
    }

    /// Counts (and the first time logs) a failed Redis call; `answered` if Redis answered
    /// with an error (its message is logged: it names keys, never credentials).
    pub(super) fn redis_error(&self, error: &redis::RedisError, answered: bool) {
        Self::bump(&self.redis_errors);
        if !self.first(Warn::Redis) {
            return;
        }
        if answered {
            tracing::warn!(
                channel = %self.channel,
                error = ?error.kind(),
                detail = error.detail().unwrap_or(""),
                "Redis refused a call; retrying the sync with backoff (later failures are only counted)"
            );
        } else {
            tracing::warn!(
                channel = %self.channel,
                error = ?error.kind(),
                "Redis call failed; reconnecting (later failures are only counted)"
            );
        }
    }
}
