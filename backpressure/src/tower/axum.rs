//! With the `axum` feature: a held request answered as a server should, 503 with a
//! `Retry-After` rounded up and a small JSON body naming what held it.

use axum_core::response::{IntoResponse, Response};
use http::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use http::StatusCode;

use super::HoldError;

impl IntoResponse for HoldError {
    /// `503 Service Unavailable`, `Retry-After` in whole seconds rounded up when the
    /// rejection has a hint ([`HoldError::retry_after_secs`]), and a JSON body:
    /// `{"error":"rejected","signal":"backpressure.db","retry_after_secs":3}`,
    /// `{"error":"saturated","max_in_flight":8}` or
    /// `{"error":"timed_out","pattern":"backpressure.*","waited_ms":2000}`.
    fn into_response(self) -> Response {
        let retry_after = self.retry_after_secs();
        let body = match &self {
            HoldError::Rejected { signal, .. } => format!(
                r#"{{"error":"rejected","signal":{},"retry_after_secs":{}}}"#,
                json_string(signal),
                retry_after.map_or_else(|| "null".to_owned(), |s| s.to_string())
            ),
            HoldError::Saturated { max_in_flight } => {
                format!(r#"{{"error":"saturated","max_in_flight":{max_in_flight}}}"#)
            }
            HoldError::TimedOut { pattern, waited } => format!(
                r#"{{"error":"timed_out","pattern":{},"waited_ms":{}}}"#,
                json_string(pattern.as_str()),
                waited.as_millis()
            ),
        };
        let mut response = (StatusCode::SERVICE_UNAVAILABLE, body).into_response();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(secs) = retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// The error handler for axum's `HandleErrorLayer` in front of a [`HoldLayer`]: a
/// [`HoldError`] becomes its response (503, see above); any other error of the inner
/// service a bare 500 (its text is not sent to the client).
///
/// [`HoldLayer`]: super::HoldLayer
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use axum::{body::Body, error_handling::HandleErrorLayer, http::Request, routing::post, Router};
/// use backpressure::tower::{handle_error, HoldLayer};
/// use tower::{ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let sink = backpressure::Sink::new();
/// let held = ServiceBuilder::new()
///     .layer(HandleErrorLayer::new(handle_error))
///     .layer(HoldLayer::fail_fast(&sink, "backpressure.*")?);
/// let app = Router::new()
///     .route("/send", post(|| async { "queued" }))
///     .route_layer(held);
///
/// sink.raise_for("backpressure.smtp", Duration::from_millis(2_500))?;
/// let request = Request::post("/send").body(Body::empty())?;
/// let response = app.oneshot(request).await?;
/// assert_eq!(response.status(), 503);
/// assert_eq!(response.headers()["retry-after"], "3");
/// # Ok(()) }
/// ```
pub async fn handle_error(error: tower::BoxError) -> Response {
    match error.downcast::<HoldError>() {
        Ok(held) => held.into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// A JSON string literal of `text` (names and patterns are ASCII; anything else is escaped).
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() || !c.is_ascii() => {
                for unit in c.encode_utf16(&mut [0; 2]) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
