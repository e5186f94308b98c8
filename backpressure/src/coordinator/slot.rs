//! A slot: the task that takes items through the gate and runs the handler.

use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;

use futures_util::FutureExt;
use tokio::sync::futures::Notified;
use tracing::Instrument;

use super::context::WorkContext;
use super::gate::Answer;
use super::intake::Taken;
use super::outcome::{HandlerOutcome, Outcome};
use super::retry_book::{Fault, Finished, Then};
use super::state::Shared;
use super::step::{Job, Step, Waiting};
use super::telemetry::Started;
use super::timeout::Limit;
use crate::sink::ProbeClaim;
use crate::sync::{notified_or_deadline, register_then_recheck, Look};

/// Spawns one more slot task for a coordinator.
pub(super) type Spawner<T> = Box<dyn Fn(Arc<Shared<T>>) + Send + Sync>;

/// Runs one slot until the coordinator closes and empties, shuts down, or has too many slots.
///
/// The guard is created by the caller, before the task exists: a task that tokio drops
/// without ever polling it (its runtime shut down first) still settles the slot's accounts.
pub(super) async fn run_slot<T, F, Fut>(mut slot: SlotGuard<T>, handler: Arc<F>)
where
    T: Send + 'static,
    F: Fn(T, WorkContext) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: HandlerOutcome,
{
    let shared = Arc::clone(&slot.shared);
    let context = shared.context.for_slot();
    loop {
        let notified = shared.wake.notified();
        tokio::pin!(notified);
        let epoch = shared.epoch().current();
        let step = shared.step(slot.finished.take(), &mut slot.waiting, || {
            notified.as_mut().enable();
        });
        let job = match step {
            Step::Job(job) => job,
            Step::Exit => {
                slot.exited = true;
                return;
            }
            Step::Wait { deadline, gate } => {
                wait(&shared, notified, deadline, epoch, gate).await;
                continue;
            }
        };
        slot.running = true;
        let finished = match job {
            Job::Run(queued, None, None) if shared.policies.is_empty() => {
                // The hot path: nobody listens, no clock is read, nothing is kept.
                let context = WorkContext::new(Arc::clone(&context), queued.id);
                let ran = run_handler(&*handler, queued.item, context, queued.id, None).await;
                if let Some(fault) = &ran.fault {
                    log_failed(queued.id, ran.outcome, fault);
                }
                Finished::only(ran.outcome)
            }
            Job::Run(queued, started, probe) => {
                let context = WorkContext::new(Arc::clone(&context), queued.id);
                run_observed(&shared, &*handler, queued, context, started, probe).await
            }
            Job::Skip(queued, probe) => {
                // A skipped probe says nothing about the downstream: its probes go back.
                drop(probe);
                skip(&shared, queued.item, queued.id);
                shared.meters.finished(Outcome::Skipped, None);
                Finished::only(Outcome::Skipped)
            }
        };
        slot.finished = Some(finished);
        slot.running = false;
        // A slot whose items are ready at once (a handler or skip callback that re-enqueues,
        // say) would otherwise never yield; once its tokio budget is spent, let others run.
        tokio::task::coop::consume_budget().await;
    }
}

/// A slot's bookkeeping, kept where `Drop` can see it: a slot task that ends without
/// reaching `Step::Exit` (its runtime shut down before or while running it, or a panic
/// escaped) still settles its accounts, so nothing stays counted as active forever and
/// `drain` cannot hang on it.
pub(super) struct SlotGuard<T> {
    shared: Arc<Shared<T>>,
    /// An outcome not yet recorded by `step`.
    finished: Option<Finished<T>>,
    /// Whether an item is in flight.
    running: bool,
    waiting: Waiting,
    exited: bool,
}

impl<T> SlotGuard<T> {
    /// The guard of a slot already counted in the coordinator's live slots.
    pub(super) fn new(shared: Arc<Shared<T>>) -> Self {
        Self {
            shared,
            finished: None,
            running: false,
            waiting: Waiting::No,
            exited: false,
        }
    }
}

