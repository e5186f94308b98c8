//! `global_concurrency` across OS processes: children of this test binary share one
//! worker's limit through a real redis-server; a `kill -9`'d holder's permits come back
//! within its lease.

mod common;
mod permits_kit;

use std::sync::Arc;
use std::time::Duration;

use common::{redis, until};
use permits_kit::{bridged, counter_keys, read, worker, Child, ChildSpec, Hold};
use tokio::sync::Semaphore;
use tokio::time::Instant;

const LEASE: Duration = Duration::from_millis(800);
const WAIT: Duration = Duration::from_secs(30);

/// The body of the children (does nothing unless spawned by a test below).
#[tokio::test]
async fn permit_child_entry() {
    permits_kit::child_main().await;
}

fn spec<'a>(url: &'a str, test: &'a str, items: u32, hold_ms: u64) -> ChildSpec<'a> {
    ChildSpec {
        url,
        namespace: "ns",
        test,
        lease: LEASE,
        items,
        limit: 4,
        hold_ms,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_never_run_more_than_the_global_limit() {
    let test = "procs";
    let Some(server) = redis(test) else { return };
    let url = server.url();
    let mut children = Vec::new();
    for _ in 0..3 {
        children.push(Child::spawn(&spec(&url, test, 40, 3)).await);
    }
    for child in &mut children {
        child.done().await;
    }
    let [_, peak, started] = counter_keys(test);
    assert_eq!(read(&url, &started), 120, "every item ran");
    let peak = read(&url, &peak);
    assert!(
        peak <= 4,
        "three processes ran {peak} at once, above their limit 4"
    );
    assert!(peak >= 2, "they shared the limit (peak {peak})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_holders_permits_come_back_within_its_lease() {
    let test = "killed";
    let Some(server) = redis(test) else { return };
    let url = server.url();
    // The child takes the whole limit with items that never end.
    let mut holder = Child::spawn(&spec(&url, test, 8, 0)).await;
    let [running, _, started] = counter_keys(test);
    let seen = until(WAIT, || read(&url, &running), |n| *n == 4).await;
    assert_eq!(seen, 4, "the child holds the limit");
    let (sink, _bridge) = bridged(&url, "ns", LEASE).await;
    let gate = Arc::new(Semaphore::new(100));
    let coordinator = worker(&sink, &url, test, 4, Hold::Until(gate)).await;
    coordinator.enqueue_many(0..4).await.unwrap();
    let none = until(LEASE, || read(&url, &started), |n| *n > 4).await;
    assert_eq!(
        none, 4,
        "nothing starts here while the child holds every permit"
    );

    holder.kill().await;
    let killed = Instant::now();
    tokio::time::timeout(WAIT, coordinator.drain())
        .await
        .expect("the items ran once the killed holder's permits lapsed");
    let took = killed.elapsed();
    assert!(
        took <= LEASE + Duration::from_millis(400),
        "the permits came back {took:?} after the kill (lease {LEASE:?})"
    );
}
