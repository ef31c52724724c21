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
use std::time::{SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tribune_media::mixer;
use tribune_media::oggopus::OggOpusWriter;
use tribune_room::{
    Actor, Command, Effect, Event, Lifecycle, Outcome, Presence, Refusal, Role, Room, Timeline,
};

use crate::config::Config;
use crate::events::EventHub;
use crate::live::{self, LiveStream};
use crate::metrics::Metrics;
use crate::mixer::{Control, Levels, MixerHandle};
use crate::recording::{self, Mode};
use crate::store::{SpaceRecord, TimelineRow};
use crate::writer::StoreWriter;

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
    addrs: HashMap<String, IpAddr>,
    recording_started: bool,
    /// Open event streams per participant (to know whether the host is present).
    streams: HashMap<String, u32>,
}

/// One space.
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
    /// The public snapshot last made ([`crate::public`]).
    pub(crate) public: Mutex<Option<Arc<crate::public::Public>>>,
    /// The recently active audience (whom a host can invite).
    pub audience: Mutex<tribune_room::Audience>,
    /// Listeners turned away from this node (it was full) in the last minute.
    pub turned_away: Mutex<crate::admission::LastMinute>,
    timeline: Mutex<Timeline>,
    /// Unix ms at which recorded time 0 lies (recording start minus resumed duration).
    rec_origin_ms: AtomicU64,
    /// Set when the space ends (not when it is suspended): the last pages carry end-of-stream.
    ending: Arc<AtomicBool>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    pub(crate) metrics: Arc<Metrics>,
    store: StoreWriter,
    cfg: Config,
}

/// What the API shows of a space.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Summary {
    pub id: String,
    pub title: String,
    pub description: String,
    #[schema(value_type = crate::openapi::SpaceState)]
    pub state: Lifecycle,
    pub created_at: u64,
    pub starts_at: Option<u64>,
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

/// How many recently active participants a space remembers for its host's audience list.
pub const AUDIENCE_REMEMBERED: usize = 500;

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    now_ms() / 1000
}

fn room_config(cfg: &Config) -> tribune_room::Config {
    tribune_room::Config {
        stage_limit: cfg.stage_limit,
        grace_ms: cfg.grace.as_millis() as u64,
        host_absence_ms: cfg.host_absence.as_millis() as u64,
        ..tribune_room::Config::default()
    }
}

impl Space {
    /// Create a new space (scheduled when `starts_at` is given, live otherwise).
    pub fn create(
        p: NewSpace<'_>,
        cfg: &Config,
        metrics: Arc<Metrics>,
        store: StoreWriter,
    ) -> std::io::Result<Arc<Space>> {
        let lifecycle = if p.starts_at.is_some() {
            Lifecycle::Scheduled
        } else {
            Lifecycle::Live
        };
        let room = Room::new(
            room_config(cfg),
            lifecycle,
            Some((p.host.0.to_owned(), p.host.1.to_owned())),
        );
        let space = Self::build(
            p.id,
            p.title,
            p.description,
            unix_now(),
            p.starts_at,
            rand::random(),
            room,
            true,
            cfg,
            metrics,
            store,
        )?;
        space.persist_record();
        if lifecycle == Lifecycle::Live {
            space.start_recording(false);
        }
        Ok(space)
    }

    /// Bring back a space from the store after a restart. A space that was live is marked
    /// interrupted: its listeners hear silence until its host resumes it.
    pub fn restore(
        r: &SpaceRecord,
        cfg: &Config,
        metrics: Arc<Metrics>,
        store: StoreWriter,
    ) -> std::io::Result<Arc<Space>> {
        let durable = serde_json::from_str(&r.room).map_err(std::io::Error::other)?;
        let mut room = Room::restore(room_config(cfg), durable);
        if matches!(room.lifecycle(), Lifecycle::Live) {
            room.mark_interrupted();
        }
        let running = room.lifecycle() != Lifecycle::Ended;
        let space = Self::build(
            &r.id,
            &r.title,
            &r.description,
            r.created_at,
            r.starts_at,
            r.serial,
            room,
            running,
            cfg,
            metrics,
            store,
        )?;
        space.persist_record();
        Ok(space)
    }

