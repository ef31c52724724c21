//! Ogg/Opus (RFC 7845): the identification and comment headers, and a writer for the audio pages
//! of one logical stream.
//!
//! The live server shares audio pages between listeners who joined at different moments, so the
//! writer separates the two header pages ([`OggOpusWriter::header_pages`], the same bytes for
//! every listener) from the audio pages (made once by [`OggOpusWriter::flush`]).
//!
//! The header pages are always numbered 0 and 1, as RFC 3533 §6 numbers the pages of a logical
//! stream from 0: libogg readers (VLC, Icecast's relay) refuse a BOS page with any other number.
//! A listener who joins mid-stream therefore sees a jump in the page sequence right after the
//! headers (from 1 to the first shared page it gets). That jump is a hole every Ogg reader
//! accepts; it is what Icecast itself sends to a listener who joins late.
//!
//! Granule positions follow RFC 7845 section 4: the total number of 48 kHz samples decoded up to
//! the end of the last packet completed on the page, pre-skip samples included (they are decoded,
//! then discarded by the player). Header pages have granule 0; only the OpusHead page has BOS.

use crate::ogg::{self, FLAG_BOS, FLAG_CONTINUED, FLAG_EOS, MAX_LACING};

/// Ogg/Opus granule positions always count samples at 48 kHz, whatever the input rate.
pub const GRANULE_RATE: u32 = 48_000;
/// Version of the OpusHead layout we write (RFC 7845 section 5.1: 1).
const OPUS_HEAD_VERSION: u8 = 1;
/// Channel mapping family 0: mono or stereo, no mapping table.
const MAPPING_FAMILY_MONO_STEREO: u8 = 0;
/// The largest packet that fits on one page with one lacing value to spare: 254 * 255 + 254.
/// OpusTags larger than this would spill onto a second page and break the header numbering.
const MAX_ONE_PAGE_PACKET: usize = 254 * 255 + 254;
/// One 20 ms Opus packet of silence: TOC `0xF8` (CELT-only, fullband, 20 ms, mono, one
/// frame) and a two-byte frame that decodes to digital silence. What a takeover fills the
/// recording's lost interval with.
pub const SILENCE_20MS: [u8; 3] = [0xF8, 0xFF, 0xFE];
/// Vendor string written in OpusTags.
pub const VENDOR: &str = concat!("tribune ", env!("CARGO_PKG_VERSION"));

/// The OpusHead identification header (RFC 7845 section 5.1), channel mapping family 0.
///
/// `channels` should be 1 or 2 for family 0; `pre_skip` is in 48 kHz samples; `output_gain` is
/// in Q7.8 dB.
pub fn opus_head(channels: u8, pre_skip: u16, input_sample_rate: u32, output_gain: i16) -> Vec<u8> {
    let mut h = Vec::with_capacity(19);
    h.extend_from_slice(b"OpusHead");
    h.push(OPUS_HEAD_VERSION);
    h.push(channels);
    h.extend_from_slice(&pre_skip.to_le_bytes());
    h.extend_from_slice(&input_sample_rate.to_le_bytes());
    h.extend_from_slice(&output_gain.to_le_bytes());
    h.push(MAPPING_FAMILY_MONO_STEREO);
    h
}

/// The OpusTags comment header (RFC 7845 section 5.2): a vendor string and `KEY=value` comments.
pub fn opus_tags(vendor: &str, comments: &[(&str, &str)]) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(b"OpusTags");
    t.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
    t.extend_from_slice(vendor.as_bytes());
    t.extend_from_slice(&(comments.len() as u32).to_le_bytes());
    for (k, v) in comments {
        let len = k.len() + 1 + v.len();
        t.extend_from_slice(&(len as u32).to_le_bytes());
        t.extend_from_slice(k.as_bytes());
        t.push(b'=');
        t.extend_from_slice(v.as_bytes());
    }
    t
}

/// One or more consecutive audio pages produced by one [`OggOpusWriter::flush`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioPage {
    /// Sequence number of the first page in `bytes`.
    pub seq: u32,
    /// Sequence number of the last page in `bytes` (equal to `seq` for a single page).
    pub last_seq: u32,
    /// Granule position of the last page: samples of the stream up to its end, pre-skip included.
    pub granule: u64,
    /// The pages, serialised back to back.
    pub bytes: Vec<u8>,
}

/// Writes the pages of one Ogg/Opus logical stream.
#[derive(Debug, Clone)]
pub struct OggOpusWriter {
    serial: u32,
    head: Vec<u8>,
    tags: Vec<u8>,
    next_seq: u32,
    /// Granule at the end of the pages already flushed.
    flushed_granule: u64,
    /// Queued packet bytes, lacing values, and (lacing count, granule) where each packet ends.
    body: Vec<u8>,
    lacing: Vec<u8>,
    ends: Vec<(usize, u64)>,
    pending_samples: u64,
}

impl OggOpusWriter {
    /// The sequence number of the first audio page of a stream read from its start (0 and 1 are
    /// the OpusHead and OpusTags pages).
    pub const FIRST_AUDIO_SEQ: u32 = 2;

    /// A writer for stream `serial` of `channels` channels (1 or 2) with `pre_skip` samples of
    /// encoder delay and the given comments (`TITLE`, `ARTIST`, ...).
    pub fn new(serial: u32, channels: u8, pre_skip: u16, tags: Vec<(String, String)>) -> Self {
        let head = opus_head(channels, pre_skip, GRANULE_RATE, 0);
        let mut kept: Vec<(&str, &str)> =
            tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut packet = opus_tags(VENDOR, &kept);
        // Header numbering assumes OpusTags fits on one page: drop comments until it does.
        while packet.len() > MAX_ONE_PAGE_PACKET && !kept.is_empty() {
            kept.pop();
            packet = opus_tags(VENDOR, &kept);
        }
        Self {
            serial,
            head,
            tags: packet,
            next_seq: Self::FIRST_AUDIO_SEQ,
            flushed_granule: 0,
            body: Vec::new(),
            lacing: Vec::new(),
            ends: Vec::new(),
            pending_samples: 0,
        }
    }

