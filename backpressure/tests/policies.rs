//! Health policies under paused time: each scenario with exact numbers.

use std::sync::Arc;
use std::time::Duration;

use backpressure::{
    error::BuildError,
    policy::{Adaptive, Breaker, BreakerState, PolicyState, Watermark},
    Coordinator, MaxDefer, SignalEventKind, Sink, Stats, WorkContext,
};
use futures_util::StreamExt;
use tokio::sync::Semaphore;

/// What a scripted call does.
#[derive(Debug, Clone, Copy)]
enum Call {
    Ok,
    Fail,
    /// Waits for a permit of the worker's semaphore, then succeeds.
    Block,
}

struct Worker {
    coordinator: Coordinator<Call>,
    release: Arc<Semaphore>,
}

fn worker(sink: &Sink, name: &str, concurrency: usize, breaker: Option<Breaker>) -> Worker {
    let release = Arc::new(Semaphore::new(0));
    let permits = Arc::clone(&release);
    let mut builder = Coordinator::builder()
        .sink(sink.clone())
        .name(name)
        .concurrency(concurrency)
        .capacity(1_000)
        // Held items wait for the breaker, not for `max_defer`.
        .max_defer(MaxDefer::Never);
    if let Some(breaker) = breaker {
        builder = builder.policy(breaker);
    }
    let coordinator = builder
        .build(move |call: Call, _: WorkContext| {
            let permits = Arc::clone(&permits);
            async move {
                match call {
                    Call::Ok => Ok(()),
                    Call::Fail => Err("relay refused"),
                    Call::Block => {
                        permits.acquire().await.unwrap().forget();
                        Ok(())
                    }
                }
            }
        })
        .unwrap();
    Worker {
        coordinator,
        release,
    }
}

fn breaker() -> Breaker {
    Breaker::error_rate("backpressure.smtp")
        .jitter(0.0)
        .open_for(Duration::from_secs(30))
        .probe_timeout(Duration::from_secs(10))
}

/// Lets every task that can run do so (current-thread runtime, paused clock).
async fn settle() {
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
}

fn stats(worker: &Worker) -> Stats {
    let stats = worker.coordinator.stats();
    assert!(stats.is_consistent(), "{stats:?}");
    stats
}

fn breaker_state(worker: &Worker) -> PolicyState {
    worker.coordinator.policies()[0].state
}

async fn run(worker: &Worker, calls: &[Call]) {
    worker
        .coordinator
        .enqueue_many(calls.iter().copied())
        .await
        .unwrap();
    settle().await;
}

#[tokio::test(start_paused = true)]
async fn the_twentieth_failure_opens_the_breaker_and_holds_a_peer() {
    let sink = Sink::new();
    let mailer = worker(&sink, "mailer", 1, Some(breaker()));
    let peer = worker(&sink, "digest", 4, None);

    run(&mailer, &[Call::Fail; 19]).await;
    assert_eq!(stats(&mailer).failed, 19);
    assert!(
        !sink.is_raised("backpressure.smtp"),
        "19 failures stay closed"
    );

    run(&mailer, &[Call::Fail]).await;
    assert_eq!(
        breaker_state(&mailer),
        PolicyState::Breaker(BreakerState::Open)
    );
    let entry = &sink.snapshot()[0];
    assert_eq!(
        (entry.name.as_ref(), entry.key.as_deref()),
        ("backpressure.smtp", Some("mailer"))
    );

    run(&peer, &[Call::Ok; 5]).await;
    let peer_stats = stats(&peer);
    assert_eq!((peer_stats.completed, peer_stats.queued), (0, 5));
}

#[tokio::test(start_paused = true)]
async fn old_failures_slide_out_of_the_window() {
    let sink = Sink::new();
    let mailer = worker(&sink, "mailer", 1, Some(breaker()));
    run(&mailer, &[Call::Fail; 19]).await;
    tokio::time::advance(Duration::from_secs(31)).await;
    run(&mailer, &[Call::Fail]).await;
    assert!(!sink.is_raised("backpressure.smtp"));
    assert_eq!(mailer.coordinator.policies()[0].counts.calls, 1);
}

