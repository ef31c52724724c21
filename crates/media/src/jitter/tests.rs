//! Jitter buffer tests, all on injected time.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rand::{Rng, SeedableRng, rngs::StdRng};

use super::*;

/// TOC bytes (mono, one frame) of valid Opus packets of various durations.
const TOC_CELT_10MS: u8 = 30 << 3;
const TOC_CELT_20MS: u8 = 31 << 3;
const TOC_SILK_40MS: u8 = 2 << 3;
const TOC_SILK_60MS: u8 = 3 << 3;

/// A fake but valid Opus packet: a TOC byte and some bytes naming `seq` (longer than
/// `SMALL_PACKET`, so it counts as speech).
fn pkt(toc: u8, seq: u64) -> Vec<u8> {
    let mut p = vec![toc];
    p.extend_from_slice(&seq.to_le_bytes());
    p.extend_from_slice(&[0x55; 4]);
    p
}

fn ms(t0: Instant, ms: u64) -> Instant {
    t0 + Duration::from_millis(ms)
}

/// The sequence number a packet names.
fn seq_of(data: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&data[1..9]);
    u64::from_le_bytes(b)
}

/// A packet to deliver: sequence number, timestamp, arrival time (ms), TOC.
#[derive(Clone, Copy)]
struct Arrival {
    seq: u64,
    ts: u64,
    at_ms: u64,
    toc: u8,
}

/// 20 ms packets `seqs`, timestamps following the sequence numbers, each arriving on time.
fn on_time(seqs: impl IntoIterator<Item = u64>) -> Vec<Arrival> {
    seqs.into_iter()
        .map(|seq| Arrival {
            seq,
            ts: seq * 960,
            at_ms: seq * 20,
            toc: TOC_CELT_20MS,
        })
        .collect()
}

/// Drives `jb` like the mixer: a tick every 20 ms from 1 ms on, delivering the arrivals due before
/// each tick, and popping until 20 ms of audio is out. Returns every unit popped with its tick.
fn drive(
    jb: &mut JitterBuffer,
    t0: Instant,
    arrivals: &[Arrival],
    ticks: u64,
) -> Vec<(u64, Playout)> {
    let mut arrivals = arrivals.to_vec();
    arrivals.sort_by_key(|a| a.at_ms);
    let mut next = 0;
    let mut fifo = 0;
    let mut out = Vec::new();
    for k in 0..ticks {
        let now_ms = 1 + 20 * k;
        while next < arrivals.len() && arrivals[next].at_ms <= now_ms {
            let a = arrivals[next];
            jb.push(ms(t0, a.at_ms), a.seq, a.ts, &pkt(a.toc, a.seq));
            next += 1;
        }
        while fifo < 960 {
            let unit = jb.pop(ms(t0, now_ms));
            fifo += unit.samples();
            out.push((k, unit));
        }
        fifo -= 960;
    }
    out
}

/// What the units were, in short: `P<seq>`, `L`, `F<seq>` (lost with FEC), `S<samples>`.
fn describe(units: &[(u64, Playout)]) -> Vec<String> {
    units
        .iter()
        .map(|(_, u)| match u {
            Playout::Packet { data, .. } => format!("P{}", seq_of(data)),
            Playout::Lost { fec: None, .. } => "L".to_string(),
            Playout::Lost { fec: Some(d), .. } => format!("F{}", seq_of(d)),
            Playout::Silence { samples } => format!("S{samples}"),
        })
        .collect()
}

/// The units from the first packet on.
fn from_start(units: &[(u64, Playout)]) -> Vec<String> {
    let d = describe(units);
    let first = d.iter().position(|u| u.starts_with('P')).unwrap_or(d.len());
    d[first..].to_vec()
}

#[test]
fn starts_after_target_delay() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(Config::default());
    let units = drive(&mut jb, t0, &on_time(0..10), 5);
    // Ticks at 1, 21, 41 ms: the second packet (40 ms buffered) is there at 21 ms.
    assert_eq!(describe(&units)[..3], ["S960", "P0", "P1"]);
    assert_eq!(jb.stats().target, Duration::from_millis(40));
}

