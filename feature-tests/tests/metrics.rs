//! The metrics the `metrics` feature exports (names in `backpressure::metrics`), read back
//! from a debugging recorder after a scripted run.

use std::collections::HashMap;

use backpressure::{Coordinator, MaxDefer, WorkContext};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use metrics_util::{CompositeKey, MetricKind};

type Values = HashMap<(MetricKind, String, Vec<(String, String)>), DebugValue>;

fn read(snapshotter: &Snapshotter) -> Values {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value): (CompositeKey, _, _, _)| {
            let (kind, key) = key.into_parts();
            let (name, labels) = key.into_parts();
            let mut labels: Vec<(String, String)> = labels
                .into_iter()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            labels.sort();
            ((kind, name.as_str().to_owned(), labels), value)
        })
        .collect()
}

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut labels: Vec<_> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    labels.sort();
    labels
}

#[test]
fn a_scripted_run_reports_every_metric_with_sink_and_worker_labels() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        backpressure::metrics::describe();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async {
            let sink = backpressure::sink("metrics-test");
            let coordinator = Coordinator::builder()
                .sink(sink.clone())
                .name("mailer")
                .concurrency(2)
                .max_defer(MaxDefer::Never)
                .build(|n: u32, _: WorkContext| async move {
                    match n % 3 {
                        0 => Ok(()),
                        1 => Err("refused"),
                        _ => panic!("handler bug"),
                    }
                })
                .unwrap();
            sink.raise_keyed("backpressure.smtp", "replica-1").unwrap();
            coordinator.enqueue_many(0..6).await.unwrap();
            tokio::task::yield_now().await;
            // Held: the gauges say so.
            let held = read(&snapshotter);
            let worker = labels(&[("sink", "metrics-test"), ("worker", "mailer")]);
            let gauge = |values: &Values, name: &str| match values.get(&(
                MetricKind::Gauge,
                name.to_owned(),
                worker.clone(),
            )) {
                Some(DebugValue::Gauge(v)) => v.into_inner(),
                other => panic!("{name}: {other:?}"),
            };
            assert_eq!(gauge(&held, "backpressure_worker_queued"), 6.0);
            assert_eq!(gauge(&held, "backpressure_worker_deferred"), 6.0);
            assert_eq!(gauge(&held, "backpressure_worker_gate_open"), 0.0);
            assert_eq!(gauge(&held, "backpressure_worker_concurrency"), 2.0);

            sink.retract("backpressure.smtp").unwrap();
            coordinator.drain().await;

            // A snapshot drains counters and histograms: add the earlier one back.
            let mut values = read(&snapshotter);
            for (key, earlier) in held {
                match (values.get_mut(&key), earlier) {
                    (Some(DebugValue::Counter(now)), DebugValue::Counter(before)) => *now += before,
                    (Some(DebugValue::Histogram(now)), DebugValue::Histogram(before)) => {
                        now.extend(before)
                    }
                    (None, earlier) => {
                        values.insert(key, earlier);
                    }
                    _ => {}
                }
            }
            let counter = |name: &str, extra: &[(&str, &str)]| {
                let mut l = vec![("sink", "metrics-test"), ("worker", "mailer")];
                l.extend_from_slice(extra);
                match values.get(&(MetricKind::Counter, name.to_owned(), labels(&l))) {
                    Some(DebugValue::Counter(v)) => *v,
                    other => panic!("{name} {extra:?}: {other:?}"),
                }
            };
            assert_eq!(counter("backpressure_items_enqueued_total", &[]), 6);
            for outcome in ["completed", "failed", "panicked"] {
                assert_eq!(
                    counter("backpressure_items_finished_total", &[("outcome", outcome)]),
                    2,
                    "{outcome}"
                );
            }
            assert_eq!(gauge(&values, "backpressure_worker_queued"), 0.0);
            assert_eq!(gauge(&values, "backpressure_worker_active"), 0.0);
            assert_eq!(gauge(&values, "backpressure_worker_gate_open"), 1.0);
            for name in [
                "backpressure_item_duration_seconds",
                "backpressure_item_wait_seconds",
            ] {
                match values.get(&(MetricKind::Histogram, name.to_owned(), worker.clone())) {
                    Some(DebugValue::Histogram(samples)) => assert_eq!(samples.len(), 6, "{name}"),
                    other => panic!("{name}: {other:?}"),
                }
            }
            // Signal transitions carry the signal, never the key.
            for transition in ["raised", "retracted"] {
                let key = labels(&[
                    ("sink", "metrics-test"),
                    ("signal", "backpressure.smtp"),
                    ("transition", transition),
                ]);
                let name = "backpressure_signal_transitions_total".to_owned();
                assert!(
                    matches!(
                        values.get(&(MetricKind::Counter, name, key)),
                        Some(DebugValue::Counter(1))
                    ),
                    "{transition}"
                );
            }
        });
    });
}
