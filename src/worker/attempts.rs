//! The attempts this worker holds: the HTTP poll loop that takes them, one task per
//! attempt (start report, its runner, result delivery), and the results on their way.
//!
//! Owns the held attempts, in two sets under one lock: *running* (received, starting or
//! running: each takes a slot of `worker.max_concurrent_tasks`) and *delivering* (ended,
//! the result not yet known to be with the coordinator: no slot). An attempt moves from
//! one to the other under the lock, so every heartbeat's held list has it until the
//! coordinator has its result. The poll loop long-polls while a slot is free; each
//! accepted assignment gets a task that reports the start, runs the skill with its
//! runner ([`super::runner`]), and delivers the result until the coordinator takes it (or
//! refuses it as stale). What the attempt prints streams to the coordinator while it runs
//! ([`super::live_output`]); its last lines go before the result, and the secrets this
//! worker knows are redacted from both, the attempt's cluster secrets too. Those values
//! come only with the answer to the start report (an attempt that uses secrets does not
//! run without it) and live no longer than the attempt's task. A cancel from the coordinator (in a poll or
//! heartbeat answer) stops the attempt's runner. Start reports and results go through
//! [`super::reports`], batched with other attempts' reports and answered each on its own,
//! so every rule here holds per attempt as with one request each.
//!
//! With a second transport ([`super::transport`]), assignments may also come from there
//! ([`Attempts::take_confirmed`]: run only once the start report is accepted), the poll
//! pauses while they do, and results go there first. A result the transport took is
//! delivered once the coordinator confirms it (a cancel of that attempt in a heartbeat or
//! poll answer, meaning "not active here any more"); after two heartbeat answers to
//! heartbeats sent after it was taken, without that, it is sent over HTTP as well. Each
//! (task, attempt) is held once, whichever door brought it.
//!
//! Locking: one std mutex over the held attempts, never held across `.await`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::adverts::Adverts;
use super::reports::Reporter;
use super::runner::{Attempt, Runners, failed};
use super::session::Session;
use super::transport::{CoordinatorTransport, Taken, Wake};
use super::{Context, live_output};
use crate::client::{Client, ClientError};
use crate::model::{Assignment, ErrorCode, Outcome, PollRequest, ResultReport, SecretValues, TaskRef};
use crate::util::lock;

/// A task attempt in progress here.
struct Running {
    attempt: u32,
    cancel: CancellationToken,
    /// The coordinator asked for the cancel (as opposed to our own shutdown).
    told: Arc<AtomicBool>,
}

/// A result on its way to the coordinator.
struct Delivering {
    attempt: u32,
    /// Fired when the coordinator says the attempt is no longer active here: it has the
    /// result (or does not want it any more).
    confirmed: Arc<Notify>,
}

/// The attempts held here.
#[derive(Default)]
struct Held {
    running: HashMap<String, Running>,
    delivering: HashMap<String, Delivering>,
}

/// The held attempts and what runs them.
pub struct Attempts {
    ctx: Arc<Context>,
    session: Arc<Session>,
    adverts: Arc<Adverts>,
    runners: Runners,
    /// A std mutex: short sections only.
    held: Mutex<Held>,
    /// Wakes the poll loop when an attempt ends.
    slot_freed: Notify,
    /// Every attempt's task (and result deliveries), awaited on shutdown.
    tracker: TaskTracker,
    /// The second transport ([`super::transport::HttpOnly`] when none is configured).
    transport: Arc<dyn CoordinatorTransport>,
    /// Start reports and results over HTTP, batched.
    reporter: Arc<Reporter>,
    /// Heartbeats sent so far (a heartbeat's number is its place in this count).
    heartbeats_sent: AtomicU64,
    /// The number of the last heartbeat answered: results the transport took count the
    /// answers to heartbeats sent after them.
    answered: watch::Sender<u64>,
}

impl Attempts {
    pub fn new(
        ctx: Arc<Context>,
        session: Arc<Session>,
        adverts: Arc<Adverts>,
        runners: Runners,
        transport: Arc<dyn CoordinatorTransport>,
    ) -> Attempts {
        Attempts {
            reporter: Reporter::new(ctx.node_id.clone()),
            ctx,
            session,
            adverts,
            runners,
            held: Mutex::new(Held::default()),
            slot_freed: Notify::new(),
            tracker: TaskTracker::new(),
            transport,
            heartbeats_sent: AtomicU64::new(0),
            answered: watch::channel(0).0,
        }
    }

