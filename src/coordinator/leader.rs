//! Leading a store that several coordinators could share (PostgreSQL): the lease claimed
//! at start, renewed in the background, given up at a clean stop.
//!
//! Invariants: the writer's session is fenced at the epoch claimed here, so whatever this
//! module does or fails to do, a coordinator whose lease was taken over commits nothing
//! (the store checks the epoch inside each write transaction). A renewal that finds the
//! lease taken over stops the coordinator through the writer's fail-stop path. A store
//! that one process holds alone (SQLite, by its file lock) has no lease: nothing here runs.
//!
//! Until standby coordinators exist (issue 19 item 3), a coordinator that finds the lease
//! held by another live coordinator waits for it to run out (a crashed leader) for at most
//! two lease times, then refuses to start, naming the leader. The coordinator that held
//! the lease before a crash (the same host and data folder) takes it over at once, at a
//! new epoch, so a restart after kill -9 does not wait.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::store::{Claim, Store, StoreError, blocking};
use crate::config::Config;

/// How long a lease lasts without renewal. A leader renews it every third of this.
pub const LEASE_TTL: Duration = Duration::from_secs(5);

/// The lease this coordinator holds.
#[derive(Debug, Clone)]
pub struct Leadership {
    pub id: String,
    pub epoch: u64,
}

/// This coordinator's name in the lease: the host and the data folder (so that the same
/// coordinator restarting is recognised).
pub fn coordinator_id(config: &Config) -> String {
    let dir = config.data_dir();
    let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
    let host = sysinfo::System::host_name().ok().filter(|h| !h.trim().is_empty()).unwrap_or_else(|| "localhost".into());
    format!("{host}:{}", dir.display())
}

/// Claims the store's lease (None for a store without one).
pub async fn claim(store: &Arc<dyn Store>, config: &Config) -> anyhow::Result<Option<Leadership>> {
    if store.lease().is_none() {
        return Ok(None);
    }
    let id = coordinator_id(config);
    let url = format!("http://{}:{}", config.coordinator.host, config.coordinator.port);
    let give_up = tokio::time::Instant::now() + 2 * LEASE_TTL;
    loop {
        let claim = blocking(store, {
            let (id, url) = (id.clone(), url.clone());
            move |s| s.lease().map(|l| l.claim(&id, &url, LEASE_TTL)).unwrap_or(Ok(Claim::Won(0)))
        })
        .await
        .map_err(|e| anyhow::anyhow!("cannot claim the leader lease in the store at {}: {e}", store.location()))?;
        match claim {
            Claim::Won(epoch) => {
                tracing::info!(target: "openclaw::coordinator", epoch, id = %id, "leading the store (lease epoch {epoch})");
                return Ok(Some(Leadership { id, epoch }));
            }
            Claim::Held(leader) if tokio::time::Instant::now() >= give_up => {
                let who = leader.map_or("another coordinator".to_string(), |l| {
                    format!("coordinator {} ({}, lease epoch {})", l.id, l.url, l.epoch)
                });
                anyhow::bail!(
                    "the store at {} is led by {who}, which keeps its lease: one coordinator per database until standby coordinators exist — stop the other one, or point this one at a database of its own",
                    store.location()
                );
            }
            Claim::Held(_) => tokio::time::sleep(LEASE_TTL / 5).await,
        }
    }
}

/// Renews the lease every third of its time to live until `shutdown`; when it was taken
/// over, reports it through `fail` (the writer's fail-stop). A renewal that errors (the
/// database unreachable) is logged and tried again: the fencing check keeps every write
/// safe meanwhile, and a writer that cannot reach the database stops by itself.
pub async fn renew_loop(
    store: Arc<dyn Store>,
    lead: Leadership,
    shutdown: CancellationToken,
    fail: impl Fn(String) + Send + 'static,
) {
    let mut tick = tokio::time::interval(LEASE_TTL / 3);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        let epoch = lead.epoch;
        let renewed: Result<bool, StoreError> =
            blocking(&store, move |s| s.lease().map(|l| l.renew(epoch, LEASE_TTL)).unwrap_or(Ok(true))).await;
        match renewed {
            Ok(true) => {}
            Ok(false) => {
                fail(format!("the leader lease (epoch {epoch}) was taken over by another coordinator"));
                return;
            }
            Err(e) => {
                tracing::warn!(target: "openclaw::coordinator", error = %e, db = %store.location(), "cannot renew the leader lease; trying again")
            }
        }
    }
}

/// Gives the lease up after the last write, so that another coordinator may lead at once.
pub async fn release(store: &Arc<dyn Store>, lead: &Leadership) {
    let epoch = lead.epoch;
    if let Err(e) = blocking(store, move |s| s.lease().map(|l| l.release(epoch)).unwrap_or(Ok(()))).await {
        tracing::warn!(target: "openclaw::coordinator", error = %e, "cannot give the leader lease up; it runs out by itself");
    }
}
