//! The response future: the inner service's, or a hold error.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tower::BoxError;

use super::HoldError;

pin_project! {
    /// The future a [`Hold`](super::Hold) service returns: the inner service's response
    /// future, or a [`HoldError`] ready at once.
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
        Passed { #[pin] future: F },
        Failed { error: Option<HoldError> },
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn passed(future: F) -> Self {
        Self {
            kind: Kind::Passed { future },
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
            KindProj::Passed { future } => future.poll(cx).map_err(Into::into),
            KindProj::Failed { error } => {
                let error = error
                    .take()
                    .expect("`ResponseFuture` polled after completion");
                Poll::Ready(Err(error.into()))
            }
        }
    }
}
