//! The admin router at the HTTP level, without a browser: status codes, JSON shapes, the
//! event stream's framing, the authorize hook, read-only mode, the `Origin` check and the
//! 4xx answers to bad input.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use backpressure::{backpressure_worker, Runtime};
use backpressure_admin::{Access, AdminConfig};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

#[backpressure_worker(
    name = "http::mail",
    sink = "mail",
    concurrency = 4,
    defer_on = "backpressure.smtp"
)]
async fn mail(item: u32) {
    let _ = item;
}

#[backpressure_worker(
    name = "http::db",
    sink = "db",
    concurrency = 2,
    defer_on = "backpressure.*"
)]
async fn db(item: u32) {
    let _ = item;
}

fn runtime() -> Arc<Runtime> {
    Arc::new(
        Runtime::builder()
            .only(["http::mail", "http::db"])
            .start()
            .expect("the test workers start"),
    )
}

fn app(runtime: &Arc<Runtime>, config: AdminConfig) -> Router {
    backpressure_admin::router(Arc::clone(runtime), config)
}

async fn send(
    app: &Router,
    request: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let response = app
        .clone()
        .oneshot(request)
        .await
        .expect("the router answers");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("a body")
        .to_bytes();
    (status, headers, body.to_vec())
}

async fn get_json(app: &Router, uri: &str) -> (StatusCode, Value) {
    let (status, headers, body) = send(app, Request::get(uri).body(Body::empty()).unwrap()).await;
    assert_eq!(headers[header::CONTENT_TYPE], "application/json", "{uri}");
    (status, serde_json::from_slice(&body).expect("JSON"))
}