    #[allow(clippy::too_many_arguments)]
    fn build(
        id: &str,
        title: &str,
        description: &str,
        created_at: u64,
        starts_at: Option<u64>,
        serial: u32,
        room: Room,
        running: bool,
        cfg: &Config,
        metrics: Arc<Metrics>,
        store: StoreWriter,
    ) -> std::io::Result<Arc<Space>> {
        let tags = vec![
            ("TITLE".to_owned(), title.to_owned()),
            ("ENCODER".to_owned(), "tribune".to_owned()),
        ];
        let mut threads = Vec::new();
        let ending = Arc::new(AtomicBool::new(false));
        let (media, pre_skip) = if running {
            let mcfg = mixer::Config {
                bitrate: cfg.bitrate,
                mix_minus_bitrate: cfg.bitrate,
                ..mixer::Config::default()
            };
            let spawned = crate::mixer::spawn(id, mcfg, metrics.clone())?;
            threads.push(spawned.thread);
            let (attach_tx, attach_rx) = crossbeam_channel::bounded(1);
            (
                Some((
                    spawned.handle,
                    spawned.levels,
                    attach_tx,
                    spawned.packets,
                    attach_rx,
                )),
                spawned.pre_skip,
            )
        } else {
            (None, 0)
        };
        let header = OggOpusWriter::new(serial, 1, pre_skip, tags.clone());
        let live = Arc::new(LiveStream::new(
            header,
            cfg.page,
            cfg.burst,
            cfg.slow_listener,
        ));
        let fanout = crate::fanout::Fanout::new(
            live.clone(),
            metrics.clone(),
            crate::plain::response::fields(&crate::streams::live_headers(
                title,
                description,
                cfg.bitrate,
            ))
            .into(),
            cfg.bitrate,
            cfg.fanout_shard,
            cfg.slow_listener,
        );
        let mut hls = None;
        let media = match media {
            Some((handle, levels, attach, packets, attach_rx)) => {
                let track = tribune_media::fmp4::Track {
                    channels: 1,
                    pre_skip,
                    input_sample_rate: 48_000,
                    track_id: tribune_media::fmp4::TRACK_ID,
                };
                let h = crate::hls::Hls::new(
                    &track,
                    cfg.hls,
                    cfg.bitrate,
                    cfg.data_dir.join("hls").join(id),
                )?;
                let packager = crate::hls::Packager::new(h.clone())?;
                hls = Some(h);
                threads.push(live::spawn_pager(
                    id,
                    live::Pager {
                        writer: OggOpusWriter::new(serial, 1, pre_skip, tags),
                        page: cfg.page,
                        input: packets,
                        stream: live.clone(),
                        attach: attach_rx,
                        ending: ending.clone(),
                        metrics: metrics.clone(),
                        hls: Some(packager),
                    },
                )?);
                metrics.spaces_live.fetch_add(1, Relaxed);
                Some(Media {
                    mixer: handle,
                    levels,
                    attach,
                    pre_skip,
                })
            }
            None => {
                live.close_now();
                None
            }
        };
        Ok(Arc::new(Space {
            id: id.to_owned(),
            title: title.to_owned(),
            description: description.to_owned(),
            created_at,
            starts_at,
            serial,
            live,
            fanout,
            recording: recording::path(&cfg.data_dir, id),
            events: EventHub::default(),
            hls,
            room: Mutex::new(room),
            inner: Mutex::new(Inner {
                sessions: Vec::new(),
                media,
                muted: HashMap::new(),
                addrs: HashMap::new(),
                recording_started: false,
                streams: HashMap::new(),
            }),
            reactions: Default::default(),
            viewers: Mutex::new(Default::default()),
            public: Mutex::new(None),
            presence: Mutex::new(Presence::new(cfg.presence_window.as_millis() as u64)),
            audience: Mutex::new(tribune_room::Audience::new(AUDIENCE_REMEMBERED)),
            turned_away: Mutex::new(Default::default()),
            timeline: Mutex::new(Timeline::new()),
            rec_origin_ms: AtomicU64::new(0),
            ending,
            threads: Mutex::new(threads),
            metrics,
            store,
            cfg: cfg.clone(),
        }))
    }

    /// The LL-HLS rendition (none for a space restored as ended).
    pub fn hls(&self) -> Option<Arc<crate::hls::Hls>> {
        self.hls.clone()
    }

