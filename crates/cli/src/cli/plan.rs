//! `tribune plan`: the fleet a given audience needs, from per-node figures measured here.
//!
//! The model follows the design: a space lives on one origin; listeners fetch LL-HLS objects
//! (or the Ogg stream) from edges (HTTP caches) that fetch each object from the origin once; the
//! control plane (joins of people who take part, their event streams) stays on the origin. Every
//! figure that is not an input is printed with where it comes from, so the answer can be checked
//! and redone with other hardware. The model itself ([`plan`]) is pure and unit-tested.

use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::Value;

/// Arguments of `tribune plan`.
#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// Concurrent listeners to serve.
    #[arg(long)]
    pub listeners: u64,
    /// Audio bitrate, bits/s.
    #[arg(long, default_value_t = 32_000)]
    pub bitrate: u64,
    /// A `tribune loadtest --json` result measured against one edge (LL-HLS) or one Ogg node:
    /// its requests or listeners per core replace the defaults below.
    #[arg(long)]
    pub measured: Option<PathBuf>,
    /// Share of listeners on the Ogg stream (through Ogg relays) rather than LL-HLS, 0..=1.
    #[arg(long, default_value_t = 0.0)]
    pub ogg_share: f64,
    /// LL-HLS part duration, ms (tribune's default).
    #[arg(long, default_value_t = 400)]
    pub part_ms: u64,
    /// Edge network interface, Gb/s.
    #[arg(long, default_value_t = 10.0)]
    pub edge_nic_gbps: f64,
    /// Edge CPU cores.
    #[arg(long, default_value_t = 16)]
    pub edge_cores: u64,
    /// Utilisation planned for (headroom for spikes and failover), 0..1.
    #[arg(long, default_value_t = 0.6)]
    pub utilisation: f64,
    /// Small cached HTTP responses one edge core serves per second (measured: nginx 57–60 k/s
    /// on this VM serving parts, `tribune-bench hls-serve`).
    #[arg(long, default_value_t = 57_000.0)]
    pub edge_requests_per_core: f64,
    /// Ogg listeners (200 ms pages) one core of an Ogg node carries (measured: 0.047–0.048
    /// cores per 1,000 with `tribune loadtest` and `tribune-bench fanout` on the lean path).
    #[arg(long, default_value_t = 21_000.0)]
    pub ogg_listeners_per_core: f64,
    /// Edges one origin (or shield) serves directly before a shield tier is added.
    #[arg(long, default_value_t = 500)]
    pub fan_in: u64,
    /// Share of the audience that arrives in the busiest minute of a flash crowd.
    #[arg(long, default_value_t = 0.5)]
    pub peak_minute_share: f64,
    /// Share of listeners who take part (join with a token, event stream, hand, reactions).
    #[arg(long, default_value_t = 0.02)]
    pub participant_share: f64,
    /// Participants (join + event stream) one cluster node holds (measured on this 2-core VM
    /// with `bench/cluster/run.sh`: 18,000 at 1,000 joins/s, bound by the 20,000 open files a
    /// process may have here; see the README).
    #[arg(long, default_value_t = PARTICIPANTS_PER_NODE)]
    pub participants_per_node: f64,
    /// Live spaces at once (each runs on one node, its owner, and costs every node a few Redis
    /// commands a second).
    #[arg(long, default_value_t = 1)]
    pub spaces: u64,
    /// Event frames a live space publishes per second (levels, listener counts, reactions: ~8
    /// measured with a speaker and reactions, `tribune-bench events`).
    #[arg(long, default_value_t = 8.0)]
    pub events_per_second: f64,
    /// Redis commands one instance serves per second (measured on this VM with
    /// `redis-benchmark`: 66–70 k/s for SET, GET and the event log's XADD).
    #[arg(long, default_value_t = REDIS_COMMANDS_PER_S)]
    pub redis_commands_per_s: f64,
    /// Write the plan as JSON here too.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Participants one node holds (measured: see [`PlanArgs::participants_per_node`]).
pub const PARTICIPANTS_PER_NODE: f64 = 18_000.0;
/// Redis commands one instance serves per second (measured: see
/// [`PlanArgs::redis_commands_per_s`]).
pub const REDIS_COMMANDS_PER_S: f64 = 66_000.0;
/// Redis commands each node issues per second per live space with nothing happening: the
/// node record and the space records renewed, listener and stream reports written and read,
/// the mirror's blocking read (measured: 22/s for 3 nodes and 1 space, `bench/cluster/run.sh`).
pub const REDIS_COMMANDS_PER_NODE_SPACE: f64 = 7.5;

