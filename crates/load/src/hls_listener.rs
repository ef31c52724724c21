//! One simulated HLS listener: [`tribune_client::hls`] following the playlist like a player
//! (LL-HLS parts and blocking reloads, or segment polling), watched through its media callback:
//! the first part or segment is its join, media-sequence gaps and failed requests come from its
//! report.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tokio::time::Instant;
use tribune_client::hls;

use crate::tally::{Live, Outcome, Up, kind};
use crate::worker::Ctx;

/// Longest one HLS request may take (a blocking reload is held up to three target durations).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// What the media callback saw, in µs since the listener started (+1, so 0 means never).
#[derive(Default)]
struct Seen {
    first: AtomicU64,
    last: AtomicU64,
}

/// Listens as listener `k` until the run ends.
pub async fn run(ctx: &Ctx, k: usize, url: &str) -> Outcome {
    let mut out = Outcome::default();
    let start = Instant::now();
    let Some(length) = ctx.end.checked_duration_since(start) else {
        return out;
    };
    let live: &Live = &ctx.live;
    let seen = Seen::default();
    // The gauges move from joining to connected at the first media; the callback cannot hold
    // them (it must be Sync), so they live here.
    let joining: Mutex<Option<Up>> = Mutex::new(Some(Up::new(&live.joining)));
    let connected: Mutex<Option<Up>> = Mutex::new(None);
    let on_media = |arrival: hls::Arrival<'_>| {
        let hls::Arrival::Media { bytes, .. } = arrival else {
            return;
        };
        let t = start.elapsed().as_micros() as u64 + 1;
        live.bytes.fetch_add(bytes, Relaxed);
        seen.last.store(t, Relaxed);
        if seen.first.compare_exchange(0, t, Relaxed, Relaxed).is_ok() {
            live.joined.fetch_add(1, Relaxed);
            if let Ok(mut j) = joining.lock() {
                j.take();
            }
            if let Ok(mut c) = connected.lock() {
                *c = Some(Up::new(&live.connected));
            }
        }
    };
    let opts = hls::Options {
        url: url.to_owned(),
        duration: length,
        low_latency: !ctx.plan.hls_poll,
        fetch_segments: false,
        request_timeout: REQUEST_TIMEOUT,
    };
    let report = hls::run_observed(ctx.http(k), opts, &on_media, std::future::pending()).await;
    drop(joining);
    drop(connected);

    let end = start.elapsed();
    let at = |v: &AtomicU64| match v.load(Relaxed) {
        0 => None,
        t => Some(Duration::from_micros(t - 1)),
    };
    let join_timeout = ctx.plan.join_timeout();
    match at(&seen.first) {
        Some(lat) if lat <= join_timeout => {
            out.latency = Some(lat);
            out.joined_at = Some(ctx.since_start(start + lat));
            // Held: media within the last stall period (a part every 0.4 s, a segment every 2 s).
            out.held = at(&seen.last).is_some_and(|last| end.saturating_sub(last) < join_timeout);
            if !out.held {
                out.error(kind::STALLED, live);
            }
        }
        _ => out.error(kind::TIMEOUT, live),
    }
    if report.msn_gaps > 0 {
        out.gapped = true;
        live.gapped.fetch_add(1, Relaxed);
    }
    for (k, n) in &report.errors {
        out.errors_of(error_kind(k), *n, live);
    }
    out.bytes = report.bytes;
    out.pages = report.parts + report.segments;
    out.requests = report.playlists + report.parts + report.segments + report.error_count();
    out
}

/// The report's error keys in the load tester's kinds.
fn error_kind(k: &str) -> String {
    if let Some(status) = k.strip_prefix("status ").and_then(|s| s.parse().ok()) {
        return kind::http(status);
    }
    match k {
        "timeout" => kind::TIMEOUT,
        "connect" => kind::CONNECT,
        "body" => kind::RESET,
        "unparsable playlist" | "invalid playlist" | "bad uri" | "bad url" => kind::PROTOCOL,
        _ => kind::IO,
    }
    .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_errors_map_to_kinds() {
        assert_eq!(error_kind("status 503"), "http_503");
        assert_eq!(error_kind("status 404"), "http_404");
        assert_eq!(error_kind("timeout"), "timeout");
        assert_eq!(error_kind("invalid playlist"), "protocol");
        assert_eq!(error_kind("request"), "io");
    }
}
