//! Hostile: the network between a bridge and Redis, through the delay-line proxy of
//! `hostile_common/delay.rs` (real redis-server; skipped without one): round trips of 100 ms
//! and 1 s, a black hole and resets, with a short (1.5 s) and a long (30 s) lease, and Redis
//! restarted empty. What a user relies on: latency within the bound is no outage, latency
//! beyond it is never `Synced`, a silent link is noticed within the documented bound, and
//! every fault ends in `Synced` with nothing lost.

mod common;
mod hostile_common;

use std::time::Duration;

use backpressure::Sink;
use backpressure_redis::{connect, Bridge, OnDisconnect, Status};
use common::{lets_go, redis, wait_until};
use hostile_common::delay::DelayProxy;
use hostile_common::{bridge, config, synced, StatusLog, WAIT};
use tokio::time::Instant;

const SHORT: Duration = Duration::from_millis(1500);
const LONG: Duration = Duration::from_secs(30);
const SLACK: Duration = Duration::from_millis(500);
const HOLD: OnDisconnect = OnDisconnect::HoldUntilReconnect;
const KEEP: OnDisconnect = OnDisconnect::KeepUntilLeaseEnds;

/// A connected directly, B through a delay proxy set to `rtt` before B connects.
async fn pair(
    server: &common::RedisServer,
    lease: Duration,
    rtt: Duration,
    policy: OnDisconnect,
) -> ((Sink, Bridge), (Sink, Bridge), DelayProxy) {
    let proxy = DelayProxy::start(server.port).await;
    proxy.round_trip(rtt);
    let a = bridge(&server.url(), "a", lease, KEEP).await;
    let sink = Sink::new();
    let b_config = config(&proxy.url(), "b", lease, policy).connect_timeout(WAIT);
    let b = connect(sink.clone(), b_config).await.expect("connect B");
    (a, (sink, b), proxy)
}

/// A raise and a retract of A reach B within `within`.
async fn flows(a: &Sink, b: &Sink, name: &str, within: Duration) {
    let start = Instant::now();
    a.raise(name).unwrap();
    assert!(
        wait_until(b, WAIT, |s| s.is_raised(name)).await,
        "{name} raised"
    );
    a.retract(name).unwrap();
    assert!(
        wait_until(b, WAIT, |s| !s.is_raised(name)).await,
        "{name} retracted"
    );
    let took = start.elapsed();
    assert!(took < within, "{name}: {took:?}");
}

