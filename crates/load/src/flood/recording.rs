//! After the run: the space's recording (`/spaces/{id}/recording.opus`) fetched whole and
//! checked as a listener's stream is ([`Scanner`]: page sequence, granule continuity, framing),
//! plus every page's CRC ([`PageReader`]) and the length it covers, from its last granule
//! position less the Opus pre-skip (RFC 7845 §4).

use std::time::Duration;

use serde::Serialize;
use tribune_media::ogg::PageReader;

use crate::ogg::Scanner;

/// Largest recording fetched (about 18 hours at 32 kb/s).
const MAX_BYTES: usize = 256 << 20;
/// Opus granule positions count 48 kHz samples.
const GRANULE_RATE: f64 = 48_000.0;
/// How much shorter than the run the recording may be: it starts when the space goes live and
/// reaches the disk in batches, so its last second or so may not be there yet.
pub const SLACK: Duration = Duration::from_secs(2);

/// The recording's figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// HTTP status of the fetch.
    pub status: u16,
    /// Bytes.
    pub bytes: u64,
    /// Pages.
    pub pages: u64,
    /// Page sequence discontinuities.
    pub seq_gaps: u64,
    /// Granule discontinuities.
    pub granule_gaps: u64,
    /// Framing lost.
    pub sync_losses: u64,
    /// Runs of bytes that were not a page with a good CRC.
    pub corrupt: u64,
    /// Audio it holds, seconds.
    pub duration_s: f64,
    /// Audio it must hold: the run's length, seconds.
    pub must_cover_s: f64,
    /// No discontinuity, no corruption, and `duration_s` ≥ `must_cover_s` − [`SLACK`].
    pub ok: bool,
    /// Why not, when the fetch failed.
    pub error: Option<String>,
}

/// Fetches and checks the recording of `space`, which must cover `must_cover`.
pub async fn check(base: &str, space: &str, must_cover: Duration) -> Report {
    let mut r = Report {
        must_cover_s: must_cover.as_secs_f64(),
        ..Report::default()
    };
    let url = format!("{base}/spaces/{space}/recording.opus");
    let bytes = match fetch(&url).await {
        Ok((status, b)) => {
            r.status = status;
            b
        }
        Err(e) => {
            r.error = Some(e);
            return r;
        }
    };
    let s = scan(&bytes);
    Report {
        ok: r.status == 200
            && s.seq_gaps + s.granule_gaps + s.sync_losses + s.corrupt == 0
            && s.duration_s + SLACK.as_secs_f64() >= r.must_cover_s,
        ..s.with(r)
    }
}

async fn fetch(url: &str) -> Result<(u16, Vec<u8>), String> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| e.to_string())?;
    let mut resp = http
        .get(url)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let status = resp.status().as_u16();
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| format!("GET {url}: {e}"))? {
        if out.len() + chunk.len() > MAX_BYTES {
            return Err(format!("GET {url}: longer than {MAX_BYTES} bytes"));
        }
        out.extend_from_slice(&chunk);
    }
    Ok((status, out))
}

/// The figures of a whole Ogg/Opus file.
pub fn scan(bytes: &[u8]) -> Report {
    let mut scanner = Scanner::new();
    scanner.push(bytes, Duration::ZERO);
    let mut reader = PageReader::new();
    reader.push(bytes);
    let mut corrupt = 0;
    let mut pre_skip = 0u64;
    let mut first_packet = true;
    let mut last_granule = None;
    loop {
        match reader.next_page() {
            Ok(Some(page)) => {
                if first_packet {
                    first_packet = false;
                    if page.body.starts_with(b"OpusHead") && page.body.len() >= 12 {
                        pre_skip = u64::from(u16::from_le_bytes([page.body[10], page.body[11]]));
                    }
                }
                if page.granule != u64::MAX {
                    last_granule = Some(page.granule);
                }
            }
            Ok(None) => break,
            Err(_) => corrupt += 1,
        }
    }
    let s = scanner.stats();
    Report {
        bytes: s.bytes,
        pages: s.pages,
        seq_gaps: s.seq_gaps,
        granule_gaps: s.granule_gaps,
        sync_losses: s.sync_losses,
        corrupt,
        duration_s: last_granule.map_or(0.0, |g| g.saturating_sub(pre_skip) as f64 / GRANULE_RATE),
        ..Report::default()
    }
}

impl Report {
    /// These scan figures with `r`'s fetch figures.
    fn with(self, r: Report) -> Report {
        Report {
            status: r.status,
            must_cover_s: r.must_cover_s,
            error: r.error,
            ..self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tribune_media::ogg::{FLAG_BOS, encode_page};

    /// An Ogg/Opus file of `frames` 20 ms frames, one per page, with a pre-skip of 312.
    fn file(frames: u64, skip_page: Option<u64>) -> Vec<u8> {
        let mut head = b"OpusHead".to_vec();
        head.extend_from_slice(&[1, 1, 0x38, 0x01, 0x80, 0xbb, 0, 0, 0, 0, 0]);
        let mut out = encode_page(FLAG_BOS, 0, 7, 0, &[&head]).unwrap();
        out.extend(encode_page(0, 0, 7, 1, &[b"OpusTags\0\0\0\0\0\0\0\0"]).unwrap());
        for i in 0..frames {
            if Some(i) == skip_page {
                continue;
            }
            // TOC 0xF8: CELT FB 20 ms, one frame.
            let p = encode_page(0, 312 + (i + 1) * 960, 7, 2 + i as u32, &[&[0xF8, 1, 2, 3]]);
            out.extend(p.unwrap());
        }
        out
    }

    #[test]
    fn a_continuous_recording_has_its_length() {
        let r = scan(&file(500, None));
        assert_eq!((r.seq_gaps, r.granule_gaps, r.corrupt), (0, 0, 0));
        assert!((r.duration_s - 10.0).abs() < 1e-9, "{}", r.duration_s);
    }

    #[test]
    fn a_missing_page_is_a_gap() {
        let r = scan(&file(500, Some(100)));
        assert!(r.seq_gaps + r.granule_gaps > 0);
    }
}
