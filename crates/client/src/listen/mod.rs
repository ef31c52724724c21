//! `listen`: reads an Ogg/Opus HTTP stream (tribune's `live.opus`, or any Icecast mount), checks
//! its framing with [`StreamChecker`], decodes it and optionally saves it as a WAV file.
//!
//! A non-200 answer is not an error: the [`Report`] carries the status so callers can assert on
//! 404 or 410.

mod checker;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use tracing::{debug, warn};

use crate::Result;
use crate::wav::{Recorder, load_mono};

pub use checker::{Stats, StreamChecker};

/// How long connecting to the server may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What to listen to.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The stream URL, e.g. `http://127.0.0.1:8080/spaces/{id}/live.opus`.
    pub url: String,
    /// How long to listen, counted from the start of the request; `None` = until the stream ends
    /// or the cancel future resolves.
    pub duration: Option<Duration>,
    /// Where to save the decoded audio, as 48 kHz mono 16-bit WAV.
    pub out: Option<PathBuf>,
}

/// What was received.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// HTTP status of the response; 0 if the run was cancelled (or its duration ended) before a
    /// response arrived.
    pub status: u16,
    /// Its `Content-Type`, if any.
    pub content_type: Option<String>,
    /// All response headers, names in lower case, values lossily decoded.
    pub headers: Vec<(String, String)>,
    /// Body bytes received.
    pub bytes: u64,
    /// Valid Ogg pages.
    pub pages: u64,
    /// Opus audio packets.
    pub audio_packets: u64,
    /// Samples decoded (48 kHz mono, before pre-skip trimming).
    pub samples: u64,
    /// Page sequence discontinuities.
    pub seq_gaps: u64,
    /// Granule positions not equal to the previous one plus the samples in between.
    pub granule_gaps: u64,
    /// Pages with a bad CRC (or otherwise unreadable).
    pub crc_errors: u64,
    /// Audio packets that did not decode.
    pub decode_errors: u64,
    /// Granule position of the first audio page.
    pub first_granule: Option<u64>,
    /// `OpusHead` then `OpusTags` came first, with BOS on the first page.
    pub header_ok: bool,
    /// Why the body ended early, if it failed mid-stream (the counters are still valid).
    pub body_error: Option<String>,
}

impl Report {
    fn set_stats(&mut self, s: &Stats) {
        self.bytes = s.bytes;
        self.pages = s.pages;
        self.audio_packets = s.audio_packets;
        self.samples = s.samples;
        self.seq_gaps = s.seq_gaps;
        self.granule_gaps = s.granule_gaps;
        self.crc_errors = s.crc_errors;
        self.decode_errors = s.decode_errors;
        self.first_granule = s.first_granule;
        self.header_ok = s.header_ok;
    }
}

