//! Request bodies: read whole, small and on time, before any handler ([`read_whole`]); and an
//! optional JSON body whose every failure is an [`ApiError`]: the same `{"error", "message"}`
//! shape and a precise status as every other refusal (axum's own `Json` rejections answer plain
//! text).

use std::time::Duration;

use axum::body::Body;
use axum::extract::{FromRequest, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// The whole body must have arrived this long after its head: a client announcing a body and
/// sending it slowly (or never) holds a connection and an in-flight place no longer than this.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Middleware on every route: a body announced larger than `max_body` is refused at once
/// (`413`, before a byte of it is read); any other body is read here, within [`BODY_TIMEOUT`]
/// (`408` otherwise) and `max_body` (`413`), and handed on in memory. Handlers never wait on a
/// client's network.
pub async fn read_whole(State(max_body): State<usize>, req: Request, next: Next) -> Response {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body is larger than {max_body} bytes"),
        )
        .with_header(header::CONNECTION, "close")
        .into_response()
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_body as u64) {
        return too_large();
    }
    // Decided by the body itself, not its headers: an HTTP/2 body has no Content-Length.
    if declared == Some(0) || axum::body::HttpBody::is_end_stream(req.body()) {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, max_body)).await {
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!(
                "the request body did not arrive within {} s",
                BODY_TIMEOUT.as_secs()
            ),
        )
        .with_header(header::CONNECTION, "close")
        .into_response(),
        // A declared length within the limit that was not met: the body was cut short.
        Ok(Err(_)) if declared.is_some() => {
            ApiError::bad_request("the request body ended before its Content-Length")
                .with_header(header::CONNECTION, "close")
                .into_response()
        }
        Ok(Err(_)) => too_large(),
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
    }
}

/// A JSON body, or `None` when the request has no body.
pub struct OptJson(pub Option<serde_json::Value>);

impl<S: Send + Sync> FromRequest<S> for OptJson {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let ctype = media_type(req.headers());
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| {
                ApiError::new(
                    e.status(),
                    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                        "payload_too_large"
                    } else {
                        "bad_request"
                    },
                    e.body_text(),
                )
            })?;
        parse_opt_json(ctype.as_deref(), &bytes)
    }
}

/// The media type of `Content-Type` (lower case, parameters left out).
pub fn media_type(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
}

/// A body of media type `ctype` as [`OptJson`]: `None` when blank, `415` unless JSON, `400`
/// when not valid JSON.
pub fn parse_opt_json(ctype: Option<&str>, bytes: &[u8]) -> Result<OptJson, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(OptJson(None));
    }
    match ctype {
        Some("application/json") => {}
        Some(t) if t.ends_with("+json") => {}
        other => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("send JSON with Content-Type: application/json, not {other:?}"),
            ));
        }
    }
    serde_json::from_slice(bytes)
        .map(|v| OptJson(Some(v)))
        .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))
}
