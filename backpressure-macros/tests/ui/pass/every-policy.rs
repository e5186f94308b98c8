//! Every policy, and every key of each, in the attribute.
use backpressure::backpressure_worker;

#[backpressure_worker(
    sink = "mail",
    defer_on = "backpressure.*",
    error_rate(
        signal = "backpressure.smtp",
        window = "30s",
        min_calls = 20,
        failure_ratio = 0.5,
        consecutive_failures = 5,
        ttl = "15s",
        open_for = "30s",
        max_open_for = "5m",
        jitter = 0,
        probes = 3,
        probe_timeout = "30s",
    ),
    slow_call(signal = "backpressure.smtp.slow", slow_after = "2s", failure_ratio = 1),
    adaptive(
        signal = "backpressure.smtp.level",
        max = 16,
        window = "10s",
        slow_after = "1s",
        ttl = "15s",
    ),
    watermark(
        signal = "backpressure.mail.backlog",
        high = 0.9,
        low = 0.25,
        max_age = "1m",
        hold_for = "5s",
        ttl = "15s",
    ),
)]
async fn send_mail(to: String) -> Result<(), std::io::Error> {
    let _ = to;
    Ok(())
}

// A watermark's signal is for peers: its own `defer_on` need not match.
#[backpressure_worker(defer_on = "db.*", watermark(signal = "backpressure.mail.backlog"))]
async fn peers_only(item: u32) {
    let _ = item;
}

fn main() {
    assert!(send_mail::NAME.ends_with("::send_mail"));
    assert!(peers_only::NAME.ends_with("::peers_only"));
}
