//! A simulated listener of the web page `/spaces/{id}`: an anonymous visitor who opens the page
//! and presses Play, making the requests the page makes (`crates/server/web/space.js`,
//! `public.js`, hls.js in low-latency mode), for the tests and the page-crowd benchmark.
//!
//! In order: the HTML shell, the app's files it names and the modules they import (the
//! `/app/{build}/` closure of static imports, plus `space.js` and hls.js, which the page loads
//! for a space), the public snapshot `snapshot.json`, the multivariant playlist it names, then
//! the LL-HLS rendition through [`crate::hls`] for the rest of the time. While it plays it reads
//! the in-band metadata of each part (ID3 `TXXX` frames named `tribune` inside `emsg` boxes, as
//! hls.js surfaces them) and merges it as the page does (a key message replaces the state, others
//! update it, `null` removes a key); when nothing arrived in-band for [`META_STALE`] it polls the
//! snapshot every `poll_s`. It sends the anonymous count beacon when its viewer id's level is in
//! the sample (`count.sample_log2`), every `count.interval_s` ± 10 %, the first at a random
//! moment of the first interval. It never joins, opens an event stream or asks for a token.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::Url;
use serde_json::{Map, Value};
use tokio::time::Instant;
use tribune_media::fmp4::{EMSG_ID3_SCHEME, read};

use crate::hls;

/// No in-band metadata for this long: the page polls the snapshot (space.js `META_STALE_MS`).
pub const META_STALE: Duration = Duration::from_secs(5);
/// The deepest sampling level (`crates/room/src/viewers.rs` `MAX_LEVEL`).
pub const MAX_LEVEL: u32 = 16;
/// Modules the page loads for a space besides the shell's own references and their imports.
const SPACE_MODULES: [&str; 2] = ["space.js", "hls.light.min.mjs"];

/// Which page, for how long, as whom.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where the page is opened (an edge, or the origin): `http://host:port/`.
    pub base: Url,
    /// The space's id.
    pub space: String,
    /// How long the page stays open.
    pub duration: Duration,
    /// The page's random viewer id (the page keeps one in `localStorage`).
    pub viewer: [u8; 16],
    /// Pressed Play (LL-HLS with in-band metadata); else the page sits paused and polls.
    pub playing: bool,
    /// Bound on one request.
    pub request_timeout: Duration,
}

/// What one page did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The HTML shell arrived.
    pub shell: bool,
    /// App files fetched (each once, as a browser's cache would).
    pub assets: u64,
    /// Snapshots received (the first and the polls).
    pub snapshots: u64,
    /// Parts and segments that carried in-band metadata.
    pub meta_parts: u64,
    /// Beacons answered `204`.
    pub beacons: u64,
    /// Beacons refused (any other status) or failed.
    pub beacons_refused: u64,
    /// Beacon answers by status (0: no answer).
    pub beacon_statuses: BTreeMap<u16, u64>,
    /// The listener count the page showed last (snapshot or in-band), and when it learnt it.
    pub count: Option<u64>,
    /// The sampling level it last saw.
    pub sample_log2: u32,
    /// What the player fetched.
    pub hls: hls::Report,
    /// Failures before playing, by kind (`shell`, `asset`, `snapshot`, `multivariant`).
    pub errors: BTreeMap<String, u64>,
}

/// The page's view of the room: the snapshot, then in-band changes.
#[derive(Debug, Default)]
struct Seen {
    state: Map<String, Value>,
    last_meta: Option<Instant>,
    meta_parts: u64,
}

impl Seen {
    fn count(&self) -> Option<u64> {
        self.state.get("listeners").and_then(Value::as_u64)
    }

    fn sample_log2(&self) -> u32 {
        self.state
            .get("count")
            .and_then(|c| c.get("sample_log2"))
            .and_then(Value::as_u64)
            .map_or(0, |k| k.min(u64::from(MAX_LEVEL)) as u32)
    }

    fn interval(&self) -> Duration {
        let s = self
            .state
            .get("count")
            .and_then(|c| c.get("interval_s"))
            .and_then(Value::as_u64)
            .unwrap_or(30);
        Duration::from_secs(s.clamp(1, 3600))
    }

    /// Takes the live fields of a snapshot (every key but the static ones).
    fn snapshot(&mut self, snap: &Map<String, Value>) {
        for (k, v) in snap {
            self.state.insert(k.clone(), v.clone());
        }
    }

    /// Merges one in-band message as the page's `applyMeta` does.
    fn in_band(&mut self, msg: &str, now: Instant) {
        let Ok(Value::Object(m)) = serde_json::from_str::<Value>(msg) else {
            return;
        };
        if m.contains_key("k") {
            self.state
                .retain(|k, _| m.contains_key(k) || STATIC_KEYS.contains(&k.as_str()));
        }
        for (k, v) in m {
            if k == "k" {
                continue;
            }
            if v.is_null() {
                self.state.remove(&k);
            } else {
                self.state.insert(k, v);
            }
        }
        self.last_meta = Some(now);
    }
}

