//! `global_concurrency` while Redis cannot be reached (a black hole through the fault proxy
//! of `common/proxy.rs`): each `limits_on_disconnect` policy allows what its docs say, and
//! the permits come back to the fleet's record when the link does.

mod common;
mod permits_kit;

use std::sync::Arc;
use std::time::Duration;

use backpressure_redis::{connect, Config, LimitsOnDisconnect, Status};
use common::proxy::Proxy;
use common::{redis, until};
use permits_kit::{bridged, counter_keys, read, worker, Hold};
use tokio::sync::Semaphore;

const LEASE: Duration = Duration::from_millis(800);
const WAIT: Duration = Duration::from_secs(30);

/// Process A (through the proxy, under `policy`) and process B (direct) serve a worker of
/// limit 4; A is cut off, then gets 8 items: returns how many run at once in A, after a
/// window in which more could have started.
async fn cut_off_runs(test: &str, policy: LimitsOnDisconnect) -> Option<u64> {
    let server = redis(test)?;
    let url = server.url();
    let proxy = Proxy::start(server.port).await;
    let live = || {
        let mut conn = server.raw();
        let n: usize = redis::cmd("ZCARD")
            .arg("bp:{ns}:permits:mailer:procs")
            .query(&mut conn)
            .unwrap();
        n
    };
    let (b, _bridge_b) = bridged(&url, "ns", LEASE).await;
    let _b_worker = worker(&b, &url, test, 4, Hold::For(Duration::ZERO)).await;
    assert_eq!(
        until(WAIT, live, |n| *n == 1).await,
        1,
        "B serves the worker"
    );
    let a = backpressure::Sink::new();
    let config = Config::new(proxy.url())
        .namespace("ns")
        .lease(LEASE)
        .limits_on_disconnect(policy)
        .reconnect_max_delay(Duration::from_millis(100));
    let bridge_a = connect(a.clone(), config).await.expect("connect");
    let gate = Arc::new(Semaphore::new(0));
    let a_worker = worker(&a, &url, test, 4, Hold::Until(Arc::clone(&gate))).await;
    // A's first call registered it beside B, and answered that two serve the worker.
    assert_eq!(until(WAIT, live, |n| *n == 2).await, 2);

    proxy.black_hole();
    let mut status = bridge_a.permit_status();
    let down = tokio::time::timeout(
        WAIT,
        status.wait_for(|s| matches!(s, Status::Disconnected { .. })),
    )
    .await
    .is_ok();
    assert!(down, "A's permits notice the black hole within 30 s");
    a_worker.enqueue_many(0..8).await.unwrap();
    let [running, _, _] = counter_keys(test);
    // Positive or negative: whatever the policy allows has started within a lease.
    let ran = until(LEASE, || read(&url, &running), |n| *n > 4).await;
    gate.add_permits(100);
    proxy.forward();
    Some(ran)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_share_runs_the_limit_divided_by_the_live_processes() {
    let Some(ran) = cut_off_runs("local_share", LimitsOnDisconnect::LocalShare).await else {
        return;
    };
    assert_eq!(ran, 2, "4 / 2 live processes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_starts_nothing_while_cut_off() {
    let Some(ran) = cut_off_runs("hold", LimitsOnDisconnect::Hold).await else {
        return;
    };
    assert_eq!(ran, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignore_runs_the_whole_limit_while_cut_off() {
    let Some(ran) = cut_off_runs("ignore", LimitsOnDisconnect::Ignore).await else {
        return;
    };
    assert_eq!(ran, 4, "the whole limit, in this process alone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_outage_the_running_items_are_recorded_and_the_limit_holds() {
    let test = "after_outage";
    let Some(server) = redis(test) else { return };
    let url = server.url();
    let proxy = Proxy::start(server.port).await;
    let a = backpressure::Sink::new();
    let config = Config::new(proxy.url())
        .namespace("ns")
        .lease(LEASE)
        .limits_on_disconnect(LimitsOnDisconnect::Ignore)
        .reconnect_max_delay(Duration::from_millis(100));
    let bridge_a = connect(a.clone(), config).await.expect("connect");
    let gate = Arc::new(Semaphore::new(0));
    let a_worker = worker(&a, &url, test, 4, Hold::Until(Arc::clone(&gate))).await;
    proxy.black_hole();
    let mut status = bridge_a.permit_status();
    let down = status.wait_for(|s| matches!(s, Status::Disconnected { .. }));
    assert!(tokio::time::timeout(WAIT, down).await.is_ok());
    a_worker.enqueue_many(0..8).await.unwrap();
    let [running, peak, _] = counter_keys(test);
    assert_eq!(until(WAIT, || read(&url, &running), |n| *n == 4).await, 4);
    proxy.forward();
    let up = status.wait_for(|s| *s == Status::Synced);
    assert!(tokio::time::timeout(WAIT, up).await.is_ok(), "A reconnects");
    // A new process arrives: A's 4 running items are in the record, so it gets none.
    let (b, _bridge_b) = bridged(&url, "ns", LEASE).await;
    let b_worker = worker(&b, &url, test, 4, Hold::For(Duration::ZERO)).await;
    b_worker.enqueue_many(0..4).await.unwrap();
    let above = until(LEASE * 2, || read(&url, &peak), |n| *n > 4).await;
    assert_eq!(above, 4, "after the outage the fleet ran {above} at once");
    gate.add_permits(100);
    tokio::time::timeout(WAIT, b_worker.drain())
        .await
        .expect("B's items ran once A's ended");
    assert!(read(&url, &peak) <= 4);
}

/// A process whose permits never reached Redis has no basis for a `local_share`: before
/// the fix it took the whole limit for itself (`live` defaulted to 1), so several processes
/// starting during an outage could each run the fleet's limit. Now it grants none until its
/// first answer, then runs under permits acquired in Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_that_never_reached_redis_takes_no_local_share() {
    never_reached("never_reached", false).await;
}

/// The same, and then the path heals: the permits are acquired in Redis and the items run
/// (the window in real life: an outage between the bridge's own connect and the permit
/// task's first connection).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permits_that_never_reached_redis_recover_when_the_path_heals() {
    never_reached("never_reached_heals", true).await;
}

async fn never_reached(test: &str, heal: bool) {
    let Some(server) = redis(test) else {
        return;
    };
    let url = server.url();
    let proxy = Proxy::start(server.port).await;
    let a = backpressure::Sink::new();
    let config = Config::new(proxy.url())
        .namespace("ns")
        .lease(LEASE)
        .limits_on_disconnect(LimitsOnDisconnect::LocalShare)
        .reconnect_max_delay(Duration::from_millis(100));
    let bridge = connect(a.clone(), config).await.expect("connect");
    // Cut off before the worker (and so its permits' own connection) exists.
    proxy.black_hole();
    let a_worker = worker(&a, &url, test, 4, Hold::For(Duration::ZERO)).await;
    a_worker.enqueue_many(0..8).await.unwrap();
    let mut status = bridge.permit_status();
    // Only whether it came: the `Ref` that `wait_for` returns holds the watch's lock, and
    // kept across the heal it would block the permit task's next status change (and so the
    // task, and a runtime thread) until it is dropped.
    let down = tokio::time::timeout(
        WAIT,
        status.wait_for(|s| matches!(s, Status::Disconnected { .. })),
    )
    .await
    .is_ok();
    assert!(down, "the permits notice they cannot reach Redis");
    let [_, _, started] = counter_keys(test);
    let ran = until(LEASE * 2, || read(&url, &started), |n| *n > 0).await;
    assert_eq!(ran, 0, "no share without ever having seen the fleet");
    assert_eq!(a_worker.stats().permits.map(|p| p.granted), Some(0));
    if !heal {
        return;
    }
    proxy.forward();
    tokio::time::timeout(WAIT, a_worker.drain())
        .await
        .expect("once Redis answers, permits are acquired there");
    assert_eq!(a_worker.stats().completed, 8);
    assert!(bridge.permit_stats().acquired > 0);
}

/// A black hole that starts while A runs items on permits held in Redis (B, direct, beside
/// it) and heals later: A notices and starts nothing more (`hold`), its leases lapse and B
/// takes the whole limit; once the path heals A finds its slots gone, acquires permits in
/// Redis again and runs the rest. At no point does the fleet run more than the limit.
///
/// Fails (a bug found with this test, not fixed yet): cut off, A keeps running items on the
/// permits its running items had: `Permits::revoke` gives up only unused permits, and a
/// permit put back by an ending item is taken by the next start before the connector can
/// revoke it (`revoke_all`'s doc promises otherwise); once A's leases lapse and B takes the
/// limit, the fleet runs 6 of 4.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "bug: a cut-off worker reuses permits put back by its ending items"]
async fn permits_held_when_a_black_hole_starts_recover_when_it_heals() {
    let test = "held_then_cut_off";
    let Some(server) = redis(test) else { return };
    let url = server.url();
    let proxy = Proxy::start(server.port).await;
    let short = Hold::For(Duration::from_millis(10));
    let (b, _bridge_b) = bridged(&url, "ns", LEASE).await;
    let b_worker = worker(&b, &url, test, 4, short.clone()).await;
    let a = backpressure::Sink::new();
    let config = Config::new(proxy.url())
        .namespace("ns")
        .lease(LEASE)
        .limits_on_disconnect(LimitsOnDisconnect::Hold)
        .reconnect_max_delay(Duration::from_millis(100));
    let bridge_a = connect(a.clone(), config).await.expect("connect");
    let a_worker = worker(&a, &url, test, 4, short).await;
    a_worker.enqueue_many(0..200).await.unwrap();
    b_worker.enqueue_many(0..200).await.unwrap();
    let a_granted = || a_worker.stats().permits.map_or(0, |p| p.granted);
    assert!(
        until(WAIT, &a_granted, |n| *n > 0).await > 0,
        "A runs on permits"
    );

    proxy.black_hole();
    let mut status = bridge_a.permit_status();
    let cut_off = status.wait_for(|s| matches!(s, Status::Disconnected { .. }));
    assert!(tokio::time::timeout(WAIT, cut_off).await.is_ok());
    let acquired = bridge_a.permit_stats().acquired;
    a_worker.enqueue_many(200..400).await.unwrap();
    b_worker.enqueue_many(200..1_000).await.unwrap();
    // A's leases lapse and B, which still wants, takes them: A's slots are gone.
    let b_granted = || b_worker.stats().permits.map_or(0, |p| p.granted);
    assert_eq!(until(WAIT, &b_granted, |n| *n == 4).await, 4);
    let a = a_worker.stats().permits;
    assert_eq!(a_granted(), 0, "A holds while cut off: {a:?}");

    proxy.forward();
    let up = status.wait_for(|s| *s == Status::Synced);
    assert!(tokio::time::timeout(WAIT, up).await.is_ok(), "A reconnects");
    tokio::time::timeout(WAIT, a_worker.drain())
        .await
        .expect("A's items run once the path heals");
    tokio::time::timeout(WAIT, b_worker.drain())
        .await
        .expect("B's items run");
    assert_eq!(a_worker.stats().completed, 400);
    assert!(
        bridge_a.permit_stats().acquired > acquired,
        "A acquired permits in Redis again"
    );
    let [_, peak, _] = counter_keys(test);
    let peak = read(&url, &peak);
    assert!(peak <= 4, "the fleet ran {peak} at once");
}
