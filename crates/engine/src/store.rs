//! Durable state in SQLite: spaces (schedule, lifecycle, the room's roles and bans as opaque JSON),
//! recordings, and the speaking timeline kept with each recording for the replay page.
//!
//! This is the control plane only. It is written when a space is created, started or ended, when
//! roles or bans change, and when a batch of the speaking timeline is appended; never on a join or
//! per listener, so a flash crowd never lands on SQLite. Every call is a short statement on one
//! connection behind a mutex: cheap enough to call from an async handler at this rate.
//!
//! Values always travel as bound parameters, never spliced into SQL text, so a title with quotes
//! or markup is stored and returned byte for byte.
//!
//! The schema is versioned ([`SCHEMA_VERSION`], table `schema_version`) and brought up to date by
//! [`Store::open`]; each migration runs once, in a transaction.

use std::path::Path;
use std::time::Duration;

use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};
use serde::{Deserialize, Serialize};

/// The schema version this code writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// How long a statement waits for a lock held by another connection (a backup tool, a second
/// process on the same file) before failing. Control-plane writes are rare and tiny; a few
/// seconds of waiting beats an error.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Migrations, in order: `MIGRATIONS[i]` brings the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: spaces and their speaking timelines.
    "CREATE TABLE spaces (
        id           TEXT PRIMARY KEY,
        title        TEXT NOT NULL,
        description  TEXT NOT NULL,
        state        TEXT NOT NULL
                     CHECK (state IN ('scheduled', 'live', 'interrupted', 'ended')),
        starts_at    INTEGER,
        created_at   INTEGER NOT NULL,
        started_at   INTEGER,
        ended_at     INTEGER,
        room         TEXT NOT NULL,
        serial       INTEGER NOT NULL,
        recording    TEXT,
        recording_ms INTEGER
    ) STRICT;
    CREATE INDEX spaces_by_created ON spaces (created_at);
    CREATE TABLE timeline (
        space    TEXT NOT NULL REFERENCES spaces (id) ON DELETE CASCADE,
        sub      TEXT NOT NULL,
        name     TEXT NOT NULL,
        start_ms INTEGER NOT NULL,
        end_ms   INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX timeline_by_space ON timeline (space, start_ms);",
];
const _: () = assert!(MIGRATIONS.len() == SCHEMA_VERSION as usize);

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite refused or failed (I/O, constraint, corrupt file, ...).
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// A room state that is not valid JSON.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// No space with this id is stored.
    #[error("no stored space {0:?}")]
    NotFound(String),
}

/// `Result` with [`StoreError`].
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// One space as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpaceRecord {
    /// The space id (as in its URLs).
    pub id: String,
    /// Title, as the host wrote it (already validated by the API).
    pub title: String,
    /// Description, as the host wrote it.
    pub description: String,
    /// `scheduled`, `live`, `interrupted` (live when the server stopped) or `ended`.
    pub state: String,
    /// Announced start, unix seconds.
    pub starts_at: Option<u64>,
    /// Creation time, unix seconds.
    pub created_at: u64,
    /// When it first went live, unix seconds.
    pub started_at: Option<u64>,
    /// When it ended, unix seconds.
    pub ended_at: Option<u64>,
    /// The room's durable state (roles, bans, ...) as JSON, opaque to the store.
    pub room: String,
    /// Ogg serial number of the recording's logical stream, kept so a resumed recording continues
    /// the same stream.
    pub serial: u32,
    /// Path of the recording file.
    pub recording: Option<String>,
    /// Length of the recording in milliseconds, once known.
    pub recording_ms: Option<u64>,
}

/// One stretch of speech in a space's timeline: who spoke, from when to when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineRow {
    /// The speaker's participant id (token `sub`).
    pub sub: String,
    /// The speaker's display name at the time.
    pub name: String,
    /// Start, milliseconds from the start of the recording.
    pub start_ms: u64,
    /// End, milliseconds from the start of the recording.
    pub end_ms: u64,
}

/// The SQLite store; see the module docs.
pub struct Store {
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

/// Columns of `spaces`, in the order [`space_from_row`] reads them.
const SPACE_COLUMNS: &str = "id, title, description, state, starts_at, created_at, started_at, \
     ended_at, room, serial, recording, recording_ms";

impl Store {
    /// Opens (creating if needed) the database file at `path` and brings its schema up to date.
    ///
    /// The file is put in WAL mode with `synchronous=NORMAL`: a committed change survives a crash
    /// of the process; a power loss may lose the last few commits but never corrupts the file.
    pub fn open(path: &Path) -> Result<Store> {
        Self::init(Connection::open(path)?)
    }

