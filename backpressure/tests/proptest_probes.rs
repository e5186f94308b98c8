//! Property test of who probes (DESIGN §6, "Probes and other verdicts"): 2–4 coordinators, some
//! owning a breaker on one of two shared signal names (so breakers share or cross signals),
//! all deferring on `backpressure.*`, under paused time. Every owner fails once at the start;
//! the breakers open for random periods; then each coordinator holds a random number of items
//! (idle owners hold none) and the downstream is healthy. No schedule leaves them all
//! half-open with nobody probing: every held item completes within the last half-open time
//! plus a bound of probe durations. (A breaker may stay half-open when fewer items than its
//! `probes` came along: nobody is held by it then.)

use std::time::Duration;

use backpressure::{policy::Breaker, Coordinator, MaxDefer, Sink, WorkContext};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

const CALL: Duration = Duration::from_millis(10);

#[derive(Debug, Clone)]
struct Spec {
    /// The breaker's signal (0 or 1), `open_for` in ms and probes; `None` for a peer.
    breaker: Option<(u8, u64, u32)>,
    concurrency: usize,
    /// Items enqueued once the breakers are open.
    held: usize,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        prop::option::weighted(0.7, (0u8..2, 100u64..400, 1u32..=3)),
        1usize..=3,
        0usize..=4,
    )
        .prop_map(|(breaker, concurrency, held)| Spec {
            breaker,
            concurrency,
            held,
        })
}

async fn settle() {
    for _ in 0..64 {
        tokio::task::yield_now().await;
    }
}

async fn run(specs: Vec<Spec>) -> Result<(), TestCaseError> {
    let sink = Sink::new();
    let workers: Vec<Coordinator<bool>> = specs
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let mut builder = Coordinator::builder()
                .sink(sink.clone())
                .name(format!("w{i}"))
                .concurrency(spec.concurrency)
                .defer_on("backpressure.*")
                .max_defer(MaxDefer::Never);
            if let Some((signal, open_for, probes)) = spec.breaker {
                builder = builder.policy(
                    Breaker::error_rate(format!("backpressure.s{signal}"))
                        .consecutive_failures(1)
                        .open_for(Duration::from_millis(open_for))
                        .jitter(0.0)
                        .probes(probes)
                        .ttl(Duration::from_secs(3)),
                );
            }
            builder
                .build(|fail: bool, _: WorkContext| async move {
                    tokio::time::sleep(CALL).await;
                    if fail {
                        Err("refused")
                    } else {
                        Ok(())
                    }
                })
                .unwrap()
        })
        .collect();
    // Every owner fails once, in the same tick: all breakers open together.
    for (worker, spec) in workers.iter().zip(&specs) {
        if spec.breaker.is_some() {
            worker.enqueue(true).await.unwrap();
        }
    }
    tokio::time::sleep(CALL).await;
    settle().await;
    for (worker, spec) in workers.iter().zip(&specs) {
        worker.enqueue_many(vec![false; spec.held]).await.unwrap();
    }
    let last_half_open = specs
        .iter()
        .filter_map(|s| s.breaker.map(|(_, open_for, _)| open_for))
        .max()
        .unwrap_or(0);
    let probes: u32 = specs
        .iter()
        .filter_map(|s| s.breaker.map(|(_, _, probes)| probes))
        .sum();
    let bound = Duration::from_millis(last_half_open) + CALL * (probes + 2);
    let held: usize = specs.iter().map(|s| s.held).sum();
    let slack = CALL * u32::try_from(held).unwrap();
    tokio::time::sleep(bound + slack).await;
    settle().await;
    for (i, (worker, spec)) in workers.iter().zip(&specs).enumerate() {
        let stats = worker.stats();
        prop_assert!(stats.is_consistent(), "{stats:?}");
        prop_assert_eq!(
            stats.completed as usize,
            spec.held,
            "worker {} of {:?}: {:?}; signals {:?}",
            i,
            specs,
            stats,
            sink.snapshot()
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(Config {
        cases: 64,
        rng_seed: RngSeed::Fixed(0x7072_6f62_6573),
        failure_persistence: None,
        ..Config::default()
    })]

    #[test]
    fn with_a_healthy_downstream_every_holder_resumes_within_a_bound(
        specs in prop::collection::vec(spec(), 2..=4)
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("a runtime");
        runtime.block_on(run(specs))?;
    }
}
