//! Who may mint which token, over HTTP through the audience router: a host mints for new
//! participants and listeners, never for a participant the room seats on stage (rule
//! `token.mint.seated`); the operator key mints anything.

mod common;

use common::{ADMIN_KEY, server};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use tower::ServiceExt;

/// `POST path` with `bearer` and a JSON body: the status and the JSON answer.
async fn post(r: &Router, path: &str, bearer: &str, body: Value) -> (StatusCode, Value) {
    let req = Request::post(path)
        .header(header::AUTHORIZATION, format!("Bearer {bearer}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = r.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Mints `role` for `sub` with `bearer`: the status and the token (empty when refused).
async fn mint(r: &Router, bearer: &str, role: &str, sub: &str) -> (StatusCode, String) {
    let (status, v) = post(
        r,
        "/api/spaces/m/tokens",
        bearer,
        json!({ "role": role, "sub": sub }),
    )
    .await;
    let token = v["token"].as_str().unwrap_or_default().to_owned();
    (status, token)
}

#[tokio::test]
async fn a_host_mints_only_for_participants_not_on_stage() {
    let (server, r) = server("cred-mint", "192.0.2.1:40000").await;
    let created = server
        .app
        .create_space(Some("m"), "Mint", "", "Host", None)
        .unwrap();
    let host = created.host_token.clone();
    // New participants: any role the table lets a host mint.
    let (s, cohost) = mint(&r, &host, "cohost", "c1").await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, speaker) = mint(&r, &host, "speaker", "s1").await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(
        mint(&r, &host, "listener", "l1").await.0,
        StatusCode::CREATED
    );
    // Not taken up yet, the grants seat nobody: the host may mint for those subs again.
    assert_eq!(mint(&r, &host, "cohost", "c1").await.0, StatusCode::CREATED);
    // Both take their seats (a self-mute is a stage action).
    for t in [&cohost, &speaker] {
        let (s, _) = post(&r, "/api/spaces/m/stage/mute", t, json!({})).await;
        assert_eq!(s, StatusCode::NO_CONTENT);
    }
    // Now a token for them would act with their seats: refused, whatever role it says.
    for (role, sub) in [
        ("cohost", "c1"),
        ("speaker", "c1"),
        ("listener", "c1"),
        ("speaker", "s1"),
        ("listener", "s1"),
        ("listener", created.host_sub.as_str()),
        ("cohost", created.host_sub.as_str()),
    ] {
        let (s, v) = post(
            &r,
            "/api/spaces/m/tokens",
            &host,
            json!({ "role": role, "sub": sub }),
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{role} for {sub}: {v}");
        let msg = v["message"].as_str().unwrap_or_default();
        assert!(msg.contains("token.mint.seated"), "{role} for {sub}: {msg}");
    }
    // A listener holds nothing to borrow: the host may still invite one this way.
    assert_eq!(
        mint(&r, &host, "speaker", "l1").await.0,
        StatusCode::CREATED
    );
    // A banned participant gets no new token from the host.
    let (s, _) = post(&r, "/api/spaces/m/stage/ban", &host, json!({ "sub": "l1" })).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, v) = post(
        &r,
        "/api/spaces/m/tokens",
        &host,
        json!({ "role": "listener", "sub": "l1" }),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(v["message"], "participant l1 is banned");
    // The operator key, from outside the room, mints anything for anyone.
    for (role, sub) in [
        ("cohost", "c1"),
        ("speaker", "s1"),
        ("host", created.host_sub.as_str()),
        ("listener", "l1"),
    ] {
        let (s, v) = post(
            &r,
            "/api/spaces/m/tokens",
            ADMIN_KEY,
            json!({ "role": role, "sub": sub }),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "operator: {role} for {sub}: {v}");
    }
    // A co-host mints nothing (as before).
    assert_eq!(
        mint(&r, &cohost, "listener", "new").await.0,
        StatusCode::FORBIDDEN
    );
}
