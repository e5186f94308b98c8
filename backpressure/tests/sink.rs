//! Sinks: name and pattern validation, glob semantics, keyed raises, TTLs, subscriptions and
//! the process-wide named sinks.

use std::collections::HashSet;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use backpressure::{
    error::{NameErrorKind, PatternError, SignalError},
    validate_name, Pattern, SignalEvent, SignalEventKind, Sink, MAX_NAME_LEN,
};
use futures_util::{FutureExt, StreamExt};
use tokio::time::{advance, Instant};

/// The next event of a subscription, which must already be buffered.
fn next_ready(events: &mut backpressure::Subscription) -> SignalEvent {
    events
        .next()
        .now_or_never()
        .expect("an event should be buffered")
        .expect("the subscription should not end")
        .expect("the subscription should not lag")
}

/// Asserts that no event is buffered.
fn assert_no_event(events: &mut backpressure::Subscription) {
    if let Some(event) = events.next().now_or_never() {
        panic!("expected no event, got {event:?}");
    }
}

fn name_error(err: SignalError) -> backpressure::error::NameError {
    match err {
        SignalError::Name(err) => err,
        other => panic!("expected SignalError::Name, got {other:?}"),
    }
}

#[test]
fn valid_names_are_accepted_at_every_edge() {
    let sink = Sink::new();
    let longest = "a".repeat(MAX_NAME_LEN);
    for name in [
        "a",
        "backpressure.downstream",
        "AZaz09._-:/",
        "svc/db:primary-1_replica.2",
        longest.as_str(),
    ] {
        assert!(validate_name(name).is_ok(), "{name:?}");
        sink.raise(name).unwrap_or_else(|e| panic!("{name:?}: {e}"));
        assert!(sink.is_raised(name), "{name:?}");
    }
    assert_eq!(sink.snapshot().len(), 5);
}

#[test]
fn empty_name_is_a_typed_error_and_raises_nothing() {
    let sink = Sink::new();
    let err = name_error(sink.raise("").unwrap_err());
    assert_eq!(err.kind(), &NameErrorKind::Empty);
    assert!(err.to_string().contains("empty"), "{err}");
    assert!(sink.snapshot().is_empty());
}

#[test]
fn overlong_name_reports_its_length_and_the_limit() {
    let sink = Sink::new();
    let name = "x".repeat(MAX_NAME_LEN + 1);
    let err = name_error(sink.raise(&name).unwrap_err());
    assert_eq!(err.kind(), &NameErrorKind::TooLong { len: 257 });
    let message = err.to_string();
    assert!(
        message.contains("257") && message.contains("256"),
        "{message}"
    );
    // The error keeps a bounded prefix of hostile input, not the whole string.
    assert!(err.name().len() <= 64);
    assert!(sink.snapshot().is_empty());
}

#[test]
fn bad_characters_are_named_with_their_position() {
    let sink = Sink::new();
    for (name, ch, at) in [
        ("cpu load", ' ', 3),
        ("backpressure.*", '*', 13),
        ("db?", '?', 2),
        ("a,b", ',', 1),
        ("naïve", 'ï', 2),
        ("tab\there", '\t', 3),
    ] {
        let err = name_error(sink.raise(name).unwrap_err());
        assert_eq!(err.kind(), &NameErrorKind::BadChar { ch, at }, "{name:?}");
        let message = err.to_string();
        assert!(
            message.contains(&format!("{ch:?}")) && message.contains(&format!("byte {at}")),
            "{name:?}: {message}"
        );
        assert!(message.contains("not allowed"), "{message}");
    }
    // Every operation that takes a name validates it the same way.
    assert!(matches!(
        sink.retract("cpu load"),
        Err(SignalError::Name(_))
    ));
    assert!(matches!(
        sink.raise_for("", Duration::from_secs(1)),
        Err(SignalError::Name(_))
    ));
    assert!(matches!(
        sink.retract_keyed("a b", "k"),
        Err(SignalError::Name(_))
    ));
    assert!(sink.snapshot().is_empty());
    // An invalid name can never be raised, so it is never reported as raised.
    assert!(!sink.is_raised("cpu load"));
}

