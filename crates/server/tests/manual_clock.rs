//! The server runs on an injected clock: on a manual one, a space nobody takes the stage in
//! ends when the clock passes its five-minute grace period, in a step instead of five minutes.

use std::time::Duration;

use tribune_engine::clock::Clock;
use tribune_room::Lifecycle;
use tribune_server::{Config, Server};

/// Longest the test waits for the housekeeping to see the time (a bound, not a timing).
const HANG: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grace_period_runs_on_the_injected_clock() {
    let dir = std::env::temp_dir().join(format!("tribune-manual-clock-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut cfg = Config::for_tests(dir);
    let clock = Clock::manual(1_800_000_000_000);
    cfg.clock = clock.clone();
    let grace = cfg.grace;
    let server = Server::bind(cfg).await.unwrap();
    let created = server
        .app
        .create_space(Some("quiet"), "nobody speaks", "", "Host", None)
        .unwrap();
    let space = created.space;
    assert_eq!(
        space.created_at, 1_800_000_000,
        "created by the injected clock"
    );

    // Real time passes, the injected clock stands: still live.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(space.lifecycle(), Lifecycle::Live);
    clock.advance(grace - Duration::from_secs(1));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        space.lifecycle(),
        Lifecycle::Live,
        "a second of grace is left"
    );

    clock.advance(Duration::from_secs(2));
    let deadline = std::time::Instant::now() + HANG;
    while space.lifecycle() != Lifecycle::Ended && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        space.lifecycle(),
        Lifecycle::Ended,
        "the grace is over on the injected clock"
    );
}
