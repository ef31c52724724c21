//! The store interface a space's durable state is written through, and its replicated form.
//!
//! [`Durable`] is what the writer thread ([`crate::writer`]) and the server call: SQLite
//! ([`Store`]) serves it alone. In a cluster, [`Replicated`] serves it: every write goes to this
//! node's SQLite first (its answer is the write's answer: a node restarts from its own disk,
//! whatever Redis does), then the space's whole record as SQLite now holds it, and any new
//! timeline rows, go to a [`Replica`] (Redis, shared by every node), so the replica is always a
//! state the room passed through. A replica that fails is left alone for [`BACK_OFF`] (its
//! writes are counted as lost, never waited on), and on the first write that succeeds after, the
//! replica is given every space of this node again, whole, so nothing lost stays lost.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tribune_metrics::Metrics;

use crate::store::{Result, SpaceRecord, Store, TimelineRow};

/// How long a failed replica is left alone before it is tried again.
pub const BACK_OFF: Duration = Duration::from_secs(5);

/// Where a space's durable state is written and read back.
pub trait Durable: Send + Sync {
    /// Inserts or replaces a space's record.
    fn upsert_space(&self, r: &SpaceRecord) -> Result<()>;
    /// Deletes a space and its timeline.
    fn delete_space(&self, id: &str) -> Result<()>;
    /// Moves a space to `state` at `at` (Unix ms): `started_at` on first going live, `ended_at`.
    fn set_state(&self, id: &str, state: &str, at: u64) -> Result<()>;
    /// Replaces the room's durable state (roles, bans…), JSON.
    fn set_room(&self, id: &str, room_json: &str) -> Result<()>;
    /// Names the recording's file (and its length once known).
    fn set_recording(&self, id: &str, path: &str, ms: Option<u64>) -> Result<()>;
    /// Appends who-spoke-when rows.
    fn append_timeline(&self, id: &str, segs: &[TimelineRow]) -> Result<()>;
    /// One space's record.
    fn space(&self, id: &str) -> Result<Option<SpaceRecord>>;
    /// Every space's record.
    fn spaces(&self) -> Result<Vec<SpaceRecord>>;
    /// A space's timeline, in order.
    fn timeline(&self, id: &str) -> Result<Vec<TimelineRow>>;
}

impl Durable for Store {
    fn upsert_space(&self, r: &SpaceRecord) -> Result<()> {
        Store::upsert_space(self, r)
    }
    fn delete_space(&self, id: &str) -> Result<()> {
        Store::delete_space(self, id)
    }
    fn set_state(&self, id: &str, state: &str, at: u64) -> Result<()> {
        Store::set_state(self, id, state, at)
    }
    fn set_room(&self, id: &str, room_json: &str) -> Result<()> {
        Store::set_room(self, id, room_json)
    }
    fn set_recording(&self, id: &str, path: &str, ms: Option<u64>) -> Result<()> {
        Store::set_recording(self, id, path, ms)
    }
    fn append_timeline(&self, id: &str, segs: &[TimelineRow]) -> Result<()> {
        Store::append_timeline(self, id, segs)
    }
    fn space(&self, id: &str) -> Result<Option<SpaceRecord>> {
        Store::space(self, id)
    }
    fn spaces(&self) -> Result<Vec<SpaceRecord>> {
        Store::spaces(self)
    }
    fn timeline(&self, id: &str) -> Result<Vec<TimelineRow>> {
        Store::timeline(self, id)
    }
}

/// A shared copy of the durable state (Redis in a cluster). Its errors are messages: a replica
/// that fails costs its copy, never a write.
pub trait Replica: Send + Sync {
    /// Writes a space's whole record.
    fn put_space(&self, r: &SpaceRecord) -> std::result::Result<(), String>;
    /// Replaces a space's timeline whole.
    fn put_timeline(&self, id: &str, rows: &[TimelineRow]) -> std::result::Result<(), String>;
    /// Appends timeline rows.
    fn append_timeline(&self, id: &str, rows: &[TimelineRow]) -> std::result::Result<(), String>;
    /// Forgets a space.
    fn delete_space(&self, id: &str) -> std::result::Result<(), String>;
    /// Whether the replica lost its connection since last asked (and so may have lost its data:
    /// a Redis restarted without persistence); asking clears it.
    fn reconnected(&self) -> bool {
        false
    }
}

