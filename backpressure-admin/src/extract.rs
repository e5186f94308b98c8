//! Extractors whose rejection is our JSON [`ApiError`] instead of axum's plain text: the
//! name in a route's path, and the JSON-object body of a change (which is also where the
//! JSON-only rule for changes lives).
//!
//! The shape of axum-extra's `WithRejection`: wrap axum's own extractor, map its rejection.
//! Written here instead of depending on axum-extra because a change's body has rules of its
//! own that no stock extractor has (an empty body is `{}`, the content type is checked before
//! the body is read, a non-object is a 400 naming `body`).

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use serde_json::{Map, Value};

use crate::error::ApiError;

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

/// The body of a change as a JSON object. Changes take `Content-Type: application/json`
/// only (415 otherwise, before the body is read), so a plain HTML form on another site
/// cannot send one; an empty body is an empty object.
#[derive(Debug)]
pub(crate) struct JsonObject(pub(crate) Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        json_only(request.headers())?;
        let body = Bytes::from_request(request, state)
            .await
            .map_err(body_error)?;
        object(&body).map(Self)
    }
}

fn json_only(headers: &HeaderMap) -> Result<(), ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Some("content-type"),
            "changes take a JSON body: send `Content-Type: application/json`",
        ))
    }
}

/// A body that could not be read (too large, for one) keeps axum's status and words.
fn body_error(rejection: BytesRejection) -> ApiError {
    ApiError::new(rejection.status(), Some("body"), rejection.body_text())
}

fn object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::bad("body", "the body must be a JSON object")),
        Err(err) => Err(ApiError::bad(
            "body",
            format!("the body is not valid JSON: {err}"),
        )),
    }
}
