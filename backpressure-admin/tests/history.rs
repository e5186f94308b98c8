//! `GET api/history` on tokio's paused clock: an empty history, the bars and gate spans of a
//! levelled raise with exact times, a breaker's verdict bars and policy changes, increments
//! with `?since=`, bad queries, and the memory bound after 10,000 transitions.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use backpressure::{backpressure_worker, Level, RaiseOptions, Runtime};
use backpressure_admin::AdminConfig;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

#[backpressure_worker(
    name = "history::mail",
    sink = "mail",
    concurrency = 4,
    defer_on = "backpressure.smtp"
)]
async fn mail(item: u32) {
    let _ = item;
}

#[backpressure_worker(
    name = "history::flaky",
    sink = "api",
    concurrency = 1,
    defer_on = "backpressure.api",
    error_rate(
        signal = "backpressure.api",
        consecutive_failures = 2,
        open_for = "10s",
        jitter = 0.0,
        probes = 1
    )
)]
async fn flaky(fail: bool) -> Result<(), String> {
    if fail {
        Err("503".to_owned())
    } else {
        Ok(())
    }
}

fn app(workers: &[&str], config: AdminConfig) -> (Arc<Runtime>, Router) {
    let runtime = Arc::new(
        Runtime::builder()
            .only(workers.iter().copied())
            .start()
            .expect("the test workers start"),
    );
    let app = backpressure_admin::router(Arc::clone(&runtime), config);
    (runtime, app)
}

async fn get(app: &Router, uri: &str) -> (StatusCode, Value) {
    let request = Request::get(uri).body(Body::empty()).unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).expect("JSON"))
}

async fn history(app: &Router) -> Value {
    let (status, body) = get(app, "/api/history").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// The history once `what` holds of it: the recorder is a task of this (paused, current
/// thread) runtime, so each yield lets it catch up; 1000 yields is far more than it needs.
async fn history_until(app: &Router, what: &str, holds: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..1000 {
        let body = history(app).await;
        if holds(&body) {
            return body;
        }
        tokio::task::yield_now().await;
    }
    panic!("the history never showed {what}: {}", history(app).await);
}

fn spans<'a>(body: &'a Value, lane: &str) -> Vec<&'a Value> {
    body["spans"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["lane"] == lane)
        .collect()
}

fn closed(body: &Value, lane: &str) -> usize {
    spans(body, lane)
        .iter()
        .filter(|s| !s["end_ms"].is_null())
        .count()
}

fn ms(value: &Value) -> u64 {
    value.as_u64().unwrap_or_else(|| panic!("a time: {value}"))
}

