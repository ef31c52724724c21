//! Ogg framing (RFC 3533), written by hand.
//!
//! The live server encodes each audio page once and shares the bytes between all listeners of a
//! space, yet every listener needs header pages numbered so that the shared pages follow them
//! without a sequence gap. That needs control over page sequence numbers that general-purpose Ogg
//! writers do not give, and the framing is small enough to own.
//!
//! - [`encode_page`] / [`write_page`]: one page from complete packets or raw lacing.
//! - [`PageReader`]: incremental, resynchronising page parser with a bounded buffer.
//! - [`PacketReader`]: reassembles packets that span pages.

use std::collections::VecDeque;

use crate::{Error, Result};

/// Header flag: the first packet on this page continues one from the previous page.
pub const FLAG_CONTINUED: u8 = 1;
/// Header flag: first page of a logical stream (beginning of stream).
pub const FLAG_BOS: u8 = 2;
/// Header flag: last page of a logical stream (end of stream).
pub const FLAG_EOS: u8 = 4;

/// The capture pattern that starts every page.
pub const CAPTURE: &[u8; 4] = b"OggS";
/// Size of the fixed part of a page header (before the lacing values).
pub const HEADER_LEN: usize = 27;
/// At most 255 lacing values fit in the one-byte segment count.
pub const MAX_LACING: usize = 255;
/// Largest possible page: header, 255 lacing values, 255 segments of 255 bytes.
pub const MAX_PAGE_LEN: usize = HEADER_LEN + MAX_LACING + MAX_LACING * 255;
/// Largest packet [`PacketReader`] reassembles. Our own streams never come close (Opus packets are
/// at most a few kB, OpusTags is small); the bound keeps a hostile stream of endless continued
/// pages from growing memory.
pub const MAX_PACKET_LEN: usize = 4 << 20;

/// Offset of the CRC field in the page header.
const CRC_OFFSET: usize = 22;
/// Only version 0 of the Ogg page format exists.
const VERSION: u8 = 0;
/// All flag bits defined by RFC 3533; a page with other bits set is not a valid page.
const KNOWN_FLAGS: u8 = FLAG_CONTINUED | FLAG_BOS | FLAG_EOS;

/// CRC lookup table for the Ogg polynomial, built at compile time.
const CRC_TABLE: [u32; 256] = crc_table();

/// The Ogg CRC polynomial (the one of ITU-T V.42 / Ethernet, used MSB-first).
const CRC_POLY: u32 = 0x04c1_1db7;

const fn crc_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut r = (i as u32) << 24;
        let mut bit = 0;
        while bit < 8 {
            r = if r & 0x8000_0000 != 0 {
                (r << 1) ^ CRC_POLY
            } else {
                r << 1
            };
            bit += 1;
        }
        table[i] = r;
        i += 1;
    }
    table
}

/// Continues an Ogg CRC over more bytes.
fn crc32_update(mut crc: u32, data: &[u8]) -> u32 {
    for &b in data {
        crc = (crc << 8) ^ CRC_TABLE[(((crc >> 24) as u8) ^ b) as usize];
    }
    crc
}

/// The Ogg CRC-32 of `data`: polynomial 0x04c11db7, MSB-first, initial value 0, no final xor.
///
/// Computed over a whole page with its CRC field set to zero.
pub fn crc32(data: &[u8]) -> u32 {
    crc32_update(0, data)
}

/// Appends the lacing values of one complete packet of `len` bytes (the 255/0 rule: `len / 255`
/// values of 255, then one value below 255, possibly 0).
pub fn lace(len: usize, lacing: &mut Vec<u8>) {
    lacing.extend(std::iter::repeat_n(255u8, len / 255));
    lacing.push((len % 255) as u8);
}

