//! Ogg/Opus tests: header layout, late-joiner numbering, granules, and real libopus packets.

use opus::{Application, Channels, Decoder, Encoder};

use super::*;
use crate::ogg::{Packet, PacketReader, PageReader};
use crate::synth::{Tone, goertzel_power};

/// Parses a byte stream into packets, asserting it has no corrupt bytes and no page gaps.
fn packets(bytes: &[u8]) -> (Vec<crate::ogg::Page>, Vec<Packet>) {
    read(bytes, 0)
}

/// The pages and packets of `bytes`, which has `holes` jumps in its page sequence.
fn read(bytes: &[u8], holes: u64) -> (Vec<crate::ogg::Page>, Vec<Packet>) {
    let mut r = PageReader::new();
    r.push(bytes);
    let mut pages = Vec::new();
    let mut pr = PacketReader::new();
    while let Some(p) = r.next_page().expect("valid pages with valid CRCs") {
        pr.push_page(&p);
        pages.push(p);
    }
    assert_eq!(pr.gaps(), holes, "page sequence gaps");
    assert_eq!(pr.discarded(), 0);
    let mut out = Vec::new();
    while let Some(p) = pr.next_packet() {
        out.push(p);
    }
    (pages, out)
}

#[test]
fn opus_head_layout() {
    let h = opus_head(1, 312, 48_000, -256);
    assert_eq!(h.len(), 19);
    assert_eq!(&h[..8], b"OpusHead");
    assert_eq!(h[8], 1);
    assert_eq!(h[9], 1);
    assert_eq!(u16::from_le_bytes([h[10], h[11]]), 312);
    assert_eq!(u32::from_le_bytes([h[12], h[13], h[14], h[15]]), 48_000);
    assert_eq!(i16::from_le_bytes([h[16], h[17]]), -256);
    assert_eq!(h[18], 0);
}

#[test]
fn opus_tags_layout() {
    let t = opus_tags("v", &[("TITLE", "hi"), ("A", "")]);
    let mut want = b"OpusTags".to_vec();
    want.extend_from_slice(&1u32.to_le_bytes());
    want.extend_from_slice(b"v");
    want.extend_from_slice(&2u32.to_le_bytes());
    want.extend_from_slice(&8u32.to_le_bytes());
    want.extend_from_slice(b"TITLE=hi");
    want.extend_from_slice(&2u32.to_le_bytes());
    want.extend_from_slice(b"A=");
    assert_eq!(t, want);
}

#[test]
fn headers_from_the_start() {
    let w = OggOpusWriter::new(77, 1, 312, vec![("TITLE".into(), "space".into())]);
    let (pages, pk) = packets(&w.header_pages());
    assert_eq!(pages.len(), 2);
    assert_eq!((pages[0].seq, pages[1].seq), (0, 1));
    assert!(pages[0].bos() && !pages[1].bos());
    assert_eq!((pages[0].granule, pages[1].granule), (0, 0));
    assert_eq!(pk[0].data, opus_head(1, 312, 48_000, 0));
    assert!(pk[1].data.starts_with(b"OpusTags"));
    assert!(pk[1].data.windows(11).any(|w| w == b"TITLE=space"));
}

#[test]
fn granules_count_samples_including_pre_skip() {
    let mut w = OggOpusWriter::new(1, 1, 312, vec![]);
    assert!(w.flush(false).is_none());
    w.push(&[0xf8, 1], 960);
    w.push(&[0xf8, 2], 960);
    assert_eq!(w.pending_samples(), 1920);
    assert_eq!(w.granule(), 1920);
    let p = w.flush(false).unwrap();
    assert_eq!((p.seq, p.last_seq, p.granule), (2, 2, 1920));
    w.push(&[0xf8, 3], 960);
    let p2 = w.flush(false).unwrap();
    assert_eq!((p2.seq, p2.granule), (3, 2880));
    let (pages, pk) = packets(&[p.bytes, p2.bytes].concat());
    assert_eq!(pages[0].granule, 1920);
    assert_eq!(
        pk.iter().map(|p| p.granule).collect::<Vec<_>>(),
        [None, Some(1920), Some(2880)]
    );
}

#[test]
fn late_joiner_reads_one_continuous_stream() {
    let mut w = OggOpusWriter::new(9, 1, 312, vec![]);
    let mut shared = Vec::new();
    for i in 0..10u8 {
        w.push(&[0xf8, i], 960);
        shared.push(w.flush(false).unwrap());
    }
    // A listener joins at audio page k.
    let k = 6;
    let first = &shared[k];
    let mut stream = w.header_pages();
    for p in &shared[k..] {
        stream.extend_from_slice(&p.bytes);
    }
    // One hole, right after the headers; no packet is lost to it.
    let (pages, pk) = read(&stream, 1);
    let seqs: Vec<u32> = pages.iter().map(|p| p.seq).collect();
    // Headers at 0 and 1 (RFC 3533 §6), then the shared pages with their own numbers.
    let mut want: Vec<u32> = vec![0, 1];
    want.extend(first.seq..=shared[9].last_seq);
    assert_eq!(seqs, want);
    assert!(pk[0].bos && pk[0].data.starts_with(b"OpusHead"));
    assert!(pk[1].data.starts_with(b"OpusTags"));
    assert_eq!(pk[2].data, vec![0xf8, k as u8]);
    assert_eq!(pk[2].granule, Some(960 * (k as u64 + 1)));
    assert!(pages.iter().skip(1).all(|p| !p.bos()));
}

