//! What a worker with `retry(...)` keeps: its options, copies and dead letters
//! ([`Retrying`]), the retries waiting for their instant ([`RetryBook`], under the state's
//! lock), and what a finished attempt leaves to count ([`Finished`], [`Then`]). The
//! transitions are in [`retrying`](super::retrying).

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::intake::Queued;
use super::outcome::Outcome;
use crate::policy::jitter::Jitter;
use crate::retry::{DeadLetter, DeadLetterRecord, Retry};
use crate::sync::{lock, Mutex};

/// `T::clone`, captured where `T: Clone` is known.
pub(super) type CloneFn<T> = fn(&T) -> T;

/// Receives the dead letters of a worker that has one.
pub(super) type DeadLetterCallback<T> = Box<dyn Fn(DeadLetter<T>) + Send + Sync>;

/// What a worker with `retry(...)` keeps besides its state.
pub(super) struct Retrying<T> {
    pub(super) retry: Retry,
    /// `T::clone`, captured by the builder where `T: Clone` is known.
    pub(super) clone: CloneFn<T>,
    on_dead_letter: Option<DeadLetterCallback<T>>,
    dead: Mutex<DeadLetters<T>>,
    pub(super) jitter: Mutex<Box<dyn Jitter>>,
    /// Wakes the retry timer: an earlier due instant, or shutdown.
    pub(super) timer: Arc<Notify>,
}

/// The bounded buffer of dead letters (when no callback takes them).
struct DeadLetters<T> {
    kept: VecDeque<DeadLetter<T>>,
    limit: usize,
    evicted: u64,
}

/// A failed item's failure, as the slot saw it.
#[derive(Debug)]
pub(super) struct Fault {
    pub(super) text: String,
    pub(super) permanent: bool,
}

/// What a finished attempt leaves for the state's lock to count.
pub(super) enum Then<T> {
    /// Its outcome is final and nothing is kept (a worker without `retry`, a success).
    Final,
    /// It runs again at `at`.
    Retry { at: Instant, queued: Queued<T> },
    /// Its last attempt failed; the dead letter is delivered.
    DeadLettered,
    /// Cut short by shutdown and failed: handed back by `shutdown`.
    Return(T),
}

/// A finished attempt: how it ended and what follows.
pub(super) struct Finished<T> {
    pub(super) outcome: Outcome,
    pub(super) then: Then<T>,
}

impl<T> Finished<T> {
    /// An outcome with nothing kept.
    pub(super) fn only(outcome: Outcome) -> Self {
        Self {
            outcome,
            then: Then::Final,
        }
    }
}

/// The retries waiting for their due instant, and items cut short by shutdown (under the
/// state's lock).
pub(super) struct RetryBook<T> {
    pub(super) waiting: BinaryHeap<Due<T>>,
    /// Due retries at the front of the run-ahead, not yet taken: the next batch joins
    /// behind them (so held retries start in due order), ahead of fresh items.
    pub(super) at_head: usize,
    pub(super) cut_short: Vec<T>,
}

impl<T> Default for RetryBook<T> {
    fn default() -> Self {
        Self {
            waiting: BinaryHeap::new(),
            at_head: 0,
            cut_short: Vec::new(),
        }
    }
}

impl<T> RetryBook<T> {
    /// Items waiting for a retry.
    pub(super) fn waiting(&self) -> usize {
        self.waiting.len()
    }
}

/// A retry waiting for its instant; the heap's top is the earliest (ties: the older id).
pub(super) struct Due<T> {
    pub(super) at: Instant,
    pub(super) queued: Queued<T>,
}

impl<T> Due<T> {
    fn key(&self) -> (Instant, u64) {
        let id = self.queued.trace.as_ref().map_or(0, |trace| trace.id());
        (self.at, id)
    }
}

impl<T> Ord for Due<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        other.key().cmp(&self.key())
    }
}

impl<T> PartialOrd for Due<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> PartialEq for Due<T> {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl<T> Eq for Due<T> {}

impl<T> Retrying<T> {
    pub(super) fn new(
        retry: Retry,
        clone: CloneFn<T>,
        on_dead_letter: Option<DeadLetterCallback<T>>,
        limit: usize,
    ) -> Self {
        let jitter = Mutex::new(retry.jitter_source());
        Self {
            retry,
            clone,
            on_dead_letter,
            dead: Mutex::new(DeadLetters {
                kept: VecDeque::new(),
                limit,
                evicted: 0,
            }),
            jitter,
            timer: Arc::new(Notify::new()),
        }
    }

    /// Dead letters kept, and how many were evicted from the full buffer.
    pub(super) fn dead_counts(&self) -> (usize, u64) {
        let dead = lock(&self.dead);
        (dead.kept.len(), dead.evicted)
    }

    /// The records of the kept dead letters, oldest first.
    pub(super) fn dead_records(&self) -> Vec<DeadLetterRecord> {
        lock(&self.dead)
            .kept
            .iter()
            .map(|d| d.record.clone())
            .collect()
    }

    /// Copies of the kept dead letters, oldest first.
    pub(super) fn dead_letters(&self) -> Vec<DeadLetter<T>> {
        let dead = lock(&self.dead);
        (dead.kept.iter())
            .map(|d| DeadLetter {
                item: (self.clone)(&d.item),
                record: d.record.clone(),
            })
            .collect()
    }

    /// Empties the buffer.
    pub(super) fn take_dead_letters(&self) -> Vec<DeadLetter<T>> {
        lock(&self.dead).kept.drain(..).collect()
    }

    /// Puts back dead letters that could not be requeued, at the front (oldest first).
    pub(super) fn restore_dead_letters(&self, back: Vec<DeadLetter<T>>) {
        let mut dead = lock(&self.dead);
        for letter in back.into_iter().rev() {
            dead.kept.push_front(letter);
        }
    }

    /// Hands a dead letter to the callback, or keeps it (evicting the oldest if full). Runs
    /// user code (the callback, an evicted item's `Drop`) with no lock held.
    pub(super) fn deliver(&self, letter: DeadLetter<T>) {
        if let Some(callback) = &self.on_dead_letter {
            let id = letter.record.id;
            let call = std::panic::AssertUnwindSafe(|| callback(letter));
            if std::panic::catch_unwind(call).is_err() {
                tracing::error!(item_id = %id, "the dead-letter callback panicked");
            }
            return;
        }
        let mut dead = lock(&self.dead);
        dead.kept.push_back(letter);
        let evicted = (dead.kept.len() > dead.limit).then(|| dead.kept.pop_front());
        dead.evicted += u64::from(evicted.is_some());
        drop(dead);
        if let Some(Some(old)) = evicted {
            tracing::warn!(
                item_id = %old.record.id,
                "the dead-letter buffer is full: its oldest item is dropped (raise `dead_letters`, \
                 or take them with `take_dead_letters` / `on_dead_letter`)"
            );
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(old)));
        }
    }
}

impl<T> Drop for Retrying<T> {
    fn drop(&mut self) {
        // The coordinator is gone: the timer wakes, finds it gone and ends.
        self.timer.notify_one();
        // Kept dead letters nobody took go with it: say so, never silently.
        let dead = self.dead.get_mut();
        if !dead.kept.is_empty() {
            let ids: Vec<String> = dead.kept.iter().map(|l| l.record.id.to_string()).collect();
            tracing::warn!(
                count = dead.kept.len(),
                item_ids = %ids.join(","),
                "a coordinator was dropped with dead letters nobody took: they are dropped with \
                 it (take them with `take_dead_letters` or `shutdown` first, or give the worker \
                 `on_dead_letter`)"
            );
        }
    }
}
