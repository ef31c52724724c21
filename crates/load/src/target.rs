//! Setting up what is loaded: a `tribune serve` started on loopback (`--spawn`), a space created
//! on a running server (`--create`) or named (`--space`), or a raw Ogg stream or HLS playlist;
//! then the speakers' tokens and the URLs every listener uses.

use anyhow::{Context, Result, bail, ensure};
use reqwest::Url;
use serde_json::{Value, json};

use crate::config::{Args, Mix};
use crate::harness;
use crate::plan::{EventsTarget, HttpTarget};

/// A set-up target.
pub struct Target {
    /// The server started by `--spawn` (stopped when dropped).
    pub spawned: Option<harness::Server>,
    /// `http://HOST:PORT` of the tribune server, if one.
    pub base: Option<String>,
    /// The space, if one.
    pub space: Option<String>,
    /// Created by this run (so ended at its end, unless the server was spawned).
    pub created: bool,
    /// The operator key in use.
    pub key: Option<String>,
    /// The Ogg stream.
    pub ogg: Option<HttpTarget>,
    /// The HLS media playlist.
    pub hls: Option<String>,
    /// The event stream.
    pub events: Option<EventsTarget>,
    /// The WHIP endpoint and a token per speaker.
    pub speakers: Vec<(String, String)>,
    /// The process to watch.
    pub server_pid: Option<u32>,
    /// What listeners listen over.
    pub mix: Mix,
    /// A description for the report.
    pub describe: String,
}

/// Sets up the target `args` name.
pub async fn setup(args: &Args) -> Result<Target> {
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()?;
    let mut t = Target {
        spawned: None,
        base: None,
        space: None,
        created: false,
        key: args.admin_key.clone(),
        ogg: None,
        hls: None,
        events: None,
        speakers: Vec::new(),
        server_pid: args.server_pid,
        mix: args.mix.unwrap_or(Mix::OGG),
        describe: String::new(),
    };
    if args.ogg_url.is_some() || args.hls_url.is_some() {
        ensure!(
            args.events == 0,
            "--events needs a tribune space (--space or --create)"
        );
        if let Some(u) = &args.ogg_url {
            t.ogg = Some(HttpTarget::resolve(u).await?);
        }
        if let Some(u) = &args.hls_url {
            t.hls = Some(media_playlist(&http, u).await?);
        }
        if args.mix.is_none() && t.ogg.is_none() {
            t.mix = Mix::HLS;
        }
        t.describe = [args.ogg_url.as_deref(), args.hls_url.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" + ");
    } else {
        let base = if args.spawn {
            let key = args
                .admin_key
                .clone()
                .unwrap_or_else(|| format!("tribune-loadtest-{}", crate::procs::unix_ms()));
            let bin = match &args.server_bin {
                Some(b) => b.clone(),
                None => std::env::current_exe().context("finding this executable")?,
            };
            let server = harness::Server::start_with_key(&bin, &key, &args.serve_arg)?;
            t.server_pid = Some(server.pid());
            t.key = Some(key);
            let base = server.base.clone();
            t.spawned = Some(server);
            base
        } else {
            args.url.trim_end_matches('/').to_owned()
        };
        let host_token = if args.spawn || args.create {
            let key = t.key.clone().context("--create needs --admin-key")?;
            let v = post(
                &http,
                &format!("{base}/api/spaces"),
                &key,
                json!({"title": "loadtest"}),
            )
            .await?;
            t.space = Some(field(&v, "id")?);
            t.created = true;
            Some(field(&v, "host_token")?)
        } else {
            t.space =
                Some(args.space.clone().context(
                    "name a target: --space ID, --create, --spawn, --ogg-url or --hls-url",
                )?);
            None
        };
        let space = t.space.clone().unwrap_or_default();
        t.ogg = Some(HttpTarget::resolve(&format!("{base}/spaces/{space}/live.opus")).await?);
        t.hls = Some(format!("{base}/spaces/{space}/hls/live.m3u8"));
        let url = Url::parse(&base).context("--url")?;
        let host = url.host_str().context("--url has no host")?;
        let addr = crate::plan::loopback(host, url.port_or_known_default().unwrap_or(80)).await?;
        t.events = Some(EventsTarget {
            base: base.clone(),
            addr,
            space: space.clone(),
        });
        t.speakers = speakers(&http, args, &base, &space, t.key.as_deref(), host_token).await?;
        t.describe = format!("{base}/spaces/{space}");
        t.base = Some(base);
    }
    ensure!(
        t.mix.ogg == 0 || t.ogg.is_some(),
        "the mix has Ogg listeners but there is no Ogg target (--ogg-url)"
    );
    ensure!(
        t.mix.hls == 0 || t.hls.is_some(),
        "the mix has HLS listeners but there is no HLS target (--hls-url)"
    );
    Ok(t)
}