    /// The room's lifecycle state.
    pub fn lifecycle(&self) -> Lifecycle {
        self.room.lock().lifecycle()
    }

    /// The participant's role now, from the room's record over its token's (403 when removed
    /// or banned).
    /// A participant showed signs of life: counted as present, remembered as recently active.
    pub fn seen(&self, sub: &str, name: &str) {
        let now = now_ms();
        self.presence.lock().seen(sub, now);
        self.audience.lock().seen(sub, name, now);
    }

    /// The recently active participants not on stage, newest first.
    pub fn recent_audience(&self, limit: usize) -> Vec<tribune_room::audience::Member> {
        let room = self.room.lock();
        let on_stage: std::collections::HashSet<String> =
            room.snapshot().stage.into_iter().map(|p| p.sub).collect();
        // Removed and banned participants are not offered either.
        self.audience.lock().recent(limit, |s| {
            on_stage.contains(s) || room.current_role(s, Role::Listener).is_err()
        })
    }

    pub fn current_role(&self, sub: &str, token_role: Role) -> Result<Role, Refusal> {
        self.room.lock().current_role(sub, token_role)
    }

    /// Whether an anonymous participant's address is banned here.
    pub fn is_addr_banned(&self, ip: IpAddr) -> bool {
        self.room.lock().is_addr_banned(ip)
    }

    /// Remember the address an anonymous participant acted from (for address bans).
    pub fn note_addr(&self, sub: &str, ip: IpAddr) {
        let mut inner = self.inner.lock();
        if inner.addrs.len() >= MAX_ADDRS
            && !inner.addrs.contains_key(sub)
            && let Some(k) = inner.addrs.keys().next().cloned()
        {
            inner.addrs.remove(&k);
        }
        inner.addrs.insert(sub.to_owned(), ip);
    }

    /// Apply a command of `actor` through the room and carry out its effects.
    pub fn command(&self, actor: &Actor, cmd: Command) -> Result<(), Refusal> {
        let ban_target = match &cmd {
            Command::Ban { target } => Some(target.clone()),
            _ => None,
        };
        let outcome = {
            let mut room = self.room.lock();
            let out = room.apply(actor, cmd, now_ms())?;
            if let Some(t) = ban_target
                && t.starts_with(crate::api::ANON_PREFIX)
                && let Some(ip) = self.inner.lock().addrs.get(&t).copied()
            {
                room.ban_addr(ip);
            }
            out
        };
        self.carry_out(outcome);
        Ok(())
    }

    /// Carry out what the room decided: publish events, close sessions, mute, persist, and the
    /// lifecycle's media consequences.
    fn carry_out(&self, out: Outcome) {
        for e in &out.events {
            self.events.publish(event_name(e), e);
            if let Event::State { lifecycle } = e {
                match lifecycle {
                    Lifecycle::Live => {
                        let resumed =
                            self.inner.lock().recording_started || self.recording.exists();
                        self.start_recording(resumed);
                        self.persist_state("live");
                    }
                    Lifecycle::Ended => self.shutdown(),
                    Lifecycle::Interrupted => self.persist_state("interrupted"),
                    Lifecycle::Scheduled => {}
                }
            }
        }
        for eff in out.effects {
            match eff {
                Effect::CloseSessions { sub } => self.close_sessions_of(&sub),
                Effect::SetMuted { sub, muted } => self.set_muted(&sub, muted),
                Effect::Persist => self.persist_room(),
            }
        }
    }

