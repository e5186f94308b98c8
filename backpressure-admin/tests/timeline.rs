//! The timeline, the charts and the policy badges in headless Chromium, over a scripted
//! scenario: a signal raised at a level, a breaker that opens and half-opens, the signal
//! retracted. The bars' start and end in the DOM must be the JSON API's.
//!
//! Set `BACKPRESSURE_ADMIN_TIMELINE_SCREENSHOT=path.png` to keep the screenshot somewhere
//! else than the target directory (`docs/dashboard-timeline.png` is made that way).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use backpressure::{backpressure_worker, Level, RaiseOptions, Runtime};
use backpressure_admin::AdminConfig;
use chromiumoxide::Page;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

mod common;
use common::{chromium, eval, launch, open, until};

#[backpressure_worker(
    name = "tl::send_email",
    sink = "mail",
    concurrency = 4,
    defer_on = "backpressure.*"
)]
async fn send_email(item: u32) {
    tokio::time::sleep(Duration::from_millis(40 + u64::from(item % 5) * 20)).await;
}

#[backpressure_worker(
    name = "tl::charge",
    sink = "mail",
    concurrency = 2,
    defer_on = "backpressure.payments",
    error_rate(
        signal = "backpressure.payments",
        consecutive_failures = 2,
        open_for = "3s",
        jitter = 0.0,
        probes = 1
    )
)]
async fn charge(fail: bool) -> Result<(), String> {
    if fail {
        Err("card processor answered 503".to_owned())
    } else {
        Ok(())
    }
}

const WORKERS: [&str; 2] = ["tl::charge", "tl::send_email"];

struct Served {
    runtime: Arc<Runtime>,
    app: Router,
    base: String,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Serves the admin (a one-minute history, so that seconds-long bars show) under `/admin`.
async fn serve() -> Served {
    let runtime = Arc::new(Runtime::builder().only(WORKERS).start().unwrap());
    let config = AdminConfig::new().history_window(Duration::from_secs(60));
    let app = Router::new().nest(
        "/admin",
        backpressure_admin::router(Arc::clone(&runtime), config),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/admin", listener.local_addr().unwrap());
    let service = app.clone();
    let server = tokio::spawn(async move { axum::serve(listener, service).await.unwrap() });
    Served {
        runtime,
        app,
        base,
        server,
    }
}

impl Served {
    async fn history(&self) -> Value {
        let request = Request::get("/admin/api/history")
            .body(Body::empty())
            .unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&body).unwrap()
    }
}

/// Every bar of the page's timeline: id, lane, start, end and the rest of its data.
async fn dom_bars(page: &Page) -> Vec<Value> {
    eval(
        page,
        r#"Array.from(document.querySelectorAll('#timeline g.bar')).map(b => ({
            id: Number(b.dataset.id), lane: b.dataset.lane,
            start_ms: Number(b.dataset.startMs),
            end_ms: b.dataset.endMs === '' ? null : Number(b.dataset.endMs),
            phase: b.dataset.phase || null, policy: b.dataset.policy || null,
            level: b.dataset.level === undefined ? null : Number(b.dataset.level),
            state: b.dataset.state || null, name: b.dataset.name || b.dataset.worker,
            tabindex: b.getAttribute('tabindex'), label: b.getAttribute('aria-label'),
            width: Number(b.querySelector('rect').getAttribute('width')),
        }))"#,
    )
    .await
}

