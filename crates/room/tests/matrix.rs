//! The full permission matrix: every command × every current role × the operator key, asserted
//! against a table written out here (not derived from `PERMISSIONS`).

mod common;

use common::*;
use tribune_room::{Action, Actor, Command, Config, Lifecycle, Refusal, Role, Room, check};

/// Columns: host, cohost, speaker, listener, operator.
#[rustfmt::skip]
const EXPECTED: &[(&str, [bool; 5])] = &[
    ("Start",          [true,  false, false, false, true ]),
    ("End",            [true,  false, false, false, true ]),
    ("Resume",         [true,  false, false, false, true ]),
    ("RaiseHand",      [false, false, false, true,  false]),
    ("LowerHand",      [false, false, false, true,  false]),
    ("Approve",        [true,  true,  false, false, true ]),
    ("Decline",        [true,  true,  false, false, true ]),
    ("Invite",         [true,  true,  false, false, true ]),
    ("AcceptInvite",   [false, false, false, true,  false]),
    ("DeclineInvite",  [false, false, false, true,  false]),
    ("StageToken",     [true,  true,  true,  false, false]),
    ("Publish",        [true,  true,  true,  false, false]),
    ("MuteSelf",       [true,  true,  true,  false, false]),
    ("UnmuteSelf",     [true,  true,  true,  false, false]),
    ("Mute",           [true,  true,  false, false, true ]),
    ("Unmute",         [true,  true,  false, false, true ]),
    ("MoveToAudience", [true,  true,  false, false, true ]),
    ("Remove",         [true,  true,  false, false, true ]),
    ("Ban",            [true,  true,  false, false, true ]),
    ("NameCohost",     [true,  false, false, false, true ]),
    ("RevokeCohost",   [true,  false, false, false, true ]),
    ("TakeOverHost",   [false, true,  false, false, false]),
    ("React",          [true,  true,  true,  true,  false]),
    ("Subscribe",      [true,  true,  true,  true,  true ]),
    ("ListAudience",   [true,  true,  false, false, true ]),
    ("LeaveStage",     [false, true,  true,  false, false]),
];

fn command(name: &str) -> Command {
    let t = |s: &str| s.to_string();
    match name {
        "Start" => Command::Start,
        "End" => Command::End,
        "Resume" => Command::Resume,
        "RaiseHand" => Command::RaiseHand,
        "LowerHand" => Command::LowerHand,
        "Approve" => Command::Approve { target: t("x") },
        "Decline" => Command::Decline { target: t("x") },
        "Invite" => Command::Invite { target: t("y") },
        "AcceptInvite" => Command::AcceptInvite,
        "DeclineInvite" => Command::DeclineInvite,
        "StageToken" => Command::StageToken,
        "Publish" => Command::Publish,
        "MuteSelf" => Command::MuteSelf,
        "UnmuteSelf" => Command::UnmuteSelf,
        "Mute" => Command::Mute { target: t("t") },
        "Unmute" => Command::Unmute { target: t("t") },
        "MoveToAudience" => Command::MoveToAudience { target: t("t") },
        "Remove" => Command::Remove { target: t("t") },
        "Ban" => Command::Ban { target: t("t") },
        "NameCohost" => Command::NameCohost { target: t("t") },
        "RevokeCohost" => Command::RevokeCohost { target: t("c") },
        "TakeOverHost" => Command::TakeOverHost,
        "React" => Command::React,
        "Subscribe" => Command::Subscribe,
        "ListAudience" => Command::ListAudience,
        "LeaveStage" => Command::LeaveStage,
        other => panic!("unknown command {other}"),
    }
}

/// The five actors. Each token claims the highest role so that only the room's record decides.
fn actors() -> [Actor; 5] {
    [
        who("h", Role::Host),
        who("c", Role::Cohost),
        who("s", Role::Speaker),
        who("l", Role::Listener),
        Actor::operator(),
    ]
}

/// A room where every allowed command can succeed: the right lifecycle for `cmd`, a raised hand
/// from `x`, listener `l` invited with a raised hand, target speaker `t`, one co-host slot free,
/// and the host last seen long ago.
fn room_for(cmd: &Command) -> Room {
    let mut room = live_room(Config::default());
    ok(&mut room, &who("x", Role::Listener), Command::RaiseHand, 0);
    ok(&mut room, &who("l", Role::Listener), Command::RaiseHand, 0);
    ok(
        &mut room,
        &op(),
        Command::Invite {
            target: target("l"),
        },
        0,
    );
    match cmd {
        Command::Start => {
            room = Room::restore(Config::default(), {
                let mut d = room.durable();
                d.lifecycle = Lifecycle::Scheduled;
                d
            })
        }
        Command::Resume => room.mark_interrupted(),
        _ => {}
    }
    room
}

