//! `rate(..., shared = true)` through a real redis-server: the fleet's starts (three bridged
//! sinks in one process, three OS processes) stay within the one GCRA's bound and are not
//! starved, and a worker whose starts wait for nothing makes no call.

mod common;
mod rates_kit;

use std::sync::atomic::Ordering;
use std::time::Duration;

use backpressure_redis::LimitsOnDisconnect;
use common::{redis, until};
use rates_kit::{bound, bridged, fleet_rate, over, read, worker, Child, Counter};

const WAIT: Duration = Duration::from_secs(30);
const WINDOW: Duration = Duration::from_millis(2_500);

/// The body of the children (does nothing unless spawned by a test below).
#[tokio::test]
async fn rate_child_entry() {
    rates_kit::child_main().await;
}

/// Asserts that `starts` over `elapsed` kept `fleet_rate(limit)` for `procs` processes and
/// reached at least 80 % of it.
fn assert_fleet_rate(starts: u64, elapsed: Duration, limit: u32, procs: usize) {
    let rate = fleet_rate(limit);
    let most = bound(&rate, elapsed, procs);
    let expected = f64::from(limit) * elapsed.as_secs_f64();
    let starts = starts as f64;
    eprintln!("{starts} starts in {elapsed:?}: bound {most:.1}, expected {expected:.0}");
    assert!(
        starts <= most,
        "{starts} starts in {elapsed:?}, above the GCRA's bound {most:.1} (limit {limit}/s)"
    );
    assert!(
        starts >= 0.8 * expected,
        "{starts} starts in {elapsed:?}: the fleet was starved (expected about {expected:.0})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_bridged_sinks_share_one_rate() {
    let Some(server) = redis("three_sinks") else {
        return;
    };
    let url = server.url();
    let (counter, total) = Counter::local();
    let mut fleet = Vec::new();
    for _ in 0..3 {
        let (sink, bridge) = bridged(&url, LimitsOnDisconnect::LocalShare).await;
        let coordinator = worker(&sink, fleet_rate(200), counter.clone());
        coordinator.enqueue_many(0..5_000).await.unwrap();
        fleet.push((coordinator, bridge));
    }
    let count = || total.load(Ordering::SeqCst);
    assert!(
        until(WAIT, count, |n| *n >= 50).await >= 50,
        "the fleet runs"
    );
    let (starts, elapsed) = over(WINDOW, count).await;
    assert_fleet_rate(starts, elapsed, 200, 3);
    for (_, bridge) in &fleet {
        let stats = bridge.rate_stats();
        assert!(stats.calls > 0 && stats.granted > 0, "{stats:?}");
        assert_eq!((stats.redis_errors, stats.disconnects), (0, 0), "{stats:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_share_one_rate() {
    let test = "rate_procs";
    let Some(server) = redis(test) else { return };
    let url = server.url();
    let key = format!("test:{test}:started");
    let mut children = Vec::new();
    for _ in 0..3 {
        children.push(Child::spawn(&url, &key, 200, 100_000).await);
    }
    let count = || read(&url, &key);
    assert!(
        until(WAIT, count, |n| *n >= 50).await >= 50,
        "the fleet runs"
    );
    let (starts, elapsed) = over(WINDOW, count).await;
    assert_fleet_rate(starts, elapsed, 200, 3);
    let mut conn = server.raw();
    let live: usize = redis::cmd("ZCARD")
        .arg("bp:{ns}:rate:relay:procs")
        .query(&mut conn)
        .unwrap();
    assert_eq!(live, 3, "each process draws from the rate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_starts_wait_for_nothing_makes_no_call() {
    let Some(server) = redis("no_call") else {
        return;
    };
    let url = server.url();
    let (sink, bridge) = bridged(&url, LimitsOnDisconnect::LocalShare).await;
    let (counter, total) = Counter::local();
    let coordinator = worker(&sink, fleet_rate(200), counter);
    let calls = || bridge.rate_stats().calls;
    // Nothing enqueued: nothing is asked, however long one looks.
    assert_eq!(
        until(Duration::from_millis(500), calls, |n| *n > 0).await,
        0
    );
    coordinator.enqueue_many(0..5).await.unwrap();
    let count = || total.load(Ordering::SeqCst);
    assert_eq!(until(WAIT, count, |n| *n == 5).await, 5);
    let after = calls();
    assert!(after >= 5, "burst 1, batch 1: a call per start ({after})");
    // Done: no more calls.
    let later = until(Duration::from_millis(500), calls, |n| *n > after).await;
    assert_eq!(later, after, "an idle worker keeps asking");
    let mut conn = server.raw();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("bp:{ns}:rate:*")
        .query(&mut conn)
        .unwrap();
    assert_eq!(
        keys,
        vec!["bp:{ns}:rate:relay:procs".to_owned()],
        "the TAT lapsed at rest"
    );
}