/// Waits until the page's bars are the API's (same ids, starts and ends) and returns both.
async fn bars_agree(page: &Page, served: &Served) -> (Vec<Value>, Value) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let api = served.history().await;
        let mut dom = dom_bars(page).await;
        dom.sort_by_key(|b| b["id"].as_u64());
        let agree = api["spans"].as_array().unwrap().len() == dom.len()
            && api["spans"]
                .as_array()
                .unwrap()
                .iter()
                .zip(&dom)
                .all(|(a, d)| {
                    a["id"] == d["id"]
                        && a["start_ms"] == d["start_ms"]
                        && a["end_ms"] == d["end_ms"]
                });
        if agree {
            return (dom, api);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the page's bars never matched the API's:\nDOM {dom:#?}\nAPI {:#}",
            api["spans"]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn screenshot_path() -> PathBuf {
    std::env::var_os("BACKPRESSURE_ADMIN_TIMELINE_SCREENSHOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard-timeline.png")
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timeline_shows_a_levelled_raise_a_breaker_opening_and_half_opening_and_the_retract() {
    let Some(executable) = chromium() else { return };
    let served = serve().await;
    let chromium = launch(executable).await;
    let (page, problems) = open(&chromium.browser, &format!("{}/index.html", served.base)).await;
    until(
        &page,
        "the live stream",
        "document.body.dataset.mode === 'sse'",
    )
    .await;
    until(
        &page,
        "the worker lanes",
        "document.querySelectorAll('#timeline g.lane.worker').length === 2",
    )
    .await;
    let mail = served.runtime.sink("mail").unwrap();
    let email = served.runtime.coordinator::<u32>("tl::send_email").unwrap();
    for i in 0..40 {
        email.enqueue(i).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1500)).await; // a little traffic for the charts
    assert!(eval::<bool>(&page, "(window.__row = document.querySelector('tr[data-worker=\"tl::send_email\"]')) !== null").await);

    // 1. A signal at half strength: the mailer is limited.
    let half = RaiseOptions::new()
        .key("relay-1")
        .level(Level::new(0.5).unwrap());
    mail.raise_with("backpressure.smtp", half).unwrap();
    until(&page, "the levelled bar", "!!document.querySelector('#timeline g.bar.signal[data-name=\"backpressure.smtp\"][data-level=\"0.5\"]')").await;
    // (The mailer's queue is empty by now: a held worker with work would supply the
    // half-open verdict's probe, and its success would close the breaker at once.)
    // 2. Two failed charges open the breaker: a verdict bar, and everyone on `backpressure.*` held.
    let charge = served.runtime.coordinator::<bool>("tl::charge").unwrap();
    charge.enqueue(true).await.unwrap();
    charge.enqueue(true).await.unwrap();
    until(&page, "the open verdict's bar", "!!document.querySelector('#timeline g.bar.signal[data-policy=\"error_rate\"][data-phase=\"open\"]')").await;
    until(&page, "the open badge", "!!document.querySelector('tr[data-worker=\"tl::charge\"] .badge.policy[data-state=\"open\"]')").await;
    let badge: String = eval(
        &page,
        "document.querySelector('tr[data-worker=\"tl::charge\"] .badge.policy').textContent",
    )
    .await;
    assert!(
        badge.starts_with("error_rate: open · probes at "),
        "{badge}"
    );
    // 3. After `open_for` it half-opens (nobody has work to probe with, so it stays).
    until(
        &page,
        "the half-open verdict's bar",
        "!!document.querySelector('#timeline g.bar.signal[data-phase=\"half_open\"]')",
    )
    .await;
    until(&page, "the half-open badge", "!!document.querySelector('tr[data-worker=\"tl::charge\"] .badge.policy[data-state=\"half-open\"]')").await;
    let badge: String = eval(
        &page,
        "document.querySelector('tr[data-worker=\"tl::charge\"] .badge.policy').textContent",
    )
    .await;
    assert!(badge.contains("half-open · probes "), "{badge}");
    assert!(
        badge.contains(" of 1"),
        "the breaker's probes, from PolicyDetail: {badge}"
    );
    // 4. The signal is retracted.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    mail.retract("backpressure.smtp").unwrap();
    until(&page, "the levelled bar closed", "document.querySelector('#timeline g.bar.signal[data-name=\"backpressure.smtp\"]').dataset.endMs !== ''").await;

    let (dom, api) = bars_agree(&page, &served).await;
    let signal_bars: Vec<&Value> = dom.iter().filter(|b| b["lane"] == "signal").collect();
    let names: Vec<(&str, Option<&str>, Option<&str>)> = signal_bars
        .iter()
        .map(|b| {
            (
                b["name"].as_str().unwrap(),
                b["phase"].as_str(),
                b["policy"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("backpressure.smtp", None, None),
            ("backpressure.payments", Some("open"), Some("error_rate")),
            (
                "backpressure.payments",
                Some("half_open"),
                Some("error_rate")
            ),
        ],
        "{dom:#?}"
    );
    assert_eq!(
        signal_bars[1]["end_ms"], signal_bars[2]["start_ms"],
        "open, then half-open"
    );
    let open_for =
        signal_bars[1]["end_ms"].as_u64().unwrap() - signal_bars[1]["start_ms"].as_u64().unwrap();
    assert!(
        (2_900..=3_500).contains(&open_for),
        "open for about 3 s: {open_for} ms"
    );
    assert!(signal_bars[2]["end_ms"].is_null(), "still half-open");
    let states: Vec<&str> = dom
        .iter()
        .filter(|b| b["lane"] == "worker" && b["name"] == "tl::send_email")
        .map(|b| b["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["limited", "held"], "{dom:#?}");
    assert_eq!(
        api["policy_changes"].as_array().unwrap().len(),
        2,
        "{}",
        api["policy_changes"]
    );
    for bar in &dom {
        assert_eq!(bar["tabindex"], "0", "every bar takes focus: {bar}");
        let label = bar["label"].as_str().unwrap();
        assert!(
            label.contains(" from ") && label.contains(" to "),
            "{label}"
        );
        assert!(bar["width"].as_f64().unwrap() >= 2.0, "{bar}");
    }

    // Keyboard: a focused bar shows its exact times.
    let tip: String = eval(
        &page,
        r#"(() => {
        const bar = document.querySelector('#timeline g.bar.signal[data-name="backpressure.smtp"]');
        bar.focus();
        const tip = document.getElementById('tl-tip');
        return document.activeElement === bar && !tip.hidden ? tip.textContent : 'no tip';
    })()"#,
    )
    .await;
    assert!(
        tip.starts_with("backpressure.smtp [relay-1] on mail: 50%, from "),
        "{tip}"
    );
    assert!(tip.contains("retracted"), "{tip}");

    // The table view lists every bar and policy change in words.
    assert!(
        eval::<bool>(
            &page,
            "document.getElementById('timeline-table-wrap').hidden"
        )
        .await
    );
    page.find_element("#timeline-as-table")
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let rows: Vec<String> = eval(
        &page,
        "Array.from(document.querySelectorAll('#timeline-table tbody tr')).map(r => r.textContent)",
    )
    .await;
    assert!(
        !eval::<bool>(
            &page,
            "document.getElementById('timeline-table-wrap').hidden"
        )
        .await
    );
    assert_eq!(rows.len(), dom.len() + 2, "{rows:#?}");
    assert!(
        rows.iter()
            .any(|r| r.contains("backpressure.smtp [relay-1] · mail") && r.contains("50%")),
        "{rows:#?}"
    );
    assert!(
        rows.iter().any(|r| r.contains("error_rate: closed → open")),
        "{rows:#?}"
    );

    // Charts: one per worker, with lines; the worker row was updated in place.
    until(&page, "the charts' lines", "Array.from(document.querySelectorAll('.chart-card polyline.series.queued')).filter(p => p.getAttribute('points').split(' ').length > 3).length === 2").await;
    assert!(
        eval::<bool>(
            &page,
            "document.querySelector('tr[data-worker=\"tl::send_email\"]') === window.__row"
        )
        .await,
        "rows are updated, not rebuilt"
    );

    page.find_element("#timeline-as-table")
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert!(eval::<bool>(&page, "(document.activeElement.blur(), true)").await); // no focus ring, no tip
    let png = page
        .find_element(".timeline-panel")
        .await
        .unwrap()
        .screenshot(chromiumoxide::cdp::browser_protocol::page::CaptureScreenshotFormat::Png)
        .await
        .unwrap();
    let path = screenshot_path();
    std::fs::write(&path, &png).unwrap();
    println!("screenshot: {}", path.display());

    let problems = problems.lock().unwrap().clone();
    assert!(problems.is_empty(), "the page logged errors: {problems:#?}");
    chromium.close().await;
}
