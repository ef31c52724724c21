//! The LL-HLS rendition of a space: fMP4 parts and segments cut from the listener mix, kept in
//! memory at the live edge and on disk for the rest, and the playlists that list them.
//!
//! The [`Packager`] runs inside the pager thread (one per space): every `part_target` of audio
//! it writes one CMAF fragment (moof+mdat, with the current speaking indicators as an ID3 `emsg`)
//! and hands it to [`Hls`], which renders the playlists once per part and wakes the requests
//! blocked on it. Requests never render or encode anything: every response is bytes made once.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use crossbeam_channel::Sender;
use parking_lot::Mutex;
use tokio::sync::watch;
use tribune_media::fmp4::{self, EMSG_ID3_SCHEME, Emsg, Sample, Track};
use tribune_media::hls::{self, Block, PartId, Rendition};
use tribune_media::mixer::FRAME_SAMPLES;

/// Segments kept in memory besides those `live.m3u8` lists (older ones are served from disk).
const EXTRA_SEGMENTS_IN_MEMORY: usize = 2;

/// The cached playlists, rendered once per part.
#[derive(Clone, Default)]
pub struct Playlists {
    pub live: Bytes,
    pub live_skip: Bytes,
    pub dvr: Bytes,
    /// When they were rendered (Unix ms), for `Last-Modified`.
    pub updated_ms: u64,
}

struct State {
    rendition: Rendition,
    /// Parts and segments with the time they were made (Unix ms).
    parts: BTreeMap<PartId, (Bytes, u64)>,
    segments: BTreeMap<u64, (Bytes, u64)>,
    playlists: Playlists,
}

/// The HLS side of one space, shared by the packager and the HTTP handlers.
pub struct Hls {
    state: Mutex<State>,
    /// Bumped after every change; blocked requests wait on it.
    changed: watch::Sender<u64>,
    /// The initialization section (`init.mp4`).
    pub init: Bytes,
    /// The multivariant playlist (`index.m3u8`).
    pub multivariant: Bytes,
    /// When the rendition began (Unix ms): `Last-Modified` of `init.mp4` and `index.m3u8`.
    pub born_ms: u64,
    /// Directory of the segments on disk (`<data>/hls/<space>`).
    pub dir: PathBuf,
    /// Timed metadata for the next part (JSON), set by the space's housekeeping.
    meta: Mutex<Option<String>>,
    cfg: hls::Config,
}

/// Where a request stands.
pub enum Lookup {
    /// The bytes and when they were made (Unix ms).
    Ready(Bytes, u64),
    /// Not there yet, but close enough to the live edge to wait for.
    Wait,
    /// Served from disk.
    Disk(PathBuf),
    Missing,
}

impl Hls {
    /// A new rendition for a track; `bitrate` goes into the multivariant playlist.
    pub fn new(track: &Track, cfg: hls::Config, bitrate: u32, dir: PathBuf) -> Arc<Hls> {
        let rendition = Rendition::new(cfg);
        let playlists = render(&rendition);
        let (changed, _) = watch::channel(0);
        // Peak bandwidth: the Opus bitrate plus fMP4 framing, generously.
        let bandwidth = bitrate + bitrate / 4 + 8_000;
        Arc::new(Hls {
            state: Mutex::new(State {
                rendition,
                parts: BTreeMap::new(),
                segments: BTreeMap::new(),
                playlists,
            }),
            changed,
            init: Bytes::from(fmp4::init_segment(track)),
            multivariant: Bytes::from(hls::multivariant(bandwidth)),
            born_ms: crate::space::now_ms(),
            dir,
            meta: Mutex::new(None),
            cfg,
        })
    }

    /// Subscribe to changes (new parts, end).
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Longest a blocking request is held.
    pub fn max_block(&self) -> Duration {
        self.state.lock().rendition.max_block()
    }

    /// The timed metadata carried by the next part.
    pub fn set_meta(&self, json: String) {
        *self.meta.lock() = Some(json);
    }

    /// A blocking playlist request: ready, wait, or too far.
    pub fn block(&self, msn: u64, part: Option<u32>) -> Block {
        self.state.lock().rendition.blocking(msn, part)
    }

    /// The current playlists.
    pub fn playlists(&self) -> Playlists {
        self.state.lock().playlists.clone()
    }

