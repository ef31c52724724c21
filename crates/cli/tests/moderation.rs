//! Bad input on the control plane: every refusal precise, nothing else disturbed.

mod common;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_precise() {
    let server = ServerProc::start("moderation", &[]);
    let base = server.base.clone();
    let spaces = format!("{base}/api/spaces");

    // Titles and names: length-limited, no control characters.
    let long = "x".repeat(121);
    let (s, _) = api(
        "POST",
        &spaces,
        Some(ADMIN_KEY),
        Some(json!({"title": long})),
    )
    .await;
    assert_eq!(s, 400);
    let (s, _) = api(
        "POST",
        &spaces,
        Some(ADMIN_KEY),
        Some(json!({"title": "a\u{7}b"})),
    )
    .await;
    assert_eq!(s, 400);
    let (s, _) = api(
        "POST",
        &spaces,
        Some(ADMIN_KEY),
        Some(json!({"nonsense": 1})),
    )
    .await;
    assert_eq!(s, 400, "unknown fields are refused");
    // Malformed JSON and a wrong content type get the same JSON error shape as every refusal.
    let c = reqwest::Client::new();
    for (ctype, body, status) in [
        ("application/json", "{\"title\": ", 400),
        ("text/plain", "{}", 415),
    ] {
        let r = c
            .post(&spaces)
            .bearer_auth(ADMIN_KEY)
            .header("content-type", ctype)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status);
        let v: serde_json::Value = r.json().await.expect("a JSON error body");
        assert!(v["error"].is_string() && v["message"].is_string(), "{v}");
    }
    let (id, host) = create_space(&base, "moderation").await;
    let join = format!("{base}/api/spaces/{id}/join");
    let (s, _) = api("POST", &join, None, Some(json!({"name": "bad\nname"}))).await;
    assert_eq!(s, 400);
    let (s, _) = api("POST", &join, None, Some(json!({"name": "n".repeat(65)}))).await;
    assert_eq!(s, 400);

    // Reactions: known emoji only, rate-limited per participant.
    let (_, j) = api("POST", &join, None, Some(json!({"name": "Fan"}))).await;
    let fan = j["token"].as_str().unwrap().to_owned();
    let fan_sub = j["sub"].as_str().unwrap().to_owned();
    let react = format!("{base}/api/spaces/{id}/reactions");
    let (s, _) = api("POST", &react, Some(&fan), Some(json!({"emoji": "🦀"}))).await;
    assert_eq!(s, 400, "unknown emoji");
    let mut statuses = Vec::new();
    for _ in 0..15 {
        statuses.push(
            api("POST", &react, Some(&fan), Some(json!({"emoji": "👏"})))
                .await
                .0,
        );
    }
    assert_eq!(statuses[0], 204);
    assert!(
        statuses.contains(&429),
        "a burst beyond the limit is refused: {statuses:?}"
    );
    let (s, _) = api("POST", &react, None, Some(json!({"emoji": "👏"}))).await;
    assert_eq!(s, 401);

    // A token renews as the same participant.
    let (s, r) = api("POST", &join, Some(&fan), None).await;
    assert_eq!(s, 200);
    assert_eq!(r["sub"], fan_sub.as_str());
    // … and may take a new display name on the way (same participant), but not a bad one.
    let (s, r) = api("POST", &join, Some(&fan), Some(json!({"name": "Fan Two"}))).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["sub"], fan_sub.as_str());
    assert_eq!(r["name"], "Fan Two");
    let (s, _) = api("POST", &join, Some(&fan), Some(json!({"name": "a\u{7}b"}))).await;
    assert_eq!(s, 400);

    // Only the host or a co-host moderates; 403 names the rule.
    let (s, v) = api(
        "POST",
        &format!("{base}/api/spaces/{id}/stage/remove"),
        Some(&fan),
        Some(json!({"sub": "x"})),
    )
    .await;
    assert_eq!(s, 403);
    assert!(v["message"].as_str().unwrap().contains("rule"), "{v}");
    let (s, _) = api(
        "POST",
        &format!("{base}/api/spaces/{id}/tokens"),
        Some(&fan),
        Some(json!({"role": "speaker"})),
    )
    .await;
    assert_eq!(s, 403, "a listener may not mint tokens");
    let (s, _) = api(
        "POST",
        &format!("{base}/api/spaces/{id}/tokens"),
        Some(&host),
        Some(json!({"role": "host"})),
    )
    .await;
    assert_eq!(s, 403, "only the operator mints hosts");

    // Removed: the participant's tokens stop working.
    let (s, _) = api(
        "POST",
        &format!("{base}/api/spaces/{id}/stage/remove"),
        Some(&host),
        Some(json!({"sub": fan_sub})),
    )
    .await;
    assert_eq!(s, 204);
    let (s, _) = api("POST", &react, Some(&fan), Some(json!({"emoji": "👏"}))).await;
    assert_eq!(s, 403);
    let r = reqwest::Client::new()
        .get(format!("{base}/api/spaces/{id}/events"))
        .bearer_auth(&fan)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let (s, _) = api("POST", &join, Some(&fan), None).await;
    assert_eq!(s, 403, "no renewal for a removed participant");

    // Banned anonymous participant: its address is banned for anonymous joins too.
    let (_, j) = api("POST", &join, None, Some(json!({"name": "Troll"}))).await;
    let troll = j["token"].as_str().unwrap().to_owned();
    let troll_sub = j["sub"].as_str().unwrap().to_owned();
    assert_eq!(
        api("POST", &react, Some(&troll), Some(json!({"emoji": "🔥"})))
            .await
            .0,
        204
    );
    let (s, _) = api(
        "POST",
        &format!("{base}/api/spaces/{id}/stage/ban"),
        Some(&host),
        Some(json!({"sub": troll_sub})),
    )
    .await;
    assert_eq!(s, 204);
    let (s, _) = api("POST", &join, None, Some(json!({"name": "Troll again"}))).await;
    assert_eq!(s, 403, "address ban on anonymous rejoin");

    // Ended: 409.
    let (s, _) = api(
        "POST",
        &format!("{base}/api/spaces/{id}/end"),
        Some(&host),
        None,
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = api(
        "POST",
        &format!("{base}/api/spaces/{id}/start"),
        Some(&host),
        None,
    )
    .await;
    assert_eq!(s, 409);
    let (s, _) = api("POST", &join, None, Some(json!({"name": "Late"}))).await;
    assert_eq!(s, 409);

    // The server is still fine.
    let (s, _) = api("GET", &format!("{base}/healthz"), None, None).await;
    assert_eq!(s, 200);
}
