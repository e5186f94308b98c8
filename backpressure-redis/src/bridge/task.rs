//! The background task: one loop that hands each push, local event and timer to its part.

use std::sync::Arc;
use std::time::Duration;

use backpressure::{SignalEvent, Subscription};
use futures_util::StreamExt;
use redis::{PushInfo, PushKind};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::clock::Clock;
use super::inbound::{EntryId, Inbound};
use super::link::Link;
use super::outbound::Outbound;
use super::probes::{Lender, Outbox};
use super::stats::Counters;
use crate::wire::{self, answered, ProbeMessage, ProbeOp, Push, Reject, Remote};

/// How long a clean shutdown waits for Redis to take the retraction of its entries.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(1);

/// How many waiting pushes a resync handles before its snapshot, at most.
const DRAIN: usize = 4096;

/// The bridge's background task.
///
/// `connect` builds it for a connection it has just subscribed.
pub(super) struct Task {
    pub(super) remote: Remote,
    pub(super) pushes: mpsc::UnboundedReceiver<PushInfo>,
    /// Subscribed to the sink before anything was read from it.
    pub(super) local: Subscription,
    pub(super) link: Link,
    pub(super) inbound: Inbound,
    pub(super) outbound: Outbound,
    /// This process's verdicts' probes lent to other processes.
    pub(super) lender: Lender,
    /// Probe messages to publish: claims and reports of the mirrored verdicts' sources, and
    /// the lender's answers (`probes.rs`).
    pub(super) probe_outbox: Outbox,
    pub(super) probe_messages: mpsc::UnboundedReceiver<ProbeMessage>,
    pub(super) counters: Arc<Counters>,
    /// How long the link may go without an answer before the bridge sends a `PING`.
    pub(super) probe_every: Duration,
    /// Whether the task reads too late to trust what it reads (it then resyncs).
    pub(super) clock: Clock,
    /// The first call the server's ACL refused, if any (for `connect` to report).
    pub(super) refused: Option<redis::RedisError>,
}

impl Task {
    /// Runs until `stop` fires (or its sender is dropped), then leaves the namespace.
    ///
    /// A stale link resyncs first; otherwise the task sleeps until the next push, local
    /// event or deadline (a reconnect attempt, a retried resync, a renewal, a TTL-limited
    /// entry's check).
    pub(super) async fn run(mut self, mut stop: oneshot::Receiver<()>) {
        loop {
            if self.link.resync_due() {
                self.resync().await;
                continue;
            }
            // A deadline already past is due now: lateness counts from when the task sleeps.
            let wake_at = self.next_wake().max(Instant::now());
            tokio::select! {
                biased;
                _ = &mut stop => break,
                push = self.pushes.recv() => match push {
                    Some(push) => {
                        self.check_stall(wake_at);
                        self.on_push(push);
                    }
                    None => break,
                },
                event = self.local.next() => match event {
                    Some(Ok(event)) => self.on_local(event).await,
                    // Missed local events: the next full sync rebuilds the own entries
                    // from the sink itself.
                    Some(Err(_lagged)) => self.renew().await,
                    None => break,
                },
                Some(message) = self.probe_messages.recv() => self.send_probe(message).await,
                _ = tokio::time::sleep_until(wake_at) => {
                    self.check_stall(wake_at);
                    self.on_timer().await;
                }
            }
        }
        self.leave().await;
    }

    /// If the task wakes more than a quarter of a lease after `wake_at` (it was frozen or
    /// starved while it slept), what is waiting may be stale: a synced link resyncs before
    /// reading on.
    fn check_stall(&mut self, wake_at: Instant) {
        if self.link.is_synced() && self.clock.timer_late(wake_at) {
            self.stalled();
        }
    }

    fn stalled(&mut self) {
        Counters::bump(&self.counters.stalls);
        tracing::debug!(channel = %self.remote.channel(), "read too late; resyncing");
        self.link.stalled();
    }

    /// The first sync, run by `connect` before the task starts: a call the server's ACL
    /// refuses is its error (after leaving the namespace again). Any other failure is left
    /// to the task to retry.
    pub(super) async fn first_sync(&mut self) -> Result<(), redis::RedisError> {
        self.resync().await;
        match self.refused.take() {
            Some(refused) => {
                self.leave().await;
                Err(refused)
            }
            None => Ok(()),
        }
    }

    fn next_wake(&self) -> Instant {
        let probe = self.remote.confirmed_at() + self.probe_every;
        match self.link.wake_at() {
            Some(at) if self.link.is_down() => at,
            Some(at) => at.min(probe),
            None => self
                .lapse_at()
                .into_iter()
                .fold(probe.min(self.outbound.next_wake()), Instant::min),
        }
    }