#[test]
fn large_flush_splits_pages_and_eos() {
    let mut w = OggOpusWriter::new(3, 1, 0, vec![]);
    // 300 packets of 10 bytes: more than 255 lacing values.
    for i in 0..300u32 {
        w.push(&[0xf0, i as u8, 0, 0, 0, 0, 0, 0, 0, 0], 480);
    }
    // And a packet that is a multiple of 255 bytes, crossing a page boundary.
    w.push(&[0xf0; 510], 480);
    let p = w.flush(true).unwrap();
    assert_eq!(p.seq, 2);
    assert_eq!(p.last_seq, 3);
    assert_eq!(p.granule, 301 * 480);
    let (pages, pk) = packets(&p.bytes);
    assert_eq!(pages.len(), 2);
    assert!(pages[1].eos() && !pages[0].eos());
    assert_eq!(pages[0].granule, 255 * 480);
    assert_eq!(pk.len(), 301);
    assert_eq!(pk[300].data.len(), 510);
    assert!(pk[300].eos);
}

#[test]
fn empty_eos_page_keeps_the_granule() {
    let mut w = OggOpusWriter::new(3, 1, 0, vec![]);
    w.push(&[0xf8], 960);
    w.flush(false).unwrap();
    let eos = w.flush(true).unwrap();
    assert_eq!((eos.seq, eos.granule), (3, 960));
    let (pages, pk) = packets(&eos.bytes);
    assert!(pages[0].eos());
    assert!(pages[0].lacing.is_empty());
    assert_eq!(pages[0].granule, 960);
    assert!(pk.is_empty());
}

#[test]
fn real_opus_stream_decodes() {
    let mut enc = Encoder::new(48_000, Channels::Mono, Application::Voip).unwrap();
    let pre_skip = enc.get_lookahead().unwrap() as u16;
    let mut w = OggOpusWriter::new(5, 1, pre_skip, vec![]);
    let mut tone = Tone::new(440.0, 0.5);
    let mut pcm = [0.0f32; 960];
    let mut bytes = w.header_pages();
    for i in 0..50 {
        tone.fill(&mut pcm);
        let packet = enc.encode_vec_float(&pcm, 4000).unwrap();
        w.push(&packet, 960);
        if i % 5 == 4 {
            bytes.extend_from_slice(&w.flush(i == 49).unwrap().bytes);
        }
    }
    let (pages, pk) = packets(&bytes);
    assert_eq!(pages.last().unwrap().granule, 50 * 960);
    let head = &pk[0].data;
    assert_eq!(u16::from_le_bytes([head[10], head[11]]), pre_skip);
    let mut dec = Decoder::new(48_000, Channels::Mono).unwrap();
    let mut out = Vec::new();
    let mut buf = [0.0f32; 5760];
    for p in &pk[2..] {
        let n = dec.decode_float(&p.data, &mut buf, false).unwrap();
        out.extend_from_slice(&buf[..n]);
    }
    assert_eq!(out.len(), 50 * 960);
    let audio = &out[usize::from(pre_skip)..];
    let at = goertzel_power(audio, 48_000, 440.0);
    assert!(at > 0.05, "{at}");
    assert!(goertzel_power(audio, 48_000, 700.0) < at / 100.0);
}

#[test]
fn resume_continues_sequence_and_granule() {
    let mut w = OggOpusWriter::new(21, 1, 312, vec![("TITLE".into(), "t".into())]);
    let mut bytes = w.header_pages();
    for i in 0..6u8 {
        w.push(&[0xf8, i], 960);
        w.push(&[0xf8, i, i], 960);
        bytes.extend_from_slice(&w.flush(false).unwrap().bytes);
    }
    let (last_seq, granule) = (w.next_seq() - 1, w.granule());
    assert_eq!((last_seq, granule), (7, 12 * 960));
    // A new process continues the stream from what the file holds.
    let mut r = OggOpusWriter::resume(21, 1, 312, vec![], last_seq + 1, granule);
    assert_eq!((r.serial(), r.next_seq(), r.granule()), (21, 8, 12 * 960));
    assert!(r.flush(false).is_none());
    for i in 0..3u8 {
        r.push(&[0xf8, 0x80 | i], 960);
        let page = r.flush(i == 2).unwrap();
        assert_eq!(page.seq, 8 + u32::from(i));
        assert_eq!(page.granule, (13 + u64::from(i)) * 960);
        bytes.extend_from_slice(&page.bytes);
    }
    let (pages, pk) = packets(&bytes);
    let seqs: Vec<u32> = pages.iter().map(|p| p.seq).collect();
    assert_eq!(seqs, (0..=10).collect::<Vec<_>>());
    assert!(pages.iter().all(|p| p.serial == 21));
    assert!(pages.last().unwrap().eos());
    let granules: Vec<u64> = pk[2..].iter().filter_map(|p| p.granule).collect();
    let want: Vec<u64> = (1..=6)
        .map(|i| i * 1920)
        .chain([13 * 960, 14 * 960, 15 * 960])
        .collect();
    assert_eq!(granules, want);
    assert_eq!(pk.len(), 2 + 12 + 3);
    // Headers made by the resumed writer match the stream's own (serial, head).
    let (_, hp) = packets(&r.header_pages());
    assert_eq!(hp[0].data, pk[0].data);
}

