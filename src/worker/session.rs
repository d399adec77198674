//! The worker's session with the coordinator: registration and the heartbeat loop.
//!
//! Owns the node secret (a [`Client`] carrying it, and its copy on disk through
//! [`Identity`]) and whether the coordinator answers (one WARN when the link goes down,
//! one INFO when it is back). Registration first presents the kept secret (a restarted
//! worker is the same node and takes over at once), else the join token. A heartbeat
//! carries usage figures, the attempts held (for reconciliation) and the skills when they
//! changed; its answer may cancel attempts. A refused secret means "register again".
//! Registration refused for good (bad token, bad config, the id owned by another live
//! worker) is fatal: retrying cannot help.
//!
//! Locking: std mutexes, held only for short synchronous sections, never across `.await`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::Context;
use super::adverts::Adverts;
use super::attempts::Attempts;
use super::identity::Identity;
use super::system;
use super::transport::CoordinatorTransport;
use crate::client::{Client, ClientError};
use crate::model::{ErrorCode, HeartbeatRequest, RegisterRequest};
use crate::util::lock;

/// Whether the coordinator answers, for one log line per change.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Link {
    Unknown,
    Up,
    Down,
}

/// The registration and the link to the coordinator.
pub struct Session {
    ctx: Arc<Context>,
    /// The client carrying the join token.
    join: Client,
    /// The client carrying this node's secret, while registered.
    current: Mutex<Option<Client>>,
    /// Wakes the heartbeat loop to register again at once.
    lost: Notify,
    /// Wakes [`Session::wait`] when a registration succeeds.
    ready: Notify,
    /// Wakes loops backing off when the coordinator answers again.
    restored: Notify,
    /// Wakes the heartbeat loop to heartbeat now (the coordinator has news for this node).
    nudge: Notify,
    link: Mutex<Link>,
    /// The kept secret and the claim on the node id.
    identity: Identity,
}

impl Session {
    pub fn new(ctx: Arc<Context>, join: Client, identity: Identity) -> Session {
        Session {
            ctx,
            join,
            current: Mutex::new(None),
            lost: Notify::new(),
            ready: Notify::new(),
            restored: Notify::new(),
            nudge: Notify::new(),
            link: Mutex::new(Link::Unknown),
            identity,
        }
    }

    /// The join token and the current node secret (for redacting them from task output).
    pub fn secrets(&self) -> Vec<String> {
        let current = self.current();
        [self.join.token(), current.as_ref().and_then(Client::token)]
            .into_iter()
            .flatten()
            .map(str::to_string)
            .collect()
    }

    /// The client of the current registration, if any.
    pub fn current(&self) -> Option<Client> {
        lock(&self.current).clone()
    }

    /// The current registration, waiting for one if there is none; `None` once `until`
    /// fires.
    pub async fn wait(&self, until: &CancellationToken) -> Option<Client> {
        loop {
            // Register for the wake-up before looking, so a registration in between is seen.
            let ready = self.ready.notified();
            tokio::pin!(ready);
            ready.as_mut().enable();
            if let Some(s) = self.current() {
                return Some(s);
            }
            tokio::select! {
                _ = ready => {}
                _ = until.cancelled() => return None,
            }
        }
    }

    /// The coordinator no longer accepts this registration: register again.
    pub fn drop_session(&self, why: &str) {
        if lock(&self.current).take().is_some() {
            tracing::info!(target: "openclaw::worker", reason = why, "registering again");
        }
        self.lost.notify_one();
    }

    /// The coordinator answered.
    pub fn link_up(&self) {
        let mut link = lock(&self.link);
        match *link {
            Link::Down => {
                tracing::info!(target: "openclaw::worker", url = %self.join.base(), "connected to the coordinator again");
                self.restored.notify_waiters();
            }
            Link::Unknown => {
                tracing::info!(target: "openclaw::worker", url = %self.join.base(), "connected to the coordinator")
            }
            Link::Up => {}
        }
        *link = Link::Up;
    }

    /// The coordinator did not answer.
    pub fn link_down(&self, err: &ClientError) {
        let mut link = lock(&self.link);
        if *link != Link::Down {
            tracing::warn!(target: "openclaw::worker", url = %self.join.base(), error = %err, "the coordinator is not answering; retrying with backoff (running tasks go on). Check that it runs and that worker.coordinator_urls (--coordinator-url) or worker.coordinator_host / worker.coordinator_port (--coordinator-host / --coordinator-port) point at it");
        }
        *link = Link::Down;
    }

    /// Resolves when the coordinator answers again after being down.
    pub async fn restored(&self) {
        self.restored.notified().await
    }

