//! `hls-serve`: LL-HLS parts and segments served per server CPU-second, tribune against nginx.
//!
//! One server, one space, one `tribune speak` tone. After a few segments exist, C keep-alive
//! HTTP/1.1 connections (spread over 127.x source addresses) request the parts and segments
//! listed in `live.m3u8` round robin, as fast as they can, for S seconds; a refresher re-reads the
//! playlist every 500 ms so the requests follow the live window (immutable objects of 1–8 KiB).
//! The server's CPU time comes from `/proc`. Then a plain nginx (one worker, `sendfile on`) serves
//! the same bodies from files in a temporary root (the segment files tribune wrote to its data
//! dir, the parts as fetched from tribune) under the same paths, and the same generator hits it:
//! nginx's CPU is its master plus worker.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;
use tribune_media::hls::validate;

use crate::harness::{SETUP_LIMIT, Server};
use crate::net;
use crate::procstat;
use crate::report::{self, f};

/// Arguments of `hls-serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The `tribune` binary to start.
    #[arg(long, default_value = "target/release/tribune")]
    server_bin: PathBuf,
    /// The nginx binary.
    #[arg(long, default_value = "/usr/sbin/nginx")]
    nginx_bin: PathBuf,
    /// Length of each measured window (tribune, then nginx), seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Keep-alive connections of the load generator.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Seconds the speaker talks before the load starts (so that a few segments exist).
    #[arg(long, default_value_t = 6)]
    warmup_seconds: u64,
    /// Seconds of the baseline (speaker on, no load) measured on the tribune server.
    #[arg(long, default_value_t = 3)]
    baseline_seconds: u64,
    /// Worker threads of the load generator.
    #[arg(long, default_value_t = 1)]
    pub client_threads: usize,
    /// Also write the result here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// One server under load.
#[derive(Debug, Clone, Serialize)]
pub struct Side {
    pub name: String,
    pub wall_seconds: f64,
    /// Responses with status 200 and the whole body, in the window.
    pub requests: u64,
    /// Other statuses (e.g. 404 for a part that left the window) in the window.
    pub non_200: u64,
    pub body_bytes: u64,
    pub requests_per_second: f64,
    /// CPU seconds of the server process(es) in the window.
    pub server_cpu_seconds: f64,
    pub server_cores: f64,
    pub requests_per_server_cpu_second: f64,
    /// The same with the server's idle baseline CPU (mixer and speaker) subtracted.
    pub requests_per_server_cpu_second_above_baseline: Option<f64>,
    pub baseline_cores: Option<f64>,
    pub client_cores: f64,
    /// Distinct objects requested, and their size range.
    pub objects: usize,
    pub min_bytes: usize,
    pub max_bytes: usize,
    pub mean_bytes: f64,
    /// Body bytes per request (the size mix actually served).
    pub bytes_per_request: f64,
    pub first_error: Option<String>,
}

/// Everything measured, as written to JSON.
#[derive(Debug, Serialize)]
pub struct Report {
    pub connections: usize,
    pub client_threads: usize,
    pub seconds: u64,
    pub loadavg_before: String,
    pub loadavg_after: String,
    pub nginx_version: String,
    pub tribune: Side,
    pub nginx: Side,
    /// tribune requests per CPU-second over nginx's.
    pub ratio: f64,
}

/// The objects requested: request bytes and expected body length.
#[derive(Debug, Clone)]
struct Object {
    path: String,
    request: Vec<u8>,
}

type ObjectList = Arc<Mutex<Arc<Vec<Object>>>>;

#[derive(Default)]
struct Counters {
    ok: AtomicU64,
    other: AtomicU64,
    bytes: AtomicU64,
}

