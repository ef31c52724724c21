//! `speak` against a minimal WHIP server written here: HTTP on a tokio `TcpListener` and an
//! ICE-lite str0m peer on a loopback UDP socket that decodes what it hears and sends a tone back.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opus::{Application, Channels, Decoder, Encoder};
use str0m::change::SdpOffer;
use str0m::format::Codec;
use str0m::media::{Frequency, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::watch;
use tribune_client::speak::{self, Options, Source};
use tribune_client::tones::tone_present;
use tribune_client::{Error, listen::analyze_wav};

/// The tone the test server sends back to the speaker.
const BACK_HZ: f32 = 660.0;

/// How the test server answers the POST.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Accept,
    Reject,
    NoLocation,
}

/// What the test server saw.
#[derive(Default)]
struct Seen {
    offer: String,
    authorization: Vec<String>,
    deleted: Vec<String>,
    packets: u64,
    heard: Vec<f32>,
}

struct WhipServer {
    url: String,
    seen: Arc<Mutex<Seen>>,
}

impl WhipServer {
    async fn start(mode: Mode) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/whip/space1", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Seen::default()));
        let seen2 = seen.clone();
        tokio::spawn(async move {
            let (stop_tx, stop_rx) = watch::channel(false);
            loop {
                let (conn, _) = listener.accept().await.unwrap();
                handle(conn, mode, &seen2, &stop_tx, stop_rx.clone()).await;
            }
        });
        Self { url, seen }
    }
}

