//! The mixer thread of one live space: the IO shell around [`tribune_media::mixer::Mixer`].
//!
//! Real-time rules for the tick path: it never waits on the network, the disk, or a lock that an
//! HTTP handler takes. Input arrives on lock-free channels (control and packets apart, so a packet
//! flood cannot delay a control message); output leaves with non-blocking sends, dropped and
//! counted when a consumer is full (the captions' tap too). The schedule is a monotonic deadline advanced by exactly
//! 20 ms per tick, so it does not drift over hours; a tick that starts more than
//! [`LATE_THRESHOLD`] after its deadline is counted as late.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use tokio::sync::mpsc;
use tribune_media::mixer::{self, Mixer, SpeakerId, TICK};

use tribune_metrics::{Metrics, store_max};

/// A tick starting this late is counted in `tribune_mixer_late_ticks_total`.
pub const LATE_THRESHOLD: Duration = Duration::from_millis(10);

/// When the thread falls this far behind (e.g. the process was stopped), it restarts its schedule
/// from now instead of running a burst of catch-up ticks. Audio continuity does not depend on
/// it: granule positions count samples produced, not wall time.
const RESYNC_AFTER: Duration = Duration::from_millis(500);

/// Speaker packets waiting for the next tick. 13 speakers × 50 packets/s × 2 s of backlog.
const PACKET_QUEUE: usize = 1300;

/// Listener packets waiting for the pager. 30 s at 50 packets/s.
const OUTPUT_QUEUE: usize = 1500;

/// A control message to the mixer thread; never dropped.
pub enum Control {
    Add {
        id: SpeakerId,
        mix_minus: Option<mpsc::Sender<Bytes>>,
    },
    Remove(SpeakerId),
    Mute(SpeakerId, bool),
}

/// One received audio frame of one speaker.
pub struct Packet {
    pub id: SpeakerId,
    pub at: Instant,
    pub seq: u64,
    pub ts: u64,
    pub payload: Vec<u8>,
}

/// The sending side of a space's mixer. Dropping every clone stops the thread.
#[derive(Clone)]
pub struct MixerHandle {
    control: Sender<Control>,
    packets: Sender<Packet>,
    metrics: Arc<Metrics>,
}

impl MixerHandle {
    pub fn control(&self, c: Control) {
        // The thread only disconnects when the space ends; a control message then has no use.
        let _ = self.control.send(c);
    }

    /// Queue a packet for the next tick; dropped and counted if the queue is full.
    pub fn packet(&self, p: Packet) {
        if let Err(TrySendError::Full(_)) = self.packets.try_send(p) {
            self.metrics.mixer_queue_full.fetch_add(1, Relaxed);
        }
    }
}

/// Speaker levels are reported every this many ticks (240 ms: "a few times per second").
pub const LEVEL_EVERY_TICKS: u64 = 12;

/// Speaker levels over one reporting interval: the loudest tick of each speaker, dBFS.
pub type Levels = Vec<(SpeakerId, f32)>;

/// A started mixer.
pub struct Spawned {
    pub handle: MixerHandle,
    /// Listener packets, 20 ms of Opus each.
    pub packets: Receiver<Vec<u8>>,
    /// Speaker levels every [`LEVEL_EVERY_TICKS`].
    pub levels: Receiver<Levels>,
    /// Pre-skip of the listener encoder (for OpusHead).
    pub pre_skip: u16,
    pub thread: JoinHandle<()>,
}

/// Start the mixer thread of space `space_id`. Listener packets (20 ms Opus each) go to the
/// returned receiver. Returns the handle, the output, the pre-skip of the listener encoder and the
/// thread (which ends once every handle is dropped).
pub fn spawn(
    space_id: &str,
    cfg: mixer::Config,
    metrics: Arc<Metrics>,
    captions: Option<(tribune_captions::worker::Tap, crate::clock::Clock)>,
) -> std::io::Result<Spawned> {
    let mixer = Mixer::new(cfg).map_err(std::io::Error::other)?;
    let pre_skip = mixer.pre_skip();
    let (control_tx, control_rx) = crossbeam_channel::unbounded();
    let (packet_tx, packet_rx) = crossbeam_channel::bounded(PACKET_QUEUE);
    let (out_tx, out_rx) = crossbeam_channel::bounded(OUTPUT_QUEUE);
    let (level_tx, level_rx) = crossbeam_channel::bounded(4);
    let m = metrics.clone();
    let thread = std::thread::Builder::new()
        .name(format!("mixer-{space_id}"))
        .spawn(move || run(mixer, control_rx, packet_rx, out_tx, level_tx, m, captions))?;
    let handle = MixerHandle {
        control: control_tx,
        packets: packet_tx,
        metrics,
    };
    Ok(Spawned {
        handle,
        packets: out_rx,
        levels: level_rx,
        pre_skip,
        thread,
    })
}

