//! Intake from a [`Stream`]: items are pulled only as the queue has room, so a slow worker
//! holds back the producer behind the stream (the .NET family's `FromAsyncEnumerable`).

use futures_util::{Stream, StreamExt};

use super::handle::Coordinator;
use crate::error::StreamClosed;

impl<T: Send + 'static> Coordinator<T> {
    /// Enqueues every item of `stream`, pulling the next one only once the previous one was
    /// accepted: while the queue is full, the stream is not polled, and backpressure reaches
    /// whoever produces it. Returns how many items were accepted when the stream ends.
    ///
    /// The stream is borrowed, so what it has not yielded stays in it: nothing is lost when
    /// intake closes midway.
    ///
    /// # Errors
    ///
    /// [`StreamClosed`] if intake closed ([`drain`](Self::drain) or
    /// [`shutdown`](Self::shutdown)) before the stream ended: how many were accepted, and the
    /// item that was pulled but refused; the rest of the stream is not pulled.
    ///
    /// # Examples
    ///
    /// ```
    /// use backpressure::{Coordinator, Sink, WorkContext};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let coordinator = Coordinator::builder()
    ///     .sink(Sink::new())
    ///     .capacity(2)
    ///     .build(|_: u32, _: WorkContext| async {})?;
    /// let mut orders = futures_util::stream::iter(0..10);
    /// assert_eq!(coordinator.enqueue_stream(&mut orders).await?, 10);
    /// coordinator.drain().await;
    /// assert_eq!(coordinator.stats().completed, 10);
    /// # Ok(()) }
    /// ```
    pub async fn enqueue_stream<S>(&self, stream: &mut S) -> Result<usize, StreamClosed<T>>
    where
        S: Stream<Item = T> + Unpin + ?Sized,
    {
        let mut accepted = 0;
        while let Some(item) = stream.next().await {
            if let Err(refused) = self.enqueue(item).await {
                return Err(StreamClosed {
                    accepted,
                    item: refused.into_inner(),
                });
            }
            accepted += 1;
        }
        Ok(accepted)
    }
}