    /// A writer that continues a stream already partly written, e.g. a recording cut short by a
    /// crash: its next audio page gets sequence `next_seq` and its granule positions count on
    /// from `granule` (the granule of the last page kept), so the pages it makes, appended after
    /// the kept ones, read as one logical stream.
    ///
    /// The other arguments are those of [`OggOpusWriter::new`], as the stream's headers have them;
    /// [`OggOpusWriter::header_pages`] still makes headers for readers who start later.
    /// `next_seq` below [`OggOpusWriter::FIRST_AUDIO_SEQ`] is treated as that.
    pub fn resume(
        serial: u32,
        channels: u8,
        pre_skip: u16,
        tags: Vec<(String, String)>,
        next_seq: u32,
        granule: u64,
    ) -> Self {
        let mut w = Self::new(serial, channels, pre_skip, tags);
        w.next_seq = next_seq.max(Self::FIRST_AUDIO_SEQ);
        w.flushed_granule = granule;
        w
    }

    /// The stream serial number.
    pub fn serial(&self) -> u32 {
        self.serial
    }

    /// Sequence number the next audio page will get.
    pub fn next_seq(&self) -> u32 {
        self.next_seq
    }

    /// The OpusHead page (BOS, sequence 0) followed by the OpusTags page (sequence 1), both with
    /// granule 0, as bytes.
    ///
    /// A listener who starts at audio page `k` gets these and then the shared pages from `k` on:
    /// one logical stream with a hole in the sequence after the headers when `k > 2`.
    pub fn header_pages(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.head.len() + self.tags.len() + 2 * 300);
        let mut lacing = Vec::new();
        for (i, (packet, flags)) in [(&self.head, FLAG_BOS), (&self.tags, 0)]
            .into_iter()
            .enumerate()
        {
            lacing.clear();
            ogg::lace(packet.len(), &mut lacing);
            // Both headers are bounded to one page above, so this cannot fail.
            let seq = i as u32;
            if ogg::write_page(&mut out, flags, 0, self.serial, seq, &lacing, packet).is_err() {
                debug_assert!(false, "header does not fit a page");
            }
        }
        out
    }

    /// Queues one Opus packet holding `samples` samples at 48 kHz.
    pub fn push(&mut self, packet: &[u8], samples: u32) {
        self.body.extend_from_slice(packet);
        ogg::lace(packet.len(), &mut self.lacing);
        self.pending_samples += u64::from(samples);
        self.ends.push((
            self.lacing.len(),
            self.flushed_granule + self.pending_samples,
        ));
    }

    /// Samples queued and not yet flushed.
    pub fn pending_samples(&self) -> u64 {
        self.pending_samples
    }

    /// The granule position once the queued packets are flushed.
    pub fn granule(&self) -> u64 {
        self.flushed_granule + self.pending_samples
    }

    /// Puts all queued packets on one page (several consecutive pages when they need more than
    /// 255 lacing values), marking the last one EOS when `eos`.
    ///
    /// Returns `None` when nothing is queued and `eos` is false. With `eos` and nothing queued,
    /// it returns an empty EOS page carrying the stream's granule so far (as libogg does).
    pub fn flush(&mut self, eos: bool) -> Option<AudioPage> {
        if self.lacing.is_empty() && !eos {
            return None;
        }
        let first_seq = self.next_seq;
        let mut bytes = Vec::with_capacity(self.body.len() + self.lacing.len() + 2 * 282);
        let mut lace_pos = 0;
        let mut body_pos = 0;
        let mut end_idx = 0;
        let mut continued = false;
        let mut granule = self.flushed_granule;
        loop {
            let n = (self.lacing.len() - lace_pos).min(MAX_LACING);
            let lacing = &self.lacing[lace_pos..lace_pos + n];
            let body_len: usize = lacing.iter().map(|&l| l as usize).sum();
            let body = &self.body[body_pos..body_pos + body_len];
            // Granule: the end of the last packet completed on this page, or -1 if none.
            let mut page_granule = u64::MAX;
            while end_idx < self.ends.len() && self.ends[end_idx].0 <= lace_pos + n {
                page_granule = self.ends[end_idx].1;
                end_idx += 1;
            }
            lace_pos += n;
            body_pos += body_len;
            let last = lace_pos == self.lacing.len();
            if n == 0 {
                // Bare EOS page: no packet, the stream's granule so far.
                page_granule = self.flushed_granule;
            }
            if page_granule != u64::MAX {
                granule = page_granule;
            }
            let mut flags = if continued { FLAG_CONTINUED } else { 0 };
            if last && eos {
                flags |= FLAG_EOS;
            }
            // At most 255 lacing values by construction.
            if ogg::write_page(
                &mut bytes,
                flags,
                page_granule,
                self.serial,
                self.next_seq,
                lacing,
                body,
            )
            .is_err()
            {
                debug_assert!(false, "page over 255 lacing values");
            }
            self.next_seq = self.next_seq.wrapping_add(1);
            continued = lacing.last().is_some_and(|&l| l == 255);
            if last {
                break;
            }
        }
        self.flushed_granule += self.pending_samples;
        self.pending_samples = 0;
        self.body.clear();
        self.lacing.clear();
        self.ends.clear();
        Some(AudioPage {
            seq: first_seq,
            last_seq: self.next_seq.wrapping_sub(1),
            granule,
            bytes,
        })
    }
}

#[cfg(test)]
mod tests;
