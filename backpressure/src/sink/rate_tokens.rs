//! [`RateTokens`]: a worker's starts of a fleet-wide rate (`rate(..., shared = true)`), kept
//! by its coordinator and granted by a connector (`backpressure-redis`) in small batches.
//!
//! The coordinator spends a token on every start and never does I/O for one. A connector
//! attached to the coordinator's sink **serves** the tokens: it draws them from the fleet's
//! one GCRA (in Redis, on the Redis clock) when a start waits for one, and
//! [`grant`](RateTokens::grant)s them here with a deadline after which unused ones lapse.
//! It waits for what it must react to (a start held for want of a token, the worker closed)
//! with [`changed`](RateTokens::changed). Granting wakes the coordinator's held slots;
//! nothing polls.
//!
//! The fleet counts a token when it is granted, so a token spent late never lets the fleet
//! exceed its rate over the long run; the lapse bounds how many starts a process may bunch
//! up later from tokens drawn earlier.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use tokio::time::Instant;

use super::quota_wakes::QuotaWakes;
use crate::limit::Rate;
use crate::sync::{lock, Mutex};

/// A worker's starts of its fleet-wide [`Rate`], as its process holds them.
#[derive(Clone)]
pub struct RateTokens {
    inner: Arc<Inner>,
}

struct Inner {
    worker: String,
    rate: Rate,
    state: Mutex<TokenState>,
    wakes: QuotaWakes,
}

#[derive(Debug, Clone, Copy)]
struct TokenState {
    available: usize,
    /// When the available tokens lapse.
    until: Instant,
    wanted: bool,
    spent: u64,
    lapsed: u64,
}

/// A snapshot of a worker's tokens of its fleet-wide rate in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RateTokenCounts {
    /// The fleet-wide rate.
    pub rate: Rate,
    /// Starts this process may make now without asking the fleet.
    pub available: usize,
    /// Whether a start waits for a token.
    pub wanted: bool,
    /// Tokens spent on starts so far.
    pub spent: u64,
    /// Tokens that lapsed unused (the fleet counted them: the rate was under-used by that much).
    pub lapsed: u64,
}

impl RateTokens {
    /// The tokens of `worker`, whose fleet-wide rate is `rate`; none granted yet.
    pub(crate) fn new(worker: &str, rate: Rate) -> Self {
        Self {
            inner: Arc::new(Inner {
                worker: worker.to_owned(),
                rate,
                state: Mutex::new(TokenState {
                    available: 0,
                    until: Instant::now(),
                    wanted: false,
                    spent: 0,
                    lapsed: 0,
                }),
                wakes: QuotaWakes::default(),
            }),
        }
    }

    /// The worker's name (its key in the fleet).
    pub fn worker(&self) -> &str {
        &self.inner.worker
    }

    /// The fleet-wide rate.
    pub fn rate(&self) -> Rate {
        self.inner.rate
    }

    /// The counts now.
    pub fn counts(&self) -> RateTokenCounts {
        let state = *lock(&self.inner.state);
        RateTokenCounts {
            rate: self.inner.rate,
            available: state.available,
            wanted: state.wanted,
            spent: state.spent,
            lapsed: state.lapsed,
        }
    }

    /// The connector: `n` more starts drawn from the fleet, usable until `until` (the ones
    /// left unused then lapse, and so do those still held from earlier grants). Wakes the
    /// coordinator's slots held for want of one.
    pub fn grant(&self, n: usize, until: Instant) {
        if n == 0 {
            return;
        }
        {
            let mut state = lock(&self.inner.state);
            state.available = state.available.saturating_add(n);
            state.until = state.until.max(until);
        }
        self.inner.wakes.wake_slots();
    }

    /// The connector: every unused token goes (the fleet's record is gone, or Redis cannot be
    /// reached and the worker must hold); returns how many there were.
    pub fn revoke_all(&self) -> usize {
        let mut state = lock(&self.inner.state);
        std::mem::take(&mut state.available)
    }

    /// Whether the worker takes no new work any more (drained, shut down, or gone): the
    /// connector draws no more tokens for it.
    pub fn is_closed(&self) -> bool {
        self.inner.wakes.is_closed()
    }

    /// The connector waits here for a change it must react to: a start held for want of a
    /// token, or the worker closed.
    pub async fn changed(&self) {
        self.inner.wakes.changed().await;
    }

    /// The coordinator: it takes no new work; wakes the connector.
    pub(crate) fn close(&self) {
        self.inner.wakes.close();
    }

    /// The coordinator: how its held slots are woken when tokens are granted.
    pub(crate) fn on_grant(&self, wake: Box<dyn Fn() + Send + Sync>) {
        self.inner.wakes.on_grant(wake);
    }

    /// The coordinator: spends a token on a start, or marks one wanted (the caller wakes the
    /// connector after its own lock is released: [`notify_server`](Self::notify_server)).
    pub(crate) fn try_take(&self) -> Result<(), ()> {
        let mut state = lock(&self.inner.state);
        if state.available > 0 {
            if Instant::now() < state.until {
                state.available -= 1;
                state.spent += 1;
                state.wanted = false;
                return Ok(());
            }
            state.lapsed += std::mem::take(&mut state.available) as u64;
        }
        state.wanted = true;
        Err(())
    }

    /// Tells the connector that something changed (after the caller's locks are released).
    pub(crate) fn notify_server(&self) {
        self.inner.wakes.notify_server();
    }
}

impl fmt::Debug for RateTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateTokens")
            .field("worker", &self.inner.worker)
            .field("counts", &self.counts())
            .finish()
    }
}
