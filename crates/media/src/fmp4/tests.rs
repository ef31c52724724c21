use super::*;
use crate::synth::{Tone, goertzel_power};
use mp4_atom::Decode;
use opus::{Application, Channels, Encoder};
use std::path::{Path, PathBuf};
use std::process::Command;

// ---- a tiny box walker, independent of the writer's crate ----

/// One box: its type, where it starts in the walked buffer, and its body (after the header).
struct Bx<'a> {
    kind: [u8; 4],
    start: usize,
    body: &'a [u8],
}

/// The boxes laid end to end in `buf`; asserts that their sizes add up to exactly `buf.len()`.
fn walk(buf: &[u8]) -> Vec<Bx<'_>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < buf.len() {
        assert!(buf.len() - i >= 8, "truncated box header at {i}");
        let size = u32::from_be_bytes(buf[i..i + 4].try_into().unwrap()) as usize;
        let kind: [u8; 4] = buf[i + 4..i + 8].try_into().unwrap();
        let (header, size) = if size == 1 {
            let large = u64::from_be_bytes(buf[i + 8..i + 16].try_into().unwrap());
            (16, large as usize)
        } else {
            (8, size)
        };
        assert!(
            size >= header && i + size <= buf.len(),
            "box {} at {i}: size {size} overruns {}",
            String::from_utf8_lossy(&kind),
            buf.len()
        );
        out.push(Bx {
            kind,
            start: i,
            body: &buf[i + header..i + size],
        });
        i += size;
    }
    assert_eq!(i, buf.len(), "box sizes must add up to the buffer");
    out
}

/// The body of the one box of type `kind` among `buf`'s top-level boxes.
fn only<'a>(buf: &'a [u8], kind: &[u8; 4]) -> &'a [u8] {
    let found: Vec<_> = walk(buf).into_iter().filter(|b| &b.kind == kind).collect();
    assert_eq!(
        found.len(),
        1,
        "expected one {} box",
        String::from_utf8_lossy(kind)
    );
    found[0].body
}

/// The body at `path` of nested containers, e.g. `[b"moov", b"trak", b"tkhd"]`.
fn at<'a>(buf: &'a [u8], path: &[&[u8; 4]]) -> &'a [u8] {
    path.iter().fold(buf, |b, kind| only(b, kind))
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes(b[at..at + 2].try_into().unwrap())
}
fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}
fn be64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}
/// (version, flags) of a full box body.
fn full(b: &[u8]) -> (u8, u32) {
    (b[0], be32(b, 0) & 0x00ff_ffff)
}

const STBL: [&[u8; 4]; 5] = [b"moov", b"trak", b"mdia", b"minf", b"stbl"];

fn track() -> Track {
    Track {
        channels: 2,
        pre_skip: 312,
        input_sample_rate: 44_100,
        track_id: TRACK_ID,
    }
}

// ---- structure ----