/// Snapshot keys that are not live state (a key message does not carry them).
const STATIC_KEYS: [&str; 9] = [
    "v",
    "id",
    "title",
    "description",
    "created_at",
    "starts_at",
    "urls",
    "poll_s",
    "starts_in_s",
];

/// The sampling level of a viewer id: the leading zero bits of its first 32 bits, at most
/// [`MAX_LEVEL`] (as the page's `viewerLevel` and the server's `viewers::level`).
pub fn level(viewer: &[u8; 16]) -> u32 {
    u32::from_be_bytes([viewer[0], viewer[1], viewer[2], viewer[3]])
        .leading_zeros()
        .min(MAX_LEVEL)
}

/// A viewer id as the page writes it: 32 lowercase hex digits.
pub fn viewer_hex(viewer: &[u8; 16]) -> String {
    viewer.iter().map(|b| format!("{b:02x}")).collect()
}

/// A reproducible stream of pseudo-random numbers (splitmix64) for ids and jitter.
#[derive(Debug, Clone)]
pub struct Jitter(u64);

impl Jitter {
    /// Seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Jitter(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A random viewer id.
    pub fn viewer(&mut self) -> [u8; 16] {
        let mut v = [0u8; 16];
        v[..8].copy_from_slice(&self.next_u64().to_be_bytes());
        v[8..].copy_from_slice(&self.next_u64().to_be_bytes());
        v
    }
}

/// An HTTP client for one simulated page, from `local` (each page its own address, as a real
/// audience has): plain HTTP/1.1 with its own connection pool, no TLS roots and no proxy lookup,
/// so that building thousands of them costs microseconds each.
pub fn client_from(local: std::net::IpAddr) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .local_address(local)
        .tcp_nodelay(true)
        // Below the idle timeouts of edges (Varnish closes an idle connection after 5 s): a
        // request never goes out on a connection the edge is closing, as browsers avoid too.
        .pool_idle_timeout(Duration::from_secs(4))
        .no_proxy()
        .tls_built_in_root_certs(false)
        .build()
}

/// Opens the page, plays, beacons and polls until `opts.duration` passes or `cancel` completes.
pub async fn run(
    client: &reqwest::Client,
    opts: Options,
    cancel: impl Future<Output = ()>,
) -> Report {
    let deadline = Instant::now() + opts.duration;
    let mut report = Report::default();
    let seen = Mutex::new(Seen::default());
    let p = Page {
        client,
        opts: &opts,
        seen: &seen,
    };
    let mut rng = Jitter::new(u64::from_be_bytes(
        opts.viewer[8..].try_into().unwrap_or([0; 8]),
    ));
    // The session ends by itself at the deadline; the backstop only bounds a request that
    // outlives it (each is bounded by `request_timeout` too).
    tokio::select! {
        () = p.session(&mut report, &mut rng, deadline) => {}
        () = tokio::time::sleep_until(deadline + opts.request_timeout) => {}
        () = cancel => {}
    }
    let s = seen.lock().unwrap_or_else(|e| e.into_inner());
    report.count = s.count();
    report.sample_log2 = s.sample_log2();
    report.meta_parts = s.meta_parts;
    report
}

struct Page<'a> {
    client: &'a reqwest::Client,
    opts: &'a Options,
    seen: &'a Mutex<Seen>,
}

fn error(r: &mut Report, kind: &str) {
    *r.errors.entry(kind.to_owned()).or_default() += 1;
}

