//! What comes over the channel is untrusted (real redis-server; skipped without one):
//! garbage and hostile messages are ignored and counted; two builds' worth of messages
//! (a future and a previous wire version, published by hand) are ignored, counted, and hold
//! or release nothing; an extension field of this version is ignored.

mod common;

use std::time::Duration;

use backpressure::Sink;
use backpressure_redis::{connect, Bridge, Config, Status, WIRE_VERSION};
use common::{lets_go, publish_raw, redis, until, wait_until, RedisServer};

const LEASE: Duration = Duration::from_secs(1);
/// How long a positive wait may take: generous, for a loaded machine (real time).
const WAIT: Duration = Duration::from_secs(30);

async fn bridge(server: &RedisServer, instance: &str) -> (Sink, Bridge) {
    let sink = Sink::new();
    let config = Config::new(server.url())
        .namespace("ns")
        .instance(instance)
        .lease(LEASE);
    let bridge = connect(sink.clone(), config).await.expect("connect");
    (sink, bridge)
}

/// Fails on main: there the previous format is the current one (its forged retract of A's
/// entry applies and its raise holds), and a message with an extension field is malformed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_of_other_versions_are_counted_and_hold_or_release_nothing() {
    let Some(server) = redis("messages_of_other_versions_are_counted") else {
        return;
    };
    let (a, _bridge_a) = bridge(&server, "a").await;
    let (b, bridge_b) = bridge(&server, "b").await;
    a.raise("backpressure.x").unwrap();
    assert!(wait_until(&b, WAIT, |s| s.is_raised("backpressure.x")).await);
    let ten_s = Duration::from_secs(10);

    // A later build of this version adds a field: understood, the field ignored.
    let v = WIRE_VERSION;
    let extended = format!(
        "{v}|{{epoch}}|{{seq}}|R|{{now}}|{{expiry}}|0|newer|backpressure.ext||phase=half_open"
    );
    publish_raw(&server, "ns", &extended, ten_s);
    assert!(wait_until(&b, WAIT, |s| s.is_raised("backpressure.ext")).await);

    let released = lets_go(&b, "backpressure.x", LEASE * 2);
    // A future build, in its own format: a retract of A's live entry and a raise.
    let future = v + 1;
    let messages = [
        format!("{future}|{{epoch}}|{{seq}}|X|{{now}}|0|0|a|backpressure.x||more=1"),
        format!("{future}|{{epoch}}|{{seq}}|R|{{now}}|{{expiry}}|0|future|backpressure.phantom|"),
        // The previous (pre-release) format, which had no epoch.
        "1|{seq}|X|{now}|0|0|a|backpressure.x|".to_owned(),
        "1|{seq}|R|{now}|{expiry}|0|old|backpressure.old|".to_owned(),
    ];
    for message in &messages {
        publish_raw(&server, "ns", message, ten_s);
    }
    let stats = until(
        WAIT,
        || bridge_b.stats(),
        |s| s.unknown_version_messages >= 4,
    )
    .await;
    assert_eq!(stats.unknown_version_messages, 4, "{stats:?}");
    assert_eq!(stats.highest_unknown_version, Some(future), "{stats:?}");
    assert_eq!(stats.malformed_messages, 0, "{stats:?}");
    let status = bridge_b.wait_for(WAIT, |s| *s == Status::Synced).await;
    assert_eq!(status, Status::Synced);
    // Changes still flow.
    a.raise("backpressure.after").unwrap();
    assert!(wait_until(&b, WAIT, |s| s.is_raised("backpressure.after")).await);
    assert!(
        !released.await,
        "a message B cannot read released A's signal"
    );
    assert!(b.is_raised("backpressure.x"));
    assert!(!b.is_raised("backpressure.phantom"));
    assert!(!b.is_raised("backpressure.old"));
    assert_eq!(bridge_b.stats().unknown_version_messages, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_hostile_messages_are_ignored_and_counted() {
    let Some(server) = redis("malformed_and_hostile_messages_are_ignored_and_counted") else {
        return;
    };
    let (a, _bridge_a) = bridge(&server, "a").await;
    let (b, bridge_b) = bridge(&server, "b").await;
    let channel = backpressure_redis::__private::channel("ns");
    let mut raw = server.raw();
    let publish = |raw: &mut redis::Connection, payload: &[u8]| {
        let _: i64 = redis::cmd("PUBLISH")
            .arg(&channel)
            .arg(payload)
            .query(raw)
            .unwrap();
    };
    let seq: u64 = redis::cmd("GET")
        .arg(backpressure_redis::__private::seq_key("ns"))
        .query(&mut raw)
        .unwrap_or(0);
    let epoch: u64 = redis::cmd("GET")
        .arg(backpressure_redis::__private::epoch_key("ns"))
        .query(&mut raw)
        .unwrap();
    // The Redis clock: a message read long after its `now` is stale (the bridge resyncs).
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query(&mut raw).unwrap();
    let now = secs * 1000 + micros / 1000;
    let encode = |seq, raise, now, expiry, level, instance, name, key| {
        backpressure_redis::__private::encode_message(
            epoch, seq, raise, now, expiry, level, instance, name, key,
        )
    };
    publish(&mut raw, b"");
    publish(&mut raw, b"\xff\xfe garbage");
    publish(&mut raw, "2|x|R|||||||".as_bytes());
    publish(&mut raw, "|".repeat(5000).as_bytes());
    // In sequence but invalid: a bad name, then an absurd lease (a year).
    publish(
        &mut raw,
        encode(seq + 1, true, now, now + 1000, 0, "evil", "bad name!", None).as_bytes(),
    );
    publish(
        &mut raw,
        encode(
            seq + 2,
            true,
            now,
            now + 31_536_000_000,
            0,
            "evil",
            "backpressure.stuck",
            None,
        )
        .as_bytes(),
    );

    a.raise("backpressure.after").unwrap();
    assert!(wait_until(&b, WAIT, |s| s.is_raised("backpressure.after")).await);
    let stats = bridge_b.stats();
    assert_eq!(stats.malformed_messages, 4, "{stats:?}");
    assert_eq!(stats.invalid_entries, 1, "{stats:?}");
    assert_eq!(stats.absurd_leases, 1, "{stats:?}");
    assert!(!b.is_raised("backpressure.stuck"));

    // A sequence gap (a message from the future) forces a snapshot, which has no phantom.
    publish(
        &mut raw,
        encode(
            seq + 1000,
            true,
            now,
            now + 1000,
            0,
            "evil",
            "backpressure.phantom",
            None,
        )
        .as_bytes(),
    );
    a.raise("backpressure.later").unwrap();
    assert!(wait_until(&b, WAIT, |s| s.is_raised("backpressure.later")).await);
    assert_eq!(
        bridge_b.wait_for(WAIT, |s| *s == Status::Synced).await,
        Status::Synced
    );
    assert!(bridge_b.stats().sequence_gaps >= 1);
    assert!(!b.is_raised("backpressure.phantom"));
    assert!(!b.is_raised("backpressure.stuck"));
}
