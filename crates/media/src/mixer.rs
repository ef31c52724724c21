//! The mixer core: one per live space.
//!
//! Every [`TICK`] (20 ms) the caller runs [`Mixer::tick`]. For each speaker it pulls units from the
//! speaker's [`JitterBuffer`] and decodes them (or conceals losses) until 960 samples are ready,
//! applies the speaker's [`Agc`], sums all unmuted speakers, limits the sum and encodes one Opus
//! packet for listeners. Speakers who asked for it also get a mix-minus: the sum of everyone but
//! themselves, limited and encoded with their own encoder, so they hear the others without the
//! echo of their own voice.
//!
//! # Real-time rules
//! The tick path runs on the space's dedicated mixer thread and must keep a 20 ms cadence: it
//! **must not lock, log, do IO, or read the clock**, and it avoids allocation: all PCM buffers and
//! output packets are allocated when a speaker is added and reused after that. (The jitter buffer
//! hands over packet buffers it already owns; only concealment with FEC copies one packet.)

pub mod agc;
pub mod limiter;

use std::time::{Duration, Instant};

use opus::{Application, Bitrate, Channels, Decoder, Encoder};

use crate::jitter::{self, JitterBuffer, Playout};
use crate::synth::{SILENCE_DBFS, rms_dbfs};
use crate::{Error, Result};
pub use agc::Agc;
pub use limiter::Limiter;

/// Identifies a speaker within one mixer (the server's session id).
pub type SpeakerId = u64;
/// Everything in the mixer runs at Opus's native rate.
pub const SAMPLE_RATE: u32 = 48_000;
/// Samples per tick: 20 ms at 48 kHz, the usual WebRTC Opus frame.
pub const FRAME_SAMPLES: usize = 960;
/// The mixer's cadence: one encoded packet per stream per tick.
pub const TICK: Duration = Duration::from_millis(20);
/// Output buffer size for one encoded packet: libopus recommends 4000 bytes as always enough.
pub const MAX_PACKET: usize = 4000;
/// Longest unit a jitter buffer may hand out: 120 ms, the longest Opus packet.
const MAX_UNIT: usize = 5760;
/// Loss rate the mix-minus encoders plan in-band FEC for (those streams go back over WebRTC).
const MIX_MINUS_LOSS_PERC: i32 = 5;

/// Mixer settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Bit rate of the listener stream, bits/s. 32 kb/s mono Opus is clear speech.
    pub bitrate: u32,
    /// Bit rate of each mix-minus stream, bits/s.
    pub mix_minus_bitrate: u32,
    /// Jitter buffer settings for every speaker.
    pub jitter: jitter::Config,
    /// Apply automatic gain control to each speaker.
    pub agc: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bitrate: 32_000,
            mix_minus_bitrate: 32_000,
            jitter: jitter::Config::default(),
            agc: true,
        }
    }
}

/// What one tick produced. Owned by the mixer and overwritten by the next tick.
#[derive(Debug, Clone, Default)]
pub struct TickOutput {
    /// The listener packet: 20 ms of the full mix, Opus mono. Empty if encoding failed (counted in
    /// [`MixerStats::encode_errors`]).
    pub listener: Vec<u8>,
    /// One 20 ms Opus packet per speaker added with `mix_minus`: everyone but that speaker.
    pub mix_minus: Vec<(SpeakerId, Vec<u8>)>,
    /// Each speaker's contribution this tick, RMS dBFS after gain; −100 for silence or muted.
    pub levels: Vec<(SpeakerId, f32)>,
}

/// Statistics of one speaker.
#[derive(Debug, Clone, PartialEq)]
pub struct SpeakerStats {
    /// The speaker.
    pub id: SpeakerId,
    /// Muted by the host.
    pub muted: bool,
    /// The speaker's jitter buffer.
    pub jitter: jitter::Stats,
    /// Packets that failed to decode (concealed instead).
    pub decode_errors: u64,
    /// Current automatic gain, dB.
    pub agc_gain_db: f32,
}