fn post(uri: &str, body: &str) -> Request<Body> {
    Request::post(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::HOST, "127.0.0.1:8080")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

async fn post_json(app: &Router, uri: &str, body: Value) -> (StatusCode, Value) {
    call_json(app, post(uri, &body.to_string())).await
}

async fn call_json(app: &Router, request: Request<Body>) -> (StatusCode, Value) {
    let (status, headers, body) = send(app, request).await;
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    (status, serde_json::from_slice(&body).expect("JSON"))
}

#[tokio::test]
async fn the_page_is_served_with_its_files_a_strict_csp_and_no_inline_script() {
    let runtime = runtime();
    let app = app(&runtime, AdminConfig::new());
    let (status, headers, body) = send(&app, Request::get("/").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
    let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(csp.starts_with("default-src 'self'"), "{csp}");
    let html = String::from_utf8(body).unwrap();
    for script in ["timeline", "charts", "retries", "app"] {
        let tag = format!(r#"<script src="assets/{script}.js" defer></script>"#);
        assert!(html.contains(&tag), "{tag}");
    }
    assert_eq!(
        html.matches("<script").count(),
        4,
        "four scripts, all external"
    );
    assert!(!html.contains("style="), "no inline style");
    assert!(!html.contains(" on"), "no inline handler attribute");
    for absolute in ["href=\"/", "src=\"/", "http://", "https://"] {
        assert!(
            !html.contains(absolute),
            "only relative URLs: found {absolute}"
        );
    }
    for (path, kind) in [
        ("/assets/app.js", "text/javascript; charset=utf-8"),
        ("/assets/timeline.js", "text/javascript; charset=utf-8"),
        ("/assets/charts.js", "text/javascript; charset=utf-8"),
        ("/assets/retries.js", "text/javascript; charset=utf-8"),
        ("/assets/app.css", "text/css; charset=utf-8"),
        ("/assets/favicon.svg", "image/svg+xml"),
        ("/index.html", "text/html; charset=utf-8"),
    ] {
        let (status, headers, _) =
            send(&app, Request::get(path).body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(headers[header::CONTENT_TYPE], kind, "{path}");
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    }
    let js = [
        include_str!("../assets/app.js"),
        include_str!("../assets/timeline.js"),
        include_str!("../assets/charts.js"),
        include_str!("../assets/retries.js"),
    ]
    .concat();
    for absolute in [
        "'/api",
        "`/api",
        "\"/api",
        "http://",
        "https://",
        "innerHTML",
        "eval(",
    ] {
        assert!(!js.contains(absolute), "app.js must not use {absolute}");
    }
}

#[tokio::test]
async fn nested_under_a_path_the_mount_point_redirects_to_the_page() {
    let runtime = runtime();
    let app = Router::new().nest("/ops/admin", app(&runtime, AdminConfig::new()));
    let (status, headers, _) = send(
        &app,
        Request::get("/ops/admin").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(headers[header::LOCATION], "admin/index.html");
    for path in [
        "/ops/admin/index.html",
        "/ops/admin/assets/app.js",
        "/ops/admin/api/overview",
    ] {
        let (status, _, _) = send(&app, Request::get(path).body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
}

#[tokio::test]
async fn the_overview_lists_workers_with_config_stats_gate_and_rates_and_sinks_with_signals() {
    let runtime = runtime();
    let app = app(&runtime, AdminConfig::new());
    let (status, overview) = get_json(&app, "/api/overview").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(overview["read_only"], false);
    assert_eq!(overview["controls"]["signals"], true);
    assert_eq!(overview["summary"]["workers"], 2);
    assert!(overview["now_ms"].as_u64().unwrap() > 1_600_000_000_000);
    let workers = overview["workers"].as_array().unwrap();
    let names: Vec<&str> = workers
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["http::db", "http::mail"]);
    let mail = &workers[1];
    assert_eq!(mail["sink"], "mail");
    assert_eq!(mail["config"]["concurrency"], 4);
    assert_eq!(mail["config"]["defer_on"], "backpressure.smtp");
    assert_eq!(mail["stats"]["queued"], 0);
    assert_eq!(mail["stats"]["gate_open"], true);
    assert_eq!(
        mail["gate"],
        json!({"state": "open", "signals": [], "level": null})
    );
    assert!(mail["rates"]["completed_per_s"].is_number());
    assert!(mail["policies"].is_array());
    assert!(mail["location"].as_str().unwrap().contains("http.rs"));
    let sinks: Vec<&str> = overview["sinks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(sinks, ["db", "mail"]);

    let (status, one) = get_json(&app, "/api/workers/http::mail").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["name"], "http::mail");
    let (status, list) = get_json(&app, "/api/workers").await;
    assert_eq!(
        (status, list.as_array().unwrap().len()),
        (StatusCode::OK, 2)
    );
    let (status, sink) = get_json(&app, "/api/sinks/mail").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        sink,
        json!({"name": "mail", "workers": ["http::mail"], "signals": []})
    );
    let (status, list) = get_json(&app, "/api/sinks").await;
    assert_eq!(
        (status, list.as_array().unwrap().len()),
        (StatusCode::OK, 2)
    );
}

#[tokio::test]
async fn raise_with_key_ttl_and_level_then_retract_moves_the_gate() {
    let runtime = runtime();
    let app = app(&runtime, AdminConfig::new());
    let coordinator = runtime.coordinator::<u32>("http::mail").unwrap();
    coordinator.pause();
    for item in 0..3 {
        coordinator.enqueue(item).await.unwrap();
    }
    coordinator.resume();

    let (status, raised) = post_json(
        &app,
        "/api/sinks/mail/raise",
        json!({"name": "backpressure.smtp", "key": "relay-1", "ttl": "30s", "level": 0.5}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{raised}");
    let signal = &raised["raised"];
    assert_eq!(signal["name"], "backpressure.smtp");
    assert_eq!(signal["key"], "relay-1");
    assert_eq!(signal["level"], 0.5);
    assert_eq!(signal["holds"], json!(["http::mail"]));
    let ttl = signal["ttl_left_ms"].as_u64().unwrap();
    assert!((28_000..=30_000).contains(&ttl), "{ttl}");

    let (_, worker) = get_json(&app, "/api/workers/http::mail").await;
    assert_eq!(
        worker["gate"],
        json!({"state": "limited", "signals": ["backpressure.smtp"], "level": 0.5})
    );
    assert_eq!(worker["stats"]["limit"], 2);

    // A full stop without a key (and a TTL in seconds) holds the worker entirely.
    let (status, _) = post_json(
        &app,
        "/api/sinks/mail/raise",
        json!({"name": "backpressure.smtp", "ttl": 60}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, worker) = get_json(&app, "/api/workers/http::mail").await;
    assert_eq!(worker["gate"]["state"], "held");
    assert_eq!(worker["gate"]["signals"], json!(["backpressure.smtp"]));
    let (_, sink) = get_json(&app, "/api/sinks/mail").await;
    assert_eq!(sink["signals"].as_array().unwrap().len(), 2);
    // The other sink's worker is not held: signals are per sink.
    let (_, db) = get_json(&app, "/api/workers/http::db").await;
    assert_eq!(db["gate"]["state"], "open");

    let (status, retracted) = post_json(
        &app,
        "/api/sinks/mail/retract",
        json!({"name": "backpressure.smtp", "key": "relay-1"}),
    )
    .await;
    assert_eq!(
        (status, &retracted),
        (StatusCode::OK, &json!({"retracted": 1}))
    );
    let (status, retracted) = post_json(
        &app,
        "/api/sinks/mail/retract",
        json!({"name": "backpressure.smtp"}),
    )
    .await;
    assert_eq!(
        (status, &retracted),
        (StatusCode::OK, &json!({"retracted": 1}))
    );
    let (_, worker) = get_json(&app, "/api/workers/http::mail").await;
    assert_eq!(worker["gate"]["state"], "open");
    runtime.drain_all().await;
    assert_eq!(runtime.worker("http::mail").unwrap().stats.completed, 3);
}

#[tokio::test]
async fn bad_input_gets_a_4xx_json_error_naming_the_field() {
    let runtime = runtime();
    let app = app(&runtime, AdminConfig::new());
    let raise = "/api/sinks/mail/raise";
    let cases: Vec<(&str, String, StatusCode, &str)> = vec![
        (
            "/api/sinks/nope/raise",
            r#"{"name":"backpressure.x"}"#.into(),
            StatusCode::NOT_FOUND,
            "sink",
        ),
        (
            "/api/sinks/nope/retract",
            r#"{"name":"backpressure.x"}"#.into(),
            StatusCode::NOT_FOUND,
            "sink",
        ),
        (
            "/api/sinks/%FF%FE/raise",
            r#"{"name":"backpressure.x"}"#.into(),
            StatusCode::BAD_REQUEST,
            "sink",
        ),
        (
            "/api/workers/nope/pause",
            "{}".into(),
            StatusCode::NOT_FOUND,
            "worker",
        ),
        (
            "/api/workers/nope/resume",
            "{}".into(),
            StatusCode::NOT_FOUND,
            "worker",
        ),
        (raise, r#"{}"#.into(), StatusCode::BAD_REQUEST, "name"),
        (
            raise,
            r#"{"name":"cpu load"}"#.into(),
            StatusCode::BAD_REQUEST,
            "name",
        ),
        (
            raise,
            r#"{"name":""}"#.into(),
            StatusCode::BAD_REQUEST,
            "name",
        ),
        (
            raise,
            format!(r#"{{"name":"{}"}}"#, "a".repeat(10_000)),
            StatusCode::BAD_REQUEST,
            "name",
        ),
        (
            raise,
            r#"{"name":7}"#.into(),
            StatusCode::BAD_REQUEST,
            "name",
        ),
        (
            raise,
            r#"{"name":"backpressure.x","key":"a b"}"#.into(),
            StatusCode::BAD_REQUEST,
            "key",
        ),
        (
            raise,
            r#"{"name":"backpressure.x","key":["k"]}"#.into(),
            StatusCode::BAD_REQUEST,
            "key",
        ),
        (
            raise,
            r#"{"name":"backpressure.x","ttl":0}"#.into(),
            StatusCode::BAD_REQUEST,
            "ttl",
        ),
        (
            raise,
            r#"{"name":"backpressure.x","ttl":-5}"#.into(),
            StatusCode::BAD_REQUEST,
            "ttl",
        ),
        (
            raise,
            r#"{"name":"backpressure.x","ttl":"0s"}"#.into(),
            StatusCode::BAD_REQUEST,
            "ttl",
        ),
        (
            raise,
            r#"{"name":"backpressure.x","ttl":"soon"}"#.into(),
            StatusCode::BAD_REQUEST,
            "ttl",
        ),
        (
            raise,
            r#"{"name":"backpressure.x","ttl":1e300}"#.into(),
            StatusCode::BAD_REQUEST,
            "ttl",
        ),
        (
            raise,
            r#"{"name":"backpressure.x","ttl":"400days"}"#.into(),
            StatusCode::BAD_REQUEST,
            "ttl",
        ),
        (
            raise,
            r#"{"name":"backpressure.x","ttl":true}"#.into(),
            StatusCode::BAD_REQUEST,
            "ttl",
        ),
        (
            raise,
            r#"{"name":"backpressure.x","level":1.5}"#.into(),
            StatusCode::BAD_REQUEST,
            "level",
        ),
        (
            raise,
            r#"{"name":"backpressure.x","level":-0.1}"#.into(),
            StatusCode::BAD_REQUEST,
            "level",
        ),
        (
            raise,
            r#"{"name":"backpressure.x","level":"high"}"#.into(),
            StatusCode::BAD_REQUEST,
            "level",
        ),
        (
            raise,
            r#"{"name":"backpressure.x","colour":"red"}"#.into(),
            StatusCode::BAD_REQUEST,
            "body",
        ),
        (raise, r#"[1,2]"#.into(), StatusCode::BAD_REQUEST, "body"),
        (raise, r#"{"name":"#.into(), StatusCode::BAD_REQUEST, "body"),
        (
            raise,
            format!(
                r#"{{"name":"backpressure.x","key":"{}"}}"#,
                "k".repeat(20_000)
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
            "body",
        ),
        (
            "/api/sinks/mail/retract",
            r#"{"name":"no spaces"}"#.into(),
            StatusCode::BAD_REQUEST,
            "name",
        ),
        (
            "/api/sinks/mail/retract",
            r#"{"name":"backpressure.x","key":"a b"}"#.into(),
            StatusCode::BAD_REQUEST,
            "key",
        ),
        (
            "/api/workers/http::mail/pause",
            r#"{"now":true}"#.into(),
            StatusCode::BAD_REQUEST,
            "body",
        ),
    ];
    for (uri, body, expected, field) in cases {
        let (status, error) = call_json(&app, post(uri, &body)).await;
        assert_eq!(status, expected, "{uri} {:.80}: {error}", body);
        assert_eq!(error["field"], field, "{uri} {:.80}: {error}", body);
        assert!(error["error"].as_str().is_some_and(|e| !e.is_empty()));
    }

    // Changes take JSON only.
    let form = Request::post(raise)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("name=backpressure.x"))
        .unwrap();
    let (status, error) = call_json(&app, form).await;
    assert_eq!(
        (status, &error["field"]),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, &json!("content-type"))
    );
    let bare = Request::post(raise)
        .body(Body::from(r#"{"name":"backpressure.x"}"#))
        .unwrap();
    let (status, _) = call_json(&app, bare).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // Unknown reads, routes and methods are JSON too.
    for (uri, field) in [
        ("/api/workers/nope", json!("worker")),
        ("/api/sinks/nope", json!("sink")),
        ("/api/nothing", json!(null)),
    ] {
        let (status, error) = get_json(&app, uri).await;
        assert_eq!(
            (status, &error["field"]),
            (StatusCode::NOT_FOUND, &field),
            "{uri}"
        );
    }
    let (status, _) = call_json(
        &app,
        Request::delete("/api/sinks/mail/raise")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);

    // None of it raised anything.
    assert!(runtime.sink("mail").unwrap().snapshot().is_empty());
}

#[tokio::test]
async fn read_only_mode_shows_no_controls_and_refuses_every_change() {
    let runtime = runtime();
    let app = app(&runtime, AdminConfig::new().read_only(true));
    let (status, overview) = get_json(&app, "/api/overview").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(overview["read_only"], true);
    assert_eq!(
        overview["controls"],
        json!({"signals": false, "pause": false, "requeue": false})
    );
    for uri in [
        "/api/sinks/mail/raise",
        "/api/sinks/mail/retract",
        "/api/workers/http::mail/pause",
        "/api/workers/http::mail/resume",
        "/api/workers/http::mail/requeue",
    ] {
        let (status, error) = post_json(&app, uri, json!({"name": "backpressure.smtp"})).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{uri}");
        assert_eq!(error["error"], "the admin is read-only");
    }
    assert!(runtime.sink("mail").unwrap().snapshot().is_empty());
}

#[tokio::test]
async fn the_authorize_hook_decides_per_request_and_access() {
    let runtime = runtime();
    let config = AdminConfig::new().authorize(|request, access| match access {
        Access::Read => !request.headers.contains_key("x-banned"),
        Access::Write => request
            .headers
            .get("x-operator")
            .is_some_and(|v| v == "on-call"),
        _ => false,
    });
    let app = app(&runtime, config);
    let (status, _, _) = send(
        &app,
        Request::get("/api/overview").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let banned = Request::get("/")
        .header("x-banned", "1")
        .body(Body::empty())
        .unwrap();
    let (status, error) = call_json(&app, banned).await;
    assert_eq!(
        (status, &error["error"]),
        (StatusCode::FORBIDDEN, &json!("not allowed"))
    );

    let body = r#"{"name":"backpressure.smtp"}"#;
    let (status, _) = call_json(&app, post("/api/sinks/mail/raise", body)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(runtime.sink("mail").unwrap().snapshot().is_empty());
    let mut request = post("/api/sinks/mail/raise", body);
    request
        .headers_mut()
        .insert("x-operator", "on-call".parse().unwrap());
    let (status, _) = call_json(&app, request).await;
    assert_eq!(status, StatusCode::OK);
    assert!(runtime.sink("mail").unwrap().is_raised("backpressure.smtp"));
}

#[tokio::test]
async fn changes_from_a_foreign_origin_are_refused() {
    let runtime = runtime();
    let app = app(
        &runtime,
        AdminConfig::new().allow_origin("https://ops.example.com/"),
    );
    let body = r#"{"name":"backpressure.smtp","ttl":"1m"}"#;
    let with = |headers: &[(&str, &str)]| {
        let mut request = post("/api/sinks/mail/raise", body);
        for (name, value) in headers {
            request.headers_mut().insert(
                header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        request
    };
    for headers in [
        &[("origin", "http://evil.example")][..],
        &[("origin", "null")],
        &[("origin", "http://127.0.0.1:9999")],
        &[("origin", "https://127.0.0.1:8080.evil.example")],
        &[
            ("origin", "http://127.0.0.1:8080"),
            ("sec-fetch-site", "cross-site"),
        ],
    ] {
        let (status, error) = call_json(&app, with(headers)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{headers:?}");
        assert_eq!(error["field"], "origin", "{headers:?}");
    }
    assert!(runtime.sink("mail").unwrap().snapshot().is_empty());
    for headers in [
        &[("origin", "http://127.0.0.1:8080")][..],
        &[("origin", "https://OPS.example.com")],
        &[("sec-fetch-site", "same-origin")],
        &[],
    ] {
        let (status, _) = call_json(&app, with(headers)).await;
        assert_eq!(status, StatusCode::OK, "{headers:?}");
    }
    // Reads are not checked: a page elsewhere cannot read them anyway (no CORS headers).
    let read = Request::get("/api/overview")
        .header("origin", "http://evil.example")
        .body(Body::empty())
        .unwrap();
    let (status, _, _) = send(&app, read).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn pause_and_resume_a_worker_by_name() {
    let runtime = runtime();
    let app = app(&runtime, AdminConfig::new());
    let (status, worker) = post_json(&app, "/api/workers/http::mail/pause", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{worker}");
    assert_eq!(worker["stats"]["paused"], true);
    assert_eq!(worker["gate"]["state"], "paused");
    let (_, overview) = get_json(&app, "/api/overview").await;
    assert_eq!(overview["summary"]["paused"], 1);
    assert_eq!(overview["controls"]["pause"], true);
    let empty = Request::post("/api/workers/http::mail/resume")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::empty())
        .unwrap();
    let (status, worker) = call_json(&app, empty).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(worker["stats"]["paused"], false);
}

/// Reads SSE frames from a streaming body.
struct Frames {
    body: Body,
    buffer: String,
}

impl Frames {
    /// The next frame (the lines up to a blank line), within `wait`; `history` events
    /// (tested in `tests/history.rs`) are skipped.
    async fn next(&mut self, wait: Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame = self.buffer[..end].to_owned();
                self.buffer.drain(..end + 2);
                if frame.starts_with("event: history\n") {
                    continue;
                }
                return Some(frame);
            }
            let frame = tokio::time::timeout_at(deadline, self.body.frame())
                .await
                .ok()??
                .ok()?;
            if let Ok(data) = frame.into_data() {
                self.buffer.push_str(std::str::from_utf8(&data).unwrap());
            }
        }
    }

    /// The next event that is not a keep-alive comment: (name, data as JSON).
    async fn event(&mut self, wait: Duration) -> (String, Value) {
        loop {
            let frame = self.next(wait).await.expect("an event in time");
            if frame.lines().all(|l| l.starts_with(':')) {
                continue;
            }
            let name = frame
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap()
                .to_owned();
            let data: String = frame
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .collect();
            return (name, serde_json::from_str(&data).unwrap());
        }
    }
}

async fn open_stream(app: &Router) -> Frames {
    let response = app
        .clone()
        .oneshot(Request::get("/api/events").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
    Frames {
        body: response.into_body(),
        buffer: String::new(),
    }
}

#[tokio::test]
async fn the_stream_sends_a_snapshot_then_signal_events_then_stats() {
    let runtime = runtime();
    let app = app(&runtime, AdminConfig::new());
    let mut stream = open_stream(&app).await;
    let first = stream.next(Duration::from_secs(5)).await.unwrap();
    assert!(first.starts_with("event: snapshot\n"), "{first}");
    assert!(first.lines().any(|l| l == "retry: 2000"), "{first}");
    let data: String = first
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    let snapshot: Value = serde_json::from_str(&data).unwrap();
    assert_eq!(snapshot["workers"].as_array().unwrap().len(), 2);

    let sink = runtime.sink("mail").unwrap();
    sink.raise_keyed("backpressure.smtp", "relay-1").unwrap();
    let (name, event) = stream.event(Duration::from_secs(5)).await;
    assert_eq!(name, "signal");
    assert_eq!(event["sink"], "mail");
    assert_eq!(event["kind"], "raised");
    assert_eq!(event["name"], "backpressure.smtp");
    assert_eq!(event["key"], "relay-1");
    assert_eq!(event["level"], 0.0);
    assert!(event["at_ms"].as_u64().unwrap() > 1_600_000_000_000);

    let (name, stats) = stream.event(Duration::from_secs(3)).await;
    assert_eq!(name, "stats");
    let mail = stats["workers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == "http::mail")
        .unwrap();
    assert_eq!(mail["gate"]["state"], "held");
    assert_eq!(mail["gate"]["signals"], json!(["backpressure.smtp"]));

    sink.retract("backpressure.smtp").unwrap();
    let (name, event) = stream.event(Duration::from_secs(5)).await;
    assert_eq!(
        (name.as_str(), &event["kind"]),
        ("signal", &json!("retracted"))
    );
}

#[tokio::test]
async fn stats_go_out_at_most_once_a_second_and_idle_streams_get_keep_alives() {
    let runtime = runtime();
    let app = app(
        &runtime,
        AdminConfig::new().keep_alive(Duration::from_millis(200)),
    );
    let mut stream = open_stream(&app).await;
    let (name, _) = stream.event(Duration::from_secs(5)).await;
    assert_eq!(name, "snapshot");

    // Idle: only keep-alive comments.
    let frame = stream.next(Duration::from_secs(2)).await.unwrap();
    assert!(frame.starts_with(':'), "{frame}");

    // Busy: many signal events and a worker whose counters change all the time (so every
    // stats tick has something new to say), few stats.
    let sink = runtime.sink("db").unwrap();
    let db = runtime.coordinator::<u32>("http::db").unwrap();
    let busy = tokio::spawn(async move {
        for i in 0..50u32 {
            let name = format!("backpressure.flap{}", i % 5);
            sink.raise(&name).unwrap();
            db.enqueue(i).await.unwrap();
            tokio::time::sleep(Duration::from_millis(25)).await;
            sink.retract(&name).unwrap();
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    });
    let started = tokio::time::Instant::now();
    let mut stats_at = Vec::new();
    let mut signals = 0;
    while started.elapsed() < Duration::from_millis(2600) {
        let Some(frame) = stream.next(Duration::from_millis(300)).await else {
            continue;
        };
        if frame.starts_with("event: stats") {
            stats_at.push(started.elapsed());
        } else if frame.starts_with("event: signal") {
            signals += 1;
        }
    }
    busy.await.unwrap();
    assert!(signals >= 50, "{signals} signal events");
    assert!((1..=3).contains(&stats_at.len()), "{stats_at:?}");
    for pair in stats_at.windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_millis(900),
            "{stats_at:?}"
        );
    }
}
