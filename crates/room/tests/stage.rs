//! Stage flow, moderation, lifecycle, grace, takeover and persistence.

mod common;

use common::*;
use tribune_room::{Command, Config, Durable, Effect, Event, Lifecycle, Refusal, Role, Room};

fn listener(sub: &str) -> tribune_room::Actor {
    who(sub, Role::Listener)
}

#[test]
fn raise_approve_then_stage_token() {
    let mut room = live_room(Config::default());
    let a = listener("a");
    assert!(is_forbidden(&refused(
        &mut room,
        &a,
        Command::StageToken,
        0
    )));
    let out = ok(&mut room, &a, Command::RaiseHand, 0);
    assert_eq!(
        out.events,
        vec![Event::HandRaised {
            sub: "a".into(),
            name: "A".into()
        }]
    );
    assert_eq!(room.snapshot().hands, vec![("a".into(), "A".into())]);

    let out = ok(
        &mut room,
        &who("c", Role::Cohost),
        Command::Approve {
            target: target("a"),
        },
        1,
    );
    assert_eq!(out.events, vec![Event::Approved { sub: "a".into() }]);
    assert!(out.effects.contains(&Effect::Persist));
    assert!(room.snapshot().hands.is_empty());
    // Still holding a listener token, the record says speaker: the stage token is allowed.
    assert_eq!(room.current_role("a", Role::Listener), Ok(Role::Speaker));
    ok(&mut room, &a, Command::StageToken, 2);
    ok(&mut room, &who("a", Role::Speaker), Command::Publish, 3);
    let roster = room.snapshot().stage;
    assert_eq!(roster.last().unwrap().sub, "a");
    assert_eq!(roster.last().unwrap().role, Role::Speaker);
}

#[test]
fn decline_clears_the_hand() {
    let mut room = live_room(Config::default());
    ok(&mut room, &listener("a"), Command::RaiseHand, 0);
    let out = ok(
        &mut room,
        &host(),
        Command::Decline {
            target: target("a"),
        },
        1,
    );
    assert_eq!(out.events, vec![Event::Declined { sub: "a".into() }]);
    assert!(room.snapshot().hands.is_empty());
    assert!(is_forbidden(&refused(
        &mut room,
        &listener("a"),
        Command::StageToken,
        2
    )));
    // Nothing left to approve or decline.
    let r = refused(
        &mut room,
        &host(),
        Command::Approve {
            target: target("a"),
        },
        3,
    );
    assert!(matches!(r, Refusal::NotFound(_)));
    let r = refused(
        &mut room,
        &host(),
        Command::Decline {
            target: target("a"),
        },
        3,
    );
    assert!(matches!(r, Refusal::NotFound(_)));
}

#[test]
fn lower_hand_withdraws() {
    let mut room = live_room(Config::default());
    ok(&mut room, &listener("a"), Command::RaiseHand, 0);
    let out = ok(&mut room, &listener("a"), Command::LowerHand, 1);
    assert_eq!(out.events, vec![Event::HandLowered { sub: "a".into() }]);
    assert!(ok(&mut room, &listener("a"), Command::LowerHand, 2).is_empty());
}

#[test]
fn invite_accept_and_decline() {
    let mut room = live_room(Config::default());
    let r = refused(&mut room, &listener("a"), Command::AcceptInvite, 0);
    assert_eq!(r, Refusal::Conflict("not invited".into()));

    ok(
        &mut room,
        &host(),
        Command::Invite {
            target: target("a"),
        },
        0,
    );
    ok(
        &mut room,
        &host(),
        Command::Invite {
            target: target("b"),
        },
        0,
    );
    assert_eq!(
        room.snapshot().invited,
        vec!["a".to_string(), "b".to_string()]
    );
    let out = ok(&mut room, &listener("a"), Command::AcceptInvite, 1);
    assert_eq!(out.events, vec![Event::InviteAccepted { sub: "a".into() }]);
    assert_eq!(room.current_role("a", Role::Listener), Ok(Role::Speaker));

    let out = ok(&mut room, &listener("b"), Command::DeclineInvite, 1);
    assert_eq!(out.events, vec![Event::InviteDeclined { sub: "b".into() }]);
    assert_eq!(room.current_role("b", Role::Listener), Ok(Role::Listener));
    assert!(room.snapshot().invited.is_empty());

    // Inviting someone on stage is a conflict.
    assert!(is_conflict(&refused(
        &mut room,
        &host(),
        Command::Invite {
            target: target("s")
        },
        2
    )));
}