#[test]
fn bad_keys_are_reported_as_key_errors() {
    let sink = Sink::new();
    let err = sink
        .raise_keyed("backpressure.db", "replica 1")
        .unwrap_err();
    match &err {
        SignalError::Key(inner) => {
            assert_eq!(inner.kind(), &NameErrorKind::BadChar { ch: ' ', at: 7 })
        }
        other => panic!("expected SignalError::Key, got {other:?}"),
    }
    assert!(err.to_string().starts_with("invalid signal key"), "{err}");
    assert!(matches!(
        sink.raise_keyed("backpressure.db", ""),
        Err(SignalError::Key(_))
    ));
    assert!(matches!(
        sink.retract_keyed("backpressure.db", "x*"),
        Err(SignalError::Key(_))
    ));
    // A bad name is reported before a bad key.
    assert!(matches!(
        sink.raise_keyed("bad name", "bad key"),
        Err(SignalError::Name(_))
    ));
    assert!(!sink.is_raised("backpressure.db"));
}

#[test]
fn zero_ttl_is_rejected() {
    let sink = Sink::new();
    assert_eq!(
        sink.raise_for("backpressure.db", Duration::ZERO),
        Err(SignalError::ZeroTtl)
    );
    assert_eq!(
        sink.raise_keyed_for("backpressure.db", "k", Duration::ZERO),
        Err(SignalError::ZeroTtl)
    );
    assert!(SignalError::ZeroTtl.to_string().contains("zero"));
    assert!(!sink.is_raised("backpressure.db"));
}

#[test]
fn bad_patterns_are_typed_errors_that_say_what_is_wrong() {
    let sink = Sink::new();
    sink.raise("backpressure.db").unwrap();
    let cases: [(&str, PatternError, &str); 5] = [
        ("", PatternError::Empty, "empty"),
        ("   ", PatternError::Empty, "empty"),
        (
            "backpressure.*,,db.*",
            PatternError::EmptyItem { index: 1 },
            "item 1",
        ),
        (
            "backpressure.*,",
            PatternError::EmptyItem { index: 1 },
            "item 1",
        ),
        (
            "db.*, a b",
            PatternError::BadChar {
                item: "a b".into(),
                ch: ' ',
                at: 1,
            },
            "' ' at byte 1",
        ),
    ];
    for (pattern, expected, fragment) in cases {
        let err = sink.any_matching(pattern).unwrap_err();
        assert_eq!(err, SignalError::Pattern(expected.clone()), "{pattern:?}");
        assert!(err.to_string().contains(fragment), "{pattern:?}: {err}");
        assert_eq!(
            sink.retract_matching(pattern).unwrap_err(),
            SignalError::Pattern(expected.clone())
        );
        assert_eq!(Pattern::parse(pattern).unwrap_err(), expected);
    }
    assert_eq!(
        Pattern::parse(&"a".repeat(MAX_NAME_LEN + 1)).unwrap_err(),
        PatternError::TooLong { len: 257 }
    );
    // A failed retract_matching removed nothing.
    assert!(sink.is_raised("backpressure.db"));
}

