//! The host's view: every [`PERIOD`] during the flood, the control requests a host makes while
//! on air, timed. `GET /api/spaces/{id}` (the space as the host sees it) and `POST
//! /api/spaces/{id}/stage/unmute` with no body (the host unmuting itself: idempotent, harmless
//! to the show, and a real control write through the permission table). Both must succeed
//! however busy the audience side is.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use serde::Serialize;
use serde_json::json;
use tokio::time::{Instant, MissedTickBehavior};

use super::{Ctx, addr};
use crate::report::Latency;

/// Time between two rounds of probes.
pub const PERIOD: Duration = Duration::from_millis(250);
/// A probe without an answer this long has failed.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The host probe's figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Requests made.
    pub probes: u64,
    /// Answered with a 2xx.
    pub ok: u64,
    /// Not: by `http_NNN`, `timeout` or `error`.
    pub failed: BTreeMap<String, u64>,
    /// Latency of every request, answered or not (failures count at their time).
    pub latency_ms: Latency,
    /// Rounds skipped because the previous one was still going.
    pub late_rounds: u64,
}

/// Mints a token of the host of `space` (its own participant id, from the space's summary)
/// with the operator `key`.
pub async fn mint(http: &reqwest::Client, base: &str, space: &str, key: &str) -> Result<String> {
    let url = format!("{base}/api/spaces/{space}");
    let summary: serde_json::Value = http
        .get(&url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .with_context(|| format!("GET {url}"))?
        .json()
        .await
        .with_context(|| format!("GET {url}: not JSON"))?;
    let sub = summary["host"]
        .as_str()
        .with_context(|| format!("GET {url}: the space has no host: {summary}"))?;
    let url = format!("{base}/api/spaces/{space}/tokens");
    let resp = http
        .post(&url)
        .bearer_auth(key)
        .json(&json!({"role": "host", "sub": sub, "name": "loadtest host"}))
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = resp.status();
    let v: serde_json::Value = resp.json().await.unwrap_or_default();
    ensure!(status.is_success(), "POST {url}: {status}: {v}");
    v["token"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("POST {url}: no token in {v}"))
}

/// Probes with `token` every [`PERIOD`] until the flood stops.
pub async fn run(ctx: Ctx, token: String) -> Report {
    let mut r = Report::default();
    let http = match reqwest::Client::builder()
        .local_address(std::net::IpAddr::V4(addr::HOST))
        .timeout(TIMEOUT)
        .build()
    {
        Ok(h) => h,
        Err(e) => {
            *r.failed.entry(format!("client: {e}")).or_default() += 1;
            return r;
        }
    };
    let get = format!("{}/api/spaces/{}", ctx.base, ctx.space);
    let post = format!("{}/api/spaces/{}/stage/unmute", ctx.base, ctx.space);
    let mut latencies = Vec::new();
    tokio::time::sleep_until(ctx.start).await;
    let mut ticker = tokio::time::interval(PERIOD);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut last = Instant::now();
    loop {
        ticker.tick().await;
        let now = Instant::now();
        if now >= ctx.stop {
            break;
        }
        r.late_rounds += (now.saturating_duration_since(last).as_millis()
            / PERIOD.as_millis().max(1))
        .saturating_sub(1) as u64;
        last = now;
        for req in [
            http.get(&get).bearer_auth(&token),
            http.post(&post).bearer_auth(&token),
        ] {
            let at = Instant::now();
            let outcome = match req.send().await {
                Ok(resp) if resp.status().is_success() => {
                    // The whole answer, as a host's page would read it.
                    resp.bytes()
                        .await
                        .map(|_| ())
                        .map_err(|_| "error".to_owned())
                }
                Ok(resp) => Err(format!("http_{}", resp.status().as_u16())),
                Err(e) if e.is_timeout() => Err("timeout".to_owned()),
                Err(_) => Err("error".to_owned()),
            };
            latencies.push(u32::try_from(at.elapsed().as_micros()).unwrap_or(u32::MAX));
            r.probes += 1;
            match outcome {
                Ok(()) => r.ok += 1,
                Err(k) => *r.failed.entry(k).or_default() += 1,
            }
        }
    }
    r.latency_ms = Latency::of(latencies);
    r
}
