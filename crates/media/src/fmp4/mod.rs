//! A fragmented MP4 (CMAF) writer for one Opus audio track, the media of the LL-HLS rendition.
//!
//! The output follows "Encapsulation of Opus in ISO Base Media File Format" (version 0.8.1,
//! <https://opus-codec.org/docs/opus_in_isobmff.html>) on top of ISO/IEC 14496-12 (ISOBMFF) and
//! ISO/IEC 23000-19 (CMAF):
//!
//! - **Sample entry** `Opus` (§4.3.1): an `AudioSampleEntry` with `channelcount` from the track,
//!   `samplesize` 16 and `samplerate` 48000 (16.16), holding an `OpusSpecificBox`.
//! - **`dOps`** (§4.3.2) has its own big-endian layout (Version 0, OutputChannelCount, PreSkip,
//!   InputSampleRate, OutputGain, ChannelMappingFamily): it is *not* the little-endian OpusHead
//!   of Ogg, though the fields carry the same meaning.
//! - **Pre-skip** (§4.4) is expressed as an edit list: one `elst` entry whose `media_time` is the
//!   pre-skip in the 48 kHz media timescale, so players drop the encoder's priming samples.
//!   `segment_duration` is 0, which fragmented files use for "until the end of the media"
//!   (the live duration is unknown when the init segment is written).
//! - **Pre-roll** (§4.3.6.2): Opus needs about 80 ms of decoding before its output converges, so
//!   every fragment carries a `roll` sample group (`sgpd` with an `AudioRollRecoveryEntry` whose
//!   `roll_distance` is −4 for 20 ms frames, and `sbgp` mapping all the fragment's samples to it).
//!   Every Opus packet is a sync sample, so a decoder may start at any segment or part.
//!
//! Timed metadata travels as `emsg` version 1 boxes (ISO/IEC 23009-1 §5.10.3.3) placed before the
//! `moof` of a fragment, carrying an ID3v2.4 tag ([`id3_tag`]) under [`EMSG_ID3_SCHEME`], the
//! scheme hls.js exposes as `FRAG_PARSING_METADATA` samples.
//!
//! The boxes themselves are encoded with the [`mp4_atom`] crate. Everything here is pure: bytes in,
//! bytes out, no IO and no clock; times are arguments in [`TIMESCALE`] units.

mod id3;
pub mod read;
#[cfg(test)]
mod tests;

pub use id3::id3_tag;

use mp4_atom::{
    AnySampleGroupEntry, Audio, Dinf, Dops, Dref, DrefEntry, Edts, Elst, ElstEntry, EmsgTimestamp,
    Encode, FixedPoint, FourCC, Ftyp, Hdlr, Mdhd, Mdia, Mfhd, Minf, Moof, Moov, Mvex, Mvhd, Opus,
    Sbgp, SbgpEntry, Sgpd, SgpdEntry, Smhd, Stbl, Stco, Stsd, Tfdt, Tfhd, Tkhd, Traf, Trak, Trex,
    Trun, TrunEntry, TrunSamples, Url,
};

/// The media timescale of the track: Opus always decodes at 48 kHz, so one tick is one output
/// sample and a 20 ms packet lasts 960 ticks.
pub const TIMESCALE: u32 = 48_000;

/// The `emsg` scheme for ID3 timed metadata (AOM "Carriage of ID3 Timed Metadata in CMAF"); hls.js
/// parses emsg boxes with this scheme and surfaces their ID3 frames to the page.
pub const EMSG_ID3_SCHEME: &str = "https://aomedia.org/emsg/ID3";

/// The track ID [`fragment`] writes into its `tfhd`; give [`Track::track_id`] this value (as
/// [`Track::default`] does) or use [`fragment_of`] with the track's own ID.
pub const TRACK_ID: u32 = 1;

/// The pre-roll Opus needs before its output converges (§4.3.6.2 of the encapsulation spec):
/// 80 ms, in [`TIMESCALE`] ticks.
const PRE_ROLL: u32 = TIMESCALE / 1000 * 80;

/// `trex` default sample flags: `sample_depends_on` = 2 (the sample does not depend on others)
/// and `sample_is_non_sync_sample` = 0. Every Opus packet is a random access point.
const SYNC_SAMPLE_FLAGS: u32 = 0x0200_0000;