    /// Attach a recorder to the pager: a new file, or the interrupted one continued.
    fn start_recording(&self, resume: bool) {
        let mut inner = self.inner.lock();
        let Some(media) = &inner.media else { return };
        let tags = vec![
            ("TITLE".to_owned(), self.title.clone()),
            ("ENCODER".to_owned(), "tribune".to_owned()),
        ];
        let mut resumed_ms = 0;
        let point = match resume.then(|| crate::resume::prepare(&self.recording)) {
            Some(Ok(p)) => p,
            Some(Err(e)) => {
                tracing::error!(space = %self.id, error = %e,
                    "cannot continue the recording; starting a new file");
                None
            }
            None => None,
        };
        let (writer, mode) = match point {
            Some(p) => {
                resumed_ms = p.granule.saturating_sub(u64::from(p.pre_skip)) / 48;
                (
                    OggOpusWriter::resume(
                        p.serial, p.channels, p.pre_skip, tags, p.next_seq, p.granule,
                    ),
                    Mode::Append,
                )
            }
            None => (
                OggOpusWriter::new(self.serial, 1, media.pre_skip, tags),
                Mode::Create,
            ),
        };
        match recording::spawn(
            self.recording.clone(),
            writer,
            mode,
            self.ending.clone(),
            self.metrics.clone(),
        ) {
            Ok((tx, thread)) => {
                let _ = media.attach.try_send(tx);
                self.threads.lock().push(thread);
                self.rec_origin_ms.store(now_ms() - resumed_ms, Relaxed);
                inner.recording_started = true;
                let path = self.recording.display().to_string();
                let id = self.id.clone();
                self.store.run(move |s| s.set_recording(&id, &path, None));
            }
            Err(e) => {
                self.metrics.recording_errors.fetch_add(1, Relaxed);
                tracing::error!(space = %self.id, error = %e, "cannot start the recording; the show goes on");
            }
        }
    }

    fn close_sessions_of(&self, sub: &str) {
        let mut inner = self.inner.lock();
        inner.sessions.retain(|s| {
            if sub == "*" || s.sub == sub {
                s.close.cancel();
                false
            } else {
                true
            }
        });
    }

    fn set_muted(&self, sub: &str, muted: bool) {
        let mut inner = self.inner.lock();
        inner.muted.insert(sub.to_owned(), muted);
        if let Some(m) = &inner.media {
            for s in inner.sessions.iter().filter(|s| s.sub == sub) {
                m.mixer.control(Control::Mute(s.speaker, muted));
            }
        }
    }

    /// Stop the media threads (the recording is finished by them) and close the event stream.
    fn shutdown(&self) {
        self.ending.store(true, Relaxed);
        self.stop_media();
        self.persist_state("ended");
        let segs = self.timeline.lock().finish(self.rec_ms());
        self.persist_timeline(segs);
        self.events.close();
    }

    /// Suspend for a server restart: close sessions and stop the media threads, leaving the
    /// recording open-ended (no end-of-stream page) and the stored state as it is, so the space
    /// comes back scheduled or interrupted and a resumed recording continues the same stream.
    pub fn suspend(&self) {
        self.stop_media();
        let segs = self.timeline.lock().finish(self.rec_ms());
        self.persist_timeline(segs);
        self.events.close();
    }

    fn stop_media(&self) {
        let media = {
            let mut inner = self.inner.lock();
            for s in inner.sessions.drain(..) {
                s.close.cancel();
            }
            inner.media.take()
        };
        if media.is_some() {
            self.metrics.spaces_live.fetch_sub(1, Relaxed);
        }
        drop(media);
    }

    /// End the space as the operator (shutdown of the server, tests).
    pub fn end(&self) {
        let _ = self.command(&Actor::operator(), Command::End);
    }

    /// Wait for the threads of an ended space to finish (the recording is then complete).
    /// Blocking: call from a blocking context.
    pub fn join(&self) {
        let threads: Vec<_> = self.threads.lock().drain(..).collect();
        for t in threads {
            let _ = t.join();
        }
    }

    /// The mixer, while the space's media runs.
    pub fn mixer(&self) -> Option<MixerHandle> {
        self.inner.lock().media.as_ref().map(|m| m.mixer.clone())
    }

    /// Record a new WHIP session; an older session of the same participant is closed (one
    /// connection per participant: a reconnecting browser replaces its old session).
    pub fn add_session(&self, entry: SessionEntry) {
        {
            let mut inner = self.inner.lock();
            inner.sessions.retain(|s| {
                if s.sub == entry.sub {
                    s.close.cancel();
                    false
                } else {
                    true
                }
            });
            let muted = inner.muted.get(&entry.sub).copied().unwrap_or(false);
            if muted && let Some(m) = &inner.media {
                m.mixer.control(Control::Mute(entry.speaker, true));
            }
            inner.sessions.push(entry.clone());
        }
        let out = self
            .room
            .lock()
            .session_started(&entry.sub, &entry.name, now_ms());
        self.carry_out(out);
    }

