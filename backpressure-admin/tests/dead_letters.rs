//! Retries and dead letters through the admin API, without a browser: what the workers
//! JSON says about a worker's retry, its retries and its dead letters, and `POST
//! api/workers/{name}/requeue` under every rule of the other changes. Isolated runtimes on
//! paused time, so the backoffs are exact and the tests stay parallel.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use backpressure::retry::Failure;
use backpressure::{backpressure_worker, Runtime, Stats};
use backpressure_admin::{Access, AdminConfig};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

/// An email; `Clone`, as a worker with `retry(...)` needs.
#[derive(Debug, Clone)]
struct Mail(String);

/// The addresses the relay takes by now; every other one is refused. Each test uses
/// addresses of its own, so the tests stay parallel.
static FIXED: Mutex<Option<HashSet<String>>> = Mutex::new(None);

fn fix(to: &str) {
    FIXED
        .lock()
        .unwrap()
        .get_or_insert_with(HashSet::new)
        .insert(to.to_owned());
}

#[backpressure_worker(
    name = "dead::send",
    sink = "mail",
    retry(attempts = 2, backoff = "1s", jitter = 0.0),
    dead_letters = 3
)]
async fn send(mail: Mail) -> Result<(), Failure<String>> {
    let fixed = FIXED
        .lock()
        .unwrap()
        .as_ref()
        .is_some_and(|set| set.contains(&mail.0));
    match mail.0.strip_prefix("permanent:") {
        _ if fixed => Ok(()),
        Some(to) => Err(Failure::permanent(format!("{to}: no such domain"))),
        None => Err(Failure::from(format!("{}: relay refused", mail.0))),
    }
}

#[backpressure_worker(name = "dead::plain", sink = "mail")]
async fn plain(item: u32) {
    let _ = item;
}

fn start() -> Arc<Runtime> {
    Arc::new(
        Runtime::builder()
            .only(["dead::send", "dead::plain"])
            .start()
            .expect("the test workers start"),
    )
}

/// Enqueues `addresses` and advances paused time until each is dead-lettered.
async fn dead_letter(runtime: &Runtime, addresses: &[&str]) -> Stats {
    let coordinator = runtime.coordinator::<Mail>("dead::send").unwrap();
    let before = runtime.worker("dead::send").unwrap().stats.dead_lettered;
    for to in addresses {
        coordinator.enqueue(Mail((*to).to_owned())).await.unwrap();
    }
    let want = before + addresses.len() as u64;
    advance_until(runtime, |s| s.dead_lettered == want).await
}

/// Advances paused time in 100 ms steps until `done` holds of `dead::send`'s stats (at most
/// ten minutes of it).
async fn advance_until(runtime: &Runtime, done: impl Fn(&Stats) -> bool) -> Stats {
    for _ in 0..6_000 {
        let stats = runtime.worker("dead::send").unwrap().stats;
        if done(&stats) {
            return stats;
        }
        tokio::time::advance(Duration::from_millis(100)).await;
    }
    panic!("waited ten minutes (paused) for dead::send's stats");
}

async fn call(app: &Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = app.clone().oneshot(request).await.expect("an answer");
    let status = response.status();
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).expect("JSON"))
}

