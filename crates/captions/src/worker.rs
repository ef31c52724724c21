//! The captions of one space: a gathering thread (16 kHz, cut at pauses, into the backlog) and
//! an engine thread (one chunk at a time through the [`Transcriber`]). The mixer only ever
//! `try_send`s a frame to the [`Tap`]: a full tap drops it (counted), so captions can never
//! delay a tick.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use parking_lot::Mutex;

use crate::backlog::Backlog;
use crate::chunker::{Chunker, Params};
use crate::engine::Transcriber;
use crate::resample::Decimator;
use crate::{Cue, TICK_MS, TICK_SAMPLES};
use tribune_metrics::Metrics;

/// One tick of the listener mix: 960 samples at 48 kHz, and when it was made (Unix ms).
pub struct Frame {
    pub tick: u64,
    pub unix_ms: u64,
    pub pcm: Vec<f32>,
}

/// Frames the tap holds before it drops (5 s: the gathering thread is light and never waits
/// on the engine, so only a stopped process fills it).
const TAP_FRAMES: usize = 250;

/// How captions run.
#[derive(Clone)]
pub struct Settings {
    pub chunking: Params,
    /// Audio the backlog holds before it drops the oldest, ms.
    pub backlog_ms: u64,
    /// Added to each chunk's transcription: an engine made slow on purpose (tests only).
    pub slowdown: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            chunking: Params::default(),
            backlog_ms: 20_000,
            slowdown: Duration::ZERO,
        }
    }
}

/// What a space's captions have done, for `/metrics` and tests.
#[derive(Default)]
pub struct Stats {
    /// Frames the mixer could not hand over (the tap was full).
    pub tap_full: AtomicU64,
    /// Audio dropped because the engine fell behind, ms.
    pub dropped_ms: AtomicU64,
    /// Chunks transcribed, and cues made.
    pub chunks: AtomicU64,
    pub cues: AtomicU64,
    /// Time the engine spent transcribing, ns. CTranslate2 computes on a worker thread of its
    /// own (one, shared by every space), so this is busy time: at most the CPU it used.
    pub engine_busy_ns: AtomicU64,
    /// The delay from the end of a chunk's speech to its cue, ms: the last, the sum, the most.
    pub delay_ms_last: AtomicU64,
    pub delay_ms_sum: AtomicU64,
    pub delay_ms_max: AtomicU64,
}

/// The sending end the mixer holds.
#[derive(Clone)]
pub struct Tap {
    tx: Sender<Frame>,
    stats: Arc<Stats>,
    metrics: Arc<Metrics>,
}

impl Tap {
    /// Hands one tick over, waiting for room (tests feed faster than real time).
    #[cfg(test)]
    fn send_waiting(&self, f: Frame) {
        let _ = self.tx.send(f);
    }

    /// Hands one tick over without waiting; a full tap drops it and counts it.
    pub fn send(&self, f: Frame) {
        if let Err(TrySendError::Full(_)) = self.tx.try_send(f) {
            self.stats.tap_full.fetch_add(1, Relaxed);
            self.metrics.captions_tap_full.fetch_add(1, Relaxed);
        }
    }
}

/// A running captioner: dropped or [`Captions::finish`]ed when the space's media stop.
pub struct Captions {
    pub stats: Arc<Stats>,
    done: Arc<Progress>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// How far the captions are done: every cue that starts before `done_unix_ms` has been made.
#[derive(Default)]
pub struct Progress {
    done_unix_ms: AtomicU64,
    /// Unix ms of the first tick of each chunk not yet transcribed (queued or in the engine).
    pending: Mutex<std::collections::VecDeque<u64>>,
    /// Unix ms before which the gathering thread will make no chunk.
    gathered_unix_ms: AtomicU64,
}

impl Progress {
    /// Unix ms before which every cue has been delivered.
    pub fn done_unix_ms(&self) -> u64 {
        self.done_unix_ms.load(Relaxed)
    }

