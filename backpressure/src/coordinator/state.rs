//! The state shared by a coordinator's handles and its slots: the slots' half of the queue
//! (the run-ahead) and every counter of theirs under the state's lock, and the control side's
//! transitions (close, resize, stats). The producers' half is the [`Intake`], under a lock of
//! its own (see [`intake`](super::intake) for the two-lock queue); a slot's look at the state
//! is in [`step`](super::step).
//!
//! A [`Stats`] snapshot is taken under the state's lock, with the push and take totals of
//! [`Space`](crate::sync::Space), so it is always consistent. Each item costs one
//! acquisition of the intake's lock on the producer side and one of the state's lock on the
//! slot side (recording the previous outcome and taking the next item together); a slot takes
//! the intake's lock only when the run-ahead is empty, and then moves every pushed item at
//! once. What a transition must tell the world (wakers of producers and `drain` callers,
//! metrics, traces) is recorded under the lock and performed by the lock guard after release
//! ([`Effects`]), with the `metrics` feature at the cost of a second lock acquisition to
//! publish the gauges in order.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::config::CoordinatorConfig;
use super::context::ContextShared;
use super::effects::{Audience, Effects};
use super::gate::Gate;
use super::intake::{Intake, Queued};
use super::outcome::Outcome;
use super::rate::RateGate;
use super::retry_book::{Finished, RetryBook, Retrying};
use super::stats::Stats;
use super::telemetry::{Gauges, Labels, Meters};
use crate::connector::{Permits, RateTokens};
use crate::policy::{Host, Policies};
use crate::sync::{drain_outbox, lock, Epoch, HeldSlots, Mutex, MutexGuard, Outbox, Space};

/// Callback that receives items skipped by `cancel_on`.
pub(super) type SkipCallback<T> = Box<dyn Fn(T) + Send + Sync>;

/// What becomes of items that do not simply complete: skipped ones, failed ones.
pub(super) struct ItemCare<T> {
    pub(super) on_skip: Option<SkipCallback<T>>,
    pub(super) retrying: Option<Retrying<T>>,
    pub(super) permits: Option<Permits>,
    /// A worker with a shared `rate`: its tokens of the fleet's rate.
    pub(super) rate_tokens: Option<RateTokens>,
}

pub(super) struct Shared<T> {
    state: Mutex<State<T>>,
    /// The producers' half of the queue (lock order: `state`, then `intake`).
    pub(super) intake: Mutex<Intake<T>>,
    /// Items queued in both halves, and producers waiting for space.
    pub(super) space_count: Space,
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
    pub(super) max_defer: Option<Duration>,
    pub(super) on_skip: Option<SkipCallback<T>>,
    /// A worker with `retry(...)`: its copies, timer and dead letters.
    pub(super) retrying: Option<Retrying<T>>,
    /// A worker with `rate(...)`: the starts it lets through.
    pub(super) rate: Option<RateGate>,
    /// A worker with `global_concurrency`: its share of the fleet's permits.
    pub(super) permits: Option<Permits>,
    pub(super) policies: Policies,
    pub(super) labels: Labels,
    pub(super) meters: Meters,
    /// A watermark policy watches the queue (and, with `stamp_items`, its oldest item's age).
    pub(super) watch_queue: bool,
    pub(super) stamp_items: bool,
    /// A push must also update what is kept under the state's lock (a watermark policy, the
    /// metrics' gauges), so it takes that lock too.
    pub(super) push_sees_state: bool,
}

pub(super) struct State<T> {
    /// The run-ahead: the oldest queued items, moved from the intake when it ran empty.
    pub(super) items: VecDeque<Queued<T>>,
    /// Whether intake is closed (set together with `Intake::closed`, under both locks).
    pub(super) closed: bool,
    pub(super) shutting_down: bool,
    /// Configured number of slots.
    pub(super) target: usize,
    /// Live slot tasks.
    pub(super) workers: usize,
    pub(super) active: usize,
    /// Since when the current head of the queue has been held by signals.
    pub(super) head_held_since: Option<Instant>,
    /// Whether the current head's start was delayed by the rate (counted once per item).
    pub(super) head_rate_limited: bool,
    /// Whether the current head's start waited for a `global_concurrency` permit.
    pub(super) head_permit_waited: bool,
    /// Slots waiting on the closed gate, and whether one of them sleeps until the head's
    /// `max_defer` deadline.
    pub(super) held: HeldSlots,
    pub(super) counts: Counts,
    /// Retries waiting for their instant (a worker with `retry(...)`).
    pub(super) retries: RetryBook<T>,
    /// What to do once the lock is released.
    pub(super) effects: Effects,
    /// The latest gauge values not yet published (the `metrics` feature).
    gauges: Outbox<Gauges>,
}

#[derive(Default)]
pub(super) struct Counts {
    completed: u64,
    failed: u64,
    panicked: u64,
    skipped: u64,
    pub(super) defer_timeouts: u64,
    pub(super) returned: u64,
    pub(super) gate_rechecks: u64,
    pub(super) retried: u64,
    pub(super) dead_lettered: u64,
    pub(super) timed_out: u64,
    pub(super) rate_limited: u64,
}

