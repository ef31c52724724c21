//! Mixer tests, end to end through real Opus encoding and decoding, on injected time.

use std::time::{Duration, Instant};

use opus::{Application, Channels, Decoder, Encoder};

use super::*;
use crate::synth::{Tone, Voice, goertzel_power, rms_dbfs};

/// Produces the next block of a speaker's signal.
type Signal = Box<dyn FnMut(&mut [f32])>;

/// A simulated speaker: a signal, its own Opus encoder, RTP numbering.
struct Feed {
    id: SpeakerId,
    signal: Signal,
    enc: Encoder,
    seq: u64,
    ts: u64,
}

impl Feed {
    fn new(id: SpeakerId, signal: impl FnMut(&mut [f32]) + 'static) -> Self {
        let mut enc = Encoder::new(48_000, Channels::Mono, Application::Voip).unwrap();
        enc.set_bitrate(opus::Bitrate::Bits(48_000)).unwrap();
        Self {
            id,
            signal: Box::new(signal),
            enc,
            seq: 1000,
            ts: 77_777,
        }
    }

    fn tone(id: SpeakerId, hz: f32, amplitude: f32) -> Self {
        let mut t = Tone::new(hz, amplitude);
        Self::new(id, move |out| t.fill(out))
    }

    /// The next 20 ms packet.
    fn next(&mut self) -> (u64, u64, Vec<u8>) {
        let mut pcm = [0.0f32; FRAME_SAMPLES];
        (self.signal)(&mut pcm);
        let packet = self.enc.encode_vec_float(&pcm, MAX_PACKET).unwrap();
        let out = (self.seq, self.ts, packet);
        self.seq += 1;
        self.ts += FRAME_SAMPLES as u64;
        out
    }
}

/// Decoded output of a run.
#[derive(Default)]
struct Run {
    listener: Vec<f32>,
    mix_minus: Vec<(SpeakerId, Vec<f32>)>,
    levels: Vec<Vec<(SpeakerId, f32)>>,
    limited_peak: f32,
}

/// Runs `ticks` ticks: each speaker sends a packet per tick (dropped when `lose(tick, id)`), the
/// mixer ticks, and every output stream is decoded.
fn run(
    mixer: &mut Mixer,
    feeds: &mut [Feed],
    ticks: u64,
    lose: impl Fn(u64, SpeakerId) -> bool,
) -> Run {
    let t0 = Instant::now();
    let mut dec = Decoder::new(48_000, Channels::Mono).unwrap();
    let mut mm_dec: Vec<(SpeakerId, Decoder)> = Vec::new();
    let mut out = Run::default();
    let mut buf = [0.0f32; 5760];
    for k in 0..ticks {
        let now = t0 + TICK * k as u32;
        for f in feeds.iter_mut() {
            let (seq, ts, packet) = f.next();
            if !lose(k, f.id) {
                mixer.push_packet(f.id, now - Duration::from_millis(3), seq, ts, &packet);
            }
        }
        let o = mixer.tick(now);
        let n = dec.decode_float(&o.listener, &mut buf, false).unwrap();
        assert_eq!(n, FRAME_SAMPLES);
        out.listener.extend_from_slice(&buf[..n]);
        for (id, packet) in &o.mix_minus {
            if !mm_dec.iter().any(|(i, _)| i == id) {
                mm_dec.push((*id, Decoder::new(48_000, Channels::Mono).unwrap()));
                out.mix_minus.push((*id, Vec::new()));
            }
            let d = &mut mm_dec.iter_mut().find(|(i, _)| i == id).unwrap().1;
            let n = d.decode_float(packet, &mut buf, false).unwrap();
            let pcm = &mut out.mix_minus.iter_mut().find(|(i, _)| i == id).unwrap().1;
            pcm.extend_from_slice(&buf[..n]);
        }
        out.levels.push(o.levels.clone());
        let peak = mixer
            .listener_pcm()
            .iter()
            .fold(0.0f32, |m, x| m.max(x.abs()));
        out.limited_peak = out.limited_peak.max(peak);
    }
    out
}

/// The last `secs` seconds of `pcm`.
fn tail(pcm: &[f32], secs: f32) -> &[f32] {
    let n = (secs * 48_000.0) as usize;
    &pcm[pcm.len().saturating_sub(n)..]
}

fn power(pcm: &[f32], hz: f32) -> f32 {
    goertzel_power(tail(pcm, 1.0), 48_000, hz)
}

fn no_agc() -> Config {
    Config {
        agc: false,
        ..Config::default()
    }
}

