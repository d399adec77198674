//! Leading a store that several coordinators share (PostgreSQL): the lease claimed at
//! start — standing by while another coordinator holds it — renewed in the background,
//! given up at a clean stop.
//!
//! Invariants: the writer's session is fenced at the epoch claimed here, so whatever this
//! module does or fails to do, a coordinator whose lease was taken over commits nothing
//! (the store checks the epoch inside each write transaction). A coordinator that finds
//! the lease held stands by ([`super::standby`] answers its listener) and tries again every
//! fifth of `storage.lease_ttl`; it loads the state and opens its doors only once it has
//! won. A leader renews every third of the lease time and steps down (fail-stop: the
//! process exits 1, a supervisor starts it again and it comes back as a standby) when its
//! own monotonic clock passes the start of its last successful renewal plus the lease
//! time minus a sixth — before the store's clock can let a standby take over — or when a
//! renewal finds the lease taken over. A store that one process holds alone (SQLite, by
//! its file lock) has no lease: nothing here runs.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::store::{Claim, Store, StoreError, blocking};
use crate::config::Config;
use crate::model::LeaderInfo;

/// The lease's timings, all from `storage.lease_ttl`.
#[derive(Debug, Clone, Copy)]
pub struct LeaseTimes {
    /// How long a lease lasts without renewal (the store's clock judges it).
    pub ttl: Duration,
}

impl LeaseTimes {
    pub fn from_config(config: &Config) -> LeaseTimes {
        LeaseTimes { ttl: config.storage.lease_ttl.get() }
    }

    /// A leader renews this often: two renewals may fail before it steps down.
    pub fn renew_every(self) -> Duration {
        self.ttl / 3
    }

    /// A standby tries to take the lease over this often.
    pub fn claim_every(self) -> Duration {
        self.ttl / 5
    }

    /// A leader steps down this long after it sent its last successful renewal: a sixth
    /// of the lease before the store could let anybody else take over.
    pub fn step_down_after(self) -> Duration {
        self.ttl - self.ttl / 6
    }
}

/// The lease this coordinator holds.
#[derive(Debug, Clone)]
pub struct Leadership {
    pub id: String,
    pub url: String,
    pub epoch: u64,
    /// When the claim that won was sent: the lease runs at least until then plus its time.
    claimed_at: Instant,
}

impl Leadership {
    pub fn info(&self) -> LeaderInfo {
        LeaderInfo { id: self.id.clone(), url: self.url.clone(), epoch: self.epoch }
    }
}

/// How the claim ended.
pub enum Lead {
    /// The store has no lease (SQLite): this coordinator is the only one.
    Alone,
    Leader(Leadership),
    /// The shutdown token fired while standing by.
    Stopped,
}

/// This coordinator's name in the lease: `coordinator.id`, else the host and the data
/// folder (so that the same coordinator restarting is recognised and takes over at once).
pub fn coordinator_id(config: &Config) -> String {
    if let Some(id) = &config.coordinator.id {
        return id.clone();
    }
    let dir = config.data_dir();
    let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
    format!("{}:{}", host_name(), dir.display())
}

fn host_name() -> String {
    sysinfo::System::host_name().ok().filter(|h| !h.trim().is_empty()).unwrap_or_else(|| "localhost".into())
}

/// The URL others should use for this coordinator: `coordinator.advertise_url`, else the
/// scheme, the host (this machine's name for an any-address) and the port it listens on.
pub fn advertise_url(config: &Config, bound: Option<SocketAddr>) -> String {
    if let Some(url) = &config.coordinator.advertise_url {
        return url.trim_end_matches('/').to_string();
    }
    let scheme = if config.coordinator.tls_cert.is_some() { "https" } else { "http" };
    let port = bound.map_or(config.coordinator.port, |a| a.port());
    let host = match config.coordinator.host.as_str() {
        "0.0.0.0" | "::" | "[::]" | "" => host_name(),
        h if h.contains(':') && !h.starts_with('[') => format!("[{h}]"),
        h => h.to_string(),
    };
    format!("{scheme}://{host}:{port}")
}

/// Claims the store's lease. While another coordinator holds it, this one stands by: it
/// answers `listener` (when given) as a standby naming the leader, and tries again every
/// fifth of the lease time until it wins or `shutdown` fires.
pub async fn claim(
    store: &Arc<dyn Store>,
    config: &Config,
    url: String,
    listener: Option<&TcpListener>,
    shutdown: &CancellationToken,
) -> anyhow::Result<Lead> {
    if store.lease().is_none() {
        return Ok(Lead::Alone);
    }
    let id = coordinator_id(config);
    let times = LeaseTimes::from_config(config);
    let leader: Arc<Mutex<Option<LeaderInfo>>> = Arc::new(Mutex::new(None));
    // Fired when the first claim did not win: only then does the standby answer.
    let standing_by = CancellationToken::new();
    let stand_by = shutdown.child_token();
    let claiming = async {
        let address = listener.map(|l| l.local_addr());
        let outcome = claim_loop(store, (&id, &url), times, &leader, shutdown, &standing_by, address).await;
        stand_by.cancel();
        outcome
    };
    let serving = async {
        if let Some(listener) = listener {
            tokio::select! {
                _ = standing_by.cancelled() => super::standby::serve(listener, config, leader.clone(), stand_by.clone()).await,
                _ = stand_by.cancelled() => {}
            }
        }
    };
    let (outcome, ()) = tokio::join!(claiming, serving);
    outcome
}

