//! Hostile: junk in every key of the namespace (real redis-server; skipped without one).
//! A key of the wrong type makes every script fail: no bridge may say `Synced` then (a raise
//! would not reach anyone), none panics, and both recover once the key is deleted. Junk
//! *content* of the right type (members, scores, levels, epochs) is ignored and counted, and
//! junk under a bridge's own instance is removed by its next renewal.

mod common;
mod hostile_common;

use std::time::Duration;

use backpressure::Sink;
use backpressure_redis::__private::{entries_key, epoch_key, seq_key};
use backpressure_redis::{Bridge, OnDisconnect, Status};
use common::{lets_go, redis, until, wait_until, RedisServer};
use hostile_common::{bridge, fence, flood, has, synced, NS, WAIT};

const LEASE: Duration = Duration::from_millis(1500);
const KEEP: OnDisconnect = OnDisconnect::KeepUntilLeaseEnds;

fn levels_key() -> String {
    format!("bp:{{{NS}}}:levels")
}

fn run(server: &RedisServer, args: &[&str]) {
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    let _: redis::Value = cmd.query(&mut server.raw()).expect("junk command");
}

/// Waits until `bridge` leaves `Synced` (a script failed on the junk), at most a lease:
/// its next renewal, every lease / 3, runs one.
async fn leaves_synced(bridge: &Bridge, what: &str) {
    let status = bridge.wait_for(LEASE * 2, |s| *s != Status::Synced).await;
    assert_eq!(status, Status::Resyncing, "{what}: {bridge:?}");
}

/// One key of the wrong type: both bridges stop saying `Synced` and say so for as long as
/// the junk is there; after a `DEL` everything flows again and A's raise is back in B.
async fn wrong_type(
    server: &RedisServer,
    (a, bridge_a): (&Sink, &Bridge),
    b: (&Sink, &Bridge),
    junk: &[&str],
) {
    let (b, bridge_b) = b;
    let key = junk[1];
    let what = junk.join(" ");
    // In one transaction: a bridge's script between the two would recreate the key.
    let mut replace = redis::pipe();
    replace.atomic().cmd("DEL").arg(key).ignore();
    let mut cmd = redis::cmd(junk[0]);
    for arg in &junk[1..] {
        cmd.arg(*arg);
    }
    replace.add_command(cmd).ignore();
    let () = replace.query(&mut server.raw()).expect("junk commands");
    leaves_synced(bridge_a, &what).await;
    leaves_synced(bridge_b, &what).await;
    // Several retries later, still not Synced.
    let later = bridge_b.wait_for(LEASE / 2, |s| *s == Status::Synced).await;
    assert_ne!(later, Status::Synced, "{what}: Synced with junk in {key}");
    let errors = bridge_b.stats().redis_errors;
    assert!(errors >= 1, "{what}");

    run(server, &["DEL", key]);
    synced(bridge_a).await;
    synced(bridge_b).await;
    assert!(
        wait_until(b, WAIT, |s| s.is_raised("backpressure.x")).await,
        "{what}: A's signal not back in B"
    );
    let probe = format!("backpressure.after-{}", key.rsplit(':').next().unwrap());
    fence(a, b, &probe).await;
    a.retract(&probe).unwrap();
    assert!(
        wait_until(b, WAIT, |s| !s.is_raised(&probe)).await,
        "{what}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_of_the_wrong_type_is_never_synced_and_recovers_once_deleted() {
    let Some(server) = redis("a_key_of_the_wrong_type_is_never_synced") else {
        return;
    };
    let (a, bridge_a) = bridge(&server.url(), "a", LEASE, KEEP).await;
    let (b, bridge_b) = bridge(&server.url(), "b", LEASE, KEEP).await;
    a.raise("backpressure.x").unwrap();
    // B has an entry of its own, so that its renewals write every key (see
    // `a_levels_key_of_the_wrong_type_is_never_synced` for a B without).
    b.raise("backpressure.own").unwrap();
    assert!(wait_until(&b, WAIT, |s| s.is_raised("backpressure.x")).await);
    let (entries, levels, seq, epoch) = (entries_key(NS), levels_key(), seq_key(NS), epoch_key(NS));
    let cases: [&[&str]; 6] = [
        &["SET", &entries, "junk"],
        &["HSET", &entries, "f", "v"],
        &["SET", &levels, "junk"],
        &["HSET", &seq, "f", "v"],
        &["RPUSH", &seq, "1"],
        &["HSET", &epoch, "f", "v"],
    ];
    for junk in cases {
        wrong_type(&server, (&a, &bridge_a), (&b, &bridge_b), junk).await;
    }
}

/// The levels hash of the wrong type while B has nothing of its own: A's raises all fail
/// in Redis, so B must not say `Synced`. (The bug it caught: B's renewal script touches the
/// levels hash only for its own entries, and the prelude checked the counter's type alone,
/// so nothing B ran failed.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_levels_key_of_the_wrong_type_is_never_synced() {
    let Some(server) = redis("a_levels_key_of_the_wrong_type_is_never_synced") else {
        return;
    };
    let (a, bridge_a) = bridge(&server.url(), "a", LEASE, KEEP).await;
    let (b, bridge_b) = bridge(&server.url(), "b", LEASE, KEEP).await;
    a.raise("backpressure.x").unwrap();
    assert!(wait_until(&b, WAIT, |s| s.is_raised("backpressure.x")).await);
    run(&server, &["SET", &levels_key(), "junk"]);
    leaves_synced(&bridge_a, "levels junk, A").await;
    // A cannot publish anything now: a raise of A's right then is not seen by B.
    a.raise("backpressure.unseen").unwrap();
    leaves_synced(&bridge_b, "levels junk, B").await;
    assert!(!b.is_raised("backpressure.unseen"));
}

