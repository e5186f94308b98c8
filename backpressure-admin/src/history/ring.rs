//! The ring itself: spans (a signal entry while it was raised at one level and phase; a
//! worker while its gate was held, limited, paused or held by a quota), policy changes, and one sample per
//! second per worker, all within the window and the transition cap.
//!
//! Bounds: at most `window / 1 s` samples per worker; at most `max_transitions` spans and
//! policy changes together, the oldest closed one dropped first. A span still open (a signal
//! active now, a gate held now) is never dropped, so on top of the cap there is at most one
//! open span per active signal entry and one per worker. [`Ring::bytes`] measures what is
//! held, [`Ring::max_bytes`] states the bound it stays within.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::mem::size_of;
use std::sync::Arc;
use std::time::Duration;

use backpressure::policy::PolicyChange;
use backpressure::{ActiveSignal, Phase, SignalEvent, SignalEventKind, Stats, MAX_NAME_LEN};
use tokio::time::Instant;

use super::clock::Clock;
pub(crate) use super::samples::{Sample, Samples};

/// How often each worker is sampled.
pub(crate) const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// A gate span names at most this many of the signals that hold it (and how many there were).
pub(crate) const MAX_BY: usize = 4;
/// The text one span or policy change holds at most: up to [`MAX_BY`] names of at most
/// [`MAX_NAME_LEN`] bytes, with their pointers (a signal span: a name and a key).
const MAX_TEXT: usize = MAX_BY * (MAX_NAME_LEN + size_of::<Arc<str>>());

/// How much history a router keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// How far back samples and closed spans are kept.
    pub(crate) window: Duration,
    /// Spans and policy changes kept at most (open spans aside).
    pub(crate) max_transitions: usize,
}

impl Limits {
    /// Samples kept per worker.
    pub(crate) fn samples_per_worker(&self) -> usize {
        usize::try_from(self.window.as_secs() / SAMPLE_EVERY.as_secs()).unwrap_or(usize::MAX)
    }
}

/// A stretch of time during which one thing stayed the same.
#[derive(Debug, Clone)]
pub(crate) struct Span {
    pub(crate) id: u64,
    pub(crate) rev: u64,
    pub(crate) start_ms: u64,
    pub(crate) end_ms: Option<u64>,
    pub(crate) what: What,
}

/// What a span is about.
#[derive(Debug, Clone)]
pub(crate) enum What {
    Signal(SignalSpan),
    Gate(GateSpan),
}

/// A signal entry raised at one level and phase.
#[derive(Debug, Clone)]
pub(crate) struct SignalSpan {
    pub(crate) sink: Arc<str>,
    pub(crate) name: Arc<str>,
    pub(crate) key: Option<Arc<str>>,
    pub(crate) level: f64,
    pub(crate) phase: Option<Phase>,
    /// The policy whose verdict it is (`error_rate`, `adaptive`, ...), if it is one.
    pub(crate) policy: Option<&'static str>,
    /// How it ended: retracted, expired, or changed level or phase.
    pub(crate) ended: Option<SignalEventKind>,
}

/// A worker's gate while it was not open.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GateSpan {
    pub(crate) worker: Arc<str>,
    /// `held`, `limited`, `paused`, `rate` or `permits` (see [`crate::model::gate`]).
    pub(crate) state: &'static str,
    pub(crate) level: Option<f64>,
    /// The first [`MAX_BY`] signals holding it.
    pub(crate) by: Vec<Arc<str>>,
    /// How many signals held it.
    pub(crate) by_total: usize,
}

/// A worker's gate as it is now.
#[derive(Debug, Clone)]
pub(crate) struct GateNow {
    pub(crate) worker: String,
    /// `open`, `held`, `limited`, `paused`, `rate` or `permits`.
    pub(crate) state: &'static str,
    pub(crate) level: Option<f64>,
    pub(crate) by: Vec<String>,
}

/// A policy's state change.
#[derive(Debug, Clone)]
pub(crate) struct Mark {
    pub(crate) id: u64,
    pub(crate) rev: u64,
    pub(crate) at_ms: u64,
    pub(crate) sink: Arc<str>,
    pub(crate) signal: Arc<str>,
    pub(crate) worker: Option<Arc<str>>,
    pub(crate) change: PolicyChange,
}

type EntryKey = (Arc<str>, Arc<str>, Option<Arc<str>>);

