//! Section 1d: `enqueue_stream` against a loop of `enqueue` calls, the same coordinator shape
//! as the throughput section (no-op handler, concurrency 4, capacity 1024), repetitions
//! interleaved and rotated, ratio = median of per-repetition ratios.

use std::time::Instant;

use backpressure::{Coordinator, Sink, WorkContext};

use crate::{coordinator_throughput, median, median_ratio, noop, CAPACITY, CONCURRENCY};

/// Items/s of each side, one value per repetition.
#[derive(Debug, Default)]
pub struct Intake {
    /// `enqueue_stream` of `futures_util::stream::iter(0..n)`, then `drain`.
    pub stream: Vec<f64>,
    /// A loop awaiting `enqueue` per item, then `drain` (section 1's coordinator line).
    pub enqueue_loop: Vec<f64>,
}

/// Items through a coordinator from one `enqueue_stream` call, then `drain`.
async fn stream_throughput(n: u64) -> f64 {
    let coordinator = Coordinator::builder()
        .sink(Sink::new())
        .concurrency(CONCURRENCY)
        .capacity(CAPACITY)
        .build(|item: u64, _ctx: WorkContext| noop(item))
        .expect("valid coordinator");
    let start = Instant::now();
    let mut items = futures_util::stream::iter(0..n);
    let accepted = coordinator
        .enqueue_stream(&mut items)
        .await
        .expect("intake open");
    coordinator.drain().await;
    let elapsed = start.elapsed();
    assert_eq!(accepted as u64, n);
    assert_eq!(coordinator.stats().completed, n);
    n as f64 / elapsed.as_secs_f64()
}

/// `reps` interleaved repetitions of `n` items each (after an untimed warm-up).
pub async fn run(n: u64, reps: usize) -> Intake {
    stream_throughput(n / 10).await;
    let mut r = Intake::default();
    for rep in 0..reps {
        if rep % 2 == 0 {
            r.stream.push(stream_throughput(n).await);
            r.enqueue_loop.push(coordinator_throughput(n).await);
        } else {
            r.enqueue_loop.push(coordinator_throughput(n).await);
            r.stream.push(stream_throughput(n).await);
        }
    }
    r
}

impl Intake {
    fn ratio(&self) -> f64 {
        median_ratio(&self.stream, &self.enqueue_loop)
    }

    /// Prints section 1d.
    pub fn report(&self) {
        let ratio = self.ratio();
        println!(
            "1d. stream intake ({} interleaved reps; ratio = median of per-rep ratios)",
            self.stream.len()
        );
        println!(
            "   enqueue_stream           {:>12.0}   {ratio:>6.3}",
            median(&self.stream)
        );
        println!(
            "   loop of enqueue          {:>12.0}",
            median(&self.enqueue_loop)
        );
        println!(
            "   target enqueue_stream within 10 % of the loop: {ratio:.3} >= 0.900: {}",
            if ratio >= 0.9 { "met" } else { "NOT MET" }
        );
    }

    /// Prints the contract line of this section.
    pub fn contract_lines(&self) {
        println!("enqueue_stream_ratio: {:.3}", self.ratio());
    }
}