#[test]
fn sum_of_two_tones_holds_both() {
    let mut m = Mixer::new(no_agc()).unwrap();
    m.add_speaker(1, false).unwrap();
    m.add_speaker(2, false).unwrap();
    let mut feeds = [Feed::tone(1, 400.0, 0.3), Feed::tone(2, 700.0, 0.3)];
    let r = run(&mut m, &mut feeds, 100, |_, _| false);
    // A 0.3 sine has power 0.045.
    assert!(
        power(&r.listener, 400.0) > 0.02,
        "{}",
        power(&r.listener, 400.0)
    );
    assert!(power(&r.listener, 700.0) > 0.02);
    assert!(power(&r.listener, 1000.0) < 0.001);
    assert!(m.pre_skip() > 0);
    let st = m.stats();
    assert_eq!(st.ticks, 100);
    assert_eq!(st.decode_errors, 0);
    assert_eq!(st.speakers.len(), 2);
}

#[test]
fn limiter_holds_four_full_scale_speakers() {
    let mut m = Mixer::new(no_agc()).unwrap();
    let hz = [300.0, 500.0, 700.0, 900.0];
    let mut feeds: Vec<Feed> = hz
        .iter()
        .enumerate()
        .map(|(i, &f)| Feed::tone(i as u64, f, 1.0))
        .collect();
    for f in &feeds {
        m.add_speaker(f.id, true).unwrap();
    }
    let r = run(&mut m, &mut feeds, 150, |_, _| false);
    assert!(r.limited_peak <= 1.0, "{}", r.limited_peak);
    assert!(r.limited_peak > 0.5);
    // No wrap-around or breakup: all four tones are still there, in similar measure.
    let p: Vec<f32> = hz.iter().map(|&f| power(&r.listener, f)).collect();
    let max = p.iter().copied().fold(0.0, f32::max);
    assert!(p.iter().all(|&x| x > max / 4.0 && x > 0.005), "{p:?}");
    assert_eq!(m.stats().encode_errors, 0);
}

#[test]
fn mix_minus_excludes_self() {
    let mut m = Mixer::new(no_agc()).unwrap();
    m.add_speaker(1, true).unwrap();
    m.add_speaker(2, true).unwrap();
    m.add_speaker(3, false).unwrap();
    let mut feeds = [
        Feed::tone(1, 400.0, 0.3),
        Feed::tone(2, 700.0, 0.3),
        Feed::tone(3, 1100.0, 0.3),
    ];
    let r = run(&mut m, &mut feeds, 100, |_, _| false);
    assert_eq!(r.mix_minus.len(), 2);
    let a = &r.mix_minus.iter().find(|(id, _)| *id == 1).unwrap().1;
    let b = &r.mix_minus.iter().find(|(id, _)| *id == 2).unwrap().1;
    assert!(power(a, 700.0) > 0.02 && power(a, 1100.0) > 0.02);
    assert!(
        power(a, 400.0) < 0.0005,
        "A hears itself: {}",
        power(a, 400.0)
    );
    assert!(power(b, 400.0) > 0.02 && power(b, 1100.0) > 0.02);
    assert!(power(b, 700.0) < 0.0005);
}

#[test]
fn muted_speaker_is_absent() {
    let mut m = Mixer::new(no_agc()).unwrap();
    m.add_speaker(1, false).unwrap();
    m.add_speaker(2, true).unwrap();
    m.set_muted(2, true);
    let mut feeds = [Feed::tone(1, 400.0, 0.3), Feed::tone(2, 700.0, 0.3)];
    let r = run(&mut m, &mut feeds, 100, |_, _| false);
    assert!(power(&r.listener, 400.0) > 0.02);
    assert!(power(&r.listener, 700.0) < 0.0005);
    // The muted speaker still hears the others.
    assert!(power(&r.mix_minus[0].1, 400.0) > 0.02);
    let last = r.levels.last().unwrap();
    assert_eq!(last.iter().find(|(id, _)| *id == 2).unwrap().1, -100.0);
    assert!(last.iter().find(|(id, _)| *id == 1).unwrap().1 > -20.0);
    // Unmuting brings them back.
    m.set_muted(2, false);
    let r = run(&mut m, &mut feeds, 50, |_, _| false);
    assert!(power(&r.listener, 700.0) > 0.02);
}

