//! Resuming a recording cut short by a crash, so the file stays one Ogg logical stream.
//!
//! The recorder writes whole pages (see [`crate::recording`]), so a crash leaves the file cut
//! after its last complete page, perhaps with part of the next page, or a run of zeros from the
//! file system, after it. When the host resumes the space, [`scan`] reads the file from the start
//! and finds the stream's serial, channels and pre-skip (from OpusHead) and the last page that
//! can be continued: its sequence number and granule position, and the byte offset just after
//! it. [`truncate_to`] cuts what follows; the recorder then appends with
//! [`OggOpusWriter::resume`](tribune_media::oggopus::OggOpusWriter::resume), so page numbers and
//! granule positions go on where they stopped and every player reads the file whole. [`prepare`]
//! does all of that in one call, and also reopens a stream that was finished cleanly.
//!
//! The scan reads the whole file once (a two-hour recording at 32 kbit/s is about 30 MB); it
//! holds at most one page in memory. It does blocking file IO: call it off the async runtime.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use tribune_media::Error as MediaError;
use tribune_media::ogg::{self, FLAG_EOS, PacketReader, Page, PageReader};

/// Bytes read from the file at a time.
const CHUNK: usize = 64 * 1024;
/// Offset of the flags byte in an Ogg page header.
const FLAGS_OFFSET: usize = 5;
/// Offset of the CRC in an Ogg page header.
const CRC_OFFSET: usize = 22;
/// OpusHead is 19 bytes for channel mapping family 0 (RFC 7845 section 5.1).
const OPUS_HEAD_MIN_LEN: usize = 19;

/// Where and how to continue an Ogg/Opus stream found in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResumePoint {
    /// Serial number of the logical stream.
    pub serial: u32,
    /// Pre-skip from OpusHead, in 48 kHz samples.
    pub pre_skip: u16,
    /// Channel count from OpusHead.
    pub channels: u8,
    /// Sequence number the next appended page must have.
    pub next_seq: u32,
    /// Granule position of the last kept page (0 when only the headers are there): the samples
    /// of the stream so far, pre-skip included.
    pub granule: u64,
    /// Length of the file up to and including the last kept page; what follows is to be cut.
    pub valid_len: u64,
    /// The last kept page ends the stream (EOS): the stream was finished cleanly. To append, its
    /// EOS flag must be cleared first, which [`prepare`] does.
    pub ended: bool,
}

/// What [`scan_file`] found: the resume point, and where its last page starts.
struct Found {
    point: ResumePoint,
    last_page_start: u64,
}

/// Finds where the Ogg/Opus stream in the file at `path` can be continued; see the module docs.
///
/// The stream is the one whose first page (BOS) holds OpusHead; pages of other streams are
/// ignored. The last kept page is the last complete, valid page of that stream that ends on a
/// packet boundary (a page whose last packet continues on a missing page is dropped with it).
/// `Ok(None)` when the file does not start with complete OpusHead and OpusTags pages.
pub fn scan(path: &Path) -> io::Result<Option<ResumePoint>> {
    Ok(scan_file(path)?.map(|f| f.point))
}

/// Cuts the file at `path` to `valid_len` bytes, dropping a partial page left by a crash, and
/// syncs it. Never extends the file: a file already shorter than `valid_len` (it changed since
/// the scan) is an error.
pub fn truncate_to(path: &Path, valid_len: u64) -> io::Result<()> {
    let file = OpenOptions::new().write(true).open(path)?;
    let len = file.metadata()?.len();
    if len < valid_len {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} is {len} bytes, shorter than {valid_len}",
                path.display()
            ),
        ));
    }
    if len > valid_len {
        file.set_len(valid_len)?;
        file.sync_all()?;
    }
    Ok(())
}

/// Makes the recording at `path` ready to be appended to: [`scan`], [`truncate_to`] the resume
/// point and, if the stream had ended, clear the EOS flag of its last page so the stream goes on.
///
/// Returns the resume point to give to
/// [`OggOpusWriter::resume`](tribune_media::oggopus::OggOpusWriter::resume) (with `ended` still
/// telling whether an EOS was cleared), or `None` when the file holds no complete headers (start
/// a new recording instead).
pub fn prepare(path: &Path) -> io::Result<Option<ResumePoint>> {
    let Some(found) = scan_file(path)? else {
        return Ok(None);
    };
    let point = found.point;
    truncate_to(path, point.valid_len)?;
    if point.ended {
        clear_eos(path, found.last_page_start, point.valid_len)?;
    }
    Ok(Some(point))
}

