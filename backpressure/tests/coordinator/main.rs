//! The coordinator: builder checks, the signal gate (defer / resume / cancel / max-defer),
//! pausing, the bounded queue, concurrency and outcome accounting; one file per area.

mod builder;
#[path = "../common/mod.rs"]
mod common;
mod concurrency;
mod gate;
mod outcomes;
mod pause;
mod queue;
mod stream;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use backpressure::{
    error::{BuildError, PatternError, TryEnqueueError},
    Coordinator, CoordinatorConfig, MaxDefer, Sink, WorkContext,
};
use common::{consistent, recv, settle, until, within, Log};
use futures_util::FutureExt;
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;

/// A coordinator on `sink` that records every item it runs, in start order.
fn recording(sink: &Sink, concurrency: usize, max_defer: MaxDefer) -> (Coordinator<u32>, Log<u32>) {
    let log = Log::default();
    let seen = log.clone();
    let coordinator = Coordinator::builder()
        .sink(sink.clone())
        .concurrency(concurrency)
        .max_defer(max_defer)
        .build(move |n: u32, _ctx: WorkContext| {
            seen.push(n);
            async {}
        })
        .unwrap();
    (coordinator, log)
}
