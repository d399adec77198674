//! Taking and running tasks: the poll loop, one task per running attempt, and result
//! delivery.
//!
//! Owns the running attempts. The poll loop long-polls while a slot is free; each accepted
//! assignment gets a task that reports the start, runs the skill (exec or agent runner),
//! and delivers the result until the coordinator takes it (or refuses it as stale). An exec
//! attempt streams what it prints to the coordinator while it runs ([`output`]); its last
//! lines go before the result, and the secrets this worker knows are redacted from both. A
//! cancel from the coordinator (in a poll or heartbeat answer) stops the attempt's runner.
//! With NATS configured (`crate::transport::nats::worker`), assignments may also come from
//! there ([`Dispatch::take_confirmed`]: run only once the start report is accepted), the
//! poll pauses while they do, and results go there first, HTTP being the fallback. Each
//! (task, attempt) is held once, whichever door brought it.
//!
//! Locking: one std mutex over the running attempts, never held across `.await`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::{Notify, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::adverts::Adverts;
use super::gateway::Gateway;
use super::session::Session;
use super::skills::Kind;
use super::{Context, agent, exec, output};
use crate::client::{Client, ClientError};
use crate::model::{Assignment, ErrorCode, Outcome, PollRequest, ResultReport, TaskRef};
use crate::transport::nats::worker::{Wake, WorkerNats};
use crate::util::lock;

/// A task attempt in progress here.
struct Running {
    attempt: u32,
    cancel: CancellationToken,
    /// The coordinator asked for the cancel (as opposed to our own shutdown).
    told: Arc<AtomicBool>,
}

/// The running attempts and what runs them.
pub struct Dispatch {
    ctx: Arc<Context>,
    session: Arc<Session>,
    adverts: Arc<Adverts>,
    gateway: Gateway,
    running: Mutex<HashMap<String, Running>>,
    /// Wakes the poll loop when an attempt ends.
    slot_freed: Notify,
    /// Every attempt's task (and result deliveries), awaited on shutdown.
    tracker: TaskTracker,
    /// The NATS transport, when configured.
    nats: Option<Arc<WorkerNats>>,
}

/// How an assignment that came over NATS was taken; its message is acked, or delivered
/// again, on this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// This attempt is held here already (it came through the other door too).
    Held,
    /// The coordinator accepted the start report: it runs.
    Started,
    /// The coordinator no longer wants this attempt (or a newer one is held): dropped.
    Refused,
    /// The coordinator could not be asked: not run now.
    Unreachable,
    /// Every slot is taken: not run now.
    Full,
}

/// An assignment's time limit (the coordinator validated it; a bad value falls back to 1 h).
pub fn attempt_timeout(a: &Assignment) -> Duration {
    Duration::try_from_secs_f64(a.timeout).unwrap_or(Duration::from_secs(3600))
}

/// A report for an attempt that did not run to an answer.
pub fn failed(attempt: u32, error: String) -> ResultReport {
    ResultReport {
        attempt,
        outcome: Outcome::Failed,
        result: None,
        error: Some(error),
        duration_ms: 0,
        retry_after: None,
        permanent: false,
    }
}

impl Dispatch {
    pub fn new(ctx: Arc<Context>, session: Arc<Session>, adverts: Arc<Adverts>, gateway: Gateway) -> Dispatch {
        Dispatch {
            ctx,
            session,
            adverts,
            gateway,
            running: Mutex::new(HashMap::new()),
            slot_freed: Notify::new(),
            tracker: TaskTracker::new(),
            nats: None,
        }
    }

    /// Takes assignments from NATS too, and publishes results there first.
    pub fn with_nats(mut self, nats: Option<Arc<WorkerNats>>) -> Dispatch {
        self.nats = nats;
        self
    }

    pub fn nats(&self) -> Option<&Arc<WorkerNats>> {
        self.nats.as_ref()
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
        lock(&self.running).len()
    }

