//! A slot's look at the coordinator's state: the slot side of the wake protocols.
//!
//! [`Shared::step`] records the outcome of the slot's previous item and decides what it does
//! next: run or skip the head ([`take_head`](Shared::take_head)), leave, or wait: for items
//! (the idle-slot protocol, [`IdleSlots`](crate::sync::IdleSlots)) or on the gate
//! ([`hold`](Shared::hold), with the coordinator's one `max_defer` timer,
//! [`HeldSlots`](crate::sync::HeldSlots)). [`Shared::abandon_slot`] settles the accounts of a
//! slot that ended any other way.

use tokio::time::Instant;

use super::gate::Answer;
use super::intake::Taken;
use super::outcome::Outcome;
use super::rate::Refusal;
use super::retry_book::Finished;
use super::state::{Shared, State};
use super::telemetry::{StartDelays, Started};
use crate::sink::ProbeClaim;
use crate::sync::lock;

/// What a slot should do next. A job that starts as a probe of half-open verdicts carries
/// its claim: reported when the item finishes, given back if it never does (skipped, cut
/// short, dropped).
pub(super) enum Job<T> {
    Run(Taken<T>, Option<Started>, Option<ProbeClaim>),
    Skip(Taken<T>, Option<ProbeClaim>),
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
    /// One look at the state by a slot: records the outcome of its previous item, then
    /// decides what to do next.
    ///
    /// `register` makes the slot reachable by the next `notify_one`; it is called under the
    /// lock when the slot decides to wait for items (see [`IdleSlots`](crate::sync::IdleSlots)).
    pub(super) fn step(
        &self,
        finished: Option<Finished<T>>,
        waiting: &mut Waiting,
        register: impl FnOnce(),
    ) -> Step<T> {
        let mut state = self.lock();
        let had_timer = self.stop_waiting(&mut state, std::mem::replace(waiting, Waiting::No));
        let finished_any = finished.is_some();
        let step = self.decide(&mut state, finished, waiting, register);
        if finished_any {
            self.update_gauges(&mut state);
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
        finished: Option<Finished<T>>,
        waiting: &mut Waiting,
        register: impl FnOnce(),
    ) -> Step<T> {
        if let Some(finished) = finished {
            self.record(state, finished);
            self.notify_if_settled(state);
        }
        if state.shutting_down || state.workers > state.target {
            state.workers -= 1;
            return Step::Exit;
        }
        if state.items.is_empty() {
            // Both halves empty: wait for a push (or a retry coming due), registered under the
            // intake's lock so that the push that follows sees this slot idle.
            let leave_when_empty = state.closed && state.retries.waiting() == 0;
            let empty = self.refill(state, |intake| {
                if !leave_when_empty {
                    register();
                    intake.idle.park();
                }
            });
            if empty.is_some() {
                if leave_when_empty {
                    // Slots that parked while a retry was still to come are woken when the
                    // last outcome settles the coordinator (`notify_if_settled`).
                    state.workers -= 1;
                    return Step::Exit;
                }
                *waiting = Waiting::ForItems;
                return Step::Wait {
                    deadline: None,
                    gate: self.gate.answer(),
                };
            }
        }
        let gate = self.gate.answer();
        let limit = gate.limit(state.target);
        let mut probe = None;
        if state.active >= limit {
            probe = self.probe(state, gate);
            if probe.is_none() {
                if let Some(wait) = self.hold(state, waiting, gate) {
                    return wait;
                }
            }
        }
        if let Some(wait) = self.quotas_hold(state, waiting, gate) {
            // A quota, not the gate, holds the head: its probes (if any) go back.
            drop(probe);
            return wait;
        }
        if !self.policies.is_empty() {
            self.policies_see_start(state, limit, &mut probe);
        }
        self.take_head(state, probe)
    }

    /// The worker's quotas on the head's start (a skip, under `cancel_on`, is not a start):
    /// a permit of its `global_concurrency` (held without a deadline: a grant wakes the
    /// slots), then its rate (held until the allowed instant; the permit goes back).
    fn quotas_hold(
        &self,
        state: &mut State<T>,
        waiting: &mut Waiting,
        gate: Answer,
    ) -> Option<Step<T>> {
        // A worker without quotas (the common case) reads nothing more per start.
        if (self.permits.is_none() && self.rate.is_none()) || self.gate.cancels() {
            return None;
        }
        if let Some(permits) = &self.permits {
            if permits.try_take().is_err() {
                state.head_permit_waited = true;
                state.effects.wake_permit_server();
                let timer = state.held.hold(false);
                *waiting = Waiting::OnGate { timer };
                return Some(Step::Wait {
                    deadline: None,
                    gate,
                });
            }
        }
        let Some(refusal) = self.rate_refuses(state) else {
            let quota =
                self.permits.is_some() || self.rate.as_ref().is_some_and(|r| r.tokens().is_some());
            if quota && state.held.held() > 0 {
                // This start took a freed permit or a token (which cleared `wanted`); held
                // slots sleep until a grant, so one looks at the next head (after the lock):
                // it takes a permit, or tells the connector again that a start waits. Only
                // a start wakes one (a permit put back because the rate refused does not),
                // so the wakes end.
                state.effects.wake_held_slot();
            }
            return None;
        };
        if let Some(permits) = &self.permits {
            permits.put_back();
            state.effects.wake_permit_server();
        }
        Some(self.hold_for_rate(state, waiting, refusal, gate))
    }

    /// Whether the worker's rate refuses the head's start now (taking the start if it
    /// allows it): why.
    fn rate_refuses(&self, state: &mut State<T>) -> Option<Refusal> {
        let rate = self.rate.as_ref()?;
        let refusal = rate.try_start().err()?;
        if !std::mem::replace(&mut state.head_rate_limited, true) {
            state.counts.rate_limited += 1;
            state.effects.rate_limited();
        }
        Some(refusal)
    }

    /// The rate holds the head: until the allowed instant, on one held slot per coordinator
    /// (the same single timer as `max_defer`'s, handed over the same way); or, for a shared
    /// rate without a token, without a deadline (the connector is asked, its grant wakes).
    fn hold_for_rate(
        &self,
        state: &mut State<T>,
        waiting: &mut Waiting,
        refusal: Refusal,
        gate: Answer,
    ) -> Step<T> {
        let until = match refusal {
            Refusal::Until(until) => Some(until),
            Refusal::NoToken => {
                state.effects.wake_rate_server();
                None
            }
        };
        let timer = state.held.hold(until.is_some());
        *waiting = Waiting::OnGate { timer };
        Step::Wait {
            deadline: until.filter(|_| timer),
            gate,
        }
    }

    /// Policies learn that the head starts: each half-open breaker of the worker's own counts
    /// it as a probe if it has one left (when its owner does not defer on the breaker's own
    /// signal, every start is one, so the breaker can close), and an adaptive limit that work
    /// is waiting for room under it.
    fn policies_see_start(&self, state: &State<T>, limit: usize, probe: &mut Option<ProbeClaim>) {
        let claim = probe.get_or_insert_with(ProbeClaim::default);
        self.policies.claim_own(claim);
        if claim.is_empty() {
            *probe = None;
        }
        // After this start, `active + 1` run; more waiting means the limit is what holds.
        if self.space_count.queued() > 1 && state.active + 1 >= limit {
            self.policies.saturated();
        }
    }

    /// Undoes the bookkeeping of a slot's wait, now that it looks at the state again;
    /// returns whether it held the `max_defer` timer.
    fn stop_waiting(&self, state: &mut State<T>, waiting: Waiting) -> bool {
        match waiting {
            Waiting::No => false,
            Waiting::ForItems => {
                lock(&self.intake).idle.unpark();
                false
            }
            Waiting::OnGate { timer } => {
                state.counts.gate_rechecks += 1;
                lock(&self.intake).idle.saw_wake_up();
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
        //
        // Nor does `max_defer` force work past a breaker's verdict, open or half-open: the
        // item waits for it (probing is the way through), and its clock starts afresh if only
        // plain signals hold it later.
        let limit = if self.gate.is_paused() || self.gate.held_by_verdict() {
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
                        state.effects.defer_timeout(limit);
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

    /// Whether the held head may start anyway as a probe: only half-open verdicts hold it
    /// (never a pause, a plain signal or an open verdict), and every one of them hands out a
    /// probe (all or none: the claim). Also tells adaptive policies that work waits for room
    /// under their limit.
    ///
    /// The sources are collected under the sink's lock and claimed after its release (a
    /// policy's lock is never taken under the sink's).
    fn probe(&self, state: &State<T>, gate: Answer) -> Option<ProbeClaim> {
        if self.gate.is_paused() {
            return None;
        }
        if matches!(gate, Answer::Limited(_)) && !self.policies.is_empty() {
            self.policies.saturated();
        }
        let (Answer::HalfOpen(_), Some(pattern)) = (gate, self.gate.defer_pattern()) else {
            return None;
        };
        state.items.front()?;
        let sources = self.context.sink.probe_sources(pattern)?;
        ProbeClaim::claim_all(sources)
    }

    /// Takes the head of the queue for a slot to start.
    fn take_head(&self, state: &mut State<T>, probe: Option<ProbeClaim>) -> Step<T> {
        let held_since = state.head_held_since.take();
        let Some(queued) = state.items.pop_front() else {
            unreachable!("the queue was checked to be non-empty under the same lock")
        };
        // FIFO: an item without a trace is the one whose id is the take count.
        let taken_before = self.space_count.taken_total();
        let mut queued = Taken {
            id: queued
                .trace
                .as_ref()
                .map_or(taken_before, |trace| trace.id()),
            item: queued.item,
            trace: queued.trace,
        };
        state.retries.at_head = state.retries.at_head.saturating_sub(1);
        let delays = StartDelays {
            rate_limited: std::mem::take(&mut state.head_rate_limited),
            permit_waited: std::mem::take(&mut state.head_permit_waited),
        };
        state.active += 1;
        if self.retrying.is_some() {
            // It keeps its place in `capacity` until its final outcome.
            self.space_count.keep(1);
            self.space_count.taken(1);
        } else if self.space_count.taken(1) {
            state.effects.wake_producer();
        }
        self.update_gauges(state);
        self.queue_changed(state);
        if self.gate.cancels() {
            return Step::Job(Job::Skip(queued, probe));
        }
        let started = queued
            .trace
            .take()
            .map(|trace| Started::new(trace, held_since, delays));
        Step::Job(Job::Run(queued, started, probe))
    }

    /// Settles the accounts of a slot task that ended without reaching `Step::Exit`: its
    /// runtime shut down (tokio drops the task mid-`await`) or a panic escaped it.
    ///
    /// `finished` is an outcome not yet recorded; `running` says an item was in flight, which
    /// is counted as panicked if a panic is unwinding and as failed otherwise. When the last
    /// slot is gone, intake closes, so producers get their items back instead of queueing
    /// work that nothing will run, and `drain` / `shutdown` stop waiting for it.
    pub(super) fn abandon_slot(
        &self,
        finished: Option<Finished<T>>,
        running: bool,
        waiting: Waiting,
    ) {
        let mut state = self.lock();
        let had_timer = self.stop_waiting(&mut state, waiting);
        if state.held.hand_over(had_timer, false) {
            // Another held slot takes the `max_defer` timer over.
            self.wake.notify_one();
        }
        if let Some(finished) = finished {
            self.record(&mut state, finished);
        } else if running {
            let outcome = if std::thread::panicking() {
                Outcome::Panicked
            } else {
                Outcome::Failed
            };
            state.effects.abandoned(outcome);
            self.record(&mut state, Finished::only(outcome));
        }
        state.workers -= 1;
        let last = state.workers == 0 && !state.closed;
        if last {
            state.closed = true;
            lock(&self.intake).closed = true;
        }
        self.notify_if_settled(&mut state);
        drop(state);
        if last {
            self.space().notify_waiters();
            self.close_quotas();
        }
    }
}
