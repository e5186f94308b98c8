//! The tower layer: wait mode (pending while held, woken only by the sink, max wait) and
//! fail-fast mode (a typed rejection, never an error from `poll_ready`).

use std::convert::Infallible;
use std::time::Duration;

use backpressure::tower::{Hold, HoldError, HoldLayer, HoldMode};
use backpressure::{error::PatternError, Pattern, Sink};
use tokio_test::{assert_pending, assert_ready_err, assert_ready_ok};
use tower::{service_fn, BoxError, Service, ServiceBuilder, ServiceExt};
use tower_test::assert_request_eq;
use tower_test::mock::{self, Handle, Mock, Spawn};

const SIGNAL: &str = "backpressure.downstream";

type Held = Spawn<Hold<Mock<&'static str, &'static str>>>;

fn spawn(layer: HoldLayer) -> (Held, Handle<&'static str, &'static str>) {
    mock::spawn_layer(layer)
}

fn hold_error(error: BoxError) -> HoldError {
    match error.downcast::<HoldError>() {
        Ok(error) => *error,
        Err(other) => panic!("expected a `HoldError`, got {other}"),
    }
}

/// Calls the ready service and answers the request at the mock.
async fn call_through(service: &mut Held, handle: &mut Handle<&'static str, &'static str>) {
    let response = service.call("ping");
    assert_request_eq!(handle, "ping").send_response("pong");
    assert_eq!(response.await.unwrap(), "pong");
}

#[tokio::test]
async fn goes_straight_through_when_nothing_is_raised() {
    let sink = Sink::new();
    let (mut service, mut handle) = spawn(HoldLayer::wait(&sink, "backpressure.*").unwrap());
    sink.raise("other.signal").unwrap();
    assert_ready_ok!(service.poll_ready());
    call_through(&mut service, &mut handle).await;
}

#[tokio::test]
async fn pending_while_raised_and_woken_by_the_retract_only() {
    let sink = Sink::new();
    let (mut service, mut handle) = spawn(HoldLayer::wait(&sink, "backpressure.*").unwrap());
    sink.raise(SIGNAL).unwrap();
    assert_pending!(service.poll_ready());
    assert!(!service.is_woken());

    // Changes that leave a matching signal raised do not wake the held task.
    sink.raise("backpressure.db").unwrap();
    sink.raise("other.signal").unwrap();
    sink.retract("other.signal").unwrap();
    sink.retract(SIGNAL).unwrap();
    assert!(!service.is_woken());
    assert_pending!(service.poll_ready());

    // The last matching retract does.
    sink.retract("backpressure.db").unwrap();
    assert!(service.is_woken());
    assert_ready_ok!(service.poll_ready());
    call_through(&mut service, &mut handle).await;
}

#[tokio::test]
async fn a_raise_after_registration_is_not_lost_and_a_retract_after_it_wakes() {
    let sink = Sink::new();
    let (mut service, _handle) = spawn(HoldLayer::wait(&sink, SIGNAL).unwrap());
    sink.raise(SIGNAL).unwrap();
    assert_pending!(service.poll_ready());
    // Retract and raise again before the task runs: it is woken, finds the signal raised
    // again, and waits for the next retract.
    sink.retract(SIGNAL).unwrap();
    sink.raise(SIGNAL).unwrap();
    assert!(service.is_woken());
    assert_pending!(service.poll_ready());
    assert!(!service.is_woken());
    sink.retract(SIGNAL).unwrap();
    assert!(service.is_woken());
    assert_ready_ok!(service.poll_ready());
}

