//! Test helpers (feature `test-util`): a [`Timeline`] of what a sink and a worker did, each
//! line stamped with its offset in tokio time, to assert on under
//! `#[tokio::test(start_paused = true)]`, where offsets are exact.
//!
//! A timeline records a sink's events ([`Timeline::watch`], through
//! [`Sink::subscribe`]) and the items a handler ran ([`Timeline::wrap`]: start, end and
//! outcome with the item's [`id`](WorkContext::id) and [`attempt`](WorkContext::attempt)).
//! Lines come in the order things happened: before an item's line is written, the sink events
//! already sent are taken in.
//!
//! | line | when |
//! |---|---|
//! | `1.000s raised backpressure.smtp` | a signal was raised (`retracted`, `expired`, `level_changed`, `probe_returned` alike) |
//! | `1.000s raised backpressure.db [replica-2] level 0.3 half_open` | with its key, a level above 0, a verdict's phase |
//! | `1.000s policy_changed backpressure.smtp [app::send] error_rate closed -> open` | a policy changed state |
//! | `1.000s #3 started` / `1.000s #3 started (attempt 2)` | the handler was called (the attempt from the second) |
//! | `1.250s #3 completed` / `#3 failed` / `#3 panicked` / `#3 cut short` | it returned, returned an error, panicked, or was dropped unfinished (a timeout, a shutdown) |
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use backpressure::{testing::Timeline, Coordinator, Sink, WorkContext};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let sink = Sink::new();
//! let timeline = Timeline::new();
//! timeline.watch(&sink);
//! let mailer = Coordinator::builder().sink(sink.clone()).build(timeline.wrap(
//!     |to: &'static str, _ctx: WorkContext| async move {
//!         tokio::time::sleep(Duration::from_millis(250)).await;
//!         if to.contains('@') { Ok(()) } else { Err(format!("no address: {to}")) }
//!     },
//! ))?;
//!
//! sink.raise("backpressure.smtp")?;
//! mailer.enqueue("ada@example.com").await?;
//! mailer.enqueue("nobody").await?;
//! tokio::time::sleep(Duration::from_secs(1)).await;
//! sink.retract("backpressure.smtp")?;
//! mailer.drain().await;
//!
//! assert_eq!(timeline.lines(), [
//!     "0.000s raised backpressure.smtp",
//!     "1.000s retracted backpressure.smtp",
//!     "1.000s #0 started",
//!     "1.000s #1 started",
//!     "1.250s #0 completed",
//!     "1.250s #1 failed",
//! ]);
//! # Ok(()) }
//! ```

use std::fmt::{Display, Write as _};
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::future::BoxFuture;
use futures_util::{FutureExt as _, StreamExt as _};
use tokio::time::Instant;

use crate::{
    HandlerOutcome, ItemId, SignalEvent, SignalEventKind, Sink, Subscription, WorkContext,
};

/// A record of a sink's events and a handler's items, each line stamped with its offset from
/// [`Timeline::new`] in tokio time. Cloning gives another handle to the same record. See the
/// [module docs](self).
#[derive(Clone, Debug)]
pub struct Timeline {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug)]
struct Inner {
    origin: Instant,
    lines: Vec<String>,
    subscriptions: Vec<Subscription>,
}

impl Default for Timeline {
    fn default() -> Self {
        Self::new()
    }
}