impl Page<'_> {
    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn get(&self, url: Url) -> Option<bytes::Bytes> {
        let r = self
            .client
            .get(url)
            .timeout(self.opts.request_timeout)
            .send()
            .await
            .ok()?;
        if !r.status().is_success() {
            return None;
        }
        r.bytes().await.ok()
    }

    async fn session(&self, r: &mut Report, rng: &mut Jitter, deadline: Instant) {
        let base = &self.opts.base;
        let Ok(page) = base.join(&format!("spaces/{}", self.opts.space)) else {
            return error(r, "url");
        };
        // The shell and the app, retried with back-off like the page's own requests.
        let shell = loop {
            match self.get(page.clone()).await {
                Some(b) => break String::from_utf8_lossy(&b).into_owned(),
                None => {
                    error(r, "shell");
                    backoff(rng, r.errors["shell"]).await;
                }
            }
        };
        r.shell = true;
        self.app(&shell, r).await;
        let snap = loop {
            match self.snapshot().await {
                Some(s) => break s,
                None => {
                    error(r, "snapshot");
                    backoff(rng, r.errors["snapshot"]).await;
                }
            }
        };
        r.snapshots += 1;
        let poll = Duration::from_secs(snap.get("poll_s").and_then(Value::as_u64).unwrap_or(5));
        let urls = snap.get("urls").cloned().unwrap_or(Value::Null);
        self.seen().snapshot(&snap);

        let beacon_url = urls["beacon"].as_str().and_then(|u| base.join(u).ok());
        let play = async {
            if !self.opts.playing {
                return std::future::pending().await;
            }
            let Some(media) = self.media_playlist(&urls).await else {
                return std::future::pending().await;
            };
            let opts = hls::Options {
                url: media.to_string(),
                duration: deadline.saturating_duration_since(Instant::now()),
                low_latency: true,
                fetch_segments: false,
                request_timeout: self.opts.request_timeout,
            };
            let on = |a: hls::Arrival<'_>| {
                if let hls::Arrival::Media { body, .. } = a {
                    self.in_band(body);
                }
            };
            hls::run_observed(self.client, opts, &on, std::future::pending()).await
        };
        let mut beacons = (0u64, 0u64);
        let mut statuses = BTreeMap::new();
        let mut snapshots = 0u64;
        let mut poll_rng = Jitter::new(rng.next_u64());
        let (got, ()) = tokio::join!(
            async {
                let rep = play.await;
                // Played to the end: keep the page open (beacons, polls) until the deadline.
                tokio::time::sleep_until(deadline).await;
                rep
            },
            async {
                tokio::join!(
                    self.beacons(
                        beacon_url,
                        &mut poll_rng,
                        &mut beacons,
                        &mut statuses,
                        deadline
                    ),
                    self.polls(poll, &mut snapshots, deadline)
                );
            }
        );
        r.hls = got;
        r.beacons = beacons.0;
        r.beacons_refused = beacons.1;
        r.beacon_statuses = statuses;
        r.snapshots += snapshots;
    }

    /// The app's files: the shell's `/app/…` references, the space modules, and every module
    /// they import statically, each once.
    async fn app(&self, shell: &str, r: &mut Report) {
        let refs = quoted_after(shell, "\"/app/", '"');
        let Some(build) = refs
            .iter()
            .find_map(|f| f.split_once('/').map(|(b, _)| b.to_owned()))
        else {
            return error(r, "asset");
        };
        let mut todo: Vec<String> = refs;
        todo.extend(SPACE_MODULES.iter().map(|m| format!("{build}/{m}")));
        let mut done = BTreeSet::new();
        while let Some(f) = todo.pop() {
            if !done.insert(f.clone()) {
                continue;
            }
            let Ok(url) = self.opts.base.join(&format!("app/{f}")) else {
                continue;
            };
            match self.get(url).await {
                Some(body) => {
                    r.assets += 1;
                    if f.ends_with(".js") {
                        let text = String::from_utf8_lossy(&body);
                        for m in quoted_after(&text, "from './", '\'') {
                            todo.push(format!("{build}/{m}"));
                        }
                    }
                }
                None => error(r, "asset"),
            }
        }
    }

    /// The public snapshot, as an object.
    async fn snapshot(&self) -> Option<Map<String, Value>> {
        let url = self
            .opts
            .base
            .join(&format!("spaces/{}/snapshot.json", self.opts.space))
            .ok()?;
        match serde_json::from_slice(&self.get(url).await?).ok()? {
            Value::Object(m) => Some(m),
            _ => None,
        }
    }

    /// The media playlist the multivariant playlist `urls.hls` names (its first URI line).
    async fn media_playlist(&self, urls: &Value) -> Option<Url> {
        let mv = self.opts.base.join(urls["hls"].as_str()?).ok()?;
        let text = self.get(mv.clone()).await?;
        let text = String::from_utf8_lossy(&text);
        let uri = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))?;
        mv.join(uri).ok()
    }

    /// Reads the in-band metadata of a part or segment.
    fn in_band(&self, chunk: &[u8]) {
        let now = Instant::now();
        let mut seen = self.seen();
        let mut carried = false;
        for e in read::emsgs(chunk) {
            if e.scheme_id_uri != EMSG_ID3_SCHEME {
                continue;
            }
            for (d, v) in read::txxx(&e.message_data) {
                if d == "tribune" {
                    seen.in_band(&v, now);
                    carried = true;
                }
            }
        }
        seen.meta_parts += u64::from(carried);
    }

    /// The count beacon, while the page is open: sent only when this viewer is in the sample.
    async fn beacons(
        &self,
        url: Option<Url>,
        rng: &mut Jitter,
        tally: &mut (u64, u64),
        statuses: &mut BTreeMap<u16, u64>,
        deadline: Instant,
    ) {
        let Some(url) = url else { return };
        let level = level(&self.opts.viewer);
        let body = serde_json::json!({ "viewer": viewer_hex(&self.opts.viewer) }).to_string();
        let first = self.seen().interval().mul_f64(rng.unit());
        tokio::time::sleep_until((Instant::now() + first).min(deadline)).await;
        while Instant::now() < deadline {
            let k = self.seen().sample_log2();
            if level >= k {
                let sent = self
                    .client
                    .post(url.clone())
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .timeout(Duration::from_secs(5))
                    .send()
                    .await;
                let status = sent.map_or(0, |r| r.status().as_u16());
                *statuses.entry(status).or_default() += 1;
                if status == 204 {
                    tally.0 += 1;
                } else {
                    tally.1 += 1;
                }
            }
            let next = self.seen().interval().mul_f64(0.9 + 0.2 * rng.unit());
            tokio::time::sleep_until((Instant::now() + next).min(deadline)).await;
        }
    }

    /// The snapshot poll: every second the page checks; with nothing in-band for
    /// [`META_STALE`] and `poll` since the last poll, it fetches the snapshot.
    async fn polls(&self, poll: Duration, got: &mut u64, deadline: Instant) {
        let mut last = Instant::now();
        loop {
            tokio::time::sleep_until((Instant::now() + Duration::from_secs(1)).min(deadline)).await;
            if Instant::now() >= deadline {
                return;
            }
            let now = Instant::now();
            let fresh = self
                .seen()
                .last_meta
                .is_some_and(|t| now.duration_since(t) < META_STALE);
            let ended = self.seen().state.get("lifecycle").and_then(Value::as_str) == Some("ended");
            if fresh || ended || now.duration_since(last) < poll {
                continue;
            }
            last = now;
            if let Some(s) = self.snapshot().await {
                *got += 1;
                self.seen().snapshot(&s);
            }
        }
    }
}

