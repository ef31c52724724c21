//! The one wall clock, injected. Everything below it that decides on time (the room, admission,
//! the waiting room, the shield, the HLS rendition, the viewer counts) takes the time as an
//! argument; a [`Clock`] is what the space runtime and the handlers read it from. The server
//! runs on [`Clock::system`]; a test runs on [`Clock::manual`] and moves time itself (a
//! five-minute grace period passes in a step).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Unix time in milliseconds: the system's, or one a test sets.
#[derive(Debug, Clone, Default)]
pub struct Clock(Option<Arc<AtomicU64>>);

impl Clock {
    /// The system's wall clock.
    pub fn system() -> Clock {
        Clock(None)
    }

    /// A clock that stands at `start_ms` until [`Clock::advance`] moves it (every clone moves).
    pub fn manual(start_ms: u64) -> Clock {
        Clock(Some(Arc::new(AtomicU64::new(start_ms))))
    }

    /// Moves a manual clock forward by `by`. A system clock cannot be moved: no effect.
    pub fn advance(&self, by: Duration) {
        if let Some(t) = &self.0 {
            t.fetch_add(by.as_millis() as u64, Relaxed);
        }
    }

    /// Unix time in milliseconds.
    pub fn now_ms(&self) -> u64 {
        match &self.0 {
            Some(t) => t.load(Relaxed),
            None => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
        }
    }

    /// Unix time in whole seconds.
    pub fn now_s(&self) -> u64 {
        self.now_ms() / 1000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_every_clone_with_it() {
        let c = Clock::manual(1_000);
        let d = c.clone();
        assert_eq!(c.now_ms(), 1_000);
        d.advance(Duration::from_millis(2_500));
        assert_eq!((c.now_ms(), c.now_s()), (3_500, 3));
        let s = Clock::system();
        s.advance(Duration::from_secs(3600));
        assert!(
            s.now_s().abs_diff(
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_secs()
            ) < 5
        );
    }
}
