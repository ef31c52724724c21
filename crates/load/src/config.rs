//! The command line of `tribune loadtest`: one clap struct, also written into the JSON report
//! (secrets left out).

use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where Debian's fonts-dejavu-core puts the font the chart's text uses.
pub const DEFAULT_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// Load a tribune space (or any Icecast Ogg stream or HLS playlist) with simulated listeners,
/// speakers and event-stream subscribers, on loopback. Every run stops by itself.
#[derive(Debug, Clone, clap::Args, Serialize, Deserialize)]
#[command(
    after_help = "Example: tribune loadtest --spawn --listeners 18000 --ramp 1000 --hold 30 --procs 2 \
                  --json run.json --png run.png"
)]
pub struct Args {
    /// The tribune server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// The space to load (its live.opus, LL-HLS and event stream).
    #[arg(long, conflicts_with = "create")]
    pub space: Option<String>,
    /// Create a space (needs --admin-key) and start a tone speaker in it.
    #[arg(long)]
    pub create: bool,
    /// Start `tribune serve` on loopback with a temporary data dir (implies --create).
    #[arg(long, conflicts_with_all = ["space", "ogg_url", "hls_url"])]
    pub spawn: bool,
    /// An option for the server --spawn starts, e.g. `--serve-arg=--max-listeners=3000`
    /// (repeatable).
    #[arg(long, allow_hyphen_values = true)]
    pub serve_arg: Vec<String>,
    /// The binary --spawn starts [default: this executable].
    #[arg(long)]
    pub server_bin: Option<PathBuf>,
    /// Operator key: creates the space and mints speaker tokens.
    #[arg(long, env = "TRIBUNE_ADMIN_KEY", hide_env_values = true)]
    #[serde(skip_serializing)]
    pub admin_key: Option<String>,
    /// Speaker tokens to publish with, instead of minting them (repeat or comma-separate).
    #[arg(long = "token", value_delimiter = ',')]
    #[serde(skip_serializing, default)]
    pub tokens: Vec<String>,
    /// A raw Ogg stream instead of a space, e.g. Icecast's http://127.0.0.1:8000/stream.opus
    #[arg(long, conflicts_with_all = ["space", "create"])]
    pub ogg_url: Option<String>,
    /// A raw HLS playlist instead of a space (multivariant or media), e.g. served by nginx.
    #[arg(long, conflicts_with_all = ["space", "create"])]
    pub hls_url: Option<String>,
    /// Listeners to simulate.
    #[arg(long, default_value_t = 100)]
    pub listeners: usize,
    /// Share of listeners per protocol, in percent: `ogg=70,hls=30` [default: all on the one
    /// target given, Ogg for a space].
    #[arg(long)]
    pub mix: Option<Mix>,
    /// Listener joins per second, paced evenly.
    #[arg(long, default_value_t = 1000.0)]
    pub ramp: f64,
    /// Seconds to hold every listener after the ramp.
    #[arg(long, default_value_t = 30.0)]
    pub hold: f64,
    /// Hard bound on the run, seconds from the first join: every task stops by then.
    #[arg(long, default_value_t = 600.0)]
    pub max_seconds: f64,
    /// A listener without audio this long after it started connecting never joined, seconds
    /// (also: a joined listener silent this long has stalled).
    #[arg(long, default_value_t = 10.0)]
    pub join_timeout: f64,
    /// On a 503, wait its Retry-After (else 2 s) and try again, until the run ends.
    #[arg(long)]
    pub retry: bool,
    /// WHIP tone speakers [default: 1 with --create or --spawn, else 0].
    #[arg(long)]
    pub speakers: Option<usize>,
    /// Event-stream (SSE) subscribers, each with its own listener token.
    #[arg(long, default_value_t = 0)]
    pub events: usize,
    /// Source addresses in 127.0.0.0/8 to spread connections over (≈28 k ports each; many, so
    /// that each stands for a few listeners, as the server's per-address limits expect).
    #[arg(long, default_value_t = 1000)]
    pub sources: usize,
    /// Processes to split the listeners over [default: as many as the open-file limit needs].
    #[arg(long)]
    pub procs: Option<usize>,
    /// Sample this process's CPU and memory once a second (the server under test).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// HLS listeners poll for whole segments instead of LL-HLS blocking reloads and parts.
    #[arg(long)]
    pub hls_poll: bool,
    /// Write the report as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Draw listeners connected, join latency and server CPU over time as a PNG here.
    #[arg(long)]
    pub png: Option<PathBuf>,
    /// Size of the PNG, WIDTHxHEIGHT.
    #[arg(long, default_value = "1200x900")]
    pub png_size: Size,
    /// Font for the PNG's text (drawn without text if it cannot be read).
    #[arg(long, default_value = DEFAULT_FONT)]
    pub font: PathBuf,
    /// Floods while the listeners hold (joins, junk requests, slow heads, junk datagrams) and
    /// the host's control requests timed.
    #[command(flatten)]
    #[serde(flatten)]
    pub flood: crate::flood::Args,
    /// Internal: run as worker process with this spec file.
    #[arg(long, hide = true)]
    #[serde(skip)]
    pub worker: Option<PathBuf>,
}