#[test]
fn reorders_by_timestamp() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(Config::default());
    let mut arr = on_time(0..10);
    // Swap the arrival times of neighbours: 1 before 0, 3 before 2, ...
    for pair in arr.chunks_mut(2) {
        let (a, b) = (pair[0].at_ms, pair[1].at_ms);
        pair[0].at_ms = b;
        pair[1].at_ms = a;
    }
    let units = drive(&mut jb, t0, &arr, 12);
    let played: Vec<String> = from_start(&units)
        .into_iter()
        .filter(|u| u.starts_with('P'))
        .collect();
    let want: Vec<String> = (0..10).map(|s| format!("P{s}")).collect();
    assert_eq!(played, want);
    assert_eq!(jb.stats().late, 0);
}

#[test]
fn loss_is_concealed_with_fec_from_next_packet() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(Config::default());
    let units = drive(&mut jb, t0, &on_time((0..10).filter(|&s| s != 4)), 11);
    assert_eq!(
        from_start(&units)[..6],
        ["P0", "P1", "P2", "P3", "F5", "P5"]
    );
    let st = jb.stats();
    assert_eq!((st.lost, st.concealed), (1, 1));
}

#[test]
fn two_lost_packets_only_the_second_gets_fec() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(Config::default());
    let units = drive(
        &mut jb,
        t0,
        &on_time((0..10).filter(|&s| s != 3 && s != 4)),
        11,
    );
    assert_eq!(from_start(&units)[..6], ["P0", "P1", "P2", "L", "F5", "P5"]);
    assert_eq!(jb.stats().lost, 2);
}

#[test]
fn late_packet_is_dropped() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(Config::default());
    let mut arr = on_time(0..12);
    // Packet 4 is 100 ms late: it has been concealed by then.
    arr[4].at_ms += 100;
    let units = drive(&mut jb, t0, &arr, 13);
    assert_eq!(
        from_start(&units)[..6],
        ["P0", "P1", "P2", "P3", "F5", "P5"]
    );
    assert_eq!(jb.stats().late, 1);
}

#[test]
fn duplicates_are_dropped() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(Config::default());
    let units = drive(&mut jb, t0, &on_time(0..4), 3);
    assert_eq!(from_start(&units), ["P0", "P1"]);
    // Seq 2 is still buffered, seq 0 already played.
    assert_eq!(
        jb.push(ms(t0, 41), 2, 2 * 960, &pkt(TOC_CELT_20MS, 2)),
        Push::Duplicate
    );
    assert_eq!(
        jb.push(ms(t0, 41), 0, 0, &pkt(TOC_CELT_20MS, 0)),
        Push::Duplicate
    );
    assert_eq!(jb.stats().duplicates, 2);
}

#[test]
fn invalid_packets_are_rejected() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(Config::default());
    assert_eq!(jb.push(t0, 0, 0, &[]), Push::Invalid);
    // Code 3 (arbitrary frame count) without its frame-count byte.
    assert_eq!(jb.push(t0, 1, 960, &[TOC_CELT_20MS | 3]), Push::Invalid);
    // Code 3 asking for 0 frames.
    assert_eq!(jb.push(t0, 2, 960, &[TOC_CELT_20MS | 3, 0]), Push::Invalid);
    assert_eq!(
        jb.push(t0, u64::MAX, 0, &pkt(TOC_CELT_20MS, 0)),
        Push::Invalid
    );
    assert_eq!(
        jb.push(t0, 3, u64::MAX - 5, &pkt(TOC_CELT_20MS, 0)),
        Push::Invalid
    );
    assert_eq!(jb.stats().invalid, 5);
}

