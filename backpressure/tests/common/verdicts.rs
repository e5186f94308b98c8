//! Helpers for the hostile verdict tests: a scripted downstream, breakers that open on one
//! failure, and workers calling the downstream.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use backpressure::{
    policy::{Breaker, BreakerState, PolicyState},
    Coordinator, MaxDefer, Sink, WorkContext,
};
use tokio::time::sleep;

/// How long one call to the downstream takes: a probe's duration.
pub(crate) const CALL: Duration = Duration::from_millis(10);
pub(crate) const OPEN_FOR: Duration = Duration::from_millis(200);

pub(crate) const CLOSED: PolicyState = PolicyState::Breaker(BreakerState::Closed);
pub(crate) const OPEN: PolicyState = PolicyState::Breaker(BreakerState::Open);
pub(crate) const HALF_OPEN: PolicyState = PolicyState::Breaker(BreakerState::HalfOpen);

/// What one call does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Call {
    /// Asks the downstream: fails while it is unhealthy.
    Ask,
    /// Fails whatever the downstream's health.
    Fail,
    /// Panics.
    Panic,
    /// Never returns (until cancelled by shutdown).
    Hang,
    /// Like `Ask`, taking five calls' time.
    Slow,
}

/// The downstream every worker calls: healthy or failing; counts the calls that started
/// while a half-open verdict was raised (probes) and the most running at once.
#[derive(Clone)]
pub(crate) struct Downstream {
    healthy: Arc<AtomicBool>,
    pub(crate) under_half_open: Arc<AtomicUsize>,
    pub(crate) calls: Arc<AtomicUsize>,
    sink: Sink,
}

impl Downstream {
    pub(crate) fn new(sink: &Sink) -> Self {
        Self {
            healthy: Arc::new(AtomicBool::new(false)),
            under_half_open: Arc::new(AtomicUsize::new(0)),
            calls: Arc::new(AtomicUsize::new(0)),
            sink: sink.clone(),
        }
    }

    pub(crate) fn recover(&self) {
        self.healthy.store(true, Ordering::SeqCst);
    }

    pub(crate) fn fail(&self) {
        self.healthy.store(false, Ordering::SeqCst);
    }

    pub(crate) fn probes(&self) -> usize {
        self.under_half_open.load(Ordering::SeqCst)
    }

    pub(crate) async fn call(&self, call: Call, ctx: WorkContext) -> Result<(), &'static str> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let half_open = self
            .sink
            .snapshot()
            .iter()
            .any(|e| e.phase == Some(backpressure::Phase::HalfOpen));
        if half_open {
            self.under_half_open.fetch_add(1, Ordering::SeqCst);
        }
        match call {
            Call::Hang => {
                ctx.cancellation_token().cancelled().await;
                return Err("cancelled");
            }
            Call::Panic => {
                sleep(CALL).await;
                panic!("injected probe panic");
            }
            Call::Fail => {
                sleep(CALL).await;
                return Err("relay refused");
            }
            Call::Ask => sleep(CALL).await,
            Call::Slow => sleep(5 * CALL).await,
        }
        if self.healthy.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err("relay refused")
        }
    }
}

/// A breaker on `signal` that opens on one failure, for `OPEN_FOR` (no jitter), with
/// `probes` probes.
pub(crate) fn breaker(signal: &str, probes: u32) -> Breaker {
    Breaker::error_rate(signal)
        .consecutive_failures(1)
        .open_for(OPEN_FOR)
        .jitter(0.0)
        .probes(probes)
        .ttl(Duration::from_secs(3))
}

/// A worker `name` calling `downstream`, deferring on `defer_on`, skipping while
/// `cancel.<name>` is raised, never forced past a hold by `max_defer`.
pub(crate) fn worker(
    sink: &Sink,
    name: &str,
    concurrency: usize,
    defer_on: &str,
    breaker: Option<Breaker>,
    downstream: &Downstream,
) -> Coordinator<Call> {
    worker_with(
        sink,
        name,
        concurrency,
        defer_on,
        breaker,
        MaxDefer::Never,
        downstream,
    )
}

/// [`worker`] with a `max_defer` of its own.
pub(crate) fn worker_with(
    sink: &Sink,
    name: &str,
    concurrency: usize,
    defer_on: &str,
    breaker: Option<Breaker>,
    max_defer: MaxDefer,
    downstream: &Downstream,
) -> Coordinator<Call> {
    let downstream = downstream.clone();
    let mut builder = Coordinator::builder()
        .sink(sink.clone())
        .name(name)
        .concurrency(concurrency)
        .defer_on(defer_on)
        .cancel_on(format!("cancel.{name}"))
        .max_defer(max_defer);
    if let Some(breaker) = breaker {
        builder = builder.policy(breaker);
    }
    builder
        .build(move |call: Call, ctx: WorkContext| {
            let downstream = downstream.clone();
            async move { downstream.call(call, ctx).await }
        })
        .unwrap()
}

/// The state of the worker's first policy.
pub(crate) fn state(worker: &Coordinator<Call>) -> PolicyState {
    worker.policies()[0].state
}

/// Opens `owner`'s breaker with one failing call and lets it settle.
pub(crate) async fn open(owner: &Coordinator<Call>) {
    owner.enqueue(Call::Fail).await.unwrap();
    sleep(CALL).await;
    crate::common::settle().await;
    assert_eq!(state(owner), OPEN);
}

/// Hides the panic messages of the panics these tests inject on purpose (once per process).
pub(crate) fn quiet_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let injected = info
                .payload()
                .downcast_ref::<&str>()
                .is_some_and(|message| message.starts_with("injected"));
            if !injected {
                previous(info);
            }
        }));
    });
}
