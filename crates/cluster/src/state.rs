//! The spaces' durable state in Redis: the shared copy every node (and, next, a standby) can
//! read, written by each space's owner through [`tribune_engine::durable::Replicated`].
//!
//! Keys: `tribune:state:{id}`, the space's whole record as its owner's SQLite holds it (JSON);
//! `tribune:timeline:{id}`, a list of who-spoke-when rows (JSON each). Run Redis with persistence
//! on (`appendonly yes`) for this copy to outlive Redis.
//!
//! Every write is fenced by the space's lease ([`crate::leases`]): a node that lost a space's
//! lease cannot write over its successor's state.
//!
//! The writer thread that calls this is not async: this is Redis's blocking client, one
//! connection made on demand (connect within 500 ms, answers within 1 s) and dropped on an error.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use parking_lot::Mutex;
use redis::Commands;

use crate::leases::Held;
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
    /// The leases this node holds: every write is fenced by its space's.
    held: Arc<Held>,
    refused: AtomicU64,
}

impl RedisState {
    /// On `url` (`redis://HOST:PORT[/DB]`), writing as the holder of the leases in `held`;
    /// nothing is connected until the first write.
    pub fn new(url: &str, held: Arc<Held>) -> Result<RedisState, redis::RedisError> {
        Ok(RedisState {
            client: redis::Client::open(url)?,
            conn: Mutex::new(None),
            reconnected: AtomicBool::new(false),
            held,
            refused: AtomicU64::new(0),
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

/// After the fence: set `KEYS[2]` to `ARGV[2]`.
const PUT: &str = "redis.call('SET', KEYS[2], ARGV[2])";
/// After the fence: replace the list `KEYS[2]` by `ARGV[2..]`.
const PUT_ROWS: &str = r"
redis.call('DEL', KEYS[2])
for i = 2, #ARGV do redis.call('RPUSH', KEYS[2], ARGV[i]) end
";
/// After the fence: append `ARGV[2..]` to the list `KEYS[2]`.
const APPEND_ROWS: &str = "for i = 2, #ARGV do redis.call('RPUSH', KEYS[2], ARGV[i]) end";
/// After the fence: delete `KEYS[2]` and `KEYS[3]`.
const DELETE: &str = "redis.call('DEL', KEYS[2], KEYS[3])";

impl RedisState {
    /// Runs the fenced script `body` for space `id` on keys `keys` (after the lease) with
    /// `args` (after the lease's value). A write this node may not make (it does not hold the
    /// lease, or holds a stale epoch) is refused, counted and logged, and is not an error of
    /// the replica: the space is another node's now.
    fn fenced(&self, id: &str, body: &str, keys: &[String], args: &[&[u8]]) -> Result<(), String> {
        let Some(lease) = self.held.value(id) else {
            self.refuse(id);
            return Ok(());
        };
        let script = redis::Script::new(&format!("{}{body}", crate::leases::FENCE));
        let out = self.with(|c| {
            let mut call = script.prepare_invoke();
            call.key(crate::leases::lease_key(id));
            for k in keys {
                call.key(k);
            }
            call.arg(&lease);
            for a in args {
                call.arg(*a);
            }
            match call.invoke::<()>(c) {
                Err(e) if crate::leases::is_stale(&e) => Ok(false),
                Err(e) => Err(e),
                Ok(()) => Ok(true),
            }
        })?;
        if !out {
            self.refuse(id);
        }
        Ok(())
    }

    fn refuse(&self, id: &str) {
        self.refused.fetch_add(1, Relaxed);
        tracing::debug!(
            space = id,
            "shared store: write refused (this node does not hold the space's lease)"
        );
    }

    /// Writes refused so far for a lease this node does not hold.
    pub fn refused(&self) -> u64 {
        self.refused.load(Relaxed)
    }
}

impl Replica for RedisState {
    fn put_space(&self, r: &SpaceRecord) -> Result<(), String> {
        let json = serde_json::to_string(r).map_err(|e| e.to_string())?;
        self.fenced(&r.id, PUT, &[state_key(&r.id)], &[json.as_bytes()])
    }

    fn put_timeline(&self, id: &str, rows: &[TimelineRow]) -> Result<(), String> {
        let rows = rows_json(rows)?;
        let args: Vec<&[u8]> = rows.iter().map(|r| r.as_bytes()).collect();
        self.fenced(id, PUT_ROWS, &[timeline_key(id)], &args)
    }

    fn append_timeline(&self, id: &str, rows: &[TimelineRow]) -> Result<(), String> {
        if rows.is_empty() {
            return Ok(());
        }
        let rows = rows_json(rows)?;
        let args: Vec<&[u8]> = rows.iter().map(|r| r.as_bytes()).collect();
        self.fenced(id, APPEND_ROWS, &[timeline_key(id)], &args)
    }

    fn delete_space(&self, id: &str) -> Result<(), String> {
        self.fenced(id, DELETE, &[state_key(id), timeline_key(id)], &[])
    }

    fn reconnected(&self) -> bool {
        self.reconnected.swap(false, Relaxed)
    }
}
