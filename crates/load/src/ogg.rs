//! A lean, sans-IO continuity checker of an Ogg stream, one per simulated listener.
//!
//! Thousands of listeners run in one process, so this never buffers a page and never decodes:
//! it reads the 27-byte page header and the lacing values as bytes arrive, walks the body by its
//! lacing values, and keeps the first two bytes of each packet (an Opus TOC byte and frame count
//! tell its duration, RFC 6716 §3.1). Under 500 bytes of state; time is an argument.
//!
//! What counts as a gap:
//! - a page whose sequence number is not the previous page's of its serial plus one, except the
//!   first page after an Ogg/Opus stream's two headers, which may jump ahead: a listener who
//!   joins mid-stream gets the headers at sequence 0 and 1 (RFC 3533 §6) and then the live
//!   pages with their own numbers, as Icecast and tribune send them;
//! - in an Ogg/Opus stream (first packet `OpusHead`), an audio page whose granule position is
//!   not the previous audio page's plus the samples of the packets completed in between (a page
//!   skipped and the rest renumbered still shows here); an end-of-stream page may end short
//!   (RFC 7845 §4.5). In any other Ogg stream, a granule position going backwards;
//! - losing the page framing (bytes that are not a page where one must start).
//!
//! CRCs are not checked: the point is what a listener missed, not what the wire corrupted.

use std::time::Duration;

use tribune_media::ogg::{CAPTURE, FLAG_BOS, FLAG_CONTINUED, FLAG_EOS, HEADER_LEN, MAX_LACING};

/// Granule position meaning "no packet ends on this page" (-1 in RFC 3533).
const NO_GRANULE: u64 = u64::MAX;
/// Logical streams followed at once. Chained streams (Icecast source restarts) follow each other,
/// so one is the norm; a few more tolerate a multiplexed stream without growing.
const MAX_STREAMS: usize = 4;
/// Bytes kept from the start of each packet: enough for `OpusHead`.
const PACKET_START: usize = 8;
/// Flags a version 0 page may have.
const KNOWN_FLAGS: u8 = FLAG_CONTINUED | FLAG_BOS | FLAG_EOS;

/// What the scanner saw so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Bytes pushed.
    pub bytes: u64,
    /// Page headers read.
    pub pages: u64,
    /// Pages that completed audio (not header) packets and carry a granule position.
    pub audio_pages: u64,
    /// Page sequence discontinuities.
    pub seq_gaps: u64,
    /// Audio pages whose granule position does not follow (see the module docs).
    pub granule_gaps: u64,
    /// Times the page framing was lost after it had been found.
    pub sync_losses: u64,
    /// Logical streams begun (BOS pages).
    pub streams: u64,
    /// When the first byte of the first audio page arrived (the `now` given with it).
    pub first_audio: Option<Duration>,
    /// The first logical stream is Ogg/Opus (its first packet is `OpusHead`).
    pub opus: bool,
}

impl Stats {
    /// All discontinuities: any of them means this listener missed audio.
    pub fn gaps(&self) -> u64 {
        self.seq_gaps + self.granule_gaps + self.sync_losses
    }
}

/// Per logical stream.
#[derive(Debug, Clone, Copy)]
struct Stream {
    serial: u32,
    last_seq: Option<u32>,
    /// Granule position of the last audio page.
    last_granule: Option<u64>,
    /// Samples of the audio packets completed since that page.
    pending: u64,
    /// Packets completed so far (the first two of an Opus stream are its headers).
    packets: u64,
    opus: bool,
    /// A page after the headers was seen: from now on every page must follow by one.
    audio_begun: bool,
}

impl Stream {
    fn new(serial: u32) -> Stream {
        Stream {
            serial,
            last_seq: None,
            last_granule: None,
            pending: 0,
            packets: 0,
            opus: false,
            audio_begun: false,
        }
    }

    fn is_audio_packet(&self, index: u64) -> bool {
        !self.opus || index >= 2
    }
}

/// Where in the byte stream we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    /// Looking for the capture pattern; `matched` bytes of it seen.
    Sync { matched: u8 },
    /// `have` bytes of the fixed header read.
    Header { have: u8 },
    /// `have` lacing values read.
    Lacing { have: u8 },
    /// In segment `seg` of the body, `left` bytes of it to go.
    Body { seg: u8, left: u8 },
}

/// The packet being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Packet {
    None,
    /// Its first bytes, how many of them we have, its length so far.
    Open {
        start: [u8; PACKET_START],
        have: u8,
        len: usize,
    },
    /// The tail of a packet whose start we never saw.
    Orphan,
}

/// The checker. Feed it with [`Scanner::push`].
#[derive(Debug, Clone)]
pub struct Scanner {
    at: At,
    header: [u8; HEADER_LEN],
    lacing: [u8; MAX_LACING],
    /// When the current page's first byte arrived.
    page_at: Duration,
    packet: Packet,
    /// Index in `streams` of the current page's stream.
    current: usize,
    streams: Vec<Stream>,
    /// The framing was found at least once.
    synced: bool,
    stats: Stats,
}