    /// Tells the coordinator this node leaves (bounded wait).
    pub async fn leave(&self) {
        let Some(client) = self.current() else { return };
        match tokio::time::timeout(Duration::from_secs(5), client.shutdown_node(&self.ctx.node_id)).await {
            Ok(Ok(_)) => tracing::info!(target: "openclaw::worker", "told the coordinator this node is leaving"),
            Ok(Err(e)) => {
                tracing::warn!(target: "openclaw::worker", error = %e, "could not tell the coordinator this node is leaving")
            }
            Err(_) => tracing::warn!(target: "openclaw::worker", "the coordinator did not answer the leave in time"),
        }
    }

    async fn register(&self, adverts: &Adverts) -> Result<Client, ClientError> {
        let (version, lists) = adverts.lists();
        let available = lists.available;
        let (ip, tailscale) = self.addresses().await;
        let w = &self.ctx.config.worker;
        let req = RegisterRequest {
            node_id: Some(self.ctx.node_id.clone()),
            hostname: system::hostname(),
            platform: system::platform().into(),
            arch: system::arch(),
            available_skills: available.clone(),
            ip_address: ip,
            tailscale_ip: tailscale,
            port: Some(w.port.unwrap_or_else(super::openclaw::local_gateway_port)),
            max_concurrent_tasks: Some(w.max_concurrent_tasks),
            tags: Some(w.tags.clone()),
            version: Some(env!("CARGO_PKG_VERSION").into()),
            unavailable_skills: Some(lists.unavailable),
            skill_digests: Some(lists.digests),
            ..Default::default()
        };
        let answer = match self.identity.secret() {
            Some(secret) => match self.join.with_token(Some(secret)).register(&req).await {
                // The coordinator does not know the kept secret (it lost its data, the node
                // was forgotten, or an admin rotated it): join as a new node.
                Err(e) if e.code() == Some(ErrorCode::Unauthorized) => {
                    self.identity.forget();
                    self.join.register(&req).await?
                }
                other => other?,
            },
            None => self.join.register(&req).await?,
        };
        self.identity.keep(&answer.node_secret);
        adverts.mark_sent(version);
        tracing::info!(
            target: "openclaw::worker",
            node_id = %answer.node_id, incarnation = answer.incarnation, skills = ?available,
            "registered with the coordinator"
        );
        Ok(self.join.with_token(Some(answer.node_secret)))
    }

    /// The address used to reach the coordinator, and a Tailscale address if any.
    async fn addresses(&self) -> (Option<String>, Option<String>) {
        let target = reqwest::Url::parse(&self.join.base())
            .ok()
            .and_then(|u| Some((u.host_str()?.trim_matches(['[', ']']).to_string(), u.port_or_known_default()?)));
        let ip = match target {
            Some((host, port)) => match tokio::net::lookup_host((host.as_str(), port)).await {
                Ok(mut addrs) => addrs.next().and_then(system::local_address_towards),
                Err(_) => None,
            },
            None => None,
        };
        let tailscale = tokio::task::spawn_blocking(system::tailscale_address).await.ok().flatten();
        (ip.map(|i| i.to_string()), tailscale.map(|i| i.to_string()))
    }

    /// Asks the heartbeat loop to heartbeat now rather than at its next interval (the
    /// coordinator said over a transport that it has news for this node, such as a cancel).
    /// Many asks before the heartbeat make one.
    pub fn heartbeat_now(&self) {
        self.nudge.notify_one();
    }

    /// Sleeps, waking early to register again or to leave.
    async fn pause(&self, d: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = self.lost.notified() => {}
            _ = self.ctx.leave.cancelled() => {}
        }
    }

    /// Sleeps until the next heartbeat is due, or [`Session::heartbeat_now`] asks for one
    /// (no sooner than [`MIN_HEARTBEAT_GAP`] after the last).
    async fn until_next_heartbeat(&self, d: Duration) {
        let started = tokio::time::Instant::now();
        tokio::select! {
            _ = self.pause(d) => {}
            _ = self.nudge.notified() => {
                tokio::time::sleep_until(started + MIN_HEARTBEAT_GAP.min(d)).await;
            }
        }
    }
}

/// A registration refusal that retrying cannot fix.
fn is_final(e: &ClientError) -> bool {
    matches!(
        e.code(),
        Some(
            ErrorCode::BadRequest
                | ErrorCode::Unauthorized
                | ErrorCode::Forbidden
                | ErrorCode::NodeIdInUse
                | ErrorCode::NodeLimit
        )
    )
}

/// The least time between two heartbeats when the coordinator asks for one early (a
/// flood of wake-ups costs the coordinator at most four heartbeats a second).
const MIN_HEARTBEAT_GAP: Duration = Duration::from_millis(250);

