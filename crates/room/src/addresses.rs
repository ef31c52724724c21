//! The addresses anonymous participants last acted from, for address bans.
//!
//! An anonymous participant has no account to ban, so a ban of one also bans the address it last
//! acted from. The server remembers at most [`Addresses::capacity`] of them and, when full,
//! forgets the **least recently seen**: a join flood of fresh participants pushes out the oldest
//! quiet ones, never the troll who is acting right now and about to be banned. Each `seen` is
//! O(log n).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

/// A bounded map from participant to the address it last acted from, least recently seen evicted.
#[derive(Debug)]
pub struct Addresses {
    capacity: usize,
    /// sub → (address, recency stamp).
    by_sub: HashMap<String, (IpAddr, u64)>,
    /// recency stamp → sub, oldest first.
    by_age: BTreeMap<u64, String>,
    next: u64,
}

impl Addresses {
    /// Remember at most `capacity` participants (at least 1).
    pub fn new(capacity: usize) -> Self {
        Addresses {
            capacity: capacity.max(1),
            by_sub: HashMap::new(),
            by_age: BTreeMap::new(),
            next: 0,
        }
    }

    /// How many participants are remembered at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// `sub` acted from `ip` now: it becomes the most recently seen.
    pub fn seen(&mut self, sub: &str, ip: IpAddr) {
        let stamp = self.next;
        self.next += 1;
        if let Some((addr, old)) = self.by_sub.get_mut(sub) {
            self.by_age.remove(old);
            *addr = ip;
            *old = stamp;
        } else {
            if self.by_sub.len() >= self.capacity
                && let Some((_, oldest)) = self.by_age.pop_first()
            {
                self.by_sub.remove(&oldest);
            }
            self.by_sub.insert(sub.to_owned(), (ip, stamp));
        }
        self.by_age.insert(stamp, sub.to_owned());
    }

    /// The address `sub` last acted from, if remembered (does not count as a sighting).
    pub fn get(&self, sub: &str) -> Option<IpAddr> {
        self.by_sub.get(sub).map(|(ip, _)| *ip)
    }

    /// How many are remembered now.
    pub fn len(&self) -> usize {
        self.by_sub.len()
    }

    /// True when nobody is remembered.
    pub fn is_empty(&self) -> bool {
        self.by_sub.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    fn ip(n: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, n))
    }

    #[test]
    fn a_flood_of_new_participants_keeps_the_one_still_acting() {
        let mut a = Addresses::new(3);
        a.seen("troll", ip(1));
        for i in 0..100u8 {
            a.seen(&format!("flood{i}"), ip(2));
            // The troll keeps acting between the flood's joins.
            a.seen("troll", ip(1));
        }
        assert_eq!(a.get("troll"), Some(ip(1)));
        assert_eq!(a.len(), 3);
        assert_eq!(a.get("flood0"), None, "the oldest quiet one is forgotten");
        assert_eq!(a.get("flood99"), Some(ip(2)));
    }

    proptest! {
        /// Against a model: what is remembered is exactly the `capacity` most recently seen
        /// distinct participants, each with the address of its latest sighting.
        #[test]
        fn remembers_the_most_recently_seen(
            cap in 1usize..6,
            ops in proptest::collection::vec((0u8..10, 0u8..4), 0..200),
        ) {
            let mut a = Addresses::new(cap);
            let mut model: Vec<(String, IpAddr)> = Vec::new(); // oldest first
            for (s, n) in ops {
                let sub = format!("anon:{s}");
                a.seen(&sub, ip(n));
                model.retain(|(m, _)| *m != sub);
                model.push((sub, ip(n)));
                if model.len() > cap {
                    model.remove(0);
                }
                prop_assert_eq!(a.len(), model.len());
                prop_assert_eq!(a.by_age.len(), model.len());
            }
            for s in 0..10u8 {
                let sub = format!("anon:{s}");
                let want = model.iter().find(|(m, _)| *m == sub).map(|(_, ip)| *ip);
                prop_assert_eq!(a.get(&sub), want);
            }
        }
    }
}
