//! Inbound: other processes' entries, mirrored into the local sink.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use backpressure::{Level, Pattern, Phase, RaiseOptions, Sink};
use tokio::time::Instant;

use super::probes::{Asking, Outbox};
use super::stats::Counters;
use crate::config::{Config, OnDisconnect};
use crate::wire::{self, Message, Op, RemoteEntry};

/// A (name, key) pair of the local sink.
pub(super) type EntryId = (Arc<str>, Option<Arc<str>>);

/// A remote entry mirrored into the local sink.
#[derive(Debug, Clone)]
struct Mirror {
    /// When its lease ends in Redis (local clock estimate).
    expires_at: Instant,
    /// Kept from an older epoch of the counter (Redis restarted empty or was flushed) and
    /// not seen since: a snapshot without it does not drop it before `expires_at`, since its
    /// owner re-publishes within lease / 3 ([`Inbound::load`]).
    carried: bool,
    /// While it is a half-open verdict: its probe source, which asks its owner. Kept while
    /// the entry is renewed in the same phase, so a claim in flight stays its.
    asking: Option<Arc<Asking>>,
}

/// The mirrored entries of the other instances of the namespace.
///
/// Mirrors carry their remaining lease as local TTL, except under
/// [`OnDisconnect::HoldUntilReconnect`]: there a mirror has no local TTL (a silent outage
/// must not let it lapse before the bridge knows the link is dead), and the bridge retracts
/// it once its lease has ended *and* the link has answered since ([`lapse`](Self::lapse)),
/// proving that no renewal is on its way.
#[derive(Debug)]
pub(super) struct Inbound {
    sink: Sink,
    share: Pattern,
    /// This process's instance: its own entries are never mirrored.
    instance: Arc<str>,
    max_remote_lease: Duration,
    policy: OnDisconnect,
    counters: Arc<Counters>,
    /// Where the probe sources of mirrored half-open verdicts send their claims.
    outbox: Outbox,
    /// Other processes' entries mirrored locally, by local (name, `instance/key`). Only
    /// these are mirrors: any other entry of the sink is this process's own, whatever its
    /// key looks like, and no remote message or snapshot entry may replace or retract it.
    mirrors: HashMap<EntryId, Mirror>,
    /// The sink's own entries as last read, and when ([`names_own`](Self::names_own)).
    own: Option<(Instant, HashSet<EntryId>)>,
}

/// How long the own entries read from the sink answer [`Inbound::names_own`] (unless a
/// local event comes first): a flood of remote entries costs one read of the sink per
/// period, not one each.
const OWN_FRESH: Duration = Duration::from_millis(10);

impl Inbound {
    pub(super) fn new(
        sink: Sink,
        share: Pattern,
        instance: Arc<str>,
        config: &Config,
        counters: Arc<Counters>,
        outbox: Outbox,
    ) -> Self {
        Self {
            sink,
            share,
            instance,
            max_remote_lease: config.max_remote_lease,
            policy: config.on_disconnect,
            counters,
            outbox,
            mirrors: HashMap::new(),
            own: None,
        }
    }

    /// What happens to the mirrors when the connection is lost.
    pub(super) fn policy(&self) -> OnDisconnect {
        self.policy
    }

    /// Whether a local entry is a mirror of another instance's entry (and not an own one).
    pub(super) fn is_mirror(&self, id: &EntryId) -> bool {
        self.mirrors.contains_key(id)
    }

    /// Forgets a mirrored entry that left the local sink (a local retract, or its TTL).
    pub(super) fn forget(&mut self, id: &EntryId) {
        self.mirrors.remove(id);
    }

    /// A local entry changed (an own one, or one of unknown origin): the own entries must be
    /// read again.
    pub(super) fn local_changed(&mut self) {
        self.own = None;
    }

    /// Whether `id`, named by a remote entry, is one of this process's own entries (a
    /// forgery, or an instance id equal to a local key): then it is refused and counted.
    /// The own entries are read from the sink (every entry that is not a mirror) when the
    /// name is raised, at most every [`OWN_FRESH`] unless a local event came meanwhile.
    fn names_own(&mut self, id: &EntryId) -> bool {
        if self.mirrors.contains_key(id) || !self.sink.is_raised(&id.0) {
            return false;
        }
        let now = Instant::now();
        if !matches!(&self.own, Some((at, _)) if now < *at + OWN_FRESH) {
            let mirrors = &self.mirrors;
            let ids = self.sink.snapshot().into_iter().map(|s| (s.name, s.key));
            let own = ids.filter(|id| !mirrors.contains_key(id)).collect();
            self.own = Some((now, own));
        }
        let is_own = self.own.as_ref().is_some_and(|(_, own)| own.contains(id));
        if is_own {
            self.counters.forged(&id.0);
        }
        is_own
    }

