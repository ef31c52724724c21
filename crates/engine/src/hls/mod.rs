//! The LL-HLS rendition of a space: fMP4 parts and segments cut from the listener mix, kept in
//! memory at the live edge and on disk for the rest, and the playlists that list them.
//!
//! The [`Packager`] runs inside the pager thread (one per space): every `part_target` of audio
//! it writes one CMAF fragment (moof+mdat, with the current speaking indicators as an ID3 `emsg`)
//! and hands it to [`Hls`], which renders the playlists once per part and wakes the requests
//! blocked on it. Requests never render or encode anything: every response is bytes made once
//! (a playlist's gzip encoding is made once too, by the first request that wants it).
//!
//! A part costs the same an hour or a day into a space. `live.m3u8` is a window of fixed size;
//! `dvr.m3u8`, which grows with the space, is appended to as each segment closes
//! ([`tribune_media::hls::dvr`]), and the packager hands over that text in pieces: the first
//! request for a new version joins them (and hashes them, for the `ETag`) into one body, once
//! ([`Dvr`]). The playlists are published as one [`Arc`]'d snapshot ([`Playlists`]) that the
//! handlers take under a lock of its own, held only to clone the `Arc`; the rendition's lock is
//! held by the packager for the part's bookkeeping and the (fixed-size) live playlists.
//!
//! A rendition outlives its process: every complete segment goes to disk with a line in the
//! segment journal (`segments.log`, [`tribune_media::hls::journal`]), and a restarted server
//! continues from it ([`Hls::new`]): the next segment takes the next Media Sequence Number after
//! an `EXT-X-DISCONTINUITY`, fragment sequence numbers and decode times go on, and `dvr.m3u8`
//! keeps the whole space. A suspended server (SIGTERM) first closes its open segment, so every
//! part it served lies in a segment on disk and no URL is ever reused.
//!
//! Every object's strong `ETag` is a hash of its bytes: it changes exactly when the bytes do,
//! whatever run made them, and a segment served from memory or from disk has the same one.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use crossbeam_channel::Sender;
use parking_lot::Mutex;
use tokio::sync::watch;
use tribune_media::fmp4::{self, EMSG_ID3_SCHEME, Emsg, Sample, Track};
use tribune_media::hls::journal::{self, Entry};
use tribune_media::hls::{self, Block, PartId, Rendition};
use tribune_media::mixer::FRAME_SAMPLES;

use crate::gzip::{self, fnv1a};

mod disk;
pub mod meta;
pub mod object;

use disk::{DiskJob, disk_loop, file_job, restore, write_atomically};
pub use disk::{JOURNAL, OPEN_PARTS};
use object::{Playlist, Stored};

/// Segments kept in memory besides those `live.m3u8` lists (older ones are served from disk).
const EXTRA_SEGMENTS_IN_MEMORY: usize = 2;

/// A playlist made once, and its gzip encoding, made once on first demand.
#[derive(Clone, Default)]
pub struct Text {
    /// The playlist.
    pub body: Bytes,
    /// Hash of `body`: the `ETag` (a suffix tells the gzip encoding's apart).
    pub hash: u64,
    gz: Arc<OnceLock<Bytes>>,
}

impl Text {
    pub fn new(body: String) -> Text {
        let body = Bytes::from(body);
        Text {
            hash: fnv1a(&body),
            body,
            gz: Arc::default(),
        }
    }

    /// The gzip encoding, compressed by the first caller; a flash crowd on one playlist
    /// version (blocking reloads all answered by the same part) costs one compression.
    pub fn gzip(&self) -> Bytes {
        self.gz
            .get_or_init(|| Bytes::from(gzip::compress(&self.body)))
            .clone()
    }
}

/// `dvr.m3u8` as the rendition keeps it, in pieces ([`hls::DvrText`]), made into one [`Text`]
/// by the first request for this version: that copy and its hash are O(length of the space),
/// once per segment, on a request's thread rather than in the packager's part loop.
#[derive(Clone)]
pub struct Dvr {
    pieces: hls::DvrText,
    text: Arc<OnceLock<Text>>,
}

