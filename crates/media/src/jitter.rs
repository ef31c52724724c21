//! Per-speaker adaptive jitter buffer (sans-IO).
//!
//! Packets from a speaker arrive with variable delay, out of order, duplicated or not at all; the
//! mixer needs a steady stream of 20 ms units. [`JitterBuffer::push`] takes packets in (with the
//! arrival time as an argument) and [`JitterBuffer::pop`] hands out the next unit of audio in
//! timestamp order: a packet, a loss to conceal, or silence.
//!
//! How it works:
//! - **Reorder** by RTP timestamp; drop **duplicates** and **late** packets (behind the playout
//!   point).
//! - **Start** playing once the target delay of audio is buffered; after the buffer runs dry for
//!   longer than [`MAX_CONCEAL`], go quiet and start again the same way (this is how a speaker who
//!   stops sending, e.g. with DTX, becomes [`Playout::Silence`]).
//! - **Loss or silence**: a timestamp gap with sequence numbers missing is loss
//!   ([`Playout::Lost`], with the next packet for in-band FEC); a gap with consecutive sequence
//!   numbers is a DTX pause ([`Playout::Silence`]). Concealment runs are bounded.
//! - **Jitter**: the spread of transit times (arrival time minus media time) over the last
//!   packets gives the target delay, between [`Config::min_delay`] and [`Config::max_delay`].
//! - **Slack and drift**: each arriving packet's slack is the time between its arrival and the
//!   moment it will be popped (from the observed pop times). Every [`BLOCK`], the smallest slack
//!   decides: more than a frame above what the target needs → drop a frame; below → insert one.
//!   This absorbs sender clock drift (a ±100 ppm clock gains or loses a frame every 200 s) and
//!   adapts the delay to the jitter. Drops and inserts are done preferably in silence.
//!
//! No IO, no clock reads: `now` is always an argument.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Largest extended sequence number or timestamp accepted (see [`JitterBuffer::push`]).
pub const MAX_EXTENDED: u64 = 1 << 62;
/// RTP clock rate of Opus.
const RATE: u64 = 48_000;
/// Unit size for silence while not playing, and the frame size assumed before any packet: 20 ms,
/// the usual WebRTC Opus frame.
const DEFAULT_FRAME: u32 = 960;
/// Safety margin on top of frame and jitter in the target delay: covers estimation error.
pub const MARGIN: Duration = Duration::from_millis(10);
/// How often the slack is evaluated for drift and delay corrections: long enough to see the
/// worst packets of the jitter distribution, short compared to the 200 s a ±100 ppm drift
/// needs to move a frame.
pub const BLOCK: Duration = Duration::from_secs(2);
/// Consecutive blocks with a frame of excess delay before one frame is dropped: lowering the delay
/// is never urgent, so wait to be sure.
const HIGH_BLOCKS: u32 = 2;
/// Longest run of concealment for an empty buffer before reporting silence: 100 ms covers a late
/// burst; beyond it the speaker has most likely stopped, and concealment would only buzz.
pub const MAX_CONCEAL: Duration = Duration::from_millis(100);
/// Packets kept at most: 400 ms of 2.5 ms packets plus slack; beyond, the oldest is dropped so a
/// flood cannot grow memory.
pub const MAX_PACKETS: usize = 512;
/// Arrivals over which the jitter spread is measured (about 2.5 s of 20 ms packets).
const JITTER_WINDOW: usize = 128;
/// Percentile of the transit spread taken as the jitter: ignores the rare outlier that the slack
/// control corrects anyway.
const JITTER_PERCENTILE: f64 = 0.95;
/// The jitter estimate is recomputed every this many arrivals (cost control).
const JITTER_EVERY: u32 = 8;
/// Payloads up to this size are treated as silence or comfort noise (Opus DTX and silent CELT
/// frames are a few bytes): the preferred place to drop or insert a frame.
const SMALL_PACKET: usize = 8;
/// Pops to wait for a silent moment before doing a pending drop anyway (about 2 s of 20 ms),
/// divided by `1 + pending²` when several frames are pending.
const DROP_PATIENCE: u32 = 100;
/// Pops to wait for a silent moment before doing a pending insert anyway: short, since slack is
/// already low (about 200 ms of 20 ms).
const INSERT_PATIENCE: u32 = 10;
/// At most this many frames are inserted at once after a jitter increase.
const MAX_INSERTS: u32 = 5;
/// Duplicates of already played packets are recognised this many sequence numbers back.
const PLAYED_WINDOW: u64 = 128;
/// How fast the estimate of the pop clock may rise, per pop (20 µs, 1 ms/s): lets it forget a
/// single early pop without following the jitter of the caller's ticks.
const CLOCK_RISE_S: f64 = 20e-6;