#[tokio::test(start_paused = true)]
async fn an_empty_history_has_no_bars_and_states_its_bounds() {
    let (_runtime, app) = app(&["history::mail"], AdminConfig::new());
    let body = history_until(&app, "a first sample", |b| {
        b["workers"][0]["at_ms"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    })
    .await;
    assert_eq!(body["spans"], serde_json::json!([]));
    assert_eq!(body["policy_changes"], serde_json::json!([]));
    assert_eq!(body["window_ms"], 900_000);
    assert_eq!(body["sample_every_ms"], 1000);
    let bounds = &body["bounds"];
    assert_eq!(bounds["max_transitions"], 2048);
    assert_eq!(bounds["samples_per_worker"], 900);
    assert_eq!(bounds["transitions"], 0);
    assert!(ms(&bounds["bytes"]) <= ms(&bounds["max_bytes"]), "{bounds}");
    let worker = &body["workers"][0];
    assert_eq!(worker["name"], "history::mail");
    assert_eq!(worker["queued"][0], 0);
    assert_eq!(worker["limit"][0], 4);
}

#[tokio::test(start_paused = true)]
async fn a_levelled_raise_then_stop_then_retract_gives_bars_and_gate_spans_with_exact_times() {
    let (runtime, app) = app(&["history::mail"], AdminConfig::new());
    let sink = runtime.sink("mail").unwrap();
    let half = RaiseOptions::new()
        .key("relay-1")
        .level(Level::new(0.5).unwrap());
    sink.raise_with("backpressure.smtp", half).unwrap();
    tokio::time::advance(Duration::from_secs(5)).await;
    sink.raise_keyed("backpressure.smtp", "relay-1").unwrap(); // now a full stop
    tokio::time::advance(Duration::from_secs(2)).await;
    sink.retract("backpressure.smtp").unwrap();

    let body = history_until(&app, "two closed bars and two gate spans", |b| {
        closed(b, "signal") == 2 && closed(b, "worker") == 2
    })
    .await;
    let bars = spans(&body, "signal");
    assert_eq!(bars.len(), 2, "{body}");
    let (first, second) = (bars[0], bars[1]);
    assert_eq!(
        (&first["sink"], &first["name"], &first["key"]),
        (
            &"mail".into(),
            &"backpressure.smtp".into(),
            &"relay-1".into()
        )
    );
    assert_eq!(first["level"], 0.5);
    assert_eq!(first["policy"], Value::Null);
    assert_eq!(first["ended"], "level_changed");
    assert_eq!(ms(&first["end_ms"]) - ms(&first["start_ms"]), 5_000);
    assert_eq!(second["level"], 0.0);
    assert_eq!(second["start_ms"], first["end_ms"], "the bars touch");
    assert_eq!(ms(&second["end_ms"]) - ms(&second["start_ms"]), 2_000);
    assert_eq!(second["ended"], "retracted");

    let gates = spans(&body, "worker");
    assert_eq!(gates[0]["worker"], "history::mail");
    assert_eq!(gates[0]["state"], "limited");
    assert_eq!(gates[0]["level"], 0.5);
    assert_eq!(
        gates[0]["signals"],
        serde_json::json!(["backpressure.smtp"])
    );
    assert_eq!(
        (&gates[0]["start_ms"], &gates[0]["end_ms"]),
        (&first["start_ms"], &first["end_ms"])
    );
    assert_eq!(gates[1]["state"], "held");
    assert_eq!(
        (&gates[1]["start_ms"], &gates[1]["end_ms"]),
        (&second["start_ms"], &second["end_ms"])
    );
}

#[tokio::test(start_paused = true)]
async fn a_breaker_opening_and_half_opening_is_two_policy_bars_and_its_changes() {
    let (runtime, app) = app(&["history::flaky"], AdminConfig::new());
    let flaky = runtime.coordinator::<bool>("history::flaky").unwrap();
    flaky.enqueue(true).await.unwrap();
    flaky.enqueue(true).await.unwrap();
    let body = history_until(&app, "an open verdict", |b| !spans(b, "signal").is_empty()).await;
    let open = spans(&body, "signal")[0].clone();
    assert_eq!(open["policy"], "error_rate");
    assert_eq!(open["phase"], "open");
    assert_eq!(open["key"], "history::flaky");
    tokio::time::advance(Duration::from_secs(10)).await;
    let body = history_until(&app, "the half-open verdict", |b| {
        spans(b, "signal").iter().any(|s| s["phase"] == "half_open")
    })
    .await;
    let bars = spans(&body, "signal");
    assert_eq!(bars[0]["ended"], "level_changed");
    assert_eq!(ms(&bars[0]["end_ms"]) - ms(&bars[0]["start_ms"]), 10_000);
    assert_eq!(bars[1]["start_ms"], bars[0]["end_ms"]);
    assert_eq!(bars[1]["policy"], "error_rate");

    // A successful probe closes it: the half-open bar ends retracted.
    flaky.enqueue(false).await.unwrap();
    let body = history_until(&app, "the verdict retracted", |b| closed(b, "signal") == 2).await;
    assert_eq!(spans(&body, "signal")[1]["ended"], "retracted");
    let changes: Vec<&str> = body["policy_changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        changes,
        ["closed → open", "open → half-open", "half-open → closed"]
    );
    assert_eq!(body["policy_changes"][0]["worker"], "history::flaky");
    assert_eq!(body["policy_changes"][0]["policy"], "error_rate");
}

#[tokio::test(start_paused = true)]
async fn since_answers_only_what_changed_after_a_revision_and_bad_queries_are_refused() {
    let (runtime, app) = app(&["history::mail"], AdminConfig::new());
    let sink = runtime.sink("mail").unwrap();
    sink.raise("backpressure.smtp").unwrap();
    let before = history_until(&app, "a bar", |b| spans(b, "signal").len() == 1).await;
    let rev = ms(&before["rev"]);
    let (status, nothing) = get(&app, &format!("/api/history?since={rev}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(nothing["spans"], serde_json::json!([]), "{nothing}");
    assert_eq!(nothing["since"], rev);

    sink.retract("backpressure.smtp").unwrap();
    tokio::task::yield_now().await;
    let mut delta = Value::Null;
    for _ in 0..1000 {
        delta = get(&app, &format!("/api/history?since={rev}")).await.1;
        if !delta["spans"].as_array().unwrap().is_empty() {
            break;
        }
        tokio::task::yield_now().await;
    }
    let changed: Vec<&Value> = spans(&delta, "signal");
    assert_eq!(changed.len(), 1, "only the bar that closed: {delta}");
    assert_eq!(changed[0]["id"], spans(&before, "signal")[0]["id"]);
    assert!(!changed[0]["end_ms"].is_null());

    for (query, field) in [
        ("since=soon", "since"),
        ("from=3", "query"),
        ("since=-1", "since"),
    ] {
        let (status, error) = get(&app, &format!("/api/history?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(error["field"], field, "{query}: {error}");
    }
}

#[tokio::test(start_paused = true)]
async fn ten_thousand_transitions_keep_the_memory_within_the_stated_bound() {
    let (runtime, app) = app(&["history::mail"], AdminConfig::new());
    let sink = runtime.sink("mail").unwrap();
    let first = history(&app).await;
    for i in 0..5_000u32 {
        sink.raise_keyed("backpressure.smtp", &format!("relay-{}", i % 7))
            .unwrap();
        tokio::time::advance(Duration::from_millis(100)).await;
        sink.retract("backpressure.smtp").unwrap();
        tokio::time::advance(Duration::from_millis(100)).await;
    }
    // 10,000 signal transitions (and as many gate changes), over 1000 s: past the window.
    let body = history_until(&app, "the last bar closed", |b| {
        spans(b, "signal")
            .last()
            .is_some_and(|s| s["key"] == "relay-1" && !s["end_ms"].is_null())
            && ms(&b["rev"]) > 20_000
    })
    .await;
    let bounds = &body["bounds"];
    println!(
        "after 10,000 transitions: {} transitions kept, {} bytes held (bound {} bytes; {} samples)",
        bounds["transitions"],
        bounds["bytes"],
        bounds["max_bytes"],
        body["workers"][0]["at_ms"].as_array().unwrap().len()
    );
    assert_eq!(
        bounds["transitions"], 2048,
        "the cap is reached and kept: {bounds}"
    );
    assert!(ms(&bounds["bytes"]) <= ms(&bounds["max_bytes"]), "{bounds}");
    assert!(
        ms(&bounds["max_bytes"]) <= 2_850_000,
        "the bound the docs state: {bounds}"
    );
    let samples = body["workers"][0]["at_ms"].as_array().unwrap();
    assert_eq!(samples.len(), 900, "one a second over the window");
    let window_start = ms(&body["now_ms"]) - 900_000;
    assert!(ms(&samples[0]) >= window_start);
    let oldest = body["spans"][0]["start_ms"].as_u64().unwrap();
    assert!(
        oldest > ms(&first["now_ms"]) + 700_000,
        "the oldest bars were dropped, the newest kept"
    );
    let newest = spans(&body, "signal").last().unwrap()["end_ms"]
        .as_u64()
        .unwrap();
    assert_eq!(
        ms(&body["now_ms"]) - newest,
        100,
        "the last retract is the newest bar"
    );
}

/// The `history` events of `GET api/events`, as JSON, in order.
struct HistoryEvents {
    body: Body,
    buffer: String,
}

impl HistoryEvents {
    async fn open(app: &Router) -> Self {
        let request = Request::get("/api/events").body(Body::empty()).unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        Self {
            body: response.into_body(),
            buffer: String::new(),
        }
    }

    /// The next `history` event (on the paused clock a wait costs nothing real).
    async fn next(&mut self) -> Value {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                if let Some(rest) = frame.strip_prefix("event: history\n") {
                    let data: String = rest
                        .lines()
                        .filter_map(|l| l.strip_prefix("data: "))
                        .collect();
                    return serde_json::from_str(&data).unwrap();
                }
                continue;
            }
            let frame = tokio::time::timeout(Duration::from_secs(30), self.body.frame())
                .await
                .expect("a history event within 30 s of (paused) time")
                .expect("the stream goes on")
                .unwrap();
            if let Ok(data) = frame.into_data() {
                self.buffer.push_str(std::str::from_utf8(&data).unwrap());
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn the_stream_sends_the_whole_history_then_each_increment_and_is_quiet_when_idle() {
    let (runtime, app) = app(&["history::mail"], AdminConfig::new());
    let mut events = HistoryEvents::open(&app).await;
    let whole = events.next().await;
    assert_eq!(whole["since"], 0);
    assert_eq!(whole["bounds"]["max_transitions"], 2048);
    // The first samples are news; an idle worker's next ones are not.
    let mut last = whole;
    while last["workers"][0]["at_ms"].as_array().unwrap().is_empty() {
        last = events.next().await;
    }
    runtime
        .sink("mail")
        .unwrap()
        .raise("backpressure.smtp")
        .unwrap();
    let delta = events.next().await;
    assert_eq!(delta["since"], last["rev"], "an increment on the last one");
    let bars = spans(&delta, "signal");
    assert_eq!(bars.len(), 1, "{delta}");
    assert_eq!(bars[0]["name"], "backpressure.smtp");
    assert!(bars[0]["end_ms"].is_null());
    let gates = spans(&delta, "worker");
    assert_eq!(gates.len(), 1, "the held gate comes with it: {delta}");
    assert_eq!(gates[0]["state"], "held");
    assert_eq!(gates[0]["start_ms"], bars[0]["start_ms"]);

    // The next sample says something new (the limit fell to 0); then nothing changes.
    let sample = events.next().await;
    assert_eq!(
        sample["workers"][0]["limit"],
        serde_json::json!([0]),
        "{sample}"
    );
    let quiet = tokio::time::timeout(Duration::from_secs(10), events.next()).await;
    assert!(
        quiet.is_err(),
        "an idle runtime sends no history: {quiet:?}"
    );
}
