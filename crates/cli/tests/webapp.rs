//! The web app as the server serves it (the browser test in tests/browser drives it for real):
//! pages and assets embedded and complete, caching and compression, and the API it relies on
//! beyond the basics — the audience list for invitations, leaving the stage, and the listener cap
//! whose refusals the host's page shows.

mod common;

use std::collections::BTreeSet;
use std::io::Read;
use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use serde_json::{Value, json};

async fn get(url: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let c = reqwest::Client::new();
    let mut r = c.get(url);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.send().await.expect("request")
}

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

/// Relative module specifiers in a script: `from './x.js'` and `import('./x.js')`.
fn imports(js: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for quote in ['\'', '"'] {
        for pat in [format!("from {quote}./"), format!("import({quote}./")] {
            let mut rest = js;
            while let Some(i) = rest.find(&pat) {
                rest = &rest[i + pat.len()..];
                if let Some(end) = rest.find(quote) {
                    out.insert(rest[..end].to_owned());
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_and_assets() {
    let server = ServerProc::start("webapp-pages", &[]);
    let base = server.base.clone();
    let (id, _host) = create_space(&base, "web").await;

    // The shell: every page route, 404 for an unknown space (the app says so itself). It names
    // one build's files; a 200 may be cached a few seconds, a 404 not at all.
    let mut build = String::new();
    for (path, status) in [
        ("/".to_owned(), 200),
        (format!("/spaces/{id}"), 200),
        (format!("/spaces/{id}/replay"), 200),
        ("/spaces/nope".to_owned(), 404),
        ("/spaces/nope/replay".to_owned(), 404),
    ] {
        let r = get(&format!("{base}{path}"), &[]).await;
        assert_eq!(r.status().as_u16(), status, "{path}");
        assert!(
            header(&r, "content-type").starts_with("text/html"),
            "{path}"
        );
        let csp = header(&r, "content-security-policy");
        assert!(csp.contains("default-src 'self'"), "{path}: CSP {csp}");
        let cache = header(&r, "cache-control");
        if status == 200 {
            assert_eq!(cache, "public, max-age=5", "{path}");
        } else {
            assert_eq!(cache, "no-cache", "{path}");
        }
        let html = r.text().await.unwrap();
        let at = html
            .find(r#"<script type="module" src="/app/"#)
            .expect("the module script");
        let rest = &html[at + r#"<script type="module" src="/app/"#.len()..];
        let (b, tail) = rest.split_once('/').expect("a build directory");
        assert!(tail.starts_with(r#"app.js">"#), "{rest}");
        assert!(
            b.len() == 16 && b.bytes().all(|c| c.is_ascii_hexdigit()),
            "{b}"
        );
        assert!(build.is_empty() || build == b, "one build");
        build = b.to_owned();
        assert!(html.contains(&format!(r#"href="/app/{build}/app.css""#)));
        assert!(html.contains(r#"<html lang="en">"#));
    }

    // Every module the app imports is served (transitively from app.js), nothing from elsewhere.
    let mut todo = vec!["app.js".to_owned()];
    let mut seen = BTreeSet::new();
    while let Some(f) = todo.pop() {
        if !seen.insert(f.clone()) {
            continue;
        }
        let r = get(&format!("{base}/app/{build}/{f}"), &[]).await;
        assert_eq!(r.status().as_u16(), 200, "/app/{build}/{f}");
        assert!(
            header(&r, "content-type").starts_with("text/javascript"),
            "{f}"
        );
        assert_eq!(
            header(&r, "cache-control"),
            "public, max-age=31536000, immutable",
            "{f}"
        );
        let js = r.text().await.unwrap();
        assert!(
            !js.contains("https://") || f.starts_with("hls."),
            "{f} names a remote URL"
        );
        todo.extend(imports(&js).into_iter().filter(|n| !seen.contains(n)));
    }
    for f in [
        "api.js",
        "ui.js",
        "home.js",
        "space.js",
        "player.js",
        "stage.js",
        "host.js",
        "view.js",
        "moments.js",
        "replay.js",
        "public.js",
        "hls.light.min.mjs",
    ] {
        assert!(seen.contains(f), "{f} not reached from app.js: {seen:?}");
    }
    let r = get(&format!("{base}/app/app.css"), &[]).await;
    assert_eq!(r.status().as_u16(), 200);
    assert!(header(&r, "content-type").starts_with("text/css"));
    let r = get(&format!("{base}/app/hls.js-LICENSE.txt"), &[]).await;
    assert!(r.text().await.unwrap().contains("Apache License"));

    // Compression, revalidation, caching.
    let plain = get(&format!("{base}/app/space.js"), &[]).await;
    let etag = header(&plain, "etag");
    assert!(etag.starts_with('"'), "strong ETag: {etag}");
    assert_eq!(header(&plain, "cache-control"), "no-cache");
    let plain = plain.bytes().await.unwrap();
    let gz = get(
        &format!("{base}/app/space.js"),
        &[("accept-encoding", "gzip, br")],
    )
    .await;
    assert_eq!(header(&gz, "content-encoding"), "gzip");
    // One strong ETag per representation (RFC 9110 §8.8.3).
    let gz_etag = header(&gz, "etag");
    assert_ne!(gz_etag, etag);
    let gz = gz.bytes().await.unwrap();
    assert!(
        gz.len() < plain.len() / 2,
        "{} vs {}",
        gz.len(),
        plain.len()
    );
    let mut back = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut back)
        .unwrap();
    assert_eq!(back, plain);
    let r = get(
        &format!("{base}/app/space.js"),
        &[("if-none-match", etag.as_str())],
    )
    .await;
    assert_eq!(r.status().as_u16(), 304);
    let r = get(
        &format!("{base}/app/space.js"),
        &[
            ("if-none-match", gz_etag.as_str()),
            ("accept-encoding", "gzip"),
        ],
    )
    .await;
    assert_eq!(r.status().as_u16(), 304);
    let r = get(
        &format!("{base}/app/space.js"),
        &[("if-none-match", gz_etag.as_str())],
    )
    .await;
    assert_eq!(
        r.status().as_u16(),
        200,
        "the gzip ETag does not validate identity"
    );
    // Another build's files are not here (and that answer is not cached).
    let r = get(&format!("{base}/app/0000000000000000/space.js"), &[]).await;
    assert_eq!(r.status().as_u16(), 404);
    assert_eq!(header(&r, "cache-control"), "no-store");
    let r = get(&format!("{base}/app/{build}/icon.svg"), &[]).await;
    assert_eq!(r.status().as_u16(), 200);
    let r = get(&format!("{base}/app/{build}/index.html"), &[]).await;
    assert_eq!(r.status().as_u16(), 404);

    // Unknown assets: a JSON 404; the shell is not an asset.
    for f in ["nope.js", "index.html", "..%2Fsrc%2Fweb.rs"] {
        let r = get(&format!("{base}/app/{f}"), &[]).await;
        assert_eq!(r.status().as_u16(), 404, "{f}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"], "not_found", "{v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audience_and_leaving_the_stage() {
    let server = ServerProc::start("webapp-audience", &[]);
    let base = server.base.clone();
    let (id, host) = create_space(&base, "audience").await;
    let sp = format!("{base}/api/spaces/{id}");

    // Listeners who joined are offered to the host, newest first; nobody else may ask.
    let mut listeners = Vec::new();
    for name in ["Ann", "Bob", "Cy"] {
        let (s, v) = api(
            "POST",
            &format!("{sp}/join"),
            None,
            Some(json!({"name": name})),
        )
        .await;
        assert_eq!(s, 200, "{v}");
        listeners.push((
            v["sub"].as_str().unwrap().to_owned(),
            v["token"].as_str().unwrap().to_owned(),
        ));
    }
    let (s, v) = api("GET", &format!("{sp}/audience"), Some(&host), None).await;
    assert_eq!(s, 200, "{v}");
    let names: Vec<&str> = v["audience"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Cy", "Bob", "Ann"], "{v}");
    let (s, v) = api(
        "GET",
        &format!("{sp}/audience"),
        Some(&listeners[0].1),
        None,
    )
    .await;
    assert_eq!(s, 403, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("audience.list"),
        "{v}"
    );
    let (s, _) = api("GET", &format!("{sp}/audience"), Some(ADMIN_KEY), None).await;
    assert_eq!(s, 200);
    let (s, _) = api("GET", &format!("{sp}/audience"), None, None).await;
    assert_eq!(s, 401);

    // Invited from that list, Ann accepts and is on stage: no longer offered. Bob is banned: gone.
    let (ann, ann_tok) = listeners[0].clone();
    let (bob, _) = listeners[1].clone();
    let (s, v) = api(
        "POST",
        &format!("{sp}/stage/invite"),
        Some(&host),
        Some(json!({"sub": ann})),
    )
    .await;
    assert_eq!(s, 204, "{v}");
    let (s, v) = api("POST", &format!("{sp}/stage/accept"), Some(&ann_tok), None).await;
    assert_eq!(s, 204, "{v}");
    let (s, v) = api(
        "POST",
        &format!("{sp}/stage/ban"),
        Some(&host),
        Some(json!({"sub": bob})),
    )
    .await;
    assert_eq!(s, 204, "{v}");
    let (_, v) = api("GET", &format!("{sp}/audience"), Some(&host), None).await;
    let subs: Vec<&str> = v["audience"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["sub"].as_str().unwrap())
        .collect();
    assert!(!subs.contains(&ann.as_str()), "on stage: {v}");
    assert!(!subs.contains(&bob.as_str()), "banned: {v}");
    assert!(subs.contains(&listeners[2].0.as_str()), "{v}");

    // Ann steps down by herself: back in the audience, she may raise a hand again.
    let (s, v) = api("POST", &format!("{sp}/stage/leave"), Some(&ann_tok), None).await;
    assert_eq!(s, 204, "{v}");
    let (_, v) = api("GET", &format!("{sp}/audience"), Some(&host), None).await;
    assert!(
        v["audience"].to_string().contains(&ann),
        "off the stage, offered again: {v}"
    );
    let (s, v) = api("POST", &format!("{sp}/stage/leave"), Some(&ann_tok), None).await;
    assert_eq!(s, 403, "a listener has no stage to leave: {v}");
    let (s, v) = api(
        "POST",
        &format!("{sp}/stage/raise-hand"),
        Some(&ann_tok),
        None,
    )
    .await;
    assert_eq!(s, 204, "{v}");
    // The host does not step down (they end the space instead).
    let (s, v) = api("POST", &format!("{sp}/stage/leave"), Some(&host), None).await;
    assert_eq!(s, 403, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("stage.leave"),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_cap_turns_away_cleanly_and_the_host_sees_it() {
    let server = ServerProc::start("webapp-cap", &["--max-listeners", "2"]);
    let base = server.base.clone();
    let (id, host) = create_space(&base, "full house").await;
    let live = format!("{base}/spaces/{id}/live.opus");

    // The host's event stream, read in the background.
    let events = reqwest::Client::new()
        .get(format!("{base}/api/spaces/{id}/events"))
        .bearer_auth(&host)
        .send()
        .await
        .unwrap();
    assert_eq!(events.status().as_u16(), 200);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        let mut body = events.bytes_stream();
        while let Some(Ok(chunk)) = body.next().await {
            if tx
                .send(String::from_utf8_lossy(&chunk).into_owned())
                .is_err()
            {
                return;
            }
        }
    });

    // Two listeners in and streaming.
    let mut held = Vec::new();
    for _ in 0..2 {
        let r = get(&live, &[]).await;
        assert_eq!(r.status().as_u16(), 200);
        let mut body = r.bytes_stream();
        let first = body.next().await.expect("bytes").expect("bytes");
        assert!(first.starts_with(b"OggS"));
        held.push(body);
    }
    // The third is refused with a precise, honest answer: its place in line and a ticket.
    let r = get(&live, &[]).await;
    assert_eq!(r.status().as_u16(), 503);
    let wait: u64 = header(&r, "retry-after")
        .parse()
        .expect("Retry-After seconds");
    assert!((2..=30).contains(&wait), "{wait}");
    assert!(
        header(&r, "link").contains(&format!("/spaces/{id}/hls/index.m3u8")),
        "{}",
        header(&r, "link")
    );
    assert_eq!(header(&r, "tribune-position"), "1");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "waiting_room", "{v}");
    assert_eq!(v["position"], 1, "{v}");
    let third = v["ticket"].as_str().expect("a ticket").to_owned();
    assert!(metric(&base, "tribune_listeners_refused_full_total").await >= 1.0);

    // A fourth is second in line; a forged ticket is no better than none.
    let r = get(&live, &[]).await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["error"].as_str(), v["position"].as_u64()),
        (Some("waiting_room"), Some(2))
    );
    let fourth = v["ticket"].as_str().expect("a ticket").to_owned();
    // (The third holds ticket 0: the fourth's ticket with number 0 is a forgery.)
    let forged = format!("0.{}", fourth.split_once('.').unwrap().1);
    let r = get(&format!("{live}?ticket={forged}"), &[]).await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["position"], 3, "{v}");
    assert_eq!(metric(&base, "tribune_waiting").await, 3.0);

    // Those already in keep streaming.
    for body in &mut held {
        let more = tokio::time::timeout(std::time::Duration::from_secs(5), body.next())
            .await
            .expect("still streaming")
            .expect("bytes")
            .expect("bytes");
        assert!(!more.is_empty());
    }

    // One leaves: the place is kept for the first in line, not for the fourth...
    drop(held.pop());
    let freed = eventually(std::time::Duration::from_secs(10), async || {
        metric(&base, "tribune_listeners").await == 1.0
    })
    .await;
    assert!(freed, "the server did not notice the listener leave");
    let r = get(&format!("{live}?ticket={fourth}"), &[]).await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["error"].as_str(), v["position"].as_u64()),
        (Some("waiting_room"), Some(1))
    );
    let r = get(&live, &[]).await;
    assert_eq!(
        r.status().as_u16(),
        503,
        "a newcomer does not jump the line"
    );
    // ...who comes back with its ticket (in a header this time) and gets audio.
    let r = get(&live, &[("tribune-ticket", third.as_str())]).await;
    assert_eq!(r.status().as_u16(), 200);
    let mut body = r.bytes_stream();
    let first = body.next().await.expect("bytes").expect("bytes");
    assert!(first.starts_with(b"OggS"));
    held.push(body);

    // The host's page learns that the room turned someone away.
    let mut seen = String::new();
    let found = eventually(std::time::Duration::from_secs(10), async || {
        while let Ok(s) = rx.try_recv() {
            seen.push_str(&s);
        }
        let turned_away = seen
            .split("\"turned_away_last_minute\":")
            .skip(1)
            .filter_map(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .filter_map(|n| n.parse::<u64>().ok())
            .max()
            .unwrap_or(0);
        seen.contains("\"under_load\":true") && turned_away >= 1 && seen.contains("\"waiting\":")
    })
    .await;
    assert!(found, "no listeners event with the refusal: {seen}");
}

/// The public snapshot every listener page starts from: one document for everyone, cacheable,
/// revalidated by ETag, gzip; the anonymous count beacon; reactions in batches, their totals in
/// the snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_snapshot_beacon_and_batched_reactions() {
    let server = ServerProc::start("webapp-public", &[]);
    let base = server.base.clone();
    let (id, host) = create_space(&base, "public").await;
    let snap_url = format!("{base}/spaces/{id}/snapshot.json");

    let r = get(&snap_url, &[]).await;
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(header(&r, "cache-control"), "public, max-age=1");
    assert!(header(&r, "content-type").starts_with("application/json"));
    let etag = header(&r, "etag");
    assert!(etag.starts_with('"'), "strong ETag: {etag}");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["v"], 1);
    assert_eq!(v["id"], id.as_str());
    assert_eq!(v["title"], "public");
    assert_eq!(v["lifecycle"], "live");
    assert!(v["stage"].is_array() && v["invited"].is_array(), "{v}");
    assert!(v["listeners"].is_u64() && v["reactions"].is_object(), "{v}");
    assert_eq!(v["count"]["sample_log2"], 0);
    assert_eq!(v["count"]["interval_s"], 30);
    for k in [
        "live",
        "hls",
        "recording",
        "replay",
        "whip",
        "events",
        "beacon",
        "reactions",
        "join",
    ] {
        assert!(
            v["urls"][k].as_str().is_some_and(|u| u.contains(&id)),
            "urls.{k}: {v}"
        );
    }
    // Unchanged: a 304 for the ETag; the gzip encoding has its own.
    let r = get(&snap_url, &[("if-none-match", etag.as_str())]).await;
    assert_eq!(r.status().as_u16(), 304);
    let r = get(&snap_url, &[("accept-encoding", "gzip")]).await;
    assert_eq!(header(&r, "content-encoding"), "gzip");
    assert_ne!(header(&r, "etag"), etag);
    let r = get(&format!("{base}/spaces/nope/snapshot.json"), &[]).await;
    assert_eq!(r.status().as_u16(), 404);

    // Beacons: well-formed ids only; anonymous pages are counted.
    let beacon = format!("{base}/api/spaces/{id}/beacon");
    for bad in [
        json!({}),
        json!({"viewer": "abc"}),
        json!({"viewer": "F".repeat(32)}),
        json!({"viewer": 5}),
    ] {
        let (s, b) = api("POST", &beacon, None, Some(bad.clone())).await;
        assert_eq!(s, 400, "{bad}: {b}");
    }
    let (s, _) = api("POST", &beacon, None, None).await;
    assert_eq!(s, 400, "no body");
    let before = metric(&base, "tribune_beacons_total").await;
    for i in 0..40u32 {
        let (s, b) = api(
            "POST",
            &beacon,
            None,
            Some(json!({"viewer": format!("{:08x}{}", 0x8000_0000u32 | i, "0".repeat(24))})),
        )
        .await;
        assert_eq!(s, 204, "{b}");
    }
    assert_eq!(metric(&base, "tribune_beacons_total").await - before, 40.0);
    assert!(
        eventually(Duration::from_secs(5), async || {
            let v: Value = get(&snap_url, &[]).await.json().await.unwrap();
            v["listeners"].as_u64().unwrap_or(0) >= 40
        })
        .await,
        "40 anonymous pages are counted"
    );

    // Reactions: one or a batch of at most 10, counted in the totals.
    let (_, j) = api(
        "POST",
        &format!("{base}/api/spaces/{id}/join"),
        None,
        Some(json!({"name": "Fan"})),
    )
    .await;
    let fan = j["token"].as_str().unwrap().to_owned();
    let react = format!("{base}/api/spaces/{id}/reactions");
    for (body, want) in [
        (json!({"counts": {"👏": 11}}), 400),
        (json!({"counts": {}}), 400),
        (json!({"counts": {"👏": 0}}), 400),
        (json!({"counts": {"🦀": 1}}), 400),
        (json!({"emoji": "👏", "counts": {"👏": 1}}), 400),
        (json!({"counts": {"👏": 3, "❤": 1, "❤️": 1}}), 204),
        (json!({"emoji": "🔥"}), 204),
    ] {
        let (s, b) = api("POST", &react, Some(&fan), Some(body.clone())).await;
        assert_eq!(s, want, "{body}: {b}");
    }
    // 6 of the participant's burst of 10 are spent: a batch of 5 is refused, with Retry-After.
    let r = reqwest::Client::new()
        .post(&react)
        .bearer_auth(&fan)
        .json(&json!({"counts": {"😂": 5}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    assert!(
        header(&r, "retry-after")
            .parse::<u32>()
            .is_ok_and(|s| s >= 1)
    );
    assert!(
        eventually(Duration::from_secs(5), async || {
            let v: Value = get(&snap_url, &[]).await.json().await.unwrap();
            v["reactions"] == json!({"👏": 3, "❤️": 2, "🔥": 1})
        })
        .await,
        "the totals: {}",
        get(&snap_url, &[]).await.text().await.unwrap()
    );

    // Ended: the snapshot says so and may be cached longer; beacons are refused.
    let (s, _) = api(
        "POST",
        &format!("{base}/api/spaces/{id}/end"),
        Some(&host),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert!(
        eventually(Duration::from_secs(5), async || {
            let r = get(&snap_url, &[]).await;
            header(&r, "cache-control") == "public, max-age=300"
                && r.json::<Value>().await.unwrap()["lifecycle"] == "ended"
        })
        .await
    );
    let (s, _) = api(
        "POST",
        &beacon,
        None,
        Some(json!({"viewer": "f".repeat(32)})),
    )
    .await;
    assert_eq!(s, 409);
}

/// What the pages show about time and text: a scheduled space's `.ics` (RFC 5545, to the
/// letter: CRLF, folded lines, escaped text, UTC times; its link built from the `Host` the
/// client used, `https` only from a trusted proxy or the TLS listener), the start and end times
/// a space carries (kept across a restart), and title limits that count what people see.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calendar_times_and_text_limits() {
    let data = temp_dir("webapp-calendar");
    let mut server = ServerProc::start_in(data.clone(), &[]);
    let base = server.base.clone();
    let starts_at = 1_893_456_000u64; // 2030-01-01T00:00:00Z
    let (s, v) = api(
        "POST",
        &format!("{base}/api/spaces"),
        Some(ADMIN_KEY),
        Some(
            json!({"title": "New year, new show; live", "description": "Line one\nLine two",
            "starts_at": starts_at}),
        ),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_owned();
    assert!(v["started_at"].is_null() && v["ended_at"].is_null(), "{v}");

    let ics_url = format!("{base}/spaces/{id}/calendar.ics");
    let r = get(
        &ics_url,
        &[("host", "rooms.example"), ("x-forwarded-proto", "https")],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), "text/calendar; charset=utf-8");
    assert_eq!(header(&r, "cache-control"), "public, max-age=60");
    assert!(header(&r, "content-disposition").contains(&format!("{id}.ics")));
    let body = r.text().await.unwrap();
    for line in body.split("\r\n") {
        assert!(line.len() <= 75, "line of {} octets: {line:?}", line.len());
        assert!(!line.contains('\n'), "bare LF in {line:?}");
    }
    let lines = tribune_engine::calendar::unfold(&body);
    let prop = |n: &str| tribune_engine::calendar::property(&lines, n, 0).map(str::to_owned);
    assert_eq!(prop("DTSTART").as_deref(), Some("20300101T000000Z"));
    assert_eq!(prop("DTEND").as_deref(), Some("20300101T010000Z"));
    assert_eq!(
        prop("SUMMARY").as_deref(),
        Some("New year\\, new show\\; live")
    );
    // The peer (loopback) is not a trusted proxy here: its X-Forwarded-Proto is not believed.
    assert_eq!(
        prop("URL"),
        Some(format!("http://rooms.example/spaces/{id}"))
    );

    // Live, then ended: the times are on the space, and survive a restart.
    let (s, _) = api(
        "POST",
        &format!("{base}/api/spaces/{id}/start"),
        Some(ADMIN_KEY),
        None,
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = api(
        "POST",
        &format!("{base}/api/spaces/{id}/end"),
        Some(ADMIN_KEY),
        None,
    )
    .await;
    assert_eq!(s, 200);
    let (_, v) = api("GET", &format!("{base}/api/spaces/{id}"), None, None).await;
    let started = v["started_at"].as_u64().expect("started_at");
    let ended = v["ended_at"].as_u64().expect("ended_at");
    assert!(started <= ended, "{v}");
    let (_, snap) = api(
        "GET",
        &format!("{base}/spaces/{id}/snapshot.json"),
        None,
        None,
    )
    .await;
    assert_eq!(snap["started_at"], v["started_at"]);
    assert_eq!(
        snap["urls"]["calendar"],
        format!("/spaces/{id}/calendar.ics")
    );
    // A live space: after the restart it is interrupted, and its host resumes it with the token
    // the first process gave (the signing secret is the data directory's).
    let (live, host_token) = create_space(&base, "goes on").await;
    // Stopped as an operator does (SIGTERM): what it wrote is on disk.
    // SAFETY: signalling our own child by pid.
    unsafe { libc::kill(server.child.id() as i32, libc::SIGTERM) };
    let _ = server.child.wait();
    drop(server);
    server = ServerProc::start_in(data.clone(), &[]);
    let base = server.base.clone();
    let (s, v) = api(
        "POST",
        &format!("{base}/api/spaces/{live}/resume"),
        Some(&host_token),
        None,
    )
    .await;
    assert_eq!(s, 200, "the host's token after a restart: {v}");
    assert_eq!(v["state"], "live");
    let secret = data.join("jwt-secret");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&secret).unwrap().permissions());
    assert_eq!(
        mode & 0o077,
        0,
        "{} is readable by others",
        secret.display()
    );
    let (_, again) = api("GET", &format!("{base}/api/spaces/{id}"), None, None).await;
    assert_eq!(again["started_at"].as_u64(), Some(started), "{again}");
    assert_eq!(again["ended_at"].as_u64(), Some(ended), "{again}");

    // Twenty family emoji are twenty characters; 121 accented letters are too many.
    let family = "👨\u{200d}👩\u{200d}👧\u{200d}👦".repeat(20);
    let (s, v) = api(
        "POST",
        &format!("{base}/api/spaces"),
        Some(ADMIN_KEY),
        Some(json!({"title": family})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["title"], family);
    let (s, v) = api(
        "POST",
        &format!("{base}/api/spaces"),
        Some(ADMIN_KEY),
        Some(json!({"title": "é".repeat(121)})),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["message"], "title is longer than 120 characters");
}