#[test]
fn every_command_by_every_role() {
    let now = 1_000_000; // the host was never seen: absent
    let mut checked = 0;
    for (name, expected) in EXPECTED {
        for (actor, allowed) in actors().iter().zip(expected) {
            let cmd = command(name);
            let mut room = room_for(&cmd);
            let got = room.apply(actor, cmd.clone(), now);
            match (allowed, &got) {
                (true, Ok(_)) => {}
                (false, Err(Refusal::Forbidden { rule, .. })) => {
                    assert!(!rule.is_empty());
                }
                _ => panic!(
                    "{name} by {}: expected allowed={allowed}, got {got:?}",
                    actor.sub
                ),
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 26 * 5);
}

/// The name of a command in `EXPECTED`. The match is exhaustive: a new `Command` variant does
/// not compile until it has a row.
fn name_of(cmd: &Command) -> &'static str {
    match cmd {
        Command::Start => "Start",
        Command::End => "End",
        Command::Resume => "Resume",
        Command::RaiseHand => "RaiseHand",
        Command::LowerHand => "LowerHand",
        Command::Approve { .. } => "Approve",
        Command::Decline { .. } => "Decline",
        Command::Invite { .. } => "Invite",
        Command::AcceptInvite => "AcceptInvite",
        Command::DeclineInvite => "DeclineInvite",
        Command::StageToken => "StageToken",
        Command::Publish => "Publish",
        Command::MuteSelf => "MuteSelf",
        Command::UnmuteSelf => "UnmuteSelf",
        Command::Mute { .. } => "Mute",
        Command::Unmute { .. } => "Unmute",
        Command::MoveToAudience { .. } => "MoveToAudience",
        Command::Remove { .. } => "Remove",
        Command::Ban { .. } => "Ban",
        Command::NameCohost { .. } => "NameCohost",
        Command::RevokeCohost { .. } => "RevokeCohost",
        Command::TakeOverHost => "TakeOverHost",
        Command::React => "React",
        Command::Subscribe => "Subscribe",
        Command::ListAudience => "ListAudience",
        Command::LeaveStage => "LeaveStage",
    }
}

#[test]
fn the_table_covers_every_command_once() {
    let names: Vec<&str> = EXPECTED.iter().map(|(n, _)| *n).collect();
    for (i, n) in names.iter().enumerate() {
        assert_eq!(name_of(&command(n)), *n);
        assert!(!names[i + 1..].contains(n), "{n} twice");
    }
    assert_eq!(names.len(), 26);
}

/// Moderation acting on a target of each role: host / cohost / operator actors.
#[test]
fn moderation_by_target_role() {
    // (command, target) → [by host, by cohost, by operator]
    #[rustfmt::skip]
    let expected: &[(&str, &str, [bool; 3])] = &[
        ("Mute",           "h",  [false, false, false]),
        ("Mute",           "c2", [true,  false, true ]),
        ("Mute",           "s",  [true,  true,  true ]),
        ("Unmute",         "h",  [false, false, false]),
        ("Unmute",         "c2", [true,  false, true ]),
        ("Unmute",         "s",  [true,  true,  true ]),
        ("MoveToAudience", "h",  [false, false, false]),
        ("MoveToAudience", "c2", [true,  false, true ]),
        ("MoveToAudience", "s",  [true,  true,  true ]),
        ("Remove",         "h",  [false, false, false]),
        ("Remove",         "c2", [true,  false, true ]),
        ("Remove",         "s",  [true,  true,  true ]),
        ("Ban",            "h",  [false, false, false]),
        ("Ban",            "c2", [true,  false, true ]),
        ("Ban",            "s",  [true,  true,  true ]),
    ];
    for (name, tgt, allowed) in expected {
        let actors = [who("h", Role::Host), who("c", Role::Cohost), op()];
        for (actor, allowed) in actors.iter().zip(allowed) {
            let mut room = live_room(Config::default());
            // Make speaker c2 the second co-host.
            ok(
                &mut room,
                &op(),
                Command::NameCohost {
                    target: target("t"),
                },
                0,
            );
            let t2 = if *tgt == "c2" { "t" } else { tgt };
            let cmd = match *name {
                "Mute" => Command::Mute { target: target(t2) },
                "Unmute" => Command::Unmute { target: target(t2) },
                "MoveToAudience" => Command::MoveToAudience { target: target(t2) },
                "Remove" => Command::Remove { target: target(t2) },
                _ => Command::Ban { target: target(t2) },
            };
            let got = room.apply(actor, cmd, 10);
            match (allowed, &got) {
                (true, Ok(_)) => {}
                (false, Err(Refusal::Forbidden { rule, .. })) => {
                    assert!(rule.starts_with("moderate."), "{rule}");
                }
                _ => panic!(
                    "{name} {tgt} by {}: expected {allowed}, got {got:?}",
                    actor.sub
                ),
            }
        }
    }
}

#[test]
fn minting_tokens() {
    // role minted → [host, cohost, speaker, listener, operator]
    #[rustfmt::skip]
    let expected: &[(Role, [bool; 5])] = &[
        (Role::Host,     [false, false, false, false, true]),
        (Role::Cohost,   [true,  false, false, false, true]),
        (Role::Speaker,  [true,  false, false, false, true]),
        (Role::Listener, [true,  false, false, false, true]),
    ];
    for (minted, allowed) in expected {
        let by = [
            (Role::Host, false),
            (Role::Cohost, false),
            (Role::Speaker, false),
            (Role::Listener, false),
            (Role::Listener, true),
        ];
        for ((role, operator), allowed) in by.iter().zip(allowed) {
            let got = check(Action::MintToken(*minted), *role, *operator);
            assert_eq!(
                got.is_ok(),
                *allowed,
                "mint {minted:?} by {role:?}/{operator}: {got:?}"
            );
        }
    }
    // For a participant on stage: the operator only.
    for role in Role::ALL {
        assert!(
            check(Action::MintForSeated, role, false).is_err(),
            "{role:?}"
        );
    }
    assert!(check(Action::MintForSeated, Role::Listener, true).is_ok());
}
