//! A space outlives its owner: three `tribune serve` nodes on one `redis-server` (all on
//! loopback, started by the test), a space on n1, two reconnecting speakers and a reconnecting
//! Ogg listener through the other nodes. n1 is killed (`SIGKILL`) or frozen (`SIGSTOP`) mid-space;
//! its hot standby takes the space over by itself: both speakers are heard again, the listener
//! hears them again, and the recording read after the end is one file that decodes whole, holds
//! both tones before and after, and lasts as long as the space did.

mod common;

use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use common::*;
use tribune_client::listen::analyze_wav;
use tribune_client::tones::tone_present;

/// Longest a step may take before the test fails: a bound on a hang, not a timing.
const HANG: Duration = Duration::from_secs(40);

/// `tribune speak --reconnect` of a tone, through every node in `bases` in turn.
fn speaker(bases: &[&str], id: &str, token: &str, hz: u32, seconds: u32) -> Child {
    let mut c = std::process::Command::new(bin());
    c.args(["speak", "--reconnect", "--token", token]);
    for b in bases {
        c.args(["--whip", &format!("{b}/api/spaces/{id}/whip")]);
    }
    c.args(["--tone", &hz.to_string(), "--seconds", &seconds.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("spawn tribune speak")
}

/// One connection of the reconnecting listener: when it started, and what it heard.
struct Heard {
    started: Instant,
    wav: PathBuf,
}

/// An Ogg listener that connects again whenever its stream ends, until `until`.
fn reconnecting_listener(
    url: String,
    dir: PathBuf,
    until: Instant,
) -> std::thread::JoinHandle<Vec<Heard>> {
    std::thread::spawn(move || {
        let mut out = Vec::new();
        let mut k = 0;
        while Instant::now() + Duration::from_secs(1) < until {
            let secs = (until - Instant::now()).as_secs().max(1) as u32;
            let wav = dir.join(format!("listener-{k}.wav"));
            k += 1;
            let started = Instant::now();
            let r = report(listen(&url, secs, &wav));
            if r["status"] == 200 {
                out.push(Heard { started, wav });
            } else {
                std::thread::sleep(Duration::from_millis(300));
            }
        }
        out
    })
}

/// What the HLS listeners through the edge got: every media URL's bodies (hashes), and when
/// media arrived.
#[derive(Default)]
struct Seen {
    bodies: std::collections::HashMap<String, std::collections::HashSet<u64>>,
    arrivals: Vec<Instant>,
}

/// nginx with `deploy/nginx/edge.conf`, its upstreams every node of `bases`.
fn edge_over(name: &str, bases: &[&str]) -> (Nginx, String) {
    // One directory per scenario: the scenarios run at once in this process.
    let prefix = temp_dir(&format!("{name}-edge"));
    let cache = prefix.join("cache");
    std::fs::create_dir_all(&cache).expect("cache dir");
    let servers: Vec<String> = bases
        .iter()
        .map(|b| format!("server {} max_fails=0;", b.trim_start_matches("http://")))
        .collect();
    let nginx = Nginx::start(
        "edge.conf",
        prefix,
        &[
            ("worker_rlimit_nofile 65536;", "worker_rlimit_nofile 4096;"),
            ("server @ORIGIN@ max_fails=0;", &servers.join("\n        ")),
            ("@ORIGIN@", bases[0].trim_start_matches("http://")),
            ("@CACHE@", cache.to_str().expect("UTF-8 temp dir")),
        ],
    );
    let base = format!("http://127.0.0.1:{}", nginx.port);
    (nginx, base)
}

/// LL-HLS listeners through the edge until `until`, noting every body into `seen`.
fn hls_listeners(
    url: String,
    n: usize,
    until: Instant,
    seen: std::sync::Arc<std::sync::Mutex<Seen>>,
) -> tokio::task::JoinHandle<Vec<tribune_client::hls::Report>> {
    tokio::spawn(async move {
        let client = reqwest::Client::new();
        let runs = (0..n).map(|_| {
            let (client, url, seen) = (client.clone(), url.clone(), seen.clone());
            async move {
                let mut opts = tribune_client::hls::Options::new(url, until - Instant::now());
                opts.request_timeout = Duration::from_secs(12);
                let observe = move |a: tribune_client::hls::Arrival<'_>| {
                    if let tribune_client::hls::Arrival::Media { uri, body, .. } = a {
                        use std::hash::{Hash, Hasher};
                        let mut h = std::collections::hash_map::DefaultHasher::new();
                        body.hash(&mut h);
                        let mut s = seen.lock().expect("seen");
                        s.bodies
                            .entry(uri.to_owned())
                            .or_default()
                            .insert(h.finish());
                        s.arrivals.push(Instant::now());
                    }
                };
                tribune_client::hls::run_observed(&client, opts, &observe, std::future::pending())
                    .await
            }
        });
        futures_util::future::join_all(runs).await
    })
}

/// A node other than `not` that `GET /api/cluster` on `base` lists as running `id` (the
/// lost node's own record lingers until it expires).
async fn owner(base: &str, id: &str, not: &str) -> Option<String> {
    let (s, v) = api("GET", &format!("{base}/api/cluster"), Some(ADMIN_KEY), None).await;
    if s != 200 {
        return None;
    }
    v["nodes"].as_array()?.iter().find_map(|n| {
        let node = n["id"].as_str()?;
        let runs = n["spaces"].as_array()?.iter().any(|x| x == id);
        (runs && node != not).then(|| node.to_owned())
    })
}

/// A metric on `base`, or 0 when it cannot be read (a node that is down).
async fn metric_or_zero(base: &str, name: &str) -> f64 {
    let Ok(r) = reqwest::Client::new()
        .get(format!("{base}/metrics"))
        .bearer_auth(ADMIN_KEY)
        .timeout(Duration::from_secs(2))
        .send()
        .await
    else {
        return 0.0;
    };
    let text = r.text().await.unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Both tones in `pcm` between `from` and `to` seconds.
fn both_tones(pcm: &[f32], from: f64, to: f64) -> bool {
    let a = ((from * 48_000.0) as usize).min(pcm.len());
    let b = ((to * 48_000.0) as usize).min(pcm.len());
    b > a + 48_000 && tone_present(&pcm[a..b], 440.0) && tone_present(&pcm[a..b], 660.0)
}

#[derive(Clone, Copy, PartialEq)]
enum Loss {
    Kill,
    Freeze,
    Stop,
}

/// The whole scenario, for one way of losing the owner.
async fn lose_the_owner(name: &str, loss: Loss) {
    let t_create = Instant::now();
    let (_redis, mut nodes, id, host) =
        common::cluster::cluster_with_space(name, 3, &["--grace", "60"], (1, "n1"), name).await;
    let (n1, n2, n3) = (
        nodes[0].base.clone(),
        nodes[1].base.clone(),
        nodes[2].base.clone(),
    );
    let dir = nodes[1].data_dir.clone();
    let alice = mint(&n2, &id, &host, "speaker", "Alice").await;
    let bob = mint(&n3, &id, &host, "speaker", "Bob").await;
    const SPEAK_S: u32 = 70;
    let a = speaker(&[&n2, &n3], &id, &alice, 440, SPEAK_S);
    let b = speaker(&[&n3, &n2], &id, &bob, 660, SPEAK_S);
    wait_speakers(&n1, 2).await;

    // A hot standby is named and copies the space.
    let standing = eventually(HANG, async || {
        metric_or_zero(&n2, "tribune_cluster_standby_spaces").await
            + metric_or_zero(&n3, "tribune_cluster_standby_spaces").await
            == 1.0
            && metric_or_zero(&n2, "tribune_cluster_copy_records_total").await
                + metric_or_zero(&n3, "tribune_cluster_copy_records_total").await
                > 0.0
    })
    .await;
    assert!(standing, "one hot standby, copying");

    let until = Instant::now() + Duration::from_secs(45);
    let listener = reconnecting_listener(format!("{n3}/spaces/{id}/live.opus"), dir.clone(), until);
    // LL-HLS listeners through an edge whose upstreams are all three nodes.
    let (mut edge, edge_base) = edge_over(name, &[&n1, &n2, &n3]);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Seen::default()));
    let hls = hls_listeners(
        format!("{edge_base}/spaces/{id}/hls/live.m3u8"),
        3,
        until,
        seen.clone(),
    );
    tokio::time::sleep(Duration::from_secs(6)).await;

    let t_loss = Instant::now();
    let pid = nodes[0].child.id() as i32;
    match loss {
        Loss::Kill => nodes[0].kill9(),
        // SAFETY: a signal to our own child process.
        Loss::Freeze => assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0),
        // SAFETY: as above.
        Loss::Stop => assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0),
    }

    // Both speakers published again, through the nodes they were given, nobody acting: on
    // the standby, which took the space over by itself.
    let mut on = None;
    let back = eventually(HANG, async || {
        for (node, base) in [("n2", &n2), ("n3", &n3)] {
            if metric_or_zero(base, "tribune_speakers").await == 2.0 {
                on = Some((node, base.clone()));
                return true;
            }
        }
        false
    })
    .await;
    assert!(back, "both speakers are on a new owner");
    let t_back = Instant::now();
    let (new_owner, new_base) = on.expect("the new owner");
    let new_base = &new_base;
    let listed = eventually(HANG, async || {
        owner(&n2, &id, "n1").await.as_deref() == Some(new_owner)
    })
    .await;
    assert!(listed, "the cluster lists {new_owner} as running the space");
    assert_eq!(
        metric_or_zero(new_base, "tribune_cluster_takeovers_total").await,
        1.0
    );

    if loss == Loss::Stop {
        // A graceful stop: the node handed its space over and exited cleanly.
        let status = nodes[0].child.wait().expect("wait for n1");
        assert!(status.success(), "n1 stopped cleanly: {status}");
    }
    if loss == Loss::Freeze {
        // Thawed, the old owner finds its lease taken: it stops the space at once.
        // SAFETY: as above.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
        let stopped = eventually(HANG, async || {
            metric_or_zero(&n1, "tribune_cluster_demotions_total").await == 1.0
        })
        .await;
        assert!(stopped, "the thawed owner gave the space up");
        assert_eq!(metric_or_zero(&n1, "tribune_spaces_live").await, 0.0);
        // And serves it from its new owner, like any node.
        let (s, v) = api("GET", &format!("{n1}/api/spaces/{id}"), None, None).await;
        assert_eq!((s, v["state"].as_str()), (200, Some("live")), "{v}");
    }
    tokio::time::sleep(Duration::from_secs(8)).await;

    let (s, v) = api(
        "POST",
        &format!("{n3}/api/spaces/{id}/end"),
        Some(&host),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let length = t_create.elapsed().as_secs_f64();
    let heard = listener.join().expect("listener thread");
    let hls_reports = hls.await.expect("HLS listeners");
    edge.stop();
    {
        let seen = seen.lock().expect("seen");
        // No URL ever served two different bodies, across the loss.
        let twice: Vec<&String> = seen
            .bodies
            .iter()
            .filter(|(_, h)| h.len() > 1)
            .map(|(u, _)| u)
            .collect();
        assert!(twice.is_empty(), "URLs with two bodies: {twice:?}");
        // Audio again through the edge after the takeover.
        let after = seen.arrivals.iter().filter(|t| **t > t_back).count();
        assert!(
            after >= 3 * 5,
            "HLS media through the edge after the takeover: {after}"
        );
        let mut times = seen.arrivals.clone();
        times.sort();
        let stall = times
            .windows(2)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or_default();
        eprintln!(
            "failover ({name}): HLS through the edge: {} media objects, {} URLs, longest wait {:.1} s; (parts, gaps, errors) {:?}",
            seen.arrivals.len(),
            seen.bodies.len(),
            stall.as_secs_f64(),
            hls_reports
                .iter()
                .map(|r| (r.parts, r.msn_gaps, &r.errors))
                .collect::<Vec<_>>()
        );
    }
    for mut c in [a, b] {
        let _ = c.kill();
        let _ = c.wait();
    }

    // The listener heard both speakers again after the loss.
    let again = heard.iter().filter(|h| h.started > t_loss).any(|h| {
        analyze_wav(&h.wav).is_ok_and(|pcm| both_tones(&pcm, 0.0, pcm.len() as f64 / 48_000.0))
    });
    assert!(
        again,
        "the listener hears both speakers again ({} connections)",
        heard.len()
    );

    // One recording, whole, through any node.
    let rec = reqwest::get(format!("{n2}/spaces/{id}/recording.opus"))
        .await
        .expect("recording");
    assert_eq!(rec.status().as_u16(), 200);
    let path = dir.join("recording.opus");
    std::fs::write(&path, rec.bytes().await.expect("recording body")).expect("write");
    let (secs, clean, log) = ffmpeg_check(&path);
    assert!(clean, "the recording decodes without an error: {log}");
    // It started when the space was created (a little after t_create) and lasted to the end.
    assert!(
        (secs - length).abs() <= 1.5,
        "the recording lasts as long as the space: {secs:.2} s of {length:.2} s"
    );
    let pcm = ffmpeg_decode(&path);
    let at = |t: Instant| t.duration_since(t_create).as_secs_f64();
    assert!(
        both_tones(&pcm, at(t_loss) - 5.0, at(t_loss) - 0.5),
        "both speakers before the loss"
    );
    assert!(
        both_tones(&pcm, at(t_back) + 1.0, length - 1.0),
        "both speakers after the takeover"
    );
    let missing = ffmpeg_silence(&pcm);
    eprintln!(
        "failover ({name}): taken over by {new_owner}; both speakers back {:.1} s after the loss; \
         recording {secs:.2} s of {length:.2} s, {missing:.1} s of it silence",
        (t_back - t_loss).as_secs_f64()
    );
}

/// Seconds of digital silence in `pcm` (20 ms blocks with no sample above -60 dBFS).
fn ffmpeg_silence(pcm: &[f32]) -> f64 {
    pcm.chunks(960)
        .filter(|c| c.iter().all(|s| s.abs() < 0.001))
        .count() as f64
        * 0.02
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_owner_hands_the_space_to_its_standby() {
    lose_the_owner("failover-kill", Loss::Kill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_owner_loses_the_space_and_stops_when_it_thaws() {
    lose_the_owner("failover-freeze", Loss::Freeze).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_owner_hands_the_space_over() {
    lose_the_owner("failover-stop", Loss::Stop).await;
}
