//! The history as JSON: `GET api/history` and the event stream's `history` events.

use backpressure::policy::{ChangeReason, PolicyState};
use backpressure::{Phase, SignalEventKind};
use serde::Serialize;

use super::ring::{Mark, Ring, Sample, Samples, Span, What, SAMPLE_EVERY};

/// What changed after a revision (`since`; everything for 0).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct HistoryView {
    /// The server's clock, in the same milliseconds as every time below.
    pub(crate) now_ms: u64,
    /// The revision this view is complete up to: ask `?since=` it next time.
    pub(crate) rev: u64,
    /// What this view is an increment on; 0 when it is the whole history (asked for, or
    /// because the `since` asked for could not be answered with an increment): then the
    /// client replaces what it holds.
    pub(crate) since: u64,
    pub(crate) window_ms: u64,
    pub(crate) sample_every_ms: u64,
    pub(crate) bounds: Bounds,
    /// Signal bars and worker gate spans changed after `since`; `end_ms` is `null` while
    /// one is still open.
    pub(crate) spans: Vec<SpanView>,
    pub(crate) policy_changes: Vec<MarkView>,
    /// Each worker's samples taken after `since`, as columns.
    pub(crate) workers: Vec<WorkerSamples>,
}

/// What the ring may hold and holds.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Bounds {
    pub(crate) max_transitions: usize,
    pub(crate) samples_per_worker: usize,
    /// Spans and policy changes held now.
    pub(crate) transitions: usize,
    /// Spans open now (never dropped).
    pub(crate) open: usize,
    /// Bytes held now, measured.
    pub(crate) bytes: usize,
    /// The bound `bytes` stays within.
    pub(crate) max_bytes: usize,
}

/// One span.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "lane", rename_all = "snake_case")]
pub(crate) enum SpanView {
    /// A signal entry, raised at one level and phase.
    Signal {
        id: u64,
        rev: u64,
        start_ms: u64,
        end_ms: Option<u64>,
        sink: String,
        name: String,
        key: Option<String>,
        level: f64,
        phase: Option<Phase>,
        policy: Option<&'static str>,
        ended: Option<SignalEventKind>,
    },
    /// A worker's gate while held, limited, paused, or held by its rate or permits.
    Worker {
        id: u64,
        rev: u64,
        start_ms: u64,
        end_ms: Option<u64>,
        worker: String,
        state: &'static str,
        level: Option<f64>,
        signals: Vec<String>,
        signals_total: usize,
    },
}

/// A policy's state change.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct MarkView {
    id: u64,
    rev: u64,
    at_ms: u64,
    sink: String,
    signal: String,
    worker: Option<String>,
    policy: &'static str,
    from: PolicyState,
    to: PolicyState,
    reason: ChangeReason,
    /// `from` → `to` in words.
    text: String,
}

/// One worker's samples as columns (index `i` of each is one sample).
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct WorkerSamples {
    name: String,
    at_ms: Vec<u64>,
    queued: Vec<u32>,
    deferred: Vec<u32>,
    active: Vec<u32>,
    limit: Vec<u32>,
    completed_per_s: Vec<f32>,
    failed_per_s: Vec<f32>,
    retried_per_s: Vec<f32>,
    dead_lettered_per_s: Vec<f32>,
}

impl HistoryView {
    pub(crate) fn new(ring: &Ring, since: u64, now_ms: u64) -> Self {
        let names: usize = ring.workers.keys().map(|n| n.len()).sum();
        let bounds = Bounds {
            max_transitions: ring.limits.max_transitions,
            samples_per_worker: ring.limits.samples_per_worker(),
            transitions: ring.spans.len() + ring.marks.len(),
            open: ring.spans.iter().filter(|s| s.end_ms.is_none()).count(),
            bytes: ring.bytes(),
            max_bytes: ring.max_bytes(ring.workers.len(), names),
        };
        Self {
            now_ms,
            rev: ring.revision(),
            since,
            window_ms: super::clock::millis(ring.limits.window),
            sample_every_ms: super::clock::millis(SAMPLE_EVERY),
            bounds,
            spans: ring
                .spans
                .iter()
                .filter(|s| s.rev > since)
                .map(span_view)
                .collect(),
            policy_changes: ring
                .marks
                .iter()
                .filter(|m| m.rev > since)
                .map(mark_view)
                .collect(),
            workers: ring
                .workers
                .iter()
                .map(|(name, samples)| worker_samples(name, samples, since))
                .collect(),
        }
    }
}

fn span_view(span: &Span) -> SpanView {
    match &span.what {
        What::Signal(s) => SpanView::Signal {
            id: span.id,
            rev: span.rev,
            start_ms: span.start_ms,
            end_ms: span.end_ms,
            sink: s.sink.to_string(),
            name: s.name.to_string(),
            key: s.key.as_deref().map(str::to_owned),
            level: s.level,
            phase: s.phase,
            policy: s.policy,
            ended: s.ended,
        },
        What::Gate(g) => SpanView::Worker {
            id: span.id,
            rev: span.rev,
            start_ms: span.start_ms,
            end_ms: span.end_ms,
            worker: g.worker.to_string(),
            state: g.state,
            level: g.level,
            signals: g.by.iter().map(|s| s.to_string()).collect(),
            signals_total: g.by_total,
        },
    }
}

fn mark_view(mark: &Mark) -> MarkView {
    let change = &mark.change;
    MarkView {
        id: mark.id,
        rev: mark.rev,
        at_ms: mark.at_ms,
        sink: mark.sink.to_string(),
        signal: mark.signal.to_string(),
        worker: mark.worker.as_deref().map(str::to_owned),
        policy: change.policy,
        from: change.from,
        to: change.to,
        reason: change.reason,
        text: format!("{} → {}", change.from, change.to),
    }
}

fn worker_samples(name: &str, samples: &Samples, since: u64) -> WorkerSamples {
    let mut out = WorkerSamples {
        name: name.to_owned(),
        ..WorkerSamples::default()
    };
    let fresh = samples.samples.iter().filter(|s| s.rev > since);
    for &Sample {
        at_ms,
        queued,
        deferred,
        active,
        limit,
        completed_per_s,
        failed_per_s,
        retried_per_s,
        dead_lettered_per_s,
        ..
    } in fresh
    {
        out.at_ms.push(at_ms);
        out.queued.push(queued);
        out.deferred.push(deferred);
        out.active.push(active);
        out.limit.push(limit);
        out.completed_per_s.push(round2(completed_per_s));
        out.failed_per_s.push(round2(failed_per_s));
        out.retried_per_s.push(round2(retried_per_s));
        out.dead_lettered_per_s.push(round2(dead_lettered_per_s));
    }
    out
}

fn round2(x: f32) -> f32 {
    (x * 100.0).round() / 100.0
}