/// Jitter buffer settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Smallest playout delay (40 ms: two 20 ms frames, enough on a quiet network).
    pub min_delay: Duration,
    /// Largest playout delay (400 ms: beyond it conversation suffers more than from loss).
    pub max_delay: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            min_delay: Duration::from_millis(40),
            max_delay: Duration::from_millis(400),
        }
    }
}

/// What happened to a pushed packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// Buffered for playout.
    Accepted,
    /// Behind the playout point: dropped.
    Late,
    /// Already buffered or played: dropped.
    Duplicate,
    /// Not a valid Opus packet: dropped.
    Invalid,
}

/// The next unit of audio, in timestamp order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Playout {
    /// A packet to decode.
    Packet {
        /// The Opus packet.
        data: Vec<u8>,
        /// Its duration in 48 kHz samples.
        samples: u32,
    },
    /// A missing packet to conceal.
    Lost {
        /// The next packet, whose in-band FEC can rebuild the lost one (decode it with FEC on for
        /// `samples`); `None`: packet loss concealment.
        fec: Option<Vec<u8>>,
        /// Samples to conceal.
        samples: u32,
    },
    /// Nothing to play: a DTX pause, not started yet, or the speaker stopped sending.
    Silence {
        /// Samples of silence.
        samples: u32,
    },
}

impl Playout {
    /// Duration of this unit in 48 kHz samples.
    pub fn samples(&self) -> u32 {
        match self {
            Playout::Packet { samples, .. }
            | Playout::Lost { samples, .. }
            | Playout::Silence { samples } => *samples,
        }
    }
}

/// Counters and gauges of a jitter buffer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Audio buffered ahead of the playout point.
    pub buffered: Duration,
    /// Current target delay.
    pub target: Duration,
    /// Estimated network jitter (spread of transit times).
    pub jitter: Duration,
    /// RFC 3550 interarrival jitter estimate.
    pub rfc3550_jitter: Duration,
    /// Packets accepted.
    pub accepted: u64,
    /// Packets dropped because they arrived behind the playout point.
    pub late: u64,
    /// Packets missing at playout (sequence gaps).
    pub lost: u64,
    /// Duplicate packets dropped.
    pub duplicates: u64,
    /// Invalid packets dropped.
    pub invalid: u64,
    /// Concealment units handed out ([`Playout::Lost`]), drift inserts excluded.
    pub concealed: u64,
    /// Pops that found the buffer empty while playing.
    pub underruns: u64,
    /// Frames dropped to lower the delay (clock drift, or catching up after a burst).
    pub drift_drops: u64,
    /// Units inserted to raise the delay (clock drift, or more jitter).
    pub drift_inserts: u64,
    /// Packets dropped because the buffer was full.
    pub overflow: u64,
}

/// One buffered packet.
#[derive(Debug)]
struct Slot {
    seq: u64,
    ts: u64,
    samples: u32,
    data: Vec<u8>,
}

