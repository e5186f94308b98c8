//! No user code runs under the sink's or the coordinator's lock: a `tracing` layer that
//! raises and retracts on the same sink from inside `on_event`, and a metrics recorder that
//! reads `Coordinator::stats` from inside every registration, counter, gauge and histogram,
//! go through a scripted run without deadlocking (parking_lot locks are not re-entrant, so
//! either would hang if it were called with a lock held).
//!
//! The run happens on a thread of its own, bounded by a real-time timeout, so a deadlock fails
//! the test instead of hanging it.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, OnceLock};
use std::time::Duration;

use backpressure::{
    Coordinator, MaxDefer, SignalEvent, SignalEventKind, Sink, Stats, WeakCoordinator, WorkContext,
};
use futures_util::{FutureExt, StreamExt};
use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

/// The signal the layer raises and retracts; it matches no coordinator's pattern.
const ECHO: &str = "echo.inside";

thread_local! {
    /// Set while the layer itself calls into the sink, so its own events do not recurse.
    static INSIDE: Cell<bool> = const { Cell::new(false) };
}

/// What the layer and the recorder reach back into.
#[derive(Default)]
struct Target {
    sink: OnceLock<Sink>,
    coordinator: OnceLock<WeakCoordinator<u32>>,
    /// Calls that reached back into the sink (layer) or the coordinator (both).
    echoes: AtomicUsize,
    stats_reads: AtomicUsize,
}

