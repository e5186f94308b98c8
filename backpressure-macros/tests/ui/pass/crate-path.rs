//! `crate = "..."`: a crate that re-exports `backpressure` hands its users the attribute, and
//! the generated code reaches the runtime through the re-export.
mod facade {
    pub use backpressure as runtime;
}

use facade::runtime::backpressure_worker;

#[backpressure_worker(
    crate = "crate::facade::runtime",
    concurrency = 2,
    max_defer = "1s",
    error_rate(signal = "backpressure.facade"),
)]
async fn through_facade(item: u32, ctx: facade::runtime::WorkContext) {
    let _ = (item, ctx.id());
}

#[backpressure_worker(crate = "::backpressure")]
async fn default_spelled_out(item: u8) {
    let _ = item;
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let runtime = facade::runtime::start().unwrap();
    through_facade::enqueue(1).await.unwrap();
    default_spelled_out::try_enqueue(2).unwrap();
    runtime.drain_all().await;
    assert_eq!(through_facade::stats().unwrap().completed, 1);
    assert_eq!(default_spelled_out::stats().unwrap().completed, 1);
    let info = runtime.worker(through_facade::NAME).unwrap();
    assert_eq!(info.config.concurrency, 2);
    assert_eq!(info.policies.len(), 1);
    runtime.shutdown().await;
}
