//! The tower layer and levels: without an in-flight limit only level 0 holds; under
//! `max_in_flight(n)` a levelled signal allows `max(1, floor(n × level))` calls in flight;
//! and the hold is checked again when a pending inner service becomes ready.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use backpressure::tower::{Hold, HoldError, HoldLayer};
use backpressure::{Level, RaiseOptions, Sink};
use tokio_test::{assert_pending, assert_ready_ok};
use tower::{service_fn, BoxError, Service, ServiceBuilder, ServiceExt};
use tower_test::assert_request_eq;
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

#[tokio::test]
async fn without_a_limit_a_levelled_signal_holds_nothing_in_either_mode() {
    let sink = Sink::new();
    raise_level(&sink, "adaptive", 1.0);
    raise_level(&sink, "other", 0.3);

    let (mut waiting, mut handle) = mock::spawn_layer(HoldLayer::wait(&sink, SIGNAL).unwrap());
    assert_ready_ok!(waiting.poll_ready());
    let response = waiting.call("ping");
    assert_request_eq!(handle, "ping").send_response("pong");
    assert_eq!(response.await.unwrap(), "pong");

    let layer = HoldLayer::fail_fast(&sink, SIGNAL).unwrap();
    let (mut failing, mut handle): (Held, Mocked) = mock::spawn_layer(layer);
    assert_ready_ok!(failing.poll_ready());
    let response = failing.call("ping");
    assert_request_eq!(handle, "ping").send_response("pong");
    assert_eq!(response.await.unwrap(), "pong");

    // A level-0 entry among them holds again.
    sink.raise_keyed(SIGNAL, "breaker").unwrap();
    assert_pending!(waiting.poll_ready());
    assert_ready_ok!(failing.poll_ready());
    let error = hold_error(failing.call("ping").await.unwrap_err());
    assert!(matches!(error, HoldError::Rejected { .. }), "{error:?}");
    sink.retract_keyed(SIGNAL, "breaker").unwrap();
    assert!(waiting.is_woken());
    assert_ready_ok!(waiting.poll_ready());
}

#[tokio::test]
async fn wait_mode_allows_the_levelled_share_of_the_limit_in_flight() {
    let sink = Sink::new();
    let layer = HoldLayer::wait(&sink, SIGNAL)
        .unwrap()
        .max_in_flight(limit(4));
    assert_eq!(layer.in_flight_limit(), Some(limit(4)));
    let (mut first, mut handle) = mock::spawn_layer(layer);
    let mut second = first.clone();
    let mut third = first.clone();
    raise_level(&sink, "adaptive", 0.5); // floor(4 × 0.5) = 2

    assert_ready_ok!(first.poll_ready());
    let first_response = first.call("one");
    assert_ready_ok!(second.poll_ready());
    let second_response = second.call("two");
    assert_pending!(third.poll_ready());

    // The level rises to 0.75: three may be in flight; the held service is woken.
    raise_level(&sink, "adaptive", 0.75);
    assert!(third.is_woken());
    assert_ready_ok!(third.poll_ready());
    let third_response = third.call("three");
    assert_pending!(first.poll_ready());

    // A call in flight finishing (its response future dropped) frees a place.
    assert_request_eq!(handle, "one").send_response("1");
    assert_eq!(first_response.await.unwrap(), "1");
    assert!(first.is_woken());
    assert_ready_ok!(first.poll_ready());

    // A full stop holds even a service that has a place free; a retract releases.
    let fourth = first.call("four");
    drop((second_response, third_response, fourth));
    sink.raise_keyed(SIGNAL, "breaker").unwrap();
    assert_pending!(second.poll_ready());
    sink.retract_keyed(SIGNAL, "breaker").unwrap();
    assert!(second.is_woken());
    assert_ready_ok!(second.poll_ready());
}

#[tokio::test]
async fn the_limit_applies_without_a_signal_and_a_low_level_still_lets_one_through() {
    let sink = Sink::new();
    let layer = HoldLayer::wait(&sink, SIGNAL)
        .unwrap()
        .max_in_flight(limit(2));
    let (mut first, _handle): (Held, Mocked) = mock::spawn_layer(layer);
    let mut second = first.clone();
    let mut third = first.clone();
    assert_ready_ok!(first.poll_ready());
    assert_ready_ok!(second.poll_ready());
    assert_pending!(third.poll_ready());
    // A ready service holds its place until `call`; dropping it gives the place back.
    drop(second);
    assert!(third.is_woken());
    assert_ready_ok!(third.poll_ready());
    drop((first, third));

    let layer = HoldLayer::wait(&sink, SIGNAL)
        .unwrap()
        .max_in_flight(limit(10));
    let (mut first, _handle): (Held, Mocked) = mock::spawn_layer(layer);
    let mut second = first.clone();
    raise_level(&sink, "adaptive", 0.01); // floor(10 × 0.01) = 0, but never below one
    assert_ready_ok!(first.poll_ready());
    assert_pending!(second.poll_ready());
}

