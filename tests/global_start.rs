//! The global runtime of `backpressure::start()`. One test function, because there is one
//! global runtime per process: it walks through the whole life cycle in order.

use backpressure::{
    backpressure_worker,
    error::{RegistryError, WorkerEnqueueError},
    CONFIG_ENV_VAR,
};

#[backpressure_worker(name = "global::send", sink = "global-test", concurrency = 1)]
async fn send(item: u32) -> Result<(), String> {
    if item == 13 {
        return Err("unlucky".to_owned());
    }
    Ok(())
}

#[tokio::test]
async fn the_global_runtime_life_cycle() {
    // Before start: the item comes back in the error.
    let err = send::enqueue(7).await.unwrap_err();
    assert!(matches!(
        err,
        WorkerEnqueueError::NotStarted {
            worker: "global::send",
            ..
        }
    ));
    assert_eq!(
        err.to_string(),
        "worker `global::send` is not running: call `backpressure::start()` first (the item is handed back)"
    );
    assert_eq!(err.into_inner(), 7);

    let runtime = backpressure::start().unwrap();
    assert!(runtime.is_global());
    assert!(matches!(
        backpressure::start().unwrap_err(),
        RegistryError::AlreadyStarted
    ));

    // The global runtime uses the process-wide sink of the worker's name.
    let sink = backpressure::sink("global-test");
    sink.raise("backpressure.smtp").unwrap();
    send::enqueue(1).await.unwrap();
    send::try_enqueue(13).unwrap();
    tokio::task::yield_now().await;
    assert_eq!(send::stats().unwrap().completed, 0);
    sink.retract("backpressure.smtp").unwrap();
    runtime.drain_all().await;
    let stats = send::stats().unwrap();
    assert_eq!((stats.completed, stats.failed), (1, 1));
    assert!(send::coordinator().is_some());

    // After drain, intake is closed: the item is handed back.
    assert!(matches!(
        send::try_enqueue(2),
        Err(WorkerEnqueueError::Closed(2))
    ));
    let report = runtime.shutdown().await;
    assert_eq!(report.returned["global::send"], 0);
    assert!(matches!(
        send::enqueue(3).await,
        Err(WorkerEnqueueError::NotStarted { .. })
    ));
    assert!(send::stats().is_none());

    // After shutdown, start may be called again; BACKPRESSURE_CONFIG is read by `start()`.
    let path =
        std::env::temp_dir().join(format!("backpressure-global-{}.toml", std::process::id()));
    std::fs::write(&path, "[workers.\"global::send\"]\nconcurrency = 3\n").unwrap();
    std::env::set_var(CONFIG_ENV_VAR, &path);
    let result = backpressure::start();
    std::env::remove_var(CONFIG_ENV_VAR);
    let _ = std::fs::remove_file(&path);
    let runtime = result.unwrap();
    assert_eq!(
        runtime.worker("global::send").unwrap().config.concurrency,
        3
    );
    send::enqueue(4).await.unwrap();
    runtime.drain_all().await;
    assert_eq!(send::stats().unwrap().completed, 1);
    runtime.shutdown().await;
}