/// Rewrites the page at `start..end` of the file without its EOS flag (and with a fresh CRC).
fn clear_eos(path: &Path, start: u64, end: u64) -> io::Result<()> {
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    let len = usize::try_from(end - start)
        .ok()
        .filter(|&n| (ogg::HEADER_LEN..=ogg::MAX_PAGE_LEN).contains(&n))
        .ok_or_else(|| invalid("last page has an impossible length"))?;
    let mut page = vec![0; len];
    file.seek(SeekFrom::Start(start))?;
    file.read_exact(&mut page)?;
    if &page[..4] != ogg::CAPTURE {
        return Err(invalid("last page moved since the scan"));
    }
    page[FLAGS_OFFSET] &= !FLAG_EOS;
    page[CRC_OFFSET..CRC_OFFSET + 4].fill(0);
    let crc = ogg::crc32(&page);
    page[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
    file.seek(SeekFrom::Start(start))?;
    file.write_all(&page)?;
    file.sync_all()
}

fn invalid(msg: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// The stream's identity from its headers, once OpusHead has been read.
#[derive(Clone, Copy)]
struct Head {
    serial: u32,
    channels: u8,
    pre_skip: u16,
}

/// Reads the file page by page, tracking byte offsets, and keeps the last page that can be
/// continued.
fn scan_file(path: &Path) -> io::Result<Option<Found>> {
    let mut file = File::open(path)?;
    let mut pages = PageReader::new();
    let mut packets = PacketReader::new();
    let mut chunk = vec![0; CHUNK];
    // Bytes of the file accounted for so far: pages and skipped garbage, in file order.
    let mut offset = 0u64;
    let mut head: Option<Head> = None;
    let mut tags_seen = false;
    let mut found: Option<Found> = None;
    loop {
        let n = match file.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        pages.push(&chunk[..n]);
        loop {
            let page = match pages.next_page() {
                Ok(Some(page)) => page,
                Ok(None) => break,
                Err(MediaError::Corrupt { skipped, .. }) => {
                    offset += skipped as u64;
                    continue;
                }
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
            };
            let start = offset;
            offset += (ogg::HEADER_LEN + page.lacing.len() + page.body.len()) as u64;
            let Some(h) = head else {
                // The first page must open an Opus stream; anything else is not ours to continue.
                match opus_head(&page) {
                    Some(h) => {
                        head = Some(h);
                        packets.push_page(&page);
                        // Drop OpusHead itself.
                        packets.next_packet();
                    }
                    None => return Ok(None),
                }
                continue;
            };
            if page.serial != h.serial {
                continue;
            }
            if !tags_seen {
                packets.push_page(&page);
                if let Some(p) = packets.next_packet() {
                    if !p.data.starts_with(b"OpusTags") {
                        return Ok(None);
                    }
                    tags_seen = true;
                    // Only the headers so far: audio starts at granule 0 on the next page.
                    found = Some(Found {
                        point: point(h, &page, 0, offset),
                        last_page_start: start,
                    });
                }
                continue;
            }
            if ends_on_packet_boundary(&page) && page.granule != u64::MAX {
                found = Some(Found {
                    point: point(h, &page, page.granule, offset),
                    last_page_start: start,
                });
            }
        }
    }
    Ok(found)
}

fn point(h: Head, page: &Page, granule: u64, valid_len: u64) -> ResumePoint {
    ResumePoint {
        serial: h.serial,
        pre_skip: h.pre_skip,
        channels: h.channels,
        next_seq: page.seq.wrapping_add(1),
        granule,
        valid_len,
        ended: page.eos(),
    }
}

/// OpusHead from a BOS page whose first packet is complete on it.
fn opus_head(page: &Page) -> Option<Head> {
    if !page.bos() {
        return None;
    }
    let (data, complete) = page.packets().next()?;
    if !complete || data.len() < OPUS_HEAD_MIN_LEN || !data.starts_with(b"OpusHead") {
        return None;
    }
    // RFC 7845: a major version (upper nibble) other than 0 is incompatible.
    if data[8] >> 4 != 0 {
        return None;
    }
    Some(Head {
        serial: page.serial,
        channels: data[9],
        pre_skip: u16::from_le_bytes([data[10], data[11]]),
    })
}

/// Whether no packet continues past the end of the page (its last lacing value is below 255,
/// or it has none).
fn ends_on_packet_boundary(page: &Page) -> bool {
    page.lacing.last().is_none_or(|&l| l < 255)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use tribune_media::oggopus::OggOpusWriter;

    use super::*;

    /// A small valid Opus packet (CELT, 20 ms): enough for the framing and for ffmpeg.
    const PACKET: [u8; 3] = [0xF8, 0xFF, 0xFE];
    const SAMPLES: u32 = 960;
    const SERIAL: u32 = 0x5eed;
    const PRE_SKIP: u16 = 312;
    const FFMPEG: &str = "/usr/bin/ffmpeg";

    /// A file under the system temp dir, removed on drop.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(tag: &str, bytes: &[u8]) -> Self {
            use std::sync::atomic::{AtomicU32, Ordering};
            static N: AtomicU32 = AtomicU32::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            let path = std::env::temp_dir().join(format!(
                "tribune-resume-{tag}-{}-{n}.opus",
                std::process::id()
            ));
            std::fs::write(&path, bytes).unwrap();
            Self(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    /// Headers, then `pages` pages of `per_page` packets; returns the bytes and each page's end
    /// offset, sequence number and granule.
    fn stream(pages: u32, per_page: u32, eos: bool) -> (Vec<u8>, Vec<(u64, u32, u64)>) {
        let mut w = OggOpusWriter::new(SERIAL, 1, PRE_SKIP, vec![("TITLE".into(), "t".into())]);
        let mut bytes = w.header_pages();
        let mut ends = Vec::new();
        for i in 0..pages {
            for _ in 0..per_page {
                w.push(&PACKET, SAMPLES);
            }
            let page = w.flush(eos && i + 1 == pages).unwrap();
            bytes.extend_from_slice(&page.bytes);
            ends.push((bytes.len() as u64, page.last_seq, page.granule));
        }
        (bytes, ends)
    }

    /// Appends `pages` pages of 5 packets to the file with a writer resumed at `p`, the last EOS.
    fn append(path: &Path, p: &ResumePoint, pages: u32) {
        let mut w = OggOpusWriter::resume(
            p.serial,
            p.channels,
            p.pre_skip,
            vec![],
            p.next_seq,
            p.granule,
        );
        let mut file = OpenOptions::new().append(true).open(path).unwrap();
        for i in 0..pages {
            for _ in 0..5 {
                w.push(&PACKET, SAMPLES);
            }
            file.write_all(&w.flush(i + 1 == pages).unwrap().bytes)
                .unwrap();
        }
    }

    /// Reads the whole file as one stream: pages in order, no corrupt byte, no sequence gap, no
    /// lost packet. Returns the pages and the number of packets.
    fn read_whole(path: &Path) -> (Vec<Page>, usize) {
        let bytes = std::fs::read(path).unwrap();
        let mut r = PageReader::new();
        r.push(&bytes);
        assert_eq!(r.buffered(), 0, "trailing partial page");
        let mut pr = PacketReader::new();
        let mut pages = Vec::new();
        while let Some(p) = r.next_page().expect("no corrupt bytes") {
            pr.push_page(&p);
            pages.push(p);
        }
        assert_eq!((pr.gaps(), pr.discarded()), (0, 0));
        let mut n = 0;
        while pr.next_packet().is_some() {
            n += 1;
        }
        let seqs: Vec<u32> = pages.iter().map(|p| p.seq).collect();
        assert_eq!(seqs, (0..pages.len() as u32).collect::<Vec<_>>());
        assert!(pages.iter().all(|p| p.serial == SERIAL));
        assert_eq!(pages.iter().filter(|p| p.bos()).count(), 1);
        let eos: Vec<bool> = pages.iter().map(|p| p.eos()).collect();
        assert!(
            !eos[..eos.len() - 1].contains(&true),
            "EOS before the last page"
        );
        (pages, n)
    }

    /// Decodes the file with ffmpeg (a missing ffmpeg fails the test): it must print no error
    /// and give every sample of the stream (its last granule less the pre-skip), the seam
    /// included.
    fn ffmpeg_decodes(path: &Path, granule: u64) {
        assert!(
            Path::new(FFMPEG).exists(),
            "{FFMPEG} is not installed: this test needs Debian's ffmpeg (`scripts/packages.sh test`)"
        );
        let out = std::process::Command::new(FFMPEG)
            .args(["-nostdin", "-v", "error", "-i"])
            .arg(path)
            .args(["-f", "s16le", "-ac", "1", "-ar", "48000", "-"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.is_empty(),
            "ffmpeg: {stderr}"
        );
        let samples = out.stdout.len() as u64 / 2;
        assert_eq!(samples, granule - u64::from(PRE_SKIP));
    }

    #[test]
    fn cut_mid_page_then_resumed_reads_as_one_stream() {
        let (bytes, ends) = stream(10, 5, false);
        let (end, seq, granule) = ends[7];
        // The crash: page 8 written halfway.
        let cut = end as usize + (ends[8].0 - end) as usize / 2;
        let f = TempFile::new("cut", &bytes[..cut]);
        let p = scan(&f.0).unwrap().unwrap();
        let want = ResumePoint {
            serial: SERIAL,
            pre_skip: PRE_SKIP,
            channels: 1,
            next_seq: seq + 1,
            granule,
            valid_len: end,
            ended: false,
        };
        assert_eq!(p, want);
        assert_eq!((p.next_seq, p.granule), (10, 8 * 5 * 960));
        truncate_to(&f.0, p.valid_len).unwrap();
        assert_eq!(std::fs::metadata(&f.0).unwrap().len(), end);
        append(&f.0, &p, 4);
        let (pages, packets) = read_whole(&f.0);
        assert_eq!(pages.len(), 2 + 8 + 4);
        assert_eq!(packets, 2 + 12 * 5);
        let granules: Vec<u64> = pages[2..].iter().map(|p| p.granule).collect();
        let want: Vec<u64> = (1..=12).map(|i| i * 5 * 960).collect();
        assert_eq!(granules, want);
        assert!(pages.last().unwrap().eos());
        ffmpeg_decodes(&f.0, 12 * 5 * 960);
        // Scanning the finished file finds its end.
        let end = scan(&f.0).unwrap().unwrap();
        assert!(end.ended);
        assert_eq!((end.next_seq, end.granule), (14, 12 * 5 * 960));
    }

    #[test]
    fn cut_on_a_page_boundary_keeps_everything() {
        let (bytes, ends) = stream(3, 2, false);
        let f = TempFile::new("boundary", &bytes);
        let p = scan(&f.0).unwrap().unwrap();
        assert_eq!(
            (p.valid_len, p.next_seq, p.granule),
            (bytes.len() as u64, 5, ends[2].2)
        );
        assert_eq!(prepare(&f.0).unwrap(), Some(p));
        assert_eq!(std::fs::read(&f.0).unwrap(), bytes);
    }

    #[test]
    fn trailing_zeros_and_garbage_are_cut() {
        let (mut bytes, ends) = stream(4, 3, false);
        bytes.extend_from_slice(&[0; 4096]);
        bytes.extend_from_slice(b"OggS\0garbage");
        let f = TempFile::new("zeros", &bytes);
        let p = prepare(&f.0).unwrap().unwrap();
        assert_eq!((p.valid_len, p.next_seq), (ends[3].0, 6));
        assert_eq!(std::fs::metadata(&f.0).unwrap().len(), ends[3].0);
        append(&f.0, &p, 1);
        read_whole(&f.0);
    }

    #[test]
    fn headers_only_or_less() {
        let (bytes, _) = stream(0, 0, false);
        let f = TempFile::new("headers", &bytes);
        let p = scan(&f.0).unwrap().unwrap();
        assert_eq!(
            (p.next_seq, p.granule, p.valid_len),
            (2, 0, bytes.len() as u64)
        );
        assert!(!p.ended);
        append(&f.0, &p, 2);
        let (pages, _) = read_whole(&f.0);
        assert_eq!(pages.last().unwrap().granule, 10 * 960);
        ffmpeg_decodes(&f.0, 10 * 960);
        // OpusTags cut: nothing to resume.
        for cut in [0, 10, 27, 47, bytes.len() - 1] {
            let f = TempFile::new("short", &bytes[..cut]);
            assert_eq!(scan(&f.0).unwrap(), None, "cut at {cut}");
        }
        // Not Ogg/Opus at all.
        let f = TempFile::new("junk", &[0x42; 10_000]);
        assert_eq!(scan(&f.0).unwrap(), None);
        let vorbis = ogg::encode_page(ogg::FLAG_BOS, 0, 1, 0, &[b"\x01vorbis..........."]).unwrap();
        let f = TempFile::new("vorbis", &vorbis);
        assert_eq!(scan(&f.0).unwrap(), None);
        assert!(scan(Path::new("/nonexistent/tribune/x.opus")).is_err());
    }

    #[test]
    fn a_packet_cut_between_two_pages_is_dropped_whole() {
        let mut w = OggOpusWriter::new(SERIAL, 1, PRE_SKIP, vec![]);
        let mut bytes = w.header_pages();
        w.push(&PACKET, SAMPLES);
        bytes.extend_from_slice(&w.flush(false).unwrap().bytes);
        let kept = bytes.len() as u64;
        // One flush over two pages: 254 small packets, then one of 600 bytes that starts on the
        // first page and ends on the second.
        for _ in 0..254 {
            w.push(&PACKET, SAMPLES);
        }
        w.push(&[0xF8; 600], SAMPLES);
        let two = w.flush(false).unwrap();
        assert_eq!(two.last_seq, two.seq + 1);
        // The crash: only the first of the two pages reached the disk.
        let mut r = PageReader::new();
        r.push(&two.bytes);
        let first = r.next_page().unwrap().unwrap();
        assert_eq!(first.lacing.last(), Some(&255));
        bytes.extend_from_slice(&first.to_bytes().unwrap());
        let f = TempFile::new("split", &bytes);
        let p = prepare(&f.0).unwrap().unwrap();
        assert_eq!((p.valid_len, p.next_seq, p.granule), (kept, 3, 960));
        append(&f.0, &p, 1);
        let (_, packets) = read_whole(&f.0);
        assert_eq!(packets, 2 + 1 + 5);
    }

    #[test]
    fn a_cleanly_ended_stream_is_reopened() {
        for per_last_page in [0, 4] {
            let (mut bytes, mut ends) = stream(3, 4, per_last_page > 0);
            if per_last_page == 0 {
                // As the recorder does when nothing is queued: a bare EOS page.
                let mut w =
                    OggOpusWriter::resume(SERIAL, 1, PRE_SKIP, vec![], ends[2].1 + 1, ends[2].2);
                let eos = w.flush(true).unwrap();
                bytes.extend_from_slice(&eos.bytes);
                ends.push((bytes.len() as u64, eos.seq, eos.granule));
            }
            let &(end, seq, granule) = ends.last().unwrap();
            let f = TempFile::new("ended", &bytes);
            let p = scan(&f.0).unwrap().unwrap();
            assert!(p.ended);
            assert_eq!(
                (p.valid_len, p.next_seq, p.granule),
                (end, seq + 1, granule)
            );
            assert_eq!(prepare(&f.0).unwrap(), Some(p));
            // The EOS flag is gone: the stream can go on.
            let again = scan(&f.0).unwrap().unwrap();
            assert!(!again.ended);
            assert_eq!(again.valid_len, end);
            append(&f.0, &p, 2);
            let (pages, _) = read_whole(&f.0);
            assert_eq!(pages.last().unwrap().granule, granule + 10 * 960);
            ffmpeg_decodes(&f.0, granule + 10 * 960);
        }
    }

    #[test]
    fn truncate_never_extends() {
        let f = TempFile::new("short", b"OggS");
        assert!(truncate_to(&f.0, 10).is_err());
        truncate_to(&f.0, 4).unwrap();
        truncate_to(&f.0, 1).unwrap();
        assert_eq!(std::fs::read(&f.0).unwrap(), b"O");
    }
}
