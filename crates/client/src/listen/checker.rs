//! A sans-IO checker of an Ogg/Opus byte stream: feed it bytes as they arrive, read counters and
//! decoded audio out. No sockets, no clock, so every framing fault can be tested directly.
//!
//! What it checks (and counts, never aborting on):
//! - the first page has BOS set, its packet is `OpusHead`, the next one `OpusTags`;
//! - page sequence numbers increase by one (a later BOS page starts a new chained stream), but
//!   for the first audio page after the headers, which may jump ahead: a listener who joins
//!   mid-stream gets the headers at sequence 0 and 1 and then the live pages with their own
//!   numbers (RFC 3533 allows the hole; Icecast and tribune send it);
//! - each audio page's granule position equals the previous one plus the samples of the packets
//!   completed in between;
//! - page CRCs (a bad page is counted and skipped by the page reader);
//! - every audio packet decodes.

use opus::{Channels, Decoder};
use tribune_media::ogg::{FLAG_BOS, PacketReader, Page, PageReader};

use crate::{Result, SAMPLE_RATE};

/// Longest Opus packet duration (120 ms at 48 kHz): the decoder's output buffer.
const MAX_DECODED: usize = 5760;

/// Counters of a stream checked so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Bytes pushed.
    pub bytes: u64,
    /// Pages with a valid CRC.
    pub pages: u64,
    /// Opus audio packets (everything after `OpusHead` and `OpusTags`).
    pub audio_packets: u64,
    /// Samples decoded from the audio packets, 48 kHz mono, before pre-skip trimming.
    pub samples: u64,
    /// Page sequence discontinuities.
    pub seq_gaps: u64,
    /// Audio pages whose granule is not the previous granule plus the samples of the packets
    /// completed in between.
    pub granule_gaps: u64,
    /// Pages rejected by the page reader (bad CRC or framing).
    pub crc_errors: u64,
    /// Audio packets libopus could not decode.
    pub decode_errors: u64,
    /// Granule position of the first audio page.
    pub first_granule: Option<u64>,
    /// The stream began as Ogg/Opus must: BOS on the first page, `OpusHead` then `OpusTags`.
    pub header_ok: bool,
    /// Channel count from `OpusHead`.
    pub channels: Option<u8>,
    /// Pre-skip from `OpusHead`, in 48 kHz samples.
    pub pre_skip: Option<u16>,
}

/// Where we are in the logical stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Head,
    Tags,
    Audio,
}

/// The checker. See the module docs.
pub struct StreamChecker {
    pages: PageReader,
    packets: PacketReader,
    decoder: Decoder,
    stats: Stats,
    expect: Expect,
    /// The first logical stream's header was fine so far.
    head_seen_ok: bool,
    /// Chained streams seen after the first (a BOS page after the start begins one).
    chain: u64,
    last_seq: Option<u32>,
    /// The OpusTags page was the last page: the next one may jump ahead in sequence.
    after_headers: bool,
    last_granule: Option<u64>,
    /// Samples of the audio packets completed since the last granule.
    pending_samples: u64,
    /// Decoded samples still to drop at the start (pre-skip, applied once).
    skip_left: u64,
    /// Whether pre-skip was already taken from an `OpusHead`.
    skip_set: bool,
    scratch: Vec<i16>,
    pcm: Vec<i16>,
}

impl StreamChecker {
    /// A checker expecting the start of a stream.
    pub fn new() -> Result<Self> {
        Ok(Self {
            pages: PageReader::new(),
            packets: PacketReader::new(),
            decoder: Decoder::new(SAMPLE_RATE, Channels::Mono)?,
            stats: Stats::default(),
            expect: Expect::Head,
            head_seen_ok: false,
            chain: 0,
            last_seq: None,
            after_headers: false,
            last_granule: None,
            pending_samples: 0,
            skip_left: 0,
            skip_set: false,
            scratch: vec![0; MAX_DECODED],
            pcm: Vec::new(),
        })
    }

    /// Feeds bytes, in chunks of any size.
    pub fn push(&mut self, bytes: &[u8]) {
        self.stats.bytes += bytes.len() as u64;
        self.pages.push(bytes);
        // Every error consumes input (the reader resyncs), but bound the loop regardless.
        let mut errors_left = bytes.len() + 1;
        loop {
            match self.pages.next_page() {
                Ok(Some(page)) => self.on_page(&page),
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "bad Ogg page");
                    self.stats.crc_errors += 1;
                    errors_left = errors_left.saturating_sub(1);
                    if errors_left == 0 {
                        break;
                    }
                }
            }
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Takes the audio decoded since the last call: 48 kHz mono, pre-skip removed.
    pub fn take_pcm(&mut self) -> Vec<i16> {
        std::mem::take(&mut self.pcm)
    }

