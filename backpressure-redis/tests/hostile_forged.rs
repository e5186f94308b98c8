//! Hostile: forged messages on the channel (real redis-server; skipped without one).
//! Anyone who can publish on a namespace's channel can forge its *remote* signals (the crate
//! docs say so); these tests check what a forger must still not be able to do: touch a
//! process's *own local* signals, leave garbage in a sink, grow a sink or a resync storm
//! without bound.

mod common;
mod hostile_common;

use std::time::Duration;

use backpressure::{Level, RaiseOptions};
use backpressure_redis::{OnDisconnect, Status};
use common::{lets_go, publish_raw, redis, until, wait_until};
use hostile_common::{bridge, fence, flood, has, synced, WAIT};
use tokio::time::Instant;

const LEASE: Duration = Duration::from_millis(1500);
const KEEP: OnDisconnect = OnDisconnect::KeepUntilLeaseEnds;

/// A forged retract "from instance `w1`" of an unkeyed `backpressure.db` names the local key
/// `w1`: B's own keyed entry `(backpressure.db, w1)`, not a mirror. (The bug it caught:
/// `unmirror` retracted the id whether or not it was a mirror, so B's own signal went
/// locally, then from Redis, and every peer let go of it too.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_retract_never_removes_a_local_signal() {
    let Some(server) = redis("a_forged_retract_never_removes_a_local_signal") else {
        return;
    };
    let (a, _bridge_a) = bridge(&server.url(), "a", LEASE, KEEP).await;
    let (b, _bridge_b) = bridge(&server.url(), "b", LEASE, KEEP).await;
    b.raise_keyed("backpressure.db", "w1").unwrap();
    assert!(wait_until(&a, WAIT, |s| has(s, "backpressure.db", Some("b/w1"))).await);

    let retract = "2|{epoch}|{seq}|X|{now}|0|0|w1|backpressure.db|";
    publish_raw(&server, "ns", retract, LEASE);
    fence(&a, &b, "backpressure.fence").await;
    assert!(
        has(&b, "backpressure.db", Some("w1")),
        "a forged message retracted B's own signal: {:?}",
        b.snapshot()
    );
    let released = lets_go(&a, "backpressure.db", LEASE * 2);
    assert!(!released.await, "A let go of B's signal");
}

/// A forged raise "from instance `w1`" re-raises B's own `(backpressure.db, w1)` with the
/// forger's TTL and level unless refused. (The bug it caught: `mirror` raised into the sink
/// under `instance/key` without checking that the key was not an own entry, so B's full
/// stop became a 50 % level with a 300 ms TTL, expired, and B retracted it everywhere.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_raise_never_changes_a_local_signal() {
    let Some(server) = redis("a_forged_raise_never_changes_a_local_signal") else {
        return;
    };
    let (a, _bridge_a) = bridge(&server.url(), "a", LEASE, KEEP).await;
    let (b, _bridge_b) = bridge(&server.url(), "b", LEASE, KEEP).await;
    b.raise_keyed("backpressure.db", "w1").unwrap();
    assert!(wait_until(&a, WAIT, |s| has(s, "backpressure.db", Some("b/w1"))).await);

    let released = lets_go(&b, "backpressure.db", LEASE * 2);
    let raise = "2|{epoch}|{seq}|R|{now}|{expiry}|500|w1|backpressure.db|";
    publish_raw(&server, "ns", raise, Duration::from_millis(300));
    fence(&a, &b, "backpressure.fence").await;
    let own = b
        .snapshot()
        .into_iter()
        .find(|s| s.key.as_deref() == Some("w1"));
    let own = own.expect("B's own signal is still raised");
    assert_eq!(own.level, Level::STOP, "{own:?}");
    assert_eq!(own.expires_at, None, "{own:?}");
    assert!(!released.await, "B's own signal lapsed on a forger's TTL");
}

/// An ordinary peer whose instance id is one of B's local keys (instances named after
/// hosts, keys named after hosts): B must keep sharing its own keyed entry. (The bug it
/// caught: once B had seen `w1`, every key `w1` or `w1/...` read as a mirror, so B's renewal
/// left its own `(backpressure.db, w1)` out and its full sync removed it from Redis.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_named_like_a_local_key_does_not_unshare_it() {
    let Some(server) = redis("a_peer_named_like_a_local_key_does_not_unshare_it") else {
        return;
    };
    let (b, _bridge_b) = bridge(&server.url(), "b", LEASE, KEEP).await;
    let (c, _bridge_c) = bridge(&server.url(), "c", LEASE, KEEP).await;
    b.raise_keyed("backpressure.db", "w1").unwrap();
    assert!(wait_until(&c, WAIT, |s| has(s, "backpressure.db", Some("b/w1"))).await);

    let (w1, _bridge_w1) = bridge(&server.url(), "w1", LEASE, KEEP).await;
    fence(&w1, &b, "backpressure.other").await;
    // Two renewals of B (every lease / 3) fall in this window.
    let released = lets_go(&c, "backpressure.db", LEASE * 2);
    assert!(!released.await, "C let go of B's (backpressure.db, w1)");
    assert!(has(&c, "backpressure.db", Some("b/w1")));
}