    /// Whether a remote entry is another instance's, of a shared name.
    fn wanted(&self, entry: &RemoteEntry) -> bool {
        *entry.instance != *self.instance && self.share.matches(&entry.name)
    }

    /// Applies a message that came in sequence.
    pub(super) fn apply(&mut self, message: Message) {
        let entry = &message.entry;
        if !self.wanted(entry) {
            return;
        }
        match message.op {
            Op::Raise => match self.acceptable(entry) {
                Some(remaining) => {
                    if let Some((id, mirror)) = self.mirror(entry, remaining) {
                        self.mirrors.insert(id, mirror);
                    }
                }
                None => self.unmirror(entry),
            },
            Op::Retract => self.unmirror(entry),
        }
    }

    /// Replaces the mirrors with the entries of a snapshot; one of a `new_epoch` (Redis
    /// restarted empty, or was flushed, since the last) keeps the mirrors it lacks until
    /// their lease ends ([`replace`](Self::replace)): their owners may not have re-published
    /// yet.
    pub(super) fn load(
        &mut self,
        entries: impl Iterator<Item = Result<RemoteEntry, &'static str>>,
        new_epoch: bool,
    ) {
        let mut fresh = HashMap::new();
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(what) => {
                    self.counters.invalid(what);
                    continue;
                }
            };
            if !self.wanted(&entry) {
                continue;
            }
            let Some(remaining) = self.acceptable(&entry) else {
                continue;
            };
            if let Some((id, mirror)) = self.mirror(&entry, remaining) {
                fresh.insert(id, mirror);
            }
        }
        self.replace(fresh, new_epoch);
    }

    /// The remaining lease of a remote entry, if it is still live and not absurd.
    fn acceptable(&self, entry: &RemoteEntry) -> Option<Duration> {
        let remaining = entry.remaining()?;
        if remaining > self.max_remote_lease {
            self.counters.absurd(&entry.name, remaining);
            return None;
        }
        Some(remaining)
    }

    /// Raises a remote entry in the local sink for `remaining`, unless its local id is an
    /// own entry's ([`names_own`](Self::names_own)); the caller records it.
    fn mirror(&mut self, entry: &RemoteEntry, remaining: Duration) -> Option<(EntryId, Mirror)> {
        let key = wire::mirror_key(&entry.instance, entry.key.as_deref());
        let id: EntryId = (Arc::clone(&entry.name), Some(key.as_str().into()));
        if self.names_own(&id) {
            return None;
        }
        // `entry_from_parts` has checked the level is at most 1000.
        let level = Level::from_per_mille(entry.level);
        let now = Instant::now();
        let mut options = RaiseOptions::new().key(key.as_str()).level(level);
        if self.policy != OnDisconnect::HoldUntilReconnect {
            options = options.ttl(remaining);
        }
        let asking = self.asking_for(&id, entry);
        if let Some(phase) = entry.phase {
            options = options.phase(phase);
        }
        if let Some(asking) = &asking {
            options = options.probe_source(Arc::clone(asking) as _);
        }
        match self.sink.raise_with(&entry.name, options) {
            Ok(()) => {
                Counters::bump(&self.counters.applied);
                let mirror = Mirror {
                    expires_at: now + remaining,
                    carried: false,
                    asking,
                };
                Some((id, mirror))
            }
            Err(_) => {
                self.counters
                    .invalid("a key too long once prefixed by its instance");
                None
            }
        }
    }

    /// The probe source for a mirror of `entry` if it is half-open: the mirror's current one
    /// if it was half-open already, else a new one.
    fn asking_for(&self, id: &EntryId, entry: &RemoteEntry) -> Option<Arc<Asking>> {
        if entry.phase != Some(Phase::HalfOpen) {
            return None;
        }
        if let Some(asking) = self.mirrors.get(id).and_then(|m| m.asking.clone()) {
            if asking.renewed() {
                // An answer was lost: held workers look, and ask, again.
                self.sink.probes_available(&entry.name);
            }
            return Some(asking);
        }
        let verdict = (Arc::clone(&entry.name), entry.key.clone());
        let owner = Arc::clone(&entry.instance);
        let me = Arc::clone(&self.instance);
        Some(Arc::new(Asking::new(
            owner,
            verdict,
            me,
            self.outbox.clone(),
        )))
    }

    /// The probe source of the mirror of `owner`'s half-open verdict `(name, key)`.
    pub(super) fn asking(
        &self,
        owner: &str,
        name: &Arc<str>,
        key: Option<&str>,
    ) -> Option<Arc<Asking>> {
        let id: EntryId = (Arc::clone(name), Some(wire::mirror_key(owner, key).into()));
        self.mirrors.get(&id)?.asking.clone()
    }

    /// Held workers of `name` look again: a probe was granted or may be asked for.
    pub(super) fn wake(&self, name: &str) {
        self.sink.probes_available(name);
    }

    /// After a resync: every mirrored half-open verdict may be asked again (a claim or its
    /// answer may have been lost with the link); held workers look again.
    pub(super) fn ask_again(&self) {
        for ((name, _), mirror) in &self.mirrors {
            if mirror.asking.as_ref().is_some_and(|a| a.may_ask_again()) {
                self.sink.probes_available(name);
            }
        }
    }

    /// Retracts the mirror of a remote entry, if it is one (an own entry of the same local
    /// id stays: [`names_own`](Self::names_own)).
    fn unmirror(&mut self, entry: &RemoteEntry) {
        let key = wire::mirror_key(&entry.instance, entry.key.as_deref());
        let id: EntryId = (Arc::clone(&entry.name), Some(key.into()));
        if self.mirrors.remove(&id).is_none() {
            self.names_own(&id);
            return;
        }
        Counters::bump(&self.counters.applied);
        if let (name, Some(key)) = &id {
            let _ = self.sink.retract_keyed(name, key);
        }
    }

    /// Replaces the mirrors with `fresh`, retracting from the sink those not in it, except
    /// (unless the policy is `Drop`) a mirror `fresh` lacks whose lease still runs, if the
    /// snapshot is of a `new_epoch` or the mirror was carried over from an older one: it is
    /// kept (carried) until its lease ends, as if the link were down.
    fn replace(&mut self, mut fresh: HashMap<EntryId, Mirror>, new_epoch: bool) {
        let keep = self.policy != OnDisconnect::Drop;
        let now = Instant::now();
        let old = std::mem::take(&mut self.mirrors);
        for (id, mirror) in old {
            if fresh.contains_key(&id) {
                continue;
            }
            if keep && (new_epoch || mirror.carried) && mirror.expires_at > now {
                let carried = Mirror {
                    carried: true,
                    ..mirror
                };
                fresh.insert(id, carried);
            } else if let (name, Some(key)) = &id {
                let _ = self.sink.retract_keyed(name, key);
            }
        }
        self.mirrors = fresh;
    }

    /// Retracts every mirrored entry from the sink.
    pub(super) fn clear(&mut self) {
        for ((name, key), _) in std::mem::take(&mut self.mirrors) {
            if let Some(key) = key {
                let _ = self.sink.retract_keyed(&name, &key);
            }
        }
    }

    /// Applies the disconnect policy to the mirrors. (`HoldUntilReconnect` mirrors have no
    /// local TTL: they stay until a snapshot after the reconnect says which still stand.)
    pub(super) fn disconnected(&mut self) {
        match self.policy {
            OnDisconnect::KeepUntilLeaseEnds | OnDisconnect::HoldUntilReconnect => {}
            OnDisconnect::Drop => self.clear(),
        }
    }

    /// Under `HoldUntilReconnect`, when the first mirror's lease ends (it then lapses once
    /// the link has answered a call sent after that moment).
    pub(super) fn next_lapse(&self) -> Option<Instant> {
        if self.policy != OnDisconnect::HoldUntilReconnect {
            return None;
        }
        self.mirrors.values().map(|m| m.expires_at).min()
    }

    /// Under `HoldUntilReconnect`, retracts the mirrors whose lease ended by `confirmed`, the
    /// send time of a call the link answered (with every message published before it
    /// received and applied: none renewed them).
    pub(super) fn lapse(&mut self, confirmed: Instant) {
        if self.policy != OnDisconnect::HoldUntilReconnect {
            return;
        }
        let sink = &self.sink;
        self.mirrors.retain(|(name, key), mirror| {
            if mirror.expires_at > confirmed {
                return true;
            }
            if let Some(key) = key {
                let _ = sink.retract_keyed(name, key);
            }
            false
        });
    }
}