#[test]
fn stage_full_is_a_conflict() {
    // h + c + s + t = 4 on stage.
    let mut room = live_room(Config {
        stage_limit: 5,
        ..Config::default()
    });
    ok(&mut room, &listener("a"), Command::RaiseHand, 0);
    ok(&mut room, &listener("b"), Command::RaiseHand, 0);
    ok(
        &mut room,
        &host(),
        Command::Invite {
            target: target("d"),
        },
        0,
    );
    ok(
        &mut room,
        &host(),
        Command::Approve {
            target: target("a"),
        },
        1,
    );
    assert_eq!(room.snapshot().stage.len(), 5);
    let r = refused(
        &mut room,
        &host(),
        Command::Approve {
            target: target("b"),
        },
        2,
    );
    assert!(
        matches!(&r, Refusal::Conflict(m) if m.contains("stage is full")),
        "{r:?}"
    );
    assert!(is_conflict(&refused(
        &mut room,
        &listener("d"),
        Command::AcceptInvite,
        2
    )));
    assert!(is_conflict(&refused(
        &mut room,
        &host(),
        Command::Invite {
            target: target("e")
        },
        2
    )));
    // A speaker token minted outside the room cannot squeeze in either.
    assert!(is_conflict(&refused(
        &mut room,
        &who("g", Role::Speaker),
        Command::Publish,
        2
    )));
    // The hand stays raised for when a seat frees up.
    ok(
        &mut room,
        &host(),
        Command::MoveToAudience {
            target: target("a"),
        },
        3,
    );
    ok(
        &mut room,
        &host(),
        Command::Approve {
            target: target("b"),
        },
        4,
    );
}

#[test]
fn demoted_speaker_token_cannot_publish() {
    let mut room = live_room(Config::default());
    let s = who("s", Role::Speaker);
    ok(&mut room, &s, Command::Publish, 0);
    room.session_started("s", "S", 0);
    let out = ok(
        &mut room,
        &who("c", Role::Cohost),
        Command::MoveToAudience {
            target: target("s"),
        },
        1,
    );
    assert_eq!(out.events, vec![Event::MovedToAudience { sub: "s".into() }]);
    assert!(
        out.effects
            .contains(&Effect::CloseSessions { sub: "s".into() })
    );
    assert!(out.effects.contains(&Effect::Persist));
    assert_eq!(room.current_role("s", Role::Speaker), Ok(Role::Listener));
    let r = refused(&mut room, &s, Command::Publish, 2);
    assert!(matches!(r, Refusal::Forbidden { rule, .. } if rule.starts_with("stage.publish")));
    assert!(is_forbidden(&refused(
        &mut room,
        &s,
        Command::StageToken,
        2
    )));
    // The demotion survives a restart.
    let mut back = Room::restore(Config::default(), room.durable());
    assert!(is_forbidden(&refused(&mut back, &s, Command::Publish, 3)));
    // It may raise its hand again like any listener.
    ok(&mut room, &s, Command::RaiseHand, 4);
}

