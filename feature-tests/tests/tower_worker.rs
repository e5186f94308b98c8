//! A layer that follows a worker (`HoldLayer::for_worker`), and the axum wiring: a held
//! route answers 503 with a `Retry-After` that tells the truth (an open breaker's half-open
//! instant, not the TTL its owner keeps refreshing).

use std::time::Duration;

use axum::body::Body;
use axum::error_handling::HandleErrorLayer;
use axum::http::{Request, StatusCode};
use axum::routing::post;
use axum::Router;
use backpressure::policy::Breaker;
use backpressure::tower::{handle_error, HoldLayer, WorkerHoldError};
use backpressure::{backpressure_worker, Coordinator, Runtime, Sink, WorkContext};
use tower::{ServiceBuilder, ServiceExt};

#[backpressure_worker(
    name = "mailer",
    sink = "main",
    defer_on = "backpressure.smtp",
    resume_on = "maintenance.override"
)]
async fn mailer(to: String) {
    let _ = to;
}

fn app(layer: HoldLayer) -> Router {
    let held = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(handle_error))
        .layer(layer);
    Router::new()
        .route("/send", post(|| async { "queued" }))
        .route_layer(held)
}

async fn send(app: &Router) -> (StatusCode, Option<String>, String) {
    let request = Request::post("/send").body(Body::empty()).unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = axum::body::to_bytes(response.into_body(), 4096)
        .await
        .unwrap();
    (
        status,
        retry_after,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

#[tokio::test]
async fn the_route_follows_the_worker_s_effective_defer_on_and_resume_on() {
    // Operations widened the worker's `defer_on` in the config file: the route follows.
    let config = "[workers.\"mailer\"]\ndefer_on = \"backpressure.smtp, backpressure.dns\"\n";
    let runtime = Runtime::builder()
        .only(["mailer"])
        .config_toml("ops.toml", config)
        .start()
        .unwrap();
    let sink = runtime.sink("main").expect("the worker's sink");
    let app = app(HoldLayer::for_worker(&runtime, "mailer").unwrap());
    assert_eq!(send(&app).await.0, StatusCode::OK);

    sink.raise("backpressure.dns").unwrap();
    let (status, retry_after, body) = send(&app).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        retry_after, None,
        "a plain raise without a TTL gives no hint"
    );
    assert_eq!(
        body,
        r#"{"error":"rejected","signal":"backpressure.dns","retry_after_secs":null}"#
    );
    // Its `resume_on` lets work through, for the worker and the route alike.
    sink.raise("maintenance.override").unwrap();
    assert_eq!(send(&app).await.0, StatusCode::OK);
    sink.retract("maintenance.override").unwrap();
    sink.retract("backpressure.dns").unwrap();
    // A signal the worker does not defer on holds neither.
    sink.raise("backpressure.db").unwrap();
    assert_eq!(send(&app).await.0, StatusCode::OK);

    let unknown = HoldLayer::for_worker(&runtime, "mail").unwrap_err();
    assert_eq!(
        unknown,
        WorkerHoldError::UnknownWorker {
            name: "mail".into(),
            known: vec!["mailer".into()]
        }
    );
    runtime.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_the_breaker_s_half_open_instant_rounded_up() {
    let sink = Sink::new();
    let breaker = Breaker::error_rate("backpressure.smtp")
        .consecutive_failures(1)
        .open_for(Duration::from_millis(2_500))
        .jitter(0.0)
        .ttl(Duration::from_secs(15));
    let relay = Coordinator::builder()
        .sink(sink.clone())
        .name("relay")
        .defer_on("backpressure.*")
        .policy(breaker)
        .build(|(): (), _: WorkContext| async { Err::<(), _>("relay refused") })
        .unwrap();
    let app = app(HoldLayer::for_coordinator(&relay).unwrap());
    relay.enqueue(()).await.unwrap();
    let opened = async {
        while !sink.is_raised("backpressure.smtp") {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(1), opened)
        .await
        .expect("the breaker opened");

    // 2.5 s to half-open, not the 15 s TTL: "3".
    let (status, retry_after, body) = send(&app).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(retry_after.as_deref(), Some("3"), "{body}");
    tokio::time::advance(Duration::from_millis(1_000)).await;
    assert_eq!(send(&app).await.1.as_deref(), Some("2"));
}
