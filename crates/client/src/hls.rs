//! A simulated HLS listener: follows a live media playlist the way a player does and counts what
//! it fetched, for the tests and the load tool.
//!
//! In low-latency mode it starts at the live edge (the part named by `EXT-X-PRELOAD-HINT`) and
//! loops: the hinted part (held by the server until it exists) and, at the same time, a blocking
//! reload `live.m3u8?_HLS_msn=M&_HLS_part=P` that returns once that part is listed; parts the
//! playlist lists that it has not fetched yet (it fell behind) are fetched in order before the
//! hint, and with [`Options::fetch_segments`] every complete segment is fetched once too.
//! Without low latency it polls the playlist every half target duration and fetches the new
//! segments.
//!
//! Every playlist is checked with [`validate::check`] and against the one before it with
//! [`validate::check_sequence`]; a part or segment of its window that it can no longer fetch
//! (the playlist moved past it) is a media-sequence gap. One listener costs a few small futures:
//! run hundreds of them on one runtime sharing one [`reqwest::Client`] (its connection pool).

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use reqwest::Url;
use tribune_media::hls::validate::{self, MediaPlaylist};

/// What to listen to, and how.
#[derive(Debug, Clone)]
pub struct Options {
    /// The media playlist (`…/hls/live.m3u8`).
    pub url: String,
    /// How long to listen.
    pub duration: Duration,
    /// Blocking playlist reloads and parts (LL-HLS); else plain segment polling.
    pub low_latency: bool,
    /// In low-latency mode, fetch each complete segment once as well as its parts (a player at
    /// the live edge would not; a listener that wants the segments, e.g. to record, does).
    pub fetch_segments: bool,
    /// Bound on one request (a blocking one included: the server holds it up to three target
    /// durations, an edge cache may add its lock wait).
    pub request_timeout: Duration,
}

impl Options {
    /// Low-latency listening to `url` for `duration`, segments fetched too, 15 s per request.
    pub fn new(url: impl Into<String>, duration: Duration) -> Options {
        Options {
            url: url.into(),
            duration,
            low_latency: true,
            fetch_segments: true,
            request_timeout: Duration::from_secs(15),
        }
    }
}

/// What one listener did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Media playlists received (blocking reloads included).
    pub playlists: u64,
    /// Blocking reloads (`_HLS_msn`) answered.
    pub blocking_reloads: u64,
    /// Parts fetched.
    pub parts: u64,
    /// Segments fetched.
    pub segments: u64,
    /// Body bytes received (playlists, parts and segments).
    pub bytes: u64,
    /// Media-sequence discontinuities: the playlist moved past a part or segment of the
    /// listener's window before it was fetched.
    pub msn_gaps: u64,
    /// Failed requests by kind (`status 503`, `timeout`, `connect`, `body`, `request`,
    /// `unparsable playlist`, `invalid playlist`).
    pub errors: BTreeMap<String, u64>,
    /// Lowest media sequence number of a part or segment fetched.
    pub first_msn: Option<u64>,
    /// Highest media sequence number of a part or segment fetched.
    pub last_msn: Option<u64>,
    /// Playlists that parsed but broke a rule of [`validate::check`] or
    /// [`validate::check_sequence`] (their messages are not kept; see `errors`).
    pub invalid_playlists: u64,
    /// The playlist said the stream ended (no preload hint in low-latency mode, `EXT-X-ENDLIST`
    /// when polling), and the listener stopped.
    pub ended: bool,
}

impl Report {
    /// Total failed requests.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    fn error(&mut self, kind: impl Into<String>) {
        *self.errors.entry(kind.into()).or_default() += 1;
    }

    fn saw(&mut self, msn: u64) {
        self.first_msn = Some(self.first_msn.map_or(msn, |m| m.min(msn)));
        self.last_msn = Some(self.last_msn.map_or(msn, |m| m.max(msn)));
    }
}

/// Listens until `opts.duration` passes or `cancel` completes, and reports.
pub async fn run(
    client: &reqwest::Client,
    opts: Options,
    cancel: impl Future<Output = ()>,
) -> Report {
    run_observed(client, opts, &|_| {}, cancel).await
}

