//! Hostile tests of the tower layer against levels at the edges (1.0 and 0.0004) under
//! `max_in_flight`, and against a breaker's verdict (DESIGN §8): a half-open verdict holds
//! tower callers like an open one (only workers probe), and the `Retry-After` hint of a
//! verdict is its next transition time.

use std::num::NonZeroUsize;
use std::time::Duration;

use backpressure::policy::{Breaker, BreakerState, PolicyState};
use backpressure::tower::{Hold, HoldError, HoldLayer};
use backpressure::{Coordinator, Level, MaxDefer, RaiseOptions, Sink, WorkContext};
use tokio_test::{assert_pending, assert_ready_ok};
use tower::BoxError;
use tower_test::mock::{self, Handle, Mock, Spawn};

const SIGNAL: &str = "backpressure.downstream";

type Held = Spawn<Hold<Mock<&'static str, &'static str>>>;
type Mocked = Handle<&'static str, &'static str>;

fn raise_level(sink: &Sink, key: &str, level: f64) {
    let options = RaiseOptions::new()
        .key(key)
        .level(Level::new(level).unwrap());
    sink.raise_with(SIGNAL, options).unwrap();
}

fn limit(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap()
}

fn hold_error(error: BoxError) -> HoldError {
    match error.downcast::<HoldError>() {
        Ok(error) => *error,
        Err(other) => panic!("expected a `HoldError`, got {other}"),
    }
}

/// How many of `services` become ready now (each then holds its place).
fn ready_count(services: &mut [Held]) -> usize {
    let mut ready = 0;
    for service in services {
        ready += usize::from(service.poll_ready().is_ready());
    }
    ready
}

#[tokio::test]
async fn a_level_of_one_lets_the_whole_limit_through_and_then_saturates() {
    let sink = Sink::new();
    raise_level(&sink, "adaptive", 1.0);
    let layer = HoldLayer::wait(&sink, SIGNAL)
        .unwrap()
        .max_in_flight(limit(3));
    let (first, _handle): (Held, Mocked) = mock::spawn_layer(layer);
    let mut services: Vec<Held> = (0..4).map(|_| first.clone()).collect();
    assert_eq!(
        ready_count(&mut services),
        3,
        "level 1.0 holds nothing back"
    );

    let layer = HoldLayer::fail_fast(&sink, SIGNAL)
        .unwrap()
        .max_in_flight(limit(2));
    let (mut service, _handle): (Held, Mocked) = mock::spawn_layer(layer);
    assert_ready_ok!(service.poll_ready());
    let _one = service.call("one");
    assert_ready_ok!(service.poll_ready());
    let _two = service.call("two");
    assert_ready_ok!(service.poll_ready());
    let error = hold_error(service.call("three").await.unwrap_err());
    assert_eq!(
        error,
        HoldError::Saturated { max_in_flight: 2 },
        "a level of 1.0 is no reason to name the signal"
    );
}

#[tokio::test]
async fn a_level_of_0_0004_lets_one_call_in_a_thousand_through_never_none() {
    let sink = Sink::new();
    raise_level(&sink, "adaptive", 0.0004);
    for (max_in_flight, through) in [(1, 1), (3, 1), (1000, 1), (2000, 2)] {
        let layer = HoldLayer::wait(&sink, SIGNAL)
            .unwrap()
            .max_in_flight(limit(max_in_flight));
        let (first, _handle): (Held, Mocked) = mock::spawn_layer(layer);
        let mut services: Vec<Held> = (0..4).map(|_| first.clone()).collect();
        assert_eq!(
            ready_count(&mut services),
            through,
            "max_in_flight({max_in_flight})"
        );
    }
    // Without a limit only level 0 holds.
    let (mut service, _handle): (Held, Mocked) =
        mock::spawn_layer(HoldLayer::wait(&sink, SIGNAL).unwrap());
    assert_ready_ok!(service.poll_ready());
}

/// A worker whose breaker on `SIGNAL` opens on its first failure for `open_for`.
fn owner(sink: &Sink, open_for: Duration) -> Coordinator<bool> {
    Coordinator::builder()
        .sink(sink.clone())
        .name("owner")
        .concurrency(1)
        .defer_on(SIGNAL)
        .max_defer(MaxDefer::Never)
        .policy(
            Breaker::error_rate(SIGNAL)
                .consecutive_failures(1)
                .open_for(open_for)
                .jitter(0.0)
                .probes(1)
                .ttl(Duration::from_secs(15)),
        )
        .build(|fail: bool, _: WorkContext| async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            if fail {
                Err("refused")
            } else {
                Ok(())
            }
        })
        .unwrap()
}

async fn settle() {
    for _ in 0..64 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_half_open_verdict_holds_tower_callers_until_it_closes() {
    let sink = Sink::new();
    let owner = owner(&sink, Duration::from_secs(1));
    owner.enqueue(true).await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    settle().await;
    let (mut service, _handle): (Held, Mocked) =
        mock::spawn_layer(HoldLayer::wait(&sink, SIGNAL).unwrap());
    assert_pending!(service.poll_ready());
    tokio::time::sleep(Duration::from_secs(1)).await;
    settle().await;
    let state = owner.policies()[0].state;
    assert_eq!(state, PolicyState::Breaker(BreakerState::HalfOpen));
    assert_pending!(service.poll_ready(), "tower callers are not probes");
    // The owner's probe closes the breaker: the held caller is woken and passes.
    owner.enqueue(false).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    settle().await;
    assert!(service.is_woken());
    assert_ready_ok!(service.poll_ready());
}

#[tokio::test(start_paused = true)]
async fn fail_fast_hints_a_verdict_s_next_transition_as_retry_after() {
    let sink = Sink::new();
    let owner = owner(&sink, Duration::from_secs(60));
    owner.enqueue(true).await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    settle().await;
    let next = owner.policies()[0].next_transition_in.unwrap();
    assert!(next > Duration::from_secs(59), "{next:?}");
    let (mut service, _handle): (Held, Mocked) =
        mock::spawn_layer(HoldLayer::fail_fast(&sink, SIGNAL).unwrap());
    assert_ready_ok!(service.poll_ready());
    let error = hold_error(service.call("ping").await.unwrap_err());
    let HoldError::Rejected { retry_after, .. } = error else {
        panic!("{error:?}");
    };
    // DESIGN §8: "`Retry-After` is a verdict's next transition time (rounded up), else a
    // TTL, else absent". A client told 15 s comes back to a verdict that holds for 45 more.
    assert_eq!(retry_after, Some(Duration::from_secs(60)), "{:?}", next);
}
