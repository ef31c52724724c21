//! Isolation: while the HTTP side is hammered by thousands of concurrent requests, the listener
//! stream stays continuous and both speakers' audio keeps flowing.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use common::*;
use tribune_client::listen::analyze_wav;
use tribune_client::tones::tone_present;

/// Concurrent hammering connections.
const HAMMERS: usize = 1500;
/// How long the hammer runs (a bound, not an assertion).
const HAMMER_FOR: Duration = Duration::from_secs(8);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_survives_an_http_hammer() {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let server = ServerProc::start("iso", &[]);
    let base = server.base.clone();
    let (id, host) = create_space(&base, "isolation").await;
    let whip = format!("{base}/api/spaces/{id}/whip");
    let dir = server.data_dir.clone();
    let a_tok = mint(&base, &id, &host, "speaker", "A").await;
    let b_tok = mint(&base, &id, &host, "speaker", "B").await;
    let a = speak(&whip, &a_tok, 440, 16, &dir.join("a.wav"));
    let b = speak(&whip, &b_tok, 660, 16, &dir.join("b.wav"));
    wait_speakers(&base, 2).await;
    let listener = listen(
        &format!("{base}/spaces/{id}/live.opus"),
        12,
        &dir.join("l.wav"),
    );
    tokio::time::sleep(Duration::from_secs(1)).await;

    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Instant::now() + HAMMER_FOR;
    let mut tasks = Vec::new();
    for i in 0..HAMMERS {
        let (base, id, done, failed) = (base.clone(), id.clone(), done.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            // One connection per task: thousands of concurrent connections.
            let c = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap();
            let mut n = 0u64;
            while Instant::now() < stop {
                let url = match (i + n as usize) % 4 {
                    0 => format!("{base}/api/spaces"),
                    1 => format!("{base}/api/spaces/{id}"),
                    2 => format!("{base}/healthz"),
                    _ => format!("{base}/api/spaces/does-not-exist"),
                };
                match c.get(url).send().await {
                    Ok(r) => {
                        let _ = r.bytes().await;
                        done.fetch_add(1, Relaxed);
                    }
                    Err(_) => {
                        failed.fetch_add(1, Relaxed);
                    }
                }
                n += 1;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let requests = done.load(Relaxed);
    eprintln!(
        "hammer: {requests} requests answered, {} failed",
        failed.load(Relaxed)
    );
    assert!(requests >= HAMMERS as u64, "the hammer really ran");

    let l = report(listener);
    assert_continuous(&l);
    let pcm = analyze_wav(dir.join("l.wav")).unwrap();
    assert!(
        pcm.len() >= 48_000 * 10,
        "the listener got its 12 s ({} samples)",
        pcm.len()
    );
    assert!(tone_present(&pcm, 440.0) && tone_present(&pcm, 660.0));
    wait_ok(a, "speaker A");
    wait_ok(b, "speaker B");
    // Each speaker kept hearing the other through the whole hammer: check the last 8 s.
    for (file, other) in [("a.wav", 660.0), ("b.wav", 440.0)] {
        let heard = analyze_wav(dir.join(file)).unwrap();
        assert!(heard.len() > 48_000 * 12, "{file} holds most of the run");
        let tail = &heard[heard.len() - 48_000 * 8..];
        assert!(
            tone_present(tail, other),
            "{file} hears the other speaker during the hammer"
        );
    }
}