/// Each string between `open` and the next `close` in `text`.
fn quoted_after(text: &str, open: &str, close: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(open) {
        rest = &rest[i + open.len()..];
        if let Some(j) = rest.find(close) {
            out.push(rest[..j].to_owned());
            rest = &rest[j..];
        }
    }
    out
}

/// Jittered exponential back-off after the `n`th failure: 0.5 s doubling to 8 s, × 0.5–1.5.
async fn backoff(rng: &mut Jitter, n: u64) {
    let base = 0.5 * 2f64.powi(n.min(4) as i32);
    tokio::time::sleep(Duration::from_secs_f64(base * (0.5 + rng.unit()))).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_ids_match_the_page() {
        let mut v = [0xffu8; 16];
        assert_eq!(level(&v), 0);
        v[0] = 0;
        v[1] = 0x10;
        assert_eq!(level(&v), 11);
        assert_eq!(level(&[0; 16]), MAX_LEVEL);
        assert_eq!(viewer_hex(&[0xab; 16]), "ab".repeat(16));
        // About half of random ids are of level ≥ 1, a quarter ≥ 2.
        let mut j = Jitter::new(7);
        let ids: Vec<_> = (0..10_000).map(|_| level(&j.viewer())).collect();
        let ge1 = ids.iter().filter(|&&l| l >= 1).count();
        let ge2 = ids.iter().filter(|&&l| l >= 2).count();
        assert!((4_700..5_300).contains(&ge1), "{ge1}");
        assert!((2_250..2_750).contains(&ge2), "{ge2}");
    }

    #[test]
    fn in_band_merges_like_the_page() {
        let mut s = Seen::default();
        let mut snap = Map::new();
        snap.insert("title".into(), "t".into());
        snap.insert("listeners".into(), 3.into());
        s.snapshot(&snap);
        let t = Instant::now();
        s.in_band(r#"{"listeners":9,"speaking":{"a":-20}}"#, t);
        assert_eq!(s.count(), Some(9));
        s.in_band(r#"{"speaking":null}"#, t);
        assert!(!s.state.contains_key("speaking"));
        s.in_band(
            r#"{"k":1,"listeners":12,"count":{"sample_log2":2,"interval_s":30}}"#,
            t,
        );
        assert_eq!(s.count(), Some(12));
        assert_eq!(s.sample_log2(), 2);
        assert_eq!(
            s.state.get("title").and_then(Value::as_str),
            Some("t"),
            "a key message keeps what only the snapshot says"
        );
        s.in_band("not json", t);
        assert_eq!(s.count(), Some(12));
    }

    #[test]
    fn finds_app_references_and_imports() {
        let shell = r#"<link href="/app/b1/app.css"><script src="/app/b1/app.js"></script>"#;
        assert_eq!(
            quoted_after(shell, "\"/app/", '"'),
            ["b1/app.css", "b1/app.js"]
        );
        let js = "import { h } from './ui.js';\nimport { a } from './api.js';";
        assert_eq!(quoted_after(js, "from './", '\''), ["ui.js", "api.js"]);
    }
}