#[test]
fn dtx_gap_is_silence_not_loss() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(Config::default());
    // Seq 0..=3, then a 1-frame pause in timestamps (DTX) with consecutive sequence numbers. (A
    // pause longer than the playout delay is only seen once the buffer has run dry: see
    // `speaker_who_stops_becomes_silence_and_restarts`.)
    let mut arr = on_time(0..4);
    for (i, seq) in (4..10).enumerate() {
        let frame = 5 + i as u64;
        arr.push(Arrival {
            seq,
            ts: frame * 960,
            at_ms: frame * 20,
            toc: TOC_CELT_20MS,
        });
    }
    let units = drive(&mut jb, t0, &arr, 12);
    assert_eq!(
        from_start(&units)[..7],
        ["P0", "P1", "P2", "P3", "S960", "P4", "P5"]
    );
    assert_eq!(jb.stats().lost, 0);
    assert_eq!(jb.stats().concealed, 0);
}

#[test]
fn frame_sizes_10_40_60_ms_and_mixed() {
    for (toc, samples) in [
        (TOC_CELT_10MS, 480u64),
        (TOC_SILK_40MS, 1920),
        (TOC_SILK_60MS, 2880),
    ] {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(Config::default());
        let frame_ms = samples / 48;
        let arr: Vec<Arrival> = (0..30)
            .map(|seq| Arrival {
                seq,
                ts: seq * samples,
                at_ms: (seq + 1) * frame_ms,
                toc,
            })
            .collect();
        let ticks = 30 * frame_ms / 20;
        let units = drive(&mut jb, t0, &arr, ticks);
        let played = from_start(&units);
        let want: Vec<String> = (0..played.len()).map(|s| format!("P{s}")).collect();
        assert_eq!(played, want, "{frame_ms} ms");
        assert!(played.len() as u64 >= 30 - 200 / frame_ms);
        assert!(units.iter().all(
            |(_, u)| !matches!(u, Playout::Packet { samples: n, .. } if u64::from(*n) != samples)
        ));
    }
    // Mixed sizes in one stream.
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(Config::default());
    let sizes = [
        (TOC_CELT_20MS, 960u64),
        (TOC_CELT_10MS, 480),
        (TOC_SILK_60MS, 2880),
        (TOC_SILK_40MS, 1920),
    ];
    let mut arr = Vec::new();
    let mut ts = 0;
    for (seq, (toc, n)) in sizes.iter().cycle().take(40).enumerate() {
        ts += n;
        arr.push(Arrival {
            seq: seq as u64,
            ts: ts - n,
            at_ms: ts / 48,
            toc: *toc,
        });
    }
    let units = drive(&mut jb, t0, &arr, ts / 960);
    let played = from_start(&units);
    assert!(played.len() >= 30);
    // Contiguous (the start may skip the first packet to stay at the target delay).
    let first: u64 = played[0][1..].parse().unwrap();
    assert!(first <= 1);
    let want: Vec<String> = (first..first + played.len() as u64)
        .map(|s| format!("P{s}"))
        .collect();
    assert_eq!(played, want);
    assert_eq!(jb.stats().lost, 0);
}

#[test]
fn speaker_who_stops_becomes_silence_and_restarts() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(Config::default());
    // Talks for 10 frames, stops, resumes 5 s later (sequence continues, timestamps jumped).
    let mut arr = on_time(0..10);
    for seq in 10..20 {
        let frame = 250 + seq;
        arr.push(Arrival {
            seq,
            ts: frame * 960,
            at_ms: frame * 20,
            toc: TOC_CELT_20MS,
        });
    }
    let units = drive(&mut jb, t0, &arr, 300);
    let d = from_start(&units);
    let stop = d.iter().position(|u| u == "P9").unwrap() + 1;
    let conceal = MAX_CONCEAL.as_millis() as usize / 20;
    assert!(
        d[stop..stop + conceal].iter().all(|u| u == "L"),
        "{:?}",
        &d[stop..stop + 10]
    );
    let resume = d.iter().position(|u| u == "P10").unwrap();
    assert!(d[stop + conceal..resume].iter().all(|u| u == "S960"));
    // Restarted at the new packets: the pause was not replayed as 5 s of extra delay.
    let tick_of = |name: &str| {
        let i = describe(&units).iter().position(|u| u == name).unwrap();
        units[i].0
    };
    assert!(tick_of("P10") <= 260 + 3, "{}", tick_of("P10"));
    assert_eq!(
        d[resume..resume + 10],
        (10..20).map(|s| format!("P{s}")).collect::<Vec<_>>()[..]
    );
}