/// The history's data.
#[derive(Debug)]
pub(crate) struct Ring {
    pub(crate) limits: Limits,
    rev: u64,
    /// The revision of the last change worth telling a stream about (a sample equal to the
    /// one before is not).
    news: u64,
    /// The highest revision of a span or policy change dropped: a client that has not seen
    /// it cannot be answered with an increment.
    dropped: u64,
    next_id: u64,
    pub(crate) spans: VecDeque<Span>,
    pub(crate) marks: VecDeque<Mark>,
    pub(crate) workers: BTreeMap<Arc<str>, Samples>,
    open_signals: HashMap<EntryKey, u64>,
    open_gates: HashMap<Arc<str>, u64>,
}

impl Ring {
    pub(crate) fn new(limits: Limits) -> Self {
        Self {
            limits,
            rev: 0,
            news: 0,
            dropped: 0,
            next_id: 1,
            spans: VecDeque::new(),
            marks: VecDeque::new(),
            workers: BTreeMap::new(),
            open_signals: HashMap::new(),
            open_gates: HashMap::new(),
        }
    }

    /// Grows with every change.
    pub(crate) fn revision(&self) -> u64 {
        self.rev
    }

    /// The revision of the last change that is news: anything but samples equal to the ones
    /// before (an idle runtime's), which a page can carry forward by itself.
    pub(crate) fn news(&self) -> u64 {
        self.news
    }

    /// The highest revision of what was dropped (by the cap or the window): a `since` below
    /// it missed the last state of something no longer held.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Records one event of `sink`; `policy` names the policy whose verdict it is, if any.
    pub(crate) fn on_event(
        &mut self,
        clock: &Clock,
        sink: &Arc<str>,
        event: &SignalEvent,
        policy: Option<&'static str>,
    ) {
        let at_ms = clock.ms(event.at);
        let key: EntryKey = (Arc::clone(sink), Arc::clone(&event.name), event.key.clone());
        match event.kind {
            SignalEventKind::Raised | SignalEventKind::LevelChanged => {
                self.close_signal(&key, at_ms, Some(SignalEventKind::LevelChanged));
                let span = SignalSpan {
                    sink: key.0.clone(),
                    name: key.1.clone(),
                    key: key.2.clone(),
                    level: event.level.as_f64(),
                    phase: event.phase,
                    policy,
                    ended: None,
                };
                self.open_signal(key, at_ms, span);
            }
            SignalEventKind::Retracted | SignalEventKind::Expired => {
                self.close_signal(&key, at_ms, Some(event.kind));
            }
            SignalEventKind::PolicyChanged => {
                if let Some(change) = event.policy {
                    self.mark(at_ms, key, change);
                }
            }
            _ => {}
        }
        self.evict();
    }

    /// Brings the open spans of `sink` in line with its `active` entries (at the start, and
    /// after a subscription fell behind): what is gone closes `now`, what is new opens at
    /// its raise.
    pub(crate) fn reconcile(
        &mut self,
        clock: &Clock,
        sink: &Arc<str>,
        active: &[ActiveSignal],
        now: Instant,
        policy: impl Fn(&ActiveSignal) -> Option<&'static str>,
    ) {
        let now_ms = clock.ms(now);
        let stale: Vec<EntryKey> = self
            .open_signals
            .keys()
            .filter(|(s, name, key)| {
                s == sink
                    && !active.iter().any(|a| {
                        a.name == *name
                            && a.key == *key
                            && self.same_level(&(s.clone(), name.clone(), key.clone()), a)
                    })
            })
            .cloned()
            .collect();
        for key in stale {
            self.close_signal(&key, now_ms, None);
        }
        for entry in active {
            let key: EntryKey = (sink.clone(), entry.name.clone(), entry.key.clone());
            if self.open_signals.contains_key(&key) {
                continue;
            }
            let span = SignalSpan {
                sink: sink.clone(),
                name: entry.name.clone(),
                key: entry.key.clone(),
                level: entry.level.as_f64(),
                phase: entry.phase,
                policy: policy(entry),
                ended: None,
            };
            self.open_signal(key, clock.ms(entry.raised_at).min(now_ms), span);
        }
        self.evict();
    }

    fn same_level(&self, key: &EntryKey, active: &ActiveSignal) -> bool {
        let span = self.open_signals.get(key).and_then(|id| self.span(*id));
        match span.map(|s| &s.what) {
            Some(What::Signal(s)) => s.level == active.level.as_f64() && s.phase == active.phase,
            _ => false,
        }
    }

