//! What the API and the housekeeping read: counts, the room and space views, levels, the speaking timeline, and what goes to the store.

use super::*;

impl Space {
    /// Listener count: direct `live.opus` connections, plus participants seen (token renewal,
    /// presence beacon, event stream) within the presence window, plus anonymous pages counted
    /// from their sampled beacons; each estimated in constant memory. A page that joins counts
    /// as a participant and stops its anonymous beacon, so it may count twice for at most one
    /// beacon window (90 s).
    pub fn listener_count(&self) -> u64 {
        let direct =
            (self.live.listeners.load(Relaxed) + self.remote_listeners.load(Relaxed)).max(0) as u64;
        let now = self.cfg.clock.now_ms();
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
            started_at: self.started_at(),
            ended_at: self.ended_at(),
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
    pub(super) fn rec_ms(&self) -> u64 {
        let origin = self.rec_origin_ms.load(Relaxed);
        if origin == 0 {
            0
        } else {
            self.cfg.clock.now_ms().saturating_sub(origin)
        }
    }

    /// One step of the space's housekeeping (every [`crate::batch::PERIOD`]): room timers,
    /// batched roster, levels and the speaking timeline. Returns the levels event payload, if
    /// any speaker is on.
    pub fn housekeeping(&self, now: u64, host_present: bool) -> Option<Vec<LevelView>> {
        if let Some(c) = &self.captions {
            let origin = self.rec_origin_ms.load(Relaxed);
            for cue in c.take_fresh() {
                self.events.publish(
                    "caption",
                    &serde_json::json!({
                        "start_ms": cue.start_ms.saturating_sub(origin),
                        "end_ms": cue.end_ms.saturating_sub(origin),
                        "text": cue.text,
                    }),
                );
            }
        }
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
        // `inner` is released before `room` is taken (the order is room, then inner).
        let recording = self.inner.lock().recording_started;
        if recording && self.lifecycle() == Lifecycle::Live {
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

    pub(super) fn record(&self) -> SpaceRecord {
        let room = self.room.lock();
        SpaceRecord {
            id: self.id.clone(),
            title: self.title.clone(),
            description: self.description.clone(),
            state: lifecycle_name(room.lifecycle()).to_owned(),
            starts_at: self.starts_at,
            created_at: self.created_at,
            started_at: self.started_at(),
            ended_at: self.ended_at(),
            room: serde_json::to_string(&room.durable()).unwrap_or_default(),
            serial: self.serial,
            recording: None,
            recording_ms: None,
        }
    }

    pub(super) fn persist_record(&self) {
        let r = self.record();
        self.store.run(move |s| s.upsert_space(&r));
    }

    pub(super) fn persist_room(&self) {
        let json = serde_json::to_string(&self.room.lock().durable()).unwrap_or_default();
        let id = self.id.clone();
        self.store.run(move |s| s.set_room(&id, &json));
    }

    pub(super) fn persist_state(&self, state: &'static str) {
        self.persist_room();
        let id = self.id.clone();
        let at = self.cfg.clock.now_s();
        match state {
            "live" => {
                let _ = self.started_at.compare_exchange(0, at, Relaxed, Relaxed);
            }
            "ended" => self.ended_at.store(at, Relaxed),
            _ => {}
        }
        self.store.run(move |s| s.set_state(&id, state, at));
    }

    /// Unix ms at which recorded time 0 lies (0 before the recording starts).
    pub fn rec_origin(&self) -> u64 {
        self.rec_origin_ms.load(Relaxed)
    }

    /// Unix seconds the space first went live, if it has.
    pub fn started_at(&self) -> Option<u64> {
        Some(self.started_at.load(Relaxed)).filter(|&t| t > 0)
    }

    /// Unix seconds the space ended, if it has.
    pub fn ended_at(&self) -> Option<u64> {
        Some(self.ended_at.load(Relaxed)).filter(|&t| t > 0)
    }

    pub(super) fn persist_timeline(&self, segs: Vec<tribune_room::Segment>) {
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

    /// The settings this space runs with.
    pub fn config(&self) -> &SpaceConfig {
        &self.cfg
    }
}