#[test]
fn burst_after_stall_is_trimmed_to_max_delay() {
    let t0 = Instant::now();
    let cfg = Config::default();
    let mut jb = JitterBuffer::new(cfg);
    // Packets 10..60 are held up by the network and arrive at once at 1.2 s.
    let mut arr = on_time(0..1000);
    for a in &mut arr[10..60] {
        a.at_ms = 1200;
    }
    let units = drive(&mut jb, t0, &arr[..70], 80);
    assert!(jb.stats().buffered <= cfg.max_delay + Duration::from_millis(20));
    let d = from_start(&units);
    // Playout resumed with recent packets, not from the start of the burst.
    assert!(d.iter().any(|u| u == "P60"), "{d:?}");
    assert!(!d.iter().any(|u| u == "P20"), "{d:?}");
    // And the delay comes back down once the network is steady again.
    let mut jb = JitterBuffer::new(cfg);
    drive(&mut jb, t0, &arr, 1000);
    assert!(
        jb.stats().buffered <= Duration::from_millis(100),
        "{:?}",
        jb.stats()
    );
}

/// Outcome of a simulated session.
struct Sim {
    /// Buffered depth (ms) sampled every second after warm-up.
    depth: Vec<f64>,
    stats: Stats,
    warm: Stats,
}

/// Simulates `secs` seconds of a speaker sending 20 ms packets with a clock `ppm` off, through a
/// network adding 0..`jitter_ms` uniform delay, popped by a 20 ms mixer tick with a FIFO.
fn simulate(ppm: f64, jitter_ms: f64, secs: u64, seed: u64) -> Sim {
    const WARM_UP_S: u64 = 60;
    let t0 = Instant::now();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut jb = JitterBuffer::new(Config::default());
    // Sender's packet i leaves at i * 20 ms of its clock, which runs (1 + ppm/1e6) fast.
    let send_ns = |i: u64| (i as f64 * 20e6 / (1.0 + ppm * 1e-6)) as u64;
    let base_delay_ns = 30_000_000u64;
    let mut next_packet = 0u64;
    let mut in_flight: BinaryHeap<Reverse<(u64, u64)>> = BinaryHeap::new();
    let mut fifo = 0u64;
    let mut depth = Vec::new();
    let mut warm = None;
    let tick_phase_ns = 7_300_000;
    let ticks = secs * 50;
    for k in 0..ticks {
        let now_ns = k * 20_000_000 + tick_phase_ns;
        while send_ns(next_packet) <= now_ns {
            let jitter = (rng.random::<f64>() * jitter_ms * 1e6) as u64;
            in_flight.push(Reverse((
                send_ns(next_packet) + base_delay_ns + jitter,
                next_packet,
            )));
            next_packet += 1;
        }
        while let Some(Reverse((at, seq))) = in_flight.peek().copied() {
            if at > now_ns {
                break;
            }
            in_flight.pop();
            let now = t0 + Duration::from_nanos(at);
            let r = jb.push(now, seq, 1_000_000 + seq * 960, &pkt(TOC_CELT_20MS, seq));
            assert_ne!(r, Push::Invalid);
        }
        let now = t0 + Duration::from_nanos(now_ns);
        while fifo < 960 {
            fifo += u64::from(jb.pop(now).samples());
        }
        fifo -= 960;
        if k == WARM_UP_S * 50 {
            warm = Some(jb.stats());
        }
        if k > WARM_UP_S * 50 && k % 50 == 0 {
            depth.push(jb.stats().buffered.as_secs_f64() * 1000.0);
        }
    }
    Sim {
        depth,
        stats: jb.stats(),
        warm: warm.unwrap_or_default(),
    }
}

