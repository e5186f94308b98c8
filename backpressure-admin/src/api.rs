//! The JSON API: reads, raise / retract, pause / resume, requeue. Path names and bodies arrive
//! through the extractors of `extract.rs`, the fields of a change through `fields.rs`;
//! headers are added by the router's layer.

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::Json;
use backpressure::{Runtime, Sink};
use serde::Serialize;

use crate::error::ApiError;
use crate::extract::{JsonObject, PathName};
use crate::fields::{no_more, RaiseFields, RetractFields};
use crate::history::HistoryView;
use crate::model::{Overview, Shared, SignalView, SinkView, WorkerView};

type ApiResult<T> = Result<Json<T>, ApiError>;

pub(crate) async fn overview(State(shared): State<Shared>) -> Json<Overview> {
    Json(shared.overview())
}

/// `GET api/history[?since=rev]`: everything, or what changed after revision `since`.
pub(crate) async fn history(State(shared): State<Shared>, uri: Uri) -> ApiResult<HistoryView> {
    let mut since = 0;
    for pair in uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if name != "since" {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                Some("query"),
                format!("unknown query parameter `{name}`: only `since` is allowed"),
            ));
        }
        since = value.parse().map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                Some("since"),
                format!("`since` must be a revision number (a `rev` of an earlier answer), not `{value}`"),
            )
        })?;
    }
    Ok(Json(shared.history.view(since)))
}

pub(crate) async fn workers(State(shared): State<Shared>) -> Json<Vec<WorkerView>> {
    Json(shared.overview().workers)
}

pub(crate) async fn worker(
    State(shared): State<Shared>,
    PathName(name): PathName,
) -> ApiResult<WorkerView> {
    shared
        .worker(&name)
        .map(Json)
        .ok_or_else(|| ApiError::not_found("worker", &name))
}

pub(crate) async fn sinks(State(shared): State<Shared>) -> Json<Vec<SinkView>> {
    Json(shared.overview().sinks)
}

pub(crate) async fn sink(
    State(shared): State<Shared>,
    PathName(name): PathName,
) -> ApiResult<SinkView> {
    shared
        .sink(&name)
        .map(Json)
        .ok_or_else(|| ApiError::not_found("sink", &name))
}

/// `POST api/sinks/{sink}/raise` with `{"name", "key"?, "ttl"?, "level"?}`.
pub(crate) async fn raise(
    State(shared): State<Shared>,
    PathName(sink_name): PathName,
    JsonObject(fields): JsonObject,
) -> ApiResult<Raised> {
    let sink = find_sink(&shared, &sink_name)?;
    let RaiseFields { name, key, options } = RaiseFields::read(fields)?;
    sink.raise_with(&name, options)?;
    let signal = shared.sink(&sink_name).and_then(|view| {
        view.signals
            .into_iter()
            .find(|s| s.name == name && s.key == key)
    });
    Ok(Json(Raised { raised: signal }))
}

#[derive(Debug, Serialize)]
pub(crate) struct Raised {
    /// The entry as it is now (`None` only if it expired in between).
    raised: Option<SignalView>,
}

/// `POST api/sinks/{sink}/retract` with `{"name", "key"?}`.
pub(crate) async fn retract(
    State(shared): State<Shared>,
    PathName(sink_name): PathName,
    JsonObject(fields): JsonObject,
) -> ApiResult<Retracted> {
    let sink = find_sink(&shared, &sink_name)?;
    let RetractFields { name, key } = RetractFields::read(fields)?;
    let retracted = match &key {
        Some(key) => usize::from(sink.retract_keyed(&name, key)?),
        None => sink.retract(&name)?,
    };
    Ok(Json(Retracted { retracted }))
}

#[derive(Debug, Serialize)]
pub(crate) struct Retracted {
    /// How many entries were active and are now gone.
    retracted: usize,
}

/// `POST api/workers/{name}/pause`.
pub(crate) async fn pause(
    State(shared): State<Shared>,
    PathName(name): PathName,
    JsonObject(fields): JsonObject,
) -> ApiResult<WorkerView> {
    no_more(&fields)?;
    control(&shared, &name, Runtime::pause)
}

/// `POST api/workers/{name}/resume`.
pub(crate) async fn resume(
    State(shared): State<Shared>,
    PathName(name): PathName,
    JsonObject(fields): JsonObject,
) -> ApiResult<WorkerView> {
    no_more(&fields)?;
    control(&shared, &name, Runtime::resume)
}

/// `POST api/workers/{name}/requeue`: runs the worker's dead letters again.
pub(crate) async fn requeue(
    State(shared): State<Shared>,
    PathName(name): PathName,
    JsonObject(fields): JsonObject,
) -> ApiResult<Requeued> {
    no_more(&fields)?;
    let requeued = shared
        .runtime
        .requeue_dead_letters(&name)
        .map_err(|_| ApiError::not_found("worker", &name))?;
    Ok(Json(Requeued { requeued }))
}

#[derive(Debug, Serialize)]
pub(crate) struct Requeued {
    /// How many dead letters rejoined the queue (as far as it had room; 0 for a worker
    /// without `retry(...)`).
    requeued: usize,
}

/// Pauses or resumes worker `name` and answers with its view.
fn control(
    shared: &Shared,
    name: &str,
    change: fn(&Runtime, &str) -> bool,
) -> ApiResult<WorkerView> {
    if shared.runtime.worker(name).is_none() {
        return Err(ApiError::not_found("worker", name));
    }
    match (change(&shared.runtime, name), shared.worker(name)) {
        (true, Some(view)) => Ok(Json(view)),
        _ => Err(ApiError::not_found("worker", name)),
    }
}

fn find_sink(shared: &Shared, name: &str) -> Result<Sink, ApiError> {
    // Only the sinks that this runtime's workers watch are reachable: the admin never
    // creates a sink as a side effect of a request.
    if !shared.runtime.workers().iter().any(|w| w.sink == name) {
        return Err(ApiError::not_found("sink", name));
    }
    shared
        .runtime
        .sink(name)
        .ok_or_else(|| ApiError::not_found("sink", name))
}
