//! `speak`: a WHIP client (RFC 9725) that publishes one Opus stream and records what it hears.
//!
//! The flow: bind a UDP socket, build a str0m peer offering only Opus with one host candidate,
//! POST the offer (`application/sdp`, `Authorization: Bearer`), apply the answer from the
//! `201 Created`, then drive the peer from one task until the duration ends or `cancel`
//! resolves, and DELETE the session's `Location`. Works against any WHIP server.
//!
//! Sending follows a drift-free 20 ms schedule: one Opus frame of 960 samples per tick, RTP
//! media time advancing by 960 per frame. What the server sends back (tribune's mix-minus) is
//! decoded and, if asked, written to a 48 kHz mono 16-bit WAV file.

mod peer;
mod source;
mod whip;

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use tokio::net::UdpSocket;
use tracing::{info, warn};

use crate::Result;
use crate::wav::Recorder;

pub use peer::CONNECT_TIMEOUT;
pub use source::TONE_AMPLITUDE;
pub use whip::SDP_MIME;

/// How long one WHIP HTTP request (POST or DELETE) may take.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the DELETE of a session whose connection was lost may take.
pub const LOST_DELETE_WAIT: Duration = Duration::from_secs(2);

/// The default Opus bitrate: 32 kb/s is transparent for speech in mono.
pub const DEFAULT_BITRATE: u32 = 32_000;

/// What to send.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// A pure sine at `hz`, at [`TONE_AMPLITUDE`].
    Tone {
        /// Frequency in Hz.
        hz: f32,
    },
    /// A synthetic talking voice (see `tribune_media::synth::Voice`).
    Voice {
        /// The voice's fundamental frequency in Hz.
        fundamental_hz: f32,
        /// Seed of its syllable pattern, so runs are reproducible.
        seed: u64,
    },
    /// A synthetic voice that talks only in its turn: time is cut into `slot`s counted from the
    /// first frame, and this voice talks in slots where `slot_index % turns == turn` (the demo's
    /// speakers take turns this way).
    Turns {
        /// The voice's fundamental frequency in Hz.
        fundamental_hz: f32,
        /// Seed of its syllable pattern.
        seed: u64,
        /// This speaker's turn, `0..turns`.
        turn: u32,
        /// How many speakers take turns.
        turns: u32,
        /// Length of one turn.
        slot: Duration,
    },
    /// A WAV file of any rate and channel count: downmixed to mono and resampled to 48 kHz
    /// linearly. Without [`Options::loop_wav`], the run ends when the file does.
    Wav(PathBuf),
    /// Digital silence (still sent as Opus frames every 20 ms).
    Silence,
}

/// How to speak.
#[derive(Debug, Clone)]
pub struct Options {
    /// The WHIP endpoint, e.g. `http://127.0.0.1:8080/api/spaces/{id}/whip`.
    pub whip_url: String,
    /// Bearer token for the POST and the DELETE.
    pub token: Option<String>,
    /// What to send.
    pub source: Source,
    /// Where to save what we hear (the server's audio back to us), as 48 kHz mono 16-bit WAV.
    pub record: Option<PathBuf>,
    /// How long to stay, counted from when the session is created; `None` = until the cancel
    /// future resolves.
    pub duration: Option<Duration>,
    /// Offer `sendonly` instead of `sendrecv` (then nothing comes back).
    pub send_only: bool,
    /// Local address to bind the UDP socket to; it becomes our only ICE host candidate.
    pub bind: IpAddr,
    /// Opus bitrate in bit/s.
    pub bitrate: u32,
    /// Restart a [`Source::Wav`] at its end instead of ending the run.
    pub loop_wav: bool,
    /// Publish again when the session fails or is lost (the server died, say), with jittered
    /// exponential back-off (0.25 s doubling to 2 s), trying [`Options::whip_url`] and then each
    /// of [`Options::more_urls`] in turn, until the duration ends or the run is cancelled.
    /// A recording then holds what was heard in the last session.
    pub reconnect: bool,
    /// Other WHIP endpoints of the same space (other nodes of a cluster), tried in turn.
    pub more_urls: Vec<String>,
}

impl Options {
    /// Options for `whip_url` with every other field at its default.
    pub fn new(whip_url: impl Into<String>) -> Self {
        Self {
            whip_url: whip_url.into(),
            ..Self::default()
        }
    }
}

impl Default for Options {
    /// A 440 Hz tone from 127.0.0.1 at 32 kb/s, sendrecv, until cancelled, to no URL yet.
    fn default() -> Self {
        Self {
            whip_url: String::new(),
            token: None,
            source: Source::Tone { hz: 440.0 },
            record: None,
            duration: None,
            send_only: false,
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            bitrate: DEFAULT_BITRATE,
            loop_wav: false,
            reconnect: false,
            more_urls: Vec::new(),
        }
    }
}

