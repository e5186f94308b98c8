//! The quotas on the dashboard, in headless Chromium (see `browser.rs`): a worker's rate in
//! words in its row, the gate badge `rate` with what holds it, updated live, and the
//! timeline's worker span; a worker waiting for a fleet permit (granted by hand on a sink
//! that says a connector serves it), its badge and permit numbers; a shared rate, named
//! "fleet rate", and its wait for a token. Without `chromium` these tests print a skip line and pass, unless
//! `REQUIRE_BROWSER=1` is set.

use std::sync::Arc;

use axum::Router;
use backpressure::{backpressure_worker, Runtime, Sink};
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

/// A fleet-wide limit of 2, on a sink whose permits the test grants by hand.
#[backpressure_worker(name = "quota::fleet", sink = "fleet", global_concurrency = 2)]
async fn fleet(item: u32) {
    std::future::pending::<()>().await;
    let _ = item;
}

/// The fleet's rate of 2 a second, on a sink whose tokens the test grants by hand.
#[backpressure_worker(
    name = "quota::shared",
    sink = "shared",
    rate(limit = 2, per = "1s", shared = true)
)]
async fn shared(item: u32) {
    let _ = item;
}

/// Serves the admin of `runtime` under `/admin` on 127.0.0.1:0: its base URL and the server.
async fn serve(runtime: &Arc<Runtime>) -> (String, tokio::task::JoinHandle<()>) {
    let app = Router::new().nest(
        "/admin",
        backpressure_admin::router(Arc::clone(runtime), AdminConfig::new()),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/admin", listener.local_addr().unwrap());
    (
        base,
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() }),
    )
}

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
    let (base, server) = serve(&runtime).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_a_fleet_permit_shows_on_the_badge_with_the_permit_numbers() {
    let Some(executable) = chromium() else { return };
    let sink = Sink::new();
    sink.serve_permits();
    let runtime = Arc::new(
        Runtime::builder()
            .only(["quota::fleet"])
            .sink("fleet", sink.clone())
            .start()
            .unwrap(),
    );
    let (base, server) = serve(&runtime).await;
    let chromium = launch(executable).await;
    let (page, problems) = open(&chromium.browser, &format!("{base}/index.html")).await;
    let permits_are = |text: &str| {
        format!(
            "(() => {{ const p = document.querySelector('{} td.limits [data-field=\"permits\"]'); return !!p && p.textContent === '{text}'; }})()",
            row("quota::fleet")
        )
    };
    until(
        &page,
        "the fleet worker's permits",
        &permits_are("permits 0 in use / 0 granted / limit 2"),
    )
    .await;
    assert!(eval::<bool>(&page, "(window.__noReload = true)").await);

    runtime
        .coordinator::<u32>("quota::fleet")
        .unwrap()
        .enqueue_many(0..3)
        .await
        .unwrap();
    let badge = format!(
        "document.querySelector('{} .badge.gate').dataset.gate === 'permits'",
        row("quota::fleet")
    );
    until(&page, "the badge to say permits", &badge).await;
    let fleet: Value = eval(&page, &shown("quota::fleet")).await;
    assert_eq!(
        fleet["badge"], "permits waiting for a fleet permit",
        "{fleet}"
    );
    assert_eq!(fleet["rate"], json!([]), "no rate: {fleet}");

    // One permit granted by hand: one item runs, the next still waits.
    sink.permit_pools()[0].grant(1);
    until(
        &page,
        "one permit in use",
        &permits_are("permits 1 in use / 1 granted / limit 2"),
    )
    .await;
    assert_eq!(
        eval::<Value>(&page, &shown("quota::fleet")).await["state"],
        "permits"
    );
    assert!(
        eval::<bool>(&page, "window.__noReload === true").await,
        "updated live, not reloaded"
    );
    let problems = problems.lock().unwrap().clone();
    assert!(problems.is_empty(), "the page logged errors: {problems:#?}");
    chromium.close().await;
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_rate_says_fleet_and_waiting_for_its_token_turns_the_badge_to_rate() {
    let Some(executable) = chromium() else { return };
    let sink = Sink::new();
    sink.serve_rates();
    let runtime = Arc::new(
        Runtime::builder()
            .only(["quota::shared"])
            .sink("shared", sink.clone())
            .start()
            .unwrap(),
    );
    let (base, server) = serve(&runtime).await;
    let chromium = launch(executable).await;
    let (page, problems) = open(&chromium.browser, &format!("{base}/index.html")).await;
    let row_shown = format!("!!document.querySelector('{}')", row("quota::shared"));
    until(&page, "the shared worker's row", &row_shown).await;
    let before: Value = eval(&page, &shown("quota::shared")).await;
    assert_eq!(
        before["rate"],
        json!(["fleet rate 2/s, delayed 0 starts"]),
        "{before}"
    );
    assert!(eval::<bool>(&page, "(window.__noReload = true)").await);

    let coordinator = runtime.coordinator::<u32>("quota::shared").unwrap();
    coordinator.enqueue(1).await.unwrap();
    let badge = format!(
        "document.querySelector('{} .badge.gate').dataset.gate === 'rate'",
        row("quota::shared")
    );
    until(&page, "the badge to say rate", &badge).await;
    let held: Value = eval(&page, &shown("quota::shared")).await;
    assert_eq!(
        held["rate"],
        json!(["fleet rate 2/s, delayed 1 start"]),
        "{held}"
    );

    // A token granted by hand: the item starts and the gate opens again.
    let until_at = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    sink.rate_pools()[0].grant(1, until_at);
    let open_again = format!(
        "document.querySelector('{} .badge.gate').dataset.gate === 'open'",
        row("quota::shared")
    );
    until(&page, "the badge to open again", &open_again).await;
    assert_eq!(runtime.worker("quota::shared").unwrap().stats.completed, 1);
    assert!(
        eval::<bool>(&page, "window.__noReload === true").await,
        "updated live, not reloaded"
    );
    let problems = problems.lock().unwrap().clone();
    assert!(problems.is_empty(), "the page logged errors: {problems:#?}");
    chromium.close().await;
    server.abort();
}