    fn update(&self) {
        let gathered = self.gathered_unix_ms.load(Relaxed);
        let first_pending = self.pending.lock().front().copied().unwrap_or(u64::MAX);
        self.done_unix_ms
            .fetch_max(gathered.min(first_pending), Relaxed);
    }
}

impl Captions {
    /// Starts the two threads of space `name`; `on_cue` is called on the engine thread with
    /// each cue (times in Unix ms of the mix), in order.
    pub fn start(
        name: &str,
        engine: Arc<dyn Transcriber>,
        settings: Settings,
        metrics: Arc<Metrics>,
        on_cue: impl Fn(Cue, u64) + Send + 'static,
    ) -> std::io::Result<(Tap, Captions)> {
        let stats = Arc::new(Stats::default());
        let (tx, rx) = crossbeam_channel::bounded(TAP_FRAMES);
        let backlog = Arc::new(Backlog::new(settings.backlog_ms));
        let done = Arc::new(Progress::default());
        let g = {
            let (backlog, stats, done, params, m) = (
                backlog.clone(),
                stats.clone(),
                done.clone(),
                settings.chunking,
                metrics.clone(),
            );
            std::thread::Builder::new()
                .name(format!("captions-in-{name}"))
                .spawn(move || gather(rx, params, &backlog, &stats, &m, &done))?
        };
        let e = {
            let (stats, done, m) = (stats.clone(), done.clone(), metrics.clone());
            let slowdown = settings.slowdown;
            std::thread::Builder::new()
                .name(format!("captions-{name}"))
                .spawn(move || {
                    transcribe(&*engine, &backlog, slowdown, &stats, &m, &done, on_cue)
                })?
        };
        Ok((
            Tap {
                tx,
                stats: stats.clone(),
                metrics,
            },
            Captions {
                stats,
                done,
                threads: vec![g, e],
            },
        ))
    }

    /// How far the captions are done.
    pub fn progress(&self) -> Arc<Progress> {
        self.done.clone()
    }

    /// Whether both threads have ended (the tap was dropped and the backlog is done).
    pub fn is_finished(&self) -> bool {
        self.threads.iter().all(|t| t.is_finished())
    }

