//! The worker: joins the coordinator, advertises the skills this machine really has, runs
//! the tasks it is given and reports how they ended.
//!
//! Loops, all stopped through cancellation tokens and awaited on exit:
//! - session: register (join token → node secret), then heartbeat every
//!   `heartbeat_interval` with usage figures, the tasks held, and the skills when they
//!   changed. A 404 or a refused secret means "register again". The coordinator being away
//!   is never fatal: retries with backoff and jitter, one WARN when the link goes down and
//!   one INFO when it is back. A refused join token is fatal (exit 1).
//! - poll: long-polls for assignments while there is a free slot.
//! - skills: rescans the skills dirs every `skills_rescan_interval`.
//! - gateway: probes the local OpenClaw gateway every `gateway_check_interval` while there
//!   are agent skills; agent skills are advertised only while it can run turns.
//! - one task per running attempt: start report, run, result delivery (retried until the
//!   coordinator answers; a stale attempt's result is dropped).
//!
//! Shutdown: stop taking tasks, keep heartbeating while running ones finish (up to
//! `worker.shutdown_timeout`), kill what is left, tell the coordinator the node leaves.

pub mod exec;
pub mod gateway;
pub mod skills;
pub mod system;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::client::{Client, ClientError};
use crate::config::Config;
use crate::model::{Assignment, HeartbeatRequest, Outcome, PollRequest, RegisterRequest, ResultReport, TaskRef};
use gateway::{Availability, Gateway, TurnOutcome};
use skills::{Kind, Scan};

/// A registration that the coordinator accepted: a client carrying the node secret.
#[derive(Clone)]
struct Session {
    client: Client,
}

/// A task attempt in progress here.
struct Running {
    attempt: u32,
    cancel: CancellationToken,
    /// The coordinator asked for the cancel (as opposed to our own shutdown).
    told: Arc<AtomicBool>,
}

/// What this node advertises.
#[derive(Default)]
struct Advert {
    scan: Scan,
    advertised: Vec<String>,
    unavailable: BTreeMap<String, String>,
    /// The coordinator has the current lists.
    sent: bool,
    /// Problems already warned about.
    warned: HashSet<(PathBuf, String)>,
}

/// Whether the coordinator answers, for one log line per change.
#[derive(Debug, Clone, PartialEq)]
enum Link {
    Unknown,
    Up,
    Down,
}

/// Everything the worker's loops share. Std mutexes: held only for short synchronous
/// sections, never across an `.await`.
struct Worker {
    config: Config,
    node_id: String,
    url: String,
    join: Client,
    gateway: Gateway,
    session: Mutex<Option<Session>>,
    /// Wakes the session loop to register again at once.
    session_lost: Notify,
    /// Wakes the poll loop when a session exists.
    session_ready: Notify,
    running: Mutex<HashMap<String, Running>>,
    slot_freed: Notify,
    /// Wakes loops backing off when the coordinator answers again.
    link_restored: Notify,
    advert: Mutex<Advert>,
    gateway_state: Mutex<Availability>,
    link: Mutex<Link>,
    /// Cancelled on Ctrl+C / SIGTERM: take no new tasks.
    stop_taking: CancellationToken,
    /// Cancelled when the shutdown deadline passes: kill running tasks.
    kill_all: CancellationToken,
    /// Cancelled last: stop heartbeating.
    leave: CancellationToken,
    fatal: Mutex<Option<String>>,
    /// When this worker's secret was refused lately (see `taken_over`).
    takeovers: Mutex<Vec<Instant>>,
    tracker: TaskTracker,
}

/// How many times in a minute another registration may replace this worker's secret before
/// it concludes that two workers share its node id.
const TAKEOVERS: usize = 3;

