//! The live Ogg/Opus stream of a space: the pager thread and the shared page ring listeners read.
//!
//! The pager turns the mixer's 20 ms packets into Ogg pages every `page` interval (default
//! 200 ms). Each page is encoded once into a [`Bytes`] and shared by every listener: a listener
//! costs a reference count per page, not a copy or an encode. A new listener gets the two header
//! pages (OpusHead, OpusTags: sequence 0 and 1, the same bytes for everyone, made once), then
//! about a second of recent pages (so players start at once), then pages as they are made.
//!
//! The shared pages keep their own sequence numbers, so a listener who joins mid-stream sees the
//! sequence jump right after the headers. That is a hole every Ogg reader accepts and what
//! Icecast sends; numbering the headers to precede the shared pages instead (sequence 10, 25…
//! for the BOS page) is refused by libogg readers (VLC, an Icecast relay): RFC 3533 §6 numbers
//! the pages of a logical stream from 0.
//!
//! Memory is bounded whatever the listeners do: pages sit in one [`broadcast`] ring; a listener
//! that falls behind by more than the ring loses its place and is disconnected.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering::Relaxed};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;
use tokio::sync::broadcast;
use tribune_media::mixer::FRAME_SAMPLES;
use tribune_media::oggopus::OggOpusWriter;

use tribune_metrics::Metrics;

/// One encoded Ogg page (possibly a few, if it had to be split) of the live stream.
#[derive(Clone, Debug)]
pub struct LivePage {
    pub seq: u32,
    pub last_seq: u32,
    pub granule: u64,
    /// The page bytes (a slice of [`LivePage::chunk`]: no second copy).
    pub bytes: Bytes,
    /// The same page framed as one HTTP/1.1 chunk (`size CRLF page CRLF`), made once by the
    /// pager so that no listener connection frames (or copies) it again.
    pub chunk: Bytes,
}

impl LivePage {
    /// A page of `bytes`, framed once as an HTTP/1.1 chunk too.
    pub fn new(seq: u32, last_seq: u32, granule: u64, bytes: &[u8]) -> LivePage {
        let chunk = Bytes::from(chunk_frame(bytes));
        let start = chunk.len() - bytes.len() - 2;
        LivePage {
            seq,
            last_seq,
            granule,
            bytes: chunk.slice(start..start + bytes.len()),
            chunk,
        }
    }
}

