//! Overriding a worker's attribute settings from a TOML file, without recompiling.
//!
//! ```text
//! cargo run --example config_override
//! BACKPRESSURE_CONFIG=examples/backpressure.toml cargo run --example config_override
//! ```
//!
//! The worker below asks for `concurrency = 4`; `examples/backpressure.toml` lowers it to 1 and
//! adds `smtp.slow` to the signals that defer sending.

use std::path::PathBuf;

use backpressure::{backpressure_worker, WorkContext};

#[backpressure_worker(sink = "mail", concurrency = 4, capacity = 64)]
async fn send_email(to: String, ctx: WorkContext) -> Result<(), String> {
    println!("  sent item {} to {to}", ctx.id());
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `backpressure::start()` alone reads the file named by BACKPRESSURE_CONFIG; here we name
    // the example's file explicitly unless the variable is set.
    let builder = backpressure::Runtime::builder();
    let builder = match std::env::var_os(backpressure::CONFIG_ENV_VAR) {
        Some(_) => builder,
        None => builder.config_file(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/backpressure.toml"),
        ),
    };
    let runtime = builder.start()?;

    for worker in runtime.workers() {
        println!(
            "worker `{}` on sink `{}`: concurrency {}, defer_on {:?}, max_defer {:?}",
            worker.name,
            worker.sink,
            worker.config.concurrency,
            worker.config.defer_on.as_deref().unwrap_or("-"),
            worker.config.max_defer,
        );
    }

    let sink = backpressure::sink("mail");
    sink.raise("smtp.slow")?; // matches only because of the config file
    for to in ["ada@example.com", "grace@example.com", "edsger@example.com"] {
        send_email::enqueue(to.to_owned()).await?;
    }
    tokio::task::yield_now().await;
    let stats = send_email::stats().ok_or("the worker is not running")?;
    println!(
        "while `smtp.slow` is raised: {} queued, {} completed",
        stats.queued, stats.completed
    );

    sink.retract("smtp.slow")?;
    runtime.drain_all().await;
    let stats = send_email::stats().ok_or("the worker is not running")?;
    println!("after retract and drain: {} completed", stats.completed);
    runtime.shutdown().await;
    Ok(())
}
