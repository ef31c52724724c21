//! Priority for the broadcast threads (mixer, pager, media runtime).
//!
//! Under a flood that saturates the cores, a mixer thread at normal priority competes equally
//! with the HTTP workers and its ticks run late. These threads use little CPU and sleep between
//! ticks, so they ask for `SCHED_FIFO` at the lowest real-time priority: enough to preempt every
//! normal thread, never enough to starve the kernel (Linux still throttles real-time threads to
//! 95 % of a core). Without the privilege (not root, no `CAP_SYS_NICE`), they fall back to the
//! highest normal priority they may take, and say so once in the log.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use thread_priority::{
    NormalThreadSchedulePolicy, RealtimeThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
    set_current_thread_priority, set_thread_priority_and_policy, thread_native_id,
};

static WARNED: AtomicBool = AtomicBool::new(false);

/// Raise the calling thread's scheduling priority; `what` names it in the log.
pub fn raise_current_thread(what: &str) {
    let fifo = ThreadSchedulePolicy::Realtime(RealtimeThreadSchedulePolicy::Fifo);
    match set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, fifo) {
        Ok(()) => tracing::debug!(thread = what, "running with SCHED_FIFO priority"),
        Err(rt_err) => {
            let fallback = set_current_thread_priority(ThreadPriority::Max);
            if !WARNED.swap(true, Relaxed) {
                tracing::warn!(thread = what, error = ?rt_err, fallback_ok = fallback.is_ok(),
                    "no real-time priority for the broadcast threads (needs root or CAP_SYS_NICE); \
                     under CPU saturation mixer ticks may run late");
            }
        }
    }
}

/// Give the calling thread the highest *normal* priority (nice −20 with the privilege): a strong
/// share of the CPU under contention, without the real-time policy's power to starve others.
/// For the control listener. `what` names it in the log.
pub fn favour_current_thread(what: &str) {
    let normal = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Other);
    if let Err(e) = set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Max, normal)
    {
        tracing::warn!(thread = what, error = ?e,
            "could not raise this thread's priority (needs root or CAP_SYS_NICE)");
    }
}