/// Per-speaker adaptive jitter buffer. See the module docs.
#[derive(Debug)]
pub struct JitterBuffer {
    cfg: Config,
    /// Buffered packets, sorted by timestamp.
    queue: VecDeque<Slot>,
    playing: bool,
    /// Playout point: timestamp of the next sample to hand out. Valid once `started_once`.
    next_ts: u64,
    started_once: bool,
    /// Sequence number of the last packet played, dropped or concealed.
    last_seq: Option<u64>,
    /// Highest sequence number played, and which of the ones below it were played (bit i: seq
    /// `highest - i`).
    highest_played: u64,
    played_mask: u128,
    /// Duration of the most recent packet.
    frame: u32,
    /// Samples concealed in a row.
    conceal_run: u64,
    /// Lost packets still to conceal before the front packet.
    loss_units: u64,

    /// Reference points for relative times.
    base: Option<(Instant, u64)>,
    transit: [f64; JITTER_WINDOW],
    transit_len: usize,
    transit_pos: usize,
    since_jitter: u32,
    /// Transit spread, seconds.
    jitter: f64,
    rfc_jitter: f64,
    last_transit: Option<f64>,
    /// Target delay, samples.
    target: u64,

    /// Pop clock: the position `p` is popped at about `clock + p / 48000` seconds after base.
    clock: Option<f64>,
    block_start: Option<Instant>,
    block_min_slack: f64,
    high_blocks: u32,
    pending_drops: u32,
    pending_inserts: u32,
    pending_pops: u32,

    stats: Stats,
}

impl JitterBuffer {
    /// An empty buffer that has not started playing.
    pub fn new(cfg: Config) -> Self {
        let mut jb = Self {
            cfg,
            queue: VecDeque::with_capacity(64),
            playing: false,
            next_ts: 0,
            started_once: false,
            last_seq: None,
            highest_played: 0,
            played_mask: 0,
            frame: DEFAULT_FRAME,
            conceal_run: 0,
            loss_units: 0,
            base: None,
            transit: [0.0; JITTER_WINDOW],
            transit_len: 0,
            transit_pos: 0,
            since_jitter: 0,
            jitter: 0.0,
            rfc_jitter: 0.0,
            last_transit: None,
            target: 0,
            clock: None,
            block_start: None,
            block_min_slack: f64::INFINITY,
            high_blocks: 0,
            pending_drops: 0,
            pending_inserts: 0,
            pending_pops: 0,
            stats: Stats::default(),
        };
        jb.update_target();
        jb
    }

    /// Takes in one packet that arrived at `now`. `seq` and `rtp_ts` are extended (64-bit,
    /// unwrapped) RTP sequence number and timestamp at 48 kHz, below [`MAX_EXTENDED`].
    pub fn push(&mut self, now: Instant, seq: u64, rtp_ts: u64, payload: &[u8]) -> Push {
        // Extended RTP values start from 32 bits and grow slowly; values near the top of u64
        // can only be corrupt, and refusing them keeps all timestamp arithmetic far from overflow.
        let Some(samples) =
            packet_samples(payload).filter(|_| seq < MAX_EXTENDED && rtp_ts < MAX_EXTENDED)
        else {
            self.stats.invalid += 1;
            return Push::Invalid;
        };
        if self.queue.iter().any(|s| s.seq == seq) || self.was_played(seq) {
            self.stats.duplicates += 1;
            return Push::Duplicate;
        }
        self.measure_transit(now, rtp_ts);
        if self.playing {
            self.measure_slack(now, rtp_ts);
        }
        if self.started_once && rtp_ts < self.next_ts {
            self.stats.late += 1;
            return Push::Late;
        }
        if self.queue.len() >= MAX_PACKETS {
            self.queue.pop_front();
            self.stats.overflow += 1;
        }
        // Mostly in order: search from the back.
        let at = self
            .queue
            .iter()
            .rposition(|s| s.ts <= rtp_ts)
            .map_or(0, |i| i + 1);
        self.queue.insert(
            at,
            Slot {
                seq,
                ts: rtp_ts,
                samples,
                data: payload.to_vec(),
            },
        );
        self.frame = samples;
        self.stats.accepted += 1;
        Push::Accepted
    }