#[tokio::test]
async fn the_inner_service_is_not_polled_while_held() {
    let sink = Sink::new();
    let (mut service, mut handle) = spawn(HoldLayer::wait(&sink, SIGNAL).unwrap());
    handle.allow(0);
    sink.raise(SIGNAL).unwrap();
    assert_pending!(service.poll_ready());
    // Had the mock been polled, it would have kept our waker and woken it now.
    handle.allow(1);
    assert!(!service.is_woken());

    handle.allow(0);
    sink.retract(SIGNAL).unwrap();
    assert!(service.is_woken());
    // Released: now readiness is the mock's.
    assert_pending!(service.poll_ready());
    handle.allow(1);
    assert!(service.is_woken());
    assert_ready_ok!(service.poll_ready());
    call_through(&mut service, &mut handle).await;
}

#[tokio::test]
async fn ready_stays_ready_until_call() {
    let sink = Sink::new();
    let (mut service, mut handle) = spawn(HoldLayer::wait(&sink, SIGNAL).unwrap());
    assert_ready_ok!(service.poll_ready());
    sink.raise(SIGNAL).unwrap();
    assert_ready_ok!(service.poll_ready());
    assert_ready_ok!(service.poll_ready());
    call_through(&mut service, &mut handle).await;

    // The next request checks again.
    assert_pending!(service.poll_ready());
    sink.retract(SIGNAL).unwrap();
    assert!(service.is_woken());
    assert_ready_ok!(service.poll_ready());
}

#[tokio::test]
async fn a_clone_starts_unready() {
    let sink = Sink::new();
    let (mut service, _handle) = spawn(HoldLayer::wait(&sink, SIGNAL).unwrap());
    assert_ready_ok!(service.poll_ready());
    sink.raise(SIGNAL).unwrap();

    let mut clone = service.clone();
    assert_pending!(clone.poll_ready());
    assert_ready_ok!(service.poll_ready());

    let mut other = clone.clone();
    assert_pending!(other.poll_ready());
    sink.retract(SIGNAL).unwrap();
    assert!(clone.is_woken() && other.is_woken());
    assert_ready_ok!(clone.poll_ready());
    assert_ready_ok!(other.poll_ready());
}

#[tokio::test(start_paused = true)]
async fn max_wait_makes_call_fail_with_a_typed_error() {
    let sink = Sink::new();
    let layer = HoldLayer::wait_at_most(&sink, "backpressure.*", Duration::from_secs(5)).unwrap();
    let (mut service, mut handle) = spawn(layer);
    sink.raise(SIGNAL).unwrap();
    assert_pending!(service.poll_ready());

    tokio::time::advance(Duration::from_secs(4)).await;
    assert!(!service.is_woken());
    assert_pending!(service.poll_ready());
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(service.is_woken());
    assert_ready_ok!(service.poll_ready());
    assert_ready_ok!(service.poll_ready());

    let error = hold_error(service.call("ping").await.unwrap_err());
    assert_eq!(
        error,
        HoldError::TimedOut {
            pattern: Pattern::parse("backpressure.*").unwrap(),
            waited: Duration::from_secs(5),
        }
    );
    assert_eq!(
        error.to_string(),
        "timed out after 5.0 s: a signal matching `backpressure.*` is still raised"
    );
    // The request never reached the inner service.
    assert_pending!(handle.poll_request());

    // The next request waits afresh, with a new max wait.
    assert_pending!(service.poll_ready());
    tokio::time::advance(Duration::from_secs(3)).await;
    sink.retract(SIGNAL).unwrap();
    assert!(service.is_woken());
    assert_ready_ok!(service.poll_ready());
    call_through(&mut service, &mut handle).await;
}

