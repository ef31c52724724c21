//! Who is here: WHIP sessions, event streams, anonymous addresses, presence and the recent audience.

use super::*;

impl Space {
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
        let now = self.cfg.clock.now_ms();
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
        self.inner.lock().addrs.seen(sub, ip);
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
        let out =
            self.room
                .lock()
                .session_started(&entry.sub, &entry.name, self.cfg.clock.now_ms());
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
            let out = self.room.lock().session_ended(sub, self.cfg.clock.now_ms());
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

    /// Whether the host is here: a WHIP session or an open event stream (on this node, or on
    /// another node of the cluster).
    pub fn host_present(&self) -> bool {
        let Some(host) = self.room.lock().host().map(str::to_owned) else {
            return false;
        };
        let here = {
            let inner = self.inner.lock();
            inner.sessions.iter().any(|s| s.sub == host) || inner.streams.contains_key(&host)
        };
        here || self.remote_streams.lock().contains(&host)
    }

    /// Whether `sub` has a WHIP session now.
    pub fn has_session(&self, sub: &str) -> bool {
        self.inner.lock().sessions.iter().any(|s| s.sub == sub)
    }
}
