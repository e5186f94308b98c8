//! The JSON API: reads, raise / retract, pause / resume.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use backpressure::{Level, RaiseOptions, SignalError, Sink};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{shorten, ApiError};
use crate::model::Shared;

/// The longest TTL accepted: 30 days.
const MAX_TTL: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// The longest key accepted, in bytes.
const MAX_KEY_LEN: usize = 256;

type ApiResult<T> = Result<Json<T>, ApiError>;

fn ok<T: Serialize>(value: T) -> Response {
    Json(value).into_response()
}

pub(crate) async fn overview(State(shared): State<Shared>) -> Response {
    ok(shared.overview())
}

pub(crate) async fn workers(State(shared): State<Shared>) -> Response {
    ok(shared.overview().workers)
}

pub(crate) async fn worker(State(shared): State<Shared>, PathName(name): PathName) -> Response {
    match shared.worker(&name) {
        Some(view) => ok(view),
        None => ApiError::not_found("worker", &name).into_response(),
    }
}

pub(crate) async fn sinks(State(shared): State<Shared>) -> Response {
    ok(shared.overview().sinks)
}

pub(crate) async fn sink(State(shared): State<Shared>, PathName(name): PathName) -> Response {
    match shared.sink(&name) {
        Some(view) => ok(view),
        None => ApiError::not_found("sink", &name).into_response(),
    }
}

/// `POST api/sinks/{sink}/raise` with `{"name", "key"?, "ttl"?, "level"?}`.
pub(crate) async fn raise(
    State(shared): State<Shared>,
    PathName(sink_name): PathName,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    respond(raise_inner(&shared, &sink_name, &headers, body))
}

fn raise_inner(
    shared: &Shared,
    sink_name: &str,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Raised> {
    let mut fields = json_object(headers, body)?;
    let sink = find_sink(shared, sink_name)?;
    let name = take_name(&mut fields)?;
    let key = take_key(&mut fields)?;
    let ttl = take_ttl(&mut fields)?;
    let level = take_level(&mut fields)?;
    no_more(&fields)?;

    let mut options = RaiseOptions::new().level(level);
    if let Some(key) = &key {
        options = options.key(key.clone());
    }
    if let Some(ttl) = ttl {
        options = options.ttl(ttl);
    }
    sink.raise_with(&name, options).map_err(signal_error)?;
    let signal = shared.sink(sink_name).and_then(|view| {
        view.signals
            .into_iter()
            .find(|s| s.name == name && s.key == key)
    });
    Ok(Json(Raised { raised: signal }))
}

#[derive(Debug, Serialize)]
struct Raised {
    /// The entry as it is now (`None` only if it expired in between).
    raised: Option<crate::model::SignalView>,
}

/// `POST api/sinks/{sink}/retract` with `{"name", "key"?}`.
pub(crate) async fn retract(
    State(shared): State<Shared>,
    PathName(sink_name): PathName,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    respond(retract_inner(&shared, &sink_name, &headers, body))
}

fn retract_inner(
    shared: &Shared,
    sink_name: &str,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Retracted> {
    let mut fields = json_object(headers, body)?;
    let sink = find_sink(shared, sink_name)?;
    let name = take_name(&mut fields)?;
    let key = take_key(&mut fields)?;
    no_more(&fields)?;
    let retracted = match &key {
        Some(key) => usize::from(sink.retract_keyed(&name, key).map_err(signal_error)?),
        None => sink.retract(&name).map_err(signal_error)?,
    };
    Ok(Json(Retracted { retracted }))
}

#[derive(Debug, Serialize)]
struct Retracted {
    /// How many entries were active and are now gone.
    retracted: usize,
}

/// `POST api/workers/{name}/pause`.
pub(crate) async fn pause(
    State(shared): State<Shared>,
    PathName(name): PathName,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    respond(control(&shared, &name, &headers, body, true))
}

/// `POST api/workers/{name}/resume`.
pub(crate) async fn resume(
    State(shared): State<Shared>,
    PathName(name): PathName,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    respond(control(&shared, &name, &headers, body, false))
}

fn control(
    shared: &Shared,
    name: &str,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    pause: bool,
) -> ApiResult<crate::model::WorkerView> {
    let fields = json_object(headers, body)?;
    no_more(&fields)?;
    if shared.runtime.worker(name).is_none() {
        return Err(ApiError::not_found("worker", name));
    }
    let done = if pause {
        shared.runtime.pause(name)
    } else {
        shared.runtime.resume(name)
    };
    match (done, shared.worker(name)) {
        (true, Some(view)) => Ok(Json(view)),
        _ => Err(ApiError::not_found("worker", name)),
    }
}

fn respond<T: Serialize>(result: ApiResult<T>) -> Response {
    match result {
        Ok(Json(value)) => ok(value),
        Err(err) => err.into_response(),
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

/// The request body as a JSON object; mutations take `application/json` only. An empty
/// body is an empty object.
fn json_object(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Map<String, Value>, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Some("content-type"),
            "changes take a JSON body: send `Content-Type: application/json`",
        ));
    }
    let body = body.map_err(|rejection| {
        ApiError::new(rejection.status(), Some("body"), rejection.body_text())
    })?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::bad("body", "the body must be a JSON object")),
        Err(err) => Err(ApiError::bad(
            "body",
            format!("the body is not valid JSON: {err}"),
        )),
    }
}