impl Target {
    fn read_stats(&self) {
        if let Some(coordinator) = self.coordinator.get().and_then(WeakCoordinator::upgrade) {
            let stats = coordinator.stats();
            assert!(conserved(&stats), "{stats:?}");
            self.stats_reads.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn conserved(s: &Stats) -> bool {
    s.enqueued
        == s.completed
            + s.failed
            + s.panicked
            + s.skipped
            + s.returned
            + (s.queued + s.active) as u64
}

/// The `signal` field of an event, if it has one.
#[derive(Default)]
struct SignalField(Option<String>);

impl Visit for SignalField {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "signal" {
            self.0 = Some(value.to_owned());
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "signal" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

/// On every event of the crate: reads the coordinator's stats, and for an event about a
/// `backpressure.*` signal (a transition, a gate opening or closing) raises and retracts
/// [`ECHO`] on the same sink.
struct Reentrant(Arc<Target>);

impl<S: Subscriber> Layer<S> for Reentrant {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        if !event.metadata().target().starts_with("backpressure") || INSIDE.get() {
            return;
        }
        INSIDE.set(true);
        self.0.read_stats();
        let mut signal = SignalField::default();
        event.record(&mut signal);
        let about_ours = signal.0.is_some_and(|s| s.starts_with("backpressure."));
        if let (true, Some(sink)) = (about_ours, self.0.sink.get()) {
            sink.raise(ECHO).unwrap();
            assert_eq!(sink.retract(ECHO).unwrap(), 1);
            self.0.echoes.fetch_add(1, Ordering::Relaxed);
        }
        INSIDE.set(false);
    }
}

/// A recorder whose every handle reads the coordinator's stats when used.
struct StatsReader(Arc<Target>);

struct Probe(Arc<Target>);

impl CounterFn for Probe {
    fn increment(&self, _: u64) {
        self.0.read_stats();
    }
    fn absolute(&self, _: u64) {
        self.0.read_stats();
    }
}

impl GaugeFn for Probe {
    fn increment(&self, _: f64) {
        self.0.read_stats();
    }
    fn decrement(&self, _: f64) {
        self.0.read_stats();
    }
    fn set(&self, _: f64) {
        self.0.read_stats();
    }
}

impl HistogramFn for Probe {
    fn record(&self, _: f64) {
        self.0.read_stats();
    }
}

impl Recorder for StatsReader {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> Counter {
        self.0.read_stats();
        Counter::from_arc(Arc::new(Probe(Arc::clone(&self.0))))
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        self.0.read_stats();
        Gauge::from_arc(Arc::new(Probe(Arc::clone(&self.0))))
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        self.0.read_stats();
        Histogram::from_arc(Arc::new(Probe(Arc::clone(&self.0))))
    }
}

/// Every event the subscription has buffered, as (kind, name).
fn buffered(events: &mut backpressure::Subscription) -> Vec<(SignalEventKind, String)> {
    let mut seen = Vec::new();
    while let Some(Some(event)) = events.next().now_or_never() {
        let event: SignalEvent = event.unwrap();
        seen.push((event.kind, event.name.to_string()));
    }
    seen
}

/// Raises, retracts, lets a TTL expire and a held item time out, with items running: every
/// transition and every item reports through the layer and the recorder.
fn scripted_run(target: &Arc<Target>) -> Vec<(SignalEventKind, String)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async {
        let sink = Sink::new();
        target.sink.set(sink.clone()).unwrap();
        let mut events = sink.subscribe();
        let coordinator = Coordinator::builder()
            .sink(sink.clone())
            .concurrency(2)
            .max_defer(MaxDefer::After(Duration::from_secs(10)))
            .build(|n: u32, _: WorkContext| async move {
                if n % 2 == 1 {
                    Err("odd")
                } else {
                    Ok(())
                }
            })
            .unwrap();
        target.coordinator.set(coordinator.downgrade()).unwrap();

        sink.raise("backpressure.db").unwrap();
        for n in 0..6 {
            coordinator.enqueue(n).await.unwrap();
        }
        tokio::task::yield_now().await;
        assert_eq!(coordinator.stats().deferred, 6);
        sink.retract("backpressure.db").unwrap();
        while coordinator.stats().completed + coordinator.stats().failed < 6 {
            tokio::task::yield_now().await;
        }

        sink.raise_for("backpressure.lease", Duration::from_secs(1))
            .unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(!sink.is_raised("backpressure.lease"));

        // A held item that starts anyway after `max_defer` (a WARN event).
        sink.raise("backpressure.db").unwrap();
        coordinator.enqueue(6).await.unwrap();
        tokio::time::sleep(Duration::from_secs(11)).await;
        coordinator.drain().await;
        let stats = coordinator.stats();
        assert_eq!((stats.completed, stats.failed), (4, 3), "{stats:?}");
        assert_eq!(stats.defer_timeouts, 1);
        buffered(&mut events)
    })
}

#[test]
fn a_layer_and_a_recorder_may_call_back_into_the_sink_and_the_coordinator() {
    let target = Arc::new(Target::default());
    let (done, finished) = mpsc::channel();
    let run = {
        let target = Arc::clone(&target);
        std::thread::spawn(move || {
            let subscriber = tracing_subscriber::registry().with(Reentrant(Arc::clone(&target)));
            let recorder = StatsReader(Arc::clone(&target));
            let seen = tracing::subscriber::with_default(subscriber, || {
                metrics::with_local_recorder(&recorder, || scripted_run(&target))
            });
            let _ = done.send(seen);
        })
    };
    let seen = match finished.recv_timeout(Duration::from_secs(30)) {
        Ok(seen) => seen,
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            std::panic::resume_unwind(run.join().unwrap_err())
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!(
                "deadlock: a layer or recorder that calls back into the sink or coordinator hung"
            )
        }
    };
    assert!(target.echoes.load(Ordering::Relaxed) > 0);
    assert!(target.stats_reads.load(Ordering::Relaxed) > 0);

    // Subscribers still see every transition in the order it happened: ours in script
    // order, and each echo as a raise followed by its retract.
    let ours: Vec<_> = seen
        .iter()
        .filter(|(_, name)| name != ECHO)
        .cloned()
        .collect();
    let name = |s: &str| s.to_owned();
    assert_eq!(
        ours,
        [
            (SignalEventKind::Raised, name("backpressure.db")),
            (SignalEventKind::Retracted, name("backpressure.db")),
            (SignalEventKind::Raised, name("backpressure.lease")),
            (SignalEventKind::Expired, name("backpressure.lease")),
            (SignalEventKind::Raised, name("backpressure.db")),
        ]
    );
    let echoes: Vec<_> = seen
        .iter()
        .filter(|(_, name)| name == ECHO)
        .map(|(kind, _)| *kind)
        .collect();
    assert!(!echoes.is_empty());
    assert!(echoes
        .chunks(2)
        .all(|pair| pair == [SignalEventKind::Raised, SignalEventKind::Retracted]));
    // An echo caused by a transition comes after it: the first event is the first raise.
    assert_eq!(seen[0], (SignalEventKind::Raised, name("backpressure.db")));
}
