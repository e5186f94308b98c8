//! The service: a readiness state machine in front of the inner service.

use std::fmt;
use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::sync::futures::OwnedNotified;
use tokio::time::{Instant, Sleep};
use tower::{BoxError, Service};

use super::shared::Shared;
use super::{HoldError, HoldMode, ResponseFuture};

/// A service that holds requests while a signal matching its layer's pattern is raised.
///
/// Made by [`HoldLayer`](super::HoldLayer); see the [module docs](super) for the two modes.
/// Its error type is [`BoxError`]: the inner service's error, or a [`HoldError`].
///
/// A clone starts unready: it checks the hold on its own first `poll_ready`, whatever the
/// state of the service it was cloned from.
pub struct Hold<S> {
    inner: S,
    shared: Arc<Shared>,
    state: State,
}

/// Where a wait-mode service is between two calls. Fail-fast services stay `Unchecked`.
enum State {
    /// The hold has not been checked since the last `call` (or since creation).
    Unchecked,
    /// A matching signal was raised at the last check: waiting for the sink to change.
    Held(Box<Waiting>),
    /// No matching signal was raised at the last check: readiness is the inner service's
    /// until the next `call`.
    Released,
    /// The max wait passed while held: ready, and the next `call` fails.
    TimedOut {
        /// How long the service was held.
        waited: Duration,
    },
}

/// A held service's registration with the sink and its deadline.
struct Waiting {
    /// Completes when the sink notifies a change of the watch. Created before the check it
    /// follows, so a change in between is not lost.
    changed: Pin<Box<OwnedNotified>>,
    /// When the hold was first found.
    since: Instant,
    /// The end of the max wait, if there is one.
    deadline: Option<Pin<Box<Sleep>>>,
}

impl<S> Hold<S> {
    pub(super) fn new(inner: S, shared: Arc<Shared>) -> Self {
        Self {
            inner,
            shared,
            state: State::Unchecked,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Takes back the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// Wait mode: resolves once no matching signal is raised (state `Released`) or the max
    /// wait has passed (state `TimedOut`). Registers with the sink before each re-check, and
    /// is woken only by the sink or the deadline.
    fn poll_hold(&mut self, cx: &mut Context<'_>, max_wait: Option<Duration>) -> Poll<()> {
        loop {
            if !self.shared.is_raised() {
                self.state = State::Released;
                return Poll::Ready(());
            }
            let State::Held(waiting) = &mut self.state else {
                self.state = State::Held(Waiting::new(&self.shared, max_wait));
                continue;
            };
            if waiting.changed.as_mut().poll(cx).is_ready() {
                let changed = Arc::clone(&self.shared.changed).notified_owned();
                waiting.changed.set(changed);
                continue;
            }
            if let Some(deadline) = &mut waiting.deadline {
                if deadline.as_mut().poll(cx).is_ready() {
                    let waited = waiting.since.elapsed();
                    self.state = State::TimedOut { waited };
                    return Poll::Ready(());
                }
            }
            return Poll::Pending;
        }
    }
}

impl Waiting {
    fn new(shared: &Shared, max_wait: Option<Duration>) -> Box<Self> {
        Box::new(Self {
            changed: Box::pin(Arc::clone(&shared.changed).notified_owned()),
            since: Instant::now(),
            deadline: max_wait.map(|max_wait| Box::pin(tokio::time::sleep(max_wait))),
        })
    }
}

impl<S, Request> Service<Request> for Hold<S>
where
    S: Service<Request>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    /// Wait mode: pending while a matching signal is raised, then the inner service's
    /// readiness (the inner service is not polled while held). Fail-fast mode: the inner
    /// service's readiness. Never fails for the hold itself.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if let HoldMode::Wait { max_wait } = self.shared.mode {
            match self.state {
                State::Released => {}
                State::TimedOut { .. } => return Poll::Ready(Ok(())),
                State::Unchecked | State::Held(_) => {
                    ready!(self.poll_hold(cx, max_wait));
                    if let State::TimedOut { .. } = self.state {
                        return Poll::Ready(Ok(()));
                    }
                }
            }
        }
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    /// Passes the request on, or fails it with a [`HoldError`]: in wait mode when the max
    /// wait passed, in fail-fast mode when a matching signal is raised.
    ///
    /// # Panics
    ///
    /// In wait mode, if `poll_ready` has not returned `Ready` since the last `call`.
    fn call(&mut self, request: Request) -> Self::Future {
        match self.shared.mode {
            HoldMode::FailFast => {
                if let Some(rejected) = self.shared.rejection() {
                    return ResponseFuture::failed(rejected);
                }
            }
            HoldMode::Wait { .. } => match mem::replace(&mut self.state, State::Unchecked) {
                State::Released => {}
                State::TimedOut { waited } => {
                    let pattern = self.shared.pattern.clone();
                    return ResponseFuture::failed(HoldError::TimedOut { pattern, waited });
                }
                State::Unchecked | State::Held(_) => {
                    panic!("`Hold::call` before `poll_ready` returned ready")
                }
            },
        }
        ResponseFuture::passed(self.inner.call(request))
    }
}

impl<S: Clone> Clone for Hold<S> {
    fn clone(&self) -> Self {
        Self::new(self.inner.clone(), Arc::clone(&self.shared))
    }
}

impl<S: fmt::Debug> fmt::Debug for Hold<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Unchecked => "unchecked",
            State::Held(_) => "held",
            State::Released => "released",
            State::TimedOut { .. } => "timed out",
        };
        f.debug_struct("Hold")
            .field("inner", &self.inner)
            .field("pattern", &self.shared.pattern)
            .field("mode", &self.shared.mode)
            .field("state", &state)
            .finish()
    }
}
