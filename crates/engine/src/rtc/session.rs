//! One WHIP session: a task that owns one str0m [`Rtc`] (sans-IO) and drives it.
//!
//! A `biased` select over: the close signal, datagrams from the shared port, mix-minus frames
//! from the mixer, and str0m's next timeout. After every mutation the task drains `poll_output`
//! until str0m answers `Timeout` (str0m's single-mutation invariant). Received Opus frames go to
//! the space's mixer without waiting; a peer silent for the ICE consent timeout (RFC 7675,
//! 30 s by default) or reported disconnected by ICE is closed and leaves the mix.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use bytes::Bytes;
use str0m::media::{Frequency, MediaKind, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::{Event, IceConnectionState, Input, Output, Rtc};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::mux::{Datagram, Mux};
use crate::mixer::{Control, MixerHandle, Packet};
use tribune_metrics::Metrics;

/// Everything a session task needs.
pub struct Session {
    pub speaker: u64,
    pub rtc: Rtc,
    pub inbox: mpsc::Receiver<Datagram>,
    pub mix_minus: Option<mpsc::Receiver<Bytes>>,
    pub close: CancellationToken,
    pub mux: Arc<Mux>,
    pub mixer: MixerHandle,
    pub metrics: Arc<Metrics>,
    pub ice_timeout: Duration,
    /// Our advertised candidate addresses (the `destination` str0m expects on input).
    pub candidates: Vec<SocketAddr>,
    /// Called once when the task ends, whatever the reason.
    pub on_exit: Box<dyn FnOnce(Exit) + Send>,
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Closed,
    TimedOut,
    Disconnected,
    Failed,
}

struct Out {
    mid: Option<Mid>,
    pt: Option<Pt>,
    ts: u64,
    last_seq: Option<u64>,
}

impl Session {
    /// Run until closed, timed out or disconnected.
    pub async fn run(mut self) {
        let exit = self.drive().await;
        self.mixer.control(Control::Remove(self.speaker));
        self.mux.unregister(self.speaker);
        self.metrics.speakers.fetch_sub(1, Relaxed);
        if exit == Exit::TimedOut {
            self.metrics.whip_sessions_timed_out.fetch_add(1, Relaxed);
        }
        tracing::info!(speaker = self.speaker, ?exit, "whip session ended");
        let on_exit = std::mem::replace(&mut self.on_exit, Box::new(|_| {}));
        on_exit(exit);
    }

    async fn drive(&mut self) -> Exit {
        let mut out = Out {
            mid: None,
            pt: None,
            ts: 0,
            last_seq: None,
        };
        let mut last_rx = Instant::now();
        loop {
            let timeout = match self.drain(&mut out).await {
                Ok(Some(t)) => t,
                Ok(None) => return Exit::Disconnected,
                Err(e) => {
                    tracing::debug!(speaker = self.speaker, error = %e, "rtc error");
                    return Exit::Failed;
                }
            };
            let consent_deadline = last_rx + self.ice_timeout;
            let wake = timeout.min(consent_deadline);
            let close = self.close.clone();
            tokio::select! {
                biased;
                _ = close.cancelled() => {
                    self.rtc.disconnect();
                    let _ = self.drain(&mut out).await;
                    return Exit::Closed;
                }
                d = self.inbox.recv() => {
                    let Some(d) = d else { return Exit::Closed };
                    last_rx = d.at;
                    let dest = self.destination_for(d.source);
                    let Ok(contents) = d.data.as_slice().try_into() else { continue };
                    let input = Input::Receive(d.at, Receive {
                        proto: Protocol::Udp,
                        source: d.source,
                        destination: dest,
                        contents,
                    });
                    if self.rtc.accepts(&input)
                        && let Err(e) = self.rtc.handle_input(input)
                    {
                        tracing::debug!(speaker = self.speaker, error = %e, "rtc input error");
                    }
                }
                Some(frame) = recv_opt(&mut self.mix_minus) => {
                    self.write_mix_minus(&mut out, frame);
                }
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {
                    let now = Instant::now();
                    if now >= consent_deadline {
                        return Exit::TimedOut;
                    }
                    if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
                        tracing::debug!(speaker = self.speaker, error = %e, "rtc timeout error");
                        return Exit::Failed;
                    }
                }
            }
        }
    }

    /// Drain str0m's output until it asks to be woken; `None` when the peer is gone.
    async fn drain(&mut self, out: &mut Out) -> Result<Option<Instant>, str0m::RtcError> {
        loop {
            if !self.rtc.is_alive() {
                return Ok(None);
            }
            match self.rtc.poll_output()? {
                Output::Timeout(t) => return Ok(Some(t)),
                Output::Transmit(t) => self.mux.send(t.destination, &t.contents).await,
                Output::Event(e) => match e {
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                        return Ok(None);
                    }
                    Event::Connected => {
                        tracing::info!(speaker = self.speaker, "whip session connected");
                    }
                    Event::MediaAdded(m)
                        if m.kind == MediaKind::Audio && m.direction.is_sending() =>
                    {
                        out.mid = Some(m.mid);
                    }
                    Event::MediaData(d) => {
                        let seq = *(*d.seq_range.end());
                        if let Some(prev) = out.last_seq
                            && seq > prev + 1
                        {
                            self.metrics
                                .rtp_packets_lost
                                .fetch_add(seq - prev - 1, Relaxed);
                        }
                        if out.last_seq.is_none_or(|p| seq > p) {
                            out.last_seq = Some(seq);
                        }
                        self.metrics.rtp_packets_received.fetch_add(1, Relaxed);
                        let ts = d.time.rebase(Frequency::FORTY_EIGHT_KHZ).numer();
                        self.mixer.packet(Packet {
                            id: self.speaker,
                            at: d.network_time,
                            seq,
                            ts,
                            payload: d.data.to_vec(),
                        });
                    }
                    _ => {}
                },
            }
        }
    }

    fn write_mix_minus(&mut self, out: &mut Out, frame: Bytes) {
        let Some(mid) = out.mid else { return };
        if !self.rtc.is_connected() {
            return;
        }
        let Some(writer) = self.rtc.writer(mid) else {
            return;
        };
        let pt = match out.pt {
            Some(pt) => pt,
            None => {
                let Some(pt) = writer
                    .payload_params()
                    .find(|p| p.spec().codec == str0m::format::Codec::Opus)
                    .map(|p| p.pt())
                else {
                    return;
                };
                out.pt = Some(pt);
                pt
            }
        };
        let time = MediaTime::new(out.ts, Frequency::FORTY_EIGHT_KHZ);
        out.ts += tribune_media::mixer::FRAME_SAMPLES as u64;
        if let Err(e) = writer.write(pt, Instant::now(), time, frame.to_vec()) {
            tracing::debug!(speaker = self.speaker, error = %e, "mix-minus write failed");
        }
    }

    fn destination_for(&self, source: SocketAddr) -> SocketAddr {
        self.candidates
            .iter()
            .find(|c| c.is_ipv4() == source.is_ipv4())
            .or(self.candidates.first())
            .copied()
            .unwrap_or_else(|| self.mux.local_addr())
    }
}

async fn recv_opt(rx: &mut Option<mpsc::Receiver<Bytes>>) -> Option<Bytes> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
