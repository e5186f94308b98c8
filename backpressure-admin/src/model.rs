//! The JSON shapes of the API and the event stream, and how they are built from a runtime.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use backpressure::{
    policy::{PolicyChange, PolicyInfo},
    retry::{DeadLetterRecord, Retry},
    ActiveSignal, CoordinatorConfig, Runtime, SignalEvent, SignalEventKind, Stats, WorkerInfo,
};
use serde::Serialize;
use tokio::time::Instant;

use crate::defer::{DeferPatterns, Holding};
use crate::history::History;
use crate::rates::{round2, RateBook, Rates};

/// Everything the dashboard shows: the answer of `GET api/overview`, the event stream's
/// `snapshot` and `stats` events.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Overview {
    pub(crate) read_only: bool,
    pub(crate) controls: Controls,
    pub(crate) now_ms: u64,
    pub(crate) summary: Summary,
    pub(crate) workers: Vec<WorkerView>,
    pub(crate) sinks: Vec<SinkView>,
}

/// Which changes this router accepts.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Controls {
    pub(crate) signals: bool,
    pub(crate) pause: bool,
    /// Requeueing a worker's dead letters.
    pub(crate) requeue: bool,
}

/// Totals over all workers and sinks.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Summary {
    pub(crate) workers: usize,
    pub(crate) held: usize,
    pub(crate) paused: usize,
    pub(crate) signals: usize,
    pub(crate) queued: usize,
    pub(crate) deferred: usize,
    pub(crate) active: usize,
    pub(crate) concurrency: usize,
    pub(crate) completed: u64,
    pub(crate) failed: u64,
    pub(crate) completed_per_s: f64,
    /// Items waiting for a retry's instant, over all workers.
    pub(crate) retry_waiting: usize,
    /// Dead letters kept now, over all workers.
    pub(crate) dead_letters: usize,
}

/// One worker: its registration, config, counters, policies, gate, rates, retry and dead
/// letters.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct WorkerView {
    pub(crate) name: String,
    pub(crate) sink: String,
    pub(crate) location: String,
    pub(crate) config: CoordinatorConfig,
    pub(crate) stats: Stats,
    pub(crate) policies: Vec<PolicyInfo>,
    pub(crate) gate: Gate,
    pub(crate) rates: Rates,
    /// Its `retry(...)`; `null`: it does not retry and keeps no dead letters.
    pub(crate) retry: Option<Retry>,
    pub(crate) dead_letters: DeadLetters,
}

/// The dead letters a worker keeps.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct DeadLetters {
    /// How many it keeps now (all of them, not only those in `last`).
    pub(crate) count: usize,
    /// How many its full buffer evicted, oldest first.
    pub(crate) evicted: u64,
    /// The last ones (at most 20), oldest first, without their items: id, error text,
    /// attempts, whether the failure was permanent.
    pub(crate) last: Vec<DeadLetterRecord>,
}

/// Why a worker does or does not start work.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Gate {
    /// `open`, `held` (nothing starts), `limited` (a level lets part through), `paused`,
    /// `permits` (open to signals, but a start waits for a fleet permit) or `rate` (open to
    /// signals, but the worker's rate holds the next start).
    pub(crate) state: &'static str,
    /// The active `defer_on` signals at the lowest level: the ones holding the worker.
    pub(crate) signals: Vec<String>,
    /// That lowest level, while a `defer_on` signal is active.
    pub(crate) level: Option<f64>,
}

/// A sink watched by at least one worker, and its active signals.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SinkView {
    pub(crate) name: String,
    pub(crate) workers: Vec<String>,
    pub(crate) signals: Vec<SignalView>,
}

/// One active (name, key) entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct SignalView {
    pub(crate) sink: String,
    pub(crate) name: String,
    pub(crate) key: Option<String>,
    pub(crate) level: f64,
    pub(crate) raised_at_ms: u64,
    pub(crate) ttl_left_ms: Option<u64>,
    pub(crate) expires_at_ms: Option<u64>,
    /// The workers of this sink whose `defer_on` matches it.
    pub(crate) holds: Vec<String>,
}

/// One signal event, as sent on the stream.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct EventView {
    pub(crate) sink: String,
    pub(crate) kind: SignalEventKind,
    pub(crate) name: String,
    pub(crate) key: Option<String>,
    pub(crate) level: f64,
    pub(crate) policy: Option<PolicyChange>,
    pub(crate) at_ms: u64,
}

impl EventView {
    pub(crate) fn new(sink: &str, event: &SignalEvent) -> Self {
        Self {
            sink: sink.to_owned(),
            kind: event.kind,
            name: event.name.to_string(),
            key: event.key.as_deref().map(str::to_owned),
            level: event.level.as_f64(),
            policy: event.policy,
            at_ms: wall_ms(event.at),
        }
    }
}

