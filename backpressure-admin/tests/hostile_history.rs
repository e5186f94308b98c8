//! Hostile inputs to `GET api/history` and the stream's `history` events, on tokio's paused
//! clock: junk and out-of-range `?since=`, revisions newer than the ring (another router) or
//! older than what it still holds, floods of transitions and of open entries against the
//! stated memory bound, the longest names with every allowed character, an idle runtime
//! past the window, clock jumps, a stream reconnected mid-history, read-only mode.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use backpressure::{backpressure_worker, Level, RaiseOptions, Runtime, MAX_NAME_LEN};
use backpressure_admin::AdminConfig;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

#[backpressure_worker(
    name = "hostile_history::mail",
    sink = "hmail",
    concurrency = 4,
    defer_on = "backpressure.*"
)]
async fn mail(item: u32) {
    let _ = item;
}

#[backpressure_worker(
    name = "hostile_history::other",
    sink = "hother",
    concurrency = 2,
    defer_on = "backpressure.*"
)]
async fn other(item: u32) {
    let _ = item;
}

const MAIL: &str = "hostile_history::mail";

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

/// The status, the body's size in bytes and the body as JSON.
async fn get_sized(app: &Router, uri: &str) -> (StatusCode, usize, Value) {
    let request = Request::get(uri).body(Body::empty()).unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&body).expect("JSON");
    (status, body.len(), json)
}

async fn get(app: &Router, uri: &str) -> (StatusCode, Value) {
    let (status, _, body) = get_sized(app, uri).await;
    (status, body)
}

