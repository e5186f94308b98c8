//! The state shared by a coordinator's handles and its slots, and every transition of it.
//!
//! All counters live under one lock together with the queue, so a [`Stats`] snapshot is
//! always consistent, and each item costs one lock acquisition on the producer side and one
//! on the slot side (recording the previous outcome and taking the next item together).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::config::CoordinatorConfig;
use super::context::ContextShared;
use super::gate::{Answer, Gate};
use super::stats::Stats;
use super::telemetry::{Enqueued, Labels, Meters, Started};
use crate::error::TryEnqueueError;
use crate::policy::{held_only_by, Host, Policies};
use crate::sync::{lock, Epoch, HeldSlots, IdleSlots, Mutex, MutexGuard};

/// Callback that receives items skipped by `cancel_on`.
pub(super) type SkipCallback<T> = Box<dyn Fn(T) + Send + Sync>;

pub(super) struct Shared<T> {
    state: Mutex<State<T>>,
    pub(super) gate: Gate,
    /// Wakes slots: gate changes (`notify_waiters` from the sink), new items, closing,
    /// shutdown, concurrency changes.
    pub(super) wake: Arc<Notify>,
    /// Bumped after every coordinator-side change that slots must see (close, shutdown,
    /// concurrency, pause); a slot compares it before and after registering for a wake-up,
    /// so a change that happened in between is never slept through.
    epoch: Epoch,
    /// Wakes producers waiting for queue space.
    space: Notify,
    /// Wakes `drain` / `shutdown` when nothing is left to wait for.
    settled: Notify,
    pub(super) context: Arc<ContextShared>,
    pub(super) config: CoordinatorConfig,
    max_defer: Option<Duration>,
    pub(super) on_skip: Option<SkipCallback<T>>,
    pub(super) policies: Policies,
    pub(super) labels: Labels,
    pub(super) meters: Meters,
    /// A watermark policy watches the queue (and, with `stamp_items`, its oldest item's age).
    watch_queue: bool,
    stamp_items: bool,
}

struct State<T> {
    items: VecDeque<Queued<T>>,
    closed: bool,
    shutting_down: bool,
    /// Configured number of slots.
    target: usize,
    /// Live slot tasks.
    workers: usize,
    active: usize,
    /// Slots waiting for an item to arrive, and the wake-ups sent to them.
    idle: IdleSlots,
    /// Producers waiting for queue space.
    waiting_producers: usize,
    /// Since when the current head of the queue has been held by signals.
    head_held_since: Option<Instant>,
    /// Slots waiting on the closed gate, and whether one of them sleeps until the head's
    /// `max_defer` deadline.
    held: HeldSlots,
    next_id: u64,
    counts: Counts,
}

#[derive(Default)]
struct Counts {
    enqueued: u64,
    completed: u64,
    failed: u64,
    panicked: u64,
    skipped: u64,
    defer_timeouts: u64,
    returned: u64,
    gate_rechecks: u64,
}

pub(super) struct Queued<T> {
    pub(super) id: u64,
    pub(super) item: T,
    /// Captured at enqueue when a subscriber or metrics listen.
    trace: Option<Box<Enqueued>>,
}

/// How a started item ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    Completed,
    Failed,
    Panicked,
    Skipped,
}

/// What a slot should do next.
pub(super) enum Job<T> {
    Run(Queued<T>, Option<Started>),
    Skip(Queued<T>),
}

/// The result of one look at the state by a slot.
pub(super) enum Step<T> {
    Job(Job<T>),
    /// Leave the slot (closed and empty, shut down, or too many slots).
    Exit,
    /// Nothing to start yet; wait for a wake-up, or until the deadline if there is one.
    Wait {
        deadline: Option<Instant>,
        /// The gate as seen during the look, to detect a change missed before waiting.
        gate: Answer,
    },
}

/// How a slot is waiting, so its counters are adjusted when it stops waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Waiting {
    No,
    ForItems,
    /// Held by a closed gate; `timer` if this slot holds the coordinator's `max_defer` timer.
    OnGate {
        timer: bool,
    },
}

