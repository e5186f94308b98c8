//! The two-parameter shape: the item and the work context, returning a `Result`.
use backpressure::{backpressure_worker, WorkContext};

#[derive(Debug)]
pub struct Email {
    pub to: String,
}

#[backpressure_worker(sink = "mail")]
pub async fn send_email(email: Email, ctx: WorkContext) -> Result<(), String> {
    if ctx.is_cancelled() {
        return Err(format!("cancelled before sending to {}", email.to));
    }
    Ok(())
}

#[backpressure_worker]
async fn fully_qualified(item: u64, ctx: backpressure::WorkContext) {
    let _ = (item, ctx.id());
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // Before `start`, enqueue hands the item back.
    let err = send_email::enqueue(Email { to: "ada@example.com".into() })
        .await
        .unwrap_err();
    assert_eq!(err.into_inner().to, "ada@example.com");
    assert!(fully_qualified::try_enqueue(1).is_err());
    assert!(send_email::stats().is_none());
    assert!(send_email::coordinator().is_none());

    let runtime = backpressure::start().unwrap();
    send_email::enqueue(Email { to: "grace@example.com".into() }).await.unwrap();
    fully_qualified::try_enqueue(2).unwrap();
    runtime.drain_all().await;
    assert_eq!(send_email::stats().unwrap().completed, 1);
    assert_eq!(runtime.workers().len(), 2);
    assert!(send_email::shutdown().await.is_empty());
    runtime.shutdown().await;
}
