//! Every answer of the admin router carries the security headers: each route's, the mount
//! point's redirect, the fallbacks' and the guard's refusals, and the body extractor's 4xx.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use backpressure::{backpressure_worker, Runtime};
use backpressure_admin::AdminConfig;
use tower::ServiceExt;

#[backpressure_worker(
    name = "headers::mail",
    sink = "mail",
    concurrency = 2,
    defer_on = "backpressure.smtp"
)]
async fn mail(item: u32) {
    let _ = item;
}

fn runtime() -> Arc<Runtime> {
    Arc::new(
        Runtime::builder()
            .only(["headers::mail"])
            .start()
            .expect("the test worker starts"),
    )
}

/// The headers of `app`'s answer to `method uri` (JSON body `body`, when given). The body
/// is not read: the event stream's never ends.
async fn headers_of(
    app: &Router,
    method: Method,
    uri: &str,
    body: Option<&str>,
) -> (StatusCode, HeaderMap) {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::HOST, "127.0.0.1:8080");
    if body.is_some() {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    let request = request
        .body(Body::from(body.unwrap_or("").to_owned()))
        .unwrap();
    let response = app.clone().oneshot(request).await.expect("an answer");
    (response.status(), response.headers().clone())
}

fn assert_secured(what: &str, headers: &HeaderMap, cache: &str) {
    let csp = headers
        .get(header::CONTENT_SECURITY_POLICY)
        .unwrap_or_else(|| panic!("{what}: no Content-Security-Policy"));
    assert!(
        csp.to_str().unwrap().starts_with("default-src 'self'"),
        "{what}: {csp:?}"
    );
    for (name, value) in [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, cache),
    ] {
        assert_eq!(
            headers.get(&name).map(|v| v.to_str().unwrap()),
            Some(value),
            "{what}: {name}"
        );
    }
}

#[tokio::test]
async fn every_route_answers_with_the_security_headers() {
    let runtime = runtime();
    let app = backpressure_admin::router(Arc::clone(&runtime), AdminConfig::new());
    let raise = r#"{"name":"backpressure.smtp"}"#;
    let cases: [(Method, &str, Option<&str>, StatusCode, &str); 15] = [
        (Method::GET, "/", None, StatusCode::OK, "no-cache"),
        (Method::GET, "/index.html", None, StatusCode::OK, "no-cache"),
        (
            Method::GET,
            "/assets/app.js",
            None,
            StatusCode::OK,
            "no-cache",
        ),
        (
            Method::GET,
            "/assets/app.css",
            None,
            StatusCode::OK,
            "no-cache",
        ),
        (
            Method::GET,
            "/assets/favicon.svg",
            None,
            StatusCode::OK,
            "no-cache",
        ),
        (
            Method::GET,
            "/api/overview",
            None,
            StatusCode::OK,
            "no-store",
        ),
        (
            Method::GET,
            "/api/workers",
            None,
            StatusCode::OK,
            "no-store",
        ),
        (
            Method::GET,
            "/api/workers/headers::mail",
            None,
            StatusCode::OK,
            "no-store",
        ),
        (Method::GET, "/api/sinks", None, StatusCode::OK, "no-store"),
        (
            Method::GET,
            "/api/sinks/mail",
            None,
            StatusCode::OK,
            "no-store",
        ),
        (
            Method::POST,
            "/api/sinks/mail/raise",
            Some(raise),
            StatusCode::OK,
            "no-store",
        ),
        (
            Method::POST,
            "/api/sinks/mail/retract",
            Some(raise),
            StatusCode::OK,
            "no-store",
        ),
        (
            Method::POST,
            "/api/workers/headers::mail/pause",
            Some("{}"),
            StatusCode::OK,
            "no-store",
        ),
        (
            Method::POST,
            "/api/workers/headers::mail/resume",
            Some("{}"),
            StatusCode::OK,
            "no-store",
        ),
        (Method::GET, "/api/events", None, StatusCode::OK, "no-store"),
    ];
    for (method, uri, body, status, cache) in cases {
        let what = format!("{method} {uri}");
        let (got, headers) = headers_of(&app, method, uri, body).await;
        assert_eq!(got, status, "{what}");
        assert_secured(&what, &headers, cache);
    }
}

#[tokio::test]
async fn the_mount_point_redirect_carries_the_security_headers() {
    let runtime = runtime();
    let app = Router::new().nest(
        "/ops/admin",
        backpressure_admin::router(Arc::clone(&runtime), AdminConfig::new()),
    );
    let (status, headers) = headers_of(&app, Method::GET, "/ops/admin", None).await;
    assert_eq!(status, StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(headers[header::LOCATION], "admin/index.html");
    assert_secured("the redirect", &headers, "no-store");
}

#[tokio::test]
async fn refusals_carry_the_security_headers() {
    let runtime = runtime();
    let open = backpressure_admin::router(Arc::clone(&runtime), AdminConfig::new());
    let read_only =
        backpressure_admin::router(Arc::clone(&runtime), AdminConfig::new().read_only(true));
    let raise = "/api/sinks/mail/raise";
    let cases = [
        (
            &open,
            Method::GET,
            "/api/nothing",
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            &open,
            Method::DELETE,
            raise,
            None,
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            &open,
            Method::POST,
            raise,
            None,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            &open,
            Method::POST,
            raise,
            Some("[1]"),
            StatusCode::BAD_REQUEST,
        ),
        (
            &open,
            Method::POST,
            "/api/sinks/nope/raise",
            Some("{}"),
            StatusCode::NOT_FOUND,
        ),
        (
            &open,
            Method::GET,
            "/api/workers/%FF",
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            &read_only,
            Method::POST,
            raise,
            Some("{}"),
            StatusCode::FORBIDDEN,
        ),
    ];
    for (app, method, uri, body, status) in cases {
        let what = format!("{method} {uri} {body:?}");
        let (got, headers) = headers_of(app, method, uri, body).await;
        assert_eq!(got, status, "{what}");
        assert_secured(&what, &headers, "no-store");
    }
    let too_large = format!(r#"{{"name":"{}"}}"#, "n".repeat(20_000));
    let (status, headers) = headers_of(&open, Method::POST, raise, Some(&too_large)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_secured("a body too large", &headers, "no-store");
}