    /// A store in memory, for tests.
    pub fn open_in_memory() -> Result<Store> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(mut conn: Connection) -> Result<Store> {
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // An in-memory database answers "memory" here; that is fine.
        let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        migrate(&mut conn)?;
        Ok(Store {
            conn: Mutex::new(conn),
        })
    }

    /// Inserts the space, or replaces every field of the one stored with the same id.
    ///
    /// The space's timeline is kept.
    pub fn upsert_space(&self, r: &SpaceRecord) -> Result<()> {
        check_json(&r.room)?;
        self.conn.lock().execute(
            "INSERT INTO spaces (id, title, description, state, starts_at, created_at, \
                 started_at, ended_at, room, serial, recording, recording_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
             ON CONFLICT (id) DO UPDATE SET
                 title = excluded.title, description = excluded.description,
                 state = excluded.state, starts_at = excluded.starts_at,
                 created_at = excluded.created_at, started_at = excluded.started_at,
                 ended_at = excluded.ended_at, room = excluded.room, serial = excluded.serial,
                 recording = excluded.recording, recording_ms = excluded.recording_ms",
            params![
                r.id,
                r.title,
                r.description,
                r.state,
                opt_int(r.starts_at)?,
                int(r.created_at)?,
                opt_int(r.started_at)?,
                opt_int(r.ended_at)?,
                r.room,
                r.serial,
                r.recording,
                opt_int(r.recording_ms)?,
            ],
        )?;
        Ok(())
    }

    /// The space with this id, if stored.
    pub fn space(&self, id: &str) -> Result<Option<SpaceRecord>> {
        let conn = self.conn.lock();
        let mut stmt =
            conn.prepare_cached(&format!("SELECT {SPACE_COLUMNS} FROM spaces WHERE id = ?1"))?;
        Ok(stmt.query_row([id], space_from_row).optional()?)
    }

    /// Forgets a space and its timeline (the demo replaces its `demo` space this way).
    pub fn delete_space(&self, id: &str) -> Result<()> {
        let conn = self.conn.lock();
        conn.execute("DELETE FROM spaces WHERE id = ?1", [id])?;
        Ok(())
    }