    /// The next unit of audio at `now`.
    pub fn pop(&mut self, now: Instant) -> Playout {
        if !self.playing && !self.try_start() {
            return Playout::Silence {
                samples: DEFAULT_FRAME,
            };
        }
        self.observe_pop(now);
        self.pending_pops = self.pending_pops.saturating_add(1);
        self.discard_stale();
        self.catch_up();
        loop {
            if let Some(unit) = self.maybe_insert() {
                return unit;
            }
            let Some(front) = self.queue.front() else {
                return self.underrun();
            };
            if front.ts <= self.next_ts {
                if self.maybe_drop_front() {
                    continue;
                }
                return self.play_front();
            }
            let gap = front.ts - self.next_ts;
            if gap > 2 * self.max_delay_samples() {
                // A timestamp jump that time does not explain: follow the sender.
                self.next_ts = front.ts;
                self.clock = None;
                self.loss_units = 0;
                continue;
            }
            if let Some(last) = self.last_seq
                && front.seq > last + 1
            {
                // Sequence numbers missing: loss. Conceal as many units as still fit in the gap
                // (some may have been concealed already while the buffer was empty).
                let missing = front.seq - last - 1;
                self.stats.lost += missing;
                let fs = u64::from(front.samples);
                self.loss_units = missing.min(gap.div_ceil(fs));
                self.last_seq = Some(front.seq - 1);
            }
            if self.loss_units == 0 {
                // Consecutive sequence numbers, later timestamp: a DTX pause.
                if self.pending_drops > 0 {
                    let skip = gap.min(u64::from(self.frame));
                    self.next_ts += skip;
                    self.drift_drop(skip);
                    continue;
                }
                let samples = gap.min(u64::from(DEFAULT_FRAME)) as u32;
                self.next_ts += u64::from(samples);
                return Playout::Silence { samples };
            }
            return self.lost(gap);
        }
    }

    /// Current statistics.
    pub fn stats(&self) -> Stats {
        let mut s = self.stats;
        s.buffered = samples_to_duration(self.buffered());
        s.target = samples_to_duration(self.target);
        s.jitter = Duration::from_secs_f64(self.jitter.max(0.0));
        s.rfc3550_jitter = Duration::from_secs_f64(self.rfc_jitter.max(0.0));
        s
    }

    /// Whether playout is running (false before the first start and while re-buffering).
    pub fn is_playing(&self) -> bool {
        self.playing
    }

    /// Audio buffered ahead of the playout point, in samples.
    fn buffered(&self) -> u64 {
        let Some(last) = self.queue.back() else {
            return 0;
        };
        let end = last.ts + u64::from(last.samples);
        let from = if self.playing {
            self.next_ts
        } else {
            self.queue.front().map_or(end, |f| f.ts)
        };
        end.saturating_sub(from)
    }

    fn max_delay_samples(&self) -> u64 {
        duration_to_samples(self.cfg.max_delay)
    }

    fn was_played(&self, seq: u64) -> bool {
        self.started_once
            && seq <= self.highest_played
            && self.highest_played - seq < PLAYED_WINDOW
            && self.played_mask & (1u128 << (self.highest_played - seq)) != 0
    }

    fn mark_played(&mut self, seq: u64) {
        if !self.started_once || seq > self.highest_played {
            let shift = if self.started_once {
                seq - self.highest_played
            } else {
                PLAYED_WINDOW
            };
            self.played_mask = if shift >= PLAYED_WINDOW {
                0
            } else {
                self.played_mask << shift
            };
            self.highest_played = seq;
            self.played_mask |= 1;
        } else if self.highest_played - seq < PLAYED_WINDOW {
            self.played_mask |= 1u128 << (self.highest_played - seq);
        }
    }

