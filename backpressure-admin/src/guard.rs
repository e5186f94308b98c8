//! Who may do what: the authorize hook, read-only mode and the `Origin` check, in front of
//! every route.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::model::Shared;
use crate::Access;

pub(crate) async fn guard(State(shared): State<Shared>, request: Request, next: Next) -> Response {
    // A router built outside a tokio runtime starts its history here.
    crate::history::start(&shared);
    let access = if matches!(*request.method(), Method::GET | Method::HEAD) {
        Access::Read
    } else {
        Access::Write
    };
    let (parts, body) = request.into_parts();
    if access == Access::Write && shared.config.read_only {
        return ApiError::forbidden("the admin is read-only").into_response();
    }
    if let Some(authorize) = &shared.config.authorize {
        if !authorize(&parts, access) {
            return ApiError::forbidden("not allowed").into_response();
        }
    }
    if access == Access::Write {
        if let Err(err) = same_origin(&parts.headers, &shared.config.allowed_origins) {
            return err.into_response();
        }
    }
    next.run(Request::from_parts(parts, body)).await
}

/// Changes must come from the router's own origin (or an allowed one): a page elsewhere
/// must not be able to make a signed-in operator's browser raise or pause anything.
/// Requests without `Origin` (curl, scripts) pass; the JSON-only rule (`extract.rs`)
/// already keeps plain HTML forms out.
fn same_origin(headers: &HeaderMap, allowed: &[String]) -> Result<(), ApiError> {
    let forbidden = |why: &str| {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            Some("origin"),
            format!("cross-origin change refused: {why}"),
        ))
    };
    if headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"))
    {
        return forbidden("the request comes from another site");
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let Ok(origin) = origin.to_str() else {
        return forbidden("the `Origin` header is not readable");
    };
    let origin = origin.trim_end_matches('/').to_ascii_lowercase();
    if allowed.contains(&origin) {
        return Ok(());
    }
    let Some((scheme, authority)) = origin.split_once("://") else {
        return forbidden("the `Origin` header is not `scheme://host`");
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_ascii_lowercase);
    let Some(host) = host else {
        return forbidden("there is no `Host` header to compare the `Origin` with");
    };
    if strip_default_port(scheme, authority) == strip_default_port(scheme, &host) {
        Ok(())
    } else {
        forbidden("`Origin` does not match `Host`")
    }
}

fn strip_default_port<'a>(scheme: &str, authority: &'a str) -> &'a str {
    match scheme {
        "http" => authority.strip_suffix(":80").unwrap_or(authority),
        "https" => authority.strip_suffix(":443").unwrap_or(authority),
        _ => authority,
    }
}