fn check_drift(ppm: f64) {
    let secs = 2 * 3600;
    let sim = simulate(ppm, 30.0, secs, 42);
    let st = sim.stats;
    let w = sim.warm;
    // No starvation after warm-up: nothing concealed, nothing late, no underrun.
    assert!(st.concealed - w.concealed <= 2, "{st:?}");
    assert!(st.late - w.late <= 2, "{st:?}");
    assert!(st.underruns - w.underruns <= 2, "{st:?}");
    // The drift (0.72 s over two hours, 36 frames) is corrected in the right direction.
    let frames = (secs as f64 * ppm.abs() * 1e-6 / 0.02).round() as u64;
    let (right, wrong) = if ppm > 0.0 {
        (
            st.drift_drops - w.drift_drops,
            st.drift_inserts - w.drift_inserts,
        )
    } else {
        (
            st.drift_inserts - w.drift_inserts,
            st.drift_drops - w.drift_drops,
        )
    };
    assert!(
        right + 3 >= frames && right <= frames + 12,
        "{ppm}: {right} vs {frames}, {st:?}"
    );
    assert!(wrong <= 8, "{ppm}: {wrong}, {st:?}");
    // Bounded depth, no growth: first and last ten minutes sit at the same level.
    let max = sim.depth.iter().copied().fold(0.0, f64::max);
    assert!(max < 150.0, "max depth {max} ms");
    let mean = |d: &[f64]| d.iter().sum::<f64>() / d.len() as f64;
    let first = mean(&sim.depth[..600]);
    let last = mean(&sim.depth[sim.depth.len() - 600..]);
    assert!((first - last).abs() < 20.0, "{first} ms then {last} ms");
    assert!(st.target >= Duration::from_millis(40) && st.target <= Duration::from_millis(100));
}

#[test]
fn two_hours_sender_clock_fast() {
    check_drift(100.0);
}

#[test]
fn two_hours_sender_clock_slow() {
    check_drift(-100.0);
}

#[test]
fn no_drift_no_jitter_needs_no_correction() {
    let sim = simulate(0.0, 0.0, 600, 1);
    let st = sim.stats;
    assert_eq!(st.concealed, 0);
    assert_eq!(st.late, 0);
    assert!(st.drift_drops + st.drift_inserts <= 1, "{st:?}");
    assert_eq!(st.target, Duration::from_millis(40));
}

#[test]
fn lossy_jittery_network_stays_sane() {
    // 20 % loss, 0..120 ms jitter, for ten minutes: never more than max delay buffered, losses
    // concealed, nothing stuck.
    let t0 = Instant::now();
    let mut rng = StdRng::seed_from_u64(7);
    let cfg = Config::default();
    let mut jb = JitterBuffer::new(cfg);
    let mut arr = Vec::new();
    for seq in 0..30_000u64 {
        if rng.random::<f64>() < 0.2 {
            continue;
        }
        let at_ms = seq * 20 + rng.random_range(0..120);
        arr.push(Arrival {
            seq,
            ts: seq * 960,
            at_ms,
            toc: TOC_CELT_20MS,
        });
    }
    let units = drive(&mut jb, t0, &arr, 30_000);
    let st = jb.stats();
    assert!(st.buffered <= cfg.max_delay, "{st:?}");
    assert!(st.lost > 5000 && st.concealed > 3000, "{st:?}");
    let played = units
        .iter()
        .filter(|(_, u)| matches!(u, Playout::Packet { .. }))
        .count();
    assert!(played > 20_000, "{played} {st:?}");
    assert!(st.target > Duration::from_millis(100), "{st:?}");
}

proptest::proptest! {
    #[test]
    fn prop_arbitrary_input_never_panics(ops in proptest::collection::vec(
        (proptest::prelude::any::<bool>(), 0u64..50, 0u64..10_000, 0u64..100, proptest::collection::vec(proptest::prelude::any::<u8>(), 0..6)),
        0..300,
    )) {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(Config::default());
        let mut now_ms = 0;
        for (push, seq, ts, dt, payload) in ops {
            now_ms += dt;
            if push {
                jb.push(ms(t0, now_ms), seq, ts, &payload);
            } else {
                let unit = jb.pop(ms(t0, now_ms));
                proptest::prop_assert!(unit.samples() > 0 && unit.samples() <= 5760);
            }
            proptest::prop_assert!(jb.stats().buffered <= Duration::from_secs(1));
        }
    }
}