    /// When a `HoldUntilReconnect` mirror's lease ends, if the mirror matches Redis.
    fn lapse_at(&self) -> Option<Instant> {
        self.link
            .is_synced()
            .then(|| self.inbound.next_lapse())
            .flatten()
    }

    /// Reconnects, lets mirrors lapse, confirms the link, renews: whatever is due.
    async fn on_timer(&mut self) {
        if self.link.is_down() {
            return self.link.reconnect(&mut self.remote).await;
        }
        let now = Instant::now();
        if let Some(at) = self.lapse_at().filter(|at| *at <= now) {
            let confirmed = self.remote.confirmed_at();
            if at > confirmed {
                // Confirm first; the pushes that came before the answer are handled before
                // the next round lets the mirror lapse.
                return self.probe().await;
            }
            self.inbound.lapse(confirmed);
        }
        if self.remote.confirmed_at() + self.probe_every <= now {
            return self.probe().await;
        }
        if !self.link.is_up() {
            return; // A resync is due: the loop runs it.
        }
        if self.outbound.renew_due() || self.outbound.ttl_refreshed(&self.inbound) {
            self.renew().await;
        }
    }

    /// Checks that the link answers; if not, it is lost.
    async fn probe(&mut self) {
        if let Err(e) = self.remote.ping().await {
            self.on_redis_error(&e);
        }
    }

    fn on_push(&mut self, push: PushInfo) {
        match push.kind {
            PushKind::Disconnection => self.disconnected(),
            // The probe channel is not sequenced: only the events channel's matters.
            PushKind::Subscribe if self.is_events_channel(&push.data) => self.link.subscribed(),
            PushKind::Message => match wire::decode_push(push.data, self.remote.keys()) {
                Some(Push::Event(event)) => self.on_message(event),
                Some(Push::Probe(Some(message))) => self.on_probe(message),
                Some(Push::Probe(None)) => self.counters.malformed(),
                None => {} // Another channel's.
            },
            _ => {}
        }
    }

    fn is_events_channel(&self, data: &[redis::Value]) -> bool {
        let channel = self.remote.channel().as_bytes();
        matches!(data.first(), Some(redis::Value::BulkString(c)) if *c == channel)
    }

    fn on_message(&mut self, decoded: Result<wire::Message, Reject>) {
        match decoded {
            Ok(message) => {
                if !self.link.in_sequence(message.at, &self.counters) {
                    return;
                }
                if self.clock.message_late(message.entry.now_ms) {
                    // Its lease would count from now: a snapshot tells what still stands.
                    return self.stalled();
                }
                self.inbound.apply(message);
            }
            Err(Reject::Malformed) => self.counters.malformed(),
            Err(Reject::UnknownVersion { version, at }) => {
                // It may have changed an entry: the keys, which every version reads alike,
                // tell which (unless the last snapshot already covers it).
                self.counters.unknown_version(version);
                self.link.unreadable(at);
            }
            Err(Reject::Invalid(at)) => {
                if self.link.in_sequence(at, &self.counters) {
                    self.counters
                        .invalid("an invalid name, key, instance or level");
                }
            }
        }
    }

    /// Handles a local event and whatever other local events are ready, publishing the
    /// net change.
    async fn on_local(&mut self, first: SignalEvent) {
        let touched = self
            .outbound
            .collect(first, &mut self.local, &mut self.inbound);
        for id in self.outbound.take_returned() {
            let _ = self.probe_outbox.send(self.lender.returned(id));
        }
        if touched.is_empty() || !self.link.is_up() {
            return; // The next full sync publishes the own entries as they are then.
        }
        let published = self
            .outbound
            .publish(touched, &self.inbound, &mut self.remote)
            .await;
        if let Err(e) = published {
            self.on_redis_error(&e);
        }
    }

    /// Re-reads the own entries from the sink and publishes all of them (renewing their
    /// leases), removing this instance's other entries from Redis.
    async fn renew(&mut self) {
        let local = self.outbound.reread(&self.inbound);
        self.lender.prune(|id| Outbound::is_half_open(&local, id));
        if !self.link.is_up() {
            return;
        }
        if let Err(e) = self.outbound.publish_all(local, &mut self.remote).await {
            self.on_redis_error(&e);
        }
    }