/// Fragment-local sample group description indices start here (ISOBMFF §8.9.4): index 1 of the
/// `sgpd` in the same `traf`.
const FRAGMENT_LOCAL_GROUP: u32 = 0x1_0001;

/// The Opus track of a stream, as the init segment describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Track {
    /// Output channel count: 1 (mono) or 2 (stereo), written with channel mapping family 0.
    /// Other values are clamped into that range, the only layouts family 0 can describe.
    pub channels: u8,
    /// Samples (at 48 kHz) to discard from the decoder's output at the start: the encoder's
    /// lookahead, e.g. `opus::Encoder::get_lookahead()` (312 for libopus at 48 kHz, Audio mode).
    pub pre_skip: u16,
    /// The sample rate of the original input, informational only (`dOps` InputSampleRate).
    pub input_sample_rate: u32,
    /// The track ID in `tkhd`, `trex` and each fragment's `tfhd`; 0 is not a valid ID and is
    /// written as 1.
    pub track_id: u32,
}

impl Default for Track {
    /// Mono, libopus's 312-sample lookahead, 48 kHz input, track [`TRACK_ID`].
    fn default() -> Self {
        Self {
            channels: 1,
            pre_skip: 312,
            input_sample_rate: TIMESCALE,
            track_id: TRACK_ID,
        }
    }
}

impl Track {
    fn channel_count(&self) -> u8 {
        self.channels.clamp(1, 2)
    }

    fn id(&self) -> u32 {
        self.track_id.max(1)
    }
}

/// One Opus packet of a fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample<'a> {
    /// The Opus packet, exactly as the encoder produced it.
    pub data: &'a [u8],
    /// The packet's duration in [`TIMESCALE`] units, e.g. 960 for 20 ms.
    pub duration: u32,
}

/// A DASH event message (`emsg` version 1): timed metadata carried in the media segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emsg {
    /// The scheme, e.g. [`EMSG_ID3_SCHEME`]. Written as a NUL-terminated string, so anything from
    /// a NUL on is dropped.
    pub scheme_id_uri: String,
    /// The scheme-specific value (may be empty); NUL handling as for `scheme_id_uri`.
    pub value: String,
    /// Ticks per second of `presentation_time` and `event_duration`.
    pub timescale: u32,
    /// When the event applies, on the media timeline (absolute, not relative to the fragment).
    pub presentation_time: u64,
    /// How long the event lasts; `0xFFFF_FFFF` means unknown.
    pub event_duration: u32,
    /// Identifies the event within the scheme; repeats of the same `id` are the same event.
    pub id: u32,
    /// The payload, e.g. an ID3 tag from [`id3_tag`].
    pub message_data: Vec<u8>,
}

/// The CMAF header (init segment): `ftyp` and a `moov` describing the Opus track, with no samples.
///
/// Brands: major `iso6` (ISOBMFF with fragment decode times), compatible `iso6`, `cmfc` (a CMAF
/// track), `Opus` (the Opus encapsulation spec, §4.1) and `mp41`. Players ignore the brands they
/// do not know; neither Chromium's MSE parser nor hls.js checks them.
pub fn init_segment(t: &Track) -> Vec<u8> {
    let mut out = Vec::with_capacity(640);
    let ftyp = Ftyp {
        major_brand: FourCC::new(b"iso6"),
        minor_version: 0,
        compatible_brands: [b"iso6", b"cmfc", b"Opus", b"mp41"]
            .into_iter()
            .map(FourCC::new)
            .collect(),
    };
    if ftyp.encode(&mut out).is_err() || moov(t).encode(&mut out).is_err() {
        // Unreachable for the values built here (the tests encode every channel count); an
        // empty init segment is the defined result rather than a panic.
        return Vec::new();
    }
    out
}

