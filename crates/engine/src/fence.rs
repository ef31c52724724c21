//! A space's right to publish, as this process knows it: in a cluster, the owner may publish
//! (pages, parts, recording) only until its lease's local deadline, which each renewal pushes
//! on. One node alone is never fenced.
//!
//! The pager checks it before every packet ([`Fence::allows`]): an owner that was frozen
//! (SIGSTOP) past its lease comes back with its deadline gone and publishes nothing until its
//! lease is confirmed ([`Fence::extend`]) or found lost ([`Fence::revoke`]: the pager then
//! stops without writing another page or part, and without ending the stream).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Deadline of a fence that never closes.
const OPEN: u64 = u64::MAX;
/// Deadline of a revoked fence.
const REVOKED: u64 = 0;

/// The deadline, Unix ms on the space's clock.
#[derive(Debug)]
pub struct Fence(AtomicU64);

impl Default for Fence {
    fn default() -> Self {
        Fence(AtomicU64::new(OPEN))
    }
}

impl Fence {
    /// Whether publishing is allowed at `now_ms`.
    pub fn allows(&self, now_ms: u64) -> bool {
        now_ms < self.0.load(Relaxed)
    }

    /// Publishing is allowed until `until_ms` (a revoked fence stays revoked).
    pub fn extend(&self, until_ms: u64) {
        let _ = self.0.fetch_update(Relaxed, Relaxed, |v| {
            (v != REVOKED).then_some(until_ms.max(REVOKED + 1))
        });
    }

    /// Never again.
    pub fn revoke(&self) {
        self.0.store(REVOKED, Relaxed);
    }

    /// Whether it was revoked.
    pub fn is_revoked(&self) -> bool {
        self.0.load(Relaxed) == REVOKED
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_extended_lapsed_and_revoked() {
        let f = Fence::default();
        assert!(f.allows(u64::MAX - 1));
        f.extend(1_000);
        assert!(f.allows(999) && !f.allows(1_000));
        f.extend(2_000);
        assert!(f.allows(1_500));
        f.revoke();
        assert!(f.is_revoked() && !f.allows(0));
        f.extend(5_000);
        assert!(f.is_revoked() && !f.allows(10));
    }
}