/// Appends one page to `out` from raw lacing values and the matching body.
///
/// This is the low-level writer used by [`encode_page`] and the Ogg/Opus writer; it allocates
/// nothing beyond growing `out`. The caller guarantees that the lacing values sum to
/// `body.len()`; [`Error::TooManySegments`] if there are more than 255 lacing values.
pub fn write_page(
    out: &mut Vec<u8>,
    flags: u8,
    granule: u64,
    serial: u32,
    seq: u32,
    lacing: &[u8],
    body: &[u8],
) -> Result<()> {
    if lacing.len() > MAX_LACING {
        return Err(Error::TooManySegments {
            lacing: lacing.len(),
        });
    }
    debug_assert_eq!(
        lacing.iter().map(|&l| l as usize).sum::<usize>(),
        body.len()
    );
    let start = out.len();
    out.extend_from_slice(CAPTURE);
    out.push(VERSION);
    out.push(flags);
    out.extend_from_slice(&granule.to_le_bytes());
    out.extend_from_slice(&serial.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.push(lacing.len() as u8);
    out.extend_from_slice(lacing);
    out.extend_from_slice(body);
    let crc = crc32(&out[start..]);
    out[start + CRC_OFFSET..start + CRC_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// Encodes one page holding exactly the given complete packets.
///
/// `granule` is written as given (`u64::MAX` is the "-1" of RFC 3533: no packet ends here).
/// Zero packets make a page with no segments (used for a bare end-of-stream page).
pub fn encode_page(
    flags: u8,
    granule: u64,
    serial: u32,
    seq: u32,
    packets: &[&[u8]],
) -> Result<Vec<u8>> {
    let mut lacing = Vec::new();
    for p in packets {
        lace(p.len(), &mut lacing);
    }
    if lacing.len() > MAX_LACING {
        return Err(Error::TooManySegments {
            lacing: lacing.len(),
        });
    }
    let body_len: usize = packets.iter().map(|p| p.len()).sum();
    let mut out = Vec::with_capacity(HEADER_LEN + lacing.len() + body_len);
    let mut body = Vec::with_capacity(body_len);
    for p in packets {
        body.extend_from_slice(p);
    }
    write_page(&mut out, flags, granule, serial, seq, &lacing, &body)?;
    Ok(out)
}

/// One parsed Ogg page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Header flags ([`FLAG_CONTINUED`], [`FLAG_BOS`], [`FLAG_EOS`]).
    pub flags: u8,
    /// Granule position; `u64::MAX` means no packet ends on this page.
    pub granule: u64,
    /// Bitstream serial number of the logical stream.
    pub serial: u32,
    /// Page sequence number within the logical stream.
    pub seq: u32,
    /// The lacing values (segment table).
    pub lacing: Vec<u8>,
    /// The page body: all segments back to back.
    pub body: Vec<u8>,
}

impl Page {
    /// Whether the first packet on this page continues one from the previous page.
    pub fn continued(&self) -> bool {
        self.flags & FLAG_CONTINUED != 0
    }

    /// Whether this is the first page of its logical stream.
    pub fn bos(&self) -> bool {
        self.flags & FLAG_BOS != 0
    }

    /// Whether this is the last page of its logical stream.
    pub fn eos(&self) -> bool {
        self.flags & FLAG_EOS != 0
    }

    /// The packet pieces on this page, in order, each with whether it completes on this page
    /// (`false` only for a last piece that continues on the next page).
    ///
    /// The first piece is the tail of the previous page's packet when [`Page::continued`].
    pub fn packets(&self) -> Packets<'_> {
        Packets {
            page: self,
            lacing_pos: 0,
            body_pos: 0,
        }
    }

    /// Serialises the page (with a fresh CRC).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.lacing.len() + self.body.len());
        write_page(
            &mut out,
            self.flags,
            self.granule,
            self.serial,
            self.seq,
            &self.lacing,
            &self.body,
        )?;
        Ok(out)
    }
}

/// Iterator over the packet pieces of a [`Page`]; see [`Page::packets`].
#[derive(Debug, Clone)]
pub struct Packets<'a> {
    page: &'a Page,
    lacing_pos: usize,
    body_pos: usize,
}

