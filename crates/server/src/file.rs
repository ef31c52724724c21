//! A file from disk as an HTTP answer (ranges, conditional requests, optionally a precompressed
//! `.gz` twin, by `tower_http`'s `ServeFile`) with the headers its route adds.

use std::path::Path;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tower::ServiceExt;
use tower_http::services::ServeFile;

use crate::error::{ApiError, ApiResult};

/// Serves `path` for `req`, `404` naming `what` when it is missing, with `headers` set on the
/// answer (they replace any of the same name).
pub async fn serve_file(
    req: Request,
    path: &Path,
    gzip: bool,
    what: &str,
    headers: &[(HeaderName, HeaderValue)],
) -> ApiResult<Response> {
    let mut serve = ServeFile::new(path);
    if gzip {
        serve = serve.precompressed_gzip();
    }
    let resp = serve.oneshot(req).await.map_err(ApiError::internal)?;
    if resp.status() == StatusCode::NOT_FOUND {
        return Err(ApiError::not_found(what));
    }
    let mut resp = resp.map(Body::new).into_response();
    let h = resp.headers_mut();
    for (k, v) in headers {
        h.insert(k.clone(), v.clone());
    }
    Ok(resp)
}