#[tokio::test]
async fn fail_fast_rejects_naming_the_signal_and_never_fails_readiness() {
    let sink = Sink::new();
    let layer = HoldLayer::fail_fast(&sink, "backpressure.*").unwrap();
    assert_eq!(layer.mode(), HoldMode::FailFast);
    let (mut service, mut handle) = spawn(layer);
    sink.raise("backpressure.db").unwrap();
    sink.raise_keyed("backpressure.downstream", "replica-1")
        .unwrap();

    assert_ready_ok!(service.poll_ready());
    let error = hold_error(service.call("ping").await.unwrap_err());
    assert_eq!(
        error,
        HoldError::Rejected {
            signal: "backpressure.db".into(),
            retry_after: None,
        }
    );
    assert_eq!(
        error.to_string(),
        "rejected: signal `backpressure.db` is raised"
    );
    assert_pending!(handle.poll_request());

    // Readiness stays the inner service's, whatever is raised.
    for _ in 0..3 {
        assert_ready_ok!(service.poll_ready());
    }
    handle.allow(0);
    sink.retract("backpressure.db").unwrap();
    assert_ready_ok!(service.poll_ready()); // still reserved by the rejected request
    let error = hold_error(service.call("ping").await.unwrap_err());
    assert!(
        matches!(&error, HoldError::Rejected { signal, .. } if &**signal == SIGNAL),
        "{error:?}"
    );

    sink.clear();
    handle.allow(1);
    assert_ready_ok!(service.poll_ready());
    call_through(&mut service, &mut handle).await;
}

#[tokio::test(start_paused = true)]
async fn fail_fast_hints_when_to_retry_from_the_ttls() {
    let sink = Sink::new();
    let (mut service, _handle) = spawn(HoldLayer::fail_fast(&sink, "backpressure.*").unwrap());
    sink.raise_for("backpressure.db", Duration::from_secs(30))
        .unwrap();
    sink.raise_keyed_for(SIGNAL, "replica-1", Duration::from_secs(10))
        .unwrap();
    tokio::time::advance(Duration::from_secs(4)).await;

    assert_ready_ok!(service.poll_ready());
    let error = hold_error(service.call("ping").await.unwrap_err());
    assert_eq!(
        error,
        HoldError::Rejected {
            signal: "backpressure.db".into(),
            retry_after: Some(Duration::from_secs(26)),
        }
    );
}

#[tokio::test]
async fn keyed_signals_hold_until_the_last_key_is_retracted() {
    let sink = Sink::new();
    let (mut service, _handle) = spawn(HoldLayer::wait(&sink, SIGNAL).unwrap());
    sink.raise_keyed(SIGNAL, "replica-1").unwrap();
    sink.raise_keyed(SIGNAL, "replica-2").unwrap();
    assert_pending!(service.poll_ready());

    sink.retract_keyed(SIGNAL, "replica-1").unwrap();
    assert!(!service.is_woken());
    assert_pending!(service.poll_ready());
    sink.retract_keyed(SIGNAL, "replica-2").unwrap();
    assert!(service.is_woken());
    assert_ready_ok!(service.poll_ready());
}

