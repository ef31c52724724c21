//! The audience listeners' admission of requests: classes, rate limits and capacity shares.
//!
//! Every request on an audience listener (`--listen`, `--tls-listen`; not `--control-listen`)
//! passes [`layer`] before any handler runs:
//! 1. **Class** ([`tribune_admission::class::classify`]): control (the operator key, or the token of a participant
//!    the room seats *now* as host, co-host or speaker of the space the path names, whatever
//!    the rest of the path; see [`privileged`]), join (a listener coming in)
//!    or browse (everything else, control paths without such a credential included). HLS
//!    objects and the app's files are shared bytes, neither limited per address nor counted in
//!    flight.
//! 2. **Rate limits per client address** (governor, keyed; the address is the TCP peer, or the
//!    forwarded client behind a `--trusted-proxy`; an IPv6 client counts by its /64): `--ip-rate` requests per second for join and
//!    browse requests, `--join-rate` for listeners entering, `--whip-rate` WHIP offers per minute
//!    per address and per token. A trusted proxy's own requests (an edge filling its cache) are
//!    not limited per address. Over a limit: `429 rate_limited` with `Retry-After`.
//! 3. **Capacity shares**: at most `--max-inflight` requests are in progress (until their
//!    response head); control may use all of it, join three quarters, browse half. So under a
//!    flood of page loads, listeners still get in, and under a flood of joins, the host's
//!    requests still find room. Over its share: `503 overloaded` with `Retry-After`.
//!
//! Everything here is checked before the request's body is read and before any per-request
//! state is built; a refusal is a few hundred bytes written from a template. Each is counted in
//! `tribune_refusals_total{reason, class}`. The lean live.opus path ([`crate::plain`]) calls
//! [`Guard::check_entry`] itself, since it does not go through axum.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime};

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tribune_room::Role;

use crate::app::AppState;
use crate::config::Limits;
use crate::refusal::IntoHttp as _;
use crate::refusal::{Class, Reason, Refusal};
pub use tribune_admission::class::{Kind, classify};

type Limiter<K> = DefaultKeyedRateLimiter<K>;

/// Keyed limiters are swept of idle keys once they hold this many.
const SWEEP_AT: usize = 10_000;

/// Request classes, rate limits and in-flight shares (see the module doc).
pub struct Guard {
    inflight: AtomicU32,
    max_inflight: u32,
    per_ip: Option<Limiter<IpAddr>>,
    join_per_ip: Option<Limiter<IpAddr>>,
    whip_per_ip: Option<Limiter<IpAddr>>,
    whip_per_token: Option<Limiter<u64>>,
    trusted: Vec<IpAddr>,
    checks: AtomicU64,
}

fn limiter<K: std::hash::Hash + Eq + Clone>(quota: Option<Quota>) -> Option<Limiter<K>> {
    quota.map(RateLimiter::keyed)
}

fn per_second(rate: u32, burst_factor: u32) -> Option<Quota> {
    let r = NonZeroU32::new(rate)?;
    let burst = NonZeroU32::new(rate.saturating_mul(burst_factor)).unwrap_or(r);
    Some(Quota::per_second(r).allow_burst(burst))
}

/// `rate` per minute, in bursts of half of it (at least 6: a speaker whose network flaps
/// republishes a few times in a row).
fn per_minute(rate: u32) -> Option<Quota> {
    let r = NonZeroU32::new(rate)?;
    let burst = NonZeroU32::new((rate / 2).max(6)).unwrap_or(r);
    Some(Quota::per_minute(r).allow_burst(burst))
}

/// An address may carry several speakers (a studio, a NAT): five times a token's offer rate,
/// in bursts of a minute's worth of one token's.
fn per_minute_per_address(rate: u32) -> Option<Quota> {
    let r = NonZeroU32::new(rate.saturating_mul(5))?;
    let burst = NonZeroU32::new(rate.max(3)).unwrap_or(r);
    Some(Quota::per_minute(r).allow_burst(burst))
}