impl<'a> Iterator for Packets<'a> {
    type Item = (&'a [u8], bool);

    fn next(&mut self) -> Option<Self::Item> {
        let lacing = &self.page.lacing;
        if self.lacing_pos >= lacing.len() {
            return None;
        }
        let start = self.body_pos;
        let mut complete = false;
        while self.lacing_pos < lacing.len() {
            let l = lacing[self.lacing_pos];
            self.lacing_pos += 1;
            self.body_pos += l as usize;
            if l < 255 {
                complete = true;
                break;
            }
        }
        // A parsed page always has a body of exactly the lacing sum; stay in bounds regardless.
        let end = self.body_pos.min(self.page.body.len());
        let start = start.min(end);
        Some((&self.page.body[start..end], complete))
    }
}

/// Incremental Ogg page parser for a byte stream.
///
/// Push bytes as they arrive, then call [`PageReader::next_page`] until it returns `Ok(None)`.
/// Pages are parsed as bytes are pushed, so at most one incomplete page
/// ([`MAX_PAGE_LEN`] bytes) is held as raw bytes; garbage is discarded at once. Parsed pages wait
/// in a queue until taken, and runs of corrupt data between two pages are reported as one
/// [`Error::Corrupt`], so feeding garbage never grows memory.
#[derive(Debug, Default)]
pub struct PageReader {
    /// Raw bytes not yet parsed: empty, or starting at a possible capture pattern.
    buf: Vec<u8>,
    /// Pages and errors, in stream order.
    ready: VecDeque<Result<Page, Corrupt>>,
    /// Total corrupt bytes skipped since creation.
    skipped_total: u64,
}

/// A run of skipped bytes, queued in stream order between pages.
#[derive(Debug, Clone, Copy)]
struct Corrupt {
    skipped: usize,
    reason: &'static str,
}

/// What parsing the front of the buffer found.
enum Parse {
    /// A valid page of this many bytes.
    Page(Page, usize),
    /// Not a page: skip the first byte and resynchronise.
    Bad(&'static str),
    /// Need more bytes.
    Incomplete,
}

impl PageReader {
    /// A reader with nothing buffered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes from the stream. Any split of the stream gives the same pages.
    pub fn push(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        loop {
            if self.buf.is_empty() {
                // Fast path: skip garbage in the input directly without copying it.
                let at = find_capture_start(rest);
                if at > 0 {
                    self.skip(at, "no capture pattern");
                    rest = &rest[at..];
                }
            }
            // Move at most what completes the largest possible page, so the buffer stays bounded.
            let room = MAX_PAGE_LEN.saturating_sub(self.buf.len());
            let take = room.min(rest.len());
            self.buf.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            self.parse_buffered();
            if rest.is_empty() {
                break;
            }
        }
    }

    /// The next page, `Ok(None)` when more bytes are needed, or an error for a run of corrupt
    /// bytes that was skipped (the reader has already resynchronised; keep calling).
    pub fn next_page(&mut self) -> Result<Option<Page>> {
        match self.ready.pop_front() {
            None => Ok(None),
            Some(Ok(page)) => Ok(Some(page)),
            Some(Err(c)) => Err(Error::Corrupt {
                skipped: c.skipped,
                reason: c.reason,
            }),
        }
    }

    /// Raw bytes currently held that are not yet a whole page (at most [`MAX_PAGE_LEN`]).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Total number of corrupt bytes skipped so far.
    pub fn skipped_total(&self) -> u64 {
        self.skipped_total
    }

    /// Parses as many pages as the buffer holds.
    fn parse_buffered(&mut self) {
        let mut pos = 0;
        loop {
            let at = find_capture_start(&self.buf[pos..]);
            if at > 0 {
                self.skip(at, "no capture pattern");
                pos += at;
            }
            match parse_page(&self.buf[pos..]) {
                Parse::Incomplete => break,
                Parse::Page(page, len) => {
                    self.ready.push_back(Ok(page));
                    pos += len;
                }
                Parse::Bad(reason) => {
                    self.skip(1, reason);
                    pos += 1;
                }
            }
        }
        self.buf.drain(..pos);
    }