#[test]
fn glob_star_question_mark_and_comma_lists() {
    let m = |pattern: &str, name: &str| Pattern::parse(pattern).unwrap().matches(name);
    // Exact match when there is no wildcard.
    assert!(m("backpressure.downstream", "backpressure.downstream"));
    assert!(!m("backpressure.downstream", "backpressure.downstream.x"));
    assert!(!m("backpressure.downstream", "backpressure.downstrea"));
    assert!(Pattern::parse("backpressure.downstream")
        .unwrap()
        .is_exact());
    assert!(!Pattern::parse("a,b").unwrap().is_exact());
    // `*` is any run, including dots and the empty run.
    assert!(m("backpressure.*", "backpressure.db.primary"));
    assert!(m("backpressure.*", "backpressure."));
    assert!(!m("backpressure.*", "backpressure"));
    assert!(!m("backpressure.*", "xbackpressure.db"));
    assert!(m("*.slow", "db.replica.slow"));
    assert!(m("*", "anything"));
    assert!(m("a*b*c", "a-b-b-c"));
    assert!(!m("a*b*c", "a-b-b-d"));
    // `?` is exactly one character (including a dot).
    assert!(m("db.?", "db.1"));
    assert!(!m("db.?", "db."));
    assert!(!m("db.?", "db.12"));
    assert!(m("db?1", "db.1"));
    assert!(m("db.?-slow", "db.7-slow"));
    assert!(m("?*", "x"));
    assert!(!m("?*", ""));
    // Comma lists: any item, whitespace around items ignored.
    let list = Pattern::parse("cpu.high , db.*,net.?").unwrap();
    assert!(list.matches("cpu.high"));
    assert!(list.matches("db.anything.at.all"));
    assert!(list.matches("net.1"));
    assert!(!list.matches("net.10"));
    assert!(!list.matches("cpu.low"));
    assert!(!list.matches(" cpu.high"));
    assert_eq!(list.as_str(), "cpu.high , db.*,net.?");
    assert_eq!(list.to_string(), "cpu.high , db.*,net.?");
    let parsed: Pattern = "a.*".parse().unwrap();
    assert_eq!(parsed, Pattern::parse("a.*").unwrap());
}

#[test]
fn any_matching_and_retract_matching_use_glob_semantics() {
    let sink = Sink::new();
    sink.raise("backpressure.db").unwrap();
    sink.raise_keyed("backpressure.smtp", "a").unwrap();
    sink.raise_keyed("backpressure.smtp", "b").unwrap();
    sink.raise("cpu.high").unwrap();
    sink.raise("net.1").unwrap();

    assert!(sink.any_matching("backpressure.*").unwrap());
    assert!(sink.any_matching("nothing.here, net.?").unwrap());
    assert!(!sink.any_matching("net.??").unwrap());
    assert!(!sink.any_matching("cpu.low").unwrap());

    // Removes every entry (all keys) of every matching name, and only those.
    assert_eq!(sink.retract_matching("backpressure.*, net.?").unwrap(), 4);
    assert!(!sink.any_matching("backpressure.*").unwrap());
    assert!(!sink.is_raised("net.1"));
    assert!(sink.is_raised("cpu.high"));
    assert_eq!(sink.retract_matching("backpressure.*").unwrap(), 0);

    assert_eq!(sink.clear(), 1);
    assert!(sink.snapshot().is_empty());
    assert_eq!(sink.clear(), 0);
}

#[test]
fn keyed_raisers_do_not_clear_each_other() {
    let sink = Sink::new();
    let name = "backpressure.downstream";
    sink.raise_keyed(name, "replica-1").unwrap();
    sink.raise_keyed(name, "replica-2").unwrap();
    sink.raise(name).unwrap();
    assert_eq!(sink.snapshot().len(), 3);

    assert!(sink.retract_keyed(name, "replica-1").unwrap());
    assert!(sink.is_raised(name));
    // Retracting an entry that is not active is reported, not an error.
    assert!(!sink.retract_keyed(name, "replica-1").unwrap());
    assert!(!sink.retract_keyed(name, "never-raised").unwrap());

    let keys: Vec<Option<String>> = sink
        .snapshot()
        .into_iter()
        .map(|s| s.key.map(|k| k.to_string()))
        .collect();
    assert_eq!(keys, vec![None, Some("replica-2".to_owned())]);

    // The unkeyed retract removes every key.
    assert_eq!(sink.retract(name).unwrap(), 2);
    assert!(!sink.is_raised(name));
    assert_eq!(sink.retract(name).unwrap(), 0);
}

#[test]
fn raise_is_idempotent_per_name_and_key() {
    let sink = Sink::new();
    sink.raise("backpressure.db").unwrap();
    sink.raise("backpressure.db").unwrap();
    sink.raise_keyed("backpressure.db", "k").unwrap();
    sink.raise_keyed("backpressure.db", "k").unwrap();
    assert_eq!(sink.snapshot().len(), 2);
    assert_eq!(sink.retract("backpressure.db").unwrap(), 2);
}

