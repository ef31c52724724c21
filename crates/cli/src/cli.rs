//! Command-line parsing and the commands: `serve`, `demo`, `speak`, `listen`, `plan`,
//! `loadtest`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use tribune_client::{listen, speak};
use tribune_server::{Args, Config, Server};

/// Print a line to stdout, ignoring a closed pipe (`tribune listen … | head` must not panic).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod demo;
mod plan;

/// tribune: live audio rooms that start on time and stay on air.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server.
    Serve(Args),
    /// Run the server with a live demo space (`demo`) and two built-in speakers taking turns.
    Demo(Args),
    /// Publish audio to a WHIP endpoint (any WHIP server) and save what comes back.
    Speak(SpeakArgs),
    /// Decode a live Ogg/Opus stream to a WAV file and report on its framing.
    Listen(ListenArgs),
    /// The fleet an audience needs (edges, origins, egress, join rate), from measured figures.
    Plan(plan::PlanArgs),
    /// Load a space (or an Icecast stream, or an HLS playlist) with simulated listeners.
    Loadtest(Box<tribune_load::Args>),
}

#[derive(Debug, clap::Args)]
struct SpeakArgs {
    /// WHIP endpoint URL, e.g. http://127.0.0.1:8080/api/spaces/demo/whip. Give it again for
    /// other nodes of a cluster: with --reconnect they are tried in turn.
    #[arg(long, required = true)]
    whip: Vec<String>,
    /// Publish again by itself when the session fails or is lost (back-off 0.25 s doubling
    /// to 2 s, jittered), through each --whip in turn, until --seconds end or Ctrl-C.
    #[arg(long)]
    reconnect: bool,
    /// Bearer token (a speaker or host token of the space).
    #[arg(long, env = "TRIBUNE_TOKEN")]
    token: Option<String>,
    /// Send a sine tone of this frequency (Hz).
    #[arg(long, conflicts_with_all = ["file", "voice"])]
    tone: Option<f32>,
    /// Send a synthetic talking voice with this fundamental (Hz).
    #[arg(long, conflicts_with = "file")]
    voice: Option<f32>,
    /// Send a WAV file (any rate and channels).
    #[arg(long)]
    file: Option<PathBuf>,
    /// Loop the WAV file.
    #[arg(long)]
    r#loop: bool,
    /// Save what we hear (the mix-minus) as a WAV file.
    #[arg(long)]
    record: Option<PathBuf>,
    /// Stop after this many seconds (default: until Ctrl-C).
    #[arg(long)]
    seconds: Option<f64>,
    /// Offer sendonly (hear nothing back), as OBS or GStreamer do.
    #[arg(long)]
    send_only: bool,
    /// Local IP for the UDP socket (our ICE candidate).
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Opus bitrate, bits/s.
    #[arg(long, default_value_t = 32_000)]
    bitrate: u32,
}

#[derive(Debug, clap::Args)]
struct ListenArgs {
    /// Stream URL, e.g. http://127.0.0.1:8080/spaces/demo/live.opus
    #[arg(long)]
    url: String,
    /// Stop after this many seconds (default: until the stream ends or Ctrl-C).
    #[arg(long)]
    seconds: Option<f64>,
    /// Write the decoded audio here (48 kHz mono WAV).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Entry point.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Listeners are connections: take every file descriptor the hard limit allows.
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        eprintln!("warning: cannot raise the open-file limit: {e}");
    }
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logs(filter: &str) {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| filter.to_owned());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .try_init();
}

async fn ctrl_c() {
    let _ = tokio::signal::ctrl_c().await;
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return ctrl_c().await,
            };
        tokio::select! {
            _ = ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    ctrl_c().await;
}

async fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => {
            let cfg = args.resolve()?;
            init_logs(&cfg.log);
            serve(cfg, args.admin_key.is_none()).await
        }
        Command::Demo(args) => {
            let cfg = args.resolve()?;
            init_logs(&cfg.log);
            demo::run(cfg).await
        }
        Command::Speak(a) => {
            init_logs("info");
            speak_cmd(a).await
        }
        Command::Listen(a) => {
            init_logs("warn");
            listen_cmd(a).await
        }
        Command::Plan(a) => plan::run(&a).map(|()| ExitCode::SUCCESS),
        Command::Loadtest(a) => {
            init_logs("warn");
            let exec = tribune_load::Exec::current(&["loadtest"])?;
            tribune_load::run(*a, exec).await.map(|_| ExitCode::SUCCESS)
        }
    }
}

async fn serve(cfg: Config, print_key: bool) -> Result<ExitCode> {
    let key = cfg.admin_key.clone();
    let server = Server::bind(cfg).await.context("binding the server")?;
    say!(
        "tribune listening on http://{} (media on udp {})",
        server.http_addr,
        server.udp_addr
    );
    if let Some(tls) = server.tls_addr {
        say!("tribune listening on https://{tls}");
    }
    if let Some(control) = server.control_addr {
        say!("tribune control on http://{control}");
    }
    if print_key {
        say!("operator key: {key}");
    }
    server.serve(shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

fn seconds(s: Option<f64>) -> Result<Option<Duration>> {
    s.map(|s| Duration::try_from_secs_f64(s).context("--seconds must be a non-negative number"))
        .transpose()
}

async fn speak_cmd(a: SpeakArgs) -> Result<ExitCode> {
    let source = match (a.tone, a.voice, a.file) {
        (Some(hz), _, _) => speak::Source::Tone { hz },
        (_, Some(hz), _) => speak::Source::Voice {
            fundamental_hz: hz,
            seed: 1,
        },
        (_, _, Some(p)) => speak::Source::Wav(p),
        _ => speak::Source::Tone { hz: 440.0 },
    };
    let mut urls = a.whip.into_iter();
    let whip_url = urls.next().unwrap_or_default();
    let opts = speak::Options {
        whip_url,
        reconnect: a.reconnect,
        more_urls: urls.collect(),
        token: a.token,
        source,
        record: a.record,
        duration: seconds(a.seconds)?,
        send_only: a.send_only,
        bind: a.bind,
        bitrate: a.bitrate,
        loop_wav: a.r#loop,
    };
    let report = speak::run(opts, ctrl_c()).await?;
    say!(
        "sent {} packets, received {} packets ({} lost), session {}",
        report.sent_packets,
        report.received_packets,
        report.lost_packets,
        report.session_url
    );
    Ok(ExitCode::SUCCESS)
}

async fn listen_cmd(a: ListenArgs) -> Result<ExitCode> {
    let opts = listen::Options {
        url: a.url,
        duration: seconds(a.seconds)?,
        out: a.out,
    };
    let r = listen::run(opts, ctrl_c()).await?;
    say!(
        "{}",
        serde_json::json!({
            "status": r.status,
            "content_type": r.content_type,
            "bytes": r.bytes,
            "pages": r.pages,
            "audio_packets": r.audio_packets,
            "samples": r.samples,
            "seq_gaps": r.seq_gaps,
            "granule_gaps": r.granule_gaps,
            "crc_errors": r.crc_errors,
            "decode_errors": r.decode_errors,
            "first_granule": r.first_granule,
            "header_ok": r.header_ok,
            "body_error": r.body_error,
        })
    );
    Ok(if r.status == 200 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