    /// Records skipped bytes, merging with an error already queued last.
    fn skip(&mut self, n: usize, reason: &'static str) {
        self.skipped_total += n as u64;
        if let Some(Err(c)) = self.ready.back_mut() {
            c.skipped += n;
        } else {
            self.ready.push_back(Err(Corrupt { skipped: n, reason }));
        }
    }
}

/// Index of the first position in `data` that may start a capture pattern: a full "OggS", or a
/// prefix of it at the very end. Returns `data.len()` when there is none.
fn find_capture_start(data: &[u8]) -> usize {
    let mut i = 0;
    while i < data.len() {
        if data[i] == CAPTURE[0] {
            let n = (data.len() - i).min(CAPTURE.len());
            if data[i..i + n] == CAPTURE[..n] {
                return i;
            }
        }
        i += 1;
    }
    data.len()
}

/// Parses one page at the start of `data` (which starts with a capture pattern or its prefix).
fn parse_page(data: &[u8]) -> Parse {
    if data.len() < HEADER_LEN {
        // Check what we can already, so obvious garbage does not wait for more bytes.
        if data.len() > 4 && data[4] != VERSION {
            return Parse::Bad("unknown version");
        }
        return Parse::Incomplete;
    }
    if &data[..4] != CAPTURE {
        return Parse::Bad("no capture pattern");
    }
    if data[4] != VERSION {
        return Parse::Bad("unknown version");
    }
    let flags = data[5];
    if flags & !KNOWN_FLAGS != 0 {
        return Parse::Bad("unknown header flags");
    }
    let nseg = data[26] as usize;
    let header_len = HEADER_LEN + nseg;
    if data.len() < header_len {
        return Parse::Incomplete;
    }
    let lacing = &data[HEADER_LEN..header_len];
    let body_len: usize = lacing.iter().map(|&l| l as usize).sum();
    let total = header_len + body_len;
    if data.len() < total {
        return Parse::Incomplete;
    }
    let stored = u32::from_le_bytes([data[22], data[23], data[24], data[25]]);
    let mut crc = crc32_update(0, &data[..CRC_OFFSET]);
    crc = crc32_update(crc, &[0; 4]);
    crc = crc32_update(crc, &data[CRC_OFFSET + 4..total]);
    if crc != stored {
        return Parse::Bad("CRC mismatch");
    }
    let mut granule = [0u8; 8];
    granule.copy_from_slice(&data[6..14]);
    let page = Page {
        flags,
        granule: u64::from_le_bytes(granule),
        serial: u32::from_le_bytes([data[14], data[15], data[16], data[17]]),
        seq: u32::from_le_bytes([data[18], data[19], data[20], data[21]]),
        lacing: lacing.to_vec(),
        body: data[header_len..total].to_vec(),
    };
    Parse::Page(page, total)
}

/// One packet reassembled by [`PacketReader`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// The packet bytes.
    pub data: Vec<u8>,
    /// The page's granule position when this packet is the last one completed on its page.
    pub granule: Option<u64>,
    /// Sequence number of the page on which the packet completed.
    pub page_seq: u32,
    /// The packet started on a beginning-of-stream page.
    pub bos: bool,
    /// The packet is the last one completed on an end-of-stream page.
    pub eos: bool,
}

/// Reassembles packets from the pages of one logical stream.
///
/// A gap in page sequence numbers (or a change of serial) throws away a packet in progress,
/// since its middle is missing; a continued first piece with nothing to continue is skipped.
#[derive(Debug, Default)]
pub struct PacketReader {
    partial: Vec<u8>,
    /// A packet is in progress (the last piece of the previous page did not complete).
    in_progress: bool,
    /// The packet in progress started on a BOS page.
    partial_bos: bool,
    last: Option<(u32, u32)>,
    ready: VecDeque<Packet>,
    ended: bool,
    discarded: u64,
    gaps: u64,
}

impl PacketReader {
    /// A reader that has seen no page.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes in the next page of the stream.
    pub fn push_page(&mut self, page: &Page) {
        let follows = match self.last {
            None => true,
            Some((serial, seq)) => serial == page.serial && seq.wrapping_add(1) == page.seq,
        };
        if !follows {
            self.gaps += 1;
            self.drop_partial();
        }
        self.last = Some((page.serial, page.seq));
        if page.eos() {
            self.ended = true;
        }
        // The granule belongs to the last packet completed on this page.
        let last_complete = page
            .packets()
            .enumerate()
            .filter(|(_, (_, done))| *done)
            .last();
        let last_complete = last_complete.map(|(i, _)| i);
        for (i, (piece, complete)) in page.packets().enumerate() {
            if i == 0 && page.continued() {
                if !self.in_progress {
                    // The start of this packet is not ours (joined mid-packet or after a gap).
                    if complete {
                        self.discarded += 1;
                    } else {
                        // Keep skipping until the packet ends on a later page.
                        self.drop_partial();
                    }
                    continue;
                }
            } else if self.in_progress {
                // A new packet starts while one was in progress: the rest of it is lost.
                self.drop_partial();
            }
            if !self.in_progress {
                self.partial.clear();
                self.in_progress = true;
                self.partial_bos = page.bos();
            }
            if self.partial.len() + piece.len() > MAX_PACKET_LEN {
                self.drop_partial();
                continue;
            }
            self.partial.extend_from_slice(piece);
            if complete {
                let last_on_page = last_complete == Some(i);
                let granule = (last_on_page && page.granule != u64::MAX).then_some(page.granule);
                self.ready.push_back(Packet {
                    data: std::mem::take(&mut self.partial),
                    granule,
                    page_seq: page.seq,
                    bos: self.partial_bos,
                    eos: last_on_page && page.eos(),
                });
                self.in_progress = false;
            }
        }
    }

    /// The next complete packet, if any.
    pub fn next_packet(&mut self) -> Option<Packet> {
        self.ready.pop_front()
    }

    /// Whether an end-of-stream page has been seen.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Packets thrown away because part of them was missing (or they were too large).
    pub fn discarded(&self) -> u64 {
        self.discarded
    }

    /// Page sequence gaps (or serial changes) seen.
    pub fn gaps(&self) -> u64 {
        self.gaps
    }

    fn drop_partial(&mut self) {
        if self.in_progress {
            self.discarded += 1;
        }
        self.in_progress = false;
        self.partial.clear();
    }
}

#[cfg(test)]
mod tests;