    /// A part by id.
    pub fn part(&self, p: PartId) -> Lookup {
        let s = self.state.lock();
        if let Some((b, t)) = s.parts.get(&p) {
            return Lookup::Ready(b.clone(), *t);
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
        if let Some((b, t)) = s.segments.get(&msn) {
            return Lookup::Ready(b.clone(), *t);
        }
        if s.rendition.has_segment(msn) {
            return Lookup::Disk(self.segment_path(msn));
        }
        let next = s.rendition.next_part();
        if !s.rendition.is_ended() && msn >= next.msn && msn <= next.msn + 1 {
            return Lookup::Wait;
        }
        Lookup::Missing
    }

    /// Path of a segment on disk.
    pub fn segment_path(&self, msn: u64) -> PathBuf {
        self.dir.join(format!("{msn}.m4s"))
    }

    fn add_part(
        &self,
        duration: Duration,
        pdt_ms: u64,
        bytes: Bytes,
        disk: &Sender<(PathBuf, Bytes)>,
    ) {
        let mut s = self.state.lock();
        let id = s.rendition.push_part(duration, pdt_ms);
        s.parts.insert(id, (bytes, crate::space::now_ms()));
        // A segment closed when the next part starts a new one: it is its parts, in order.
        if s.rendition.next_part().part == 0 && s.rendition.has_segment(id.msn) {
            self.close_segment(&mut s, id.msn, disk);
        }
        self.prune(&mut s);
        s.playlists = render(&s.rendition);
        drop(s);
        self.changed.send_modify(|n| *n += 1);
    }

    fn close_segment(&self, s: &mut State, msn: u64, disk: &Sender<(PathBuf, Bytes)>) {
        let mut seg = Vec::new();
        for (_, (b, _)) in s.parts.range(
            PartId { msn, part: 0 }..PartId {
                msn: msn + 1,
                part: 0,
            },
        ) {
            seg.extend_from_slice(b);
        }
        let seg = Bytes::from(seg);
        let _ = disk.try_send((self.segment_path(msn), seg.clone()));
        s.segments.insert(msn, (seg, crate::space::now_ms()));
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

    /// No more parts: the open segment is closed and the playlists get `EXT-X-ENDLIST`.
    fn end(&self, disk: &Sender<(PathBuf, Bytes)>) {
        let mut s = self.state.lock();
        let open = s.rendition.open_segment().map(|seg| seg.msn);
        s.rendition.end();
        if let Some(msn) = open
            && s.rendition.has_segment(msn)
        {
            self.close_segment(&mut s, msn, disk);
        }
        s.playlists = render(&s.rendition);
        // The replay outlives the process: its playlists and init section go to disk with the
        // segments, and a restarted server serves them from there.
        let files = [
            ("dvr.m3u8", s.playlists.dvr.clone()),
            ("live.m3u8", s.playlists.live.clone()),
            ("index.m3u8", self.multivariant.clone()),
            ("init.mp4", self.init.clone()),
        ];
        drop(s);
        for (name, bytes) in files {
            let _ = disk.send((self.dir.join(name), bytes));
        }
        self.changed.send_modify(|n| *n += 1);
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

fn render(r: &Rendition) -> Playlists {
    Playlists {
        live: Bytes::from(r.live_playlist(false)),
        live_skip: Bytes::from(r.live_playlist(true)),
        dvr: Bytes::from(r.dvr_playlist()),
        updated_ms: crate::space::now_ms(),
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
    disk: Sender<(PathBuf, Bytes)>,
    disk_thread: Option<std::thread::JoinHandle<()>>,
}

impl Packager {
    /// A packager for `hls`; segments are written to disk by a thread of their own.
    pub fn new(hls: Arc<Hls>) -> std::io::Result<Packager> {
        std::fs::create_dir_all(&hls.dir)?;
        let (disk, rx) = crossbeam_channel::bounded::<(PathBuf, Bytes)>(64);
        let disk_thread = std::thread::Builder::new()
            .name("hls-disk".into())
            .spawn(move || {
                for (path, bytes) in rx.iter() {
                    if let Err(e) = std::fs::write(&path, &bytes) {
                        tracing::error!(path = %path.display(), error = %e, "cannot write HLS segment");
                    }
                }
            })?;
        let part_samples = hls.cfg.part_target.as_millis() as u64 * 48;
        Ok(Packager {
            hls,
            part_samples,
            pending: Vec::new(),
            sequence: 1,
            decode_time: 0,
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
        let meta = self.hls.meta.lock().take();
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

    /// The stream ends (or is suspended): flush what is pending and close the playlists.
    pub fn end(&mut self) {
        self.flush();
        self.hls.end(&self.disk);
        // Wait until the replay is on disk: the pager thread is joined at shutdown, so a stopped
        // server leaves a complete replay behind.
        let (closed, _) = crossbeam_channel::bounded(0);
        drop(std::mem::replace(&mut self.disk, closed));
        if let Some(t) = self.disk_thread.take() {
            let _ = t.join();
        }
    }
}