#[tokio::test(start_paused = true)]
async fn snapshot_is_sorted_and_reports_raise_and_expiry_times() {
    let sink = Sink::new();
    let t0 = Instant::now();
    sink.raise_keyed("b.sig", "z").unwrap();
    advance(Duration::from_secs(1)).await;
    sink.raise_keyed_for("b.sig", "a", Duration::from_secs(10))
        .unwrap();
    sink.raise("a.sig").unwrap();

    let snapshot = sink.snapshot();
    let view: Vec<(&str, Option<&str>)> = snapshot
        .iter()
        .map(|s| (&*s.name, s.key.as_deref()))
        .collect();
    assert_eq!(
        view,
        vec![("a.sig", None), ("b.sig", Some("a")), ("b.sig", Some("z"))]
    );
    let t1 = t0 + Duration::from_secs(1);
    assert_eq!(snapshot[0].raised_at, t1);
    assert_eq!(snapshot[0].expires_at, None);
    assert_eq!(snapshot[1].raised_at, t1);
    assert_eq!(snapshot[1].expires_at, Some(t1 + Duration::from_secs(10)));
    assert_eq!(snapshot[2].raised_at, t0);
    assert_eq!(snapshot[2].expires_at, None);
}

#[tokio::test(start_paused = true)]
async fn ttl_signal_expires_exactly_at_its_deadline() {
    let sink = Sink::new();
    sink.raise_for("backpressure.db", Duration::from_secs(5))
        .unwrap();
    advance(Duration::from_millis(4_999)).await;
    assert!(sink.is_raised("backpressure.db"));
    assert!(sink.any_matching("backpressure.*").unwrap());
    advance(Duration::from_millis(1)).await;
    assert!(!sink.is_raised("backpressure.db"));
    assert!(!sink.any_matching("backpressure.*").unwrap());
    assert!(sink.snapshot().is_empty());
    // Nothing left to retract.
    assert_eq!(sink.retract("backpressure.db").unwrap(), 0);
}

#[tokio::test(start_paused = true)]
async fn reraising_refreshes_the_ttl_but_keeps_raised_at() {
    let sink = Sink::new();
    let t0 = Instant::now();
    sink.raise_for("backpressure.db", Duration::from_secs(5))
        .unwrap();
    advance(Duration::from_secs(3)).await;
    sink.raise_for("backpressure.db", Duration::from_secs(5))
        .unwrap();
    let entry = &sink.snapshot()[0];
    assert_eq!(entry.raised_at, t0);
    assert_eq!(entry.expires_at, Some(t0 + Duration::from_secs(8)));

    // Past the first deadline: still raised, the stale deadline is ignored.
    advance(Duration::from_secs(3)).await;
    assert!(sink.is_raised("backpressure.db"));
    advance(Duration::from_secs(2)).await;
    assert!(!sink.is_raised("backpressure.db"));

    // A plain raise makes a TTL entry permanent.
    sink.raise_for("backpressure.db", Duration::from_secs(1))
        .unwrap();
    sink.raise("backpressure.db").unwrap();
    assert_eq!(sink.snapshot()[0].expires_at, None);
    advance(Duration::from_secs(60)).await;
    assert!(sink.is_raised("backpressure.db"));
}

#[tokio::test(start_paused = true)]
async fn keyed_ttl_expires_only_its_own_entry() {
    let sink = Sink::new();
    sink.raise_keyed_for("backpressure.db", "crashy", Duration::from_secs(2))
        .unwrap();
    sink.raise_keyed("backpressure.db", "steady").unwrap();
    advance(Duration::from_secs(2)).await;
    let snapshot = sink.snapshot();
    assert_eq!(snapshot.len(), 1);
    assert_eq!(snapshot[0].key.as_deref(), Some("steady"));
    assert!(sink.is_raised("backpressure.db"));
}

