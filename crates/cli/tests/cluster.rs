//! Nodes sharing one Redis (Debian's `redis-server`, started on loopback by the test): each
//! registers itself, every node lists every live node and the spaces each owns, and losing
//! Redis costs the listing (`503` with `Retry-After`), never the nodes. Any node serves any
//! space: commands, WHIP, live.opus, LL-HLS and the event stream through a node that does not
//! own the space work as on its owner.

mod common;

use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tribune_client::listen::analyze_wav;
use tribune_client::tones::tone_present;
use tribune_load::redis::Redis;

/// Longest the cluster may take to show a change (renewals run every 5 s): a bound, not a timing.
const HANG: Duration = Duration::from_secs(30);
use common::cluster::SECRET;

/// `GET /api/cluster` with the operator key: status, `Retry-After`, body.
async fn cluster(base: &str) -> (u16, Option<String>, Value) {
    let r = reqwest::Client::new()
        .get(format!("{base}/api/cluster"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("GET /api/cluster");
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (status, retry, r.json().await.unwrap_or(Value::Null))
}

/// Whether `v` lists exactly nodes n1..n3, with the URLs of `nodes`, and `owner` owning `space`.
fn all_three(v: &Value, nodes: &[ServerProc], owner: usize, space: &str) -> bool {
    let Some(listed) = v["nodes"].as_array() else {
        return false;
    };
    let ids: Vec<&str> = listed.iter().filter_map(|n| n["id"].as_str()).collect();
    ids == ["n1", "n2", "n3"]
        && listed
            .iter()
            .zip(nodes)
            .all(|(n, p)| n["public_url"] == p.base.as_str())
        && listed[owner]["spaces"]
            .as_array()
            .is_some_and(|s| s.iter().any(|x| x == space))
}

/// `redis-cli` at `port`: the reply to `args`, as text.
fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = std::process::Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli (Debian's redis-tools, with redis-server)");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The shared copy of space `id`'s record in Redis, and its timeline's length.
fn shared_state(port: u16, id: &str) -> (Value, usize) {
    let record = serde_json::from_str(&redis_cli(port, &["GET", &format!("tribune:state:{id}")]))
        .unwrap_or(Value::Null);
    let rows = redis_cli(port, &["LLEN", &format!("tribune:timeline:{id}")])
        .parse()
        .unwrap_or(0);
    (record, rows)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_find_each_other_through_redis_and_outlive_it() {
    let mut redis = Redis::start(&temp_dir("cluster-redis")).expect("redis-server");
    let url = redis.url();
    let nodes = common::cluster::nodes(&url, "cluster", 3, &[]);
    // Placed on n1, the one it was asked of (all are idle, ties go by id).
    let (s, v) = api(
        "POST",
        &format!("{}/api/spaces", nodes[0].base),
        Some(ADMIN_KEY),
        Some(json!({"title": "clustered", "node": "n1"})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let space = v["id"].as_str().unwrap().to_owned();

    for n in &nodes {
        let listed = eventually(HANG, async || {
            let (s, _, v) = cluster(&n.base).await;
            s == 200 && all_three(&v, &nodes, 0, &space)
        })
        .await;
        assert!(
            listed,
            "{} lists the three nodes: {:?}",
            n.base,
            cluster(&n.base).await
        );
    }
    let (_, _, v) = cluster(&nodes[1].base).await;
    assert_eq!(v["node"], "n2", "a node says which one it is");

    // The listing is the operator's.
    let r = reqwest::get(format!("{}/api/cluster", nodes[0].base))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);

    // Redis gone: the listing says to come back, the nodes and their spaces stay up.
    redis.kill();
    let refused = eventually(HANG, async || {
        let (s, retry, _) = cluster(&nodes[2].base).await;
        s == 503 && retry.is_some()
    })
    .await;
    assert!(
        refused,
        "503 with Retry-After while Redis is away: {:?}",
        cluster(&nodes[2].base).await
    );
    for n in &nodes {
        let (s, v) = api("GET", &format!("{}/healthz", n.base), None, None).await;
        assert_eq!(s, 200, "{v}");
    }
    let (s, v) = api(
        "GET",
        &format!("{}/api/spaces/{space}", nodes[0].base),
        None,
        None,
    )
    .await;
    assert_eq!((s, v["state"].as_str()), (200, Some("live")), "{v}");

    // Redis back (empty: no persistence here): the nodes register again by themselves.
    redis.restart().expect("redis-server again");
    let healed = eventually(HANG, async || {
        let (s, _, v) = cluster(&nodes[0].base).await;
        s == 200 && all_three(&v, &nodes, 0, &space)
    })
    .await;
    assert!(
        healed,
        "the cluster heals: {:?}",
        cluster(&nodes[0].base).await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_alone_has_no_cluster_and_half_a_cluster_config_does_not_start() {
    let alone = ServerProc::start("cluster-alone", &[]);
    let (s, _, v) = cluster(&alone.base).await;
    assert_eq!(s, 404, "{v}");
    let out = std::process::Command::new(bin())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--redis",
            "redis://127.0.0.1:1/0",
        ])
        .args(["--admin-key", ADMIN_KEY, "--jwt-secret", SECRET])
        .output()
        .expect("run tribune serve");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--node-id"), "{err}");
}

/// Reads the event stream at `url` (with `token`, resuming after `last`) until `done` says so
/// or `limit` passes; returns the frames as `(id, event, data)`.
async fn sse(
    url: &str,
    token: &str,
    last: Option<u64>,
    limit: Duration,
    mut done: impl FnMut(&[(u64, String, Value)]) -> bool,
) -> Vec<(u64, String, Value)> {
    let mut req = reqwest::Client::new().get(url).bearer_auth(token);
    if let Some(l) = last {
        req = req.header("last-event-id", l.to_string());
    }
    let resp = req.send().await.expect("open the event stream");
    assert_eq!(resp.status().as_u16(), 200, "events at {url}");
    let mut body = resp.bytes_stream();
    let mut buf = String::new();
    let mut frames = Vec::new();
    let _ = tokio::time::timeout(limit, async {
        while let Some(Ok(chunk)) = body.next().await {
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buf.find("\n\n") {
                let block: String = buf.drain(..end + 2).collect();
                let (mut id, mut event, mut data) = (0, String::new(), Value::Null);
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id: ") {
                        id = v.parse().unwrap_or(0);
                    } else if let Some(v) = line.strip_prefix("event: ") {
                        event = v.to_owned();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data = serde_json::from_str(v).unwrap_or(Value::Null);
                    }
                }
                if !event.is_empty() {
                    frames.push((id, event, data));
                }
            }
            if done(&frames) {
                return;
            }
        }
    })
    .await;
    frames
}

/// Listen to `url` for `secs` and return the audio after the first 1.5 s (the burst of the past).
fn heard(url: &str, secs: u32, out: &std::path::Path) -> Vec<f32> {
    let r = report(listen(url, secs, out));
    assert_continuous(&r);
    let pcm = analyze_wav(out).expect("the listener's audio");
    pcm[(48_000 * 3 / 2).min(pcm.len())..].to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_node_serves_any_space() {
    // Created through n1, run by n2 (asked for): the answer is the owner's, through n1.
    let (redis, nodes, id, host) = common::cluster::cluster_with_space(
        "cluster-any",
        3,
        &["--grace", "60"],
        (0, "n2"),
        "everywhere",
    )
    .await;
    let (n1, n2, n3) = (&nodes[0].base, &nodes[1].base, &nodes[2].base);
    let dir = nodes[0].data_dir.clone();
    let (s, v) = api(
        "POST",
        &format!("{n1}/api/spaces"),
        Some(ADMIN_KEY),
        Some(json!({"node": "n9"})),
    )
    .await;
    assert_eq!(s, 400, "no such node: {v}");
    // Placed by load: n2 runs a space now, so the next goes elsewhere.
    let (s, v) = api(
        "POST",
        &format!("{n2}/api/spaces"),
        Some(ADMIN_KEY),
        Some(json!({"title": "second"})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let second = v["id"].as_str().unwrap().to_owned();
    let c = cluster(n3).await.2;
    let owner_of = |c: &Value, space: &str| {
        c["nodes"].as_array().and_then(|ns| {
            ns.iter()
                .find(|n| {
                    n["spaces"]
                        .as_array()
                        .is_some_and(|s| s.iter().any(|x| x == space))
                })
                .and_then(|n| n["id"].as_str().map(str::to_owned))
        })
    };
    assert!(
        eventually(HANG, async || {
            let c = cluster(n3).await.2;
            owner_of(&c, &id).as_deref() == Some("n2") && owner_of(&c, &second).is_some()
        })
        .await,
        "{c}"
    );
    let c = cluster(n3).await.2;
    assert_ne!(
        owner_of(&c, &second).as_deref(),
        Some("n2"),
        "least loaded: {c}"
    );

    // Every node lists and shows both.
    for n in [n1, n2, n3] {
        let listed = eventually(HANG, async || {
            let (_, v) = api("GET", &format!("{n}/api/spaces"), None, None).await;
            let ids: Vec<&str> = v["spaces"]
                .as_array()
                .map(|a| a.iter().filter_map(|s| s["id"].as_str()).collect())
                .unwrap_or_default();
            ids.contains(&id.as_str()) && ids.contains(&second.as_str())
        })
        .await;
        assert!(listed, "{n} lists both spaces");
        let (s, v) = api("GET", &format!("{n}/api/spaces/{id}"), None, None).await;
        assert_eq!((s, v["title"].as_str()), (200, Some("everywhere")), "{v}");
    }
    let (s, _) = api("GET", &format!("{n3}/api/spaces/no-such-space"), None, None).await;
    assert_eq!(s, 404);

    // A speaker publishes through n3 (WHIP forwarded; media to n2's UDP port), minted via n1.
    let alice = mint(n1, &id, &host, "speaker", "Alice").await;
    let bob = mint(n3, &id, &host, "speaker", "Bob").await;
    let mut a = speak(
        &format!("{n3}/api/spaces/{id}/whip"),
        &alice,
        440,
        60,
        &dir.join("a.wav"),
    );
    let mut b = speak(
        &format!("{n1}/api/spaces/{id}/whip"),
        &bob,
        660,
        60,
        &dir.join("b.wav"),
    );
    wait_speakers(n2, 2).await;
    // An event stream on n1 (a mirror of n2's log), before anything else happens.
    let ann = mint(n2, &id, ADMIN_KEY, "listener", "Ann").await;
    let events_url = format!("{n1}/api/spaces/{id}/events");
    let watch = {
        let (url, host) = (events_url.clone(), host.clone());
        tokio::spawn(async move {
            sse(&url, &host, None, Duration::from_secs(40), |f| {
                f.iter()
                    .any(|(_, e, d)| e == "reactions" && d["counts"]["👏"].as_u64() >= Some(3))
            })
            .await
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Both heard on live.opus through n1 (relayed) and on the owner; LL-HLS through n3.
    let hls = tokio::spawn({
        let url = format!("{n3}/spaces/{id}/hls/live.m3u8");
        async move {
            tribune_client::hls::run(
                &reqwest::Client::new(),
                tribune_client::hls::Options::new(&url, Duration::from_secs(6)),
                std::future::pending(),
            )
            .await
        }
    });
    let relayed = heard(
        &format!("{n1}/spaces/{id}/live.opus"),
        5,
        &dir.join("n1.wav"),
    );
    assert!(
        tone_present(&relayed, 440.0) && tone_present(&relayed, 660.0),
        "n1 relays both"
    );
    let local = heard(
        &format!("{n2}/spaces/{id}/live.opus"),
        4,
        &dir.join("n2.wav"),
    );
    assert!(tone_present(&local, 440.0) && tone_present(&local, 660.0));
    let hls = hls.await.unwrap();
    assert!(
        hls.errors.is_empty() && hls.msn_gaps == 0 && hls.invalid_playlists == 0,
        "{hls:?}"
    );
    assert!(hls.parts >= 8 && hls.segments >= 1, "{hls:?}");
    assert!(
        metric(n3, "tribune_cluster_hls_fetches_total").await > 0.0,
        "n3 fetched from the owner"
    );

    // The host mutes Bob through n3: 660 Hz leaves every node's stream.
    let (_, space) = api("GET", &format!("{n3}/api/spaces/{id}"), None, None).await;
    let bob_sub = space["speakers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "Bob")
        .expect("Bob on stage")["sub"]
        .as_str()
        .unwrap()
        .to_owned();
    let (s, v) = api(
        "POST",
        &format!("{n3}/api/spaces/{id}/stage/mute"),
        Some(&host),
        Some(json!({"sub": bob_sub})),
    )
    .await;
    assert_eq!(s, 204, "{v}");
    // As the owner answers: a speaker cannot lift a host mute, through any node.
    let (s, v) = api(
        "POST",
        &format!("{n1}/api/spaces/{id}/stage/unmute"),
        Some(&bob),
        None,
    )
    .await;
    let (s2, v2) = api(
        "POST",
        &format!("{n2}/api/spaces/{id}/stage/unmute"),
        Some(&bob),
        None,
    )
    .await;
    assert_eq!((s, &v), (s2, &v2), "the same status and body as the owner");
    assert_eq!(s, 409);
    tokio::time::sleep(Duration::from_millis(500)).await;
    for n in [n1, n3] {
        let muted = heard(
            &format!("{n}/spaces/{id}/live.opus"),
            4,
            &dir.join("muted.wav"),
        );
        assert!(tone_present(&muted, 440.0), "{n}");
        assert!(
            !tone_present(&muted, 660.0),
            "{n}: the muted speaker is out of the mix"
        );
    }
    // One upstream per space per node, however many listeners n1 had.
    assert_eq!(metric(n1, "tribune_cluster_relays_opened_total").await, 1.0);
    // Three listeners on n1 are three more listeners of the space, on its owner and in every
    // listing (not the one connection n1's relay holds on n2).
    let (_, v) = api("GET", &format!("{n2}/api/spaces/{id}"), None, None).await;
    let before = v["listeners"].as_u64().expect("a count");
    let crowd: Vec<_> = (0..3)
        .map(|i| {
            listen(
                &format!("{n1}/spaces/{id}/live.opus"),
                8,
                &dir.join(format!("c{i}.wav")),
            )
        })
        .collect();
    let counted = async |n: &str| {
        eventually(HANG, async || {
            let (_, v) = api("GET", &format!("{n}/api/spaces/{id}"), None, None).await;
            v["listeners"].as_u64() == Some(before + 3)
        })
        .await
    };
    assert!(
        counted(n2).await,
        "the owner counts the cluster's listeners"
    );
    assert!(counted(n3).await, "so does every node's answer");
    for c in crowd {
        assert_continuous(&report(c));
    }
    assert_eq!(metric(n1, "tribune_cluster_relays_opened_total").await, 1.0);

    // A reaction posted to n3 shows in the counts of the event stream held on n1.
    let (s, v) = api(
        "POST",
        &format!("{n3}/api/spaces/{id}/reactions"),
        Some(&ann),
        Some(json!({"counts": {"👏": 3}})),
    )
    .await;
    assert!(s == 202 || s == 204 || s == 200, "{s} {v}");
    let frames = watch.await.unwrap();
    assert_eq!(
        frames.first().map(|f| f.1.as_str()),
        Some("snapshot"),
        "{frames:?}"
    );
    assert!(
        frames
            .iter()
            .any(|(_, e, d)| e == "reactions" && d["counts"]["👏"].as_u64() >= Some(3)),
        "the reaction reached n1: {frames:?}"
    );
    // Resuming on other nodes with Last-Event-ID misses nothing: the frames after a point are
    // the same on n3 (another mirror) and on n2 (the owner).
    let ids: Vec<u64> = frames.iter().map(|f| f.0).filter(|&i| i > 0).collect();
    let last = ids[ids.len() / 2];
    let want: Vec<u64> = ids.iter().copied().filter(|&i| i > last).collect();
    for n in [n3, n2] {
        let got = sse(
            &format!("{n}/api/spaces/{id}/events"),
            &host,
            Some(last),
            Duration::from_secs(10),
            |f| f.iter().filter(|x| x.0 > 0).count() >= want.len(),
        )
        .await;
        assert_ne!(
            got.first().map(|f| f.1.as_str()),
            Some("snapshot"),
            "{n} resumed: {got:?}"
        );
        let got_ids: Vec<u64> = got.iter().map(|f| f.0).filter(|&i| i > 0).collect();
        assert_eq!(
            &got_ids[..want.len()],
            &want[..],
            "{n}: exactly the frames after {last}"
        );
        let same: Vec<&(u64, String, Value)> = frames.iter().filter(|f| f.0 > last).collect();
        assert_eq!(got[0].2, same[0].2, "{n}: the owner's frames");
    }

    // Ended through n1; the recording read through n3 decodes and holds both speakers.
    let (s, v) = api(
        "POST",
        &format!("{n1}/api/spaces/{id}/end"),
        Some(&host),
        None,
    )
    .await;
    assert_eq!((s, v["state"].as_str()), (200, Some("ended")), "{v}");
    let _ = (a.kill(), b.kill(), a.wait(), b.wait());
    let rec = reqwest::get(format!("{n3}/spaces/{id}/recording.opus"))
        .await
        .unwrap();
    assert_eq!(rec.status().as_u16(), 200);
    let path = dir.join("recording.opus");
    std::fs::write(&path, rec.bytes().await.unwrap()).unwrap();
    let (_, clean, log) = ffmpeg_check(&path);
    assert!(clean, "{log}");
    let pcm = ffmpeg_decode(&path);
    assert!(tone_present(&pcm, 440.0) && tone_present(&pcm, 660.0));
    let r = reqwest::get(format!("{n1}/spaces/{id}/live.opus"))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 410, "ended, through any node");
    // The owner's durable state, shared in Redis: the record as its SQLite holds it, the
    // timeline of who spoke.
    let shared = eventually(HANG, async || {
        let (record, rows) = shared_state(redis.port, &id);
        record["state"] == "ended" && record["ended_at"].is_u64() && rows >= 2
    })
    .await;
    assert!(
        shared,
        "the shared state: {:?}",
        shared_state(redis.port, &id)
    );
    let (record, _) = shared_state(redis.port, &id);
    assert_eq!(record["title"], "everywhere");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_redis_mid_space_takes_nothing_off_the_air() {
    let (mut redis, nodes, id, host) = common::cluster::cluster_with_space(
        "cluster-loss",
        3,
        &["--grace", "60"],
        (0, "n2"),
        "outage",
    )
    .await;
    let (n1, n2, n3) = (&nodes[0].base, &nodes[1].base, &nodes[2].base);
    let dir = nodes[0].data_dir.clone();
    let alice = mint(n3, &id, &host, "speaker", "Alice").await;
    let speaker = speak(
        &format!("{n3}/api/spaces/{id}/whip"),
        &alice,
        440,
        36,
        &dir.join("a.wav"),
    );
    wait_speakers(n2, 1).await;
    // Listeners on the owner and on a relaying node, through the whole outage.
    const SECS: u32 = 30;
    let on_owner = listen(
        &format!("{n2}/spaces/{id}/live.opus"),
        SECS,
        &dir.join("owner.wav"),
    );
    let on_relay = listen(
        &format!("{n1}/spaces/{id}/live.opus"),
        SECS,
        &dir.join("relay.wav"),
    );
    tokio::time::sleep(Duration::from_secs(3)).await;

    redis.kill();
    let t_down = std::time::Instant::now();
    // What needs Redis says to come back: placing a space, and a space no node here knows.
    let refused = eventually(HANG, async || {
        let r = reqwest::Client::new()
            .post(format!("{n1}/api/spaces"))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .expect("POST /api/spaces");
        r.status().as_u16() == 503 && r.headers().contains_key("retry-after")
    })
    .await;
    assert!(refused, "placement needs Redis: 503 with Retry-After");
    let r = reqwest::get(format!("{n3}/api/spaces/never-seen"))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 503, "whose it is cannot be known now");
    assert!(r.headers().contains_key("retry-after"));
    // What this node already knows keeps working: the space through every node.
    for n in [n1, n3] {
        let (s, v) = api("GET", &format!("{n}/api/spaces/{id}"), None, None).await;
        assert_eq!((s, v["state"].as_str()), (200, Some("live")), "{n}: {v}");
    }
    let left = Duration::from_secs(20).saturating_sub(t_down.elapsed());
    tokio::time::sleep(left).await;
    redis.restart().expect("redis-server again");

    // Healed by itself: placement works again, and the empty Redis learns who runs what.
    let placed = eventually(HANG, async || {
        let (s, _) = api("POST", &format!("{n1}/api/spaces"), Some(ADMIN_KEY), None).await;
        s == 201
    })
    .await;
    assert!(placed, "placement after Redis came back");
    let known = eventually(HANG, async || {
        let (s, v) = api("GET", &format!("{n3}/api/spaces"), None, None).await;
        s == 200
            && v["spaces"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x["id"] == id.as_str()))
    })
    .await;
    assert!(known, "the owner wrote its space back");

    // Nobody lost audio: the owner's listener and the relayed one, continuous all along.
    for (what, l) in [("owner", on_owner), ("relay", on_relay)] {
        let r = report(l);
        assert_continuous(&r);
        let samples = r["samples"].as_u64().unwrap_or(0);
        assert!(
            samples >= 48_000 * u64::from(SECS - 1),
            "{what}: the whole time: {r}"
        );
    }
    wait_ok(speaker, "the speaker, on air through the outage");
    let (s, v) = api(
        "POST",
        &format!("{n3}/api/spaces/{id}/end"),
        Some(&host),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    // The restarted Redis was empty: the owner's next writes copied its state whole again.
    let shared = eventually(HANG, async || {
        let (record, rows) = shared_state(redis.port, &id);
        record["state"] == "ended" && rows >= 1
    })
    .await;
    assert!(
        shared,
        "the shared state again: {:?}",
        shared_state(redis.port, &id)
    );
    let rec = reqwest::get(format!("{n1}/spaces/{id}/recording.opus"))
        .await
        .unwrap();
    let path = dir.join("recording.opus");
    std::fs::write(&path, rec.bytes().await.unwrap()).unwrap();
    let (secs, clean, log) = ffmpeg_check(&path);
    assert!(clean, "{log}");
    assert!(secs >= 30.0, "the recording spans the outage: {secs} s");
    assert!(tone_present(&ffmpeg_decode(&path), 440.0));
    for n in [n1, n2, n3] {
        let (s, _) = api("GET", &format!("{n}/healthz"), None, None).await;
        assert_eq!(s, 200, "{n} never exited");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_following_on_another_node_is_present() {
    let (_redis, nodes, id, host) = common::cluster::cluster_with_space(
        "cluster-host",
        3,
        &["--grace", "60", "--host-absence", "2"],
        (0, "n2"),
        "present",
    )
    .await;
    let (n1, n2, n3) = (&nodes[0].base, &nodes[1].base, &nodes[2].base);
    let dir = nodes[0].data_dir.clone();
    let alice = mint(n1, &id, &host, "speaker", "Alice").await;
    let mut a = speak(
        &format!("{n1}/api/spaces/{id}/whip"),
        &alice,
        440,
        60,
        &dir.join("a.wav"),
    );
    wait_speakers(n2, 1).await;
    let (_, space) = api("GET", &format!("{n2}/api/spaces/{id}"), None, None).await;
    let alice_sub = space["speakers"][0]["sub"]
        .as_str()
        .expect("Alice on stage")
        .to_owned();
    let (s, v) = api(
        "POST",
        &format!("{n3}/api/spaces/{id}/stage/cohost"),
        Some(&host),
        Some(json!({"sub": alice_sub})),
    )
    .await;
    assert_eq!(s, 204, "{v}");
    // The host follows on n3 only (no session, no command): the owner must know it is there.
    let follow = {
        let url = format!("{n3}/api/spaces/{id}/events");
        let host = host.clone();
        tokio::spawn(async move { sse(&url, &host, None, Duration::from_secs(8), |_| false).await })
    };
    // Past the host-absence time (2 s) and a report round (2 s): a host without a stream would
    // be absent by now.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (s, v) = api(
        "POST",
        &format!("{n1}/api/spaces/{id}/stage/takeover"),
        Some(&alice),
        None,
    )
    .await;
    assert_eq!(
        s, 409,
        "no takeover while the host follows on another node: {v}"
    );
    let frames = follow.await.unwrap();
    assert_eq!(frames.first().map(|f| f.1.as_str()), Some("snapshot"));
    // The host's stream closed: gone after the absence time, and the co-host may take over.
    let took = eventually(HANG, async || {
        api(
            "POST",
            &format!("{n1}/api/spaces/{id}/stage/takeover"),
            Some(&alice),
            None,
        )
        .await
        .0 == 204
    })
    .await;
    assert!(took, "the co-host takes over once the host is gone");
    let _ = (a.kill(), a.wait());
}
