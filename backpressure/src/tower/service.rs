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

use super::in_flight::InFlight;
use super::shared::{Admission, Shared};
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
    /// Not ready: the hold is checked on the next `poll_ready`.
    Unchecked,
    /// The hold held at the last check: waiting for the sink (or a call in flight) to
    /// change. Kept while the inner service is pending after the hold passed, so the max
    /// wait counts from the first hold.
    Held(Box<Waiting>),
    /// `poll_ready` returned `Ready` after the hold passed: ready until the next `call`,
    /// with the place in the in-flight limit, if the layer has one.
    Ready(Option<InFlight>),
    /// The max wait passed while held: ready, and the next `call` fails.
    TimedOut {
        /// How long the service was held.
        waited: Duration,
    },
}

/// What the hold let through in wait mode.
enum Passed {
    /// No signal holds (and, under a limit, a place was taken).
    Admitted(Option<InFlight>),
    /// The max wait passed first.
    TimedOut(Duration),
}

/// A held service's registrations with the sink and the in-flight count, and its deadline.
struct Waiting {
    /// Completes when the sink notifies a change of the watch. Created before the check it
    /// follows, so a change in between is not lost.
    changed: Pin<Box<OwnedNotified>>,
    /// Completes when a call in flight finishes, under an in-flight limit.
    released: Option<Pin<Box<OwnedNotified>>>,
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

    /// Wait mode: resolves once the hold admits a request or the max wait has passed.
    /// Registers with the sink (and the in-flight count) before each re-check, and is woken
    /// only by them or the deadline.
    fn poll_hold(&mut self, cx: &mut Context<'_>, max_wait: Option<Duration>) -> Poll<Passed> {
        loop {
            if let Admission::Pass(permit) = self.shared.admit() {
                return Poll::Ready(Passed::Admitted(permit));
            }
            let State::Held(waiting) = &mut self.state else {
                self.state = State::Held(Waiting::new(&self.shared, max_wait));
                continue;
            };
            if waiting.poll_changed(&self.shared, cx) {
                continue;
            }
            if let Some(deadline) = &mut waiting.deadline {
                if deadline.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Passed::TimedOut(waiting.since.elapsed()));
                }
            }
            return Poll::Pending;
        }
    }

    /// Wait mode: the hold, then the inner service's readiness. The hold is checked on
    /// every call until `Ready` is returned, so a signal raised while the inner service was
    /// pending holds the request; the inner service is not polled while held.
    fn poll_wait<Request>(
        &mut self,
        cx: &mut Context<'_>,
        max_wait: Option<Duration>,
    ) -> Poll<Result<(), S::Error>>
    where
        S: Service<Request>,
    {
        match self.state {
            State::Ready(_) => return self.inner.poll_ready(cx),
            State::TimedOut { .. } => return Poll::Ready(Ok(())),
            State::Unchecked | State::Held(_) => {}
        }
        let permit = match ready!(self.poll_hold(cx, max_wait)) {
            Passed::Admitted(permit) => permit,
            Passed::TimedOut(waited) => {
                self.state = State::TimedOut { waited };
                return Poll::Ready(Ok(()));
            }
        };
        // Pending or failed: the permit goes back, and the next poll checks the hold again.
        ready!(self.inner.poll_ready(cx))?;
        self.state = State::Ready(permit);
        Poll::Ready(Ok(()))
    }
}

impl Waiting {
    fn new(shared: &Shared, max_wait: Option<Duration>) -> Box<Self> {
        let released = shared.max_in_flight.map(|_| shared.in_flight.released());
        Box::new(Self {
            changed: changed(shared),
            released,
            since: Instant::now(),
            deadline: max_wait.map(|max_wait| Box::pin(tokio::time::sleep(max_wait))),
        })
    }

    /// Whether the sink or the in-flight count changed since the last look; registers for
    /// the next change of each either way.
    fn poll_changed(&mut self, shared: &Shared, cx: &mut Context<'_>) -> bool {
        let mut changed_now = false;
        if self.changed.as_mut().poll(cx).is_ready() {
            self.changed = changed(shared);
            changed_now = true;
        }
        if let Some(waiting) = &mut self.released {
            if waiting.as_mut().poll(cx).is_ready() {
                *waiting = shared.in_flight.released();
                changed_now = true;
            }
        }
        changed_now
    }
}

fn changed(shared: &Shared) -> Pin<Box<OwnedNotified>> {
    Box::pin(Arc::clone(&shared.changed).notified_owned())
}

impl<S, Request> Service<Request> for Hold<S>
where
    S: Service<Request>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    /// Wait mode: pending while the hold holds (a matching level-0 signal, or the
    /// in-flight limit reached), then the inner service's readiness (the inner service is
    /// not polled while held); the hold is checked again on each call until `Ready`.
    /// Fail-fast mode: the inner service's readiness. Never fails for the hold itself.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match self.shared.mode {
            HoldMode::Wait { max_wait } => self.poll_wait(cx, max_wait).map_err(Into::into),
            HoldMode::FailFast => self.inner.poll_ready(cx).map_err(Into::into),
        }
    }

    /// Passes the request on, or fails it with a [`HoldError`]: in wait mode when the max
    /// wait passed, in fail-fast mode when the hold holds.
    ///
    /// # Panics
    ///
    /// In wait mode, if `poll_ready` has not returned `Ready` since the last `call`.
    fn call(&mut self, request: Request) -> Self::Future {
        let permit = match self.shared.mode {
            HoldMode::FailFast => match self.shared.admit_or_reject() {
                Ok(permit) => permit,
                Err(rejected) => return ResponseFuture::failed(rejected),
            },
            HoldMode::Wait { .. } => match mem::replace(&mut self.state, State::Unchecked) {
                State::Ready(permit) => permit,
                State::TimedOut { waited } => {
                    let pattern = self.shared.pattern.clone();
                    return ResponseFuture::failed(HoldError::TimedOut { pattern, waited });
                }
                State::Unchecked | State::Held(_) => {
                    panic!("`Hold::call` before `poll_ready` returned ready")
                }
            },
        };
        ResponseFuture::passed(self.inner.call(request), permit)
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
            State::Ready(_) => "ready",
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