/// `data` as one HTTP/1.1 chunk: its size in hex, CRLF, the data, CRLF.
pub fn chunk_frame(data: &[u8]) -> Vec<u8> {
    let size = format!("{:x}\r\n", data.len());
    let mut out = Vec::with_capacity(size.len() + data.len() + 2);
    out.extend_from_slice(size.as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

/// What a new listener starts from.
pub struct Subscription {
    /// The OpusHead + OpusTags pages (sequence 0 and 1), shared by every listener.
    pub head: Bytes,
    /// Recent pages, oldest first.
    pub burst: Vec<LivePage>,
    /// Pages to come.
    pub rx: broadcast::Receiver<LivePage>,
}

struct Ring {
    recent: VecDeque<LivePage>,
    tx: Option<broadcast::Sender<LivePage>>,
}

/// The shared live stream of one space.
pub struct LiveStream {
    /// The two header pages, made once.
    head: Bytes,
    ring: Mutex<Ring>,
    burst_pages: usize,
    capacity: usize,
    /// Listeners connected now.
    pub listeners: AtomicI64,
}

impl LiveStream {
    /// `burst` of recent audio for new listeners; a listener more than `slow` behind is dropped.
    pub fn new(header: OggOpusWriter, page: Duration, burst: Duration, slow: Duration) -> Self {
        let per = page.as_millis().max(1);
        let burst_pages = burst.as_millis().div_ceil(per) as usize;
        let capacity = (slow.as_millis().div_ceil(per) as usize).max(4);
        let (tx, _) = broadcast::channel(capacity);
        LiveStream {
            head: Bytes::from(header.header_pages()),
            ring: Mutex::new(Ring {
                recent: VecDeque::with_capacity(burst_pages + 1),
                tx: Some(tx),
            }),
            burst_pages,
            capacity,
            listeners: AtomicI64::new(0),
        }
    }

    /// A stream whose pages come from elsewhere (another node's stream, relayed): `head` is its
    /// two header pages as received; pages go in with [`LiveStream::publish`].
    pub fn relayed(head: Bytes, burst_pages: usize, capacity: usize) -> Self {
        let capacity = capacity.max(4);
        let (tx, _) = broadcast::channel(capacity);
        LiveStream {
            head,
            ring: Mutex::new(Ring {
                recent: VecDeque::with_capacity(burst_pages + 1),
                tx: Some(tx),
            }),
            burst_pages,
            capacity,
            listeners: AtomicI64::new(0),
        }
    }

    /// Subscribe a listener: `None` once the stream has ended.
    pub fn subscribe(&self) -> Option<Subscription> {
        let ring = self.ring.lock();
        let tx = ring.tx.as_ref()?;
        let burst: Vec<LivePage> = ring.recent.iter().cloned().collect();
        Some(Subscription {
            head: self.head.clone(),
            burst,
            rx: tx.subscribe(),
        })
    }

    /// The OpusHead and OpusTags pages (sequence 0 and 1) every listener starts with.
    pub fn header_pages(&self) -> Bytes {
        self.head.clone()
    }

    /// Pages of recent audio a new listener starts with.
    pub fn burst_pages(&self) -> usize {
        self.burst_pages
    }

    /// Ring size in pages (how far a listener may lag).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Hand `page` to every listener (the pager's, or a relay's, side).
    pub fn publish(&self, page: LivePage) {
        let mut ring = self.ring.lock();
        if self.burst_pages > 0 {
            if ring.recent.len() == self.burst_pages {
                ring.recent.pop_front();
            }
            ring.recent.push_back(page.clone());
        }
        if let Some(tx) = &ring.tx {
            // No receivers is fine: nobody is listening right now.
            let _ = tx.send(page);
        }
    }

    /// End the stream: current listeners get the remaining pages, then end of body.
    pub fn close(&self) {
        self.ring.lock().tx = None;
    }

    /// Close a stream that never ran (a space restored as ended).
    pub fn close_now(&self) {
        self.close();
    }

    /// Whether the stream has ended.
    pub fn is_closed(&self) -> bool {
        self.ring.lock().tx.is_none()
    }
}

/// What the pager thread works with.
pub struct Pager {
    /// Writes the shared pages (same serial and pre-skip as the listeners' header pages).
    pub writer: OggOpusWriter,
    /// Page cadence.
    pub page: Duration,
    /// 20 ms packets from the mixer.
    pub input: Receiver<Vec<u8>>,
    pub stream: Arc<LiveStream>,
    /// The recorder's inbox, sent when the space goes live.
    pub attach: Receiver<Sender<Vec<u8>>>,
    /// Set when the space ends: the last page carries end-of-stream.
    pub ending: Arc<AtomicBool>,
    pub metrics: Arc<Metrics>,
    /// The LL-HLS packager, fed the same packets.
    pub hls: Option<crate::hls::Packager>,
    /// Checked before every packet: past its deadline nothing is published until it is
    /// extended; revoked, the pager stops (see [`crate::fence`]).
    pub fence: Arc<crate::fence::Fence>,
    pub clock: crate::clock::Clock,
}

/// How often a fenced pager looks again at its fence.
const FENCE_POLL: Duration = Duration::from_millis(10);

/// Start the pager thread: packets from the mixer → pages for listeners (and the recorder, once
/// one is sent on `attach`).
/// It ends, closing the stream with an end-of-stream page, when the mixer's channel closes.
pub fn spawn_pager(space_id: &str, p: Pager) -> std::io::Result<JoinHandle<()>> {
    let Pager {
        mut writer,
        page,
        input,
        stream,
        attach,
        ending,
        metrics,
        mut hls,
        fence,
        clock,
    } = p;
    let page_samples = (page.as_millis() as u64) * 48;
    std::thread::Builder::new()
        .name(format!("pager-{space_id}"))
        .spawn(move || {
            crate::priority::raise_current_thread("pager");
            // The recorder is attached when the space goes live (a scheduled space streams
            // silence to its waiting listeners but records nothing).
            let mut recorder: Option<Sender<Vec<u8>>> = None;
            for packet in input.iter() {
                while !fence.allows(clock.now_ms()) && !fence.is_revoked() {
                    std::thread::sleep(FENCE_POLL);
                }
                if fence.is_revoked() {
                    // Another node runs the space now: not another page, part or packet
                    // recorded, and no end of stream (the stream is not over, it moved).
                    stream.close();
                    if let Some(h) = &hls {
                        h.stop();
                    }
                    return;
                }
                if let Ok(rec) = attach.try_recv() {
                    recorder = Some(rec);
                }
                if let Some(h) = &mut hls {
                    let now = h.clock().now_ms();
                    h.push(packet.clone(), now);
                }
                writer.push(&packet, FRAME_SAMPLES as u32);
                if let Some(rec) = &recorder
                    && rec.try_send(packet).is_err()
                {
                    metrics.recording_errors.fetch_add(1, Relaxed);
                }
                if writer.pending_samples() >= page_samples
                    && let Some(p) = writer.flush(false)
                {
                    stream.publish(to_live(p));
                }
            }
            // End of stream only when the space ends; a suspended space (server restart)
            // continues the same stream when resumed.
            if let Some(p) = writer.flush(ending.load(Relaxed)) {
                stream.publish(to_live(p));
            }
            stream.close();
            if let Some(h) = &mut hls {
                h.end(ending.load(Relaxed));
            }
        })
}

fn to_live(p: tribune_media::oggopus::AudioPage) -> LivePage {
    LivePage::new(p.seq, p.last_seq, p.granule, &p.bytes)
}

/// Decrements the listener gauges when a listener goes (its body, or its lean connection, is
/// dropped).
pub struct ListenerGuard {
    stream: Arc<LiveStream>,
    metrics: Arc<Metrics>,
}

impl ListenerGuard {
    /// Counts a listener in: the space's gauge, the node's gauge and the total.
    pub fn count_in(stream: Arc<LiveStream>, metrics: Arc<Metrics>) -> ListenerGuard {
        stream.listeners.fetch_add(1, Relaxed);
        metrics.listeners.fetch_add(1, Relaxed);
        metrics.listeners_total.fetch_add(1, Relaxed);
        ListenerGuard { stream, metrics }
    }

    /// The node's metrics this listener is counted in.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}

impl Drop for ListenerGuard {
    fn drop(&mut self) {
        self.stream.listeners.fetch_sub(1, Relaxed);
        self.metrics.listeners.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tribune_media::ogg::{PacketReader, PageReader};

    fn stream() -> Arc<LiveStream> {
        let w = OggOpusWriter::new(7, 1, 312, vec![]);
        Arc::new(LiveStream::new(
            w,
            Duration::from_millis(200),
            Duration::from_millis(1000),
            Duration::from_secs(2),
        ))
    }

    /// Every byte a subscriber got: headers, burst, and what its channel holds.
    fn received(sub: &mut Subscription) -> Vec<u8> {
        let mut bytes = sub.head.to_vec();
        for p in &sub.burst {
            bytes.extend_from_slice(&p.bytes);
        }
        while let Ok(p) = sub.rx.try_recv() {
            bytes.extend_from_slice(&p.bytes);
        }
        bytes
    }

    /// A late joiner's bytes parse as one stream: headers at 0 and 1, then the shared pages
    /// without a sequence gap among them.
    #[test]
    fn late_joiner_gets_headers_from_zero_then_continuous_pages() {
        let s = stream();
        let (tx, rx) = crossbeam_channel::unbounded();
        let w = OggOpusWriter::new(7, 1, 312, vec![]);
        let metrics = Arc::new(Metrics::default());
        let (_attach_tx, attach) = crossbeam_channel::bounded(1);
        let t = spawn_pager(
            "t",
            Pager {
                writer: w,
                page: Duration::from_millis(200),
                input: rx,
                stream: s.clone(),
                attach,
                ending: Arc::new(AtomicBool::new(true)),
                metrics,
                hls: None,
                fence: Arc::default(),
                clock: crate::clock::Clock::system(),
            },
        )
        .unwrap();
        // 3 s of packets: 15 pages, of which the ring keeps 5 for the burst.
        for _ in 0..150 {
            tx.send(vec![0xF8, 0xFF, 0xFE]).unwrap();
        }
        // Wait until the pager has published them all (the last page is number 16).
        while s.ring.lock().recent.back().map(|p| p.last_seq) < Some(16) {
            std::thread::yield_now();
        }
        let mut sub = s.subscribe().unwrap();
        assert_eq!(sub.burst.len(), 5);
        for _ in 0..10 {
            tx.send(vec![0xF8, 0xFF, 0xFE]).unwrap();
        }
        drop(tx);
        t.join().unwrap();
        let bytes = received(&mut sub);
        let mut pages = PageReader::new();
        pages.push(&bytes);
        let mut seqs = Vec::new();
        let mut packets = PacketReader::new();
        while let Some(p) = pages.next_page().unwrap() {
            seqs.push(p.seq);
            packets.push_page(&p);
        }
        assert_eq!(
            &seqs[..3],
            &[0, 1, 12],
            "headers at 0 and 1, then the burst"
        );
        for w in seqs[2..].windows(2) {
            assert_eq!(w[0] + 1, w[1], "no sequence gap in {seqs:?}");
        }
        let first = packets.next_packet().unwrap();
        assert!(first.bos && first.data.starts_with(b"OpusHead"));
        assert!(packets.next_packet().unwrap().data.starts_with(b"OpusTags"));
        assert!(s.is_closed());
        assert!(s.subscribe().is_none());
    }

    #[test]
    fn a_page_is_framed_once_as_a_chunk() {
        let p = LivePage::new(3, 3, 960, &[7u8; 300]);
        assert_eq!(&p.chunk[..5], b"12c\r\n");
        assert_eq!(&p.chunk[5..305], &p.bytes[..]);
        assert_eq!(&p.chunk[305..], b"\r\n");
        assert_eq!(
            p.bytes.as_ptr(),
            p.chunk[5..].as_ptr(),
            "one buffer, no copy"
        );
    }

    proptest::proptest! {
        /// Whatever the cadence and whenever listeners join, every stream a listener gets
        /// starts with the one BOS page, numbered 0, and OpusTags at 1 (RFC 3533 §6); the audio
        /// pages after them follow one another without a gap.
        #[test]
        fn every_listener_stream_starts_at_sequence_zero(
            page_packets in 1usize..60,
            burst_ms in 0u64..3000,
            joins in proptest::collection::vec(0usize..40, 1..6),
        ) {
            let page = Duration::from_millis(20 * page_packets as u64);
            let s = LiveStream::new(
                OggOpusWriter::new(7, 1, 312, vec![]),
                page,
                Duration::from_millis(burst_ms),
                // Room for every page of the run: no listener lags out.
                page * 256,
            );
            let mut w = OggOpusWriter::new(7, 1, 312, vec![]);
            let mut subs = Vec::new();
            for pages_before in joins {
                for _ in 0..pages_before {
                    for _ in 0..page_packets {
                        w.push(&[0xF8, 0xFF, 0xFE], FRAME_SAMPLES as u32);
                    }
                    let p = w.flush(false).expect("a page");
                    s.publish(to_live(p));
                }
                subs.push(s.subscribe().expect("open"));
            }
            for _ in 0..page_packets {
                w.push(&[0xF8, 0xFF, 0xFE], FRAME_SAMPLES as u32);
            }
            s.publish(to_live(w.flush(true).expect("last page")));
            s.close();
            for mut sub in subs {
                let mut pages = PageReader::new();
                pages.push(&received(&mut sub));
                let mut seen = Vec::new();
                while let Some(p) = pages.next_page().expect("valid pages") {
                    seen.push((p.seq, p.bos()));
                }
                proptest::prop_assert!(seen.len() >= 3, "headers and at least one page");
                proptest::prop_assert_eq!(seen[0], (0, true));
                proptest::prop_assert_eq!(seen[1], (1, false));
                proptest::prop_assert!(seen[2..].iter().all(|&(_, bos)| !bos));
                for pair in seen[2..].windows(2) {
                    proptest::prop_assert_eq!(pair[0].0 + 1, pair[1].0);
                }
            }
        }
    }

    #[test]
    fn a_fenced_pager_publishes_nothing_and_a_revoked_one_stops_without_ending_the_stream() {
        let s = stream();
        let (tx, rx) = crossbeam_channel::unbounded();
        let clock = crate::clock::Clock::manual(10_000);
        let fence = Arc::new(crate::fence::Fence::default());
        fence.extend(5_000); // lapsed already
        let (_attach_tx, attach) = crossbeam_channel::bounded(1);
        let t = spawn_pager(
            "t",
            Pager {
                writer: OggOpusWriter::new(7, 1, 312, vec![]),
                page: Duration::from_millis(200),
                input: rx,
                stream: s.clone(),
                attach,
                ending: Arc::new(AtomicBool::new(true)),
                metrics: Arc::new(Metrics::default()),
                hls: None,
                fence: fence.clone(),
                clock: clock.clone(),
            },
        )
        .unwrap();
        for _ in 0..50 {
            tx.send(vec![0xF8, 0xFF, 0xFE]).unwrap();
        }
        // Fenced: the packets wait, nothing is published.
        std::thread::sleep(Duration::from_millis(100));
        assert!(s.ring.lock().recent.is_empty(), "published while fenced");
        // Renewed: it goes on.
        fence.extend(20_000);
        while s.ring.lock().recent.back().map(|p| p.last_seq) < Some(6) {
            std::thread::yield_now();
        }
        // Revoked (the lease went to another node): it stops with no page more and no EOS,
        // though the space was "ending" and packets are waiting.
        let before = s.ring.lock().recent.back().map(|p| p.last_seq);
        fence.revoke();
        for _ in 0..50 {
            // The pager may already be gone.
            let _ = tx.send(vec![0xF8, 0xFF, 0xFE]);
        }
        t.join().unwrap();
        assert_eq!(s.ring.lock().recent.back().map(|p| p.last_seq), before);
        assert!(s.is_closed());
    }
}
