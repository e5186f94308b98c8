//! The `backpressure.item` span and the INFO / WARN events that operators rely on (README
//! "Operations"), read back by a recording `tracing` layer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backpressure::{Coordinator, MaxDefer, Sink, WorkContext};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Instrument, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

#[derive(Default, Debug)]
struct Seen {
    /// Span id → (name, fields).
    spans: HashMap<u64, (String, HashMap<String, String>)>,
    /// (span, follows from).
    follows: Vec<(u64, u64)>,
    /// (level, message, fields).
    events: Vec<(tracing::Level, HashMap<String, String>)>,
}

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Seen>>);

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Recorder {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        let mut fields = HashMap::new();
        attrs.record(&mut Fields(&mut fields));
        let name = attrs.metadata().name().to_owned();
        self.0
            .lock()
            .unwrap()
            .spans
            .insert(id.into_u64(), (name, fields));
    }
    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        if let Some((_, fields)) = self.0.lock().unwrap().spans.get_mut(&id.into_u64()) {
            values.record(&mut Fields(fields));
        }
    }
    fn on_follows_from(&self, span: &Id, follows: &Id, _: Context<'_, S>) {
        self.0
            .lock()
            .unwrap()
            .follows
            .push((span.into_u64(), follows.into_u64()));
    }
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut fields = HashMap::new();
        event.record(&mut Fields(&mut fields));
        self.0
            .lock()
            .unwrap()
            .events
            .push((*event.metadata().level(), fields));
    }
}

#[tokio::test(start_paused = true)]
async fn each_item_gets_a_span_that_follows_from_its_enqueue() {
    let recorder = Recorder::default();
    let subscriber = tracing_subscriber::registry().with(recorder.clone());
    let _guard = tracing::subscriber::set_default(subscriber);

    let sink = Sink::new();
    let coordinator = Coordinator::builder()
        .sink(sink.clone())
        .name("mailer")
        .max_defer(MaxDefer::After(Duration::from_secs(10)))
        .build(|n: u32, _: WorkContext| async move {
            if n == 1 {
                Err("relay refused")
            } else {
                Ok(())
            }
        })
        .unwrap();
    sink.raise("backpressure.smtp").unwrap();
    let request = tracing::info_span!("http.request");
    let request_id = request.id().unwrap().into_u64();
    async { coordinator.enqueue_many([0, 1]).await.unwrap() }
        .instrument(request)
        .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    sink.retract("backpressure.smtp").unwrap();
    coordinator.drain().await;

    let seen = recorder.0.lock().unwrap();
    let items: Vec<(u64, &HashMap<String, String>)> = seen
        .spans
        .iter()
        .filter(|(_, (name, _))| name == "backpressure.item")
        .map(|(id, (_, fields))| (*id, fields))
        .collect();
    assert_eq!(items.len(), 2, "{seen:?}");
    for (id, fields) in &items {
        assert!(seen.follows.contains(&(*id, request_id)), "{seen:?}");
        assert_eq!(fields["sink"], "standalone");
        assert_eq!(fields["worker"], "mailer");
        assert_eq!(fields["queued_ms"], "4000.0", "{fields:?}");
    }
    // The head was held at the head of the queue for the whole hold; the second item waited
    // behind it.
    let head = items.iter().find(|(_, f)| f["item_id"] == "0").unwrap().1;
    assert_eq!(head["held_ms"], "4000.0");
    let mut outcomes: Vec<&str> = items.iter().map(|(_, f)| f["outcome"].as_str()).collect();
    outcomes.sort_unstable();
    assert_eq!(outcomes, ["completed", "failed"]);

    let info = |needle: &str| {
        seen.events.iter().any(|(level, fields)| {
            *level == tracing::Level::INFO
                && fields.get("message").is_some_and(|m| m.contains(needle))
        })
    };
    assert!(info("backpressure signal raised"), "{:?}", seen.events);
    assert!(info("backpressure signal retracted"));
    assert!(info("gate closed"));
    assert!(info("gate opened"));
    assert!(seen
        .events
        .iter()
        .any(|(level, fields)| *level == tracing::Level::ERROR
            && fields
                .get("error")
                .is_some_and(|e| e.contains("relay refused"))));
}

