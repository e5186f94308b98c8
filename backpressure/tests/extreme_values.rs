//! Extreme but valid configuration values never panic: durations too large to add to an
//! `Instant` mean "no timer" rather than an overflow.

use std::time::Duration;

use backpressure::{Coordinator, MaxDefer, Sink, WorkContext};

#[tokio::test(start_paused = true)]
async fn a_ttl_too_large_to_represent_never_expires() {
    let sink = Sink::new();
    sink.raise_for("backpressure.forever", Duration::MAX)
        .unwrap();
    tokio::time::advance(Duration::from_secs(365 * 24 * 3600)).await;
    let active = sink.snapshot();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].expires_at, None);
    assert!(sink.is_raised("backpressure.forever"));
}

#[tokio::test(start_paused = true)]
async fn huge_check_interval_and_max_defer_hold_without_panicking() {
    for max_defer in [MaxDefer::After(Duration::MAX), MaxDefer::Attempts(u32::MAX)] {
        let sink = Sink::new();
        let coordinator = Coordinator::builder()
            .sink(sink.clone())
            .defer_check_interval(Duration::MAX)
            .max_defer(max_defer)
            .build(|_: u32, _: WorkContext| async {})
            .unwrap();
        sink.raise("backpressure.downstream").unwrap();
        coordinator.enqueue(1).await.unwrap();
        // Paused current-thread runtime: a fixed number of yields lets the slots run,
        // deterministically, without moving the clock.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        let stats = coordinator.stats();
        assert_eq!((stats.deferred, stats.completed), (1, 0), "{max_defer:?}");
        sink.retract("backpressure.downstream").unwrap();
        coordinator.drain().await;
        assert_eq!(coordinator.stats().completed, 1, "{max_defer:?}");
    }
}

#[tokio::test]
async fn concurrency_beyond_the_limit_is_a_typed_error_not_an_out_of_memory() {
    use backpressure::{error::BuildError, MAX_CONCURRENCY};

    let err = Coordinator::<u32>::builder()
        .sink(Sink::new())
        .concurrency(usize::MAX)
        .build(|_, _| async {})
        .unwrap_err();
    assert_eq!(
        err,
        BuildError::ConcurrencyTooLarge {
            requested: usize::MAX,
            max: MAX_CONCURRENCY
        }
    );
    assert!(err.to_string().contains("allowed: 1 to 65536"), "{err}");

    let coordinator = Coordinator::<u32>::builder()
        .sink(Sink::new())
        .build(|_, _| async {})
        .unwrap();
    assert!(matches!(
        coordinator.set_concurrency(MAX_CONCURRENCY + 1),
        Err(BuildError::ConcurrencyTooLarge { .. })
    ));
    assert_eq!(
        coordinator.stats().concurrency,
        4,
        "a refused change changes nothing"
    );
}