#[test]
fn init_segment_boxes() {
    let init = init_segment(&track());
    let top = walk(&init);
    let kinds: Vec<_> = top.iter().map(|b| &b.kind).collect();
    assert_eq!(kinds, [b"ftyp", b"moov"]);

    let ftyp = only(&init, b"ftyp");
    assert_eq!(&ftyp[0..4], b"iso6");
    let brands: Vec<_> = ftyp[8..].chunks(4).collect();
    for brand in [b"iso6", b"cmfc", b"Opus"] {
        assert!(brands.contains(&&brand[..]), "brand {brand:?}");
    }

    let mvhd = at(&init, &[b"moov", b"mvhd"]);
    let timescale_at = if full(mvhd).0 == 1 { 20 } else { 12 };
    assert_eq!(be32(mvhd, timescale_at), TIMESCALE);

    let tkhd = at(&init, &[b"moov", b"trak", b"tkhd"]);
    assert_eq!(full(tkhd).1 & 3, 3, "track enabled and in movie");
    let id_at = if full(tkhd).0 == 1 { 20 } else { 12 };
    assert_eq!(be32(tkhd, id_at), TRACK_ID);

    // Pre-skip as an edit list: one entry starting pre_skip ticks into the media, at rate 1.
    let elst = at(&init, &[b"moov", b"trak", b"edts", b"elst"]);
    assert_eq!(be32(elst, 4), 1, "one edit");
    let (duration, media_time, rate) = if full(elst).0 == 1 {
        (be64(elst, 8), be64(elst, 16) as i64, be32(elst, 24))
    } else {
        (
            u64::from(be32(elst, 8)),
            i64::from(be32(elst, 12) as i32),
            be32(elst, 16),
        )
    };
    assert_eq!(duration, 0, "the whole (fragmented) media");
    assert_eq!(media_time, 312, "media_time == pre_skip");
    assert_eq!(rate, 0x0001_0000);

    let mdhd = at(&init, &[b"moov", b"trak", b"mdia", b"mdhd"]);
    let timescale_at = if full(mdhd).0 == 1 { 20 } else { 12 };
    assert_eq!(be32(mdhd, timescale_at), TIMESCALE);
    let hdlr = at(&init, &[b"moov", b"trak", b"mdia", b"hdlr"]);
    assert_eq!(&hdlr[8..12], b"soun");
    at(&init, &[b"moov", b"trak", b"mdia", b"minf", b"smhd"]);
    let dref = at(
        &init,
        &[b"moov", b"trak", b"mdia", b"minf", b"dinf", b"dref"],
    );
    assert_eq!(be32(dref, 4), 1);

    // The sample tables are present and empty: the samples live in fragments.
    for (kind, count_at) in [(b"stts", 4), (b"stsc", 4), (b"stco", 4), (b"stsz", 8)] {
        let path = [&STBL[..], &[kind]].concat();
        assert_eq!(be32(at(&init, &path), count_at), 0, "{kind:?} empty");
    }

    // stsd → Opus sample entry → dOps.
    let stsd = at(&init, &[&STBL[..], &[b"stsd"]].concat());
    assert_eq!(be32(stsd, 4), 1, "one sample entry");
    let opus = only(&stsd[8..], b"Opus");
    assert_eq!(be16(opus, 6), 1, "data_reference_index");
    assert_eq!(be16(opus, 16), 2, "channelcount");
    assert_eq!(be16(opus, 18), 16, "samplesize");
    assert_eq!(be32(opus, 24), 48_000 << 16, "samplerate 16.16");
    let dops = only(&opus[28..], b"dOps");
    assert_eq!(dops.len(), 11, "family 0 has no mapping table");
    assert_eq!(dops[0], 0, "Version");
    assert_eq!(dops[1], 2, "OutputChannelCount");
    assert_eq!(be16(dops, 2), 312, "PreSkip, big-endian");
    assert_eq!(be32(dops, 4), 44_100, "InputSampleRate, big-endian");
    assert_eq!(be16(dops, 8), 0, "OutputGain");
    assert_eq!(dops[10], 0, "ChannelMappingFamily");

    let trex = at(&init, &[b"moov", b"mvex", b"trex"]);
    assert_eq!(be32(trex, 4), TRACK_ID);
    assert_eq!(be32(trex, 8), 1, "sample description index");
    assert_eq!(be32(trex, 20), 0x0200_0000, "every sample a sync sample");

    // The crate's own reader agrees.
    let mut buf = &init[..];
    mp4_atom::Ftyp::decode(&mut buf).unwrap();
    let moov = mp4_atom::Moov::decode(&mut buf).unwrap();
    let stbl = &moov.trak[0].mdia.minf.stbl;
    match &stbl.stsd.codecs[0] {
        mp4_atom::Codec::Opus(o) => {
            assert_eq!(o.dops.pre_skip, 312);
            assert_eq!(o.dops.output_channel_count, 2);
        }
        other => panic!("not Opus: {other:?}"),
    }
}

