//! WHIP tone speakers ([`tribune_client::speak`]) publishing into the space for the whole run,
//! each on its own frequency, so the listeners hear real mixed audio rather than silence.
//!
//! They offer `sendrecv`, so each also receives its mix-minus (everyone but itself) and counts
//! what it received and the packets missing from it by RTP sequence number: a speaker cut off
//! mid-show shows up here even when the listeners' mix stays continuous.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tribune_client::speak;

/// The first speaker's tone; each next one is a [`STEP_HZ`] higher.
const BASE_HZ: f32 = 440.0;
/// Spacing of the speakers' tones.
const STEP_HZ: f32 = 110.0;
/// How long speakers may take to hang up (DELETE their session) once told to stop.
const HANG_UP: Duration = Duration::from_secs(15);

/// What the speakers did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Speakers started.
    pub target: u64,
    /// Speakers that published until the end.
    pub ok: u64,
    /// Opus packets sent by all of them.
    pub sent_packets: u64,
    /// RTP packets of the mix-minus received by all of them.
    pub received_packets: u64,
    /// Packets missing from what they received (RTP sequence gaps), all of them.
    pub lost_packets: u64,
    /// Each speaker that published until the end, in order.
    pub each: Vec<One>,
    /// What went wrong, one line per failed speaker.
    pub errors: Vec<String>,
}

/// One speaker's packets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct One {
    /// Opus packets sent.
    pub sent_packets: u64,
    /// RTP packets of its mix-minus received.
    pub received_packets: u64,
    /// Packets missing from them, by RTP sequence number.
    pub lost_packets: u64,
}

/// Running speakers.
pub struct Speakers {
    tasks: Vec<JoinHandle<Result<speak::Report, String>>>,
    stop: watch::Sender<bool>,
}

/// Starts a speaker per (WHIP URL, token), each stopping by itself at `until`.
pub fn start(list: &[(String, String)], until: Instant) -> Speakers {
    let (stop, rx) = watch::channel(false);
    let tasks = list
        .iter()
        .enumerate()
        .map(|(i, (whip, token))| {
            let opts = speak::Options {
                token: Some(token.clone()),
                source: speak::Source::Tone {
                    hz: BASE_HZ + STEP_HZ * i as f32,
                },
                duration: Some(until.saturating_duration_since(Instant::now())),
                ..speak::Options::new(whip.clone())
            };
            let mut rx = rx.clone();
            tokio::spawn(async move {
                let cancel = async move {
                    let _ = rx.wait_for(|stop| *stop).await;
                };
                speak::run(opts, cancel).await.map_err(|e| e.to_string())
            })
        })
        .collect();
    Speakers { tasks, stop }
}

impl Speakers {
    /// Stops them and reports.
    pub async fn finish(self) -> Report {
        let _ = self.stop.send(true);
        let mut r = Report {
            target: self.tasks.len() as u64,
            ..Report::default()
        };
        for (i, t) in self.tasks.into_iter().enumerate() {
            match tokio::time::timeout(HANG_UP, t).await {
                Ok(Ok(Ok(s))) => {
                    r.ok += 1;
                    r.sent_packets += s.sent_packets;
                    r.received_packets += s.received_packets;
                    r.lost_packets += s.lost_packets;
                    r.each.push(One {
                        sent_packets: s.sent_packets,
                        received_packets: s.received_packets,
                        lost_packets: s.lost_packets,
                    });
                }
                Ok(Ok(Err(e))) => r.errors.push(format!("speaker {}: {e}", i + 1)),
                Ok(Err(e)) => r.errors.push(format!("speaker {}: {e}", i + 1)),
                Err(_) => r.errors.push(format!("speaker {}: did not hang up", i + 1)),
            }
        }
        r
    }
}
