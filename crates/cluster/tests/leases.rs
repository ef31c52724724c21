//! Leases and fenced writes against a real `redis-server` (Debian's, on loopback, started and
//! stopped by `tribune_load::redis`).

use std::time::{Duration, Instant};

use tribune_cluster::{Directory, EventLog, Held, Leases, Owner, RedisState, Row, SpaceRecords};
use tribune_engine::durable::Replica;
use tribune_load::redis::Redis;

/// Longest a step may take before the test fails (a bound, not a timing).
const HANG: Duration = Duration::from_secs(20);

fn record(id: &str, title: &str) -> tribune_engine::store::SpaceRecord {
    tribune_engine::store::SpaceRecord {
        id: id.into(),
        title: title.into(),
        description: String::new(),
        state: "live".into(),
        starts_at: None,
        created_at: 1,
        started_at: Some(1),
        ended_at: None,
        room: "{}".into(),
        serial: 7,
        recording: None,
        recording_ms: None,
    }
}

#[tokio::test]
async fn a_lease_is_taken_once_renewed_lost_and_every_stale_write_is_refused() {
    let dir = std::env::temp_dir().join(format!("tribune-lease-redis-{}", std::process::id()));
    let redis = Redis::start(&dir).expect("redis-server");
    let d = Directory::connect(&redis.url(), Duration::from_secs(60))
        .await
        .unwrap();
    let leases = Leases::new(d.connection(), Duration::from_millis(800));

    // One taker wins; the other sees it held.
    let e1 = leases.acquire("s", "a").await.unwrap().expect("a takes it");
    assert_eq!(leases.acquire("s", "b").await.unwrap(), None);
    assert_eq!(leases.holder("s").await.unwrap().unwrap().node, "a");
    assert_eq!(
        leases.renew("a", &[("s".into(), e1)]).await.unwrap(),
        [true]
    );

    // a's writes go through while it holds the lease.
    let held_a = Held::new("a");
    held_a.insert("s", e1);
    let state_a = RedisState::new(&redis.url(), held_a.clone()).unwrap();
    let log = EventLog::new(d.connection());
    let records = SpaceRecords::new(d.connection());
    let owner_a = Owner {
        node: "a".into(),
        url: "http://a".into(),
    };
    let row = |summary: &str| Row {
        id: "s".into(),
        summary: summary.into(),
        origin_ms: 5,
    };
    tokio::task::spawn_blocking({
        let state_a = RedisState::new(&redis.url(), held_a.clone()).unwrap();
        move || state_a.put_space(&record("s", "by a")).unwrap()
    })
    .await
    .unwrap();
    log.append(
        "s",
        &held_a.value("s").unwrap(),
        &[(1, b"frame 1".to_vec())],
    )
    .await
    .unwrap();
    assert!(
        records
            .assert_owned(&owner_a, &held_a, &[row("{\"by\":\"a\"}")])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(records.origin("s").await.unwrap(), 5);

    // a stops renewing (frozen, say): the lease lapses and b takes it at a later epoch.
    let deadline = Instant::now() + HANG;
    let e2 = loop {
        if let Some(e) = leases.acquire("s", "b").await.unwrap() {
            break e;
        }
        assert!(Instant::now() < deadline, "the lease never lapsed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(e2 > e1);
    let held_b = Held::new("b");
    held_b.insert("s", e2);

    // a comes back: its renewal fails, and each of its writes is refused.
    assert_eq!(
        leases.renew("a", &[("s".into(), e1)]).await.unwrap(),
        [false]
    );
    let err = log
        .append(
            "s",
            &held_a.value("s").unwrap(),
            &[(2, b"frame 2".to_vec())],
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("STALE"), "{err}");
    let refused = records
        .assert_owned(&owner_a, &held_a, &[row("{\"by\":\"a\"}")])
        .await
        .unwrap();
    assert_eq!(refused, ["s"]);
    let state_a = tokio::task::spawn_blocking(move || {
        state_a.put_space(&record("s", "stale a")).unwrap();
        state_a
    })
    .await
    .unwrap();
    assert_eq!(state_a.refused(), 1);

    // b's go through, and what Redis holds is b's and a's from before, never a's stale ones.
    let owner_b = Owner {
        node: "b".into(),
        url: "http://b".into(),
    };
    assert!(
        records
            .assert_owned(&owner_b, &held_b, &[row("{\"by\":\"b\"}")])
            .await
            .unwrap()
            .is_empty()
    );
    log.append(
        "s",
        &held_b.value("s").unwrap(),
        &[(3, b"frame 3".to_vec())],
    )
    .await
    .unwrap();
    let frames: Vec<u64> = log
        .history("s", 10)
        .await
        .unwrap()
        .iter()
        .map(|l| l.id)
        .collect();
    assert_eq!(frames, [1, 3]);
    assert_eq!(records.owner("s").await.unwrap().unwrap(), owner_b);
    let url = redis.url();
    let title = tokio::task::spawn_blocking(move || {
        let reader = RedisState::new(&url, Held::new("c")).unwrap();
        reader.space("s").unwrap().unwrap().title
    })
    .await
    .unwrap();
    assert_eq!(title, "by a");

    // A release by a stale holder does nothing; the holder's own release frees it.
    assert!(!leases.release("s", "a", e1).await.unwrap());
    assert!(leases.release("s", "b", e2).await.unwrap());
    assert_eq!(leases.holder("s").await.unwrap(), None);

    // A lease Redis lost (nobody took a later epoch) is put back by its holder's renewal.
    let e3 = leases.acquire("t", "a").await.unwrap().unwrap();
    let mut c = d.connection();
    redis::cmd("FLUSHALL")
        .query_async::<()>(&mut c)
        .await
        .unwrap();
    assert_eq!(
        leases.renew("a", &[("t".into(), e3)]).await.unwrap(),
        [true]
    );
    assert_eq!(leases.holder("t").await.unwrap().unwrap().epoch, e3);
    assert_eq!(leases.acquire("t", "b").await.unwrap(), None);
}
