//! Property test: arbitrary sequences of commands, sessions and timeouts never panic and keep the
//! room's invariants (at most `max_cohosts` co-hosts, at most `stage_limit` on stage, one host or
//! none, nobody in two places).

use std::collections::BTreeSet;

use proptest::prelude::*;
use tribune_room::{Actor, Command, Config, Lifecycle, Role, Room};

const SUBS: &[&str] = &["h", "a", "b", "c", "d", "e", "f"];

#[derive(Debug, Clone)]
enum Op {
    Apply {
        actor: usize,
        token: Role,
        operator: bool,
        cmd: u8,
        target: usize,
    },
    SessionStarted(usize),
    SessionEnded(usize),
    HostSeen,
    Timeout,
    Interrupt,
    Restart,
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![
        Just(Role::Host),
        Just(Role::Cohost),
        Just(Role::Speaker),
        Just(Role::Listener)
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..SUBS.len(), role(), prop::bool::weighted(0.1), 0u8..26, 0..SUBS.len())
            .prop_map(|(actor, token, operator, cmd, target)| Op::Apply { actor, token, operator, cmd, target }),
        2 => (0..SUBS.len()).prop_map(Op::SessionStarted),
        2 => (0..SUBS.len()).prop_map(Op::SessionEnded),
        1 => Just(Op::HostSeen),
        1 => Just(Op::Timeout),
        1 => prop_oneof![19 => Just(Op::Timeout), 1 => Just(Op::Interrupt)],
        1 => Just(Op::Restart),
    ]
}

fn command(n: u8, target: &str) -> Command {
    let t = target.to_string();
    match n {
        0 => Command::Start,
        1 => Command::End,
        2 => Command::Resume,
        3 => Command::RaiseHand,
        4 => Command::LowerHand,
        5 => Command::Approve { target: t },
        6 => Command::Decline { target: t },
        7 => Command::Invite { target: t },
        8 => Command::AcceptInvite,
        9 => Command::DeclineInvite,
        10 => Command::StageToken,
        11 => Command::Publish,
        12 => Command::MuteSelf,
        13 => Command::UnmuteSelf,
        14 => Command::Mute { target: t },
        15 => Command::Unmute { target: t },
        16 => Command::MoveToAudience { target: t },
        17 => Command::Remove { target: t },
        18 => Command::Ban { target: t },
        19 => Command::NameCohost { target: t },
        20 => Command::RevokeCohost { target: t },
        21 => Command::TakeOverHost,
        22 => Command::React,
        23 => Command::ListAudience,
        24 => Command::LeaveStage,
        _ => Command::Subscribe,
    }
}

fn config() -> impl Strategy<Value = Config> {
    (1usize..7, 0usize..4, 1u64..100_000, 0u64..100_000).prop_map(
        |(stage_limit, max_cohosts, grace_ms, host_absence_ms)| Config {
            stage_limit,
            max_cohosts,
            grace_ms,
            host_absence_ms,
        },
    )
}

fn assert_invariants(room: &Room, cfg: &Config) {
    let snap = room.snapshot();
    let subs: BTreeSet<&str> = snap.stage.iter().map(|p| p.sub.as_str()).collect();
    assert_eq!(
        subs.len(),
        snap.stage.len(),
        "someone twice on stage: {snap:?}"
    );
    assert!(
        snap.stage.len() <= cfg.stage_limit,
        "stage over limit: {snap:?}"
    );
    let hosts: Vec<_> = snap.stage.iter().filter(|p| p.role == Role::Host).collect();
    assert!(hosts.len() <= 1);
    assert_eq!(hosts.first().map(|p| p.sub.as_str()), room.host());
    assert_eq!(snap.host.as_deref(), room.host());
    let cohosts: Vec<_> = snap
        .stage
        .iter()
        .filter(|p| p.role == Role::Cohost)
        .map(|p| p.sub.clone())
        .collect();
    assert!(
        cohosts.len() <= cfg.max_cohosts,
        "too many cohosts: {snap:?}"
    );
    assert_eq!(cohosts, snap.cohosts);
    for (sub, _) in &snap.hands {
        assert!(
            !subs.contains(sub.as_str()),
            "{sub} on stage with a raised hand"
        );
    }
    for sub in &snap.invited {
        assert!(!subs.contains(sub.as_str()), "{sub} on stage and invited");
    }
    for p in &snap.stage {
        assert_eq!(room.current_role(&p.sub, Role::Listener), Ok(p.role));
        assert_eq!(p.muted, p.muted || p.host_muted);
    }
    if room.lifecycle() != Lifecycle::Live {
        assert_eq!(room.poll_timeout(), None);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_sequences_keep_invariants(
        cfg in config(),
        live in any::<bool>(),
        with_host in any::<bool>(),
        ops in prop::collection::vec((op(), 0u64..120_000), 1..80),
    ) {
        let lifecycle = if live { Lifecycle::Live } else { Lifecycle::Scheduled };
        let host = with_host.then(|| ("h".to_string(), "H".to_string()));
        let mut room = Room::new(cfg.clone(), lifecycle, host);
        let mut now = 1_000_000u64;
        for (op, dt) in ops {
            now += dt;
            match op {
                Op::Apply { actor, token, operator, cmd, target } => {
                    let actor = if operator {
                        Actor::operator()
                    } else {
                        Actor::new(SUBS[actor], SUBS[actor].to_uppercase(), token)
                    };
                    let cmd = command(cmd, SUBS[target]);
                    let ended = room.lifecycle() == Lifecycle::Ended;
                    let res = room.apply(&actor, cmd.clone(), now);
                    if ended && res.is_ok() {
                        prop_assert!(matches!(cmd, Command::Subscribe | Command::ListAudience));
                    }
                }
                Op::SessionStarted(i) => {
                    // The server opens sessions only after an accepted Publish.
                    let a = Actor::new(SUBS[i], SUBS[i].to_uppercase(), Role::Listener);
                    if room.apply(&a, Command::Publish, now).is_ok() {
                        room.session_started(SUBS[i], &a.name, now);
                    }
                }
                Op::SessionEnded(i) => {
                    room.session_ended(SUBS[i], now);
                }
                Op::HostSeen => room.host_seen(now),
                Op::Timeout => {
                    if let Some(t) = room.poll_timeout() {
                        now = now.max(t);
                    }
                    room.handle_timeout(now);
                }
                Op::Interrupt => room.mark_interrupted(),
                Op::Restart => {
                    let d = room.durable();
                    let json = serde_json::to_string(&d).unwrap();
                    let back = Room::restore(cfg.clone(), serde_json::from_str(&json).unwrap());
                    prop_assert_eq!(back.durable(), d);
                    room = back;
                    room.mark_interrupted();
                }
            }
            assert_invariants(&room, &cfg);
        }
    }
}
