//! A live admin for [`backpressure`]: which signal is holding which worker, since when, how
//! much work waits, and a hand on the controls.
//!
//! [`router`] returns an [`axum::Router`] that your application nests under its own path and
//! its own authentication. It serves a dashboard page (embedded HTML, CSS and JavaScript:
//! no build step, no inline script, `Content-Security-Policy: default-src 'self'`, relative
//! URLs so any mount path works), a JSON API and a server-sent event stream.
//!
//! ```no_run
//! use axum::extract::Request;
//! use axum::http::{header, StatusCode};
//! use axum::middleware::{self, Next};
//! use axum::response::Response;
//! use axum::Router;
//! use backpressure::backpressure_worker;
//! use backpressure_admin::{AdminConfig, Access};
//!
//! #[backpressure_worker(sink = "mail", concurrency = 4, defer_on = "backpressure.smtp")]
//! async fn send_email(to: String) {
//!     println!("sending to {to}");
//! }
//!
//! /// The application's own authentication: here, a bearer token.
//! async fn require_token(request: Request, next: Next) -> Result<Response, StatusCode> {
//!     let authorized = request
//!         .headers()
//!         .get(header::AUTHORIZATION)
//!         .is_some_and(|value| value == "Bearer s3cret");
//!     if authorized { Ok(next.run(request).await) } else { Err(StatusCode::UNAUTHORIZED) }
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let runtime = backpressure::start()?;
//!     let config = AdminConfig::new()
//!         // Only the on-call operator may raise, retract, pause or resume.
//!         .authorize(|request, access| {
//!             access == Access::Read || request.headers.contains_key("x-on-call")
//!         });
//!     let app = Router::new()
//!         .nest("/admin", backpressure_admin::router(runtime, config))
//!         .layer(middleware::from_fn(require_token));
//!
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//!     axum::serve(listener, app).await?;
//!     Ok(())
//! }
//! ```
//!
//! # Routes
//!
//! Relative to the mount path:
//!
//! | Route | What |
//! | --- | --- |
//! | `GET /`, `GET index.html` | the dashboard page (nested at `/admin`, `/admin` redirects to `/admin/index.html`) |
//! | `GET assets/app.js`, `assets/timeline.js`, `assets/charts.js`, `assets/retries.js`, `assets/app.css`, `assets/favicon.svg` | its files |
//! | `GET api/overview` | everything at once: summary, workers, sinks and their signals |
//! | `GET api/workers`, `api/workers/{name}` | workers: config, stats (retries and dead letters included), policies, gate, rates, `retry` (`null` without `retry(...)`), `dead_letters` (`count`, `evicted`, `last`: the last 20, oldest first, each `id`, `error`, `attempts`, `permanent`) |
//! | `GET api/sinks`, `api/sinks/{sink}` | sinks and their active signals (key, level, TTL left) |
//! | `POST api/sinks/{sink}/raise` | `{"name", "key"?, "ttl"?, "level"?}` raises a signal |
//! | `POST api/sinks/{sink}/retract` | `{"name", "key"?}` retracts it (without `key`: every entry of the name) |
//! | `POST api/workers/{name}/pause`, `…/resume` | pauses or resumes a worker |
//! | `POST api/workers/{name}/requeue` | `{}` runs the worker's dead letters again, as far as its queue has room: `{"requeued": n}` |
//! | `GET api/history[?since=rev]` | what happened: signal bars, gate spans, policy changes, per-second samples |
//! | `GET api/events` | the event stream |
//!
//! `ttl` is a number of seconds or a duration such as `"90s"` (at most 30 days), `level` a
//! number from 0 (full stop, the default) to 1.
//!
//! # The event stream
//!
//! `GET api/events` sends a `snapshot` event first (the same JSON as `api/overview`), then a
//! `signal` event for every raise, retract, expiry, level or policy change on the workers'
//! sinks, a `stats` event (again an overview) at most once a second and only when something
//! changed, and a keep-alive comment every 15 s (see [`AdminConfig::keep_alive`]). A client
//! that falls behind gets a `lagged` event followed by a fresh `snapshot`. A `history` event
//! follows the first snapshot (the whole of `api/history`), then carries each increment (what
//! `api/history?since=` the previous one's `rev` would answer) whenever a bar, a gate span or
//! a policy change moved, or a sample differs from the one before. An answer whose `since`
//! is 0 is a whole history, to replace what the client holds: the first one, and the answer
//! to a `since` the router has not reached (its page was loaded from another router) or one
//! older than something the history dropped since (by its cap or window).
//!
//! # The history
//!
//! The router keeps what happened over the last 15 minutes ([`AdminConfig::history_window`]):
//! one sample per worker per second (queued, deferred, running, limit, completed/s,
//! failed/s, retried/s, dead-lettered/s), a bar per signal entry while it was raised at one level and phase (and which
//! policy's verdict it was), a span per worker while its gate was held, limited or paused, and
//! each policy state change. Times come from tokio's clock. Memory is bounded:
//! `window / 1 s` samples per worker (48 B each: 42 KiB per worker for 15 minutes) and at most
//! [`AdminConfig::history_transitions`] transitions (2048 by default; at most 264 B each plus
//! their names, at most 4 × 256 B), plus the bars open right now: with the defaults and one
//! worker, at most 2.8 MB with names of the longest allowed length, and 0.37 MB measured after
//! 10,000 transitions with typical names (`tests/history.rs`). `api/history` reports its
//! `bounds`: what it holds (`bytes`, measured) and the bound that stays within
//! (`max_bytes`). A tokio runtime must be running when the router is built, or
//! the history starts with the first request.
//!
//! # Safety of the controls
//!
//! * [`AdminConfig::read_only`] hides the controls and answers every change (requeue
//!   included) with 403.
//! * [`AdminConfig::authorize`] decides per request ([`Access::Read`] or [`Access::Write`]).
//! * Changes take `Content-Type: application/json` only (415 otherwise), so a plain HTML form
//!   on another site cannot post one, and a request whose `Origin` is not the router's own
//!   host (or an [allowed origin](AdminConfig::allow_origin)) gets 403.
//! * Bad input (an unknown sink or worker, an invalid name or key, a bad TTL or level, an
//!   unknown field) gets a 4xx with `{"error": "...", "field": "..."}` naming the field.
//!
//! What is not guaranteed: the page is for people; its markup and the order of fields in the
//! JSON may change between versions.

