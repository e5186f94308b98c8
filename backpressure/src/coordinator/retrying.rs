//! Retries on the coordinator's side: what a finished attempt of a worker with `retry(...)`
//! leaves to do, the one timer structure its waiting retries sit in, and its dead letters.
//!
//! A failed attempt with attempts left goes into [`RetryBook`](super::retry_book::RetryBook), a min-heap by due instant kept
//! under the state's lock: no task or timer per item. One timer task per coordinator
//! ([`run_retry_timer`]) sleeps until the earliest due instant (woken early only when an
//! earlier one is inserted, or at shutdown), then moves every due item to the **head** of the
//! run-ahead, where it obeys the gate like any item: a due retry of a held worker waits for
//! the verdict. Such a worker's items keep their place in `capacity` from their enqueue to
//! their final outcome ([`Space::keep`](crate::sync::Space::keep)), so a retry never needs
//! room it does not have.
//!
//! The decision (retry, dead letter, handed back) is taken by the slot outside every lock
//! ([`Shared::follow_up`]), where a dead letter also goes to its callback (user code) or its
//! buffer; the state's lock then only counts it ([`Shared::settle_attempt`]).

use std::sync::{Arc, Weak};

use tokio::sync::Notify;
use tokio::time::Instant;

use super::intake::{Queued, Taken};
use super::outcome::Outcome;
use super::retry_book::{Due, Fault, Then};
use super::state::{Shared, State};
use super::telemetry::Enqueued;
use crate::retry::{DeadLetter, DeadLetterRecord};
use crate::sync::{lock, notified_or_deadline};

impl<T> Shared<T> {
    /// A copy of the item for a later attempt (workers with `retry(...)` only).
    ///
    /// `Clone` is user code: a panic in it is caught and comes back as its message.
    pub(super) fn keep(&self, item: &T) -> Result<Option<T>, String> {
        let Some(retrying) = &self.retrying else {
            return Ok(None);
        };
        let copy = std::panic::AssertUnwindSafe(|| (retrying.clone)(item));
        std::panic::catch_unwind(copy).map(Some).map_err(|panic| {
            let text = super::slot::panic_message(&*panic).to_owned();
            super::slot::drop_panic_payload(panic);
            text
        })
    }

    /// An item whose `Clone` panicked cannot be retried, so it is not run: it becomes a
    /// permanent dead letter at once (nothing is lost), counted as panicked.
    pub(super) fn uncopyable(
        &self,
        queued: Taken<T>,
        enqueued: &Enqueued,
        panic: String,
    ) -> Then<T> {
        let Some(retrying) = &self.retrying else {
            return Then::Final;
        };
        let attempt = enqueued.attempt();
        let fault = Fault {
            text: format!("its `Clone` panicked ({panic}): an item that cannot be copied cannot be retried, so it was not run"),
            permanent: true,
        };
        self.log_final(queued.id, attempt, &fault);
        self.meters.dead_lettered();
        retrying.deliver(DeadLetter {
            item: queued.item,
            record: DeadLetterRecord {
                id: crate::ItemId(queued.id),
                error: fault.text,
                attempts: attempt - 1,
                permanent: true,
                first_enqueued_at: enqueued.first_at(),
                failed_at: Instant::now(),
            },
        });
        Then::DeadLettered
    }

    /// Decides what follows a finished attempt of a worker with `retry(...)`: `kept` is the
    /// copy taken before it ran, `enqueued` what the item carried. Runs outside every lock:
    /// it logs, and a dead letter goes to its callback or buffer here.
    pub(super) fn follow_up(
        &self,
        outcome: Outcome,
        fault: Option<Fault>,
        kept: T,
        enqueued: Box<Enqueued>,
        id: u64,
    ) -> Then<T> {
        let Some(retrying) = &self.retrying else {
            return Then::Final;
        };
        if !outcome.is_failure() {
            return drop_copy(kept, id);
        }
        if self.context.token.is_cancelled() {
            return Then::Return(kept);
        }
        let attempt = enqueued.attempt();
        let fault = fault.unwrap_or_else(|| Fault {
            text: outcome.as_str().to_owned(),
            permanent: false,
        });
        if fault.permanent || attempt >= retrying.retry.attempts {
            self.log_final(id, attempt, &fault);
            self.meters.dead_lettered();
            retrying.deliver(DeadLetter {
                item: kept,
                record: DeadLetterRecord {
                    id: crate::ItemId(id),
                    error: fault.text,
                    attempts: attempt,
                    permanent: fault.permanent,
                    first_enqueued_at: enqueued.first_at(),
                    failed_at: Instant::now(),
                },
            });
            return Then::DeadLettered;
        }
        let delay = {
            let mut jitter = lock(&retrying.jitter);
            retrying.retry.jittered_delay(attempt, &mut **jitter)
        };
        self.meters.retried();
        tracing::warn!(
            sink = %self.labels.sink,
            worker = %self.labels.worker,
            item_id = id,
            attempt,
            error = %fault.text,
            retry_in_ms = delay.as_millis() as u64,
            "backpressure: an attempt failed; the item will be retried"
        );
        let at = Instant::now().checked_add(delay).unwrap_or_else(far_future);
        let queued = Queued {
            item: kept,
            trace: Some(enqueued.next_attempt()),
        };
        Then::Retry { at, queued }
    }

