//! Running policies: feeding them outcomes, raising and retracting their signals, and the
//! one task per policy that runs its timers.

use std::sync::{Arc, Weak};
use std::time::Duration;

use backpressure_pattern::options::policies::PolicyKind;
use backpressure_pattern::Pattern;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::adaptive::Limit;
use super::breaker::{BreakerState, Change, Machine};
use super::watermark::Mark;
use super::window::WindowCounts;
use super::{ChangeReason, Policy, PolicyChange, PolicyError, PolicyInfo, PolicyState};
use crate::sync::{lock, Mutex};
use crate::{Level, RaiseOptions, Sink};

/// What a coordinator offers its policies.
pub(crate) trait Host: Send + Sync {
    /// Makes held slots look at the gate again (a breaker went half-open).
    fn wake_slots(&self);
}

/// A coordinator's policies. Empty for most coordinators, which then pay nothing.
#[derive(Debug, Default)]
pub(crate) struct Policies {
    cells: Vec<Arc<Cell>>,
}

#[derive(Debug)]
struct Cell {
    state: Mutex<CellState>,
    sink: Sink,
    owner: Arc<str>,
    /// Wakes the policy's timer task: a deadline moved, or the coordinator is gone.
    wake: Notify,
}

#[derive(Debug)]
struct CellState {
    machine: Kind,
    /// When the signal was last raised, while it is raised: the next refresh is due at
    /// `ttl / 3` after it.
    raised_at: Option<Instant>,
}

#[derive(Debug)]
enum Kind {
    Breaker(Machine),
    Adaptive(Limit),
    Watermark(Mark),
}

/// What to do to the sink once the policy's lock is released.
#[derive(Debug)]
enum Effect {
    Raise(Level),
    Retract,
}

impl Policies {
    /// Checks and prepares `policies` for the worker `owner` on `sink`.
    pub(crate) fn new(
        policies: Vec<Policy>,
        sink: &Sink,
        owner: &str,
        capacity: usize,
        defer_on: Option<&str>,
    ) -> Result<Self, PolicyError> {
        let now = Instant::now();
        let owner: Arc<str> = owner.into();
        let mut cells = Vec::with_capacity(policies.len());
        for policy in policies {
            policy.validate()?;
            if let Policy::Adaptive(adaptive) = &policy {
                // An adaptive level its own worker does not defer on would throttle nothing.
                let spec = adaptive.spec();
                spec.check_deferred(defer_on)
                    .map_err(|err| PolicyError::from_rule(spec.policy, &err))?;
            }
            let machine = match policy {
                Policy::Breaker(b) => Kind::Breaker(Machine::new(b, now)),
                Policy::Adaptive(a) => Kind::Adaptive(Limit::new(a, now)),
                Policy::Watermark(w) => Kind::Watermark(Mark::new(w, capacity)),
            };
            cells.push(Arc::new(Cell {
                state: Mutex::new(CellState {
                    machine,
                    raised_at: None,
                }),
                sink: sink.clone(),
                owner: Arc::clone(&owner),
                wake: Notify::new(),
            }));
        }
        Ok(Self { cells })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    /// Starts one timer task per policy on `runtime`.
    pub(crate) fn start(&self, host: Weak<dyn Host>, runtime: &tokio::runtime::Handle) {
        for cell in &self.cells {
            runtime.spawn(drive(Arc::clone(cell), host.clone()));
        }
    }

    /// Item `id` finished after `elapsed`; `failed` for an error or a panic.
    pub(crate) fn observe(&self, id: u64, failed: bool, elapsed: Duration) {
        let now = Instant::now();
        for cell in &self.cells {
            let mut state = lock(&cell.state);
            let effect = match &mut state.machine {
                Kind::Breaker(machine) => {
                    let failure = machine.is_failure(failed, elapsed);
                    let change = machine.observe(id, failure, now);
                    change.map(|change| cell.breaker_changed(machine, change))
                }
                Kind::Adaptive(limit) => {
                    limit.observe(failed, elapsed);
                    None
                }
                Kind::Watermark(_) => None,
            };
            let effect = effect.map(|effect| state.apply(effect, now));
            drop(state);
            if let Some(effect) = effect {
                cell.perform(effect);
                cell.wake.notify_one();
            }
        }
    }

    /// Whether items must carry their enqueue time (a watermark watches the oldest's age).
    pub(crate) fn stamps_items(&self) -> bool {
        self.cells.iter().any(|cell| {
            matches!(&lock(&cell.state).machine, Kind::Watermark(m) if m.config().max_age.is_some())
        })
    }

    /// Whether a watermark watches the queue.
    pub(crate) fn watches_queue(&self) -> bool {
        self.cells
            .iter()
            .any(|cell| matches!(&lock(&cell.state).machine, Kind::Watermark(_)))
    }

    /// The queue changed: its depth and the enqueue time of its oldest item.
    pub(crate) fn queue_changed(&self, depth: usize, oldest_at: Option<Instant>) {
        for cell in &self.cells {
            let mut state = lock(&cell.state);
            if let Kind::Watermark(mark) = &mut state.machine {
                if mark.update(depth, oldest_at) {
                    drop(state);
                    cell.wake.notify_one();
                }
            }
        }
    }

    /// The worker has queued work it may not start under the current limit.
    pub(crate) fn saturated(&self) {
        for cell in &self.cells {
            let mut state = lock(&cell.state);
            if let Kind::Adaptive(limit) = &mut state.machine {
                limit.saturate();
            }
        }
    }

    /// Whether item `id` may start as a half-open probe, counting it if so;
    /// `held_only_by(owner)` says whether only the owner's own entries hold its gate (a probe
    /// never bypasses another worker's signal).
    pub(crate) fn try_probe(&self, id: u64, held_only_by: impl Fn(&str) -> bool) -> bool {
        let now = Instant::now();
        self.cells.iter().any(|cell| {
            let mut state = lock(&cell.state);
            let Kind::Breaker(machine) = &mut state.machine else {
                return false;
            };
            if machine.state() != BreakerState::HalfOpen || !held_only_by(&cell.owner) {
                return false;
            }
            let probed = machine.try_probe(id, now);
            if probed {
                drop(state);
                // The probe's timeout is a new deadline for the timer task.
                cell.wake.notify_one();
            }
            probed
        })
    }

    /// Each policy's current state.
    pub(crate) fn infos(&self) -> Vec<PolicyInfo> {
        let now = Instant::now();
        self.cells
            .iter()
            .map(|cell| {
                let state = lock(&cell.state);
                let (policy, signal, state_now, counts, next) = match &state.machine {
                    Kind::Breaker(m) => (
                        breaker_kind(m),
                        m.config().signal.clone(),
                        PolicyState::Breaker(m.state()),
                        m.counts(now),
                        m.next_deadline(),
                    ),
                    Kind::Adaptive(l) => (
                        PolicyKind::Adaptive.name(),
                        l.config().signal.clone(),
                        PolicyState::Limit(l.limit()),
                        WindowCounts::default(),
                        Some(l.next_deadline()),
                    ),
                    Kind::Watermark(m) => (
                        PolicyKind::Watermark.name(),
                        m.config().signal.clone(),
                        PolicyState::Watermark {
                            raised: m.is_raised(),
                            depth: m.depth(),
                        },
                        WindowCounts::default(),
                        m.next_deadline(),
                    ),
                };
                PolicyInfo {
                    policy,
                    signal,
                    state: state_now,
                    counts,
                    next_transition_in: next.map(|at| at.saturating_duration_since(now)),
                }
            })
            .collect()
    }
}

impl Drop for Policies {
    fn drop(&mut self) {
        // The coordinator is gone: let the timer tasks notice and end. A raised signal is
        // left to its TTL, like that of an owner that died.
        for cell in &self.cells {
            cell.wake.notify_one();
        }
    }
}

fn breaker_kind(machine: &Machine) -> &'static str {
    machine.config().kind().name()
}