async fn claim_loop(
    store: &Arc<dyn Store>,
    (id, url): (&str, &str),
    times: LeaseTimes,
    leader: &Mutex<Option<LeaderInfo>>,
    shutdown: &CancellationToken,
    standing_by: &CancellationToken,
    address: Option<std::io::Result<SocketAddr>>,
) -> anyhow::Result<Lead> {
    let mut told = false;
    let mut unreachable = false;
    loop {
        let sent = Instant::now();
        let claim = blocking(store, {
            let (id, url, ttl) = (id.to_string(), url.to_string(), times.ttl);
            move |s| s.lease().map(|l| l.claim(&id, &url, ttl)).unwrap_or(Ok(Claim::Won(0)))
        })
        .await;
        match claim {
            Ok(Claim::Won(epoch)) => {
                tracing::info!(target: "openclaw::coordinator", epoch, id = %id, url = %url, "leading the store (lease epoch {epoch})");
                return Ok(Lead::Leader(Leadership {
                    id: id.to_string(),
                    url: url.to_string(),
                    epoch,
                    claimed_at: sent,
                }));
            }
            Ok(Claim::Held(holder)) => {
                unreachable = false;
                if !told {
                    told = true;
                    let who = holder.as_ref().map_or("another coordinator".to_string(), |l| {
                        format!("coordinator {} ({}, lease epoch {})", l.id, l.url, l.epoch)
                    });
                    let on = match &address {
                        Some(Ok(a)) => format!(" on {a}"),
                        _ => String::new(),
                    };
                    tracing::info!(target: "openclaw::coordinator", id = %id, "coordinator standing by{on}: the store at {} is led by {who}; taking over when its lease (storage.lease_ttl) runs out", store.location());
                }
                *crate::util::lock(leader) = holder.map(|l| LeaderInfo { id: l.id, url: l.url, epoch: l.epoch });
            }
            Err(e) => {
                if !unreachable {
                    unreachable = true;
                    tracing::warn!(target: "openclaw::coordinator", error = %e, db = %store.location(), "cannot reach the store to claim the leader lease; trying again");
                }
                *crate::util::lock(leader) = None;
            }
        }
        standing_by.cancel();
        tokio::select! {
            _ = tokio::time::sleep(times.claim_every()) => {}
            _ = shutdown.cancelled() => return Ok(Lead::Stopped),
        }
    }
}

/// Renews the lease every third of its time to live until `shutdown`. Reports through
/// `fail` (the fail-stop) when a renewal finds the lease taken over, or when none has
/// succeeded for long enough that the store might soon let another coordinator take over
/// (the database unreachable, or this process paused): the leader steps down first.
pub async fn renew_loop(
    store: Arc<dyn Store>,
    lead: Leadership,
    times: LeaseTimes,
    shutdown: CancellationToken,
    fail: impl Fn(String) + Send + 'static,
) {
    let epoch = lead.epoch;
    let mut deadline = lead.claimed_at + times.step_down_after();
    let step_down = |since: Instant| {
        format!(
            "the leader lease (epoch {epoch}) could not be renewed for {:.1}s (storage.lease_ttl {}s less a sixth): stepping down before another coordinator may take over. Is the database at {} reachable? Restarted (by systemd or another supervisor), this coordinator stands by and leads again when it can",
            since.elapsed().as_secs_f64(),
            times.ttl.as_secs_f64(),
            store.location()
        )
    };
    let mut last = lead.claimed_at;
    // The first renewal goes at once: a claim that took long (a database just back up)
    // may have left little of the lease by this process's conservative count.
    let mut first = true;
    loop {
        if !first {
            tokio::select! {
                _ = tokio::time::sleep(times.renew_every()) => {}
                _ = tokio::time::sleep_until(deadline) => return fail(step_down(last)),
                _ = shutdown.cancelled() => return,
            }
        }
        let sent = Instant::now();
        if first {
            // The claim itself renewed the lease when the server ran it, after `claimed_at`.
            deadline = deadline.max(sent + times.renew_every());
            first = false;
        }
        let renewal = blocking(&store, {
            let ttl = times.ttl;
            move |s| s.lease().map(|l| l.renew(epoch, ttl)).unwrap_or(Ok(true))
        });
        let renewed: Result<bool, StoreError> = tokio::select! {
            r = renewal => r,
            _ = tokio::time::sleep_until(deadline) => return fail(step_down(last)),
            _ = shutdown.cancelled() => return,
        };
        match renewed {
            Ok(true) => {
                last = sent;
                deadline = sent + times.step_down_after();
            }
            Ok(false) => {
                return fail(format!("the leader lease (epoch {epoch}) was taken over by another coordinator"));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leader_steps_down_before_a_standby_may_take_over() {
        let t = LeaseTimes { ttl: Duration::from_secs(3) };
        assert_eq!(t.renew_every(), Duration::from_secs(1));
        assert_eq!(t.claim_every(), Duration::from_millis(600));
        assert_eq!(t.step_down_after(), Duration::from_millis(2500));
        // Two renewals may fail; the third must succeed before stepping down.
        assert!(t.renew_every() * 2 < t.step_down_after() && t.step_down_after() < t.ttl);
        // A failover takes the lease time plus a poll at most: within lease + 2 s.
        assert!(t.ttl + t.claim_every() <= Duration::from_secs(5));
    }
}
