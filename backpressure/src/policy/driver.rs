//! Running policies: feeding them outcomes, raising and retracting their signals, and the
//! one task per policy that runs its timers.
//!
//! Every policy is a [`PolicyMachine`] behind its own lock. Under the lock the driver only
//! asks the machine and records what must follow (a [`Due`]); the `tracing` event, the
//! sink's `PolicyChanged` event and the raise or retract happen after the lock is released,
//! so that a subscriber or layer may call back into the coordinator or the sink.
//!
//! A half-open breaker's verdict carries the cell's [`ProbeSource`]: any coordinator it holds
//! (its owner included) may claim a probe from it, and the claim reports the probe's outcome
//! back here, or gives the probe back.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::machine::{Effect, PolicyMachine};
use super::{Policy, PolicyChange, PolicyError, PolicyInfo};
use crate::sink::{ProbeClaim, ProbeSource};
use crate::sync::{lock, notified_or_deadline, AtomicBool, Mutex, Ordering};
use crate::{Phase, RaiseOptions, Sink};

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
    /// Set once when the owner closes (see [`Policies::close`]): from then on nothing the
    /// policy decides is carried out, and a raise that raced with the close is undone.
    closed: AtomicBool,
    /// Hands out its probes while half-open ([`Probes`]); raised with the verdict.
    source: Arc<dyn ProbeSource>,
}

/// A cell's probes, as its half-open verdict offers them to every coordinator it holds. It
/// does not keep the cell alive: once the owner is gone, every claim is refused and every
/// report ignored.
#[derive(Debug)]
struct Probes {
    cell: Weak<Cell>,
}

#[derive(Debug)]
struct CellState {
    machine: Box<dyn PolicyMachine>,
    /// When the signal was last raised, while it is raised: the next refresh is due at
    /// `ttl / 3` after it.
    raised_at: Option<Instant>,
}

