//! tribune's process-wide counters and gauges, rendered in the Prometheus text format (the
//! server answers `GET /metrics` with them).
//!
//! Plain relaxed atomics: the mixer and the UDP path bump them without locks.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

use tribune_admission::{Class, Reason};

/// All metrics of one server.
#[derive(Debug, Default)]
pub struct Metrics {
    pub spaces_live: AtomicI64,
    pub speakers: AtomicI64,
    pub listeners: AtomicI64,
    pub mixer_ticks: AtomicU64,
    pub mixer_late_ticks: AtomicU64,
    pub mixer_tick_ns_max: AtomicU64,
    /// Live captions ([`tribune_captions`]-style counters, summed over spaces).
    pub captions_spaces: AtomicI64,
    pub captions_cues: AtomicU64,
    pub captions_chunks: AtomicU64,
    pub captions_dropped_ms: AtomicU64,
    pub captions_tap_full: AtomicU64,
    pub captions_engine_busy_ns: AtomicU64,
    pub captions_delay_ms_last: AtomicU64,
    pub captions_delay_ms_max: AtomicU64,
    pub captions_delay_ms_sum: AtomicU64,
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
    pub store_replica_errors: AtomicU64,
    pub events_subscribers: AtomicI64,
    pub events_dropped_slow: AtomicU64,
    pub cluster_forward_errors: AtomicU64,
    pub cluster_frames_dropped: AtomicU64,
    pub cluster_relays_opened: AtomicU64,
    pub cluster_hls_fetches: AtomicU64,
    pub cluster_standing: AtomicI64,
    pub cluster_takeovers: AtomicU64,
    pub cluster_demotions: AtomicU64,
    pub cluster_copy_records: AtomicU64,
    pub joins: AtomicU64,
    pub reactions: AtomicU64,
    pub reaction_requests: AtomicU64,
    pub reactions_shed: AtomicU64,
    pub beacons: AtomicU64,
    pub presence: AtomicU64,
    pub snapshots: AtomicU64,
    pub hls_playlists: AtomicU64,
    pub hls_blocking_reloads: AtomicU64,
    pub hls_parts: AtomicU64,
    pub hls_segments: AtomicU64,
    pub tls_handshakes: AtomicU64,
    pub tls_handshake_failures: AtomicU64,
    pub tls_connections_shed: AtomicU64,
    pub http_head_timeouts: AtomicU64,
    /// HTTP requests on the audience listeners, monitoring (`/metrics`, `/healthz`) aside.
    pub http_requests: AtomicU64,
    /// Count beacon requests reaching the node, counted or not (in the sample or not, shed).
    pub beacon_requests: AtomicU64,
    /// Connections open on the audience listeners (plain and TLS, heads still coming included).
    pub audience_connections: AtomicI64,
    /// Audience connections closed at accept because the audience held its whole share of file
    /// descriptors (see `tribune_net::conn_limit::audience_cap`).
    pub audience_connections_shed: AtomicU64,
    /// `accept` failures for want of file descriptors (`EMFILE`, `ENFILE`), any listener.
    pub accept_fd_exhausted: AtomicU64,
    /// Refusals under load, by [`Reason`] and [`Class`] (index: `reason * 3 + class`).
    pub refusals: [AtomicU64; REFUSAL_CELLS],
    /// The shield: 1 while new listeners must bring proof of work.
    pub shield_on: AtomicI64,
    /// Listeners holding a place in a waiting room.
    pub waiting: AtomicI64,
}

const REFUSAL_CELLS: usize = Reason::ALL.len() * Class::ALL.len();

fn class_index(c: Class) -> usize {
    match c {
        Class::Control => 0,
        Class::Join => 1,
        Class::Browse => 2,
    }
}

fn reason_index(r: Reason) -> usize {
    Reason::ALL.iter().position(|x| *x == r).unwrap_or(0)
}

impl Metrics {
    /// Counts one refusal.
    pub fn refused(&self, reason: Reason, class: Class) {
        self.refusals[reason_index(reason) * Class::ALL.len() + class_index(class)]
            .fetch_add(1, Relaxed);
    }

    /// Refusals so far, every reason and class.
    pub fn refusals_total(&self) -> u64 {
        self.refusals.iter().map(|a| a.load(Relaxed)).sum()
    }

