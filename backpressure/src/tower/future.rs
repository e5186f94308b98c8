//! The response future: the inner service's, or a hold error.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use pin_project_lite::pin_project;
use tower::BoxError;

use super::in_flight::InFlight;
use super::HoldError;

pin_project! {
    /// The future a [`Hold`](super::Hold) service returns: the inner service's response
    /// future, or a [`HoldError`] ready at once.
    ///
    /// Under an in-flight limit, a passed call counts as in flight until this future
    /// completes or is dropped.
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    #[derive(Debug)]
    enum Kind<F> {
        Passed { #[pin] future: F, permit: Option<InFlight> },
        Failed { error: Option<HoldError> },
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn passed(future: F, permit: Option<InFlight>) -> Self {
        Self {
            kind: Kind::Passed { future, permit },
        }
    }

    pub(super) fn failed(error: HoldError) -> Self {
        Self {
            kind: Kind::Failed { error: Some(error) },
        }
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Passed { future, permit } => {
                let output = ready!(future.poll(cx));
                // The call is over: its place in the in-flight limit is free.
                drop(permit.take());
                Poll::Ready(output.map_err(Into::into))
            }
            KindProj::Failed { error } => {
                let error = error
                    .take()
                    .expect("`ResponseFuture` polled after completion");
                Poll::Ready(Err(error.into()))
            }
        }
    }
}
