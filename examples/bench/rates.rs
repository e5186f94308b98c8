//! What a worker's `rate(...)` costs and how exact it is: CPU while 100,000 items wait on a
//! rate whose next start is an hour away, and the error of the achieved start rate over
//! 10,000 starts at 10,000 a second (real time, multi-thread runtime).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backpressure::limit::Rate;
use backpressure::{Coordinator, Sink, WorkContext};

use crate::{idle_empty, idle_window, loadavg, median, median_of, IdleSample};

/// Items queued behind the rate in the CPU measurement.
pub const DEFERRED: usize = 100_000;
/// Starts timed by the accuracy measurement.
pub const STARTS: usize = 10_000;
/// Its rate, per second.
pub const PER_SECOND: u32 = 10_000;

/// CPU of the whole process over the idle window while `DEFERRED` items wait on a rate of one
/// start an hour (the first started at once): one timer for the coordinator, nothing else.
pub async fn idle_rate_deferred() -> IdleSample {
    let coordinator = Coordinator::builder()
        .sink(Sink::new())
        .concurrency(crate::CONCURRENCY)
        .capacity(DEFERRED)
        .rate(Rate::new(1, Duration::from_secs(3_600)))
        .build(|item: u64, _ctx: WorkContext| async move {
            std::hint::black_box(item);
        })
        .expect("valid coordinator");
    for i in 0..DEFERRED as u64 {
        coordinator.enqueue(i).await.expect("intake open");
    }
    let sample = idle_window(|| coordinator.stats().gate_rechecks).await;
    let stats = coordinator.stats();
    assert_eq!(stats.completed, 1, "one start an hour: {stats:?}");
    assert_eq!(stats.queued, DEFERRED - 1);
    let returned = coordinator.shutdown().await;
    assert_eq!(returned.len(), DEFERRED - 1);
    sample
}

/// `|achieved − expected| / expected` in percent: `STARTS` items, enqueued up front, start
/// at `PER_SECOND` (no burst, `CONCURRENCY` slots, no-op handler); the achieved rate is the
/// intervals between the first and the last start over the time they took.
pub async fn rate_error_pct() -> f64 {
    let starts = Arc::new(Mutex::new(Vec::with_capacity(STARTS)));
    let logged = Arc::clone(&starts);
    let coordinator = Coordinator::builder()
        .sink(Sink::new())
        .concurrency(crate::CONCURRENCY)
        .capacity(STARTS)
        .rate(Rate::new(PER_SECOND, Duration::from_secs(1)))
        .build(move |item: u64, _ctx: WorkContext| {
            logged.lock().expect("log").push(Instant::now());
            async move {
                std::hint::black_box(item);
            }
        })
        .expect("valid coordinator");
    coordinator
        .enqueue_many(0..STARTS as u64)
        .await
        .expect("intake open");
    coordinator.drain().await;
    let mut starts = starts.lock().expect("log").clone();
    assert_eq!(starts.len(), STARTS);
    starts.sort();
    let took = starts[STARTS - 1] - starts[0];
    let achieved = (STARTS - 1) as f64 / took.as_secs_f64();
    let expected = f64::from(PER_SECOND);
    (achieved - expected).abs() / expected * 100.0
}

/// `--rates`: this file's two figures alone, next to the idle runtime (3 interleaved windows,
/// 3 accuracy runs); for checking them quickly. Not part of the benchmark proper.
pub fn rates_mode(args: &[String]) -> bool {
    if !args.iter().any(|a| a == "--rates") {
        return false;
    }
    println!("load average at start: {}", loadavg());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (empty, deferred, errors) = rt.block_on(async {
        tokio::spawn(async {
            let (mut empty, mut deferred, mut errors) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..3 {
                empty.push(idle_empty().await);
                deferred.push(idle_rate_deferred().await);
                errors.push(rate_error_pct().await);
            }
            (empty, deferred, errors)
        })
        .await
        .expect("idle task")
    });
    println!("load average at end: {}", loadavg());
    let empty_ms = median_of(&empty, |x| x.cpu_ms);
    let wait_ms = median_of(&deferred, |x| x.cpu_ms);
    println!("idle_runtime_cpu_ms: {empty_ms:.2}");
    println!(
        "rate_wait_cpu_ms: {wait_ms:.2} (target <= idle + 1 ms: {})",
        if wait_ms <= empty_ms + 1.0 {
            "met"
        } else {
            "MISSED"
        }
    );
    println!(
        "rate_wait_rechecks: {:.0}",
        median_of(&deferred, |x| x.rechecks as f64)
    );
    println!(
        "rate_local_error_pct: {:.3} (runs: {errors:.3?})",
        median(&errors)
    );
    true
}
