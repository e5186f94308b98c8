//! An adaptive limit grows back while its worker is idle (DESIGN §6: a healthy window grows
//! the limit one step even when the worker is idle; at `max` its signal is retracted), and
//! each change reports the counts of the window that caused it.

use std::time::Duration;

use backpressure::{
    policy::{Adaptive, ChangeReason, PolicyState, WindowCounts},
    Coordinator, MaxDefer, SignalEventKind, Sink, WorkContext,
};
use futures_util::StreamExt;

const LEVEL: &str = "backpressure.api.level";

/// Lets every task that can run do so (current-thread runtime, paused clock).
async fn settle() {
    for _ in 0..64 {
        tokio::task::yield_now().await;
    }
}

fn limit(coordinator: &Coordinator<bool>) -> u32 {
    match coordinator.policies()[0].state {
        PolicyState::Limit(limit) => limit,
        other => panic!("not an adaptive state: {other:?}"),
    }
}

/// Lets one window of 1 s end.
async fn next_window() {
    tokio::time::advance(Duration::from_secs(1)).await;
    settle().await;
}

#[tokio::test(start_paused = true)]
async fn an_idle_worker_s_limit_grows_one_step_per_window_and_retracts_at_max() {
    let sink = Sink::new();
    let mut events = sink.subscribe();
    let api = Coordinator::builder()
        .sink(sink.clone())
        .name("api")
        .concurrency(4)
        .defer_on("backpressure.api.*")
        .policy(Adaptive::new(LEVEL, 4).window(Duration::from_secs(1)))
        .build(|fail: bool, _: WorkContext| async move {
            if fail {
                Err("503")
            } else {
                Ok(())
            }
        })
        .unwrap();
    let peer = Coordinator::builder()
        .sink(sink.clone())
        .concurrency(4)
        .defer_on("backpressure.api.*")
        .max_defer(MaxDefer::Never)
        .build(|_: u8, _: WorkContext| async {})
        .unwrap();

    // Two bad windows: 4 → 3 → 2 (level 0.5, which also holds the peer at 2).
    api.enqueue_many([true, true, false]).await.unwrap();
    settle().await;
    next_window().await;
    assert_eq!(limit(&api), 3);
    api.enqueue(true).await.unwrap();
    settle().await;
    next_window().await;
    assert_eq!(limit(&api), 2);
    assert_eq!(sink.snapshot()[0].level.per_mille(), 500);
    assert_eq!(peer.stats().limit, 2);

    // Recovered and idle: nothing queued, nothing runs. One step per window, then retracted.
    next_window().await;
    assert_eq!(limit(&api), 3);
    assert_eq!(sink.snapshot()[0].level.per_mille(), 750);
    next_window().await;
    assert_eq!(limit(&api), 4);
    assert!(!sink.is_raised(LEVEL), "{:?}", sink.snapshot());
    assert_eq!(peer.stats().limit, 4);
    next_window().await;
    assert_eq!(limit(&api), 4);

    drop((api, peer));
    drop(sink);
    let changes: Vec<_> = events
        .by_ref()
        .filter_map(|event| async move {
            let event = event.unwrap();
            (event.kind == SignalEventKind::PolicyChanged).then(|| event.policy.unwrap())
        })
        .collect()
        .await;
    let seen: Vec<_> = changes
        .iter()
        .map(|c| (c.from, c.to, c.reason, c.counts))
        .collect();
    let counts = |calls, failures| WindowCounts { calls, failures };
    let (limit, bad, healthy) = (
        PolicyState::Limit,
        ChangeReason::BadWindow,
        ChangeReason::HealthyWindow,
    );
    assert_eq!(
        seen,
        [
            (limit(4), limit(3), bad, counts(3, 2)),
            (limit(3), limit(2), bad, counts(1, 1)),
            (limit(2), limit(3), healthy, counts(0, 0)),
            (limit(3), limit(4), healthy, counts(0, 0)),
        ]
    );
}