impl<T> Drop for SlotGuard<T> {
    fn drop(&mut self) {
        if !self.exited {
            self.shared
                .abandon_slot(self.finished.take(), self.running, self.waiting);
        }
    }
}

/// Sleeps until something the slot cares about changes, or until `deadline`.
///
/// `notified` was created before the look (and, for a slot waiting for items, already
/// registered under the coordinator's lock).
async fn wait<T>(
    shared: &Shared<T>,
    mut notified: Pin<&mut Notified<'_>>,
    deadline: Option<tokio::time::Instant>,
    epoch: u64,
    gate: Answer,
) {
    // Register for wake-ups, then compare with the look: anything that changed in between
    // is caught by the comparison, anything later wakes us, so no wake-up is lost. The loom
    // models in `sync/loom_tests.rs` check this protocol.
    let may_sleep = register_then_recheck(
        Look { epoch, gate },
        shared.epoch(),
        || shared.gate.answer(),
        || {
            notified.as_mut().enable();
        },
    );
    if may_sleep {
        // Only the slot holding the coordinator's `max_defer` timer has a deadline.
        notified_or_deadline(notified, deadline).await;
    }
}

/// Runs an item that someone observes: inside its `backpressure.item` span, timed for
/// metrics and health policies, and for the verdicts whose probe it is (`probe`: reported
/// when it finishes; given back if it is cut short by shutdown or dropped); under the
/// worker's `timeout`; and, for a worker with `retry(...)`, with a copy kept for what
/// follows a failure.
async fn run_observed<T, F, Fut>(
    shared: &Shared<T>,
    handler: &F,
    queued: Taken<T>,
    context: WorkContext,
    started: Option<Started>,
    probe: Option<ProbeClaim>,
) -> Finished<T>
where
    F: Fn(T, WorkContext) -> Fut,
    Fut: Future,
    Fut::Output: HandlerOutcome,
{
    shared.meters.started(started.as_ref());
    let id = queued.id;
    let kept = match shared.keep(&queued.item) {
        Ok(kept) => kept,
        Err(panic) => return uncopyable(shared, queued, started, probe, panic),
    };
    let mut context = context;
    if let Some(started) = &started {
        let enqueued = started.enqueued();
        context = context.with_attempt(enqueued.attempt(), enqueued.first_at());
    }
    let limit = (shared.config.timeout).map(|timeout| Limit::new(timeout, &mut context));
    let began = tokio::time::Instant::now();
    let ran = match &started {
        Some(started) => {
            let span = started.span(&shared.labels, id);
            let ran = run_handler(handler, queued.item, context, id, limit)
                .instrument(span.clone())
                .await;
            span.record("outcome", ran.outcome.as_str());
            ran
        }
        None => run_handler(handler, queued.item, context, id, limit).await,
    };
    let ran_for = began.elapsed();
    shared.meters.finished(ran.outcome, Some(ran_for));
    // Work cut short by shutdown says nothing about the downstream's health (its probes,
    // if any, go back when `probe` drops).
    if !shared.context.token.is_cancelled() {
        let failed = ran.outcome.is_failure();
        if !shared.policies.is_empty() {
            shared.policies.observe(id, failed, ran_for, probe.as_ref());
        }
        if let Some(probe) = probe {
            probe.report(failed, ran_for);
        }
    }
    let outcome = ran.outcome;
    let then = then(shared, ran, kept, started, id);
    Finished { outcome, then }
}

/// What follows a finished attempt: for a worker with `retry(...)`, its follow-up (retry,
/// dead letter, handed back); otherwise nothing, a failure logged as final.
fn then<T>(
    shared: &Shared<T>,
    ran: Ran,
    kept: Option<T>,
    started: Option<Started>,
    id: u64,
) -> Then<T> {
    match (kept, started) {
        (Some(kept), Some(started)) => {
            shared.follow_up(ran.outcome, ran.fault, kept, started.into_enqueued(), id)
        }
        _ => {
            if let Some(fault) = &ran.fault {
                log_failed(id, ran.outcome, fault);
            }
            Then::Final
        }
    }
}