/// Something that arrived, as the observer of [`run_observed`] sees it, the moment its body is
/// complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival<'a> {
    /// A part or segment.
    Media {
        /// Its URI as the playlist lists it.
        uri: &'a str,
        /// Its body size.
        bytes: u64,
        /// Its body (the page simulator reads the in-band metadata from it).
        body: &'a [u8],
    },
    /// A media playlist.
    Playlist {
        /// Its delivery directives (`_HLS_msn=…&_HLS_part=…`), if any.
        query: Option<&'a str>,
    },
}

/// [`run`], calling `on_arrival` for each part, segment and playlist as it arrives (the load
/// tester times a listener's first audio with it and sees one stall while it runs; the edge
/// benchmark compares when the same object reaches listeners through different paths).
pub async fn run_observed(
    client: &reqwest::Client,
    opts: Options,
    on_media: &(dyn Fn(Arrival<'_>) + Sync),
    cancel: impl Future<Output = ()>,
) -> Report {
    let mut report = Report::default();
    let Ok(url) = Url::parse(&opts.url) else {
        report.error("bad url");
        return report;
    };
    let l = Listener {
        client,
        url,
        opts: &opts,
        on_media,
    };
    {
        let work = async {
            if opts.low_latency {
                l.low_latency(&mut report).await;
            } else {
                l.polling(&mut report).await;
            }
        };
        tokio::select! {
            () = work => {}
            () = tokio::time::sleep(opts.duration) => {}
            () = cancel => {}
        }
    }
    report
}

/// A part: (msn, index in its segment).
type PartId = (u64, u64);

struct Listener<'a> {
    client: &'a reqwest::Client,
    url: Url,
    opts: &'a Options,
    on_media: &'a (dyn Fn(Arrival<'_>) + Sync),
}

/// Why a request failed, as a [`Report::errors`] key.
type Kind = String;

fn kind_of(e: &reqwest::Error) -> Kind {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connect".into()
    } else if e.is_body() || e.is_decode() {
        "body".into()
    } else {
        "request".into()
    }
}

/// A fetched playlist and whether it obeys [`validate::check`].
struct Fetched {
    playlist: MediaPlaylist,
    valid: bool,
    bytes: u64,
}

/// The part the preload hint names.
fn hinted(p: &MediaPlaylist) -> Option<(PartId, String)> {
    let uri = &p.preload_hints.iter().find(|h| h.kind == "PART")?.uri;
    Some((part_id(uri)?, uri.clone()))
}

/// `…part/{msn}.{index}.m4s` → (msn, index).
fn part_id(uri: &str) -> Option<PartId> {
    let name = uri.rsplit('/').next()?.strip_suffix(".m4s")?;
    let (m, i) = name.split_once('.')?;
    Some((m.parse().ok()?, i.parse().ok()?))
}

/// Every part the playlist lists, in order, as (id, uri); ids by position in their segment.
fn listed_parts(p: &MediaPlaylist) -> Vec<(PartId, String)> {
    let open = p.next_msn();
    p.segments
        .iter()
        .map(|s| (s.msn, &s.parts))
        .chain(std::iter::once((open, &p.trailing_parts)))
        .flat_map(|(msn, parts)| {
            parts
                .iter()
                .enumerate()
                .map(move |(i, part)| ((msn, i as u64), part.uri.clone()))
        })
        .collect()
}

