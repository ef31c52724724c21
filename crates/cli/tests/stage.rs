//! The stage end to end, with real processes: a scheduled space with a listener waiting in it,
//! go live, a raised hand approved, the new speaker heard, muted by the host, a speaker moved
//! back to the audience (session closed, old token refused), the host gone and a co-host taking
//! over, the end, the recording and the speaking timeline.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tribune_client::listen::analyze_wav;
use tribune_client::tones::tone_present;

/// Collect a space's server-sent events until the stream ends: (id, event, data).
/// The event stream's URL with a ticket bought with `token`.
async fn events_url(base: &str, id: &str, token: &str) -> String {
    let (s, t) = api(
        "POST",
        &format!("{base}/api/spaces/{id}/events/ticket"),
        Some(token),
        None,
    )
    .await;
    assert_eq!(s, 201, "{t}");
    assert_eq!(t["expires_in"], 60);
    let ticket = t["ticket"].as_str().expect("a ticket");
    format!("{base}/api/spaces/{id}/events?ticket={ticket}")
}

fn subscribe(url: String) -> tokio::task::JoinHandle<Vec<(u64, String, Value)>> {
    tokio::spawn(async move {
        let resp = reqwest::get(&url).await.expect("events");
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        let mut body = resp.bytes_stream();
        let mut buf = String::new();
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            let Ok(Some(Ok(chunk))) =
                tokio::time::timeout(Duration::from_secs(30), body.next()).await
            else {
                break;
            };
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buf.find("\n\n") {
                let block: String = buf.drain(..end + 2).collect();
                let (mut id, mut ev, mut data) = (0, String::new(), Value::Null);
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id: ") {
                        id = v.parse().unwrap_or(0);
                    } else if let Some(v) = line.strip_prefix("event: ") {
                        ev = v.to_owned();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data = serde_json::from_str(v).expect("event data is JSON");
                    }
                }
                if !ev.is_empty() {
                    out.push((id, ev, data));
                }
            }
        }
        out
    })
}

async fn stage(base: &str, id: &str, token: &str, action: &str, sub: Option<&str>) -> (u16, Value) {
    let body = sub.map(|s| json!({ "sub": s }));
    api(
        "POST",
        &format!("{base}/api/spaces/{id}/stage/{action}"),
        Some(token),
        body,
    )
    .await
}