impl Cell {
    /// Reports a breaker's change; returns what it does to the signal.
    fn breaker_changed(&self, machine: &Machine, change: Change) -> Effect {
        let signal = &machine.config().signal;
        self.report(
            PolicyChange {
                policy: breaker_kind(machine),
                from: PolicyState::Breaker(change.from),
                to: PolicyState::Breaker(change.to),
                reason: ChangeReason::Breaker(change.reason),
                counts: change.counts,
            },
            signal,
        );
        match change.to {
            BreakerState::Closed => Effect::Retract,
            BreakerState::Open | BreakerState::HalfOpen => Effect::Raise(Level::STOP),
        }
    }

    fn report(&self, change: PolicyChange, signal: &str) {
        tracing::info!(
            worker = %self.owner,
            signal,
            policy = change.policy,
            from = %change.from,
            to = %change.to,
            reason = ?change.reason,
            calls = change.counts.calls,
            failures = change.counts.failures,
            "backpressure policy changed state"
        );
        self.sink.emit_policy(signal, &self.owner, change);
    }

    fn signal_and_ttl(state: &CellState) -> (String, Duration) {
        match &state.machine {
            Kind::Breaker(m) => (m.config().signal.clone(), m.config().ttl),
            Kind::Adaptive(l) => (l.config().signal.clone(), l.config().ttl),
            Kind::Watermark(m) => (m.config().signal.clone(), m.config().ttl),
        }
    }

    /// Raises or retracts the policy's signal. Its name was validated with the policy.
    fn perform(&self, (signal, ttl, effect): (String, Duration, Effect)) {
        let result = match effect {
            Effect::Raise(level) => self.sink.raise_with(
                &signal,
                RaiseOptions::new()
                    .key(self.owner.as_ref())
                    .ttl(ttl)
                    .level(level),
            ),
            Effect::Retract => self.sink.retract_keyed(&signal, &self.owner).map(drop),
        };
        if let Err(error) = result {
            tracing::error!(%error, signal, "a backpressure policy could not change its signal");
        }
    }
}

