//! The public face of a space, the same bytes for every listener, so that an HTTP cache can
//! answer a whole audience (the server serves it as `GET /spaces/{id}/snapshot.json`).
//!
//! The snapshot is made at most every [`REFRESH_MS`], whatever the number of requests, and
//! kept as one [`Text`] (its gzip encoding compressed once, a strong `ETag` that is a hash of
//! the bytes). [`live_state`] is also what the LL-HLS parts carry in-band ([`crate::hls::meta`]),
//! so a listener's page moves with what it hears without asking anyone.

use std::sync::Arc;

use serde_json::{Map, Value, json};
use tribune_room::Lifecycle;
use tribune_room::viewers::BEACON_INTERVAL_S;

use crate::hls::Text;
use crate::space::Space;

/// A snapshot older than this is remade by the next request for it.
pub const REFRESH_MS: u64 = 250;
/// How often a page that is not playing (so gets no in-band metadata) polls the snapshot.
pub const POLL_S: u64 = 5;

/// `Cache-Control` of a snapshot while the space can change.
pub const LIVE_CACHE: &str = "public, max-age=1";
/// `Cache-Control` of a snapshot once the space has ended.
pub const ENDED_CACHE: &str = "public, max-age=300";

/// One made snapshot.
pub struct Public {
    text: Text,
    built_ms: u64,
    ended: bool,
}

impl Public {
    /// The snapshot's bytes (and their gzip encoding and `ETag`).
    pub fn text(&self) -> &Text {
        &self.text
    }

    /// Unix ms when the snapshot was made (its `Last-Modified`).
    pub fn built_ms(&self) -> u64 {
        self.built_ms
    }

    /// Whether the space had ended when the snapshot was made (it will not change again).
    pub fn ended(&self) -> bool {
        self.ended
    }
}

/// What changes while a space runs, as listeners see it: lifecycle, host, the stage roster
/// with roles and mute state, open invitations (subs only), the listener count, reaction
/// totals and the count beacons' sampling.
pub fn live_state(space: &Space) -> Map<String, Value> {
    let room = space.room_view();
    let listeners = space.listener_count();
    let sample_log2 = space.viewers.lock().sample_log2();
    let mut m = Map::new();
    m.insert("lifecycle".into(), json!(room.lifecycle));
    m.insert("host".into(), json!(room.host));
    m.insert("stage".into(), json!(room.stage));
    m.insert("invited".into(), json!(room.invited));
    m.insert("listeners".into(), json!(listeners));
    m.insert("reactions".into(), json!(space.reactions.totals()));
    if let Some(c) = &space.captions {
        // The latest caption (ms into the recording), for the pages' caption line.
        let origin = space.rec_origin();
        m.insert(
            "cap".into(),
            match c.last() {
                Some(cue) => json!({
                    "t": cue.text,
                    "s": cue.start_ms.saturating_sub(origin),
                    "e": cue.end_ms.saturating_sub(origin),
                }),
                None => json!(null),
            },
        );
    }
    m.insert(
        "count".into(),
        json!({ "sample_log2": sample_log2, "interval_s": BEACON_INTERVAL_S }),
    );
    m
}

/// The whole snapshot document.
pub fn snapshot_json(space: &Space) -> Value {
    let id = &space.id;
    let mut m = Map::new();
    m.insert("v".into(), json!(1));
    m.insert("id".into(), json!(id));
    m.insert("title".into(), json!(space.title));
    m.insert("description".into(), json!(space.description));
    m.insert("created_at".into(), json!(space.created_at));
    m.insert("starts_at".into(), json!(space.starts_at));
    m.insert("started_at".into(), json!(space.started_at()));
    m.insert("ended_at".into(), json!(space.ended_at()));
    m.extend(live_state(space));
    m.insert(
        "urls".into(),
        json!({
            "live": format!("/spaces/{id}/live.opus"),
            "hls": format!("/spaces/{id}/hls/index.m3u8"),
            "recording": format!("/spaces/{id}/recording.opus"),
            "replay": format!("/spaces/{id}/replay"),
            "calendar": format!("/spaces/{id}/calendar.ics"),
            "whip": format!("/api/spaces/{id}/whip"),
            "events": format!("/api/spaces/{id}/events"),
            "beacon": format!("/api/spaces/{id}/beacon"),
            "reactions": format!("/api/spaces/{id}/reactions"),
            "join": format!("/api/spaces/{id}/join"),
        }),
    );
    m.insert("poll_s".into(), json!(POLL_S));
    Value::Object(m)
}

/// The current snapshot of `space`, remade if older than [`REFRESH_MS`] (bytes that did not
/// change keep their compressed copy).
pub fn current(space: &Space) -> Arc<Public> {
    let now = space.config().clock.now_ms();
    let mut slot = space.public.lock();
    if let Some(p) = slot.as_ref()
        && now.saturating_sub(p.built_ms) < REFRESH_MS
    {
        return p.clone();
    }
    let body = snapshot_json(space).to_string();
    let ended = space.lifecycle() == Lifecycle::Ended;
    let text = match slot.as_ref() {
        Some(p) if p.text.body == body.as_bytes() => p.text.clone(),
        _ => Text::new(body),
    };
    let p = Arc::new(Public {
        text,
        built_ms: now,
        ended,
    });
    *slot = Some(p.clone());
    p
}