/// What the holder of a policy's lock does once it has released it: report the change, if
/// there is one (a refresh has none), then raise or retract the signal.
#[derive(Debug)]
struct Due {
    change: Option<PolicyChange>,
    signal: String,
    ttl: Duration,
    effect: Effect,
    /// The verdict's phase after the change (a breaker's), and when it is next due to
    /// change (an open breaker's half-open instant).
    verdict: Option<(Phase, Option<Instant>)>,
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
        let mut specs = Vec::with_capacity(policies.len());
        for policy in policies {
            let spec = policy.spec();
            PolicyError::check(&spec)?;
            // An adaptive level or a breaker verdict its own worker does not defer on would
            // hold nothing there (the rule passes watermarks); two policies on one signal
            // would share its entry.
            spec.check_deferred(defer_on)
                .and_then(|()| spec.check_own_signal(&specs))
                .map_err(|err| PolicyError::from_rule(spec.policy, &err))?;
            specs.push(spec);
            cells.push(Arc::new_cyclic(|cell| Cell {
                state: Mutex::new(CellState {
                    machine: policy.start(now, capacity),
                    raised_at: None,
                }),
                sink: sink.clone(),
                owner: Arc::clone(&owner),
                wake: Notify::new(),
                closed: AtomicBool::new(false),
                source: Arc::new(Probes { cell: cell.clone() }),
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

    /// Item `id` finished after `elapsed`; `failed` for an error or a panic. Policies whose
    /// probe the item ran (in `probe`) learn of it through the claim instead.
    pub(crate) fn observe(
        &self,
        id: u64,
        failed: bool,
        elapsed: Duration,
        probe: Option<&ProbeClaim>,
    ) {
        let now = Instant::now();
        for cell in self.cells.iter().filter(|cell| !cell.is_closed()) {
            if probe.is_some_and(|claim| claim.holds(&cell.source)) {
                continue;
            }
            let mut state = lock(&cell.state);
            let due = state
                .machine
                .finished(id, failed, elapsed, now)
                .map(|transition| state.settle(Some(transition.change), transition.effect, now));
            drop(state);
            if let Some(due) = due {
                cell.carry_out(due);
                cell.wake.notify_one();
            }
        }
    }

    /// Whether items must carry their enqueue time (a watermark watches the oldest's age).
    pub(crate) fn stamps_items(&self) -> bool {
        self.cells
            .iter()
            .any(|cell| lock(&cell.state).machine.stamps_items())
    }

    /// Whether a watermark watches the queue.
    pub(crate) fn watches_queue(&self) -> bool {
        self.cells
            .iter()
            .any(|cell| lock(&cell.state).machine.watches_queue())
    }

    /// The queue changed: its depth and the enqueue time of its oldest item.
    pub(crate) fn queue_changed(&self, depth: usize, oldest_at: Option<Instant>) {
        for cell in &self.cells {
            let crossed = lock(&cell.state).machine.queue_changed(depth, oldest_at);
            if crossed {
                cell.wake.notify_one();
            }
        }
    }

    /// The worker has queued work it may not start under the current limit.
    pub(crate) fn saturated(&self) {
        for cell in &self.cells {
            lock(&cell.state).machine.saturated();
        }
    }

    /// The worker starts an item: each half-open breaker of its own that `claim` holds no
    /// probe of yet counts it as a probe if it has one left (so a breaker whose owner is not
    /// held by its own signal still closes).
    pub(crate) fn claim_own(&self, claim: &mut ProbeClaim) {
        for cell in &self.cells {
            // A breaker with no probe left (or not half-open) simply does not count it.
            let _ = claim.try_add(Arc::clone(&cell.source));
        }
    }

    /// Each policy's current state.
    pub(crate) fn infos(&self) -> Vec<PolicyInfo> {
        let now = Instant::now();
        self.cells
            .iter()
            .map(|cell| info(&*lock(&cell.state).machine, now))
            .collect()
    }

    /// The owner closed (it drained, shut down, or is gone): every policy retracts its
    /// signal and stops. Later outcomes and timers raise nothing; the timer tasks end.
    /// Idempotent.
    pub(crate) fn close(&self) {
        for cell in &self.cells {
            cell.close();
        }
    }
}

impl Drop for Policies {
    fn drop(&mut self) {
        // The coordinator is gone (its last handle and its last slot): its verdicts end with
        // it. An owner that dies without running this (a killed process) leaves its signals
        // to their TTL.
        self.close();
    }
}

/// What `machine` shows at `now`.
fn info(machine: &dyn PolicyMachine, now: Instant) -> PolicyInfo {
    PolicyInfo {
        policy: machine.kind(),
        signal: machine.signal().to_owned(),
        state: machine.state(),
        counts: machine.counts(now),
        next_transition_in: machine
            .next_timer()
            .map(|at| at.saturating_duration_since(now)),
        detail: machine.detail(),
    }
}

impl Cell {
    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Closes the policy: no refresh is due any more, the signal is retracted (whatever the
    /// machine last decided: an effect still on its way is undone by `perform`), and the
    /// timer task is woken to end.
    fn close(&self) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        let signal = {
            let mut state = lock(&self.state);
            state.raised_at = None;
            state.machine.signal().to_owned()
        };
        self.perform(&signal, Duration::ZERO, Effect::Retract, None);
        self.wake.notify_one();
    }

    /// Does what a lock holder recorded: reports the change, then changes the signal.
    /// Nothing, once the policy is closed.
    fn carry_out(&self, due: Due) {
        if self.is_closed() {
            return;
        }
        if let Some(change) = due.change {
            self.report(change, &due.signal);
        }
        self.perform(&due.signal, due.ttl, due.effect, due.verdict);
    }

    /// The `tracing` event and the sink's `PolicyChanged` event of one change.
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

    /// Raises or retracts the policy's signal (a verdict in its phase, with its next
    /// transition, offering its probes while half-open). Its name was validated with the
    /// policy.
    fn perform(
        &self,
        signal: &str,
        ttl: Duration,
        effect: Effect,
        verdict: Option<(Phase, Option<Instant>)>,
    ) {
        let result = match effect {
            Effect::Raise(level) => {
                let mut options = RaiseOptions::new()
                    .key(self.owner.as_ref())
                    .ttl(ttl)
                    .level(level);
                if let Some((phase, next)) = verdict {
                    options = options.phase(phase).probe_source(Arc::clone(&self.source));
                    if let Some(at) = next {
                        options = options.next_transition(at);
                    }
                }
                self.sink.raise_with(signal, options)
            }
            Effect::Retract => self.sink.retract_keyed(signal, &self.owner).map(drop),
        };
        if let Err(error) = result {
            tracing::error!(%error, signal, "a backpressure policy could not change its signal");
        }
        if effect != Effect::Retract && self.is_closed() {
            // The owner closed while this raise was on its way; its close may have retracted
            // before the raise landed. Undo it (`close` set the flag before retracting, so one
            // of the two retractions comes after the raise).
            self.perform(signal, ttl, Effect::Retract, None);
        }
    }
}

impl CellState {
    /// Records that `effect` is about to be done; returns what to do once the lock is
    /// released.
    fn settle(&mut self, change: Option<PolicyChange>, effect: Effect, now: Instant) -> Due {
        self.raised_at = match effect {
            Effect::Raise(_) => Some(now),
            Effect::Retract => None,
        };
        Due {
            change,
            signal: self.machine.signal().to_owned(),
            ttl: self.machine.ttl(),
            effect,
            verdict: self.machine.phase().map(|phase| {
                let next = (phase == Phase::Open)
                    .then(|| self.machine.next_timer())
                    .flatten();
                (phase, next)
            }),
        }
    }

    /// Runs the policy's timers at `now`: returns what to do once the lock is released,
    /// whether held slots must look again, and when to run them next.
    fn tick(&mut self, now: Instant) -> (Option<Due>, bool, Option<Instant>) {
        let transition = self.machine.timers(now);
        let wake_slots = transition.is_some_and(|t| t.wake_slots);
        let due = match transition {
            Some(t) => Some(self.settle(Some(t.change), t.effect, now)),
            None => self.refresh(now),
        };
        (due, wake_slots, self.next_run())
    }

    /// While raised, the signal's TTL is refreshed every `ttl / 3`, so that only a dead
    /// owner lets it lapse.
    fn refresh_every(&self) -> Duration {
        self.machine.ttl() / 3
    }

    /// A refresh, if one is due at `now`.
    fn refresh(&mut self, now: Instant) -> Option<Due> {
        let raised_at = self.raised_at?;
        (raised_at + self.refresh_every() <= now).then(|| {
            let level = self.machine.level();
            self.settle(None, Effect::Raise(level), now)
        })
    }

    /// When the machine's timers or the next refresh are due.
    fn next_run(&self) -> Option<Instant> {
        let refresh_at = self.raised_at.map(|at| at + self.refresh_every());
        [self.machine.next_timer(), refresh_at]
            .into_iter()
            .flatten()
            .min()
    }
}

/// A policy's timer task: sleeps until its next deadline (or a wake-up), runs its timers.
/// Ends when its coordinator is gone or its policies are closed.
async fn drive(cell: Arc<Cell>, host: Weak<dyn Host>) {
    loop {
        let notified = cell.wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if cell.is_closed() {
            return;
        }
        let Some(host) = host.upgrade() else {
            return;
        };
        let (due, wake_slots, next) = lock(&cell.state).tick(Instant::now());
        if let Some(due) = due {
            cell.carry_out(due);
        }
        if wake_slots {
            host.wake_slots();
        }
        drop(host);
        notified_or_deadline(notified, next).await;
    }
}

impl ProbeSource for Probes {
    fn available(&self) -> bool {
        self.cell
            .upgrade()
            .is_some_and(|cell| !cell.is_closed() && lock(&cell.state).machine.has_probe())
    }

    fn claim(&self) -> Option<u64> {
        let cell = self.cell.upgrade().filter(|cell| !cell.is_closed())?;
        let ticket = lock(&cell.state).machine.claim_probe(Instant::now());
        if ticket.is_some() {
            // The probe's timeout is a new deadline for the timer task.
            cell.wake.notify_one();
        }
        ticket
    }

    fn finished(&self, ticket: u64, failed: bool, elapsed: Duration) {
        let Some(cell) = self.cell.upgrade() else {
            return;
        };
        let now = Instant::now();
        let mut state = lock(&cell.state);
        let due = state
            .machine
            .probe_finished(ticket, failed, elapsed, now)
            .map(|transition| state.settle(Some(transition.change), transition.effect, now));
        drop(state);
        if let Some(due) = due {
            cell.carry_out(due);
        }
        cell.wake.notify_one();
    }

    fn give_back(&self, ticket: u64) {
        let Some(cell) = self.cell.upgrade() else {
            return;
        };
        let mut state = lock(&cell.state);
        let given_back = state.machine.give_back_probe(ticket);
        let signal = given_back.then(|| state.machine.signal().to_owned());
        drop(state);
        if let Some(signal) = signal {
            // Its timeout is gone, and a held item anywhere may take the probe.
            cell.wake.notify_one();
            cell.sink.probe_returned(&signal, &cell.owner);
        }
    }
}
