//! A reaction storm: every listener of a live space reacts at once, three times over. The server
//! sheds what it must with an honest 429 and `Retry-After` (a participant past 5 reactions a
//! second; the node past its budget of reaction requests; or a 503 with `Retry-After` from the
//! audience port's connection cap), never another error or a dropped connection; every accepted reaction is counted exactly once in the public snapshot's totals;
//! and the audio is untouched: an Ogg listener held through the storm gets a continuous stream
//! (no sequence or granule gap), and the mixer keeps its ticks (the figure is printed).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

/// Reacting listeners, each with its own token.
const LISTENERS: usize = 2000;
/// Requests each sends at once (of 5 reactions: the third passes the burst of 10).
const ROUNDS: usize = 3;
/// Requests in flight at once.
const IN_FLIGHT: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reaction_storm_is_shed_honestly_and_the_audio_goes_on() {
    let server = ServerProc::start("reaction-storm", &[]);
    let base = server.base.clone();
    let (id, _speaker) = space_with_speaker(&server, "storm", 40).await;
    let listener = listen(
        &format!("{base}/spaces/{id}/live.opus"),
        20,
        &server.data_dir.join("listener.opus"),
    );

    // The audience: listener tokens, minted by the operator.
    let mut tokens = Vec::with_capacity(LISTENERS);
    for i in 0..LISTENERS {
        tokens.push(mint(&base, &id, ADMIN_KEY, "listener", &format!("fan {i}")).await);
    }
    let late_before = metric(&base, "tribune_mixer_late_ticks_total").await;

    // Everyone at once, through at most IN_FLIGHT connections (one loopback address holds no
    // more on the audience port: past its per-address cap the answer is a canned 503 written
    // before the request is read, which an HTTP client may see as a broken exchange).
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    // Each listener from its own loopback address, as a real audience is: the per-address
    // limits in front of the API are not what this test is about.
    let clients: Vec<reqwest::Client> = (0..LISTENERS)
        .map(|i| {
            let ip = std::net::Ipv4Addr::new(127, 1, (i / 250) as u8, (i % 250 + 1) as u8);
            reqwest::Client::builder()
                .local_address(std::net::IpAddr::V4(ip))
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client")
        })
        .collect();
    let url = format!("{base}/api/spaces/{id}/reactions");
    let mut tasks = Vec::with_capacity(LISTENERS * ROUNDS);
    for (t, client) in tokens.iter().zip(&clients) {
        for _ in 0..ROUNDS {
            let (client, url, t) = (client.clone(), url.clone(), t.clone());
            let gate = gate.clone();
            tasks.push(tokio::spawn(async move {
                let _permit = gate.acquire_owned().await.expect("gate");
                let r = client
                    .post(&url)
                    .bearer_auth(&t)
                    .json(&json!({"counts": {"👏": 5}}))
                    .send()
                    .await;
                match r {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let retry = r
                            .headers()
                            .get("retry-after")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.parse::<u32>().ok());
                        let body: Value = r.json().await.unwrap_or(Value::Null);
                        (
                            status,
                            retry,
                            body["error"].as_str().unwrap_or("").to_owned(),
                        )
                    }
                    Err(e) => (0, None, format!("{e:?}")),
                }
            }));
        }
    }
    let mut outcomes: BTreeMap<(u16, String), u64> = BTreeMap::new();
    let mut accepted = 0u64;
    for t in tasks {
        let (status, retry, error) = t.await.expect("task");
        match status {
            204 => accepted += 1,
            // 429: the reaction limits; 503: the audience port's connection cap.
            429 | 503 => assert!(
                retry.is_some_and(|s| s >= 1),
                "a {status} says when to come back ({error})"
            ),
            _ => panic!("an answer other than 204, 429 or 503: {status} {error}"),
        }
        *outcomes.entry((status, error)).or_default() += 1;
    }
    eprintln!("storm outcomes: {outcomes:?}");
    assert!(accepted > 0, "{outcomes:?}");
    assert!(
        outcomes.keys().any(|(s, _)| *s == 429),
        "a storm beyond the limits is shed: {outcomes:?}"
    );
    assert_eq!(
        metric(&base, "tribune_reactions_total").await,
        (accepted * 5) as f64
    );
    // Every accepted reaction, once, in the totals everyone sees.
    assert!(
        eventually(Duration::from_secs(5), async || {
            let v: Value = reqwest::get(format!("{base}/spaces/{id}/snapshot.json"))
                .await
                .expect("snapshot")
                .json()
                .await
                .expect("json");
            v["reactions"]["👏"].as_u64() == Some(accepted * 5)
        })
        .await,
        "totals = 5 × {accepted}"
    );

    // The audio went on.
    let rep = report(listener);
    assert_continuous(&rep);
    let late = metric(&base, "tribune_mixer_late_ticks_total").await - late_before;
    eprintln!("reaction storm: {accepted} requests accepted, mixer late ticks during it: {late}");
}
