//! Property tests: a sink driven by random operations agrees with a `HashMap` model, and a
//! coordinator's gate (with random pauses and resumes) opens and closes exactly when the
//! model says; arbitrary names never make the sink panic.
//!
//! Time is paused: TTL expiry happens by moving the virtual clock. TTLs end 5 ms past a
//! multiple of 10 ms and the clock only stops on multiples of 10 ms, so no check ever
//! coincides with an expiry. Deterministic: fixed case counts from a fixed seed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backpressure::{
    error::SignalError, Coordinator, MaxDefer, Pattern, Sink, WorkContext, MAX_NAME_LEN,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use tokio::time::Instant;

/// Cases of the sink/gate model property (each up to `MAX_OPS` operations).
const MODEL_CASES: u32 = 256;
const MAX_OPS: usize = 40;
/// Cases of the arbitrary-name property.
const NAME_CASES: u32 = 1_024;

fn config(cases: u32) -> Config {
    Config {
        cases,
        rng_seed: RngSeed::Fixed(0x7369_6e6b_6d6f_6465),
        failure_persistence: None,
        ..Config::default()
    }
}

const NAMES: [&str; 5] = [
    "backpressure.a",
    "backpressure.b",
    "backpressure.a.b",
    "override.go",
    "other.x",
];
const KEYS: [&str; 2] = ["k1", "k2"];
const PATTERNS: [&str; 4] = ["backpressure.*", "*.b", "override.go, other.?", "*"];
const DEFER_ON: &str = "backpressure.*";
const RESUME_ON: &str = "override.*";

#[derive(Debug, Clone)]
enum Op {
    Raise(usize),
    RaiseKeyed(usize, usize),
    /// TTL is `10 × n + 5` ms.
    RaiseFor(usize, u64),
    RaiseKeyedFor(usize, usize, u64),
    Retract(usize),
    RetractKeyed(usize, usize),
    RetractMatching(usize),
    Clear,
    /// Moves the virtual clock by `10 × n` ms.
    Advance(u64),
    /// `Coordinator::pause` / `resume`.
    Pause,
    Resume,
}

fn op() -> impl Strategy<Value = Op> {
    let name = 0..NAMES.len();
    let key = 0..KEYS.len();
    prop_oneof![
        3 => name.clone().prop_map(Op::Raise),
        3 => (name.clone(), key.clone()).prop_map(|(n, k)| Op::RaiseKeyed(n, k)),
        3 => (name.clone(), 0u64..10).prop_map(|(n, t)| Op::RaiseFor(n, t)),
        3 => (name.clone(), key.clone(), 0u64..10).prop_map(|(n, k, t)| Op::RaiseKeyedFor(n, k, t)),
        3 => name.clone().prop_map(Op::Retract),
        3 => (name, key).prop_map(|(n, k)| Op::RetractKeyed(n, k)),
        1 => (0..PATTERNS.len()).prop_map(Op::RetractMatching),
        1 => Just(Op::Clear),
        4 => (1u64..12).prop_map(Op::Advance),
        1 => Just(Op::Pause),
        1 => Just(Op::Resume),
    ]
}

/// One model entry: (raised at, expires at), in ms since the start.
type ModelEntry = (u64, Option<u64>);

#[derive(Default)]
struct Model {
    now: u64,
    paused: bool,
    entries: HashMap<(String, Option<String>), ModelEntry>,
}

impl Model {
    fn raise(&mut self, name: &str, key: Option<&str>, ttl: Option<u64>) {
        let now = self.now;
        let expires = ttl.map(|ttl| now + ttl);
        self.entries
            .entry((name.to_owned(), key.map(str::to_owned)))
            .and_modify(|entry| entry.1 = expires)
            .or_insert((now, expires));
    }

    fn remove_where(&mut self, doomed: impl Fn(&str, Option<&str>) -> bool) -> usize {
        let before = self.entries.len();
        self.entries
            .retain(|(name, key), _| !doomed(name, key.as_deref()));
        before - self.entries.len()
    }

    fn advance(&mut self, ms: u64) {
        self.now += ms;
        let now = self.now;
        self.entries
            .retain(|_, (_, expires)| !matches!(expires, Some(at) if *at <= now));
    }

    fn any(&self, pattern: &Pattern) -> bool {
        self.entries.keys().any(|(name, _)| pattern.matches(name))
    }
}