/// What one listener costs an edge, per second.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct PerListener {
    /// Bytes per second on the wire (payload and HTTP framing).
    pub bytes_per_s: f64,
    /// Requests per second (LL-HLS: a part and a blocking playlist reload per part).
    pub requests_per_s: f64,
}

/// The answer.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub listeners: u64,
    pub hls_listeners: u64,
    pub ogg_listeners: u64,
    pub per_hls_listener: PerListener,
    pub per_ogg_listener: PerListener,
    /// Total egress to listeners, Gb/s.
    pub egress_gbps: f64,
    /// Edges needed, and which limit decided.
    pub edges: u64,
    pub edges_by_bandwidth: u64,
    pub edges_by_cpu: u64,
    pub edge_bound: &'static str,
    /// Listeners per edge at that count.
    pub listeners_per_edge: u64,
    /// Shield (mid) tier between origin and edges, 0 when the origin serves every edge.
    pub shields: u64,
    /// Origin egress to its children (edges or shields), Mb/s: O(edges), not O(listeners).
    pub origin_egress_mbps: f64,
    /// Origin requests per second from its children.
    pub origin_requests_per_s: f64,
    /// Origins: one per live space (the space's mixer lives there).
    pub origins_per_space: u64,
    /// Flash crowd: listeners arriving per second in the busiest minute, fleet-wide and per edge.
    pub peak_joins_per_s: f64,
    pub peak_joins_per_s_per_edge: f64,
    /// Control plane on the origin: participant joins per second, event streams held.
    pub participant_joins_per_s: f64,
    pub event_streams: u64,
    /// Cluster nodes for the control plane (each serves every space), and Redis's load.
    pub cluster_nodes: u64,
    pub participant_joins_per_s_per_node: f64,
    pub redis_commands_per_s: f64,
    /// Share of one Redis instance that load is.
    pub redis_share: f64,
    /// Where each default figure came from.
    pub assumptions: Vec<String>,
}

/// Per-node capacities the plan divides by.
#[derive(Debug, Clone, Copy)]
pub struct Capacity {
    pub edge_requests_per_core: f64,
    pub ogg_listeners_per_core: f64,
}

/// HTTP/1.1 response head of a part or playlist reply, bytes (measured from tribune: 270–283).
pub const RESPONSE_OVERHEAD_BYTES: f64 = 280.0;
/// A delta playlist (`_HLS_skip=YES`) of a live space, bytes (measured: 1,877; gzip would
/// make it ~10 times smaller, see the assumptions printed).
pub const DELTA_PLAYLIST_BYTES: f64 = 1_900.0;
/// fMP4 framing on top of the Opus payload: moof/mdat per part and the emsg/ID3 speaking
/// indicators (measured: a 400 ms part of 32 kb/s audio is 2,146 B for 1,600 B of audio).
pub const FMP4_OVERHEAD: f64 = 0.34;
/// Ogg framing on top of the Opus payload (page headers, 200 ms pages), fraction.
pub const OGG_OVERHEAD: f64 = 0.02;

/// The cost of one LL-HLS listener: per part, the part itself and the blocking reload that
/// announced it.
pub fn hls_listener(bitrate: u64, part_ms: u64) -> PerListener {
    let parts_per_s = 1000.0 / part_ms.max(1) as f64;
    let payload = bitrate as f64 / 8.0 * (1.0 + FMP4_OVERHEAD);
    PerListener {
        bytes_per_s: payload + parts_per_s * (2.0 * RESPONSE_OVERHEAD_BYTES + DELTA_PLAYLIST_BYTES),
        requests_per_s: 2.0 * parts_per_s,
    }
}

/// The cost of one Ogg listener: one endless response.
pub fn ogg_listener(bitrate: u64) -> PerListener {
    PerListener {
        bytes_per_s: bitrate as f64 / 8.0 * (1.0 + OGG_OVERHEAD),
        requests_per_s: 0.0,
    }
}

fn ceil_div(a: f64, b: f64) -> u64 {
    if b <= 0.0 {
        return u64::MAX;
    }
    (a / b).ceil().max(0.0) as u64
}