    /// Records the gates as they are `at`: a span opens when a gate closes or changes, and
    /// closes when it opens again.
    pub(crate) fn observe_gates(&mut self, clock: &Clock, gates: &[GateNow], at: Instant) {
        let at_ms = clock.ms(at);
        for gate in gates {
            let worker = self.intern(&gate.worker);
            let open = self.open_gates.get(&worker).copied();
            let current = open
                .and_then(|id| self.span(id))
                .and_then(|s| match &s.what {
                    What::Gate(g) => Some(g.clone()),
                    What::Signal(_) => None,
                });
            let wanted = (gate.state != "open").then(|| GateSpan {
                worker: worker.clone(),
                state: gate.state,
                level: gate.level,
                by: gate
                    .by
                    .iter()
                    .take(MAX_BY)
                    .map(|s| Arc::from(s.as_str()))
                    .collect(),
                by_total: gate.by.len(),
            });
            if current == wanted {
                continue;
            }
            if let Some(id) = open {
                self.open_gates.remove(&worker);
                self.close(id, at_ms);
            }
            if let Some(span) = wanted {
                let id = self.push_span(at_ms, What::Gate(span));
                self.open_gates.insert(worker, id);
            }
        }
        self.evict();
    }

    /// One sample of each worker, `now`.
    pub(crate) fn sample<'a>(
        &mut self,
        clock: &Clock,
        workers: impl IntoIterator<Item = (&'a str, &'a Stats)>,
        now: Instant,
    ) {
        self.rev += 1;
        let rev = self.rev;
        let at_ms = clock.ms(now);
        let cap = self.limits.samples_per_worker();
        for (name, stats) in workers {
            let name = self.intern(name);
            let samples = self.workers.entry(name).or_default();
            if samples.push((rev, at_ms), stats, now, cap) {
                self.news = rev;
            }
        }
    }

    /// Drops what ended before the window that ends `now`.
    pub(crate) fn prune(&mut self, clock: &Clock, now: Instant) {
        let cutoff = clock
            .ms(now)
            .saturating_sub(super::clock::millis(self.limits.window));
        let mut dropped = self.dropped;
        self.spans.retain(|s| {
            let keep = s.end_ms.is_none_or(|end| end >= cutoff);
            if !keep {
                dropped = dropped.max(s.rev);
            }
            keep
        });
        while self.marks.front().is_some_and(|m| m.at_ms < cutoff) {
            self.drop_mark();
        }
        self.dropped = dropped;
        for samples in self.workers.values_mut() {
            while samples.samples.front().is_some_and(|s| s.at_ms < cutoff) {
                samples.samples.pop_front();
            }
        }
    }

    /// The bytes held now: every collection's allocation and the text of each item.
    pub(crate) fn bytes(&self) -> usize {
        let spans: usize = self.spans.iter().map(span_text).sum();
        let marks: usize = self.marks.iter().map(|m| m.signal.len()).sum();
        let samples: usize = self
            .workers
            .iter()
            .map(|(name, s)| name.len() + s.samples.capacity() * size_of::<Sample>())
            .sum();
        size_of::<Self>()
            + self.spans.capacity() * size_of::<Span>()
            + spans
            + self.marks.capacity() * size_of::<Mark>()
            + marks
            + self.workers.len() * size_of::<(Arc<str>, Samples)>() * 2
            + samples
            + self.open_signals.capacity() * (size_of::<(EntryKey, u64)>() + 1)
            + self.open_gates.capacity() * (size_of::<(Arc<str>, u64)>() + 1)
    }

    /// The bound [`bytes`](Self::bytes) stays within with `workers` workers whose names add
    /// up to `names` bytes, and `open` spans open beyond the cap.
    pub(crate) fn max_bytes(&self, workers: usize, names: usize) -> usize {
        // A deque's allocation grows by doubling, to the power of two above what it holds.
        let slots = |n: usize| n.next_power_of_two();
        let items = self.limits.max_transitions;
        let open = self.open_signals.len() + self.open_gates.len();
        let index = |n: usize, entry: usize| slots(n.max(1)) * 2 * (entry + 1);
        size_of::<Self>()
            + slots(items + open) * size_of::<Span>()
            + slots(items) * size_of::<Mark>()
            + (items + open) * MAX_TEXT
            + workers
                * (slots(self.limits.samples_per_worker() + 1) * size_of::<Sample>()
                    + 2 * size_of::<(Arc<str>, Samples)>())
            + names
            + index(self.open_signals.len(), size_of::<(EntryKey, u64)>())
            + index(
                self.open_gates.len().max(workers),
                size_of::<(Arc<str>, u64)>(),
            )
    }

    fn intern(&mut self, name: &str) -> Arc<str> {
        if let Some((known, _)) = self.workers.get_key_value(name) {
            return known.clone();
        }
        let name: Arc<str> = Arc::from(name);
        self.workers.insert(name.clone(), Samples::default());
        name
    }

    fn open_signal(&mut self, key: EntryKey, at_ms: u64, span: SignalSpan) {
        let id = self.push_span(at_ms, What::Signal(span));
        self.open_signals.insert(key, id);
    }

    fn close_signal(&mut self, key: &EntryKey, at_ms: u64, ended: Option<SignalEventKind>) {
        let Some(id) = self.open_signals.remove(key) else {
            return;
        };
        if let Some(span) = self.span_mut(id) {
            if let What::Signal(signal) = &mut span.what {
                signal.ended = ended;
            }
        }
        self.close(id, at_ms);
    }

    fn close(&mut self, id: u64, at_ms: u64) {
        self.rev += 1;
        self.news = self.rev;
        let rev = self.rev;
        if let Some(span) = self.span_mut(id) {
            span.end_ms = Some(at_ms.max(span.start_ms));
            span.rev = rev;
        }
    }

    fn push_span(&mut self, start_ms: u64, what: What) -> u64 {
        self.make_room();
        self.rev += 1;
        self.news = self.rev;
        let id = self.next_id;
        self.next_id += 1;
        self.spans.push_back(Span {
            id,
            rev: self.rev,
            start_ms,
            end_ms: None,
            what,
        });
        id
    }

    fn mark(&mut self, at_ms: u64, key: EntryKey, change: PolicyChange) {
        self.make_room();
        self.rev += 1;
        self.news = self.rev;
        let id = self.next_id;
        self.next_id += 1;
        let worker = key.2.as_deref().map(|w| self.intern_existing(w));
        self.marks.push_back(Mark {
            id,
            rev: self.rev,
            at_ms,
            sink: key.0,
            signal: key.1,
            worker: worker.flatten(),
            change,
        });
    }

    /// A known worker's interned name (a policy's key is its worker's name).
    fn intern_existing(&self, name: &str) -> Option<Arc<str>> {
        self.workers.get_key_value(name).map(|(k, _)| k.clone())
    }

    /// Drops the oldest closed spans and policy changes beyond the cap, and gives back the
    /// room that bars open in a burst took once they closed (what `max_bytes` allows for).
    fn evict(&mut self) {
        self.evict_to(self.limits.max_transitions);
        let open = self.open_signals.len() + self.open_gates.len();
        if self.spans.capacity() > (self.limits.max_transitions + open).next_power_of_two() {
            self.spans
                .shrink_to(self.spans.len().max(1).next_power_of_two());
        }
        let roomy = |capacity: usize, len: usize| capacity > 2 * len.max(1).next_power_of_two();
        if roomy(self.open_signals.capacity(), self.open_signals.len()) {
            self.open_signals.shrink_to(self.open_signals.len());
        }
        if roomy(self.open_gates.capacity(), self.open_gates.len()) {
            self.open_gates.shrink_to(self.open_gates.len());
        }
    }

    /// Before one more: drops down to one under the cap, so that the deques never grow past
    /// it (a deque doubles its allocation when full).
    fn make_room(&mut self) {
        self.evict_to(self.limits.max_transitions.saturating_sub(1));
    }

    fn evict_to(&mut self, max: usize) {
        while self.spans.len() + self.marks.len() > max {
            let closed = self.spans.iter().position(|s| s.end_ms.is_some());
            let span_id = closed.map(|i| self.spans[i].id);
            let mark_id = self.marks.front().map(|m| m.id);
            match (span_id, mark_id) {
                (Some(s), Some(m)) if m < s => self.drop_mark(),
                (Some(_), _) => {
                    if let Some(span) = self.spans.remove(closed.unwrap_or_default()) {
                        self.dropped = self.dropped.max(span.rev);
                    }
                }
                (None, Some(_)) => self.drop_mark(),
                (None, None) => break,
            }
        }
    }

    fn drop_mark(&mut self) {
        if let Some(mark) = self.marks.pop_front() {
            self.dropped = self.dropped.max(mark.rev);
        }
    }

    fn span(&self, id: u64) -> Option<&Span> {
        let at = self.spans.binary_search_by_key(&id, |s| s.id).ok()?;
        self.spans.get(at)
    }

    fn span_mut(&mut self, id: u64) -> Option<&mut Span> {
        let at = self.spans.binary_search_by_key(&id, |s| s.id).ok()?;
        self.spans.get_mut(at)
    }
}

fn span_text(span: &Span) -> usize {
    match &span.what {
        What::Signal(s) => s.name.len() + s.key.as_deref().map_or(0, str::len),
        What::Gate(g) => {
            g.by.capacity() * size_of::<Arc<str>>() + g.by.iter().map(|s| s.len()).sum::<usize>()
        }
    }
}
