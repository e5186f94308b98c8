//! The admin dashboard over a simulated workload: three workers on three sinks, signals
//! coming and going (a slow SMTP relay, a throttled database replica, a maintenance
//! window), some failures.
//!
//! ```text
//! cargo run -p backpressure-admin --example dashboard
//! ```
//!
//! Open the printed address; stop with Ctrl-C.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use backpressure::{backpressure_worker, Level, RaiseOptions};
use backpressure_admin::AdminConfig;

/// A small deterministic pseudo-random source (xorshift), enough for a simulation.
static SEED: AtomicU64 = AtomicU64::new(0x9e37_79b9_7f4a_7c15);

fn random(below: u64) -> u64 {
    let mut x = SEED.load(Ordering::Relaxed);
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    SEED.store(x, Ordering::Relaxed);
    x % below.max(1)
}

#[backpressure_worker(
    sink = "mail",
    concurrency = 4,
    capacity = 100,
    defer_on = "backpressure.smtp"
)]
async fn send_email(id: u64) -> Result<(), String> {
    tokio::time::sleep(Duration::from_millis(150 + random(300))).await;
    if random(20) == 0 {
        return Err(format!("message {id}: relay said 451"));
    }
    Ok(())
}

#[backpressure_worker(
    sink = "db",
    concurrency = 8,
    capacity = 200,
    defer_on = "backpressure.db*"
)]
async fn sync_orders(batch: u64) {
    let _ = batch;
    tokio::time::sleep(Duration::from_millis(80 + random(120))).await;
}

#[backpressure_worker(
    sink = "media",
    concurrency = 2,
    capacity = 50,
    defer_on = "backpressure.*"
)]
async fn resize_image(image: u64) {
    let _ = image;
    tokio::time::sleep(Duration::from_millis(400 + random(400))).await;
}

/// Enqueues work at a steady rate; items that find a full queue are dropped (and counted).
async fn produce() {
    let mut n = 0u64;
    let mut ticks = tokio::time::interval(Duration::from_millis(50));
    loop {
        ticks.tick().await;
        n += 1;
        let _ = send_email::try_enqueue(n);
        let _ = sync_orders::try_enqueue(n);
        if n % 3 == 1 {
            let _ = resize_image::try_enqueue(n);
        }
    }
}

/// Signals come and go: each scene raises something with a TTL, so it also expires by itself.
async fn weather(runtime: Arc<backpressure::Runtime>) {
    let (Some(mail), Some(db), Some(media)) = (
        runtime.sink("mail"),
        runtime.sink("db"),
        runtime.sink("media"),
    ) else {
        return;
    };
    loop {
        tokio::time::sleep(Duration::from_secs(4)).await;
        // The relay is slow for a while.
        let _ = mail.raise_with(
            "backpressure.smtp",
            RaiseOptions::new().ttl(Duration::from_secs(6 + random(6))),
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
        // A replica lags: let a third of the work through.
        if let Ok(level) = Level::new(0.3) {
            let _ = db.raise_with(
                "backpressure.db",
                RaiseOptions::new()
                    .key("replica-2")
                    .level(level)
                    .ttl(Duration::from_secs(10)),
            );
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
        // A short maintenance window on the image store, retracted by hand.
        let _ = media.raise_with(
            "backpressure.maintenance",
            RaiseOptions::new()
                .key("nightly")
                .ttl(Duration::from_secs(30)),
        );
        tokio::time::sleep(Duration::from_secs(4)).await;
        let _ = media.retract_keyed("backpressure.maintenance", "nightly");
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = Arc::new(backpressure::start()?);
    let app = axum::Router::new().nest(
        "/admin",
        backpressure_admin::router(Arc::clone(&runtime), AdminConfig::new()),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    println!("backpressure admin: http://{address}/admin  (Ctrl-C to stop)");

    let producer = tokio::spawn(produce());
    let signals = tokio::spawn(weather(Arc::clone(&runtime)));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop_rx.await;
            })
            .await
    });

    tokio::signal::ctrl_c().await?;
    println!("stopping…");
    producer.abort();
    signals.abort();
    let _ = stop_tx.send(());
    // Open dashboards keep their event streams open: give them a moment, then stop anyway.
    if tokio::time::timeout(Duration::from_secs(2), server)
        .await
        .is_err()
    {
        println!("closed the open event streams");
    }
    let report = runtime.shutdown().await;
    println!(
        "stopped; {} queued items were never started",
        report.total()
    );
    Ok(())
}
