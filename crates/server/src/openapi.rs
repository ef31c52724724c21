//! The OpenAPI 3 document of the HTTP API, generated from the handlers' `#[utoipa::path]`
//! attributes and served at `GET /api/openapi.json`.
//!
//! Every route of [`crate::app::ROUTES`] must appear here: `tests/openapi.rs` walks the table
//! and fails on a route missing from the document, or a documented one the router lacks.
//!
//! Most JSON bodies are built with `json!` in the handlers; the types below only describe them
//! (the same test compares their fields with what the handlers really answer).

use axum::Json;
use serde::Serialize;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::{api, events_http, hls_http, streams, web, whip};

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "tribune",
        version = env!("CARGO_PKG_VERSION"),
        description = "Live audio rooms: spaces, tokens, the stage, WHIP ingest, the live \
                       Ogg/Opus stream, recordings and server-sent events.",
    ),
    paths(
        api::healthz,
        api::metrics,
        openapi_json,
        api::create_space,
        api::list_spaces,
        api::get_space,
        api::mint_token,
        api::join,
        crate::shield::http::challenge,
        crate::shield::http::get_shield,
        crate::shield::http::set_shield,
        api::presence,
        crate::public::beacon,
        api::react,
        api::timeline,
        api::audience,
        events_http::events,
        events_http::ticket,
        crate::cluster::cluster,
        crate::cluster::follow::serve,
        api::stage,
        api::lifecycle,
        whip::post,
        whip::options_endpoint,
        whip::get_empty,
        whip::delete,
        whip::options_session,
        whip::patch,
        whip_session_get,
        crate::public::snapshot,
        crate::public::calendar,
        crate::captions_http::playlist,
        crate::captions_http::segment,
        crate::captions_http::whole,
        streams::live,
        streams::recording,
        hls_http::index,
        hls_http::live,
        hls_http::dvr,
        hls_http::init,
        hls_http::part,
        hls_http::segment,
        web::home,
        web::space_page,
        web::replay_page,
        web::asset,
        web::versioned_asset,
    ),
    modifiers(&Security),
)]
pub struct ApiDoc;

/// `GET /api/openapi.json`: this document.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "ops",
    responses((status = 200, description = "The OpenAPI 3 document", content_type = "application/json", body = Object)),
)]
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// `GET`/`HEAD` on a WHIP session is served by [`whip::get_empty`], which is documented at the
/// endpoint's path; an attribute names one path, so the session's path is described here.
#[utoipa::path(
    get,
    path = "/api/spaces/{id}/whip/{session}",
    operation_id = "whip_get_session",
    tag = "whip",
    params(
        ("id" = String, Path, description = "Space id"),
        ("session" = String, Path, description = "WHIP session id (from the `Location` of the POST)"),
    ),
    responses((status = 204, description = "No content (RFC 9725 §4.1); CORS headers set")),
)]
#[allow(dead_code)] // documentation only: the route is served by `whip::get_empty`
async fn whip_session_get() {}

/// Names of the security schemes the handlers refer to.
pub const BEARER: &str = "bearer";
/// `?ticket=` on the event stream (`EventSource` cannot send headers).
pub const TICKET_QUERY: &str = "ticket_query";

struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A participant token (JWT, from /tokens, /join or stage/token) or the \
                         operator key.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            TICKET_QUERY,
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "ticket",
                "An event-stream ticket (POST /api/spaces/{id}/events/ticket): opens this \
                 space's event stream, for one minute, and nothing else.",
            ))),
        );
    }
}

/// Every error: `{"error": code, "message": …}` (see [`crate::error::ApiError`]).
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"error": "not_found", "message": "space not found"}))]
pub struct ErrorBody {
    /// Machine-readable code: `bad_request`, `unauthorized`, `forbidden`, `not_found`,
    /// `method_not_allowed`, `conflict`, `gone`, `payload_too_large`,
    /// `unsupported_media_type`, `rate_limited` or `internal`.
    pub error: String,
    /// For people.
    pub message: String,
}

/// A participant's role, as in tokens and JSON ([`tribune_room::Role`]).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RoleName {
    Host,
    Cohost,
    Speaker,
    Listener,
}

/// Where a space is in its life ([`tribune_room::Lifecycle`]).
pub use tribune_engine::space::SpaceState;

/// The verbs of `POST /api/spaces/{id}/{verb}`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LifecycleVerb {
    Start,
    Resume,
    End,
}