/// A retrying worker's item whose `Clone` panicked: not run, dead-lettered (its probes, if
/// any, go back: it said nothing about the downstream).
fn uncopyable<T>(
    shared: &Shared<T>,
    queued: Taken<T>,
    started: Option<Started>,
    probe: Option<ProbeClaim>,
    panic: String,
) -> Finished<T> {
    drop(probe);
    shared.meters.finished(Outcome::Panicked, None);
    let then = match &started {
        Some(started) => shared.uncopyable(queued, started.enqueued(), panic),
        None => Then::Final,
    };
    Finished {
        outcome: Outcome::Panicked,
        then,
    }
}

/// How one run of the handler ended, and its failure's words if it failed.
struct Ran {
    outcome: Outcome,
    fault: Option<Fault>,
}

impl Ran {
    fn failed(outcome: Outcome, text: String, permanent: bool) -> Self {
        Self {
            outcome,
            fault: Some(Fault { text, permanent }),
        }
    }
}

async fn run_handler<T, F, Fut>(
    handler: &F,
    item: T,
    context: WorkContext,
    id: u64,
    limit: Option<Limit>,
) -> Ran
where
    F: Fn(T, WorkContext) -> Fut,
    Fut: Future,
    Fut::Output: HandlerOutcome,
{
    // Everything that runs user code happens inside the guarded future: the handler call,
    // polling its future, dropping it (also when it runs past its timeout), and reading an
    // error (its `Display` and `Drop`).
    let result = AssertUnwindSafe(async move {
        let future = handler(item, context);
        let output = match limit {
            None => future.await,
            Some(limit) => match limit.run(future).await {
                Some(output) => output,
                None => return Ran::failed(Outcome::TimedOut, limit.describe(), false),
            },
        };
        let permanent = output.is_permanent();
        match output.into_error() {
            None => Ran {
                outcome: Outcome::Completed,
                fault: None,
            },
            Some(error) => Ran::failed(Outcome::Failed, error.to_string(), permanent),
        }
    })
    .catch_unwind()
    .await;
    result.unwrap_or_else(|panic| {
        let text = panic_message(&*panic).to_owned();
        tracing::error!(item_id = id, panic = %text, "backpressure handler panicked");
        drop_panic_payload(panic);
        Ran {
            outcome: Outcome::Panicked,
            fault: Some(Fault {
                text: format!("panicked: {text}"),
                permanent: false,
            }),
        }
    })
}

/// A final failure of a worker without `retry(...)` (a panic is logged where it is caught).
fn log_failed(id: u64, outcome: Outcome, fault: &Fault) {
    if outcome != Outcome::Panicked {
        tracing::error!(item_id = id, error = %fault.text, "backpressure handler failed");
    }
}

fn skip<T>(shared: &Shared<T>, item: T, id: u64) {
    match &shared.on_skip {
        Some(callback) => {
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| callback(item))) {
                tracing::error!(
                    item_id = id,
                    panic = panic_message(&*panic),
                    "backpressure skip callback panicked"
                );
                drop_panic_payload(panic);
            }
        }
        None => {
            tracing::debug!(
                item_id = id,
                "item skipped by a `cancel_on` signal (no skip callback set)"
            );
            // Dropping the item runs user code (its `Drop`).
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| drop(item))) {
                tracing::error!(item_id = id, "dropping a skipped item panicked");
                drop_panic_payload(panic);
            }
        }
    }
}

/// Drops a caught panic's payload, whose `Drop` is user code that may panic in turn. A
/// payload that keeps panicking is leaked after a few attempts rather than unwinding the slot.
pub(super) fn drop_panic_payload(payload: Box<dyn Any + Send>) {
    let mut payload = payload;
    for _ in 0..4 {
        match catch_unwind(AssertUnwindSafe(move || drop(payload))) {
            Ok(()) => return,
            Err(next) => payload = next,
        }
    }
    std::mem::forget(payload);
}

pub(super) fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("non-string panic payload")
}