#[tokio::test(start_paused = true)]
async fn a_defer_timeout_is_a_warning() {
    let recorder = Recorder::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(recorder.clone()));
    let sink = Sink::new();
    let coordinator = Coordinator::builder()
        .sink(sink.clone())
        .max_defer(MaxDefer::After(Duration::from_secs(1)))
        .build(|_: u32, _: WorkContext| async {})
        .unwrap();
    sink.raise("backpressure.smtp").unwrap();
    coordinator.enqueue(0).await.unwrap();
    coordinator.drain().await;
    let seen = recorder.0.lock().unwrap();
    assert!(seen
        .events
        .iter()
        .any(|(level, fields)| *level == tracing::Level::WARN
            && fields
                .get("message")
                .is_some_and(|m| m.contains("max_defer"))));
}

#[tokio::test]
async fn starting_with_no_registered_worker_is_a_warning_that_says_how_to_link_them() {
    // This test binary declares no `#[backpressure_worker]`.
    let recorder = Recorder::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(recorder.clone()));
    let runtime = backpressure::Runtime::builder().isolated().start().unwrap();
    assert!(runtime.workers().is_empty());
    let seen = recorder.0.lock().unwrap();
    let warned = seen.events.iter().any(|(level, fields)| {
        *level == tracing::Level::WARN
            && fields.get("message").is_some_and(|m| {
                m.contains("no registered worker") && m.contains("links that library")
            })
    });
    assert!(warned, "{:?}", seen.events);
}

#[tokio::test(start_paused = true)]
async fn the_item_span_is_at_debug_so_an_info_subscriber_gets_none() {
    let recorder = Recorder::default();
    let info_only = tracing_subscriber::filter::LevelFilter::INFO;
    let subscriber = tracing_subscriber::registry().with(recorder.clone().with_filter(info_only));
    let _guard = tracing::subscriber::set_default(subscriber);
    let sink = Sink::new();
    let coordinator = Coordinator::builder()
        .sink(sink.clone())
        .build(|_: u32, _: WorkContext| async {})
        .unwrap();
    sink.raise("backpressure.smtp").unwrap();
    coordinator.enqueue_many([0, 1]).await.unwrap();
    tokio::time::sleep(Duration::from_micros(1_234)).await;
    sink.retract("backpressure.smtp").unwrap();
    coordinator.drain().await;
    let seen = recorder.0.lock().unwrap();
    assert!(
        seen.spans
            .values()
            .all(|(name, _)| name != "backpressure.item"),
        "{seen:?}"
    );
    assert!(!seen.events.is_empty(), "the INFO events still arrive");
}

#[tokio::test(start_paused = true)]
async fn a_raise_logs_one_info_gate_line_per_held_worker_and_the_rest_at_debug() {
    let recorder = Recorder::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(recorder.clone()));
    let sink = Sink::new();
    let worker = |name: &str, cancel_on: Option<&str>| {
        let mut builder = Coordinator::builder().sink(sink.clone()).name(name);
        if let Some(pattern) = cancel_on {
            builder = builder.cancel_on(pattern);
        }
        builder.build(|_: u32, _: WorkContext| async {}).unwrap()
    };
    // Both defer on `backpressure.*` (one watch); the digest's `cancel_on` is a second one.
    let _mailer = worker("mailer", None);
    let _digest = worker("digest", Some("backpressure.smtp"));
    sink.raise("backpressure.smtp").unwrap();
    sink.retract("backpressure.smtp").unwrap();

    let seen = recorder.0.lock().unwrap();
    let lines = |level: tracing::Level, needle: &str| -> Vec<Option<String>> {
        let mut found: Vec<Option<String>> = seen
            .events
            .iter()
            .filter(|(l, f)| *l == level && f.get("message").is_some_and(|m| m.contains(needle)))
            .map(|(_, f)| f.get("worker").cloned())
            .collect();
        found.sort();
        found
    };
    let both = vec![Some("digest".to_owned()), Some("mailer".to_owned())];
    assert_eq!(lines(tracing::Level::INFO, "gate closed"), both);
    assert_eq!(lines(tracing::Level::INFO, "gate opened"), both);
    assert_eq!(
        lines(tracing::Level::DEBUG, "gate closed"),
        vec![None],
        "the cancel_on watch"
    );
}