/// Lets every runnable task run; no time passes.
async fn settle() {
    for _ in 0..16 {
        tokio::task::yield_now().await;
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime")
}

fn run_model(ops: Vec<Op>) -> Result<(), TestCaseError> {
    runtime().block_on(async move {
        let sink = Sink::new();
        let ran = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&ran);
        let coordinator = Coordinator::builder()
            .sink(sink.clone())
            .concurrency(1)
            .defer_on(DEFER_ON)
            .resume_on(RESUME_ON)
            // No safety re-check and no timeout within a case: only wake-ups start items.
            .defer_check_interval(Duration::from_secs(24 * 3600))
            .max_defer(MaxDefer::Never)
            .build(move |id: u32, _ctx: WorkContext| {
                let log = Arc::clone(&log);
                async move { log.lock().unwrap().push(id) }
            })
            .expect("valid configuration");
        let (defer, resume) = (
            Pattern::parse(DEFER_ON).unwrap(),
            Pattern::parse(RESUME_ON).unwrap(),
        );
        let start = Instant::now();
        let mut model = Model::default();
        let mut next_item = 0u32;

        for (step, op) in ops.iter().enumerate() {
            match *op {
                Op::Raise(n) => {
                    sink.raise(NAMES[n]).unwrap();
                    model.raise(NAMES[n], None, None);
                }
                Op::RaiseKeyed(n, k) => {
                    sink.raise_keyed(NAMES[n], KEYS[k]).unwrap();
                    model.raise(NAMES[n], Some(KEYS[k]), None);
                }
                Op::RaiseFor(n, t) => {
                    let ttl = 10 * t + 5;
                    sink.raise_for(NAMES[n], Duration::from_millis(ttl))
                        .unwrap();
                    model.raise(NAMES[n], None, Some(ttl));
                }
                Op::RaiseKeyedFor(n, k, t) => {
                    let ttl = 10 * t + 5;
                    sink.raise_keyed_for(NAMES[n], KEYS[k], Duration::from_millis(ttl))
                        .unwrap();
                    model.raise(NAMES[n], Some(KEYS[k]), Some(ttl));
                }
                Op::Retract(n) => {
                    let removed = sink.retract(NAMES[n]).unwrap();
                    let expected = model.remove_where(|name, _| name == NAMES[n]);
                    prop_assert_eq!(removed, expected, "step {}: {:?}", step, op);
                }
                Op::RetractKeyed(n, k) => {
                    let removed = sink.retract_keyed(NAMES[n], KEYS[k]).unwrap();
                    let expected =
                        model.remove_where(|name, key| name == NAMES[n] && key == Some(KEYS[k]));
                    prop_assert_eq!(removed, expected == 1, "step {}: {:?}", step, op);
                }
                Op::RetractMatching(p) => {
                    let removed = sink.retract_matching(PATTERNS[p]).unwrap();
                    let pattern = Pattern::parse(PATTERNS[p]).unwrap();
                    let expected = model.remove_where(|name, _| pattern.matches(name));
                    prop_assert_eq!(removed, expected, "step {}: {:?}", step, op);
                }
                Op::Clear => {
                    let removed = sink.clear();
                    let expected = model.remove_where(|_, _| true);
                    prop_assert_eq!(removed, expected, "step {}: {:?}", step, op);
                }
                Op::Advance(n) => {
                    // Paused time: the runtime jumps from timer to timer (the sink's reaper
                    // expires entries at their deadlines) and stops exactly here.
                    tokio::time::sleep(Duration::from_millis(10 * n)).await;
                    model.advance(10 * n);
                }
                Op::Pause => {
                    coordinator.pause();
                    model.paused = true;
                }
                Op::Resume => {
                    coordinator.resume();
                    model.paused = false;
                }
            }
            prop_assert_eq!(Instant::now() - start, Duration::from_millis(model.now));

            // The gate, read before any other sink call (those expire lazily and could
            // hide a missed expiry): it follows the counted watches alone.
            let open = !model.paused && (!model.any(&defer) || model.any(&resume));
            settle().await;
            let stats = coordinator.stats();
            prop_assert_eq!(stats.gate_open, open, "step {}: {:?}", step, op);
            if open {
                // Whatever was held has started: the change woke the held slot.
                prop_assert_eq!(stats.queued, 0, "step {}: {:?} left work held", step, op);
                prop_assert_eq!(ran.lock().unwrap().len() as u32, next_item);
            } else {
                prop_assert_eq!(stats.deferred, stats.queued);
                if stats.queued == 0 {
                    coordinator.try_enqueue(next_item).unwrap();
                    next_item += 1;
                    settle().await;
                    prop_assert_eq!(coordinator.stats().queued, 1, "started while closed");
                }
            }

            // The sink's contents, entry by entry.
            let mut expected: Vec<_> = model
                .entries
                .iter()
                .map(|((name, key), (raised, expires))| {
                    (name.clone(), key.clone(), *raised, *expires)
                })
                .collect();
            expected.sort();
            let actual: Vec<_> = sink
                .snapshot()
                .into_iter()
                .map(|s| {
                    let ms = |at: Instant| (at - start).as_millis() as u64;
                    (
                        s.name.to_string(),
                        s.key.as_deref().map(str::to_owned),
                        ms(s.raised_at),
                        s.expires_at.map(ms),
                    )
                })
                .collect();
            prop_assert_eq!(actual, expected, "step {}: {:?}", step, op);
            for name in NAMES {
                let raised = model.entries.keys().any(|(n, _)| n == name);
                prop_assert_eq!(sink.is_raised(name), raised, "{}", name);
            }
            for pattern in PATTERNS {
                let any = model.any(&Pattern::parse(pattern).unwrap());
                prop_assert_eq!(sink.any_matching(pattern).unwrap(), any, "{}", pattern);
            }
        }

        // Nothing is lost: once the gate opens for good, every held item runs.
        sink.clear();
        coordinator.resume();
        coordinator.drain().await;
        let stats = coordinator.stats();
        prop_assert_eq!(stats.completed, u64::from(next_item));
        prop_assert!(stats.is_consistent());
        Ok(())
    })
}