#[test]
fn agc_evens_out_quiet_and_loud_speakers() {
    let mut m = Mixer::new(Config::default()).unwrap();
    m.add_speaker(1, false).unwrap();
    m.add_speaker(2, false).unwrap();
    // Voice talks at −20 dBFS: scale one to −40 and the other to −6.
    let (mut va, mut vb) = (Voice::new(180.0, 1), Voice::new(260.0, 2));
    let quiet = agc::db_to_gain(-20.0);
    let loud = agc::db_to_gain(14.0);
    let mut feeds = [
        Feed::new(1, move |o| {
            va.fill(o);
            o.iter_mut().for_each(|s| *s *= quiet);
        }),
        Feed::new(2, move |o| {
            vb.fill(o);
            o.iter_mut().for_each(|s| *s *= loud);
        }),
    ];
    let r = run(&mut m, &mut feeds, 500, |_, _| false);
    // Mean level of each speaker's contribution over talking ticks of the last 4 s.
    let mean_level = |id: SpeakerId| {
        let v: Vec<f32> = r.levels[300..]
            .iter()
            .filter_map(|l| l.iter().find(|(i, _)| *i == id).map(|x| x.1))
            .filter(|&db| db > -60.0)
            .collect();
        v.iter().sum::<f32>() / v.len() as f32
    };
    let (la, lb) = (mean_level(1), mean_level(2));
    assert!((la - lb).abs() < 4.0, "{la} vs {lb}");
    let st = m.stats();
    assert!(st.speakers[0].agc_gain_db > 10.0 && st.speakers[1].agc_gain_db < -6.0);
}

#[test]
fn silence_stays_silence() {
    let mut m = Mixer::new(Config::default()).unwrap();
    // Nobody on stage.
    let r = run(&mut m, &mut [], 20, |_, _| false);
    assert_eq!(rms_dbfs(&r.listener), -100.0);
    // A speaker sending digital silence.
    m.add_speaker(1, true).unwrap();
    let mut feeds = [Feed::new(1, |o| o.fill(0.0))];
    let r = run(&mut m, &mut feeds, 100, |_, _| false);
    assert!(rms_dbfs(tail(&r.listener, 1.0)) < -80.0);
    // Digital silence through Opus stays at the noise floor of the codec, far below hearing.
    let loud: Vec<f32> = r
        .levels
        .iter()
        .flatten()
        .map(|l| l.1)
        .filter(|&db| db > -80.0)
        .collect();
    assert!(loud.is_empty(), "{loud:?}");
}

#[test]
fn packet_loss_is_concealed() {
    let mut m = Mixer::new(no_agc()).unwrap();
    m.add_speaker(1, false).unwrap();
    m.add_speaker(2, false).unwrap();
    let mut feeds = [Feed::tone(1, 400.0, 0.3), Feed::tone(2, 700.0, 0.3)];
    // Every 7th packet of speaker 1 is lost.
    let r = run(&mut m, &mut feeds, 200, |k, id| id == 1 && k % 7 == 3);
    assert!(power(&r.listener, 400.0) > 0.01);
    assert!(power(&r.listener, 700.0) > 0.02);
    let st = m.stats();
    assert!(
        st.speakers[0].jitter.lost >= 25,
        "{:?}",
        st.speakers[0].jitter
    );
    assert!(st.speakers[0].jitter.concealed >= 25);
    assert_eq!(st.speakers[1].jitter.lost, 0);
    assert_eq!(st.decode_errors, 0);
}

#[test]
fn speakers_come_and_go() {
    let mut m = Mixer::new(no_agc()).unwrap();
    m.add_speaker(1, true).unwrap();
    assert!(matches!(
        m.add_speaker(1, false),
        Err(Error::DuplicateSpeaker(1))
    ));
    m.add_speaker(2, true).unwrap();
    let t0 = Instant::now();
    // Garbage and unknown speakers are ignored.
    m.push_packet(1, t0, 1, 1, &[]);
    m.push_packet(1, t0, 2, 2, &[0xff, 0xff, 0xff]);
    m.push_packet(99, t0, 1, 1, &[0xf8]);
    let o = m.tick(t0);
    assert_eq!(o.mix_minus.len(), 2);
    assert_eq!(o.levels.len(), 2);
    m.remove_speaker(1);
    m.remove_speaker(42);
    let o = m.tick(t0 + TICK);
    assert_eq!(o.mix_minus.len(), 1);
    assert_eq!(o.mix_minus[0].0, 2);
    assert_eq!(o.levels.len(), 1);
    assert!(!o.listener.is_empty());
    assert_eq!(m.speakers().collect::<Vec<_>>(), vec![2]);
}
