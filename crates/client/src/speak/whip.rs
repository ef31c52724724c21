//! The HTTP half of WHIP (RFC 9725 §4.2): POST the SDP offer, get `201 Created` with the answer
//! and the session's `Location`; DELETE that location to leave.

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, LOCATION};
use reqwest::{Client, StatusCode, Url};

use crate::{Error, Result};

/// The media type of WHIP request and response bodies.
pub const SDP_MIME: &str = "application/sdp";

/// An established WHIP session, as seen over HTTP.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// The absolute session URL (the `Location`, resolved against the endpoint).
    pub(crate) url: Url,
    /// The SDP answer.
    pub(crate) answer: String,
}

/// Parses an endpoint URL.
pub(crate) fn parse_url(url: &str) -> Result<Url> {
    Url::parse(url).map_err(|e| Error::Url {
        url: url.to_owned(),
        reason: e.to_string(),
    })
}

/// POSTs `offer` to `endpoint`.
pub(crate) async fn post_offer(
    client: &Client,
    endpoint: &Url,
    token: Option<&str>,
    offer: &str,
) -> Result<Session> {
    let mut req = client
        .post(endpoint.clone())
        .header(CONTENT_TYPE, SDP_MIME)
        .body(offer.to_owned());
    if let Some(t) = token {
        req = req.header(AUTHORIZATION, format!("Bearer {t}"));
    }
    let resp = req.send().await?;
    let status = resp.status();
    if status != StatusCode::CREATED {
        let body = resp.text().await.unwrap_or_default();
        return Err(Error::WhipStatus {
            status: status.as_u16(),
            body,
        });
    }
    let location = resp
        .headers()
        .get(LOCATION)
        .ok_or_else(|| Error::Location("missing".into()))?
        .to_str()
        .map_err(|_| Error::Location("not ASCII".into()))?
        .to_owned();
    let url = resolve_location(endpoint, &location)?;
    let answer = resp.text().await?;
    Ok(Session { url, answer })
}

/// Resolves a `Location` header value (absolute, or relative to the endpoint).
pub(crate) fn resolve_location(endpoint: &Url, location: &str) -> Result<Url> {
    endpoint
        .join(location)
        .map_err(|e| Error::Location(format!("{location:?}: {e}")))
}

/// DELETEs the session. Any 2xx status is success.
pub(crate) async fn delete(client: &Client, session: &Url, token: Option<&str>) -> Result<()> {
    let mut req = client.delete(session.clone());
    if let Some(t) = token {
        req = req.header(AUTHORIZATION, format!("Bearer {t}"));
    }
    let resp = req.send().await?;
    let status = resp.status();
    if !status.is_success() {
        let body = resp.text().await.unwrap_or_default();
        return Err(Error::WhipStatus {
            status: status.as_u16(),
            body,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_relative_and_absolute() {
        let ep = parse_url("http://127.0.0.1:8080/api/spaces/abc/whip").unwrap();
        assert_eq!(
            resolve_location(&ep, "/api/spaces/abc/whip/s1")
                .unwrap()
                .as_str(),
            "http://127.0.0.1:8080/api/spaces/abc/whip/s1"
        );
        assert_eq!(
            resolve_location(&ep, "whip/s2").unwrap().as_str(),
            "http://127.0.0.1:8080/api/spaces/abc/whip/s2"
        );
        assert_eq!(
            resolve_location(&ep, "http://127.0.0.2:9/x")
                .unwrap()
                .as_str(),
            "http://127.0.0.2:9/x"
        );
    }
}