/// Listens to `opts.url` until the duration ends, `cancel` resolves or the stream ends.
///
/// Errors only when the request cannot be made (bad URL, connection refused) or the WAV file
/// cannot be written; a stream failing mid-body ends the run with [`Report::body_error`] set.
pub async fn run(opts: Options, cancel: impl Future<Output = ()>) -> Result<Report> {
    let mut cancel = pin!(cancel);
    let end = opts.duration.map(|d| tokio::time::Instant::now() + d);
    let client = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .build()?;

    let response = tokio::select! {
        biased;
        () = &mut cancel => return Ok(Report::default()),
        () = crate::sleep_until_opt(end) => return Ok(Report::default()),
        r = client.get(&opts.url).send() => r?,
    };
    let mut report = Report {
        status: response.status().as_u16(),
        content_type: response
            .headers()
            .get(CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
        headers: response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        ..Report::default()
    };
    if response.status() != StatusCode::OK {
        debug!(status = report.status, url = %opts.url, "stream not available");
        return Ok(report);
    }

    let mut recorder = opts.out.as_deref().map(Recorder::create).transpose()?;
    let mut checker = StreamChecker::new()?;
    let mut body = response.bytes_stream();
    loop {
        tokio::select! {
            biased;
            () = &mut cancel => break,
            () = crate::sleep_until_opt(end) => break,
            chunk = body.next() => match chunk {
                Some(Ok(bytes)) => {
                    checker.push(&bytes);
                    let pcm = checker.take_pcm();
                    if let Some(r) = &mut recorder {
                        r.write(&pcm)?;
                    }
                }
                Some(Err(e)) => {
                    warn!(url = %opts.url, error = %e, "stream failed");
                    report.body_error = Some(e.to_string());
                    break;
                }
                None => break,
            },
        }
    }
    if let Some(r) = recorder {
        r.finish()?;
    }
    report.set_stats(checker.stats());
    Ok(report)
}

/// Loads a WAV file (any PCM format) as mono f32 samples in [-1, 1], averaging channels; the
/// sample rate is kept as is (everything this crate writes is 48 kHz).
pub fn analyze_wav(path: impl AsRef<Path>) -> Result<Vec<f32>> {
    Ok(load_mono(path.as_ref())?.samples)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::temp_path;
    use crate::tones::tone_present;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// Serves one HTTP/1.1 response (`head` is the status line and headers) with `body` in a few
    /// writes, then closes. Returns the URL.
    async fn serve_once(head: &'static str, body: Vec<u8>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = conn.read(&mut buf).await.unwrap();
                if n == 0 {
                    return;
                }
                req.extend_from_slice(&buf[..n]);
            }
            conn.write_all(head.as_bytes()).await.unwrap();
            conn.write_all(b"\r\n").await.unwrap();
            for chunk in body.chunks(1000) {
                conn.write_all(chunk).await.unwrap();
                conn.flush().await.unwrap();
            }
            conn.shutdown().await.ok();
        });
        format!("http://{addr}/spaces/s1/live.opus")
    }

    #[tokio::test]
    async fn reads_a_stream_to_its_end_and_saves_it() {
        let (head, pages) = checker::tests::stream(&checker::tests::encode_tone(660.0, 50));
        let body: Vec<u8> = head.iter().chain(pages.iter().flatten()).copied().collect();
        let url = serve_once(
            "HTTP/1.1 200 OK\r\nContent-Type: audio/ogg\r\nCache-Control: no-cache\r\nConnection: close\r\n",
            body.clone(),
        )
        .await;
        let out = temp_path("listen.wav");
        let opts = Options {
            url,
            duration: None,
            out: Some(out.clone()),
        };
        let report = run(opts, std::future::pending()).await.unwrap();
        assert_eq!(report.status, 200);
        assert_eq!(report.content_type.as_deref(), Some("audio/ogg"));
        assert!(
            report
                .headers
                .contains(&("cache-control".into(), "no-cache".into()))
        );
        assert_eq!(report.bytes, body.len() as u64);
        assert!(report.header_ok);
        assert_eq!(report.audio_packets, 50);
        assert_eq!(report.samples, 50 * 960);
        assert_eq!((report.seq_gaps, report.granule_gaps), (0, 0));
        assert_eq!(report.body_error, None);

        let wav = analyze_wav(&out).unwrap();
        std::fs::remove_file(&out).ok();
        assert_eq!(wav.len(), 50 * 960 - 312);
        assert!(tone_present(&wav, 660.0));
    }

    #[tokio::test]
    async fn a_missing_stream_reports_its_status() {
        let url = serve_once(
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n",
            b"not found".to_vec(),
        )
        .await;
        let out = temp_path("never.wav");
        let opts = Options {
            url,
            duration: None,
            out: Some(out.clone()),
        };
        let report = run(opts, std::future::pending()).await.unwrap();
        assert_eq!(report.status, 404);
        assert_eq!(report.content_type.as_deref(), Some("text/plain"));
        assert_eq!(report.pages, 0);
        assert!(!out.exists());
    }

    #[tokio::test]
    async fn cancel_ends_an_endless_stream() {
        // A server that sends headers and then nothing: only cancel can end this.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (head, _) = checker::tests::stream(&[]);
        let (got_request_tx, got_request) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = conn.read(&mut buf).await.unwrap();
            conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: audio/ogg\r\n\r\n")
                .await
                .unwrap();
            conn.write_all(&head).await.unwrap();
            got_request_tx.send(()).ok();
            // Hold the connection open until the client goes away.
            let _ = conn.read(&mut buf).await;
        });
        let opts = Options {
            url: format!("http://{addr}/live.opus"),
            ..Options::default()
        };
        let cancel = async {
            got_request.await.ok();
        };
        // Whether the response head was read before cancel fired is up to the scheduler: both
        // end the run cleanly.
        let report = run(opts, cancel).await.unwrap();
        assert!(matches!(report.status, 0 | 200), "{report:?}");
        assert_eq!(report.audio_packets, 0);
    }

    #[tokio::test]
    async fn connection_refused_is_an_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let opts = Options {
            url: format!("http://{addr}/live.opus"),
            ..Options::default()
        };
        assert!(matches!(
            run(opts, std::future::pending()).await,
            Err(crate::Error::Http(_))
        ));
    }
}
