//! The generated `_in` functions (`enqueue_in`, `try_enqueue_in`, `coordinator_in`,
//! `stats_in`, `shutdown_in`): code under test is handed an isolated `Runtime` and reaches the
//! declared worker in it, never the global runtime or another isolated one.

use backpressure::error::WorkerEnqueueError;
use backpressure::{backpressure_worker, Runtime};

#[backpressure_worker(
    name = "registry_in::mail",
    sink = "mail",
    concurrency = 1,
    capacity = 2
)]
async fn send_mail(to: String) {
    let _ = to;
}

#[backpressure_worker(name = "registry_in::other")]
async fn other(item: u8) {
    let _ = item;
}

/// The code under test: it takes the runtime instead of reaching the global one.
async fn sign_up(runtime: &Runtime, email: &str) -> Result<(), WorkerEnqueueError<String>> {
    send_mail::enqueue_in(runtime, format!("welcome {email}")).await?;
    Ok(())
}

fn mail_runtime() -> Runtime {
    Runtime::builder().only([send_mail::NAME]).start().unwrap()
}

#[tokio::test]
async fn enqueue_in_reaches_the_worker_of_that_runtime_only() {
    let (a, b) = (mail_runtime(), mail_runtime());
    a.sink("mail").unwrap().raise("backpressure.smtp").unwrap();

    sign_up(&a, "ada@example.com").await.unwrap();
    let id = send_mail::try_enqueue_in(&a, "second".to_owned()).unwrap();
    assert_eq!(id.get(), 1, "ids count per worker of a runtime, from 0");
    tokio::task::yield_now().await;

    let held = send_mail::stats_in(&a).unwrap();
    assert_eq!((held.enqueued, held.queued, held.completed), (2, 2, 0));
    assert_eq!(send_mail::stats_in(&b).unwrap().enqueued, 0);
    // The global API is untouched: no global runtime runs in this binary.
    assert!(send_mail::stats().is_none());

    // `a`'s queue holds two: the third is refused and handed back.
    let full = send_mail::try_enqueue_in(&a, "third".to_owned()).unwrap_err();
    assert!(matches!(full, WorkerEnqueueError::Full(_)), "{full:?}");
    assert_eq!(full.into_inner(), "third");

    a.sink("mail")
        .unwrap()
        .retract("backpressure.smtp")
        .unwrap();
    send_mail::coordinator_in(&a).unwrap().drain().await;
    assert_eq!(send_mail::stats_in(&a).unwrap().completed, 2);
}

#[tokio::test]
async fn a_runtime_without_the_worker_is_an_error_that_names_it() {
    let runtime = Runtime::builder().only([other::NAME]).start().unwrap();
    let err = sign_up(&runtime, "ada@example.com").await.unwrap_err();
    assert!(
        matches!(
            err,
            WorkerEnqueueError::NotInRuntime {
                worker: "registry_in::mail",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("worker `registry_in::mail` is not in this runtime"),
        "{err}"
    );
    assert_eq!(err.into_inner(), "welcome ada@example.com");

    let err = send_mail::try_enqueue_in(&runtime, "x".to_owned()).unwrap_err();
    assert!(matches!(err, WorkerEnqueueError::NotInRuntime { .. }));
    assert!(send_mail::coordinator_in(&runtime).is_none());
    assert!(send_mail::stats_in(&runtime).is_none());
    assert!(send_mail::shutdown_in(&runtime).await.is_empty());
    // The worker it has is reached as usual.
    other::enqueue_in(&runtime, 7).await.unwrap();
    runtime.drain_all().await;
    assert_eq!(other::stats_in(&runtime).unwrap().completed, 1);
}

#[tokio::test]
async fn shutdown_in_hands_back_the_unstarted_items_and_closes_the_intake() {
    let runtime = mail_runtime();
    runtime
        .sink("mail")
        .unwrap()
        .raise("backpressure.smtp")
        .unwrap();
    send_mail::enqueue_in(&runtime, "a".to_owned())
        .await
        .unwrap();
    send_mail::enqueue_in(&runtime, "b".to_owned())
        .await
        .unwrap();

    assert_eq!(send_mail::shutdown_in(&runtime).await, ["a", "b"]);
    let err = send_mail::enqueue_in(&runtime, "c".to_owned())
        .await
        .unwrap_err();
    assert!(matches!(err, WorkerEnqueueError::Closed(_)), "{err:?}");
}

#[tokio::test]
async fn a_dropped_runtime_leaves_no_link_that_reaches_its_worker() {
    let kept = mail_runtime();
    let coordinator = {
        let dropped = mail_runtime();
        send_mail::coordinator_in(&dropped).unwrap()
    };
    // The dropped runtime's worker lives on in `coordinator`, but `kept` never reaches it.
    send_mail::enqueue_in(&kept, "k".to_owned()).await.unwrap();
    assert_eq!(coordinator.stats().enqueued, 0);
    assert_eq!(send_mail::stats_in(&kept).unwrap().enqueued, 1);
}
