//! What the body of a change may hold, read field by field from its JSON object. Names and
//! keys are checked with the runtime's own rule (`backpressure::validate_name`), so they
//! fail here, naming their field, before anything is raised; what only an operation can
//! judge (a TTL of zero) is left to the sink, whose error is mapped to its field too.

use std::time::Duration;

use backpressure::{error::SignalError, Level, RaiseOptions};
use serde_json::{Map, Value};

use crate::error::{shorten, ApiError};

/// The longest TTL the admin accepts: 30 days.
const MAX_TTL: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// `{"name", "key"?, "ttl"?, "level"?}` of `POST api/sinks/{sink}/raise`.
#[derive(Debug)]
pub(crate) struct RaiseFields {
    pub(crate) name: String,
    pub(crate) key: Option<String>,
    pub(crate) options: RaiseOptions,
}

impl RaiseFields {
    pub(crate) fn read(mut fields: Map<String, Value>) -> Result<Self, ApiError> {
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
        Ok(Self { name, key, options })
    }
}

/// `{"name", "key"?}` of `POST api/sinks/{sink}/retract`.
#[derive(Debug)]
pub(crate) struct RetractFields {
    pub(crate) name: String,
    pub(crate) key: Option<String>,
}

impl RetractFields {
    pub(crate) fn read(mut fields: Map<String, Value>) -> Result<Self, ApiError> {
        let name = take_name(&mut fields)?;
        let key = take_key(&mut fields)?;
        no_more(&fields)?;
        Ok(Self { name, key })
    }
}

/// Pause and resume take no fields.
pub(crate) fn no_more(fields: &Map<String, Value>) -> Result<(), ApiError> {
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
            backpressure::validate_name(&name).map_err(SignalError::Name)?;
            Ok(name)
        }
        Some(_) => Err(ApiError::bad("name", "`name` must be a string")),
        None => Err(ApiError::bad("name", "`name` is required")),
    }
}

/// `key`: a signal key (the naming rules, length included); empty, `null` or absent for none.
fn take_key(fields: &mut Map<String, Value>) -> Result<Option<String>, ApiError> {
    match fields.remove("key") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(key)) if key.is_empty() => Ok(None),
        Some(Value::String(key)) => {
            backpressure::validate_name(&key).map_err(SignalError::Key)?;
            Ok(Some(key))
        }
        Some(_) => Err(ApiError::bad("key", "`key` must be a string")),
    }
}

/// `ttl`: a number of seconds (`90`, `0.5`) or a duration (`"90s"`, `"5m"`), at most 30
/// days; `null` or absent for none. Zero is the sink's to refuse.
fn take_ttl(fields: &mut Map<String, Value>) -> Result<Option<Duration>, ApiError> {
    let ttl = match fields.remove("ttl") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(text)) if text.trim().is_empty() => return Ok(None),
        Some(Value::Number(n)) => seconds(&n)?,
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
    if ttl > MAX_TTL {
        return Err(ApiError::bad("ttl", "`ttl` must be at most 30 days"));
    }
    Ok(Some(ttl))
}

/// A JSON number as a duration in seconds; one too large for a `Duration` is
/// `Duration::MAX` (and then more than 30 days).
fn seconds(n: &serde_json::Number) -> Result<Duration, ApiError> {
    let secs = n.as_f64().unwrap_or(f64::NAN);
    if secs.is_nan() || secs < 0.0 {
        return Err(ApiError::bad(
            "ttl",
            format!("`ttl` must be a positive number of seconds, not {n}"),
        ));
    }
    Ok(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX))
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
