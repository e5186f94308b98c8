//! The page against hostile data, in headless Chromium (skipped without it unless
//! `REQUIRE_BROWSER=1`): names and keys of the longest allowed length with every allowed
//! character, levels 0.0004 (kept as 0.001) and 1.0, read-only mode, no `innerHTML` in any
//! asset, and a stream dropped and reconnected mid-history (no bar twice).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use backpressure::{backpressure_worker, Level, RaiseOptions, Runtime, MAX_NAME_LEN};
use backpressure_admin::AdminConfig;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

mod common;
use common::{chromium, eval, launch, open, until};

#[backpressure_worker(
    name = "hp::mail",
    sink = "hp",
    concurrency = 4,
    defer_on = "backpressure.*"
)]
async fn mail(item: u32) {
    let _ = item;
}

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

async fn serve(config: AdminConfig) -> Served {
    let runtime = Arc::new(Runtime::builder().only(["hp::mail"]).start().unwrap());
    let config = config.history_window(Duration::from_secs(60));
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
    async fn get(&self, path: &str) -> String {
        let request = Request::get(format!("/admin/{path}"))
            .body(Body::empty())
            .unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(body.to_vec()).unwrap()
    }
}

/// A name (or key) of exactly `MAX_NAME_LEN` bytes using every allowed character.
fn longest(prefix: &str) -> String {
    let unit = "aZ09._-:/";
    let mut name = format!("{prefix}{}", unit.repeat(MAX_NAME_LEN / unit.len() + 1));
    name.truncate(MAX_NAME_LEN);
    name
}

#[tokio::test]
async fn no_asset_writes_markup_from_data() {
    let served = serve(AdminConfig::new()).await;
    for asset in ["app.js", "timeline.js", "charts.js", "retries.js"] {
        let text = served.get(&format!("assets/{asset}")).await;
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
        ] {
            assert!(!text.contains(sink), "{asset} uses {sink}");
        }
    }
}

/// What of the page sticks out: lane labels past the label column, and the document wider
/// than the window.
const OVERFLOW: &str = r#"(() => {
    const width = window.bpHistory.labelWidth;
    const labels = Array.from(document.querySelectorAll('#timeline text.lane-label'))
        .map(l => l.getBBox()).filter(b => b.x + b.width > width + 1)
        .map(b => Math.round(b.x + b.width));
    const doc = document.documentElement;
    const wide = Array.from(document.querySelectorAll('body *'))
        .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
        .slice(0, 5).map(e => `${e.tagName}#${e.id}.${e.getAttribute('class')}`);
    return { labels, scroll: doc.scrollWidth, window: window.innerWidth, wide };
})()"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_longest_names_stay_inside_the_layout_read_only() {
    let Some(executable) = chromium() else { return };
    let served = serve(AdminConfig::new().read_only(true)).await;
    let chromium = launch(executable).await;
    let (page, problems) = open(&chromium.browser, &format!("{}/index.html", served.base)).await;
    until(
        &page,
        "the live stream",
        "document.body.dataset.mode === 'sse'",
    )
    .await;
    let sink = served.runtime.sink("hp").unwrap();
    let name = longest("backpressure.");
    let key = longest("");
    sink.raise_with(&name, RaiseOptions::new().key(key.as_str()))
        .unwrap();
    until(
        &page,
        "the long bar",
        "document.querySelectorAll('#timeline g.bar.signal').length === 1",
    )
    .await;
    let shown: Value = eval(
        &page,
        "(() => { const b = document.querySelector('#timeline g.bar.signal'); return [b.dataset.name, b.dataset.key]; })()",
    )
    .await;
    assert_eq!(
        shown,
        serde_json::json!([name, key]),
        "byte for byte in the DOM"
    );
    let overflow: Value = eval(&page, OVERFLOW).await;
    assert_eq!(
        overflow["labels"],
        serde_json::json!([]),
        "lane labels ending past the label column: {overflow}"
    );
    assert!(
        overflow["scroll"].as_u64() <= overflow["window"].as_u64(),
        "the page scrolls sideways: {overflow}"
    );
    assert!(
        problems.lock().unwrap().is_empty(),
        "{:?}",
        problems.lock().unwrap()
    );
    chromium.close().await;
}