fn run(
    mut mixer: Mixer,
    control: Receiver<Control>,
    packets: Receiver<Packet>,
    out: Sender<Vec<u8>>,
    levels_out: Sender<Levels>,
    metrics: Arc<Metrics>,
    captions: Option<(tribune_captions::worker::Tap, crate::clock::Clock)>,
) {
    let mut levels: Levels = Vec::new();
    let mut ticks: u64 = 0;
    crate::priority::raise_current_thread("mixer");
    let mut mix_minus: Vec<(SpeakerId, mpsc::Sender<Bytes>)> = Vec::new();
    let mut deadline = Instant::now() + TICK;
    loop {
        let now = Instant::now();
        if deadline > now {
            std::thread::sleep(deadline - now);
        }
        let start = Instant::now();
        if start > deadline + LATE_THRESHOLD {
            metrics.mixer_late_ticks.fetch_add(1, Relaxed);
        }
        if start > deadline + RESYNC_AFTER {
            deadline = start;
        }
        loop {
            match control.try_recv() {
                Ok(Control::Add { id, mix_minus: tx }) => {
                    if let Err(e) = mixer.add_speaker(id, tx.is_some()) {
                        tracing::warn!(speaker = id, error = %e, "mixer refused speaker");
                        continue;
                    }
                    if let Some(tx) = tx {
                        mix_minus.push((id, tx));
                    }
                }
                Ok(Control::Remove(id)) => {
                    mixer.remove_speaker(id);
                    mix_minus.retain(|(s, _)| *s != id);
                }
                Ok(Control::Mute(id, m)) => mixer.set_muted(id, m),
                Err(crossbeam_channel::TryRecvError::Empty) => break,
                // Every handle is gone: the space ended.
                Err(crossbeam_channel::TryRecvError::Disconnected) => return,
            }
        }
        while let Ok(p) = packets.try_recv() {
            mixer.push_packet(p.id, p.at, p.seq, p.ts, &p.payload);
        }
        let output = mixer.tick(start);
        // An empty packet means the encoder failed this tick (counted by the mixer): skip it
        // rather than put an invalid packet in the stream.
        if !output.listener.is_empty() && out.try_send(output.listener.clone()).is_err() {
            metrics.mixer_queue_full.fetch_add(1, Relaxed);
        }
        for &(id, db) in &output.levels {
            match levels.iter_mut().find(|(s, _)| *s == id) {
                Some((_, max)) => *max = max.max(db),
                None => levels.push((id, db)),
            }
        }
        ticks += 1;
        if ticks.is_multiple_of(LEVEL_EVERY_TICKS) {
            // A full consumer just misses one report; the next one comes 240 ms later.
            let _ = levels_out.try_send(std::mem::take(&mut levels));
        }
        for (id, pkt) in &output.mix_minus {
            if let Some((_, tx)) = mix_minus.iter().find(|(s, _)| s == id) {
                // A full or closed speaker queue drops the frame: the speaker's own jitter buffer
                // conceals it, and the mixer never waits.
                let _ = tx.try_send(Bytes::copy_from_slice(pkt));
            }
        }
        if let Some((tap, clock)) = &captions {
            // The mix as listeners hear it, to the captions, without waiting (a full tap drops
            // the tick and counts it).
            tap.send(tribune_captions::worker::Frame {
                tick: ticks - 1,
                unix_ms: clock.now_ms(),
                pcm: mixer.listener_pcm().to_vec(),
            });
        }
        metrics.mixer_ticks.fetch_add(1, Relaxed);
        store_max(
            &metrics.mixer_tick_ns_max,
            start.elapsed().as_nanos() as u64,
        );
        deadline += TICK;
    }
}
