//! `pow`: what the shield's proof of work costs a client and the server.
//!
//! - native solve time (`tribune_client::pow::solve`) over `--challenges` distinct challenges
//!   at `--bits`: median, p90, mean, and the hash rate behind them;
//! - the web app's solver (`web/pow.js`) under Node when it is installed: V8, the engine of
//!   Chrome, on the same file the browser runs (a rough browser figure; a Worker adds nothing);
//! - the server's check per ticket ([`tribune_server::shield::Shield::check`] with the shield
//!   on): a fresh solved ticket (accepted: one HMAC, one SHA-256 and a replay-set insert), the
//!   same ticket again (reused), and garbage of the right shape (unsolved).
//!
//! Solving is a geometric distribution (about 2^bits hashes on average, median 0.69×, p90
//! 2.3×), so the spread between runs is large at 50 challenges; the mean is the steadiest.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use serde::Serialize;
use tribune_server::config::{self, ShieldMode};
use tribune_server::shield::Shield;

use crate::report::{self, f};

/// Arguments of `pow`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Leading zero bits (the server's `--shield-bits`; its default is what to measure).
    #[arg(long, default_value_t = DEFAULT_BITS)]
    bits: u32,
    /// Challenges solved natively (each a distinct space).
    #[arg(long, default_value_t = 50)]
    challenges: usize,
    /// Challenges solved by `web/pow.js` under Node (0 to skip; skipped without Node).
    #[arg(long, default_value_t = 20)]
    js_challenges: usize,
    /// Tickets checked by the server core per kind.
    #[arg(long, default_value_t = 20_000)]
    checks: usize,
    /// Also write the result here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// The server's default `--shield-bits`.
const DEFAULT_BITS: u32 = tribune_server::shield::DEFAULT_BITS;

/// Difficulty of the tickets made for the check benchmark: cheap to make by the thousand; the
/// check costs the same at any difficulty.
const CHECK_BITS: u32 = 6;

/// A fixed time, so the tickets stay in their window whatever the benchmark's duration.
const NOW_S: u64 = 1_700_000_040;

/// Everything measured, as written to JSON.
#[derive(Debug, Serialize)]
pub struct Report {
    pub bits: u32,
    pub native: Solves,
    pub js: Option<Solves>,
    pub check_accept_ns: f64,
    pub check_reused_ns: f64,
    pub check_unsolved_ns: f64,
    pub check_off_ns: f64,
}

/// Solve times, milliseconds.
#[derive(Debug, Serialize)]
pub struct Solves {
    pub n: usize,
    pub median_ms: f64,
    pub p90_ms: f64,
    pub mean_ms: f64,
    pub max_ms: f64,
    /// Hashes per second (2^bits expected per solve / mean time).
    pub hashes_per_s: f64,
}

fn solves(bits: u32, mut ms: Vec<f64>) -> Solves {
    ms.sort_by(f64::total_cmp);
    let n = ms.len();
    let mean = ms.iter().sum::<f64>() / n as f64;
    Solves {
        n,
        median_ms: ms[n / 2],
        p90_ms: ms[(n * 9 / 10).min(n - 1)],
        mean_ms: mean,
        max_ms: ms[n - 1],
        hashes_per_s: 2f64.powi(bits as i32) / (mean / 1000.0),
    }
}

fn shield(bits: u32, mode: ShieldMode) -> Shield {
    let cfg = config::Shield {
        mode,
        bits,
        joins_per_s: u32::MAX,
    };
    Shield::new(&cfg, b"benchmark secret")
}

