//! Health policies: signals that raise themselves.
//!
//! An SMTP relay degrades for a few minutes and recovers. Nobody writes "if errors climb,
//! raise `backpressure.smtp`": the mailer's error-rate breaker notices by itself, and its
//! verdict is a signal on the sink that the digest and notification workers obey too. While
//! it is open everyone holds; after `open_for` only the mailer sends a few probes; once they
//! succeed everyone resumes. A bulk newsletter sender uses an adaptive (AIMD) limit instead:
//! its level falls while the relay fails and climbs back once it is healthy.
//!
//! Every threshold below is the policies' own default. Simulated time (tokio's paused clock)
//! makes seven minutes run in well under a second, and a seeded generator makes every run
//! print the same timeline.
//!
//! ```text
//! cargo run --example health_policy
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use backpressure::{
    policy::{Adaptive, Breaker, Policy},
    Coordinator, MaxDefer, Pattern, SignalEventKind, Sink, WorkContext,
};
use futures_util::StreamExt;
use tokio::time::Instant;

const SMTP: &str = "backpressure.smtp";

/// The simulated relay: fine for a minute, then failing more and more (up to 90 % of sends
/// at 2 min), sick until 4 min, healthy again from 5 min.
struct Relay {
    start: Instant,
    seed: AtomicU64,
}

impl Relay {
    fn failure_probability(&self) -> f64 {
        let t = self.start.elapsed().as_secs_f64();
        let ramp = |from: f64, to: f64| ((t - from) / (to - from)).clamp(0.0, 1.0);
        0.9 * (ramp(60.0, 120.0) - ramp(240.0, 300.0))
    }

    /// One send: takes 200 ms, then fails with the current probability (splitmix64).
    async fn send(&self) -> Result<(), &'static str> {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut z = self
            .seed
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        let draw = (z ^ (z >> 31)) as f64 / u64::MAX as f64;
        if draw < self.failure_probability() {
            Err("421 service not available")
        } else {
            Ok(())
        }
    }
}

