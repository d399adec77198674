//! The task lifecycle: submit, start, result, cancel, retry, loss, reconciliation, and
//! what a worker's poll hands out.
//!
//! pending → scheduled → running → completed | failed | cancelled | timeout. Each
//! placement starts a new attempt (1, 2, ...); reports name their attempt and a report for
//! any other attempt, or from another node, is refused (`stale_attempt`): at-least-once
//! with fencing. A failed or lost attempt goes back to pending after a backoff until
//! `max_retries` failures are spent, or at once for good when the failure is permanent;
//! then the task ends `failed` (or `timeout`) with the last error.
//!
//! [`Tasks`] owns the active tasks (without their parameters), the pending queue and the
//! waiters. Its only mutable access to a task's state marks the task dirty; a task that
//! ends leaves memory with its final state kept for the next batch.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;

use super::queue::{Group, PendingQueue, QueueKey};
use super::{Core, Error, Now, Timer};
use crate::model::{
    ErrorCode, Outcome, Priority, ReportResponse, ResultReport, Target, TaskLinks, TaskRef, TaskSpec, TaskState,
    TaskStatus, TaskTransition, Timestamp,
};
use crate::util;

/// A new task: its submission, its place in submission order, and when it came.
#[derive(Debug, Clone)]
pub struct NewTask {
    pub task_id: String,
    pub seq: i64,
    pub spec: TaskSpec,
    pub submitted_at: i64,
}

/// What the coordinator keeps in memory of an active task: what placement needs, and its
/// state.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveTask {
    /// Shared with the coordinator's indexes of the task (one allocation per task).
    pub task_id: std::sync::Arc<str>,
    /// Submission order; the list cursor.
    pub seq: i64,
    pub priority: Priority,
    pub required_skills: Vec<String>,
    pub optional_skills: Vec<String>,
    pub affinity_tags: Vec<String>,
    /// Where it may run (boxed: most tasks have none, and a box is one pointer).
    pub target: Option<Box<Target>>,
    pub timeout_ms: i64,
    pub max_retries: u32,
    /// The cluster secrets it uses, by name (usually none).
    pub secrets: Vec<String>,
    /// Its dependencies and group (boxed: most tasks have none).
    pub links: Option<Box<TaskLinks>>,
    pub state: TaskState,
}

impl ActiveTask {
    /// The in-memory form of a new task.
    pub fn of(new: &NewTask) -> ActiveTask {
        ActiveTask {
            task_id: new.task_id.as_str().into(),
            seq: new.seq,
            priority: new.spec.priority,
            required_skills: new.spec.required_skills.clone(),
            optional_skills: new.spec.optional_skills.clone(),
            affinity_tags: new.spec.affinity_tags.clone(),
            target: new.spec.target.clone().map(Box::new),
            timeout_ms: (new.spec.timeout * 1000.0).round() as i64,
            max_retries: new.spec.max_retries,
            secrets: new.spec.secrets.clone(),
            links: (!new.spec.links.is_empty()).then(|| Box::new(new.spec.links.clone())),
            state: TaskState::default(),
        }
    }

    /// The skill that runs: the first required one.
    pub fn skill(&self) -> &str {
        self.required_skills.first().map(String::as_str).unwrap_or("")
    }
}

/// An active task and the queue group it belongs to.
#[derive(Debug)]
struct Entry {
    row: ActiveTask,
    group: Group,
    /// The kept lines of its output, once it printed any.
    output: Option<Box<super::output::OutputRing>>,
}

impl Entry {
    fn key(&self) -> QueueKey {
        (self.row.priority.number(), self.row.seq, self.row.task_id.clone())
    }
}