    /// A session's task ended.
    pub fn remove_session(&self, session_id: &str, sub: &str) {
        let still_connected = {
            let mut inner = self.inner.lock();
            inner.sessions.retain(|s| s.session_id != session_id);
            inner.sessions.iter().any(|s| s.sub == sub)
        };
        if !still_connected {
            let out = self.room.lock().session_ended(sub, now_ms());
            self.carry_out(out);
        }
    }

    /// Close a session; returns whether it existed.
    pub fn close_session(&self, session_id: &str) -> bool {
        let inner = self.inner.lock();
        let Some(pos) = inner
            .sessions
            .iter()
            .position(|s| s.session_id == session_id)
        else {
            return false;
        };
        inner.sessions[pos].close.cancel();
        true
    }

    /// Owner of a session.
    pub fn session_owner(&self, session_id: &str) -> Option<String> {
        self.inner
            .lock()
            .sessions
            .iter()
            .find(|s| s.session_id == session_id)
            .map(|s| s.sub.clone())
    }

    /// An event stream of `sub` opened.
    pub fn stream_opened(&self, sub: &str) {
        *self.inner.lock().streams.entry(sub.to_owned()).or_default() += 1;
    }

    /// An event stream of `sub` closed.
    pub fn stream_closed(&self, sub: &str) {
        let mut inner = self.inner.lock();
        if let Some(n) = inner.streams.get_mut(sub) {
            *n -= 1;
            if *n == 0 {
                inner.streams.remove(sub);
            }
        }
    }

    /// Whether the host is here: a WHIP session or an open event stream.
    pub fn host_present(&self) -> bool {
        let Some(host) = self.room.lock().host().map(str::to_owned) else {
            return false;
        };
        let inner = self.inner.lock();
        inner.sessions.iter().any(|s| s.sub == host) || inner.streams.contains_key(&host)
    }

    /// Whether `sub` has a WHIP session now.
    pub fn has_session(&self, sub: &str) -> bool {
        self.inner.lock().sessions.iter().any(|s| s.sub == sub)
    }

    /// Listener count: direct `live.opus` connections, plus participants seen (token renewal,
    /// presence beacon, event stream) within the presence window, plus anonymous pages counted
    /// from their sampled beacons; each estimated in constant memory. A page that joins counts
    /// as a participant and stops its anonymous beacon, so it may count twice for at most one
    /// beacon window (90 s).
    pub fn listener_count(&self) -> u64 {
        let direct = self.live.listeners.load(Relaxed).max(0) as u64;
        let now = now_ms();
        let joined = self.presence.lock().estimate(now);
        direct + joined + self.viewers.lock().estimate(now)
    }

    /// The room's state now (lifecycle, host, stage, hands, invitations, co-hosts).
    pub fn room_view(&self) -> tribune_room::Snapshot {
        self.room.lock().snapshot()
    }

    /// The room's snapshot plus what the server knows (title, counts), as the first event of a
    /// new event-stream subscriber.
    pub fn snapshot(&self) -> serde_json::Value {
        let snap = self.room.lock().snapshot();
        serde_json::json!({
            "type": "snapshot",
            "space": self.summary(),
            "room": snap,
        })
    }

    /// The participants connected on stage now.
    pub fn speakers(&self) -> Vec<SpeakerSummary> {
        self.inner
            .lock()
            .sessions
            .iter()
            .map(|s| SpeakerSummary {
                sub: s.sub.clone(),
                name: s.name.clone(),
            })
            .collect()
    }

    /// The API view of this space.
    pub fn summary(&self) -> Summary {
        let (state, host) = {
            let room = self.room.lock();
            (room.lifecycle(), room.host().map(str::to_owned))
        };
        let speakers = self.speakers();
        Summary {
            id: self.id.clone(),
            title: self.title.clone(),
            description: self.description.clone(),
            state,
            created_at: self.created_at,
            starts_at: self.starts_at,
            host,
            speakers,
            listeners: self.listener_count(),
            live_url: format!("/spaces/{}/live.opus", self.id),
            recording_url: format!("/spaces/{}/recording.opus", self.id),
            whip_url: format!("/api/spaces/{}/whip", self.id),
            events_url: format!("/api/spaces/{}/events", self.id),
        }
    }