/// Percent of listeners per protocol; they add up to 100. Written as on the command line,
/// without zero shares (`"ogg=70,hls=30"`, `"hls=100"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Mix {
    /// Percent on the Ogg stream.
    pub ogg: u32,
    /// Percent on LL-HLS.
    pub hls: u32,
}

impl Mix {
    /// Everyone on the Ogg stream.
    pub const OGG: Mix = Mix { ogg: 100, hls: 0 };
    /// Everyone on HLS.
    pub const HLS: Mix = Mix { ogg: 0, hls: 100 };

    /// Whether listener `k` listens over HLS: spread evenly, so any prefix of the listeners (the
    /// ramp so far) has the mix to within one listener.
    pub fn is_hls(&self, k: usize) -> bool {
        let h = u128::from(self.hls);
        let k = k as u128;
        (k + 1) * h / 100 > k * h / 100
    }
}

impl std::fmt::Display for Mix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shares: Vec<String> = [("ogg", self.ogg), ("hls", self.hls)]
            .into_iter()
            .filter(|(_, pct)| *pct > 0)
            .map(|(name, pct)| format!("{name}={pct}"))
            .collect();
        f.write_str(&shares.join(","))
    }
}

impl From<Mix> for String {
    fn from(m: Mix) -> String {
        m.to_string()
    }
}

impl TryFrom<String> for Mix {
    type Error = String;

    fn try_from(s: String) -> Result<Mix, String> {
        s.parse()
    }
}

impl FromStr for Mix {
    type Err = String;

    fn from_str(s: &str) -> Result<Mix, String> {
        let mut mix = Mix { ogg: 0, hls: 0 };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, pct) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?}: expected NAME=PERCENT"))?;
            let pct: u32 = pct
                .trim()
                .parse()
                .map_err(|_| format!("{part:?}: not a percentage"))?;
            match name.trim() {
                "ogg" => mix.ogg += pct,
                "hls" => mix.hls += pct,
                other => return Err(format!("unknown protocol {other:?} (ogg, hls)")),
            }
        }
        if mix.ogg + mix.hls != 100 {
            return Err(format!(
                "the shares add up to {}, not 100",
                mix.ogg + mix.hls
            ));
        }
        Ok(mix)
    }
}

/// A PNG size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Size {
    /// Pixels across.
    pub width: u32,
    /// Pixels down.
    pub height: u32,
}

impl FromStr for Size {
    type Err = String;

    fn from_str(s: &str) -> Result<Size, String> {
        let (w, h) = s
            .split_once(['x', 'X'])
            .ok_or_else(|| format!("{s:?}: expected WIDTHxHEIGHT"))?;
        let px = |v: &str| -> Result<u32, String> {
            match v.trim().parse() {
                Ok(n) if (200..=8000).contains(&n) => Ok(n),
                _ => Err(format!("{v:?}: a size from 200 to 8000 pixels")),
            }
        };
        Ok(Size {
            width: px(w)?,
            height: px(h)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixes_parse_and_must_add_up() {
        assert_eq!("ogg=70,hls=30".parse::<Mix>(), Ok(Mix { ogg: 70, hls: 30 }));
        assert_eq!("hls=100".parse::<Mix>(), Ok(Mix::HLS));
        assert!("ogg=70".parse::<Mix>().is_err());
        assert!("ogg=70,dash=30".parse::<Mix>().is_err());
        assert!("ogg".parse::<Mix>().is_err());
        for m in [Mix::OGG, Mix::HLS, Mix { ogg: 70, hls: 30 }] {
            let json = serde_json::to_string(&m).unwrap();
            assert_eq!(serde_json::from_str::<Mix>(&json).unwrap(), m);
        }
        assert_eq!(Mix::HLS.to_string(), "hls=100");
        assert_eq!(Mix { ogg: 70, hls: 30 }.to_string(), "ogg=70,hls=30");
    }

    #[test]
    fn the_mix_holds_for_every_prefix() {
        let mix = Mix { ogg: 70, hls: 30 };
        let mut hls = 0;
        for k in 0..1000 {
            hls += usize::from(mix.is_hls(k));
            let want = (k + 1) * 30 / 100;
            assert!(hls.abs_diff(want) <= 1, "after {} listeners: {hls}", k + 1);
        }
        assert_eq!(hls, 300);
        assert!((0..100).all(|k| !Mix::OGG.is_hls(k)));
        assert!((0..100).all(|k| Mix::HLS.is_hls(k)));
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(
            "1200x900".parse::<Size>(),
            Ok(Size {
                width: 1200,
                height: 900
            })
        );
        assert!("12x9".parse::<Size>().is_err());
        assert!("big".parse::<Size>().is_err());
    }
}