impl Counts {
    /// Counts an item's final outcome (a timeout is a failure).
    pub(super) fn count_final(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Completed => self.completed += 1,
            Outcome::Failed | Outcome::TimedOut => self.failed += 1,
            Outcome::Panicked => self.panicked += 1,
            Outcome::Skipped => self.skipped += 1,
        }
    }
}

/// The coordinator's lock; on release it performs the [`Effects`] recorded under it.
pub(super) struct Locked<'a, T> {
    shared: &'a Shared<T>,
    guard: Option<MutexGuard<'a, State<T>>>,
}

impl<T> Shared<T> {
    pub(super) fn new(
        gate: Gate,
        wake: Arc<Notify>,
        context: Arc<ContextShared>,
        config: CoordinatorConfig,
        care: ItemCare<T>,
        policies: Policies,
        labels: Labels,
    ) -> Self {
        let (on_skip, retrying, permits) = (care.on_skip, care.retrying, care.permits);
        let rate = (care.rate_tokens.map(RateGate::Shared))
            .or_else(|| config.rate.as_ref().map(RateGate::local));
        let watch_queue = policies.watches_queue();
        // Every item of a worker with `retry(...)` carries its attempt; a `timeout` needs the
        // observed path (its own token and timer per running item).
        let stamp_items = policies.stamps_items() || retrying.is_some() || config.timeout.is_some();
        let max_defer = config.max_defer.resolve(config.defer_check_interval);
        Self {
            state: Mutex::new(State {
                items: VecDeque::new(),
                closed: false,
                shutting_down: false,
                target: config.concurrency,
                workers: config.concurrency,
                active: 0,
                head_held_since: None,
                head_rate_limited: false,
                head_permit_waited: false,
                held: HeldSlots::default(),
                counts: Counts::default(),
                retries: RetryBook::default(),
                effects: Effects::default(),
                gauges: Outbox::default(),
            }),
            intake: Mutex::new(Intake::default()),
            space_count: Space::default(),
            gate,
            wake,
            epoch: Epoch::new(),
            space: Notify::new(),
            settled: Notify::new(),
            context,
            config,
            max_defer,
            on_skip,
            retrying,
            rate,
            permits,
            policies,
            meters: Meters::new(&labels),
            labels,
            watch_queue,
            stamp_items,
            push_sees_state: watch_queue || cfg!(feature = "metrics"),
        }
    }

