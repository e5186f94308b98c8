//! Property test of retries over random schedules, under paused time: one worker with
//! `retry(...)` (attempts 1..=4, concurrency 1..=8, capacity 1..=16, with or without a
//! `timeout`, a breaker on its own signal, a dead-letter callback or the buffer), items with
//! random per-attempt plans (succeed, fail, fail permanently, panic, run past the timeout
//! ignoring the token, wait for cancellation), random pauses, a plain signal and a
//! `cancel_on` signal raised and retracted, requeues, a drain spawned mid-schedule, and an
//! end at a random instant: drain, shutdown or `shutdown_after`.
//!
//! Checked: every stats snapshot is consistent; the end never hangs (a paused-time bound
//! that fails loudly); every accepted id ends exactly once in completed, dead-lettered
//! (callback or buffer), skipped or handed back by shutdown, never twice, never lost.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use backpressure::policy::Breaker;
use backpressure::retry::{DeadLetter, Failure, Retry};
use backpressure::{Coordinator, Sink, WorkContext};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use tokio::time::sleep;

const TIMEOUT: Duration = Duration::from_millis(50);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Act {
    Ok,
    Fail,
    Permanent,
    Panic,
    /// Runs past the timeout (or 100 ms without one), ignoring its token.
    Slow,
    /// Waits for its token (shutdown, or the timeout; at most 300 ms), then fails.
    Hang,
}

type Item = (u64, Arc<[Act]>);

#[derive(Debug, Clone)]
struct Spec {
    attempts: u32,
    concurrency: usize,
    capacity: usize,
    timeout: bool,
    breaker: bool,
    callback: bool,
    jitter_seed: Option<u64>,
}

#[derive(Debug, Clone)]
enum Op {
    Enqueue(Vec<Act>),
    Wait(u64),
    Pause(bool),
    Plain(bool),
    Cancel(bool),
    Requeue,
    SpawnDrain,
}

#[derive(Debug, Clone, Copy)]
enum End {
    Drain,
    Shutdown,
    ShutdownAfter(u64),
}

#[derive(Default)]
struct Seen {
    completed: Vec<u64>,
    dead: Vec<u64>,
    skipped: Vec<u64>,
}

fn build(spec: &Spec, sink: &Sink, seen: &Arc<Mutex<Seen>>) -> Coordinator<Item> {
    let mut retry = Retry::new(spec.attempts)
        .backoff(Duration::from_millis(20))
        .max_backoff(Duration::from_millis(200))
        .jitter(if spec.jitter_seed.is_some() { 0.5 } else { 0.0 });
    if let Some(seed) = spec.jitter_seed {
        retry = retry.jitter_seed(seed);
    }
    let mut builder = Coordinator::builder()
        .sink(sink.clone())
        .name("w")
        .concurrency(spec.concurrency)
        .capacity(spec.capacity)
        .cancel_on("cancel.w")
        .retry(retry);
    if spec.timeout {
        builder = builder.timeout(TIMEOUT);
    }
    if spec.breaker {
        builder = builder.policy(
            Breaker::error_rate("backpressure.own")
                .consecutive_failures(2)
                .open_for(Duration::from_millis(100))
                .max_open_for(Duration::from_millis(800))
                .jitter(0.0),
        );
    }
    if spec.callback {
        let s = Arc::clone(seen);
        builder = builder.on_dead_letter(move |d: DeadLetter<Item>| {
            s.lock().unwrap().dead.push(d.item.0);
        });
    }
    let (skips, done) = (Arc::clone(seen), Arc::clone(seen));
    builder
        .on_skip(move |(id, _): Item| skips.lock().unwrap().skipped.push(id))
        .build(move |(id, plan): Item, ctx: WorkContext| {
            let act = plan[(ctx.attempt() as usize - 1).min(plan.len() - 1)];
            let done = Arc::clone(&done);
            async move {
                match act {
                    Act::Ok => {
                        sleep(Duration::from_millis(5)).await;
                        done.lock().unwrap().completed.push(id);
                        Ok(())
                    }
                    Act::Fail => Err(Failure::from("fail")),
                    Act::Permanent => Err(Failure::permanent("permanent")),
                    Act::Panic => panic!("injected: plan says panic"),
                    Act::Slow => {
                        sleep(2 * TIMEOUT).await;
                        Err(Failure::from("slow"))
                    }
                    Act::Hang => {
                        // Bounded, so that a drain without a timeout ends.
                        tokio::select! {
                            () = ctx.cancelled() => {}
                            () = sleep(Duration::from_millis(300)) => {}
                        }
                        Err(Failure::from("cancelled"))
                    }
                }
            }
        })
        .unwrap()
}

fn check(coordinator: &Coordinator<Item>, after: &str) -> Result<(), TestCaseError> {
    let stats = coordinator.stats();
    prop_assert!(stats.is_consistent(), "after {}: {:?}", after, stats);
    Ok(())
}

