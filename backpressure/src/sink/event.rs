//! Raise / retract / expire events and the subscription stream.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::Stream;
use tokio::time::Instant;
use tokio_stream::wrappers::{errors::BroadcastStreamRecvError, BroadcastStream};

/// What happened to a signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalEventKind {
    /// A (name, key) entry became active. Re-raising an active entry does not emit an event.
    Raised,
    /// An entry was removed by `retract`, `retract_keyed`, `retract_matching` or `clear`.
    Retracted,
    /// An entry's time-to-live ran out.
    Expired,
    /// An active entry was raised again with a different [`Level`](crate::Level) or
    /// [`Phase`](crate::Phase) (a breaker's verdict going from open to half-open, say).
    LevelChanged,
    /// A health policy changed state: the event's name is the policy's signal, its key the
    /// worker's name, and [`SignalEvent::policy`] says what changed.
    PolicyChanged,
    /// A probe of a half-open verdict was handed back unused (its item was skipped or cut
    /// short): a held worker may claim it. The entry is unchanged; a connector tells the
    /// other processes it mirrors the verdict to.
    ProbeReturned,
}

/// One change to the set of active signals of a [`Sink`](crate::Sink).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalEvent {
    /// What happened.
    pub kind: SignalEventKind,
    /// The signal name.
    pub name: Arc<str>,
    /// The key the entry was raised with, if any.
    pub key: Option<Arc<str>>,
    /// The entry's level: its new level for `Raised` and `LevelChanged`, its last one for
    /// `Retracted` and `Expired`.
    pub level: crate::Level,
    /// The entry's verdict phase, like its level (`None` for a plain signal and for
    /// `PolicyChanged`).
    pub phase: Option<crate::Phase>,
    /// For [`SignalEventKind::PolicyChanged`]: from which state to which, why, and the
    /// policy's window counts.
    pub policy: Option<crate::policy::PolicyChange>,
    /// When it happened.
    pub at: Instant,
}

/// The subscriber fell behind and `missed` events were overwritten before it read them.
///
/// Subscriptions buffer 1024 events; a subscriber that reads slower than signals change
/// learns how many it missed instead of silently skipping them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the subscription fell behind and missed {missed} signal events")]
pub struct Lagged {
    /// How many events were missed.
    pub missed: u64,
}

/// A [`Stream`] of the [`SignalEvent`]s of a sink, from the moment of subscribing.
///
/// Made by [`Sink::subscribe`](crate::Sink::subscribe). Ends when the sink is dropped.
///
/// # Examples
///
/// ```
/// use backpressure::{Sink, SignalEventKind};
/// use futures_util::StreamExt;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let sink = Sink::new();
/// let mut events = sink.subscribe();
/// sink.raise("backpressure.downstream")?;
/// sink.retract("backpressure.downstream")?;
///
/// let first = events.next().await.unwrap()?;
/// assert_eq!(first.kind, SignalEventKind::Raised);
/// let second = events.next().await.unwrap()?;
/// assert_eq!(second.kind, SignalEventKind::Retracted);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Subscription {
    inner: BroadcastStream<SignalEvent>,
}

impl Subscription {
    pub(crate) fn new(receiver: tokio::sync::broadcast::Receiver<SignalEvent>) -> Self {
        Self {
            inner: BroadcastStream::new(receiver),
        }
    }
}

impl Stream for Subscription {
    type Item = Result<SignalEvent, Lagged>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.inner).poll_next(cx).map(|item| {
            item.map(|event| {
                event.map_err(|BroadcastStreamRecvError::Lagged(missed)| Lagged { missed })
            })
        })
    }
}

impl SignalEventKind {
    /// The kind in words: `raised`, `retracted`, `expired`, `level_changed`,
    /// `policy_changed` (as serialised, and as the metrics' `transition` label).
    pub fn as_str(self) -> &'static str {
        match self {
            SignalEventKind::Raised => "raised",
            SignalEventKind::Retracted => "retracted",
            SignalEventKind::Expired => "expired",
            SignalEventKind::LevelChanged => "level_changed",
            SignalEventKind::PolicyChanged => "policy_changed",
            SignalEventKind::ProbeReturned => "probe_returned",
        }
    }
}