#[tokio::test(start_paused = true)]
async fn subscription_reports_raised_retracted_and_expired_events() {
    let sink = Sink::new();
    let mut events = sink.subscribe();
    let t0 = Instant::now();

    sink.raise("backpressure.db").unwrap();
    let raised = next_ready(&mut events);
    assert_eq!(raised.kind, SignalEventKind::Raised);
    assert_eq!(&*raised.name, "backpressure.db");
    assert_eq!(raised.key, None);
    assert_eq!(raised.at, t0);

    // Re-raising an active entry emits nothing.
    sink.raise("backpressure.db").unwrap();
    assert_no_event(&mut events);

    sink.raise_keyed("backpressure.db", "k").unwrap();
    let keyed = next_ready(&mut events);
    assert_eq!(
        (keyed.kind, keyed.key.as_deref()),
        (SignalEventKind::Raised, Some("k"))
    );

    assert!(sink.retract_keyed("backpressure.db", "k").unwrap());
    let retracted = next_ready(&mut events);
    assert_eq!(
        (retracted.kind, retracted.key.as_deref()),
        (SignalEventKind::Retracted, Some("k"))
    );
    // Retracting something inactive emits nothing.
    assert!(!sink.retract_keyed("backpressure.db", "k").unwrap());
    assert_eq!(sink.retract("other.sig").unwrap(), 0);
    assert_no_event(&mut events);

    sink.retract("backpressure.db").unwrap();
    assert_eq!(next_ready(&mut events).kind, SignalEventKind::Retracted);

    // Expiry is pushed by the sink itself: nobody touches the sink after the raise.
    sink.raise_for("cpu.high", Duration::from_secs(3)).unwrap();
    assert_eq!(next_ready(&mut events).kind, SignalEventKind::Raised);
    let expired = tokio::time::timeout(Duration::from_secs(60), events.next())
        .await
        .expect("the expiry event is pushed without anyone touching the sink")
        .unwrap()
        .unwrap();
    assert_eq!(expired.kind, SignalEventKind::Expired);
    assert_eq!(&*expired.name, "cpu.high");
    assert_eq!(expired.at, t0 + Duration::from_secs(3));
    assert_no_event(&mut events);
}

#[tokio::test]
async fn subscription_sees_only_later_events_and_clear_emits_one_per_entry() {
    let sink = Sink::new();
    sink.raise("before.subscribe").unwrap();
    let mut events = sink.subscribe();
    assert_no_event(&mut events);

    sink.raise_keyed("a.sig", "1").unwrap();
    sink.raise_keyed("a.sig", "2").unwrap();
    assert_eq!(next_ready(&mut events).kind, SignalEventKind::Raised);
    assert_eq!(next_ready(&mut events).kind, SignalEventKind::Raised);

    assert_eq!(sink.clear(), 3);
    let mut cleared = HashSet::new();
    for _ in 0..3 {
        let event = next_ready(&mut events);
        assert_eq!(event.kind, SignalEventKind::Retracted);
        cleared.insert((event.name.to_string(), event.key.map(|k| k.to_string())));
    }
    let expected: HashSet<(String, Option<String>)> = [
        ("before.subscribe".to_owned(), None),
        ("a.sig".to_owned(), Some("1".to_owned())),
        ("a.sig".to_owned(), Some("2".to_owned())),
    ]
    .into_iter()
    .collect();
    assert_eq!(cleared, expected);
    assert_no_event(&mut events);
}

#[tokio::test]
async fn slow_subscriber_learns_how_many_events_it_missed() {
    let sink = Sink::new();
    let mut events = sink.subscribe();
    for _ in 0..1_100 {
        sink.raise("flappy.sig").unwrap();
        sink.retract("flappy.sig").unwrap();
    }
    let lagged = events.next().now_or_never().unwrap().unwrap().unwrap_err();
    assert_eq!(lagged.missed, 2_200 - 1_024);
    assert!(lagged.to_string().contains("1176"), "{lagged}");
    // After the report the stream goes on with what it still holds.
    assert!(next_ready(&mut events).name.as_ref() == "flappy.sig");
}