/// SQLite first, then a [`Replica`].
pub struct Replicated {
    primary: Arc<Store>,
    replica: Box<dyn Replica>,
    metrics: Arc<Metrics>,
    /// Since when the replica has failed (`None`: it is current).
    failed: Mutex<Option<Instant>>,
}

impl Replicated {
    /// `primary` replicated to `replica`; lost replica writes count in `metrics`.
    pub fn new(primary: Arc<Store>, replica: Box<dyn Replica>, metrics: Arc<Metrics>) -> Self {
        Replicated {
            primary,
            replica,
            metrics,
            failed: Mutex::new(None),
        }
    }

    /// Runs `write` on the replica unless it is backing off; after a failure, the first write
    /// that may run first gives the replica every space whole.
    fn replicate(&self, write: impl FnOnce(&dyn Replica) -> std::result::Result<(), String>) {
        let since = *self.failed.lock();
        if since.is_some_and(|t| t.elapsed() < BACK_OFF) {
            self.metrics.store_replica_errors.fetch_add(1, Relaxed);
            return;
        }
        let result = match since {
            Some(_) => self.resync().and_then(|()| write(self.replica.as_ref())),
            None => write(self.replica.as_ref()).and_then(|()| {
                // Connected again after a loss nobody wrote through: copy everything whole.
                if self.replica.reconnected() {
                    self.resync()
                } else {
                    Ok(())
                }
            }),
        };
        match result {
            Ok(()) => *self.failed.lock() = None,
            Err(e) => {
                self.metrics.store_replica_errors.fetch_add(1, Relaxed);
                if since.is_none() {
                    tracing::warn!(error = %e, "shared store unreachable: writing locally only");
                }
                *self.failed.lock() = Some(Instant::now());
            }
        }
    }

    /// Every space of the primary to the replica, whole.
    fn resync(&self) -> std::result::Result<(), String> {
        let spaces = self.primary.spaces().map_err(|e| e.to_string())?;
        for r in &spaces {
            self.replica.put_space(r)?;
            let rows = self.primary.timeline(&r.id).map_err(|e| e.to_string())?;
            self.replica.put_timeline(&r.id, &rows)?;
        }
        tracing::info!(
            spaces = spaces.len(),
            "shared store reachable again: copied whole"
        );
        Ok(())
    }

    /// After a write to `id`: its record as the primary now holds it, to the replica.
    fn replicate_record(&self, id: &str) {
        match self.primary.space(id) {
            Ok(Some(r)) => self.replicate(|rep| rep.put_space(&r)),
            Ok(None) => {}
            Err(e) => tracing::warn!(space = id, error = %e, "reading back a record to replicate"),
        }
    }
}