impl Guard {
    pub fn new(limits: &Limits, trusted: &[IpAddr]) -> Guard {
        Guard {
            inflight: AtomicU32::new(0),
            max_inflight: limits.max_inflight,
            per_ip: limiter(per_second(limits.ip_rate, 2)),
            join_per_ip: limiter(per_second(limits.join_rate, 4)),
            whip_per_ip: limiter(per_minute_per_address(limits.whip_rate)),
            whip_per_token: limiter(per_minute(limits.whip_rate)),
            trusted: trusted.iter().map(|ip| ip.to_canonical()).collect(),
            checks: AtomicU64::new(0),
        }
    }

    /// The in-flight requests `class` may take up to.
    pub fn share(&self, class: Class) -> u32 {
        match class {
            Class::Control => self.max_inflight,
            Class::Join => self.max_inflight / 4 * 3,
            Class::Browse => self.max_inflight / 2,
        }
    }

    /// Requests in progress now.
    pub fn inflight(&self) -> u32 {
        self.inflight.load(Relaxed)
    }

    /// Whether `peer` is a trusted proxy speaking for itself (no forwarded client): an edge
    /// filling its cache, not limited per address.
    fn is_proxy_itself(&self, peer: IpAddr, client: IpAddr) -> bool {
        let peer = peer.to_canonical();
        client == peer && self.trusted.contains(&peer)
    }

    /// A listener entering from `client` (through TCP peer `peer`): the per-address request
    /// and join rates.
    pub fn check_entry(&self, peer: IpAddr, client: IpAddr) -> Result<(), Refusal> {
        if self.is_proxy_itself(peer, client) {
            return Ok(());
        }
        let key = tribune_admission::address_key(client);
        self.check_ip(&self.per_ip, key, Class::Join)?;
        self.check_ip(&self.join_per_ip, key, Class::Join)
    }

    fn check_ip(
        &self,
        limiter: &Option<Limiter<IpAddr>>,
        ip: IpAddr,
        class: Class,
    ) -> Result<(), Refusal> {
        let Some(l) = limiter else { return Ok(()) };
        self.sweep(l);
        l.check_key(&ip).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            rate_limited(wait, class, "from your address")
        })
    }

    /// A WHIP offer: per address, and per credential when it brings one.
    fn check_whip(&self, client: IpAddr, token: Option<&str>) -> Result<(), Refusal> {
        let key = tribune_admission::address_key(client);
        self.check_ip(&self.whip_per_ip, key, Class::Control)?;
        if let (Some(l), Some(t)) = (&self.whip_per_token, token) {
            self.sweep(l);
            let key = token_key(t);
            l.check_key(&key).map_err(|not_until| {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                rate_limited(wait, Class::Control, "with this token")
            })?;
        }
        Ok(())
    }

    fn sweep<K: std::hash::Hash + Eq + Clone>(&self, l: &Limiter<K>) {
        if self.checks.fetch_add(1, Relaxed).is_multiple_of(4096) && l.len() > SWEEP_AT {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }

    /// Takes an in-flight place for `class`, or says the class is at its share.
    fn enter(&self, class: Class) -> Result<Inflight<'_>, Refusal> {
        let n = self.inflight.fetch_add(1, Relaxed) + 1;
        if n > self.share(class) {
            self.inflight.fetch_sub(1, Relaxed);
            let wait = retry_after_s();
            return Err(Refusal::new(
                Reason::Overloaded,
                format!(
                    "this server is busy with {} requests: retry in {wait} s",
                    self.share(class)
                ),
            )
            .retry_after(wait));
        }
        Ok(Inflight(&self.inflight))
    }
}

/// An in-flight place, given back on drop.
struct Inflight<'a>(&'a AtomicU32);

impl Drop for Inflight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// A stable key for a credential (the limiter need not hold the token itself).
fn token_key(token: &str) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // A fixed-key hasher: the same token gets the same key for the life of the process.
    static STATE: std::sync::OnceLock<std::collections::hash_map::RandomState> =
        std::sync::OnceLock::new();
    let mut h = STATE.get_or_init(Default::default).build_hasher();
    h.write(token.as_bytes());
    h.finish()
}

