//! The worker pools the coordinator is compared with, and the coordinator itself, run on the
//! same shape of load: `producers` tasks share `n` items, `CONCURRENCY` consumers run a handler
//! on each, and the figure is items per second from the first send until every item is handled.
//!
//! The pools are what a user who does not need signals would write:
//!
//! - **sharded**: `CONCURRENCY` bounded tokio `mpsc` channels, one per worker task, each of
//!   `CAPACITY / CONCURRENCY`, fed round-robin by every producer;
//! - **mpmc**: one bounded `async-channel` of `CAPACITY` shared by `CONCURRENCY` worker tasks
//!   (the crate's multi-consumer channel; no lock around the receiver).
//!
//! Every pool and the coordinator assert that exactly `n` items were handled.

use std::hint::black_box;
use std::time::Instant;

use backpressure::{Coordinator, Sink, WorkContext};
use tokio::sync::mpsc;

use crate::{CAPACITY, CONCURRENCY};

/// What the handler does with each item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handler {
    /// Nothing (the dispatch cost alone).
    Noop,
    /// Yields to the scheduler once, as an async handler awaiting anything does.
    YieldOnce,
}

/// The load a pool runs: how many producer tasks, and which handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Producer tasks sharing the items (each sends a contiguous range).
    pub producers: u64,
    /// The handler every consumer runs.
    pub handler: Handler,
}

impl Shape {
    /// A short label for reports: `1p noop`, `4p yield`.
    pub fn label(self) -> String {
        let handler = match self.handler {
            Handler::Noop => "noop",
            Handler::YieldOnce => "yield",
        };
        format!("{}p {handler}", self.producers)
    }
}

/// The pools of a throughput comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pool {
    /// A [`Coordinator`] with the same concurrency and capacity.
    Coordinator,
    /// `CONCURRENCY` tokio `mpsc` channels, round-robin.
    Sharded,
    /// One `async-channel` shared by `CONCURRENCY` tasks.
    Mpmc,
}

impl Pool {
    /// Every pool, in report order.
    pub const ALL: [Pool; 3] = [Pool::Coordinator, Pool::Sharded, Pool::Mpmc];

    /// Items per second for `n` items of `shape`.
    pub async fn run(self, shape: Shape, n: u64) -> f64 {
        match self {
            Pool::Coordinator => coordinator(shape, n).await,
            Pool::Sharded => sharded(shape, n).await,
            Pool::Mpmc => mpmc(shape, n).await,
        }
    }
}

/// The handler body every pool runs.
async fn handle(item: u64, handler: Handler) {
    black_box(item);
    if handler == Handler::YieldOnce {
        tokio::task::yield_now().await;
    }
}

/// The items producer `p` of `producers` sends: a contiguous share of `0..n`.
fn share(n: u64, producers: u64, p: u64) -> std::ops::Range<u64> {
    let per = n.div_ceil(producers);
    (p * per).min(n)..((p + 1) * per).min(n)
}

/// Spawns one task per producer running `send` over its share, and waits for all of them.
async fn produce<F, Fut>(shape: Shape, n: u64, send: F)
where
    F: Fn(u64, std::ops::Range<u64>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let tasks: Vec<_> = (0..shape.producers)
        .map(|p| tokio::spawn(send(p, share(n, shape.producers, p))))
        .collect();
    for task in tasks {
        task.await.expect("producer ran");
    }
}

async fn coordinator(shape: Shape, n: u64) -> f64 {
    let handler = shape.handler;
    let coordinator = Coordinator::builder()
        .sink(Sink::new())
        .concurrency(CONCURRENCY)
        .capacity(CAPACITY)
        .build(move |item: u64, _ctx: WorkContext| handle(item, handler))
        .expect("valid coordinator");
    let start = Instant::now();
    produce(shape, n, |_, items| {
        let coordinator = coordinator.clone();
        async move {
            for i in items {
                coordinator.enqueue(i).await.expect("intake open");
            }
        }
    })
    .await;
    coordinator.drain().await;
    let elapsed = start.elapsed();
    assert_eq!(coordinator.stats().completed, n);
    n as f64 / elapsed.as_secs_f64()
}

/// Spawns `CONCURRENCY` consumers; each returns how many items it handled.
fn consumers<Fut>(mut next: impl FnMut(usize) -> Fut) -> Vec<tokio::task::JoinHandle<u64>>
where
    Fut: std::future::Future<Output = u64> + Send + 'static,
{
    (0..CONCURRENCY).map(|w| tokio::spawn(next(w))).collect()
}

async fn handled(workers: Vec<tokio::task::JoinHandle<u64>>) -> u64 {
    let mut done = 0;
    for worker in workers {
        done += worker.await.expect("worker ran");
    }
    done
}

async fn sharded(shape: Shape, n: u64) -> f64 {
    let handler = shape.handler;
    let (senders, mut receivers): (Vec<_>, Vec<_>) = (0..CONCURRENCY)
        .map(|_| {
            let (tx, rx) = mpsc::channel::<u64>(CAPACITY / CONCURRENCY);
            (tx, Some(rx))
        })
        .unzip();
    let workers = consumers(|w| {
        let mut rx = receivers[w].take().expect("one consumer per shard");
        async move {
            let mut done = 0;
            while let Some(item) = rx.recv().await {
                handle(item, handler).await;
                done += 1;
            }
            done
        }
    });
    drop(receivers);
    let start = Instant::now();
    produce(shape, n, |p, items| {
        let senders = senders.clone();
        async move {
            // Each producer starts on a different shard so they do not move in lockstep.
            for (k, i) in items.enumerate() {
                let shard = (p as usize + k) % senders.len();
                senders[shard].send(i).await.expect("receiver alive");
            }
        }
    })
    .await;
    drop(senders);
    let done = handled(workers).await;
    let elapsed = start.elapsed();
    assert_eq!(done, n);
    n as f64 / elapsed.as_secs_f64()
}

async fn mpmc(shape: Shape, n: u64) -> f64 {
    let handler = shape.handler;
    let (tx, rx) = async_channel::bounded::<u64>(CAPACITY);
    let workers = consumers(|_| {
        let rx = rx.clone();
        async move {
            let mut done = 0;
            while let Ok(item) = rx.recv().await {
                handle(item, handler).await;
                done += 1;
            }
            done
        }
    });
    drop(rx);
    let start = Instant::now();
    produce(shape, n, |_, items| {
        let tx = tx.clone();
        async move {
            for i in items {
                tx.send(i).await.expect("receiver alive");
            }
        }
    })
    .await;
    drop(tx);
    let done = handled(workers).await;
    let elapsed = start.elapsed();
    assert_eq!(done, n);
    n as f64 / elapsed.as_secs_f64()
}
