//! What the browser tests share: finding Debian's headless Chromium (or printing one skip
//! line), launching it, opening a page that records its problems, evaluating and waiting.

#![allow(dead_code)] // each test binary uses its own part

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chromiumoxide::browser::{Browser, BrowserConfig};
use chromiumoxide::cdp::browser_protocol::log::{self, EventEntryAdded, LogEntryLevel};
use chromiumoxide::cdp::js_protocol::runtime::{
    ConsoleApiCalledType, EvaluateParams, EventConsoleApiCalled, EventExceptionThrown,
};
use chromiumoxide::Page;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

/// Chromium's path, or `None` (after printing why) when the browser tests should be skipped.
pub(crate) fn chromium() -> Option<PathBuf> {
    let found = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .into_iter()
        .chain(
            ["chromium", "chromium-browser", "google-chrome"]
                .iter()
                .filter_map(|name| {
                    std::env::var_os("PATH").and_then(|paths| {
                        std::env::split_paths(&paths)
                            .map(|dir| dir.join(name))
                            .find(|p| p.is_file())
                    })
                }),
        )
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var("REQUIRE_BROWSER").as_deref() != Ok("1"),
            "REQUIRE_BROWSER=1 but no chromium was found (run .ci/install-chromium)"
        );
        // One line per test binary, written past libtest's output capture so that it shows.
        static SAID: std::sync::Once = std::sync::Once::new();
        SAID.call_once(|| {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "skipping the browser tests: chromium not found (install it with .ci/install-chromium; REQUIRE_BROWSER=1 makes this an error)"
            );
        });
    }
    found
}

pub(crate) struct Chromium {
    pub(crate) browser: Browser,
    handler: tokio::task::JoinHandle<()>,
    _profile: tempfile::TempDir,
}

pub(crate) async fn launch(executable: PathBuf) -> Chromium {
    let profile = tempfile::tempdir().unwrap();
    let config = BrowserConfig::builder()
        .chrome_executable(executable)
        .no_sandbox()
        .user_data_dir(profile.path())
        .window_size(1360, 1000)
        .viewport(None)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ])
        .launch_timeout(Duration::from_secs(60))
        .request_timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let (browser, mut events) = Browser::launch(config).await.expect("chromium starts");
    // The handler drives the connection; protocol messages it cannot parse are not errors of
    // the page, so they are ignored here.
    let handler = tokio::spawn(async move { while events.next().await.is_some() {} });
    Chromium {
        browser,
        handler,
        _profile: profile,
    }
}

impl Chromium {
    pub(crate) async fn close(mut self) {
        let _ = self.browser.close().await;
        let _ = self.browser.wait().await;
        self.handler.abort();
    }
}

/// Console errors, uncaught exceptions and error log entries (CSP violations, failed loads).
pub(crate) type Problems = Arc<Mutex<Vec<String>>>;

pub(crate) async fn open(browser: &Browser, url: &str) -> (Page, Problems) {
    let page = browser.new_page("about:blank").await.unwrap();
    let problems: Problems = Arc::default();
    let mut console = page
        .event_listener::<EventConsoleApiCalled>()
        .await
        .unwrap();
    let mut exceptions = page.event_listener::<EventExceptionThrown>().await.unwrap();
    let mut entries = page.event_listener::<EventEntryAdded>().await.unwrap();
    page.execute(log::EnableParams::default()).await.unwrap();
    let sink = Arc::clone(&problems);
    tokio::spawn(async move {
        loop {
            let problem = tokio::select! {
                Some(e) = console.next() => (e.r#type == ConsoleApiCalledType::Error)
                    .then(|| format!("console.error: {:?}", e.args.iter().map(|a| a.value.clone()).collect::<Vec<_>>())),
                Some(e) = exceptions.next() => Some(format!("exception: {:?}", e.exception_details)),
                Some(e) = entries.next() => (e.entry.level == LogEntryLevel::Error)
                    .then(|| format!("log error ({:?}): {} {:?}", e.entry.source, e.entry.text, e.entry.url)),
                else => break,
            };
            if let Some(problem) = problem {
                sink.lock().unwrap().push(problem);
            }
        }
    });
    page.goto(url).await.unwrap();
    (page, problems)
}

/// Evaluates `js` (awaiting a promise) and returns its value.
pub(crate) async fn eval<T: DeserializeOwned>(page: &Page, js: &str) -> T {
    let params = EvaluateParams::builder()
        .expression(js)
        .await_promise(true)
        .return_by_value(true)
        .build()
        .unwrap();
    let result = page
        .evaluate_expression(params)
        .await
        .unwrap_or_else(|e| panic!("{js}: {e}"));
    result.into_value().unwrap_or_else(|e| panic!("{js}: {e}"))
}

/// Waits until `js` is true in the page, at most 30 s of real time (generous: a loaded
/// machine slows the browser down first).
pub(crate) async fn until(page: &Page, what: &str, js: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if eval::<bool>(page, js).await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}: {js}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
