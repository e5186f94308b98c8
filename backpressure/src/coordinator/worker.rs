//! A slot: the task that takes items through the gate and runs the handler.

use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use futures_util::FutureExt;

use super::context::WorkContext;
use super::outcome::HandlerOutcome;
use super::state::{Job, Outcome, Shared, Step, Waiting};
use crate::sync::{register_then_recheck, Look};

/// Runs one slot until the coordinator closes and empties, shuts down, or has too many slots.
pub(super) async fn run_slot<T, F, Fut>(shared: Arc<Shared<T>>, handler: Arc<F>)
where
    T: Send + 'static,
    F: Fn(T, WorkContext) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: HandlerOutcome,
{
    let mut finished = None;
    let mut waiting = Waiting::No;
    loop {
        let epoch = shared.epoch().current();
        let job = match shared.step(finished.take(), &mut waiting) {
            Step::Job(job) => job,
            Step::Exit => return,
            Step::Wait {
                deadline,
                on_gate,
                gate_open,
            } => {
                wait(&shared, deadline, on_gate, Look { epoch, gate_open }).await;
                continue;
            }
        };
        finished = Some(match job {
            Job::Run(queued) => {
                let context = WorkContext::new(Arc::clone(&shared.context), queued.id);
                run_handler(&*handler, queued.item, context, queued.id).await
            }
            Job::Skip(queued) => {
                skip(&shared, queued.item, queued.id);
                Outcome::Skipped
            }
        });
    }
}

/// Sleeps until something the slot cares about changes, or until `deadline`.
async fn wait<T>(
    shared: &Shared<T>,
    deadline: Option<tokio::time::Instant>,
    on_gate: bool,
    look: Look,
) {
    let notified = shared.wake.notified();
    tokio::pin!(notified);
    // Register for wake-ups, then compare with the look: anything that changed in between
    // is caught by the comparison, anything later wakes us, so no wake-up is lost. The loom
    // models in `sync/loom_tests.rs` check this protocol.
    let may_sleep = register_then_recheck(
        look,
        shared.epoch(),
        || shared.gate.is_open(),
        || {
            notified.as_mut().enable();
        },
    );
    if !may_sleep {
        return;
    }
    match deadline {
        None => notified.await,
        Some(deadline) => {
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep_until(deadline) => {
                    if on_gate {
                        // Safety net for TTLs raised where no runtime could host the reaper.
                        shared.context.sink.expire_due();
                    }
                }
            }
        }
    }
}

async fn run_handler<T, F, Fut>(handler: &F, item: T, context: WorkContext, id: u64) -> Outcome
where
    F: Fn(T, WorkContext) -> Fut,
    Fut: Future,
    Fut::Output: HandlerOutcome,
{
    let result = match catch_unwind(AssertUnwindSafe(|| handler(item, context))) {
        Ok(future) => AssertUnwindSafe(future).catch_unwind().await,
        Err(panic) => Err(panic),
    };
    match result {
        Ok(output) => match output.into_error() {
            None => Outcome::Completed,
            Some(error) => {
                tracing::error!(item_id = id, error = %error, "backpressure handler failed");
                Outcome::Failed
            }
        },
        Err(panic) => {
            tracing::error!(
                item_id = id,
                panic = panic_message(&*panic),
                "backpressure handler panicked"
            );
            Outcome::Panicked
        }
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
            }
        }
        None => tracing::debug!(
            item_id = id,
            "item skipped by a `cancel_on` signal (no skip callback set)"
        ),
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("non-string panic payload")
}
