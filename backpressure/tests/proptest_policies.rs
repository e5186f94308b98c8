//! Property test: health policies driven by a random script of handler outcomes (ok, error,
//! panic, slow, hanging), enqueues and clock steps, under tokio's paused clock.
//!
//! Whatever the script, nothing panics (other than the scripted handlers, which the
//! coordinator catches), both coordinators' counters stay consistent, every signal a policy
//! raises carries a TTL no further away than that TTL, and once the owner's `shutdown()`
//! returns none of its signals is left (its handle still alive), nor raised again later —
//! after which the peer that deferred on them drains. Deterministic: a fixed seed, jitter
//! off, one thread.
//!
//! The owner defers either on every policy signal (`backpressure.*`, where its own raised
//! signals hold each other: a half-open breaker does not probe while another of its signals
//! is up) or on its error breaker's signal alone (so probes run and the breaker cycles
//! through half-open); the peer always defers on `backpressure.*`.

use std::panic;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use backpressure::{
    policy::{Adaptive, Breaker, Watermark},
    Coordinator, MaxDefer, Sink, Stats, WorkContext,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use tokio::time::Instant;

const CASES: u32 = 48;
const MAX_OPS: usize = 80;
const OWNER: &str = "owner";
/// Every policy's TTL: the longest any of its signals may outlive the owner.
const TTL: Duration = Duration::from_secs(3);
const SCRIPTED_PANIC: &str = "scripted panic";

/// What one of the owner's items does.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    Ok,
    Error,
    Panic,
    /// Succeeds after 1.5 s: slower than the slow-call breaker's and the adaptive policy's
    /// `slow_after` (1 s).
    Slow,
    /// Never returns until shutdown cancels it (a probe that hangs).
    Hang,
}

#[derive(Debug, Clone)]
enum Op {
    /// Enqueue an item with this outcome to the owner (dropped if its queue is full).
    Owner(Outcome),
    /// Enqueue an item to the peer.
    Peer,
    /// Let the clock run for `100 ms × n`.
    Advance(u64),
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        4 => Just(Outcome::Ok),
        4 => Just(Outcome::Error),
        1 => Just(Outcome::Panic),
        2 => Just(Outcome::Slow),
        1 => Just(Outcome::Hang),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => outcome().prop_map(Op::Owner),
        1 => Just(Op::Peer),
        3 => (1..=50u64).prop_map(Op::Advance),
    ]
}

/// Panics other than the scripted ones (a library task, a failed assertion in a task).
static UNEXPECTED_PANICS: AtomicUsize = AtomicUsize::new(0);

fn quiet_scripted_panics() {
    let default = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str));
        if message == Some(SCRIPTED_PANIC) {
            return;
        }
        UNEXPECTED_PANICS.fetch_add(1, Ordering::SeqCst);
        default(info);
    }));
}

/// Lets every task that can run do so, without moving the clock.
async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

/// The owner: every kind of policy, small numbers so that a short script reaches every state.
fn owner(sink: &Sink, defer_on: &str) -> Coordinator<Outcome> {
    let seconds = Duration::from_secs;
    Coordinator::builder()
        .sink(sink.clone())
        .name(OWNER)
        .concurrency(3)
        .capacity(8)
        .defer_on(defer_on)
        .max_defer(MaxDefer::Never)
        .policy(
            Breaker::error_rate("backpressure.errors")
                .window(seconds(10))
                .min_calls(4)
                .consecutive_failures(3)
                .open_for(seconds(2))
                .max_open_for(seconds(8))
                .probes(2)
                .probe_timeout(seconds(3))
                .jitter(0.0)
                .ttl(TTL),
        )
        .policy(
            Breaker::slow_call("backpressure.slow", seconds(1))
                .min_calls(3)
                .open_for(seconds(3))
                .jitter(0.0)
                .ttl(TTL),
        )
        .policy(
            Adaptive::new("backpressure.level", 3)
                .window(seconds(1))
                .slow_after(seconds(1))
                .ttl(TTL),
        )
        .policy(
            Watermark::new("backpressure.backlog")
                .hold_for(seconds(1))
                .max_age(seconds(4))
                .ttl(TTL),
        )
        .build(|outcome: Outcome, ctx: WorkContext| async move {
            match outcome {
                Outcome::Ok => Ok(()),
                Outcome::Error => Err("scripted error"),
                Outcome::Panic => panic!("{}", SCRIPTED_PANIC),
                Outcome::Slow => {
                    tokio::time::sleep(Duration::from_millis(1_500)).await;
                    Ok(())
                }
                Outcome::Hang => {
                    ctx.cancelled().await;
                    Ok(())
                }
            }
        })
        .expect("valid owner")
}

