//! An axum mail service: a declared worker with a breaker, an HTTP route held exactly when
//! the worker is (`HoldLayer::for_worker`, answering 503 with a truthful `Retry-After`), and
//! the admin dashboard nested behind a token check.
//!
//! `cargo run --example axum_service` serves on 127.0.0.1:3000:
//!
//! ```text
//! curl -X POST localhost:3000/send -d ada@example.com     # 202 queued #0
//! curl -X POST localhost:3000/relay/down                  # the relay starts failing
//! curl -H 'authorization: Bearer s3cret' localhost:3000/admin/api/workers
//! ```
//!
//! Its test (`cargo test --example axum_service`, also run by `cargo test --workspace`) drives
//! it through a failure and a recovery.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::error_handling::HandleErrorLayer;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use backpressure::tower::{handle_error, HoldLayer};
use backpressure::{backpressure_worker, Runtime};
use tower::ServiceBuilder;

/// Whether the relay refuses mail (flipped by `POST /relay/down` and `/relay/up`).
static RELAY_DOWN: AtomicBool = AtomicBool::new(false);

/// Sends one email through the relay. Three failures in a row open the breaker: the worker
/// and the `/send` route hold until a probe gets through.
#[backpressure_worker(
    name = "send_email",
    sink = "mail",
    concurrency = 4,
    defer_on = "backpressure.*",
    error_rate(
        signal = "backpressure.smtp",
        consecutive_failures = 3,
        open_for = "2s",
        probes = 1
    )
)]
async fn send_email(to: String) -> Result<(), String> {
    if RELAY_DOWN.load(Ordering::SeqCst) {
        return Err(format!("relay refused mail to {to}"));
    }
    Ok(())
}

/// The application's own authentication for the admin: a bearer token.
async fn require_token(request: Request, next: Next) -> Result<Response, StatusCode> {
    let authorized = request
        .headers()
        .get(header::AUTHORIZATION)
        .is_some_and(|value| value == "Bearer s3cret");
    if authorized {
        Ok(next.run(request).await)
    } else {
        Err(StatusCode::UNAUTHORIZED)
    }
}

/// `POST /send` with the address as body: queued (202, naming the item's id), or 503 while
/// the worker is held.
async fn send(State(runtime): State<Arc<Runtime>>, to: String) -> Response {
    // `_in` the runtime the app was given (an isolated one in the test below).
    match send_email::try_enqueue_in(&runtime, to) {
        // The id names the email in the handler's span and the admin: hand it on.
        Ok(id) => (StatusCode::ACCEPTED, format!("queued {id}")).into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "the queue is full").into_response(),
    }
}

async fn relay(down: bool) -> StatusCode {
    RELAY_DOWN.store(down, Ordering::SeqCst);
    StatusCode::NO_CONTENT
}

/// The whole service on `runtime`.
fn app(runtime: Arc<Runtime>) -> Result<Router, Box<dyn std::error::Error>> {
    let held = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(handle_error))
        .layer(HoldLayer::for_worker(&runtime, send_email::NAME)?);
    let admin = backpressure_admin::router(Arc::clone(&runtime), Default::default())
        .layer(middleware::from_fn(require_token));
    Ok(Router::new()
        .route("/send", post(send))
        .route_layer(held)
        .route("/relay/down", post(|| relay(true)))
        .route("/relay/up", post(|| relay(false)))
        .with_state(runtime)
        .nest("/admin", admin))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = Arc::new(Runtime::builder().require([send_email::NAME]).start()?);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("serving on http://{}", listener.local_addr()?);
    axum::serve(listener, app(runtime)?).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::body::Body;
    use backpressure::policy::{BreakerState, PolicyState};
    use tower::ServiceExt;

    use super::*;

    async fn post(app: &Router, path: &str, body: &str) -> (StatusCode, Option<String>) {
        let request = Request::post(path)
            .body(Body::from(body.to_owned()))
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let retry_after = response.headers().get(header::RETRY_AFTER);
        let retry_after = retry_after.map(|v| v.to_str().unwrap().to_owned());
        (response.status(), retry_after)
    }

    fn breaker(runtime: &Runtime) -> PolicyState {
        runtime.worker(send_email::NAME).unwrap().policies[0].state
    }

    /// Waits (yielding; the clock is paused) until `done` holds.
    async fn until(what: &str, done: impl Fn() -> bool) {
        let waited = tokio::time::timeout(Duration::from_secs(30), async {
            while !done() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        waited.await.unwrap_or_else(|_| panic!("waited for {what}"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_relay_holds_the_route_with_a_truthful_retry_after_and_recovery_opens_it() {
        let runtime = Runtime::builder().only([send_email::NAME]).start().unwrap();
        let runtime = Arc::new(runtime);
        let app = app(Arc::clone(&runtime)).unwrap();
        assert_eq!(
            post(&app, "/send", "ada@example.com").await.0,
            StatusCode::ACCEPTED
        );
        let worker = runtime.coordinator::<String>(send_email::NAME).unwrap();
        until("the first email to go out", || {
            worker.stats().completed == 1
        })
        .await;

        // The relay fails: three failed sends open the breaker, and the route answers 503
        // with the time to half-open (2 s), not the verdict's TTL.
        post(&app, "/relay/down", "").await;
        for n in 0..3 {
            post(&app, "/send", &format!("user{n}@example.com")).await;
        }
        let open = PolicyState::Breaker(BreakerState::Open);
        until("the breaker to open", || breaker(&runtime) == open).await;
        let info = runtime.worker(send_email::NAME).unwrap();
        let half_open_in = info.policies[0].next_transition_in.unwrap();
        let (status, retry_after) = post(&app, "/send", "late@example.com").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        // `open_for` 2 s plus the breaker's jitter, rounded up: 2 or 3, never the 15 s TTL.
        let expected = half_open_in.as_secs_f64().ceil() as u64;
        assert!((2..=3).contains(&expected), "{half_open_in:?}");
        assert_eq!(retry_after, Some(expected.to_string()));

        // The admin is behind the token.
        let admin = Request::get("/admin/api/workers")
            .body(Body::empty())
            .unwrap();
        let denied = app.clone().oneshot(admin).await.unwrap();
        assert_eq!(denied.status(), StatusCode::UNAUTHORIZED);

        // The relay recovers. The route stays held while the verdict is half-open; a
        // probe (a queued email, enqueued before the layer held) closes the breaker.
        post(&app, "/relay/up", "").await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        worker.try_enqueue("probe@example.com".to_owned()).unwrap();
        let closed = PolicyState::Breaker(BreakerState::Closed);
        until("the breaker to close", || breaker(&runtime) == closed).await;
        assert_eq!(
            post(&app, "/send", "grace@example.com").await.0,
            StatusCode::ACCEPTED
        );
        until("every email to be handled", || worker.stats().queued == 0).await;
        let stats = worker.stats();
        assert_eq!((stats.failed, stats.completed), (3, 3), "{stats:?}");
    }
}