#[test]
fn removed_and_banned_are_gone() {
    let mut room = live_room(Config::default());
    let out = ok(
        &mut room,
        &host(),
        Command::Remove {
            target: target("s"),
        },
        0,
    );
    assert_eq!(out.events, vec![Event::Removed { sub: "s".into() }]);
    assert!(
        out.effects
            .contains(&Effect::CloseSessions { sub: "s".into() })
    );
    assert_eq!(
        room.current_role("s", Role::Speaker),
        Err(Refusal::Gone("removed".into()))
    );
    let r = refused(&mut room, &who("s", Role::Speaker), Command::Subscribe, 1);
    assert_eq!(r, Refusal::Gone("removed".into()));

    let out = ok(
        &mut room,
        &who("c", Role::Cohost),
        Command::Ban {
            target: target("z"),
        },
        2,
    );
    assert_eq!(out.events, vec![Event::Banned { sub: "z".into() }]);
    assert!(
        out.effects
            .contains(&Effect::CloseSessions { sub: "z".into() })
    );
    assert!(out.effects.contains(&Effect::Persist));
    assert_eq!(
        room.current_role("z", Role::Listener),
        Err(Refusal::Gone("banned".into()))
    );
    let r = refused(&mut room, &listener("z"), Command::React, 3);
    assert_eq!(r, Refusal::Gone("banned".into()));
    assert!(is_conflict(&refused(
        &mut room,
        &host(),
        Command::Invite {
            target: target("z")
        },
        3
    )));
}

#[test]
fn address_bans() {
    let mut room = live_room(Config::default());
    let v4: std::net::IpAddr = "203.0.113.7".parse().unwrap();
    let v6: std::net::IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
    room.ban_addr(v4);
    room.ban_addr(v6);
    assert!(room.is_addr_banned(v4));
    assert!(room.is_addr_banned("::ffff:203.0.113.7".parse().unwrap()));
    assert!(room.is_addr_banned("2001:db8:1:2:bbbb::9".parse().unwrap()));
    assert!(!room.is_addr_banned("2001:db8:1:3::1".parse().unwrap()));
    assert!(!room.is_addr_banned("203.0.113.8".parse().unwrap()));
}

#[test]
fn host_mute_is_sticky() {
    let mut room = live_room(Config::default());
    let s = who("s", Role::Speaker);
    let out = ok(
        &mut room,
        &who("c", Role::Cohost),
        Command::Mute {
            target: target("s"),
        },
        0,
    );
    assert_eq!(
        out.events,
        vec![Event::Muted {
            sub: "s".into(),
            by_host: true
        }]
    );
    assert!(out.effects.contains(&Effect::SetMuted {
        sub: "s".into(),
        muted: true
    }));
    assert!(is_conflict(&refused(&mut room, &s, Command::UnmuteSelf, 1)));
    // A new session of a muted speaker starts muted.
    let out = room.session_started("s", "S", 2);
    assert!(out.effects.contains(&Effect::SetMuted {
        sub: "s".into(),
        muted: true
    }));
    // Self mute on top; lifting the host mute leaves the self mute.
    ok(&mut room, &s, Command::MuteSelf, 3);
    let out = ok(
        &mut room,
        &host(),
        Command::Unmute {
            target: target("s"),
        },
        4,
    );
    assert!(out.effects.contains(&Effect::SetMuted {
        sub: "s".into(),
        muted: true
    }));
    let view = room
        .snapshot()
        .stage
        .into_iter()
        .find(|p| p.sub == "s")
        .unwrap();
    assert!(view.muted && !view.host_muted && view.connected);
    let out = ok(&mut room, &s, Command::UnmuteSelf, 5);
    assert_eq!(
        out.effects,
        vec![Effect::SetMuted {
            sub: "s".into(),
            muted: false
        }]
    );
    // Muting someone not on stage.
    let r = refused(
        &mut room,
        &host(),
        Command::Mute {
            target: target("nobody"),
        },
        6,
    );
    assert!(matches!(r, Refusal::NotFound(_)));
}