    /// Waits for a free slot; answers how many are free (`None` once `until` fires).
    pub async fn free_slot(&self, until: &CancellationToken) -> Option<usize> {
        let max = self.ctx.config.worker.max_concurrent_tasks as usize;
        loop {
            let freed = self.slot_freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            let running = self.running();
            if running < max {
                return Some(max - running);
            }
            tokio::select! {
                _ = freed => {}
                _ = until.cancelled() => return None,
            }
        }
    }

    /// How many attempts run now.
    pub fn running(&self) -> usize {
        lock(&self.held).running.len()
    }

    /// Waits up to `limit` for every attempt (and delivery) to end; true when they did.
    /// Takes no new ones from then on.
    pub async fn finish(&self, limit: Duration) -> bool {
        self.tracker.close();
        tokio::time::timeout(limit, self.tracker.wait()).await.is_ok()
    }

    /// For a heartbeat about to be sent: the attempts held here (received, starting,
    /// running, or with a result on its way), and the heartbeat's number.
    pub fn heartbeat(&self) -> (Vec<TaskRef>, u64) {
        let held = lock(&self.held);
        let number = self.heartbeats_sent.fetch_add(1, Ordering::SeqCst) + 1;
        let refs = held
            .running
            .iter()
            .map(|(id, r)| TaskRef { task_id: id.clone(), attempt: r.attempt })
            .chain(held.delivering.iter().map(|(id, d)| TaskRef { task_id: id.clone(), attempt: d.attempt }))
            .collect();
        (refs, number)
    }

    /// The answer to heartbeat `number`: its cancels, and its part for the transport.
    pub fn heartbeat_answered(&self, number: u64, answer: &crate::model::HeartbeatResponse) {
        self.apply_cancels(&answer.cancel);
        self.adverts.set_cluster_secrets(&answer.secrets);
        self.transport.heartbeat_answer(answer);
        self.answered.send_if_modified(|last| std::mem::replace(last, number.max(*last)) < number);
    }

    /// What the poll tells the coordinator it holds. Running attempts already told to stop
    /// are left out, or the coordinator would answer at once with the same cancel again.
    fn held_for_poll(&self) -> Vec<TaskRef> {
        let held = lock(&self.held);
        held.running
            .iter()
            .filter(|(_, r)| !r.told.load(Ordering::SeqCst))
            .map(|(id, r)| TaskRef { task_id: id.clone(), attempt: r.attempt })
            .chain(held.delivering.iter().map(|(id, d)| TaskRef { task_id: id.clone(), attempt: d.attempt }))
            .collect()
    }

    /// Stops the attempts the coordinator no longer wants here; a result on its way for
    /// such an attempt is with the coordinator (or no longer wanted): delivered.
    pub fn apply_cancels(&self, cancels: &[TaskRef]) {
        let held = lock(&self.held);
        for c in cancels {
            if let Some(r) = held.running.get(&c.task_id).filter(|r| r.attempt == c.attempt) {
                if !r.cancel.is_cancelled() {
                    tracing::info!(target: "openclaw::worker", task_id = %c.task_id, attempt = c.attempt, "the coordinator cancelled this task; stopping it");
                }
                r.told.store(true, Ordering::SeqCst);
                r.cancel.cancel();
            }
            if let Some(d) = held.delivering.get(&c.task_id).filter(|d| d.attempt == c.attempt) {
                d.confirmed.notify_one();
            }
        }
    }

    /// Accepts an assignment from the HTTP poll: records it as held and starts its task.
    fn take(self: &Arc<Self>, a: Assignment, client: &Client) {
        self.accept(a, client, None);
    }

    /// Accepts an assignment from the second transport: it runs only once the coordinator
    /// accepts its start report; the answer says what became of it.
    pub fn take_confirmed(self: &Arc<Self>, a: Assignment, client: &Client) -> oneshot::Receiver<Taken> {
        let (tx, rx) = oneshot::channel();
        self.accept(a, client, Some(tx));
        rx
    }

