//! The sink's outgoing side: subscribers, `tracing` events and (with the `metrics` feature)
//! the signal transition counter.
//!
//! Transitions happen under the sink's lock and only *record* what to report ([`Emit`]);
//! [`Events::perform`] reports it once the lock is released (see
//! [`Outbox`](crate::sync::Outbox)), so a `tracing` layer, a metrics recorder or a
//! subscriber's waker may call back into the sink. Subscribers see the events in the order
//! the transitions happened.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::time::Instant;

use super::event::{SignalEvent, SignalEventKind};
use super::level::Level;
use super::phase::Phase;
use super::watch::{Watch, Watchers};

/// One thing a transition reports, recorded under the sink's lock.
#[derive(Debug)]
pub(super) enum Emit {
    /// An entry was raised, retracted, expired or changed level or phase.
    Transition {
        kind: SignalEventKind,
        name: Arc<str>,
        key: Option<Arc<str>>,
        level: Level,
        phase: Option<Phase>,
        at: Instant,
    },
    /// The first name matching a watched pattern became active (a trace).
    GateClosed {
        watch: Arc<Watch>,
        signal: Arc<str>,
        watchers: Watchers,
    },
    /// The last name matching a watched pattern became inactive (a trace).
    GateOpened {
        watch: Arc<Watch>,
        signal: Arc<str>,
        held: Option<Duration>,
        watchers: Watchers,
    },
}

/// Where a sink's events go.
#[derive(Debug)]
pub(super) struct Events {
    sender: broadcast::Sender<SignalEvent>,
    /// The global sink's name, for traces and metric labels.
    sink: Option<Arc<str>>,
}

impl Events {
    pub(super) fn new(sender: broadcast::Sender<SignalEvent>, sink: Option<&str>) -> Self {
        Self {
            sender,
            sink: sink.map(Arc::from),
        }
    }

    pub(super) fn sink_name(&self) -> Option<&str> {
        self.sink.as_deref()
    }

    /// The sink's label in traces and metrics: its global name, or `standalone`.
    pub(super) fn label(&self) -> &str {
        self.sink.as_deref().unwrap_or("standalone")
    }

    pub(super) fn subscribe(&self) -> broadcast::Receiver<SignalEvent> {
        self.sender.subscribe()
    }

    /// Whether a transition must be recorded at all: someone subscribed, a `tracing`
    /// subscriber may listen at INFO, or the metrics feature counts transitions.
    pub(super) fn listening(&self) -> bool {
        cfg!(feature = "metrics")
            || tracing::level_enabled!(tracing::Level::INFO)
            || self.sender.receiver_count() > 0
    }

    /// Reports what a transition recorded; called with the sink's lock released.
    pub(super) fn perform(&self, emit: Emit) {
        match emit {
            Emit::Transition {
                kind,
                name,
                key,
                level,
                phase,
                at,
            } => self.transition(kind, name, key, (level, phase), at),
            Emit::GateClosed {
                watch,
                signal,
                watchers,
            } => watch.closed_by(&signal, self.label(), &watchers),
            Emit::GateOpened {
                watch,
                signal,
                held,
                watchers,
            } => watch.opened_by(&signal, self.label(), held, &watchers),
        }
    }

    /// Reports one change of an entry: as an INFO event, as a metric, and to subscribers.
    fn transition(
        &self,
        kind: SignalEventKind,
        name: Arc<str>,
        key: Option<Arc<str>>,
        (level, phase): (Level, Option<Phase>),
        at: Instant,
    ) {
        let transition = kind.as_str();
        tracing::info!(
            sink = self.label(),
            signal = %name,
            key = key.as_deref(),
            level = level.as_f64(),
            phase = phase.map(Phase::as_str),
            transition,
            "backpressure signal {transition}"
        );
        #[cfg(feature = "metrics")]
        metrics::counter!(
            crate::metrics::SIGNAL_TRANSITIONS,
            "sink" => self.label().to_owned(),
            "signal" => name.to_string(),
            "transition" => transition,
        )
        .increment(1);
        self.send(|| SignalEvent {
            kind,
            name,
            key,
            level,
            phase,
            policy: None,
            at,
        });
    }

    /// Sends an event to the subscribers, if there are any.
    pub(super) fn send(&self, event: impl FnOnce() -> SignalEvent) {
        if self.sender.receiver_count() > 0 {
            // A send error only means every receiver went away meanwhile.
            let _ = self.sender.send(event());
        }
    }
}
