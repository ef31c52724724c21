//! LL-HLS across a restart, end to end: a space speaks 440 Hz, the server is stopped (SIGTERM),
//! restarted on the same data directory and resumed, and speaks 660 Hz. Every HLS object ever
//! listed (init, parts, segments) is fetched before and after: no URL serves two bodies, no
//! `ETag` names two bodies. The replay (`dvr.m3u8`) holds the whole space, both runs with an
//! `EXT-X-DISCONTINUITY` between them, passes the validator and decodes with ffmpeg to both
//! tones, each in its own run.
//!
//! Also the HTTP rules of the rendition: `audio/mp4`, one URL per object (non-canonical numbers
//! are 404, non-canonical directives 400), playlists gzipped when accepted, with
//! `Vary: Accept-Encoding` and an `ETag` per encoding.

mod common;

use std::collections::HashMap;
use std::io::Read as _;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::playlists::*;
use common::*;
use tribune_client::tones::tone_present;
use tribune_media::hls::validate::{self, MediaPlaylist};

const SECRET: [&str; 2] = ["--jwt-secret", "hls-restart-secret"];

/// Every body served under each URL, and every body named by each `ETag`.
#[derive(Default)]
struct Seen {
    by_url: HashMap<String, Bytes>,
    by_etag: HashMap<String, (String, Bytes)>,
    fetched: usize,
}

impl Seen {
    /// Fetch `uri` (relative to the rendition); a 200 must repeat what the URL and its ETag
    /// served before. Returns whether it was there.
    async fn fetch(&mut self, hls: &str, uri: &str) -> bool {
        let (s, h, body) = get(&format!("{hls}/{uri}")).await;
        if s != 200 {
            return false;
        }
        self.fetched += 1;
        assert_eq!(h["content-type"], "audio/mp4", "{uri}");
        assert!(
            h["cache-control"].to_str().unwrap().contains("immutable"),
            "{uri}"
        );
        let etag = h["etag"].to_str().expect("etag").to_owned();
        if let Some(old) = self.by_url.get(uri) {
            assert!(
                *old == body,
                "{uri} served two different bodies ({} and {} bytes)",
                old.len(),
                body.len()
            );
        }
        if let Some((other, old)) = self.by_etag.get(&etag) {
            assert!(
                *old == body,
                "ETag {etag} names two bodies ({other} and {uri})"
            );
        }
        self.by_url.insert(uri.to_owned(), body.clone());
        self.by_etag.insert(etag, (uri.to_owned(), body));
        true
    }

    /// Fetch everything the playlists list now: init, every segment of `dvr.m3u8`, every
    /// segment and part of `live.m3u8`, and the hinted part once it exists.
    async fn crawl(&mut self, hls: &str) -> (MediaPlaylist, MediaPlaylist) {
        let live = playlist(&format!("{hls}/live.m3u8")).await;
        let dvr = playlist(&format!("{hls}/dvr.m3u8")).await;
        assert!(self.fetch(hls, "init.mp4").await, "init.mp4");
        let mut uris: Vec<String> = dvr.segments.iter().map(|s| s.uri.clone()).collect();
        for s in &live.segments {
            uris.push(s.uri.clone());
            uris.extend(s.parts.iter().map(|p| p.uri.clone()));
        }
        uris.extend(live.trailing_parts.iter().map(|p| p.uri.clone()));
        uris.extend(live.preload_hints.iter().map(|h| h.uri.clone()));
        for u in uris {
            self.fetch(hls, &u).await;
        }
        (live, dvr)
    }

    /// Fetch again every URL seen so far (those still served must not have changed).
    async fn refetch_all(&mut self, hls: &str) -> usize {
        let uris: Vec<String> = self.by_url.keys().cloned().collect();
        let mut again = 0;
        for u in uris {
            again += usize::from(self.fetch(hls, &u).await);
        }
        again
    }
}

