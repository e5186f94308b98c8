//! Which active signals hold which worker back: each worker's `defer_on`, compiled once
//! when the router is built (a runtime's workers and their patterns are fixed for its
//! life), matched against its sink's active signals.
//!
//! The runtime answers this for a typed coordinator (`Coordinator::held_by`, the one
//! signal that sets the limit); the admin only has worker names, and shows every signal at
//! that lowest level, so it keeps the compiled patterns itself.

use std::collections::BTreeMap;

use backpressure::{ActiveSignal, Level, Pattern, WorkerInfo};

/// Each worker's compiled `defer_on` (a worker without one is not listed).
#[derive(Debug, Default)]
pub(crate) struct DeferPatterns {
    by_worker: BTreeMap<String, Pattern>,
}

/// The signals that set a worker's limit.
#[derive(Debug, Default)]
pub(crate) struct Holding {
    /// The names (each once, in the sink's order) of the active `defer_on` signals at the
    /// lowest level.
    pub(crate) names: Vec<String>,
    /// That lowest level; `None` while no `defer_on` signal is active.
    pub(crate) level: Option<Level>,
}

impl DeferPatterns {
    /// Compiles the `defer_on` of each of `workers` (their builders have already checked
    /// the patterns, so none fails here).
    pub(crate) fn new(workers: &[WorkerInfo]) -> Self {
        let by_worker = workers
            .iter()
            .filter_map(|w| {
                let pattern = Pattern::parse(w.config.defer_on.as_deref()?).ok()?;
                Some((w.name.clone(), pattern))
            })
            .collect();
        Self { by_worker }
    }

    /// Whether a signal called `signal` holds `worker` back while it is active.
    pub(crate) fn holds(&self, worker: &str, signal: &str) -> bool {
        self.by_worker
            .get(worker)
            .is_some_and(|pattern| pattern.matches(signal))
    }

    /// Among `active` (the worker's sink's signals), the ones that set `worker`'s limit.
    pub(crate) fn holding(&self, worker: &str, active: &[ActiveSignal]) -> Holding {
        let matching: Vec<&ActiveSignal> = active
            .iter()
            .filter(|s| self.holds(worker, &s.name))
            .collect();
        let level = matching.iter().map(|s| s.level).min();
        let mut names: Vec<String> = Vec::new();
        for signal in matching.iter().filter(|s| Some(s.level) == level) {
            if !names.iter().any(|n| **n == *signal.name) {
                names.push(signal.name.to_string());
            }
        }
        Holding { names, level }
    }
}