    /// Milliseconds of recorded time now.
    fn rec_ms(&self) -> u64 {
        let origin = self.rec_origin_ms.load(Relaxed);
        if origin == 0 {
            0
        } else {
            now_ms().saturating_sub(origin)
        }
    }

    /// One step of the space's housekeeping (every [`crate::batch::PERIOD`]): room timers,
    /// batched roster, levels and the speaking timeline. Returns the levels event payload, if
    /// any speaker is on.
    pub fn housekeeping(&self, now: u64, host_present: bool) -> Option<Vec<LevelView>> {
        let (out, roster) = {
            let mut room = self.room.lock();
            if host_present {
                room.host_seen(now);
            }
            let out = match room.poll_timeout() {
                Some(t) if t <= now => Some(room.handle_timeout(now)),
                _ => None,
            };
            (out, room.take_roster_if_dirty())
        };
        if let Some(out) = out {
            self.carry_out(out);
        }
        if let Some(e) = roster {
            self.events.publish(event_name(&e), &e);
        }
        // Levels: the latest report of the mixer, mapped to participants.
        let report = {
            let inner = self.inner.lock();
            let media = inner.media.as_ref()?;
            let mut last = None;
            while let Ok(l) = media.levels.try_recv() {
                last = Some(l);
            }
            last.map(|l| {
                l.into_iter()
                    .filter_map(|(id, db)| {
                        inner
                            .sessions
                            .iter()
                            .find(|s| s.speaker == id)
                            .map(|s| LevelView {
                                sub: s.sub.clone(),
                                name: s.name.clone(),
                                dbfs: (f64::from(db) * 10.0).round() / 10.0,
                            })
                    })
                    .collect::<Vec<_>>()
            })
        };
        let report = report?;
        if self.inner.lock().recording_started && self.lifecycle() == Lifecycle::Live {
            let t = self.rec_ms();
            let rows: Vec<(String, String, f32)> = report
                .iter()
                .map(|l| (l.sub.clone(), l.name.clone(), l.dbfs as f32))
                .collect();
            let closed = {
                let mut tl = self.timeline.lock();
                tl.push_levels(t, &rows);
                tl.take_closed()
            };
            // Closed segments go to the store as they happen: a crash loses at most the open
            // ones.
            self.persist_timeline(closed);
        }
        Some(report)
    }

    /// The speaking timeline: persisted segments, or the live ones.
    pub fn timeline_now(&self) -> Vec<TimelineRow> {
        self.timeline
            .lock()
            .segments()
            .into_iter()
            .map(|s| TimelineRow {
                sub: s.sub,
                name: s.name,
                start_ms: s.start_ms,
                end_ms: s.end_ms,
            })
            .collect()
    }

    fn record(&self) -> SpaceRecord {
        let room = self.room.lock();
        SpaceRecord {
            id: self.id.clone(),
            title: self.title.clone(),
            description: self.description.clone(),
            state: lifecycle_name(room.lifecycle()).to_owned(),
            starts_at: self.starts_at,
            created_at: self.created_at,
            started_at: None,
            ended_at: None,
            room: serde_json::to_string(&room.durable()).unwrap_or_default(),
            serial: self.serial,
            recording: None,
            recording_ms: None,
        }
    }

    fn persist_record(&self) {
        let r = self.record();
        self.store.run(move |s| s.upsert_space(&r));
    }

    fn persist_room(&self) {
        let json = serde_json::to_string(&self.room.lock().durable()).unwrap_or_default();
        let id = self.id.clone();
        self.store.run(move |s| s.set_room(&id, &json));
    }

    fn persist_state(&self, state: &'static str) {
        self.persist_room();
        let id = self.id.clone();
        let at = unix_now();
        self.store.run(move |s| s.set_state(&id, state, at));
    }

    fn persist_timeline(&self, segs: Vec<tribune_room::Segment>) {
        if segs.is_empty() {
            return;
        }
        let rows: Vec<TimelineRow> = segs
            .into_iter()
            .map(|s| TimelineRow {
                sub: s.sub,
                name: s.name,
                start_ms: s.start_ms,
                end_ms: s.end_ms,
            })
            .collect();
        let id = self.id.clone();
        self.store.run(move |s| s.append_timeline(&id, &rows));
    }

    /// The configuration this space runs with.
    pub fn config(&self) -> &Config {
        &self.cfg
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
