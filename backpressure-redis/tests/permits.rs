//! `global_concurrency` through Redis, in one process: three bridged sinks share a worker's
//! fleet-wide limit; a flush and forged keys or messages never raise it.

mod common;
mod permits_kit;

use std::sync::Arc;
use std::time::Duration;

use common::{redis, until};
use permits_kit::{bridged, counter_keys, read, worker, Hold};
use tokio::sync::Semaphore;

const LEASE: Duration = Duration::from_millis(600);
const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_bridged_sinks_never_run_more_than_the_global_limit() {
    let test = "three_sinks";
    let Some(server) = redis(test) else { return };
    let url = server.url();
    let mut fleet = Vec::new();
    for _ in 0..3 {
        let (sink, bridge) = bridged(&url, "ns", LEASE).await;
        let coordinator = worker(&sink, &url, test, 4, Hold::For(Duration::from_millis(3))).await;
        coordinator.enqueue_many(0..40).await.unwrap();
        fleet.push((coordinator, bridge));
    }
    for (coordinator, _) in &fleet {
        tokio::time::timeout(WAIT, coordinator.drain())
            .await
            .expect("every item done within 30 s");
    }
    let [_, peak, started] = counter_keys(test);
    assert_eq!(read(&url, &started), 120, "every item ran");
    let peak = read(&url, &peak);
    assert!(peak <= 4, "the fleet ran {peak} at once, above its limit 4");
    assert!(peak >= 2, "the processes shared the limit (peak {peak})");
    for (_, bridge) in &fleet {
        let stats = bridge.permit_stats();
        assert!(stats.acquired > 0, "{stats:?}");
        assert_eq!(stats.redis_errors, 0, "{stats:?}");
    }
}

