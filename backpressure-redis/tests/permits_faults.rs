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
    .await;
    assert!(
        down.is_ok(),
        "A's permits notice the black hole within 30 s"
    );
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