/// Listen for `secs` seconds and return the audio after the first 1.5 s (the burst of the
/// past that every new listener gets first).
fn listen_now(base: &str, id: &str, secs: u32, out: &std::path::Path) -> Vec<f32> {
    let r = report(listen(&format!("{base}/spaces/{id}/live.opus"), secs, out));
    assert_continuous(&r);
    let pcm = analyze_wav(out).unwrap();
    pcm[(48_000 * 3 / 2).min(pcm.len())..].to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stage_from_schedule_to_replay() {
    let server = ServerProc::start(
        "stage",
        &["--ice-timeout", "3", "--host-absence", "2", "--grace", "60"],
    );
    let base = server.base.clone();
    let dir = server.data_dir.clone();

    // Scheduled: a listener waits in it, on the Ogg stream and on the event stream.
    let starts_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let (s, v) = api(
        "POST",
        &format!("{base}/api/spaces"),
        Some(ADMIN_KEY),
        Some(json!({"title": "Stage <b>night</b>", "starts_at": starts_at})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["state"], "scheduled");
    assert_eq!(
        v["title"], "Stage <b>night</b>",
        "stored and served as data, never markup"
    );
    let id = v["id"].as_str().unwrap().to_owned();
    let host = v["host_token"].as_str().unwrap().to_owned();
    let host_sub = v["host_sub"].as_str().unwrap().to_owned();
    let early = listen(
        &format!("{base}/spaces/{id}/live.opus"),
        30,
        &dir.join("early.wav"),
    );
    let (s, watcher) = api(
        "POST",
        &format!("{base}/api/spaces/{id}/join"),
        None,
        Some(json!({"name": "Watcher"})),
    )
    .await;
    assert_eq!(s, 200, "{watcher}");
    let wtok = watcher["token"].as_str().unwrap();
    // As the web page does: trade the token (in a header) for a one-minute ticket for the URL.
    let events_a = subscribe(events_url(&base, &id, wtok).await);
    let events_b = subscribe(events_url(&base, &id, ADMIN_KEY).await);
    // Publishing before the start is refused (409: not live yet).
    let (s, _) = stage(&base, &id, &host, "token", None).await;
    assert!(s == 201 || s == 409, "stage token before start: {s}");
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Go live; the host speaks 440 Hz.
    let (s, v) = api(
        "POST",
        &format!("{base}/api/spaces/{id}/start"),
        Some(&host),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["state"], "live");
    let whip = format!("{base}/api/spaces/{id}/whip");
    let mut host_proc = speak(&whip, &host, 440, 60, &dir.join("host.wav"));
    wait_speakers(&base, 1).await;

    // A listener raises a hand, is approved, takes its speaker token and speaks 660 Hz.
    let (s, guest) = api(
        "POST",
        &format!("{base}/api/spaces/{id}/join"),
        None,
        Some(json!({"name": "Guest"})),
    )
    .await;
    assert_eq!(s, 200);
    let gtok = guest["token"].as_str().unwrap().to_owned();
    let gsub = guest["sub"].as_str().unwrap().to_owned();
    let (s, _) = stage(&base, &id, &gtok, "token", None).await;
    assert_eq!(s, 403, "no speaker token before approval");
    assert_eq!(stage(&base, &id, &gtok, "raise-hand", None).await.0, 204);
    let (s, v) = stage(&base, &id, &gtok, "approve", Some(&gsub)).await;
    assert_eq!(s, 403, "a listener may not approve: {v}");
    assert!(
        v["message"].as_str().unwrap().contains("rule"),
        "403 names the rule: {v}"
    );
    assert_eq!(
        stage(&base, &id, &host, "approve", Some(&gsub)).await.0,
        204
    );
    let (s, v) = stage(&base, &id, &gtok, "token", None).await;
    assert_eq!(s, 201, "{v}");
    let guest_speaker = v["token"].as_str().unwrap().to_owned();
    let mut guest_proc = speak(&whip, &guest_speaker, 660, 60, &dir.join("guest.wav"));
    // A third speaker, minted by the operator for an application's own user: 880 Hz.
    let ctok = mint(&base, &id, ADMIN_KEY, "speaker", "Carol").await;
    let (_, cinfo) = api("GET", &format!("{base}/api/spaces/{id}"), None, None).await;
    let _ = cinfo;
    let mut carol_proc = speak(&whip, &ctok, 880, 60, &dir.join("carol.wav"));
    wait_speakers(&base, 3).await;
    let all = listen_now(&base, &id, 4, &dir.join("all.wav"));
    assert!(tone_present(&all, 440.0) && tone_present(&all, 660.0) && tone_present(&all, 880.0));

    // The host mutes the guest: 660 Hz leaves the listener stream.
    assert_eq!(stage(&base, &id, &host, "mute", Some(&gsub)).await.0, 204);
    let (s, _) = stage(&base, &id, &guest_speaker, "unmute", None).await;
    assert_eq!(s, 409, "a host mute is not lifted by the speaker");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let muted = listen_now(&base, &id, 4, &dir.join("muted.wav"));
    assert!(tone_present(&muted, 440.0) && tone_present(&muted, 880.0));
    assert!(
        !tone_present(&muted, 660.0),
        "the muted guest is out of the mix"
    );

    // Carol is moved back to the audience: her session closes at once, her token cannot publish.
    let (_, space) = api("GET", &format!("{base}/api/spaces/{id}"), None, None).await;
    let carol_sub = space["speakers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "Carol")
        .expect("Carol on stage")["sub"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        stage(&base, &id, &host, "audience", Some(&carol_sub))
            .await
            .0,
        204
    );
    wait_speakers(&base, 2).await;
    let r = reqwest::Client::new()
        .post(&whip)
        .bearer_auth(&ctok)
        .header("content-type", "application/sdp")
        .body("v=0")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        403,
        "a demoted speaker's old token cannot publish"
    );
    let _ = carol_proc.kill();
    let _ = carol_proc.wait();

    // The host names the guest co-host, then vanishes; the co-host takes over and ends.
    assert_eq!(stage(&base, &id, &host, "cohost", Some(&gsub)).await.0, 204);
    let (s, _) = stage(&base, &id, &guest_speaker, "takeover", None).await;
    assert_eq!(s, 409, "no takeover while the host is here");
    let _ = host_proc.kill();
    let _ = host_proc.wait();
    let took_over = eventually(Duration::from_secs(30), async || {
        stage(&base, &id, &guest_speaker, "takeover", None).await.0 == 204
    })
    .await;
    assert!(took_over, "the co-host takes over once the host is gone");
    let (_, v) = api("GET", &format!("{base}/api/spaces/{id}"), None, None).await;
    assert_eq!(v["host"], gsub.as_str());
    let (s, v) = api(
        "POST",
        &format!("{base}/api/spaces/{id}/end"),
        Some(&guest_speaker),
        None,
    )
    .await;
    assert_eq!(s, 200, "the new host ends the space: {v}");
    let (s, _) = stage(&base, &id, wtok, "raise-hand", None).await;
    assert_eq!(s, 409, "acting on an ended space");
    let _ = guest_proc.kill();
    let _ = guest_proc.wait();

    // The early listener heard the start without reconnecting.
    let early = report(early);
    assert_continuous(&early);
    let early_pcm = analyze_wav(dir.join("early.wav")).unwrap();
    assert!(
        tone_present(&early_pcm, 440.0),
        "the waiting listener heard the show"
    );

    // Everyone saw the same events, in order.
    let a = events_a.await.unwrap();
    let b = events_b.await.unwrap();
    let ids = |v: &[(u64, String, Value)]| {
        v.iter()
            .filter(|e| e.0 > 0)
            .map(|e| e.0)
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&a), ids(&b), "subscribers see the same sequence");
    assert_eq!(a[0].1, "snapshot");
    let kinds: Vec<&str> = a.iter().map(|e| e.1.as_str()).collect();
    let order = [
        "state",
        "hand_raised",
        "approved",
        "muted",
        "moved_to_audience",
        "cohost_named",
        "host_changed",
    ];
    let mut pos = 0;
    for k in order {
        let found = kinds[pos..].iter().position(|x| *x == k);
        assert!(
            found.is_some(),
            "event {k} after position {pos} in {kinds:?}"
        );
        pos += found.unwrap_or(0);
    }
    assert!(kinds.contains(&"levels") && kinds.contains(&"stage") && kinds.contains(&"listeners"));
    assert_eq!(
        a.last().map(|e| e.2["lifecycle"].clone()),
        Some(json!("ended")),
        "last event: ended"
    );

    // The recording is served; the timeline names who spoke.
    let r = reqwest::get(format!("{base}/spaces/{id}/recording.opus"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let rec = dir.join("recordings").join(format!("{id}.opus"));
    let (_, clean, errors) = ffmpeg_check(&rec);
    assert!(clean, "{errors}");
    let (s, tl) = api(
        "GET",
        &format!("{base}/api/spaces/{id}/timeline"),
        None,
        None,
    )
    .await;
    assert_eq!(s, 200);
    let segs = tl["segments"].as_array().unwrap();
    let spoke = |sub: &str| segs.iter().filter(|s| s["sub"] == sub).count();
    assert!(spoke(&host_sub) > 0, "host in the timeline: {tl}");
    assert!(spoke(&gsub) > 0, "guest in the timeline: {tl}");
    assert!(spoke(&carol_sub) > 0, "Carol in the timeline: {tl}");
    assert!(
        segs.iter()
            .all(|s| s["end_ms"].as_u64() >= s["start_ms"].as_u64())
    );
}

/// A space nobody ever takes the stage in ends by itself after the grace period, counted from
/// when it went live (here: created live), and says so on its event stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_space_nobody_takes_the_stage_in_ends_after_the_grace() {
    let server = ServerProc::start("grace-empty", &["--grace", "2"]);
    let base = server.base.clone();
    let (id, host) = create_space(&base, "nobody speaks").await;
    let events = subscribe(events_url(&base, &id, &host).await);
    let url = format!("{base}/api/spaces/{id}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut state = String::new();
    while Instant::now() < deadline {
        let (s, v) = api("GET", &url, None, None).await;
        assert_eq!(s, 200, "{v}");
        state = v["state"].as_str().unwrap_or_default().to_owned();
        if state == "ended" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        state, "ended",
        "the space should end after --grace with nobody on stage"
    );
    let got = events.await.unwrap();
    assert!(
        got.iter()
            .any(|(_, e, d)| e == "state" && d["lifecycle"] == "ended"),
        "{got:?}"
    );
}
