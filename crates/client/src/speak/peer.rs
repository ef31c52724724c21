//! The WebRTC half of the speaker: one str0m peer driven from one task.
//!
//! The loop is a `biased` `select!` over cancellation, the end of the run, the connect deadline,
//! the UDP socket, the 20 ms send timer and str0m's own timeout. Each branch performs exactly one
//! mutation of the `Rtc` and then drains `poll_output` until it returns `Output::Timeout`, as
//! str0m requires.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::time::{Duration, Instant};

use opus::{Application, Bitrate, Channels, Decoder, Encoder};
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaData, MediaKind, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig, RtcError};
use tokio::net::UdpSocket;
use tokio::time::MissedTickBehavior;
use tracing::{debug, info, warn};

use super::Report;
use super::source::Frames;
use crate::wav::Recorder;
use crate::{Error, FRAME_SAMPLES, Result, SAMPLE_RATE};

/// ICE and DTLS must complete within this time after the answer is applied.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// One 20 ms frame.
const FRAME: Duration = Duration::from_millis(20);

/// Largest Opus packet we produce; 4000 bytes is libopus' recommended output buffer.
const MAX_PACKET: usize = 4000;

/// Longest Opus packet duration (120 ms at 48 kHz): the decoder's output buffer.
const MAX_DECODED: usize = 5760;

/// At most this many lost frames are concealed per gap, so a long outage does not write
/// seconds of concealment to the recording at once.
const MAX_CONCEALED_FRAMES: u64 = 5;

/// Largest UDP datagram we expect.
const RECV_BUF: usize = 2000;

/// A peer with its offer made, waiting for the answer.
pub(crate) struct Offer {
    rtc: Rtc,
    mid: Mid,
    pending: SdpPendingOffer,
    local: SocketAddr,
    /// The SDP offer to POST.
    pub(crate) sdp: String,
}

impl Offer {
    /// Builds a peer that offers one audio m-line with Opus only and the one host candidate
    /// `local`.
    pub(crate) fn new(local: SocketAddr, send_only: bool) -> Result<Self> {
        let mut rtc = RtcConfig::new()
            .clear_codecs()
            .enable_opus(true, false)
            .build(Instant::now());
        let candidate = Candidate::host(local, "udp").map_err(RtcError::from)?;
        rtc.add_local_candidate(candidate);
        let dir = if send_only {
            Direction::SendOnly
        } else {
            Direction::SendRecv
        };
        let mut change = rtc.sdp_api();
        let mid = change.add_media(MediaKind::Audio, dir, None, None, None);
        let (offer, pending) = change
            .apply()
            .ok_or_else(|| Error::Sdp("no change to offer".into()))?;
        Ok(Self {
            sdp: offer.to_sdp_string(),
            rtc,
            mid,
            pending,
            local,
        })
    }

    /// Applies the SDP answer and readies the speaker.
    pub(crate) fn accept(
        mut self,
        answer: &str,
        socket: UdpSocket,
        frames: Frames,
        recorder: Option<Recorder>,
        bitrate: u32,
    ) -> Result<Speaker> {
        let answer = SdpAnswer::from_sdp_string(answer).map_err(|e| Error::Sdp(e.to_string()))?;
        self.rtc.sdp_api().accept_answer(self.pending, answer)?;

        let mut encoder = Encoder::new(SAMPLE_RATE, Channels::Mono, Application::Voip)?;
        encoder.set_bitrate(Bitrate::Bits(i32::try_from(bitrate).unwrap_or(i32::MAX)))?;
        Ok(Speaker {
            rtc: self.rtc,
            socket,
            local: self.local,
            mid: self.mid,
            pt: None,
            frames,
            encoder,
            decoder: Decoder::new(SAMPLE_RATE, Channels::Mono)?,
            recorder,
            connected: false,
            source_done: false,
            last_seq: None,
            media_time: 0,
            report: Report::default(),
            frame: [0.0; FRAME_SAMPLES],
            packet: vec![0; MAX_PACKET],
            pcm: vec![0; MAX_DECODED],
        })
    }
}