/// The actions of `POST /api/spaces/{id}/stage/{action}`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum StageAction {
    RaiseHand,
    LowerHand,
    Approve,
    Decline,
    Invite,
    Accept,
    DeclineInvite,
    Token,
    Mute,
    Unmute,
    Audience,
    Remove,
    Ban,
    Cohost,
    Uncohost,
    Takeover,
    Leave,
}

/// `GET /healthz`.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
}

/// `GET /api/spaces`.
#[derive(Serialize, ToSchema)]
pub struct SpaceList {
    pub spaces: Vec<tribune_engine::space::Summary>,
}

/// `201` of `POST /api/spaces`: the space and its host's token.
#[derive(Serialize, ToSchema)]
pub struct CreatedSpace {
    #[serde(flatten)]
    pub space: tribune_engine::space::Summary,
    /// The host's token.
    pub host_token: String,
    /// The host's participant id.
    pub host_sub: String,
}

/// `GET /api/spaces/{id}/timeline`.
#[derive(Serialize, ToSchema)]
pub struct Timeline {
    pub space: String,
    /// Who spoke when, by start.
    pub segments: Vec<Segment>,
}

/// `GET /api/spaces/{id}/audience`.
#[derive(Serialize, ToSchema)]
pub struct AudienceList {
    /// Newest first.
    pub audience: Vec<AudienceMember>,
}

/// A recently active participant.
#[derive(Serialize, ToSchema)]
pub struct AudienceMember {
    /// Participant id (the `sub` for `stage/invite`).
    pub sub: String,
    /// Display name.
    pub name: String,
    /// Last seen, Unix milliseconds.
    pub seen_ms: u64,
}

/// One speaking segment ([`tribune_engine::store::TimelineRow`]).
#[derive(Serialize, ToSchema)]
pub struct Segment {
    /// The speaker's participant id.
    pub sub: String,
    /// The speaker's display name at the time.
    pub name: String,
    /// Start, milliseconds from the start of the recording.
    pub start_ms: u64,
    /// End, milliseconds from the start of the recording.
    pub end_ms: u64,
}

/// `201` of `POST /api/spaces/{id}/tokens`.
#[derive(Serialize, ToSchema)]
pub struct Token {
    pub token: String,
    pub sub: String,
    pub name: String,
    pub role: RoleName,
    /// Expiry, Unix seconds.
    pub exp: u64,
    pub space: String,
}

/// `200` of `POST /api/spaces/{id}/join`: a short-lived listener token.
#[derive(Serialize, ToSchema)]
pub struct Joined {
    pub token: String,
    pub sub: String,
    pub name: String,
    /// Always `listener`.
    pub role: RoleName,
    /// Expiry, Unix seconds.
    pub exp: u64,
    pub space: String,
    /// When to renew (join again with this token), Unix seconds.
    pub renew_after: u64,
    pub live_url: String,
    pub events_url: String,
}

/// `201` of `POST /api/spaces/{id}/stage/token`: the caller's speaker token.
#[derive(Serialize, ToSchema)]
pub struct StageToken {
    pub token: String,
    pub sub: String,
    pub name: String,
    pub role: RoleName,
    /// Expiry, Unix seconds.
    pub exp: u64,
    /// Where to publish with this token.
    pub whip_url: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use tribune_room::{Lifecycle, Role};

    fn names<T: ToSchema>() -> Vec<String> {
        let schema = serde_json::to_value(T::schema()).unwrap();
        serde_json::from_value(schema["enum"].clone()).unwrap()
    }

    #[test]
    fn mirrored_enums_match_the_room() {
        let roles: Vec<String> = Role::ALL.iter().map(|r| r.as_str().to_owned()).collect();
        assert_eq!(names::<RoleName>(), roles);
        // A new variant breaks this match, and so this test, until `SpaceState` has it too.
        let all = |l: Lifecycle| match l {
            Lifecycle::Scheduled | Lifecycle::Live | Lifecycle::Interrupted | Lifecycle::Ended => l,
        };
        let states: Vec<String> = [
            Lifecycle::Scheduled,
            Lifecycle::Live,
            Lifecycle::Interrupted,
            Lifecycle::Ended,
        ]
        .map(all)
        .iter()
        .map(|l| {
            serde_json::to_value(l)
                .unwrap()
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
        assert_eq!(names::<SpaceState>(), states);
    }
}
