//! Outbound: this process's shared entries, published to Redis and renewed there.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use backpressure::{Level, Pattern, Phase, SignalEvent, SignalEventKind, Sink, Subscription};
use futures_util::{FutureExt, StreamExt};
use tokio::time::Instant;

use super::inbound::{EntryId, Inbound};
use super::stats::Counters;
use crate::wire::{phase_extension, Lease, Remote};

/// How many ready local events one publish round takes at most.
const BATCH: usize = 64;

/// One of this process's shared entries.
#[derive(Debug, Clone, Copy)]
struct Own {
    /// When Redis lets it expire (local clock estimate), if published.
    remote_expiry: Option<Instant>,
    /// Whether `remote_expiry` was set by the entry's local TTL rather than by the lease: if
    /// the entry's TTL is refreshed locally (which emits no event), the bridge must notice
    /// before Redis lets it expire.
    ttl_limited: bool,
}

impl Own {
    const UNPUBLISHED: Own = Own {
        remote_expiry: None,
        ttl_limited: false,
    };
}

/// One of this process's shared entries as the local sink has it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Local {
    expires_at: Option<Instant>,
    level: Level,
    phase: Option<Phase>,
}

/// This process's shared entries and when to renew them.
#[derive(Debug)]
pub(super) struct Outbound {
    sink: Sink,
    share: Pattern,
    instance: Arc<str>,
    lease: Duration,
    counters: Arc<Counters>,
    /// This process's shared entries.
    own: HashMap<EntryId, Own>,
    /// Own half-open verdicts whose probe came back since the last look
    /// ([`take_returned`](Self::take_returned)).
    returned: Vec<EntryId>,
    renew_at: Instant,
}

impl Outbound {
    pub(super) fn new(
        sink: Sink,
        share: Pattern,
        instance: Arc<str>,
        lease: Duration,
        counters: Arc<Counters>,
    ) -> Self {
        Self {
            sink,
            share,
            instance,
            lease,
            counters,
            own: HashMap::new(),
            returned: Vec::new(),
            renew_at: Instant::now() + lease / 3,
        }
    }

    /// Whether the leases are due for renewal.
    pub(super) fn renew_due(&self) -> bool {
        Instant::now() >= self.renew_at
    }

    /// When to renew, or to check an entry whose local TTL limited its lease (a little
    /// before Redis lets it expire).
    pub(super) fn next_wake(&self) -> Instant {
        let margin = (self.lease / 10).min(Duration::from_millis(100));
        self.own
            .values()
            .filter(|own| own.ttl_limited)
            .filter_map(|own| own.remote_expiry)
            .map(|at| at.checked_sub(margin).unwrap_or(at))
            .fold(self.renew_at, Instant::min)
    }

    /// Takes `first` and whatever other local events are ready (at most [`BATCH`]), and
    /// returns the own entries they touched.
    pub(super) fn collect(
        &mut self,
        first: SignalEvent,
        local: &mut Subscription,
        inbound: &mut Inbound,
    ) -> Vec<EntryId> {
        let mut touched = Vec::new();
        let mut event = Some(first);
        while let Some(e) = event.take() {
            touched.extend(self.note(e, inbound));
            if touched.len() < BATCH {
                if let Some(Some(Ok(next))) = local.next().now_or_never() {
                    event = Some(next);
                }
            }
        }
        touched
    }

    /// Records a local event; returns the entry if it is an own one.
    fn note(&mut self, e: SignalEvent, inbound: &mut Inbound) -> Option<EntryId> {
        // Whether the entry is active after the event: a raise, or a live entry re-raised
        // with another level (republished with the level the sink has now); or gone.
        // Policy changes are informational and never published; a probe that came back is
        // announced on the probe channel (if the verdict is an own, shared one).
        let active = match e.kind {
            SignalEventKind::Raised | SignalEventKind::LevelChanged => true,
            SignalEventKind::Retracted | SignalEventKind::Expired => false,
            SignalEventKind::PolicyChanged => return None,
            SignalEventKind::ProbeReturned => {
                let id: EntryId = (e.name, e.key);
                if self.own.contains_key(&id) {
                    self.returned.push(id);
                }
                return None;
            }
        };
        let id: EntryId = (e.name, e.key);
        if inbound.is_mirror(&id) {
            if !active {
                inbound.forget(&id);
            }
            return None;
        }
        if active {
            inbound.local_changed(); // Perhaps a new own entry.
        }
        if !self.share.matches(&id.0) {
            return None;
        }
        if active {
            self.own.entry(id.clone()).or_insert(Own::UNPUBLISHED);
        } else if self.own.remove(&id).is_none() {
            // Never an own entry (a mirror's late event): nothing of it is in Redis.
            return None;
        }
        Some(id)
    }