    fn log_final(&self, id: u64, attempt: u32, fault: &Fault) {
        tracing::error!(
            sink = %self.labels.sink,
            worker = %self.labels.worker,
            item_id = id,
            attempt,
            error = %fault.text,
            permanent = fault.permanent,
            "backpressure: an item failed for the last time and is dead-lettered"
        );
    }

    /// Counts a finished attempt's follow-up under the state's lock.
    pub(super) fn settle_attempt(&self, state: &mut State<T>, outcome: Outcome, then: Then<T>) {
        let counts = &mut state.counts;
        counts.timed_out += u64::from(outcome == Outcome::TimedOut);
        let final_place = match then {
            Then::Final => {
                counts.count_final(outcome);
                true
            }
            Then::DeadLettered => {
                counts.count_final(outcome);
                counts.dead_lettered += 1;
                true
            }
            Then::Return(item) => {
                counts.returned += 1;
                state.retries.cut_short.push(item);
                true
            }
            Then::Retry { at, queued } => {
                counts.retried += 1;
                let book = &mut state.retries;
                let earliest = book.waiting.peek().is_none_or(|top| at < top.at);
                book.waiting.push(Due { at, queued });
                if earliest {
                    state.effects.wake_retry_timer();
                }
                false
            }
        };
        if final_place && self.retrying.is_some() && self.space_count.release_kept(1) {
            state.effects.wake_producer();
        }
    }

    /// Moves every retry due by `now` to the head of the run-ahead (earliest first) and wakes
    /// idle slots for them; returns the next due instant, `None` if none waits, or `Err` once
    /// the coordinator shut down and nothing is left.
    fn release_due(&self, now: Instant) -> Result<Option<Instant>, ()> {
        let mut state = self.lock();
        let mut due = Vec::new();
        while state
            .retries
            .waiting
            .peek()
            .is_some_and(|top| top.at <= now)
        {
            due.extend(state.retries.waiting.pop());
        }
        if !due.is_empty() {
            self.rejoin(&mut state, due, now);
        }
        let next = state.retries.waiting.peek().map(|top| top.at);
        if next.is_none() && state.shutting_down {
            return Err(());
        }
        Ok(next)
    }

    /// Due retries (earliest first) rejoin the queue at its head, behind the due retries
    /// already there (still held, say), ahead of fresh items.
    fn rejoin(&self, state: &mut State<T>, due: Vec<Due<T>>, now: Instant) {
        let n = due.len();
        let at = state.retries.at_head.min(state.items.len());
        for (k, mut retry) in due.into_iter().enumerate() {
            if let Some(trace) = retry.queued.trace.as_mut() {
                trace.rejoined(now);
            }
            state.items.insert(at + k, retry.queued);
        }
        state.retries.at_head = at + n;
        // Back in the queue: counted queued again, then no longer kept outside it (in this
        // order, so a producer never sees room that is not there).
        self.space_count.untake(n);
        self.space_count.release_kept_quietly(n);
        state.head_held_since = None;
        let mut intake = lock(&self.intake);
        for _ in 0..n {
            if intake.idle.wake_one() {
                self.wake.notify_one();
            }
        }
        drop(intake);
        self.update_gauges(state);
        self.queue_changed(state);
    }

    /// Takes every retry-waiting item and every item cut short by shutdown, counting the
    /// waiting ones as returned (shutdown, under the state's lock).
    pub(super) fn take_retries(&self, state: &mut State<T>) -> Vec<T> {
        let mut waiting: Vec<Due<T>> = state.retries.waiting.drain().collect();
        waiting.sort_by(|a, b| b.cmp(a));
        let n = waiting.len();
        state.counts.returned += n as u64;
        if n > 0 {
            self.space_count.release_kept(n);
        }
        let mut items: Vec<T> = waiting.into_iter().map(|due| due.queued.item).collect();
        items.append(&mut state.retries.cut_short);
        items
    }
}

/// Drops the copy kept for a retry that is not needed: its `Drop` is user code, and a panic
/// there must not turn a success into a lost slot. Nothing follows.
fn drop_copy<T>(kept: T, id: u64) -> Then<T> {
    let drop_it = std::panic::AssertUnwindSafe(move || drop(kept));
    if std::panic::catch_unwind(drop_it).is_err() {
        tracing::error!(item_id = id, "dropping the copy kept for a retry panicked");
    }
    Then::Final
}

/// A deadline beyond what `Instant` can represent: about 30 years ahead.
fn far_future() -> Instant {
    Instant::now() + std::time::Duration::from_secs(86_400 * 365 * 30)
}

/// The coordinator's one retry timer: sleeps until the earliest due retry, releases what is
/// due, and ends once the coordinator is gone or shut down with nothing waiting.
pub(super) async fn run_retry_timer<T>(shared: Weak<Shared<T>>, timer: Arc<Notify>) {
    loop {
        let notified = timer.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let next = {
            let Some(shared) = shared.upgrade() else {
                return;
            };
            match shared.release_due(Instant::now()) {
                Ok(next) => next,
                Err(()) => return,
            }
        };
        notified_or_deadline(notified, next).await;
    }
}
