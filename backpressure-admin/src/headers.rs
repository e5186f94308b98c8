//! The headers every response of the router carries, added by one layer around all routes,
//! the fallbacks and the guard: handlers, redirects and refusals all get them.

use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::Response;

/// The page's Content-Security-Policy: its own files only, and no framing.
const CSP: &str = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// The `map_response` layer's function: the security headers on every response, and
/// `Cache-Control: no-store` unless the handler chose a caching rule itself (the page's
/// files do; API answers, errors and the event stream are live data, never cached).
pub(crate) async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    insert_security_headers(headers);
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

fn insert_security_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}