#[test]
fn lifecycle_transitions() {
    let mut room = Room::new(
        Config::default(),
        Lifecycle::Scheduled,
        Some(("h".into(), "H".into())),
    );
    assert!(is_conflict(&refused(
        &mut room,
        &host(),
        Command::Resume,
        0
    )));
    assert!(is_conflict(&refused(
        &mut room,
        &who("h", Role::Host),
        Command::Publish,
        0
    )));
    let out = ok(&mut room, &host(), Command::Start, 0);
    assert_eq!(
        out.events,
        vec![Event::State {
            lifecycle: Lifecycle::Live
        }]
    );
    assert!(is_conflict(&refused(&mut room, &host(), Command::Start, 1)));
    room.mark_interrupted();
    assert_eq!(room.lifecycle(), Lifecycle::Interrupted);
    ok(&mut room, &host(), Command::Resume, 2);
    let out = ok(&mut room, &op(), Command::End, 3);
    assert_eq!(
        out.events,
        vec![Event::State {
            lifecycle: Lifecycle::Ended
        }]
    );
    assert!(
        out.effects
            .contains(&Effect::CloseSessions { sub: "*".into() })
    );
    assert!(out.effects.contains(&Effect::Persist));
    // Ended: everything but Subscribe is a conflict.
    let r = refused(&mut room, &host(), Command::End, 4);
    assert_eq!(r, Refusal::Conflict("space has ended".into()));
    assert!(is_conflict(&refused(
        &mut room,
        &listener("a"),
        Command::RaiseHand,
        4
    )));
    ok(&mut room, &listener("a"), Command::Subscribe, 4);
    // ... but a forbidden action stays forbidden.
    assert!(is_forbidden(&refused(
        &mut room,
        &listener("a"),
        Command::End,
        4
    )));
}

#[test]
fn grace_expiry_ends_the_space() {
    let cfg = Config::default();
    let mut room = live_room(cfg.clone());
    room.session_started("h", "H", 0);
    room.session_started("s", "S", 0);
    room.session_ended("s", 1_000);
    assert_eq!(room.poll_timeout(), None, "the host is still connected");
    room.session_ended("h", 2_000);
    assert_eq!(room.poll_timeout(), Some(2_000 + cfg.grace_ms));
    assert!(room.handle_timeout(1_000 + cfg.grace_ms).is_empty());
    assert_eq!(room.lifecycle(), Lifecycle::Live);
    let out = room.handle_timeout(2_000 + cfg.grace_ms);
    assert_eq!(
        out.events,
        vec![Event::State {
            lifecycle: Lifecycle::Ended
        }]
    );
    assert!(
        out.effects
            .contains(&Effect::CloseSessions { sub: "*".into() })
    );
    assert!(out.effects.contains(&Effect::Persist));
    assert_eq!(room.lifecycle(), Lifecycle::Ended);
    assert_eq!(room.poll_timeout(), None);
}

#[test]
fn going_live_with_nobody_on_stage_arms_the_grace_period() {
    let cfg = Config::default();
    // Created live: the grace runs from creation.
    let mut room = Room::new(cfg.clone(), Lifecycle::Live, Some(("h".into(), "H".into())));
    room.opened(5_000);
    assert_eq!(room.poll_timeout(), Some(5_000 + cfg.grace_ms));
    let out = room.handle_timeout(5_000 + cfg.grace_ms);
    assert!(out.effects.contains(&Effect::Persist));
    assert_eq!(room.lifecycle(), Lifecycle::Ended);
    // Scheduled, then started: the grace runs from the start, and a session cancels it.
    let mut room = Room::new(
        cfg.clone(),
        Lifecycle::Scheduled,
        Some(("h".into(), "H".into())),
    );
    room.opened(0);
    assert_eq!(
        room.poll_timeout(),
        None,
        "a scheduled space waits for its start"
    );
    ok(&mut room, &host(), Command::Start, 7_000);
    assert_eq!(room.poll_timeout(), Some(7_000 + cfg.grace_ms));
    room.session_started("h", "H", 8_000);
    assert_eq!(room.poll_timeout(), None);
    // Interrupted, then resumed with nobody connected: armed again.
    room.mark_interrupted();
    ok(&mut room, &host(), Command::Resume, 9_000);
    assert_eq!(room.poll_timeout(), Some(9_000 + cfg.grace_ms));
    assert_eq!(room.handle_timeout(9_000 + cfg.grace_ms).events.len(), 1);
    assert_eq!(room.lifecycle(), Lifecycle::Ended);
}