impl Dvr {
    fn new(pieces: hls::DvrText) -> Dvr {
        Dvr {
            pieces,
            text: Arc::default(),
        }
    }

    /// The playlist: the same bytes (and so the same `ETag`) as rendering it whole.
    pub fn text(&self) -> &Text {
        self.text.get_or_init(|| Text::new(self.pieces.render()))
    }
}

/// The cached playlists, rendered once per part (`dvr.m3u8` once per segment), published as a
/// whole: a request gets the live playlists and the DVR of the same moment.
#[derive(Clone)]
pub struct Playlists {
    pub live: Text,
    pub live_skip: Text,
    pub dvr: Dvr,
    /// When they were rendered (Unix ms), for `Last-Modified`.
    pub updated_ms: u64,
}

/// A part or segment in memory: its bytes, when it was made (Unix ms) and its content hash.
#[derive(Clone)]
struct Object {
    bytes: Bytes,
    made_ms: u64,
    hash: u64,
}

struct State {
    rendition: Rendition,
    parts: BTreeMap<PartId, Object>,
    segments: BTreeMap<u64, Object>,
    /// Content hash of every complete segment (the `ETag` of those served from disk).
    hashes: BTreeMap<u64, u64>,
    /// Journal lines not yet handed to the disk thread (its queue was full).
    unjournaled: String,
    /// `dvr.m3u8` of the last snapshot, kept until a segment closes.
    dvr: Dvr,
}

/// The HLS side of one space, shared by the packager and the HTTP handlers.
pub struct Hls {
    state: Mutex<State>,
    /// The playlists now. Replaced (under `state`, so a request that saw a part in the
    /// rendition finds it in the playlists) by the packager; handlers only clone the `Arc`.
    published: Mutex<Arc<Playlists>>,
    /// Bumped after every change; blocked requests wait on it.
    changed: watch::Sender<u64>,
    /// The initialization section (`init.mp4`) and its content hash.
    pub init: Bytes,
    pub init_hash: u64,
    /// The multivariant playlist (`index.m3u8`).
    pub index: Text,
    /// The variant's peak bandwidth, bits per second (the multivariant playlist's).
    pub bandwidth: u32,
    /// When the rendition began (Unix ms): `Last-Modified` of `init.mp4` and `index.m3u8`.
    pub born_ms: u64,
    /// The wall clock (`Last-Modified` stamps, the parts' program date-time).
    pub clock: crate::clock::Clock,
    /// Directory of the segments on disk (`<data>/hls/<space>`).
    pub dir: PathBuf,
    /// The timed metadata of the parts ([`meta`]), fed by the space's housekeeping.
    meta: Mutex<meta::MetaTrack>,
    cfg: hls::Config,
    /// No more parts will come from this process (ended, suspended, or the space moved to
    /// another node): blocked requests are answered at once instead of at their bound.
    stopped: std::sync::atomic::AtomicBool,
}

/// A complete segment in the media timeline: where it starts (ms of decode time), how long it
/// is, and the wall clock of its first sample (Unix ms).
#[derive(Debug, Clone, Copy)]
pub struct SegTiming {
    pub msn: u64,
    pub media_start_ms: u64,
    pub duration: std::time::Duration,
    pub pdt_unix_ms: u64,
}

/// Where a request stands.
pub enum Lookup {
    /// The bytes, when they were made (Unix ms) and their content hash.
    Ready(Bytes, u64, u64),
    /// Not there yet, but close enough to the live edge to wait for.
    Wait,
    /// Served from disk; the content hash from the journal.
    Disk(PathBuf, u64),
    Missing,
}

