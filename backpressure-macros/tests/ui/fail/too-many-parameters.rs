use backpressure::{backpressure_worker, WorkContext};

#[backpressure_worker]
async fn send(item: u32, ctx: WorkContext, retries: u8) {
    let _ = (item, ctx, retries);
}

fn main() {}
