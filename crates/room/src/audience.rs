//! The recently active audience: who a host can invite on stage.
//!
//! A space may have millions of listeners, most of them anonymous and behind edges, so the
//! server does not keep a roster of everyone. It remembers the participants who recently did
//! something through the origin (joined, sent a presence beacon, opened the event stream, raised a
//! hand, reacted), at most [`Audience::capacity`] of them, and forgets the least recently seen
//! first. Memory is bounded whatever the audience size; each `seen` is amortized O(1).

use std::collections::HashMap;

/// One remembered participant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Participant id.
    pub sub: String,
    /// Display name.
    pub name: String,
    /// When last seen (ms, caller's clock).
    pub seen_ms: u64,
}

/// A bounded set of recently seen participants.
#[derive(Debug)]
pub struct Audience {
    capacity: usize,
    members: HashMap<String, (String, u64)>,
}

impl Audience {
    /// Remember at most `capacity` participants (at least 1).
    pub fn new(capacity: usize) -> Self {
        Audience {
            capacity: capacity.max(1),
            members: HashMap::new(),
        }
    }

    /// How many participants are remembered at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Note that `sub` (called `name`) was active at `now_ms`.
    pub fn seen(&mut self, sub: &str, name: &str, now_ms: u64) {
        match self.members.get_mut(sub) {
            Some(m) => {
                if m.0 != name {
                    m.0 = name.to_owned();
                }
                m.1 = m.1.max(now_ms);
            }
            None => {
                self.members
                    .insert(sub.to_owned(), (name.to_owned(), now_ms));
                // Let the map grow to twice the capacity, then cut back to the capacity in one
                // pass: amortized O(1) per insert.
                if self.members.len() >= 2 * self.capacity {
                    self.trim();
                }
            }
        }
    }

    /// Forget `sub` (removed, banned, or gone on stage).
    pub fn forget(&mut self, sub: &str) {
        self.members.remove(sub);
    }

    /// The most recently seen participants, newest first, at most `limit`, skipping those for
    /// which `exclude` is true.
    pub fn recent(&self, limit: usize, exclude: impl Fn(&str) -> bool) -> Vec<Member> {
        let mut all: Vec<Member> = self
            .members
            .iter()
            .filter(|(sub, _)| !exclude(sub))
            .map(|(sub, (name, seen))| Member {
                sub: sub.clone(),
                name: name.clone(),
                seen_ms: *seen,
            })
            .collect();
        all.sort_by(|a, b| b.seen_ms.cmp(&a.seen_ms).then_with(|| a.sub.cmp(&b.sub)));
        all.truncate(limit.min(self.capacity));
        all
    }

    /// How many are remembered now (at most twice the capacity between trims).
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// True when nobody is remembered.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    fn trim(&mut self) {
        let mut seen: Vec<u64> = self.members.values().map(|m| m.1).collect();
        let cut = seen.len() - self.capacity;
        let threshold = *seen.select_nth_unstable(cut).1;
        // Keep those seen after the threshold, then fill up with those seen exactly at it.
        let mut at_threshold =
            self.capacity - self.members.values().filter(|m| m.1 > threshold).count();
        self.members.retain(|_, m| {
            if m.1 > threshold {
                true
            } else if m.1 == threshold && at_threshold > 0 {
                at_threshold -= 1;
                true
            } else {
                false
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn newest_first_and_renamed() {
        let mut a = Audience::new(10);
        a.seen("a", "Ann", 1);
        a.seen("b", "Bob", 2);
        a.seen("a", "Anna", 3);
        let r = a.recent(10, |_| false);
        assert_eq!(
            r.iter().map(|m| (&*m.sub, &*m.name)).collect::<Vec<_>>(),
            [("a", "Anna"), ("b", "Bob")]
        );
        assert_eq!(a.recent(10, |s| s == "a").len(), 1);
        a.forget("a");
        assert_eq!(a.len(), 1);
    }

    proptest! {
        /// Memory stays bounded, and whatever was seen among the `capacity` most recent
        /// distinct participants is always still there.
        #[test]
        fn bounded_and_keeps_the_most_recent(
            cap in 1usize..20,
            ops in prop::collection::vec((0u8..60, 0u64..5), 1..400),
        ) {
            let mut a = Audience::new(cap);
            let mut now = 0u64;
            let mut last: HashMap<String, u64> = HashMap::new();
            for (who, dt) in ops {
                now += dt;
                let sub = format!("s{who}");
                a.seen(&sub, "n", now);
                last.insert(sub, now);
                prop_assert!(a.len() < 2 * cap);
                let mut by_time: Vec<(&String, &u64)> = last.iter().collect();
                by_time.sort_by(|x, y| y.1.cmp(x.1));
                // Strictly newer than the cap-th newest time must be present.
                if by_time.len() > cap {
                    let t = *by_time[cap - 1].1;
                    for &(s, &ts) in &by_time {
                        if ts > t {
                            prop_assert!(a.members.contains_key(s), "{} lost", s);
                        }
                    }
                }
                prop_assert!(a.recent(usize::MAX, |_| false).len() <= cap);
            }
        }
    }
}
