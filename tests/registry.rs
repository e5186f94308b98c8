//! The registry with isolated runtimes: each test builds its own runtime from a chosen set of
//! registered workers, on its own sinks, so the tests run in parallel without interfering.

use std::sync::atomic::{AtomicUsize, Ordering};

use backpressure::{backpressure_worker, error, Runtime, WorkContext};

static HELD_RUNS: AtomicUsize = AtomicUsize::new(0);

#[backpressure_worker(name = "registry::held", sink = "main", concurrency = 2, capacity = 8)]
async fn held(item: u32, ctx: WorkContext) -> Result<(), String> {
    let _ = ctx.id();
    HELD_RUNS.fetch_add(item as usize, Ordering::SeqCst);
    Ok(())
}

#[backpressure_worker(name = "registry::plain")]
async fn plain(item: String) {
    let _ = item;
}

#[backpressure_worker(name = "registry::dup")]
async fn dup_a(item: u8) {
    let _ = item;
}

#[backpressure_worker(name = "registry::dup")]
async fn dup_b(item: u16) {
    let _ = item;
}

#[backpressure_worker(defer_on = "other.*")]
async fn default_name(item: u32) {
    let _ = item;
}

#[tokio::test]
async fn an_isolated_worker_holds_work_while_raised_and_runs_it_after_retract() {
    let runtime = Runtime::builder().only(["registry::held"]).start().unwrap();
    let sink = runtime.sink("main").unwrap();
    let coordinator = runtime.coordinator::<u32>("registry::held").unwrap();

    sink.raise("backpressure.downstream").unwrap();
    for item in [1, 2, 3] {
        coordinator.enqueue(item).await.unwrap();
    }
    tokio::task::yield_now().await;
    let stats = coordinator.stats();
    assert_eq!((stats.queued, stats.completed), (3, 0));
    assert!(!stats.gate_open);

    sink.retract("backpressure.downstream").unwrap();
    runtime.drain_all().await;
    let info = runtime.worker("registry::held").unwrap();
    assert_eq!(info.stats.completed, 3);
    assert!(info.stats.is_consistent());
}

#[tokio::test]
async fn isolated_runtimes_have_their_own_sinks_and_leave_the_global_api_alone() {
    let a = Runtime::builder()
        .only(["registry::plain"])
        .start()
        .unwrap();
    let b = Runtime::builder()
        .only(["registry::plain"])
        .start()
        .unwrap();
    a.sink("default").unwrap().raise("backpressure.a").unwrap();
    assert!(!b.sink("default").unwrap().is_raised("backpressure.a"));
    assert!(!backpressure::sink("default").is_raised("backpressure.a"));

    // The generated functions talk to the global runtime only.
    let err = plain::try_enqueue("x".to_owned()).unwrap_err();
    assert!(matches!(
        err,
        error::WorkerEnqueueError::NotStarted {
            worker: "registry::plain",
            ..
        }
    ));
    assert_eq!(err.into_inner(), "x");
    assert!(plain::stats().is_none());

    b.coordinator::<String>("registry::plain")
        .unwrap()
        .enqueue("y".to_owned())
        .await
        .unwrap();
    b.drain_all().await;
    assert_eq!(b.worker("registry::plain").unwrap().stats.completed, 1);
    assert_eq!(a.worker("registry::plain").unwrap().stats.enqueued, 0);
}

#[tokio::test]
async fn workers_are_listed_sorted_with_their_effective_config() {
    let runtime = Runtime::builder()
        .only(["registry::plain", "registry::held", default_name::NAME])
        .start()
        .unwrap();
    let names: Vec<_> = runtime.workers().into_iter().map(|w| w.name).collect();
    assert_eq!(
        names,
        [
            "registry::default_name",
            "registry::held",
            "registry::plain"
        ]
    );

    let held = runtime.worker("registry::held").unwrap();
    assert_eq!(held.sink, "main");
    assert_eq!(held.config.concurrency, 2);
    assert_eq!(held.config.capacity, 8);
    assert_eq!(held.config.defer_on.as_deref(), Some("backpressure.*"));
    assert!(held.location.ends_with(".rs:10"), "{}", held.location);

    let plain = runtime.worker("registry::plain").unwrap();
    assert_eq!(plain.sink, "default");
    assert_eq!(plain.config, backpressure::CoordinatorConfig::default());

    // The default name is the module path plus the function name.
    assert_eq!(default_name::NAME, "registry::default_name");
    let info = runtime.worker(default_name::NAME).unwrap();
    assert_eq!(info.config.defer_on.as_deref(), Some("other.*"));
}