async fn run(spec: Spec, ops: Vec<Op>, end: End) -> Result<(), TestCaseError> {
    let sink = Sink::new();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let coordinator = build(&spec, &sink, &seen);
    let (mut accepted, mut next) = (Vec::new(), 0u64);
    for op in &ops {
        match op {
            Op::Enqueue(plan) => {
                let plan: Arc<[Act]> = plan.clone().into();
                if coordinator.try_enqueue((next, plan)).is_ok() {
                    accepted.push(next);
                }
                next += 1;
            }
            Op::Wait(ms) => sleep(Duration::from_millis(*ms)).await,
            Op::Pause(true) => coordinator.pause(),
            Op::Pause(false) => coordinator.resume(),
            Op::Plain(true) => sink.raise("backpressure.plain").unwrap(),
            Op::Plain(false) => drop(sink.retract("backpressure.plain")),
            Op::Cancel(true) => sink.raise("cancel.w").unwrap(),
            Op::Cancel(false) => drop(sink.retract("cancel.w")),
            Op::Requeue => drop(coordinator.requeue_dead_letters()),
            Op::SpawnDrain => {
                let c = coordinator.clone();
                tokio::spawn(async move { c.drain().await });
            }
        }
        check(&coordinator, &format!("{op:?}"))?;
    }
    // Nothing may hold the end forever: a pause or a plain signal would (by design).
    coordinator.resume();
    drop(sink.retract("backpressure.plain"));
    let limit = Duration::from_secs(600);
    let returned = match end {
        End::Drain => {
            common::within(limit, "the final drain", coordinator.drain()).await;
            Vec::new()
        }
        End::Shutdown => common::within(limit, "shutdown", coordinator.shutdown()).await,
        End::ShutdownAfter(ms) => {
            let grace = Duration::from_millis(ms);
            common::within(limit, "shutdown_after", coordinator.shutdown_after(grace)).await
        }
    };
    check(&coordinator, "the end")?;
    let seen = seen.lock().unwrap();
    let mut ended: Vec<u64> = (seen.completed.iter().chain(&seen.dead).chain(&seen.skipped))
        .copied()
        .collect();
    ended.extend(returned.iter().map(|(id, _)| *id));
    ended.extend(coordinator.take_dead_letters().iter().map(|d| d.item.0));
    ended.sort_unstable();
    accepted.sort_unstable();
    prop_assert_eq!(ended, accepted, "ids ended (sorted) vs accepted");
    let stats = coordinator.stats();
    prop_assert_eq!(stats.completed, seen.completed.len() as u64);
    prop_assert_eq!((stats.queued, stats.active, stats.retry_waiting), (0, 0, 0));
    Ok(())
}

fn act() -> impl Strategy<Value = Act> {
    prop_oneof![
        4 => Just(Act::Ok),
        4 => Just(Act::Fail),
        1 => Just(Act::Permanent),
        1 => Just(Act::Panic),
        1 => Just(Act::Slow),
        1 => Just(Act::Hang),
    ]
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        (1u32..=4, 1usize..=8, 1usize..=16),
        (any::<bool>(), any::<bool>(), any::<bool>()),
        prop::option::of(any::<u64>()),
    )
        .prop_map(
            |((attempts, concurrency, capacity), (timeout, breaker, callback), jitter_seed)| Spec {
                attempts,
                concurrency,
                capacity,
                timeout,
                breaker,
                callback,
                jitter_seed,
            },
        )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => prop::collection::vec(act(), 1..=4).prop_map(Op::Enqueue),
        6 => (0u64..150).prop_map(Op::Wait),
        1 => any::<bool>().prop_map(Op::Pause),
        1 => any::<bool>().prop_map(Op::Plain),
        1 => any::<bool>().prop_map(Op::Cancel),
        1 => Just(Op::Requeue),
        1 => Just(Op::SpawnDrain),
    ]
}

fn end() -> impl Strategy<Value = End> {
    prop_oneof![
        Just(End::Drain),
        Just(End::Shutdown),
        (0u64..300).prop_map(End::ShutdownAfter),
    ]
}

/// Cases; `BACKPRESSURE_PROPTEST_CASES` runs more.
fn cases() -> u32 {
    std::env::var("BACKPRESSURE_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512)
}

proptest! {
    #![proptest_config(Config {
        cases: cases(),
        rng_seed: RngSeed::Fixed(0x7265_7472_7921),
        failure_persistence: None,
        ..Config::default()
    })]

    #[test]
    fn every_id_ends_exactly_once_over_random_retry_schedules(
        spec in spec(),
        ops in prop::collection::vec(op(), 5..50),
        end in end(),
    ) {
        common::verdicts::quiet_panics();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("a runtime");
        runtime.block_on(run(spec, ops, end))?;
    }
}
