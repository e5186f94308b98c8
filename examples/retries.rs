//! Retries that wait for the verdict, and dead letters that are not losses.
//!
//! A mail relay answers `421 busy` for its first 12 seconds, then recovers. The mailer
//! retries each failed send with a backoff (1 s, 2 s, 4 s, ... at most 8 s). Its error-rate
//! breaker opens after enough failures, and from then on **due retries are held, not sent**:
//! they sit in the queue behind the verdict like any item (`retry_waiting` → `queued`), and
//! only the breaker's probes reach the relay. Once a probe succeeds the breaker closes and
//! everything goes out. One mail is addressed to a mailbox that does not exist yet: its
//! failure is permanent, so it is never retried but dead-lettered at once; once the mailbox
//! exists, `requeue_dead_letters` sends it again.
//!
//! Simulated time (tokio's paused clock) makes the run take a fraction of a second, and
//! jitter is off, so every run prints the same timeline.
//!
//! ```text
//! cargo run --example retries
//! ```

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backpressure::retry::{Failure, Retry};
use backpressure::{
    policy::Breaker, Coordinator, MaxDefer, Phase, SignalEventKind, Sink, WorkContext,
};
use futures_util::StreamExt;
use tokio::time::Instant;

const SMTP: &str = "backpressure.smtp";
/// The relay answers `421` until then.
const OUTAGE: Duration = Duration::from_secs(12);
const MISSING: &str = "carol@new-hire.example";

/// A mail: an id and an address (retrying needs `Clone`: each attempt gets a copy).
#[derive(Debug, Clone)]
struct Mail {
    id: u32,
    to: &'static str,
}

/// The simulated relay, and what it saw.
struct Relay {
    start: Instant,
    /// Whether `MISSING`'s mailbox exists (the permanent failure's cause, fixed later).
    mailbox_created: AtomicBool,
    /// Sends that started while the breaker's verdict was open (must stay 0).
    sent_while_open: AtomicU32,
    delivered: Mutex<BTreeSet<u32>>,
}

impl Relay {
    fn at(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// One send: 100 ms, then `421` during the outage, `550` for the missing mailbox.
    async fn send(&self, mail: &Mail) -> Result<(), Failure<&'static str>> {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if mail.to == MISSING && !self.mailbox_created.load(Ordering::SeqCst) {
            return Err(Failure::permanent("550 5.1.1 no such mailbox"));
        }
        if self.start.elapsed() < OUTAGE {
            return Err(Failure::transient("421 4.3.2 relay busy"));
        }
        self.delivered.lock().unwrap().insert(mail.id);
        Ok(())
    }
}

/// The mailer: retries with backoff, a breaker on `backpressure.smtp` that it defers on.
fn mailer(sink: &Sink, relay: &Arc<Relay>) -> Coordinator<Mail> {
    let breaker = Breaker::error_rate(SMTP)
        .min_calls(10)
        .failure_ratio(0.5)
        .open_for(Duration::from_secs(4))
        .probes(1)
        .jitter(0.0);
    let retry = Retry::new(6)
        .backoff(Duration::from_secs(1))
        .max_backoff(Duration::from_secs(8))
        .jitter(0.0);
    let (relay, plan) = (Arc::clone(relay), Arc::new(retry.clone()));
    Coordinator::builder()
        .sink(sink.clone())
        .name("mailer")
        .concurrency(4)
        .defer_on("backpressure.*")
        .max_defer(MaxDefer::Never) // held work waits for the verdict, not for a timer
        .policy(breaker)
        .retry(retry)
        .build(move |mail: Mail, ctx: WorkContext| {
            let (relay, plan) = (Arc::clone(&relay), Arc::clone(&plan));
            async move {
                let phase = ctx.sink().snapshot().into_iter().find(|s| &*s.name == SMTP);
                let role = match phase.and_then(|s| s.phase) {
                    Some(Phase::HalfOpen) => " (probe)",
                    Some(Phase::Open) => {
                        relay.sent_while_open.fetch_add(1, Ordering::SeqCst);
                        " (WHILE OPEN!)"
                    }
                    None => "",
                };
                let result = relay.send(&mail).await;
                let verdict = match &result {
                    Ok(()) => "delivered".to_owned(),
                    Err(e) if e.is_permanent() => format!("{} (permanent)", e.error()),
                    Err(e) if ctx.attempt() < plan.max_attempts() => {
                        let due = plan.delay_after(ctx.attempt()).as_secs();
                        format!("{}, retry due in {due} s", e.error())
                    }
                    Err(e) => format!("{} (last attempt)", e.error()),
                };
                println!(
                    "{:>6.1}s  mail {:<2} attempt {}{role:<8} → {verdict}",
                    relay.at(),
                    mail.id,
                    ctx.attempt()
                );
                result
            }
        })
        .expect("valid worker")
}

/// One status line: what waits where, and who holds the worker.
fn status(at: f64, coordinator: &Coordinator<Mail>) -> String {
    let s = coordinator.stats();
    let held = coordinator
        .held_by()
        .map_or("-".to_owned(), |held| match held.signal() {
            Some(signal) => {
                let phase = signal
                    .phase
                    .map_or("raised".to_owned(), |p| format!("{p:?}"));
                format!("{} {phase}", signal.name)
            }
            None => held.describe(),
        });
    format!(
        "{at:>6.1}s  ── queued {} (held {}), retry_waiting {}, active {}, held by {held}",
        s.queued, s.deferred, s.retry_waiting, s.active
    )
}