/// Three processes each holding items that never end: the fleet holds exactly the limit.
async fn saturated(
    url: &str,
    test: &str,
) -> (Vec<backpressure_redis::Bridge>, Vec<Arc<Semaphore>>) {
    let (mut bridges, mut gates) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let (sink, bridge) = bridged(url, "ns", LEASE).await;
        let gate = Arc::new(Semaphore::new(0));
        let coordinator = worker(&sink, url, test, 4, Hold::Until(Arc::clone(&gate))).await;
        coordinator.enqueue_many(0..8).await.unwrap();
        std::mem::forget(coordinator);
        bridges.push(bridge);
        gates.push(gate);
    }
    let [running, _, _] = counter_keys(test);
    let seen = until(WAIT, || read(url, &running), |n| *n == 4).await;
    assert_eq!(seen, 4, "the fleet fills its limit");
    (bridges, gates)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_keeps_the_limit_after_resync() {
    let test = "flush";
    let Some(server) = redis(test) else { return };
    let url = server.url();
    let (_bridges, gates) = saturated(&url, test).await;
    let mut conn = server.raw();
    // The counters go with the flush: they count on from the 4 still running, in the same
    // transaction so that no item comes between.
    let [running, peak, _] = counter_keys(test);
    let _: () = redis::pipe()
        .atomic()
        .cmd("FLUSHALL")
        .cmd("SET")
        .arg(&running)
        .arg(4)
        .cmd("SET")
        .arg(&peak)
        .arg(4)
        .query(&mut conn)
        .unwrap();
    // Every process has starts waiting; they try again when the leases they saw end.
    // Within two leases none may start beside the 4 running (a negative wait).
    let above = until(LEASE * 2, || read(&url, &peak), |p| *p > 4).await;
    assert_eq!(
        above, 4,
        "after a flush the fleet ran {above} at once, above its limit 4"
    );
    let members: usize = redis::cmd("ZCARD")
        .arg("bp:{ns}:permits:mailer")
        .query(&mut conn)
        .unwrap();
    assert_eq!(members, 4, "the holders recorded their permits again");
    // Work goes on: each process finishes its running items, and the next ones start.
    for gate in &gates {
        gate.add_permits(100);
    }
    let started = until(WAIT, || read(&url, &counter_keys(test)[2]), |n| *n >= 20).await;
    assert!(
        started >= 20,
        "work went on after the flush ({started} started)"
    );
    assert!(read(&url, &peak) <= 4, "the limit held");
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_permits_and_messages_do_not_raise_the_cap() {
    let test = "forged";
    let Some(server) = redis(test) else { return };
    let url = server.url();
    let (bridges, gates) = saturated(&url, test).await;
    let mut conn = server.raw();
    // A forged member with an absurd lease, forged releases and wants, junk: a message
    // never grants by itself (the scripts decide), an absurd member is dropped.
    let _: () = redis::cmd("ZADD")
        .arg("bp:{ns}:permits:mailer")
        .arg("+inf")
        .arg("forger/0")
        .query(&mut conn)
        .unwrap();
    for junk in [
        "2|free|mailer|forger",
        "2|want|mailer|forger",
        "junk",
        "9|free|mailer|x",
    ] {
        let _: () = redis::cmd("PUBLISH")
            .arg("bp:{ns}:permits")
            .arg(junk)
            .query(&mut conn)
            .unwrap();
    }
    let [running, peak, _] = counter_keys(test);
    let above = until(LEASE * 2, || read(&url, &peak), |p| *p > 4).await;
    assert_eq!(above, 4, "forgeries let the fleet run {above} at once");
    assert_eq!(read(&url, &running), 4);
    let ignored: u64 = bridges
        .iter()
        .map(|b| b.permit_stats().ignored_messages)
        .sum();
    assert_eq!(ignored, 6, "two junk messages, read by three bridges");
    // A forged member with an absurd lease holds no capacity: every item still gets to run.
    for gate in &gates {
        gate.add_permits(100);
    }
    let started = until(WAIT, || read(&url, &counter_keys(test)[2]), |n| *n == 24).await;
    assert_eq!(started, 24, "every item ran");
    assert!(read(&url, &peak) <= 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permit_key_of_the_wrong_type_grants_nothing() {
    let test = "wrong_type";
    let Some(server) = redis(test) else { return };
    let url = server.url();
    let mut conn = server.raw();
    let _: () = redis::cmd("SET")
        .arg("bp:{ns}:permits:mailer")
        .arg("junk")
        .query(&mut conn)
        .unwrap();
    let (sink, bridge) = bridged(&url, "ns", LEASE).await;
    let coordinator = worker(&sink, &url, test, 4, Hold::For(Duration::ZERO)).await;
    coordinator.enqueue_many(0..4).await.unwrap();
    let errors = until(WAIT, || bridge.permit_stats().redis_errors, |n| *n > 0).await;
    assert!(errors > 0, "the script's error is counted");
    assert_eq!(
        coordinator.stats().completed,
        0,
        "nothing runs on a broken record"
    );
    let _: () = redis::cmd("DEL")
        .arg("bp:{ns}:permits:mailer")
        .query(&mut conn)
        .unwrap();
    tokio::time::timeout(WAIT, coordinator.drain())
        .await
        .expect("a repaired record grants again within 30 s");
    assert_eq!(coordinator.stats().completed, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_worker_gives_back_every_permit() {
    let test = "drained";
    let Some(server) = redis(test) else { return };
    let url = server.url();
    let (sink, _bridge) = bridged(&url, "ns", LEASE).await;
    let coordinator = worker(&sink, &url, test, 4, Hold::For(Duration::ZERO)).await;
    coordinator.enqueue_many(0..8).await.unwrap();
    tokio::time::timeout(WAIT, coordinator.drain())
        .await
        .expect("the items ran within 30 s");
    // An idle worker may keep permit_batch - 1 = 1 unused; a drained one keeps none.
    let members = || {
        let mut conn = server.raw();
        let n: usize = redis::cmd("ZCARD")
            .arg("bp:{ns}:permits:mailer")
            .query(&mut conn)
            .unwrap();
        n
    };
    assert_eq!(until(WAIT, members, |n| *n == 0).await, 0);
    assert_eq!(coordinator.stats().permits.unwrap().granted, 0);
}
