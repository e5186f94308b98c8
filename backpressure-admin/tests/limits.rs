//! The quotas in the JSON API: a worker's `rate(...)` and `global_concurrency` config, its
//! `rate_limited` / `rate_holding` / `permits` counters, and the gate states `rate` and
//! `permits`, which show only while signals and a pause leave the gate open. The permits
//! come from a sink that says a connector serves them (`Sink::serve_permits`), granted here
//! by hand as `backpressure/tests/permits.rs` does.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use backpressure::{backpressure_worker, Runtime, Sink};
use backpressure_admin::AdminConfig;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

const RELAY: &str = "limits::relay";

#[backpressure_worker(
    name = "limits::relay",
    sink = "relay",
    concurrency = 4,
    defer_on = "backpressure.relay",
    rate(limit = 50, per = "1s", burst = 2)
)]
async fn relay(item: u32) {
    let _ = item;
}

const FLEET: &str = "limits::fleet";

#[backpressure_worker(
    name = "limits::fleet",
    sink = "fleet",
    concurrency = 4,
    global_concurrency = 3,
    defer_on = "backpressure.fleet"
)]
async fn fleet(item: u32) {
    // Runs until the test lets it finish.
    FINISH.acquire().await.unwrap().forget();
    let _ = item;
}

static FINISH: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(0);

fn app(runtime: &Arc<Runtime>) -> Router {
    backpressure_admin::router(Arc::clone(runtime), AdminConfig::new())
}

async fn get_json(app: &Router, uri: &str) -> Value {
    let response = app
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .expect("the router answers");
    assert_eq!(response.status(), StatusCode::OK, "{uri}");
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&body).expect("JSON")
}

/// The worker's `gate`, `rate_limited`, `rate_holding` and `completed`, from the API.
async fn relay_now(app: &Router) -> (Value, u64, bool, u64) {
    let worker = get_json(app, &format!("/api/workers/{RELAY}")).await;
    let stats = &worker["stats"];
    (
        worker["gate"].clone(),
        stats["rate_limited"].as_u64().unwrap(),
        stats["rate_holding"].as_bool().unwrap(),
        stats["completed"].as_u64().unwrap(),
    )
}

/// Lets the coordinator run what is due now, without reaching the rate's next instant
/// (20 ms away at 50/s): paused time moves 1 ms.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

#[tokio::test(start_paused = true)]
async fn a_rate_that_holds_the_next_start_is_the_gate_state_rate_with_its_counters() {
    let runtime = Arc::new(Runtime::builder().only([RELAY]).start().unwrap());
    let app = app(&runtime);
    let worker = get_json(&app, &format!("/api/workers/{RELAY}")).await;
    assert_eq!(
        worker["config"]["rate"],
        json!({"limit": 50, "per": "1s", "burst": 2, "shared": false}),
        "{worker}"
    );
    assert_eq!(worker["config"]["global_concurrency"], Value::Null);
    assert_eq!(
        worker["stats"]["permits"],
        Value::Null,
        "no global_concurrency"
    );
    assert_eq!(worker["gate"]["state"], "open");

    let coordinator = runtime.coordinator::<u32>(RELAY).unwrap();
    coordinator.enqueue_many(0..4).await.unwrap();
    settle().await;
    // The burst of 2 started at once; the third waits for its instant.
    let (gate, delayed, holding, completed) = relay_now(&app).await;
    assert_eq!(completed, 2);
    assert_eq!(gate, json!({"state": "rate", "signals": [], "level": null}));
    assert!(holding);
    assert_eq!(delayed, 1, "the third item's start is delayed");

    // 20 ms later the third starts and the fourth is delayed in its turn.
    tokio::time::advance(Duration::from_millis(20)).await;
    settle().await;
    let (gate, delayed, holding, completed) = relay_now(&app).await;
    assert_eq!((completed, delayed, holding), (3, 2, true));
    assert_eq!(gate["state"], "rate");
    let overview = get_json(&app, "/api/overview").await;
    assert_eq!(overview["summary"]["held"], 0, "a rate is not a hold");

    // Once the queue is empty the rate holds nothing: the gate is open again.
    tokio::time::advance(Duration::from_millis(20)).await;
    settle().await;
    let (gate, delayed, holding, completed) = relay_now(&app).await;
    assert_eq!((completed, delayed, holding), (4, 2, false));
    assert_eq!(gate["state"], "open");
}