/// Opens the mailer's breaker with 20 failures.
async fn open(mailer: &Worker) {
    run(mailer, &[Call::Fail; 20]).await;
    assert_eq!(
        breaker_state(mailer),
        PolicyState::Breaker(BreakerState::Open)
    );
}

#[tokio::test(start_paused = true)]
async fn half_open_probes_run_on_the_owner_only_and_their_success_releases_everyone() {
    let sink = Sink::new();
    let mailer = worker(&sink, "mailer", 4, Some(breaker()));
    let peer = worker(&sink, "digest", 4, None);
    open(&mailer).await;
    run(&mailer, &[Call::Block; 5]).await;
    run(&peer, &[Call::Ok; 5]).await;

    tokio::time::advance(Duration::from_millis(29_999)).await;
    settle().await;
    assert_eq!(stats(&mailer).active, 0, "not before open_for");

    tokio::time::advance(Duration::from_millis(1)).await;
    settle().await;
    assert_eq!(
        breaker_state(&mailer),
        PolicyState::Breaker(BreakerState::HalfOpen)
    );
    assert_eq!((stats(&mailer).active, stats(&mailer).queued), (3, 2));
    assert_eq!(stats(&peer).completed, 0, "the peer keeps holding");

    // Three probe successes retract the signal: the peer starts in the same tick.
    mailer.release.add_permits(3);
    settle().await;
    assert_eq!(
        breaker_state(&mailer),
        PolicyState::Breaker(BreakerState::Closed)
    );
    assert!(!sink.is_raised("backpressure.smtp"));
    assert_eq!(stats(&peer).completed, 5);
    assert_eq!(
        stats(&mailer).active,
        2,
        "the rest of the owner's queue starts too"
    );
}

#[tokio::test(start_paused = true)]
async fn a_probe_that_never_returns_reopens_at_probe_timeout() {
    let sink = Sink::new();
    let mailer = worker(&sink, "mailer", 4, Some(breaker()));
    open(&mailer).await;
    run(&mailer, &[Call::Block]).await;
    tokio::time::advance(Duration::from_secs(30)).await;
    settle().await;
    assert_eq!(stats(&mailer).active, 1);

    tokio::time::advance(Duration::from_millis(9_999)).await;
    settle().await;
    assert_eq!(
        breaker_state(&mailer),
        PolicyState::Breaker(BreakerState::HalfOpen)
    );
    tokio::time::advance(Duration::from_millis(1)).await;
    settle().await;
    assert_eq!(
        breaker_state(&mailer),
        PolicyState::Breaker(BreakerState::Open)
    );
    // Reopened for twice as long.
    let next = mailer.coordinator.policies()[0].next_transition_in;
    assert_eq!(next, Some(Duration::from_secs(60)));
}

#[tokio::test(start_paused = true)]
async fn failing_probes_double_the_open_period_up_to_the_cap() {
    let sink = Sink::new();
    let mailer = worker(&sink, "mailer", 1, Some(breaker()));
    open(&mailer).await;
    let mut periods = Vec::new();
    for _ in 0..6 {
        let next = mailer.coordinator.policies()[0].next_transition_in.unwrap();
        periods.push(next.as_secs());
        run(&mailer, &[Call::Fail]).await;
        tokio::time::advance(next).await;
        settle().await;
    }
    assert_eq!(periods, [30, 60, 120, 240, 300, 300]);
}

#[tokio::test(start_paused = true)]
async fn a_live_owner_refreshes_its_signal_past_the_ttl_and_a_dropped_one_retracts_it() {
    let sink = Sink::new();
    let mailer = worker(
        &sink,
        "mailer",
        1,
        Some(breaker().ttl(Duration::from_secs(15))),
    );
    open(&mailer).await;
    // Refreshed while the owner lives: still raised long after one TTL.
    tokio::time::advance(Duration::from_secs(20)).await;
    settle().await;
    assert!(sink.is_raised("backpressure.smtp"));

    // The owner goes away: its verdict ends with it, not one TTL later.
    drop(mailer);
    settle().await;
    assert!(!sink.is_raised("backpressure.smtp"));
}

