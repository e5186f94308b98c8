//! A shared rate under faults: a flush and a Redis restarted empty (the rate goes on, at most
//! a burst beyond its bound), junk in the key (no panic; a forged TAT holds at most a burst,
//! a key of the wrong type holds the worker with a WARN until it is deleted), and a black
//! hole through the fault proxy (each `limits_on_disconnect` policy does what its docs say,
//! and the fleet's rate is back once the path heals).

mod common;
mod rates_kit;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use backpressure::limit::Rate;
use backpressure_redis::{LimitsOnDisconnect, Status};
use common::proxy::Proxy;
use common::{redis, until};
use rates_kit::{bound, bridged, fleet_rate, over, worker, Counter};
use tokio::time::Instant;

const WAIT: Duration = Duration::from_secs(30);
const KEY: &str = "bp:{ns}:rate:relay";

/// One bridged worker of `rate` with plenty of items, running: its counter and bridge.
async fn running(
    url: &str,
    rate: Rate,
) -> (
    Arc<AtomicU64>,
    backpressure_redis::Bridge,
    backpressure::Coordinator<u32>,
) {
    let (sink, bridge) = bridged(url, LimitsOnDisconnect::LocalShare).await;
    let (counter, total) = Counter::local();
    let coordinator = worker(&sink, rate, counter);
    coordinator.enqueue_many(0..100_000).await.unwrap();
    let seen = until(WAIT, || total.load(Ordering::SeqCst), |n| *n >= 20).await;
    assert!(seen >= 20, "the worker runs");
    (total, bridge, coordinator)
}

/// `starts` over `elapsed` kept `rate` for one process with at most `extra` more starts,
/// and reached 80 % of it.
fn assert_kept(starts: u64, elapsed: Duration, rate: &Rate, extra: f64) {
    let most = bound(rate, elapsed, 1) + extra;
    let expected = f64::from(rate.limit) * elapsed.as_secs_f64();
    eprintln!("{starts} starts in {elapsed:?}: bound {most:.1}, expected {expected:.0}");
    assert!(starts as f64 <= most, "{starts} starts, above {most:.1}");
    assert!(
        starts as f64 >= 0.8 * expected,
        "{starts} starts: starved ({expected:.0})"
    );
}

