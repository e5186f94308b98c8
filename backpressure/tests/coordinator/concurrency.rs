//! Concurrency: the limit is reached, never exceeded, and changes at run time.

use super::*;

/// A handler body that tracks how many run at once.
#[derive(Clone, Default)]
struct Tracker {
    now: Arc<AtomicUsize>,
    max: Arc<AtomicUsize>,
}

impl Tracker {
    async fn run(&self) {
        let running = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(running, Ordering::SeqCst);
        for _ in 0..5 {
            tokio::task::yield_now().await;
        }
        self.now.fetch_sub(1, Ordering::SeqCst);
    }

    fn max(&self) -> usize {
        self.max.load(Ordering::SeqCst)
    }
}

#[tokio::test]
async fn concurrency_is_reached_but_never_exceeded() {
    let tracker = Tracker::default();
    let inner = tracker.clone();
    let coordinator = Coordinator::builder()
        .sink(Sink::new())
        .concurrency(3)
        .build(move |_: u32, _| {
            let tracker = inner.clone();
            async move { tracker.run().await }
        })
        .unwrap();
    coordinator.enqueue_many(0..40).await.unwrap();
    coordinator.drain().await;
    assert_eq!(tracker.max(), 3);
    assert_eq!(consistent(coordinator.stats()).completed, 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrency_is_never_exceeded_on_a_multi_thread_runtime() {
    let tracker = Tracker::default();
    let inner = tracker.clone();
    let coordinator = Coordinator::builder()
        .sink(Sink::new())
        .concurrency(3)
        .capacity(16)
        .build(move |_: u32, _| {
            let tracker = inner.clone();
            async move { tracker.run().await }
        })
        .unwrap();
    let observer = {
        let c = coordinator.clone();
        tokio::spawn(async move {
            loop {
                let stats = consistent(c.stats());
                assert!(stats.active <= 3, "{stats:?}");
                if stats.closed && stats.queued == 0 && stats.active == 0 {
                    return;
                }
                tokio::task::yield_now().await;
            }
        })
    };
    // Hang guard only (real time); nothing here depends on timing.
    within(Duration::from_secs(60), "enqueue and drain", async {
        coordinator.enqueue_many(0..500).await.unwrap();
        coordinator.drain().await;
    })
    .await;
    observer.await.unwrap();
    assert!(tracker.max() <= 3, "max concurrent was {}", tracker.max());
    assert_eq!(consistent(coordinator.stats()).completed, 500);
}

/// A coordinator whose handlers each wait for one permit of `release`, and report their
/// item on `started` when they begin.
fn blocking(
    concurrency: usize,
) -> (
    Coordinator<u32>,
    Arc<Semaphore>,
    mpsc::UnboundedReceiver<u32>,
) {
    let release = Arc::new(Semaphore::new(0));
    let release_in = Arc::clone(&release);
    let (started_tx, started) = mpsc::unbounded_channel();
    let coordinator = Coordinator::builder()
        .sink(Sink::new())
        .concurrency(concurrency)
        .build(move |n: u32, _| {
            started_tx.send(n).unwrap();
            let release = Arc::clone(&release_in);
            async move { release.acquire().await.unwrap().forget() }
        })
        .unwrap();
    (coordinator, release, started)
}

#[tokio::test(start_paused = true)]
async fn set_concurrency_grows_at_once_and_shrinks_as_items_finish() {
    let (coordinator, release, mut started) = blocking(1);
    coordinator.enqueue_many(0..8).await.unwrap();
    assert_eq!(recv(&mut started).await, Some(0));
    settle().await;
    assert_eq!(consistent(coordinator.stats()).active, 1);

    coordinator.set_concurrency(3).unwrap();
    assert_eq!(recv(&mut started).await, Some(1));
    assert_eq!(recv(&mut started).await, Some(2));
    settle().await;
    let stats = consistent(coordinator.stats());
    assert_eq!((stats.active, stats.concurrency, stats.queued), (3, 3, 5));

    // Shrink while three run: nothing new starts until fewer than one runs.
    coordinator.set_concurrency(1).unwrap();
    assert_eq!(consistent(coordinator.stats()).concurrency, 1);
    release.add_permits(1);
    until("one finishes", || coordinator.stats(), |s| s.completed == 1).await;
    settle().await;
    assert!(started.try_recv().is_err(), "started with 2 still running");
    release.add_permits(1);
    until("two finish", || coordinator.stats(), |s| s.completed == 2).await;
    settle().await;
    assert!(started.try_recv().is_err(), "started with 1 still running");
    assert_eq!(consistent(coordinator.stats()).active, 1);

    release.add_permits(1);
    assert_eq!(recv(&mut started).await, Some(3));
    settle().await;
    assert_eq!(consistent(coordinator.stats()).active, 1);

    // Growing again after a shrink starts new slots.
    coordinator.set_concurrency(2).unwrap();
    assert_eq!(recv(&mut started).await, Some(4));
    release.add_permits(100);
    coordinator.drain().await;
    let stats = consistent(coordinator.stats());
    assert_eq!((stats.completed, stats.active, stats.queued), (8, 0, 0));
}

#[tokio::test]
async fn set_concurrency_zero_is_an_error_and_changes_nothing() {
    let (coordinator, release, mut started) = blocking(2);
    assert_eq!(
        coordinator.set_concurrency(0),
        Err(BuildError::ZeroConcurrency)
    );
    assert_eq!(coordinator.stats().concurrency, 2);
    coordinator.enqueue_many(0..3).await.unwrap();
    assert_eq!(recv(&mut started).await, Some(0));
    assert_eq!(recv(&mut started).await, Some(1));
    release.add_permits(3);
    coordinator.drain().await;
    assert_eq!(consistent(coordinator.stats()).completed, 3);
}