/// The plan for `a`, with node capacities `cap`.
pub fn plan(a: &PlanArgs, cap: Capacity, mut assumptions: Vec<String>) -> Plan {
    let ogg = (a.listeners as f64 * a.ogg_share.clamp(0.0, 1.0)).round() as u64;
    let hls = a.listeners - ogg.min(a.listeners);
    let ph = hls_listener(a.bitrate, a.part_ms);
    let po = ogg_listener(a.bitrate);
    let egress_bytes = hls as f64 * ph.bytes_per_s + ogg as f64 * po.bytes_per_s;
    let egress_gbps = egress_bytes * 8.0 / 1e9;
    let util = a.utilisation.clamp(0.05, 1.0);
    let nic_bytes = a.edge_nic_gbps * 1e9 / 8.0 * util;
    let edges_by_bandwidth = ceil_div(egress_bytes, nic_bytes).max(1);
    // CPU: LL-HLS requests and Ogg listeners, each against its measured per-core figure.
    let edge_core_s = hls as f64 * ph.requests_per_s / cap.edge_requests_per_core
        + ogg as f64 / cap.ogg_listeners_per_core;
    let edges_by_cpu = ceil_div(edge_core_s, a.edge_cores as f64 * util).max(1);
    let (edges, bound) = if edges_by_bandwidth >= edges_by_cpu {
        (edges_by_bandwidth, "bandwidth")
    } else {
        (edges_by_cpu, "cpu")
    };
    // Each edge fetches each object once (cache lock), i.e. costs its parent one listener.
    let shields = if edges > a.fan_in {
        ceil_div(edges as f64, a.fan_in as f64)
    } else {
        0
    };
    let children = if shields > 0 { shields } else { edges };
    let child_cost = if hls > 0 { ph } else { po };
    let peak_joins = a.listeners as f64 * a.peak_minute_share.clamp(0.0, 1.0) / 60.0;
    let participants = (a.listeners as f64 * a.participant_share.clamp(0.0, 1.0)).round();
    assumptions.push(format!(
        "LL-HLS listener: {:.0} B/s ({} b/s audio + {:.0} % fMP4 framing + per {} ms part one \
         part and one blocking delta reload of ~{:.0} B, each with a ~{:.0} B response head), \
         {:.1} requests/s; playlists are {:.0} % of it (gzip at the edges would save ~90 % of \
         that)",
        ph.bytes_per_s,
        a.bitrate,
        FMP4_OVERHEAD * 100.0,
        a.part_ms,
        DELTA_PLAYLIST_BYTES,
        RESPONSE_OVERHEAD_BYTES,
        ph.requests_per_s,
        100.0 * (1000.0 / a.part_ms.max(1) as f64) * DELTA_PLAYLIST_BYTES / ph.bytes_per_s
    ));
    assumptions.push(format!(
        "Ogg listener: {:.0} B/s ({:.0} % Ogg framing)",
        po.bytes_per_s,
        OGG_OVERHEAD * 100.0
    ));
    assumptions.push(format!(
        "edges: {} Gb/s NIC, {} cores, planned at {:.0} % utilisation; every edge coalesces \
         origin fetches (nginx proxy_cache_lock, deploy/nginx/edge.conf: measured one origin \
         fetch per object per edge)",
        a.edge_nic_gbps,
        a.edge_cores,
        util * 100.0
    ));
    assumptions.push(format!(
        "flash crowd: {:.0} % of the audience arrives in the busiest minute; {:.1} % of \
         listeners take part (token, event stream); the others only fetch media, so their \
         joins are edge requests",
        a.peak_minute_share * 100.0,
        a.participant_share * 100.0
    ));
    // The control plane over a cluster: participants spread over nodes (an edge or DNS over all
    // of them); Redis: each node's fixed commands per space, the owner's one append per event
    // frame, and one read per frame batch on each node that mirrors the space.
    let cluster_nodes = ceil_div(participants, a.participants_per_node * util).max(1);
    let spaces = a.spaces.max(1) as f64;
    let redis =
        cluster_nodes as f64 * spaces * (REDIS_COMMANDS_PER_NODE_SPACE + a.events_per_second)
            + spaces * a.events_per_second;
    assumptions.push(format!(
        "cluster node: {} participants (join + event stream) at {:.0} % (measured, \
         bench/cluster/run.sh); Redis: {REDIS_COMMANDS_PER_NODE_SPACE} commands/s per node per \
         space plus, per event frame, one append and one read per mirroring node; one instance \
         serves {} commands/s (measured, redis-benchmark); every participant join is made by the \
         space's owner (measured here: ~1,800 joins/s forwarded to one owner, 3 nodes on 2 cores)",
        si(a.participants_per_node),
        util * 100.0,
        si(a.redis_commands_per_s)
    ));
    Plan {
        listeners: a.listeners,
        hls_listeners: hls,
        ogg_listeners: ogg,
        per_hls_listener: ph,
        per_ogg_listener: po,
        egress_gbps,
        edges,
        edges_by_bandwidth,
        edges_by_cpu,
        edge_bound: bound,
        listeners_per_edge: a.listeners.div_ceil(edges),
        shields,
        origin_egress_mbps: children as f64 * child_cost.bytes_per_s * 8.0 / 1e6,
        origin_requests_per_s: children as f64 * child_cost.requests_per_s,
        origins_per_space: 1,
        peak_joins_per_s: peak_joins,
        peak_joins_per_s_per_edge: peak_joins / edges as f64,
        participant_joins_per_s: peak_joins * a.participant_share.clamp(0.0, 1.0),
        event_streams: participants as u64,
        cluster_nodes,
        participant_joins_per_s_per_node: peak_joins * a.participant_share.clamp(0.0, 1.0)
            / cluster_nodes as f64,
        redis_commands_per_s: redis,
        redis_share: redis / a.redis_commands_per_s.max(1.0),
        assumptions,
    }
}