fn rate_limited(wait: Duration, class: Class, what: &str) -> Refusal {
    // Whole seconds, at least one, plus up to a second of jitter.
    let secs = wait.as_secs() + 1 + u64::from(rand::random::<bool>());
    Refusal::new(
        Reason::RateLimited,
        format!("too many requests {what}: retry in {secs} s"),
    )
    .retry_after(secs)
    .field("class", class.as_str())
}

/// The request's credential: `Authorization: Bearer …`, or an event-stream ticket (`ticket=`
/// in the query).
fn credential(req: &Request) -> Option<&str> {
    if let Some(t) = crate::api::bearer(req.headers()) {
        return Some(t);
    }
    req.uri()
        .query()?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "ticket")
        .map(|(_, v)| v)
}

/// Whether `token` is the operator key, or the token of a participant whom the room seats *now*
/// as host, co-host or speaker of the space the path names.
///
/// The token is checked as the handlers check it (signature and expiry), but its role is only a
/// claim: the room's current role decides ([`tribune_engine::space::Space::current_role`]), so a speaker
/// moved back to the audience, removed or banned loses the control class with its seat. A
/// participant's token counts only on paths of its own space: on another space's paths, and on
/// paths naming no space (`/api/spaces`, `/api/admin/…`, the pages), it lifts nothing. The cost
/// on every request: one signature check, one look-up in the spaces map, one room lock.
fn privileged(app: &AppState, token: &str, path: &str) -> bool {
    if crate::auth::key_matches(token, &app.cfg.admin_key) {
        return true;
    }
    let Some(id) = space_of(path) else {
        return false;
    };
    let now = SystemTime::now();
    app.keys
        .verify(token, now)
        .or_else(|_| app.keys.verify_ticket(token, now))
        .is_ok_and(|c| c.space == id && (c.operator || seated_now(app, id, &c.sub, c.role)))
}

/// Whether space `id`'s room gives `sub` (whose token claims `token_role`) a stage role now.
fn seated_now(app: &AppState, id: &str, sub: &str, token_role: Role) -> bool {
    app.spaces.get(id).is_some_and(|space| {
        space
            .current_role(sub, token_role)
            .is_ok_and(Role::on_stage)
    })
}

/// The class a request gets: control when its credential is privileged for the path (see
/// [`privileged`]), else the class its path proposes, with control paths demoted to browsing.
fn class_of(app: &AppState, token: Option<&str>, path: &str, proposed: Class) -> Class {
    if token.is_some_and(|t| privileged(app, t, path)) {
        Class::Control
    } else if proposed == Class::Control {
        Class::Browse
    } else {
        proposed
    }
}

/// The space id a path names (`/api/spaces/{id}/…`, `/spaces/{id}/…`), if any.
fn space_of(path: &str) -> Option<&str> {
    let rest = path
        .strip_prefix("/api/spaces/")
        .or_else(|| path.strip_prefix("/spaces/"))?;
    rest.split(['/', '?']).next().filter(|s| !s.is_empty())
}