/// Arbitrary strings for names, keys and patterns: unicode, control characters, commas,
/// whitespace, empty, very long.
fn arbitrary() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-zA-Z0-9._:/-]{1,12}",
        "[a-z. ,*?\t\n\u{0}é🦀-]{0,16}",
        ("[a-z.]{1,4}", 60usize..100).prop_map(|(s, n)| s.repeat(n)),
        Just(String::new()),
    ]
}

fn rule_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-:/".contains(&b))
}

proptest! {
    #![proptest_config(config(MODEL_CASES))]

    #[test]
    fn sink_and_gate_agree_with_a_hashmap_model(ops in prop::collection::vec(op(), 1..=MAX_OPS)) {
        run_model(ops)?;
    }
}

proptest! {
    #![proptest_config(config(NAME_CASES))]

    /// Every sink entry point taking user text: never a panic, never a silent no-op on bad
    /// input (a typed error naming the problem), and accepted names round-trip.
    #[test]
    fn arbitrary_names_never_panic_and_accepted_ones_round_trip(
        name in arbitrary(),
        key in arbitrary(),
        pattern in arbitrary(),
    ) {
        let sink = Sink::new();
        match sink.raise(&name) {
            Ok(()) => {
                prop_assert!(rule_ok(&name));
                prop_assert!(sink.is_raised(&name));
                let snapshot = sink.snapshot();
                prop_assert_eq!(snapshot.len(), 1);
                prop_assert_eq!(&*snapshot[0].name, name.as_str());
                prop_assert_eq!(snapshot[0].key.clone(), None);
            }
            Err(SignalError::Name(err)) => {
                prop_assert!(!rule_ok(&name));
                prop_assert!(!err.to_string().is_empty());
                prop_assert!(sink.snapshot().is_empty());
                prop_assert!(!sink.is_raised(&name));
            }
            Err(other) => prop_assert!(false, "unexpected error {:?}", other),
        }
        match sink.raise_keyed("backpressure.keyed", &key) {
            Ok(()) => {
                prop_assert!(rule_ok(&key));
                let keyed = sink.snapshot().into_iter().find(|s| &*s.name == "backpressure.keyed");
                let keyed = keyed.and_then(|s| s.key);
                prop_assert_eq!(keyed.as_deref(), Some(key.as_str()));
                prop_assert_eq!(sink.retract_keyed("backpressure.keyed", &key), Ok(true));
            }
            Err(SignalError::Key(err)) => {
                prop_assert!(!rule_ok(&key));
                prop_assert!(!err.to_string().is_empty());
                prop_assert!(matches!(
                    sink.retract_keyed("backpressure.keyed", &key),
                    Err(SignalError::Key(_))
                ));
            }
            Err(other) => prop_assert!(false, "unexpected error {:?}", other),
        }
        let retracted = sink.retract(&name);
        prop_assert_eq!(retracted.is_ok(), rule_ok(&name));
        let ttl = sink.raise_for(&name, Duration::ZERO);
        prop_assert!(ttl.is_err(), "a zero TTL is an error");
        match (Pattern::parse(&pattern), sink.any_matching(&pattern)) {
            (Ok(_), Ok(_)) => prop_assert!(sink.retract_matching(&pattern).is_ok()),
            (Err(parse), Err(SignalError::Pattern(err))) => {
                prop_assert_eq!(&parse, &err);
                prop_assert!(!err.to_string().is_empty());
                prop_assert!(sink.retract_matching(&pattern).is_err());
            }
            (parse, any) => prop_assert!(false, "parse {:?} vs any_matching {:?}", parse, any),
        }
    }
}