/// Registers (again when needed) and heartbeats until the worker leaves. The second
/// transport adds its part to each heartbeat (its part of the answer is read by
/// `attempts`).
pub async fn heartbeat_loop(
    session: Arc<Session>,
    attempts: Arc<Attempts>,
    adverts: Arc<Adverts>,
    transport: Arc<dyn CoordinatorTransport>,
    installer: Arc<super::skill_pushes::Installer>,
) {
    let ctx = session.ctx.clone();
    let interval = ctx.config.worker.heartbeat_interval.get();
    let skills_dir = ctx.config.worker.skills_dir.0.first().cloned().unwrap_or_else(|| PathBuf::from("."));
    let mut usage = tokio::task::spawn_blocking(move || system::Usage::new(&skills_dir)).await.ok();
    let mut register_failures = 0u32;
    while !ctx.leave.is_cancelled() {
        let client = match session.current() {
            Some(c) => c,
            None => match session.register(&adverts).await {
                Ok(c) => {
                    session.link_up();
                    register_failures = 0;
                    *lock(&session.current) = Some(c.clone());
                    session.ready.notify_waiters();
                    c
                }
                Err(e) if is_final(&e) => {
                    let hint = match e.code() {
                        Some(ErrorCode::BadRequest) => "fix the worker's configuration",
                        Some(ErrorCode::NodeIdInUse) => {
                            "another live worker (on another machine, or started with another worker.state_dir) owns this node id"
                        }
                        Some(ErrorCode::NodeLimit) => "the cluster is full",
                        _ => {
                            "the join token is wrong: use the worker.token from the coordinator's data folder (--token, OPENCLAW_TOKEN, worker.token in the config, or the worker.token file beside storage.path)"
                        }
                    };
                    ctx.fail(format!("the coordinator at {} refused this worker: {e}; {hint}", session.join.base()));
                    return;
                }
                Err(e) => {
                    session.link_down(&e);
                    register_failures += 1;
                    let delay =
                        crate::util::backoff(Duration::from_secs(1), Duration::from_secs(30), register_failures);
                    session.pause(delay).await;
                    continue;
                }
            },
        };
        let reading = match usage.take() {
            Some(mut u) => {
                let (u, r) = tokio::task::spawn_blocking(move || {
                    let r = u.read();
                    (u, r)
                })
                .await
                .map(|(u, r)| (Some(u), r))
                .unwrap_or((None, Default::default()));
                usage = u;
                r
            }
            None => Default::default(),
        };
        let (held, number) = attempts.heartbeat();
        let changed = adverts.unsent();
        let mut req = HeartbeatRequest {
            cpu_usage: reading.cpu,
            memory_usage: reading.memory,
            disk_usage: reading.disk,
            running_tasks: Some(held.len() as u32),
            held_tasks: Some(held),
            available_skills: changed.as_ref().map(|(_, l)| l.available.clone()),
            unavailable_skills: changed.as_ref().map(|(_, l)| l.unavailable.clone()),
            skill_digests: changed.as_ref().map(|(_, l)| l.digests.clone()),
            skill_installs: installer.take_reports(),
            ..Default::default()
        };
        if let Some(secret) = client.token() {
            transport.heartbeat(&mut req, secret);
        }
        match client.heartbeat(&ctx.node_id, &req).await {
            Ok(answer) => {
                session.link_up();
                if let Some((version, _)) = changed {
                    adverts.mark_sent(version);
                }
                attempts.heartbeat_answered(number, &answer);
                installer.desired(answer.skill_packages.as_ref());
                session.until_next_heartbeat(interval).await;
            }
            Err(e) if super::attempts::session_refused(&e) => {
                installer.put_back(std::mem::take(&mut req.skill_installs));
                session.drop_session(&format!("heartbeat refused: {e}"));
            }
            Err(e) if e.code() == Some(ErrorCode::BadRequest) => {
                // Something this worker sent is refused (its skills list, say): keep the
                // node alive without it, say why, and try the list again when it changes.
                // Without a list, it is the transport's part (an older coordinator).
                match changed {
                    Some((version, _)) => {
                        tracing::error!(target: "openclaw::worker", error = %e, "the coordinator refused a heartbeat; sending the next ones without the skills list");
                        adverts.mark_sent(version);
                    }
                    None if transport.heartbeat_refused() => {}
                    None => {
                        tracing::error!(target: "openclaw::worker", error = %e, "the coordinator refused a heartbeat")
                    }
                }
                session.pause(interval).await;
            }
            Err(e) => {
                installer.put_back(std::mem::take(&mut req.skill_installs));
                session.link_down(&e);
                // Retry at the heartbeat cadence so a restarted coordinator sees the
                // node again within a heartbeat or two.
                session.pause(crate::util::backoff(interval, interval, 1)).await;
            }
        }
    }
}