    /// Waits up to `limit` for every attempt (and delivery) to end; true when they did.
    /// Takes no new ones from then on.
    pub async fn finish(&self, limit: Duration) -> bool {
        self.tracker.close();
        tokio::time::timeout(limit, self.tracker.wait()).await.is_ok()
    }

    /// The attempts held here: received, starting or running, and (with NATS) those whose
    /// result is published but not yet known to be recorded.
    pub fn held(&self) -> Vec<TaskRef> {
        let mut held: Vec<TaskRef> =
            lock(&self.running).iter().map(|(id, r)| TaskRef { task_id: id.clone(), attempt: r.attempt }).collect();
        if let Some(nats) = &self.nats {
            held.extend(nats.unconfirmed());
        }
        held
    }

    fn held_not_cancelling(&self) -> Vec<TaskRef> {
        lock(&self.running)
            .iter()
            .filter(|(_, r)| !r.told.load(Ordering::SeqCst))
            .map(|(id, r)| TaskRef { task_id: id.clone(), attempt: r.attempt })
            .collect()
    }

    /// Stops the attempts the coordinator no longer wants here.
    pub fn apply_cancels(&self, cancels: &[TaskRef]) {
        if let Some(nats) = &self.nats {
            nats.confirmed(cancels);
        }
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

    /// Accepts an assignment from the HTTP poll: records it as held and starts its task.
    fn take(self: &Arc<Self>, a: Assignment, client: &Client) {
        self.accept(a, client, None);
    }

    /// Accepts an assignment from NATS: it runs only once the coordinator accepts its
    /// start report; the answer says what became of it.
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
            let mut running = lock(&self.running);
            if let Some(existing) = running.get(&a.task_id) {
                if existing.attempt >= a.attempt {
                    // Held already (both doors brought it), or an older attempt.
                    if let Some(c) = confirm {
                        let _ = c.send(if existing.attempt == a.attempt { Taken::Held } else { Taken::Refused });
                    }
                    return;
                }
                // A newer attempt of a task we still run: the old one must stop.
                existing.told.store(true, Ordering::SeqCst);
                existing.cancel.cancel();
            } else if running.len() >= max {
                if let Some(c) = confirm {
                    let _ = c.send(Taken::Full);
                    return;
                }
                drop(running);
                let report = ResultReport { retry_after: Some(1.0), ..failed(a.attempt, "the worker is full".into()) };
                let this = self.clone();
                self.tracker.spawn(async move { this.deliver(&a.task_id, report).await });
                return;
            }
            running
                .insert(a.task_id.clone(), Running { attempt: a.attempt, cancel: cancel.clone(), told: told.clone() });
        }
        let client = client.clone();
        let this = self.clone();
        self.tracker.spawn(async move {
            let id = a.task_id.clone();
            let attempt = a.attempt;
            this.run_task(a, client, cancel, told, confirm).await;
            let mut running = lock(&this.running);
            if running.get(&id).is_some_and(|r| r.attempt == attempt) {
                running.remove(&id);
            }
            drop(running);
            this.slot_freed.notify_one();
        });
    }

    async fn run_task(
        &self,
        a: Assignment,
        client: Client,
        cancel: CancellationToken,
        told: Arc<AtomicBool>,
        confirm: Option<oneshot::Sender<Taken>>,
    ) {
        let node_id = &self.ctx.node_id;
        let from_nats = confirm.is_some();
        let answer = |taken| {
            if let Some(c) = confirm {
                let _ = c.send(taken);
            }
        };
        match client.report_start(node_id, &a.task_id, a.attempt).await {
            Err(e) if matches!(e.code(), Some(ErrorCode::UnknownTask | ErrorCode::StaleAttempt)) => {
                tracing::info!(target: "openclaw::worker", task_id = %a.task_id, error = %e, "the coordinator no longer wants this attempt; not running it");
                answer(Taken::Refused);
                return;
            }
            // From NATS, a message may be an old one delivered again: run only what the
            // coordinator confirms.
            Err(e) if from_nats => {
                tracing::debug!(target: "openclaw::worker", task_id = %a.task_id, error = %e, "cannot report the start of an assignment from NATS; it will come again");
                answer(Taken::Unreachable);
                return;
            }
            // The coordinator may be away: run anyway and deliver the result later.
            _ => answer(Taken::Started),
        }
        let via = if from_nats { "nats" } else { "http" };
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
                let mut report = match &skill.kind {
                    Kind::Exec { argv } => {
                        let dir = skill.path.clone().unwrap_or_default();
                        self.run_exec(&a, argv.clone(), dir, skill.requires_env.clone(), cancel.clone()).await
                    }
                    Kind::Agent => {
                        let run = |sink| agent::run(&self.gateway, &self.adverts, &a, cancel.clone(), sink);
                        let (report, redactor) = self.with_output(&a, run).await;
                        ResultReport {
                            result: report.result.map(|r| redactor.redact_json(r)),
                            error: report.error.map(|e| redactor.redact(&e).into_owned()),
                            ..report
                        }
                    }
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
        self.deliver(&a.task_id, report).await;
    }

    async fn run_exec(
        &self,
        a: &Assignment,
        argv: Vec<String>,
        dir: PathBuf,
        pass_env: Vec<String>,
        cancel: CancellationToken,
    ) -> ResultReport {
        let stdin = serde_json::to_vec(&json!({
            "task_id": a.task_id, "attempt": a.attempt, "name": a.name, "parameters": a.parameters,
        }))
        .unwrap_or_default();
        let job = |sink| exec::Job {
            argv,
            dir,
            stdin,
            env: vec![
                ("OPENCLAW_TASK_ID".into(), a.task_id.clone()),
                ("OPENCLAW_NODE_ID".into(), self.ctx.node_id.clone()),
                ("OPENCLAW_SKILL".into(), a.skill.clone()),
                ("OPENCLAW_ATTEMPT".into(), a.attempt.to_string()),
            ],
            pass_env,
            timeout: attempt_timeout(a),
            max_output: self.ctx.config.worker.max_output_bytes,
            output: Some(sink),
        };
        let (ending, redactor) = self.with_output(a, |sink| exec::run(job(sink), cancel)).await;
        let (outcome, result, error) = match ending {
            exec::Ending::Completed(v) => (Outcome::Completed, Some(v), None),
            exec::Ending::Failed { error, detail } => (Outcome::Failed, Some(detail), Some(error)),
            exec::Ending::TimedOut { error, detail } => (Outcome::Timeout, Some(detail), Some(error)),
            exec::Ending::Cancelled => {
                (Outcome::Cancelled, None, Some("cancelled; the process tree was stopped".into()))
            }
        };
        ResultReport {
            outcome,
            result: result.map(|r| redactor.redact_json(r)),
            error: error.map(|e| redactor.redact(&e).into_owned()),
            ..failed(a.attempt, String::new())
        }
    }

    /// Runs `work` with a sink for the attempt's output, which streams to the coordinator
    /// (redacted) while it runs. `work` drops the sink when it ends; the last lines are sent
    /// before this returns, so before the result is delivered. Also returns the redactor,
    /// for the result.
    async fn with_output<T, F: Future<Output = T>>(
        &self,
        a: &Assignment,
        work: impl FnOnce(output::OutputSink) -> F,
    ) -> (T, output::Redactor) {
        let (sink, lines) = output::OutputSink::new();
        let redactor = output::known_secrets(&self.ctx.config, &self.session, &self.gateway);
        let (done, ()) = tokio::join!(
            work(sink),
            output::stream(&self.session, &self.ctx.node_id, &a.task_id, a.attempt, lines, redactor.clone()),
        );
        (done, redactor)
    }

    /// Delivers a result until the coordinator takes it (or refuses it as stale). Gives up
    /// only when the worker leaves.
    async fn deliver(&self, task_id: &str, mut report: ResultReport) {
        let mut failures = 0u32;
        loop {
            if let Some(nats) = &self.nats
                && let Some(key) = self.session.secret_hash()
                && nats.publish_result(task_id, &report, &key).await
            {
                return;
            }
            let Some(client) = self.session.wait(&self.ctx.leave).await else { return };
            match client.report_result(&self.ctx.node_id, task_id, &report).await {
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
                        _ = self.ctx.leave.cancelled() => {
                            tracing::warn!(target: "openclaw::worker", task_id, "leaving before the coordinator took this result; it will run again elsewhere");
                            return;
                        }
                    }
                }
            }
        }
    }
}

