use backpressure::backpressure_worker;

// Two policies of one worker on one signal would share its entry: refused on the second.
#[backpressure_worker(
    defer_on = "backpressure.*",
    error_rate(signal = "backpressure.smtp"),
    slow_call(signal = "backpressure.smtp", slow_after = "2s"),
)]
async fn send(item: u32) -> Result<(), String> {
    let _ = item;
    Ok(())
}

fn main() {}
