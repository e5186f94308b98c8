//! Section 2c: resume after a real hold. One held slot on a 2-worker runtime, held for 1 ms
//! (long enough for the runtime's other worker to park), then `retract` from a task; the
//! latency is retract → the handler's first instruction. Next to it, the floor: a task parked
//! on a tokio `Notify`, woken with `notify_one` from a task after the same 1 ms, measured the
//! same way. Trials of the two alternate; the `retract` call itself is timed too.
//!
//! `--resume [trials]` runs this section alone (for `perf`).

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use backpressure::{Coordinator, Sink, WorkContext};
use tokio::sync::Notify;

use crate::{percentile, Recorder, CAPACITY, DEFER};

/// How long each trial holds before it wakes the slot (or the floor's task).
pub const HOLD: Duration = Duration::from_millis(1);

/// Sorted latencies of the interleaved trials, in microseconds.
#[derive(Debug, Default)]
pub struct HoldResult {
    /// Retract → first handler start.
    pub resume_us: Vec<f64>,
    /// `notify_one` → the parked task's first instruction.
    pub floor_us: Vec<f64>,
    /// The `retract` call alone, as its caller sees it.
    pub retract_us: Vec<f64>,
    /// Trials whose handler ran before the retract (must stay 0).
    pub leaks: usize,
}

impl HoldResult {
    /// Prints section 2c.
    pub fn report(&self) {
        println!(
            "2c. resume after a real hold ({} ms; one held slot, 2-worker runtime, woken from a \
             task; {} + {} interleaved trials)",
            HOLD.as_millis(),
            self.resume_us.len(),
            self.floor_us.len()
        );
        for (what, v) in [
            ("retract -> handler   ", &self.resume_us),
            ("Notify floor         ", &self.floor_us),
            ("the retract call     ", &self.retract_us),
        ] {
            println!(
                "   {what} p50 {:>9.1} us   p99 {:>9.1} us   max {:>9.1} us",
                percentile(v, 50.0),
                percentile(v, 99.0),
                percentile(v, 100.0)
            );
        }
        let (ours, floor) = (percentile(&self.resume_us, 50.0), self.floor_p50());
        println!(
            "   target p50 within 1.5x of the floor: {ours:.1} <= {:.1}: {}",
            1.5 * floor,
            if ours <= 1.5 * floor {
                "met"
            } else {
                "NOT MET"
            }
        );
        if self.leaks > 0 {
            println!(
                "   WARNING: {} trials started work before the retract",
                self.leaks
            );
        }
    }

    fn floor_p50(&self) -> f64 {
        percentile(&self.floor_us, 50.0)
    }

    /// Prints the contract lines of this section.
    pub fn contract_lines(&self) {
        println!(
            "resume_after_hold_p50_us: {:.1}",
            percentile(&self.resume_us, 50.0)
        );
        println!(
            "resume_after_hold_p99_us: {:.1}",
            percentile(&self.resume_us, 99.0)
        );
        println!("notify_floor_after_hold_p50_us: {:.1}", self.floor_p50());
        println!(
            "notify_floor_after_hold_p99_us: {:.1}",
            percentile(&self.floor_us, 99.0)
        );
        println!(
            "retract_after_hold_call_us: {:.1}",
            percentile(&self.retract_us, 50.0)
        );
    }
}

/// The held slot and the floor's parked task, both on the runtime the trials run on.
struct Held {
    sink: Sink,
    coordinator: Coordinator<u32>,
    slot: Arc<Recorder>,
    notify: Arc<Notify>,
    parked: Arc<Recorder>,
}

impl Held {
    /// Must be called inside the runtime.
    fn new() -> Self {
        let sink = Sink::new();
        let slot = Recorder::new();
        let rec = Arc::clone(&slot);
        let coordinator = Coordinator::builder()
            .sink(sink.clone())
            .concurrency(1)
            .capacity(CAPACITY)
            .build(move |item: u32, _ctx: WorkContext| {
                let rec = Arc::clone(&rec);
                async move {
                    rec.started();
                    black_box(item);
                    rec.finished();
                }
            })
            .expect("valid coordinator");
        let notify = Arc::new(Notify::new());
        let parked = Recorder::new();
        let (n, rec) = (Arc::clone(&notify), Arc::clone(&parked));
        tokio::spawn(async move {
            loop {
                n.notified().await;
                rec.started();
                rec.finished();
            }
        });
        Self {
            sink,
            coordinator,
            slot,
            notify,
            parked,
        }
    }

    /// Returns (retract → handler, the retract call), in microseconds.
    async fn resume_trial(&self, leaks: &mut usize) -> (f64, f64) {
        self.sink.raise(DEFER).expect("valid name");
        self.coordinator.try_enqueue(0).expect("room in the queue");
        tokio::time::sleep(HOLD).await;
        if self
            .slot
            .first_start_ns
            .load(std::sync::atomic::Ordering::SeqCst)
            != 0
        {
            *leaks += 1;
        }
        let t0 = self.slot.now_ns();
        self.sink.retract(DEFER).expect("valid name");
        let call = (self.slot.now_ns() - t0) as f64 / 1e3;
        self.slot.wait_all(1).await;
        (self.slot.take_latency_us(t0), call)
    }

    async fn floor_trial(&self) -> f64 {
        tokio::time::sleep(HOLD).await;
        let t0 = self.parked.now_ns();
        self.notify.notify_one();
        self.parked.wait_all(1).await;
        self.parked.take_latency_us(t0)
    }
}

/// Runs `trials` of each kind, alternating which goes first, on a runtime of its own.
pub fn run(trials: usize) -> HoldResult {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let result = rt.block_on(async move {
        tokio::spawn(async move {
            let held = Held::new();
            let mut r = HoldResult::default();
            // Warm-up, untimed.
            held.resume_trial(&mut r.leaks).await;
            held.floor_trial().await;
            for i in 0..trials {
                if i % 2 == 0 {
                    r.floor_us.push(held.floor_trial().await);
                }
                let (us, call) = held.resume_trial(&mut r.leaks).await;
                r.resume_us.push(us);
                r.retract_us.push(call);
                if i % 2 == 1 {
                    r.floor_us.push(held.floor_trial().await);
                }
            }
            drop(held.coordinator.shutdown().await);
            r
        })
        .await
        .expect("resume-after-hold task")
    });
    let mut r = result;
    for v in [&mut r.resume_us, &mut r.floor_us, &mut r.retract_us] {
        v.sort_by(f64::total_cmp);
    }
    r
}

/// `--resume [trials]`: this section alone, then its contract lines.
pub fn resume_mode(args: &[String]) -> bool {
    let Some(at) = args.iter().position(|a| a == "--resume") else {
        return false;
    };
    let trials = args
        .get(at + 1)
        .and_then(|t| t.parse().ok())
        .unwrap_or(1_000);
    println!("load average at start: {}", crate::loadavg());
    let r = run(trials);
    r.report();
    println!("load average at end: {}", crate::loadavg());
    r.contract_lines();
    true
}