#[test]
fn resume_below_first_audio_seq_is_clamped() {
    let r = OggOpusWriter::resume(1, 2, 0, vec![], 0, 0);
    assert_eq!(r.next_seq(), OggOpusWriter::FIRST_AUDIO_SEQ);
}

/// A recording of real libopus packets, cut mid-page as a crash leaves it, continued by a new
/// writer and a new encoder, decodes whole in ffmpeg (a real player) without a single error.
#[test]
fn resumed_real_opus_stream_decodes_in_ffmpeg() {
    const FFMPEG: &str = "/usr/bin/ffmpeg";
    assert!(
        std::path::Path::new(FFMPEG).exists(),
        "{FFMPEG} is not installed: this test needs Debian's ffmpeg (`scripts/packages.sh test`)"
    );
    const SERIAL: u32 = 0x7157;
    let mut tone = Tone::new(440.0, 0.5);
    let mut pcm = [0.0f32; 960];
    let mut enc = Encoder::new(48_000, Channels::Mono, Application::Voip).unwrap();
    let pre_skip = enc.get_lookahead().unwrap() as u16;
    let mut w = OggOpusWriter::new(SERIAL, 1, pre_skip, vec![]);
    let mut file = w.header_pages();
    // 2 s in pages of 0.5 s, then half of a third-second page: the crash.
    let mut kept = (0, 0);
    for i in 0..125 {
        tone.fill(&mut pcm);
        w.push(&enc.encode_vec_float(&pcm, 4000).unwrap(), 960);
        if i % 25 == 24 {
            let page = w.flush(false).unwrap();
            if i < 100 {
                file.extend_from_slice(&page.bytes);
                kept = (page.last_seq, page.granule);
            } else {
                file.extend_from_slice(&page.bytes[..page.bytes.len() / 2]);
            }
        }
    }
    assert_eq!(kept, (5, 100 * 960));
    // Drop the partial page, as the server's resume scan does: keep the complete pages.
    let cut = {
        let mut r = crate::ogg::PageReader::new();
        r.push(&file);
        let mut end = 0;
        while let Ok(Some(p)) = r.next_page() {
            end += crate::ogg::HEADER_LEN + p.lacing.len() + p.body.len();
        }
        end
    };
    assert!(cut < file.len());
    file.truncate(cut);
    // After the restart: a new encoder, a writer continuing the stream.
    let mut enc = Encoder::new(48_000, Channels::Mono, Application::Voip).unwrap();
    let mut w = OggOpusWriter::resume(SERIAL, 1, pre_skip, vec![], kept.0 + 1, kept.1);
    for i in 0..100 {
        tone.fill(&mut pcm);
        w.push(&enc.encode_vec_float(&pcm, 4000).unwrap(), 960);
        if i % 25 == 24 {
            file.extend_from_slice(&w.flush(i == 99).unwrap().bytes);
        }
    }
    let (pages, pk) = packets(&file);
    assert_eq!(pages.last().unwrap().granule, 200 * 960);
    assert_eq!(pk.len(), 2 + 200);

    let path = std::env::temp_dir().join(format!("tribune-resume-{}.opus", std::process::id()));
    std::fs::write(&path, &file).unwrap();
    let out = std::process::Command::new(FFMPEG)
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(&path)
        .args(["-f", "s16le", "-ac", "1", "-ar", "48000", "-"])
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.is_empty(),
        "ffmpeg: {stderr}"
    );
    // Decoded length, not container metadata: every sample of both halves, less the pre-skip.
    let samples: Vec<f32> = out
        .stdout
        .chunks_exact(2)
        .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
        .collect();
    assert_eq!(samples.len(), 200 * 960 - usize::from(pre_skip));
    // The tone is there after the seam too.
    let after = &samples[110 * 960..];
    let at = goertzel_power(after, 48_000, 440.0);
    assert!(at > 0.05, "{at}");
    assert!(goertzel_power(after, 48_000, 700.0) < at / 100.0);
}

#[test]
fn the_silence_packet_decodes_to_20_ms_of_silence() {
    let mut d = opus::Decoder::new(48_000, opus::Channels::Mono).unwrap();
    let mut pcm = [1i16; 960];
    for _ in 0..3 {
        let n = d.decode(&SILENCE_20MS, &mut pcm, false).unwrap();
        assert_eq!(n, 960);
        assert!(pcm.iter().all(|&s| s.abs() <= 1), "not silent");
    }
}