/// A connected (or connecting) speaker.
/// A server that sent audio back and then nothing for this long is taken as gone.
pub const QUIET: Duration = Duration::from_secs(2);

pub(crate) struct Speaker {
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    mid: Mid,
    pt: Option<Pt>,
    frames: Frames,
    encoder: Encoder,
    decoder: Decoder,
    recorder: Option<Recorder>,
    connected: bool,
    source_done: bool,
    last_seq: Option<u64>,
    media_time: u64,
    report: Report,
    frame: [f32; FRAME_SAMPLES],
    packet: Vec<u8>,
    pcm: Vec<i16>,
}

impl Speaker {
    /// Drives the peer until `duration` elapses, `cancel` resolves or the source ends; fails if
    /// not connected within `connect_timeout`.
    pub(crate) async fn run(
        &mut self,
        duration: Option<Duration>,
        connect_timeout: Duration,
        cancel: impl Future<Output = ()>,
    ) -> Result<()> {
        let mut cancel = pin!(cancel);
        let start = tokio::time::Instant::now();
        let end = duration.map(|d| start + d);
        let connect_deadline = start + connect_timeout;
        let mut ticker = tokio::time::interval(FRAME);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
        let mut buf = vec![0u8; RECV_BUF];

        let mut timeout = self.drain().await?;
        // What we heard last and when: a server that sent us audio and falls silent for
        // `QUIET` is gone (ICE's own consent timeout takes much longer to say so).
        let mut heard = (0u64, tokio::time::Instant::now());
        loop {
            let input = tokio::select! {
                biased;
                () = &mut cancel => break,
                () = crate::sleep_until_opt(end) => break,
                () = tokio::time::sleep_until(connect_deadline), if !self.connected => {
                    return Err(Error::ConnectTimeout(connect_timeout));
                }
                r = self.socket.recv_from(&mut buf) => match r {
                    Ok((n, source)) => match buf[..n].try_into() {
                        Ok(contents) => Input::Receive(
                            Instant::now(),
                            Receive { proto: Protocol::Udp, source, destination: self.local, contents },
                        ),
                        Err(e) => {
                            debug!(%source, error = %e, "ignoring unknown datagram");
                            continue;
                        }
                    },
                    // ICMP errors from earlier sends surface here on Linux: not fatal.
                    Err(e) => {
                        debug!(error = %e, "UDP receive error");
                        continue;
                    }
                },
                _ = ticker.tick() => {
                    let now = tokio::time::Instant::now();
                    if self.report.received_packets != heard.0 {
                        heard = (self.report.received_packets, now);
                    } else if heard.0 > 0 && now - heard.1 >= QUIET {
                        return Err(Error::Disconnected);
                    }
                    self.send_frame()?;
                    timeout = self.drain().await?;
                    if self.source_done {
                        info!("source ended");
                        break;
                    }
                    continue;
                }
                () = tokio::time::sleep_until(timeout.into()) => Input::Timeout(Instant::now()),
            };
            self.rtc.handle_input(input)?;
            timeout = self.drain().await?;
        }
        Ok(())
    }

    /// Closes the recording and returns the counters.
    pub(crate) fn finish(mut self) -> Result<Report> {
        if let Some(r) = self.recorder.take() {
            r.finish()?;
        }
        Ok(std::mem::take(&mut self.report))
    }

    /// Polls str0m until it has nothing but a timeout left; returns that timeout.
    async fn drain(&mut self) -> Result<Instant> {
        loop {
            match self.rtc.poll_output()? {
                Output::Timeout(t) => return Ok(t),
                Output::Transmit(t) => {
                    if let Err(e) = self.socket.send_to(&t.contents, t.destination).await {
                        debug!(destination = %t.destination, error = %e, "UDP send failed");
                    }
                }
                Output::Event(e) => self.on_event(e)?,
            }
        }
    }

    fn on_event(&mut self, event: Event) -> Result<()> {
        match event {
            Event::Connected => {
                info!("WebRTC connected");
                self.connected = true;
            }
            Event::IceConnectionStateChange(state) => {
                debug!(?state, "ICE state");
                if state == IceConnectionState::Disconnected {
                    return Err(Error::Disconnected);
                }
            }
            Event::MediaData(data) => self.on_media(data)?,
            _ => {}
        }
        Ok(())
    }