    fn on_page(&mut self, page: &Page) {
        let first = self.stats.pages == 0;
        self.stats.pages += 1;
        let bos = page.flags & FLAG_BOS != 0;
        if first {
            self.head_seen_ok = bos;
        } else if bos {
            // A chained stream (e.g. the source restarted): headers again, sequence from anew.
            self.chain += 1;
            self.expect = Expect::Head;
            self.packets = PacketReader::new();
            self.last_granule = None;
            self.pending_samples = 0;
        }
        if let Some(prev) = self.last_seq
            && !bos
            && !(self.after_headers && seq_ahead(prev, page.seq))
            && page.seq != prev.wrapping_add(1)
        {
            self.stats.seq_gaps += 1;
        }
        self.last_seq = Some(page.seq);
        self.after_headers = false;

        self.packets.push_page(page);
        while let Some(packet) = self.packets.next_packet() {
            self.on_packet(&packet.data, packet.bos, packet.granule);
        }
    }

    fn on_packet(&mut self, data: &[u8], bos: bool, granule: Option<u64>) {
        match self.expect {
            Expect::Head => {
                self.expect = Expect::Tags;
                if let Some((channels, pre_skip)) = parse_head(data) {
                    if !self.skip_set {
                        self.skip_set = true;
                        self.skip_left = u64::from(pre_skip);
                        self.stats.channels = Some(channels);
                        self.stats.pre_skip = Some(pre_skip);
                    }
                    self.head_seen_ok &= bos;
                    return;
                }
                // No OpusHead: decode what there is.
                self.expect = Expect::Audio;
            }
            Expect::Tags => {
                self.expect = Expect::Audio;
                if data.starts_with(b"OpusTags") {
                    if self.chain == 0 && self.head_seen_ok {
                        self.stats.header_ok = true;
                    }
                    self.after_headers = true;
                    return;
                }
            }
            Expect::Audio => {}
        }
        self.on_audio(data, granule);
    }

    fn on_audio(&mut self, data: &[u8], granule: Option<u64>) {
        self.stats.audio_packets += 1;
        let mut samples = packet_samples(data).map_or(0, u64::from);
        match self.decoder.decode(data, &mut self.scratch, false) {
            Ok(n) => {
                samples = n as u64;
                self.stats.samples += samples;
                let skip = self.skip_left.min(samples) as usize;
                self.skip_left -= skip as u64;
                self.pcm.extend_from_slice(&self.scratch[skip..n]);
            }
            Err(e) => {
                tracing::debug!(error = %e, bytes = data.len(), "undecodable Opus packet");
                self.stats.decode_errors += 1;
            }
        }
        self.pending_samples += samples;
        if let Some(g) = granule {
            match self.last_granule {
                Some(prev) if prev.wrapping_add(self.pending_samples) != g => {
                    self.stats.granule_gaps += 1;
                }
                Some(_) => {}
                None => {
                    if self.stats.first_granule.is_none() {
                        self.stats.first_granule = Some(g);
                    }
                }
            }
            self.last_granule = Some(g);
            self.pending_samples = 0;
        }
    }
}

/// Parses `OpusHead` (RFC 7845 §5.1): channel count and pre-skip, if it is one we can decode.
fn parse_head(data: &[u8]) -> Option<(u8, u16)> {
    if data.len() < 19 || !data.starts_with(b"OpusHead") {
        return None;
    }
    // Major version 0 (the high nibble) is the only one defined.
    if data[8] >> 4 != 0 || data[9] == 0 {
        return None;
    }
    Some((data[9], u16::from_le_bytes([data[10], data[11]])))
}

/// Duration of an Opus packet in 48 kHz samples, from its TOC byte (RFC 6716 §3.1).
pub(crate) fn packet_samples(data: &[u8]) -> Option<u32> {
    let toc = *data.first()?;
    let config = toc >> 3;
    // Frame sizes in units of 2.5 ms (120 samples).
    let units = match config {
        0..=11 => [4, 8, 16, 24][usize::from(config % 4)],
        12..=15 => [4, 8][usize::from(config % 2)],
        _ => [1, 2, 4, 8][usize::from(config % 4)],
    };
    let frames = match toc & 3 {
        0 => 1,
        1 | 2 => 2,
        _ => u32::from(*data.get(1)? & 0x3f),
    };
    Some(frames * units * 120)
}