    /// Starts playout when enough audio is buffered; returns whether playing.
    fn try_start(&mut self) -> bool {
        if self.queue.is_empty() || self.buffered() < self.target {
            return false;
        }
        // After a burst, start no further back than the target delay.
        while self.queue.len() > 1 {
            let front = &self.queue[0];
            if self.buffered().saturating_sub(u64::from(front.samples)) < self.target {
                break;
            }
            self.queue.pop_front();
            self.stats.drift_drops += 1;
        }
        let Some(front) = self.queue.front() else {
            return false;
        };
        self.next_ts = front.ts;
        self.last_seq = Some(front.seq.saturating_sub(1));
        self.playing = true;
        self.started_once = true;
        self.clock = None;
        self.conceal_run = 0;
        self.loss_units = 0;
        self.reset_control();
        true
    }

    fn reset_control(&mut self) {
        self.block_start = None;
        self.block_min_slack = f64::INFINITY;
        self.high_blocks = 0;
        self.pending_drops = 0;
        self.pending_inserts = 0;
        self.pending_pops = 0;
    }

    /// Seconds from the base instant to `now` (negative if before it).
    fn secs(&self, now: Instant) -> f64 {
        match self.base {
            None => 0.0,
            Some((base, _)) => match now.checked_duration_since(base) {
                Some(d) => d.as_secs_f64(),
                None => -base.duration_since(now).as_secs_f64(),
            },
        }
    }

    /// Media time of `ts` in seconds relative to the first timestamp seen.
    fn media_secs(&self, ts: u64) -> f64 {
        let base_ts = self.base.map_or(ts, |(_, t)| t);
        (i128::from(ts) - i128::from(base_ts)) as f64 / RATE as f64
    }

    fn measure_transit(&mut self, now: Instant, ts: u64) {
        if self.base.is_none() {
            self.base = Some((now, ts));
        }
        let transit = self.secs(now) - self.media_secs(ts);
        if let Some(prev) = self.last_transit {
            // RFC 3550 section 6.4.1.
            self.rfc_jitter += ((transit - prev).abs() - self.rfc_jitter) / 16.0;
        }
        self.last_transit = Some(transit);
        self.transit[self.transit_pos] = transit;
        self.transit_pos = (self.transit_pos + 1) % JITTER_WINDOW;
        self.transit_len = (self.transit_len + 1).min(JITTER_WINDOW);
        self.since_jitter += 1;
        if self.since_jitter >= JITTER_EVERY || self.transit_len < JITTER_WINDOW {
            self.since_jitter = 0;
            let mut sorted = [0.0f64; JITTER_WINDOW];
            let n = self.transit_len;
            sorted[..n].copy_from_slice(&self.transit[..n]);
            let sorted = &mut sorted[..n];
            let min = sorted.iter().copied().fold(f64::INFINITY, f64::min);
            let k = ((n - 1) as f64 * JITTER_PERCENTILE).round() as usize;
            let (_, p, _) = sorted.select_nth_unstable_by(k, f64::total_cmp);
            self.jitter = (*p - min).max(0.0);
            self.update_target();
        }
    }

    fn update_target(&mut self) {
        let wanted = u64::from(self.frame)
            + (self.jitter * RATE as f64) as u64
            + duration_to_samples(MARGIN);
        let lo = duration_to_samples(self.cfg.min_delay);
        let hi = duration_to_samples(self.cfg.max_delay).max(lo);
        self.target = wanted.clamp(lo, hi);
    }

    /// Records the slack of a packet arriving at `now`, and evaluates a finished block.
    fn measure_slack(&mut self, now: Instant, ts: u64) {
        let Some(clock) = self.clock else {
            return;
        };
        let deadline = clock + self.media_secs(ts);
        let slack = deadline - self.secs(now);
        self.block_min_slack = self.block_min_slack.min(slack);
        let start = *self.block_start.get_or_insert(now);
        if now.saturating_duration_since(start) >= BLOCK {
            self.evaluate_block();
            self.block_start = Some(now);
            self.block_min_slack = f64::INFINITY;
        }
    }