#[tokio::test(start_paused = true)]
async fn shutdown_cancellations_are_not_failures() {
    let sink = Sink::new();
    let mailer = worker(&sink, "mailer", 4, Some(breaker().min_calls(1)));
    run(&mailer, &[Call::Block; 4]).await;
    // Shutdown cancels the token; the blocked handlers end only when released.
    let shutdown = {
        let coordinator = mailer.coordinator.clone();
        tokio::spawn(async move { coordinator.shutdown().await })
    };
    settle().await;
    mailer.release.add_permits(4);
    shutdown.await.unwrap();
    assert_eq!(mailer.coordinator.policies()[0].counts.calls, 0);
}

#[tokio::test(start_paused = true)]
async fn every_transition_is_an_event_with_its_reason_and_counts() {
    let sink = Sink::new();
    let mut events = sink.subscribe();
    let mailer = worker(&sink, "mailer", 1, Some(breaker()));
    open(&mailer).await;
    let mut changes = Vec::new();
    while let Some(Ok(event)) = events.next().await {
        if event.kind == SignalEventKind::PolicyChanged {
            changes.push(event.policy.unwrap());
            break;
        }
    }
    let change = changes[0];
    assert_eq!(change.policy, "error_rate");
    assert_eq!(
        (change.from, change.to),
        (
            PolicyState::Breaker(BreakerState::Closed),
            PolicyState::Breaker(BreakerState::Open)
        )
    );
    assert_eq!((change.counts.calls, change.counts.failures), (20, 20));
}

#[tokio::test(start_paused = true)]
async fn an_adaptive_limit_publishes_a_level_that_holds_its_own_worker() {
    let sink = Sink::new();
    let release = Arc::new(Semaphore::new(0));
    let permits = Arc::clone(&release);
    let coordinator = Coordinator::builder()
        .sink(sink.clone())
        .name("api")
        .concurrency(10)
        .defer_on("backpressure.api.*")
        .policy(Adaptive::new("backpressure.api.level", 10).window(Duration::from_secs(1)))
        .build(move |call: Call, _: WorkContext| {
            let permits = Arc::clone(&permits);
            async move {
                match call {
                    Call::Fail => Err("503"),
                    _ => {
                        permits.acquire().await.unwrap().forget();
                        Ok(())
                    }
                }
            }
        })
        .unwrap();
    let mut limits = Vec::new();
    for _ in 0..3 {
        coordinator.enqueue(Call::Fail).await.unwrap();
        settle().await;
        tokio::time::advance(Duration::from_secs(1)).await;
        settle().await;
        let PolicyState::Limit(limit) = coordinator.policies()[0].state else {
            panic!("not an adaptive state")
        };
        limits.push(limit);
    }
    assert_eq!(limits, [9, 8, 7]);
    assert_eq!(sink.snapshot()[0].level.per_mille(), 700);

    // The level holds the worker itself at 7 running.
    coordinator.enqueue_many([Call::Block; 12]).await.unwrap();
    settle().await;
    assert_eq!(coordinator.stats().active, 7);

    // A healthy window adds one.
    tokio::time::advance(Duration::from_secs(1)).await;
    settle().await;
    assert_eq!(coordinator.policies()[0].state, PolicyState::Limit(8));
    assert_eq!(coordinator.stats().active, 8);
    release.add_permits(100);
}