impl Default for Scanner {
    fn default() -> Self {
        Scanner::new()
    }
}

impl Scanner {
    /// A scanner expecting a page to start at the first byte.
    pub fn new() -> Scanner {
        Scanner {
            at: At::Header { have: 0 },
            header: [0; HEADER_LEN],
            lacing: [0; MAX_LACING],
            page_at: Duration::ZERO,
            packet: Packet::None,
            current: 0,
            streams: Vec::with_capacity(1),
            synced: false,
            stats: Stats::default(),
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Feeds bytes that arrived at `now` (any clock: join latency is read back in it).
    pub fn push(&mut self, input: &[u8], now: Duration) {
        self.stats.bytes += input.len() as u64;
        self.feed(input, now);
    }

    fn feed(&mut self, mut input: &[u8], now: Duration) {
        while let Some((&b, rest)) = input.split_first() {
            match self.at {
                At::Sync { matched } => {
                    input = rest;
                    if b == CAPTURE[matched as usize] {
                        if matched == 0 {
                            self.page_at = now;
                        }
                        if matched as usize == CAPTURE.len() - 1 {
                            self.header[..CAPTURE.len()].copy_from_slice(CAPTURE);
                            self.at = At::Header {
                                have: CAPTURE.len() as u8,
                            };
                        } else {
                            self.at = At::Sync {
                                matched: matched + 1,
                            };
                        }
                    } else {
                        // "OggS" has no prefix that is also a suffix: restart at this byte.
                        let again = b == CAPTURE[0];
                        if again {
                            self.page_at = now;
                        }
                        self.at = At::Sync {
                            matched: u8::from(again),
                        };
                    }
                }
                At::Header { have } => {
                    let have = have as usize;
                    if have < CAPTURE.len() {
                        if b != CAPTURE[have] {
                            self.lost_sync();
                            continue; // this byte may start the pattern
                        }
                        if have == 0 {
                            self.page_at = now;
                        }
                        self.header[have] = b;
                        input = rest;
                        self.at = At::Header {
                            have: have as u8 + 1,
                        };
                        continue;
                    }
                    let n = (HEADER_LEN - have).min(input.len());
                    self.header[have..have + n].copy_from_slice(&input[..n]);
                    input = &input[n..];
                    if have + n == HEADER_LEN {
                        self.header_done();
                    } else {
                        self.at = At::Header {
                            have: (have + n) as u8,
                        };
                    }
                }
                At::Lacing { have } => {
                    let have = have as usize;
                    let count = self.segments();
                    let n = (count - have).min(input.len());
                    self.lacing[have..have + n].copy_from_slice(&input[..n]);
                    input = &input[n..];
                    if have + n == count {
                        self.body_start();
                    } else {
                        self.at = At::Lacing {
                            have: (have + n) as u8,
                        };
                    }
                }
                At::Body { seg, left } => {
                    let n = (left as usize).min(input.len());
                    self.packet_bytes(&input[..n]);
                    input = &input[n..];
                    let left = left - n as u8;
                    self.at = At::Body { seg, left };
                    if left == 0 {
                        self.segment_done(seg);
                    }
                }
            }
        }
    }

    fn segments(&self) -> usize {
        self.header[26] as usize
    }

    fn lost_sync(&mut self) {
        if self.synced {
            self.stats.sync_losses += 1;
        }
        self.synced = false;
        self.packet = Packet::None;
        self.at = At::Sync { matched: 0 };
    }

    fn header_done(&mut self) {
        let h = &self.header;
        let flags = h[5];
        if h[4] != 0 || flags & !KNOWN_FLAGS != 0 {
            // A capture pattern inside a body, not a page: look for the real one in the bytes
            // taken for a header (a nested false start ends in a header state, which is kept).
            let replay = self.header;
            self.lost_sync();
            return self.feed(&replay[1..], self.page_at);
        }
        self.synced = true;
        self.stats.pages += 1;
        let le32 = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        let serial = le32(14);
        let seq = le32(18);
        let bos = flags & FLAG_BOS != 0;
        let found = self.streams.iter().position(|s| s.serial == serial);
        let index = match (found, bos) {
            (Some(i), false) => i,
            (found, _) => {
                if bos {
                    self.stats.streams += 1;
                }
                if let Some(i) = found {
                    self.streams.remove(i);
                }
                if self.streams.len() == MAX_STREAMS {
                    self.streams.remove(0);
                }
                self.streams.push(Stream::new(serial));
                self.streams.len() - 1
            }
        };
        if index != self.current {
            // Another logical stream's page: a packet left open belongs to the other one.
            self.packet = Packet::None;
        }
        self.current = index;
        let stream = &mut self.streams[index];
        // The first page after an Opus stream's headers may jump ahead (a late join).
        let after_headers = stream.opus && stream.packets == 2 && !stream.audio_begun;
        stream.audio_begun |= stream.opus && stream.packets >= 2;
        let jump = seq.wrapping_sub(stream.last_seq.unwrap_or(0));
        if let Some(last) = stream.last_seq
            && seq != last.wrapping_add(1)
            && !(after_headers && jump != 0 && jump < 1 << 31)
        {
            self.stats.seq_gaps += 1;
            // Do not also count the granule jump this gap causes.
            stream.last_granule = None;
            stream.pending = 0;
            self.packet = Packet::None;
        }
        stream.last_seq = Some(seq);
        self.at = At::Lacing { have: 0 };
        if self.segments() == 0 {
            self.body_start();
        }
    }

    fn body_start(&mut self) {
        let continued = self.header[5] & FLAG_CONTINUED != 0;
        self.packet = match (continued, self.packet) {
            (true, Packet::None) => Packet::Orphan,
            (true, open) => open,
            // A packet left open is abandoned by a page that does not continue it.
            (false, _) => Packet::None,
        };
        if self.segments() == 0 {
            return self.page_done();
        }
        self.enter_segment(0);
    }

    /// Moves to segment `seg`, finishing zero-length segments at once.
    fn enter_segment(&mut self, seg: usize) {
        let left = self.lacing[seg];
        self.at = At::Body {
            seg: seg as u8,
            left,
        };
        if left == 0 {
            self.segment_done(seg as u8);
        }
    }

    fn packet_bytes(&mut self, bytes: &[u8]) {
        match &mut self.packet {
            Packet::Open { start, have, len } => {
                let h = *have as usize;
                let n = (PACKET_START - h).min(bytes.len());
                start[h..h + n].copy_from_slice(&bytes[..n]);
                *have += n as u8;
                *len += bytes.len();
            }
            Packet::Orphan => {}
            Packet::None => {
                let mut start = [0; PACKET_START];
                let n = PACKET_START.min(bytes.len());
                start[..n].copy_from_slice(&bytes[..n]);
                self.packet = Packet::Open {
                    start,
                    have: n as u8,
                    len: bytes.len(),
                };
            }
        }
    }

    fn segment_done(&mut self, seg: u8) {
        let seg = seg as usize;
        if self.lacing[seg] < 255 {
            self.packet_done();
        }
        if seg + 1 < self.segments() {
            self.enter_segment(seg + 1);
        } else {
            self.page_done();
        }
    }

    fn packet_done(&mut self) {
        let packet = std::mem::replace(&mut self.packet, Packet::None);
        let Some(stream) = self.streams.get_mut(self.current) else {
            return;
        };
        let (start, have, len) = match packet {
            Packet::Orphan => return,
            Packet::None => ([0; PACKET_START], 0, 0),
            Packet::Open { start, have, len } => (start, have as usize, len),
        };
        let index = stream.packets;
        stream.packets += 1;
        if index == 0 && start[..have] == *b"OpusHead" {
            stream.opus = true;
            if self.stats.streams <= 1 {
                self.stats.opus = true;
            }
        }
        if stream.opus && stream.is_audio_packet(index) {
            stream.pending += u64::from(opus_samples(&start[..have.min(2)], len));
        }
    }

    fn page_done(&mut self) {
        self.at = At::Header { have: 0 };
        let h = &self.header;
        let granule = u64::from_le_bytes([h[6], h[7], h[8], h[9], h[10], h[11], h[12], h[13]]);
        let eos = h[5] & FLAG_EOS != 0;
        let Some(stream) = self.streams.get_mut(self.current) else {
            return;
        };
        // An audio page: audio packets end on it (for Opus, past the two header packets).
        let audio = granule != NO_GRANULE && stream.is_audio_packet(stream.packets.max(1) - 1);
        if audio {
            self.stats.audio_pages += 1;
            if granule > 0 && self.stats.first_audio.is_none() {
                self.stats.first_audio = Some(self.page_at);
            }
            if let Some(prev) = stream.last_granule {
                let follows = if stream.opus {
                    let expected = prev.saturating_add(stream.pending);
                    granule == expected || (eos && granule >= prev && granule < expected)
                } else {
                    granule >= prev
                };
                if !follows {
                    self.stats.granule_gaps += 1;
                }
            }
            stream.last_granule = Some(granule);
            stream.pending = 0;
        }
        if eos {
            let i = self.current;
            self.streams.remove(i);
            self.packet = Packet::None;
        }
    }
}

/// Duration in 48 kHz samples of an Opus packet from its first bytes (RFC 6716 §3.1): the TOC
/// byte's configuration gives the frame size, its code the frame count (code 3: the next byte).
/// 0 for an empty or truncated packet.
pub fn opus_samples(start: &[u8], len: usize) -> u32 {
    let Some(&toc) = start.first() else {
        return 0;
    };
    let config = (toc >> 3) as usize;
    let frame: u32 = match config {
        0..=11 => [480, 960, 1920, 2880][config % 4],
        12..=15 => [480, 960][config % 2],
        _ => [120, 240, 480, 960][config % 4],
    };
    let frames = match toc & 3 {
        0 => 1,
        1 | 2 => 2,
        _ if len < 2 => 0,
        _ => start.get(1).map_or(0, |c| u32::from(c & 0x3f)),
    };
    frame * frames
}

#[cfg(test)]
mod tests;
