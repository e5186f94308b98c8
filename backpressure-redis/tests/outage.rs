//! Redis killed for longer than the lease, under each `on_disconnect` policy (real
//! redis-server; skipped without one).

mod common;

use std::time::Duration;

use backpressure::{SignalEventKind, Sink};
use backpressure_redis::{connect, Bridge, Config, OnDisconnect, Status};
use common::{redis, wait_until, RedisServer};
use futures_util::StreamExt;
use tokio::time::Instant;

const LEASE: Duration = Duration::from_secs(1);
/// How long a positive wait may take: generous, for a loaded machine (real time).
const WAIT: Duration = Duration::from_secs(30);

fn config(server: &RedisServer, namespace: &str, instance: &str) -> Config {
    Config::new(server.url())
        .namespace(namespace)
        .instance(instance)
        .lease(LEASE)
        .reconnect_max_delay(Duration::from_millis(200))
}

async fn bridge(server: &RedisServer, namespace: &str, instance: &str) -> (Sink, Bridge) {
    bridge_with(config(server, namespace, instance)).await
}

async fn bridge_with(config: Config) -> (Sink, Bridge) {
    let sink = Sink::new();
    let bridge = connect(sink.clone(), config).await.expect("connect");
    assert_eq!(bridge.status(), Status::Synced);
    (sink, bridge)
}

/// Raises in A, mirrors in B, kills Redis for longer than the lease; returns what B saw.
async fn outage(policy: OnDisconnect) -> Option<()> {
    let mut server = redis(&format!("outage_{policy:?}"))?;
    let (a, bridge_a) = bridge(&server, "ns", "a").await;
    let (b, bridge_b) = bridge_with(config(&server, "ns", "b").on_disconnect(policy)).await;
    a.raise("backpressure.smtp").unwrap();
    assert!(wait_until(&b, WAIT, |s| s.is_raised("backpressure.smtp")).await);

    // Subscribed before the kill, so that no event of the disconnect is missed.
    let mut events = b.subscribe();
    server.kill();
    let down = Instant::now();
    let status = bridge_b
        .wait_for(WAIT, |s| matches!(s, Status::Disconnected { .. }))
        .await;
    assert!(matches!(status, Status::Disconnected { .. }));
    // Local raise and retract keep working while Redis is down.
    a.raise("backpressure.during").unwrap();
    match policy {
        OnDisconnect::KeepUntilLeaseEnds => {
            assert!(b.is_raised("backpressure.smtp"));
            assert!(wait_until(&b, LEASE * 2, |s| !s.is_raised("backpressure.smtp")).await);
            // Within one lease of the kill, plus scheduling slack for a loaded machine (as in
            // `a_killed_process_signal_vanishes_within_one_lease`).
            let gone = down.elapsed();
            assert!(
                gone <= LEASE + Duration::from_millis(400),
                "vanished after {gone:?}"
            );
        }
        OnDisconnect::Drop => {
            // Dropped at the disconnect: retracted, not expired at the end of its lease
            // (which is at least 2/3 of a lease after the kill). The retract follows the
            // `Disconnected` status on the bridge's task, so wait for it rather than give it
            // a short window.
            let event = tokio::time::timeout(WAIT, async {
                loop {
                    let event = events.next().await.unwrap().unwrap();
                    if &*event.name == "backpressure.smtp" {
                        return event;
                    }
                }
            })
            .await
            .expect("the mirrored entry goes away");
            assert_eq!(event.kind, SignalEventKind::Retracted, "{event:?}");
            assert!(!b.is_raised("backpressure.smtp"));
        }
        OnDisconnect::HoldUntilReconnect => {
            // Held well past the lease (a bounded observation window, not a synchronisation).
            let mut events = b.subscribe();
            assert!(tokio::time::timeout(LEASE * 2, events.next())
                .await
                .is_err());
            assert!(b.is_raised("backpressure.smtp"));
            a.retract("backpressure.smtp").unwrap();
        }
        _ => unreachable!(),
    }

    server.restart();
    for bridge in [&bridge_a, &bridge_b] {
        assert_eq!(
            bridge.wait_for(WAIT, |s| *s == Status::Synced).await,
            Status::Synced
        );
    }
    assert!(wait_until(&b, WAIT, |s| s.is_raised("backpressure.during")).await);
    let smtp_back = policy != OnDisconnect::HoldUntilReconnect;
    assert!(wait_until(&b, WAIT, |s| s.is_raised("backpressure.smtp") == smtp_back).await);
    Some(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_longer_than_the_lease_keep_until_lease_ends() {
    outage(OnDisconnect::KeepUntilLeaseEnds).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_longer_than_the_lease_drop() {
    outage(OnDisconnect::Drop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_longer_than_the_lease_hold_until_reconnect() {
    outage(OnDisconnect::HoldUntilReconnect).await;
}