fn consistent(who: &str, stats: Stats) -> Result<(), TestCaseError> {
    prop_assert!(stats.is_consistent(), "{who}: {stats:?}");
    Ok(())
}

/// Every entry the owner's policies raised is TTL'd, at most one TTL ahead.
fn owner_entries_bounded(sink: &Sink) -> Result<usize, TestCaseError> {
    let now = Instant::now();
    let mine: Vec<_> = sink
        .snapshot()
        .into_iter()
        .filter(|entry| entry.key.as_deref() == Some(OWNER))
        .collect();
    for entry in &mine {
        let expires_at = entry.expires_at;
        prop_assert!(
            expires_at.is_some_and(|at| at <= now + TTL),
            "{entry:?} outlives one TTL from now"
        );
    }
    Ok(mine.len())
}

async fn run(defer_on: &str, script: Vec<Op>) -> Result<(), TestCaseError> {
    let sink = Sink::new();
    let owner = owner(&sink, defer_on);
    let peer = Coordinator::builder()
        .sink(sink.clone())
        .name("peer")
        .concurrency(2)
        .capacity(1_000)
        .defer_on("backpressure.*")
        .max_defer(MaxDefer::Never)
        .build(|(): (), _: WorkContext| async {})
        .expect("valid peer");

    for op in script {
        match op {
            Op::Owner(outcome) => {
                let _ = owner.try_enqueue(outcome);
            }
            Op::Peer => drop(peer.try_enqueue(()).expect("the peer's queue has room")),
            Op::Advance(steps) => tokio::time::sleep(Duration::from_millis(100 * steps)).await,
        }
        settle().await;
        consistent("owner", owner.stats())?;
        consistent("peer", peer.stats())?;
        owner_entries_bounded(&sink)?;
    }

    // The owner shuts down (hanging handlers are cancelled, slow ones finish): its verdicts
    // end with it, though its handle lives on.
    owner.shutdown().await;
    consistent("owner after shutdown", owner.stats())?;
    let left = owner_entries_bounded(&sink)?;
    prop_assert_eq!(
        left,
        0,
        "still raised when shutdown returned: {:?}",
        sink.snapshot()
    );

    // Nothing raises them again (refreshes, half-open turns, probe timeouts), and the peer
    // is free to drain.
    tokio::time::sleep(TTL).await;
    settle().await;
    let left = owner_entries_bounded(&sink)?;
    prop_assert_eq!(
        left,
        0,
        "raised again after shutdown: {:?}",
        sink.snapshot()
    );
    drop(owner);
    let drained = tokio::time::timeout(Duration::from_secs(60), peer.drain()).await;
    prop_assert!(
        drained.is_ok(),
        "the peer is still held: {:?}",
        sink.snapshot()
    );
    let stats = peer.stats();
    consistent("peer after drain", stats)?;
    prop_assert_eq!(stats.queued + stats.active, 0);
    prop_assert_eq!(UNEXPECTED_PANICS.load(Ordering::SeqCst), 0);
    Ok(())
}

proptest! {
    #![proptest_config(Config {
        cases: CASES,
        rng_seed: RngSeed::Fixed(0x706f_6c69_6369_6573),
        failure_persistence: None,
        ..Config::default()
    })]

    #[test]
    fn policy_signals_never_outlive_their_owner_s_shutdown(
        defer_on in prop_oneof![
            Just("backpressure.*"),
            // Narrow: the owner holds on its breakers and its adaptive level only (their
            // signals outside `defer_on` are refused), so its watermark holds nobody here and
            // must still lapse.
            Just("backpressure.errors, backpressure.slow, backpressure.level"),
        ],
        script in proptest::collection::vec(op(), 1..MAX_OPS),
    ) {
        static HOOK: std::sync::Once = std::sync::Once::new();
        HOOK.call_once(quiet_scripted_panics);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("a runtime");
        runtime.block_on(run(defer_on, script))?;
    }
}