mod api;
mod assets;
mod config;
mod defer;
mod error;
mod extract;
mod fields;
mod guard;
mod headers;
mod history;
mod model;
mod rates;
mod sse;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use backpressure::Runtime;

pub use config::{Access, AdminConfig};

/// The admin router for `runtime`: the dashboard page, the JSON API and the event stream.
///
/// Nest it under your own path and authentication: it does no authentication of its own.
/// Takes the [`Runtime`] by value or already shared in an [`Arc`].
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use backpressure_admin::AdminConfig;
///
/// let runtime = backpressure::Runtime::builder().only::<_, &str>([]).start()?;
/// let app: axum::Router = axum::Router::new()
///     .nest("/ops/backpressure", backpressure_admin::router(runtime, AdminConfig::new().read_only(true)));
/// # let _ = app;
/// # Ok(()) }
/// ```
pub fn router(runtime: impl Into<Arc<Runtime>>, config: AdminConfig) -> Router {
    let shared = model::Shared::new(runtime.into(), config);
    history::start(&shared);
    Router::new()
        .route("/", get(assets::index))
        .route("/index.html", get(assets::index))
        .route("/assets/app.js", get(assets::app_js))
        .route("/assets/timeline.js", get(assets::timeline_js))
        .route("/assets/charts.js", get(assets::charts_js))
        .route("/assets/retries.js", get(assets::retries_js))
        .route("/assets/app.css", get(assets::app_css))
        .route("/assets/favicon.svg", get(assets::favicon))
        .route("/api/overview", get(api::overview))
        .route("/api/workers", get(api::workers))
        .route("/api/workers/{name}", get(api::worker))
        .route("/api/workers/{name}/pause", post(api::pause))
        .route("/api/workers/{name}/resume", post(api::resume))
        .route("/api/workers/{name}/requeue", post(api::requeue))
        .route("/api/sinks", get(api::sinks))
        .route("/api/sinks/{sink}", get(api::sink))
        .route("/api/sinks/{sink}/raise", post(api::raise))
        .route("/api/sinks/{sink}/retract", post(api::retract))
        .route("/api/history", get(api::history))
        .route("/api/events", get(sse::events))
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            guard::guard,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(16 * 1024))
        // Outermost, so that every answer gets them: handlers, redirects, fallbacks and
        // the guard's refusals.
        .layer(axum::middleware::map_response(headers::security_headers))
        .with_state(shared)
}