#[tokio::test(start_paused = true)]
async fn the_item_span_says_when_the_rate_delayed_the_start() {
    let recorder = Recorder::default();
    let subscriber = tracing_subscriber::registry().with(recorder.clone());
    let _guard = tracing::subscriber::set_default(subscriber);
    let coordinator = Coordinator::builder()
        .sink(Sink::new())
        .name("relay")
        .rate(backpressure::limit::Rate::new(10, Duration::from_secs(1)).burst(2))
        .build(|_: u32, _: WorkContext| async {})
        .unwrap();
    coordinator.enqueue_many(0..3).await.unwrap();
    coordinator.drain().await;

    let seen = recorder.0.lock().unwrap();
    let mut delayed: Vec<(String, Option<String>)> = (seen.spans.values())
        .filter(|(name, _)| name == "backpressure.item")
        .map(|(_, f)| (f["item_id"].clone(), f.get("rate_limited").cloned()))
        .collect();
    delayed.sort();
    let want = |id: &str, rate: Option<&str>| (id.to_owned(), rate.map(str::to_owned));
    // The burst of two starts at once; the third waits for its instant.
    assert_eq!(
        delayed,
        [want("0", None), want("1", None), want("2", Some("true"))]
    );
}

#[tokio::test(start_paused = true)]
async fn the_item_span_says_when_the_start_waited_for_a_fleet_permit() {
    let recorder = Recorder::default();
    let subscriber = tracing_subscriber::registry().with(recorder.clone());
    let _guard = tracing::subscriber::set_default(subscriber);
    let sink = Sink::new();
    sink.serve_permits();
    let coordinator = Coordinator::builder()
        .sink(sink.clone())
        .name("relay")
        .global_concurrency(2)
        .build(|_: u32, _: WorkContext| async {})
        .unwrap();
    let permits = sink.permit_pools().pop().unwrap();
    permits.grant(1);
    coordinator.enqueue(0).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1)).await;
    coordinator.enqueue(1).await.unwrap();
    // The permit is back once item 0 ended: item 1 takes it without waiting.
    tokio::time::sleep(Duration::from_millis(1)).await;
    permits.revoke_all();
    coordinator.enqueue(2).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(permits.counts().wanted, "item 2 waits for a permit");
    permits.grant(1);
    coordinator.drain().await;

    let seen = recorder.0.lock().unwrap();
    let mut waited: Vec<(String, Option<String>)> = (seen.spans.values())
        .filter(|(name, _)| name == "backpressure.item")
        .map(|(_, f)| (f["item_id"].clone(), f.get("permit_waited").cloned()))
        .collect();
    waited.sort();
    let want = |id: &str, w: Option<&str>| (id.to_owned(), w.map(str::to_owned));
    assert_eq!(
        waited,
        [want("0", None), want("1", None), want("2", Some("true"))]
    );
}

#[tokio::test(start_paused = true)]
async fn dead_letters_dropped_with_their_coordinator_are_logged_by_id() {
    let recorder = Recorder::default();
    let subscriber = tracing_subscriber::registry().with(recorder.clone());
    let _guard = tracing::subscriber::set_default(subscriber);
    let coordinator = Coordinator::builder()
        .sink(Sink::new())
        .name("relay")
        .retry(backpressure::retry::Retry::new(1))
        .build(|_: u32, _: WorkContext| async { Err::<(), _>("relay down") })
        .unwrap();
    coordinator.enqueue_many(0..2).await.unwrap();
    coordinator.drain().await;
    assert_eq!(coordinator.dead_letter_counts().0, 2);
    drop(coordinator);

    let seen = recorder.0.lock().unwrap();
    let dropped: Vec<_> = (seen.events.iter())
        .filter(|(level, f)| {
            *level == tracing::Level::WARN
                && f.get("message")
                    .is_some_and(|m| m.contains("dead letters nobody took"))
        })
        .map(|(_, f)| (f["count"].clone(), f["item_ids"].clone()))
        .collect();
    assert_eq!(dropped, [("2".to_owned(), "#0,#1".to_owned())]);
}