/// The shared state behind every route.
#[derive(Debug, Clone)]
pub(crate) struct Shared {
    pub(crate) runtime: Arc<Runtime>,
    pub(crate) config: crate::AdminConfig,
    pub(crate) rates: Arc<RateBook>,
    pub(crate) defer: Arc<DeferPatterns>,
    pub(crate) history: Arc<History>,
}

impl Shared {
    pub(crate) fn new(runtime: Arc<Runtime>, config: crate::AdminConfig) -> Self {
        let defer = DeferPatterns::new(&runtime.workers());
        let history = History::new(config.history);
        // The router starts its history's recorder (`history::start`) once it has this.
        Self {
            runtime,
            config,
            rates: Arc::default(),
            defer: Arc::new(defer),
            history: Arc::new(history),
        }
    }

    /// The sink names the workers watch, sorted, each with its workers.
    pub(crate) fn sink_names(&self, workers: &[WorkerInfo]) -> BTreeMap<String, Vec<String>> {
        let mut sinks: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for worker in workers {
            sinks
                .entry(worker.sink.clone())
                .or_default()
                .push(worker.name.clone());
        }
        sinks
    }

    pub(crate) fn controls(&self) -> Controls {
        Controls {
            signals: !self.config.read_only,
            pause: !self.config.read_only,
            requeue: !self.config.read_only,
        }
    }

    /// Builds the whole picture.
    pub(crate) fn overview(&self) -> Overview {
        let now = Instant::now();
        let infos = self.runtime.workers();
        let mut active: BTreeMap<String, Vec<ActiveSignal>> = BTreeMap::new();
        for sink in self.sink_names(&infos).into_keys() {
            let signals = self
                .runtime
                .sink(&sink)
                .map(|s| s.snapshot())
                .unwrap_or_default();
            active.insert(sink, signals);
        }
        let workers: Vec<WorkerView> = infos
            .iter()
            .map(|info| self.worker_view(info, active.get(&info.sink).map_or(&[][..], |v| v), now))
            .collect();
        let sinks: Vec<SinkView> = active
            .iter()
            .map(|(name, signals)| sink_view(name, signals, &infos, &self.defer, now))
            .collect();
        Overview {
            read_only: self.config.read_only,
            controls: self.controls(),
            now_ms: wall_ms(now),
            summary: summary(&workers, &sinks),
            workers,
            sinks,
        }
    }

    /// One worker's view, or `None` when there is no such worker.
    pub(crate) fn worker(&self, name: &str) -> Option<WorkerView> {
        let info = self.runtime.worker(name)?;
        let signals = self
            .runtime
            .sink(&info.sink)
            .map(|s| s.snapshot())
            .unwrap_or_default();
        Some(self.worker_view(&info, &signals, Instant::now()))
    }

    /// One sink's view, or `None` when no worker watches a sink of that name.
    pub(crate) fn sink(&self, name: &str) -> Option<SinkView> {
        let infos = self.runtime.workers();
        if !infos.iter().any(|w| w.sink == name) {
            return None;
        }
        let signals = self.runtime.sink(name)?.snapshot();
        Some(sink_view(
            name,
            &signals,
            &infos,
            &self.defer,
            Instant::now(),
        ))
    }

    fn worker_view(&self, info: &WorkerInfo, active: &[ActiveSignal], now: Instant) -> WorkerView {
        WorkerView {
            name: info.name.clone(),
            sink: info.sink.clone(),
            location: info.location.clone(),
            config: info.config.clone(),
            stats: info.stats,
            policies: info.policies.clone(),
            gate: gate(&info.stats, self.defer.holding(&info.name, active)),
            rates: self.rates.rates(&info.name, &info.stats, now),
            retry: info.retry.clone(),
            dead_letters: DeadLetters {
                count: info.dead_letter_count,
                evicted: info.dead_letters_evicted,
                last: info.dead_letters.clone(),
            },
        }
    }
}