/// In-sequence forgeries with hostile fields: each is ignored (and counted where the docs
/// say so), B stays `Synced`, and nothing of them is in its sink.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_fields_are_ignored_and_counted() {
    let Some(server) = redis("hostile_fields_are_ignored_and_counted") else {
        return;
    };
    let (a, _bridge_a) = bridge(&server.url(), "a", LEASE, KEEP).await;
    let (b, bridge_b) = bridge(&server.url(), "b", LEASE, KEEP).await;
    let long = "n".repeat(300);
    let invalid = [
        "2|{epoch}|{seq}|R|{now}|{expiry}|nan|evil|backpressure.nan|".to_owned(),
        "2|{epoch}|{seq}|R|{now}|{expiry}|-1|evil|backpressure.neg|".to_owned(),
        "2|{epoch}|{seq}|R|{now}|{expiry}|1001|evil|backpressure.over|".to_owned(),
        "2|{epoch}|{seq}|R|{now}|{expiry}|1e3|evil|backpressure.exp|".to_owned(),
        format!("2|{{epoch}}|{{seq}}|R|{{now}}|{{expiry}}|0|evil|{long}|"),
        format!("2|{{epoch}}|{{seq}}|R|{{now}}|{{expiry}}|0|evil|backpressure.k|{long}"),
        format!("2|{{epoch}}|{{seq}}|R|{{now}}|{{expiry}}|0|{long}|backpressure.i|"),
        "2|{epoch}|{seq}|R|{now}|{expiry}|0|ev/il|backpressure.slash|".to_owned(),
        "2|{epoch}|{seq}|R|{now}|{expiry}|0||backpressure.empty|".to_owned(),
    ];
    let ignored = [
        // Negative TTLs: expired on arrival (a retract of nothing).
        "2|{epoch}|{seq}|R|{now}|0|0|evil|backpressure.past|".to_owned(),
        "2|{epoch}|{seq}|R|99999999999999|{now}|0|evil|backpressure.past|".to_owned(),
        // A raise "by B" itself: a bridge never mirrors its own instance.
        "2|{epoch}|{seq}|R|{now}|{expiry}|0|b|backpressure.self|".to_owned(),
    ];
    let malformed = [
        "2|{epoch}|{seq}|R|{now}|-5|0|evil|backpressure.negttl|".to_owned(),
        "2|{epoch}|{seq}|R|{now}|{expiry}|0|evil|backpressure.big|".to_owned() + &"x".repeat(3000),
        "2|{epoch}|{seq}|R|{now}|nan|0|evil|backpressure.nanttl|".to_owned(),
    ];
    for template in invalid.iter().chain(&ignored).chain(&malformed) {
        publish_raw(&server, "ns", template, Duration::from_secs(10));
    }
    fence(&a, &b, "backpressure.fence").await;
    // Malformed ones are counted in any state (a resync may have let the fence in first).
    let count = malformed.len() as u64;
    let stats = until(WAIT, || bridge_b.stats(), |s| s.malformed_messages >= count).await;
    assert_eq!(stats.invalid_entries, invalid.len() as u64, "{stats:?}");
    // A malformed message cannot be placed in the sequence: the next one reads as a gap.
    assert_eq!(
        stats.malformed_messages,
        malformed.len() as u64,
        "{stats:?}"
    );
    synced(&bridge_b).await;
    let names: Vec<_> = b.snapshot().iter().map(|s| s.name.to_string()).collect();
    assert_eq!(names, vec!["backpressure.fence"], "{stats:?}");
    a.raise("backpressure.after").unwrap();
    assert!(wait_until(&b, WAIT, |s| s.is_raised("backpressure.after")).await);
}

/// A flood of well-formed, in-sequence forged raises (2000 keys) is mirrored (the docs'
/// caveat), but bounded: the next resync (here forced by a sequence gap) replaces the mirror
/// with the sorted set, which has none of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_forged_raises_goes_at_the_next_resync() {
    let Some(server) = redis("a_flood_of_forged_raises_goes_at_the_next_resync") else {
        return;
    };
    let (a, _bridge_a) = bridge(&server.url(), "a", LEASE, KEEP).await;
    let (b, bridge_b) = bridge(&server.url(), "b", LEASE, KEEP).await;
    let raise = "2|{epoch}|{seq}|R|{now}|{expiry}|0|evil|backpressure.flood|k{i}";
    flood(&server, raise, 2000, Duration::from_secs(60), true);
    fence(&a, &b, "backpressure.fence").await;
    let mirrored = b.snapshot().len();
    assert!(mirrored > 1000, "{mirrored} entries");

    let resyncs = bridge_b.stats().resyncs;
    let gap = "2|{epoch}|999999999|R|{now}|{expiry}|0|evil|backpressure.gap|";
    flood(&server, gap, 1, Duration::from_secs(60), false);
    let stats = until(WAIT, || bridge_b.stats(), |s| s.resyncs > resyncs).await;
    assert!(stats.resyncs > resyncs, "{stats:?}");
    synced(&bridge_b).await;
    assert!(
        wait_until(&b, WAIT, |s| !s.is_raised("backpressure.flood")).await,
        "forged mirrors survived a resync"
    );
    assert_eq!(b.snapshot().len(), 1, "{:?}", &b.snapshot()[..3]);
}

