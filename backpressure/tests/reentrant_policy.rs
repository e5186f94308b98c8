//! A policy's state changes reach user code (a `tracing` layer here) after the policy's lock
//! is released: a layer that reads the policies and the stats, and raises and retracts on
//! the same sink, from inside `on_event`, does not deadlock.
//!
//! (The sink's own side, its raise and retract events, is proven in the sink's tests.)

use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use backpressure::{
    policy::{Breaker, BreakerState, PolicyState},
    Coordinator, MaxDefer, SignalEventKind, Sink, Subscription, WorkContext,
};
use futures_util::StreamExt;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

/// The message of the INFO event a policy emits on every state change.
const POLICY_CHANGED: &str = "backpressure policy changed state";
/// The signal the layer raises and retracts from inside `on_event`.
const CALLBACK_SIGNAL: &str = "test.reentrant.callback";

/// Whether an event's message is [`POLICY_CHANGED`].
#[derive(Default)]
struct IsPolicyChange(bool);

impl Visit for IsPolicyChange {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" && format!("{value:?}") == POLICY_CHANGED {
            self.0 = true;
        }
    }
}

/// On every policy change: reads the policies and the stats, raises and retracts a signal on
/// the same sink, and records the policy state it saw.
struct Reentrant {
    coordinator: Arc<OnceLock<Coordinator<bool>>>,
    sink: Sink,
    seen: Arc<Mutex<Vec<PolicyState>>>,
}

impl<S: tracing::Subscriber> Layer<S> for Reentrant {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut visit = IsPolicyChange::default();
        event.record(&mut visit);
        if !visit.0 {
            return;
        }
        let coordinator = self.coordinator.get().expect("built before any item runs");
        let state = coordinator.policies()[0].state;
        assert!(coordinator.stats().is_consistent());
        self.sink.raise(CALLBACK_SIGNAL).unwrap();
        assert!(self.sink.is_raised(CALLBACK_SIGNAL));
        assert_eq!(self.sink.retract(CALLBACK_SIGNAL).unwrap(), 1);
        self.seen.lock().unwrap().push(state);
    }
}

/// The new state of the next policy change on `events`.
async fn next_change(events: &mut Subscription) -> PolicyState {
    loop {
        let event = events.next().await.unwrap().unwrap();
        if event.kind == SignalEventKind::PolicyChanged {
            return event.policy.unwrap().to;
        }
    }
}

/// Open (an outcome), half-open (the timer task), closed (a probe's outcome): each change
/// calls back into the coordinator and the sink.
async fn scenario(sink: Sink, coordinator: Arc<OnceLock<Coordinator<bool>>>) {
    let breaker = Breaker::error_rate("test.reentrant.breaker")
        .consecutive_failures(1)
        .open_for(Duration::from_secs(30))
        .jitter(0.0)
        .probes(1);
    let built = Coordinator::builder()
        .sink(sink.clone())
        .name("reentrant")
        .defer_on("test.reentrant.breaker")
        .max_defer(MaxDefer::Never)
        .policy(breaker)
        .build(|fail: bool, _: WorkContext| async move {
            if fail {
                Err("refused")
            } else {
                Ok(())
            }
        })
        .unwrap();
    assert!(coordinator.set(built.clone()).is_ok());
    let mut events = sink.subscribe();
    built.enqueue(true).await.unwrap();
    assert_eq!(
        next_change(&mut events).await,
        PolicyState::Breaker(BreakerState::Open)
    );
    tokio::time::advance(Duration::from_secs(30)).await;
    assert_eq!(
        next_change(&mut events).await,
        PolicyState::Breaker(BreakerState::HalfOpen)
    );
    built.enqueue(false).await.unwrap();
    assert_eq!(
        next_change(&mut events).await,
        PolicyState::Breaker(BreakerState::Closed)
    );
}

#[test]
fn a_tracing_layer_may_call_back_into_the_policy_and_the_sink() {
    let sink = Sink::new();
    let coordinator = Arc::new(OnceLock::new());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let layer = Reentrant {
        coordinator: Arc::clone(&coordinator),
        sink: sink.clone(),
        seen: Arc::clone(&seen),
    };
    let (done, finished) = mpsc::channel();
    // A deadlock blocks its thread for good: run the scenario on a thread of its own, so that
    // this one can report it instead of hanging.
    std::thread::spawn(move || {
        let subscriber = tracing_subscriber::registry().with(layer);
        let _default = tracing::subscriber::set_default(subscriber);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(scenario(sink, coordinator));
        done.send(()).unwrap();
    });
    finished
        .recv_timeout(Duration::from_secs(60))
        .expect("the scenario deadlocked (or panicked) in a callback");
    assert_eq!(
        *seen.lock().unwrap(),
        [
            BreakerState::Open,
            BreakerState::HalfOpen,
            BreakerState::Closed
        ]
        .map(PolicyState::Breaker),
        "the layer saw each change's new state"
    );
}