/// Crawl every 700 ms (so every part of the open segment is seen while listed) until `child`
/// exits; returns the last playlists.
async fn crawl_while(
    seen: &mut Seen,
    hls: &str,
    child: &mut std::process::Child,
) -> (MediaPlaylist, MediaPlaylist) {
    loop {
        let last = seen.crawl(hls).await;
        if child.try_wait().expect("try_wait").is_some() {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
}

fn sigterm(server: &mut ServerProc) {
    let pid = server.child.id() as libc::pid_t;
    // SAFETY: sending a signal to our own child process.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
    assert_eq!(rc, 0);
    assert!(server.child.wait().expect("wait").success(), "clean exit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_every_hls_url_and_the_whole_replay() {
    // Run 1: 440 Hz.
    let t0 = Instant::now();
    let mut server = ServerProc::start("hls-restart", &SECRET);
    let dir = server.data_dir.clone();
    let (id, host) = create_space(&server.base, "restart").await;
    let tok = mint(&server.base, &id, &host, "speaker", "A").await;
    let mut a = speak(
        &format!("{}/api/spaces/{id}/whip", server.base),
        &tok,
        440,
        7,
        &dir.join("a.wav"),
    );
    let hls = format!("{}/spaces/{id}/hls", server.base);
    let mut seen = Seen::default();
    crawl_while(&mut seen, &hls, &mut a).await;
    wait_ok(a, "first speaker");
    let (_, dvr1) = seen.crawl(&hls).await;
    sigterm(&mut server);
    let first_run = t0.elapsed().as_secs_f64();
    let run1_segments = dvr1.segments.len() as u64;
    assert!(run1_segments >= 3, "{run1_segments} segments in run 1");

    // Run 2: restart on the same data directory, resume, 660 Hz.
    let t1 = Instant::now();
    let server = ServerProc::start_in(dir.clone(), &SECRET);
    let base = server.base.clone();
    let hls = format!("{base}/spaces/{id}/hls");
    // Before the resume: every object of run 1 still there is the same object.
    let again = seen.refetch_all(&hls).await;
    assert!(
        again >= run1_segments as usize,
        "run 1's segments are still served ({again})"
    );
    let live = playlist(&format!("{hls}/live.m3u8")).await;
    assert!(
        live.next_msn() >= run1_segments,
        "numbering goes on after a restart: next msn {} after {run1_segments} segments",
        live.next_msn()
    );
    // live.m3u8 lists run 1's last segments, then the discontinuity where run 2 starts.
    assert!(
        eventually(Duration::from_secs(10), async || {
            let p = playlist(&format!("{hls}/live.m3u8")).await;
            let listed = p.segments.iter().any(|s| s.discontinuity);
            (listed || p.trailing_discontinuity) && p.media_sequence == 0
        })
        .await,
        "live.m3u8 shows the restart as EXT-X-DISCONTINUITY"
    );
    let (s, v) = api(
        "POST",
        &format!("{base}/api/spaces/{id}/resume"),
        Some(&host),
        None,
    )
    .await;
    assert_eq!(s, 200, "resume: {v}");
    let mut b = speak(
        &format!("{base}/api/spaces/{id}/whip"),
        &tok,
        660,
        7,
        &dir.join("b.wav"),
    );
    crawl_while(&mut seen, &hls, &mut b).await;
    wait_ok(b, "second speaker");
    seen.crawl(&hls).await;
    seen.refetch_all(&hls).await;
    end_space(&base, &id, &host).await;
    let second_run = t1.elapsed().as_secs_f64();

    // The replay: both runs, a discontinuity between them, valid, and an append of run 1's.
    let dvr = final_replay(&hls).await;
    validate::check_sequence(&dvr1, &dvr).unwrap_or_else(|e| panic!("run 1's replay grew: {e:?}"));
    let msns: Vec<u64> = dvr.segments.iter().map(|s| s.msn).collect();
    assert_eq!(msns, (0..msns.len() as u64).collect::<Vec<_>>());
    let breaks: Vec<u64> = dvr
        .segments
        .iter()
        .filter(|s| s.discontinuity)
        .map(|s| s.msn)
        .collect();
    // Run 1 ends with the segment that was open at the SIGTERM, closed by the suspend.
    assert!(
        breaks.len() == 1 && (run1_segments..=run1_segments + 1).contains(&breaks[0]),
        "one discontinuity, where run 2 starts (run 1 listed {run1_segments} segments): {breaks:?}"
    );
    let run1_segments = breaks[0];
    assert!(dvr.segments[run1_segments as usize].pdt_ms.is_some());
    // After the end, every object once more.
    seen.crawl(&hls).await;
    seen.refetch_all(&hls).await;
    assert!(seen.fetched > 50, "fetched {} objects", seen.fetched);

    let spoken = first_run + second_run;
    let total: f64 = dvr.segments.iter().map(|s| s.duration).sum();
    assert!(
        (total - spoken).abs() <= 1.0,
        "replay lists {total:.2} s, the space was live {first_run:.2} + {second_run:.2} s"
    );
    let wav = dir.join("replay.wav");
    let out = std::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-v",
            "error",
            "-i",
            &format!("{hls}/dvr.m3u8"),
            "-y",
        ])
        .arg(&wav)
        .output()
        .expect("ffmpeg is installed");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pcm = ffmpeg_decode(&wav);
    let decoded = pcm.len() as f64 / 48_000.0;
    assert!(
        (decoded - spoken).abs() <= 1.0,
        "replay decodes to {decoded:.2} s, the space was live {spoken:.2} s"
    );
    let run1: f64 = dvr.segments[..run1_segments as usize]
        .iter()
        .map(|s| s.duration)
        .sum();
    let cut = ((run1 * 48_000.0) as usize).min(pcm.len());
    eprintln!(
        "restart: live {first_run:.2} + {second_run:.2} s; replay lists {total:.2} s, decodes to \
         {decoded:.2} s; {} segments, run 2 from msn {run1_segments}; {} objects fetched, {} URLs",
        dvr.segments.len(),
        seen.fetched,
        seen.by_url.len()
    );
    let (before, after) = pcm.split_at(cut);
    assert!(tone_present(before, 440.0), "440 Hz in run 1");
    assert!(!tone_present(before, 660.0), "no 660 Hz in run 1");
    assert!(tone_present(after, 660.0), "660 Hz in run 2");
    assert!(!tone_present(after, 440.0), "no 440 Hz in run 2");
}

/// A request with an `Accept-Encoding` (or none).
async fn get_with(url: &str, accept: Option<&str>) -> (u16, reqwest::header::HeaderMap, Bytes) {
    let c = reqwest::Client::new();
    let mut r = c.get(url);
    if let Some(a) = accept {
        r = r.header("accept-encoding", a);
    }
    let r = r.send().await.expect("get");
    let (s, h) = (r.status().as_u16(), r.headers().clone());
    (s, h, r.bytes().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hls_http_types_urls_and_gzip() {
    let server = ServerProc::start("hls-http", &[]);
    let (id, host) = create_space(&server.base, "http").await;
    let hls = format!("{}/spaces/{id}/hls", server.base);
    // Wait for two complete segments.
    let live_url = format!("{hls}/live.m3u8");
    assert!(
        eventually(Duration::from_secs(20), async || playlist(&live_url)
            .await
            .segments
            .len()
            >= 2)
        .await
    );

    // Audio-only CMAF is audio/mp4.
    for uri in ["init.mp4", "seg/1.m4s", "part/1.0.m4s"] {
        let (s, h, _) = get(&format!("{hls}/{uri}")).await;
        assert_eq!(s, 200, "{uri}");
        assert_eq!(h["content-type"], "audio/mp4", "{uri}");
    }
    // One object, one URL.
    for uri in [
        "seg/01.m4s",
        "seg/+1.m4s",
        "seg/1.m4s.m4s",
        "seg/init.mp4",
        "seg/segments.log",
        "part/01.0.m4s",
        "part/1.00.m4s",
        "part/1.+0.m4s",
        "part/+1.0.m4s",
    ] {
        let (s, _, _) = get(&format!("{hls}/{uri}")).await;
        assert_eq!(s, 404, "{uri}");
    }
    for q in ["_HLS_msn=+1", "_HLS_msn=01", "_HLS_msn=1&_HLS_part=01"] {
        let (s, _, _) = get(&format!("{live_url}?{q}")).await;
        assert_eq!(s, 400, "{q}");
    }

    // Playlists: gzip when accepted, identity otherwise; Vary; an ETag per encoding. Checked
    // once the space has ended, when every playlist is final, so two requests see one version.
    end_space(&server.base, &id, &host).await;
    final_replay(&hls).await;
    let names = [
        "index.m3u8",
        "live.m3u8",
        "dvr.m3u8",
        "live.m3u8?_HLS_msn=1&_HLS_part=0&_HLS_skip=YES",
    ];
    let mut sizes = Vec::new();
    for name in names {
        sizes.push(gzip_rules(&hls, name, true).await);
    }
    eprintln!("playlist sizes (identity, gzip): {sizes:?}");
    // Restarted, the ended space's replay is served from disk: the same negotiation.
    let mut server = server;
    sigterm(&mut server);
    let server = ServerProc::start_in(server.data_dir.clone(), &[]);
    let hls = format!("{}/spaces/{id}/hls", server.base);
    for name in ["index.m3u8", "live.m3u8", "dvr.m3u8"] {
        gzip_rules(&hls, name, false).await;
    }
}

/// The encoding rules for one playlist that no longer changes; returns (name, identity bytes,
/// gzip bytes). `etags`: the server gives ETags (the live rendition does; files of a stored
/// replay are served by date only).
async fn gzip_rules(hls: &str, name: &str, etags: bool) -> (String, usize, usize) {
    let url = format!("{hls}/{name}");
    let (s, plain_h, plain) = get_with(&url, None).await;
    assert_eq!(s, 200, "{name}");
    assert!(plain_h.get("content-encoding").is_none(), "{name}");
    assert_eq!(vary(&plain_h), "accept-encoding", "{name}");
    let (_, id_h, identity) = get_with(&url, Some("br, identity")).await;
    assert!(
        id_h.get("content-encoding").is_none(),
        "{name}: identity when gzip is not accepted"
    );
    assert_eq!(identity, plain);
    let (s, gz_h, gz) = get_with(&url, Some("gzip, deflate, br")).await;
    assert_eq!(s, 200);
    assert_eq!(vary(&gz_h), "accept-encoding", "{name}");
    assert_eq!(
        gz_h["content-length"].to_str().unwrap(),
        gz.len().to_string(),
        "{name}"
    );
    if name == "index.m3u8" && etags {
        // 100 bytes: gzip would only make it longer, so it stays identity.
        assert!(gz_h.get("content-encoding").is_none(), "{name}");
        return (name.to_owned(), plain.len(), plain.len());
    }
    assert_eq!(gz_h["content-encoding"], "gzip", "{name}");
    let mut text = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut text)
        .expect("gzip decodes");
    assert_eq!(text, plain.to_vec(), "{name}: the same playlist");
    if etags {
        assert_ne!(
            plain_h["etag"], gz_h["etag"],
            "{name}: one ETag per encoding"
        );
        let c = reqwest::Client::new();
        let r = c
            .get(&url)
            .header("accept-encoding", "gzip")
            .header("if-none-match", gz_h["etag"].clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 304, "{name}");
        let r = c
            .get(&url)
            .header("if-none-match", gz_h["etag"].clone())
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            200,
            "{name}: the gzip ETag does not validate the identity encoding"
        );
    }
    (name.to_owned(), plain.len(), gz.len())
}

fn vary(h: &reqwest::header::HeaderMap) -> String {
    h.get("vary")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_lowercase()
}

/// `part/{msn}.{i}.m4s` → (msn, i).
fn part_of(uri: &str) -> Option<(u64, u32)> {
    let name = tribune_media::hls::name::part_name(uri.strip_prefix("part/")?)?;
    Some((name.msn, name.part))
}

/// Killed (SIGKILL) in the middle of a segment whose parts were served: the restarted server
/// rebuilds that segment from the parts it had journaled and numbers new audio after it, so
/// no URL served before the kill serves anything else after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_segment_reuses_no_url() {
    let mut server = ServerProc::start("hls-kill", &SECRET);
    let dir = server.data_dir.clone();
    let (id, host) = create_space(&server.base, "kill").await;
    let tok = mint(&server.base, &id, &host, "speaker", "A").await;
    let mut a = speak(
        &format!("{}/api/spaces/{id}/whip", server.base),
        &tok,
        440,
        5,
        &dir.join("a.wav"),
    );
    let hls = format!("{}/spaces/{id}/hls", server.base);
    let mut seen = Seen::default();
    crawl_while(&mut seen, &hls, &mut a).await;
    wait_ok(a, "speaker");
    // Parts of the open segment, fetched: the hinted one is held until it exists.
    let (live, _) = seen.crawl(&hls).await;
    let open_msn = live.next_msn();
    let open_parts: Vec<u32> = seen
        .by_url
        .keys()
        .filter_map(|u| part_of(u))
        .filter(|(m, _)| *m == open_msn)
        .map(|(_, p)| p)
        .collect();
    assert!(
        !open_parts.is_empty(),
        "parts of the open msn {open_msn} were served"
    );
    // Kill once the disk has every object served so far (a deadline, not a timing: the disk
    // thread writes each part as it is made).
    let fetched: Vec<String> = seen.by_url.keys().cloned().collect();
    let journal_path = dir.join("hls").join(&id).join("segments.log");
    let on_disk = eventually(Duration::from_secs(10), async || {
        let j = tribune_media::hls::journal::parse(
            &std::fs::read_to_string(&journal_path).unwrap_or_default(),
        );
        let done = j.entries.len() as u64;
        fetched.iter().all(|u| match part_of(u) {
            Some((m, p)) => m < done || (m == done && (p as usize) < j.open.len()),
            None => u
                .strip_prefix("seg/")
                .and_then(tribune_media::hls::name::segment_name)
                .is_none_or(|m| m < done),
        })
    })
    .await;
    assert!(on_disk, "every served object is journaled");
    server.kill9();

    let server = ServerProc::start_in(dir.clone(), &SECRET);
    let hls = format!("{}/spaces/{id}/hls", server.base);
    seen.refetch_all(&hls).await;
    let (live, dvr) = seen.crawl(&hls).await;
    assert!(
        live.next_msn() > open_msn,
        "new audio is numbered after msn {open_msn}"
    );
    // The killed run's open segment is a segment now, made of the parts that were served.
    let rebuilt = dvr
        .segment(open_msn)
        .expect("the open segment is in the replay");
    assert!(!rebuilt.discontinuity);
    let (s, _, seg) = get(&format!("{hls}/seg/{open_msn}.m4s")).await;
    assert_eq!(s, 200);
    let mut served = Vec::new();
    for p in 0.. {
        match seen.by_url.get(&format!("part/{open_msn}.{p}.m4s")) {
            Some(b) => served.extend_from_slice(b),
            None => break,
        }
    }
    assert!(
        !served.is_empty() && seg.starts_with(&served),
        "segment {open_msn} holds the parts served before the kill"
    );
    if dvr.segment(open_msn + 1).is_some() {
        assert!(dvr.segment(open_msn + 1).is_some_and(|s| s.discontinuity));
    }
    seen.refetch_all(&hls).await;
}
