//! The task that keeps the history: it follows every watched sink's events (exact times for
//! signal bars, policy changes and the gates they move) and samples every worker once a
//! second (counters, rates, and gates that changed without an event, such as a pause).
//!
//! It holds the history weakly and ends within a second of the router being dropped.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Weak};

use backpressure::error::Lagged;
use backpressure::{ActiveSignal, Runtime, SignalEvent, WorkerInfo};
use futures_util::stream::{SelectAll, StreamExt};
use futures_util::FutureExt;
use tokio::time::{self, Instant, MissedTickBehavior};

use super::ring::{GateNow, SAMPLE_EVERY};
use super::History;
use crate::defer::DeferPatterns;
use crate::model::{gate, Shared};
use crate::sse::{subscribe, SinkEvents};

/// Starts the recorder of `shared`'s history, once, if called inside a tokio runtime (the
/// router may be built outside one; then its first request starts it).
pub(crate) fn start(shared: &Shared) {
    if tokio::runtime::Handle::try_current().is_err() || !shared.history.claim_start() {
        return;
    }
    // Subscribe before the first look at the sinks, so that nothing falls between the two.
    let events = subscribe(shared);
    let workers = shared.runtime.workers();
    let recorder = Recorder {
        history: Arc::downgrade(&shared.history),
        runtime: Arc::clone(&shared.runtime),
        defer: Arc::clone(&shared.defer),
        policies: policy_signals(&workers),
        sinks: shared
            .sink_names(&workers)
            .into_keys()
            .map(|name| (name.clone(), Arc::from(name.as_str())))
            .collect(),
    };
    let now = Instant::now();
    for sink in recorder.sinks.keys() {
        recorder.resync(sink, now);
    }
    tokio::spawn(recorder.run(events));
}

type Tagged = (String, Result<SignalEvent, Lagged>);

struct Recorder {
    history: Weak<History>,
    runtime: Arc<Runtime>,
    defer: Arc<DeferPatterns>,
    /// (signal, worker) → the kind of the worker's policy that raises that signal, keyed by
    /// the worker's name.
    policies: HashMap<(String, String), &'static str>,
    sinks: BTreeMap<String, Arc<str>>,
}

impl Recorder {
    async fn run(self, mut events: SelectAll<SinkEvents>) {
        let mut ticks = time::interval(SAMPLE_EVERY);
        // On a grid of whole seconds from the start, so that a late tick does not shift the rest.
        ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let mut open = !events.is_empty();
        loop {
            let alive = tokio::select! {
                // Events first: a tick must not see a gate before the event that moved it.
                biased;
                next = events.next(), if open => match next {
                    Some(first) => self.on_events(first, &mut events),
                    None => {
                        open = false;
                        true
                    }
                },
                _ = ticks.tick() => self.tick(Instant::now()),
            };
            if !alive {
                return;
            }
        }
    }

    /// Records `first` and every event already waiting behind it, then the gates as they
    /// are after them (at the last one's time); false once the history is gone.
    fn on_events(&self, first: Tagged, events: &mut SelectAll<SinkEvents>) -> bool {
        let Some(history) = self.history.upgrade() else {
            return false;
        };
        let mut next = Some(first);
        let mut last_at = None;
        let mut lagged = Vec::new();
        while let Some((sink, event)) = next.take() {
            match event {
                Ok(event) => {
                    if let Some(sink_name) = self.sinks.get(&sink) {
                        let policy = self.policy_of(&event.name, event.key.as_deref());
                        history
                            .change(|ring, clock| ring.on_event(clock, sink_name, &event, policy));
                        last_at = Some(event.at);
                    }
                }
                Err(_missed) => lagged.push(sink),
            }
            next = events.next().now_or_never().flatten();
        }
        let now = Instant::now();
        for sink in lagged {
            self.resync(&sink, now);
        }
        if let Some(at) = last_at {
            let gates = self.gates(None);
            history.change(|ring, clock| ring.observe_gates(clock, &gates, at));
        }
        true
    }

    /// After missed events (and at the start): the open bars of `sink` from its snapshot.
    fn resync(&self, sink: &str, now: Instant) -> bool {
        let Some(history) = self.history.upgrade() else {
            return false;
        };
        let (Some(sink_name), Some(handle)) = (self.sinks.get(sink), self.runtime.sink(sink))
        else {
            return true;
        };
        let active = handle.snapshot();
        let gates = self.gates(Some(sink));
        history.change(|ring, clock| {
            ring.reconcile(clock, sink_name, &active, now, |a: &ActiveSignal| {
                self.policy_of(&a.name, a.key.as_deref())
            });
            ring.observe_gates(clock, &gates, now);
        });
        true
    }

    /// One sample of every worker, the gates, and what fell out of the window.
    fn tick(&self, now: Instant) -> bool {
        let Some(history) = self.history.upgrade() else {
            return false;
        };
        let workers = self.runtime.workers();
        let gates = self.gates_of(&workers);
        history.change(|ring, clock| {
            ring.sample(
                clock,
                workers.iter().map(|w| (w.name.as_str(), &w.stats)),
                now,
            );
            ring.observe_gates(clock, &gates, now);
            ring.prune(clock, now);
        });
        true
    }

    fn policy_of(&self, signal: &str, key: Option<&str>) -> Option<&'static str> {
        let key = key?;
        self.policies
            .get(&(signal.to_owned(), key.to_owned()))
            .copied()
    }

    /// The gates of the workers of `sink` (all workers for `None`).
    fn gates(&self, sink: Option<&str>) -> Vec<GateNow> {
        let workers: Vec<WorkerInfo> = self
            .runtime
            .workers()
            .into_iter()
            .filter(|w| sink.is_none_or(|s| w.sink == s))
            .collect();
        self.gates_of(&workers)
    }

    fn gates_of(&self, workers: &[WorkerInfo]) -> Vec<GateNow> {
        let mut snapshots: BTreeMap<&str, Vec<ActiveSignal>> = BTreeMap::new();
        workers
            .iter()
            .map(|info| {
                let active = snapshots.entry(info.sink.as_str()).or_insert_with(|| {
                    self.runtime
                        .sink(&info.sink)
                        .map(|s| s.snapshot())
                        .unwrap_or_default()
                });
                let gate = gate(&info.stats, self.defer.holding(&info.name, active));
                GateNow {
                    worker: info.name.clone(),
                    state: gate.state,
                    level: gate.level,
                    by: gate.signals,
                }
            })
            .collect()
    }
}

/// Which signal each worker's policies raise (keyed by the worker's name).
fn policy_signals(workers: &[WorkerInfo]) -> HashMap<(String, String), &'static str> {
    workers
        .iter()
        .flat_map(|w| {
            w.policies
                .iter()
                .map(|p| ((p.signal.clone(), w.name.clone()), p.policy))
        })
        .collect()
}
