//! A space at run time: its room (roles, stage, lifecycle), its media threads, its live stream,
//! its event hub and its WHIP sessions.
//!
//! Media threads (mixer → pager) start when the space is created, scheduled or live, so a
//! listener who connects before the start hears silence and then the conversation without
//! reconnecting. The recorder is attached when the space goes live (and re-attached, appending
//! to the same Ogg stream, when an interrupted space is resumed). Ending the space closes every
//! WHIP session and drops the mixer handle, which stops the threads in order: the pager writes the
//! last page with end-of-stream and closes the live stream, the recorder finishes the file.
//!
//! Every command goes through the room ([`tribune_room::Room::apply`]), which owns the one
//! permission table; this module only carries out the room's effects.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tribune_media::mixer;
use tribune_media::oggopus::OggOpusWriter;
use tribune_room::{
    Action, Actor, Command, Effect, Event, Lifecycle, Outcome, Presence, Refusal, Role, Room,
    Timeline, check,
};

use crate::config::SpaceConfig;
use crate::events::EventHub;
use crate::live::{self, LiveStream};
use crate::mixer::{Control, Levels, MixerHandle};
use crate::recording::{self, Mode};
use crate::store::{SpaceRecord, TimelineRow};
use crate::writer::StoreWriter;
use tribune_metrics::Metrics;

/// Addresses remembered for address bans of anonymous participants (bounded: older entries are
/// forgotten first when full).
const MAX_ADDRS: usize = 10_000;

/// A WHIP session of a participant.
#[derive(Clone)]
pub struct SessionEntry {
    pub session_id: String,
    pub sub: String,
    pub name: String,
    pub speaker: u64,
    pub close: CancellationToken,
}

/// The media side of a running space.
struct Media {
    mixer: MixerHandle,
    levels: Receiver<Levels>,
    attach: Sender<Sender<Vec<u8>>>,
    pre_skip: u16,
}

struct Inner {
    sessions: Vec<SessionEntry>,
    /// `None` once ended (or for a space restored as ended): dropping it stops the mixer.
    media: Option<Media>,
    /// Participants whose audio is dropped from every mix (self or host mute).
    muted: HashMap<String, bool>,
    /// Address each anonymous participant last acted from.
    addrs: tribune_room::Addresses,
    recording_started: bool,
    /// Open event streams per participant (to know whether the host is present).
    streams: HashMap<String, u32>,
}

/// One space.
///
/// # Locks
///
/// | lock | guards |
/// |---|---|
/// | `going_live` | nothing but itself: one `Start`/`Resume` at a time ([`Space::go_live`]) |
/// | `room` | the room state machine: lifecycle, roles, hands, bans, grace |
/// | `inner` | the media side: WHIP sessions, mutes, the mixer handle, anonymous addresses, open event streams |
/// | `prepared` | the resume point scanned for the next `start_recording` |
/// | `threads` | the space's thread handles, joined at shutdown |
/// | `presence`, `viewers`, `audience`, `turned_away`, `timeline`, `public`, `remote_streams` | each its own counter or cache |
///
/// Order: `going_live` → `room` → `inner` → (`prepared` | `threads`); `room` → `audience`;
/// `public` → `room`, `presence`, `viewers` (the snapshot is made under `public`, so one request
/// makes it while the others wait for it). The others are leaves: taken alone and released
/// before any other lock is taken. Nobody holds
/// `inner` while taking `room` (take what you need from `inner` into a local first), and no lock
/// is held across an `.await` (they are `parking_lot` mutexes, held for microseconds) or across
/// the recording's scan.
pub struct Space {
    pub id: String,
    pub title: String,
    pub description: String,
    pub created_at: u64,
    pub starts_at: Option<u64>,
    /// Ogg serial of the live stream and the recording.
    pub serial: u32,
    pub live: Arc<LiveStream>,
    /// The live stream's lean listeners (plain HTTP), written by a few writer tasks.
    pub fanout: crate::fanout::Fanout,
    pub recording: PathBuf,
    pub events: EventHub,
    hls: Option<Arc<crate::hls::Hls>>,
    room: Mutex<Room>,
    inner: Mutex<Inner>,
    /// Reactions pending for the event stream, and totals (no lock: one atomic add each).
    pub reactions: tribune_room::Tally,
    pub presence: Mutex<Presence>,
    /// Anonymous pages counted from sampled beacons ([`tribune_room::viewers`]).
    pub viewers: Mutex<tribune_room::Viewers>,
    /// In a cluster: live.opus listeners other nodes relay this space to, less the one relay
    /// connection each of them holds here (counted among [`Space::live`]'s own), as the cluster
    /// last reported them.
    pub remote_listeners: std::sync::atomic::AtomicI64,
    /// In a cluster: participants holding this space's event stream on other nodes, as the
    /// cluster last reported them (so a host following on another node is present here).
    pub remote_streams: Mutex<Vec<String>>,
    /// The public snapshot last made ([`crate::public`]).
    pub public: Mutex<Option<Arc<crate::public::Public>>>,
    /// The recently active audience (whom a host can invite).
    pub audience: Mutex<tribune_room::Audience>,
    /// Listeners turned away from this node (it was full) in the last minute.
    pub turned_away: Mutex<tribune_admission::LastMinute>,
    timeline: Mutex<Timeline>,
    /// Unix ms at which recorded time 0 lies (recording start minus resumed duration).
    rec_origin_ms: Arc<AtomicU64>,
    /// Live captions, when the server has a speech model and the space runs.
    pub captions: Option<Arc<captions::SpaceCaptions>>,
    /// Unix seconds the space first went live, and ended (0: not yet).
    started_at: AtomicU64,
    ended_at: AtomicU64,
    /// The owner's right to publish (a cluster's lease; open on one node).
    pub fence: Arc<crate::fence::Fence>,
    /// Set by a takeover before resuming: the Unix ms the earlier owner's recorded time 0 stood
    /// for, so the resumed recording is first filled with silence up to now.
    continue_from: Mutex<Option<u64>>,
    /// Set when the space ends (not when it is suspended): the last pages carry end-of-stream.
    ending: Arc<AtomicBool>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    /// Taken for a whole `Start`/`Resume` ([`Space::go_live`]): one transition to live at a time,
    /// so a recording scanned and truncated for resuming is never one already being appended to.
    /// Taken before, never while holding, `room` or `inner`.
    going_live: Mutex<()>,
    /// The interrupted recording's resume point, scanned by [`Space::go_live`] without `inner`
    /// held and consumed by `start_recording`.
    prepared: Mutex<Option<std::io::Result<Option<crate::resume::ResumePoint>>>>,
    pub metrics: Arc<Metrics>,
    store: StoreWriter,
    cfg: SpaceConfig,
}

