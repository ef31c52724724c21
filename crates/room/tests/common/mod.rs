//! Helpers shared by the integration tests.
#![allow(dead_code)]

use tribune_room::{Actor, Command, Config, Durable, Lifecycle, Outcome, Refusal, Role, Room};

/// A participant acting with a token of `role` (name = sub upper-cased).
pub fn who(sub: &str, role: Role) -> Actor {
    Actor::new(sub, sub.to_uppercase(), role)
}

pub fn host() -> Actor {
    who("h", Role::Host)
}

pub fn op() -> Actor {
    Actor::operator()
}

pub fn target(sub: &str) -> String {
    sub.to_string()
}

/// A live room: host `h`, co-host `c`, speakers `s` and `t`.
pub fn live_room(cfg: Config) -> Room {
    Room::restore(
        cfg,
        Durable {
            lifecycle: Lifecycle::Live,
            host: Some(("h".into(), "H".into())),
            cohosts: vec![("c".into(), "C".into())],
            speakers: vec![("s".into(), "S".into()), ("t".into(), "T".into())],
            bans: vec![],
            removed: vec![],
            banned_addrs: vec![],
            demoted: vec![],
            host_muted: vec![],
        },
    )
}

/// Apply and expect success.
pub fn ok(room: &mut Room, actor: &Actor, cmd: Command, now: u64) -> Outcome {
    room.apply(actor, cmd.clone(), now)
        .unwrap_or_else(|e| panic!("{cmd:?} by {} refused: {e}", actor.sub))
}

/// Apply and expect a refusal.
pub fn refused(room: &mut Room, actor: &Actor, cmd: Command, now: u64) -> Refusal {
    match room.apply(actor, cmd.clone(), now) {
        Ok(out) => panic!("{cmd:?} by {} allowed: {out:?}", actor.sub),
        Err(e) => e,
    }
}

pub fn is_forbidden(r: &Refusal) -> bool {
    matches!(r, Refusal::Forbidden { .. })
}

pub fn is_conflict(r: &Refusal) -> bool {
    matches!(r, Refusal::Conflict(_))
}
