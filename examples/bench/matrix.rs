//! Section 1c: the coordinator against the library pools of [`crate::pools`], over a producer
//! axis (1 and 4 producers) and a handler axis (no-op, yield once).
//!
//! Each repetition runs every shape, and within a shape every pool back to back, rotating
//! which pool goes first; a ratio is the median of the per-repetition ratios (each pair ran
//! seconds apart under the same machine load), reported with the 10th and 90th percentiles of
//! those ratios as its spread.

use crate::pools::{Handler, Pool, Shape};
use crate::{median, percentile};

/// The shapes measured, the contract shape (1 producer, no-op handler) first.
pub const SHAPES: [Shape; 4] = [
    Shape {
        producers: 1,
        handler: Handler::Noop,
    },
    Shape {
        producers: 4,
        handler: Handler::Noop,
    },
    Shape {
        producers: 1,
        handler: Handler::YieldOnce,
    },
    Shape {
        producers: 4,
        handler: Handler::YieldOnce,
    },
];

/// Items/s per shape (index into [`SHAPES`]) and pool (index into [`Pool::ALL`]), one value
/// per repetition.
#[derive(Debug, Default)]
pub struct Matrix {
    runs: Vec<[Vec<f64>; 3]>,
}

/// A ratio's median and the 10th..90th percentile spread of the per-repetition ratios.
#[derive(Debug, Clone, Copy)]
pub struct Spread {
    pub median: f64,
    pub p10: f64,
    pub p90: f64,
}

/// Runs `reps` interleaved repetitions of `n` items for every shape and pool (after one
/// untimed warm-up of each at `n / 10`).
pub async fn run(n: u64, reps: usize) -> Matrix {
    for shape in SHAPES {
        for pool in Pool::ALL {
            pool.run(shape, n / 10).await;
        }
    }
    let mut m = Matrix {
        runs: SHAPES.iter().map(|_| Default::default()).collect(),
    };
    for rep in 0..reps {
        for (s, shape) in SHAPES.iter().enumerate() {
            for k in 0..Pool::ALL.len() {
                let p = (k + rep + s) % Pool::ALL.len();
                let rate = Pool::ALL[p].run(*shape, n).await;
                m.runs[s][p].push(rate);
            }
        }
    }
    m
}

impl Matrix {
    /// The coordinator's per-repetition ratio against `pool` for shape `s`.
    pub fn ratio(&self, s: usize, pool: Pool) -> Spread {
        let theirs = &self.runs[s][index(pool)];
        let ours = &self.runs[s][index(Pool::Coordinator)];
        let mut ratios: Vec<f64> = ours.iter().zip(theirs).map(|(a, b)| a / b).collect();
        ratios.sort_by(f64::total_cmp);
        Spread {
            median: median(&ratios),
            p10: percentile(&ratios, 10.0),
            p90: percentile(&ratios, 90.0),
        }
    }

    /// Prints the section's table.
    pub fn report(&self, n: u64) {
        let reps = self.runs.first().map_or(0, |r| r[0].len());
        println!(
            "1c. against library pools ({n} items, concurrency {}, capacity {}; {reps} \
             interleaved reps; ratio = coordinator / pool, median [p10..p90] of per-rep ratios)",
            crate::CONCURRENCY,
            crate::CAPACITY
        );
        println!(
            "   shape        coordinator      sharded         mpmc   vs sharded                vs mpmc"
        );
        for (s, shape) in SHAPES.iter().enumerate() {
            let rate = |pool| median(&self.runs[s][index(pool)]);
            let (a, b) = (self.ratio(s, Pool::Sharded), self.ratio(s, Pool::Mpmc));
            println!(
                "   {:<9} {:>12.0} {:>12.0} {:>12.0}   {:.3} [{:.2}..{:.2}]   {:.3} [{:.2}..{:.2}]",
                shape.label(),
                rate(Pool::Coordinator),
                rate(Pool::Sharded),
                rate(Pool::Mpmc),
                a.median,
                a.p10,
                a.p90,
                b.median,
                b.p10,
                b.p90
            );
        }
        println!(
            "   sharded = {} tokio mpsc of {} each, round-robin; mpmc = one async-channel \
             bounded({}) shared by {} tasks",
            crate::CONCURRENCY,
            crate::CAPACITY / crate::CONCURRENCY,
            crate::CAPACITY,
            crate::CONCURRENCY
        );
    }
}

fn index(pool: Pool) -> usize {
    Pool::ALL
        .iter()
        .position(|p| *p == pool)
        .expect("every pool is in ALL")
}
