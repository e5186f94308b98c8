//! The JSON error every failing request gets, and the fallbacks that answer with it.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use backpressure::error::SignalError;
use serde::Serialize;

/// A request the admin refused: a status and a JSON body `{"error": ..., "field": ...}`.
///
/// `field` names the part of the request that is wrong (`sink`, `worker`, `name`, `key`,
/// `ttl`, `level`, `body`, `content-type`, `origin`) or is `null` when no single field is
/// to blame (read-only mode, a denied authorization).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct ApiError {
    #[serde(skip)]
    pub(crate) status: StatusCode,
    pub(crate) error: String,
    pub(crate) field: Option<&'static str>,
}

impl ApiError {
    pub(crate) fn new(
        status: StatusCode,
        field: Option<&'static str>,
        error: impl Into<String>,
    ) -> Self {
        Self {
            status,
            error: error.into(),
            field,
        }
    }

    /// 400: `field` has a bad value.
    pub(crate) fn bad(field: &'static str, error: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some(field), error)
    }

    /// 404: no `field` (a sink or a worker) of that name.
    pub(crate) fn not_found(field: &'static str, name: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            Some(field),
            format!("unknown {field} `{}`", shorten(name)),
        )
    }

    /// 403 with no field: read-only mode or a denied authorization.
    pub(crate) fn forbidden(error: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, None, error)
    }
}

/// The runtime's own refusal of a name, key or TTL: a 400 naming that field, in the
/// runtime's words.
impl From<SignalError> for ApiError {
    fn from(err: SignalError) -> Self {
        let field = match &err {
            SignalError::Key(_) => "key",
            SignalError::ZeroTtl => "ttl",
            _ => "name",
        };
        Self::bad(field, err.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self)).into_response()
    }
}

/// The fallback for paths the router does not know: a JSON 404.
pub(crate) async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, None, "no such admin route")
}

/// The fallback for a known path with another method: a JSON 405.
pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, None, "method not allowed")
}

/// The first 64 characters of a user-supplied name, for error messages.
pub(crate) fn shorten(name: &str) -> String {
    let mut short: String = name.chars().take(64).collect();
    if short.len() < name.len() {
        short.push('…');
    }
    short
}