impl<T> Shared<T> {
    pub(super) fn new(
        gate: Gate,
        wake: Arc<Notify>,
        context: Arc<ContextShared>,
        config: CoordinatorConfig,
        on_skip: Option<SkipCallback<T>>,
        policies: Policies,
        labels: Labels,
    ) -> Self {
        let (watch_queue, stamp_items) = (policies.watches_queue(), policies.stamps_items());
        let max_defer = config.max_defer.resolve(config.defer_check_interval);
        Self {
            state: Mutex::new(State {
                items: VecDeque::new(),
                closed: false,
                shutting_down: false,
                target: config.concurrency,
                workers: config.concurrency,
                active: 0,
                idle: IdleSlots::default(),
                waiting_producers: 0,
                head_held_since: None,
                held: HeldSlots::default(),
                next_id: 0,
                counts: Counts::default(),
            }),
            gate,
            wake,
            epoch: Epoch::new(),
            space: Notify::new(),
            settled: Notify::new(),
            context,
            config,
            max_defer,
            on_skip,
            policies,
            meters: Meters::new(&labels),
            labels,
            watch_queue,
            stamp_items,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        lock(&self.state)
    }

    /// Pushes an item if there is room. `waiting` tracks whether this producer is counted in
    /// `waiting_producers`.
    /// `waiting` is `None` for a producer that will not wait when the queue is full.
    pub(super) fn try_push(
        &self,
        item: T,
        waiting: Option<&mut bool>,
    ) -> Result<(), TryEnqueueError<T>> {
        let trace = Enqueued::capture(self.stamp_items);
        let mut state = self.lock();
        let result = if state.closed {
            Err(TryEnqueueError::Closed(item))
        } else if state.items.len() >= self.config.capacity {
            Err(TryEnqueueError::Full(item))
        } else {
            let id = state.next_id;
            state.next_id += 1;
            state.counts.enqueued += 1;
            state.items.push_back(Queued { id, item, trace });
            if state.idle.wake_one() {
                self.wake.notify_one();
            }
            self.meters.enqueued();
            self.update_gauges(&state);
            self.queue_changed(&state);
            Ok(())
        };
        if let Some(waiting) = waiting {
            let now_waiting = matches!(result, Err(TryEnqueueError::Full(_)));
            match (*waiting, now_waiting) {
                (false, true) => state.waiting_producers += 1,
                (true, false) => state.waiting_producers -= 1,
                _ => {}
            }
            *waiting = now_waiting;
        }
        result
    }

    /// Forgets a producer that stopped waiting (its `enqueue` future was dropped).
    pub(super) fn abandon_wait(&self) {
        let mut state = self.lock();
        state.waiting_producers -= 1;
        if state.waiting_producers > 0 {
            // It may have consumed a wake-up meant for the others.
            self.space.notify_one();
        }
    }

    pub(super) fn space(&self) -> &Notify {
        &self.space
    }

    pub(super) fn settled(&self) -> &Notify {
        &self.settled
    }

    /// One look at the state by a slot: records the outcome of its previous item, then
    /// decides what to do next.
    ///
    /// `register` makes the slot reachable by the next `notify_one`; it is called under the
    /// lock when the slot decides to wait for items (see [`IdleSlots`]).
    pub(super) fn step(
        &self,
        finished: Option<Outcome>,
        waiting: &mut Waiting,
        register: impl FnOnce(),
    ) -> Step<T> {
        let mut state = self.lock();
        let had_timer = Self::stop_waiting(&mut state, std::mem::replace(waiting, Waiting::No));
        let finished_any = finished.is_some();
        let step = self.decide(&mut state, finished, waiting, register);
        if finished_any {
            self.update_gauges(&state);
        }
        let has_timer = *waiting == (Waiting::OnGate { timer: true });
        if state.held.hand_over(had_timer, has_timer) {
            // It gave up the `max_defer` timer (it starts the timed-out head, say): another
            // held slot must take it over for the next head, so wake one; whichever slot
            // looks next re-arms it.
            self.wake.notify_one();
        }
        step
    }

    /// The decision part of [`step`](Self::step), under the lock.
    fn decide(
        &self,
        state: &mut State<T>,
        finished: Option<Outcome>,
        waiting: &mut Waiting,
        register: impl FnOnce(),
    ) -> Step<T> {
        if let Some(outcome) = finished {
            Self::record(state, outcome);
            self.notify_if_settled(state);
        }
        if state.shutting_down || state.workers > state.target {
            state.workers -= 1;
            return Step::Exit;
        }
        if state.items.is_empty() {
            if state.closed {
                state.workers -= 1;
                return Step::Exit;
            }
            register();
            state.idle.park();
            *waiting = Waiting::ForItems;
            return Step::Wait {
                deadline: None,
                gate: self.gate.answer(),
            };
        }
        let gate = self.gate.answer();
        let limit = gate.limit(state.target);
        let mut probe = false;
        if state.active >= limit {
            probe = self.may_probe(state, gate);
            if !probe {
                if let Some(wait) = self.hold(state, waiting, gate) {
                    return wait;
                }
            }
        }
        if !self.policies.is_empty() {
            self.policies_see_start(state, limit, probe);
        }
        self.take_head(state)
    }

    /// Policies learn that the head starts: a half-open breaker counts it as a probe (when
    /// its owner does not defer on the breaker's own signal, every start is one, so the
    /// breaker can close), and an adaptive limit that work is waiting for room under it.
    fn policies_see_start(&self, state: &State<T>, limit: usize, probe: bool) {
        let Some(head) = state.items.front() else {
            return;
        };
        if !probe {
            self.policies.try_probe(head.id, |_| true);
        }
        // After this start, `active + 1` run; more waiting means the limit is what holds.
        if state.items.len() > 1 && state.active + 1 >= limit {
            self.policies.saturated();
        }
    }

    /// Undoes the bookkeeping of a slot's wait, now that it looks at the state again;
    /// returns whether it held the `max_defer` timer.
    fn stop_waiting(state: &mut State<T>, waiting: Waiting) -> bool {
        match waiting {
            Waiting::No => false,
            Waiting::ForItems => {
                state.idle.unpark();
                false
            }
            Waiting::OnGate { timer } => {
                state.counts.gate_rechecks += 1;
                state.idle.saw_wake_up();
                state.held.release(timer);
                timer
            }
        }
    }

    /// The gate holds the head (closed, or as many items running as a level allows): decides
    /// how the slot waits, or returns `None` when the head has been held for `max_defer` and
    /// starts anyway.
    ///
    /// Held slots sleep until something can change the gate's answer (the sink and the
    /// coordinator wake them). The only timer is the head's `max_defer` deadline, armed by
    /// one held slot per coordinator.
    fn hold(&self, state: &mut State<T>, waiting: &mut Waiting, gate: Answer) -> Option<Step<T>> {
        // A pause is not a deferral: it holds work for as long as it lasts, and the head's
        // `max_defer` clock starts afresh when signals hold it after the pause.
        let limit = if self.gate.is_paused() {
            state.head_held_since = None;
            None
        } else {
            self.max_defer
        };
        let deadline = match limit {
            None => None,
            Some(limit) => {
                // Read the clock only when a deadline applies: never on the hot path.
                let now = Instant::now();
                let held_since = *state.head_held_since.get_or_insert(now);
                match held_since.checked_add(limit) {
                    Some(deadline) if deadline <= now => {
                        state.counts.defer_timeouts += 1;
                        self.meters.defer_timeout();
                        tracing::warn!(
                            sink = %self.labels.sink,
                            worker = %self.labels.worker,
                            held_ms = limit.as_millis() as u64,
                            "backpressure: an item held for `max_defer` starts anyway"
                        );
                        return None;
                    }
                    // Beyond what `Instant` can represent: no timer.
                    deadline => deadline,
                }
            }
        };
        let timer = state.held.hold(deadline.is_some());
        *waiting = Waiting::OnGate { timer };
        Some(Step::Wait {
            deadline: deadline.filter(|_| timer),
            gate,
        })
    }

    /// Whether the held head may start anyway as a half-open breaker's probe: only the
    /// owner's own signals (its policies' entries, keyed by its name) hold it, and the
    /// breaker has probes left. Also tells adaptive
    /// policies that work waits for room under their limit. Free without policies.
    fn may_probe(&self, state: &State<T>, gate: Answer) -> bool {
        if self.policies.is_empty() || self.gate.is_paused() {
            return false;
        }
        if gate != Answer::Closed {
            self.policies.saturated();
        }
        let (Some(head), Some(pattern)) = (state.items.front(), self.gate.defer_pattern()) else {
            return false;
        };
        let sink = &self.context.sink;
        self.policies
            .try_probe(head.id, |owner| held_only_by(sink, pattern, owner))
    }

    /// Takes the head of the queue for a slot to start.
    fn take_head(&self, state: &mut State<T>) -> Step<T> {
        let held_since = state.head_held_since.take();
        let Some(mut queued) = state.items.pop_front() else {
            unreachable!("the queue was checked to be non-empty under the same lock")
        };
        state.active += 1;
        if state.waiting_producers > 0 {
            self.space.notify_one();
        }
        self.update_gauges(state);
        self.queue_changed(state);
        if self.gate.cancels() {
            return Step::Job(Job::Skip(queued));
        }
        let started = queued
            .trace
            .take()
            .map(|trace| Started::new(trace, held_since));
        self.meters.started(started.as_ref());
        Step::Job(Job::Run(queued, started))
    }

    /// Tells a watermark policy about the queue.
    fn queue_changed(&self, state: &State<T>) {
        if self.watch_queue {
            let oldest = state.items.front().and_then(|q| q.trace.as_ref());
            self.policies
                .queue_changed(state.items.len(), oldest.map(|t| t.at()));
        }
    }

    /// Sets the metrics' gauges (the `metrics` feature; nothing otherwise).
    fn update_gauges(&self, state: &State<T>) {
        #[cfg(feature = "metrics")]
        {
            let open = self.gate.answer().limit(state.target) >= state.target;
            self.meters
                .gauges(state.items.len(), state.active, state.target, open);
        }
        #[cfg(not(feature = "metrics"))]
        let _ = state;
    }

    /// Wakes `drain` / `shutdown` waiters if nothing remains for them to wait for.
    fn notify_if_settled(&self, state: &State<T>) {
        if Self::is_settled(state) {
            self.settled.notify_waiters();
        }
    }

    fn is_settled(state: &State<T>) -> bool {
        // `workers == 0` with items left only happens when every slot task ended abnormally
        // (see `abandon_slot`): nothing can run them, so waiting would never end.
        state.closed
            && state.active == 0
            && (state.items.is_empty() || state.shutting_down || state.workers == 0)
    }

    /// Counts how a started item ended.
    fn record(state: &mut State<T>, outcome: Outcome) {
        state.active -= 1;
        let counts = &mut state.counts;
        match outcome {
            Outcome::Completed => counts.completed += 1,
            Outcome::Failed => counts.failed += 1,
            Outcome::Panicked => counts.panicked += 1,
            Outcome::Skipped => counts.skipped += 1,
        }
    }

    /// Settles the accounts of a slot task that ended without reaching `Step::Exit`: its
    /// runtime shut down (tokio drops the task mid-`await`) or a panic escaped it.
    ///
    /// `finished` is an outcome not yet recorded; `running` says an item was in flight, which
    /// is counted as panicked if a panic is unwinding and as failed otherwise. When the last
    /// slot is gone, intake closes, so producers get their items back instead of queueing
    /// work that nothing will run, and `drain` / `shutdown` stop waiting for it.
    pub(super) fn abandon_slot(&self, finished: Option<Outcome>, running: bool, waiting: Waiting) {
        let mut state = self.lock();
        let had_timer = Self::stop_waiting(&mut state, waiting);
        if state.held.hand_over(had_timer, false) {
            // Another held slot takes the `max_defer` timer over.
            self.wake.notify_one();
        }
        if let Some(outcome) = finished {
            Self::record(&mut state, outcome);
        } else if running {
            let outcome = if std::thread::panicking() {
                Outcome::Panicked
            } else {
                Outcome::Failed
            };
            tracing::error!(
                ?outcome,
                "a backpressure slot ended while its item was running (its runtime shut down \
                 or a panic escaped); the item is counted as not completed"
            );
            Self::record(&mut state, outcome);
        }
        state.workers -= 1;
        let last = state.workers == 0 && !state.closed;
        if last {
            state.closed = true;
        }
        self.notify_if_settled(&state);
        drop(state);
        if last {
            self.space.notify_waiters();
        }
    }

    /// Whether `drain` / `shutdown` may return.
    pub(super) fn settled_now(&self) -> bool {
        Self::is_settled(&self.lock())
    }

    /// Closes intake; returns whether it was open.
    pub(super) fn close(&self) -> bool {
        self.close_intake(false)
    }

    /// Closes intake and stops slots from starting anything.
    pub(super) fn begin_shutdown(&self) {
        self.close_intake(true);
    }

    /// Closes intake (and with `shutdown`, stops slots from starting anything), then wakes
    /// everyone who must notice; returns whether intake was open.
    fn close_intake(&self, shutdown: bool) -> bool {
        let mut state = self.lock();
        let was_open = !state.closed;
        state.closed = true;
        state.shutting_down |= shutdown;
        self.notify_if_settled(&state);
        drop(state);
        self.wake_all_slots();
        self.space.notify_waiters();
        was_open
    }

    /// Takes every unstarted item out of the queue, counting them as returned.
    pub(super) fn take_unstarted(&self) -> Vec<T> {
        let mut state = self.lock();
        let items: Vec<T> = state.items.drain(..).map(|q| q.item).collect();
        state.counts.returned += items.len() as u64;
        items
    }

    /// Sets the number of slots; returns how many new slot tasks the caller must spawn.
    pub(super) fn set_target(&self, target: usize) -> usize {
        let mut state = self.lock();
        state.target = target;
        let missing = target.saturating_sub(state.workers);
        state.workers += missing;
        self.update_gauges(&state);
        drop(state);
        // Surplus idle slots notice and leave.
        self.wake_all_slots();
        missing
    }

    /// Wakes held slots after a pause/resume change.
    pub(super) fn gate_changed(&self) {
        self.wake_all_slots();
    }

    fn wake_all_slots(&self) {
        self.epoch.bump();
        self.wake.notify_waiters();
    }

    /// The control epoch; see the field's docs.
    pub(super) fn epoch(&self) -> &Epoch {
        &self.epoch
    }

    pub(super) fn stats(&self) -> Stats {
        let state = self.lock();
        let limit = self.gate.answer().limit(state.target);
        let gate_open = limit >= state.target;
        let counts = &state.counts;
        Stats {
            queued: state.items.len(),
            deferred: if gate_open { 0 } else { state.items.len() },
            active: state.active,
            enqueued: counts.enqueued,
            completed: counts.completed,
            failed: counts.failed,
            panicked: counts.panicked,
            skipped: counts.skipped,
            defer_timeouts: counts.defer_timeouts,
            returned: counts.returned,
            gate_rechecks: counts.gate_rechecks,
            concurrency: state.target,
            gate_open,
            limit,
            paused: self.gate.is_paused(),
            closed: state.closed,
        }
    }
}

impl<T: Send> Host for Shared<T> {
    fn wake_slots(&self) {
        self.wake_all_slots();
    }
}