impl Target {
    /// Ends a space this run created on a server it did not start.
    pub async fn end(&self) -> Result<()> {
        if !self.created || self.spawned.is_some() {
            return Ok(());
        }
        let (Some(base), Some(space), Some(key)) = (&self.base, &self.space, &self.key) else {
            return Ok(());
        };
        let http = reqwest::Client::new();
        post(
            &http,
            &format!("{base}/api/spaces/{space}/end"),
            key,
            json!({}),
        )
        .await?;
        Ok(())
    }
}

/// A token per speaker: the given ones, else minted with the operator key or the host token.
async fn speakers(
    http: &reqwest::Client,
    args: &Args,
    base: &str,
    space: &str,
    key: Option<&str>,
    host_token: Option<String>,
) -> Result<Vec<(String, String)>> {
    let count = args
        .speakers
        .unwrap_or(if args.create || args.spawn { 1 } else { 0 })
        .max(args.tokens.len());
    let whip = format!("{base}/api/spaces/{space}/whip");
    let mut out: Vec<(String, String)> = args
        .tokens
        .iter()
        .map(|t| (whip.clone(), t.clone()))
        .collect();
    let auth = key.map(str::to_owned).or(host_token);
    for i in out.len()..count {
        let Some(auth) = &auth else {
            bail!("speakers need tokens: --admin-key (to mint them) or --token");
        };
        let v = post(
            http,
            &format!("{base}/api/spaces/{space}/tokens"),
            auth,
            json!({"role": "speaker", "name": format!("load speaker {}", i + 1)}),
        )
        .await?;
        out.push((whip.clone(), field(&v, "token")?));
    }
    Ok(out)
}

/// The media playlist of `url`: the first variant of a multivariant playlist, else itself.
async fn media_playlist(http: &reqwest::Client, url: &str) -> Result<String> {
    let u = Url::parse(url).with_context(|| format!("bad URL {url:?}"))?;
    let host = u.host_str().context("no host")?;
    crate::plan::loopback(host, u.port_or_known_default().unwrap_or(80)).await?;
    let text = http
        .get(url)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?
        .error_for_status()?
        .text()
        .await?;
    if !text.contains("#EXT-X-STREAM-INF") {
        return Ok(url.to_owned());
    }
    let variant = text
        .lines()
        .skip_while(|l| !l.starts_with("#EXT-X-STREAM-INF"))
        .skip(1)
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .context("a multivariant playlist without a variant URI")?;
    Ok(u.join(variant)?.to_string())
}

async fn post(http: &reqwest::Client, url: &str, auth: &str, body: Value) -> Result<Value> {
    let resp = http
        .post(url)
        .bearer_auth(auth)
        .json(&body)
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    ensure!(status.is_success(), "POST {url}: {status}: {text}");
    if text.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&text).with_context(|| format!("POST {url}: not JSON: {text}"))
}

fn field(v: &Value, k: &str) -> Result<String> {
    v[k].as_str()
        .map(str::to_owned)
        .with_context(|| format!("no {k} in {v}"))
}