/// Runs `fault` half a second into a 2 s window; asserts the rate went on (at most one
/// effective burst extra).
async fn window_with(url: &str, fault: impl FnOnce()) {
    let rate = fleet_rate(200);
    let (total, _bridge, _worker) = running(url, rate).await;
    let count = || total.load(Ordering::SeqCst);
    let (before, start) = (count(), Instant::now());
    tokio::time::sleep(Duration::from_millis(500)).await;
    fault();
    let at = count();
    // No stall past a call's timeout (200 ms) and a reconnect's first backoffs.
    let moved = until(Duration::from_secs(1), count, |n| *n >= at + 20).await;
    assert!(
        moved >= at + 20,
        "the rate stalled after the fault ({at} -> {moved})"
    );
    tokio::time::sleep_until(start + Duration::from_secs(2)).await;
    let burst = rates_kit::batch(&rate) + 1.0;
    assert_kept(count() - before, start.elapsed(), &rate, burst);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_mid_run_costs_at_most_a_burst() {
    let Some(server) = redis("rate_flush") else {
        return;
    };
    let mut conn = server.raw();
    window_with(&server.url(), move || {
        let _: () = redis::cmd("FLUSHALL").query(&mut conn).unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restarted_empty_costs_at_most_a_burst() {
    let Some(mut server) = redis("rate_restart") else {
        return;
    };
    let url = server.url();
    window_with(&url, || tokio::task::block_in_place(|| server.restart())).await;
}

fn set(url: &str, args: &[&str]) {
    let mut conn = redis::Client::open(url).unwrap().get_connection().unwrap();
    let _: redis::Value = redis::cmd(args[0])
        .arg(&args[1..])
        .query(&mut conn)
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_and_a_forged_tat_hold_the_fleet_at_most_a_burst() {
    let Some(server) = redis("rate_junk") else {
        return;
    };
    let url = server.url();
    let rate = fleet_rate(200).burst(20);
    let (total, bridge, _worker) = running(&url, rate).await;
    let count = || total.load(Ordering::SeqCst);
    let (before, start) = (count(), Instant::now());
    let junks = ["junk", "99999999999999999999999", "-5", "1e300"];
    for junk in junks {
        set(&url, &["SET", KEY, junk]);
        let at = count();
        let seen = until(WAIT, count, |n| *n >= at + 10).await;
        assert!(seen >= at + 10, "{junk:?} stalled the rate");
    }
    // Each junk value reads as a rate at rest: one burst (20) each at most.
    let extra = 20.0 * junks.len() as f64;
    assert_kept(count() - before, start.elapsed(), &rate, extra);
    // A TAT a day ahead (forged): read as a burst just spent, so no burst at all.
    let now_us = {
        let mut conn = server.raw();
        let (s, us): (u64, u64) = redis::cmd("TIME").query(&mut conn).unwrap();
        s * 1_000_000 + us
    };
    let forged = (now_us + 86_400_000_000).to_string();
    let (before, start) = (count(), Instant::now());
    set(&url, &["SET", KEY, &forged]);
    assert!(until(WAIT, count, |n| *n > before + 1).await > before + 1);
    let held = start.elapsed();
    assert!(
        held <= Duration::from_millis(500),
        "a forged TAT held the rate {held:?}"
    );
    tokio::time::sleep_until(start + Duration::from_secs(1)).await;
    assert_kept(count() - before, start.elapsed(), &rate, 0.0);
    assert_eq!(bridge.rate_stats().redis_errors, 0);
}

/// Counts WARN events (the bridge's tasks run on this thread: a current-thread runtime).
struct Warnings(Arc<AtomicU64>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Warnings {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if *event.metadata().level() == tracing::Level::WARN {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[tokio::test]
async fn a_key_of_the_wrong_type_holds_the_worker_with_a_warning_until_deleted() {
    use tracing_subscriber::layer::SubscriberExt;
    let Some(server) = redis("rate_wrongtype") else {
        return;
    };
    let warnings = Arc::new(AtomicU64::new(0));
    let subscriber = tracing_subscriber::registry().with(Warnings(Arc::clone(&warnings)));
    let _guard = tracing::subscriber::set_default(subscriber);
    let url = server.url();
    let (total, bridge, _worker) = running(&url, fleet_rate(200)).await;
    let count = || total.load(Ordering::SeqCst);
    set(&url, &["DEL", KEY]);
    set(&url, &["HSET", KEY, "f", "v"]);
    let errors = until(WAIT, || bridge.rate_stats().redis_errors, |n| *n > 0).await;
    assert!(errors > 0, "the script's WRONGTYPE is counted");
    let (ran, _) = over(Duration::from_millis(500), count).await;
    assert_eq!(ran, 0, "a key of the wrong type holds the worker");
    assert_eq!(
        warnings.load(Ordering::SeqCst),
        1,
        "one WARN for the broken key"
    );
    assert_eq!(
        *bridge.rate_status().borrow(),
        Status::Synced,
        "Redis answers"
    );
    set(&url, &["DEL", KEY]);
    let at = count();
    assert!(
        until(WAIT, count, |n| *n >= at + 20).await >= at + 20,
        "back once deleted"
    );
}

/// Process A (through the proxy, under `policy`) and B (direct) share `fleet_rate(200)`; A
/// is cut off: returns A's starts over 2 s while cut off, and the time it took. Then the
/// path heals and the fleet is back to the shared rate.
async fn cut_off_runs(test: &str, policy: LimitsOnDisconnect) -> Option<(u64, Duration)> {
    let server = redis(test)?;
    let url = server.url();
    let proxy = Proxy::start(server.port).await;
    let rate = fleet_rate(200);
    let (b_total, _b, _b_worker) = running(&url, rate).await;
    let (a_sink, a) = bridged(&proxy.url(), policy).await;
    let (counter, a_total) = Counter::local();
    let a_worker = worker(&a_sink, rate, counter);
    a_worker.enqueue_many(0..300_000).await.unwrap();
    let a_count = || a_total.load(Ordering::SeqCst);
    assert!(until(WAIT, a_count, |n| *n >= 20).await >= 20, "A runs");
    let live = || {
        let mut conn = server.raw();
        let n: usize = redis::cmd("ZCARD")
            .arg(format!("{KEY}:procs"))
            .query(&mut conn)
            .unwrap();
        n
    };
    assert_eq!(
        until(WAIT, live, |n| *n == 2).await,
        2,
        "A and B draw from the rate"
    );

    proxy.black_hole();
    let mut status = a.rate_status();
    let down = status.wait_for(|s| matches!(s, Status::Disconnected { .. }));
    assert!(
        tokio::time::timeout(WAIT, down).await.is_ok(),
        "A notices the black hole"
    );
    let cut = over(Duration::from_secs(2), a_count).await;

    proxy.forward();
    let up = status.wait_for(|s| *s == Status::Synced);
    assert!(tokio::time::timeout(WAIT, up).await.is_ok(), "A is back");
    let fleet = || a_count() + b_total.load(Ordering::SeqCst);
    let _ = over(Duration::from_millis(300), fleet).await; // the first grants settle
    let (starts, elapsed) = over(Duration::from_millis(2_000), fleet).await;
    let most = bound(&rate, elapsed, 2);
    let expected = 200.0 * elapsed.as_secs_f64();
    eprintln!("healed: {starts} starts in {elapsed:?}, bound {most:.1}");
    assert!(starts as f64 <= most, "after healing {starts} > {most:.1}");
    assert!(
        starts as f64 >= 0.8 * expected,
        "after healing {starts} starved"
    );
    assert!(a.rate_stats().disconnects >= 1);
    a_worker.shutdown().await;
    Some(cut)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_share_runs_the_limit_divided_by_the_live_processes() {
    let Some((ran, elapsed)) =
        cut_off_runs("rate_local_share", LimitsOnDisconnect::LocalShare).await
    else {
        return;
    };
    let share = 100.0 * elapsed.as_secs_f64();
    let ratio = ran as f64 / share;
    eprintln!("local_share: {ran} starts in {elapsed:?}: {ratio:.2} x limit / live");
    assert!(
        (0.5..=1.2).contains(&ratio),
        "{ran} starts, {ratio:.2} x the share"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_starts_nothing_while_cut_off() {
    let Some((ran, _)) = cut_off_runs("rate_hold", LimitsOnDisconnect::Hold).await else {
        return;
    };
    assert_eq!(ran, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignore_runs_unbounded_while_cut_off() {
    let Some((ran, elapsed)) = cut_off_runs("rate_ignore", LimitsOnDisconnect::Ignore).await else {
        return;
    };
    let fleet = 200.0 * elapsed.as_secs_f64();
    eprintln!("ignore: {ran} starts in {elapsed:?}");
    assert!(ran as f64 > 3.0 * fleet, "{ran} starts: the limit was kept");
}