/// Statistics of a mixer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MixerStats {
    /// Ticks run.
    pub ticks: u64,
    /// Decode errors over all speakers, including removed ones.
    pub decode_errors: u64,
    /// Encode errors (listener and mix-minus).
    pub encode_errors: u64,
    /// Per speaker, in the order they were added.
    pub speakers: Vec<SpeakerStats>,
}

/// Everything the mixer holds for one speaker.
struct Speaker {
    id: SpeakerId,
    muted: bool,
    jitter: JitterBuffer,
    decoder: Decoder,
    agc: Agc,
    /// Decoded samples not yet mixed; holds up to one tick plus one unit.
    fifo: Vec<f32>,
    /// This tick's audio after gain.
    block: Vec<f32>,
    /// Scratch for one decoded unit.
    unit: Vec<f32>,
    mix_minus: Option<MixMinus>,
    decode_errors: u64,
}

/// A speaker's own mix-minus encoder and limiter.
struct MixMinus {
    encoder: Encoder,
    limiter: Limiter,
}

/// The mixer of one live space. See the module docs for the real-time rules.
pub struct Mixer {
    cfg: Config,
    speakers: Vec<Speaker>,
    encoder: Encoder,
    limiter: Limiter,
    pre_skip: u16,
    sum: Vec<f32>,
    listener_pcm: Vec<f32>,
    out_pcm: Vec<f32>,
    output: TickOutput,
    stats: MixerStats,
    removed_decode_errors: u64,
}

impl std::fmt::Debug for Mixer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mixer")
            .field("cfg", &self.cfg)
            .field(
                "speakers",
                &self.speakers.iter().map(|s| s.id).collect::<Vec<_>>(),
            )
            .field("ticks", &self.stats.ticks)
            .finish()
    }
}

/// A mono 48 kHz VoIP encoder at `bitrate`, for 20 ms frames.
fn new_encoder(bitrate: u32) -> Result<Encoder> {
    let mut e = Encoder::new(SAMPLE_RATE, Channels::Mono, Application::Voip)?;
    e.set_bitrate(Bitrate::Bits(bitrate.min(i32::MAX as u32) as i32))?;
    Ok(e)
}

impl Mixer {
    /// A mixer with no speakers.
    pub fn new(cfg: Config) -> Result<Self> {
        let mut encoder = new_encoder(cfg.bitrate)?;
        let lookahead = encoder.get_lookahead()?;
        let pre_skip = u16::try_from(lookahead.max(0)).unwrap_or(u16::MAX);
        Ok(Self {
            cfg,
            speakers: Vec::new(),
            encoder,
            limiter: Limiter::new(),
            pre_skip,
            sum: vec![0.0; FRAME_SAMPLES],
            listener_pcm: vec![0.0; FRAME_SAMPLES],
            out_pcm: vec![0.0; FRAME_SAMPLES],
            output: TickOutput {
                listener: Vec::with_capacity(MAX_PACKET),
                ..TickOutput::default()
            },
            stats: MixerStats::default(),
            removed_decode_errors: 0,
        })
    }