async fn history(app: &Router) -> Value {
    let (status, body) = get(app, "/api/history").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// The history once `what` holds of it (the recorder is a task of this paused, current
/// thread runtime: each yield lets it catch up).
async fn history_until(app: &Router, what: &str, holds: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..5000 {
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

fn n(value: &Value) -> u64 {
    value
        .as_u64()
        .unwrap_or_else(|| panic!("a number: {value}"))
}

fn open_bars(body: &Value) -> usize {
    spans(body, "signal")
        .iter()
        .filter(|s| s["end_ms"].is_null())
        .count()
}

fn within_bound(body: &Value) -> bool {
    n(&body["bounds"]["bytes"]) <= n(&body["bounds"]["max_bytes"])
}

#[tokio::test(start_paused = true)]
async fn junk_negative_and_overflowing_since_are_refused_naming_the_field() {
    let (_runtime, app) = app(&[MAIL], AdminConfig::new());
    for query in [
        "since=",
        "since",
        "since=1e3",
        "since=0x10",
        "since=1.5",
        "since=-0",
        "since=%20",
        "since=18446744073709551616",
        "since=99999999999999999999999999999",
        "since=1&since=x",
    ] {
        let (status, error) = get(&app, &format!("/api/history?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {error}");
        assert_eq!(error["field"], "since", "{query}: {error}");
    }
    let (status, body) = get(&app, "/api/history?since=18446744073709551615").await;
    assert_eq!(status, StatusCode::OK, "u64::MAX is a revision: {body}");
}

/// A page that polled another router (one restarted since) asks with a revision this one
/// has not reached: it must get the whole history, not a silent "nothing new".
#[tokio::test(start_paused = true)]
async fn a_revision_from_the_future_gets_the_whole_history() {
    let (runtime, app) = app(&[MAIL], AdminConfig::new());
    runtime
        .sink("hmail")
        .unwrap()
        .raise("backpressure.smtp")
        .unwrap();
    let whole = history_until(&app, "the open bar", |b| open_bars(b) == 1).await;
    let future = n(&whole["rev"]) + 1_000_000;
    let (status, answer) = get(&app, &format!("/api/history?since={future}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (&answer["since"], open_bars(&answer)),
        (&Value::from(0), 1),
        "a revision newer than the ring's is answered as a whole history (since 0), with the bar that is open: {answer}"
    );
}

/// A client knew a bar while it was open; it closed and was then evicted by the cap before
/// the client asked again. Told nothing, the client would show it open forever.
#[tokio::test(start_paused = true)]
async fn a_revision_older_than_the_ring_keeps_gets_the_whole_history() {
    let (runtime, app) = app(&[MAIL], AdminConfig::new().history_transitions(16));
    let sink = runtime.sink("hmail").unwrap();
    sink.raise_keyed("backpressure.smtp", "a").unwrap();
    let seen = history_until(&app, "bar a open", |b| open_bars(b) == 1).await;
    let bar = spans(&seen, "signal")[0]["id"].clone();
    let rev = n(&seen["rev"]);
    sink.retract_keyed("backpressure.smtp", "a").unwrap();
    for i in 0..40 {
        sink.raise_keyed("backpressure.smtp", &format!("b{i}"))
            .unwrap();
        tokio::time::advance(Duration::from_millis(10)).await;
        sink.retract_keyed("backpressure.smtp", &format!("b{i}"))
            .unwrap();
        tokio::time::advance(Duration::from_millis(10)).await;
    }
    history_until(&app, "bar a evicted and the flood recorded", |b| {
        !b["spans"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"] == bar)
            && spans(b, "signal")
                .iter()
                .any(|s| s["key"] == "b39" && !s["end_ms"].is_null())
    })
    .await;
    let (_, delta) = get(&app, &format!("/api/history?since={rev}")).await;
    let told = delta["spans"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["id"] == bar);
    assert!(
        told || delta["since"] == 0,
        "since={rev}: bar {bar} closed and was dropped after it; the answer must be a whole history (since 0) so that the client drops its open bar: since={}",
        delta["since"]
    );
}

/// Many entries open at once, then all retracted: what the ring holds afterwards must stay
/// within the bound it states (open spans no longer count on top of the cap).
#[tokio::test(start_paused = true)]
async fn a_burst_of_open_entries_then_retracted_stays_within_the_stated_bound() {
    let (runtime, app) = app(&[MAIL], AdminConfig::new());
    let sink = runtime.sink("hmail").unwrap();
    let long = "x".repeat(MAX_NAME_LEN - 5);
    for i in 0..20_000u32 {
        sink.raise_keyed("backpressure.smtp", &format!("{i:05}{long}"))
            .unwrap();
    }
    let full = history_until(&app, "20,000 open bars", |b| open_bars(b) == 20_000).await;
    assert!(within_bound(&full), "while open: {}", full["bounds"]);
    sink.retract("backpressure.smtp").unwrap();
    let after = history_until(&app, "every bar closed", |b| open_bars(b) == 0).await;
    let (_, size, _) = get_sized(&app, "/api/history").await;
    println!(
        "after 20,000 open entries retracted: {} ({size} bytes of JSON)",
        after["bounds"]
    );
    assert!(
        within_bound(&after),
        "after the burst: bytes held must stay within max_bytes: {}",
        after["bounds"]
    );
}

/// 100,000 transitions over many names and keys: the cap holds, the memory stays within
/// its bound and the whole answer stays a few megabytes.
#[tokio::test(start_paused = true)]
async fn a_flood_of_100_000_transitions_stays_bounded_and_so_does_the_answer() {
    let (runtime, app) = app(&[MAIL], AdminConfig::new());
    let sink = runtime.sink("hmail").unwrap();
    for i in 0..50_000u32 {
        let name = format!("backpressure.n{}", i % 97);
        sink.raise_keyed(&name, &format!("k{}", i % 13)).unwrap();
        sink.retract_keyed(&name, &format!("k{}", i % 13)).unwrap();
        if i % 500 == 0 {
            tokio::time::advance(Duration::from_millis(100)).await;
        }
    }
    sink.raise_keyed("backpressure.last", "end").unwrap();
    let body = history_until(&app, "the last bar", |b| {
        spans(b, "signal").iter().any(|s| s["key"] == "end")
    })
    .await;
    let (_, size, _) = get_sized(&app, "/api/history").await;
    println!(
        "after 100,000 transitions: {} ({size} bytes of JSON)",
        body["bounds"]
    );
    assert_eq!(body["bounds"]["transitions"], 2048, "{}", body["bounds"]);
    assert!(within_bound(&body), "{}", body["bounds"]);
    assert!(size < 2_000_000, "the answer is {size} bytes");
    let ids: HashSet<u64> = body["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| n(&s["id"]))
        .collect();
    assert_eq!(
        ids.len(),
        body["spans"].as_array().unwrap().len(),
        "no span twice"
    );
}

/// A name and a key of the longest allowed length, made of every allowed character, come
/// back byte for byte in the bar, the gate span and the bound.
#[tokio::test(start_paused = true)]
async fn the_longest_names_with_every_allowed_character_round_trip() {
    let (runtime, app) = app(&[MAIL], AdminConfig::new());
    let sink = runtime.sink("hmail").unwrap();
    let unit = "aZ09._-:/";
    let name = format!("backpressure.{}", unit.repeat(40));
    let name = &name[..MAX_NAME_LEN];
    let key = &unit.repeat(40)[..MAX_NAME_LEN];
    let options = RaiseOptions::new()
        .key(key)
        .level(Level::new(0.0004).unwrap());
    sink.raise_with(name, options).unwrap();
    let body = history_until(&app, "the bar and its gate", |b| {
        open_bars(b) == 1 && !spans(b, "worker").is_empty()
    })
    .await;
    let bar = spans(&body, "signal")[0];
    assert_eq!(
        (bar["name"].as_str(), bar["key"].as_str()),
        (Some(name), Some(key))
    );
    assert_eq!(
        bar["level"], 0.001,
        "0.0004 is kept as the smallest level, not a stop"
    );
    let gate = spans(&body, "worker")[0];
    assert_eq!(gate["state"], "limited", "{gate}");
    assert_eq!(gate["signals"], serde_json::json!([name]));
    assert!(within_bound(&body), "{}", body["bounds"]);
}

/// Twenty minutes of paused time with nothing happening: the bar raised before the window
/// and still open stays (with its real start), closed ones and old samples leave.
#[tokio::test(start_paused = true)]
async fn an_idle_runtime_past_the_window_keeps_the_bars_still_open() {
    let (runtime, app) = app(&[MAIL, "hostile_history::other"], AdminConfig::new());
    let sink = runtime.sink("hmail").unwrap();
    sink.raise_keyed("backpressure.smtp", "old").unwrap();
    sink.raise_keyed("backpressure.smtp", "gone").unwrap();
    let first = history_until(&app, "two open bars", |b| open_bars(b) == 2).await;
    sink.retract_keyed("backpressure.smtp", "gone").unwrap();
    for _ in 0..20 {
        tokio::time::advance(Duration::from_secs(60)).await;
        tokio::task::yield_now().await;
    }
    // One jump of an hour on top (the recorder's ticks skip what they missed).
    tokio::time::advance(Duration::from_secs(3600)).await;
    let body = history_until(&app, "a sample after the jump", |b| {
        b["workers"][0]["at_ms"]
            .as_array()
            .and_then(|a| a.last())
            .is_some_and(|t| n(t) >= n(&first["now_ms"]) + 80 * 60_000)
    })
    .await;
    let bars = spans(&body, "signal");
    assert_eq!(bars.len(), 1, "only the open bar is left: {bars:?}");
    assert_eq!(bars[0]["key"], "old");
    assert!(bars[0]["end_ms"].is_null());
    assert!(
        n(&bars[0]["start_ms"]) <= n(&first["now_ms"]),
        "its real start"
    );
    let gates = spans(&body, "worker");
    assert!(
        gates
            .iter()
            .any(|g| g["worker"] == MAIL && g["end_ms"].is_null()),
        "the held gate is still open: {gates:?}"
    );
    let from = n(&body["now_ms"]) - n(&body["window_ms"]);
    for worker in body["workers"].as_array().unwrap() {
        let at = worker["at_ms"].as_array().unwrap();
        assert!(at.len() <= 900, "{}", at.len());
        assert!(
            at.iter().all(|t| n(t) >= from),
            "no sample before the window (from {from}): {:?}",
            &at[..3.min(at.len())]
        );
    }
}

/// The `history` events of one `GET api/events`.
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

/// A client applying the first stream's events, then reconnecting mid-history, ends with
/// each bar once and in its latest state, equal to what a fresh `GET` says.
#[tokio::test(start_paused = true)]
async fn a_stream_reconnected_mid_history_gives_a_consistent_state() {
    let (runtime, app) = app(&[MAIL], AdminConfig::new().read_only(true));
    let sink = runtime.sink("hmail").unwrap();
    let mut first = HistoryEvents::open(&app).await;
    assert_eq!(first.next().await["since"], 0);
    sink.raise_keyed("backpressure.smtp", "a").unwrap();
    let delta = first.next().await;
    assert_eq!(open_bars(&delta), 1, "{delta}");
    drop(first);
    sink.retract_keyed("backpressure.smtp", "a").unwrap();
    sink.raise_keyed("backpressure.smtp", "b").unwrap();
    let mut second = HistoryEvents::open(&app).await;
    let whole = second.next().await;
    assert_eq!(
        whole["since"], 0,
        "a new stream starts with the whole history"
    );
    let truth = history_until(&app, "bar b", |b| open_bars(b) == 1).await;
    let ids = |b: &Value| -> Vec<(u64, bool)> {
        spans(b, "signal")
            .iter()
            .map(|s| (n(&s["id"]), s["end_ms"].is_null()))
            .collect()
    };
    assert_eq!(
        ids(&whole),
        ids(&truth),
        "the greeting is the ring as it is"
    );
    assert_eq!(ids(&whole).len(), 2, "a closed, b open: {whole}");
}