/// A worker on the shared sink whose handler sends one message through the relay.
fn worker(
    sink: &Sink,
    relay: &Arc<Relay>,
    name: &str,
    concurrency: usize,
    defer_on: &str,
    policies: &[Policy],
) -> Coordinator<u32> {
    let (relay, name) = (Arc::clone(relay), Arc::<str>::from(name));
    let sees_smtp = Pattern::parse(defer_on)
        .expect("valid pattern")
        .matches(SMTP);
    let mut builder = Coordinator::builder()
        .sink(sink.clone())
        .name(name.as_ref()) // the key under which its policies raise
        .concurrency(concurrency)
        .capacity(5_000)
        .defer_on(defer_on)
        .max_defer(MaxDefer::Never); // held work waits for the verdict, not for a timer
    for policy in policies {
        builder = builder.policy(policy.clone());
    }
    builder
        .build(move |_message: u32, ctx: WorkContext| {
            let (relay, name) = (Arc::clone(&relay), Arc::clone(&name));
            async move {
                // Started although it defers on the breaker's raised signal: a half-open
                // probe (only ever the breaker's owner).
                let probe = sees_smtp && ctx.sink().is_raised(SMTP);
                let result = relay.send().await;
                if probe {
                    let at = relay.start.elapsed().as_secs_f64();
                    let outcome = result.map_or("failed", |()| "ok");
                    println!("{at:>6.1}s  {name:<13} probe → {outcome}");
                }
                result
            }
        })
        .expect("valid worker")
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    let start = Instant::now();
    let relay = Arc::new(Relay {
        start,
        seed: AtomicU64::new(2024),
    });
    let sink = Sink::new();
    let mut events = sink.subscribe();

    // The mailer owns the breaker; jitter is off only so that every run prints the same times.
    let breaker = Breaker::error_rate(SMTP).jitter(0.0).into();
    let mailer = worker(&sink, &relay, "mailer", 4, "backpressure.*", &[breaker]);
    // Two peers with no policy of their own: they simply defer on `backpressure.*`.
    let digest = worker(&sink, &relay, "digest", 2, "backpressure.*", &[]);
    let notify = worker(&sink, &relay, "notifications", 2, "backpressure.*", &[]);
    // The newsletter prefers to slow down than to stop: an AIMD limit out of 8 slots,
    // published as the level of `bulk.smtp` (a namespace the others do not defer on).
    let adaptive = Adaptive::new("bulk.smtp", 8).into();
    let newsletter = worker(&sink, &relay, "newsletter", 8, "bulk.*", &[adaptive]);
    let workers = [
        ("mailer", &mailer),
        ("digest", &digest),
        ("notifications", &notify),
        ("newsletter", &newsletter),
    ];

    // The timeline: every event of the sink's subscription, as it happens.
    let printer = tokio::spawn(async move {
        while let Some(Ok(event)) = events.next().await {
            let at = event.at.duration_since(start).as_secs_f64();
            let who = event.key.as_deref().unwrap_or("-");
            let what = match (event.kind, event.policy) {
                (SignalEventKind::PolicyChanged, Some(c)) => {
                    let window = match c.counts {
                        n if n.calls == 0 => String::new(),
                        n => format!(": {} of {} calls failed", n.failures, n.calls),
                    };
                    let reason = format!("{:?}", c.reason)
                        .replace("Breaker(", "")
                        .replace(')', "");
                    format!("{:<10} {} → {} ({reason}){window}", c.policy, c.from, c.to)
                }
                (kind @ (SignalEventKind::Raised | SignalEventKind::LevelChanged), _) => {
                    match event.level.per_mille() {
                        0 => format!("{} {kind:?} (full stop)", event.name),
                        _ => format!("{} {kind:?} at level {}", event.name, event.level.as_f64()),
                    }
                }
                (kind, _) => format!("{} {kind:?}", event.name),
            };
            println!("{at:>6.1}s  {who:<13} {what}");
        }
    });

    // Every second: two mails, one digest, one notification; every 5 s a batch of 20
    // newsletters (more than a throttled newsletter can start at once). A status line
    // every 30 s.
    for second in 0..420u32 {
        if second % 30 == 0 {
            status(second, &relay, &workers);
        }
        if second % 5 == 0 {
            newsletter.enqueue_many(0..20).await.unwrap();
        }
        mailer
            .enqueue_many([second * 2, second * 2 + 1])
            .await
            .unwrap();
        digest.enqueue(second).await.unwrap();
        notify.enqueue(second).await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // The relay is healthy: everything drains, and no signal is left behind.
    for (_, coordinator) in &workers {
        coordinator.drain().await;
    }
    status(start.elapsed().as_secs() as u32, &relay, &workers);
    for (name, coordinator) in &workers {
        let stats = coordinator.stats();
        assert!(stats.is_consistent(), "{name}: {stats:?}");
        assert_eq!(stats.queued + stats.active, 0, "{name} drained");
        for policy in coordinator.policies() {
            println!(
                "final  {name:<13} {} on {}: {}",
                policy.policy, policy.signal, policy.state
            );
        }
    }
    assert!(sink.snapshot().is_empty(), "{:?}", sink.snapshot());
    for (_, coordinator) in &workers {
        coordinator.shutdown().await;
    }
    // The subscription ends once the sink and every coordinator holding it are gone.
    drop((mailer, digest, notify, newsletter, sink));
    printer.await.unwrap();
}

/// One status line: time, the relay's failure rate, and per worker its gate and counts.
fn status(second: u32, relay: &Relay, workers: &[(&str, &Coordinator<u32>)]) {
    let mut line = format!(
        "{second:>5}s  ── relay failing {:>3.0} % ──",
        relay.failure_probability() * 100.0
    );
    for (name, coordinator) in workers {
        let s = coordinator.stats();
        let gate = match s.limit {
            0 => "HOLDING".to_owned(),
            l if l == s.concurrency => "running".to_owned(),
            l => format!("limit {l}/{}", s.concurrency),
        };
        line += &format!(
            "\n         {name:<13} {gate:<10} sent {:>4}  failed {:>4}  queued {:>4}",
            s.completed, s.failed, s.queued
        );
    }
    println!("{line}");
}