    /// Decides drift and delay corrections from the smallest slack of the last block.
    fn evaluate_block(&mut self) {
        if self.pending_drops > 0 || self.pending_inserts > 0 || !self.block_min_slack.is_finite() {
            return;
        }
        let rate = RATE as f64;
        let frame = f64::from(self.frame) / rate;
        // Slack the latest packets should keep: the target minus one frame minus the jitter.
        let wanted = self.target as f64 / rate - frame - self.jitter;
        let excess = self.block_min_slack - wanted;
        let hysteresis = MARGIN.as_secs_f64() * 0.7;
        if excess > frame {
            self.high_blocks += 1;
            let frames = (excess / frame).floor() as u32;
            if self.high_blocks >= HIGH_BLOCKS || frames >= 3 {
                self.pending_drops = frames;
                self.pending_pops = 0;
                self.high_blocks = 0;
            }
        } else {
            self.high_blocks = 0;
            if excess < -hysteresis {
                let frames = ((-excess) / frame).ceil() as u32;
                self.pending_inserts = frames.clamp(1, MAX_INSERTS);
                self.pending_pops = 0;
            }
        }
    }

    /// Updates the pop clock from a pop at `now` of the position `next_ts`.
    fn observe_pop(&mut self, now: Instant) {
        let c = self.secs(now) - self.media_secs(self.next_ts);
        self.clock = Some(match self.clock {
            None => c,
            Some(prev) => (prev + CLOCK_RISE_S).min(c),
        });
    }

    /// Drops packets that ended up behind the playout point.
    fn discard_stale(&mut self) {
        while let Some(front) = self.queue.front() {
            if front.ts + u64::from(front.samples) > self.next_ts {
                break;
            }
            self.queue.pop_front();
            self.stats.late += 1;
        }
    }

    /// Far more than the maximum delay buffered (a burst after a stall): skip ahead to the target.
    fn catch_up(&mut self) {
        let limit = self.max_delay_samples() + u64::from(self.frame);
        if self.buffered() <= limit {
            return;
        }
        while self.queue.len() > 1 && self.buffered() > self.target {
            let Some(front) = self.queue.pop_front() else {
                break;
            };
            self.consume_seq(front.seq);
            let end = front.ts + u64::from(front.samples);
            let skipped = end.saturating_sub(self.next_ts);
            self.next_ts = self.next_ts.max(end);
            self.shift_clock(-(skipped as f64));
            self.stats.drift_drops += 1;
        }
        self.block_start = None;
        self.block_min_slack = f64::INFINITY;
    }

    /// Inserts a unit when one is pending and the moment is right.
    fn maybe_insert(&mut self) -> Option<Playout> {
        if self.pending_inserts == 0 {
            return None;
        }
        let quiet = match self.queue.front() {
            None => true,
            Some(f) => f.ts > self.next_ts || f.data.len() <= SMALL_PACKET,
        };
        if !quiet && self.pending_pops < INSERT_PATIENCE {
            return None;
        }
        self.pending_inserts -= 1;
        self.pending_pops = 0;
        self.stats.drift_inserts += 1;
        let samples = self.frame;
        self.shift_clock(f64::from(samples));
        self.block_start = None;
        self.block_min_slack = f64::INFINITY;
        Some(if quiet {
            Playout::Silence { samples }
        } else {
            Playout::Lost { fec: None, samples }
        })
    }

    /// Drops the front packet for a pending drift correction when the moment is right.
    fn maybe_drop_front(&mut self) -> bool {
        if self.pending_drops == 0 || self.queue.len() < 2 {
            return false;
        }
        let Some(front) = self.queue.front() else {
            return false;
        };
        // The more frames are pending, the less patience: a large excess delay is worse than a
        // dropped frame of speech.
        let pending = self.pending_drops.min(16);
        let patience = DROP_PATIENCE / (1 + pending * pending);
        if front.data.len() > SMALL_PACKET && self.pending_pops < patience {
            return false;
        }
        // Only when the packet after it is already here, so the drop cannot cause an underrun.
        let end = front.ts + u64::from(front.samples);
        if self.queue[1].ts > end {
            return false;
        }
        let Some(front) = self.queue.pop_front() else {
            return false;
        };
        self.consume_seq(front.seq);
        self.mark_played(front.seq);
        let skipped = end.saturating_sub(self.next_ts);
        self.next_ts = self.next_ts.max(end);
        self.drift_drop(skipped);
        true
    }