/// Refused for what it is (malformed, too large): sending it again cannot help.
fn refused_as_sent(e: &ClientError) -> bool {
    matches!(e.code(), Some(ErrorCode::BadRequest | ErrorCode::PayloadTooLarge))
}

/// The coordinator no longer knows this registration: register again.
pub fn session_refused(e: &ClientError) -> bool {
    matches!(e.code(), Some(ErrorCode::Unauthorized | ErrorCode::Forbidden | ErrorCode::UnknownNode))
}

/// Resolves when assignments start coming over NATS (never without NATS).
async fn switched_to_nats(dispatch: &Dispatch) {
    match &dispatch.nats {
        Some(nats) => nats.activated().await,
        None => std::future::pending().await,
    }
}

/// Long-polls for assignments while a slot is free, until the worker stops taking tasks.
pub async fn poll_loop(dispatch: Arc<Dispatch>) {
    let ctx = dispatch.ctx.clone();
    let max = ctx.config.worker.max_concurrent_tasks as usize;
    let long_poll = ctx.config.coordinator.long_poll_timeout.get();
    let mut failures = 0u32;
    while !ctx.stop_taking.is_cancelled() {
        let mut wait = long_poll;
        if let Some(nats) = dispatch.nats.as_ref().filter(|n| n.takes_assignments()) {
            // Assignments come over NATS: poll only when that stops, or for one too large.
            let wake = tokio::select! {
                w = nats.paused() => w,
                _ = ctx.stop_taking.cancelled() => break,
            };
            if wake == Wake::Http {
                continue;
            }
            wait = Duration::ZERO;
        }
        let Some(client) = dispatch.session.wait(&ctx.stop_taking).await else { break };
        if dispatch.running() >= max {
            tokio::select! {
                _ = dispatch.slot_freed.notified() => {}
                _ = ctx.stop_taking.cancelled() => {}
            }
            continue;
        }
        // Tasks already told to stop are left out, or the coordinator would answer at once
        // with the same cancel again until their results are delivered.
        let req = PollRequest { held: dispatch.held_not_cancelling(), wait_secs: Some(wait.as_secs_f64()) };
        let answer = tokio::select! {
            a = client.poll(&ctx.node_id, &req, wait) => a,
            // Assignments come over NATS from now on: stop waiting here (what this poll
            // would have handed out is scheduled still, and published there).
            _ = switched_to_nats(&dispatch), if !wait.is_zero() => continue,
            _ = ctx.stop_taking.cancelled() => break,
        };
        match answer {
            Ok(answer) => {
                failures = 0;
                dispatch.session.link_up();
                dispatch.apply_cancels(&answer.cancel);
                for assignment in answer.assignments {
                    dispatch.take(assignment, &client);
                }
            }
            Err(e) if session_refused(&e) => {
                dispatch.session.drop_session(&format!("poll refused: {e}"));
            }
            Err(e) => {
                dispatch.session.link_down(&e);
                failures += 1;
                let delay = crate::util::backoff(Duration::from_secs(1), Duration::from_secs(30), failures);
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    // The heartbeat found the coordinator again: poll now, not after the backoff.
                    _ = dispatch.session.restored() => {}
                    _ = ctx.stop_taking.cancelled() => {}
                }
            }
        }
    }
}
