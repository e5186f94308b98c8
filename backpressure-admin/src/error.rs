//! The JSON error every failing request gets.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
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

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self)).into_response()
    }
}

/// The first 64 characters of a user-supplied name, for error messages.
pub(crate) fn shorten(name: &str) -> String {
    let mut short: String = name.chars().take(64).collect();
    if short.len() < name.len() {
        short.push('…');
    }
    short
}
