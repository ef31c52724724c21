//! Commands through the room and what they set off: going live (with the recording's resume scan), muting, closing sessions, ending and suspending.

use super::*;

impl Space {
    /// Apply a command of `actor` through the room and carry out its effects.
    pub fn command(&self, actor: &Actor, cmd: Command) -> Result<(), Refusal> {
        let ban_target = match &cmd {
            Command::Ban { target } => Some(target.clone()),
            _ => None,
        };
        let outcome = {
            let mut room = self.room.lock();
            let out = room.apply(actor, cmd, self.cfg.clock.now_ms())?;
            if let Some(t) = ban_target
                && t.starts_with(ANON_PREFIX)
                && let Some(ip) = self.inner.lock().addrs.get(&t)
            {
                room.ban_addr(ip);
            }
            out
        };
        self.carry_out(outcome);
        Ok(())
    }

    /// `Start` or `Resume` (other commands go to [`Space::command`]). Blocking: it may scan and
    /// repair an interrupted recording (tens of MB for a long space), so async callers run it on a
    /// blocking thread. The scan runs without the room's or the media's lock, and only when the
    /// room would accept the command.
    pub fn go_live(&self, actor: &Actor, cmd: Command) -> Result<(), Refusal> {
        let _one_at_a_time = self.going_live.lock();
        let accepted = {
            let room = self.room.lock();
            let state = match cmd {
                Command::Start => Lifecycle::Scheduled,
                Command::Resume => Lifecycle::Interrupted,
                _ => {
                    drop(room);
                    return self.command(actor, cmd);
                }
            };
            room.lifecycle() == state
                && room
                    .current_role(&actor.sub, actor.token_role)
                    .is_ok_and(|r| check(Action::of(&cmd), r, actor.operator).is_ok())
        };
        let resumed = self.inner.lock().recording_started || self.recording.exists();
        if accepted && resumed {
            let point = crate::resume::prepare(&self.recording);
            *self.prepared.lock() = Some(point);
        }
        let result = self.command(actor, cmd);
        self.prepared.lock().take();
        result
    }

    /// Carry out what the room decided: publish events, close sessions, mute, persist, and the
    /// lifecycle's media consequences.
    pub(super) fn carry_out(&self, out: Outcome) {
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
    pub(super) fn start_recording(&self, resume: bool) {
        let mut inner = self.inner.lock();
        let Some(media) = &inner.media else { return };
        let tags = vec![
            ("TITLE".to_owned(), self.title.clone()),
            ("ENCODER".to_owned(), "tribune".to_owned()),
        ];
        let mut resumed_ms = 0;
        let prepared = self.prepared.lock().take();
        let point = match resume
            .then(|| prepared.unwrap_or_else(|| crate::resume::prepare(&self.recording)))
        {
            Some(Ok(p)) => p,
            Some(Err(e)) => {
                tracing::error!(space = %self.id, error = %e,
                    "cannot continue the recording; starting a new file");
                None
            }
            None => None,
        };
        let continue_from = self.continue_from.lock().take();
        let (writer, mode) = match point {
            Some(p) => {
                resumed_ms = p.granule.saturating_sub(u64::from(p.pre_skip)) / 48;
                let mut writer = OggOpusWriter::resume(
                    p.serial, p.channels, p.pre_skip, tags, p.next_seq, p.granule,
                );
                // A takeover: the interval the earlier owner's recording lost is silence, so
                // the recording's time stays the clock's.
                if let Some(origin) = continue_from {
                    let gap = self
                        .cfg
                        .clock
                        .now_ms()
                        .saturating_sub(origin)
                        .saturating_sub(resumed_ms);
                    match recording::fill_silence(&self.recording, &mut writer, gap) {
                        Ok(samples) => resumed_ms += samples / 48,
                        Err(e) => tracing::error!(space = %self.id, error = %e,
                            "cannot fill the recording's gap with silence"),
                    }
                }
                (writer, Mode::Append)
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
                self.rec_origin_ms
                    .store(self.cfg.clock.now_ms() - resumed_ms, Relaxed);
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

    pub(super) fn close_sessions_of(&self, sub: &str) {
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

    pub(super) fn set_muted(&self, sub: &str, muted: bool) {
        let mut inner = self.inner.lock();
        inner.muted.insert(sub.to_owned(), muted);
        if let Some(m) = &inner.media {
            for s in inner.sessions.iter().filter(|s| s.sub == sub) {
                m.mixer.control(Control::Mute(s.speaker, muted));
            }
        }
    }

    /// Stop the media threads (the recording is finished by them) and close the event stream.
    pub(super) fn shutdown(&self) {
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

    pub(super) fn stop_media(&self) {
        let media = {
            let mut inner = self.inner.lock();
            for s in inner.sessions.drain(..) {
                s.close.cancel();
            }
            inner.media.take()
        };
        if media.is_some() {
            self.metrics.spaces_live.fetch_sub(1, Relaxed);
            if self.captions.is_some() {
                self.metrics.captions_spaces.fetch_sub(1, Relaxed);
            }
        }
        // The mixer stops, and with it the captions' tap: the captioner finishes what it has
        // by itself (`SpaceCaptions::is_finished`).
        drop(media);
    }

    /// Another node runs this space now (this one lost its lease): stop at once without a
    /// word more: no page, part or recorded packet ([`crate::fence`]), no state persisted, no
    /// end of stream; WHIP sessions and event streams are closed, so their clients go to the
    /// new owner.
    pub fn demote(&self) {
        self.fence.revoke();
        self.stop_media();
        self.events.close();
    }

    /// A takeover resumes this space: its recording is first filled with silence up to now
    /// from `origin_ms`, the Unix ms the earlier owner's recorded time 0 stood for.
    pub fn continue_from(&self, origin_ms: u64) {
        *self.continue_from.lock() = (origin_ms > 0).then_some(origin_ms);
    }

    /// Whether its media threads have stopped and finished (ended, suspended or demoted):
    /// its recording and rendition on disk are then complete.
    pub fn media_stopped(&self) -> bool {
        self.inner.lock().media.is_none() && self.threads.lock().iter().all(|t| t.is_finished())
    }

    /// The Unix ms recorded time 0 stands for (0 before the recording starts).
    pub fn recording_origin_ms(&self) -> u64 {
        self.rec_origin_ms.load(Relaxed)
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
}
