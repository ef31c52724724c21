//! `tribune demo`: a server with a live space `demo` in which two built-in synthetic speakers take
//! turns, publishing through the same WHIP path as real speakers.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use tribune_client::speak;
use tribune_server::auth::Role;
use tribune_server::{Config, Server};

/// The demo's speakers: display name and voice fundamental (Hz).
const VOICES: [(&str, f32); 2] = [("Ada", 220.0), ("Ben", 330.0)];

/// How long each demo speaker talks before the other takes over.
const TURN: Duration = Duration::from_secs(4);

/// Run the demo until Ctrl-C.
pub async fn run(cfg: Config) -> Result<ExitCode> {
    let key = cfg.admin_key.clone();
    let server = Server::bind(cfg).await.context("binding the server")?;
    let app = server.app.clone();
    let base = format!("http://{}", server.http_addr);
    let https = server.tls_addr.map(|a| format!("https://{a}"));
    // A `demo` space left by an earlier run (same data directory) gives way to a fresh one.
    if let Some(old) = app.spaces.remove("demo") {
        old.end();
        // Its threads finish first: the new space continues the old one's HLS numbering (one
        // URL, one object, for every edge that cached the old demo), so the old journal must
        // be complete before the new space reads it.
        let joined = old.clone();
        let _ = tokio::task::spawn_blocking(move || joined.join()).await;
        // Through the writer, so it lands after the old space's last writes.
        app.writer.run(|s| s.delete_space("demo"));
    }
    let created = app
        .create_space(
            Some("demo"),
            "tribune demo",
            "Two synthetic speakers taking turns",
            "Demo host",
            None,
        )
        .context("creating the demo space")?;
    let id = created.space.id.clone();
    let whip = format!("{base}/api/spaces/{id}/whip");
    let live = format!("{base}/spaces/{id}/live.opus");
    let (guest_token, _) = app.mint(&id, "guest", "Guest", Role::Speaker);

    let server_task = tokio::spawn(server.serve(super::shutdown_signal()));

    for (i, (name, hz)) in VOICES.iter().enumerate() {
        let (token, _) = app.mint(
            &id,
            &format!("demo-{}", name.to_lowercase()),
            name,
            Role::Speaker,
        );
        let opts = speak::Options {
            token: Some(token),
            source: speak::Source::Turns {
                fundamental_hz: *hz,
                seed: i as u64 + 1,
                turn: i as u32,
                turns: VOICES.len() as u32,
                slot: TURN,
            },
            ..speak::Options::new(whip.clone())
        };
        tokio::spawn(keep_speaking(opts, name));
    }

    say!("listen: {live}");
    say!("ffplay: ffplay -nodisp {live}");
    say!("mpv: mpv {live}");
    say!("curl: curl -sN {live} -o demo-live.opus");
    say!("hls: ffplay -nodisp {base}/spaces/{id}/hls/index.m3u8");
    say!("recording: {base}/spaces/{id}/recording.opus");
    say!("space: {base}/api/spaces/{id}");
    say!("web: {base}/spaces/{id}  (all spaces: {base}/)");
    say!("host page: {base}/spaces/{id}#token={}", created.host_token);
    if let Some(https) = https {
        say!("https: {https}/spaces/{id}  (the web app in a secure context)");
    }
    say!("operator key: {key}");
    say!("speaker token: {guest_token}");
    say!("speak: tribune speak --whip {whip} --token {guest_token} --tone 550");
    server_task.await??;
    Ok(ExitCode::SUCCESS)
}

/// A built-in speaker: publish over WHIP, and reconnect after a pause if the session drops.
async fn keep_speaking(opts: speak::Options, name: &'static str) {
    loop {
        match speak::run(opts.clone(), std::future::pending::<()>()).await {
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(speaker = name, error = %e, "demo speaker dropped; reconnecting");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
}
