//! Background work of the coordinator, each loop stopped by the shutdown token:
//! - the timer loop: node deadlines, retries coming due, attempt backstops — each acted on
//!   at its own moment;
//! - the sweep: every `heartbeat_check_interval`, a full liveness check (a safety net
//!   under the timers), and every two seconds a batched write of heartbeat figures;
//! - retention: ended tasks (with their events) and node events older than
//!   `storage.task_retention_days`, purged hourly in small batches.
//!
//! Every change goes through [`Cluster::internal`], like any other door's.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::cluster::Cluster;
use super::store::Write;

/// Acts on deadlines as they come due.
pub async fn timer_loop(cluster: Arc<Cluster>, shutdown: CancellationToken) {
    let wake = cluster.view(|core| core.timers().wake());
    loop {
        let next = cluster.internal(|core, now| core.fire_timers(now));
        let sleep_until = next.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            _ = tokio::time::sleep_until(sleep_until) => {}
            _ = wake.notified() => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// The periodic sweep and the batched liveness writes.
pub async fn sweep_loop(cluster: Arc<Cluster>, shutdown: CancellationToken) {
    let mut check = tokio::time::interval(cluster.config().coordinator.heartbeat_check_interval.get());
    let mut flush = tokio::time::interval(Duration::from_secs(2));
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = check.tick() => {
                cluster.internal(|core, now| core.check_liveness(now));
            }
            _ = flush.tick() => flush_liveness(&cluster),
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Queues a batched write of the heartbeat figures that changed.
pub fn flush_liveness(cluster: &Cluster) {
    cluster.flush_liveness();
}

/// Purges old ended tasks and node events: at start, then hourly, 500 at a time with a
/// pause between batches so that the writer stays responsive.
pub async fn retention_loop(cluster: Arc<Cluster>, shutdown: CancellationToken) {
    let days = cluster.config().storage.task_retention_days;
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
            let (purged, rx) = std::sync::mpsc::channel();
            let seq = cluster.write(Write::Purge { before_ms: before, limit: 500, purged });
            if cluster.committed(seq).await.is_err() {
                return;
            }
            let purged = rx.try_recv().unwrap_or(0);
            if purged > 0 {
                tracing::info!(target: "openclaw::coordinator", purged, days, "purged old ended tasks and node events");
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
