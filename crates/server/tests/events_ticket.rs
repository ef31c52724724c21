//! The event stream's credentials, over HTTP through the audience router: a token in the
//! `Authorization` header, or a one-space ticket in the URL (for `EventSource`); never the token
//! itself in the URL, and a ticket is good for nothing else.

mod common;

use common::{ADMIN_KEY, server};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::Value;
use tower::ServiceExt;

/// Sends `method path` with an optional bearer: the status, the content type and the body (for
/// an event stream, only its head is awaited: the body stays open).
async fn call(
    r: &Router,
    method: &str,
    path: &str,
    bearer: Option<&str>,
) -> (StatusCode, String, Value) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(b) = bearer {
        req = req.header(header::AUTHORIZATION, format!("Bearer {b}"));
    }
    let resp = r
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let ctype = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if ctype == "text/event-stream" {
        return (status, ctype, Value::Null);
    }
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        ctype,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn ticket(r: &Router, space: &str, bearer: &str) -> String {
    let (s, _, v) = call(
        r,
        "POST",
        &format!("/api/spaces/{space}/events/ticket"),
        Some(bearer),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["expires_in"], 60);
    v["ticket"].as_str().expect("a ticket").to_owned()
}

#[tokio::test]
async fn the_event_stream_takes_a_header_or_a_ticket_never_a_token_in_the_url() {
    let (server, r) = server("ticket", "192.0.2.7:40000").await;
    let a = server
        .app
        .create_space(Some("a"), "A", "", "Host", None)
        .unwrap();
    server
        .app
        .create_space(Some("b"), "B", "", "Host", None)
        .unwrap();
    let host = a.host_token.clone();

    // The header, and a ticket bought with it (the host's, and the operator key's).
    let (s, ctype, _) = call(&r, "GET", "/api/spaces/a/events", Some(&host)).await;
    assert_eq!((s, ctype.as_str()), (StatusCode::OK, "text/event-stream"));
    for who in [host.as_str(), ADMIN_KEY] {
        let t = ticket(&r, "a", who).await;
        let (s, ctype, _) =
            call(&r, "GET", &format!("/api/spaces/a/events?ticket={t}"), None).await;
        assert_eq!((s, ctype.as_str()), (StatusCode::OK, "text/event-stream"));
    }

    // The token in the URL is refused, saying what to do instead.
    let (s, _, v) = call(
        &r,
        "GET",
        &format!("/api/spaces/a/events?token={host}"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        v["message"].as_str().unwrap().contains("events/ticket"),
        "{v}"
    );

    // A ticket opens only its own space's stream, and is no credential anywhere.
    let t = ticket(&r, "a", &host).await;
    let (s, _, _) = call(&r, "GET", &format!("/api/spaces/b/events?ticket={t}"), None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _, v) = call(&r, "POST", "/api/spaces/a/end", Some(&t)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    let (s, _, _) = call(&r, "GET", "/api/spaces/a/events", Some(&t)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _, _) = call(&r, "POST", "/api/spaces/a/events/ticket", Some(&t)).await;
    assert_eq!(
        s,
        StatusCode::UNAUTHORIZED,
        "a ticket does not buy a ticket"
    );

    // Nonsense, and no credential at all.
    let (s, _, v) = call(&r, "GET", "/api/spaces/a/events?ticket=nonsense", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(v["message"], "invalid ticket");
    let (s, _, _) = call(&r, "POST", "/api/spaces/a/events/ticket", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _, _) = call(
        &r,
        "POST",
        "/api/spaces/nope/events/ticket",
        Some(ADMIN_KEY),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}
