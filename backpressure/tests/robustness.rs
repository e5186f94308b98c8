//! Slots survive what user code and runtimes do to them: work that re-enqueues itself does
//! not starve the runtime, a dropped runtime does not leave items counted as running forever,
//! and user code that panics outside the handler's future is still caught.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use backpressure::{error::EnqueueError, Coordinator, Sink, WorkContext};

/// Ends the test run with an error if a test is still going after 60 s: a starved
/// current-thread runtime cannot run a timeout of its own.
struct Watchdog(#[allow(dead_code)] std::sync::mpsc::Sender<()>);

fn watchdog(what: &'static str) -> Watchdog {
    let (done, finished) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
            finished.recv_timeout(Duration::from_secs(60))
        {
            eprintln!("{what} is still running after 60 s: the runtime is starved");
            std::process::exit(1);
        }
    });
    Watchdog(done)
}

/// Guards against a hang turning into a stuck test run.
async fn within<F: std::future::Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(Duration::from_secs(30), future).await {
        Ok(output) => output,
        Err(_) => panic!("{what} did not finish"),
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_skip_callback_that_re_enqueues_does_not_starve_the_runtime() {
    let _watchdog = watchdog("a_skip_callback_that_re_enqueues_does_not_starve_the_runtime");
    let sink = Sink::new();
    let skips = Arc::new(AtomicUsize::new(0));
    let me: Arc<std::sync::Mutex<Option<Coordinator<u32>>>> = Arc::default();
    let coordinator = Coordinator::builder()
        .sink(sink.clone())
        .cancel_on("maintenance")
        .on_skip({
            let me = Arc::clone(&me);
            let skips = Arc::clone(&skips);
            // Keep skipped work: put it straight back. Without yielding between items, the
            // slot would spin on this forever and the retract below would never run.
            move |n: u32| {
                skips.fetch_add(1, Ordering::SeqCst);
                if let Some(me) = me.lock().unwrap().as_ref() {
                    let _ = me.try_enqueue(n);
                }
            }
        })
        .build(|_: u32, _: WorkContext| async {})
        .unwrap();
    *me.lock().unwrap() = Some(coordinator.clone());
    sink.raise("maintenance").unwrap();
    coordinator.enqueue(1).await.unwrap();
    let retracting = tokio::spawn({
        let sink = sink.clone();
        async move {
            tokio::task::yield_now().await;
            sink.retract("maintenance").unwrap();
        }
    });
    within("the retracting task", retracting).await.unwrap();
    assert!(skips.load(Ordering::SeqCst) >= 1);
    me.lock().unwrap().take();
    within("drain", coordinator.drain()).await;
    let stats = coordinator.stats();
    assert!(stats.is_consistent(), "{stats:?}");
    assert_eq!(
        stats.completed, 1,
        "the re-enqueued item ran once the signal was gone"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_handler_that_re_enqueues_does_not_starve_the_runtime() {
    let _watchdog = watchdog("a_handler_that_re_enqueues_does_not_starve_the_runtime");
    let retries = Arc::new(AtomicUsize::new(0));
    let slot: Arc<std::sync::Mutex<Option<Coordinator<u32>>>> = Arc::default();
    let coordinator = Coordinator::builder()
        .sink(Sink::new())
        .concurrency(1)
        .build({
            let slot = Arc::clone(&slot);
            let retries = Arc::clone(&retries);
            move |n: u32, _: WorkContext| {
                // Retry later: back into the queue, at once.
                if let Some(me) = slot.lock().unwrap().as_ref() {
                    retries.fetch_add(1, Ordering::SeqCst);
                    let _ = me.try_enqueue(n);
                }
                async {}
            }
        })
        .unwrap();
    *slot.lock().unwrap() = Some(coordinator.clone());
    coordinator.enqueue(1).await.unwrap();
    // A timer on the same thread still fires.
    within("a 1 ms sleep", tokio::time::sleep(Duration::from_millis(1))).await;
    assert!(retries.load(Ordering::SeqCst) >= 1);
    slot.lock().unwrap().take();
    let returned = coordinator.shutdown().await;
    assert_eq!(returned.len(), 1, "the item being retried is handed back");
    assert!(coordinator.stats().is_consistent());
}

#[test]
fn dropping_the_runtime_settles_running_items_and_closes_intake() {
    let first = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let started = Arc::new(tokio::sync::Notify::new());
    let coordinator = first.block_on({
        let started = Arc::clone(&started);
        let started_here = Arc::clone(&started);
        async move {
            let coordinator = Coordinator::builder()
                .sink(Sink::new())
                .concurrency(1)
                .build(move |_: u32, _: WorkContext| {
                    let started = Arc::clone(&started);
                    async move {
                        started.notify_one();
                        std::future::pending::<()>().await;
                    }
                })
                .unwrap();
            coordinator.enqueue(1).await.unwrap();
            coordinator.enqueue(2).await.unwrap();
            started_here.notified().await;
            coordinator
        }
    });
    assert_eq!(coordinator.stats().active, 1);
    drop(first);

    let stats = coordinator.stats();
    assert!(stats.is_consistent(), "{stats:?}");
    assert_eq!((stats.active, stats.failed, stats.queued), (0, 1, 1));
    assert!(stats.closed, "nothing can run new items any more");

    let second = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    second.block_on(async {
        assert!(matches!(coordinator.enqueue(3).await, Err(EnqueueError(3))));
        within("drain", coordinator.drain()).await;
        let returned = within("shutdown", coordinator.shutdown()).await;
        assert_eq!(returned, vec![2]);
        let stats = coordinator.stats();
        assert!(stats.is_consistent(), "{stats:?}");
        assert_eq!(stats.returned, 1);
    });
}

/// An error whose `Drop` panics: user code that runs after the handler's future is done.
struct Explosive;

impl fmt::Display for Explosive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("explosive")
    }
}

impl Drop for Explosive {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("the error's Drop panics");
        }
    }
}

#[tokio::test]
async fn a_panic_while_reporting_an_error_is_caught_and_the_slot_keeps_working() {
    let coordinator = Coordinator::builder()
        .sink(Sink::new())
        .concurrency(1)
        .build(|n: u32, _: WorkContext| async move {
            if n == 0 {
                Err(Explosive)
            } else {
                Ok(())
            }
        })
        .unwrap();
    coordinator.enqueue_many(0..3).await.unwrap();
    within("drain", coordinator.drain()).await;
    let stats = coordinator.stats();
    assert!(stats.is_consistent(), "{stats:?}");
    assert_eq!((stats.panicked, stats.completed), (1, 2));
}