/// The active tasks, the pending queue and the clients waiting for tasks to end.
#[derive(Default)]
pub struct Tasks {
    /// Boxed: a map grown by doubling keeps up to half its slots empty, and an empty slot
    /// costs a pointer, not a whole entry.
    active: HashMap<std::sync::Arc<str>, Box<Entry>>,
    queue: PendingQueue,
    /// Clients waiting for a task to end.
    waiters: HashMap<String, watch::Sender<bool>>,
    /// Tasks submitted since the last batch.
    new: Vec<NewTask>,
    /// Tasks whose state changed since the last batch.
    dirty: BTreeSet<String>,
    /// Final states (and skills) of tasks that ended since the last batch.
    ended: HashMap<String, (TaskState, String)>,
    /// The active tasks that wait for a task, by its id (see `links`).
    dependents: HashMap<String, Vec<String>>,
}

impl Tasks {
    /// How many tasks are active.
    pub fn len(&self) -> usize {
        self.active.len()
    }

    pub fn is_empty(&self) -> bool {
        self.active.is_empty()
    }

    /// An active task.
    pub fn get(&self, task_id: &str) -> Option<&ActiveTask> {
        self.active.get(task_id).map(|e| &e.row)
    }

    /// How many pending tasks wait in the queue, and in how many parked groups.
    pub fn queued(&self) -> (usize, usize) {
        (self.queue.len(), self.queue.parked_groups())
    }

    /// Active tasks by status, for the metrics gauges.
    pub fn counts(&self) -> HashMap<TaskStatus, i64> {
        let mut counts = HashMap::new();
        for e in self.active.values() {
            *counts.entry(e.row.state.status).or_default() += 1;
        }
        counts
    }

    pub(super) fn state_mut(&mut self, task_id: &str) -> Option<&mut TaskState> {
        let entry = self.active.get_mut(task_id)?;
        self.dirty.insert(task_id.to_string());
        Some(&mut entry.row.state)
    }

    /// A task's state and skill, also just after it ended (for its events).
    pub(super) fn state_and_skill(&self, task_id: &str) -> Option<(&TaskState, String)> {
        match self.active.get(task_id) {
            Some(e) => Some((&e.row.state, e.row.skill().to_string())),
            None => self.ended.get(task_id).map(|(s, skill)| (s, skill.clone())),
        }
    }

    /// The output accounting of an active task (`None` outside: not active).
    pub(super) fn output_ring(&mut self, task_id: &str) -> Option<&mut Option<Box<super::output::OutputRing>>> {
        self.active.get_mut(task_id).map(|e| &mut e.output)
    }

    /// Every active task.
    pub(super) fn all(&self) -> impl Iterator<Item = &ActiveTask> {
        self.active.values().map(|e| &e.row)
    }

    /// Notes that `waiter` waits for `task_id` to end.
    pub(super) fn add_waiter(&mut self, task_id: &str, waiter: &str) {
        self.dependents.entry(task_id.to_string()).or_default().push(waiter.to_string());
    }

    /// The tasks that waited for `task_id` (which ended), once.
    pub(super) fn take_waiters(&mut self, task_id: &str) -> Vec<String> {
        self.dependents.remove(task_id).unwrap_or_default()
    }

    pub(super) fn add(&mut self, new: NewTask) {
        let row = ActiveTask::of(&new);
        self.new.push(new);
        self.insert(row);
    }

    pub(super) fn insert(&mut self, row: ActiveTask) {
        let entry = Box::new(Entry {
            group: self.queue.intern(&row.required_skills, row.target.as_deref()),
            row,
            output: None,
        });
        self.active.insert(entry.row.task_id.clone(), entry);
    }

    pub(super) fn enqueue(&mut self, task_id: &str) {
        if let Some(e) = self.active.get(task_id) {
            self.queue.insert(&e.group, e.key());
        }
    }

    pub(super) fn dequeue(&mut self, task_id: &str) {
        if let Some(e) = self.active.get(task_id) {
            self.queue.remove(&e.group, &e.key());
        }
    }

    pub(super) fn is_queued(&self, task_id: &str) -> bool {
        self.active.get(task_id).is_some_and(|e| self.queue.contains(&e.group, &e.key()))
    }