/// What happened during a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Opus packets we sent.
    pub sent_packets: u64,
    /// RTP packets (Opus frames) we received.
    pub received_packets: u64,
    /// Samples decoded from the received packets (48 kHz; concealment of losses not counted).
    pub received_samples: u64,
    /// Packets missing from what we heard, from RTP sequence number gaps.
    pub lost_packets: u64,
    /// The absolute URL of the WHIP session (its resolved `Location`).
    pub session_url: String,
}

/// Publishes `opts.source` to `opts.whip_url` until `opts.duration` ends, `cancel` resolves, or a
/// non-looping WAV source ends.
///
/// Errors: the WHIP POST failing or answering other than `201 Created`
/// ([`crate::Error::WhipStatus`] carries status and body), ICE/DTLS not connecting within
/// [`CONNECT_TIMEOUT`], or the connection being lost. The session is DELETEd on every exit after
/// a successful POST (a failing DELETE is only logged), and the recording's header is finalized.
pub async fn run(opts: Options, cancel: impl Future<Output = ()>) -> Result<Report> {
    if opts.reconnect {
        return run_reconnecting(opts, cancel).await;
    }
    run_with(opts, cancel, CONNECT_TIMEOUT).await
}

/// First wait before publishing again.
const RETRY_FIRST: Duration = Duration::from_millis(250);
/// Longest wait before publishing again.
const RETRY_MAX: Duration = Duration::from_secs(2);
/// A session that lasted this long resets the back-off.
const RETRY_RESET: Duration = Duration::from_secs(10);

/// The wait before try `n` (0-based) after a failure: the upper half of an exponential step.
pub fn retry_delay(n: u32, jitter: f64) -> Duration {
    let step = RETRY_FIRST.saturating_mul(1u32 << n.min(8)).min(RETRY_MAX);
    step.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

/// [`run`] with [`Options::reconnect`]: sessions one after another until the end. The report
/// adds up every session's counters; its URL is the last session's.
async fn run_reconnecting(opts: Options, cancel: impl Future<Output = ()>) -> Result<Report> {
    let urls: Vec<String> = std::iter::once(opts.whip_url.clone())
        .chain(opts.more_urls.iter().cloned())
        .collect();
    whip::parse_url(&opts.whip_url)?;
    let end = opts.duration.map(|d| tokio::time::Instant::now() + d);
    let mut cancel = std::pin::pin!(cancel);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut total = Report::default();
    let (mut tries, mut n) = (0u32, 0usize);
    loop {
        let left = end.map(|e| e.saturating_duration_since(tokio::time::Instant::now()));
        if left.is_some_and(|l| l.is_zero()) || *stop_rx.borrow() {
            break;
        }
        let url = urls[n % urls.len()].clone();
        let attempt_opts = Options {
            whip_url: url.clone(),
            duration: left,
            reconnect: false,
            ..opts.clone()
        };
        let mut rx = stop_rx.clone();
        let started = tokio::time::Instant::now();
        let attempt = run_with(
            attempt_opts,
            async move {
                let _ = rx.wait_for(|v| *v).await;
            },
            CONNECT_TIMEOUT,
        );
        let mut attempt = std::pin::pin!(attempt);
        let result = tokio::select! {
            r = &mut attempt => r,
            () = &mut cancel => {
                let _ = stop_tx.send(true);
                attempt.await
            }
        };
        match result {
            Ok(r) => {
                total.sent_packets += r.sent_packets;
                total.received_packets += r.received_packets;
                total.received_samples += r.received_samples;
                total.lost_packets += r.lost_packets;
                total.session_url = r.session_url;
                // The duration ended, the run was cancelled, or the source ended.
                break;
            }
            // Refused for good (credentials, a space that ended, a bad request): no retry.
            Err(e @ crate::Error::WhipStatus { status, .. })
                if (400..500).contains(&status) && !matches!(status, 404 | 408 | 409 | 429) =>
            {
                return Err(e);
            }
            Err(e @ (crate::Error::Wav(_) | crate::Error::Url { .. })) => return Err(e),
            Err(e) => {
                if started.elapsed() >= RETRY_RESET {
                    tries = 0;
                }
                let wait = retry_delay(tries, rand::random::<f64>());
                warn!(url = %url, error = %e, retry_in_ms = wait.as_millis() as u64, "session lost; publishing again");
                tries += 1;
                n += 1;
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = &mut cancel => break,
                }
            }
        }
    }
    Ok(total)
}

