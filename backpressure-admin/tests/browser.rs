//! The dashboard in a real browser: Debian's headless Chromium, driven over the DevTools
//! protocol. Without `chromium` these tests print a skip line and pass, unless
//! `REQUIRE_BROWSER=1` is set (CI sets it after `.ci/install-chromium`).
//!
//! Set `BACKPRESSURE_ADMIN_SCREENSHOT=path.png` to keep the screenshot somewhere else than
//! the target directory (`docs/dashboard.png` is made that way).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::response::IntoResponse;
use axum::Router;
use backpressure::{backpressure_worker, Level, RaiseOptions, Runtime};
use backpressure_admin::AdminConfig;
use chromiumoxide::page::ScreenshotParams;
use chromiumoxide::Page;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

mod common;
use common::{chromium, eval, launch, open, until};

#[backpressure_worker(
    name = "shop::send_email",
    sink = "mail",
    concurrency = 4,
    defer_on = "backpressure.smtp"
)]
async fn send_email(item: u32) {
    tokio::time::sleep(Duration::from_millis(u64::from(item % 7) * 30)).await;
}

#[backpressure_worker(
    name = "shop::sync_orders",
    sink = "db",
    concurrency = 8,
    defer_on = "backpressure.db*"
)]
async fn sync_orders(item: u32) {
    tokio::time::sleep(Duration::from_millis(200 + u64::from(item % 5) * 60)).await;
}

#[backpressure_worker(
    name = "shop::resize_image",
    sink = "media",
    concurrency = 2,
    defer_on = "backpressure.*"
)]
async fn resize_image(item: u32) {
    let _ = item;
}

const WORKERS: [&str; 3] = [
    "shop::resize_image",
    "shop::send_email",
    "shop::sync_orders",
];
const MAIL_ROW: &str = r#"tr[data-worker="shop::send_email"]"#;

struct Served {
    runtime: Arc<Runtime>,
    app: Router,
    base: String,
    server: tokio::task::JoinHandle<()>,
}

/// Serves the admin nested under `/admin` on 127.0.0.1:0.
async fn serve(config: AdminConfig) -> Served {
    let runtime = Arc::new(Runtime::builder().only(WORKERS).start().unwrap());
    let app = Router::new().nest(
        "/admin",
        backpressure_admin::router(Arc::clone(&runtime), config),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/admin", listener.local_addr().unwrap());
    let service = app.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, service).await.unwrap();
    });
    Served {
        runtime,
        app,
        base,
        server,
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Served {
    /// `GET uri` through the router itself, as JSON: what the API says.
    async fn api(&self, uri: &str) -> Value {
        let request = Request::get(format!("/admin{uri}"))
            .body(Body::empty())
            .unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&body).unwrap()
    }

    async fn gate(&self, worker: &str) -> Value {
        self.api(&format!("/api/workers/{worker}")).await["gate"].clone()
    }
}

fn badge_is(state: &str) -> String {
    format!(
        r#"(() => {{ const b = document.querySelector('{MAIL_ROW} .badge'); return !!b && b.dataset.gate === '{state}'; }})()"#
    )
}

async fn badge_text(page: &Page) -> String {
    eval(
        page,
        &format!("document.querySelector('{MAIL_ROW} .badge').textContent"),
    )
    .await
}

async fn set_input(page: &Page, id: &str, value: &str) {
    let js = format!(
        "(() => {{ const e = document.getElementById({id:?}); e.value = {value:?}; return true; }})()"
    );
    assert!(eval::<bool>(page, &js).await);
}

async fn busy_workload(served: &Served) {
    served
        .runtime
        .sink("media")
        .unwrap()
        .raise_with(
            "backpressure.maintenance",
            RaiseOptions::new()
                .key("nightly")
                .ttl(Duration::from_secs(600)),
        )
        .unwrap();
    served
        .runtime
        .sink("db")
        .unwrap()
        .raise_with(
            "backpressure.db",
            RaiseOptions::new()
                .key("replica-2")
                .level(Level::new(0.25).unwrap())
                .ttl(Duration::from_secs(90)),
        )
        .unwrap();
    let db = served
        .runtime
        .coordinator::<u32>("shop::sync_orders")
        .unwrap();
    let media = served
        .runtime
        .coordinator::<u32>("shop::resize_image")
        .unwrap();
    for i in 0..60 {
        db.enqueue(i).await.unwrap();
    }
    for i in 0..12 {
        media.enqueue(i).await.unwrap();
    }
}

/// Work for the mail worker while it is held: it queues up, deferred.
async fn mail_backlog(served: &Served) {
    let mail = served
        .runtime
        .coordinator::<u32>("shop::send_email")
        .unwrap();
    for i in 0..25 {
        mail.enqueue(i).await.unwrap();
    }
}

