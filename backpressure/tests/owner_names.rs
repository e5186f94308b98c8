//! An owner's name is the key its policies raise under: the builder rejects a name that is
//! not a valid signal key, and every unnamed coordinator gets a key of its own (DESIGN §6,
//! "A verdict ends with its owner").

use std::sync::Arc;
use std::time::Duration;

use backpressure::{
    error::{BuildError, NameErrorKind},
    policy::{Breaker, BreakerState, PolicyState},
    Coordinator, MaxDefer, Sink, WorkContext,
};
use tokio::sync::Semaphore;

const SMTP: &str = "backpressure.smtp";

/// Lets every task that can run do so (current-thread runtime, paused clock).
async fn settle() {
    for _ in 0..64 {
        tokio::task::yield_now().await;
    }
}

fn named(name: &str) -> Result<Coordinator<u8>, BuildError> {
    Coordinator::builder()
        .sink(Sink::new())
        .name(name)
        .policy(Breaker::error_rate(SMTP))
        .build(|_: u8, _: WorkContext| async {})
}

#[tokio::test]
async fn the_builder_rejects_a_name_that_is_not_a_signal_key() {
    let long = "a".repeat(257);
    let cases = [
        ("", NameErrorKind::Empty, "the name is empty"),
        (
            "smtp relay",
            NameErrorKind::BadChar { ch: ' ', at: 4 },
            "character ' ' at byte 4 is not allowed",
        ),
        (
            "relé",
            NameErrorKind::BadChar { ch: 'é', at: 3 },
            "character 'é' at byte 3 is not allowed",
        ),
        (
            &long,
            NameErrorKind::TooLong { len: 257 },
            "257 bytes long, the limit is 256 bytes",
        ),
    ];
    for (name, kind, words) in cases {
        let err = named(name).unwrap_err();
        match &err {
            BuildError::Name { source } => assert_eq!(source.kind(), &kind, "{name:?}"),
            other => panic!("{name:?}: expected BuildError::Name, got {other:?}"),
        }
        let text = err.to_string();
        assert!(text.contains("invalid worker name"), "{text}");
        assert!(text.contains(words), "{name:?}: {text}");
    }
    assert!(named("mail.relay-2:eu/1").is_ok());
    assert!(named(&"a".repeat(256)).is_ok());
}

/// An unnamed coordinator whose breaker opens on its first failure; its handler waits for a
/// permit of `release`, then fails.
fn unnamed(sink: &Sink, release: &Arc<Semaphore>) -> Coordinator<u8> {
    let release = Arc::clone(release);
    Coordinator::builder()
        .sink(sink.clone())
        .concurrency(1)
        .defer_on(SMTP)
        .max_defer(MaxDefer::Never)
        .policy(
            Breaker::error_rate(SMTP)
                .consecutive_failures(1)
                .open_for(Duration::from_secs(60))
                .jitter(0.0),
        )
        .build(move |_: u8, _: WorkContext| {
            let release = Arc::clone(&release);
            async move {
                release.acquire().await.unwrap().forget();
                Err("relay refused")
            }
        })
        .unwrap()
}

fn opened(coordinator: &Coordinator<u8>) -> bool {
    coordinator.policies()[0].state == PolicyState::Breaker(BreakerState::Open)
}

#[tokio::test(start_paused = true)]
async fn two_unnamed_owners_have_verdicts_of_their_own() {
    let sink = Sink::new();
    let release = Arc::new(Semaphore::new(0));
    let first = unnamed(&sink, &release);
    let second = unnamed(&sink, &release);
    // Both calls start before either verdict exists, then both fail.
    first.enqueue(1).await.unwrap();
    second.enqueue(2).await.unwrap();
    settle().await;
    release.add_permits(2);
    settle().await;
    assert!(opened(&first) && opened(&second));

    let mut keys: Vec<String> = sink
        .snapshot()
        .into_iter()
        .filter(|entry| entry.name.as_ref() == SMTP)
        .filter_map(|entry| entry.key.map(|key| key.to_string()))
        .collect();
    keys.sort();
    assert_eq!(keys.len(), 2, "one entry per owner: {keys:?}");
    assert_ne!(keys[0], keys[1]);
    assert!(
        keys.iter().all(|key| key.starts_with("coordinator-")),
        "{keys:?}"
    );

    // The first one closing ends its own verdict only.
    assert!(first.shutdown().await.is_empty());
    let left: Vec<_> = sink.snapshot().into_iter().map(|entry| entry.key).collect();
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(sink.is_raised(SMTP));
    assert!(opened(&second));
}