#[tokio::test(start_paused = true)]
async fn ttl_expiry_releases_the_hold() {
    let sink = Sink::new();
    let (mut service, mut handle) = spawn(HoldLayer::wait(&sink, SIGNAL).unwrap());
    sink.raise_for(SIGNAL, Duration::from_secs(10)).unwrap();
    assert_pending!(service.poll_ready());

    tokio::time::advance(Duration::from_secs(9)).await;
    tokio::task::yield_now().await;
    assert!(!service.is_woken());

    // The sink's reaper (a task on this runtime) expires the entry and wakes the service.
    tokio::time::advance(Duration::from_secs(1)).await;
    for _ in 0..10 {
        if service.is_woken() {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(service.is_woken());
    assert_ready_ok!(service.poll_ready());
    call_through(&mut service, &mut handle).await;
}

#[tokio::test]
async fn an_invalid_pattern_is_an_error_at_construction() {
    let sink = Sink::new();
    let error = HoldLayer::wait(&sink, "").unwrap_err();
    assert_eq!(error, PatternError::Empty);
    assert!(HoldLayer::fail_fast(&sink, "backpressure.$").is_err());
    assert!(HoldLayer::wait_at_most(&sink, "a,,b", Duration::from_secs(1)).is_err());
}

#[tokio::test]
#[should_panic(expected = "before `poll_ready` returned ready")]
async fn calling_a_held_service_panics() {
    let sink = Sink::new();
    let (mut service, _handle) = spawn(HoldLayer::wait(&sink, SIGNAL).unwrap());
    sink.raise(SIGNAL).unwrap();
    assert_pending!(service.poll_ready());
    drop(service.call("ping"));
}

#[test]
fn the_layer_service_and_future_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<HoldLayer>();
    send_sync::<Hold<Mock<&'static str, &'static str>>>();
    send_sync::<<Hold<Mock<&'static str, &'static str>> as Service<&'static str>>::Future>();
    send_sync::<HoldError>();
}

async fn ship(order: u32) -> Result<String, Infallible> {
    Ok(format!("shipped {order}"))
}

/// A real stack: requests from many clones wait together and all go out on the retract,
/// raised and retracted from another thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_builder_stack_waits_then_sends_everything() {
    let sink = Sink::new();
    let client = ServiceBuilder::new()
        .map_request(|order: u32| order * 10)
        .layer(HoldLayer::wait(&sink, "backpressure.*").unwrap())
        .service(service_fn(ship));

    assert_eq!(client.clone().oneshot(1).await.unwrap(), "shipped 10");

    let raiser = sink.clone();
    tokio::task::spawn_blocking(move || raiser.raise(SIGNAL).unwrap())
        .await
        .unwrap();
    let held: Vec<_> = (2..=5)
        .map(|order| tokio::spawn(client.clone().oneshot(order)))
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(held.iter().all(|task| !task.is_finished()));

    let retractor = sink.clone();
    tokio::task::spawn_blocking(move || retractor.retract(SIGNAL).unwrap())
        .await
        .unwrap();
    let mut shipped = Vec::new();
    for task in held {
        // Real time, generous for a loaded machine.
        let response = tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("a retract wakes every held request")
            .unwrap();
        shipped.push(response.unwrap());
    }
    assert_eq!(
        shipped,
        ["shipped 20", "shipped 30", "shipped 40", "shipped 50"]
    );
}

#[tokio::test(start_paused = true)]
async fn service_builder_stack_times_out_and_fails_fast() {
    let sink = Sink::new();
    sink.raise(SIGNAL).unwrap();

    let bounded = ServiceBuilder::new()
        .layer(HoldLayer::wait_at_most(&sink, SIGNAL, Duration::from_millis(250)).unwrap())
        .service(service_fn(ship));
    let started = tokio::time::Instant::now();
    let error = hold_error(bounded.oneshot(1).await.unwrap_err());
    assert!(matches!(error, HoldError::TimedOut { .. }), "{error:?}");
    assert_eq!(started.elapsed(), Duration::from_millis(250));

    let mut api = ServiceBuilder::new()
        .layer(HoldLayer::fail_fast(&sink, "backpressure.*").unwrap())
        .service(service_fn(ship));
    let error = hold_error(api.ready().await.unwrap().call(2).await.unwrap_err());
    assert!(matches!(error, HoldError::Rejected { .. }), "{error:?}");

    sink.retract(SIGNAL).unwrap();
    assert_eq!(
        api.ready().await.unwrap().call(3).await.unwrap(),
        "shipped 3"
    );
}

#[tokio::test]
async fn the_error_from_the_inner_service_passes_through() {
    let sink = Sink::new();
    let (mut service, mut handle) = spawn(HoldLayer::wait(&sink, SIGNAL).unwrap());
    assert_ready_ok!(service.poll_ready());
    let response = service.call("ping");
    let (_, respond) = handle.next_request().await.unwrap();
    respond.send_error("downstream broke");
    let error = response.await.unwrap_err();
    assert_eq!(error.to_string(), "downstream broke");
    assert!(error.downcast_ref::<HoldError>().is_none());

    handle.send_error("not ready");
    assert_ready_err!(service.poll_ready());
    assert_ready_ok!(service.poll_ready());
}