fn screenshot_path() -> PathBuf {
    std::env::var_os("BACKPRESSURE_ADMIN_SCREENSHOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raise_and_retract_from_the_page_flip_the_gate_live() {
    let Some(executable) = chromium() else { return };
    let served = serve(AdminConfig::new()).await;
    busy_workload(&served).await;
    let chromium = launch(executable).await;
    // The mount point itself: redirected to the page, whose relative URLs then resolve.
    let (page, problems) = open(&chromium.browser, &served.base).await;

    until(
        &page,
        "a worker row",
        &format!("document.querySelector('{MAIL_ROW}') !== null"),
    )
    .await;
    until(
        &page,
        "the live stream",
        "document.body.dataset.mode === 'sse'",
    )
    .await;
    until(&page, "an open gate", &badge_is("open")).await;
    assert!(
        eval::<bool>(
            &page,
            "document.querySelectorAll('#workers tbody tr').length === 3"
        )
        .await
    );
    // A marker that a reload would wipe out.
    assert!(eval::<bool>(&page, "(window.__noReload = true)").await);

    // Raise from the form: a real click on the Raise button.
    set_input(&page, "raise-sink", "mail").await;
    set_input(&page, "raise-name", "backpressure.smtp").await;
    set_input(&page, "raise-key", "relay-1").await;
    set_input(&page, "raise-ttl", "5m").await;
    page.find_element("#raise")
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(&page, "the gate badge to flip to held", &badge_is("held")).await;
    let text = badge_text(&page).await;
    assert!(
        text.contains("backpressure.smtp"),
        "the badge names the signal: {text}"
    );
    let gate = served.gate("shop::send_email").await;
    assert_eq!(gate["state"], "held", "the JSON API agrees");
    assert_eq!(gate["signals"][0], "backpressure.smtp");
    until(&page, "the signal row with its TTL countdown", r#"(() => {
        const row = Array.from(document.querySelectorAll('#signals tbody tr')).find(r => r.dataset.name === 'backpressure.smtp');
        return !!row && /^\d+m \d\ds$/.test(row.querySelector('td.ttl').textContent);
    })()"#).await;
    until(&page, "the raise in the event log", "Array.from(document.querySelectorAll('#log li')).some(li => li.dataset.kind === 'raised' && li.textContent.includes('backpressure.smtp'))").await;

    mail_backlog(&served).await;
    tokio::time::sleep(Duration::from_millis(1200)).await; // let the rates settle for the picture
    let png = page
        .screenshot(ScreenshotParams::builder().full_page(true).build())
        .await
        .unwrap();
    let path = screenshot_path();
    std::fs::write(&path, &png).unwrap();
    println!("screenshot: {}", path.display());

    // Retract from the signal row.
    let retract = r#"#signals tr[data-name="backpressure.smtp"] button.retract"#;
    page.find_element(retract)
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(
        &page,
        "the gate badge to flip back to open",
        &badge_is("open"),
    )
    .await;
    assert_eq!(
        served.gate("shop::send_email").await["state"],
        "open",
        "the JSON API agrees"
    );

    // A raise elsewhere (not from this page) shows up too: through the stream alone.
    served
        .runtime
        .sink("mail")
        .unwrap()
        .raise("backpressure.smtp")
        .unwrap();
    until(&page, "a server-side raise to show", &badge_is("held")).await;
    served
        .runtime
        .sink("mail")
        .unwrap()
        .retract("backpressure.smtp")
        .unwrap();
    until(&page, "a server-side retract to show", &badge_is("open")).await;

    // The live/paused toggle: paused, the page stands still; live again, it catches up.
    page.find_element("#live-toggle")
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(
        &page,
        "paused mode",
        "document.getElementById('conn').dataset.mode === 'paused'",
    )
    .await;
    served
        .runtime
        .sink("mail")
        .unwrap()
        .raise("backpressure.smtp")
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        eval::<bool>(&page, &badge_is("open")).await,
        "a paused page does not update"
    );
    page.find_element("#live-toggle")
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(&page, "live again, caught up", &badge_is("held")).await;
    assert!(
        eval::<bool>(&page, "window.__noReload === true").await,
        "no reload happened"
    );

    // Pause and resume the worker from its row.
    let pause = format!(r#"{MAIL_ROW} button[data-action="pause"]"#);
    page.find_element(pause)
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(&page, "the paused badge", &badge_is("paused")).await;
    assert_eq!(
        served.gate("shop::send_email").await["state"],
        "paused",
        "the JSON API agrees"
    );
    let resume = format!(r#"{MAIL_ROW} button[data-action="resume"]"#);
    page.find_element(resume)
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(
        &page,
        "resumed, held again by the signal",
        &badge_is("held"),
    )
    .await;
    assert_eq!(served.gate("shop::send_email").await["state"], "held");

    let problems = problems.lock().unwrap().clone();
    assert!(problems.is_empty(), "the page logged errors: {problems:#?}");
    chromium.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_mode_shows_no_controls_and_a_forged_post_gets_403() {
    let Some(executable) = chromium() else { return };
    let served = serve(AdminConfig::new().read_only(true)).await;
    served
        .runtime
        .sink("mail")
        .unwrap()
        .raise_keyed("backpressure.smtp", "relay-1")
        .unwrap();
    let chromium = launch(executable).await;
    let (page, problems) = open(&chromium.browser, &format!("{}/index.html", served.base)).await;

    until(
        &page,
        "a worker row",
        &format!("document.querySelector('{MAIL_ROW}') !== null"),
    )
    .await;
    until(&page, "the held gate", &badge_is("held")).await;
    until(
        &page,
        "the signal row",
        "document.querySelectorAll('#signals tbody tr').length === 1",
    )
    .await;
    let controls: Value = eval(&page, r#"({
        readOnly: document.body.classList.contains('read-only'),
        formShown: getComputedStyle(document.getElementById('raise-form')).display !== 'none',
        buttons: Array.from(document.querySelectorAll('main button:not(#timeline-as-table)')).filter(b => b.offsetParent !== null).map(b => b.textContent),
    })"#).await;
    assert_eq!(controls["readOnly"], true, "{controls}");
    assert_eq!(controls["formShown"], false, "{controls}");
    assert_eq!(
        controls["buttons"],
        serde_json::json!([]),
        "no Raise, Retract or Pause: {controls}"
    );
    let clean = problems.lock().unwrap().clone();
    assert!(clean.is_empty(), "the page logged errors: {clean:#?}");

    // A forged change from the page itself is refused by the server.
    let status: u16 = eval(
        &page,
        r#"fetch('api/sinks/mail/retract', {
        method: 'POST', headers: {'Content-Type': 'application/json'},
        body: JSON.stringify({name: 'backpressure.smtp'}),
    }).then(r => r.status)"#,
    )
    .await;
    assert_eq!(status, 403);
    assert!(served
        .runtime
        .sink("mail")
        .unwrap()
        .is_raised("backpressure.smtp"));

    // A writable admin elsewhere refuses a change sent from this page's origin.
    let writable = serve(AdminConfig::new()).await;
    let js = format!(
        "fetch('{}/api/sinks/mail/raise', {{ method: 'POST', mode: 'no-cors', headers: {{'Content-Type': 'text/plain'}}, body: JSON.stringify({{name: 'backpressure.smtp'}}) }}).then(() => true, () => true)",
        writable.base
    );
    assert!(eval::<bool>(&page, &js).await);
    assert!(
        writable.runtime.sink("mail").unwrap().snapshot().is_empty(),
        "the cross-origin POST changed nothing"
    );
    let raise = Request::post("/admin/api/sinks/mail/raise")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ORIGIN, served.base.trim_end_matches("/admin"))
        .header(
            header::HOST,
            writable
                .base
                .trim_start_matches("http://")
                .trim_end_matches("/admin"),
        )
        .body(Body::from(r#"{"name":"backpressure.smtp"}"#))
        .unwrap();
    assert_eq!(
        writable.app.clone().oneshot(raise).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    chromium.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_stream_the_page_falls_back_to_polling() {
    let Some(executable) = chromium() else { return };
    let served = serve(AdminConfig::new()).await;
    // A proxy in front that does not pass event streams.
    let app = served.app.clone().layer(axum::middleware::from_fn(
        |request: axum::extract::Request, next: axum::middleware::Next| async move {
            if request.uri().path().ends_with("/api/events") {
                return StatusCode::SERVICE_UNAVAILABLE.into_response();
            }
            next.run(request).await
        },
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/admin/index.html", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let chromium = launch(executable).await;
    let (page, _) = open(&chromium.browser, &base).await;
    until(
        &page,
        "polling mode",
        "document.body.dataset.mode === 'polling'",
    )
    .await;
    until(
        &page,
        "a worker row",
        &format!("document.querySelector('{MAIL_ROW}') !== null"),
    )
    .await;
    served
        .runtime
        .sink("mail")
        .unwrap()
        .raise("backpressure.smtp")
        .unwrap();
    until(&page, "the gate to flip by polling", &badge_is("held")).await;
    chromium.close().await;
    server.abort();
}
