//! Refusals as HTTP responses. The vocabulary (reasons, classes, statuses, bodies) is
//! [`tribune_admission::refusal`]'s; this adds the axum response.

use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
pub use tribune_admission::refusal::{Class, Reason, Refusal};

/// A [`Refusal`] as an axum response (`refusal.into_response()` with this trait in scope).
pub trait IntoHttp {
    fn into_response(self) -> Response;
}

impl IntoHttp for Refusal {
    fn into_response(self) -> Response {
        let (status, headers, body) = self.into_parts();
        let mut resp = (status, axum::Json(body)).into_response();
        let h: &mut HeaderMap = resp.headers_mut();
        for (k, v) in headers {
            h.append(k, v);
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{StatusCode, header};

    #[tokio::test]
    async fn a_refusal_answers_with_its_status_headers_and_body() {
        let r = Refusal::new(Reason::WaitingRoom, "full")
            .retry_after(4)
            .field("position", 12)
            .header(header::CONNECTION, "close")
            .into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "4");
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store");
        assert_eq!(r.headers()[header::CONNECTION], "close");
        let body = axum::body::to_bytes(r.into_body(), 4096).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"], "waiting_room");
        assert_eq!(v["position"], 12);
    }
}
