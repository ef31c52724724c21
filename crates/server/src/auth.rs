//! Role tokens (JWT, HS256) and the operator key.
//!
//! A token names one participant (`sub`) of one space (`space`) with one role. Validation uses
//! zero leeway: a token is dead the second its `exp` passes (jsonwebtoken's default leeway of
//! 60 s would keep it alive for a minute).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::Rng;
use serde::{Deserialize, Serialize};

pub use tribune_room::Role;

/// The claims of a tribune token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Participant id.
    pub sub: String,
    /// Display name.
    pub name: String,
    /// Space id.
    pub space: String,
    pub role: Role,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Unique token id.
    pub jti: String,
    /// Absent on a credential. [`TICKET_SCOPE`] on an event-stream ticket, which
    /// [`Keys::verify`] refuses: a ticket opens the event stream and nothing else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// On a ticket minted for the operator key (whose holder has no token of its own).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub operator: bool,
}

/// The `scope` of an event-stream ticket.
pub const TICKET_SCOPE: &str = "events";
/// How long an event-stream ticket may be used to open the stream: it travels in the URL
/// (`EventSource` cannot send headers), so proxy logs may keep it; a minute later it opens
/// nothing. An open stream is not cut when its ticket expires.
pub const TICKET_TTL: Duration = Duration::from_secs(60);

/// Why a token was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("token expired")]
    Expired,
    #[error("invalid token: {0}")]
    Invalid(String),
}