impl Durable for Replicated {
    fn upsert_space(&self, r: &SpaceRecord) -> Result<()> {
        self.primary.upsert_space(r)?;
        self.replicate_record(&r.id);
        Ok(())
    }
    fn delete_space(&self, id: &str) -> Result<()> {
        self.primary.delete_space(id)?;
        self.replicate(|rep| rep.delete_space(id));
        Ok(())
    }
    fn set_state(&self, id: &str, state: &str, at: u64) -> Result<()> {
        self.primary.set_state(id, state, at)?;
        self.replicate_record(id);
        Ok(())
    }
    fn set_room(&self, id: &str, room_json: &str) -> Result<()> {
        self.primary.set_room(id, room_json)?;
        self.replicate_record(id);
        Ok(())
    }
    fn set_recording(&self, id: &str, path: &str, ms: Option<u64>) -> Result<()> {
        self.primary.set_recording(id, path, ms)?;
        self.replicate_record(id);
        Ok(())
    }
    fn append_timeline(&self, id: &str, segs: &[TimelineRow]) -> Result<()> {
        self.primary.append_timeline(id, segs)?;
        self.replicate(|rep| rep.append_timeline(id, segs));
        Ok(())
    }
    fn space(&self, id: &str) -> Result<Option<SpaceRecord>> {
        self.primary.space(id)
    }
    fn spaces(&self) -> Result<Vec<SpaceRecord>> {
        self.primary.spaces()
    }
    fn timeline(&self, id: &str) -> Result<Vec<TimelineRow>> {
        self.primary.timeline(id)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::atomic::AtomicBool;

    use super::*;

    /// A replica in memory that can be switched off.
    #[derive(Default)]
    struct Memory {
        down: AtomicBool,
        spaces: Mutex<HashMap<String, SpaceRecord>>,
        timelines: Mutex<HashMap<String, Vec<TimelineRow>>>,
    }

    impl Replica for Arc<Memory> {
        fn put_space(&self, r: &SpaceRecord) -> std::result::Result<(), String> {
            if self.down.load(Relaxed) {
                return Err("down".into());
            }
            self.spaces.lock().insert(r.id.clone(), r.clone());
            Ok(())
        }
        fn put_timeline(&self, id: &str, rows: &[TimelineRow]) -> std::result::Result<(), String> {
            if self.down.load(Relaxed) {
                return Err("down".into());
            }
            self.timelines.lock().insert(id.into(), rows.to_vec());
            Ok(())
        }
        fn append_timeline(
            &self,
            id: &str,
            rows: &[TimelineRow],
        ) -> std::result::Result<(), String> {
            if self.down.load(Relaxed) {
                return Err("down".into());
            }
            self.timelines
                .lock()
                .entry(id.into())
                .or_default()
                .extend_from_slice(rows);
            Ok(())
        }
        fn delete_space(&self, id: &str) -> std::result::Result<(), String> {
            if self.down.load(Relaxed) {
                return Err("down".into());
            }
            self.spaces.lock().remove(id);
            self.timelines.lock().remove(id);
            Ok(())
        }
    }

    fn record(id: &str) -> SpaceRecord {
        SpaceRecord {
            id: id.into(),
            title: "t".into(),
            description: String::new(),
            state: "scheduled".into(),
            starts_at: None,
            created_at: 1,
            started_at: None,
            ended_at: None,
            room: "{}".into(),
            serial: 7,
            recording: None,
            recording_ms: None,
        }
    }

    fn row(n: u64) -> TimelineRow {
        TimelineRow {
            sub: "a".into(),
            name: "A".into(),
            start_ms: n,
            end_ms: n + 1,
        }
    }

    #[test]
    fn the_replica_holds_what_sqlite_holds_and_catches_up_after_an_outage() {
        let primary = Arc::new(Store::open_in_memory().unwrap());
        let mem = Arc::new(Memory::default());
        let metrics = Arc::new(Metrics::default());
        let r = Replicated::new(primary.clone(), Box::new(mem.clone()), metrics.clone());
        r.upsert_space(&record("s")).unwrap();
        r.set_state("s", "live", 100).unwrap();
        r.append_timeline("s", &[row(1)]).unwrap();
        assert_eq!(
            mem.spaces.lock()["s"],
            primary.space("s").unwrap().unwrap(),
            "the record as SQLite made it (started_at set by the state change)"
        );
        assert_eq!(mem.spaces.lock()["s"].started_at, Some(100));

        // Down: writes go on locally, the replica's are counted as lost.
        mem.down.store(true, Relaxed);
        r.set_room("s", r#"{"bans":["x"]}"#).unwrap();
        r.append_timeline("s", &[row(2)]).unwrap();
        r.upsert_space(&record("t")).unwrap();
        assert_eq!(primary.spaces().unwrap().len(), 2, "SQLite has every write");
        assert!(metrics.store_replica_errors.load(Relaxed) >= 3);
        assert_eq!(mem.spaces.lock()["s"].room, "{}", "the replica missed them");

        // Back: the next write after the back-off copies everything whole.
        mem.down.store(false, Relaxed);
        *r.failed.lock() = Some(Instant::now() - BACK_OFF);
        r.set_state("s", "ended", 200).unwrap();
        let spaces = mem.spaces.lock().clone();
        assert_eq!(spaces.len(), 2);
        assert_eq!(spaces["s"], primary.space("s").unwrap().unwrap());
        assert_eq!(spaces["s"].room, r#"{"bans":["x"]}"#);
        assert_eq!(mem.timelines.lock()["s"], primary.timeline("s").unwrap());
        assert_eq!(mem.timelines.lock()["s"].len(), 2);

        r.delete_space("t").unwrap();
        assert!(!mem.spaces.lock().contains_key("t"));
    }
}