/// A burst of messages B cannot place (another epoch, a gap, an unknown version with no
/// position) needs a few snapshots, not one each, and no re-publish of B's own entries (a
/// resync re-publishes them only after a (re)subscription or a real new epoch). (The bug
/// it caught: every such message made the link stale again, so 2000 forged messages cost
/// ~2000 resyncs and 2000 × 20 re-published raises reached A.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_unplaceable_messages_costs_a_bounded_number_of_resyncs() {
    let Some(server) = redis("a_burst_of_unplaceable_messages_costs_few_resyncs") else {
        return;
    };
    let (a, bridge_a) = bridge(&server.url(), "a", LEASE, KEEP).await;
    let (b, bridge_b) = bridge(&server.url(), "b", LEASE, KEEP).await;
    for i in 0..20 {
        b.raise_keyed("backpressure.own", &format!("k{i}")).unwrap();
    }
    assert!(wait_until(&a, WAIT, |s| s.snapshot().len() == 20).await);
    let (before_b, before_a) = (bridge_b.stats(), bridge_a.stats());
    let start = Instant::now();
    let kinds = [
        "2|1|{i}|R|{now}|{expiry}|0|evil|backpressure.epoch|",
        "2|{epoch}|9999999{i}|R|{now}|{expiry}|0|evil|backpressure.gap|",
        "3|{i}",
    ];
    for kind in kinds {
        flood(&server, kind, 700, Duration::from_secs(60), false);
    }
    // The unknown versions come last and are counted in any state: once all are, B has
    // read the whole burst (a fence could arrive earlier, through a snapshot).
    let unknown = before_b.unknown_version_messages + 700;
    let stats = until(
        WAIT,
        || bridge_b.stats(),
        |s| s.unknown_version_messages >= unknown,
    )
    .await;
    assert!(stats.unknown_version_messages >= unknown, "{stats:?}");
    synced(&bridge_b).await;
    fence(&a, &b, "backpressure.fence").await;
    let took = start.elapsed();
    let (after_b, after_a) = (bridge_b.stats(), bridge_a.stats());
    let resyncs = after_b.resyncs - before_b.resyncs;
    let applied_by_a = after_a.applied - before_a.applied;
    eprintln!(
        "2100 forged: {resyncs} resyncs of B, {applied_by_a} messages applied by A, {took:?}"
    );
    assert!(resyncs <= 50, "{resyncs} resyncs for one burst");
    assert!(
        applied_by_a <= 2000,
        "{applied_by_a} re-published raises reached A"
    );
    assert_eq!(bridge_b.status(), Status::Synced);
}

/// A level forged by a flood of in-sequence re-raises of a real peer's entry lasts only until
/// that peer's next renewal (lease / 3): the owner's word wins back within a lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_level_for_a_peer_lasts_until_its_next_renewal() {
    let Some(server) = redis("a_forged_level_for_a_peer_lasts_until_its_next_renewal") else {
        return;
    };
    let (a, _bridge_a) = bridge(&server.url(), "a", LEASE, KEEP).await;
    let (b, _bridge_b) = bridge(&server.url(), "b", LEASE, KEEP).await;
    let half = RaiseOptions::new().level(Level::new(0.5).unwrap());
    a.raise_with("backpressure.db", half).unwrap();
    let level = |s: &backpressure::Sink| {
        s.snapshot()
            .iter()
            .find(|e| &*e.name == "backpressure.db")
            .map(|e| e.level.per_mille())
    };
    assert!(wait_until(&b, WAIT, |s| level(s) == Some(500)).await);
    let forged = "2|{epoch}|{seq}|R|{now}|{expiry}|1000|a|backpressure.db|";
    publish_raw(&server, "ns", forged, Duration::from_secs(60));
    assert!(wait_until(&b, WAIT, |s| level(s) == Some(1000)).await);
    let forged_at = Instant::now();
    assert!(wait_until(&b, LEASE * 2, |s| level(s) == Some(500)).await);
    assert!(forged_at.elapsed() < LEASE, "{:?}", forged_at.elapsed());
}