    /// Locks the state; what the transitions record is performed when the guard drops.
    pub(super) fn lock(&self) -> Locked<'_, T> {
        Locked {
            shared: self,
            guard: Some(lock(&self.state)),
        }
    }

    pub(super) fn space(&self) -> &Notify {
        &self.space
    }

    pub(super) fn settled(&self) -> &Notify {
        &self.settled
    }

    /// Tells a watermark policy about the queue (the caller holds only the state's lock).
    pub(super) fn queue_changed(&self, state: &State<T>) {
        self.queue_changed_with(state, None);
    }

    /// Records the metrics' gauges, published after release (the `metrics` feature;
    /// nothing otherwise).
    pub(super) fn update_gauges(&self, state: &mut State<T>) {
        #[cfg(feature = "metrics")]
        {
            let open = self.gate.answer().limit(state.target) >= state.target;
            state.gauges.replace(Gauges {
                queued: self.space_count.queued(),
                active: state.active,
                concurrency: state.target,
                open,
            });
        }
        #[cfg(not(feature = "metrics"))]
        let _ = state;
    }

    /// Wakes `drain` / `shutdown` waiters (after release) if nothing remains for them to
    /// wait for.
    pub(super) fn notify_if_settled(&self, state: &mut State<T>) {
        if self.is_settled(state) {
            state.effects.settled();
            if self.retrying.is_some() {
                // Idle slots of a closed worker may be waiting for retries to come due; none
                // is left, so they must look again and leave.
                state.effects.release_slots();
            }
        }
    }

    fn is_settled(&self, state: &State<T>) -> bool {
        // `workers == 0` with items left only happens when every slot task ended abnormally
        // (see `abandon_slot`): nothing can run them, so waiting would never end. Once closed
        // (seen here under the state's lock), nothing is pushed any more, so the shared count
        // of queued items only falls, and only under this lock: it is exact here.
        let nothing_left = self.space_count.queued() == 0 && state.retries.waiting() == 0;
        state.closed
            && state.active == 0
            && (nothing_left || state.shutting_down || state.workers == 0)
    }

    /// Counts how a started item's attempt ended, and what follows it.
    pub(super) fn record(&self, state: &mut State<T>, finished: Finished<T>) {
        state.active -= 1;
        if let (Some(permits), false) = (&self.permits, finished.outcome == Outcome::Skipped) {
            permits.put_back();
            state.effects.wake_permit_server();
        }
        self.settle_attempt(state, finished.outcome, finished.then);
    }

    /// The control epoch; see the field's docs.
    pub(super) fn epoch(&self) -> &Epoch {
        &self.epoch
    }

    /// Whether `drain` / `shutdown` may return.
    pub(super) fn settled_now(&self) -> bool {
        self.is_settled(&self.lock())
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
        lock(&self.intake).closed = true;
        state.shutting_down |= shutdown;
        self.notify_if_settled(&mut state);
        drop(state);
        self.wake_all_slots();
        self.space.notify_waiters();
        if let Some(retrying) = &self.retrying {
            // Shut down: the timer hands its items back and ends.
            retrying.timer.notify_one();
        }
        self.close_quotas();
        was_open
    }

    /// The connectors serving the worker's fleet-wide quotas learn that it takes no new work.
    pub(super) fn close_quotas(&self) {
        if let Some(permits) = &self.permits {
            permits.close();
        }
        if let Some(tokens) = self.rate.as_ref().and_then(RateGate::tokens) {
            tokens.close();
        }
    }

    /// Takes every unstarted item out of the queue, counting them as returned.
    ///
    /// Then, for a worker with `retry(...)`, the items waiting for a retry (counted as
    /// returned too), the items cut short by shutdown (counted when they ended) and the kept
    /// dead letters (counted as dead-lettered).
    pub(super) fn take_unstarted(&self) -> Vec<T> {
        let mut state = self.lock();
        let mut intake = lock(&self.intake);
        let mut items: Vec<T> = (state.items.drain(..))
            .chain(intake.items.drain(..))
            .map(|q| q.item)
            .collect();
        drop(intake);
        state.retries.at_head = 0;
        state.counts.returned += items.len() as u64;
        // Intake is closed: no producer waits for this space.
        self.space_count.taken(items.len());
        if let Some(retrying) = &self.retrying {
            items.append(&mut self.take_retries(&mut state));
            drop(state);
            let dead = retrying.take_dead_letters();
            items.extend(dead.into_iter().map(|letter| letter.item));
        }
        items
    }

    /// Sets the number of slots; returns how many new slot tasks the caller must spawn.
    pub(super) fn set_target(&self, target: usize) -> usize {
        let mut state = self.lock();
        state.target = target;
        let missing = target.saturating_sub(state.workers);
        state.workers += missing;
        self.update_gauges(&mut state);
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

    /// Whether the worker's rate holds the head's start now.
    pub(super) fn rate_holds(&self) -> bool {
        self.rate.is_some() && self.lock().head_rate_limited
    }

    pub(super) fn stats(&self) -> Stats {
        let state = self.lock();
        // Every take is counted under this lock together with `active` or `returned`, and a
        // push is counted once its item is in the intake: `enqueued - queued` is exactly what
        // the counts below add up to, with no need for the intake's lock.
        let (enqueued, taken) = self.space_count.totals();
        let queued = (enqueued - taken) as usize;
        let limit = self.gate.answer().limit(state.target);
        let gate_open = limit >= state.target;
        let counts = &state.counts;
        Stats {
            queued,
            deferred: if gate_open { 0 } else { queued },
            active: state.active,
            enqueued,
            completed: counts.completed,
            failed: counts.failed,
            panicked: counts.panicked,
            skipped: counts.skipped,
            defer_timeouts: counts.defer_timeouts,
            returned: counts.returned,
            retried: counts.retried,
            dead_lettered: counts.dead_lettered,
            timed_out: counts.timed_out,
            rate_limited: counts.rate_limited,
            rate_holding: self.rate.is_some() && state.head_rate_limited,
            permits: self.permits.as_ref().map(Permits::counts),
            retry_waiting: state.retries.waiting(),
            gate_rechecks: counts.gate_rechecks,
            concurrency: state.target,
            gate_open,
            limit,
            paused: self.gate.is_paused(),
            closed: state.closed,
        }
    }
}

impl<T> std::ops::Deref for Locked<'_, T> {
    type Target = State<T>;

    fn deref(&self) -> &State<T> {
        self.guard.as_ref().expect("held until drop")
    }
}

impl<T> std::ops::DerefMut for Locked<'_, T> {
    fn deref_mut(&mut self) -> &mut State<T> {
        self.guard.as_mut().expect("held until drop")
    }
}

impl<T> Drop for Locked<'_, T> {
    fn drop(&mut self) {
        let Some(mut state) = self.guard.take() else {
            return;
        };
        let effects = std::mem::take(&mut state.effects);
        let gauges = state.gauges.claim();
        drop(state);
        let shared = self.shared;
        effects.perform(Audience {
            space: &shared.space,
            settled: &shared.settled,
            retry_timer: shared.retrying.as_ref().map(|r| &*r.timer),
            permits: shared.permits.as_ref(),
            rate_tokens: shared.rate.as_ref().and_then(RateGate::tokens),
            slots: &shared.wake,
            meters: &shared.meters,
            labels: &shared.labels,
        });
        if let Some(gauges) = gauges {
            drain_outbox(
                &shared.state,
                |state| &mut state.gauges,
                gauges,
                |values| shared.meters.gauges(values),
            );
        }
    }
}

impl<T: Send> Host for Shared<T> {
    fn wake_slots(&self) {
        self.wake_all_slots();
    }
}