#[test]
fn reconnect_within_grace_cancels_it() {
    let cfg = Config::default();
    let mut room = live_room(cfg.clone());
    room.session_started("s", "S", 0);
    room.session_ended("s", 10_000);
    assert_eq!(room.poll_timeout(), Some(10_000 + cfg.grace_ms));
    room.session_started("s", "S", 200_000);
    assert_eq!(room.poll_timeout(), None);
    assert!(room.handle_timeout(10_000 + cfg.grace_ms).is_empty());
    assert_eq!(room.lifecycle(), Lifecycle::Live);
    // Moving the last connected speaker to the audience arms the grace period too.
    ok(
        &mut room,
        &host(),
        Command::MoveToAudience {
            target: target("s"),
        },
        300_000,
    );
    assert_eq!(room.poll_timeout(), Some(300_000 + cfg.grace_ms));
}

#[test]
fn take_over_only_when_the_host_is_absent() {
    let cfg = Config::default();
    let mut room = live_room(cfg.clone());
    let c = who("c", Role::Cohost);
    room.host_seen(0);
    let r = refused(&mut room, &c, Command::TakeOverHost, 30_000);
    assert_eq!(r, Refusal::Conflict("the host is present".into()));
    // A connected host is present however long ago it was last seen.
    room.session_started("h", "H", 1_000);
    assert!(is_conflict(&refused(
        &mut room,
        &c,
        Command::TakeOverHost,
        500_000
    )));
    room.session_ended("h", 500_000);
    assert!(is_conflict(&refused(
        &mut room,
        &c,
        Command::TakeOverHost,
        500_000 + cfg.host_absence_ms - 1
    )));
    let out = ok(
        &mut room,
        &c,
        Command::TakeOverHost,
        500_000 + cfg.host_absence_ms,
    );
    assert_eq!(
        out.events,
        vec![Event::HostChanged {
            sub: "c".into(),
            name: "C".into()
        }]
    );
    assert!(out.effects.contains(&Effect::Persist));
    assert_eq!(room.host(), Some("c"));
    assert_eq!(room.current_role("h", Role::Host), Ok(Role::Cohost));
    assert_eq!(room.snapshot().cohosts, vec!["h".to_string()]);
    // The new host may now end the space; the old one may not.
    assert!(is_forbidden(&refused(
        &mut room,
        &host(),
        Command::End,
        600_000
    )));
    ok(&mut room, &c, Command::End, 600_000);
}

#[test]
fn cohosts_named_and_revoked() {
    let mut room = live_room(Config::default());
    ok(
        &mut room,
        &host(),
        Command::NameCohost {
            target: target("s"),
        },
        0,
    );
    let r = refused(
        &mut room,
        &host(),
        Command::NameCohost {
            target: target("t"),
        },
        1,
    );
    assert_eq!(r, Refusal::Conflict("already 2 cohosts".into()));
    assert!(matches!(
        refused(
            &mut room,
            &host(),
            Command::NameCohost {
                target: target("nobody")
            },
            1
        ),
        Refusal::NotFound(_)
    ));
    let out = ok(
        &mut room,
        &op(),
        Command::RevokeCohost {
            target: target("c"),
        },
        2,
    );
    assert_eq!(out.events, vec![Event::CohostRevoked { sub: "c".into() }]);
    assert_eq!(room.current_role("c", Role::Cohost), Ok(Role::Speaker));
    ok(
        &mut room,
        &host(),
        Command::NameCohost {
            target: target("t"),
        },
        3,
    );
    assert_eq!(
        room.snapshot().cohosts,
        vec!["s".to_string(), "t".to_string()]
    );
}

#[test]
fn granted_tokens_enter_the_record_on_first_use() {
    let mut room = Room::new(Config::default(), Lifecycle::Live, None);
    // A host token while the room has no host: it becomes the host at its first stage action.
    assert_eq!(room.current_role("h", Role::Host), Ok(Role::Host));
    let out = ok(&mut room, &host(), Command::Publish, 0);
    assert_eq!(
        out.events,
        vec![Event::HostChanged {
            sub: "h".into(),
            name: "H".into()
        }]
    );
    assert_eq!(room.host(), Some("h"));
    // Another host token is not a host now.
    assert_eq!(room.current_role("x", Role::Host), Ok(Role::Listener));
    // An operator-minted speaker token.
    ok(&mut room, &who("g", Role::Speaker), Command::StageToken, 1);
    assert_eq!(room.current_role("g", Role::Listener), Ok(Role::Speaker));
    // Subscribing does not take a seat.
    ok(&mut room, &who("q", Role::Speaker), Command::Subscribe, 1);
    assert_eq!(room.snapshot().stage.len(), 2);
}

