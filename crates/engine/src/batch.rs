//! The housekeeping task of a space: a few times per second it runs the room's timers and
//! publishes the batched events — roster, speaker levels, listener count, reactions — so that
//! however busy the space, subscribers get at most a few such events per second, each
//! serialized once.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use serde_json::json;
use tribune_room::Lifecycle;

use crate::space::Space;

/// How often the batched events go out.
pub const PERIOD: Duration = Duration::from_millis(250);

/// Comment lines keep idle event streams (and proxies in front of them) open.
const KEEPALIVE_EVERY: u32 = 60; // × PERIOD = 15 s

/// Run until the space has ended.
pub async fn run(space: Arc<Space>) {
    let mut tick = tokio::time::interval(PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_count = (u64::MAX, 0, 0, 0, false);
    // Refusals on this node (every reason and class) over the last minute.
    let mut refused = tribune_admission::LastMinute::default();
    let mut refused_before = space.metrics.refusals_total();
    let mut n: u32 = 0;
    loop {
        tick.tick().await;
        n = n.wrapping_add(1);
        if space.lifecycle() == Lifecycle::Ended {
            return;
        }
        let host_present = space.host_present();
        let levels = space.housekeeping(space.config().clock.now_ms(), host_present);
        if let Some(levels) = &levels {
            space
                .events
                .publish("levels", &json!({ "type": "levels", "levels": levels }));
        }
        let count = space.listener_count();
        // The listeners' view travels inside the media (ID3 in emsg, changes only, on the next
        // HLS part: crate::hls::meta), so a listener behind an edge gets it without asking.
        if let Some(hls) = space.hls() {
            let mut state = crate::public::live_state(&space);
            let speaking: Vec<&str> = levels
                .iter()
                .flatten()
                .filter(|l| l.dbfs > f64::from(tribune_room::timeline::SPEAKING_DBFS))
                .map(|l| l.sub.as_str())
                .collect();
            state.insert("speaking".into(), json!(speaking));
            hls.set_meta(state);
        }
        let now_s = space.config().clock.now_s();
        let turned_away = space.turned_away.lock().sum(now_s);
        let refused_now = space.metrics.refusals_total();
        refused.add_n(now_s, refused_now.saturating_sub(refused_before));
        refused_before = refused_now;
        let refused_minute = refused.sum(now_s);
        let waiting = space.metrics.waiting.load(Relaxed).max(0) as u64;
        let shield = space.metrics.shield_on.load(Relaxed) > 0;
        let state = (count, turned_away, refused_minute, waiting, shield);
        if state != last_count {
            last_count = state;
            // `under_load`: the node is refusing or queueing anyone (the host's page says so).
            let under_load = shield || waiting > 0 || turned_away > 0 || refused_minute > 0;
            space.events.publish(
                "listeners",
                &json!({ "type": "listeners", "count": count,
                    "admission": {
                        "turned_away_last_minute": turned_away,
                        "waiting": waiting,
                        "refused_last_minute": refused_minute,
                        "shield": shield,
                        "under_load": under_load,
                    } }),
            );
        }
        if let Some(counts) = space.reactions.take() {
            space.events.publish(
                "reactions",
                &json!({ "type": "reactions", "counts": counts }),
            );
        }
        if n.is_multiple_of(KEEPALIVE_EVERY) {
            space.events.keepalive();
        }
    }
}