#[tokio::test(start_paused = true)]
async fn signals_and_a_pause_name_the_gate_before_the_rate() {
    let runtime = Arc::new(Runtime::builder().only([RELAY]).start().unwrap());
    let app = app(&runtime);
    let coordinator = runtime.coordinator::<u32>(RELAY).unwrap();
    coordinator.enqueue_many(0..4).await.unwrap();
    settle().await;
    assert_eq!(relay_now(&app).await.0["state"], "rate");

    runtime.pause(RELAY);
    let (gate, _, holding, _) = relay_now(&app).await;
    assert_eq!(gate["state"], "paused", "a pause is named first");
    assert!(holding, "the counters still say the rate holds");
    runtime.resume(RELAY);

    runtime
        .sink("relay")
        .unwrap()
        .raise("backpressure.relay")
        .unwrap();
    let (gate, ..) = relay_now(&app).await;
    assert_eq!(
        gate,
        json!({"state": "held", "signals": ["backpressure.relay"], "level": 0.0})
    );
    runtime
        .sink("relay")
        .unwrap()
        .retract("backpressure.relay")
        .unwrap();
    settle().await;
    assert_eq!(relay_now(&app).await.0["state"], "rate");
}

/// The fleet worker's `gate` and `permits`, from the API.
async fn fleet_now(app: &Router) -> (Value, Value) {
    let worker = get_json(app, &format!("/api/workers/{FLEET}")).await;
    (worker["gate"].clone(), worker["stats"]["permits"].clone())
}

fn permits(limit: u64, granted: u64, in_use: u64, wanted: bool) -> Value {
    json!({"limit": limit, "granted": granted, "in_use": in_use, "wanted": wanted})
}

#[tokio::test(start_paused = true)]
async fn a_start_waiting_for_a_fleet_permit_is_the_gate_state_permits() {
    // A sink served by a connector: here the test grants the permits by hand.
    let sink = Sink::new();
    sink.serve_permits();
    let runtime = Arc::new(
        Runtime::builder()
            .only([FLEET])
            .sink("fleet", sink.clone())
            .start()
            .unwrap(),
    );
    let app = app(&runtime);
    let worker = get_json(&app, &format!("/api/workers/{FLEET}")).await;
    assert_eq!(worker["config"]["global_concurrency"], 3, "{worker}");
    assert_eq!(worker["config"]["rate"], Value::Null);
    assert_eq!(
        fleet_now(&app).await,
        (
            json!({"state": "open", "signals": [], "level": null}),
            permits(3, 0, 0, false)
        )
    );

    let coordinator = runtime.coordinator::<u32>(FLEET).unwrap();
    coordinator.enqueue_many(0..3).await.unwrap();
    settle().await;
    let (gate, counts) = fleet_now(&app).await;
    assert_eq!(gate["state"], "permits", "no permit granted: {gate}");
    assert_eq!(counts, permits(3, 0, 0, true));

    let pool = sink.permit_pools().pop().expect("the worker's permits");
    pool.grant(2);
    settle().await;
    let (gate, counts) = fleet_now(&app).await;
    assert_eq!(counts, permits(3, 2, 2, true), "two run, the third waits");
    assert_eq!(gate["state"], "permits");

    // A signal is named before the permits.
    sink.raise("backpressure.fleet").unwrap();
    let (gate, _) = fleet_now(&app).await;
    assert_eq!(gate["state"], "held");
    assert_eq!(gate["signals"], json!(["backpressure.fleet"]));
    sink.retract("backpressure.fleet").unwrap();

    // A finished item's permit goes to the third: nothing waits, the gate is open.
    FINISH.add_permits(1);
    settle().await;
    let (gate, counts) = fleet_now(&app).await;
    assert_eq!(counts, permits(3, 2, 2, false));
    assert_eq!(gate["state"], "open");
    FINISH.add_permits(2);
    coordinator.drain().await;
    assert_eq!(fleet_now(&app).await.1["in_use"], 0);
}
