//! Share [`backpressure`] signals across processes through Redis.
//!
//! A [`Bridge`] connects a local [`Sink`](backpressure::Sink) to a namespace in Redis. Signals
//! raised locally whose names match the `share` pattern are published; signals raised by the
//! other processes of the namespace appear in the local sink, keyed by their origin
//! (`instance/key`), with the rest of their lease as TTL. Coordinators keep watching the local
//! sink, so their gate stays local and O(1): a raise in one process holds work in all of them.
//!
//! ```no_run
//! use std::time::Duration;
//! use backpressure_redis::{connect, Config};
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let sink = backpressure::sink("main");
//! let bridge = connect(
//!     sink.clone(),
//!     Config::new("redis://127.0.0.1:6379").namespace("shop").share("backpressure.*"),
//! )
//! .await?;
//!
//! // Every process bridged to "shop" now holds work deferring on "backpressure.smtp".
//! sink.raise("backpressure.smtp")?;
//! // ...and resumes it.
//! sink.retract("backpressure.smtp")?;
//!
//! println!("{:?}", bridge.status()); // Synced
//! bridge.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # How it works
//!
//! * **Data.** Under one hash tag `{ns}`: a sorted set of live entries (score = expiry in ms
//!   of the Redis clock, computed inside Lua from `TIME`), a sequence counter with its epoch
//!   (a new one whenever the counter is created anew) and a pub/sub channel whose messages
//!   carry the epoch and the sequence number. Lua scripts raise, retract,
//!   re-publish and snapshot atomically. See the wire format in the repository's
//!   `backpressure-redis/src/wire/mod.rs`.
//! * **Never blocking.** Local `raise`/`retract` only touch the local sink; the bridge reads
//!   the sink's event stream in a background task and publishes from there.
//! * **Leases.** Each shared entry lives in Redis for at most [`Config::lease`] (15 s) unless
//!   its owner renews it (every lease / 3). A killed process's signals vanish everywhere
//!   within one lease. An entry raised with a TTL shorter than the lease is published with
//!   that TTL, so it expires on every process at the same moment of the Redis clock.
//! * **Resync.** After a (re)subscription, a gap in sequence numbers or a new epoch of the
//!   counter (a `FLUSHALL`, an evicted counter) the bridge replaces its mirror with a
//!   snapshot, so nothing is lost and nothing stale remains; after a (re)subscription, or
//!   when the snapshot shows a new epoch, it also re-publishes its own entries (repairing a
//!   Redis restarted without persistence). A snapshot of a new epoch keeps the mirrors it
//!   lacks until their lease ends, unless the policy is `Drop`: their owners may not have
//!   re-published yet. A burst of messages the bridge cannot place costs a few snapshots,
//!   not one each: waiting messages are read before the snapshot, and resyncs start at
//!   least a tenth of the lease (at most 1 s) apart, `Resyncing` meanwhile. A resync that
//!   Redis answers with an error (a counter that is not a number) is retried with capped
//!   backoff; the status is `Synced` only once a snapshot was read.
//! * **Faults.** While Redis is unreachable the [`Status`] is `Disconnected`, other
//!   processes' entries follow the [`OnDisconnect`] policy and the bridge reconnects with
//!   capped exponential backoff (50 ms doubling to [`Config::reconnect_max_delay`]). A link
//!   that goes silent (a partition: sockets open, nothing answers) reads as `Disconnected`
//!   within half a lease of its last answer (a `PING` after a quarter of a lease without
//!   an answer, a quarter of a lease to answer it). A bridge that finds it stalled (the
//!   process frozen or starved: its timer fired, or a message is read, more than a quarter
//!   of a lease late, by the Redis clock each message carries) resyncs from a snapshot
//!   rather than grant a stale renewal a fresh lease ([`BridgeStats::stalls`]).
//! * **Versions.** Every message carries the wire version ([`WIRE_VERSION`]); messages of
//!   another version are ignored, counted ([`BridgeStats::unknown_version_messages`]) and
//!   answered by a resync from the keys, whose layout every version shares. New information
//!   travels as optional fields that older builds of the same version ignore; the crate's
//!   README gives the rule for rolling upgrades.
//! * **Tenants.** Anyone who can write a namespace's keys or publish on its channel can
//!   forge its signals; on a shared Redis, give each tenant an ACL user restricted to
//!   `~bp:{ns}:*` and `&bp:{ns}:*` (the README lists the commands). Another namespace is
//!   then [`Error::Denied`] to it.
//! * **Untrusted input.** Anything on the channel or in the sorted set may be garbage:
//!   malformed messages, invalid names and absurd leases are ignored, counted in
//!   [`BridgeStats`] and logged once per kind. Credentials never appear in logs, errors or
//!   `Debug` output ([`RedisUrl`]).
//!
//! **Fleet-wide concurrency.** A bridge serves the `global_concurrency` of its sink's workers
//! ([`Sink::serve_permits`](backpressure::Sink::serve_permits)): it holds the fleet's leased
//! permits in Redis (a sorted set per worker, acquired, renewed and released in Lua, never
//! more members than the limit), grants them to this process's workers and gives back the
//! unused ones (keeping at most [`Config::permit_batch`] − 1). Waiting starts are woken by
//! release messages, not polling; a killed holder's permits lapse with its lease; while
//! Redis is unreachable the limits follow [`LimitsOnDisconnect`]
//! ([`Bridge::permit_status`], [`PermitStats`]). The crate's README gives the details and
//! the slack.
//!
//! **Fleet-wide rate.** A bridge serves the shared `rate(..., shared = true)` of its sink's
//! workers ([`Sink::serve_rates`](backpressure::Sink::serve_rates)): one GCRA per worker in
//! Redis, on the Redis clock, hands each process its starts in batches of 5 ms' worth of the
//! rate, asked only while a start waits; while Redis is unreachable the rates follow
//! [`LimitsOnDisconnect`] too ([`Bridge::rate_status`], [`RateStats`]). The README gives the
//! keys, the bound and the slack.
//!
//! Mirrored entries are the remote owner's: a local `retract`/`clear` removes them from this
//! sink only, and the owner's next renewal (within lease / 3) brings them back. Only
//! entries the bridge mirrored are mirrors: an entry raised locally is this process's own
//! whatever its key (also `w1` or `w1/x` while an instance `w1` is in the namespace), it is
//! shared, and a remote entry whose local id equals it is refused and counted
//! ([`BridgeStats::forged_entries`]): no message can replace, retract or un-share it.
//!
//! **Levels.** Every entry travels with its [`Level`](backpressure::Level) (per-mille on the
//! wire, 0 = full stop, the level of a plain raise). A local raise through
//! [`Sink::raise_with`](backpressure::Sink::raise_with) publishes its level, and re-raising a
//! live entry with another level
//! ([`LevelChanged`](backpressure::SignalEventKind::LevelChanged)) republishes it; other
//! processes mirror the entry at that level, so a coordinator of concurrency 10 deferring on
//! a name raised at 0.3 anywhere in the namespace runs at most 3 items at once.
//! [`PolicyChanged`](backpressure::SignalEventKind::PolicyChanged) events are informational
//! and never published.
//!
//! **Verdicts and their probes.** A breaker's verdict travels with its
//! [`Phase`](backpressure::Phase) (`open` or `half_open`), so every process holds on it as its
//! owner's does: `max_defer` never forces items past it, and a half-open verdict never waits
//! for its owner's traffic alone. A worker held in another process by a half-open verdict
//! asks the verdict's owner for a probe (on the namespace's probe channel, `bp:{ns}:probes`);
//! the owner claims it on its own breaker, so the whole fleet starts at most the breaker's
//! `probes` of them, and the outcome, sent back, decides the breaker as the owner's own probe
//! would. A probe that ends unused (skipped, cut short by shutdown) goes back to the owner,
//! which tells every process, and a held one asks again. A probe lent to a process that dies
//! is settled by the breaker's `probe_timeout`, like a hung local probe. A process that owns
//! a half-open verdict of its own probes it and passes the other processes' half-open
//! verdicts without asking them (their owners probe too), so replicas whose breakers hold
//! each other recover together instead of waiting for each other's probes; only a process
//! held by other processes' verdicts alone asks. A claim left unanswered, a denial never
//! lifted, or a grant no held worker takes, lapses after two renewals of the verdict. Anyone who can
//! publish on the namespace can forge probe outcomes, as they can forge signals.