#[test]
fn channel_counts_are_clamped_to_family_0() {
    for (channels, expect) in [(0, 1), (1, 1), (2, 2), (3, 2), (255, 2)] {
        let t = Track {
            channels,
            track_id: 0,
            ..Track::default()
        };
        let init = init_segment(&t);
        assert!(!init.is_empty());
        let stsd = at(&init, &[&STBL[..], &[b"stsd"]].concat());
        let opus = only(&stsd[8..], b"Opus");
        assert_eq!(be16(opus, 16), expect);
        assert_eq!(only(&opus[28..], b"dOps")[1], expect as u8);
        let tkhd = at(&init, &[b"moov", b"trak", b"tkhd"]);
        let id_at = if full(tkhd).0 == 1 { 20 } else { 12 };
        assert_eq!(be32(tkhd, id_at), 1, "track ID 0 is written as 1");
    }
}

fn packets(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| vec![i as u8; 3 + i % 7]).collect()
}

#[test]
fn fragment_boxes() {
    let data = packets(20);
    let samples: Vec<_> = data
        .iter()
        .map(|d| Sample {
            data: d,
            duration: 960,
        })
        .collect();
    let tag = id3_tag(&[("tribune", r#"{"levels":{"alice":-20}}"#)]);
    let emsg = Emsg {
        scheme_id_uri: EMSG_ID3_SCHEME.into(),
        value: "1".into(),
        timescale: TIMESCALE,
        presentation_time: 1_234_567_890_123,
        event_duration: 19_200,
        id: 42,
        message_data: tag.clone(),
    };
    let frag = fragment(7, 96_000, &samples, std::slice::from_ref(&emsg));

    let top = walk(&frag);
    let kinds: Vec<_> = top.iter().map(|b| &b.kind).collect();
    assert_eq!(
        kinds,
        [b"emsg", b"moof", b"mdat"],
        "emsg first, then moof, mdat"
    );

    // emsg version 1.
    let e = top[0].body;
    assert_eq!(full(e), (1, 0));
    assert_eq!(be32(e, 4), TIMESCALE);
    assert_eq!(be64(e, 8), 1_234_567_890_123);
    assert_eq!(be32(e, 16), 19_200);
    assert_eq!(be32(e, 20), 42);
    let rest = &e[24..];
    let scheme_end = rest.iter().position(|&b| b == 0).unwrap();
    assert_eq!(&rest[..scheme_end], EMSG_ID3_SCHEME.as_bytes());
    let rest = &rest[scheme_end + 1..];
    assert_eq!(&rest[..2], b"1\0");
    assert_eq!(&rest[2..], &tag[..]);

    let moof = top[1].body;
    let mfhd = only(moof, b"mfhd");
    assert_eq!(be32(mfhd, 4), 7, "sequence number");
    let traf = only(moof, b"traf");

    let tfhd = only(traf, b"tfhd");
    assert_eq!(
        full(tfhd).1,
        0x02_0000 | 0x08,
        "default-base-is-moof and the default sample duration"
    );
    assert_eq!(be32(tfhd, 4), TRACK_ID);
    assert_eq!(be32(tfhd, 8), 960, "every sample lasts 20 ms");

    let tfdt = only(traf, b"tfdt");
    assert_eq!(full(tfdt).0, 1, "tfdt version 1");
    assert_eq!(be64(tfdt, 4), 96_000);

    let trun = only(traf, b"trun");
    let (_, flags) = full(trun);
    assert_eq!(flags, 0x001 | 0x200, "data offset and sizes");
    assert_eq!(be32(trun, 4) as usize, samples.len());
    let data_offset = be32(trun, 8) as usize;
    for (i, s) in samples.iter().enumerate() {
        assert_eq!(be32(trun, 12 + 4 * i) as usize, s.data.len());
    }
    // The data offset counts from the moof's first byte to the mdat payload.
    let mdat = &top[2];
    assert_eq!(top[1].start + data_offset, mdat.start + 8);
    assert_eq!(mdat.body, data.concat());

    // Roll recovery: 80 ms pre-roll at 20 ms is 4 samples back.
    let sgpd = only(traf, b"sgpd");
    assert_eq!(full(sgpd).0, 1);
    assert_eq!(&sgpd[4..8], b"roll");
    assert_eq!(be32(sgpd, 8), 2, "default_length");
    assert_eq!(be32(sgpd, 12), 1, "one entry");
    assert_eq!(be16(sgpd, 16) as i16, -4);
    let sbgp = only(traf, b"sbgp");
    assert_eq!(full(sbgp).0, 0);
    assert_eq!(&sbgp[4..8], b"roll");
    assert_eq!(be32(sbgp, 8), 1, "one run");
    assert_eq!(be32(sbgp, 12) as usize, samples.len());
    assert_eq!(be32(sbgp, 16), 0x1_0001, "the traf's own sgpd entry 1");

    // The crate's own reader agrees.
    let mut buf = &frag[..];
    let m = mp4_atom::Emsg::decode(&mut buf).unwrap();
    assert_eq!(m.id, 42);
    let moof = mp4_atom::Moof::decode(&mut buf).unwrap();
    assert_eq!(moof.traf[0].trun[0].samples.len(), 20);
    assert_eq!(
        moof.traf[0].tfdt.as_ref().unwrap().base_media_decode_time,
        96_000
    );
}

#[test]
fn roll_distance_follows_the_packet_duration() {
    for (duration, roll) in [
        (960u32, -4i16),
        (480, -8),
        (120, -32),
        (2880, -2),
        (1920, -2),
    ] {
        let data = packets(3);
        let samples: Vec<_> = data.iter().map(|d| Sample { data: d, duration }).collect();
        let frag = fragment(1, 0, &samples, &[]);
        let moof = walk(&frag)[0].body;
        let sgpd = at(moof, &[b"traf", b"sgpd"]);
        assert_eq!(be16(sgpd, 16) as i16, roll, "{duration}");
    }
}

#[test]
fn odd_inputs_do_not_panic() {
    // No samples: a valid moof with an empty trun and no sample group.
    let frag = fragment(1, u64::MAX, &[], &[]);
    let top = walk(&frag);
    assert_eq!(top.len(), 2);
    let traf = only(top[0].body, b"traf");
    assert!(walk(traf).iter().all(|b| &b.kind != b"sgpd"));
    assert_eq!(be32(only(traf, b"trun"), 4), 0);
    assert_eq!(top[1].body.len(), 0);

    // Zero durations, NULs in strings, empty payloads.
    let samples = [Sample {
        data: &[],
        duration: 0,
    }];
    let emsg = Emsg {
        scheme_id_uri: "a\0b".into(),
        value: String::new(),
        timescale: 0,
        presentation_time: 0,
        event_duration: u32::MAX,
        id: 0,
        message_data: Vec::new(),
    };
    let frag = fragment_of(0, 0, 0, &samples, &[emsg]);
    let top = walk(&frag);
    assert_eq!(
        &top[0].body[24..],
        b"a\0\0",
        "scheme cut at the NUL, empty value"
    );
}

#[test]
fn id3_tag_layout() {
    let tag = id3_tag(&[("tribune", "{\"a\":1}"), ("stage", "héllo")]);
    assert_eq!(&tag[0..3], b"ID3");
    assert_eq!(tag[3..5], [4, 0], "ID3v2.4.0");
    assert_eq!(tag[5], 0, "no flags");
    let size = tag[6..10].iter().fold(0usize, |n, &b| {
        assert!(b < 0x80, "synchsafe");
        (n << 7) | usize::from(b)
    });
    assert_eq!(size, tag.len() - 10);

    let mut frames = Vec::new();
    let mut rest = &tag[10..];
    while !rest.is_empty() {
        assert_eq!(&rest[0..4], b"TXXX");
        let len = rest[4..8]
            .iter()
            .fold(0usize, |n, &b| (n << 7) | usize::from(b));
        assert_eq!(rest[8..10], [0, 0], "frame flags");
        let body = &rest[10..10 + len];
        assert_eq!(body[0], 3, "UTF-8");
        let nul = body[1..].iter().position(|&b| b == 0).unwrap();
        frames.push((
            std::str::from_utf8(&body[1..1 + nul]).unwrap().to_owned(),
            std::str::from_utf8(&body[2 + nul..]).unwrap().to_owned(),
        ));
        rest = &rest[10 + len..];
    }
    assert_eq!(
        frames,
        [
            ("tribune".to_owned(), "{\"a\":1}".to_owned()),
            ("stage".to_owned(), "héllo".to_owned())
        ]
    );

    // Sizes past 127 bytes use the synchsafe form (no byte with the top bit set).
    let long = "x".repeat(300);
    let tag = id3_tag(&[("d", &long)]);
    assert!(tag[6..10].iter().all(|&b| b < 0x80));
    assert_eq!(tag[6..10], [0, 0, 2, 57], "10 + 3 + 300 = 313 = 2·128 + 57");

    assert_eq!(id3_tag(&[]), b"ID3\x04\x00\x00\x00\x00\x00\x00");
}

// ---- real decoders ----

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// 3 s of a 440 Hz tone as 20 ms Opus packets, and the encoder's pre-skip.
fn tone_packets() -> (Vec<Vec<u8>>, u16) {
    let mut enc = Encoder::new(48_000, Channels::Mono, Application::Audio).unwrap();
    let pre_skip = enc.get_lookahead().unwrap() as u16;
    let mut tone = Tone::new(440.0, 0.5);
    let mut pcm = [0f32; 960];
    let packets = (0..150)
        .map(|_| {
            tone.fill(&mut pcm);
            enc.encode_vec_float(&pcm, 4000).unwrap()
        })
        .collect();
    (packets, pre_skip)
}

/// The init segment followed by 400 ms fragments (20 packets each), the first at index `from`.
fn stream(packets: &[Vec<u8>], pre_skip: u16, from: usize) -> Vec<u8> {
    let track = Track {
        channels: 1,
        pre_skip,
        input_sample_rate: 48_000,
        track_id: TRACK_ID,
    };
    let mut out = init_segment(&track);
    for (i, chunk) in packets.chunks(20).enumerate().skip(from) {
        let samples: Vec<_> = chunk
            .iter()
            .map(|p| Sample {
                data: p,
                duration: 960,
            })
            .collect();
        let tag = id3_tag(&[("tribune", "{}")]);
        let emsg = Emsg {
            scheme_id_uri: EMSG_ID3_SCHEME.into(),
            value: String::new(),
            timescale: TIMESCALE,
            presentation_time: (i * 20 * 960) as u64,
            event_duration: 0,
            id: i as u32,
            message_data: tag,
        };
        out.extend(fragment(
            i as u32 + 1,
            (i * 20 * 960) as u64,
            &samples,
            &[emsg],
        ));
    }
    out
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tribune-fmp4-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn ffprobe(path: &Path) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_streams", "-show_format"])
        .arg(path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.is_empty(),
        "ffprobe: {stderr}"
    );
    String::from_utf8(out.stdout).unwrap()
}

fn field<'a>(probe: &'a str, key: &str) -> &'a str {
    probe
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key} in {probe}"))
}