#[tokio::test]
async fn shutdown_reports_and_hands_back_the_unstarted_items() {
    let runtime = Runtime::builder()
        .only(["registry::held", "registry::plain"])
        .start()
        .unwrap();
    runtime
        .sink("main")
        .unwrap()
        .raise("backpressure.db")
        .unwrap();
    let coordinator = runtime.coordinator::<u32>("registry::held").unwrap();
    for item in [10, 20, 30] {
        coordinator.try_enqueue(item).unwrap();
    }

    let report = runtime.shutdown().await;
    assert_eq!(report.returned["registry::held"], 3);
    assert_eq!(report.returned["registry::plain"], 0);
    assert_eq!(report.total(), 3);
    assert_eq!(runtime.take_returned::<u32>("registry::held"), [10, 20, 30]);
    assert!(runtime.take_returned::<u32>("registry::held").is_empty());
    // Wrong item type or unknown worker: nothing.
    assert!(runtime.take_returned::<u8>("registry::held").is_empty());
    assert!(runtime.coordinator::<u8>("registry::held").is_none());
    assert!(runtime.coordinator::<u32>("registry::nope").is_none());
    assert_eq!(runtime.worker("registry::held").unwrap().stats.returned, 3);
}

#[tokio::test]
async fn two_workers_with_one_name_are_an_error() {
    let err = Runtime::builder()
        .only(["registry::dup"])
        .start()
        .unwrap_err();
    match &err {
        error::RegistryError::DuplicateWorker {
            name,
            first,
            second,
        } => {
            assert_eq!(name, "registry::dup");
            assert_ne!(first, second);
        }
        other => panic!("unexpected error: {other}"),
    }
    assert!(err
        .to_string()
        .starts_with("two workers are named `registry::dup` (at tests/registry.rs:"));
}

#[tokio::test]
async fn only_rejects_names_that_are_not_registered() {
    let err = Runtime::builder()
        .only(["registry::held", "registry::missing"])
        .start()
        .unwrap_err();
    assert!(
        matches!(&err, error::RegistryError::UnknownWorker { name } if name == "registry::missing")
    );
    assert_eq!(
        err.to_string(),
        "worker `registry::missing` is not registered: no `#[backpressure_worker]` has that name"
    );
}

#[tokio::test]
async fn a_given_sink_is_used_for_its_name() {
    let sink = backpressure::Sink::new();
    sink.raise("backpressure.given").unwrap();
    let runtime = Runtime::builder()
        .only(["registry::plain"])
        .sink("default", sink.clone())
        .start()
        .unwrap();
    let coordinator = runtime.coordinator::<String>("registry::plain").unwrap();
    coordinator.enqueue("held".to_owned()).await.unwrap();
    tokio::task::yield_now().await;
    assert_eq!(coordinator.stats().completed, 0);
    sink.retract("backpressure.given").unwrap();
    runtime.drain_all().await;
    assert_eq!(coordinator.stats().completed, 1);
}

#[test]
fn starting_outside_a_tokio_runtime_is_an_error() {
    let err = Runtime::builder()
        .only(["registry::plain"])
        .start()
        .unwrap_err();
    assert!(matches!(err, error::RegistryError::NoTokioRuntime));
    assert_eq!(
        err.to_string(),
        "`backpressure::start()` must be called inside a tokio runtime"
    );
}

#[tokio::test]
async fn a_worker_is_paused_and_resumed_by_name() {
    let runtime = Runtime::builder().only(["registry::held"]).start().unwrap();
    let coordinator = runtime.coordinator::<u32>("registry::held").unwrap();
    assert!(runtime.pause("registry::held"));
    assert!(!runtime.pause("registry::nobody"));
    coordinator.enqueue(5).await.unwrap();
    tokio::task::yield_now().await;
    let info = runtime.worker("registry::held").unwrap();
    assert!(info.stats.paused);
    assert_eq!((info.stats.queued, info.stats.completed), (1, 0));
    assert!(info.policies.is_empty());

    assert!(runtime.resume("registry::held"));
    assert!(!runtime.resume("registry::nobody"));
    runtime.drain_all().await;
    assert_eq!(runtime.worker("registry::held").unwrap().stats.completed, 1);
}

#[tokio::test]
async fn require_fails_naming_the_workers_this_binary_does_not_register() {
    let ok = Runtime::builder()
        .only(["registry::plain"])
        .require(["registry::plain", "registry::held"])
        .start();
    assert!(ok.is_ok());
    let started = Runtime::builder()
        .isolated()
        .require(["registry::plain", "mail::send"])
        .start();
    let Err(err) = started.map(drop) else {
        panic!("mail::send is declared nowhere");
    };
    let error::RegistryError::MissingWorkers {
        missing,
        registered,
    } = &err
    else {
        panic!("{err}");
    };
    assert_eq!(missing, &["mail::send"]);
    assert!(
        registered.contains(&"registry::plain".to_owned()),
        "{registered:?}"
    );
    assert!(err.to_string().contains("links that library"), "{err}");
}
