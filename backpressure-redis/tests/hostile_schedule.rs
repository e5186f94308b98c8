//! Hostile: random fault schedules, as a property (proptest, few cases, each bounded; real
//! redis-server; skipped without one). B reaches Redis through the delay-line proxy; each
//! step is a fault (100 ms round trips, a black hole, a reset, a `FLUSHALL`, Redis restarted
//! empty) of a random length, then its end. After every step:
//!
//! * B is `Synced` again within [`RECOVER`];
//! * once `Synced`, a raise and a retract by a peer reach it (`Synced` means "would see a
//!   raise made right then");
//! * the signal A has raised all along is mirrored again;
//! * during a black hole B leaves `Synced` within half a lease (plus slack) and does not say
//!   `Synced` again before the hole ends.

mod common;
mod hostile_common;

use std::time::Duration;

use backpressure::Sink;
use backpressure_redis::{Bridge, OnDisconnect, Status};
use common::{redis, wait_until, RedisServer};
use hostile_common::delay::DelayProxy;
use hostile_common::{bridge, StatusLog, WAIT};
use proptest::prelude::*;
use tokio::time::Instant;

const LEASE: Duration = Duration::from_millis(1500);
/// How long after a fault ends B must be `Synced` again (reconnect backoff capped at 200 ms,
/// a resync, a loaded machine).
const RECOVER: Duration = Duration::from_secs(5);
const SLACK: Duration = Duration::from_millis(500);
/// How long a probe's raise or retract may take to reach B once it is `Synced`.
const PROBE: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy)]
enum Fault {
    Latency(Duration),
    BlackHole(Duration),
    Reset,
    FlushAll,
    RestartEmpty,
}

fn fault() -> impl Strategy<Value = Fault> {
    let ms = |lo: u64, hi: u64| (lo..hi).prop_map(Duration::from_millis);
    prop_oneof![
        ms(200, 800).prop_map(Fault::Latency),
        ms(200, 2500).prop_map(Fault::BlackHole),
        Just(Fault::Reset),
        Just(Fault::FlushAll),
        Just(Fault::RestartEmpty),
    ]
}

struct World {
    server: RedisServer,
    proxy: DelayProxy,
    a: (Sink, Bridge),
    b: (Sink, Bridge),
    log: StatusLog,
}

/// Applies `fault` and ends it; returns an error naming a broken invariant.
async fn step(w: &mut World, fault: Fault) -> Result<(), String> {
    let bridge_b = &w.b.1;
    match fault {
        Fault::Latency(d) => {
            w.proxy.round_trip(Duration::from_millis(100));
            tokio::time::sleep(d).await; // The fault's length.
            w.proxy.round_trip(Duration::ZERO);
        }
        Fault::BlackHole(d) => {
            let start = Instant::now();
            w.proxy.black_hole();
            tokio::time::sleep(d).await; // The fault's length.
            let end = Instant::now();
            w.proxy.forward();
            if d > LEASE / 2 + SLACK {
                let left = w.log.first_after(start, |s| *s != Status::Synced);
                let left = left.ok_or(format!("still Synced after a {d:?} hole"))?;
                if left - start > LEASE / 2 + SLACK {
                    return Err(format!("left Synced {:?} into the hole", left - start));
                }
                if w.log.between(left, end).contains(&Status::Synced) {
                    return Err("Synced again inside the hole".into());
                }
            }
        }
        Fault::Reset => w.proxy.reset(),
        Fault::FlushAll => {
            let () = redis::cmd("FLUSHALL").query(&mut w.server.raw()).unwrap();
        }
        Fault::RestartEmpty => w.server.restart(),
    }
    let status = bridge_b.wait_for(RECOVER, |s| *s == Status::Synced).await;
    if status != Status::Synced {
        return Err(format!(
            "not Synced {RECOVER:?} after the fault: {status:?}"
        ));
    }
    Ok(())
}

/// A raise and a retract of A reach B within [`PROBE`] each; A's standing signal is back.
async fn check(w: &World, n: usize) -> Result<(), String> {
    let (a, b) = (&w.a.0, &w.b.0);
    let name = format!("backpressure.probe{n}");
    a.raise(&name).unwrap();
    if !wait_until(b, PROBE, |s| s.is_raised(&name)).await {
        return Err(format!("{name}: a raise after Synced did not arrive"));
    }
    a.retract(&name).unwrap();
    if !wait_until(b, PROBE, |s| !s.is_raised(&name)).await {
        return Err(format!("{name}: a retract after Synced did not arrive"));
    }
    if !wait_until(b, WAIT, |s| s.is_raised("backpressure.base")).await {
        return Err("A's standing signal is not mirrored again".into());
    }
    Ok(())
}

async fn schedule(faults: Vec<Fault>) -> Result<(), String> {
    let Some(server) = redis("random_fault_schedules") else {
        return Ok(());
    };
    let proxy = DelayProxy::start(server.port).await;
    let a = bridge(&server.url(), "a", LEASE, OnDisconnect::KeepUntilLeaseEnds).await;
    let b = bridge(&proxy.url(), "b", LEASE, OnDisconnect::HoldUntilReconnect).await;
    let log = StatusLog::start(&b.1);
    let mut world = World {
        server,
        proxy,
        a,
        b,
        log,
    };
    world.a.0.raise("backpressure.base").unwrap();
    world.b.0.raise("backpressure.own").unwrap();
    check(&world, 0).await?;
    for (n, fault) in faults.into_iter().enumerate() {
        step(&mut world, fault)
            .await
            .map_err(|e| format!("step {n} {fault:?}: {e}"))?;
        check(&world, n + 1)
            .await
            .map_err(|e| format!("step {n} {fault:?}: {e}"))?;
    }
    let own = wait_until(&world.a.0, WAIT, |s| s.is_raised("backpressure.own")).await;
    own.then_some(())
        .ok_or_else(|| "B's own signal is not back in A".into())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 3,
        max_shrink_iters: 4,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_fault_schedule_ends_synced_with_nothing_lost(
        faults in proptest::collection::vec(fault(), 1..=3)
    ) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let result = runtime.block_on(schedule(faults));
        prop_assert!(result.is_ok(), "{}", result.unwrap_err());
    }
}

/// Every kind of fault once, in a fixed order (the random schedules may miss some).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_fault_once() {
    let faults = vec![
        Fault::Latency(Duration::from_millis(400)),
        Fault::BlackHole(Duration::from_millis(1300)),
        Fault::Reset,
        Fault::FlushAll,
        Fault::RestartEmpty,
    ];
    if let Err(e) = schedule(faults).await {
        panic!("{e}");
    }
}