    /// Publishes the net change of the `touched` entries in one or two script calls.
    pub(super) async fn publish(
        &mut self,
        mut touched: Vec<EntryId>,
        inbound: &Inbound,
        remote: &mut Remote,
    ) -> redis::RedisResult<()> {
        touched.sort();
        touched.dedup();
        let (raised, retracted): (Vec<EntryId>, Vec<EntryId>) = touched
            .into_iter()
            .partition(|id| self.own.contains_key(id));
        if !raised.is_empty() {
            let local = self.local_own(inbound);
            // An entry already gone from the sink has a Retracted or Expired event coming,
            // which retracts it from Redis if it was published (one never published, such
            // as a mirror's late event, is no own entry).
            let own = &mut self.own;
            own.retain(|id, own| own.remote_expiry.is_some() || local.contains_key(id));
            let entries: Vec<(EntryId, Local)> = raised
                .into_iter()
                .filter_map(|id| local.get(&id).map(|now| (id, *now)))
                .collect();
            if !entries.is_empty() {
                self.publish_raises(entries, false, remote).await?;
            }
        }
        if !retracted.is_empty() {
            let entries = retracted
                .iter()
                .map(|(name, key)| (&**name, key.as_deref()));
            remote.retract(&self.instance, entries).await?;
            Counters::bump(&self.counters.published);
        }
        Ok(())
    }

    /// This process's shared entries as the sink has them now, with their local expiry and
    /// level.
    fn local_own(&self, inbound: &Inbound) -> HashMap<EntryId, Local> {
        self.sink
            .snapshot()
            .into_iter()
            .filter(|s| self.share.matches(&s.name))
            .map(|s| {
                let local = Local {
                    expires_at: s.expires_at,
                    level: s.level,
                    phase: s.phase,
                };
                ((s.name, s.key), local)
            })
            .filter(|(id, _)| !inbound.is_mirror(id))
            .collect()
    }

    /// Raises (or renews) `entries` in Redis with their current level; `full` also removes
    /// every other entry of this instance there.
    async fn publish_raises(
        &mut self,
        entries: Vec<(EntryId, Local)>,
        full: bool,
        remote: &mut Remote,
    ) -> redis::RedisResult<()> {
        let now = Instant::now();
        // Each entry with its TTL in Redis, and whether its local TTL set it.
        let planned: Vec<(EntryId, Local, Duration, bool)> = entries
            .into_iter()
            .map(|(id, local)| {
                let left = local.expires_at.map(|at| at.saturating_duration_since(now));
                match left {
                    Some(left) if left < self.lease => (id, local, left, true),
                    _ => (id, local, self.lease, false),
                }
            })
            .collect();
        let leases: Vec<Lease<'_>> = planned
            .iter()
            .map(|((name, key), local, ttl, _)| Lease {
                name,
                key: key.as_deref(),
                level: local.level.per_mille(),
                ttl_ms: ttl.as_millis().max(1) as u64,
                extensions: phase_extension(local.phase),
            })
            .collect();
        remote.sync(&self.instance, full, &leases).await?;
        Counters::bump(&self.counters.published);
        for (id, _, ttl, ttl_limited) in planned {
            if let Some(own) = self.own.get_mut(&id) {
                own.remote_expiry = Some(now + ttl);
                own.ttl_limited = ttl_limited;
            }
        }
        Ok(())
    }

    /// This process's instance.
    pub(super) fn instance(&self) -> &Arc<str> {
        &self.instance
    }

    /// Whether `id` is one of this process's shared entries (not a mirror).
    pub(super) fn is_own(&self, id: &EntryId) -> bool {
        self.own.contains_key(id)
    }

    /// The own verdicts whose probe came back since the last call.
    pub(super) fn take_returned(&mut self) -> Vec<EntryId> {
        std::mem::take(&mut self.returned)
    }

    /// Whether the own entry `id` is, as last read, a half-open verdict.
    pub(super) fn is_half_open(local: &HashMap<EntryId, Local>, id: &EntryId) -> bool {
        local
            .get(id)
            .is_some_and(|l| l.phase == Some(Phase::HalfOpen))
    }

    /// Re-reads the own entries from the sink (the next renewal is a third of a lease
    /// away); returns them for [`publish_all`](Self::publish_all).
    pub(super) fn reread(&mut self, inbound: &Inbound) -> HashMap<EntryId, Local> {
        self.renew_at = Instant::now() + self.lease / 3;
        let local = self.local_own(inbound);
        self.own.retain(|id, _| local.contains_key(id));
        for id in local.keys() {
            self.own.entry(id.clone()).or_insert(Own::UNPUBLISHED);
        }
        local
    }

    /// Publishes all own entries (renewing their leases), removing this instance's other
    /// entries from Redis.
    pub(super) async fn publish_all(
        &mut self,
        local: HashMap<EntryId, Local>,
        remote: &mut Remote,
    ) -> redis::RedisResult<()> {
        self.publish_raises(local.into_iter().collect(), true, remote)
            .await
    }

    /// Whether an entry whose local TTL limited its lease, about to expire in Redis, had
    /// its TTL refreshed locally meanwhile (a refresh emits no event) and must be
    /// republished. If none did, no entry is TTL-limited any more.
    pub(super) fn ttl_refreshed(&mut self, inbound: &Inbound) -> bool {
        let local = self.local_own(inbound);
        let refreshed = self.own.iter().any(|(id, own)| {
            own.ttl_limited
                && matches!(
                    (local.get(id).and_then(|l| l.expires_at), own.remote_expiry),
                    (Some(at), Some(remote)) if at > remote + Duration::from_millis(1)
                )
        });
        if !refreshed {
            for own in self.own.values_mut() {
                own.ttl_limited = false;
            }
        }
        refreshed
    }

    /// Retracts all own entries from Redis, bounded by `timeout` (on shutdown).
    pub(super) async fn leave(&self, remote: &mut Remote, timeout: Duration) {
        let call = remote.sync(&self.instance, true, &[]);
        let _ = tokio::time::timeout(timeout, call).await;
    }
}