/// The axum middleware on the audience listeners (see the module doc).
pub async fn layer(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if !matches!(path, "/metrics" | "/healthz") {
        app.metrics.http_requests.fetch_add(1, Relaxed);
    }
    if path.ends_with("/beacon") {
        app.metrics.beacon_requests.fetch_add(1, Relaxed);
    }
    let kind = classify(req.method().as_str(), req.uri().path());
    let (proposed, entry) = match kind {
        Kind::Exempt | Kind::Shared => return next.run(req).await,
        Kind::WhipOffer => (Class::Control, false),
        Kind::Class { class, entry } => (class, entry),
    };
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    let client = crate::cluster::client_ip(&app, peer, req.headers());
    let token = credential(&req);
    // Control is earned by a credential, not by a path: a control path without one is browsing.
    let class = class_of(&app, token, req.uri().path(), proposed);
    let g = &app.guard;
    let limited = if kind == Kind::WhipOffer {
        g.check_whip(client, token)
    } else if class == Class::Control || g.is_proxy_itself(peer.ip(), client) {
        Ok(())
    } else if entry {
        g.check_entry(peer.ip(), client)
    } else {
        g.check_ip(&g.per_ip, tribune_admission::address_key(client), class)
    };
    if let Err(r) = limited {
        app.metrics.refused(r.reason, class);
        return r.into_response();
    }
    let place = match g.enter(class) {
        Ok(p) => p,
        Err(r) => {
            app.metrics.refused(r.reason, class);
            return r.field("class", class.as_str()).into_response();
        }
    };
    let resp = next.run(req).await;
    drop(place);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(ip_rate: u32, join_rate: u32, whip_rate: u32, max_inflight: u32) -> Limits {
        Limits {
            control_listen: None,
            max_conns_per_ip: 0,
            max_inflight,
            ip_rate,
            join_rate,
            whip_rate,
            idle_timeout: Duration::from_secs(60),
            max_header_bytes: 16384,
        }
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 3));

    #[test]
    fn shares_put_control_first() {
        let g = Guard::new(&limits(0, 0, 0, 8), &[]);
        let browse: Vec<_> = (0..4).map(|_| g.enter(Class::Browse).unwrap()).collect();
        assert_eq!(
            g.enter(Class::Browse).err().map(|r| r.reason),
            Some(Reason::Overloaded),
            "browse stops at half"
        );
        let join: Vec<_> = (0..2).map(|_| g.enter(Class::Join).unwrap()).collect();
        assert!(
            g.enter(Class::Join).is_err(),
            "join stops at three quarters"
        );
        let control: Vec<_> = (0..2).map(|_| g.enter(Class::Control).unwrap()).collect();
        let refused = g.enter(Class::Control).err().unwrap();
        assert_eq!(refused.reason, Reason::Overloaded);
        assert!(refused.retry_after_s.is_some());
        assert_eq!(g.inflight(), 8);
        drop((browse, join, control));
        assert_eq!(g.inflight(), 0, "places are given back");
    }

    #[test]
    fn entry_rate_is_per_address() {
        let g = Guard::new(&limits(100, 2, 0, 8), &[]);
        // join_rate 2/s, bursts of 8.
        for _ in 0..8 {
            g.check_entry(A, A).unwrap();
        }
        let r = g.check_entry(A, A).unwrap_err();
        assert_eq!(r.reason, Reason::RateLimited);
        assert!(r.retry_after_s.is_some_and(|s| (1..=3).contains(&s)));
        g.check_entry(B, B)
            .expect("another address is not affected");
    }

    #[test]
    fn a_trusted_proxy_is_limited_per_forwarded_client_only() {
        let g = Guard::new(&limits(1, 1, 0, 8), &[A]);
        for _ in 0..100 {
            g.check_entry(A, A).expect("the edge itself is not limited");
        }
        for _ in 0..2 {
            g.check_entry(A, B).unwrap();
        }
        assert!(g.check_entry(A, B).is_err(), "its clients are");
    }

    #[test]
    fn whip_offers_per_address_and_per_token() {
        let g = Guard::new(&limits(0, 0, 12, 8), &[]);
        // A token: 12 per minute, bursts of 6.
        for _ in 0..6 {
            g.check_whip(A, Some("tok")).unwrap();
        }
        assert!(g.check_whip(B, Some("tok")).is_err(), "the token is spent");
        // An address: 60 per minute, bursts of 12, whatever the tokens.
        for i in 6..12 {
            g.check_whip(A, Some(&format!("t{i}"))).unwrap();
        }
        assert!(
            g.check_whip(A, Some("fresh")).is_err(),
            "the address is spent"
        );
        g.check_whip(B, Some("other")).unwrap();
    }

    #[test]
    fn the_space_of_a_path() {
        assert_eq!(space_of("/api/spaces/abc/join"), Some("abc"));
        assert_eq!(space_of("/spaces/abc/live.opus"), Some("abc"));
        assert_eq!(space_of("/api/spaces/abc?x=1"), Some("abc"));
        assert_eq!(space_of("/api/spaces"), None);
        assert_eq!(space_of("/api/admin/shield"), None);
        assert_eq!(space_of("/"), None);
    }

    /// A server with spaces `ga` and `gb`, a speaker `s1` of `ga`: the server, the speaker's
    /// token and `ga`'s host's sub.
    async fn two_spaces(name: &str) -> (crate::Server, String, String) {
        let dir = std::env::temp_dir().join(format!("tribune-guard-{name}-{}", std::process::id()));
        let server = crate::Server::bind(crate::Config::for_tests(dir))
            .await
            .unwrap();
        let app = &server.app;
        let host = app
            .create_space(Some("ga"), "A", "", "Host", None)
            .unwrap()
            .host_sub;
        app.create_space(Some("gb"), "B", "", "Host", None).unwrap();
        let (speaker, _) = app.mint("ga", "s1", "Sam", Role::Speaker);
        (server, speaker, host)
    }

    #[tokio::test]
    async fn a_demoted_speaker_gets_the_audience_class() {
        let (server, speaker, host) = two_spaces("demoted").await;
        let app = &server.app;
        let whip = "/api/spaces/ga/whip";
        let events = "/api/spaces/ga/events";
        assert_eq!(
            class_of(app, Some(speaker.as_str()), whip, Class::Control),
            Class::Control
        );
        let space = app.spaces.get("ga").unwrap();
        // On stage (the grant enters the record), then moved back to the audience.
        let sam = tribune_room::Actor::new("s1", "Sam", Role::Speaker);
        space
            .command(&sam, tribune_room::Command::MuteSelf)
            .unwrap();
        assert_eq!(
            class_of(app, Some(speaker.as_str()), whip, Class::Control),
            Class::Control
        );
        let host = tribune_room::Actor::new(host, "Host", Role::Host);
        let demote = tribune_room::Command::MoveToAudience {
            target: "s1".into(),
        };
        space.command(&host, demote).unwrap();
        assert_eq!(
            class_of(app, Some(speaker.as_str()), whip, Class::Control),
            Class::Browse,
            "its old speaker token is a listener's now"
        );
        assert_eq!(
            class_of(app, Some(speaker.as_str()), events, Class::Join),
            Class::Join
        );
        // The operator key stays privileged everywhere.
        let key = app.cfg.admin_key.clone();
        assert_eq!(
            class_of(app, Some(key.as_str()), whip, Class::Control),
            Class::Control
        );
        assert_eq!(
            class_of(app, Some(key.as_str()), "/api/spaces", Class::Control),
            Class::Control
        );
    }

    #[tokio::test]
    async fn a_speaker_token_is_privileged_on_its_own_space_only() {
        let (server, speaker, _) = two_spaces("other").await;
        let app = &server.app;
        let s = Some(speaker.as_str());
        assert_eq!(
            class_of(app, s, "/api/spaces/ga/end", Class::Control),
            Class::Control
        );
        assert_eq!(
            class_of(app, s, "/spaces/ga/live.opus", Class::Join),
            Class::Control
        );
        for (path, proposed, want) in [
            ("/api/spaces/gb/end", Class::Control, Class::Browse),
            ("/api/spaces/gb/join", Class::Join, Class::Join),
            ("/spaces/gb/live.opus", Class::Join, Class::Join),
            ("/api/spaces", Class::Control, Class::Browse),
            ("/api/spaces", Class::Browse, Class::Browse),
            ("/api/admin/shield", Class::Control, Class::Browse),
            ("/", Class::Browse, Class::Browse),
            ("/api/spaces/nope/end", Class::Control, Class::Browse),
        ] {
            assert_eq!(class_of(app, s, path, proposed), want, "{path}");
        }
    }

    #[test]
    fn zero_means_unlimited() {
        let g = Guard::new(&limits(0, 0, 0, 8), &[]);
        for _ in 0..10_000 {
            g.check_entry(A, A).unwrap();
            g.check_whip(A, Some("t")).unwrap();
        }
    }
}

/// Seconds a refused listener should wait: 2 to 6, at random, so that a crowd turned away
/// together does not come back together.
fn retry_after_s() -> u64 {
    2 + rand::random::<u64>() % 5
}

#[cfg(test)]
mod retry_tests {
    #[test]
    fn retry_after_is_jittered_within_bounds() {
        let seen: std::collections::BTreeSet<u64> =
            (0..500).map(|_| super::retry_after_s()).collect();
        assert!(seen.iter().all(|s| (2..=6).contains(s)));
        assert!(seen.len() > 1);
    }
}
