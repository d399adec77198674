//! The task lifecycle: submit, start, result, cancel, retry, loss, reconciliation, and
//! what a worker's poll hands out.
//!
//! pending → scheduled → running → completed | failed | cancelled | timeout. Each
//! placement starts a new attempt (1, 2, ...); reports name their attempt and a report for
//! any other attempt, or from another node, is refused (409): at-least-once with fencing.
//! A failed or lost attempt goes back to pending after a backoff until `max_retries`
//! failures are spent; then the task ends `failed` (or `timeout`) with the last error.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;

use super::error::ApiError;
use super::registry::clean_names;
use super::state::{Now, State, Timer, event};
use crate::model::{
    Assignment, MAX_RETRIES, MAX_TASK_TIMEOUT, Outcome, PollResponse, Priority, ReportResponse, ResultReport,
    SubmitTask, TaskRef, TaskStatus, TaskType,
};
use crate::store::tasks::TaskRecord;
use crate::util;

/// What a report found in memory.
pub enum Report {
    /// Applied (or a harmless repeat); answer 200 with this.
    Done(ReportResponse),
    /// The task is not active here: the handler checks the store for an ended task.
    NotActive,
}

impl State {
    /// Validates a submission and queues the new task (or returns the first task submitted
    /// with the same idempotency key: `Ok((id, false))`).
    pub fn submit(
        &mut self,
        req: SubmitTask,
        header_key: Option<String>,
        now: Now,
    ) -> Result<(String, bool), ApiError> {
        let key = match (header_key, req.idempotency_key.clone()) {
            (Some(h), Some(b)) if h != b => {
                return Err(ApiError::BadRequest(
                    "idempotency_key: the Idempotency-Key header and the body's idempotency_key differ".into(),
                ));
            }
            (h, b) => h.or(b),
        };
        if let Some(k) = &key {
            if k.trim().is_empty() || k.len() > 200 {
                return Err(ApiError::BadRequest("idempotency_key: must be 1-200 characters".into()));
            }
            if let Some(existing) = self.idempotency.get(k) {
                return Ok((existing.clone(), false));
            }
        }
        let name = req.name.trim().to_string();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(ApiError::BadRequest(format!("name: must be 1-200 characters, got {}", name.chars().count())));
        }
        if req.required_skills.is_empty() {
            return Err(ApiError::BadRequest("required_skills: must name at least one skill".into()));
        }
        let required = clean_names("required_skills", &req.required_skills)?;
        let optional = clean_names("optional_skills", &req.optional_skills)?;
        let affinity = clean_names("affinity_tags", &req.affinity_tags)?;
        let timeout = match req.timeout {
            None => self.settings.default_timeout,
            Some(t) if t.is_finite() && t >= 1.0 && t <= MAX_TASK_TIMEOUT.as_secs_f64() => Duration::from_secs_f64(t),
            Some(t) => {
                return Err(ApiError::BadRequest(format!(
                    "timeout: must be between 1 and {} seconds (7 days), got {t}",
                    MAX_TASK_TIMEOUT.as_secs()
                )));
            }
        };
        let max_retries = req.max_retries.unwrap_or(self.settings.default_max_retries);
        if max_retries > MAX_RETRIES {
            return Err(ApiError::BadRequest(format!(
                "max_retries: must be between 0 and {MAX_RETRIES}, got {max_retries}"
            )));
        }
        let metadata = match req.metadata {
            None => Value::Object(Default::default()),
            Some(m @ Value::Object(_)) => m,
            Some(_) => {
                return Err(ApiError::BadRequest("metadata: must be a JSON object".into()));
            }
        };
        if let Some(u) = &req.user_id
            && u.len() > 200
        {
            return Err(ApiError::BadRequest("user_id: longer than 200 characters".into()));
        }
        let task = TaskRecord {
            task_id: util::new_task_id(),
            seq: self.next_seq,
            name,
            description: req.description,
            task_type: req.task_type.unwrap_or(TaskType::Batch),
            priority: req.priority.unwrap_or(Priority::Normal),
            required_skills: required,
            optional_skills: optional,
            affinity_tags: affinity,
            parameters: req.parameters.unwrap_or_else(|| Value::Object(Default::default())),
            metadata,
            timeout_ms: timeout.as_millis() as i64,
            max_retries,
            retry_count: 0,
            attempt: 0,
            user_id: req.user_id,
            idempotency_key: key.clone(),
            status: TaskStatus::Pending,
            assigned_node: None,
            result: None,
            error: None,
            submitted_at: now.ms,
            scheduled_at: None,
            started_at: None,
            completed_at: None,
            next_attempt_at: None,
            cancel_requested: false,
        };
        self.next_seq += 1;
        let id = task.task_id.clone();
        if let Some(k) = key {
            self.idempotency.insert(k, id.clone());
        }
        let row = task.clone();
        let submitted = event(&task, "submitted", None, None, now.ms);
        self.write(move |c| {
            crate::store::tasks::insert(c, &row)?;
            crate::store::tasks::add_event(c, &row.task_id, &submitted)
        });
        self.queue.insert(&task);
        self.tasks.insert(id.clone(), task);
        self.metrics.tasks_submitted.inc();
        self.schedule(now);
        Ok((id, true))
    }

    /// Puts a task recovered from the store back in memory (at coordinator start).
    pub fn restore_task(&mut self, mut task: TaskRecord, now: Now) {
        let id = task.task_id.clone();
        match task.status {
            TaskStatus::Scheduled | TaskStatus::Running => {
                let node = task.assigned_node.clone().unwrap_or_default();
                if let Some(entry) = self.nodes.get_mut(&node) {
                    entry.assigned.insert(id.clone());
                    let deadline = now.at + Duration::from_millis(task.timeout_ms as u64) + self.settings.attempt_grace;
                    let attempt = task.attempt;
                    self.tasks.insert(id.clone(), task);
                    self.push_timer(deadline, Timer::AttemptDeadline(id, attempt));
                } else {
                    self.tasks.insert(id.clone(), task);
                    self.attempt_lost(&id, &format!("node `{node}` is not registered any more"), now);
                }
            }
            _ => {
                task.status = TaskStatus::Pending;
                match task.next_attempt_at.filter(|d| *d > now.ms) {
                    Some(due) => {
                        let wait = Duration::from_millis((due - now.ms) as u64);
                        self.push_timer(now.at + wait, Timer::RetryDue(id.clone()));
                    }
                    None => self.queue.insert(&task),
                }
                self.tasks.insert(id, task);
            }
        }
    }

    /// Cancels an active task. `Ok(false)` when the task is not active here (ended or
    /// unknown: the handler looks in the store).
    pub fn cancel(&mut self, task_id: &str, now: Now) -> Result<bool, ApiError> {
        let Some(task) = self.tasks.get_mut(task_id) else {
            return Ok(false);
        };
        match task.status {
            TaskStatus::Running => {
                let node = task.assigned_node.clone().unwrap_or_default();
                // A node restored at start is offline until it heartbeats but may still be
                // running the task: within its deadline it counts as alive.
                let node_alive = self.nodes.get(&node).is_some_and(|n| n.online || n.deadline > now.at);
                if node_alive {
                    if !task.cancel_requested {
                        task.cancel_requested = true;
                        let e = event(
                            task,
                            "cancel_requested",
                            Some(&node),
                            Some(format!("worker `{node}` told to stop it")),
                            now.ms,
                        );
                        let snapshot = task.clone();
                        self.write_task(&snapshot, Some(e));
                        if let Some(n) = self.nodes.get(&node) {
                            n.wake.notify_waiters();
                        }
                    }
                } else {
                    self.finish(
                        task_id,
                        TaskStatus::Cancelled,
                        None,
                        Some(format!("cancelled; node `{node}` is gone")),
                        None,
                        now,
                    );
                }
            }
            _ => {
                self.finish(task_id, TaskStatus::Cancelled, None, Some("cancelled before it ran".into()), None, now);
            }
        }
        self.schedule(now);
        Ok(true)
    }

    /// Ends a task for good. Like [`State::attempt_failed`], it does not run the scheduler:
    /// the caller does, once, after all its changes.
    pub fn finish(
        &mut self,
        task_id: &str,
        status: TaskStatus,
        result: Option<Value>,
        error: Option<String>,
        duration: Option<Duration>,
        now: Now,
    ) {
        let Some(mut task) = self.tasks.remove(task_id) else {
            return;
        };
        self.queue.remove(&task);
        let node = task.assigned_node.clone();
        if let Some(n) = node.as_ref().and_then(|n| self.nodes.get_mut(n)) {
            n.assigned.remove(task_id);
            if let Some(d) = duration {
                n.record.total_tasks_processed += 1;
                n.record.total_execution_ms = n.record.total_execution_ms.saturating_add(d.as_millis() as u64);
                match status {
                    TaskStatus::Completed => n.record.successful_tasks += 1,
                    TaskStatus::Failed | TaskStatus::Timeout => n.record.failed_tasks += 1,
                    _ => {}
                }
            }
        }
        task.status = status;
        task.result = result;
        if error.is_some() || status == TaskStatus::Completed {
            task.error = error.clone();
        }
        task.completed_at = Some(now.ms);
        task.next_attempt_at = None;
        let e = event(&task, status.as_str(), node.as_deref(), error, now.ms);
        self.write_task(&task, Some(e));
        if let Some(n) = &node
            && duration.is_some()
        {
            self.write_node(n);
        }
        self.metrics.tasks_ended.get_or_create(&super::metrics::StatusLabel { status: status.as_str().into() }).inc();
        self.notify_ended(task_id);
        tracing::info!(target: "openclaw::coordinator", task_id, status = status.as_str(), node = node.as_deref().unwrap_or(""), "task ended");
    }

    /// An attempt ended badly. `counts`: it spends one of the retries (a 429 from the
    /// gateway does not). Requeues with backoff, or ends the task.
    #[allow(clippy::too_many_arguments)]
    pub fn attempt_failed(
        &mut self,
        task_id: &str,
        outcome: TaskStatus,
        error: String,
        result: Option<Value>,
        counts: bool,
        retry_after: Option<Duration>,
        duration: Option<Duration>,
        now: Now,
    ) {
        let Some(task) = self.tasks.get(task_id) else {
            return;
        };
        // A cancel that was acknowledged wins over however the attempt ended.
        if task.cancel_requested {
            self.finish(task_id, TaskStatus::Cancelled, result, Some(format!("cancelled ({error})")), duration, now);
            return;
        }
        let node = task.assigned_node.clone();
        let spent = task.retry_count + u32::from(counts);
        if counts && spent > task.max_retries {
            if let Some(t) = self.tasks.get_mut(task_id) {
                t.retry_count = spent.min(t.max_retries);
            }
            let error = if spent > 1 { format!("{error} (after {spent} attempts)") } else { error };
            self.finish(task_id, outcome, result, Some(error), duration, now);
            return;
        }
        if let Some(n) = node.as_ref().and_then(|n| self.nodes.get_mut(n)) {
            n.assigned.remove(task_id);
            // Bounces that spend no retry (429, a full worker) are not work done.
            if let Some(d) = duration.filter(|_| counts) {
                n.record.total_tasks_processed += 1;
                n.record.failed_tasks += 1;
                n.record.total_execution_ms = n.record.total_execution_ms.saturating_add(d.as_millis() as u64);
            }
        }
        let delay = match retry_after {
            Some(d) => d,
            None => util::backoff(self.settings.backoff_base, self.settings.backoff_max, spent.max(1)),
        };
        let Some(task) = self.tasks.get_mut(task_id) else {
            return;
        };
        task.retry_count = spent;
        task.status = TaskStatus::Pending;
        task.assigned_node = None;
        task.cancel_requested = false;
        task.error = Some(error.clone());
        task.next_attempt_at = Some(now.ms + delay.as_millis() as i64);
        let plan = if counts {
            format!("retry {} of {} in {}", spent, task.max_retries, util::short_duration(delay))
        } else {
            format!("requeued without spending a retry; next try in {}", util::short_duration(delay))
        };
        let name = if outcome == TaskStatus::Timeout { "timeout" } else { "failed" };
        let e = event(task, name, node.as_deref(), Some(format!("{error}; {plan}")), now.ms);
        let snapshot = task.clone();
        self.write_task(&snapshot, Some(e));
        if let Some(n) = &node
            && duration.is_some()
            && counts
        {
            self.write_node(n);
        }
        if delay.is_zero() {
            self.queue.insert(&snapshot);
        } else {
            self.push_timer(now.at + delay, Timer::RetryDue(task_id.to_string()));
        }
        tracing::info!(target: "openclaw::coordinator", task_id, node = node.as_deref().unwrap_or(""), error = %error, retry_in_ms = delay.as_millis() as u64, "task attempt failed; requeued");
    }

    /// The attempt's node is gone or no longer has it: counts as a failed attempt.
    pub fn attempt_lost(&mut self, task_id: &str, reason: &str, now: Now) {
        let Some(task) = self.tasks.get(task_id) else {
            return;
        };
        if task.status == TaskStatus::Pending {
            return;
        }
        if task.cancel_requested {
            self.finish(task_id, TaskStatus::Cancelled, None, Some(format!("cancelled; {reason}")), None, now);
            return;
        }
        // An attempt that never started did not fail: requeue it at once without spending
        // a retry. One that ran counts.
        let started = task.status == TaskStatus::Running;
        let retry_after = (!started).then_some(Duration::ZERO);
        let error = format!("attempt lost: {reason}");
        self.attempt_failed(task_id, TaskStatus::Failed, error, None, started, retry_after, None, now);
    }

    /// A retry became due: the task may be placed again.
    pub fn retry_due(&mut self, task_id: &str, now: Now) {
        let Some(task) = self.tasks.get(task_id) else { return };
        // Only the retry timer puts a waiting task back in the queue, so there is no stale
        // timer to guard against (the wall-clock due time may differ by a millisecond).
        if task.status != TaskStatus::Pending {
            return;
        }
        if !self.queue.contains(task) {
            self.queue.insert(task);
        }
        self.schedule(now);
    }

    /// An attempt's backstop deadline passed without a result.
    pub fn attempt_deadline(&mut self, task_id: &str, attempt: u32, now: Now) {
        let Some(task) = self.tasks.get(task_id) else {
            return;
        };
        if task.attempt != attempt || task.status == TaskStatus::Pending {
            return;
        }
        let node = task.assigned_node.clone().unwrap_or_default();
        let limit = util::short_duration(Duration::from_millis(task.timeout_ms as u64));
        self.attempt_failed(
            task_id,
            TaskStatus::Timeout,
            format!("no result from node `{node}` within the timeout ({limit}) and a grace period"),
            None,
            true,
            None,
            None,
            now,
        );
        self.schedule(now);
    }

    fn check_report(
        &self,
        node: &str,
        task_id: &str,
        attempt: u32,
    ) -> Result<Option<&crate::store::tasks::TaskRecord>, ApiError> {
        let Some(task) = self.tasks.get(task_id) else {
            return Ok(None);
        };
        if task.assigned_node.as_deref() != Some(node) || task.attempt != attempt {
            return Err(ApiError::Conflict(format!(
                "stale report: task {task_id} attempt {attempt} is not assigned to node `{node}` (current attempt {} on {})",
                task.attempt,
                task.assigned_node.as_deref().unwrap_or("no node")
            )));
        }
        Ok(Some(task))
    }

    /// The worker started an attempt.
    pub fn start(&mut self, node: &str, task_id: &str, attempt: u32, now: Now) -> Result<Report, ApiError> {
        let Some(task) = self.check_report(node, task_id, attempt)? else {
            return Ok(Report::NotActive);
        };
        if task.status == TaskStatus::Scheduled {
            let task = self.tasks.get_mut(task_id).expect("checked above");
            task.status = TaskStatus::Running;
            task.started_at = Some(now.ms);
            let e = event(task, "running", Some(node), None, now.ms);
            let snapshot = task.clone();
            self.write_task(&snapshot, Some(e));
        }
        let status = self.tasks[task_id].status;
        Ok(Report::Done(ReportResponse { success: true, task_id: task_id.into(), status }))
    }

    /// The worker reports how an attempt ended.
    pub fn result(&mut self, node: &str, task_id: &str, report: ResultReport, now: Now) -> Result<Report, ApiError> {
        let Some(task) = self.check_report(node, task_id, report.attempt)? else {
            return Ok(Report::NotActive);
        };
        let cancel_requested = task.cancel_requested;
        // The worker's figure, bounded by what the attempt could have taken.
        let longest = task.timeout_ms.max(0) as u64 + self.settings.attempt_grace.as_millis() as u64;
        let duration = Some(Duration::from_millis(report.duration_ms.min(longest)));
        match report.outcome {
            Outcome::Completed => {
                self.finish(task_id, TaskStatus::Completed, report.result, None, duration, now);
            }
            Outcome::Cancelled if cancel_requested => {
                self.finish(
                    task_id,
                    TaskStatus::Cancelled,
                    report.result,
                    Some("cancelled while running".into()),
                    duration,
                    now,
                );
            }
            Outcome::Failed | Outcome::Timeout | Outcome::Cancelled => {
                let status = if report.outcome == Outcome::Timeout { TaskStatus::Timeout } else { TaskStatus::Failed };
                let error =
                    report.error.unwrap_or_else(|| format!("attempt ended {:?}", report.outcome).to_lowercase());
                let retry_after = report
                    .retry_after
                    .filter(|s| s.is_finite() && *s >= 0.0)
                    .map(|s| Duration::from_secs_f64(s.min(3600.0)));
                self.attempt_failed(
                    task_id,
                    status,
                    error,
                    report.result,
                    retry_after.is_none(),
                    retry_after,
                    duration,
                    now,
                );
            }
        }
        self.schedule(now);
        let status = self.tasks.get(task_id).map(|t| t.status);
        Ok(Report::Done(ReportResponse {
            success: true,
            task_id: task_id.into(),
            status: status.unwrap_or(report.outcome.into()),
        }))
    }

    /// Compares what a worker holds with what it should: requeues what it lost (after a
    /// grace) and returns what it must stop.
    pub fn reconcile(&mut self, node: &str, held: &[TaskRef], now: Now) -> Vec<TaskRef> {
        let held_set: HashSet<(&str, u32)> = held.iter().map(|t| (t.task_id.as_str(), t.attempt)).collect();
        let grace = self.settings.reconcile_grace.as_millis() as i64;
        let mut lost = Vec::new();
        if let Some(entry) = self.nodes.get(node) {
            for id in &entry.assigned {
                let Some(t) = self.tasks.get(id) else {
                    continue;
                };
                if held_set.contains(&(id.as_str(), t.attempt)) {
                    continue;
                }
                let since = t.started_at.or(t.scheduled_at).unwrap_or(now.ms);
                if now.ms - since > grace {
                    lost.push(id.clone());
                }
            }
        }
        if !lost.is_empty() {
            for id in lost {
                self.attempt_lost(&id, &format!("node `{node}` no longer reports it"), now);
            }
            self.schedule(now);
        }
        self.cancels_for(node, held)
    }

    /// Tasks the worker holds that it must stop.
    pub fn cancels_for(&self, node: &str, held: &[TaskRef]) -> Vec<TaskRef> {
        held.iter()
            .filter(|h| match self.tasks.get(&h.task_id) {
                Some(t) => t.assigned_node.as_deref() != Some(node) || t.attempt != h.attempt || t.cancel_requested,
                None => true,
            })
            .cloned()
            .collect()
    }

    /// What a poll hands out now: assignments the worker does not hold yet, and cancels.
    pub fn poll(&self, node: &str, held: &[TaskRef]) -> PollResponse {
        let Some(entry) = self.nodes.get(node) else {
            return PollResponse::default();
        };
        let held_set: HashSet<(&str, u32)> = held.iter().map(|t| (t.task_id.as_str(), t.attempt)).collect();
        let assignments = entry
            .assigned
            .iter()
            .filter_map(|id| self.tasks.get(id))
            .filter(|t| t.status == TaskStatus::Scheduled && !held_set.contains(&(t.task_id.as_str(), t.attempt)))
            .map(|t| Assignment {
                task_id: t.task_id.clone(),
                attempt: t.attempt,
                name: t.name.clone(),
                description: t.description.clone(),
                skill: t.skill().to_string(),
                required_skills: t.required_skills.clone(),
                parameters: t.parameters.clone(),
                timeout: t.timeout_ms as f64 / 1000.0,
                priority: t.priority,
            })
            .collect();
        PollResponse { assignments, cancel: self.cancels_for(node, held) }
    }

    /// The live record of an active task (None once it ended: it is then in the store).
    pub fn active_task(&self, task_id: &str) -> Option<&TaskRecord> {
        self.tasks.get(task_id)
    }
}