impl CellState {
    /// Records that `effect` is about to be performed; returns it with what it needs.
    fn apply(&mut self, effect: Effect, now: Instant) -> (String, Duration, Effect) {
        self.raised_at = match effect {
            Effect::Raise(_) => Some(now),
            Effect::Retract => None,
        };
        let (signal, ttl) = Cell::signal_and_ttl(self);
        (signal, ttl, effect)
    }

    /// Runs the policy's timers at `now`: returns what to do to the signal, whether held
    /// slots must look again, and when to run them next.
    fn tick(&mut self, cell: &Cell, now: Instant) -> (Option<Effect>, bool, Option<Instant>) {
        let (mut effect, wake_slots, deadline) = match &mut self.machine {
            Kind::Breaker(machine) => {
                let change = machine.tick(now);
                let wake = change.is_some_and(|c| c.to == BreakerState::HalfOpen);
                let effect = change.map(|change| cell.breaker_changed(machine, change));
                (effect, wake, machine.next_deadline())
            }
            Kind::Adaptive(limit) => {
                let effect = limit.tick(now).map(|before| {
                    let reason = if limit.limit() < before {
                        ChangeReason::BadWindow
                    } else {
                        ChangeReason::SaturatedWindow
                    };
                    cell.report(
                        PolicyChange {
                            policy: PolicyKind::Adaptive.name(),
                            from: PolicyState::Limit(before),
                            to: PolicyState::Limit(limit.limit()),
                            reason,
                            counts: WindowCounts::default(),
                        },
                        &limit.config().signal,
                    );
                    match limit.level() {
                        Level::FULL => Effect::Retract,
                        level => Effect::Raise(level),
                    }
                });
                (effect, false, Some(limit.next_deadline()))
            }
            Kind::Watermark(mark) => {
                let before = PolicyState::Watermark {
                    raised: mark.is_raised(),
                    depth: mark.depth(),
                };
                let effect = mark.tick(now).map(|raise| {
                    cell.report(
                        PolicyChange {
                            policy: PolicyKind::Watermark.name(),
                            from: before,
                            to: PolicyState::Watermark {
                                raised: raise,
                                depth: mark.depth(),
                            },
                            reason: if raise {
                                ChangeReason::BackedUp
                            } else {
                                ChangeReason::Drained
                            },
                            counts: WindowCounts::default(),
                        },
                        &mark.config().signal,
                    );
                    if raise {
                        Effect::Raise(Level::STOP)
                    } else {
                        Effect::Retract
                    }
                });
                (effect, false, mark.next_deadline())
            }
        };
        // While raised, refresh the TTL every ttl / 3 so that only a dead owner lets it lapse.
        let (_, ttl) = Cell::signal_and_ttl(self);
        let refresh_every = ttl / 3;
        if effect.is_none() {
            if let Some(raised_at) = self.raised_at {
                if raised_at + refresh_every <= now {
                    effect = Some(match &self.machine {
                        Kind::Breaker(_) | Kind::Watermark(_) => Effect::Raise(Level::STOP),
                        Kind::Adaptive(limit) => Effect::Raise(limit.level()),
                    });
                }
            }
        }
        let refresh_at = match (&effect, self.raised_at) {
            (Some(Effect::Raise(_)), _) => Some(now + refresh_every),
            (Some(Effect::Retract), _) => None,
            (None, raised_at) => raised_at.map(|at| at + refresh_every),
        };
        let next = [deadline, refresh_at].into_iter().flatten().min();
        (effect, wake_slots, next)
    }
}

/// A policy's timer task: sleeps until its next deadline (or a wake-up), runs its timers.
/// Ends when its coordinator is gone.
async fn drive(cell: Arc<Cell>, host: Weak<dyn Host>) {
    loop {
        let notified = cell.wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let Some(host) = host.upgrade() else {
            return;
        };
        let now = Instant::now();
        let (effect, wake_slots, next) = {
            let mut state = lock(&cell.state);
            let (effect, wake_slots, next) = state.tick(&cell, now);
            (
                effect.map(|effect| state.apply(effect, now)),
                wake_slots,
                next,
            )
        };
        if let Some(effect) = effect {
            cell.perform(effect);
        }
        if wake_slots {
            host.wake_slots();
        }
        drop(host);
        match next {
            Some(at) => {
                tokio::select! {
                    () = tokio::time::sleep_until(at) => {}
                    () = &mut notified => {}
                }
            }
            None => notified.await,
        }
    }
}

/// Whether every active entry of `sink` matching `pattern` is keyed by `owner`: the
/// owner's own policies' signals, which its probes may pass.
pub(crate) fn held_only_by(sink: &Sink, pattern: &Pattern, owner: &str) -> bool {
    sink.snapshot()
        .iter()
        .all(|entry| !pattern.matches(&entry.name) || entry.key.as_deref() == Some(owner))
}