/// Runs the benchmark.
pub fn run(args: Args) -> Result<()> {
    ensure!(args.challenges > 0 && args.checks > 0, "nothing to measure");
    ensure!((1..=32).contains(&args.bits), "--bits must be 1..=32");
    let s = shield(args.bits, ShieldMode::On);
    let native: Vec<f64> = (0..args.challenges)
        .map(|i| {
            let c = s.challenge(&format!("space-{i}"), NOW_S).challenge;
            let t0 = Instant::now();
            let t = tribune_client::pow::solve(&c, args.bits);
            let ms = t0.elapsed().as_secs_f64() * 1e3;
            std::hint::black_box(t);
            ms
        })
        .collect();
    let native = solves(args.bits, native);
    let js = if args.js_challenges > 0 {
        js(&s, args.bits, args.js_challenges)?.map(|ms| solves(args.bits, ms))
    } else {
        None
    };

    // The server's check.
    let s = shield(CHECK_BITS, ShieldMode::On);
    let tickets: Vec<String> = (0..args.checks)
        .map(|i| {
            let c = s.challenge("bench", NOW_S).challenge;
            tribune_client::pow::solve_from(&c, CHECK_BITS, (i as u64) << 32)
        })
        .collect();
    let time = |f: &dyn Fn(&str) -> bool, set: &[String]| {
        let t0 = Instant::now();
        let mut ok = 0usize;
        for t in set {
            ok += usize::from(f(t));
        }
        (t0.elapsed().as_secs_f64() * 1e9 / set.len() as f64, ok)
    };
    let check = |t: &str| s.check("bench", Some(t), NOW_S).is_ok();
    let (accept, ok) = time(&check, &tickets);
    ensure!(
        ok == tickets.len(),
        "{} of {} fresh tickets refused",
        tickets.len() - ok,
        tickets.len()
    );
    let (reused, ok) = time(&check, &tickets);
    ensure!(ok == 0, "reused tickets accepted");
    let unsolved: Vec<String> = {
        let c = s.challenge("bench", NOW_S).challenge;
        (0u64..)
            .map(|n| format!("{c}:{n}"))
            .filter(|t| !tribune_client::pow::is_solved(t, CHECK_BITS))
            .take(args.checks)
            .collect()
    };
    let (unsolved, ok) = time(&check, &unsolved);
    ensure!(ok == 0, "unsolved tickets accepted");
    let off = shield(CHECK_BITS, ShieldMode::Off);
    let (off_ns, _) = time(&|t| off.check("bench", Some(t), NOW_S).is_ok(), &tickets);

    let r = Report {
        bits: args.bits,
        native,
        js,
        check_accept_ns: accept,
        check_reused_ns: reused,
        check_unsolved_ns: unsolved,
        check_off_ns: off_ns,
    };
    let row = |s: &Solves| {
        format!(
            "median {} ms, p90 {} ms, mean {} ms, max {} ms ({} challenges, {} M hashes/s)",
            f(s.median_ms, 1),
            f(s.p90_ms, 1),
            f(s.mean_ms, 1),
            f(s.max_ms, 1),
            s.n,
            f(s.hashes_per_s / 1e6, 2)
        )
    };
    let mut rows = vec![
        ("bits", r.bits.to_string()),
        ("native solve", row(&r.native)),
    ];
    rows.push((
        "web/pow.js (V8)",
        r.js.as_ref().map_or("skipped (no node)".into(), row),
    ));
    rows.push(("check, accepted", format!("{} ns", f(r.check_accept_ns, 0))));
    rows.push(("check, reused", format!("{} ns", f(r.check_reused_ns, 0))));
    rows.push((
        "check, unsolved",
        format!("{} ns", f(r.check_unsolved_ns, 0)),
    ));
    rows.push(("check, shield off", format!("{} ns", f(r.check_off_ns, 0))));
    report::table("proof of work", &rows);
    report::json(args.json.as_deref(), &r)
}

/// Solve times of `web/pow.js` under Node, or `None` without Node.
fn js(s: &Shield, bits: u32, n: usize) -> Result<Option<Vec<f64>>> {
    if Command::new("node").arg("--version").output().is_err() {
        return Ok(None);
    }
    let web = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../server/web/pow.js");
    let dir = std::env::temp_dir().join(format!("tribune-bench-pow-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    // As .mjs, so Node loads it as an ES module as browsers do.
    let module = dir.join("pow.mjs");
    std::fs::copy(&web, &module).with_context(|| format!("copying {}", web.display()))?;
    let challenges: Vec<String> = (0..n)
        .map(|i| s.challenge(&format!("js-{i}"), NOW_S).challenge)
        .collect();
    let script = format!(
        "import {{ solve }} from {module:?};\n\
         const out = [];\n\
         for (const c of {challenges}) {{\n\
           const t0 = performance.now(); solve(c, {bits}); out.push(performance.now() - t0);\n\
         }}\n\
         console.log(JSON.stringify(out));",
        module = module.display().to_string(),
        challenges = serde_json::to_string(&challenges)?,
    );
    let out = Command::new("node")
        .args(["--input-type=module", "-e", &script])
        .output()
        .context("running node")?;
    let _ = std::fs::remove_dir_all(&dir);
    ensure!(
        out.status.success(),
        "node: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(Some(
        serde_json::from_slice(&out.stdout).context("node's output")?,
    ))
}