/// Per-core capacities from the arguments, replaced by a measured `tribune loadtest` result when
/// one is given: an LL-HLS run gives requests per core, an Ogg run listeners per core.
pub fn capacity(a: &PlanArgs) -> Result<(Capacity, Vec<String>)> {
    let mut cap = Capacity {
        edge_requests_per_core: a.edge_requests_per_core,
        ogg_listeners_per_core: a.ogg_listeners_per_core,
    };
    let mut notes = Vec::new();
    let Some(path) = &a.measured else {
        notes.push(format!(
            "per core: {:.0} small HTTP responses/s at an edge, {:.0} Ogg listeners (defaults: \
             this VM's measurements, see bench/RESULTS.md; pass --measured to use your own)",
            cap.edge_requests_per_core, cap.ogg_listeners_per_core
        ));
        return Ok((cap, notes));
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let v: Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let m = measured(&v).with_context(|| format!("{}: not a loadtest result", path.display()))?;
    match m.kind {
        Kind::Hls => cap.edge_requests_per_core = m.per_core,
        Kind::Ogg => cap.ogg_listeners_per_core = m.per_core,
    }
    notes.push(format!(
        "measured ({}): {} {} listeners held on {:.2} cores → {:.0} {} per core",
        path.display(),
        m.held,
        m.kind.name(),
        m.cores,
        m.per_core,
        match m.kind {
            Kind::Hls => "requests/s",
            Kind::Ogg => "listeners",
        }
    ));
    Ok((cap, notes))
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Hls,
    Ogg,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Hls => "LL-HLS",
            Kind::Ogg => "Ogg",
        }
    }
}

#[derive(Debug, PartialEq)]
struct Measured {
    kind: Kind,
    held: u64,
    cores: f64,
    /// LL-HLS: requests/s per core; Ogg: listeners per core.
    per_core: f64,
}

/// Reads the figures the plan needs from a `tribune loadtest --json` result.
fn measured(v: &Value) -> Result<Measured> {
    let held = v["listeners"]["held"]
        .as_u64()
        .context("no listeners.held")?;
    // The steady state after the ramp when the result has it, else the whole run's average.
    let cores = v["server"]["cpu_cores_hold_avg"]
        .as_f64()
        .or_else(|| v["server"]["cpu_cores_avg"].as_f64())
        .context("no server.cpu_cores_avg (run loadtest with --server-pid or --spawn)")?;
    // Less what the stream cost with nobody listening (a space's mixer and encoder run once per
    // origin, not once per edge), when the result measured it.
    let idle = v["server"]["cpu_cores_idle"].as_f64().unwrap_or(0.0);
    let cores = if cores > idle { cores - idle } else { cores };
    anyhow::ensure!(
        held > 0 && cores > 0.0,
        "no listeners held or no CPU measured"
    );
    let mix = v["config"]["mix"].to_string().to_lowercase();
    let hls_only = mix.contains("hls") && !mix.contains("ogg");
    if hls_only {
        let rps = v["throughput"]["requests_per_s"]
            .as_f64()
            .unwrap_or(held as f64 * 5.0);
        Ok(Measured {
            kind: Kind::Hls,
            held,
            cores,
            per_core: rps / cores,
        })
    } else {
        Ok(Measured {
            kind: Kind::Ogg,
            held,
            cores,
            per_core: held as f64 / cores,
        })
    }
}

