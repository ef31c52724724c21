//! Writes to the store off the request path: one thread runs persistence jobs in order.
//!
//! Control actions (a space created, a co-host named, a ban) must survive a restart, but the
//! handler that takes them must not wait on SQLite, and a flash crowd of joins writes nothing at
//! all. Jobs run in the order they were queued, so the durable state is always a state the room
//! passed through.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use crossbeam_channel::{Sender, unbounded};

use crate::durable::Durable;
use crate::store::StoreError;
use tribune_metrics::Metrics;

type Job = Box<dyn FnOnce(&dyn Durable) -> Result<(), StoreError> + Send>;

enum Msg {
    Job(Job),
    Flush(std::sync::mpsc::Sender<()>),
}

/// A handle to the store's writer thread; cheap to clone. A disabled writer drops every job.
#[derive(Clone, Default)]
pub struct StoreWriter {
    tx: Option<Sender<Msg>>,
}

impl StoreWriter {
    /// Start the writer thread for `store`.
    pub fn start(store: Arc<dyn Durable>, metrics: Arc<Metrics>) -> std::io::Result<StoreWriter> {
        let (tx, rx) = unbounded::<Msg>();
        std::thread::Builder::new()
            .name("store".into())
            .spawn(move || {
                for msg in rx.iter() {
                    match msg {
                        Msg::Job(job) => {
                            if let Err(e) = job(store.as_ref()) {
                                metrics.store_errors.fetch_add(1, Relaxed);
                                tracing::error!(error = %e, "store write failed");
                            }
                        }
                        Msg::Flush(done) => {
                            let _ = done.send(());
                        }
                    }
                }
            })?;
        Ok(StoreWriter { tx: Some(tx) })
    }

    /// Queue a job.
    pub fn run(&self, job: impl FnOnce(&dyn Durable) -> Result<(), StoreError> + Send + 'static) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Msg::Job(Box::new(job)));
        }
    }

    /// Wait until every job queued before this call has run (blocking).
    pub fn flush(&self) {
        if let Some(tx) = &self.tx {
            let (done_tx, done_rx) = std::sync::mpsc::channel();
            if tx.send(Msg::Flush(done_tx)).is_ok() {
                let _ = done_rx.recv();
            }
        }
    }
}