    fn accept(self: &Arc<Self>, a: Assignment, client: &Client, confirm: Option<oneshot::Sender<Taken>>) {
        let max = self.ctx.config.worker.max_concurrent_tasks as usize;
        let cancel = self.ctx.kill_all.child_token();
        let told = Arc::new(AtomicBool::new(false));
        {
            let mut held = lock(&self.held);
            let delivered = held.delivering.get(&a.task_id).map(|d| d.attempt);
            if let Some(existing) = held.running.get(&a.task_id).map(|r| r.attempt).max(delivered)
                && existing >= a.attempt
            {
                // Held already (both doors brought it), or an older attempt.
                if let Some(c) = confirm {
                    let _ = c.send(if existing == a.attempt { Taken::Held } else { Taken::Refused });
                }
                return;
            }
            if let Some(existing) = held.running.get(&a.task_id) {
                // A newer attempt of a task we still run: the old one must stop.
                existing.told.store(true, Ordering::SeqCst);
                existing.cancel.cancel();
            } else if held.running.len() >= max {
                if let Some(c) = confirm {
                    let _ = c.send(Taken::Full);
                    return;
                }
                drop(held);
                let report = ResultReport { retry_after: Some(1.0), ..failed(a.attempt, "the worker is full".into()) };
                let this = self.clone();
                self.tracker.spawn(async move { this.deliver(&a.task_id, report).await });
                return;
            }
            held.running
                .insert(a.task_id.clone(), Running { attempt: a.attempt, cancel: cancel.clone(), told: told.clone() });
        }
        let client = client.clone();
        let this = self.clone();
        self.tracker.spawn(async move {
            let (id, attempt) = (a.task_id.clone(), a.attempt);
            if let Some(report) = this.run_attempt(a, client, cancel, told, confirm).await {
                this.deliver(&id, report).await;
            } else {
                this.release(&id, attempt);
            }
        });
    }

    /// The attempt no longer runs here (nothing to deliver): its slot is free.
    fn release(&self, task_id: &str, attempt: u32) {
        let mut held = lock(&self.held);
        if held.running.get(task_id).is_some_and(|r| r.attempt == attempt) {
            held.running.remove(task_id);
        }
        drop(held);
        self.slot_freed.notify_one();
    }

