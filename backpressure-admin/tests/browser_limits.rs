//! The quotas on the dashboard, in headless Chromium (see `browser.rs`): a worker's rate in
//! words in its row, the gate badge `rate` with what holds it, updated live, and the
//! timeline's worker span. Without `chromium` these tests print a skip line and pass, unless
//! `REQUIRE_BROWSER=1` is set.

use std::sync::Arc;

use axum::Router;
use backpressure::{backpressure_worker, Runtime};
use backpressure_admin::AdminConfig;
use serde_json::{json, Value};

mod common;
use common::{chromium, eval, launch, open, until};

/// Two starts at once, then one every five minutes: a third item waits longer than any test.
#[backpressure_worker(
    name = "quota::slow",
    sink = "relay",
    rate(limit = 2, per = "10m", burst = 2)
)]
async fn slow(item: u32) {
    let _ = item;
}

/// Never enqueued: its rate shows, its gate stays open.
#[backpressure_worker(
    name = "quota::fast",
    sink = "relay",
    rate(limit = 50, per = "1s", burst = 10)
)]
async fn fast(item: u32) {
    let _ = item;
}

const WORKERS: [&str; 2] = ["quota::fast", "quota::slow"];

fn row(worker: &str) -> String {
    format!(r#"#workers tbody tr[data-worker="{worker}"]"#)
}

/// The worker row's gate badge and limits cell, as the page shows them.
fn shown(worker: &str) -> String {
    let row = row(worker);
    format!(
        r#"(() => {{
        const badge = document.querySelector('{row} .badge.gate');
        const limits = document.querySelector('{row} td.limits');
        return {{
            state: badge && badge.dataset.gate,
            badge: badge && badge.textContent,
            rate: limits && Array.from(limits.querySelectorAll('[data-field="rate"]'), s => s.textContent),
            permits: limits && limits.querySelectorAll('[data-field="permits"]').length,
        }};
    }})()"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_shows_in_words_and_its_hold_turns_the_badge_live() {
    let Some(executable) = chromium() else { return };
    let runtime = Arc::new(Runtime::builder().only(WORKERS).start().unwrap());
    let app = Router::new().nest(
        "/admin",
        backpressure_admin::router(Arc::clone(&runtime), AdminConfig::new()),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/admin", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let chromium = launch(executable).await;
    let (page, problems) = open(&chromium.browser, &format!("{base}/index.html")).await;
    until(
        &page,
        "both worker rows",
        &format!("!!document.querySelector('{}')", row("quota::slow")),
    )
    .await;
    let fast: Value = eval(&page, &shown("quota::fast")).await;
    assert_eq!(
        fast,
        json!({"state": "open", "badge": "open", "rate": ["rate 50/s (burst 10), delayed 0 starts"], "permits": 0})
    );
    let slow: Value = eval(&page, &shown("quota::slow")).await;
    assert_eq!(
        slow["rate"],
        json!(["rate 2 per 10m (burst 2), delayed 0 starts"]),
        "{slow}"
    );
    assert!(eval::<bool>(&page, "(window.__noReload = true)").await);

    // Two start at once; the third waits for its instant, five minutes away.
    let coordinator = runtime.coordinator::<u32>("quota::slow").unwrap();
    coordinator.enqueue_many(0..3).await.unwrap();
    let badge = format!(
        "document.querySelector('{} .badge.gate').dataset.gate === 'rate'",
        row("quota::slow")
    );
    until(&page, "the slow worker's badge to say rate", &badge).await;
    let slow: Value = eval(&page, &shown("quota::slow")).await;
    assert_eq!(
        slow,
        json!({"state": "rate", "badge": "rate holds the next start", "rate": ["rate 2 per 10m (burst 2), delayed 1 start"], "permits": 0})
    );
    let stats = runtime.worker("quota::slow").unwrap().stats;
    assert_eq!(
        (stats.completed, stats.rate_limited, stats.rate_holding),
        (2, 1, true)
    );
    until(
        &page,
        "the timeline's rate span for the slow worker",
        r#"!!document.querySelector('#timeline g.bar.worker[data-worker="quota::slow"][data-state="rate"]')"#,
    )
    .await;

    // A pause is named before the rate.
    runtime.pause("quota::slow");
    until(
        &page,
        "the badge to say paused",
        &format!(
            "document.querySelector('{} .badge.gate').textContent === 'paused'",
            row("quota::slow")
        ),
    )
    .await;
    assert!(
        eval::<bool>(&page, "window.__noReload === true").await,
        "updated live, not reloaded"
    );
    let problems = problems.lock().unwrap().clone();
    assert!(problems.is_empty(), "the page logged errors: {problems:#?}");
    chromium.close().await;
    server.abort();
}