/// Decodes `path` with ffmpeg to mono f32 at 48 kHz; asserts ffmpeg says nothing on stderr.
fn decode(path: &Path) -> Vec<f32> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "f32le", "-ac", "1", "-ar", "48000", "-"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.is_empty(),
        "ffmpeg: {stderr}"
    );
    out.stdout
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

#[test]
fn ffmpeg_reads_and_decodes_the_stream() {
    if !have("ffmpeg") || !have("ffprobe") {
        eprintln!("ffmpeg/ffprobe not installed: skipping the real-decoder check");
        return;
    }
    let (packets, pre_skip) = tone_packets();
    let path = scratch("x.mp4");
    std::fs::write(&path, stream(&packets, pre_skip, 0)).unwrap();

    let probe = ffprobe(&path);
    assert_eq!(field(&probe, "codec_name"), "opus");
    assert_eq!(field(&probe, "sample_rate"), "48000");
    assert_eq!(field(&probe, "channels"), "1");
    let duration: f64 = field(&probe, "duration").parse().unwrap();
    let expect = 3.0 - f64::from(pre_skip) / 48_000.0;
    assert!(
        (duration - expect).abs() < 0.1,
        "duration {duration}, expected {expect}"
    );

    let pcm = decode(&path);
    let secs = pcm.len() as f64 / 48_000.0;
    eprintln!("ffprobe duration {duration} s, decoded {secs} s, expected {expect} s");
    assert!((secs - expect).abs() < 0.1, "decoded {secs} s");
    let steady = &pcm[4800..pcm.len() - 4800];
    let tone = goertzel_power(steady, 48_000, 440.0);
    let other = goertzel_power(steady, 48_000, 1000.0);
    assert!(tone > 0.08, "440 Hz power {tone}");
    assert!(other < tone / 1000.0, "1 kHz power {other}");

    // Starting at the third fragment (as a listener joining at a later segment does): the
    // decoder starts cold and the tone is there from the first 100 ms.
    let path = scratch("from-3rd.mp4");
    std::fs::write(&path, stream(&packets, pre_skip, 2)).unwrap();
    let probe = ffprobe(&path);
    let start: f64 = field(&probe, "start_time").parse().unwrap();
    let expect_start = 0.8 - f64::from(pre_skip) / 48_000.0;
    assert!(
        (start - expect_start).abs() < 0.01,
        "start {start}, expected {expect_start}"
    );
    let pcm = decode(&path);
    let secs = pcm.len() as f64 / 48_000.0;
    eprintln!("from the 3rd fragment: start_time {start} s, decoded {secs} s");
    assert!(
        (secs - 2.2).abs() < 0.1,
        "decoded {secs} s from the 3rd fragment"
    );
    // A cold decoder converges within the 80 ms the roll group announces: the tone is there from
    // the first 100 ms (quieter while the decoder's energy state builds up), at full level after
    // the pre-roll, and without a click.
    let head = goertzel_power(&pcm[..4800], 48_000, 440.0);
    assert!(
        head > tone / 10.0,
        "440 Hz in the first 100 ms: {head} (steady {tone})"
    );
    let after_roll = goertzel_power(&pcm[3840..3840 + 4800], 48_000, 440.0);
    assert!(
        after_roll > tone * 0.7,
        "440 Hz after the pre-roll: {after_roll} (steady {tone})"
    );
    let peak = pcm[..4800].iter().fold(0f32, |m, x| m.max(x.abs()));
    assert!(peak < 0.6, "no click at a cold start: peak {peak}");

    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

proptest::proptest! {
    /// Any track, samples and events give well-formed boxes whose sizes add up, and a trun that
    /// points at exactly the packets.
    #[test]
    fn any_input_gives_well_formed_boxes(
        channels: u8,
        pre_skip: u16,
        input_sample_rate: u32,
        track_id: u32,
        sequence: u32,
        base: u64,
        packets in proptest::collection::vec(
            (proptest::collection::vec(proptest::num::u8::ANY, 0..64), proptest::num::u32::ANY),
            0..40,
        ),
        scheme in ".*",
        value in ".*",
        description in ".*",
        text in ".*",
    ) {
        let t = Track { channels, pre_skip, input_sample_rate, track_id };
        let init = init_segment(&t);
        proptest::prop_assert_eq!(walk(&init).len(), 2);

        let samples: Vec<_> = packets
            .iter()
            .map(|(data, duration)| Sample { data, duration: *duration })
            .collect();
        let emsg = Emsg {
            scheme_id_uri: scheme,
            value,
            timescale: TIMESCALE,
            presentation_time: base,
            event_duration: 0,
            id: sequence,
            message_data: id3_tag(&[(&description, &text)]),
        };
        let frag = fragment_of(track_id, sequence, base, &samples, &[emsg]);
        let top = walk(&frag);
        proptest::prop_assert_eq!(top.len(), 3);
        let trun = at(top[1].body, &[b"traf", b"trun"]);
        proptest::prop_assert_eq!(be32(trun, 4) as usize, samples.len());
        proptest::prop_assert_eq!(top[1].start + be32(trun, 8) as usize, top[2].start + 8);
        let payload: Vec<u8> = packets.iter().flat_map(|(d, _)| d.iter().copied()).collect();
        proptest::prop_assert_eq!(top[2].body, &payload[..]);
    }
}