/// Junk of the right type: epochs that are not epochs, members that are not members,
/// scores and levels that are not numbers, entries with absurd leases. Every bridge stays
/// (or comes back) `Synced`, mirrors none of it, and A's signal is held throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_content_is_ignored_and_counted() {
    let Some(server) = redis("junk_content_is_ignored_and_counted") else {
        return;
    };
    let (a, bridge_a) = bridge(&server.url(), "a", LEASE, KEEP).await;
    let (b, bridge_b) = bridge(&server.url(), "b", LEASE, KEEP).await;
    a.raise("backpressure.x").unwrap();
    assert!(wait_until(&b, WAIT, |s| s.is_raised("backpressure.x")).await);
    let released = lets_go(&b, "backpressure.x", LEASE * 3);

    let (entries, levels) = (entries_key(NS), levels_key());
    run(&server, &["SET", &epoch_key(NS), "not-an-epoch"]);
    run(
        &server,
        &["ZADD", &entries, "inf", "junk", "1e300", "x|y|z"],
    );
    run(
        &server,
        &["ZADD", &entries, "+inf", "evil|backpressure.forever|"],
    );
    run(&server, &["ZADD", &entries, "9e15", "evil|bad name|"]);
    run(
        &server,
        &["ZADD", &entries, "9e15", "evil|backpressure.lvl|"],
    );
    run(
        &server,
        &[
            "HSET",
            &levels,
            "evil|backpressure.lvl|",
            "nan",
            "junk",
            "-1",
        ],
    );
    // A message B cannot place makes it resync: the snapshot reads all of the above.
    flood(&server, "3|{i}", 1, LEASE, false);
    let stats = until(WAIT, || bridge_b.stats(), |s| s.invalid_entries >= 3).await;
    synced(&bridge_b).await;
    synced(&bridge_a).await;
    fence(&a, &b, "backpressure.fence").await;
    let mut names: Vec<_> = b.snapshot().iter().map(|s| s.name.to_string()).collect();
    names.sort();
    assert_eq!(names, ["backpressure.fence", "backpressure.x"], "{stats:?}");
    assert!(
        stats.invalid_entries + stats.absurd_leases >= 4,
        "{stats:?}"
    );
    assert!(
        !released.await,
        "B let go of A's signal while the keys held junk"
    );
}