fn moov(t: &Track) -> Moov {
    let channels = t.channel_count();
    let opus = Opus {
        audio: Audio {
            data_reference_index: 1,
            channel_count: u16::from(channels),
            sample_size: 16,
            sample_rate: FixedPoint::new(48_000, 0),
        },
        dops: Dops {
            output_channel_count: channels,
            pre_skip: t.pre_skip,
            input_sample_rate: t.input_sample_rate,
            output_gain: 0,
            channel_mapping: None,
        },
        btrt: None,
    };
    Moov {
        mvhd: Mvhd {
            timescale: TIMESCALE,
            rate: FixedPoint::new(1, 0),
            volume: FixedPoint::new(1, 0),
            next_track_id: t.id().saturating_add(1),
            ..Default::default()
        },
        mvex: Some(Mvex {
            mehd: None,
            trex: vec![Trex {
                track_id: t.id(),
                default_sample_description_index: 1,
                default_sample_duration: 0,
                default_sample_size: 0,
                default_sample_flags: SYNC_SAMPLE_FLAGS,
            }],
        }),
        trak: vec![Trak {
            tkhd: Tkhd {
                track_id: t.id(),
                enabled: true,
                in_movie: true,
                volume: FixedPoint::new(1, 0),
                ..Default::default()
            },
            edts: Some(Edts {
                elst: Some(Elst {
                    entries: vec![ElstEntry {
                        segment_duration: 0,
                        media_time: Some(u64::from(t.pre_skip)),
                        media_rate: FixedPoint::new(1, 0),
                    }],
                }),
            }),
            mdia: Mdia {
                mdhd: Mdhd {
                    timescale: TIMESCALE,
                    language: "und".into(),
                    ..Default::default()
                },
                hdlr: Hdlr {
                    handler: FourCC::new(b"soun"),
                    name: "SoundHandler".into(),
                },
                minf: Minf {
                    smhd: Some(Smhd::default()),
                    dinf: Dinf {
                        dref: Dref {
                            entries: vec![DrefEntry::Url(Url {
                                location: String::new(),
                            })],
                        },
                    },
                    stbl: Stbl {
                        stsd: Stsd {
                            codecs: vec![opus.into()],
                        },
                        stco: Some(Stco::default()),
                        ..Default::default()
                    },
                    ..Default::default()
                },
            },
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// One CMAF chunk (an LL-HLS part, or a whole segment) of the track [`TRACK_ID`]: the `emsg`
/// boxes, then `moof` and `mdat`. See [`fragment_of`].
pub fn fragment(
    sequence_number: u32,
    base_media_decode_time: u64,
    samples: &[Sample<'_>],
    emsgs: &[Emsg],
) -> Vec<u8> {
    fragment_of(
        TRACK_ID,
        sequence_number,
        base_media_decode_time,
        samples,
        emsgs,
    )
}

/// One CMAF chunk of track `track_id`: each `emsg` (version 1) in order, then a `moof` (`mfhd`
/// with `sequence_number`; `traf` with `tfhd` default-base-is-moof, `tfdt` version 1 with
/// `base_media_decode_time`, `trun` with the data offset and every sample's size, and its
/// duration unless all share one, which `tfhd` then names as the default,
/// and the `roll` sample group), then the `mdat` with the packets back to back.
///
/// `sequence_number` should start at 1 and increase by one per fragment; `base_media_decode_time`
/// is the sum of all earlier samples' durations, in [`TIMESCALE`] units. An empty `samples` gives
/// a fragment with an empty `trun` and no sample group.
pub fn fragment_of(
    track_id: u32,
    sequence_number: u32,
    base_media_decode_time: u64,
    samples: &[Sample<'_>],
    emsgs: &[Emsg],
) -> Vec<u8> {
    let payload: usize = samples.iter().map(|s| s.data.len()).sum();
    let mut out = Vec::with_capacity(payload + 256 + emsgs.len() * 128);
    for e in emsgs {
        if emsg_box(e).encode(&mut out).is_err() {
            return Vec::new();
        }
    }

    // Every Opus packet of a part usually lasts the same 20 ms: then the duration is said once,
    // in the `tfhd` (ISO/IEC 14496-12 §8.8.7), and each `trun` entry carries only a size (80
    // fewer bytes per 400 ms part, sent to every listener).
    let same = samples
        .first()
        .map(|f| f.duration)
        .filter(|d| samples.iter().all(|s| s.duration == *d));
    let mut moof = Moof {
        mfhd: Mfhd { sequence_number },
        traf: vec![Traf {
            tfhd: Tfhd {
                track_id: track_id.max(1),
                default_base_is_moof: true,
                default_sample_duration: same,
                ..Default::default()
            },
            tfdt: Some(Tfdt {
                base_media_decode_time,
            }),
            trun: vec![Trun {
                data_offset: Some(0),
                samples: TrunSamples::Explicit(
                    samples
                        .iter()
                        .map(|s| TrunEntry {
                            duration: if same.is_some() {
                                None
                            } else {
                                Some(s.duration)
                            },
                            size: Some(u32::try_from(s.data.len()).unwrap_or(u32::MAX)),
                            ..Default::default()
                        })
                        .collect(),
                ),
            }],
            sgpd: roll_group(samples).into_iter().collect(),
            sbgp: (!samples.is_empty())
                .then(|| Sbgp {
                    grouping_type: FourCC::new(b"roll"),
                    grouping_type_parameter: None,
                    entries: vec![SbgpEntry {
                        sample_count: u32::try_from(samples.len()).unwrap_or(u32::MAX),
                        group_description_index: FRAGMENT_LOCAL_GROUP,
                    }],
                })
                .into_iter()
                .collect(),
            ..Default::default()
        }],
    };

    // The data offset counts from the first byte of the moof (default-base-is-moof) to the first
    // sample; it has a fixed width, so measuring the moof with offset 0 gives its final size.
    let moof_start = out.len();
    if moof.encode(&mut out).is_err() {
        return Vec::new();
    }
    let moof_len = out.len() - moof_start;
    out.truncate(moof_start);
    let header = mdat_header(payload);
    let offset = i32::try_from(moof_len + header.len()).unwrap_or(i32::MAX);
    if let Some(trun) = moof.traf.first_mut().and_then(|t| t.trun.first_mut()) {
        trun.data_offset = Some(offset);
    }
    if moof.encode(&mut out).is_err() {
        return Vec::new();
    }

    out.extend_from_slice(&header);
    for s in samples {
        out.extend_from_slice(s.data);
    }
    out
}

/// The `roll` group of a fragment: an `AudioRollRecoveryEntry` (ISOBMFF §10.1) whose
/// `roll_distance` is the number of samples covering [`PRE_ROLL`], negative because the
/// pre-roll samples precede the sample being decoded. For 20 ms packets that is −4. With mixed
/// durations the shortest one decides, so the distance always covers at least 80 ms.
fn roll_group(samples: &[Sample<'_>]) -> Option<Sgpd> {
    let shortest = samples
        .iter()
        .map(|s| s.duration)
        .filter(|&d| d > 0)
        .min()?;
    let distance = PRE_ROLL.div_ceil(shortest);
    let roll = -i16::try_from(distance).unwrap_or(i16::MAX);
    Some(Sgpd {
        grouping_type: FourCC::new(b"roll"),
        // Version 1 with a default length: version 0 is deprecated for `roll`.
        default_length: Some(2),
        default_group_description_index: None,
        static_group_description: false,
        static_mapping: false,
        essential: false,
        entries: vec![SgpdEntry {
            description_length: Some(2),
            entry: AnySampleGroupEntry::UnknownGroupingType(
                FourCC::new(b"roll"),
                roll.to_be_bytes().to_vec(),
            ),
        }],
    })
}

/// The `mdat` header for `payload` bytes: 32-bit size, or the 64-bit `largesize` form past 4 GiB.
fn mdat_header(payload: usize) -> Vec<u8> {
    let mut h = Vec::with_capacity(16);
    match u32::try_from(payload + 8) {
        Ok(size) => {
            h.extend_from_slice(&size.to_be_bytes());
            h.extend_from_slice(b"mdat");
        }
        Err(_) => {
            h.extend_from_slice(&1u32.to_be_bytes());
            h.extend_from_slice(b"mdat");
            h.extend_from_slice(&(payload as u64 + 16).to_be_bytes());
        }
    }
    h
}

fn emsg_box(e: &Emsg) -> mp4_atom::Emsg {
    mp4_atom::Emsg {
        timescale: e.timescale,
        presentation_time: EmsgTimestamp::Absolute(e.presentation_time),
        event_duration: e.event_duration,
        id: e.id,
        scheme_id_uri: until_nul(&e.scheme_id_uri).into(),
        value: until_nul(&e.value).into(),
        message_data: e.message_data.clone(),
    }
}

/// `s` up to its first NUL: box strings are NUL-terminated, so a NUL inside would end them early
/// and shift every later field.
fn until_nul(s: &str) -> &str {
    s.split('\0').next().unwrap_or_default()
}