/// What the API shows of a space.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Summary {
    pub id: String,
    pub title: String,
    pub description: String,
    #[schema(value_type = SpaceState)]
    pub state: Lifecycle,
    pub created_at: u64,
    pub starts_at: Option<u64>,
    /// Unix seconds it first went live (a resumed space keeps its first start).
    pub started_at: Option<u64>,
    /// Unix seconds it ended.
    pub ended_at: Option<u64>,
    pub host: Option<String>,
    pub speakers: Vec<SpeakerSummary>,
    pub listeners: u64,
    pub live_url: String,
    pub recording_url: String,
    pub whip_url: String,
    pub events_url: String,
}

/// A connected speaker.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SpeakerSummary {
    pub sub: String,
    pub name: String,
}

/// Parameters of a new space.
pub struct NewSpace<'a> {
    pub id: &'a str,
    pub title: &'a str,
    pub description: &'a str,
    pub host: (&'a str, &'a str),
    pub starts_at: Option<u64>,
}

/// Participant ids of anonymous joiners start with this (address bans apply only to them).
pub const ANON_PREFIX: &str = "anon-";

/// A space's lifecycle as the API documents it (the schema of [`Lifecycle`]'s JSON).
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SpaceState {
    Scheduled,
    Live,
    Interrupted,
    Ended,
}

mod build;
pub mod captions;
mod lifecycle;
mod sessions;
mod views;

/// How many recently active participants a space remembers for its host's audience list.
pub const AUDIENCE_REMEMBERED: usize = 500;

fn room_config(cfg: &SpaceConfig) -> tribune_room::Config {
    tribune_room::Config {
        stage_limit: cfg.stage_limit,
        grace_ms: cfg.grace.as_millis() as u64,
        host_absence_ms: cfg.host_absence.as_millis() as u64,
        ..tribune_room::Config::default()
    }
}

/// One speaker's level in a `levels` event.
#[derive(Debug, Clone, Serialize)]
pub struct LevelView {
    pub sub: String,
    pub name: String,
    pub dbfs: f64,
}

/// The SSE event name of a room event (its `type`).
pub fn event_name(e: &Event) -> &'static str {
    match e {
        Event::State { .. } => "state",
        Event::HandRaised { .. } => "hand_raised",
        Event::HandLowered { .. } => "hand_lowered",
        Event::Approved { .. } => "approved",
        Event::Declined { .. } => "declined",
        Event::Invited { .. } => "invited",
        Event::InviteAccepted { .. } => "invite_accepted",
        Event::InviteDeclined { .. } => "invite_declined",
        Event::Muted { .. } => "muted",
        Event::Unmuted { .. } => "unmuted",
        Event::MovedToAudience { .. } => "moved_to_audience",
        Event::Removed { .. } => "removed",
        Event::Banned { .. } => "banned",
        Event::HostChanged { .. } => "host_changed",
        Event::CohostNamed { .. } => "cohost_named",
        Event::CohostRevoked { .. } => "cohost_revoked",
        Event::Stage { .. } => "stage",
    }
}

/// The stored name of a lifecycle state.
pub fn lifecycle_name(l: Lifecycle) -> &'static str {
    match l {
        Lifecycle::Scheduled => "scheduled",
        Lifecycle::Live => "live",
        Lifecycle::Interrupted => "interrupted",
        Lifecycle::Ended => "ended",
    }
}

/// All spaces of this node.
#[derive(Default)]
pub struct Spaces {
    map: parking_lot::RwLock<HashMap<String, Arc<Space>>>,
}

impl Spaces {
    pub fn get(&self, id: &str) -> Option<Arc<Space>> {
        self.map.read().get(id).cloned()
    }

    /// Insert unless the id is taken.
    pub fn insert(&self, space: Arc<Space>) -> bool {
        let mut m = self.map.write();
        if m.contains_key(&space.id) {
            return false;
        }
        m.insert(space.id.clone(), space);
        true
    }

    pub fn all(&self) -> Vec<Arc<Space>> {
        let mut v: Vec<_> = self.map.read().values().cloned().collect();
        v.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
        v
    }

    /// Remove a space from this node (it should have ended).
    pub fn remove(&self, id: &str) -> Option<Arc<Space>> {
        self.map.write().remove(id)
    }

    pub fn contains(&self, id: &str) -> bool {
        self.map.read().contains_key(id)
    }
}