impl Hls {
    /// The rendition of a space, stored in `dir`: a new one, or the one an earlier run left
    /// there continued (see the module docs). Reads the journal and rewrites it whole (a line
    /// cut by a crash is dropped), so the disk thread only appends; blocking file IO.
    pub fn new(
        track: &Track,
        cfg: hls::Config,
        bitrate: u32,
        dir: PathBuf,
        clock: crate::clock::Clock,
    ) -> std::io::Result<Arc<Hls>> {
        std::fs::create_dir_all(&dir)?;
        let restored = restore(&dir, cfg)?;
        write_atomically(
            &dir.join(JOURNAL),
            journal::render(&restored.entries).as_bytes(),
        )?;
        // Its parts are in a segment now (or lost): this run's open segment starts afresh.
        match std::fs::remove_file(dir.join(OPEN_PARTS)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        // One URL, one body: init.mp4 stays what the first run wrote. It is a function of the
        // track (one channel, pre-skip, 48 kHz, track 1); a later build could only change the
        // pre-skip, which trims the start of the track and nothing after it, so the earlier
        // run's init section decodes the later runs' segments just as well.
        let made = Bytes::from(fmp4::init_segment(track));
        let init_path = Stored::Init.path(&dir);
        let init = match std::fs::read(&init_path) {
            Ok(old) if !old.is_empty() => {
                if old != made {
                    tracing::warn!(dir = %dir.display(),
                        "init.mp4 of this build differs from the earlier run's; serving the earlier one");
                }
                Bytes::from(old)
            }
            _ => {
                write_atomically(&init_path, &made)?;
                made
            }
        };
        let rendition = restored.rendition;
        let dvr = Dvr::new(rendition.dvr_text());
        let playlists = render(&rendition, dvr.clone(), clock.now_ms());
        let (changed, _) = watch::channel(0);
        // Peak bandwidth: the Opus bitrate plus fMP4 framing, generously.
        let bandwidth = bitrate + bitrate / 4 + 8_000;
        Ok(Arc::new(Hls {
            state: Mutex::new(State {
                rendition,
                parts: BTreeMap::new(),
                segments: BTreeMap::new(),
                hashes: restored.hashes,
                unjournaled: String::new(),
                dvr,
            }),
            published: Mutex::new(Arc::new(playlists)),
            changed,
            init_hash: fnv1a(&init),
            init,
            index: Text::new(hls::multivariant(bandwidth)),
            bandwidth,
            born_ms: clock.now_ms(),
            dir,
            meta: Mutex::new(meta::MetaTrack::default()),
            cfg,
            clock,
            stopped: std::sync::atomic::AtomicBool::new(false),
        }))
    }

    /// The complete segments of the live window with their place in the media timeline, the
    /// number the next segment will have, and whether the rendition has ended: what the
    /// subtitles playlist follows.
    pub fn subtitle_window(&self) -> (Vec<SegTiming>, u64, bool) {
        let st = self.state.lock();
        let r = &st.rendition;
        let window = r.live_window();
        let mut media_start_ms = 0f64;
        let mut out = Vec::new();
        for s in r.segments() {
            if window.contains(&s.msn) {
                out.push(SegTiming {
                    msn: s.msn,
                    media_start_ms: media_start_ms.round() as u64,
                    duration: s.duration,
                    pdt_unix_ms: s.pdt_unix_ms,
                });
            }
            media_start_ms += s.duration.as_secs_f64() * 1000.0;
        }
        (out, window.end, r.is_ended())
    }

    /// Segment `msn`'s place in the media timeline, if it is complete.
    pub fn segment_timing(&self, msn: u64) -> Option<SegTiming> {
        let st = self.state.lock();
        let mut media_start_ms = 0f64;
        for s in st.rendition.segments() {
            if s.msn == msn {
                return Some(SegTiming {
                    msn,
                    media_start_ms: media_start_ms.round() as u64,
                    duration: s.duration,
                    pdt_unix_ms: s.pdt_unix_ms,
                });
            }
            media_start_ms += s.duration.as_secs_f64() * 1000.0;
        }
        None
    }

    /// Subscribe to changes (new parts, end).
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Longest a blocking request is held.
    pub fn max_block(&self) -> Duration {
        self.state.lock().rendition.max_block()
    }

    /// The state the next parts' timed metadata describe ([`meta`]).
    pub fn set_meta(&self, state: serde_json::Map<String, serde_json::Value>) {
        self.meta.lock().set(state);
    }

    /// A blocking playlist request: ready, wait, or too far.
    pub fn block(&self, msn: u64, part: Option<u32>) -> Block {
        self.state.lock().rendition.blocking(msn, part)
    }

    /// The current playlists.
    pub fn playlists(&self) -> Arc<Playlists> {
        self.published.lock().clone()
    }

    /// Renders the playlists of `s` (the DVR anew only if `dvr_changed`) and publishes them.
    /// Called with the rendition locked, so the snapshot and the rendition agree for readers.
    fn publish(&self, s: &mut State, dvr_changed: bool) {
        if dvr_changed {
            s.dvr = Dvr::new(s.rendition.dvr_text());
        }
        let playlists = Arc::new(render(&s.rendition, s.dvr.clone(), self.clock.now_ms()));
        // The old snapshot is dropped after the lock, by whoever holds it last.
        let old = std::mem::replace(&mut *self.published.lock(), playlists);
        drop(old);
    }

    /// A part by id.
    pub fn part(&self, p: PartId) -> Lookup {
        let s = self.state.lock();
        if let Some(o) = s.parts.get(&p) {
            return Lookup::Ready(o.bytes.clone(), o.made_ms, o.hash);
        }
        let next = s.rendition.next_part();
        // The preload hint names the next part; the one after it may be asked early too.
        if !s.rendition.is_ended() && p >= next && p.msn <= next.msn + 1 {
            return Lookup::Wait;
        }
        Lookup::Missing
    }

    /// A segment by media sequence number.
    pub fn segment(&self, msn: u64) -> Lookup {
        let s = self.state.lock();
        if let Some(o) = s.segments.get(&msn) {
            return Lookup::Ready(o.bytes.clone(), o.made_ms, o.hash);
        }
        if s.rendition.has_segment(msn) {
            return match s.hashes.get(&msn) {
                Some(&h) => Lookup::Disk(self.segment_path(msn), h),
                None => Lookup::Missing,
            };
        }
        let next = s.rendition.next_part();
        if !s.rendition.is_ended() && msn >= next.msn && msn <= next.msn + 1 {
            return Lookup::Wait;
        }
        Lookup::Missing
    }

    /// Path of a segment on disk.
    pub fn segment_path(&self, msn: u64) -> PathBuf {
        Stored::Segment(msn).path(&self.dir)
    }

    /// Where the packager goes on: fragment sequence number and decode time (48 kHz) of the
    /// next part, after every part of the earlier runs.
    fn continuation(&self) -> (u32, u64) {
        let s = self.state.lock();
        let parts = s.rendition.parts_total();
        let us: u128 = s.rendition.segments().map(|x| x.duration.as_micros()).sum();
        ((parts as u32).wrapping_add(1), (us * 48 / 1000) as u64)
    }

    fn add_part(&self, duration: Duration, pdt_ms: u64, bytes: Bytes, disk: &Sender<DiskJob>) {
        let mut s = self.state.lock();
        let id = s.rendition.push_part(duration, pdt_ms);
        let hash = fnv1a(&bytes);
        let discontinuity = s
            .rendition
            .open_segment()
            .filter(|o| o.msn == id.msn)
            .or_else(|| s.rendition.segments().nth(id.msn as usize))
            .is_some_and(|seg| seg.discontinuity);
        let line = journal::PartEntry {
            msn: id.msn,
            part: id.part,
            duration: Duration::from_micros(duration.as_micros() as u64),
            pdt_unix_ms: pdt_ms,
            discontinuity,
            len: bytes.len() as u64,
            hash,
        }
        .line();
        // Best effort: a part the disk thread misses only shortens what a crash recovers.
        let _ = disk.try_send(DiskJob {
            part: Some(bytes.clone()),
            journal: line,
            ..DiskJob::default()
        });
        s.parts.insert(
            id,
            Object {
                bytes,
                made_ms: self.clock.now_ms(),
                hash,
            },
        );
        // A segment closed when the next part starts a new one: it is its parts, in order.
        let closed = s.rendition.next_part().part == 0 && s.rendition.has_segment(id.msn);
        if closed {
            self.close_segment(&mut s, id.msn, disk);
        }
        self.prune(&mut s);
        self.publish(&mut s, closed);
        drop(s);
        self.changed.send_modify(|n| *n += 1);
    }

    fn close_segment(&self, s: &mut State, msn: u64, disk: &Sender<DiskJob>) {
        let mut seg = Vec::new();
        for o in s
            .parts
            .range(
                PartId { msn, part: 0 }..PartId {
                    msn: msn + 1,
                    part: 0,
                },
            )
            .map(|(_, o)| o)
        {
            seg.extend_from_slice(&o.bytes);
        }
        let seg = Bytes::from(seg);
        let hash = fnv1a(&seg);
        if let Some(info) = s.rendition.segments().nth(msn as usize) {
            s.unjournaled.push_str(&Entry::of(info, hash).line());
        }
        let job = DiskJob {
            file: Some((self.segment_path(msn), seg.clone())),
            journal: std::mem::take(&mut s.unjournaled),
            open_done: true,
            ..DiskJob::default()
        };
        // Never block the pager on the disk: with the queue full the segment's file is lost
        // (it is served from memory while in the window) but its journal line is kept for the
        // next job, so the journal stays whole and numbering stays right.
        if let Err(e) = disk.try_send(job) {
            s.unjournaled = e.into_inner().journal;
            tracing::error!(msn, "HLS disk queue full: segment not written");
        }
        s.hashes.insert(msn, hash);
        s.segments.insert(
            msn,
            Object {
                bytes: seg,
                made_ms: self.clock.now_ms(),
                hash,
            },
        );
    }

    fn prune(&self, s: &mut State) {
        let window = s.rendition.live_window();
        // Parts: only segments still listed with their parts need them; keep the live window.
        let keep_parts_from = window.start;
        s.parts = s.parts.split_off(&PartId {
            msn: keep_parts_from,
            part: 0,
        });
        let keep_segments_from = window.start.saturating_sub(EXTRA_SEGMENTS_IN_MEMORY as u64);
        s.segments = s.segments.split_off(&keep_segments_from);
    }

    /// No more parts: the open segment is closed. When the space ends (`ending`) the
    /// playlists get `EXT-X-ENDLIST` and go to disk as the replay; when the server is only
    /// stopping, they stay open for the run that resumes them.
    fn end(&self, ending: bool, disk: &Sender<DiskJob>) {
        let mut s = self.state.lock();
        let open = s.rendition.open_segment().map(|seg| seg.msn);
        if ending {
            s.rendition.end();
        } else {
            s.rendition.suspend();
        }
        if let Some(msn) = open
            && s.rendition.has_segment(msn)
        {
            self.close_segment(&mut s, msn, disk);
        }
        self.publish(&mut s, true);
        let playlists = self.playlists();
        let journal = std::mem::take(&mut s.unjournaled);
        let mut jobs = vec![DiskJob {
            journal,
            ..DiskJob::default()
        }];
        if ending {
            // The replay outlives the process: its playlists (and their gzip encodings) go to
            // disk with the segments, and a restarted server serves them from there.
            let files = [
                (Playlist::Dvr, playlists.dvr.text()),
                (Playlist::Live, &playlists.live),
                (Playlist::Index, &self.index),
            ];
            for (p, text) in files {
                let gz = self.dir.join(format!("{}.gz", p.file_name()));
                jobs.push(file_job(
                    Stored::Playlist(p).path(&self.dir),
                    text.body.clone(),
                ));
                jobs.push(file_job(gz, text.gzip()));
            }
        }
        drop(s);
        for job in jobs {
            let _ = disk.send(job);
        }
        self.stop();
    }

    /// No part will follow from this process: wakes every blocked request to be answered now.
    pub fn stop(&self) {
        self.stopped
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.changed.send_modify(|n| *n += 1);
    }

    /// Whether parts have stopped coming from this process ([`Hls::stop`]).
    pub fn is_stopped(&self) -> bool {
        self.stopped.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether the rendition has ended.
    pub fn is_ended(&self) -> bool {
        self.state.lock().rendition.is_ended()
    }

    /// The rendition's timing.
    pub fn config(&self) -> &hls::Config {
        &self.cfg
    }
}

/// The playlists; `dvr` is the one kept since the last segment closed (it lists complete
/// segments only), which spares making and compressing its body every part.
fn render(r: &Rendition, dvr: Dvr, now_ms: u64) -> Playlists {
    Playlists {
        live: Text::new(r.live_playlist(false)),
        live_skip: Text::new(r.live_playlist(true)),
        dvr,
        updated_ms: now_ms,
    }
}

/// Cuts the listener mix into parts; lives in the pager thread.
pub struct Packager {
    hls: Arc<Hls>,
    part_samples: u64,
    pending: Vec<Vec<u8>>,
    sequence: u32,
    decode_time: u64,
    part_pdt_ms: u64,
    disk: Sender<DiskJob>,
    disk_thread: Option<std::thread::JoinHandle<()>>,
}

impl Packager {
    /// Parts stop here without ending or suspending the rendition (the space moved to another
    /// node, which continues it from its copy): blocked requests are answered now.
    pub fn stop(&self) {
        self.hls.stop();
    }

    /// The wall clock of its rendition.
    pub fn clock(&self) -> &crate::clock::Clock {
        &self.hls.clock
    }

    /// A packager for `hls`; segments are written to disk by a thread of their own. It goes
    /// on where the earlier runs of the rendition stopped (fragment sequence, decode time).
    pub fn new(hls: Arc<Hls>) -> std::io::Result<Packager> {
        std::fs::create_dir_all(&hls.dir)?;
        let (disk, rx) = crossbeam_channel::bounded::<DiskJob>(64);
        let dir = hls.dir.clone();
        let disk_thread = std::thread::Builder::new()
            .name("hls-disk".into())
            .spawn(move || disk_loop(dir, rx))?;
        let part_samples = hls.cfg.part_target.as_millis() as u64 * 48;
        let (sequence, decode_time) = hls.continuation();
        Ok(Packager {
            hls,
            part_samples,
            pending: Vec::new(),
            sequence,
            decode_time,
            part_pdt_ms: 0,
            disk,
            disk_thread: Some(disk_thread),
        })
    }

    /// One 20 ms packet of the listener mix, produced at `now_ms` (Unix ms).
    pub fn push(&mut self, packet: Vec<u8>, now_ms: u64) {
        if self.pending.is_empty() {
            // The part's first sample was made about a packet ago.
            self.part_pdt_ms = now_ms.saturating_sub(20);
        }
        self.pending.push(packet);
        if (self.pending.len() * FRAME_SAMPLES) as u64 >= self.part_samples {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let samples: Vec<Sample<'_>> = self
            .pending
            .iter()
            .map(|p| Sample {
                data: p,
                duration: FRAME_SAMPLES as u32,
            })
            .collect();
        let meta = self.hls.meta.lock().next_part();
        let emsgs: Vec<Emsg> = meta
            .map(|json| Emsg {
                scheme_id_uri: EMSG_ID3_SCHEME.to_owned(),
                value: String::new(),
                timescale: fmp4::TIMESCALE,
                presentation_time: self.decode_time,
                event_duration: 0,
                id: self.sequence,
                message_data: fmp4::id3_tag(&[("tribune", &json)]),
            })
            .into_iter()
            .collect();
        let frag = fmp4::fragment(self.sequence, self.decode_time, &samples, &emsgs);
        let n = self.pending.len() as u64 * FRAME_SAMPLES as u64;
        let duration = Duration::from_micros(n * 1_000_000 / 48_000);
        self.sequence = self.sequence.wrapping_add(1);
        self.decode_time += n;
        self.pending.clear();
        self.hls
            .add_part(duration, self.part_pdt_ms, Bytes::from(frag), &self.disk);
    }

    /// The stream ends (`ending`) or is suspended for a restart: flush what is pending, close
    /// the open segment and, if ending, the playlists.
    pub fn end(&mut self, ending: bool) {
        if ending {
            // The last part tells the players' pages too.
            self.hls
                .meta
                .lock()
                .set_key("lifecycle", serde_json::Value::from("ended"));
        }
        self.flush();
        self.hls.end(ending, &self.disk);
        // Wait until the replay is on disk: the pager thread is joined at shutdown, so a stopped
        // server leaves a complete replay behind.
        let (closed, _) = crossbeam_channel::bounded(0);
        drop(std::mem::replace(&mut self.disk, closed));
        if let Some(t) = self.disk_thread.take() {
            let _ = t.join();
        }
    }
}