/// [`run`] with another connect timeout (tests use a short one).
async fn run_with(
    opts: Options,
    cancel: impl Future<Output = ()>,
    connect_timeout: Duration,
) -> Result<Report> {
    let frames = source::Frames::new(&opts.source, opts.loop_wav)?;
    let endpoint = whip::parse_url(&opts.whip_url)?;
    let recorder = opts.record.as_deref().map(Recorder::create).transpose()?;
    let socket = UdpSocket::bind((opts.bind, 0)).await?;
    let local = socket.local_addr()?;
    let offer = peer::Offer::new(local, opts.send_only)?;
    let client = reqwest::Client::builder().timeout(HTTP_TIMEOUT).build()?;

    let token = opts.token.as_deref();
    let session = whip::post_offer(&client, &endpoint, token, &offer.sdp).await?;
    info!(session = %session.url, %local, "WHIP session created");

    let result = async {
        let mut speaker = offer.accept(&session.answer, socket, frames, recorder, opts.bitrate)?;
        speaker.run(opts.duration, connect_timeout, cancel).await?;
        speaker.finish()
    }
    .await;

    // After a lost connection the server may be gone too: the DELETE is not waited on long.
    let delete = whip::delete(&client, &session.url, token);
    let wait = if result.is_err() {
        LOST_DELETE_WAIT
    } else {
        HTTP_TIMEOUT
    };
    match tokio::time::timeout(wait, delete).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => warn!(session = %session.url, error = %e, "WHIP DELETE failed"),
        Err(_) => warn!(session = %session.url, "WHIP DELETE not answered"),
    }
    let mut report = result?;
    report.session_url = session.url.to_string();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Instant;
    use str0m::RtcConfig;
    use str0m::change::SdpOffer;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A WHIP endpoint that answers the offer with a peer that never runs, so ICE cannot
    /// complete. Returns the endpoint URL and the request lines it received.
    async fn dead_peer_endpoint() -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/whip", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        tokio::spawn(async move {
            loop {
                let (mut conn, _) = listener.accept().await.unwrap();
                let mut data = Vec::new();
                let mut buf = [0u8; 4096];
                // Good enough for this test: the offer arrives with its headers or right after.
                let body = loop {
                    let n = conn.read(&mut buf).await.unwrap();
                    data.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&data).into_owned();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let len = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap())
                            })
                            .unwrap_or(0);
                        if body.len() >= len {
                            seen.lock()
                                .unwrap()
                                .push(head.lines().next().unwrap().to_owned());
                            break body.to_owned();
                        }
                    }
                };
                let response = if body.is_empty() {
                    "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n".to_owned()
                } else {
                    let mut rtc = RtcConfig::new().set_ice_lite(true).build(Instant::now());
                    let candidate = str0m::Candidate::host("127.0.0.1:9".parse().unwrap(), "udp");
                    rtc.add_local_candidate(candidate.unwrap());
                    let offer = SdpOffer::from_sdp_string(&body).unwrap();
                    let answer = rtc.sdp_api().accept_offer(offer).unwrap().to_sdp_string();
                    format!(
                        "HTTP/1.1 201 Created\r\nConnection: close\r\nLocation: /whip/1\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{answer}",
                        answer.len()
                    )
                };
                conn.write_all(response.as_bytes()).await.unwrap();
                conn.shutdown().await.ok();
            }
        });
        (url, requests)
    }

    #[tokio::test]
    async fn no_connection_is_a_timeout_and_the_session_is_deleted() {
        let (url, requests) = dead_peer_endpoint().await;
        let record = crate::test_util::temp_path("timeout.wav");
        let opts = Options {
            record: Some(record.clone()),
            ..Options::new(url)
        };
        let err = run_with(opts, std::future::pending(), Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(matches!(err, crate::Error::ConnectTimeout(_)), "{err}");
        assert_eq!(
            *requests.lock().unwrap(),
            ["POST /whip HTTP/1.1", "DELETE /whip/1 HTTP/1.1"]
        );
        // The recording is a valid, empty WAV.
        let samples = crate::listen::analyze_wav(&record).unwrap();
        std::fs::remove_file(&record).ok();
        assert!(samples.is_empty());
    }

    #[test]
    fn retry_delays_grow_to_the_cap_with_jitter_in_the_upper_half() {
        assert_eq!(retry_delay(0, 0.0), Duration::from_millis(125));
        assert_eq!(retry_delay(0, 1.0), Duration::from_millis(250));
        assert_eq!(retry_delay(1, 1.0), Duration::from_millis(500));
        assert_eq!(retry_delay(30, 1.0), RETRY_MAX);
        assert_eq!(retry_delay(30, 0.0), RETRY_MAX / 2);
    }

    #[tokio::test]
    async fn bad_url_and_bad_wav_fail_before_any_request() {
        let err = run(Options::new("not a url"), std::future::pending())
            .await
            .unwrap_err();
        assert!(matches!(err, crate::Error::Url { .. }), "{err}");
        let opts = Options {
            source: Source::Wav("/nonexistent/tribune.wav".into()),
            ..Options::new("http://127.0.0.1:9/whip")
        };
        let err = run(opts, std::future::pending()).await.unwrap_err();
        assert!(matches!(err, crate::Error::Wav(_)), "{err}");
    }
}