/// Runs the benchmark.
pub async fn run(args: Args) -> Result<()> {
    ensure!(args.connections > 0, "--connections must be positive");
    let loadavg_before = loadavg();
    let server = Server::start(&args.server_bin, &[])?;
    let space = server.create_space("hls-serve").await?;
    let run_bound = SETUP_LIMIT.as_secs() + args.warmup_seconds + 3 * args.seconds + 60;
    let _speaker = server.speak(&space, "tone", 440, run_bound).await?;
    server.wait_metric("tribune_speakers", 1.0).await?;
    eprintln!("speaker on; waiting {} s for segments", args.warmup_seconds);
    tokio::time::sleep(Duration::from_secs(args.warmup_seconds)).await;

    let hls = format!("/spaces/{}/hls/", space.id);
    let http = reqwest::Client::new();
    let playlist_url = format!("{}{hls}live.m3u8", server.base);
    let objects: ObjectList = Arc::new(Mutex::new(Arc::new(
        listed(&http, &playlist_url, &hls).await?,
    )));
    ensure!(
        !objects.lock().expect("not poisoned").is_empty(),
        "live.m3u8 lists nothing"
    );

    let pid = server.pid();
    eprintln!("baseline: {} s", args.baseline_seconds);
    let baseline = procstat::watch(pid, Duration::from_secs(args.baseline_seconds), || {}).await?;

    // Follow the live window while the load runs.
    let stop_refresh = Arc::new(AtomicBool::new(false));
    let refresher = {
        let (http, url, hls, objects, stop) = (
            http.clone(),
            playlist_url.clone(),
            hls.clone(),
            objects.clone(),
            stop_refresh.clone(),
        );
        tokio::spawn(async move {
            while !stop.load(Relaxed) {
                tokio::time::sleep(Duration::from_millis(500)).await;
                if let Ok(list) = listed(&http, &url, &hls).await
                    && !list.is_empty()
                {
                    *objects.lock().expect("not poisoned") = Arc::new(list);
                }
            }
        })
    };
    eprintln!(
        "tribune: {} connections for {} s",
        args.connections, args.seconds
    );
    let mut tribune = hammer(
        "tribune",
        server.http_addr,
        &objects,
        &[pid],
        args.connections,
        args.seconds,
    )
    .await?;
    stop_refresh.store(true, Relaxed);
    let _ = refresher.await;
    tribune.baseline_cores = Some(baseline.cores);
    let above = tribune.server_cpu_seconds - baseline.cores * tribune.wall_seconds;
    tribune.requests_per_server_cpu_second_above_baseline =
        (above > 0.0).then(|| tribune.requests as f64 / above);

    // The bodies of the objects listed now, as files under the same paths.
    let last = objects.lock().expect("not poisoned").clone();
    let root = std::env::temp_dir().join(format!("tribune-bench-nginx-{}", std::process::id()));
    let _cleanup = RemoveDir(root.clone());
    let www = root.join("www");
    let seg_dir = server.data_dir().join("hls").join(&space.id);
    let mut copied = 0;
    for o in last.iter() {
        let url = format!("{}{}", server.base, o.path);
        let body = http
            .get(&url)
            .send()
            .await?
            .error_for_status()
            .with_context(|| format!("GET {url}"))?
            .bytes()
            .await?;
        let dest = www.join(o.path.trim_start_matches('/'));
        std::fs::create_dir_all(dest.parent().context("no parent")?)?;
        // Segments: the file tribune wrote (checked to be the bytes it serves).
        let name = dest.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let disk = seg_dir.join(name);
        if o.path.contains("/seg/") && disk.exists() {
            let on_disk = std::fs::read(&disk)?;
            ensure!(
                on_disk == body.as_ref(),
                "{} differs from {url}",
                disk.display()
            );
            std::fs::copy(&disk, &dest)?;
            copied += 1;
        } else {
            std::fs::write(&dest, &body)?;
        }
    }
    eprintln!(
        "nginx root: {} objects ({} segment files copied from the data dir)",
        last.len(),
        copied
    );
    let nginx = Nginx::start(&args.nginx_bin, &root, &www, args.connections)?;
    let mut pids = vec![nginx.pid()];
    pids.extend(nginx.workers()?);
    ensure!(pids.len() >= 2, "no nginx worker found");
    let fixed: ObjectList = Arc::new(Mutex::new(last));
    eprintln!(
        "nginx: {} connections for {} s",
        args.connections, args.seconds
    );
    let nginx_side = hammer(
        "nginx",
        nginx.addr,
        &fixed,
        &pids,
        args.connections,
        args.seconds,
    )
    .await?;
    drop(nginx);

    let report = Report {
        connections: args.connections,
        client_threads: args.client_threads,
        seconds: args.seconds,
        loadavg_before,
        loadavg_after: loadavg(),
        nginx_version: nginx_version(&args.nginx_bin),
        ratio: tribune.requests_per_server_cpu_second / nginx_side.requests_per_server_cpu_second,
        tribune,
        nginx: nginx_side,
    };
    print(&report);
    report::json(args.json.as_deref(), &report)
}