#[tokio::test]
async fn fail_fast_rejects_beyond_the_levelled_share_naming_the_signal() {
    let sink = Sink::new();
    let layer = HoldLayer::fail_fast(&sink, SIGNAL)
        .unwrap()
        .max_in_flight(limit(2));
    let (mut service, mut handle): (Held, Mocked) = mock::spawn_layer(layer);
    raise_level(&sink, "adaptive", 0.5); // floor(2 × 0.5) = 1

    assert_ready_ok!(service.poll_ready());
    let in_flight = service.call("one");
    assert_ready_ok!(service.poll_ready());
    let error = hold_error(service.call("two").await.unwrap_err());
    assert_eq!(
        error,
        HoldError::Rejected {
            signal: SIGNAL.into(),
            retry_after: None,
        }
    );

    // Without the signal the layer's own limit of 2 applies, then `Saturated`.
    sink.retract_keyed(SIGNAL, "adaptive").unwrap();
    let second = service.call("two");
    assert_ready_ok!(service.poll_ready());
    let error = hold_error(service.call("three").await.unwrap_err());
    assert_eq!(error, HoldError::Saturated { max_in_flight: 2 });
    assert_eq!(error.to_string(), "rejected: 2 calls are already in flight");

    assert_request_eq!(handle, "one").send_response("1");
    assert_eq!(in_flight.await.unwrap(), "1");
    drop(second);
    assert_ready_ok!(service.poll_ready());
    let third = service.call("three");
    assert_request_eq!(handle, "two");
    assert_request_eq!(handle, "three").send_response("3");
    assert_eq!(third.await.unwrap(), "3");
}

#[tokio::test]
async fn a_signal_raised_while_the_inner_service_is_pending_holds_the_request() {
    let sink = Sink::new();
    let (mut service, mut handle): (Held, Mocked) =
        mock::spawn_layer(HoldLayer::wait(&sink, SIGNAL).unwrap());
    handle.allow(0);
    // The hold passes, the inner service is not ready.
    assert_pending!(service.poll_ready());
    sink.raise(SIGNAL).unwrap();
    // The inner service becomes ready while the signal is raised: still held.
    handle.allow(1);
    assert!(service.is_woken());
    assert_pending!(service.poll_ready());
    sink.retract(SIGNAL).unwrap();
    assert!(service.is_woken());
    assert_ready_ok!(service.poll_ready());
}

#[tokio::test(start_paused = true)]
async fn a_held_service_times_out_on_the_limit_as_on_a_signal() {
    let sink = Sink::new();
    let layer = HoldLayer::wait_at_most(&sink, SIGNAL, Duration::from_secs(5))
        .unwrap()
        .max_in_flight(limit(1));
    let (mut first, _handle): (Held, Mocked) = mock::spawn_layer(layer);
    let mut second = first.clone();
    assert_ready_ok!(first.poll_ready());
    let _in_flight = first.call("one");
    assert_pending!(second.poll_ready());
    tokio::time::advance(Duration::from_secs(5)).await;
    assert!(second.is_woken());
    assert_ready_ok!(second.poll_ready());
    let error = hold_error(second.call("two").await.unwrap_err());
    assert!(matches!(error, HoldError::TimedOut { .. }), "{error:?}");
}

/// Many clones on two threads, each sending one call after another through a wait-mode layer
/// with `max_in_flight(8)` under a level of 0.5, while another thread keeps re-raising the
/// level: never more than 4 calls in the inner service at once, and every call goes out (a
/// lost wake-up would leave a clone waiting for ever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_levelled_limit_holds_across_threads_and_every_call_goes_out() {
    const CLONES: usize = 16;
    const CALLS: usize = 100;
    let sink = Sink::new();
    raise_level(&sink, "adaptive", 0.5);
    let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (inner_now, inner_most) = (Arc::clone(&now), Arc::clone(&most));
    let client = ServiceBuilder::new()
        .layer(
            HoldLayer::wait(&sink, SIGNAL)
                .unwrap()
                .max_in_flight(limit(8)),
        )
        .service(service_fn(move |_: usize| {
            let running = inner_now.fetch_add(1, Ordering::SeqCst) + 1;
            inner_most.fetch_max(running, Ordering::SeqCst);
            let now = Arc::clone(&inner_now);
            async move {
                tokio::task::yield_now().await;
                now.fetch_sub(1, Ordering::SeqCst);
                Ok::<_, BoxError>(())
            }
        }));
    let done = StopOnDrop(Arc::new(AtomicBool::new(false)));
    let (raiser, stop) = (sink.clone(), Arc::clone(&done.0));
    let churn = tokio::task::spawn_blocking(move || {
        // Re-raising the same entry at the same level changes nothing the layer sees, and
        // an added entry at a higher level does not raise the lowest: the limit stays 4.
        while !stop.load(Ordering::SeqCst) {
            raise_level(&raiser, "adaptive", 0.5);
            raise_level(&raiser, "other", 0.9);
            raiser.retract_keyed(SIGNAL, "other").unwrap();
        }
    });
    let senders: Vec<_> = (0..CLONES)
        .map(|_| {
            let mut client = client.clone();
            tokio::spawn(async move {
                for call in 0..CALLS {
                    client.ready().await?.call(call).await?;
                }
                Ok::<_, BoxError>(())
            })
        })
        .collect();
    for sender in senders {
        // Real time, generous for a loaded machine: only a lost wake-up takes this long.
        tokio::time::timeout(Duration::from_secs(60), sender)
            .await
            .expect("every held clone is woken")
            .unwrap()
            .unwrap();
    }
    drop(done);
    churn.await.unwrap();
    assert!(most.load(Ordering::SeqCst) <= 4, "{most:?} calls at once");
    assert_eq!(now.load(Ordering::SeqCst), 0);
}

/// Stops the churning thread when dropped, also when the test fails, so that a failure is
/// reported instead of the runtime waiting for the thread for ever.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}
