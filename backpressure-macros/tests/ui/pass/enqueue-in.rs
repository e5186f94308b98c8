//! The `_in` functions: the generated API in a given runtime, with every signature spelled
//! out, a private worker and a `pub(crate)` one.
use backpressure::error::WorkerEnqueueError;
use backpressure::{backpressure_worker, Coordinator, ItemId, Runtime, Stats};

#[derive(Debug, PartialEq)]
pub struct Email {
    pub to: String,
}

#[backpressure_worker(sink = "mail", capacity = 1)]
pub(crate) async fn send_email(email: Email) {
    let _ = email;
}

#[backpressure_worker]
async fn unselected(item: u64) {
    let _ = item;
}

/// Code under test takes the runtime, so a test can hand it an isolated one.
async fn notify(runtime: &Runtime, to: &str) -> Result<ItemId, WorkerEnqueueError<Email>> {
    send_email::enqueue_in(runtime, Email { to: to.to_owned() }).await
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let runtime = Runtime::builder().only([send_email::NAME]).start().unwrap();
    runtime.sink("mail").unwrap().raise("backpressure.smtp").unwrap();

    let id: ItemId = notify(&runtime, "ada@example.com").await.unwrap();
    assert_eq!(id.get(), 0);
    let full: Result<ItemId, WorkerEnqueueError<Email>> =
        send_email::try_enqueue_in(&runtime, Email { to: "x".into() });
    assert!(matches!(full, Err(WorkerEnqueueError::Full(_))));
    let stats: Option<Stats> = send_email::stats_in(&runtime);
    assert_eq!(stats.unwrap().queued, 1);
    let coordinator: Option<Coordinator<Email>> = send_email::coordinator_in(&runtime);
    assert!(coordinator.is_some());
    // The global API stays unconnected.
    assert!(send_email::stats().is_none());

    let missing = unselected::try_enqueue_in(&runtime, 1).unwrap_err();
    assert!(matches!(missing, WorkerEnqueueError::NotInRuntime { worker, .. } if worker == unselected::NAME));
    let returned: Vec<Email> = send_email::shutdown_in(&runtime).await;
    assert_eq!(returned, [Email { to: "ada@example.com".into() }]);
}