    /// Books a drift drop of `samples` (the caller has moved the playout point past them).
    fn drift_drop(&mut self, samples: u64) {
        self.pending_drops = self.pending_drops.saturating_sub(1);
        self.pending_pops = 0;
        self.stats.drift_drops += 1;
        self.shift_clock(-(samples as f64));
        self.block_start = None;
        self.block_min_slack = f64::INFINITY;
    }

    /// Moves the pop clock after the playout point moved by other than real time: inserting
    /// `samples` delays every later position, dropping (negative) brings it forward.
    fn shift_clock(&mut self, samples: f64) {
        if let Some(c) = self.clock.as_mut() {
            *c += samples / RATE as f64;
        }
    }

    fn consume_seq(&mut self, seq: u64) {
        self.last_seq = Some(self.last_seq.map_or(seq, |l| l.max(seq)));
    }

    fn play_front(&mut self) -> Playout {
        let Some(slot) = self.queue.pop_front() else {
            return self.underrun();
        };
        self.consume_seq(slot.seq);
        self.mark_played(slot.seq);
        self.next_ts = self.next_ts.max(slot.ts + u64::from(slot.samples));
        self.conceal_run = 0;
        self.loss_units = 0;
        Playout::Packet {
            data: slot.data,
            samples: slot.samples,
        }
    }

    /// A gap of `gap` samples before the front packet, `loss_units` of which are lost packets.
    fn lost(&mut self, gap: u64) -> Playout {
        let front_samples = self
            .queue
            .front()
            .map_or(u64::from(self.frame), |f| u64::from(f.samples));
        let accounted = self.loss_units.saturating_mul(front_samples);
        if gap > accounted {
            // More time than the missing packets cover: a pause too, played first.
            let samples = (gap - accounted).min(u64::from(DEFAULT_FRAME)) as u32;
            self.next_ts += u64::from(samples);
            return Playout::Silence { samples };
        }
        let last = self.loss_units == 1;
        let samples = if last { gap } else { front_samples.min(gap) };
        self.next_ts += samples;
        self.loss_units -= 1;
        let fec = if last {
            self.queue.front().map(|f| f.data.clone())
        } else {
            None
        };
        if fec.is_none() && self.conceal_run >= duration_to_samples(MAX_CONCEAL) {
            return Playout::Silence {
                samples: samples as u32,
            };
        }
        self.conceal_run += samples;
        self.stats.concealed += 1;
        Playout::Lost {
            fec,
            samples: samples as u32,
        }
    }

    /// The buffer ran dry while playing: conceal for a while, then go quiet and re-buffer.
    fn underrun(&mut self) -> Playout {
        self.stats.underruns += 1;
        let samples = self.frame;
        if self.conceal_run < duration_to_samples(MAX_CONCEAL) {
            self.conceal_run += u64::from(samples);
            self.next_ts += u64::from(samples);
            self.stats.concealed += 1;
            return Playout::Lost { fec: None, samples };
        }
        self.playing = false;
        self.reset_control();
        Playout::Silence { samples }
    }
}

/// Duration of an Opus packet in 48 kHz samples, or `None` if it is not a valid Opus packet.
pub fn packet_samples(payload: &[u8]) -> Option<u32> {
    if payload.is_empty() || opus::packet::parse(payload).is_err() {
        return None;
    }
    let samples = opus::packet::get_nb_samples(payload, RATE as u32).ok()?;
    // Opus packets hold 2.5 to 120 ms.
    if (120..=5760).contains(&samples) {
        Some(samples as u32)
    } else {
        None
    }
}

fn duration_to_samples(d: Duration) -> u64 {
    (d.as_nanos() * u128::from(RATE) / 1_000_000_000) as u64
}

fn samples_to_duration(samples: u64) -> Duration {
    let nanos = u128::from(samples) * 1_000_000_000 / u128::from(RATE);
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests;