/// Paths of the parts and segments listed in the playlist at `url`, as request bytes.
async fn listed(http: &reqwest::Client, url: &str, hls: &str) -> Result<Vec<Object>> {
    let text = http
        .get(url)
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    let p = validate::parse(&text).map_err(|e| anyhow::anyhow!("{url}: {e}"))?;
    let mut uris = Vec::new();
    for s in &p.segments {
        uris.extend(s.parts.iter().map(|p| p.uri.clone()));
        uris.push(s.uri.clone());
    }
    uris.extend(p.trailing_parts.iter().map(|p| p.uri.clone()));
    Ok(uris
        .into_iter()
        .map(|u| {
            let path = format!("{hls}{u}");
            Object {
                request: net::get_request(&path),
                path,
            }
        })
        .collect())
}

/// C connections requesting `objects` round robin for `seconds` (after one second of warm-up);
/// `pids` are the server's processes, whose CPU is summed.
async fn hammer(
    name: &str,
    addr: SocketAddr,
    objects: &ObjectList,
    pids: &[u32],
    connections: usize,
    seconds: u64,
) -> Result<Side> {
    let counters = Arc::new(Counters::default());
    let sizes = Arc::new(Mutex::new(
        std::collections::BTreeMap::<String, usize>::new(),
    ));
    let first_error = Arc::new(Mutex::new(None::<String>));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = JoinSet::new();
    for i in 0..connections {
        let (counters, objects, first_error, stop, sizes) = (
            counters.clone(),
            objects.clone(),
            first_error.clone(),
            stop.clone(),
            sizes.clone(),
        );
        tasks.spawn(async move {
            if let Err(e) = client(i, connections, addr, &objects, &counters, &stop, &sizes).await {
                first_error
                    .lock()
                    .expect("not poisoned")
                    .get_or_insert(format!("{e:#}"));
            }
        });
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let tps = procstat::clock_ticks_per_second();
    let cpu = |pids: &[u32]| -> Result<f64> {
        pids.iter()
            .map(|&p| Ok(procstat::sample(p, tps)?.cpu.as_secs_f64()))
            .sum()
    };
    let (ok0, other0, bytes0) = (
        counters.ok.load(Relaxed),
        counters.other.load(Relaxed),
        counters.bytes.load(Relaxed),
    );
    let cpu0 = cpu(pids)?;
    let own0 = procstat::sample(std::process::id(), tps)?;
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let (ok1, other1, bytes1) = (
        counters.ok.load(Relaxed),
        counters.other.load(Relaxed),
        counters.bytes.load(Relaxed),
    );
    let cpu1 = cpu(pids)?;
    let own1 = procstat::sample(std::process::id(), tps)?;
    let wall = t0.elapsed().as_secs_f64();
    stop.store(true, Relaxed);
    tasks.shutdown().await;

    let requests = ok1 - ok0;
    let server_cpu = cpu1 - cpu0;
    let sizes = sizes.lock().expect("not poisoned");
    let n = sizes.len().max(1);
    Ok(Side {
        name: name.into(),
        wall_seconds: wall,
        requests,
        non_200: other1 - other0,
        body_bytes: bytes1 - bytes0,
        requests_per_second: requests as f64 / wall,
        server_cpu_seconds: server_cpu,
        server_cores: server_cpu / wall,
        requests_per_server_cpu_second: requests as f64 / server_cpu,
        requests_per_server_cpu_second_above_baseline: None,
        baseline_cores: None,
        client_cores: (own1.cpu - own0.cpu).as_secs_f64() / wall,
        objects: sizes.len(),
        min_bytes: sizes.values().copied().min().unwrap_or(0),
        max_bytes: sizes.values().copied().max().unwrap_or(0),
        mean_bytes: sizes.values().sum::<usize>() as f64 / n as f64,
        bytes_per_request: (bytes1 - bytes0) as f64 / requests.max(1) as f64,
        first_error: first_error.lock().expect("not poisoned").clone(),
    })
}

/// One keep-alive connection: request, read the whole response, next object; reconnects if the
/// server closes.
async fn client(
    i: usize,
    connections: usize,
    addr: SocketAddr,
    objects: &ObjectList,
    counters: &Counters,
    stop: &AtomicBool,
    sizes: &Mutex<std::collections::BTreeMap<String, usize>>,
) -> Result<()> {
    let mut k = i;
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut stream = net::connect(i, addr).await?;
    while !stop.load(Relaxed) {
        let list = objects.lock().expect("not poisoned").clone();
        let o = &list[k % list.len()];
        k += connections;
        if stream.write_all(&o.request).await.is_err() {
            // The server closed a kept-alive connection: open another.
            stream = net::connect(i, addr).await?;
            continue;
        }
        buf.clear();
        let head = net::read_head(&mut stream, &mut buf).await?;
        ensure!(!head.chunked, "{}: chunked response", o.path);
        let len = head.content_length.context("no Content-Length")?;
        while buf.len() < head.len + len {
            if stream.read_buf(&mut buf).await? == 0 {
                bail!("{}: connection closed in the body", o.path);
            }
        }
        ensure!(buf.len() == head.len + len, "unexpected bytes after a body");
        if head.status == 200 {
            counters.ok.fetch_add(1, Relaxed);
            counters.bytes.fetch_add(len as u64, Relaxed);
            let mut sizes = sizes.lock().expect("not poisoned");
            if !sizes.contains_key(&o.path) {
                sizes.insert(o.path.clone(), len);
            }
        } else {
            counters.other.fetch_add(1, Relaxed);
        }
    }
    Ok(())
}

/// A plain nginx on a loopback port, stopped (TERM, then wait) on drop.
struct Nginx {
    child: Child,
    addr: SocketAddr,
}

impl Nginx {
    fn start(bin: &Path, prefix: &Path, www: &Path, connections: usize) -> Result<Nginx> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let p = prefix.display();
        let conf = format!(
            "worker_processes 1;\n\
             daemon off;\n\
             pid {p}/nginx.pid;\n\
             error_log {p}/error.log warn;\n\
             events {{ worker_connections {wc}; }}\n\
             http {{\n\
             \x20 access_log off;\n\
             \x20 sendfile on;\n\
             \x20 tcp_nopush on;\n\
             \x20 keepalive_requests 100000;\n\
             \x20 keepalive_timeout 65;\n\
             \x20 types {{ video/iso.segment m4s; video/mp4 mp4; }}\n\
             \x20 default_type application/octet-stream;\n\
             \x20 client_body_temp_path {p}/tmp-body;\n\
             \x20 proxy_temp_path {p}/tmp-proxy;\n\
             \x20 fastcgi_temp_path {p}/tmp-fastcgi;\n\
             \x20 uwsgi_temp_path {p}/tmp-uwsgi;\n\
             \x20 scgi_temp_path {p}/tmp-scgi;\n\
             \x20 server {{ listen 127.0.0.1:{port}; root {www}; }}\n\
             }}\n",
            wc = connections + 64,
            www = www.display(),
        );
        let conf_path = prefix.join("nginx.conf");
        std::fs::write(&conf_path, conf)?;
        let child = Command::new(bin)
            .arg("-p")
            .arg(prefix)
            .arg("-c")
            .arg(&conf_path)
            .arg("-e")
            .arg(prefix.join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut nginx = Nginx {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            if std::net::TcpStream::connect(nginx.addr).is_ok() && !nginx.workers()?.is_empty() {
                return Ok(nginx);
            }
            if let Some(status) = nginx.child.try_wait()? {
                let log = std::fs::read_to_string(prefix.join("error.log")).unwrap_or_default();
                bail!("nginx exited ({status}): {log}");
            }
            if Instant::now() > end {
                bail!("nginx did not start listening");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Processes whose parent is the master.
    fn workers(&self) -> Result<Vec<u32>> {
        let master = self.pid();
        let mut out = Vec::new();
        for entry in std::fs::read_dir("/proc")? {
            let entry = entry?;
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                continue;
            };
            // Fields: state, ppid, ...
            if rest.split_whitespace().nth(1) == Some(&master.to_string()) {
                out.push(pid);
            }
        }
        Ok(out)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let workers = self.workers().unwrap_or_default();
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        for w in workers {
            let _ = Command::new("kill")
                .args(["-KILL", &w.to_string()])
                .status();
        }
    }
}

/// Removes a directory on drop.
struct RemoveDir(PathBuf);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `/proc/loadavg`, first three fields.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn nginx_version(bin: &Path) -> String {
    Command::new(bin)
        .arg("-v")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_owned())
        .unwrap_or_default()
}

fn print(r: &Report) {
    let (t, n) = (&r.tribune, &r.nginx);
    println!(
        "\n### hls-serve: {} connections, {} client thread(s), {} s each\n",
        r.connections, r.client_threads, r.seconds
    );
    println!("| metric | tribune (memory) | nginx (files, sendfile) |");
    println!("|---|---:|---:|");
    let row = |k: &str, a: String, b: String| println!("| {k} | {a} | {b} |");
    row(
        "objects (parts + segments), bytes min–max (mean)",
        format!(
            "{}, {}–{} ({})",
            t.objects,
            t.min_bytes,
            t.max_bytes,
            f(t.mean_bytes, 0)
        ),
        format!(
            "{}, {}–{} ({})",
            n.objects,
            n.min_bytes,
            n.max_bytes,
            f(n.mean_bytes, 0)
        ),
    );
    row(
        "body bytes per request",
        f(t.bytes_per_request, 0),
        f(n.bytes_per_request, 0),
    );
    row(
        "requests (200)",
        t.requests.to_string(),
        n.requests.to_string(),
    );
    row("non-200", t.non_200.to_string(), n.non_200.to_string());
    row(
        "requests/s",
        f(t.requests_per_second, 0),
        f(n.requests_per_second, 0),
    );
    row("server cores", f(t.server_cores, 3), f(n.server_cores, 3));
    row(
        "**requests per server CPU-second**",
        f(t.requests_per_server_cpu_second, 0),
        f(n.requests_per_server_cpu_second, 0),
    );
    row(
        "… above tribune's idle baseline",
        format!(
            "{} (baseline {} cores)",
            t.requests_per_server_cpu_second_above_baseline
                .map(|x| f(x, 0))
                .unwrap_or("-".into()),
            t.baseline_cores.map(|x| f(x, 3)).unwrap_or_default()
        ),
        "-".into(),
    );
    row(
        "load generator cores",
        f(t.client_cores, 3),
        f(n.client_cores, 3),
    );
    println!(
        "\nratio tribune / nginx (per CPU-second): {}",
        f(r.ratio, 2)
    );
    println!(
        "load average before / after: {} / {}",
        r.loadavg_before, r.loadavg_after
    );
    for s in [t, n] {
        if let Some(e) = &s.first_error {
            println!("{} first client error: {e}", s.name);
        }
    }
}