fn si(n: f64) -> String {
    if n >= 1e6 {
        format!("{:.2} M", n / 1e6)
    } else if n >= 1e4 {
        format!("{:.1} k", n / 1e3)
    } else {
        format!("{n:.0}")
    }
}

/// Runs `tribune plan`.
pub fn run(a: &PlanArgs) -> Result<()> {
    anyhow::ensure!(a.listeners > 0, "--listeners must be at least 1");
    anyhow::ensure!(a.bitrate >= 6_000, "--bitrate is in bits/s (e.g. 32000)");
    let (cap, notes) = capacity(a)?;
    let p = plan(a, cap, notes);
    say!(
        "plan for {} listeners at {} kb/s",
        si(p.listeners as f64),
        a.bitrate / 1000
    );
    say!(
        "  audience       {} LL-HLS + {} Ogg; egress to listeners {:.1} Gb/s",
        si(p.hls_listeners as f64),
        si(p.ogg_listeners as f64),
        p.egress_gbps
    );
    say!(
        "  edges          {} (bandwidth needs {}, CPU needs {}: {}-bound), ~{} listeners each",
        p.edges,
        p.edges_by_bandwidth,
        p.edges_by_cpu,
        p.edge_bound,
        si(p.listeners_per_edge as f64)
    );
    if p.shields > 0 {
        say!(
            "  shields        {} (more than {} edges per parent)",
            p.shields,
            a.fan_in
        );
    } else {
        say!("  shields        none (the origin serves every edge)");
    }
    say!(
        "  origin         1 per live space; egress to its children {:.1} Mb/s, {:.0} requests/s",
        p.origin_egress_mbps,
        p.origin_requests_per_s
    );
    say!(
        "  flash crowd    {} joins/s in the busiest minute ({:.0} per edge); control plane {:.0} \
         participant joins/s, {} event streams",
        si(p.peak_joins_per_s),
        p.peak_joins_per_s_per_edge,
        p.participant_joins_per_s,
        si(p.event_streams as f64)
    );
    say!(
        "  cluster        {} nodes for the control plane ({:.0} participant joins/s each); Redis \
         {:.0} commands/s ({:.1} % of one instance)",
        p.cluster_nodes,
        p.participant_joins_per_s_per_node,
        p.redis_commands_per_s,
        p.redis_share * 100.0
    );
    say!("assumptions:");
    for n in &p.assumptions {
        say!("  - {n}");
    }
    if let Some(path) = &a.json {
        std::fs::write(path, serde_json::to_vec_pretty(&p)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: PlanArgs,
    }

    fn args(extra: &[&str]) -> PlanArgs {
        let mut v = vec!["t"];
        v.extend_from_slice(extra);
        T::parse_from(v).a
    }

    fn caps(a: &PlanArgs) -> Capacity {
        capacity(a).unwrap().0
    }

    #[test]
    fn per_listener_costs() {
        let h = hls_listener(32_000, 400);
        // 5,360 B/s of fMP4 audio + 2.5 × (2 × 280 + 1,900) B of HTTP heads and playlists.
        assert!((h.bytes_per_s - 11_510.0).abs() < 1.0, "{h:?}");
        assert_eq!(h.requests_per_s, 5.0);
        let o = ogg_listener(32_000);
        assert!((o.bytes_per_s - 4_080.0).abs() < 1.0);
        assert_eq!(o.requests_per_s, 0.0);
    }

    #[test]
    fn eight_million() {
        let a = args(&["--listeners", "8000000"]);
        let p = plan(&a, caps(&a), vec![]);
        // 8 M × 11.51 kB/s = 736.6 Gb/s; 6 Gb/s usable per edge → 123 edges.
        assert!((p.egress_gbps - 736.64).abs() < 0.1, "{}", p.egress_gbps);
        assert_eq!(p.edges_by_bandwidth, 123);
        // 40 M requests/s over 57 k per core × 16 × 0.6 → 74 edges: bandwidth decides.
        assert_eq!(p.edges_by_cpu, 74);
        assert_eq!((p.edges, p.edge_bound), (123, "bandwidth"));
        assert_eq!(p.shields, 0);
        // The origin sees ~101 listeners' worth of traffic, not 8 M.
        assert!(p.origin_egress_mbps < 12.0, "{}", p.origin_egress_mbps);
        assert!((p.peak_joins_per_s - 66_666.7).abs() < 1.0);
        assert_eq!(p.event_streams, 160_000);
        // 160 k participants at 18 k per node and 60 %: 15 nodes; Redis 15 × (7.5 + 8) + 8.
        assert_eq!(p.cluster_nodes, 15);
        assert!(
            (p.redis_commands_per_s - 240.5).abs() < 0.5,
            "{}",
            p.redis_commands_per_s
        );
    }

    #[test]
    fn the_cluster_grows_with_the_participants_and_redis_with_nodes_and_spaces() {
        let one = plan(
            &args(&["--listeners", "1000000"]),
            caps(&args(&["--listeners", "1"])),
            vec![],
        );
        let a = args(&[
            "--listeners",
            "1000000",
            "--participant-share",
            "0.1",
            "--spaces",
            "10",
        ]);
        let more = plan(&a, caps(&a), vec![]);
        assert!(more.cluster_nodes > one.cluster_nodes);
        assert!(more.redis_commands_per_s > 10.0 * one.redis_commands_per_s);
        let tiny = plan(
            &args(&["--listeners", "10"]),
            caps(&args(&["--listeners", "10"])),
            vec![],
        );
        assert_eq!(tiny.cluster_nodes, 1, "at least one node");
    }

    #[test]
    fn more_edges_than_fan_in_add_a_shield_tier() {
        let a = args(&[
            "--listeners",
            "8000000",
            "--edge-nic-gbps",
            "1",
            "--fan-in",
            "500",
        ]);
        let p = plan(&a, caps(&a), vec![]);
        assert_eq!(p.edges_by_bandwidth, 1228);
        assert_eq!(p.shields, 3);
        // The origin serves the 3 shields only.
        assert_eq!(p.origin_requests_per_s, 15.0);
    }

    #[test]
    fn the_edge_count_grows_with_the_audience() {
        let mut last = 0;
        for n in [1u64, 1_000, 100_000, 1_000_000, 8_000_000, 50_000_000] {
            let a = args(&["--listeners", &n.to_string()]);
            let p = plan(&a, caps(&a), vec![]);
            assert!(p.edges >= last.max(1), "{n}: {} < {last}", p.edges);
            assert!(p.listeners_per_edge * p.edges >= n);
            last = p.edges;
        }
    }

    #[test]
    fn ogg_share_and_a_measured_result() {
        let a = args(&["--listeners", "100000", "--ogg-share", "1"]);
        let p = plan(&a, caps(&a), vec![]);
        assert_eq!((p.hls_listeners, p.ogg_listeners), (0, 100_000));
        assert_eq!(p.origin_requests_per_s, 0.0);

        let ogg = serde_json::json!({
            "config": {"mix": {"ogg": 100}},
            "listeners": {"held": 18000},
            "server": {"cpu_cores_avg": 0.9},
        });
        let m = measured(&ogg).unwrap();
        assert_eq!(m.kind, Kind::Ogg);
        assert!((m.per_core - 20_000.0).abs() < 1e-6);
        let hls = serde_json::json!({
            "config": {"mix": "hls=100"},
            "listeners": {"held": 10000},
            "server": {"cpu_cores_avg": 1.0},
            "throughput": {"requests_per_s": 50000.0},
        });
        let m = measured(&hls).unwrap();
        assert_eq!(m.kind, Kind::Hls);
        assert_eq!(m.per_core, 50_000.0);
        assert!(measured(&serde_json::json!({})).is_err());
        assert!(
            measured(
                &serde_json::json!({"listeners": {"held": 0}, "server": {"cpu_cores_avg": 1.0}})
            )
            .is_err()
        );
    }
}