/// The breaker's changes, as they happen (ends with the sink and the coordinator).
fn print_breaker(sink: &Sink, start: Instant) -> tokio::task::JoinHandle<()> {
    let mut events = sink.subscribe();
    tokio::spawn(async move {
        while let Some(Ok(event)) = events.next().await {
            if let (SignalEventKind::PolicyChanged, Some(c)) = (event.kind, event.policy) {
                let at = event.at.duration_since(start).as_secs_f64();
                let n = c.counts;
                let why = match c.to.to_string().as_str() {
                    "open" => format!(" ({} of {} calls failed)", n.failures, n.calls),
                    _ => String::new(),
                };
                println!("{at:>6.1}s  breaker {} → {}{why}", c.from, c.to);
            }
        }
    })
}

/// Twenty seconds in half-second steps: four more mails at 4 s, a status line whenever
/// something other than the clock changed.
async fn timeline(mailer: &Coordinator<Mail>, relay: &Relay, later: &[Mail]) {
    let mut last = String::new();
    for tick in 1..=40u32 {
        if tick == 9 {
            println!("{:>6.1}s  {} more mails arrive", relay.at(), later.len());
            mailer.enqueue_many(later.iter().cloned()).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let line = status(relay.at(), mailer);
        if line[8..] != last[last.len().min(8)..] {
            println!("{line}");
        }
        last = line;
    }
}

/// The permanent failure was dead-lettered at once: fix its cause, then requeue it.
fn requeue_after_fix(mailer: &Coordinator<Mail>, relay: &Relay) -> usize {
    for dead in mailer.dead_letters() {
        println!(
            "{:>6.1}s  dead letter: mail {} ({}): \"{}\" after {} attempt(s), permanent: {}",
            relay.at(),
            dead.item.id,
            dead.item.to,
            dead.error,
            dead.attempts,
            dead.permanent
        );
    }
    relay.mailbox_created.store(true, Ordering::SeqCst);
    let requeued = mailer.requeue_dead_letters();
    println!(
        "{:>6.1}s  mailbox created; requeued {requeued} dead letter(s)",
        relay.at()
    );
    requeued
}

/// The whole story; panics unless every mail was delivered and nothing hit an open breaker.
async fn run() {
    let start = Instant::now();
    let relay = Arc::new(Relay {
        start,
        mailbox_created: AtomicBool::new(false),
        sent_while_open: AtomicU32::new(0),
        delivered: Mutex::new(BTreeSet::new()),
    });
    let sink = Sink::new();
    let printer = print_breaker(&sink, start);
    let mailer = mailer(&sink, &relay);

    // Six mails now, one of them to the missing mailbox; four more while the relay is down.
    let addresses = [
        "ada", "bob", MISSING, "dan", "eve", "fay", "gus", "hal", "ivy", "jo",
    ];
    let mails: Vec<Mail> = (1..)
        .zip(addresses)
        .map(|(id, to)| Mail { id, to })
        .collect();
    for mail in &mails[..6] {
        mailer.enqueue(mail.clone()).await.unwrap();
    }
    timeline(&mailer, &relay, &mails[6..]).await;
    // Everything but the dead letter went out; intake stays open for the requeue (`drain`
    // would close it).
    let s = mailer.stats();
    assert_eq!(
        (s.queued, s.active, s.retry_waiting),
        (0, 0, 0),
        "settled: {s:?}"
    );
    let requeued = requeue_after_fix(&mailer, &relay);
    mailer.drain().await;

    let stats = mailer.stats();
    println!(
        "{:>6.1}s  done: enqueued {} (the requeue counts again), completed {}, retried {}, \
         failed {}, dead_lettered {}",
        relay.at(),
        stats.enqueued,
        stats.completed,
        stats.retried,
        stats.failed,
        stats.dead_lettered
    );
    let delivered = relay.delivered.lock().unwrap().clone();
    let all: BTreeSet<u32> = mails.iter().map(|m| m.id).collect();
    assert_eq!(delivered, all, "every mail delivered");
    let while_open = relay.sent_while_open.load(Ordering::SeqCst);
    assert_eq!(while_open, 0, "nothing sent into an open breaker");
    assert!(stats.is_consistent(), "{stats:?}");
    assert_eq!(requeued, 1);
    assert_eq!(
        (stats.completed, stats.dead_lettered),
        (all.len() as u64, 1)
    );
    assert!(stats.retried > 0 && mailer.dead_letter_records().is_empty());
    assert!(
        mailer.shutdown().await.is_empty(),
        "nothing left to hand back"
    );
    drop((mailer, sink));
    printer.await.unwrap();
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    run().await;
}

#[cfg(test)]
mod tests {
    /// `cargo test --workspace` runs the example's story and its assertions.
    #[tokio::test(start_paused = true)]
    async fn every_mail_is_delivered_and_nothing_hits_an_open_breaker() {
        super::run().await;
    }
}