impl Listener<'_> {
    async fn get(&self, url: Url) -> Result<Bytes, Kind> {
        let resp = self
            .client
            .get(url)
            .timeout(self.opts.request_timeout)
            .send()
            .await
            .map_err(|e| kind_of(&e))?;
        if !resp.status().is_success() {
            return Err(format!("status {}", resp.status().as_u16()));
        }
        resp.bytes().await.map_err(|e| kind_of(&e))
    }

    async fn playlist(&self, query: Option<String>) -> Result<Fetched, Kind> {
        let mut url = self.url.clone();
        url.set_query(query.as_deref());
        let body = self.get(url).await?;
        (self.on_media)(Arrival::Playlist {
            query: query.as_deref(),
        });
        let text = std::str::from_utf8(&body).map_err(|_| "unparsable playlist".to_string())?;
        let playlist = validate::parse(text).map_err(|_| "unparsable playlist".to_string())?;
        let valid = validate::check(&playlist).is_ok();
        Ok(Fetched {
            playlist,
            valid,
            bytes: body.len() as u64,
        })
    }

    /// Books a playlist fetch; `prev` is the one before it from this listener, if comparable.
    fn booked(
        r: &mut Report,
        got: Result<Fetched, Kind>,
        prev: Option<&MediaPlaylist>,
        blocking: bool,
    ) -> Option<MediaPlaylist> {
        match got {
            Ok(f) => {
                r.playlists += 1;
                r.blocking_reloads += u64::from(blocking);
                r.bytes += f.bytes;
                let in_sequence =
                    prev.is_none_or(|p| validate::check_sequence(p, &f.playlist).is_ok());
                if !f.valid || !in_sequence {
                    r.invalid_playlists += 1;
                    r.error("invalid playlist");
                }
                Some(f.playlist)
            }
            Err(k) => {
                r.error(k);
                None
            }
        }
    }

    /// The first playlist, retried every half second.
    async fn first(&self, r: &mut Report) -> MediaPlaylist {
        loop {
            if let Some(p) = Self::booked(r, self.playlist(None).await, None, false) {
                return p;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Fetches `uris` in order, stopping at the first failure; returns what it got.
    async fn fetch_in_order<T: Copy>(
        &self,
        items: &[(T, String)],
    ) -> (Vec<(T, u64)>, Option<Kind>) {
        let mut got = Vec::with_capacity(items.len());
        for (id, uri) in items {
            let Ok(url) = self.url.join(uri) else {
                return (got, Some("bad uri".into()));
            };
            match self.get(url).await {
                Ok(b) => {
                    (self.on_media)(Arrival::Media {
                        uri,
                        bytes: b.len() as u64,
                        body: &b,
                    });
                    got.push((*id, b.len() as u64));
                }
                Err(k) => return (got, Some(k)),
            }
        }
        (got, None)
    }

    /// Complete segments of `p` from `*next_seg` on; counts a gap if `p` no longer lists it.
    fn new_segments(p: &MediaPlaylist, next_seg: &mut u64, r: &mut Report) -> Vec<(u64, String)> {
        let Some(first) = p.segments.first().map(|s| s.msn) else {
            return Vec::new();
        };
        if first > *next_seg {
            r.msn_gaps += 1;
            *next_seg = first;
        }
        p.segments
            .iter()
            .filter(|s| s.msn >= *next_seg)
            .map(|s| (s.msn, s.uri.clone()))
            .collect()
    }

    async fn low_latency(&self, r: &mut Report) {
        let mut prev = self.first(r).await;
        let Some(((msn, part), _)) = hinted(&prev) else {
            // Not low-latency (or ended): follow it by segments.
            return self.polling(r).await;
        };
        // Parts: the last fetched in order, else the first wanted.
        let mut last: Option<PartId> = None;
        let mut floor: PartId = (msn, part);
        // Segments: the open one at the start is the first this listener takes whole.
        let mut next_seg = msn;
        loop {
            let Some((hint, hint_uri)) = hinted(&prev) else {
                // Ended: fetch what remains, then stop.
                let segs = if self.opts.fetch_segments {
                    Self::new_segments(&prev, &mut next_seg, r)
                } else {
                    Vec::new()
                };
                let (got, err) = self.fetch_in_order(&segs).await;
                for (m, n) in got {
                    r.segments += 1;
                    r.bytes += n;
                    r.saw(m);
                }
                if let Some(k) = err {
                    r.error(k);
                }
                r.ended = true;
                return;
            };
            let listed = listed_parts(&prev);
            let wanted = |id: &PartId| last.map_or(*id >= floor, |l| *id > l);
            let mut parts: Vec<(PartId, String)> =
                listed.into_iter().filter(|(id, _)| wanted(id)).collect();
            if wanted(&hint) && parts.last().is_none_or(|(id, _)| *id < hint) {
                parts.push((hint, hint_uri));
            }
            let segs = if self.opts.fetch_segments {
                Self::new_segments(&prev, &mut next_seg, r)
            } else {
                Vec::new()
            };
            let reload = self.playlist(Some(format!("_HLS_msn={}&_HLS_part={}", hint.0, hint.1)));
            let ((got_parts, part_err), (got_segs, seg_err), reloaded) = tokio::join!(
                self.fetch_in_order(&parts),
                self.fetch_in_order(&segs),
                reload
            );
            for (id, n) in got_parts {
                r.parts += 1;
                r.bytes += n;
                r.saw(id.0);
                last = Some(id);
            }
            for (m, n) in got_segs {
                r.segments += 1;
                r.bytes += n;
                r.saw(m);
                next_seg = m + 1;
            }
            for k in [part_err, seg_err].into_iter().flatten() {
                r.error(k);
            }
            let next = match Self::booked(r, reloaded, Some(&prev), true) {
                Some(p) => p,
                None => {
                    // Resynchronise on a plain reload (not compared: a cache may serve one
                    // older than the last blocking answer).
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    match Self::booked(r, self.playlist(None).await, None, false) {
                        Some(p) => p,
                        None => continue,
                    }
                }
            };
            // Gap: the playlist no longer lists the part after the last one fetched.
            let listed = listed_parts(&next);
            if let Some(&(first, _)) = listed.first() {
                let behind = match last {
                    Some(l) => !listed.iter().any(|(id, _)| *id == l) && first > l,
                    None => first > floor,
                };
                if behind {
                    r.msn_gaps += 1;
                    last = None;
                    floor = first;
                }
            }
            prev = next;
        }
    }

    async fn polling(&self, r: &mut Report) {
        let mut prev = self.first(r).await;
        // Start with the newest complete segment.
        let mut next_seg = prev.segments.last().map_or(prev.next_msn(), |s| s.msn);
        loop {
            let segs = Self::new_segments(&prev, &mut next_seg, r);
            let (got, err) = self.fetch_in_order(&segs).await;
            for (m, n) in got {
                r.segments += 1;
                r.bytes += n;
                r.saw(m);
                next_seg = m + 1;
            }
            if let Some(k) = err {
                r.error(k);
            }
            if prev.endlist {
                r.ended = true;
                return;
            }
            let half = prev.target_duration.unwrap_or(2) as f64 / 2.0;
            tokio::time::sleep(Duration::from_secs_f64(half)).await;
            if let Some(next) = Self::booked(r, self.playlist(None).await, Some(&prev), false) {
                prev = next;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAYLIST: &str = "#EXTM3U
#EXT-X-VERSION:9
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:4
#EXT-X-PART-INF:PART-TARGET=0.4
#EXT-X-MAP:URI=\"init.mp4\"
#EXTINF:2.0,
seg/4.m4s
#EXT-X-PART:DURATION=0.4,URI=\"part/5.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.4,URI=\"part/5.1.m4s\"
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part/5.2.m4s\"
";

    #[test]
    fn parts_hint_and_segments() {
        let p = validate::parse(PLAYLIST).unwrap();
        assert_eq!(hinted(&p), Some(((5, 2), "part/5.2.m4s".into())));
        assert_eq!(
            listed_parts(&p),
            vec![
                ((5, 0), "part/5.0.m4s".into()),
                ((5, 1), "part/5.1.m4s".into())
            ]
        );
        let mut r = Report::default();
        let mut next = 3;
        assert_eq!(
            Listener::new_segments(&p, &mut next, &mut r),
            vec![(4, "seg/4.m4s".into())]
        );
        assert_eq!(r.msn_gaps, 1, "segment 3 was never fetched");
        let mut next = 5;
        assert!(Listener::new_segments(&p, &mut next, &mut r).is_empty());
        assert_eq!(r.msn_gaps, 1, "segment 5 is not complete yet: no gap");
        assert_eq!(part_id("https://e/x/part/12.3.m4s"), Some((12, 3)));
    }
}
