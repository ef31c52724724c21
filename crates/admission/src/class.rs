//! Which class a request belongs to, from its method and path alone (sans-IO, allocation-free).
//!
//! The class decides its share of the node's capacity and its rate limits (see
//! the server's guard). The path only *proposes* [`Class::Control`]: the guard grants it to a
//! request carrying the operator key, or the token of a participant the room seats now as host,
//! co-host or speaker of the space the path names (whatever the rest of the path), and treats a
//! control path without one as browsing, so that nobody can take the host's capacity by naming
//! a control path.

use crate::refusal::Class;

/// What the path says about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Health and metrics: never limited (load balancers and monitoring must always get an
    /// answer, and they are cheap).
    Exempt,
    /// Shared bytes: HLS playlists, parts and segments, and the web app's files. Answered from
    /// memory, cacheable, and requested often by every listener (a low-latency HLS player makes
    /// about five requests a second, and a venue's NAT may carry hundreds of players), so they
    /// are neither limited per address nor counted in flight (a blocking playlist reload waits
    /// seconds by design).
    Shared,
    /// A class, and whether the request is a listener *entering* (a join, a live.opus stream,
    /// an event stream): those also count against the per-address join rate.
    Class { class: Class, entry: bool },
    /// A WHIP offer: control, with its own per-address and per-token offer rate.
    WhipOffer,
}

const fn class(class: Class, entry: bool) -> Kind {
    Kind::Class { class, entry }
}

/// Classifies a request by method and path (the query is ignored).
pub fn classify(method: &str, path: &str) -> Kind {
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    if path == "/healthz" || path == "/metrics" {
        return Kind::Exempt;
    }
    let post = method == "POST";
    if path.starts_with("/api/admin/") {
        return class(Class::Control, false);
    }
    if path == "/api/spaces" {
        return if post {
            class(Class::Control, false)
        } else {
            class(Class::Browse, false)
        };
    }
    if let Some(rest) = path.strip_prefix("/api/spaces/") {
        let mut parts = rest.splitn(3, '/');
        let _id = parts.next();
        let what = parts.next().unwrap_or("");
        let more = parts.next();
        return match (what, more) {
            ("whip", None) if post => Kind::WhipOffer,
            ("whip", _) => class(Class::Control, false),
            ("join", None) if post => class(Class::Join, true),
            ("events", None) => class(Class::Join, true),
            // The ticket that opens an event stream: joining, counted once, at the stream.
            ("events", Some("ticket")) if post => class(Class::Join, false),
            ("challenge", None) => class(Class::Join, false),
            ("tokens", None) => class(Class::Control, false),
            // Raising a hand is a listener's; the other stage actions are moderation, and a
            // moderator's credential promotes them anyway.
            ("stage", _) => class(Class::Browse, false),
            ("presence" | "beacon" | "reactions" | "timeline" | "audience", None) => {
                class(Class::Browse, false)
            }
            // Lifecycle verbs (start, end, resume, takeover): the host's.
            (_, None) if post && !what.is_empty() => class(Class::Control, false),
            _ => class(Class::Browse, false),
        };
    }
    if let Some(rest) = path.strip_prefix("/spaces/") {
        if rest.ends_with("/live.opus") {
            return class(Class::Join, true);
        }
        if rest.contains("/hls/") || rest.ends_with("/snapshot.json") {
            return Kind::Shared;
        }
    }
    if path.starts_with("/app/") {
        return Kind::Shared;
    }
    class(Class::Browse, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table() {
        let c = |cl, entry| Kind::Class { class: cl, entry };
        let cases = [
            ("GET", "/healthz", Kind::Exempt),
            ("GET", "/metrics", Kind::Exempt),
            ("POST", "/api/spaces", c(Class::Control, false)),
            ("GET", "/api/spaces", c(Class::Browse, false)),
            ("GET", "/api/spaces/x", c(Class::Browse, false)),
            ("POST", "/api/spaces/x/join", c(Class::Join, true)),
            ("GET", "/api/spaces/x/events?ticket=a", c(Class::Join, true)),
            ("POST", "/api/spaces/x/events/ticket", c(Class::Join, false)),
            ("GET", "/api/spaces/x/challenge", c(Class::Join, false)),
            ("POST", "/api/spaces/x/whip", Kind::WhipOffer),
            ("DELETE", "/api/spaces/x/whip/s1", c(Class::Control, false)),
            ("OPTIONS", "/api/spaces/x/whip", c(Class::Control, false)),
            ("POST", "/api/spaces/x/tokens", c(Class::Control, false)),
            ("POST", "/api/spaces/x/end", c(Class::Control, false)),
            ("POST", "/api/spaces/x/start", c(Class::Control, false)),
            ("POST", "/api/spaces/x/stage/raise", c(Class::Browse, false)),
            ("POST", "/api/spaces/x/reactions", c(Class::Browse, false)),
            ("POST", "/api/spaces/x/presence", c(Class::Browse, false)),
            ("POST", "/api/spaces/x/beacon", c(Class::Browse, false)),
            ("GET", "/spaces/x/snapshot.json", Kind::Shared),
            ("GET", "/api/admin/shield", c(Class::Control, false)),
            ("GET", "/spaces/x/live.opus", c(Class::Join, true)),
            ("GET", "/spaces/x/hls/live.m3u8", Kind::Shared),
            ("GET", "/spaces/x/hls/part/3.2.m4s", Kind::Shared),
            ("GET", "/spaces/x/recording.opus", c(Class::Browse, false)),
            ("GET", "/spaces/x", c(Class::Browse, false)),
            ("GET", "/", c(Class::Browse, false)),
            ("GET", "/app/app.js", Kind::Shared),
            ("GET", "/nonsense", c(Class::Browse, false)),
        ];
        for (m, p, want) in cases {
            assert_eq!(classify(m, p), want, "{m} {p}");
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(m in "[A-Z]{0,8}", p in ".{0,200}") {
            let _ = classify(&m, &p);
        }
    }
}