    /// Decodes one received packet into the recording, concealing losses before it.
    fn on_media(&mut self, data: MediaData) -> Result<()> {
        self.report.received_packets += 1;
        let first = *data.seq_range.start();
        let last = *data.seq_range.end();
        let first = *first;
        let last = *last;
        if let Some(prev) = self.last_seq {
            if first <= prev {
                // Late or duplicate: it was already counted as lost or heard.
                debug!(seq = first, prev, "late packet dropped");
                return Ok(());
            }
            let lost = first - prev - 1;
            self.report.lost_packets += lost;
            for _ in 0..lost.min(MAX_CONCEALED_FRAMES) {
                match self
                    .decoder
                    .decode(&[], &mut self.pcm[..FRAME_SAMPLES], false)
                {
                    Ok(n) => self.record(n)?,
                    Err(e) => debug!(error = %e, "concealment failed"),
                }
            }
        }
        self.last_seq = Some(last);
        match self.decoder.decode(&data.data, &mut self.pcm, false) {
            Ok(n) => {
                self.report.received_samples += n as u64;
                self.record(n)?;
            }
            Err(e) => warn!(error = %e, bytes = data.data.len(), "undecodable Opus packet"),
        }
        Ok(())
    }

    fn record(&mut self, n: usize) -> Result<()> {
        if let Some(r) = &mut self.recorder {
            r.write(&self.pcm[..n])?;
        }
        Ok(())
    }

    /// Encodes and writes the next 20 ms frame, once connected.
    fn send_frame(&mut self) -> Result<()> {
        if !self.connected {
            return Ok(());
        }
        let Some(writer) = self.rtc.writer(self.mid) else {
            // The answer made our m-line inactive or recvonly: nothing to send.
            return Ok(());
        };
        let pt = match self.pt {
            Some(pt) => pt,
            None => {
                let Some(pt) = writer
                    .payload_params()
                    .find(|p| p.spec().codec == Codec::Opus)
                    .map(|p| p.pt())
                else {
                    return Err(Error::Sdp("answer has no Opus payload type".into()));
                };
                self.pt = Some(pt);
                pt
            }
        };
        if !self.frames.fill(&mut self.frame) {
            self.source_done = true;
            return Ok(());
        }
        let len = self.encoder.encode_float(&self.frame, &mut self.packet)?;
        let time = MediaTime::new(self.media_time, Frequency::FORTY_EIGHT_KHZ);
        writer.write(pt, Instant::now(), time, &self.packet[..len])?;
        self.media_time += FRAME_SAMPLES as u64;
        self.report.sent_packets += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtpmaps(sdp: &str) -> Vec<&str> {
        sdp.lines().filter(|l| l.starts_with("a=rtpmap:")).collect()
    }

    #[test]
    fn offer_has_only_opus_and_our_host_candidate() {
        let local: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let offer = Offer::new(local, false).unwrap();
        let maps = rtpmaps(&offer.sdp);
        assert_eq!(maps.len(), 1, "{}", offer.sdp);
        assert!(maps[0].ends_with(" opus/48000/2"), "{}", maps[0]);
        assert_eq!(offer.sdp.matches("m=").count(), 1);
        assert!(offer.sdp.contains("m=audio "));
        assert!(offer.sdp.contains("a=sendrecv"));
        let candidates: Vec<&str> = offer
            .sdp
            .lines()
            .filter(|l| l.starts_with("a=candidate:"))
            .collect();
        assert_eq!(candidates.len(), 1, "{}", offer.sdp);
        assert!(candidates[0].contains(" udp ") || candidates[0].contains(" UDP "));
        assert!(candidates[0].contains(" 127.0.0.1 40000 typ host"));
    }

    #[test]
    fn send_only_offer() {
        let offer = Offer::new("[::1]:40001".parse().unwrap(), true).unwrap();
        assert!(offer.sdp.contains("a=sendonly"));
        assert!(offer.sdp.contains(" ::1 40001 typ host"), "{}", offer.sdp);
    }
}