async fn get(app: &Router, uri: &str) -> Value {
    let (status, body) = call(app, Request::get(uri).body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{uri}: {body}");
    body
}

fn post(uri: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut request = Request::post(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::HOST, "127.0.0.1:8080");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(Body::from("{}")).unwrap()
}

const REQUEUE: &str = "/api/workers/dead::send/requeue";

fn kept(worker: &Value) -> u64 {
    worker["dead_letters"]["count"].as_u64().unwrap()
}

#[tokio::test(start_paused = true)]
async fn the_workers_json_carries_the_retry_its_counters_and_the_last_errors() {
    let runtime = start();
    let app = backpressure_admin::router(Arc::clone(&runtime), AdminConfig::new());
    let coordinator = runtime.coordinator::<Mail>("dead::send").unwrap();
    // The history's first samples, of nothing yet.
    tokio::time::advance(Duration::from_millis(1500)).await;
    for to in ["a@json", "b@json", "c@json", "d@json"] {
        coordinator.enqueue(Mail(to.to_owned())).await.unwrap();
    }
    advance_until(&runtime, |s| s.retry_waiting == 4).await;
    let overview = get(&app, "/api/overview").await;
    assert_eq!(overview["summary"]["retry_waiting"], 4);
    assert_eq!(overview["controls"]["requeue"], true);
    let send = get(&app, "/api/workers/dead::send").await;
    assert_eq!(
        send["retry"],
        json!({"attempts": 2, "backoff": "1s", "max_backoff": "1m", "multiplier": 2.0,
               "jitter": 0.0, "jitter_seed": null})
    );
    assert_eq!(
        (&send["stats"]["retry_waiting"], &send["stats"]["retried"]),
        (&json!(4), &json!(4))
    );

    advance_until(&runtime, |s| s.dead_lettered == 4).await;
    let stats = dead_letter(&runtime, &["permanent:e@json"]).await;
    assert_eq!(
        (stats.dead_lettered, stats.failed, stats.retried),
        (5, 5, 4)
    );
    let send = get(&app, "/api/workers/dead::send").await;
    assert_eq!(
        (&send["stats"]["dead_lettered"], kept(&send)),
        (&json!(5), 3)
    );
    assert_eq!(send["dead_letters"]["evicted"], 2);
    let last = send["dead_letters"]["last"].as_array().unwrap();
    let errors: Vec<&str> = last.iter().map(|l| l["error"].as_str().unwrap()).collect();
    assert_eq!(
        errors,
        [
            "c@json: relay refused",
            "d@json: relay refused",
            "e@json: no such domain"
        ],
        "the last three, oldest first"
    );
    assert_eq!(
        (&last[1]["attempts"], &last[1]["permanent"]),
        (&json!(2), &json!(false))
    );
    assert_eq!(
        (&last[2]["attempts"], &last[2]["permanent"]),
        (&json!(1), &json!(true))
    );
    assert!(last[2]["id"].as_u64().unwrap() > last[1]["id"].as_u64().unwrap());
    assert_eq!(
        get(&app, "/api/overview").await["summary"]["dead_letters"],
        3
    );

    let plain = get(&app, "/api/workers/dead::plain").await;
    assert_eq!(plain["retry"], Value::Null);
    assert_eq!(
        plain["dead_letters"],
        json!({"count": 0, "evicted": 0, "last": []})
    );
}

#[tokio::test(start_paused = true)]
async fn requeue_runs_the_dead_letters_again_and_they_complete() {
    let runtime = start();
    let app = backpressure_admin::router(Arc::clone(&runtime), AdminConfig::new());
    dead_letter(&runtime, &["a@requeue", "permanent:b@requeue"]).await;
    let (status, body) = call(&app, post(REQUEUE, &[])).await;
    assert_eq!((status, &body), (StatusCode::OK, &json!({"requeued": 2})));
    assert_eq!(kept(&get(&app, "/api/workers/dead::send").await), 0);
    // Still failing: both come back, one retried first.
    let stats = advance_until(&runtime, |s| s.dead_lettered == 4).await;
    assert_eq!((stats.retried, stats.completed), (2, 0));

    fix("a@requeue");
    fix("permanent:b@requeue");
    let (status, body) = call(&app, post(REQUEUE, &[])).await;
    assert_eq!((status, &body), (StatusCode::OK, &json!({"requeued": 2})));
    let stats = advance_until(&runtime, |s| s.completed == 2).await;
    assert!(stats.is_consistent(), "{stats:?}");
    let send = get(&app, "/api/workers/dead::send").await;
    assert_eq!(
        (kept(&send), &send["stats"]["dead_lettered"]),
        (0, &json!(4))
    );
    // Nothing left: a second requeue moves nothing.
    let (_, body) = call(&app, post(REQUEUE, &[])).await;
    assert_eq!(body, json!({"requeued": 0}));
    // A worker without `retry(...)` keeps none.
    let (status, body) = call(&app, post("/api/workers/dead::plain/requeue", &[])).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"requeued": 0})));
}

#[tokio::test(start_paused = true)]
async fn requeue_obeys_read_only_mode_the_authorize_hook_and_the_origin_check() {
    let runtime = start();
    dead_letter(&runtime, &["a@guard"]).await;
    let still_kept = || runtime.worker("dead::send").unwrap().dead_letter_count;

    let read_only =
        backpressure_admin::router(Arc::clone(&runtime), AdminConfig::new().read_only(true));
    assert_eq!(
        get(&read_only, "/api/overview").await["controls"]["requeue"],
        false
    );
    let (status, error) = call(&read_only, post(REQUEUE, &[])).await;
    assert_eq!(
        (status, error),
        (
            StatusCode::FORBIDDEN,
            json!({"error": "the admin is read-only", "field": null})
        )
    );
    assert_eq!(still_kept(), 1);

    let config = AdminConfig::new().authorize(|request, access| {
        access == Access::Read || request.headers.contains_key("x-on-call")
    });
    let app = backpressure_admin::router(Arc::clone(&runtime), config);
    let (status, error) = call(&app, post(REQUEUE, &[])).await;
    assert_eq!(
        (status, &error["error"]),
        (StatusCode::FORBIDDEN, &json!("not allowed"))
    );
    for foreign in [
        &[("x-on-call", "1"), ("origin", "http://evil.example")][..],
        &[("x-on-call", "1"), ("sec-fetch-site", "cross-site")],
    ] {
        let (status, error) = call(&app, post(REQUEUE, foreign)).await;
        assert_eq!(
            (status, &error["field"]),
            (StatusCode::FORBIDDEN, &json!("origin")),
            "{foreign:?}"
        );
    }
    let plain_text = Request::post(REQUEUE)
        .header(header::CONTENT_TYPE, "text/plain")
        .header("x-on-call", "1")
        .body(Body::from("{}"))
        .unwrap();
    let (status, _) = call(&app, plain_text).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let extra = Request::post(REQUEUE)
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-on-call", "1")
        .body(Body::from(r#"{"all": true}"#))
        .unwrap();
    let (status, _) = call(&app, extra).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "an unknown field");
    assert_eq!(still_kept(), 1, "no refused request requeued anything");

    let on_call = [("x-on-call", "1"), ("origin", "http://127.0.0.1:8080")];
    let (status, body) = call(&app, post(REQUEUE, &on_call)).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"requeued": 1})));
}

#[tokio::test(start_paused = true)]
async fn requeue_of_an_unknown_worker_is_the_same_404_as_pause() {
    let runtime = start();
    let app = backpressure_admin::router(Arc::clone(&runtime), AdminConfig::new());
    let (status, requeue) = call(&app, post("/api/workers/dead::nobody/requeue", &[])).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, pause) = call(&app, post("/api/workers/dead::nobody/pause", &[])).await;
    assert_eq!(requeue, pause);
    assert_eq!(
        requeue,
        json!({"error": "unknown worker `dead::nobody`", "field": "worker"})
    );
}
