//! The dashboard page and its files, embedded in the binary: no build step, no inline
//! script, every URL relative so the router works under any mount path. Their
//! Content-Security-Policy comes with every other response, from `headers.rs`.

use axum::extract::OriginalUri;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

const INDEX_HTML: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const TIMELINE_JS: &str = include_str!("../assets/timeline.js");
const CHARTS_JS: &str = include_str!("../assets/charts.js");
const RETRIES_JS: &str = include_str!("../assets/retries.js");
const APP_CSS: &str = include_str!("../assets/app.css");
const FAVICON_SVG: &str = include_str!("../assets/favicon.svg");

/// `GET /` and `GET /index.html`: the dashboard.
///
/// The page's URLs are relative, so it must be loaded from a URL ending in `/` or
/// `/index.html`. Mounted with `nest("/admin", ..)`, axum routes `/admin` here but not
/// `/admin/`, so a request for `/admin` is redirected (relatively, so it also works behind
/// a proxy that strips a prefix) to `/admin/index.html`.
pub(crate) async fn index(OriginalUri(uri): OriginalUri) -> Response {
    let path = uri.path();
    if !path.ends_with('/') && !path.ends_with("/index.html") {
        let last = path.rsplit('/').next().unwrap_or("");
        let mut location = format!("{last}/index.html");
        if let Some(query) = uri.query() {
            location.push('?');
            location.push_str(query);
        }
        if let Ok(location) = HeaderValue::from_str(&location) {
            return (
                StatusCode::TEMPORARY_REDIRECT,
                [(header::LOCATION, location)],
            )
                .into_response();
        }
    }
    file("text/html; charset=utf-8", INDEX_HTML)
}

pub(crate) async fn app_js() -> Response {
    file("text/javascript; charset=utf-8", APP_JS)
}

pub(crate) async fn timeline_js() -> Response {
    file("text/javascript; charset=utf-8", TIMELINE_JS)
}

pub(crate) async fn charts_js() -> Response {
    file("text/javascript; charset=utf-8", CHARTS_JS)
}

pub(crate) async fn retries_js() -> Response {
    file("text/javascript; charset=utf-8", RETRIES_JS)
}

pub(crate) async fn app_css() -> Response {
    file("text/css; charset=utf-8", APP_CSS)
}

pub(crate) async fn favicon() -> Response {
    file("image/svg+xml", FAVICON_SVG)
}

/// A file of the page, revalidated on each load (`no-cache`; the headers layer keeps a
/// `Cache-Control` the handler chose).
fn file(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
