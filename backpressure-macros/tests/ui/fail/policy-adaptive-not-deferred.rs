use backpressure::backpressure_worker;

#[backpressure_worker(defer_on = "db.*", adaptive(signal = "backpressure.smtp.level", max = 16))]
async fn send(item: u32) {
    let _ = item;
}

fn main() {}