    /// All stored spaces, newest (by creation time) first.
    pub fn spaces(&self) -> Result<Vec<SpaceRecord>> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {SPACE_COLUMNS} FROM spaces ORDER BY created_at DESC, rowid DESC"
        ))?;
        let rows = stmt.query_map([], space_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Moves the space to `state` at unix time `at`.
    ///
    /// `live` sets `started_at` unless it is already set (a resumed space keeps its first start);
    /// `ended` sets `ended_at`. [`StoreError::NotFound`] for an unknown id; an unknown state is
    /// refused by the schema.
    pub fn set_state(&self, id: &str, state: &str, at: u64) -> Result<()> {
        let n = self.conn.lock().execute(
            "UPDATE spaces SET state = ?2,
                 started_at = CASE WHEN ?2 = 'live' THEN coalesce(started_at, ?3)
                              ELSE started_at END,
                 ended_at = CASE WHEN ?2 = 'ended' THEN ?3 ELSE ended_at END
             WHERE id = ?1",
            params![id, state, int(at)?],
        )?;
        found(n, id)
    }

    /// Replaces the room's durable state (roles, bans, ...), which must be valid JSON.
    pub fn set_room(&self, id: &str, room_json: &str) -> Result<()> {
        check_json(room_json)?;
        let n = self.conn.lock().execute(
            "UPDATE spaces SET room = ?2 WHERE id = ?1",
            params![id, room_json],
        )?;
        found(n, id)
    }

    /// Records where the space's recording is and, once known, its length in milliseconds.
    pub fn set_recording(&self, id: &str, path: &str, ms: Option<u64>) -> Result<()> {
        let n = self.conn.lock().execute(
            "UPDATE spaces SET recording = ?2, recording_ms = ?3 WHERE id = ?1",
            params![id, path, opt_int(ms)?],
        )?;
        found(n, id)
    }

    /// Appends stretches of speech to the space's timeline, all or none (one transaction).
    ///
    /// Fails with a foreign-key error when the space is not stored.
    pub fn append_timeline(&self, id: &str, segs: &[TimelineRow]) -> Result<()> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO timeline (space, sub, name, start_ms, end_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for s in segs {
                stmt.execute(params![id, s.sub, s.name, int(s.start_ms)?, int(s.end_ms)?])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The space's timeline ordered by start (then by insertion for equal starts).
    pub fn timeline(&self, id: &str) -> Result<Vec<TimelineRow>> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT sub, name, start_ms, end_ms FROM timeline WHERE space = ?1
             ORDER BY start_ms, rowid",
        )?;
        let rows = stmt.query_map([id], |r| {
            Ok(TimelineRow {
                sub: r.get(0)?,
                name: r.get(1)?,
                start_ms: uint(r, 2)?,
                end_ms: uint(r, 3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// Brings the schema up to [`SCHEMA_VERSION`], each step in its own transaction. Running it on an
/// up-to-date database changes nothing.
fn migrate(conn: &mut Connection) -> Result<()> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")?;
    loop {
        let tx = conn.transaction()?;
        let version = current_version(&tx)?;
        let Some(step) = MIGRATIONS.get(version as usize) else {
            return Ok(());
        };
        tx.execute_batch(step)?;
        tx.execute("DELETE FROM schema_version", [])?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES (?1)",
            [version + 1],
        )?;
        tx.commit()?;
        tracing::info!(version = version + 1, "store: schema migrated");
    }
}

/// The schema version recorded in the database (0 for a new file).
fn current_version(tx: &Transaction<'_>) -> Result<u32> {
    let v: Option<u32> =
        tx.query_row("SELECT max(version) FROM schema_version", [], |r| r.get(0))?;
    Ok(v.unwrap_or(0))
}

fn space_from_row(r: &Row<'_>) -> rusqlite::Result<SpaceRecord> {
    Ok(SpaceRecord {
        id: r.get(0)?,
        title: r.get(1)?,
        description: r.get(2)?,
        state: r.get(3)?,
        starts_at: opt_uint(r, 4)?,
        created_at: uint(r, 5)?,
        started_at: opt_uint(r, 6)?,
        ended_at: opt_uint(r, 7)?,
        room: r.get(8)?,
        serial: r.get(9)?,
        recording: r.get(10)?,
        recording_ms: opt_uint(r, 11)?,
    })
}

/// Refuses a room state that is not JSON, so a bug upstream never stores what cannot be read
/// back.
fn check_json(s: &str) -> Result<()> {
    serde_json::from_str::<serde::de::IgnoredAny>(s)?;
    Ok(())
}

/// SQLite integers are signed 64-bit: times and lengths past `i64::MAX` are refused, not wrapped.
fn int(v: u64) -> rusqlite::Result<i64> {
    i64::try_from(v).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

fn opt_int(v: Option<u64>) -> rusqlite::Result<Option<i64>> {
    v.map(int).transpose()
}

/// Column `idx` as a `u64`; a negative value (written by something else) is an error.
fn uint(r: &Row<'_>, idx: usize) -> rusqlite::Result<u64> {
    let v: i64 = r.get(idx)?;
    u64::try_from(v).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(idx, v))
}

fn opt_uint(r: &Row<'_>, idx: usize) -> rusqlite::Result<Option<u64>> {
    match r.get::<_, Option<i64>>(idx)? {
        None => Ok(None),
        Some(v) => u64::try_from(v)
            .map(Some)
            .map_err(|_| rusqlite::Error::IntegralValueOutOfRange(idx, v)),
    }
}

/// `NotFound` when an update touched no row.
fn found(rows: usize, id: &str) -> Result<()> {
    if rows == 0 {
        return Err(StoreError::NotFound(id.to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(std::path::PathBuf);

    impl TempDir {
        fn new(tag: &str) -> Self {
            use std::sync::atomic::{AtomicU32, Ordering};
            static N: AtomicU32 = AtomicU32::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir()
                .join(format!("tribune-store-{tag}-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn record(id: &str, created_at: u64) -> SpaceRecord {
        SpaceRecord {
            id: id.into(),
            title: format!("title of {id}"),
            description: "a description".into(),
            state: "scheduled".into(),
            starts_at: Some(created_at + 3600),
            created_at,
            started_at: None,
            ended_at: None,
            room: r#"{"host":"alice","cohosts":[],"bans":[]}"#.into(),
            serial: 0xdead_beef,
            recording: None,
            recording_ms: None,
        }
    }

    fn seg(sub: &str, start_ms: u64, end_ms: u64) -> TimelineRow {
        TimelineRow {
            sub: sub.into(),
            name: format!("{sub} name"),
            start_ms,
            end_ms,
        }
    }

    #[test]
    fn store_is_shared_between_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Store>();
    }

    #[test]
    fn space_round_trip_and_upsert_replaces() {
        let s = Store::open_in_memory().unwrap();
        assert_eq!(s.space("a").unwrap(), None);
        let mut r = record("a", 100);
        s.upsert_space(&r).unwrap();
        assert_eq!(s.space("a").unwrap(), Some(r.clone()));
        r.title = "renamed".into();
        r.starts_at = None;
        r.recording = Some("/data/recordings/a.opus".into());
        r.recording_ms = Some(u64::from(u32::MAX) * 10);
        s.upsert_space(&r).unwrap();
        assert_eq!(s.space("a").unwrap(), Some(r));
        assert_eq!(s.spaces().unwrap().len(), 1);
    }

    #[test]
    fn spaces_newest_first() {
        let s = Store::open_in_memory().unwrap();
        for (id, at) in [("mid", 200), ("old", 100), ("new", 300), ("new2", 300)] {
            s.upsert_space(&record(id, at)).unwrap();
        }
        let ids: Vec<String> = s.spaces().unwrap().into_iter().map(|r| r.id).collect();
        // Equal creation times: the later insert first.
        assert_eq!(ids, ["new2", "new", "mid", "old"]);
    }

    #[test]
    fn set_state_sets_start_and_end_times() {
        let s = Store::open_in_memory().unwrap();
        s.upsert_space(&record("a", 100)).unwrap();
        s.set_state("a", "live", 150).unwrap();
        s.set_state("a", "interrupted", 160).unwrap();
        // Resuming keeps the first start.
        s.set_state("a", "live", 170).unwrap();
        let r = s.space("a").unwrap().unwrap();
        assert_eq!(
            (r.state.as_str(), r.started_at, r.ended_at),
            ("live", Some(150), None)
        );
        s.set_state("a", "ended", 200).unwrap();
        let r = s.space("a").unwrap().unwrap();
        assert_eq!(
            (r.state.as_str(), r.started_at, r.ended_at),
            ("ended", Some(150), Some(200))
        );
    }

    #[test]
    fn refuses_unknown_space_state_and_bad_json() {
        let s = Store::open_in_memory().unwrap();
        assert!(matches!(s.set_state("x", "live", 1), Err(StoreError::NotFound(id)) if id == "x"));
        assert!(matches!(
            s.set_room("x", "{}"),
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            s.set_recording("x", "p", None),
            Err(StoreError::NotFound(_))
        ));
        s.upsert_space(&record("a", 1)).unwrap();
        assert!(matches!(
            s.set_state("a", "paused", 2),
            Err(StoreError::Sqlite(_))
        ));
        assert!(matches!(
            s.set_room("a", "{not json"),
            Err(StoreError::Json(_))
        ));
        let mut bad = record("b", 1);
        bad.room = String::new();
        assert!(matches!(s.upsert_space(&bad), Err(StoreError::Json(_))));
        assert!(matches!(
            s.append_timeline("nope", &[seg("u", 0, 1)]),
            Err(StoreError::Sqlite(_))
        ));
        // Nothing changed on refusal.
        assert_eq!(s.space("a").unwrap(), Some(record("a", 1)));
        assert_eq!(s.space("b").unwrap(), None);
    }

    #[test]
    fn room_and_recording_updates() {
        let s = Store::open_in_memory().unwrap();
        s.upsert_space(&record("a", 1)).unwrap();
        s.set_room("a", r#"{"bans":["mallory"]}"#).unwrap();
        s.set_recording("a", "/r/a.opus", None).unwrap();
        let r = s.space("a").unwrap().unwrap();
        assert_eq!(r.room, r#"{"bans":["mallory"]}"#);
        assert_eq!(
            (r.recording.as_deref(), r.recording_ms),
            (Some("/r/a.opus"), None)
        );
        s.set_recording("a", "/r/a.opus", Some(3_600_000)).unwrap();
        assert_eq!(s.space("a").unwrap().unwrap().recording_ms, Some(3_600_000));
    }

    #[test]
    fn timeline_ordered_by_start_and_per_space() {
        let s = Store::open_in_memory().unwrap();
        s.upsert_space(&record("a", 1)).unwrap();
        s.upsert_space(&record("b", 2)).unwrap();
        s.append_timeline("a", &[seg("bob", 5000, 6000), seg("alice", 0, 1200)])
            .unwrap();
        s.append_timeline("b", &[seg("carol", 10, 20)]).unwrap();
        s.append_timeline("a", &[seg("carol", 2500, 4000), seg("dave", 5000, 5100)])
            .unwrap();
        s.append_timeline("a", &[]).unwrap();
        let subs: Vec<String> = s
            .timeline("a")
            .unwrap()
            .into_iter()
            .map(|t| t.sub)
            .collect();
        assert_eq!(subs, ["alice", "carol", "bob", "dave"]);
        assert_eq!(s.timeline("b").unwrap(), [seg("carol", 10, 20)]);
        assert!(s.timeline("none").unwrap().is_empty());
        // Upserting the space again keeps its timeline.
        s.upsert_space(&record("a", 1)).unwrap();
        assert_eq!(s.timeline("a").unwrap().len(), 4);
    }

    #[test]
    fn timeline_append_is_all_or_nothing() {
        let s = Store::open_in_memory().unwrap();
        s.upsert_space(&record("a", 1)).unwrap();
        let err = s.append_timeline("a", &[seg("ok", 0, 10), seg("too-big", 0, u64::MAX)]);
        assert!(matches!(err, Err(StoreError::Sqlite(_))));
        assert!(s.timeline("a").unwrap().is_empty());
    }

    #[test]
    fn hostile_text_is_stored_byte_exact() {
        let s = Store::open_in_memory().unwrap();
        let mut r = record("it's; DROP TABLE spaces;--", 1);
        r.title = "Robert'); DROP TABLE spaces;-- \"quoted\" <script>alert(1)</script> \
                   日本語 🎙️ e\u{301} \u{200b}"
            .into();
        r.description = "''\\\\%_?1 :name @x $y".into();
        s.upsert_space(&r).unwrap();
        let mut t = seg("sub'\"", 0, 1);
        t.name = "<img src=x onerror=alert(1)> Zoë".into();
        s.append_timeline(&r.id, std::slice::from_ref(&t)).unwrap();
        let got = s.space(&r.id).unwrap().unwrap();
        assert_eq!(got.title.as_bytes(), r.title.as_bytes());
        assert_eq!(got, r);
        assert_eq!(s.timeline(&r.id).unwrap(), [t]);
        assert_eq!(s.spaces().unwrap().len(), 1);
    }

    #[test]
    fn reopen_finds_everything() {
        let dir = TempDir::new("reopen");
        let path = dir.0.join("tribune.db");
        let mut ended = record("ended", 10);
        ended.state = "ended".into();
        ended.started_at = Some(11);
        ended.ended_at = Some(20);
        ended.recording = Some("recordings/ended.opus".into());
        ended.recording_ms = Some(9_000);
        {
            let s = Store::open(&path).unwrap();
            s.upsert_space(&record("sched", 30)).unwrap();
            s.upsert_space(&ended).unwrap();
            s.append_timeline("ended", &[seg("alice", 0, 4000), seg("bob", 4000, 9000)])
                .unwrap();
            s.upsert_space(&record("live", 40)).unwrap();
            s.set_state("live", "live", 41).unwrap();
        }
        let s = Store::open(&path).unwrap();
        let ids: Vec<String> = s.spaces().unwrap().into_iter().map(|r| r.id).collect();
        assert_eq!(ids, ["live", "sched", "ended"]);
        assert_eq!(s.space("sched").unwrap(), Some(record("sched", 30)));
        assert_eq!(s.space("ended").unwrap(), Some(ended));
        assert_eq!(s.space("live").unwrap().unwrap().state, "live");
        assert_eq!(
            s.timeline("ended").unwrap(),
            [seg("alice", 0, 4000), seg("bob", 4000, 9000)]
        );
        let mode: String = s
            .conn
            .lock()
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn migration_is_idempotent() {
        let dir = TempDir::new("migrate");
        let path = dir.0.join("tribune.db");
        Store::open(&path)
            .unwrap()
            .upsert_space(&record("a", 1))
            .unwrap();
        for _ in 0..3 {
            let s = Store::open(&path).unwrap();
            let mut conn = s.conn.lock();
            migrate(&mut conn).unwrap();
            let versions: Vec<u32> = conn
                .prepare("SELECT version FROM schema_version")
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert_eq!(versions, [SCHEMA_VERSION]);
        }
        let s = Store::open(&path).unwrap();
        assert_eq!(s.space("a").unwrap(), Some(record("a", 1)));
    }
}