#[test]
fn roster_is_batched() {
    let mut room = live_room(Config::default());
    assert!(matches!(
        room.take_roster_if_dirty(),
        Some(Event::Stage { .. })
    ));
    assert_eq!(room.take_roster_if_dirty(), None);
    ok(&mut room, &listener("a"), Command::RaiseHand, 0);
    assert_eq!(
        room.take_roster_if_dirty(),
        None,
        "a hand is not a roster change"
    );
    room.session_started("s", "S", 1);
    room.session_started("t", "T", 1);
    let Some(Event::Stage { participants }) = room.take_roster_if_dirty() else {
        panic!("roster expected");
    };
    let subs: Vec<_> = participants
        .iter()
        .map(|p| (p.sub.as_str(), p.role, p.connected))
        .collect();
    assert_eq!(
        subs,
        vec![
            ("h", Role::Host, false),
            ("c", Role::Cohost, false),
            ("s", Role::Speaker, true),
            ("t", Role::Speaker, true),
        ]
    );
    assert_eq!(room.take_roster_if_dirty(), None);
}

#[test]
fn durable_round_trip() {
    let mut room = live_room(Config::default());
    ok(
        &mut room,
        &host(),
        Command::Ban {
            target: target("b"),
        },
        0,
    );
    ok(
        &mut room,
        &host(),
        Command::Remove {
            target: target("r"),
        },
        0,
    );
    ok(
        &mut room,
        &host(),
        Command::MoveToAudience {
            target: target("t"),
        },
        0,
    );
    ok(
        &mut room,
        &host(),
        Command::Mute {
            target: target("s"),
        },
        0,
    );
    room.ban_addr("198.51.100.1".parse().unwrap());
    let d = room.durable();
    let json = serde_json::to_string(&d).unwrap();
    let back: Durable = serde_json::from_str(&json).unwrap();
    assert_eq!(back, d);
    let restored = Room::restore(Config::default(), back);
    assert_eq!(restored.durable(), d);
    assert_eq!(restored.snapshot().stage, room.snapshot().stage);
    assert_eq!(
        restored.current_role("b", Role::Listener),
        Err(Refusal::Gone("banned".into()))
    );
    assert_eq!(
        restored.current_role("r", Role::Listener),
        Err(Refusal::Gone("removed".into()))
    );
    assert_eq!(
        restored.current_role("t", Role::Speaker),
        Ok(Role::Listener)
    );
    assert!(restored.is_addr_banned("198.51.100.1".parse().unwrap()));
    // Older rows without the optional fields still load.
    let minimal = r#"{"lifecycle":"scheduled","host":["h","H"],"cohosts":[],"speakers":[],"bans":[],"removed":[]}"#;
    let d: Durable = serde_json::from_str(minimal).unwrap();
    assert_eq!(
        Room::restore(Config::default(), d).lifecycle(),
        Lifecycle::Scheduled
    );
}

#[test]
fn events_serialize_as_tagged_json() {
    let e = Event::Muted {
        sub: "s".into(),
        by_host: true,
    };
    assert_eq!(
        serde_json::to_string(&e).unwrap(),
        r#"{"type":"muted","sub":"s","by_host":true}"#
    );
    let e = Event::State {
        lifecycle: Lifecycle::Live,
    };
    assert_eq!(
        serde_json::to_string(&e).unwrap(),
        r#"{"type":"state","lifecycle":"live"}"#
    );
    let e = Event::MovedToAudience { sub: "s".into() };
    assert_eq!(
        serde_json::to_string(&e).unwrap(),
        r#"{"type":"moved_to_audience","sub":"s"}"#
    );
    let room = live_room(Config::default());
    let snap = serde_json::to_value(room.snapshot()).unwrap();
    assert_eq!(snap["stage"][0]["role"], "host");
}