/// An assignment's time limit (the coordinator validated it; a bad value falls back to 1 h).
fn attempt_timeout(a: &Assignment) -> Duration {
    Duration::try_from_secs_f64(a.timeout).unwrap_or(Duration::from_secs(3600))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs a worker until `shutdown` fires (or the coordinator refuses its token).
pub async fn run(config: Config, join_token: Option<String>, shutdown: CancellationToken) -> anyhow::Result<()> {
    let node_id = config
        .worker
        .node_id
        .clone()
        .unwrap_or_else(|| crate::coordinator::registry::node_id_from_hostname(&system::hostname()));
    let url = config.coordinator_url_for_clients();
    let worker = Arc::new(Worker {
        gateway: Gateway::from_config(&config),
        join: Client::new(&url, join_token, config.worker.ca_file.as_deref())?,
        node_id,
        url,
        session: Mutex::new(None),
        session_lost: Notify::new(),
        session_ready: Notify::new(),
        running: Mutex::new(HashMap::new()),
        slot_freed: Notify::new(),
        link_restored: Notify::new(),
        advert: Mutex::new(Advert::default()),
        gateway_state: Mutex::new(Availability::Unavailable("not checked yet".into())),
        link: Mutex::new(Link::Unknown),
        stop_taking: shutdown.clone(),
        kill_all: CancellationToken::new(),
        leave: CancellationToken::new(),
        fatal: Mutex::new(None),
        takeovers: Mutex::new(Vec::new()),
        tracker: TaskTracker::new(),
        config,
    });
    tracing::info!(target: "openclaw::worker", node_id = %worker.node_id, coordinator = %worker.url, "worker starting");
    worker.refresh_skills(true).await;

    let loops = vec![
        tokio::spawn(worker.clone().session_loop()),
        tokio::spawn(worker.clone().poll_loop()),
        tokio::spawn(worker.clone().skills_loop()),
        tokio::spawn(worker.clone().gateway_loop()),
    ];
    shutdown.cancelled().await;
    worker.wind_down().await;
    for handle in loops {
        let _ = handle.await;
    }
    if let Some(message) = lock(&worker.fatal).take() {
        anyhow::bail!(message);
    }
    tracing::info!(target: "openclaw::worker", "worker stopped");
    Ok(())
}

impl Worker {
    /// Graceful leave: running tasks get `shutdown_timeout`, then are killed; then the
    /// coordinator is told the node leaves.
    async fn wind_down(&self) {
        let fatal = lock(&self.fatal).is_some();
        let running = lock(&self.running).len();
        let limit = self.config.worker.shutdown_timeout.get();
        if !fatal {
            tracing::info!(target: "openclaw::worker", running, limit_s = limit.as_secs_f64(), "shutting down: taking no new tasks; running tasks may finish");
        }
        self.tracker.close();
        if tokio::time::timeout(limit, self.tracker.wait()).await.is_err() {
            tracing::warn!(target: "openclaw::worker", running = lock(&self.running).len(), "shutdown deadline passed: stopping the tasks still running");
            self.kill_all.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(15), self.tracker.wait()).await;
        }
        let session = lock(&self.session).clone();
        if let Some(s) = session
            && !fatal
        {
            match tokio::time::timeout(Duration::from_secs(5), s.client.shutdown_node(&self.node_id)).await {
                Ok(Ok(_)) => {
                    tracing::info!(target: "openclaw::worker", "told the coordinator this node is leaving")
                }
                Ok(Err(e)) => {
                    tracing::warn!(target: "openclaw::worker", error = %e, "could not tell the coordinator this node is leaving")
                }
                Err(_) => {
                    tracing::warn!(target: "openclaw::worker", "the coordinator did not answer the leave in time")
                }
            }
        }
        self.leave.cancel();
    }

    fn link_up(&self) {
        let mut link = lock(&self.link);
        match *link {
            Link::Down => {
                tracing::info!(target: "openclaw::worker", url = %self.url, "connected to the coordinator again");
                self.link_restored.notify_waiters();
            }
            Link::Unknown => {
                tracing::info!(target: "openclaw::worker", url = %self.url, "connected to the coordinator")
            }
            Link::Up => {}
        }
        *link = Link::Up;
    }

    fn link_down(&self, err: &ClientError) {
        let mut link = lock(&self.link);
        if *link != Link::Down {
            tracing::warn!(target: "openclaw::worker", url = %self.url, error = %err, "the coordinator is not answering; retrying with backoff (running tasks go on)");
        }
        *link = Link::Down;
    }

    fn session(&self) -> Option<Session> {
        lock(&self.session).clone()
    }

    /// The current session, waiting for a registration if there is none; `None` once
    /// `until` fires.
    async fn wait_for_session(&self, until: &CancellationToken) -> Option<Session> {
        loop {
            // Register for the wake-up before looking, so a registration in between is seen.
            let ready = self.session_ready.notified();
            tokio::pin!(ready);
            ready.as_mut().enable();
            if let Some(s) = self.session() {
                return Some(s);
            }
            tokio::select! {
                _ = ready => {}
                _ = until.cancelled() => return None,
            }
        }
    }

    fn drop_session(&self, why: &str) {
        if lock(&self.session).take().is_some() {
            tracing::info!(target: "openclaw::worker", reason = why, "registering again");
        }
        lock(&self.advert).sent = false;
        self.session_lost.notify_one();
    }

    fn held(&self) -> Vec<TaskRef> {
        lock(&self.running).iter().map(|(id, r)| TaskRef { task_id: id.clone(), attempt: r.attempt }).collect()
    }

    fn held_not_cancelling(&self) -> Vec<TaskRef> {
        lock(&self.running)
            .iter()
            .filter(|(_, r)| !r.told.load(Ordering::SeqCst))
            .map(|(id, r)| TaskRef { task_id: id.clone(), attempt: r.attempt })
            .collect()
    }

    /// Stops the attempts the coordinator no longer wants here.
    fn apply_cancels(&self, cancels: &[TaskRef]) {
        let running = lock(&self.running);
        for c in cancels {
            if let Some(r) = running.get(&c.task_id).filter(|r| r.attempt == c.attempt) {
                if !r.cancel.is_cancelled() {
                    tracing::info!(target: "openclaw::worker", task_id = %c.task_id, attempt = c.attempt, "the coordinator cancelled this task; stopping it");
                }
                r.told.store(true, Ordering::SeqCst);
                r.cancel.cancel();
            }
        }
    }

    async fn register(&self) -> Result<Session, ClientError> {
        let (available, unavailable) = {
            let a = lock(&self.advert);
            (a.advertised.clone(), a.unavailable.clone())
        };
        let (ip, tailscale) = self.addresses().await;
        let req = RegisterRequest {
            node_id: Some(self.node_id.clone()),
            hostname: system::hostname(),
            platform: system::platform().into(),
            arch: system::arch(),
            available_skills: available.clone(),
            ip_address: ip,
            tailscale_ip: tailscale,
            port: Some(self.config.worker.port),
            max_concurrent_tasks: Some(self.config.worker.max_concurrent_tasks),
            tags: Some(self.config.worker.tags.clone()),
            version: Some(env!("CARGO_PKG_VERSION").into()),
            unavailable_skills: Some(unavailable),
            ..Default::default()
        };
        let answer = self.join.register(&req).await?;
        lock(&self.advert).sent = true;
        tracing::info!(
            target: "openclaw::worker",
            node_id = %answer.node_id, incarnation = answer.incarnation, skills = ?available,
            "registered with the coordinator"
        );
        Ok(Session { client: self.join.with_token(Some(answer.node_secret)) })
    }

    /// The address used to reach the coordinator, and a Tailscale address if any.
    async fn addresses(&self) -> (Option<String>, Option<String>) {
        let target = reqwest::Url::parse(&self.url)
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

    async fn session_loop(self: Arc<Self>) {
        let interval = self.config.worker.heartbeat_interval.get();
        let skills_dir = self.config.worker.skills_dir.0.first().cloned().unwrap_or_else(|| PathBuf::from("."));
        let mut usage = tokio::task::spawn_blocking(move || system::Usage::new(&skills_dir)).await.ok();
        let mut register_failures = 0u32;
        while !self.leave.is_cancelled() {
            let session = match self.session() {
                Some(s) => s,
                None => match self.register().await {
                    Ok(s) => {
                        self.link_up();
                        register_failures = 0;
                        *lock(&self.session) = Some(s.clone());
                        self.session_ready.notify_waiters();
                        s
                    }
                    Err(e) if matches!(e.status(), Some(400 | 401 | 403 | 409)) => {
                        let hint = match e.status() {
                            Some(400) => "fix the worker's configuration",
                            Some(409) => "another running worker uses this node id",
                            _ => {
                                "the join token is wrong: use the worker.token from the coordinator's data folder (--token, OPENCLAW_TOKEN, worker.token in the config, or the worker.token file beside storage.path)"
                            }
                        };
                        let message = format!("the coordinator at {} refused this worker: {e}; {hint}", self.url);
                        tracing::error!(target: "openclaw::worker", "{message}");
                        *lock(&self.fatal) = Some(message);
                        self.stop_taking.cancel();
                        return;
                    }
                    Err(e) => {
                        self.link_down(&e);
                        register_failures += 1;
                        let delay =
                            crate::util::backoff(Duration::from_secs(1), Duration::from_secs(30), register_failures);
                        self.pause(delay).await;
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
            let held = self.held();
            let (skills, unavailable) = {
                let a = lock(&self.advert);
                if a.sent { (None, None) } else { (Some(a.advertised.clone()), Some(a.unavailable.clone())) }
            };
            let req = HeartbeatRequest {
                cpu_usage: reading.cpu,
                memory_usage: reading.memory,
                disk_usage: reading.disk,
                running_tasks: Some(held.len() as u32),
                held_tasks: Some(held),
                available_skills: skills.clone(),
                unavailable_skills: unavailable,
            };
            match session.client.heartbeat(&self.node_id, &req).await {
                Ok(answer) => {
                    self.link_up();
                    if skills.is_some() {
                        lock(&self.advert).sent = true;
                    }
                    self.apply_cancels(&answer.cancel);
                    self.pause(interval).await;
                }
                Err(e) if e.status() == Some(401) && self.taken_over() => {
                    let message = format!(
                        "node id `{}` keeps being registered by another worker (this one's secret was replaced {TAKEOVERS} times within a minute); give each worker its own --node-id",
                        self.node_id
                    );
                    tracing::error!(target: "openclaw::worker", "{message}");
                    *lock(&self.fatal) = Some(message);
                    self.stop_taking.cancel();
                    return;
                }
                Err(e) if matches!(e.status(), Some(401 | 403 | 404)) => {
                    self.drop_session(&format!("heartbeat refused: {e}"));
                }
                Err(e) if e.status() == Some(400) => {
                    // Something this worker sent is refused (its skills list, say): keep the
                    // node alive without it, say why, and try the list again when it changes.
                    tracing::error!(target: "openclaw::worker", error = %e, "the coordinator refused a heartbeat; sending the next ones without the skills list");
                    lock(&self.advert).sent = true;
                    self.pause(interval).await;
                }
                Err(e) => {
                    self.link_down(&e);
                    // Retry at the heartbeat cadence so a restarted coordinator sees the
                    // node again within a heartbeat or two.
                    self.pause(crate::util::backoff(interval, interval, 1)).await;
                }
            }
        }
    }

    /// Records that this worker's secret was refused (another registration replaced it) and
    /// says whether that happened TAKEOVERS times within a minute.
    fn taken_over(&self) -> bool {
        let mut times = lock(&self.takeovers);
        let now = Instant::now();
        times.retain(|t| now.duration_since(*t) < Duration::from_secs(60));
        times.push(now);
        times.len() >= TAKEOVERS
    }

    /// Sleeps, waking early to register again or to leave.
    async fn pause(&self, d: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = self.session_lost.notified() => {}
            _ = self.leave.cancelled() => {}
        }
    }

    async fn poll_loop(self: Arc<Self>) {
        let max = self.config.worker.max_concurrent_tasks as usize;
        let wait = self.config.coordinator.long_poll_timeout.get();
        let mut failures = 0u32;
        while !self.stop_taking.is_cancelled() {
            let Some(session) = self.wait_for_session(&self.stop_taking).await else { break };
            if lock(&self.running).len() >= max {
                tokio::select! {
                    _ = self.slot_freed.notified() => {}
                    _ = self.stop_taking.cancelled() => {}
                }
                continue;
            }
            // Tasks already told to stop are left out, or the coordinator would answer at once
            // with the same cancel again until their results are delivered.
            let req = PollRequest { held: self.held_not_cancelling(), wait_secs: Some(wait.as_secs_f64()) };
            let answer = tokio::select! {
                a = session.client.poll(&self.node_id, &req, wait) => a,
                _ = self.stop_taking.cancelled() => break,
            };
            match answer {
                Ok(answer) => {
                    failures = 0;
                    self.link_up();
                    self.apply_cancels(&answer.cancel);
                    for assignment in answer.assignments {
                        self.clone().take(assignment, &session);
                    }
                }
                Err(e) if matches!(e.status(), Some(401 | 403 | 404)) => {
                    self.drop_session(&format!("poll refused: {e}"));
                }
                Err(e) => {
                    self.link_down(&e);
                    failures += 1;
                    let delay = crate::util::backoff(Duration::from_secs(1), Duration::from_secs(30), failures);
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        // The heartbeat found the coordinator again: poll now, not after the backoff.
                        _ = self.link_restored.notified() => {}
                        _ = self.stop_taking.cancelled() => {}
                    }
                }
            }
        }
    }

    /// Accepts an assignment: records it as held and starts its task.
    fn take(self: Arc<Self>, a: Assignment, session: &Session) {
        let max = self.config.worker.max_concurrent_tasks as usize;
        let cancel = self.kill_all.child_token();
        let told = Arc::new(AtomicBool::new(false));
        {
            let mut running = lock(&self.running);
            if let Some(existing) = running.get(&a.task_id) {
                // A newer attempt of a task we still run: the old one must stop.
                existing.told.store(true, Ordering::SeqCst);
                existing.cancel.cancel();
            } else if running.len() >= max {
                drop(running);
                let report = ResultReport {
                    attempt: a.attempt,
                    outcome: Outcome::Failed,
                    result: None,
                    error: Some("the worker is full".into()),
                    duration_ms: 0,
                    retry_after: Some(1.0),
                };
                let worker = self.clone();
                self.tracker.spawn(async move { worker.deliver(&a.task_id, report).await });
                return;
            }
            running
                .insert(a.task_id.clone(), Running { attempt: a.attempt, cancel: cancel.clone(), told: told.clone() });
        }
        let session = session.clone();
        let worker = self.clone();
        self.tracker.spawn(async move {
            let id = a.task_id.clone();
            let attempt = a.attempt;
            worker.run_task(a, session, cancel, told).await;
            let mut running = lock(&worker.running);
            if running.get(&id).is_some_and(|r| r.attempt == attempt) {
                running.remove(&id);
            }
            drop(running);
            worker.slot_freed.notify_one();
        });
    }

    async fn run_task(&self, a: Assignment, session: Session, cancel: CancellationToken, told: Arc<AtomicBool>) {
        match session.client.report_start(&self.node_id, &a.task_id, a.attempt).await {
            Err(e) if matches!(e.status(), Some(404 | 409)) => {
                tracing::info!(target: "openclaw::worker", task_id = %a.task_id, error = %e, "the coordinator no longer wants this attempt; not running it");
                return;
            }
            // The coordinator may be away: run anyway and deliver the result later.
            _ => {}
        }
        tracing::info!(target: "openclaw::worker", task_id = %a.task_id, attempt = a.attempt, skill = %a.skill, "task started");
        let started = Instant::now();
        let skill = lock(&self.advert).scan.get(&a.skill).filter(|s| s.eligible).cloned();
        let report = match skill {
            None => {
                lock(&self.advert).sent = false;
                ResultReport {
                    attempt: a.attempt,
                    outcome: Outcome::Failed,
                    result: None,
                    error: Some(format!("skill `{}` is not available on node `{}` any more", a.skill, self.node_id)),
                    duration_ms: 0,
                    retry_after: Some(self.config.worker.heartbeat_interval.get().as_secs_f64()),
                }
            }
            Some(skill) => {
                let mut report = match &skill.kind {
                    Kind::Exec { argv } => self.run_exec(&a, argv.clone(), skill.path.clone(), cancel.clone()).await,
                    Kind::Agent => self.run_agent(&a, cancel.clone()).await,
                };
                if report.outcome == Outcome::Cancelled && !told.load(Ordering::SeqCst) {
                    report.outcome = Outcome::Failed;
                    report.error = Some(format!("node `{}` shut down before the task finished", self.node_id));
                }
                report
            }
        };
        let report = ResultReport { duration_ms: started.elapsed().as_millis() as u64, ..report };
        tracing::info!(
            target: "openclaw::worker",
            task_id = %a.task_id, attempt = a.attempt, outcome = ?report.outcome, error = report.error.as_deref().unwrap_or(""),
            "task ended"
        );
        self.deliver(&a.task_id, report).await;
    }

    async fn run_exec(
        &self,
        a: &Assignment,
        argv: Vec<String>,
        dir: PathBuf,
        cancel: CancellationToken,
    ) -> ResultReport {
        let stdin = serde_json::to_vec(&json!({
            "task_id": a.task_id, "attempt": a.attempt, "name": a.name, "parameters": a.parameters,
        }))
        .unwrap_or_default();
        let job = exec::Job {
            argv,
            dir,
            stdin,
            env: vec![
                ("OPENCLAW_TASK_ID".into(), a.task_id.clone()),
                ("OPENCLAW_NODE_ID".into(), self.node_id.clone()),
                ("OPENCLAW_SKILL".into(), a.skill.clone()),
                ("OPENCLAW_ATTEMPT".into(), a.attempt.to_string()),
            ],
            timeout: attempt_timeout(a),
            max_output: self.config.worker.max_output_bytes,
        };
        let (outcome, result, error) = match exec::run(job, cancel).await {
            exec::Ending::Completed(v) => (Outcome::Completed, Some(v), None),
            exec::Ending::Failed { error, detail } => (Outcome::Failed, Some(detail), Some(error)),
            exec::Ending::TimedOut { error, detail } => (Outcome::Timeout, Some(detail), Some(error)),
            exec::Ending::Cancelled => {
                (Outcome::Cancelled, None, Some("cancelled; the process tree was stopped".into()))
            }
        };
        ResultReport { attempt: a.attempt, outcome, result, error, duration_ms: 0, retry_after: None }
    }

    async fn run_agent(&self, a: &Assignment, cancel: CancellationToken) -> ResultReport {
        let prompt = match a.parameters.get("prompt") {
            Some(Value::String(p)) if !p.trim().is_empty() => p.clone(),
            _ if !a.description.trim().is_empty() => a.description.clone(),
            _ => a.name.clone(),
        };
        let others: Vec<String> = a.required_skills.iter().filter(|s| **s != a.skill).cloned().collect();
        let timeout = attempt_timeout(a);
        let turn = tokio::select! {
            t = self.gateway.turn(&a.skill, &others, &prompt, timeout) => t,
            _ = cancel.cancelled() => {
                return ResultReport { attempt: a.attempt, outcome: Outcome::Cancelled, result: None, error: Some("cancelled".into()), duration_ms: 0, retry_after: None };
            }
        };
        let base = ResultReport {
            attempt: a.attempt,
            outcome: Outcome::Failed,
            result: None,
            error: None,
            duration_ms: 0,
            retry_after: None,
        };
        match turn {
            TurnOutcome::Answer { text, model } => ResultReport {
                outcome: Outcome::Completed,
                result: Some(json!({ "text": text, "model": model })),
                ..base
            },
            TurnOutcome::RateLimited { retry_after, message } => {
                ResultReport { error: Some(message), retry_after: Some(retry_after.as_secs_f64()), ..base }
            }
            TurnOutcome::Disabled(message) => {
                *lock(&self.gateway_state) = Availability::Unavailable(message.clone());
                self.recompute_advert();
                ResultReport { error: Some(message), retry_after: Some(1.0), ..base }
            }
            TurnOutcome::Failed(message) => ResultReport { error: Some(message), ..base },
            TurnOutcome::TimedOut => ResultReport {
                outcome: Outcome::Timeout,
                error: Some(format!(
                    "the agent did not answer within the task's timeout ({})",
                    crate::util::short_duration(timeout)
                )),
                ..base
            },
        }
    }

    /// Delivers a result until the coordinator takes it (or refuses it as stale). Gives up
    /// only when the worker leaves.
    async fn deliver(&self, task_id: &str, mut report: ResultReport) {
        let mut failures = 0u32;
        loop {
            let Some(session) = self.wait_for_session(&self.leave).await else { return };
            match session.client.report_result(&self.node_id, task_id, &report).await {
                Ok(_) => return,
                Err(e) if matches!(e.status(), Some(404 | 409)) => {
                    tracing::warn!(target: "openclaw::worker", task_id, error = %e, "the coordinator refused this result (the attempt was given to another node or ended); dropping it");
                    return;
                }
                // Refused for what it is (too large, malformed): sending it again cannot
                // help. Report the attempt as failed with the reason, once, without the result.
                Err(e) if matches!(e.status(), Some(400 | 413 | 422)) && report.result.is_some() => {
                    tracing::warn!(target: "openclaw::worker", task_id, error = %e, "the coordinator refused this result; reporting the attempt as failed instead");
                    let why = match e.status() {
                        Some(413) => format!(
                            "the result is larger than the coordinator accepts (coordinator.max_body_bytes): {e}"
                        ),
                        _ => format!("the coordinator refused the result: {e}"),
                    };
                    report = ResultReport {
                        attempt: report.attempt,
                        outcome: Outcome::Failed,
                        result: None,
                        error: Some(why),
                        duration_ms: report.duration_ms,
                        retry_after: None,
                    };
                }
                Err(e) if matches!(e.status(), Some(400 | 413 | 422)) => {
                    tracing::error!(target: "openclaw::worker", task_id, error = %e, "the coordinator refused even a bare result report; dropping it");
                    return;
                }
                Err(e) => {
                    if matches!(e.status(), Some(401 | 403)) {
                        self.drop_session(&format!("result refused: {e}"));
                    } else {
                        self.link_down(&e);
                    }
                    failures += 1;
                    let delay = crate::util::backoff(Duration::from_millis(500), Duration::from_secs(30), failures);
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = self.leave.cancelled() => {
                            tracing::warn!(target: "openclaw::worker", task_id, "leaving before the coordinator took this result; it will run again elsewhere");
                            return;
                        }
                    }
                }
            }
        }
    }

    async fn skills_loop(self: Arc<Self>) {
        let every = self.config.worker.skills_rescan_interval.get();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = self.leave.cancelled() => return,
            }
            self.refresh_skills(false).await;
        }
    }

    /// Rescans the skills dirs (and at the first call, probes the gateway).
    async fn refresh_skills(&self, first: bool) {
        let dirs = self.config.worker.skills_dir.0.clone();
        let Ok(scan) = tokio::task::spawn_blocking(move || skills::scan(&dirs, &skills::Host::current())).await else {
            return;
        };
        {
            let mut a = lock(&self.advert);
            for p in &scan.problems {
                if a.warned.insert((p.path.clone(), p.error.clone())) {
                    tracing::warn!(target: "openclaw::worker", file = %p.path.display(), error = %p.error, "skipping a skill that does not parse");
                }
            }
            a.scan = scan;
        }
        if first {
            self.probe_gateway().await;
        }
        self.recompute_advert();
    }

    /// Works out what to advertise from the scan and the gateway's state.
    fn recompute_advert(&self) {
        let gateway = lock(&self.gateway_state).clone();
        let mut a = lock(&self.advert);
        let mut advertised = Vec::new();
        let mut unavailable = BTreeMap::new();
        for s in a.scan.skills.iter().filter(|s| s.eligible) {
            match (&s.kind, &gateway) {
                (Kind::Exec { .. }, _) | (Kind::Agent, Availability::Ready) => advertised.push(s.name.clone()),
                (Kind::Agent, Availability::Unavailable(why)) => {
                    unavailable.insert(s.name.clone(), why.clone());
                }
            }
        }
        advertised.sort();
        if advertised.len() > crate::model::MAX_SKILLS {
            tracing::warn!(target: "openclaw::worker", found = advertised.len(), "more eligible skills than a node may advertise; advertising the first {}", crate::model::MAX_SKILLS);
            advertised.truncate(crate::model::MAX_SKILLS);
        }
        if advertised != a.advertised || unavailable != a.unavailable {
            tracing::info!(target: "openclaw::worker", skills = ?advertised, unavailable = ?unavailable.keys().collect::<Vec<_>>(), "advertised skills changed");
            a.advertised = advertised;
            a.unavailable = unavailable;
            a.sent = false;
        }
    }

    async fn probe_gateway(&self) {
        let state = self.gateway.probe().await;
        let mut current = lock(&self.gateway_state);
        if *current != state {
            match &state {
                Availability::Ready => {
                    tracing::info!(target: "openclaw::worker", gateway = %self.gateway.url(), "the OpenClaw gateway can run agent tasks")
                }
                Availability::Unavailable(why) => {
                    tracing::warn!(target: "openclaw::worker", gateway = %self.gateway.url(), reason = %why, "agent skills are unavailable")
                }
            }
            *current = state;
        }
    }

    async fn gateway_loop(self: Arc<Self>) {
        let every = self.config.worker.gateway_check_interval.get();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = self.leave.cancelled() => return,
            }
            let has_agent_skills = lock(&self.advert).scan.skills.iter().any(|s| s.kind == Kind::Agent && s.eligible);
            if has_agent_skills {
                self.probe_gateway().await;
                self.recompute_advert();
            }
        }
    }
}
