//! The honest answers a client gets when tribune will not serve it now: what happened, and how
//! long to wait. Every refusal under load is one of these, so a client (the web app, `tribune
//! loadtest`, a player) can tell "wait N seconds" from a real error, and every one is counted by
//! reason and class (`tribune_refusals_total{reason, class}`).
//!
//! | code | status | meaning | `Retry-After` |
//! |---|---|---|---|
//! | `waiting_room` | 503 | the node has its maximum of listeners; you hold a place (`position`, `ticket`) | yes |
//! | `overloaded` | 503 | this class of request is at its share of the node's capacity | yes |
//! | `rate_limited` | 429 | too many requests from your address or token | yes |
//! | `too_many_connections` | 429 | too many connections from your address | yes |
//! | `proof_of_work_required` | 403 | the shield is on: solve the `challenge` and retry with it | no |
//! | `proof_of_work_invalid` | 403 | the ticket is malformed, for another space, expired or wrong | no |
//! | `proof_of_work_reused` | 403 | the ticket was already used | no |
//!
//! The body is the usual `{"error", "message"}` plus fields named in the table (and
//! `retry_after_s` wherever `Retry-After` is sent).

use http::{HeaderName, HeaderValue, StatusCode, header};
use serde_json::{Value, json};

/// Which kind of request was refused (the `class` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// Host, co-host, speaker and operator requests (stage, lifecycle, WHIP, tokens).
    Control,
    /// A listener coming in: `/join`, live.opus, the event stream, HLS.
    Join,
    /// Everything else: pages, lists, reactions, presence.
    Browse,
}

impl Class {
    pub const ALL: [Class; 3] = [Class::Control, Class::Join, Class::Browse];

    pub fn as_str(self) -> &'static str {
        match self {
            Class::Control => "control",
            Class::Join => "join",
            Class::Browse => "browse",
        }
    }
}

/// Why a request was refused (the `reason` label, and the body's `error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    WaitingRoom,
    Overloaded,
    RateLimited,
    TooManyConnections,
    ProofOfWorkRequired,
    ProofOfWorkInvalid,
    ProofOfWorkReused,
    /// A request head that was too large or too slow (no body is sent for these: the connection
    /// is closed or answered by hyper).
    BadHead,
}

impl Reason {
    pub const ALL: [Reason; 8] = [
        Reason::WaitingRoom,
        Reason::Overloaded,
        Reason::RateLimited,
        Reason::TooManyConnections,
        Reason::ProofOfWorkRequired,
        Reason::ProofOfWorkInvalid,
        Reason::ProofOfWorkReused,
        Reason::BadHead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::WaitingRoom => "waiting_room",
            Reason::Overloaded => "overloaded",
            Reason::RateLimited => "rate_limited",
            Reason::TooManyConnections => "too_many_connections",
            Reason::ProofOfWorkRequired => "proof_of_work_required",
            Reason::ProofOfWorkInvalid => "proof_of_work_invalid",
            Reason::ProofOfWorkReused => "proof_of_work_reused",
            Reason::BadHead => "bad_head",
        }
    }

    fn status(self) -> StatusCode {
        match self {
            Reason::WaitingRoom | Reason::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            Reason::RateLimited | Reason::TooManyConnections => StatusCode::TOO_MANY_REQUESTS,
            Reason::ProofOfWorkRequired
            | Reason::ProofOfWorkInvalid
            | Reason::ProofOfWorkReused => StatusCode::FORBIDDEN,
            Reason::BadHead => StatusCode::BAD_REQUEST,
        }
    }
}

/// A refusal: status, `Retry-After`, extra headers and the JSON body.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub reason: Reason,
    pub message: String,
    pub retry_after_s: Option<u64>,
    /// Extra body fields (`position`, `ticket`, `hls`, `challenge`, …).
    pub fields: serde_json::Map<String, Value>,
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl Refusal {
    pub fn new(reason: Reason, message: impl Into<String>) -> Refusal {
        Refusal {
            reason,
            message: message.into(),
            retry_after_s: None,
            fields: serde_json::Map::new(),
            headers: Vec::new(),
        }
    }

    /// Adds `Retry-After` (and `retry_after_s` in the body).
    pub fn retry_after(mut self, seconds: u64) -> Refusal {
        self.retry_after_s = Some(seconds);
        self
    }

    pub fn field(mut self, name: &str, value: impl Into<Value>) -> Refusal {
        self.fields.insert(name.to_owned(), value.into());
        self
    }

    pub fn header(mut self, name: header::HeaderName, value: &str) -> Refusal {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.push((name, v));
        }
        self
    }

    pub fn status(&self) -> StatusCode {
        self.reason.status()
    }
}

impl Refusal {
    /// The answer to send: status, headers (`Retry-After`, `Cache-Control: no-store`, then the
    /// extra ones) and the JSON body (`{"error", "message"}`, `retry_after_s`, the fields).
    pub fn into_parts(self) -> (StatusCode, Vec<(HeaderName, HeaderValue)>, Value) {
        let mut body = json!({ "error": self.reason.as_str(), "message": self.message });
        if let Some(obj) = body.as_object_mut() {
            if let Some(s) = self.retry_after_s {
                obj.insert("retry_after_s".into(), s.into());
            }
            obj.extend(self.fields);
        }
        let mut headers = Vec::with_capacity(self.headers.len() + 2);
        if let Some(s) = self.retry_after_s {
            headers.push((header::RETRY_AFTER, HeaderValue::from(s)));
        }
        headers.push((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
        headers.extend(self.headers);
        (self.reason.status(), headers, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_and_headers_carry_the_wait() {
        let (status, headers, v) = Refusal::new(Reason::WaitingRoom, "full")
            .retry_after(4)
            .field("position", 12)
            .header(header::CONNECTION, "close")
            .into_parts();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        let h = |n: HeaderName| {
            headers
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(h(header::RETRY_AFTER).unwrap(), "4");
        assert_eq!(h(header::CACHE_CONTROL).unwrap(), "no-store");
        assert_eq!(h(header::CONNECTION).unwrap(), "close");
        assert_eq!(v["error"], "waiting_room");
        assert_eq!(v["retry_after_s"], 4);
        assert_eq!(v["position"], 12);
    }

    #[test]
    fn statuses() {
        assert_eq!(Reason::RateLimited.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(Reason::ProofOfWorkReused.status(), StatusCode::FORBIDDEN);
        assert_eq!(Reason::Overloaded.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
