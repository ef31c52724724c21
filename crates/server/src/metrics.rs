//! Process-wide counters and gauges, rendered in the Prometheus text format at `GET /metrics`.
//!
//! Plain relaxed atomics: the mixer and the UDP path bump them without locks.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

/// All metrics of one server.
#[derive(Debug, Default)]
pub struct Metrics {
    pub spaces_live: AtomicI64,
    pub speakers: AtomicI64,
    pub listeners: AtomicI64,
    pub mixer_ticks: AtomicU64,
    pub mixer_late_ticks: AtomicU64,
    pub mixer_tick_ns_max: AtomicU64,
    pub rtp_packets_received: AtomicU64,
    pub rtp_packets_lost: AtomicU64,
    pub mixer_queue_full: AtomicU64,
    pub listener_bytes_sent: AtomicU64,
    pub listeners_dropped_slow: AtomicU64,
    pub listeners_total: AtomicU64,
    pub listeners_refused_full: AtomicU64,
    pub udp_datagrams: AtomicU64,
    pub udp_dropped_unknown: AtomicU64,
    pub udp_dropped_inbox_full: AtomicU64,
    pub whip_sessions_total: AtomicU64,
    pub whip_sessions_timed_out: AtomicU64,
    pub recording_errors: AtomicU64,
    pub recording_bytes: AtomicU64,
    pub store_errors: AtomicU64,
    pub events_subscribers: AtomicI64,
    pub events_dropped_slow: AtomicU64,
    pub joins: AtomicU64,
    pub reactions: AtomicU64,
    pub hls_playlists: AtomicU64,
    pub hls_blocking_reloads: AtomicU64,
    pub hls_parts: AtomicU64,
    pub hls_segments: AtomicU64,
    pub tls_handshakes: AtomicU64,
    pub tls_handshake_failures: AtomicU64,
    pub tls_connections_shed: AtomicU64,
    pub http_head_timeouts: AtomicU64,
}

impl Metrics {
    /// Render every metric in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let mut put = |name: &str, kind: &str, help: &str, v: i128| {
            let _ = writeln!(out, "# HELP tribune_{name} {help}");
            let _ = writeln!(out, "# TYPE tribune_{name} {kind}");
            let _ = writeln!(out, "tribune_{name} {v}");
        };
        let g = |a: &AtomicI64| a.load(Relaxed) as i128;
        let c = |a: &AtomicU64| a.load(Relaxed) as i128;
        put("spaces_live", "gauge", "Live spaces.", g(&self.spaces_live));
        put(
            "speakers",
            "gauge",
            "Connected WHIP speakers.",
            g(&self.speakers),
        );
        put(
            "listeners",
            "gauge",
            "Connected live.opus listeners.",
            g(&self.listeners),
        );
        put(
            "mixer_ticks_total",
            "counter",
            "Mixer ticks (20 ms each).",
            c(&self.mixer_ticks),
        );
        put(
            "mixer_late_ticks_total",
            "counter",
            "Mixer ticks that started more than 10 ms after their deadline.",
            c(&self.mixer_late_ticks),
        );
        put(
            "mixer_tick_seconds_max_ns",
            "gauge",
            "Longest mixer tick so far, nanoseconds.",
            c(&self.mixer_tick_ns_max),
        );
        put(
            "rtp_packets_received_total",
            "counter",
            "Audio frames received from speakers.",
            c(&self.rtp_packets_received),
        );
        put(
            "rtp_packets_lost_total",
            "counter",
            "Audio frames from speakers lost (sequence gaps).",
            c(&self.rtp_packets_lost),
        );
        put(
            "mixer_queue_full_total",
            "counter",
            "Speaker packets dropped because a mixer inbox was full.",
            c(&self.mixer_queue_full),
        );
        put(
            "listener_bytes_sent_total",
            "counter",
            "Bytes handed to live.opus listener connections.",
            c(&self.listener_bytes_sent),
        );
        put(
            "listeners_dropped_slow_total",
            "counter",
            "Listeners disconnected for reading too slowly.",
            c(&self.listeners_dropped_slow),
        );
        put(
            "listeners_total",
            "counter",
            "live.opus connections accepted.",
            c(&self.listeners_total),
        );
        put(
            "listeners_refused_full_total",
            "counter",
            "live.opus connections refused with 503: the node had its maximum of listeners.",
            c(&self.listeners_refused_full),
        );
        put(
            "udp_datagrams_total",
            "counter",
            "Datagrams received on the media port.",
            c(&self.udp_datagrams),
        );
        put(
            "udp_dropped_unknown_total",
            "counter",
            "Datagrams dropped: no session and not a STUN binding request for a known ICE username.",
            c(&self.udp_dropped_unknown),
        );
        put(
            "udp_dropped_inbox_full_total",
            "counter",
            "Datagrams dropped because a session inbox was full.",
            c(&self.udp_dropped_inbox_full),
        );
        put(
            "whip_sessions_total",
            "counter",
            "WHIP sessions created.",
            c(&self.whip_sessions_total),
        );
        put(
            "whip_sessions_timed_out_total",
            "counter",
            "WHIP sessions closed because the peer went silent (ICE consent).",
            c(&self.whip_sessions_timed_out),
        );
        put(
            "recording_errors_total",
            "counter",
            "Recordings stopped by a write error (e.g. a full disk).",
            c(&self.recording_errors),
        );
        put(
            "recording_bytes_total",
            "counter",
            "Bytes written to recordings.",
            c(&self.recording_bytes),
        );
        put(
            "store_errors_total",
            "counter",
            "Failed writes to the SQLite store.",
            c(&self.store_errors),
        );
        put(
            "events_subscribers",
            "gauge",
            "Open event streams.",
            g(&self.events_subscribers),
        );
        put(
            "events_dropped_slow_total",
            "counter",
            "Event subscribers disconnected for reading too slowly.",
            c(&self.events_dropped_slow),
        );
        put(
            "joins_total",
            "counter",
            "Listener tokens issued by /join.",
            c(&self.joins),
        );
        put(
            "reactions_total",
            "counter",
            "Reactions accepted.",
            c(&self.reactions),
        );
        put(
            "hls_playlists_total",
            "counter",
            "LL-HLS media playlists served.",
            c(&self.hls_playlists),
        );
        put(
            "hls_blocking_reloads_total",
            "counter",
            "LL-HLS playlist requests with _HLS_msn (blocking reloads).",
            c(&self.hls_blocking_reloads),
        );
        put(
            "hls_parts_total",
            "counter",
            "LL-HLS parts served.",
            c(&self.hls_parts),
        );
        put(
            "hls_segments_total",
            "counter",
            "LL-HLS segments served.",
            c(&self.hls_segments),
        );
        put(
            "tls_handshakes_total",
            "counter",
            "TLS handshakes completed on the HTTPS listener.",
            c(&self.tls_handshakes),
        );
        put(
            "tls_handshake_failures_total",
            "counter",
            "TLS handshakes that failed or timed out (plain HTTP on the HTTPS port, silent or \
             broken clients, protocol errors).",
            c(&self.tls_handshake_failures),
        );
        put(
            "tls_connections_shed_total",
            "counter",
            "HTTPS connections closed unanswered because too many handshakes were in flight.",
            c(&self.tls_connections_shed),
        );
        put(
            "http_head_timeouts_total",
            "counter",
            "Plain-HTTP connections closed because their request head did not arrive in time.",
            c(&self.http_head_timeouts),
        );
        out
    }
}

/// Raise `max` to `v` if larger.
pub fn store_max(max: &AtomicU64, v: u64) {
    max.fetch_max(v, Relaxed);
}