/// Junk under a bridge's own instance (`b|...` members) is another process's forgery in
/// its name: B's next full renewal (lease / 3) removes it from Redis, and A lets it go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_under_an_own_instance_goes_at_its_next_renewal() {
    let Some(server) = redis("junk_under_an_own_instance_goes_at_its_next_renewal") else {
        return;
    };
    let (a, _bridge_a) = bridge(&server.url(), "a", LEASE, KEEP).await;
    let (_b, _bridge_b) = bridge(&server.url(), "b", LEASE, KEEP).await;
    let (secs, _): (u64, u64) = redis::cmd("TIME").query(&mut server.raw()).unwrap();
    let expiry = ((secs + 10) * 1000).to_string();
    let member = "b|backpressure.fake|";
    run(&server, &["ZADD", &entries_key(NS), &expiry, member]);
    // A sees it at its next snapshot (forced by a message it cannot place)...
    flood(&server, "3|{i}", 1, LEASE, false);
    let fake = |s: &Sink| has(s, "backpressure.fake", Some("b"));
    let seen = wait_until(&a, LEASE, fake).await;
    // ...unless B's renewal was first: either way it is gone within a renewal.
    assert!(
        wait_until(&a, LEASE, |s| !fake(s)).await,
        "A still holds the forgery (seen: {seen})"
    );
    let members = || -> Vec<String> {
        redis::cmd("ZRANGE")
            .arg(entries_key(NS))
            .arg(0)
            .arg(-1)
            .query(&mut server.raw())
            .unwrap()
    };
    let left = until(LEASE, members, |m| !m.iter().any(|m| m == member)).await;
    assert!(!left.iter().any(|m| m == member), "{left:?}");
}

/// Blocks until the next renewal of A's `backpressure.smtp` is published, then flushes.
fn flush_right_after_a_renews(server: &RedisServer) {
    let mut conn = server.raw();
    let mut pubsub = conn.as_pubsub();
    pubsub
        .subscribe(backpressure_redis::__private::channel(NS))
        .unwrap();
    pubsub.set_read_timeout(Some(WAIT)).unwrap();
    loop {
        let payload: String = pubsub.get_message().unwrap().get_payload().unwrap();
        if payload.contains("|R|") && payload.contains("|a|backpressure.smtp|") {
            break;
        }
    }
    run(server, &["FLUSHALL"]);
}

/// `FLUSHALL` while A's signal is raised and B (under `hold_until_reconnect`) has one of its
/// own: A still raises it, so B must never let go, also when B's renewal is the first
/// script after the flush (here: B renews more often, and the flush follows A's renewal):
/// its own raise, in the new epoch, makes B resync, and that snapshot (taken before A, a
/// little farther away, has re-published) has no entry of A's. (The bug it caught:
/// `Inbound::load` dropped the mirror until A's renewal brought it back, the same cause as
/// `hostile_faults::redis_restarted_empty_never_lets_a_raised_signal_go`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushall_never_lets_a_raised_signal_go() {
    let Some(server) = redis("flushall_never_lets_a_raised_signal_go") else {
        return;
    };
    let hold = OnDisconnect::HoldUntilReconnect;
    // A is a little farther from Redis (100 ms round trips): it re-publishes on B's first
    // message of the new epoch, but after B's snapshot.
    let far = hostile_common::delay::DelayProxy::start(server.port).await;
    far.round_trip(Duration::from_millis(100));
    let (a, bridge_a) = bridge(&far.url(), "a", LEASE, KEEP).await;
    // B renews every 300 ms, A every 500 ms: after a flush that follows A's renewal, B's
    // renewal is the first script.
    let (b, bridge_b) = bridge(&server.url(), "b", LEASE * 3 / 5, hold).await;
    a.raise("backpressure.smtp").unwrap();
    b.raise("backpressure.own").unwrap();
    assert!(wait_until(&b, WAIT, |s| s.is_raised("backpressure.smtp")).await);
    let mut flickers = 0;
    let server = std::sync::Arc::new(server);
    for _ in 0..3 {
        let released = lets_go(&b, "backpressure.smtp", LEASE);
        let for_flush = std::sync::Arc::clone(&server);
        tokio::task::spawn_blocking(move || flush_right_after_a_renews(&for_flush))
            .await
            .unwrap();
        if released.await {
            flickers += 1;
        }
        synced(&bridge_a).await;
        synced(&bridge_b).await;
        assert!(wait_until(&b, WAIT, |s| s.is_raised("backpressure.smtp")).await);
    }
    assert_eq!(
        flickers, 0,
        "B let go of A's signal after {flickers} of 3 flushes"
    );
}