    /// Waits for the threads: call once every [`Tap`] is dropped (the mixer has stopped). The
    /// engine finishes the chunks queued first.
    pub fn finish(mut self) {
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

struct Run {
    tick: u64,
    unix_ms: u64,
}

fn gather(
    rx: Receiver<Frame>,
    params: Params,
    backlog: &Backlog,
    stats: &Stats,
    metrics: &Metrics,
    done: &Progress,
) {
    let mut chunker = Chunker::new(params);
    let mut dec = Decimator::new();
    let mut pcm16 = Vec::with_capacity(TICK_SAMPLES * 2);
    // Unix ms of a tick: from the first frame of the current run of consecutive ticks.
    let mut run: Option<Run> = None;
    let mut next_tick = 0;
    let unix_of = |run: &Option<Run>, tick: u64| {
        run.as_ref()
            .map_or(0, |r| r.unix_ms + (tick - r.tick) * TICK_MS)
    };
    let queue = |mut c: crate::chunker::Chunk, run: &Option<Run>| {
        c.start_unix_ms = unix_of(run, c.start_tick);
        done.pending.lock().push_back(c.start_unix_ms);
        for old in backlog.push(c) {
            stats
                .dropped_ms
                .fetch_add((old.end_tick - old.start_tick) * TICK_MS, Relaxed);
            metrics
                .captions_dropped_ms
                .fetch_add((old.end_tick - old.start_tick) * TICK_MS, Relaxed);
            done.pending.lock().retain(|&p| p != old.start_unix_ms);
        }
    };
    for f in rx.iter() {
        if run.is_none() || f.tick != next_tick {
            if let Some(c) = chunker.close() {
                queue(c, &run);
            }
            run = Some(Run {
                tick: f.tick,
                unix_ms: f.unix_ms,
            });
            dec = Decimator::new();
        }
        next_tick = f.tick + 1;
        pcm16.clear();
        dec.push(&f.pcm, &mut pcm16);
        pcm16.resize(TICK_SAMPLES, 0.0);
        if let Some(c) = chunker.push(f.tick, &pcm16) {
            queue(c, &run);
        }
        let from = chunker.pending_from(next_tick);
        done.gathered_unix_ms.store(unix_of(&run, from), Relaxed);
        done.update();
    }
    if let Some(c) = chunker.close() {
        queue(c, &run);
    }
    done.gathered_unix_ms
        .store(unix_of(&run, next_tick), Relaxed);
    done.update();
    backlog.close();
}

/// What Whisper says over noise or silence, not words: left out.
fn is_noise(text: &str) -> bool {
    let t = text.trim();
    t.is_empty()
        || (t.starts_with('[') && t.ends_with(']'))
        || (t.starts_with('(') && t.ends_with(')'))
        || !t.chars().any(char::is_alphanumeric)
}

fn transcribe(
    engine: &dyn Transcriber,
    backlog: &Backlog,
    slowdown: Duration,
    stats: &Stats,
    metrics: &Metrics,
    done: &Progress,
    on_cue: impl Fn(Cue, u64),
) {
    let wall = std::time::SystemTime::now;
    loop {
        let Some(chunk) = backlog.pop(Duration::from_millis(500)) else {
            if backlog.is_closed() {
                return;
            }
            continue;
        };
        let t0 = std::time::Instant::now();
        if !slowdown.is_zero() {
            std::thread::sleep(slowdown);
        }
        let result = engine.transcribe(&chunk.samples);
        let busy = t0.elapsed().as_nanos() as u64;
        stats.engine_busy_ns.fetch_add(busy, Relaxed);
        metrics.captions_engine_busy_ns.fetch_add(busy, Relaxed);
        stats.chunks.fetch_add(1, Relaxed);
        metrics.captions_chunks.fetch_add(1, Relaxed);
        let ticks = chunk.end_tick - chunk.start_tick;
        let start = chunk.start_unix_ms;
        let end = start + ticks * TICK_MS;
        match result {
            Ok(text) if !is_noise(&text) => {
                let now = wall()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64);
                let delay = now.saturating_sub(end);
                stats.delay_ms_last.store(delay, Relaxed);
                stats.delay_ms_sum.fetch_add(delay, Relaxed);
                stats.delay_ms_max.fetch_max(delay, Relaxed);
                stats.cues.fetch_add(1, Relaxed);
                metrics.captions_cues.fetch_add(1, Relaxed);
                metrics.captions_delay_ms_last.store(delay, Relaxed);
                metrics.captions_delay_ms_sum.fetch_add(delay, Relaxed);
                metrics.captions_delay_ms_max.fetch_max(delay, Relaxed);
                on_cue(
                    Cue {
                        start_ms: start,
                        end_ms: end,
                        text,
                    },
                    delay,
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "captions: a chunk could not be transcribed"),
        }
        done.pending.lock().retain(|&p| p != chunk.start_unix_ms);
        done.update();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Says how long each chunk was, after `delay`.
    struct Fake(Duration);
    impl Transcriber for Fake {
        fn transcribe(&self, samples: &[f32]) -> Result<String, String> {
            std::thread::sleep(self.0);
            Ok(format!("{} ms", samples.len() / 16))
        }
    }

    fn frames(tap: &Tap, from: u64, n: u64, loud: bool) {
        for t in from..from + n {
            let pcm = (0..960)
                .map(|i| {
                    if loud {
                        0.3 * (i as f32 * 0.05).sin()
                    } else {
                        0.0
                    }
                })
                .collect();
            tap.send_waiting(Frame {
                tick: t,
                unix_ms: 1_000_000 + t * 20,
                pcm,
            });
        }
    }

    #[test]
    fn speech_in_cues_out_in_order_with_times() {
        let cues = Arc::new(Mutex::new(Vec::new()));
        let c2 = cues.clone();
        let (tap, cap) = Captions::start(
            "t",
            Arc::new(Fake(Duration::ZERO)),
            Settings::default(),
            Arc::default(),
            move |c, _| c2.lock().push(c),
        )
        .unwrap();
        frames(&tap, 0, 50, false);
        frames(&tap, 50, 100, true); // 2 s of "speech" from tick 50
        frames(&tap, 150, 60, false);
        frames(&tap, 210, 50, true);
        drop(tap);
        let progress = cap.progress();
        cap.finish();
        let got = cues.lock().clone();
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0].start_ms, 1_000_000 + 40 * 20); // 200 ms of lead
        // The speech's end, a little of the pause (and the low-pass filter's tail).
        assert!(
            got[0].end_ms >= 1_000_000 + 150 * 20 && got[0].end_ms <= 1_000_000 + 165 * 20,
            "{got:?}"
        );
        assert!(got[1].start_ms > got[0].end_ms);
        assert!(progress.done_unix_ms() >= got[1].end_ms);
    }

    #[test]
    fn a_slow_engine_drops_the_oldest_audio_and_counts_it() {
        let cues = Arc::new(Mutex::new(Vec::new()));
        let c2 = cues.clone();
        let settings = Settings {
            backlog_ms: 3_000,
            ..Settings::default()
        };
        let (tap, cap) = Captions::start(
            "slow",
            Arc::new(Fake(Duration::from_millis(300))),
            settings,
            Arc::default(),
            move |c, _| c2.lock().push(c),
        )
        .unwrap();
        // Ten 2 s utterances at once: the engine takes the first, the backlog keeps 3 s.
        for i in 0..10 {
            frames(&tap, i * 200, 100, true);
            frames(&tap, i * 200 + 100, 100, false);
        }
        drop(tap);
        let stats = cap.stats.clone();
        cap.finish();
        let dropped = stats.dropped_ms.load(Relaxed);
        assert!(dropped >= 10_000, "dropped {dropped} ms");
        let got = cues.lock().clone();
        assert!(got.len() < 10 && !got.is_empty(), "{got:?}");
        // What was kept is the newest.
        assert_eq!(
            got.last().unwrap().start_ms,
            1_000_000 + (9 * 200 - 10) * 20
        );
        assert!(
            stats.engine_busy_ns.load(Relaxed) >= 300_000_000,
            "the fake engine sleeps 300 ms a chunk"
        );
    }
}