    /// Handles the pushes already waiting (the coming snapshot covers their events, and
    /// one that makes the link stale again is folded into this resync), then, after a
    /// (re)subscription, publishes every own entry, then replaces the mirrors with a fresh
    /// snapshot; one of a new epoch re-publishes the own entries after it. If Redis answers
    /// with an error or an unreadable snapshot, the resync is retried with backoff (the
    /// status stays `Resyncing`).
    async fn resync(&mut self) {
        self.drain_pushes();
        if !self.link.resync_due() {
            return; // Lost meanwhile, or stale again with a later start.
        }
        let republish = self.link.resyncing();
        Counters::bump(&self.counters.resyncs);
        if republish {
            self.renew().await;
            if !self.link.is_up() {
                return;
            }
        }
        let fields = match self.remote.snapshot().await {
            Ok(fields) => fields,
            Err(e) => return self.on_redis_error(&e),
        };
        let Some((at, redis_ms, entries)) = wire::decode_snapshot(&fields) else {
            self.counters.malformed();
            return self.link.resync_failed();
        };
        self.clock.snapshot_read(redis_ms);
        let new_epoch = self.link.is_new_epoch(at);
        self.inbound.load(entries, new_epoch);
        self.link.synced(at);
        self.inbound.ask_again();
        if new_epoch && !republish {
            self.renew().await; // Redis restarted empty or was flushed.
        }
    }

    /// Handles the pushes that are waiting now (at most [`DRAIN`]).
    fn drain_pushes(&mut self) {
        for _ in 0..DRAIN {
            match self.pushes.try_recv() {
                Ok(push) => self.on_push(push),
                Err(_) => return,
            }
        }
    }

    /// A probe message for this process (or for all): to the lender if it is about an own
    /// verdict, to the mirrored verdict's source if it answers a claim.
    fn on_probe(&mut self, message: ProbeMessage) {
        let me: &str = self.outbound.instance();
        let for_me = message.to.as_deref().is_none_or(|to| to == me);
        if !for_me || &*message.from == me {
            return;
        }
        let from = Arc::clone(&message.from);
        match message.op {
            ProbeOp::Claim => {
                let id: EntryId = (Arc::clone(&message.name), message.key.clone());
                let answer = self.lender.claim(&message, self.outbound.is_own(&id));
                let _ = self.probe_outbox.send(answer);
            }
            ProbeOp::Finished { failed, elapsed } => {
                self.lender
                    .settle(&from, message.loan, Some((failed, elapsed)));
            }
            ProbeOp::GiveBack => self.lender.settle(&from, message.loan, None),
            ProbeOp::Grant | ProbeOp::Deny | ProbeOp::Available => self.on_answer(message),
        }
    }

    /// The owner of a mirrored verdict answered a claim, or announced a probe came back.
    fn on_answer(&mut self, message: ProbeMessage) {
        let asking = self
            .inbound
            .asking(&message.from, &message.name, message.key.as_deref());
        let wake = match (message.op, &asking) {
            (ProbeOp::Grant, Some(asking)) => asking.granted(message.request, message.loan),
            (ProbeOp::Deny, Some(asking)) => {
                asking.denied(message.request);
                false
            }
            (ProbeOp::Available, Some(asking)) => asking.may_ask_again(),
            _ => false,
        };
        if wake {
            self.inbound.wake(&message.name);
        } else if message.op == ProbeOp::Grant {
            // Nobody here asked for it (any more): the owner gets it back at once.
            let back = ProbeMessage {
                op: ProbeOp::GiveBack,
                from: Arc::clone(self.outbound.instance()),
                to: Some(Arc::clone(&message.from)),
                request: 0,
                ..message
            };
            let _ = self.probe_outbox.send(back);
        }
    }

    /// Publishes a probe message, if the link is up (a claim lost with the link is asked
    /// again after the resync).
    async fn send_probe(&mut self, message: ProbeMessage) {
        let sent = if self.link.is_up() {
            let published = self.remote.publish_probe(message.encode()).await;
            published.map_err(|e| self.on_redis_error(&e)).is_ok()
        } else {
            false
        };
        if !sent && message.op == ProbeOp::Grant {
            // A loan nobody will hear of would hold the breaker's probe until its
            // `probe_timeout`: it goes back at once.
            if let Some(to) = &message.to {
                self.lender.settle(to, message.loan, None);
            }
        }
    }

    /// A Redis call failed: if Redis answered (with an error), the link stays up and resyncs
    /// with backoff; otherwise the connection is lost.
    fn on_redis_error(&mut self, error: &redis::RedisError) {
        let answered = answered(error);
        self.counters.redis_error(error, answered);
        if wire::denied(error) && self.refused.is_none() {
            self.refused = Some(error.clone());
        }
        if answered {
            self.link.resync_failed();
        } else {
            self.disconnected();
        }
    }

    fn disconnected(&mut self) {
        if self.link.lost() {
            let policy = self.inbound.policy();
            tracing::warn!(channel = %self.remote.channel(), policy = ?policy, "lost the connection to Redis");
            self.inbound.disconnected();
        }
    }

    /// On shutdown: retract own entries from Redis, mirrors from the sink.
    async fn leave(&mut self) {
        if !self.link.is_down() {
            self.outbound.leave(&mut self.remote, LEAVE_TIMEOUT).await;
        }
        self.inbound.clear();
    }
}