    /// The listener encoder's lookahead in 48 kHz samples: the pre-skip for the OpusHead of the
    /// listener stream.
    pub fn pre_skip(&self) -> u16 {
        self.pre_skip
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Adds a speaker; with `mix_minus`, every tick also encodes a mix of everyone else for them.
    pub fn add_speaker(&mut self, id: SpeakerId, mix_minus: bool) -> Result<()> {
        if self.speakers.iter().any(|s| s.id == id) {
            return Err(Error::DuplicateSpeaker(id));
        }
        let mix_minus = if mix_minus {
            let mut encoder = new_encoder(self.cfg.mix_minus_bitrate)?;
            encoder.set_inband_fec(true)?;
            encoder.set_packet_loss_perc(MIX_MINUS_LOSS_PERC)?;
            Some(MixMinus {
                encoder,
                limiter: Limiter::new(),
            })
        } else {
            None
        };
        self.speakers.push(Speaker {
            id,
            muted: false,
            jitter: JitterBuffer::new(self.cfg.jitter),
            decoder: Decoder::new(SAMPLE_RATE, Channels::Mono)?,
            agc: Agc::new(),
            fifo: Vec::with_capacity(FRAME_SAMPLES + MAX_UNIT),
            block: vec![0.0; FRAME_SAMPLES],
            unit: vec![0.0; MAX_UNIT],
            mix_minus,
            decode_errors: 0,
        });
        self.rebuild_outputs();
        Ok(())
    }

    /// Removes a speaker (no-op for an unknown id).
    pub fn remove_speaker(&mut self, id: SpeakerId) {
        // Decode errors of removed speakers stay in the total.
        for s in self.speakers.iter().filter(|s| s.id == id) {
            self.removed_decode_errors += s.decode_errors;
        }
        self.speakers.retain(|s| s.id != id);
        self.rebuild_outputs();
    }

    /// Mutes or unmutes a speaker in every mix (no-op for an unknown id). A muted speaker's
    /// packets are still consumed, so unmuting resumes without a backlog.
    pub fn set_muted(&mut self, id: SpeakerId, muted: bool) {
        if let Some(s) = self.speakers.iter_mut().find(|s| s.id == id) {
            s.muted = muted;
        }
    }

    /// The speakers, in the order they were added.
    pub fn speakers(&self) -> impl Iterator<Item = SpeakerId> + '_ {
        self.speakers.iter().map(|s| s.id)
    }

    /// Hands one RTP payload of speaker `id` to its jitter buffer. `seq` and `rtp_ts` are the
    /// extended (64-bit, unwrapped) RTP sequence number and timestamp. Unknown ids are ignored.
    pub fn push_packet(
        &mut self,
        id: SpeakerId,
        now: Instant,
        seq: u64,
        rtp_ts: u64,
        payload: &[u8],
    ) {
        if let Some(s) = self.speakers.iter_mut().find(|s| s.id == id) {
            // The outcome is counted in the jitter buffer's stats.
            let _ = s.jitter.push(now, seq, rtp_ts, payload);
        }
    }

    /// Produces exactly one tick (20 ms) of output. Call every [`TICK`].
    pub fn tick(&mut self, now: Instant) -> &TickOutput {
        self.stats.ticks += 1;
        self.sum.fill(0.0);
        let agc = self.cfg.agc;
        for (i, s) in self.speakers.iter_mut().enumerate() {
            s.fill_block(now);
            if agc {
                s.agc.process(&mut s.block);
            }
            let level = if s.muted {
                SILENCE_DBFS
            } else {
                for (acc, x) in self.sum.iter_mut().zip(&s.block) {
                    *acc += x;
                }
                rms_dbfs(&s.block)
            };
            self.output.levels[i] = (s.id, level);
        }

        self.listener_pcm.copy_from_slice(&self.sum);
        self.limiter.process(&mut self.listener_pcm);
        if !encode(
            &mut self.encoder,
            &self.listener_pcm,
            &mut self.output.listener,
        ) {
            self.stats.encode_errors += 1;
        }

        let mut mm_idx = 0;
        for s in &mut self.speakers {
            let Some(mm) = s.mix_minus.as_mut() else {
                continue;
            };
            if s.muted {
                self.out_pcm.copy_from_slice(&self.sum);
            } else {
                for ((o, &t), &own) in self.out_pcm.iter_mut().zip(&self.sum).zip(&s.block) {
                    *o = t - own;
                }
            }
            mm.limiter.process(&mut self.out_pcm);
            let (id, packet) = &mut self.output.mix_minus[mm_idx];
            *id = s.id;
            if !encode(&mut mm.encoder, &self.out_pcm, packet) {
                self.stats.encode_errors += 1;
            }
            mm_idx += 1;
        }
        &self.output
    }