fn sink_view(
    name: &str,
    active: &[ActiveSignal],
    workers: &[WorkerInfo],
    defer: &DeferPatterns,
    now: Instant,
) -> SinkView {
    let watchers: Vec<&str> = workers
        .iter()
        .filter(|w| w.sink == name)
        .map(|w| w.name.as_str())
        .collect();
    SinkView {
        name: name.to_owned(),
        workers: watchers.iter().map(|w| (*w).to_owned()).collect(),
        signals: active
            .iter()
            .map(|signal| SignalView {
                sink: name.to_owned(),
                name: signal.name.to_string(),
                key: signal.key.as_deref().map(str::to_owned),
                level: signal.level.as_f64(),
                raised_at_ms: wall_ms(signal.raised_at),
                ttl_left_ms: signal
                    .expires_at
                    .map(|at| millis(at.saturating_duration_since(now))),
                expires_at_ms: signal.expires_at.map(wall_ms),
                holds: watchers
                    .iter()
                    .filter(|w| defer.holds(w, &signal.name))
                    .map(|w| (*w).to_owned())
                    .collect(),
            })
            .collect(),
    }
}

/// The gate as the dashboard shows it: its state from the counters, and while signals or a
/// pause hold it the signals that do. In the order of
/// [`held_by`](backpressure::Coordinator::held_by): a pause, then signals (`held`,
/// `limited`), then the quotas, which only show while nothing of those holds it: `permits`
/// (a start waits for a permit of the fleet's `global_concurrency`), then `rate` (the
/// worker's rate holds the next start).
pub(crate) fn gate(stats: &Stats, holding: Holding) -> Gate {
    let state = if stats.paused {
        "paused"
    } else if !stats.gate_open && stats.limit == 0 {
        "held"
    } else if !stats.gate_open {
        "limited"
    } else if stats.permits.is_some_and(|p| p.wanted) {
        "permits"
    } else if stats.rate_holding {
        "rate"
    } else {
        "open"
    };
    if stats.gate_open {
        return Gate {
            state,
            signals: Vec::new(),
            level: None,
        };
    }
    Gate {
        state,
        signals: holding.names,
        level: holding.level.map(|l| l.as_f64()),
    }
}

fn summary(workers: &[WorkerView], sinks: &[SinkView]) -> Summary {
    let mut summary = Summary {
        workers: workers.len(),
        signals: sinks.iter().map(|s| s.signals.len()).sum(),
        ..Summary::default()
    };
    for worker in workers {
        let stats = &worker.stats;
        summary.held += usize::from(matches!(worker.gate.state, "held" | "limited"));
        summary.paused += usize::from(stats.paused);
        summary.queued += stats.queued;
        summary.deferred += stats.deferred;
        summary.active += stats.active;
        summary.concurrency += stats.concurrency;
        summary.completed += stats.completed;
        summary.failed += stats.failed;
        summary.completed_per_s += worker.rates.completed_per_s;
        summary.retry_waiting += stats.retry_waiting;
        summary.dead_letters += worker.dead_letters.count;
    }
    summary.completed_per_s = round2(summary.completed_per_s);
    summary
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A runtime instant as milliseconds since the Unix epoch.
pub(crate) fn wall_ms(at: Instant) -> u64 {
    let now = Instant::now();
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let wall = if at <= now {
        wall.saturating_sub(now - at)
    } else {
        wall.saturating_add(at - now)
    };
    millis(wall)
}

#[cfg(test)]
mod tests {
    use backpressure::connector::PermitCounts;
    use backpressure::Stats;

    use super::gate;
    use crate::defer::Holding;

    /// Counters of a worker of concurrency 2 whose gate signals leave open, then `change`d.
    fn stats(change: impl FnOnce(&mut Stats)) -> Stats {
        let mut stats = Stats::default();
        (stats.concurrency, stats.limit, stats.gate_open) = (2, 2, true);
        change(&mut stats);
        stats
    }

    fn state(stats: &Stats) -> &'static str {
        gate(stats, Holding::default()).state
    }

    #[test]
    fn the_quotas_show_only_while_signals_and_a_pause_leave_the_gate_open() {
        let mut waiting = PermitCounts::default();
        waiting.wanted = true;
        let waiting = Some(waiting);
        assert_eq!(state(&stats(|_| {})), "open");
        assert_eq!(state(&stats(|s| s.rate_holding = true)), "rate");
        let idle = stats(|s| s.permits = Some(PermitCounts::default()));
        assert_eq!(state(&idle), "open", "permits, none wanted");
        let both = |s: &mut Stats| (s.permits, s.rate_holding) = (waiting, true);
        assert_eq!(state(&stats(both)), "permits", "as held_by: permits first");
        let limited = stats(|s| {
            both(s);
            (s.limit, s.gate_open) = (1, false);
        });
        assert_eq!(state(&limited), "limited");
        let held = stats(|s| {
            both(s);
            (s.limit, s.gate_open) = (0, false);
        });
        assert_eq!(state(&held), "held");
        let paused = stats(|s| {
            both(s);
            (s.limit, s.gate_open, s.paused) = (0, false, true);
        });
        assert_eq!(state(&paused), "paused");
    }
}
