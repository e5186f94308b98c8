//! What happened: a bounded ring of transitions (signal bars, gate spans, policy changes)
//! and of per-second samples of each worker, kept by the admin router so that the page and
//! `GET api/history` can show the last minutes.
//!
//! `ring.rs` holds the data and its bounds (`samples.rs` a worker's samples and their rates), `recorder.rs` the task that feeds it from the
//! sinks' subscriptions and a one-second tick, `view.rs` its JSON. Time comes from tokio
//! (`tokio::time::Instant`), turned into wall-clock milliseconds through one anchor taken
//! when the router is built, so that tests on tokio's paused clock see exact durations.

mod clock;
mod recorder;
mod ring;
mod samples;
mod view;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;
use tokio::time::Instant;

pub(crate) use clock::Clock;
pub(crate) use recorder::start;
pub(crate) use ring::Limits;
pub(crate) use view::HistoryView;

use ring::Ring;

/// The history of one router: the ring behind a lock, and a channel that carries the
/// ring's revision to the event streams.
#[derive(Debug)]
pub(crate) struct History {
    ring: Mutex<Ring>,
    clock: Clock,
    revision: watch::Sender<u64>,
    started: AtomicBool,
}

impl History {
    pub(crate) fn new(limits: Limits) -> Self {
        Self {
            ring: Mutex::new(Ring::new(limits)),
            clock: Clock::now(),
            revision: watch::Sender::new(0),
            started: AtomicBool::new(false),
        }
    }

    /// The ring's revision whenever something worth sending changed: a stream then sends
    /// what is newer than its last one.
    pub(crate) fn watch(&self) -> watch::Receiver<u64> {
        self.revision.subscribe()
    }

    /// What changed after revision `since` (everything for 0). A `since` this ring has not
    /// reached (a page of another router, one restarted since), or one older than something
    /// dropped since (its last state would be missing), gets everything too, as `since` 0:
    /// the client must replace what it holds.
    pub(crate) fn view(&self, since: u64) -> HistoryView {
        let now_ms = self.clock.ms(Instant::now());
        let ring = self.lock();
        let stale = since < ring.dropped() || since > ring.revision();
        let since = if stale { 0 } else { since };
        HistoryView::new(&ring, since, now_ms)
    }

    /// Claims the right to start the recorder: true once.
    fn claim_start(&self) -> bool {
        !self.started.swap(true, Ordering::AcqRel)
    }

    /// Changes the ring and publishes its new revision.
    fn change<R>(&self, apply: impl FnOnce(&mut Ring, &Clock) -> R) -> R {
        let mut ring = self.lock();
        let before = ring.news();
        let out = apply(&mut ring, &self.clock);
        let after = ring.news();
        drop(ring);
        if after != before {
            self.revision.send_replace(after);
        }
        out
    }

    fn lock(&self) -> MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