/// The words of the page for a level: `stop` only for 0; a positive level never reads 0 %.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_smallest_and_the_full_level_are_not_shown_as_zero() {
    let Some(executable) = chromium() else { return };
    let served = serve(AdminConfig::new()).await;
    let chromium = launch(executable).await;
    let (page, problems) = open(&chromium.browser, &format!("{}/index.html", served.base)).await;
    until(
        &page,
        "the live stream",
        "document.body.dataset.mode === 'sse'",
    )
    .await;
    let sink = served.runtime.sink("hp").unwrap();
    let tiny = RaiseOptions::new()
        .key("tiny")
        .level(Level::new(0.0004).unwrap());
    sink.raise_with("backpressure.tiny", tiny).unwrap();
    let full = RaiseOptions::new().key("full").level(Level::FULL);
    sink.raise_with("backpressure.full", full).unwrap();
    until(
        &page,
        "two bars",
        "document.querySelectorAll('#timeline g.bar.signal').length === 2",
    )
    .await;
    until(
        &page,
        "the signals table",
        "document.querySelectorAll('#signals tbody tr').length === 2",
    )
    .await;
    let words: Value = eval(
        &page,
        r#"(() => ({
        tiny: document.querySelector('#timeline g.bar.signal[data-name="backpressure.tiny"]').getAttribute('aria-label'),
        full: document.querySelector('#timeline g.bar.signal[data-name="backpressure.full"]').getAttribute('aria-label'),
        table: document.querySelector('#signals tbody').textContent,
        worker: document.querySelector('tr[data-worker="hp::mail"]').textContent,
    }))()"#,
    )
    .await;
    println!("{words:#}");
    assert!(
        words["full"].as_str().unwrap().contains(": 100%"),
        "{words}"
    );
    for (what, text) in words.as_object().unwrap() {
        let text = text.as_str().unwrap();
        assert!(
            !text.contains(" 0%")
                && !text.contains(">0%")
                && !text.starts_with("0%")
                && !text.contains(":0%")
                && !text.contains("\n0%")
                && !text.contains("limited 0%"),
            "{what} says 0% for a level that lets one item run: {text:?}"
        );
        assert!(
            !text.contains("stop"),
            "{what}: nothing here stops: {text:?}"
        );
    }
    assert!(
        problems.lock().unwrap().is_empty(),
        "{:?}",
        problems.lock().unwrap()
    );
    chromium.close().await;
}

/// Paused, then resumed (the stream closed and opened again) while bars opened and closed:
/// the page ends with each bar once, as the API has them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_reconnected_mid_history_shows_each_bar_once() {
    let Some(executable) = chromium() else { return };
    let served = serve(AdminConfig::new()).await;
    let chromium = launch(executable).await;
    let (page, problems) = open(&chromium.browser, &format!("{}/index.html", served.base)).await;
    until(
        &page,
        "the live stream",
        "document.body.dataset.mode === 'sse'",
    )
    .await;
    let sink = served.runtime.sink("hp").unwrap();
    sink.raise_keyed("backpressure.a", "a").unwrap();
    until(
        &page,
        "bar a",
        "document.querySelectorAll('#timeline g.bar.signal').length === 1",
    )
    .await;
    page.find_element("#live-toggle")
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(&page, "paused", "document.body.dataset.mode === 'paused'").await;
    sink.retract_keyed("backpressure.a", "a").unwrap();
    sink.raise_keyed("backpressure.b", "b").unwrap();
    page.find_element("#live-toggle")
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(&page, "live again", "document.body.dataset.mode === 'sse'").await;
    until(&page, "bar b and bar a closed", r#"(() => {
        const bars = Array.from(document.querySelectorAll('#timeline g.bar.signal'));
        return bars.length === 2 && bars.some(b => b.dataset.name === 'backpressure.a' && b.dataset.endMs !== '');
    })()"#).await;
    let api: Value = serde_json::from_str(&served.get("api/history").await).unwrap();
    let dom: Vec<u64> = eval(
        &page,
        "Array.from(document.querySelectorAll('#timeline g.bar')).map(b => Number(b.dataset.id)).sort((x, y) => x - y)",
    )
    .await;
    let mut ids: Vec<u64> = api["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_u64().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(dom, ids, "each bar once, the API's");
    let rows: usize = eval(
        &page,
        "document.querySelectorAll('#timeline-table tbody tr').length",
    )
    .await;
    assert_eq!(rows, ids.len(), "the table has each bar once");
    assert!(
        problems.lock().unwrap().is_empty(),
        "{:?}",
        problems.lock().unwrap()
    );
    chromium.close().await;
}