/// Whether `seq` comes after `prev` (in serial-number order, RFC 1982 style over 32 bits).
fn seq_ahead(prev: u32, seq: u32) -> bool {
    let d = seq.wrapping_sub(prev);
    d != 0 && d < 1 << 31
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::tones::tone_present;
    use tribune_media::oggopus::OggOpusWriter;

    /// Pre-skip of libopus at 48 kHz (its lookahead).
    const PRE_SKIP: u16 = 312;
    /// Packets per page.
    const PER_PAGE: usize = 5;

    /// `frames` 20 ms Opus packets of a sine at `hz`.
    pub(crate) fn encode_tone(hz: f32, frames: usize) -> Vec<Vec<u8>> {
        let mut enc =
            opus::Encoder::new(SAMPLE_RATE, Channels::Mono, opus::Application::Voip).unwrap();
        let mut out = vec![0u8; 4000];
        (0..frames)
            .map(|f| {
                let pcm: Vec<f32> = (0..960)
                    .map(|i| {
                        let t = (f * 960 + i) as f32 / SAMPLE_RATE as f32;
                        0.25 * (std::f32::consts::TAU * hz * t).sin()
                    })
                    .collect();
                let n = enc.encode_float(&pcm, &mut out).unwrap();
                out[..n].to_vec()
            })
            .collect()
    }

    /// An Ogg/Opus stream: the header bytes, then each audio page's bytes.
    pub(crate) fn stream(packets: &[Vec<u8>]) -> (Vec<u8>, Vec<Vec<u8>>) {
        let mut w = OggOpusWriter::new(0x7417_0001, 1, PRE_SKIP, Vec::new());
        let head = w.header_pages();
        let pages = packets
            .chunks(PER_PAGE)
            .map(|chunk| {
                for p in chunk {
                    w.push(p, 960);
                }
                w.flush(false).unwrap().bytes
            })
            .collect();
        (head, pages)
    }

    fn check(chunks: &[&[u8]]) -> (Stats, Vec<i16>) {
        let mut c = StreamChecker::new().unwrap();
        let mut pcm = Vec::new();
        for chunk in chunks {
            c.push(chunk);
            pcm.extend(c.take_pcm());
        }
        (c.stats().clone(), pcm)
    }

    fn to_f32(pcm: &[i16]) -> Vec<f32> {
        pcm.iter().map(|&s| f32::from(s) / 32768.0).collect()
    }

    #[test]
    fn clean_stream_in_any_split() {
        let packets = encode_tone(440.0, 50);
        let (head, pages) = stream(&packets);
        let all: Vec<u8> = head.iter().chain(pages.iter().flatten()).copied().collect();

        let (whole, pcm) = check(&[&all]);
        assert!(whole.header_ok);
        assert_eq!(whole.bytes, all.len() as u64);
        assert_eq!(whole.pages, 2 + 10);
        assert_eq!(whole.audio_packets, 50);
        assert_eq!(whole.samples, 50 * 960);
        assert_eq!(whole.first_granule, Some(5 * 960));
        assert_eq!(whole.channels, Some(1));
        assert_eq!(whole.pre_skip, Some(PRE_SKIP));
        assert_eq!(
            (
                whole.seq_gaps,
                whole.granule_gaps,
                whole.crc_errors,
                whole.decode_errors
            ),
            (0, 0, 0, 0)
        );
        assert_eq!(pcm.len(), 50 * 960 - usize::from(PRE_SKIP));
        let pcm = to_f32(&pcm);
        assert!(tone_present(&pcm, 440.0));
        assert!(!tone_present(&pcm, 660.0));

        let small: Vec<&[u8]> = all.chunks(7).collect();
        let (split, split_pcm) = check(&small);
        assert_eq!(split, whole);
        assert_eq!(to_f32(&split_pcm), pcm);
    }

    #[test]
    fn a_missing_page_is_one_seq_gap_and_one_granule_gap() {
        let (head, mut pages) = stream(&encode_tone(440.0, 50));
        pages.remove(4);
        let all: Vec<u8> = head.iter().chain(pages.iter().flatten()).copied().collect();
        let (s, _) = check(&[&all]);
        assert!(s.header_ok);
        assert_eq!(s.seq_gaps, 1);
        assert_eq!(s.granule_gaps, 1);
        assert_eq!(s.audio_packets, 45);
        assert_eq!(s.crc_errors, 0);
    }

    #[test]
    fn a_corrupt_page_is_a_crc_error_and_a_gap() {
        let (head, mut pages) = stream(&encode_tone(440.0, 50));
        let mid = pages[3].len() / 2;
        pages[3][mid] ^= 0x55;
        let all: Vec<u8> = head.iter().chain(pages.iter().flatten()).copied().collect();
        let (s, _) = check(&[&all]);
        assert_eq!(s.crc_errors, 1);
        assert_eq!(s.pages, 2 + 9);
        assert_eq!(s.seq_gaps, 1);
        assert_eq!(s.granule_gaps, 1);
        assert_eq!(s.audio_packets, 45);
    }

    #[test]
    fn late_join_with_fresh_headers_is_continuous() {
        let (_, pages) = stream(&encode_tone(440.0, 50));
        let w = OggOpusWriter::new(0x7417_0001, 1, PRE_SKIP, Vec::new());
        // Join at audio page index 6, i.e. sequence number 8, after headers at 0 and 1.
        let head = w.header_pages();
        let all: Vec<u8> = head
            .iter()
            .chain(pages[6..].iter().flatten())
            .copied()
            .collect();
        let (s, pcm) = check(&[&all]);
        assert!(s.header_ok);
        assert_eq!(s.seq_gaps, 0, "the jump right after the headers is no gap");
        assert_eq!(s.granule_gaps, 0);
        assert_eq!(s.first_granule, Some(7 * 5 * 960));
        assert_eq!(s.audio_packets, 20);
        assert!(tone_present(&to_f32(&pcm), 440.0));
    }

    #[test]
    fn a_gap_after_a_late_join_is_still_a_gap() {
        let (_, pages) = stream(&encode_tone(440.0, 50));
        let head = OggOpusWriter::new(0x7417_0001, 1, PRE_SKIP, Vec::new()).header_pages();
        // Joined at page 6, then page 8 never came.
        let all: Vec<u8> = head
            .iter()
            .chain(pages[6..8].iter().flatten())
            .chain(pages[9..].iter().flatten())
            .copied()
            .collect();
        let (s, _) = check(&[&all]);
        assert_eq!((s.seq_gaps, s.granule_gaps), (1, 1));
        // A first audio page numbered back into the headers is no join: a gap.
        let mut reader = PageReader::new();
        reader.push(&pages[0]);
        let mut page = reader.next_page().unwrap().unwrap();
        page.seq = 1;
        let bad = page.to_bytes().unwrap();
        let all: Vec<u8> = head.iter().chain(bad.iter()).copied().collect();
        let (s, _) = check(&[&all]);
        assert_eq!(s.seq_gaps, 1);
    }

    #[test]
    fn audio_without_headers_is_decoded_but_flagged() {
        let (_, pages) = stream(&encode_tone(440.0, 50));
        let all: Vec<u8> = pages.iter().flatten().copied().collect();
        let (s, pcm) = check(&[&all]);
        assert!(!s.header_ok);
        assert_eq!(s.audio_packets, 50);
        assert_eq!(s.decode_errors, 0);
        // No OpusHead, so no pre-skip.
        assert_eq!(pcm.len(), 50 * 960);
    }

    #[test]
    fn undecodable_packet_is_counted() {
        let mut packets = encode_tone(440.0, 10);
        // Code 3 (arbitrary frame count) with zero frames: invalid per RFC 6716.
        packets[4] = vec![0xfb, 0x00];
        let (head, pages) = stream(&packets);
        let all: Vec<u8> = head.iter().chain(pages.iter().flatten()).copied().collect();
        let (s, _) = check(&[&all]);
        assert_eq!(s.decode_errors, 1);
        assert_eq!(s.audio_packets, 10);
    }

    #[test]
    fn toc_durations() {
        for p in encode_tone(440.0, 3) {
            assert_eq!(packet_samples(&p), Some(960));
        }
        // CELT fullband 20 ms, one frame; SILK 60 ms, two frames; CELT 2.5 ms, code 3 x 4.
        assert_eq!(packet_samples(&[0xf8]), Some(960));
        assert_eq!(packet_samples(&[0x19]), Some(2 * 2880));
        assert_eq!(packet_samples(&[0x83, 0x04]), Some(4 * 120));
        assert_eq!(packet_samples(&[]), None);
        assert_eq!(packet_samples(&[0x03]), None);
    }
}