    /// Pending and not in the queue: its retry timer is what brings it back.
    pub fn is_waiting_for_retry(&self, task_id: &str) -> bool {
        self.get(task_id).is_some_and(|t| t.state.status == TaskStatus::Pending) && !self.is_queued(task_id)
    }

    /// On this attempt and placed.
    pub fn is_on_attempt(&self, task_id: &str, attempt: u32) -> bool {
        self.get(task_id).is_some_and(|t| t.state.attempt == attempt && t.state.status != TaskStatus::Pending)
    }

    /// Takes a task out of memory for good; its final state goes to the next batch and its
    /// waiters are woken.
    pub(super) fn end(&mut self, task_id: &str) -> Option<ActiveTask> {
        self.dequeue(task_id);
        let entry = self.active.remove(task_id)?;
        self.dirty.insert(task_id.to_string());
        self.ended.insert(task_id.to_string(), (entry.row.state.clone(), entry.row.skill().to_string()));
        if let Some(tx) = self.waiters.remove(task_id) {
            let _ = tx.send(true);
        }
        Some(entry.row)
    }

    /// A receiver that changes when the task ends; `None` when it is not active.
    pub fn wait_for(&mut self, task_id: &str) -> Option<watch::Receiver<bool>> {
        self.active.get(task_id)?;
        Some(self.waiters.entry(task_id.to_string()).or_insert_with(|| watch::channel(false).0).subscribe())
    }

    /// Every active task and whether it is in the queue (tests).
    #[cfg(test)]
    pub(super) fn inspect(&self) -> Vec<(&ActiveTask, bool)> {
        self.active.values().map(|e| (&e.row, self.queue.contains(&e.group, &e.key()))).collect()
    }

    /// New tasks and the states changed since the last call.
    pub(super) fn take_dirty(&mut self) -> (Vec<NewTask>, Vec<(String, TaskState)>) {
        let dirty = std::mem::take(&mut self.dirty);
        let mut ended = std::mem::take(&mut self.ended);
        let states = dirty
            .into_iter()
            .filter_map(|id| {
                let state = match self.active.get(id.as_str()) {
                    Some(e) => e.row.state.clone(),
                    None => ended.remove(&id)?.0,
                };
                Some((id, state))
            })
            .collect();
        (std::mem::take(&mut self.new), states)
    }

    /// Unparks the queue groups a node with these skills can serve (`admits`: whether the
    /// node matches a group's target).
    pub(super) fn unpark_servable(&mut self, skills: &[String], admits: impl Fn(Option<&Target>) -> bool) {
        self.queue.unpark_servable(skills, admits);
    }

    pub(super) fn queue(&self) -> &PendingQueue {
        &self.queue
    }

    pub(super) fn park(&mut self, group: &Group) {
        self.queue.park(group);
    }
}

/// A task handed to a worker, as memory knows it (the store adds name, description and
/// parameters).
#[derive(Debug, Clone, PartialEq)]
pub struct Handout {
    pub task_id: String,
    pub attempt: u32,
    pub skill: String,
    pub required_skills: Vec<String>,
    /// Seconds.
    pub timeout: f64,
    pub priority: Priority,
    pub secrets: Vec<String>,
    /// The tasks it depends on and its group, when it has either.
    pub links: Option<TaskLinks>,
}

/// What a report found in memory.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    /// Applied (or a harmless repeat).
    Done(ReportResponse),
    /// The task is not active here: the caller checks the store for an ended task.
    NotActive,
}

/// What each report of a batch found, in order.
pub type Reports = Vec<Result<Report, Error>>;

/// What a cancel did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancel {
    /// The task ended cancelled.
    Ended,
    /// Its worker was told to stop it.
    Requested,
    /// The task is not active here: the caller checks the store.
    NotActive,
}