    /// Reports the start, runs the attempt; its report, or `None` when it did not run.
    async fn run_attempt(
        &self,
        a: Assignment,
        client: Client,
        cancel: CancellationToken,
        told: Arc<AtomicBool>,
        confirm: Option<oneshot::Sender<Taken>>,
    ) -> Option<ResultReport> {
        let node_id = &self.ctx.node_id;
        let carried = confirm.is_some();
        let answer = |taken| {
            if let Some(c) = confirm {
                let _ = c.send(taken);
            }
        };
        let mut secrets = SecretValues::default();
        match self.reporter.start(&client, &a.task_id, a.attempt).await {
            Err(e) if matches!(e.code(), Some(ErrorCode::UnknownTask | ErrorCode::StaleAttempt)) => {
                tracing::info!(target: "openclaw::worker", task_id = %a.task_id, error = %e, "the coordinator no longer wants this attempt; not running it");
                answer(Taken::Refused);
                return None;
            }
            // From a transport, a message may be an old one delivered again: run only what
            // the coordinator confirms.
            Err(e) if carried => {
                tracing::debug!(target: "openclaw::worker", task_id = %a.task_id, error = %e, "cannot report the start of an assignment that came over the transport; it will come again");
                answer(Taken::Unreachable);
                return None;
            }
            // Its secrets come only with the answer: without one, it cannot run yet.
            Err(e) if !a.secrets.is_empty() => {
                tracing::info!(target: "openclaw::worker", task_id = %a.task_id, error = %e, "cannot report the start of a task that uses secrets (their values come with the answer); it will be handed out again");
                answer(Taken::Unreachable);
                return None;
            }
            // The coordinator may be away: run anyway and deliver the result later.
            Err(_) => answer(Taken::Started),
            Ok(started) => {
                secrets = started.secrets;
                answer(Taken::Started);
            }
        }
        let via = if carried { self.transport.name() } else { "http" };
        tracing::info!(target: "openclaw::worker", task_id = %a.task_id, attempt = a.attempt, skill = %a.skill, via, "task started");
        let started = Instant::now();
        let report = match self.adverts.skill(&a.skill) {
            None => {
                self.adverts.resend();
                ResultReport {
                    retry_after: Some(self.ctx.config.worker.heartbeat_interval.get().as_secs_f64()),
                    ..failed(a.attempt, format!("skill `{}` is not available on node `{node_id}` any more", a.skill))
                }
            }
            Some(skill) => {
                let (report, redactor) = self
                    .with_output(&a, &secrets, |output| {
                        let config = &self.ctx.config;
                        let cancel = cancel.clone();
                        let secrets = &secrets;
                        self.runners.run(Attempt {
                            assignment: &a,
                            skill: &skill,
                            node_id,
                            config,
                            cancel,
                            output,
                            secrets,
                        })
                    })
                    .await;
                let mut report = ResultReport {
                    result: report.result.map(|r| redactor.redact_json(r)),
                    error: report.error.map(|e| redactor.redact(&e).into_owned()),
                    ..report
                };
                // The skill says this exit code means retrying cannot help.
                let code = report.result.as_ref().and_then(|r| r.get("exit_code")).and_then(|c| c.as_i64());
                if report.outcome == Outcome::Failed
                    && code.is_some_and(|c| skill.permanent_exit_codes.contains(&(c as i32)))
                {
                    report.permanent = true;
                }
                if report.outcome == Outcome::Cancelled && !told.load(Ordering::SeqCst) {
                    report.outcome = Outcome::Failed;
                    report.error = Some(format!("node `{node_id}` shut down before the task finished"));
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
        Some(report)
    }

    /// Runs `work` with a sink for the attempt's output, which streams to the coordinator
    /// (redacted) while it runs. `work` drops the sink when it ends; the last lines are sent
    /// before this returns, so before the result is delivered. Also returns the redactor,
    /// for the result.
    async fn with_output<T, F: Future<Output = T>>(
        &self,
        a: &Assignment,
        secrets: &SecretValues,
        work: impl FnOnce(live_output::OutputSink) -> F,
    ) -> (T, live_output::Redactor) {
        let (sink, lines) = live_output::OutputSink::new();
        let redactor = live_output::known_secrets(&self.ctx.config, &self.session, self.runners.gateway())
            .with(secrets.0.values().cloned());
        let (done, ()) = tokio::join!(
            work(sink),
            live_output::stream(&self.session, &self.ctx.node_id, &a.task_id, a.attempt, lines, redactor.clone()),
        );
        (done, redactor)
    }

    /// Delivers a result until the coordinator has it (or refuses it as stale); gives up
    /// only when the worker leaves. The attempt is held as delivering meanwhile, without a
    /// slot: it leaves the running set (if it was there) in the same step.
    async fn deliver(&self, task_id: &str, report: ResultReport) {
        let confirmed = Arc::new(Notify::new());
        {
            let mut held = lock(&self.held);
            if held.running.get(task_id).is_some_and(|r| r.attempt == report.attempt) {
                held.running.remove(task_id);
            }
            held.delivering
                .insert(task_id.into(), Delivering { attempt: report.attempt, confirmed: confirmed.clone() });
        }
        self.slot_freed.notify_one();
        self.deliver_until_taken(task_id, report, &confirmed).await;
        let mut held = lock(&self.held);
        if held.delivering.get(task_id).is_some_and(|d| Arc::ptr_eq(&d.confirmed, &confirmed)) {
            held.delivering.remove(task_id);
        }
    }

    async fn deliver_until_taken(&self, task_id: &str, mut report: ResultReport, confirmed: &Notify) {
        let mut failures = 0u32;
        let mut tried_transport = false;
        loop {
            if !tried_transport && let Some(secret) = self.session.current().and_then(|c| c.token().map(str::to_string))
            {
                let after = self.heartbeats_sent.load(Ordering::SeqCst);
                if self.transport.send_result(task_id, &report, &secret).await {
                    tried_transport = true;
                    match self.confirmation(after, confirmed).await {
                        Confirmation::Confirmed | Confirmation::Leaving => return,
                        Confirmation::NotYet => {
                            tracing::info!(target: "openclaw::worker", task_id, attempt = report.attempt, "the coordinator has not confirmed this result after two heartbeats; sending it over HTTP too");
                        }
                    }
                }
            }
            let Some(client) = self.session.wait(&self.ctx.leave).await else { return };
            let sent = tokio::select! {
                sent = self.reporter.result(&client, task_id, &report) => sent,
                // The coordinator has it already (it came the other way too).
                _ = confirmed.notified() => return,
            };
            match sent {
                Ok(_) => return,
                Err(e) if matches!(e.code(), Some(ErrorCode::UnknownTask | ErrorCode::StaleAttempt)) => {
                    tracing::warn!(target: "openclaw::worker", task_id, error = %e, "the coordinator refused this result (the attempt was given to another node or ended); dropping it");
                    return;
                }
                // Refused for what it is (too large, malformed): sending it again cannot
                // help. Report the attempt as failed with the reason, once, without the result.
                Err(e) if refused_as_sent(&e) && report.result.is_some() => {
                    tracing::warn!(target: "openclaw::worker", task_id, error = %e, "the coordinator refused this result; reporting the attempt as failed instead");
                    let why = match e.code() {
                        Some(ErrorCode::PayloadTooLarge) => format!(
                            "the result is larger than the coordinator accepts (coordinator.max_body_bytes): {e}"
                        ),
                        _ => format!("the coordinator refused the result: {e}"),
                    };
                    report = ResultReport { duration_ms: report.duration_ms, ..failed(report.attempt, why) };
                }
                Err(e) if refused_as_sent(&e) => {
                    tracing::error!(target: "openclaw::worker", task_id, error = %e, "the coordinator refused even a bare result report; dropping it");
                    return;
                }
                Err(e) => {
                    if matches!(e.code(), Some(ErrorCode::Unauthorized | ErrorCode::Forbidden)) {
                        self.session.drop_session(&format!("result refused: {e}"));
                    } else {
                        self.session.link_down(&e);
                    }
                    failures += 1;
                    let delay = crate::util::backoff(Duration::from_millis(500), Duration::from_secs(30), failures);
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = confirmed.notified() => return,
                        _ = self.ctx.leave.cancelled() => {
                            tracing::warn!(target: "openclaw::worker", task_id, "leaving before the coordinator took this result; it will run again elsewhere");
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Waits for the coordinator to confirm a result the transport took: a cancel of its
    /// attempt, or two answers to heartbeats sent after heartbeat `after` without one.
    async fn confirmation(&self, after: u64, confirmed: &Notify) -> Confirmation {
        let mut answered = self.answered.subscribe();
        let enough = async {
            let mut seen = 0;
            loop {
                if *answered.borrow_and_update() > after {
                    seen += 1;
                    if seen >= 2 {
                        return;
                    }
                }
                if answered.changed().await.is_err() {
                    return std::future::pending().await;
                }
            }
        };
        tokio::select! {
            _ = confirmed.notified() => Confirmation::Confirmed,
            _ = enough => Confirmation::NotYet,
            _ = self.ctx.leave.cancelled() => Confirmation::Leaving,
        }
    }
}

/// How waiting for the coordinator's confirmation of a result ended.
enum Confirmation {
    Confirmed,
    NotYet,
    Leaving,
}

/// Refused for what it is (malformed, too large): sending it again cannot help.
fn refused_as_sent(e: &ClientError) -> bool {
    matches!(e.code(), Some(ErrorCode::BadRequest | ErrorCode::PayloadTooLarge))
}

/// The coordinator no longer knows this registration: register again.
pub fn session_refused(e: &ClientError) -> bool {
    matches!(e.code(), Some(ErrorCode::Unauthorized | ErrorCode::Forbidden | ErrorCode::UnknownNode))
}

/// Long-polls for assignments while a slot is free, until the worker stops taking tasks.
pub async fn poll_loop(attempts: Arc<Attempts>) {
    let ctx = attempts.ctx.clone();
    let max = ctx.config.worker.max_concurrent_tasks as usize;
    let long_poll = ctx.config.coordinator.long_poll_timeout.get();
    let mut failures = 0u32;
    while !ctx.stop_taking.is_cancelled() {
        let mut wait = long_poll;
        if attempts.transport.carries_assignments() {
            // Assignments come over the transport: poll only when that stops, or for one
            // it could not carry.
            let wake = tokio::select! {
                w = attempts.transport.paused() => w,
                _ = ctx.stop_taking.cancelled() => break,
            };
            if wake == Wake::Http {
                continue;
            }
            wait = Duration::ZERO;
        }
        let Some(client) = attempts.session.wait(&ctx.stop_taking).await else { break };
        if attempts.running() >= max {
            tokio::select! {
                _ = attempts.slot_freed.notified() => {}
                _ = ctx.stop_taking.cancelled() => {}
            }
            continue;
        }
        let req = PollRequest { held: attempts.held_for_poll(), wait_secs: Some(wait.as_secs_f64()) };
        let answer = tokio::select! {
            a = client.poll(&ctx.node_id, &req, wait) => a,
            // Assignments come over the transport from now on: stop waiting here (what
            // this poll would have handed out is scheduled still, and published there).
            _ = attempts.transport.activated(), if !wait.is_zero() => continue,
            _ = ctx.stop_taking.cancelled() => break,
        };
        match answer {
            Ok(answer) => {
                failures = 0;
                attempts.session.link_up();
                attempts.apply_cancels(&answer.cancel);
                for assignment in answer.assignments {
                    attempts.take(assignment, &client);
                }
            }
            Err(e) if session_refused(&e) => {
                attempts.session.drop_session(&format!("poll refused: {e}"));
            }
            Err(e) => {
                attempts.session.link_down(&e);
                failures += 1;
                let delay = crate::util::backoff(Duration::from_secs(1), Duration::from_secs(30), failures);
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    // The heartbeat found the coordinator again: poll now, not after the backoff.
                    _ = attempts.session.restored() => {}
                    _ = ctx.stop_taking.cancelled() => {}
                }
            }
        }
    }
}
