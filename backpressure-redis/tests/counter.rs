//! The sequence counter going backwards or broken (real redis-server; skipped without one):
//! a `FLUSHALL` or a junk value in the counter must never leave a bridge deaf while it says
//! `Synced`.

mod common;

use std::time::Duration;

use backpressure::Sink;
use backpressure_redis::__private::{entries_key, seq_key};
use backpressure_redis::{connect, Bridge, Config, Status};
use common::{lets_go, redis, wait_until, RedisServer};

const LEASE: Duration = Duration::from_secs(1);
/// How long a positive wait may take: generous, for a loaded machine (real time).
const WAIT: Duration = Duration::from_secs(30);

async fn bridge(server: &RedisServer, instance: &str) -> (Sink, Bridge) {
    let sink = Sink::new();
    let config = Config::new(server.url())
        .namespace("ns")
        .instance(instance)
        .lease(LEASE)
        .reconnect_max_delay(Duration::from_millis(200));
    let bridge = connect(sink.clone(), config).await.expect("connect");
    (sink, bridge)
}

fn query<T: redis::FromRedisValue>(server: &RedisServer, cmd: &mut redis::Cmd) -> T {
    cmd.query(&mut server.raw()).unwrap()
}

async fn both_synced(bridges: [&Bridge; 2]) {
    for bridge in bridges {
        let status = bridge.wait_for(WAIT, |s| *s == Status::Synced).await;
        assert_eq!(status, Status::Synced, "{bridge:?}");
    }
}

/// Fails before the counter epoch: after the flush the counter restarts at 1, B drops every
/// message as already seen, lets the signal go after one lease and never sees `after`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flushed_counter_resyncs_peers_and_keeps_the_raised_signal_held() {
    let Some(server) = redis("a_flushed_counter_resyncs_peers") else {
        return;
    };
    // A namespace that has been busy for a while: the flushed counter restarts far below.
    let () = query(&server, redis::cmd("SET").arg(seq_key("ns")).arg(100_000));
    let (a, bridge_a) = bridge(&server, "a").await;
    let (b, bridge_b) = bridge(&server, "b").await;
    a.raise("backpressure.smtp").unwrap();
    assert!(wait_until(&b, WAIT, |s| s.is_raised("backpressure.smtp")).await);

    let watch = lets_go(&b, "backpressure.smtp", LEASE * 3);
    let () = query(&server, &mut redis::cmd("FLUSHALL"));
    // A re-publishes at its next renewal (lease / 3), in a new epoch: B resyncs and keeps
    // holding for three leases, well past the lease it had at the flush.
    assert!(!watch.await, "B let go of a signal A still raises");
    assert!(b.is_raised("backpressure.smtp"));
    let live: u64 = query(&server, redis::cmd("ZCARD").arg(entries_key("ns")));
    assert_eq!(live, 1, "A re-published its entry");

    a.raise("backpressure.after").unwrap();
    assert!(wait_until(&b, WAIT, |s| s.is_raised("backpressure.after")).await);
    both_synced([&bridge_a, &bridge_b]).await;
    let stats = bridge_b.stats();
    assert!(stats.counter_resets >= 1, "{stats:?}");
    a.retract("backpressure.smtp").unwrap();
    assert!(wait_until(&b, WAIT, |s| !s.is_raised("backpressure.smtp")).await);
}

/// Fails before the retry: B (nothing of its own to publish) reads the junk in its snapshot,
/// stays `Resyncing` and ignores every message, even after the repair.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_junk_counter_is_never_synced_and_recovers_once_repaired() {
    let Some(server) = redis("a_junk_counter_is_never_synced") else {
        return;
    };
    let (a, bridge_a) = bridge(&server, "a").await;
    let (b, bridge_b) = bridge(&server, "b").await;
    a.raise("backpressure.x").unwrap();
    assert!(wait_until(&b, WAIT, |s| s.is_raised("backpressure.x")).await);

    let () = query(&server, redis::cmd("SET").arg(seq_key("ns")).arg("junk"));
    // Every script now fails (the renewal within lease / 3 finds out): not Synced, and it
    // stays so over several retries.
    for bridge in [&bridge_a, &bridge_b] {
        let status = bridge.wait_for(WAIT, |s| *s != Status::Synced).await;
        assert_ne!(status, Status::Synced, "{bridge:?}");
    }
    a.raise("backpressure.during").unwrap();
    for bridge in [&bridge_a, &bridge_b] {
        let status = bridge.wait_for(LEASE * 2, |s| *s == Status::Synced).await;
        assert_ne!(status, Status::Synced, "Synced with a broken counter");
    }
    // Connected all along: Redis answers, with an error.
    assert_eq!(bridge_b.status(), Status::Resyncing);
    assert!(!b.is_raised("backpressure.during"));
    assert!(bridge_a.stats().redis_errors >= 1 && bridge_b.stats().redis_errors >= 1);

    // Repaired backwards (below any number already used): a new epoch, so nothing is skipped.
    let () = query(&server, redis::cmd("SET").arg(seq_key("ns")).arg("0"));
    both_synced([&bridge_a, &bridge_b]).await;
    assert!(wait_until(&b, WAIT, |s| s.is_raised("backpressure.during")).await);
    assert!(wait_until(&b, WAIT, |s| s.is_raised("backpressure.x")).await);
    a.retract("backpressure.x").unwrap();
    a.raise("backpressure.later").unwrap();
    assert!(wait_until(&b, WAIT, |s| s.is_raised("backpressure.later")).await);
    assert!(wait_until(&b, WAIT, |s| !s.is_raised("backpressure.x")).await);
}
