//! Background work of the coordinator, each loop stopped by the shutdown token:
//! - the timer loop: node deadlines, retries coming due, attempt backstops — each acted on
//!   at its own moment;
//! - the sweep: every `heartbeat_check_interval`, a full liveness check (a safety net
//!   under the timers), and every two seconds a batched write of heartbeat figures;
//! - retention: ended tasks older than `storage.task_retention_days`, purged hourly in
//!   small batches.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Shared;
use super::state::{Now, Timer};

/// Acts on deadlines as they come due.
pub async fn timer_loop(shared: Arc<Shared>, shutdown: CancellationToken) {
    let wake = shared.lock().timer_wake.clone();
    loop {
        let next = {
            let mut st = shared.lock();
            let now = Now::get();
            for timer in st.take_due(now.at) {
                match timer {
                    Timer::NodeDeadline(node) => st.node_deadline(&node, now),
                    Timer::RetryDue(task) => st.retry_due(&task, now),
                    Timer::AttemptDeadline(task, attempt) => st.attempt_deadline(&task, attempt, now),
                }
            }
            st.next_deadline()
        };
        let sleep_until = next.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            _ = tokio::time::sleep_until(sleep_until) => {}
            _ = wake.notified() => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// The periodic sweep and the batched liveness writes.
pub async fn sweep_loop(shared: Arc<Shared>, shutdown: CancellationToken) {
    let mut check = tokio::time::interval(shared.config.coordinator.heartbeat_check_interval.get());
    let mut flush = tokio::time::interval(Duration::from_secs(2));
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = check.tick() => {
                shared.lock().check_liveness(Now::get());
            }
            _ = flush.tick() => flush_liveness(&shared),
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Queues a batched write of the heartbeat figures that changed.
pub fn flush_liveness(shared: &Shared) {
    let st = &mut *shared.lock();
    let batch = st.take_dirty();
    if !batch.is_empty() {
        st.write(move |c| crate::store::nodes::update_liveness(c, &batch));
    }
}

/// Purges old ended tasks: at start, then hourly, 500 at a time with a pause between
/// batches so that the writer stays responsive.
pub async fn retention_loop(shared: Arc<Shared>, shutdown: CancellationToken) {
    let days = shared.config.storage.task_retention_days;
    if days == 0 {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        let before = crate::util::now_ms() - i64::from(days) * 86_400_000;
        loop {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let pending = {
                let st = shared.lock();
                st.write(move |c| {
                    let keys = crate::store::tasks::purge_ended(c, before, 500)?;
                    let _ = tx.send(keys);
                    Ok(())
                });
                st.barrier()
            };
            if pending.committed().await.is_err() {
                return;
            }
            let keys = rx.await.unwrap_or_default();
            let purged = keys.len();
            {
                let mut st = shared.lock();
                for key in keys.into_iter().flatten() {
                    st.idempotency.remove(&key);
                }
            }
            if purged > 0 {
                tracing::info!(target: "openclaw::coordinator", purged, days, "purged old ended tasks");
            }
            if purged < 500 {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }
}