#[tokio::test]
async fn subscription_ends_when_the_sink_is_dropped() {
    let sink = Sink::new();
    let mut events = sink.subscribe();
    sink.raise("a.sig").unwrap();
    drop(sink);
    assert_eq!(
        events.next().await.unwrap().unwrap().kind,
        SignalEventKind::Raised
    );
    assert!(events.next().await.is_none());
}

#[test]
fn clones_share_state_and_standalone_sinks_are_separate() {
    let a = Sink::new();
    let b = a.clone();
    let other = Sink::new();
    a.raise("backpressure.db").unwrap();
    assert!(b.is_raised("backpressure.db"));
    assert!(!other.is_raised("backpressure.db"));
    assert!(a.same_sink(&b));
    assert!(!a.same_sink(&other));
}

#[test]
fn global_sink_is_the_same_from_every_thread_without_a_runtime() {
    const NAME: &str = "tests.sink.global-identity";
    const THREADS: usize = 8;
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|i| {
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                // All threads ask for the sink at once: first use must create exactly one.
                barrier.wait();
                let sink = backpressure::sink(NAME);
                sink.raise_keyed("backpressure.db", &format!("thread-{i}"))
                    .unwrap();
                sink
            })
        })
        .collect();
    let sinks: Vec<Sink> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let main = backpressure::sink(NAME);
    for sink in &sinks {
        assert!(sink.same_sink(&main));
    }
    assert_eq!(main.snapshot().len(), THREADS);
    assert_eq!(main.retract("backpressure.db").unwrap(), THREADS);
    for sink in &sinks {
        assert!(!sink.is_raised("backpressure.db"));
    }
}

#[test]
fn global_sinks_with_different_names_are_independent() {
    let a = backpressure::sink("tests.sink.independent-a");
    let b = backpressure::sink("tests.sink.independent-b");
    assert!(!a.same_sink(&b));
    a.raise("backpressure.db").unwrap();
    assert!(!b.is_raised("backpressure.db"));
    // A standalone sink is never one of the named ones.
    assert!(!Sink::new().same_sink(&a));
    let seen = std::thread::spawn(|| {
        backpressure::sink("tests.sink.independent-a").is_raised("backpressure.db")
    })
    .join()
    .unwrap();
    assert!(seen);
    a.clear();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_sink_inside_a_runtime_is_the_one_seen_outside() {
    const NAME: &str = "tests.sink.runtime-and-thread";
    let inside = backpressure::sink(NAME);
    inside.raise("backpressure.db").unwrap();
    let from_thread = std::thread::spawn(|| {
        let sink = backpressure::sink(NAME);
        let seen = sink.is_raised("backpressure.db");
        sink.retract("backpressure.db").unwrap();
        seen
    })
    .join()
    .unwrap();
    assert!(from_thread);
    assert!(!inside.is_raised("backpressure.db"));
}

#[test]
fn ttl_expiry_keeps_working_when_the_first_runtime_is_gone() {
    const NAME: &str = "tests.sink.ttl-across-runtimes";
    let paused_runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap()
    };
    // The first TTL raise hosts the expiry task on this runtime, which then goes away.
    let first = paused_runtime();
    first.block_on(async {
        backpressure::sink(NAME)
            .raise_for("backpressure.db", Duration::from_secs(60))
            .unwrap();
    });
    drop(first);

    // A later runtime still gets pushed expiry events.
    paused_runtime().block_on(async {
        let sink = backpressure::sink(NAME);
        sink.clear();
        let mut events = sink.subscribe();
        sink.raise_for("backpressure.db", Duration::from_secs(2))
            .unwrap();
        assert_eq!(next_ready(&mut events).kind, SignalEventKind::Raised);
        let expired = tokio::time::timeout(Duration::from_secs(60), events.next())
            .await
            .expect("expiry must be pushed in the new runtime")
            .unwrap()
            .unwrap();
        assert_eq!(expired.kind, SignalEventKind::Expired);
    });
}