/// Latency within the bound, for `lease`: B stays `Synced` for `watch`, and changes flow.
async fn latency_is_no_outage(lease: Duration, rtt: Duration, watch: Duration) {
    let Some(server) = redis(&format!("latency_{rtt:?}_lease_{lease:?}")) else {
        return;
    };
    let ((a, _bridge_a), (b, bridge_b), _proxy) = pair(&server, lease, rtt, HOLD).await;
    synced(&bridge_b).await;
    let log = StatusLog::start(&bridge_b);
    let start = Instant::now();
    flows(&a, &b, "backpressure.one", rtt * 2 + SLACK * 2).await;
    let mut changed = bridge_b.watch_status();
    changed.mark_unchanged();
    let _ = tokio::time::timeout(watch.saturating_sub(start.elapsed()), changed.changed()).await;
    flows(&a, &b, "backpressure.two", rtt * 2 + SLACK * 2).await;
    let seen = log.between(start, Instant::now());
    assert_eq!(
        seen,
        vec![Status::Synced],
        "status changed under a {rtt:?} round trip"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100ms_round_trip_is_no_outage_with_a_short_lease() {
    latency_is_no_outage(SHORT, Duration::from_millis(100), SHORT * 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100ms_round_trip_is_no_outage_with_a_long_lease() {
    latency_is_no_outage(LONG, Duration::from_millis(100), Duration::from_secs(3)).await;
}

/// 1 s round trips with a 30 s lease: within every bound (calls get 2 s). Connecting takes
/// several round trips (the handshake, the subscription, each script loaded on first use):
/// `connect_timeout` must allow for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1s_round_trip_is_no_outage_with_a_long_lease() {
    latency_is_no_outage(LONG, Duration::from_secs(1), Duration::from_secs(4)).await;
}

/// 1 s round trips with a 1.5 s lease: beyond the bound (calls get 375 ms). Connecting fails,
/// and a bridge connected before the latency came leaves `Synced` within half a lease and
/// never says `Synced` while it lasts (holding its mirror under `hold_until_reconnect`); it
/// is `Synced` again once the latency is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1s_round_trip_is_an_outage_with_a_short_lease() {
    let Some(server) = redis("a_1s_round_trip_is_an_outage_with_a_short_lease") else {
        return;
    };
    let slow = DelayProxy::start(server.port).await;
    slow.round_trip(Duration::from_secs(1));
    let refused = connect(Sink::new(), config(&slow.url(), "c", SHORT, HOLD)).await;
    assert!(
        refused.is_err(),
        "connected over 1 s round trips with a 1.5 s lease"
    );

    let ((a, _bridge_a), (b, bridge_b), proxy) = pair(&server, SHORT, Duration::ZERO, HOLD).await;
    a.raise("backpressure.held").unwrap();
    assert!(wait_until(&b, WAIT, |s| s.is_raised("backpressure.held")).await);
    let log = StatusLog::start(&bridge_b);
    let released = lets_go(&b, "backpressure.held", Duration::from_secs(4));
    let start = Instant::now();
    proxy.round_trip(Duration::from_secs(1));
    let left = bridge_b.wait_for(WAIT, |s| *s != Status::Synced).await;
    assert_ne!(left, Status::Synced);
    let noticed = start.elapsed();
    assert!(noticed < SHORT / 2 + SLACK, "noticed after {noticed:?}");
    let status = bridge_b
        .wait_for(Duration::from_secs(3), |s| *s == Status::Synced)
        .await;
    assert_ne!(
        status,
        Status::Synced,
        "Synced over a link beyond the bound"
    );
    assert!(
        !released.await,
        "let go of a mirror while the link was in doubt"
    );
    let latency_off = Instant::now();
    proxy.round_trip(Duration::ZERO);
    synced(&bridge_b).await;
    // From the moment the log has B leave Synced (the log's clock, not ours).
    let left_at = log
        .first_after(start, |s| *s != Status::Synced)
        .expect("left Synced");
    let seen = log.between(left_at, latency_off);
    assert!(!seen.contains(&Status::Synced), "{seen:?}");
    flows(&a, &b, "backpressure.after", Duration::from_secs(5)).await;
}

/// A black hole with a 30 s lease: noticed within a quarter lease (the PING) plus the 2 s
/// cap on an answer; the mirror is kept (its lease has not ended), and once the link is back
/// B is `Synced` and has the retract made during the hole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_hole_with_a_long_lease_is_noticed_within_the_bound() {
    let Some(server) = redis("a_black_hole_with_a_long_lease_is_noticed_within_the_bound") else {
        return;
    };
    let ((a, _bridge_a), (b, bridge_b), proxy) = pair(&server, LONG, Duration::ZERO, KEEP).await;
    a.raise("backpressure.smtp").unwrap();
    assert!(wait_until(&b, WAIT, |s| s.is_raised("backpressure.smtp")).await);
    let held = lets_go(&b, "backpressure.smtp", Duration::from_secs(10));
    proxy.black_hole();
    let start = Instant::now();
    a.retract("backpressure.smtp").unwrap();
    let status = bridge_b
        .wait_for(WAIT, |s| matches!(s, Status::Disconnected { .. }))
        .await;
    assert!(matches!(status, Status::Disconnected { .. }), "{status:?}");
    let noticed = start.elapsed();
    let bound = LONG / 4 + Duration::from_secs(2);
    assert!(noticed < bound + SLACK, "noticed after {noticed:?}");
    assert!(!held.await, "let go of the mirror during the hole");
    proxy.forward();
    synced(&bridge_b).await;
    assert!(wait_until(&b, WAIT, |s| !s.is_raised("backpressure.smtp")).await);
    flows(&a, &b, "backpressure.after", Duration::from_secs(5)).await;
}

/// Resets with a 30 s lease (nothing times out: the reconnect is driven by the closed
/// socket): each is followed by `Synced` within a second or so, and changes made while the
/// connection was down reach B.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resets_with_a_long_lease_resync_at_once() {
    let Some(server) = redis("resets_with_a_long_lease_resync_at_once") else {
        return;
    };
    let ((a, _bridge_a), (b, bridge_b), proxy) = pair(&server, LONG, Duration::ZERO, HOLD).await;
    for round in 0..5 {
        let name = format!("backpressure.r{round}");
        let resyncs = bridge_b.stats().resyncs;
        proxy.reset();
        a.raise(&name).unwrap();
        let start = Instant::now();
        assert!(wait_until(&b, WAIT, |s| s.is_raised(&name)).await, "{name}");
        let status = bridge_b.wait_for(WAIT, |s| *s == Status::Synced).await;
        assert_eq!(status, Status::Synced);
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{:?}",
            start.elapsed()
        );
        assert!(bridge_b.stats().resyncs > resyncs, "round {round}");
    }
}

/// Redis restarted empty under `hold_until_reconnect`: the owner still raises its signal,
/// so no peer may let go of it at any moment, also when the owner is a little farther from
/// Redis than the peer and the peer's first snapshot after the restart comes before the
/// owner has re-published (each reconnects on its own). (The bug it caught: `Inbound::load`
/// replaced the held mirrors with that empty snapshot.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_empty_never_lets_a_raised_signal_go() {
    let Some(mut server) = redis("redis_restarted_empty_never_lets_a_raised_signal_go") else {
        return;
    };
    // The owner is a little farther away than the peer (100 ms round trips).
    let far = DelayProxy::start(server.port).await;
    far.round_trip(Duration::from_millis(100));
    let (a, bridge_a) = bridge(&far.url(), "a", SHORT, HOLD).await;
    let (b, bridge_b) = bridge(&server.url(), "b", SHORT, HOLD).await;
    a.raise("backpressure.smtp").unwrap();
    assert!(wait_until(&b, WAIT, |s| s.is_raised("backpressure.smtp")).await);
    let mut flickers = 0;
    for _ in 0..5 {
        let released = lets_go(&b, "backpressure.smtp", SHORT * 2);
        server.restart();
        synced(&bridge_a).await;
        synced(&bridge_b).await;
        if released.await {
            flickers += 1;
        }
        assert!(wait_until(&b, WAIT, |s| s.is_raised("backpressure.smtp")).await);
    }
    assert_eq!(
        flickers, 0,
        "B let go of A's signal after {flickers} of 5 restarts"
    );
}
