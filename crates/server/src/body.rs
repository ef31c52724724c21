//! An optional JSON request body whose every failure is an [`ApiError`]: the same
//! `{"error", "message"}` shape and a precise status as every other refusal (axum's own `Json`
//! rejections answer plain text).

use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};

use crate::error::ApiError;

/// A JSON body, or `None` when the request has no body.
pub struct OptJson(pub Option<serde_json::Value>);

impl<S: Send + Sync> FromRequest<S> for OptJson {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let ctype = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            });
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
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptJson(None));
        }
        match ctype.as_deref() {
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
        serde_json::from_slice(&bytes)
            .map(|v| OptJson(Some(v)))
            .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))
    }
}