#[test]
fn bad_policy_values_are_typed_build_errors() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let _guard = runtime.enter();
    let err = Coordinator::<u8>::builder()
        .sink(Sink::new())
        .policy(Breaker::error_rate("backpressure.smtp").failure_ratio(1.5))
        .build(|_, _| async {})
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid `error_rate` policy: `failure_ratio` must be a number in (0, 1], found 1.5"
    );
    let err = Coordinator::<u8>::builder()
        .sink(Sink::new())
        .policy(Adaptive::new("bad name!", 4))
        .build(|_, _| async {})
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("invalid `adaptive` policy: invalid signal name `bad name!`"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_fail_ok_alternation_opens_and_never_retracts_mid_failure() {
    let sink = Sink::new();
    let mailer = worker(&sink, "mailer", 2, Some(breaker()));
    let mut events = sink.subscribe();
    let collector = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some(event) = events.next().await {
            let event = event.unwrap();
            seen.push((event.kind, event.policy.map(|p| (p.from, p.to))));
        }
        seen
    });
    // 20 calls a second for 120 s, every other one failing.
    for tick in 0..2_400u32 {
        let call = if tick % 2 == 0 { Call::Ok } else { Call::Fail };
        // While open the queue fills up; a producer that finds it full drops that call.
        let _ = mailer.coordinator.try_enqueue(call);
        tokio::time::advance(Duration::from_millis(50)).await;
        settle().await;
    }
    let state = breaker_state(&mailer);
    drop(mailer);
    drop(sink);
    let mut seen = collector.await.unwrap();
    // The owner's drop ends its verdict; nothing retracted it before.
    assert_eq!(
        seen.pop().map(|(kind, _)| kind),
        Some(SignalEventKind::Retracted)
    );
    let raised = seen
        .iter()
        .filter(|(kind, _)| *kind == SignalEventKind::Raised)
        .count();
    let retracted: Vec<_> = seen
        .iter()
        .filter(|(kind, _)| matches!(kind, SignalEventKind::Retracted | SignalEventKind::Expired))
        .collect();
    assert_eq!(retracted, Vec::<&(SignalEventKind, _)>::new(), "{seen:?}");
    assert_eq!(raised, 1, "opened once and stayed open: {seen:?}");
    assert_ne!(state, PolicyState::Breaker(BreakerState::Closed));
}

#[tokio::test(start_paused = true)]
async fn a_watermark_raises_after_hold_for_at_high_and_retracts_at_low() {
    let sink = Sink::new();
    let release = Arc::new(Semaphore::new(0));
    let permits = Arc::clone(&release);
    let indexer = Coordinator::builder()
        .sink(sink.clone())
        .name("indexer")
        .concurrency(1)
        .capacity(10)
        .no_defer()
        .policy(
            Watermark::new("backpressure.indexer.backlog")
                .high(0.8)
                .low(0.5)
                .hold_for(Duration::from_secs(5)),
        )
        .build(move |_: u32, _: WorkContext| {
            let permits = Arc::clone(&permits);
            async move { permits.acquire().await.unwrap().forget() }
        })
        .unwrap();
    // One running, nine queued: at least 8 (80 % of 10).
    indexer.enqueue_many(0..10).await.unwrap();
    settle().await;
    assert_eq!(indexer.stats().queued, 9);
    tokio::time::advance(Duration::from_millis(4_999)).await;
    settle().await;
    assert!(!sink.is_raised("backpressure.indexer.backlog"));
    tokio::time::advance(Duration::from_millis(1)).await;
    settle().await;
    assert!(sink.is_raised("backpressure.indexer.backlog"));

    // Down to 6 queued: between low and high, still raised; 5 queued: at low, retracted.
    release.add_permits(3);
    settle().await;
    assert_eq!(indexer.stats().queued, 6);
    assert!(sink.is_raised("backpressure.indexer.backlog"));
    release.add_permits(1);
    settle().await;
    assert_eq!(indexer.stats().queued, 5);
    assert!(!sink.is_raised("backpressure.indexer.backlog"));
    release.add_permits(100);
}

/// A worker whose calls take 100 ms each and fail while `failing` is set.
fn slow_worker(
    sink: &Sink,
    concurrency: usize,
    defer_on: &str,
    policies: Vec<backpressure::policy::Policy>,
) -> (Coordinator<bool>, Arc<std::sync::atomic::AtomicUsize>) {
    let started = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = Arc::clone(&started);
    let mut builder = Coordinator::builder()
        .sink(sink.clone())
        .name("mailer")
        .concurrency(concurrency)
        .capacity(10_000)
        .defer_on(defer_on)
        .max_defer(MaxDefer::Never);
    for policy in policies {
        builder = builder.policy(policy);
    }
    let coordinator = builder
        .build(move |fail: bool, _: WorkContext| {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if fail {
                    Err("refused")
                } else {
                    Ok(())
                }
            }
        })
        .unwrap();
    (coordinator, started)
}