/// Reads one request: (method, path, headers, body).
async fn read_request(conn: &mut TcpStream) -> (String, String, Vec<(String, String)>, String) {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = conn.read(&mut buf).await.unwrap();
        assert!(n > 0, "client closed mid-request");
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8(data[..head_end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap().split(' ');
    let method = first.next().unwrap().to_owned();
    let path = first.next().unwrap().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .map_or(0, |(_, v)| v.parse().unwrap());
    while data.len() < head_end + len {
        let n = conn.read(&mut buf).await.unwrap();
        assert!(n > 0, "client closed mid-body");
        data.extend_from_slice(&buf[..n]);
    }
    let body = String::from_utf8(data[head_end..head_end + len].to_vec()).unwrap();
    (method, path, headers, body)
}

async fn respond(conn: &mut TcpStream, status: &str, headers: &[(&str, &str)], body: &str) {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(body);
    conn.write_all(out.as_bytes()).await.unwrap();
    conn.shutdown().await.ok();
}

async fn handle(
    mut conn: TcpStream,
    mode: Mode,
    seen: &Arc<Mutex<Seen>>,
    stop_tx: &watch::Sender<bool>,
    stop_rx: watch::Receiver<bool>,
) {
    let (method, path, headers, body) = read_request(&mut conn).await;
    if let Some((_, v)) = headers.iter().find(|(k, _)| k == "authorization") {
        seen.lock().unwrap().authorization.push(v.clone());
    }
    match (method.as_str(), mode) {
        ("POST", Mode::Reject) => {
            respond(
                &mut conn,
                "403 Forbidden",
                &[("Content-Type", "text/plain")],
                "no token",
            )
            .await;
        }
        ("POST", _) => {
            assert_eq!(
                headers
                    .iter()
                    .find(|(k, _)| k == "content-type")
                    .map(|(_, v)| v.as_str()),
                Some("application/sdp")
            );
            seen.lock().unwrap().offer = body.clone();
            let offer = SdpOffer::from_sdp_string(&body).unwrap();
            let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let local = socket.local_addr().unwrap();
            let mut rtc = RtcConfig::new()
                .set_ice_lite(true)
                .clear_codecs()
                .enable_opus(true, false)
                .build(Instant::now());
            rtc.add_local_candidate(Candidate::host(local, "udp").unwrap());
            let answer = rtc.sdp_api().accept_offer(offer).unwrap();
            tokio::spawn(drive(rtc, socket, local, seen.clone(), stop_rx));
            let mut hs = vec![("Content-Type", "application/sdp")];
            if mode != Mode::NoLocation {
                hs.push(("Location", "session/1"));
            }
            respond(&mut conn, "201 Created", &hs, &answer.to_sdp_string()).await;
        }
        ("DELETE", _) => {
            seen.lock().unwrap().deleted.push(path);
            stop_tx.send(true).ok();
            respond(&mut conn, "200 OK", &[], "").await;
        }
        _ => respond(&mut conn, "405 Method Not Allowed", &[], "").await,
    }
}

/// The server's peer: decodes what it hears, sends a [`BACK_HZ`] tone every 20 ms.
async fn drive(
    mut rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    seen: Arc<Mutex<Seen>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut decoder = Decoder::new(48_000, Channels::Mono).unwrap();
    let mut encoder = Encoder::new(48_000, Channels::Mono, Application::Voip).unwrap();
    let mut pcm = vec![0f32; 5760];
    let mut packet = vec![0u8; 4000];
    let mut buf = vec![0u8; 2000];
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    let mut mid: Option<Mid> = None;
    let mut connected = false;
    let mut media_time = 0u64;
    loop {
        // Drain after every mutation.
        let timeout = loop {
            match rtc.poll_output().unwrap() {
                Output::Timeout(t) => break t,
                Output::Transmit(t) => {
                    socket.send_to(&t.contents, t.destination).await.ok();
                }
                Output::Event(Event::Connected) => connected = true,
                Output::Event(Event::MediaAdded(m)) => mid = Some(m.mid),
                Output::Event(Event::MediaData(d)) => {
                    let n = decoder.decode_float(&d.data, &mut pcm, false).unwrap();
                    let mut s = seen.lock().unwrap();
                    s.packets += 1;
                    s.heard.extend_from_slice(&pcm[..n]);
                }
                Output::Event(_) => {}
            }
        };
        // Stop comes last, so datagrams sent before the DELETE are still read.
        tokio::select! {
            biased;
            r = socket.recv_from(&mut buf) => {
                let (n, source) = r.unwrap();
                let Ok(contents) = buf[..n].try_into() else { continue };
                rtc.handle_input(Input::Receive(
                    Instant::now(),
                    Receive { proto: Protocol::Udp, source, destination: local, contents },
                ))
                .unwrap();
            }
            _ = ticker.tick() => {
                let Some(writer) = mid.filter(|_| connected).and_then(|m| rtc.writer(m)) else {
                    continue;
                };
                let pt = writer
                    .payload_params()
                    .find(|p| p.spec().codec == Codec::Opus)
                    .unwrap()
                    .pt();
                let frame: Vec<f32> = (0..960)
                    .map(|i| {
                        let t = (media_time + i) as f32 / 48_000.0;
                        0.25 * (std::f32::consts::TAU * BACK_HZ * t).sin()
                    })
                    .collect();
                let len = encoder.encode_float(&frame, &mut packet).unwrap();
                let time = MediaTime::new(media_time, Frequency::FORTY_EIGHT_KHZ);
                writer.write(pt, Instant::now(), time, &packet[..len]).unwrap();
                media_time += 960;
            }
            _ = tokio::time::sleep_until(timeout.into()) => {
                rtc.handle_input(Input::Timeout(Instant::now())).unwrap();
            }
            _ = stop.changed() => return,
        }
    }
}

fn temp_wav(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("tribune-speak-{}-{name}.wav", std::process::id()))
}

#[tokio::test]
async fn speaks_a_tone_and_records_what_comes_back() {
    let server = WhipServer::start(Mode::Accept).await;
    let record = temp_wav("back");
    let opts = Options {
        token: Some("secret".into()),
        source: Source::Tone { hz: 440.0 },
        record: Some(record.clone()),
        duration: Some(Duration::from_millis(1500)),
        ..Options::new(&server.url)
    };
    let report = speak::run(opts, std::future::pending()).await.unwrap();

    let seen = server.seen.lock().unwrap();
    // The offer: Opus only, our loopback host candidate, sendrecv.
    let rtpmaps: Vec<&str> = seen
        .offer
        .lines()
        .filter(|l| l.starts_with("a=rtpmap:"))
        .collect();
    assert_eq!(rtpmaps.len(), 1, "{}", seen.offer);
    assert!(rtpmaps[0].ends_with(" opus/48000/2"));
    assert!(
        seen.offer
            .lines()
            .any(|l| l.starts_with("a=candidate:") && l.contains(" 127.0.0.1 "))
    );
    assert!(seen.offer.contains("a=sendrecv"));
    assert_eq!(seen.authorization, ["Bearer secret", "Bearer secret"]);

    // What the server heard.
    assert!(report.sent_packets > 0);
    assert!(seen.packets > 0 && seen.packets <= report.sent_packets);
    assert!(tone_present(&seen.heard, 440.0));
    assert!(!tone_present(&seen.heard, BACK_HZ));

    // What we heard back.
    assert!(report.received_packets > 0);
    assert_eq!(report.received_samples, report.received_packets * 960);
    assert_eq!(report.lost_packets, 0);
    let back = analyze_wav(&record).unwrap();
    std::fs::remove_file(&record).ok();
    assert_eq!(back.len() as u64, report.received_samples);
    assert!(tone_present(&back, BACK_HZ));
    assert!(!tone_present(&back, 440.0));

    // The relative Location was resolved and DELETEd.
    assert_eq!(
        report.session_url,
        server.url.replace("space1", "session/1")
    );
    assert_eq!(seen.deleted, ["/whip/session/1"]);
}

#[tokio::test]
async fn send_only_offers_sendonly_and_hears_nothing() {
    let server = WhipServer::start(Mode::Accept).await;
    let opts = Options {
        source: Source::Silence,
        send_only: true,
        duration: Some(Duration::from_millis(500)),
        ..Options::new(&server.url)
    };
    let cancel = std::future::pending();
    let report = speak::run(opts, cancel).await.unwrap();
    let seen = server.seen.lock().unwrap();
    assert!(seen.offer.contains("a=sendonly"));
    assert!(seen.authorization.is_empty());
    assert_eq!(report.received_packets, 0);
    assert_eq!(seen.deleted.len(), 1);
}

#[tokio::test]
async fn cancel_ends_the_run_and_deletes_the_session() {
    let server = WhipServer::start(Mode::Accept).await;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let seen = server.seen.clone();
    // Cancel once the server has heard something.
    tokio::spawn(async move {
        loop {
            if seen.lock().unwrap().packets >= 5 {
                tx.send(()).ok();
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    let opts = Options::new(&server.url);
    let report = speak::run(opts, async {
        rx.await.ok();
    })
    .await
    .unwrap();
    assert!(report.sent_packets >= 5);
    assert_eq!(server.seen.lock().unwrap().deleted.len(), 1);
}

#[tokio::test]
async fn rejected_offer_is_an_error_with_status_and_body() {
    let server = WhipServer::start(Mode::Reject).await;
    let err = speak::run(Options::new(&server.url), std::future::pending())
        .await
        .unwrap_err();
    match err {
        Error::WhipStatus { status, body } => {
            assert_eq!(status, 403);
            assert_eq!(body, "no token");
        }
        e => panic!("unexpected error {e}"),
    }
    assert!(server.seen.lock().unwrap().deleted.is_empty());
}

#[tokio::test]
async fn created_without_location_is_an_error() {
    let server = WhipServer::start(Mode::NoLocation).await;
    let err = speak::run(Options::new(&server.url), std::future::pending())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Location(_)), "{err}");
}

#[tokio::test]
async fn a_wav_source_is_sent_once_then_the_run_ends() {
    // 0.4 s of 440 Hz at 16 kHz stereo: exactly 20 frames once resampled to 48 kHz.
    let wav = temp_wav("source");
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&wav, spec).unwrap();
    for i in 0..6400 {
        let s = 0.3 * (std::f32::consts::TAU * 440.0 * i as f32 / 16_000.0).sin();
        w.write_sample((s * 32767.0) as i16).unwrap();
        w.write_sample((s * 32767.0) as i16).unwrap();
    }
    w.finalize().unwrap();

    let server = WhipServer::start(Mode::Accept).await;
    let opts = Options {
        source: Source::Wav(wav.clone()),
        ..Options::new(&server.url)
    };
    // No duration and no cancel: only the end of the file ends the run.
    let report = speak::run(opts, std::future::pending()).await.unwrap();
    std::fs::remove_file(&wav).ok();
    assert_eq!(report.sent_packets, 20);
    let seen = server.seen.lock().unwrap();
    assert_eq!(seen.packets, 20);
    assert!(tone_present(&seen.heard, 440.0));
    assert_eq!(seen.deleted.len(), 1);
}