mod bridge;
mod config;
mod error;
mod permits;
mod quota_task;
mod rates;
mod start;
mod wire;

pub use bridge::{connect, Bridge, BridgeStats, Status};
pub use config::{Config, LimitsOnDisconnect, OnDisconnect, RedisUrl};
pub use error::Error;
pub use permits::PermitStats;
pub use rates::RateStats;
pub use start::{start, start_with, StartError, Started};

/// The version of the message format this build writes and reads on the channel (the
/// first field of every message). Messages of other versions are ignored, counted in
/// [`BridgeStats::unknown_version_messages`] and answered by a resync from the keys, whose
/// layout every version shares; the crate's README gives the rule for rolling upgrades.
///
/// ```
/// assert_eq!(backpressure_redis::WIRE_VERSION, 2);
/// ```
pub const WIRE_VERSION: u32 = wire::VERSION;

#[doc(hidden)]
pub mod __private {
    //! For this crate's tests only; not part of the API.

    /// Encodes a channel message as the scripts do.
    #[allow(clippy::too_many_arguments)]
    pub fn encode_message(
        epoch: u64,
        seq: u64,
        raise: bool,
        now_ms: u64,
        expiry_ms: u64,
        level: u16,
        instance: &str,
        name: &str,
        key: Option<&str>,
    ) -> String {
        format!(
            "{}|{epoch}|{seq}|{}|{now_ms}|{expiry_ms}|{level}|{instance}|{name}|{}",
            crate::wire::VERSION,
            if raise { "R" } else { "X" },
            key.unwrap_or("")
        )
    }

    /// The channel of a namespace.
    pub fn channel(namespace: &str) -> String {
        crate::wire::Keys::new(namespace).channel
    }

    /// The sorted set of a namespace.
    pub fn entries_key(namespace: &str) -> String {
        crate::wire::Keys::new(namespace).entries
    }

    /// The sequence counter of a namespace.
    pub fn seq_key(namespace: &str) -> String {
        crate::wire::Keys::new(namespace).seq
    }

    /// The counter's epoch of a namespace.
    pub fn epoch_key(namespace: &str) -> String {
        crate::wire::Keys::new(namespace).epoch
    }
}