    /// Refusals so far for `reason` and `class`.
    pub fn refusals_of(&self, reason: Reason, class: Class) -> u64 {
        self.refusals[reason_index(reason) * Class::ALL.len() + class_index(class)].load(Relaxed)
    }

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
            "captions_spaces",
            "gauge",
            "Live spaces being captioned.",
            g(&self.captions_spaces),
        );
        put(
            "captions_cues_total",
            "counter",
            "Captions made.",
            c(&self.captions_cues),
        );
        put(
            "captions_chunks_total",
            "counter",
            "Stretches of speech transcribed.",
            c(&self.captions_chunks),
        );
        put(
            "captions_dropped_audio_ms_total",
            "counter",
            "Speech dropped uncaptioned because the engine fell behind, milliseconds.",
            c(&self.captions_dropped_ms),
        );
        put(
            "captions_tap_full_total",
            "counter",
            "Mixer ticks not handed to captions (their queue was full).",
            c(&self.captions_tap_full),
        );
        put(
            "captions_engine_busy_ms_total",
            "counter",
            "Time the speech engine spent transcribing, milliseconds (it computes on one CPU thread: its CPU time, at most).",
            c(&self.captions_engine_busy_ns) / 1_000_000,
        );
        put(
            "captions_delay_ms_last",
            "gauge",
            "Delay of the last caption: from the end of its speech to the caption, milliseconds.",
            c(&self.captions_delay_ms_last),
        );
        put(
            "captions_delay_ms_max",
            "gauge",
            "Longest caption delay so far, milliseconds.",
            c(&self.captions_delay_ms_max),
        );
        put(
            "captions_delay_ms_sum",
            "counter",
            "Caption delays summed, milliseconds (divide by captions_cues_total for the mean).",
            c(&self.captions_delay_ms_sum),
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
            "store_replica_errors_total",
            "counter",
            "Writes of the shared durable state (Redis, in a cluster) lost; the whole state is copied again once it answers.",
            c(&self.store_replica_errors),
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
            "cluster_forward_errors_total",
            "counter",
            "Requests for a space of another node that its owner did not answer.",
            c(&self.cluster_forward_errors),
        );
        put(
            "cluster_event_frames_dropped_total",
            "counter",
            "Event frames of this node's spaces that Redis did not take (other nodes miss them).",
            c(&self.cluster_frames_dropped),
        );
        put(
            "cluster_relays_opened_total",
            "counter",
            "Upstream live.opus streams opened to other nodes (one per space while it has listeners here).",
            c(&self.cluster_relays_opened),
        );
        put(
            "cluster_hls_fetches_total",
            "counter",
            "LL-HLS requests made to other nodes (each object once, playlist requests coalesced).",
            c(&self.cluster_hls_fetches),
        );
        put(
            "cluster_standby_spaces",
            "gauge",
            "Spaces of other nodes this node is the hot standby of (copying their recording and rendition).",
            g(&self.cluster_standing),
        );
        put(
            "cluster_takeovers_total",
            "counter",
            "Spaces this node took over from an owner whose lease lapsed or who handed them over.",
            c(&self.cluster_takeovers),
        );
        put(
            "cluster_demotions_total",
            "counter",
            "Spaces this node stopped running because another node holds their lease now.",
            c(&self.cluster_demotions),
        );
        put(
            "cluster_copy_records_total",
            "counter",
            "Records of other nodes' spaces' files copied here as their standby.",
            c(&self.cluster_copy_records),
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
            "reaction_requests_total",
            "counter",
            "Reaction requests accepted (each carries one or more reactions).",
            c(&self.reaction_requests),
        );
        put(
            "reactions_shed_total",
            "counter",
            "Reaction requests refused with 429 (a participant's rate, or the space's budget).",
            c(&self.reactions_shed),
        );
        put(
            "http_requests_total",
            "counter",
            "HTTP requests on the audience listeners (all kinds; /metrics and /healthz aside).",
            c(&self.http_requests),
        );
        put(
            "beacon_requests_total",
            "counter",
            "Anonymous count beacon requests received (counted, out of the sample or shed).",
            c(&self.beacon_requests),
        );
        put(
            "beacons_total",
            "counter",
            "Anonymous count beacons counted (in the sample).",
            c(&self.beacons),
        );
        put(
            "presence_total",
            "counter",
            "Participant presence beacons (POST /presence).",
            c(&self.presence),
        );
        put(
            "snapshots_total",
            "counter",
            "Public snapshots served (GET /spaces/{id}/snapshot.json, 304s included).",
            c(&self.snapshots),
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
        put(
            "audience_connections",
            "gauge",
            "Connections open on the audience listeners (plain and TLS).",
            g(&self.audience_connections),
        );
        put(
            "audience_connections_shed_total",
            "counter",
            "Audience connections closed at accept: the audience held its share of file descriptors.",
            c(&self.audience_connections_shed),
        );
        put(
            "accept_fd_exhausted_total",
            "counter",
            "accept() failures for want of file descriptors (EMFILE, ENFILE).",
            c(&self.accept_fd_exhausted),
        );
        put(
            "shield_on",
            "gauge",
            "1 while the shield asks new listeners for proof of work.",
            g(&self.shield_on),
        );
        put(
            "waiting",
            "gauge",
            "Listeners holding a place in a waiting room.",
            g(&self.waiting),
        );
        let _ = writeln!(
            out,
            "# HELP tribune_refusals_total Requests refused under load, by reason and class \
             (see the refusal table in the README)."
        );
        let _ = writeln!(out, "# TYPE tribune_refusals_total counter");
        for r in Reason::ALL {
            for cl in Class::ALL {
                let _ = writeln!(
                    out,
                    "tribune_refusals_total{{reason=\"{}\",class=\"{}\"}} {}",
                    r.as_str(),
                    cl.as_str(),
                    self.refusals_of(r, cl)
                );
            }
        }
        out
    }
}

/// Raise `max` to `v` if larger.
pub fn store_max(max: &AtomicU64, v: u64) {
    max.fetch_max(v, Relaxed);
}
