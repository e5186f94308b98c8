//! Retries and dead letters on the dashboard, in headless Chromium (see `browser.rs`): the
//! counts, the last errors shown as text (an error message is user data), and the requeue
//! control, live and hidden in read-only mode. Without `chromium` these tests print a skip
//! line and pass, unless `REQUIRE_BROWSER=1` is set.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use backpressure::retry::Failure;
use backpressure::{backpressure_worker, Runtime};
use backpressure_admin::AdminConfig;
use serde_json::Value;

mod common;
use common::{chromium, eval, launch, open, until};

/// Markup as an error message: it must show as these characters, never as an element.
const HOSTILE: &str = "<img src=x onerror=alert(1)>";

/// Whether the relay takes mail by now (only the requeue test sets it).
static FIXED: AtomicBool = AtomicBool::new(false);

#[derive(Debug, Clone)]
struct Mail(String);

#[backpressure_worker(
    name = "page::send",
    sink = "mail",
    retry(attempts = 1),
    dead_letters = 10
)]
async fn send(mail: Mail) -> Result<(), Failure<String>> {
    if FIXED.load(Ordering::SeqCst) && !mail.0.starts_with("never") {
        Ok(())
    } else {
        Err(Failure::from(mail.0))
    }
}

const ROW: &str = r#"#retries tbody tr[data-worker="page::send"]"#;

struct Served {
    runtime: Arc<Runtime>,
    base: String,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Serves the admin under `/admin` on 127.0.0.1:0, with `items` dead-lettered first.
async fn serve(config: AdminConfig, items: &[&str]) -> Served {
    let runtime = Arc::new(Runtime::builder().only(["page::send"]).start().unwrap());
    let coordinator = runtime.coordinator::<Mail>("page::send").unwrap();
    for item in items {
        coordinator.enqueue(Mail((*item).to_owned())).await.unwrap();
    }
    wait_for(&runtime, "the dead letters", |info| {
        info.dead_letter_count == items.len()
    })
    .await;
    let app = Router::new().nest(
        "/admin",
        backpressure_admin::router(Arc::clone(&runtime), config),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/admin", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Served {
        runtime,
        base,
        server,
    }
}

/// Waits until `done` holds of the worker's info, at most 30 s of real time.
async fn wait_for(runtime: &Runtime, what: &str, done: impl Fn(&backpressure::WorkerInfo) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !done(&runtime.worker("page::send").unwrap()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn cell_is(field: &str, value: &str) -> String {
    format!(
        r#"(() => {{ const c = document.querySelector('{ROW} td[data-field="{field}"]'); return !!c && c.textContent === '{value}'; }})()"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_show_their_errors_as_text_and_requeue_runs_them_again() {
    let Some(executable) = chromium() else { return };
    let served = serve(AdminConfig::new(), &[HOSTILE, "b@page"]).await;
    let chromium = launch(executable).await;
    let (page, problems) = open(&chromium.browser, &format!("{}/index.html", served.base)).await;
    until(&page, "two dead letters", &cell_is("dead_letters", "2")).await;
    until(
        &page,
        "the summary tile",
        "document.querySelector('[data-summary=dead_letters]').textContent === '2'",
    )
    .await;
    let shown: Value = eval(
        &page,
        r#"({
        errors: Array.from(document.querySelectorAll('#dead-letters tbody td.error-text'), td => td.textContent),
        images: document.querySelectorAll('#dead-letters img, #retries img').length,
        tableShown: !document.getElementById('dead-letters').hidden,
        retry: document.querySelector('#retries td.retry').textContent,
    })"#,
    )
    .await;
    // Newest first: the order in which they were dead-lettered (the worker runs both at
    // once, so that is not always their enqueue order), as the runtime records it.
    let info = served.runtime.worker("page::send").unwrap();
    let newest_first: Vec<&str> = info
        .dead_letters
        .iter()
        .rev()
        .map(|d| d.error.as_str())
        .collect();
    assert_eq!(
        shown["errors"],
        serde_json::json!(newest_first),
        "newest first, as text: {shown}"
    );
    let mut errors: Vec<&str> = newest_first.clone();
    errors.sort_unstable();
    assert_eq!(errors, [HOSTILE, "b@page"], "both, as text: {shown}");
    assert_eq!(shown["images"], 0, "no markup made from an error: {shown}");
    assert_eq!(shown["tableShown"], true);
    assert_eq!(shown["retry"], "1 attempt");
    until(
        &page,
        "the chart's retried and dead-lettered rows",
        r#"['retried_per_s', 'dead_lettered_per_s'].every(k => document.querySelector(`.chart-card[data-worker="page::send"] [data-series="${k}"]`) !== null)"#,
    )
    .await;
    assert!(eval::<bool>(&page, "(window.__noReload = true)").await);

    FIXED.store(true, Ordering::SeqCst);
    page.find_element(&format!("{ROW} button.requeue"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&served.runtime, "the requeued items to complete", |info| {
        info.stats.completed == 2
    })
    .await;
    let info = served.runtime.worker("page::send").unwrap();
    assert_eq!(info.dead_letter_count, 0);
    until(&page, "no dead letters left", &cell_is("dead_letters", "0")).await;
    until(
        &page,
        "the status line",
        "document.getElementById('status').textContent.includes('requeued 2')",
    )
    .await;
    until(
        &page,
        "the last errors table hidden",
        "document.getElementById('dead-letters').hidden",
    )
    .await;
    assert!(
        eval::<bool>(&page, "window.__noReload === true").await,
        "updated live, not reloaded"
    );
    let problems = problems.lock().unwrap().clone();
    assert!(problems.is_empty(), "the page logged errors: {problems:#?}");
    chromium.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_mode_shows_the_dead_letters_without_a_requeue_control() {
    let Some(executable) = chromium() else { return };
    let served = serve(AdminConfig::new().read_only(true), &["never@page"]).await;
    let chromium = launch(executable).await;
    let (page, problems) = open(&chromium.browser, &format!("{}/index.html", served.base)).await;
    until(&page, "one dead letter", &cell_is("dead_letters", "1")).await;
    let controls: Value = eval(
        &page,
        r#"({
        buttons: Array.from(document.querySelectorAll('#retries button')).length,
        controlShown: Array.from(document.querySelectorAll('#retries .requeue-control')).some(c => getComputedStyle(c).display !== 'none'),
    })"#,
    )
    .await;
    assert_eq!(controls["buttons"], 0, "{controls}");
    assert_eq!(controls["controlShown"], false, "{controls}");
    let clean = problems.lock().unwrap().clone();
    assert!(clean.is_empty(), "the page logged errors: {clean:#?}");
    // A forged requeue from the page itself is refused by the server.
    let status: u16 = eval(
        &page,
        r#"fetch('api/workers/page::send/requeue', {
        method: 'POST', headers: {'Content-Type': 'application/json'}, body: '{}',
    }).then(r => r.status)"#,
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(
        served
            .runtime
            .worker("page::send")
            .unwrap()
            .dead_letter_count,
        1
    );
    chromium.close().await;
}
