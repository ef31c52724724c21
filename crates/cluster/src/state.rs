//! The spaces' durable state in Redis: the shared copy every node (and, next, a standby) can
//! read, written by each space's owner through [`tribune_engine::durable::Replicated`].
//!
//! Keys: `tribune:state:{id}`, the space's whole record as its owner's SQLite holds it (JSON);
//! `tribune:timeline:{id}`, a list of who-spoke-when rows (JSON each). Run Redis with persistence
//! on (`appendonly yes`) for this copy to outlive Redis.
//!
//! The writer thread that calls this is not async: this is Redis's blocking client, one
//! connection made on demand (connect within 500 ms, answers within 1 s) and dropped on an error.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

use parking_lot::Mutex;
use redis::Commands;
use tribune_engine::durable::Replica;
use tribune_engine::store::{SpaceRecord, TimelineRow};

const CONNECT: Duration = Duration::from_millis(500);
const ANSWER: Duration = Duration::from_secs(1);

fn state_key(id: &str) -> String {
    format!("tribune:state:{id}")
}

fn timeline_key(id: &str) -> String {
    format!("tribune:timeline:{id}")
}

/// The shared durable state on one Redis.
pub struct RedisState {
    client: redis::Client,
    conn: Mutex<Option<redis::Connection>>,
    /// A connection was lost and made again since last asked: Redis may have restarted empty.
    reconnected: AtomicBool,
}

impl RedisState {
    /// On `url` (`redis://HOST:PORT[/DB]`); nothing is connected until the first write.
    pub fn new(url: &str) -> Result<RedisState, redis::RedisError> {
        Ok(RedisState {
            client: redis::Client::open(url)?,
            conn: Mutex::new(None),
            reconnected: AtomicBool::new(false),
        })
    }

    fn connect(&self) -> Result<redis::Connection, String> {
        let c = self
            .client
            .get_connection_with_timeout(CONNECT)
            .map_err(|e| e.to_string())?;
        c.set_read_timeout(Some(ANSWER))
            .map_err(|e| e.to_string())?;
        c.set_write_timeout(Some(ANSWER))
            .map_err(|e| e.to_string())?;
        Ok(c)
    }

    /// Runs `f` on the connection; a connection that fails (Redis restarted, say) is made again
    /// once at once, and noted ([`Replica::reconnected`]).
    fn with<T>(
        &self,
        f: impl Fn(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, String> {
        let mut slot = self.conn.lock();
        if let Some(c) = slot.as_mut() {
            match f(c) {
                Ok(v) => return Ok(v),
                Err(_) => {
                    *slot = None;
                    self.reconnected.store(true, Relaxed);
                }
            }
        }
        let mut c = self.connect()?;
        let v = f(&mut c).map_err(|e| e.to_string())?;
        *slot = Some(c);
        Ok(v)
    }

    /// A space's record as its owner last wrote it.
    pub fn space(&self, id: &str) -> Result<Option<SpaceRecord>, String> {
        let json: Option<String> = self.with(|c| c.get(state_key(id)))?;
        json.map(|j| serde_json::from_str(&j).map_err(|e| e.to_string()))
            .transpose()
    }

    /// A space's timeline.
    pub fn timeline(&self, id: &str) -> Result<Vec<TimelineRow>, String> {
        let rows: Vec<String> = self.with(|c| c.lrange(timeline_key(id), 0, -1))?;
        rows.iter()
            .map(|r| serde_json::from_str(r).map_err(|e| e.to_string()))
            .collect()
    }
}

fn rows_json(rows: &[TimelineRow]) -> Result<Vec<String>, String> {
    rows.iter()
        .map(|r| serde_json::to_string(r).map_err(|e| e.to_string()))
        .collect()
}

impl Replica for RedisState {
    fn put_space(&self, r: &SpaceRecord) -> Result<(), String> {
        let json = serde_json::to_string(r).map_err(|e| e.to_string())?;
        self.with(|c| c.set(state_key(&r.id), &json))
    }

    fn put_timeline(&self, id: &str, rows: &[TimelineRow]) -> Result<(), String> {
        let rows = rows_json(rows)?;
        self.with(|c| {
            let mut pipe = redis::pipe();
            pipe.atomic().del(timeline_key(id)).ignore();
            if !rows.is_empty() {
                pipe.rpush(timeline_key(id), &rows).ignore();
            }
            pipe.query::<()>(c)
        })
    }

    fn append_timeline(&self, id: &str, rows: &[TimelineRow]) -> Result<(), String> {
        if rows.is_empty() {
            return Ok(());
        }
        let rows = rows_json(rows)?;
        self.with(|c| c.rpush(timeline_key(id), &rows))
    }

    fn delete_space(&self, id: &str) -> Result<(), String> {
        self.with(|c| c.del(&[state_key(id), timeline_key(id)]))
    }

    fn reconnected(&self) -> bool {
        self.reconnected.swap(false, Relaxed)
    }
}