    /// The limited listener mix of the last tick, as encoded into [`TickOutput::listener`]
    /// (960 samples, all within [-1, 1]).
    pub fn listener_pcm(&self) -> &[f32] {
        &self.listener_pcm
    }

    /// Current statistics (allocates; not for the tick path).
    pub fn stats(&self) -> MixerStats {
        let mut st = self.stats.clone();
        st.decode_errors =
            self.removed_decode_errors + self.speakers.iter().map(|s| s.decode_errors).sum::<u64>();
        st.speakers = self
            .speakers
            .iter()
            .map(|s| SpeakerStats {
                id: s.id,
                muted: s.muted,
                jitter: s.jitter.stats(),
                decode_errors: s.decode_errors,
                agc_gain_db: s.agc.gain_db(),
            })
            .collect();
        st
    }

    /// Sizes the per-speaker output lists after the speaker set changed.
    fn rebuild_outputs(&mut self) {
        self.output.levels = self.speakers.iter().map(|s| (s.id, SILENCE_DBFS)).collect();
        self.output.mix_minus = self
            .speakers
            .iter()
            .filter(|s| s.mix_minus.is_some())
            .map(|s| (s.id, Vec::with_capacity(MAX_PACKET)))
            .collect();
    }
}

impl Speaker {
    /// Pulls and decodes units until the FIFO holds a tick, then moves one tick into `block`.
    fn fill_block(&mut self, now: Instant) {
        while self.fifo.len() < FRAME_SAMPLES {
            let n = match self.jitter.pop(now) {
                Playout::Packet { data, samples } => {
                    let want = unit_len(samples);
                    match self
                        .decoder
                        .decode_float(&data, &mut self.unit[..want], false)
                    {
                        Ok(n) if n > 0 => n.min(want),
                        _ => {
                            self.decode_errors += 1;
                            self.conceal(want)
                        }
                    }
                }
                Playout::Lost { fec, samples } => {
                    let want = unit_len(samples);
                    match fec {
                        Some(next) => {
                            match self
                                .decoder
                                .decode_float(&next, &mut self.unit[..want], true)
                            {
                                Ok(n) if n > 0 => n.min(want),
                                _ => self.conceal(want),
                            }
                        }
                        None => self.conceal(want),
                    }
                }
                Playout::Silence { samples } => {
                    // Silence needs no 2.5 ms rounding: keep the timeline exact.
                    let want = (samples as usize).clamp(1, MAX_UNIT);
                    self.unit[..want].fill(0.0);
                    want
                }
            };
            self.fifo.extend_from_slice(&self.unit[..n]);
        }
        self.block.copy_from_slice(&self.fifo[..FRAME_SAMPLES]);
        self.fifo.drain(..FRAME_SAMPLES);
    }

    /// Packet loss concealment for `want` samples; zeros if even that fails.
    fn conceal(&mut self, want: usize) -> usize {
        match self
            .decoder
            .decode_float(&[], &mut self.unit[..want], false)
        {
            Ok(n) if n > 0 => n.min(want),
            _ => {
                self.unit[..want].fill(0.0);
                want
            }
        }
    }
}

/// Samples of a unit, bounded to the scratch buffer and rounded to a whole 2.5 ms (libopus only
/// conceals multiples of that), at least one 2.5 ms step so the FIFO always advances.
fn unit_len(samples: u32) -> usize {
    const STEP: usize = 120;
    let s = (samples as usize).clamp(STEP, MAX_UNIT);
    s - s % STEP
}

/// Encodes 20 ms into `out`, reusing its capacity. Returns false (and leaves `out` empty) on error.
fn encode(encoder: &mut Encoder, pcm: &[f32], out: &mut Vec<u8>) -> bool {
    out.resize(MAX_PACKET, 0);
    match encoder.encode_float(pcm, out) {
        Ok(n) => {
            out.truncate(n);
            true
        }
        Err(_) => {
            out.clear();
            false
        }
    }
}

#[cfg(test)]
mod tests;