impl Timeline {
    /// An empty timeline whose offsets count from now (tokio time: paused time applies).
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                origin: Instant::now(),
                lines: Vec::new(),
                subscriptions: Vec::new(),
            })),
        }
    }

    /// Records `sink`'s events from now on ([`Sink::subscribe`]). Call it inside the tokio
    /// runtime, so TTLs expire on time.
    pub fn watch(&self, sink: &Sink) {
        let subscription = sink.subscribe();
        self.lock().subscriptions.push(subscription);
    }

    /// `handler`, recording each item it runs: `#id started`, then how it ended. Give the
    /// result to [`CoordinatorBuilder::build`](crate::CoordinatorBuilder::build) in place of
    /// `handler`.
    pub fn wrap<T, F, Fut, R>(
        &self,
        handler: F,
    ) -> impl Fn(T, WorkContext) -> BoxFuture<'static, Recorded<R>> + Send + Sync + 'static
    where
        T: Send + 'static,
        F: Fn(T, WorkContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: HandlerOutcome,
    {
        let timeline = self.clone();
        move |item, ctx| {
            let (id, attempt) = (ctx.id(), ctx.attempt());
            let future = handler(item, ctx);
            let timeline = timeline.clone();
            async move {
                let started = if attempt > 1 {
                    format!("{id} started (attempt {attempt})")
                } else {
                    format!("{id} started")
                };
                timeline.note(started);
                let mut unfinished = Unfinished(Some((timeline.clone(), id)));
                let output = future.await;
                unfinished.0 = None;
                Recorded {
                    output,
                    end: Some((timeline, id)),
                }
            }
            .boxed()
        }
    }

    /// Adds a line of the test's own (`"1.000s {text}"`), after the sink events sent so far.
    pub fn note(&self, text: impl Display) {
        let mut inner = self.lock();
        inner.take_events();
        let offset = inner.origin.elapsed();
        inner
            .lines
            .push(format!("{:.3}s {text}", offset.as_secs_f64()));
    }

    /// Every line so far, in order (the sink events sent until now included).
    pub fn lines(&self) -> Vec<String> {
        let mut inner = self.lock();
        inner.take_events();
        inner.lines.clone()
    }

    /// Takes the lines so far, leaving the timeline empty (its origin unchanged).
    pub fn take(&self) -> Vec<String> {
        let mut inner = self.lock();
        inner.take_events();
        std::mem::take(&mut inner.lines)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Inner {
    /// Moves the events already sent on every watched sink into the lines.
    fn take_events(&mut self) {
        let origin = self.origin;
        let mut taken = Vec::new();
        for subscription in &mut self.subscriptions {
            while let Some(Some(event)) = subscription.next().now_or_never() {
                taken.push(match event {
                    Ok(event) => {
                        let offset = event.at.saturating_duration_since(origin);
                        format!("{:.3}s {}", offset.as_secs_f64(), describe(&event))
                    }
                    Err(lagged) => format!("{lagged}"),
                });
            }
        }
        self.lines.extend(taken);
    }
}

/// An event in words: kind, name, `[key]`, level, phase, and a policy's change.
fn describe(event: &SignalEvent) -> String {
    let mut line = format!("{} {}", event.kind.as_str(), event.name);
    if let Some(key) = &event.key {
        let _ = write!(line, " [{key}]");
    }
    if event.kind == SignalEventKind::PolicyChanged {
        if let Some(change) = &event.policy {
            let _ = write!(line, " {} {} -> {}", change.policy, change.from, change.to);
        }
        return line;
    }
    if event.level.as_f64() > 0.0 {
        let _ = write!(line, " level {}", event.level);
    }
    if let Some(phase) = event.phase {
        let _ = write!(line, " {}", phase.as_str());
    }
    line
}

/// While set, the item's future was dropped before it returned: a panic, or cut short.
struct Unfinished(Option<(Timeline, ItemId)>);

impl Drop for Unfinished {
    fn drop(&mut self) {
        if let Some((timeline, id)) = self.0.take() {
            let how = if std::thread::panicking() {
                "panicked"
            } else {
                "cut short"
            };
            timeline.note(format_args!("{id} {how}"));
        }
    }
}

/// A wrapped handler's output (see [`Timeline::wrap`]): the handler's own, which records
/// `completed` or `failed` when the coordinator reads it.
pub struct Recorded<R> {
    output: R,
    end: Option<(Timeline, ItemId)>,
}

impl<R> std::fmt::Debug for Recorded<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorded").finish_non_exhaustive()
    }
}

impl<R: HandlerOutcome> HandlerOutcome for Recorded<R> {
    fn into_error(mut self) -> Option<Box<dyn Display + Send>> {
        let error = self.output.into_error();
        if let Some((timeline, id)) = self.end.take() {
            let how = if error.is_some() {
                "failed"
            } else {
                "completed"
            };
            timeline.note(format_args!("{id} {how}"));
        }
        error
    }

    fn is_permanent(&self) -> bool {
        self.output.is_permanent()
    }
}