#[tokio::test(start_paused = true)]
async fn an_adaptive_limit_grows_back_under_a_steady_backlog() {
    let sink = Sink::new();
    let adaptive = Adaptive::new("bulk.level", 2).window(Duration::from_secs(1));
    let (worker, _) = slow_worker(&sink, 2, "bulk.*", vec![adaptive.into()]);
    worker.enqueue(true).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(worker.policies()[0].state, PolicyState::Limit(1));
    // One more failure keeps the limit at 1 through the next window (no signal changes, so
    // the held slot is not woken), then a steady backlog of healthy work: the limit must
    // climb back at the first healthy window, although the running slot never sleeps (it
    // takes the next item as it finishes).
    worker.enqueue(true).await.unwrap();
    worker.enqueue_many(vec![false; 1_000]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    assert_eq!(worker.policies()[0].state, PolicyState::Limit(2));
    assert_eq!(worker.stats().limit, 2);
}

#[tokio::test(start_paused = true)]
async fn a_breaker_probes_even_while_its_owners_other_policy_signal_is_raised() {
    let sink = Sink::new();
    let policies = vec![
        breaker().into(),
        Adaptive::new("backpressure.smtp.level", 4)
            .window(Duration::from_secs(1))
            .into(),
    ];
    let (mailer, _) = slow_worker(&sink, 4, "backpressure.*", policies);
    mailer.enqueue_many(vec![true; 20]).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        mailer.policies()[0].state,
        PolicyState::Breaker(BreakerState::Open)
    );
    mailer.enqueue_many(vec![false; 10]).await.unwrap();
    // open_for (30 s) later the owner probes past both its own signals and the breaker closes.
    tokio::time::sleep(Duration::from_secs(31)).await;
    assert_eq!(
        mailer.policies()[0].state,
        PolicyState::Breaker(BreakerState::Closed)
    );
    assert!(!sink.is_raised("backpressure.smtp"));
}

#[tokio::test]
async fn a_breaker_whose_owner_does_not_defer_on_its_signal_is_refused_at_build() {
    // The owner would keep sending into the downstream its breaker found failing.
    let sink = Sink::new();
    let build = |builder: backpressure::CoordinatorBuilder<u32>, policy: Breaker| {
        builder
            .sink(sink.clone())
            .policy(policy)
            .build(|_: u32, _: WorkContext| async {})
    };
    let slow = Breaker::slow_call("backpressure.smtp", Duration::from_secs(1));
    for policy in [breaker(), slow] {
        let narrow = build(Coordinator::builder().defer_on("other.*"), policy.clone());
        let err = narrow.expect_err("refused");
        assert!(
            matches!(err, BuildError::Policy(_)),
            "a policy error: {err:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains("`backpressure.smtp` is not matched"),
            "{text}"
        );
        assert!(text.contains("`defer_on` (`other.*`)"), "{text}");
        let none = build(Coordinator::builder().no_defer(), policy.clone());
        let text = none.expect_err("refused").to_string();
        assert!(text.contains("this worker has no `defer_on`"), "{text}");
        let own = build(Coordinator::builder().defer_on("backpressure.smtp"), policy);
        assert!(own.is_ok());
    }
    // A watermark's signal is meant for its peers: allowed.
    let watermark = Watermark::new("backpressure.indexer.backlog");
    let built = Coordinator::builder()
        .sink(sink.clone())
        .no_defer()
        .policy(watermark)
        .build(|_: u32, _: WorkContext| async {});
    assert!(built.is_ok());
}

#[tokio::test(start_paused = true)]
async fn policy_infos_say_what_their_state_is_measured_against() {
    use backpressure::policy::{Adaptive, PolicyDetail, Watermark};
    let coordinator = Coordinator::builder()
        .sink(Sink::new())
        .capacity(10)
        .defer_on("backpressure.*")
        .policy(Breaker::error_rate("backpressure.smtp").probes(3))
        .policy(Adaptive::new("backpressure.smtp.limit", 8))
        .policy(Watermark::new("queue.mailer").high(0.85).low(0.5))
        .build(|_: u32, _: WorkContext| async {})
        .unwrap();
    let details: Vec<PolicyDetail> = coordinator.policies().iter().map(|p| p.detail).collect();
    assert_eq!(
        details,
        [
            PolicyDetail::Breaker {
                probes: 3,
                probes_started: 0
            },
            PolicyDetail::Adaptive { max: 8 },
            PolicyDetail::Watermark {
                raise_at: 9,
                retract_at: 5
            },
        ]
    );
}
