//! A live space: its mixer, pager and recorder threads, its live stream and its WHIP sessions.
//!
//! Starting a space starts three threads (mixer → pager → recorder, joined by lock-free
//! channels); ending it closes every WHIP session and drops the mixer handle, which stops the
//! threads in order: the pager writes the last page with end-of-stream and closes the live
//! stream, the recorder finishes the file.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tribune_media::mixer;
use tribune_media::oggopus::OggOpusWriter;

use crate::config::Config;
use crate::live::{self, LiveStream};
use crate::metrics::Metrics;
use crate::mixer::{Control, MixerHandle};
use crate::recording;

/// Lifecycle state of a space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Live,
    Ended,
}

/// A WHIP session of a participant.
pub struct SessionEntry {
    pub session_id: String,
    pub sub: String,
    pub name: String,
    pub speaker: u64,
    pub close: CancellationToken,
}

struct Inner {
    state: State,
    ended_at: Option<u64>,
    sessions: Vec<SessionEntry>,
    /// `None` once ended: dropping it stops the mixer thread.
    mixer: Option<MixerHandle>,
}

/// One space.
pub struct Space {
    pub id: String,
    pub title: String,
    pub description: String,
    pub created_at: u64,
    pub host_sub: String,
    pub live: Arc<LiveStream>,
    pub recording: PathBuf,
    inner: Mutex<Inner>,
    /// Mixer, pager and recorder threads, joined by [`Space::join`].
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    metrics: Arc<Metrics>,
}

/// What the API shows of a space.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub id: String,
    pub title: String,
    pub description: String,
    pub state: State,
    pub created_at: u64,
    pub ended_at: Option<u64>,
    pub host: String,
    pub speakers: Vec<SpeakerSummary>,
    pub listeners: i64,
    pub live_url: String,
    pub recording_url: String,
    pub whip_url: String,
}

/// A speaker on stage.
#[derive(Debug, Clone, Serialize)]
pub struct SpeakerSummary {
    pub sub: String,
    pub name: String,
}

impl Space {
    /// Start a live space: threads, stream, recording.
    pub fn start(
        id: &str,
        title: &str,
        description: &str,
        host_sub: &str,
        cfg: &Config,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Arc<Space>> {
        let mcfg = mixer::Config {
            bitrate: cfg.bitrate,
            mix_minus_bitrate: cfg.bitrate,
            ..mixer::Config::default()
        };
        let (handle, packets, pre_skip, mixer_thread) =
            crate::mixer::spawn(id, mcfg, metrics.clone())?;
        let serial: u32 = rand::random();
        let tags = vec![
            ("TITLE".to_owned(), title.to_owned()),
            ("ENCODER".to_owned(), "tribune".to_owned()),
        ];
        let writer = || OggOpusWriter::new(serial, 1, pre_skip, tags.clone());
        let live = Arc::new(LiveStream::new(
            writer(),
            cfg.page,
            cfg.burst,
            cfg.slow_listener,
        ));
        let recording = recording::path(&cfg.data_dir, id);
        let mut threads = vec![mixer_thread];
        let rec_tx = match recording::spawn(recording.clone(), writer(), metrics.clone()) {
            Ok((tx, thread)) => {
                threads.push(thread);
                Some(tx)
            }
            Err(e) => {
                // The show goes on without a recording; the error is loud.
                metrics.recording_errors.fetch_add(1, Relaxed);
                tracing::error!(space = id, path = %recording.display(), error = %e,
                    "cannot start the recording");
                None
            }
        };
        threads.push(live::spawn_pager(
            id,
            writer(),
            cfg.page,
            packets,
            live.clone(),
            rec_tx,
            metrics.clone(),
        )?);
        metrics.spaces_live.fetch_add(1, Relaxed);
        Ok(Arc::new(Space {
            id: id.to_owned(),
            title: title.to_owned(),
            description: description.to_owned(),
            created_at: unix_now(),
            host_sub: host_sub.to_owned(),
            live,
            recording,
            threads: Mutex::new(threads),
            inner: Mutex::new(Inner {
                state: State::Live,
                ended_at: None,
                sessions: Vec::new(),
                mixer: Some(handle),
            }),
            metrics,
        }))
    }

    pub fn state(&self) -> State {
        self.inner.lock().state
    }

    /// The mixer handle, while live.
    pub fn mixer(&self) -> Option<MixerHandle> {
        self.inner.lock().mixer.clone()
    }

    /// Record a new WHIP session; an older session of the same participant is closed (one
    /// connection per participant: a reconnecting browser replaces its old session).
    pub fn add_session(&self, entry: SessionEntry) {
        let mut inner = self.inner.lock();
        inner.sessions.retain(|s| {
            if s.sub == entry.sub {
                s.close.cancel();
                false
            } else {
                true
            }
        });
        inner.sessions.push(entry);
    }

    /// Forget a session (its task ended).
    pub fn remove_session(&self, session_id: &str) {
        self.inner
            .lock()
            .sessions
            .retain(|s| s.session_id != session_id);
    }

    /// Close a session; returns the participant it belonged to, if it existed.
    pub fn close_session(&self, session_id: &str) -> Option<String> {
        let mut inner = self.inner.lock();
        let pos = inner
            .sessions
            .iter()
            .position(|s| s.session_id == session_id)?;
        let s = inner.sessions.remove(pos);
        s.close.cancel();
        Some(s.sub)
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

    /// Mute or unmute a participant's audio in every mix.
    pub fn mute(&self, sub: &str, muted: bool) -> bool {
        let inner = self.inner.lock();
        let Some(mixer) = &inner.mixer else {
            return false;
        };
        let mut found = false;
        for s in inner.sessions.iter().filter(|s| s.sub == sub) {
            mixer.control(Control::Mute(s.speaker, muted));
            found = true;
        }
        found
    }

    /// End the space: close sessions, stop the threads (the recording is finished by them).
    pub fn end(&self) -> bool {
        let mut inner = self.inner.lock();
        if inner.state == State::Ended {
            return false;
        }
        inner.state = State::Ended;
        inner.ended_at = Some(unix_now());
        for s in inner.sessions.drain(..) {
            s.close.cancel();
        }
        inner.mixer = None;
        self.metrics.spaces_live.fetch_sub(1, Relaxed);
        true
    }

    /// Wait for the threads of an ended space to finish (the recording is then complete).
    /// Blocking: call from a blocking context.
    pub fn join(&self) {
        let threads: Vec<_> = self.threads.lock().drain(..).collect();
        for t in threads {
            let _ = t.join();
        }
    }

    /// The API view of this space; `base` is the public URL prefix (may be empty).
    pub fn summary(&self, base: &str) -> Summary {
        let inner = self.inner.lock();
        Summary {
            id: self.id.clone(),
            title: self.title.clone(),
            description: self.description.clone(),
            state: inner.state,
            created_at: self.created_at,
            ended_at: inner.ended_at,
            host: self.host_sub.clone(),
            speakers: inner
                .sessions
                .iter()
                .map(|s| SpeakerSummary {
                    sub: s.sub.clone(),
                    name: s.name.clone(),
                })
                .collect(),
            listeners: self.live.listeners.load(Relaxed),
            live_url: format!("{base}/spaces/{}/live.opus", self.id),
            recording_url: format!("{base}/spaces/{}/recording.opus", self.id),
            whip_url: format!("{base}/api/spaces/{}/whip", self.id),
        }
    }
}

impl Drop for Space {
    fn drop(&mut self) {
        self.end();
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
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

    pub fn contains(&self, id: &str) -> bool {
        self.map.read().contains_key(id)
    }
}