/// Signs and checks tokens with one HS256 secret.
#[derive(Clone)]
pub struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl Keys {
    pub fn new(secret: &str) -> Self {
        Keys {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
        }
    }

    /// Mint a token for `sub` in `space`, valid for `ttl` from `now`.
    pub fn mint(
        &self,
        space: &str,
        sub: &str,
        name: &str,
        role: Role,
        ttl: Duration,
        now: SystemTime,
    ) -> (String, Claims) {
        let exp = unix(now) + ttl.as_secs();
        let claims = Claims {
            sub: sub.to_owned(),
            name: name.to_owned(),
            space: space.to_owned(),
            role,
            exp,
            jti: random_id(16),
            scope: None,
            operator: false,
        };
        (self.sign(&claims), claims)
    }

    /// An event-stream ticket for the holder of `who` (a participant's claims, or `None` for
    /// the operator key) on `space`: valid for [`TICKET_TTL`] and only with [`Keys::verify_ticket`].
    pub fn mint_ticket(&self, space: &str, who: Option<&Claims>, now: SystemTime) -> String {
        let (sub, name, role) = match who {
            Some(c) => (c.sub.clone(), c.name.clone(), c.role),
            None => ("operator".to_owned(), "operator".to_owned(), Role::Host),
        };
        self.sign(&Claims {
            sub,
            name,
            space: space.to_owned(),
            role,
            exp: unix(now) + TICKET_TTL.as_secs(),
            jti: random_id(16),
            scope: Some(TICKET_SCOPE.to_owned()),
            operator: who.is_none(),
        })
    }

    fn sign(&self, claims: &Claims) -> String {
        // Encoding HS256 claims that serialize to JSON cannot fail.
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .unwrap_or_default()
    }

    /// Check a credential: signature, algorithm and expiry (zero leeway) against `now`. An
    /// event-stream ticket is refused here.
    pub fn verify(&self, token: &str, now: SystemTime) -> Result<Claims, TokenError> {
        let c = self.decode(token, now)?;
        if c.scope.is_some() {
            return Err(TokenError::Invalid(
                "an event-stream ticket is not a credential".into(),
            ));
        }
        Ok(c)
    }

    /// Check an event-stream ticket as [`Keys::verify`] checks a credential; a credential is
    /// refused here.
    pub fn verify_ticket(&self, ticket: &str, now: SystemTime) -> Result<Claims, TokenError> {
        let c = self.decode(ticket, now)?;
        if c.scope.as_deref() != Some(TICKET_SCOPE) {
            return Err(TokenError::Invalid("not an event-stream ticket".into()));
        }
        Ok(c)
    }

    fn decode(&self, token: &str, now: SystemTime) -> Result<Claims, TokenError> {
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = 0;
        // Expiry is checked below against the injected `now`, not the library's clock.
        v.validate_exp = false;
        v.required_spec_claims = ["exp", "sub"].iter().map(|s| s.to_string()).collect();
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &v)
            .map_err(|e| TokenError::Invalid(e.to_string()))?;
        if unix(now) >= data.claims.exp {
            return Err(TokenError::Expired);
        }
        Ok(data.claims)
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A random identifier of `len` characters from `[0-9A-Za-z]`.
pub fn random_id(len: usize) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Constant-time comparison for the operator key.
pub fn key_matches(given: &str, expected: &str) -> bool {
    let (a, b) = (given.as_bytes(), expected.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_exact() {
        let keys = Keys::new("secret");
        let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let (tok, claims) = keys.mint(
            "s1",
            "p1",
            "Ada",
            Role::Speaker,
            Duration::from_secs(60),
            t0,
        );
        assert_eq!(claims.exp, 1_800_000_060);
        assert_eq!(
            keys.verify(&tok, t0 + Duration::from_secs(59)).unwrap(),
            claims
        );
        assert_eq!(
            keys.verify(&tok, t0 + Duration::from_secs(60)),
            Err(TokenError::Expired),
            "no leeway: dead at exp"
        );
    }

    #[test]
    fn a_ticket_opens_only_the_event_stream_and_only_for_a_minute() {
        let keys = Keys::new("secret-of-sixteen");
        let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let (tok, claims) = keys.mint("s1", "p1", "Ada", Role::Host, Duration::from_secs(600), t0);
        let ticket = keys.mint_ticket("s1", Some(&claims), t0);
        let c = keys
            .verify_ticket(&ticket, t0 + Duration::from_secs(59))
            .unwrap();
        assert_eq!(
            (c.sub.as_str(), c.space.as_str(), c.role),
            ("p1", "s1", Role::Host)
        );
        assert!(!c.operator);
        assert_eq!(
            keys.verify_ticket(&ticket, t0 + TICKET_TTL),
            Err(TokenError::Expired)
        );
        // Neither passes for the other.
        assert!(matches!(
            keys.verify(&ticket, t0),
            Err(TokenError::Invalid(_))
        ));
        assert!(matches!(
            keys.verify_ticket(&tok, t0),
            Err(TokenError::Invalid(_))
        ));
        let op = keys.mint_ticket("s1", None, t0);
        assert!(keys.verify_ticket(&op, t0).unwrap().operator);
    }

    #[test]
    fn wrong_secret_and_garbage_are_invalid() {
        let t0 = SystemTime::now();
        let (tok, _) = Keys::new("a").mint("s", "p", "n", Role::Host, Duration::from_secs(60), t0);
        assert!(matches!(
            Keys::new("b").verify(&tok, t0),
            Err(TokenError::Invalid(_))
        ));
        assert!(matches!(
            Keys::new("a").verify("x.y.z", t0),
            Err(TokenError::Invalid(_))
        ));
        assert!(matches!(
            Keys::new("a").verify("", t0),
            Err(TokenError::Invalid(_))
        ));
    }

    #[test]
    fn claims_have_the_documented_names() {
        let (tok, _) = Keys::new("k").mint(
            "space",
            "sub",
            "name",
            Role::Cohost,
            Duration::from_secs(5),
            SystemTime::now(),
        );
        let payload = tok.split('.').nth(1).unwrap();
        use base64_engine::decode;
        let json: serde_json::Value = serde_json::from_slice(&decode(payload)).unwrap();
        for k in ["sub", "name", "space", "role", "exp", "jti"] {
            assert!(json.get(k).is_some(), "claim {k} missing in {json}");
        }
        assert_eq!(json["role"], "cohost");
    }

    /// Minimal base64url decoder for the test above (no padding).
    mod base64_engine {
        pub fn decode(s: &str) -> Vec<u8> {
            let val = |c: u8| -> u32 {
                match c {
                    b'A'..=b'Z' => (c - b'A') as u32,
                    b'a'..=b'z' => (c - b'a' + 26) as u32,
                    b'0'..=b'9' => (c - b'0' + 52) as u32,
                    b'-' => 62,
                    _ => 63,
                }
            };
            let mut out = Vec::new();
            let (mut acc, mut bits) = (0u32, 0);
            for &c in s.as_bytes() {
                acc = (acc << 6) | val(c);
                bits += 6;
                if bits >= 8 {
                    bits -= 8;
                    out.push((acc >> bits) as u8);
                }
            }
            out
        }
    }

    #[test]
    fn key_compare() {
        assert!(key_matches("abc", "abc"));
        assert!(!key_matches("abd", "abc"));
        assert!(!key_matches("ab", "abc"));
    }
}
