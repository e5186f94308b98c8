//! What items waiting for a retry cost: CPU while 1,000,000 of them wait (their backoff an
//! hour away), and heap bytes per waiting item beyond the item itself.
//!
//! Every item of a worker with `retry(...)` fails its first attempt at once, so it goes into
//! the coordinator's one timer structure (a min-heap under the state's lock, one timer task
//! per coordinator) and stays there for the whole measurement.

use std::time::Duration;

use backpressure::retry::Retry;
use backpressure::{Coordinator, Sink, WorkContext};

use crate::{allocated, idle_empty, idle_window, loadavg, median_of, memory, IdleSample};

/// Items waiting for a retry in each measurement.
pub const WAITING: usize = 1_000_000;

/// Items enqueued at a time by the memory measurement before it waits for them all to be
/// retry-waiting, so that the queue itself never grows beyond this (its buffers keep their
/// high-water capacity, which is the queue's cost, not the waiting retries').
const CHUNK: usize = 1_024;

/// A worker whose every first attempt fails and whose retry is an hour away.
fn failing_worker() -> Coordinator<u64> {
    Coordinator::builder()
        .sink(Sink::new())
        .concurrency(crate::CONCURRENCY)
        .capacity(WAITING)
        .retry(
            Retry::new(2)
                .backoff(Duration::from_secs(3_600))
                .max_backoff(Duration::from_secs(3_600))
                .jitter(0.0),
        )
        .build(|item: u64, _ctx: WorkContext| async move {
            std::hint::black_box(item);
            Err::<(), _>("downstream busy")
        })
        .expect("valid coordinator")
}

/// Waits (yielding, then sleeping 1 ms at a time) until `n` items wait for their retry.
async fn until_waiting(coordinator: &Coordinator<u64>, n: usize) {
    let mut spins = 0u32;
    loop {
        let stats = coordinator.stats();
        if stats.retry_waiting == n {
            assert_eq!(stats.retried, n as u64, "every item failed once");
            return;
        }
        assert!(stats.is_consistent(), "{stats:?}");
        spins += 1;
        if spins < 64 {
            tokio::task::yield_now().await;
        } else {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// CPU of the whole process over the idle window while `WAITING` items wait for a retry
/// (multi-thread runtime, interleaved with the other idle variants).
pub async fn idle_retry_waiting() -> IdleSample {
    let coordinator = failing_worker();
    for i in 0..WAITING as u64 {
        coordinator.enqueue(i).await.expect("intake open");
    }
    until_waiting(&coordinator, WAITING).await;
    let sample = idle_window(|| coordinator.stats().gate_rechecks).await;
    let stats = coordinator.stats();
    assert_eq!(
        stats.retry_waiting, WAITING,
        "no retry came due in the window"
    );
    assert_eq!(stats.retried, WAITING as u64, "no retry ran in the window");
    let returned = coordinator.shutdown().await;
    assert_eq!(
        returned.len(),
        WAITING,
        "shutdown hands every waiting retry back"
    );
    sample
}

/// Heap bytes per waiting item beyond `size_of::<u64>()` (current-thread runtime, counting
/// allocator): the growth from the built coordinator to `WAITING` items waiting, enqueued
/// `CHUNK` at a time.
pub async fn retry_waiting_bytes() -> f64 {
    let coordinator = failing_worker();
    tokio::task::yield_now().await;
    let heap0 = allocated();
    let mut next = 0u64;
    while (next as usize) < WAITING {
        let end = (next + CHUNK as u64).min(WAITING as u64);
        for i in next..end {
            coordinator.try_enqueue(i).expect("room in the queue");
        }
        next = end;
        until_waiting(&coordinator, next as usize).await;
    }
    let heap1 = allocated();
    let returned = coordinator.shutdown().await;
    assert_eq!(returned.len(), WAITING);
    let per_item = heap1.saturating_sub(heap0) as f64 / WAITING as f64;
    per_item - std::mem::size_of::<u64>() as f64
}

/// `--retries`: this file's two figures alone, next to the idle runtime (3 interleaved
/// windows) and the queued-item memory of a worker without retry; for checking them quickly.
/// Not part of the benchmark proper.
pub fn retries_mode(args: &[String]) -> bool {
    if !args.iter().any(|a| a == "--retries") {
        return false;
    }
    println!("load average at start: {}", loadavg());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (empty, waiting) = rt.block_on(async {
        tokio::spawn(async {
            let (mut empty, mut waiting) = (Vec::new(), Vec::new());
            for _ in 0..3 {
                empty.push(idle_empty().await);
                waiting.push(idle_retry_waiting().await);
            }
            (empty, waiting)
        })
        .await
        .expect("idle task")
    });
    drop(rt);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (mem, bytes) = rt.block_on(async { (memory().await, retry_waiting_bytes().await) });
    println!("load average at end: {}", loadavg());
    println!(
        "idle_runtime_cpu_ms: {:.2}",
        median_of(&empty, |x| x.cpu_ms)
    );
    println!(
        "retry_waiting_cpu_ms_1m: {:.2}",
        median_of(&waiting, |x| x.cpu_ms)
    );
    println!("bytes_per_queued_item: {:.2}", mem.coordinator_bytes);
    println!("retry_waiting_bytes_per_item: {bytes:.2}");
    true
}