fn no_more(fields: &Map<String, Value>) -> Result<(), ApiError> {
    match fields.keys().next() {
        None => Ok(()),
        Some(extra) => Err(ApiError::bad(
            "body",
            format!("unknown field `{}`", shorten(extra)),
        )),
    }
}

fn take_name(fields: &mut Map<String, Value>) -> Result<String, ApiError> {
    match fields.remove("name") {
        Some(Value::String(name)) => {
            backpressure::validate_name(&name).map_err(|e| ApiError::bad("name", e.to_string()))?;
            Ok(name)
        }
        Some(_) => Err(ApiError::bad("name", "`name` must be a string")),
        None => Err(ApiError::bad("name", "`name` is required")),
    }
}

fn take_key(fields: &mut Map<String, Value>) -> Result<Option<String>, ApiError> {
    match fields.remove("key") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(key)) if key.is_empty() => Ok(None),
        Some(Value::String(key)) if key.len() > MAX_KEY_LEN => Err(ApiError::bad(
            "key",
            format!("`key` is longer than {MAX_KEY_LEN} bytes"),
        )),
        Some(Value::String(key)) => {
            backpressure::validate_name(&key)
                .map_err(|e| ApiError::bad("key", format!("invalid signal key: {e}")))?;
            Ok(Some(key))
        }
        Some(_) => Err(ApiError::bad("key", "`key` must be a string")),
    }
}

/// `ttl`: a number of seconds (`90`, `0.5`) or a duration (`"90s"`, `"5m"`), more than zero
/// and at most 30 days; `null` or absent for none.
fn take_ttl(fields: &mut Map<String, Value>) -> Result<Option<Duration>, ApiError> {
    let ttl = match fields.remove("ttl") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(text)) if text.trim().is_empty() => return Ok(None),
        Some(Value::Number(n)) => {
            let secs = n.as_f64().unwrap_or(f64::NAN);
            if !secs.is_finite() || secs <= 0.0 {
                return Err(ApiError::bad(
                    "ttl",
                    format!("`ttl` must be more than zero seconds, not {n}"),
                ));
            }
            Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
        }
        Some(Value::String(text)) => humantime::parse_duration(text.trim()).map_err(|e| {
            ApiError::bad(
                "ttl",
                format!("`ttl` is not a duration like \"30s\" or \"5m\": {e}"),
            )
        })?,
        Some(_) => {
            return Err(ApiError::bad(
                "ttl",
                "`ttl` must be a number of seconds or a string like \"30s\"",
            ))
        }
    };
    if ttl.is_zero() {
        return Err(ApiError::bad(
            "ttl",
            "`ttl` must be more than zero (retract a signal to remove it)",
        ));
    }
    if ttl > MAX_TTL {
        return Err(ApiError::bad("ttl", "`ttl` must be at most 30 days"));
    }
    Ok(Some(ttl))
}

/// `level`: a number from 0 (full stop, the default) to 1.
fn take_level(fields: &mut Map<String, Value>) -> Result<Level, ApiError> {
    match fields.remove("level") {
        None | Some(Value::Null) => Ok(Level::STOP),
        Some(Value::Number(n)) => n
            .as_f64()
            .ok_or(())
            .and_then(|x| Level::new(x).map_err(|_| ()))
            .map_err(|()| {
                ApiError::bad(
                    "level",
                    format!("`level` must be a number from 0 to 1, not {n}"),
                )
            }),
        Some(_) => Err(ApiError::bad(
            "level",
            "`level` must be a number from 0 to 1",
        )),
    }
}

fn signal_error(err: SignalError) -> ApiError {
    let field = match &err {
        SignalError::Key(_) => "key",
        SignalError::ZeroTtl => "ttl",
        _ => "name",
    };
    ApiError::bad(field, err.to_string())
}

/// The `{name}` / `{sink}` of a route, with a JSON 400 instead of axum's plain-text
/// rejection (for example for a name that is not UTF-8 once percent-decoded).
#[derive(Debug)]
pub(crate) struct PathName(pub(crate) String);

impl<S: Send + Sync> FromRequestParts<S> for PathName {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let field = if parts.uri.path().contains("/sinks/") {
            "sink"
        } else {
            "worker"
        };
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(name)) => Ok(Self(name)),
            Err(rejection) => Err(path_error(field, &rejection)),
        }
    }
}

fn path_error(field: &'static str, rejection: &PathRejection) -> ApiError {
    ApiError::bad(
        field,
        format!("bad {field} in the path: {}", rejection.body_text()),
    )
}
