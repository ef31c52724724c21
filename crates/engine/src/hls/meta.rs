//! The timed metadata of the LL-HLS parts: what a listener's page shows, moving with what it
//! hears, without asking anyone.
//!
//! Each part may carry one JSON object in an ID3 `TXXX` frame named `tribune` (inside an
//! `emsg` box, [`tribune_media::fmp4`]). Its keys are those of [`crate::public::live_state`]
//! (`lifecycle`, `host`, `stage`, `invited`, `listeners`, `reactions` totals, `count`) plus
//! `speaking` (the subs above the speaking level). A *key* part, every [`KEY_EVERY`] parts (one
//! every 2 s at the default 400 ms parts), carries the whole state and `"k": 1`; any other
//! part carries only the keys whose value changed since the part before (`null` for a key that
//! went away), and no metadata at all when nothing did. A player that starts anywhere has the
//! whole state within [`KEY_EVERY`] parts (the page also starts from the public snapshot); one
//! that misses a part is whole again at the next key part.
//!
//! This module is pure: [`MetaTrack`] is fed the state and asked for each part's message.

use serde_json::{Map, Value};

/// A key part (the whole state) every this many parts.
pub const KEY_EVERY: u64 = 5;

/// The state to carry and what the parts so far have said.
#[derive(Debug, Default)]
pub struct MetaTrack {
    current: Map<String, Value>,
    sent: Map<String, Value>,
    parts: u64,
}

impl MetaTrack {
    /// The state now (replacing the one before).
    pub fn set(&mut self, state: Map<String, Value>) {
        self.current = state;
    }

    /// Changes one key of the state now.
    pub fn set_key(&mut self, key: &str, value: Value) {
        self.current.insert(key.to_owned(), value);
    }

    /// The message of the next part, if it carries one.
    pub fn next_part(&mut self) -> Option<String> {
        let key = self.parts.is_multiple_of(KEY_EVERY);
        self.parts += 1;
        if self.current.is_empty() {
            return None;
        }
        let mut msg = Map::new();
        if key {
            msg.insert("k".into(), Value::from(1));
            msg.extend(self.current.iter().map(|(k, v)| (k.clone(), v.clone())));
        } else {
            for (k, v) in &self.current {
                if self.sent.get(k) != Some(v) {
                    msg.insert(k.clone(), v.clone());
                }
            }
            for k in self.sent.keys() {
                if !self.current.contains_key(k) {
                    msg.insert(k.clone(), Value::Null);
                }
            }
            if msg.is_empty() {
                return None;
            }
        }
        self.sent = self.current.clone();
        Some(Value::Object(msg).to_string())
    }
}

/// What a receiver knows after `msg` (a page does the same in `space.js`): a key message
/// replaces the state, any other updates it (`null` removes a key). Returns false for a message
/// that is not a JSON object.
pub fn apply(state: &mut Map<String, Value>, msg: &str) -> bool {
    let Ok(Value::Object(mut m)) = serde_json::from_str::<Value>(msg) else {
        return false;
    };
    if m.remove("k").is_some() {
        state.clear();
    }
    for (k, v) in m {
        if v.is_null() {
            state.remove(&k);
        } else {
            state.insert(k, v);
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn state(listeners: u64, speaking: &[&str], extra: bool) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("lifecycle".into(), json!("live"));
        m.insert("listeners".into(), json!(listeners));
        m.insert("speaking".into(), json!(speaking));
        if extra {
            m.insert("invited".into(), json!(["s1"]));
        }
        m
    }

    #[test]
    fn key_parts_carry_everything_the_others_only_changes() {
        let mut t = MetaTrack::default();
        assert_eq!(t.next_part(), None, "nothing to say yet");
        t.set(state(3, &["a"], false));
        // Part 1 is not a key part: everything is new, so everything is sent.
        let m: Value = serde_json::from_str(&t.next_part().unwrap()).unwrap();
        assert!(m.get("k").is_none() && m["listeners"] == 3);
        assert_eq!(t.next_part(), None, "unchanged: no metadata");
        t.set(state(4, &["a"], false));
        assert_eq!(t.next_part().unwrap(), r#"{"listeners":4}"#);
        t.set(state(4, &["a"], true));
        assert_eq!(t.next_part().unwrap(), r#"{"invited":["s1"]}"#);
        // Part 5 is a key part.
        let m: Value = serde_json::from_str(&t.next_part().unwrap()).unwrap();
        assert_eq!(m["k"], 1);
        assert_eq!(m["listeners"], 4);
        t.set(state(4, &["a"], false));
        assert_eq!(t.next_part().unwrap(), r#"{"invited":null}"#);
    }

    proptest! {
        /// Whatever the changes, a receiver that starts at any part and skips none rebuilds the
        /// exact state once it has seen a key part; one that skips a part is exact again at the
        /// next key part.
        #[test]
        fn receivers_rebuild_the_state(
            steps in proptest::collection::vec((0u64..4, 0usize..3, any::<bool>()), 1..60),
            start in 0usize..20,
            skip in proptest::option::of(0usize..60),
        ) {
            let mut t = MetaTrack::default();
            let mut got = Map::new();
            let mut synced = false;
            let names = ["a", "b", "c"];
            for (i, (n, who, extra)) in steps.into_iter().enumerate() {
                let s = state(n, &names[..who], extra);
                t.set(s.clone());
                let is_key = (i as u64).is_multiple_of(KEY_EVERY);
                let msg = t.next_part();
                if i < start || skip == Some(i) {
                    if skip == Some(i) {
                        synced = false;
                    }
                    continue;
                }
                if let Some(m) = &msg {
                    prop_assert!(apply(&mut got, m));
                }
                if is_key {
                    synced = true;
                }
                if synced {
                    prop_assert_eq!(&got, &s, "part {}", i);
                }
            }
        }
    }

    #[test]
    fn garbage_is_not_applied() {
        let mut s = Map::new();
        assert!(!apply(&mut s, "[1]"));
        assert!(!apply(&mut s, "{"));
        assert!(s.is_empty());
    }
}