impl Core {
    /// Accepts a task (checked by [`super::validate::task_spec`]) and places it if a node can take it now.
    /// Returns its id.
    /// A fan-out (`target.each_node`) submits its group and one task per node; the group's
    /// id is returned. Tasks it depends on must be active (see
    /// [`Core::submit_dependent`] for the checked door).
    pub fn submit(&mut self, spec: TaskSpec, now: Now) -> String {
        let task_id = if spec.target.as_ref().is_some_and(|t| t.each_node) {
            self.fan_out(spec, now)
        } else {
            self.submit_as(util::new_task_id(), spec, now)
        };
        self.schedule(now);
        task_id
    }

    /// Adds one task with this id, queued unless it waits for others. The caller runs the
    /// scheduler.
    pub(super) fn submit_as(&mut self, task_id: String, spec: TaskSpec, now: Now) -> String {
        let seq = self.next_seq;
        self.next_seq += 1;
        let waits: Vec<&String> = spec.links.depends_on.iter().filter(|p| self.tasks.get(p).is_some()).collect();
        let note = match (&spec.retry_of, waits.is_empty()) {
            (Some(old), _) => Some(format!("a retry of {old}")),
            (None, false) => {
                Some(format!("waiting for {}", waits.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")))
            }
            (None, true) => None,
        };
        let links = spec.clone();
        self.tasks.add(NewTask { task_id: task_id.clone(), seq, spec, submitted_at: now.ms });
        self.task_event(&task_id, TaskTransition::Submitted, None, note, now);
        match self.link_new(&task_id, &links) {
            super::links::Linked::Queue => self.tasks.enqueue(&task_id),
            super::links::Linked::Wait => {}
            super::links::Linked::Cancel(why) => self.finish(&task_id, Outcome::Cancelled, None, Some(why), None, now),
        }
        self.metrics.tasks_submitted.inc();
        task_id
    }

    /// Puts a task recovered from the store back in memory (at coordinator start).
    pub fn restore_task(&mut self, mut row: ActiveTask, now: Now) {
        let id = row.task_id.to_string();
        if row.links.as_ref().is_some_and(|l| l.group.is_some()) {
            // A group never runs: it waits for its children (see `relink`).
            self.tasks.insert(row);
            return;
        }
        if !row.state.waiting_for.is_empty() {
            row.state.status = TaskStatus::Pending;
            self.tasks.insert(row);
            return;
        }
        match row.state.status {
            TaskStatus::Scheduled | TaskStatus::Running => {
                let node = row.state.assigned_node.clone().unwrap_or_default();
                let deadline =
                    now.at + Duration::from_millis(row.timeout_ms.max(0) as u64) + self.settings.attempt_grace;
                let attempt = row.state.attempt;
                self.tasks.insert(row);
                if self.registry.contains(&node) {
                    self.registry.assign(&node, &id);
                    self.push_timer(deadline, Timer::AttemptDeadline(id, attempt));
                } else {
                    self.attempt_lost(&id, &format!("node `{node}` is not registered any more"), now);
                }
            }
            _ => {
                row.state.status = TaskStatus::Pending;
                let due = row.state.next_attempt_at.map(|t| t.0).filter(|d| *d > now.ms);
                self.tasks.insert(row);
                match due {
                    Some(due) => {
                        let wait = Duration::from_millis((due - now.ms) as u64);
                        self.push_timer(now.at + wait, Timer::RetryDue(id));
                    }
                    None => self.tasks.enqueue(&id),
                }
            }
        }
    }

    /// Cancels an active task.
    pub fn cancel(&mut self, task_id: &str, now: Now) -> Cancel {
        let Some(task) = self.tasks.get(task_id) else { return Cancel::NotActive };
        if task.links.as_ref().is_some_and(|l| l.group.is_some()) {
            let outcome = self.cancel_group(task_id, now);
            self.schedule(now);
            return outcome;
        }
        let outcome = match task.state.status {
            TaskStatus::Running => {
                let node = task.state.assigned_node.clone().unwrap_or_default();
                if self.registry.is_live(&node, now.at) {
                    if !task.state.cancel_requested {
                        if let Some(s) = self.tasks.state_mut(task_id) {
                            s.cancel_requested = true;
                        }
                        self.task_event(
                            task_id,
                            TaskTransition::CancelRequested,
                            Some(&node),
                            Some(format!("worker `{node}` told to stop it")),
                            now,
                        );
                        self.registry.wake(&node);
                    }
                    Cancel::Requested
                } else {
                    self.finish(
                        task_id,
                        Outcome::Cancelled,
                        None,
                        Some(format!("cancelled; node `{node}` is gone")),
                        None,
                        now,
                    );
                    Cancel::Ended
                }
            }
            _ => {
                self.finish(task_id, Outcome::Cancelled, None, Some("cancelled before it ran".into()), None, now);
                Cancel::Ended
            }
        };
        self.schedule(now);
        outcome
    }

    /// Ends a task for good, the way `end` says. Like [`Core::attempt_failed`], it does not
    /// run the scheduler: the caller does, once, after all its changes.
    pub(super) fn finish(
        &mut self,
        task_id: &str,
        end: Outcome,
        result: Option<Value>,
        error: Option<String>,
        duration: Option<Duration>,
        now: Now,
    ) {
        let status = TaskStatus::from(end);
        let Some(state) = self.tasks.state_mut(task_id) else { return };
        let node = state.assigned_node.clone();
        state.status = status;
        state.result = result;
        if error.is_some() || status == TaskStatus::Completed {
            state.error = error.clone();
        }
        state.completed_at = Some(Timestamp(now.ms));
        state.next_attempt_at = None;
        let row = self.tasks.end(task_id);
        if let Some(n) = &node {
            self.registry.unassign(n, task_id);
            if let Some(d) = duration {
                self.registry.count_attempt(n, status, d);
            }
        }
        self.task_event(task_id, end.into(), node.as_deref(), error, now);
        self.schedule_task_ended(task_id, status, now);
        let step = row.and_then(|r| r.links).and_then(|l| l.step);
        self.task_ended_links(task_id, step.as_deref(), now);
        self.metrics
            .tasks_ended
            .get_or_create(&super::super::metrics::StatusLabel { status: status.as_str().into() })
            .inc();
        tracing::info!(target: "openclaw::coordinator", task_id, status = status.as_str(), node = node.as_deref().unwrap_or(""), "task ended");
    }

    /// An attempt ended badly (`outcome`: failed or timeout). `counts`: it spends one of
    /// the retries (a 429 from the gateway does not). `permanent`: retrying cannot help.
    /// Requeues with backoff, or ends the task.
    #[allow(clippy::too_many_arguments)]
    fn attempt_failed(
        &mut self,
        task_id: &str,
        outcome: Outcome,
        error: String,
        result: Option<Value>,
        counts: bool,
        permanent: bool,
        retry_after: Option<Duration>,
        duration: Option<Duration>,
        now: Now,
    ) {
        let Some(task) = self.tasks.get(task_id) else { return };
        // A cancel that was acknowledged wins over however the attempt ended.
        if task.state.cancel_requested {
            self.finish(task_id, Outcome::Cancelled, result, Some(format!("cancelled ({error})")), duration, now);
            return;
        }
        let node = task.state.assigned_node.clone();
        let spent = task.state.retry_count + u32::from(counts);
        let max_retries = task.max_retries;
        if permanent || (counts && spent > max_retries) {
            // A permanent failure spends none of the retries: it never used them.
            if let Some(s) = self.tasks.state_mut(task_id).filter(|_| !permanent) {
                s.retry_count = spent.min(max_retries);
            }
            let error = if permanent {
                format!("{error} (permanent: not retried)")
            } else if spent > 1 {
                format!("{error} (after {spent} attempts)")
            } else {
                error
            };
            self.finish(task_id, outcome, result, Some(error), duration, now);
            return;
        }
        if let Some(n) = &node {
            self.registry.unassign(n, task_id);
            // Bounces that spend no retry (429, a full worker) are not work done.
            if let Some(d) = duration.filter(|_| counts) {
                self.registry.count_attempt(n, TaskStatus::Failed, d);
            }
        }
        let delay = match retry_after {
            Some(d) => d,
            None => util::backoff(self.settings.backoff_base, self.settings.backoff_max, spent.max(1)),
        };
        let Some(state) = self.tasks.state_mut(task_id) else { return };
        state.retry_count = spent;
        state.status = TaskStatus::Pending;
        state.assigned_node = None;
        state.cancel_requested = false;
        state.error = Some(error.clone());
        state.next_attempt_at = Some(Timestamp(now.ms + delay.as_millis() as i64));
        if counts
            && let Some(n) = &node
            && !state.failed_on.contains(n)
        {
            state.failed_on.push(n.clone());
        }
        let plan = if counts {
            format!("retry {spent} of {max_retries} in {}", util::short_duration(delay))
        } else {
            format!("requeued without spending a retry; next try in {}", util::short_duration(delay))
        };
        let name = if outcome == Outcome::Timeout { TaskTransition::Timeout } else { TaskTransition::Failed };
        self.task_event(task_id, name, node.as_deref(), Some(format!("{error}; {plan}")), now);
        if delay.is_zero() {
            self.tasks.enqueue(task_id);
        } else {
            self.push_timer(now.at + delay, Timer::RetryDue(task_id.to_string()));
        }
        tracing::info!(target: "openclaw::coordinator", task_id, node = node.as_deref().unwrap_or(""), error = %error, retry_in_ms = delay.as_millis() as u64, "task attempt failed; requeued");
    }

    /// The attempt's node is gone or no longer has it: counts as a failed attempt when it
    /// had started.
    pub(super) fn attempt_lost(&mut self, task_id: &str, reason: &str, now: Now) {
        let Some(task) = self.tasks.get(task_id) else { return };
        if task.state.status == TaskStatus::Pending {
            return;
        }
        if task.state.cancel_requested {
            self.finish(task_id, Outcome::Cancelled, None, Some(format!("cancelled; {reason}")), None, now);
            return;
        }
        // An attempt that never started did not fail: requeue it at once without spending
        // a retry. One that ran counts.
        let started = task.state.status == TaskStatus::Running;
        let retry_after = (!started).then_some(Duration::ZERO);
        let error = format!("attempt lost: {reason}");
        self.attempt_failed(task_id, Outcome::Failed, error, None, started, false, retry_after, None, now);
    }

    /// A retry became due: the task may be placed again.
    pub(super) fn retry_due(&mut self, task_id: &str, now: Now) {
        if !self.tasks.is_waiting_for_retry(task_id) {
            return;
        }
        self.tasks.enqueue(task_id);
        self.schedule(now);
    }

    /// An attempt's backstop deadline passed without a result.
    pub(super) fn attempt_deadline(&mut self, task_id: &str, attempt: u32, now: Now) {
        if !self.tasks.is_on_attempt(task_id, attempt) {
            return;
        }
        let Some(task) = self.tasks.get(task_id) else { return };
        let node = task.state.assigned_node.clone().unwrap_or_default();
        let limit = util::short_duration(Duration::from_millis(task.timeout_ms.max(0) as u64));
        let error = format!("no result from node `{node}` within the timeout ({limit}) and a grace period");
        self.attempt_failed(task_id, Outcome::Timeout, error, None, true, false, None, None, now);
        self.schedule(now);
    }

    /// The active task a report is about, when it is the named attempt on that node.
    pub(super) fn check_report(&self, node: &str, task_id: &str, attempt: u32) -> Result<Option<&ActiveTask>, Error> {
        let Some(task) = self.tasks.get(task_id) else { return Ok(None) };
        if task.state.assigned_node.as_deref() != Some(node) || task.state.attempt != attempt {
            return Err(Error::new(
                ErrorCode::StaleAttempt,
                format!(
                    "stale report: task {task_id} attempt {attempt} is not assigned to node `{node}` (current attempt {} on {})",
                    task.state.attempt,
                    task.state.assigned_node.as_deref().unwrap_or("no node")
                ),
            ));
        }
        Ok(Some(task))
    }

    /// The secrets an active task uses, by name (none for an unknown task).
    pub fn task_secrets(&self, task_id: &str) -> &[String] {
        self.tasks.get(task_id).map(|t| t.secrets.as_slice()).unwrap_or(&[])
    }

    /// The worker started an attempt.
    pub fn start(&mut self, node: &str, task_id: &str, attempt: u32, now: Now) -> Result<Report, Error> {
        self.registry.secret_used(node);
        let Some(task) = self.check_report(node, task_id, attempt)? else { return Ok(Report::NotActive) };
        if task.state.status == TaskStatus::Scheduled {
            if let Some(s) = self.tasks.state_mut(task_id) {
                s.status = TaskStatus::Running;
                s.started_at = Some(Timestamp(now.ms));
            }
            self.task_event(task_id, TaskTransition::Running, Some(node), None, now);
        }
        let status = self.tasks.get(task_id).map(|t| t.state.status).unwrap_or(TaskStatus::Running);
        Ok(Report::Done(ReportResponse { success: true, task_id: task_id.into(), status, secrets: Default::default() }))
    }

    /// The worker reports how an attempt ended.
    pub fn result(&mut self, node: &str, task_id: &str, report: ResultReport, now: Now) -> Result<Report, Error> {
        let found = self.record_result(node, task_id, report, now);
        self.schedule(now);
        found
    }

    /// A worker's batch of reports, in one transition: the starts, then the results, each
    /// checked (fenced) and answered on its own as [`Core::start`] and [`Core::result`]
    /// would; the scheduler runs once, after all of them.
    pub fn reports(
        &mut self,
        node: &str,
        starts: &[TaskRef],
        results: Vec<(String, ResultReport)>,
        now: Now,
    ) -> (Reports, Reports) {
        let started = starts.iter().map(|s| self.start(node, &s.task_id, s.attempt, now)).collect();
        let ended = results.into_iter().map(|(task_id, r)| self.record_result(node, &task_id, r, now)).collect();
        self.schedule(now);
        (started, ended)
    }

    /// Results of attempts on any nodes (a transport's batch: `(node, task, report)`), in
    /// one transition, each fenced and answered as [`Core::result`] would; the scheduler
    /// runs once, after all of them.
    pub fn results(&mut self, results: Vec<(String, String, ResultReport)>, now: Now) -> Reports {
        let found = results.into_iter().map(|(node, task_id, r)| self.record_result(&node, &task_id, r, now)).collect();
        self.schedule(now);
        found
    }

    /// [`Core::result`] without running the scheduler (the caller does, once).
    fn record_result(&mut self, node: &str, task_id: &str, report: ResultReport, now: Now) -> Result<Report, Error> {
        self.registry.secret_used(node);
        let Some(task) = self.check_report(node, task_id, report.attempt)? else { return Ok(Report::NotActive) };
        let cancel_requested = task.state.cancel_requested;
        // The worker's figure, bounded by what the attempt could have taken.
        let longest = task.timeout_ms.max(0) as u64 + self.settings.attempt_grace.as_millis() as u64;
        let duration = Some(Duration::from_millis(report.duration_ms.min(longest)));
        match report.outcome {
            Outcome::Completed => self.finish(task_id, Outcome::Completed, report.result, None, duration, now),
            Outcome::Cancelled if cancel_requested => self.finish(
                task_id,
                Outcome::Cancelled,
                report.result,
                Some("cancelled while running".into()),
                duration,
                now,
            ),
            Outcome::Failed | Outcome::Timeout | Outcome::Cancelled => {
                let status = if report.outcome == Outcome::Timeout { Outcome::Timeout } else { Outcome::Failed };
                let error =
                    report.error.unwrap_or_else(|| format!("attempt ended {:?}", report.outcome).to_lowercase());
                let retry_after = report
                    .retry_after
                    .filter(|s| s.is_finite() && *s >= 0.0)
                    .map(|s| Duration::from_secs_f64(s.min(3600.0)));
                let counts = retry_after.is_none();
                self.attempt_failed(
                    task_id,
                    status,
                    error,
                    report.result,
                    counts,
                    report.permanent,
                    retry_after,
                    duration,
                    now,
                );
            }
        }
        let status = self.tasks.get(task_id).map(|t| t.state.status).unwrap_or(report.outcome.into());
        Ok(Report::Done(ReportResponse { success: true, task_id: task_id.into(), status, secrets: Default::default() }))
    }

    /// Compares what a worker holds with what it should: requeues what it lost (after a
    /// grace) and returns what it must stop.
    pub(super) fn reconcile(&mut self, node: &str, held: &[TaskRef], now: Now) -> Vec<TaskRef> {
        let held_set: HashSet<(&str, u32)> = held.iter().map(|t| (t.task_id.as_str(), t.attempt)).collect();
        let grace = self.settings.reconcile_grace.as_millis() as i64;
        let lost: Vec<String> = self
            .registry
            .assigned(node)
            .into_iter()
            .filter(|id| {
                self.tasks.get(id).is_some_and(|t| {
                    let since = t.state.started_at.or(t.state.scheduled_at).map(|s| s.0).unwrap_or(now.ms);
                    !held_set.contains(&(id.as_str(), t.state.attempt)) && now.ms - since > grace
                })
            })
            .collect();
        if !lost.is_empty() {
            for id in lost {
                self.attempt_lost(&id, &format!("node `{node}` no longer reports it"), now);
            }
            self.schedule(now);
        }
        self.cancels_for(node, held)
    }

    /// Tasks the worker holds that it must stop.
    fn cancels_for(&self, node: &str, held: &[TaskRef]) -> Vec<TaskRef> {
        held.iter()
            .filter(|h| match self.tasks.get(&h.task_id) {
                Some(t) => {
                    t.state.assigned_node.as_deref() != Some(node)
                        || t.state.attempt != h.attempt
                        || t.state.cancel_requested
                }
                None => true,
            })
            .cloned()
            .collect()
    }

    /// What a poll hands out now: assignments the worker does not hold yet, and cancels.
    pub fn poll(&self, node: &str, held: &[TaskRef]) -> (Vec<Handout>, Vec<TaskRef>) {
        let held_set: HashSet<(&str, u32)> = held.iter().map(|t| (t.task_id.as_str(), t.attempt)).collect();
        let handouts = self
            .registry
            .assigned(node)
            .iter()
            .filter_map(|id| self.tasks.get(id))
            .filter(|t| t.state.status == TaskStatus::Scheduled && !held_set.contains(&(&*t.task_id, t.state.attempt)))
            .map(|t| Handout {
                task_id: t.task_id.to_string(),
                attempt: t.state.attempt,
                skill: t.skill().to_string(),
                required_skills: t.required_skills.clone(),
                timeout: t.timeout_ms as f64 / 1000.0,
                priority: t.priority,
                secrets: t.secrets.clone(),
                links: t.links.as_deref().cloned(),
            })
            .collect();
        (handouts, self.cancels_for(node, held))
    }

    /// A receiver that changes when the task ends; `None` when it is not active.
    pub fn wait_for(&mut self, task_id: &str) -> Option<watch::Receiver<bool>> {
        self.tasks.wait_for(task_id)
    }

    /// The live state of an active task, with why it waits when pending.
    pub fn live(&self, task_id: &str, now_ms: i64) -> Option<(TaskState, Option<String>)> {
        let t = self.tasks.get(task_id)?;
        Some((t.state.clone(), self.pending_reason(t, now_ms)))
    }
}
