//! Linked tasks: dependencies (`depends_on`), fan-out groups (`target.each_node`) and the
//! groups of workflows. They compile to ordinary tasks, so fencing, retries and events are
//! those of any task; this file adds only when a task may be placed and when a group ends.
//!
//! Invariants:
//! - What a task still waits for is durable: its state's `waiting_for` (the parents it
//!   depends on, or a group's children that have not ended). A task that ends updates its
//!   waiters in the same transition, so the end and the release reach the store in one
//!   batch; after a crash the restored `waiting_for` is exactly right.
//! - A pending task with a non-empty `waiting_for` is in no queue and has no retry timer:
//!   only the end of the last task it waits for enqueues it (or cancels it, under
//!   `on_parent_failure: cancel`, with a reason naming the parent and its status).
//! - A group task never runs: it is `running` from its submission (no node, no attempt) and
//!   ends when its last child ends, with the children's results combined by step or node
//!   and a status from theirs ([`combined`]).
//! - Which tasks wait for a task is an index rebuilt from `waiting_for` (at submit and at
//!   restore); an entry whose waiter has already ended is skipped.
//! - The checks (unknown ids, cycles) happen before anything changes: a refused submission
//!   leaves the state as it was.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{Value, json};

use super::tasks::NewTask;
use super::{Core, Error, Now};
use crate::model::workflow::{Step as WorkflowStep, references};
use crate::model::{
    ErrorCode, GroupKind, OnParentFailure, Outcome, SubmitTask, TaskLinks, TaskSpec, TaskStatus, TaskTransition,
    TaskType, Timestamp, Workflow,
};
use crate::util;

/// What the store says of the tasks a submission depends on, by id: their status now
/// (tasks the store does not know are absent).
pub type Known = BTreeMap<String, TaskStatus>;

/// Refuses `depends_on` ids that neither the core nor the store knows (400 `bad_request`:
/// the submission is what is wrong, not the path), naming them.
pub fn unknown_ids(depends_on: &[String], active: impl Fn(&str) -> bool, known: &Known) -> Result<(), Error> {
    let unknown: Vec<&str> =
        depends_on.iter().map(String::as_str).filter(|id| !active(id) && !known.contains_key(*id)).collect();
    if unknown.is_empty() {
        return Ok(());
    }
    Err(Error::new(
        ErrorCode::BadRequest,
        format!(
            "depends_on: no task {} (see `openclaw tasks list`; ended tasks are purged after storage.task_retention_days)",
            unknown.join(", ")
        ),
    ))
}

/// A cycle among new tasks that depend on each other by name (`needs`), as the names along
/// it with the first repeated at the end; `None` when there is none. Unknown names are not
/// followed (they are refused on their own).
pub fn cycle(needs: &BTreeMap<String, Vec<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit<'a>(
        needs: &'a BTreeMap<String, Vec<String>>,
        name: &'a str,
        marks: &mut HashMap<&'a str, Mark>,
        trail: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        match marks.get(name) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let from = trail.iter().position(|n| *n == name).unwrap_or(0);
                let mut cycle: Vec<String> = trail[from..].iter().map(|s| s.to_string()).collect();
                cycle.push(name.to_string());
                return Some(cycle);
            }
            None => {}
        }
        let edges = needs.get(name)?;
        marks.insert(name, Mark::Open);
        trail.push(name);
        for need in edges {
            if let Some(c) = visit(needs, need, marks, trail) {
                return Some(c);
            }
        }
        trail.pop();
        marks.insert(name, Mark::Done);
        None
    }
    let mut marks = HashMap::new();
    needs.keys().find_map(|name| visit(needs, name, &mut marks, &mut Vec::new()))
}

/// How a group ends, from its children's statuses: `completed` when all completed;
/// `partly_failed` when some did and some did not; `failed` when none did (`cancelled`
/// when every child was cancelled, or the group was). The task status is `completed`,
/// `failed` or `cancelled`; `partly_failed` is the combined result's `outcome` (a task
/// status it is not, so every filter and count keeps meaning what it meant).
pub fn combined(statuses: &[TaskStatus], cancel_requested: bool) -> (Outcome, &'static str) {
    let done = statuses.iter().filter(|s| **s == TaskStatus::Completed).count();
    if cancel_requested || (!statuses.is_empty() && statuses.iter().all(|s| *s == TaskStatus::Cancelled)) {
        (Outcome::Cancelled, "cancelled")
    } else if done == statuses.len() && !statuses.is_empty() {
        (Outcome::Completed, "completed")
    } else if done > 0 {
        (Outcome::Failed, "partly_failed")
    } else {
        (Outcome::Failed, "failed")
    }
}

/// What a new task does at once: queued, waits for others, or is cancelled (why).
pub(super) enum Linked {
    Queue,
    Wait,
    Cancel(String),
}

/// Every string inside a JSON value.
fn collect_strings<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::String(s) => out.push(s),
        Value::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| collect_strings(v, out)),
        _ => {}
    }
}

/// A workflow's step as the submission of its task (checked like any submission).
fn step_request(name: &str, step: &WorkflowStep) -> SubmitTask {
    let mut target = step.target.clone().unwrap_or_default();
    target.each_node |= step.each_node;
    SubmitTask {
        name: name.to_string(),
        required_skills: vec![step.skill.clone()],
        parameters: Some(step.parameters()),
        timeout: step.timeout,
        max_retries: step.retries,
        priority: step.priority,
        target: Some(target),
        on_parent_failure: step.on_parent_failure,
        ..Default::default()
    }
}

/// The key of a group's results: `nodes` for a fan-out, `steps` for a workflow.
fn members(kind: GroupKind) -> &'static str {
    match kind {
        GroupKind::EachNode => "nodes",
        GroupKind::Workflow => "steps",
    }
}

impl Core {
    /// Accepts a task that depends on others (`known`: what the store says of the ones not
    /// active here). Refuses unknown ids (400, naming them). A parent that already ended
    /// counts as ended: under `cancel`, a failed one cancels the task at once (it is still
    /// stored, with the reason).
    pub fn submit_dependent(&mut self, spec: TaskSpec, known: &Known, now: Now) -> Result<String, Error> {
        let depends_on = spec.links.depends_on.clone();
        unknown_ids(&depends_on, |id| self.tasks.get(id).is_some(), known)?;
        if let Some((id, status)) = depends_on
            .iter()
            .filter(|id| self.tasks.get(id).is_none())
            .filter_map(|id| known.get(id).map(|s| (id, *s)))
            .find(|(_, s)| !s.is_terminal())
        {
            // It ended between the caller's read and this transition: the caller reads again.
            return Err(Error::new(
                ErrorCode::Unavailable,
                format!("task {id} changed ({status}) during the submission"),
            ));
        }
        self.ended_parents = depends_on
            .iter()
            .filter(|id| self.tasks.get(id).is_none())
            .filter_map(|id| known.get(id).map(|s| (id.clone(), *s)))
            .collect();
        let id = self.submit(spec, now);
        self.ended_parents.clear();
        Ok(id)
    }

    /// A new task's links, once it is in memory: what it waits for, or why it is cancelled
    /// at once (a parent that already ended other than completed, under `cancel`).
    pub(super) fn link_new(&mut self, task_id: &str, spec: &TaskSpec) -> Linked {
        if spec.links.depends_on.is_empty() {
            return Linked::Queue;
        }
        if spec.links.on_parent_failure == OnParentFailure::Cancel
            && let Some((id, status)) =
                spec.links.depends_on.iter().find_map(|id| {
                    self.ended_parents.get(id).filter(|s| **s != TaskStatus::Completed).map(|s| (id, *s))
                })
        {
            return Linked::Cancel(format!("task {id} ended {status}; on_parent_failure is cancel"));
        }
        let mut waiting = Vec::new();
        for parent in &spec.links.depends_on {
            if self.tasks.get(parent).is_some() {
                waiting.push(parent.clone());
                self.tasks.add_waiter(parent, task_id);
            }
        }
        if waiting.is_empty() {
            return Linked::Queue;
        }
        if let Some(s) = self.tasks.state_mut(task_id) {
            s.waiting_for = waiting;
        }
        Linked::Wait
    }

    /// Why a task that waits for others is pending, in words (`None`: it waits for nothing).
    pub(super) fn waiting_reason(&self, waiting_for: &[String]) -> Option<String> {
        if waiting_for.is_empty() {
            return None;
        }
        let parts: Vec<String> = waiting_for
            .iter()
            .take(3)
            .map(|id| match self.tasks.get(id).map(|t| &t.state) {
                Some(s) => match (&s.assigned_node, s.status) {
                    (Some(node), status) => format!("{id} ({status} on {node})"),
                    (None, status) => format!("{id} ({status})"),
                },
                None => format!("{id} (ending)"),
            })
            .collect();
        let more = match waiting_for.len() {
            n if n > 3 => format!(" and {} more", n - 3),
            _ => String::new(),
        };
        Some(format!("waiting for task{} {}{more}", if waiting_for.len() > 1 { "s" } else { "" }, parts.join(", ")))
    }

    /// A fan-out (`target.each_node`): the group task and one child per matching online,
    /// undrained node, in one transition. With no such node the group ends failed at once,
    /// saying so (the API refuses that case before, with 409 `unplaceable`). Returns the
    /// group's id.
    pub(super) fn fan_out(&mut self, spec: TaskSpec, now: Now) -> String {
        self.fan_out_as(util::new_task_id(), spec, now)
    }

    /// [`Core::fan_out`] with the group's id chosen by the caller (a workflow's step).
    fn fan_out_as(&mut self, group_id: String, mut spec: TaskSpec, now: Now) -> String {
        let mut target = spec.target.clone().unwrap_or_default();
        target.each_node = false;
        let mut nodes: Vec<String> = self
            .registry
            .holders(&spec.required_skills, Some(&target))
            .into_iter()
            .filter(|h| h.online && !h.draining)
            .map(|h| h.node_id)
            .collect();
        nodes.sort();
        let template = spec.clone();
        spec.links.group = Some(GroupKind::EachNode);
        spec.links.depends_on.clear();
        let ids: Vec<String> = nodes.iter().map(|_| util::new_task_id()).collect();
        self.add_group(&group_id, spec, &ids, now);
        let why = self.unplaceable(&template, now.ms);
        for (node, id) in nodes.iter().zip(&ids) {
            let mut child = template.clone();
            child.target = Some(crate::model::Target { node: Some(node.clone()), ..target.clone() });
            child.links.parent = Some(group_id.clone());
            child.links.step = Some(node.clone());
            child.idempotency_key = None;
            child.schedule = None;
            self.submit_as(id.clone(), child, now);
        }
        if nodes.is_empty() {
            let error = format!(
                "fan-out to no node: {} (each_node takes the matching online nodes at submit time)",
                why.unwrap_or_else(|| "no online node matches".into())
            );
            self.end_group(&group_id, Some(error), now);
        }
        group_id
    }

    /// Puts a group task in memory: running, waiting for `children` (not yet submitted).
    pub(super) fn add_group(&mut self, group_id: &str, spec: TaskSpec, children: &[String], now: Now) {
        let kind = spec.links.group.unwrap_or(GroupKind::EachNode);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.tasks.add(NewTask { task_id: group_id.to_string(), seq, spec, submitted_at: now.ms });
        let key = members(kind);
        if let Some(s) = self.tasks.state_mut(group_id) {
            s.status = TaskStatus::Running;
            s.started_at = Some(Timestamp(now.ms));
            s.waiting_for = children.to_vec();
            s.result = Some(json!({ "outcome": "running", key: {} }));
        }
        for child in children {
            self.tasks.add_waiter(child, group_id);
        }
        let what = match kind {
            GroupKind::EachNode => format!("fan-out to {} node(s)", children.len()),
            GroupKind::Workflow => format!("workflow of {} step(s)", children.len()),
        };
        self.task_event(group_id, TaskTransition::Submitted, None, Some(what), now);
        self.metrics.tasks_submitted.inc();
    }

    /// After `task_id` ended with `status`: each task that waited for it learns it, in the
    /// same transition (a group records the child's result; a dependent is released,
    /// cancelled, or waits on). The caller runs the scheduler afterwards.
    pub(super) fn task_ended_links(&mut self, task_id: &str, step: Option<&str>, now: Now) {
        let waiters = self.tasks.take_waiters(task_id);
        if waiters.is_empty() {
            return;
        }
        let Some((state, _)) = self.tasks.state_and_skill(task_id) else { return };
        let (status, result, error) = (state.status, state.result.clone(), state.error.clone());
        for waiter in waiters {
            let Some(w) = self.tasks.get(&waiter) else { continue };
            if !w.state.waiting_for.iter().any(|p| p == task_id) {
                continue;
            }
            let group = w.links.as_ref().and_then(|l| l.group);
            let on_failure = w.links.as_ref().map(|l| l.on_parent_failure).unwrap_or_default();
            let Some(s) = self.tasks.state_mut(&waiter) else { continue };
            s.waiting_for.retain(|p| p != task_id);
            let left = s.waiting_for.len();
            if let Some(kind) = group {
                let key = step.unwrap_or(task_id).to_string();
                if let Some(Value::Object(map)) = s.result.as_mut()
                    && let Some(Value::Object(members)) = map.get_mut(members(kind))
                {
                    members.insert(
                        key.clone(),
                        json!({ "task_id": task_id, "status": status, "result": result, "error": error }),
                    );
                }
                self.task_event(
                    &waiter,
                    TaskTransition::ChildEnded,
                    None,
                    Some(format!("{key} ({task_id}) ended {status}; {left} to go")),
                    now,
                );
                if left == 0 {
                    self.end_group(&waiter, None, now);
                }
                continue;
            }
            if status != TaskStatus::Completed && on_failure == OnParentFailure::Cancel {
                let reason = match &error {
                    Some(e) => format!("task {task_id} ended {status} ({e}); on_parent_failure is cancel"),
                    None => format!("task {task_id} ended {status}; on_parent_failure is cancel"),
                };
                self.finish(&waiter, Outcome::Cancelled, None, Some(reason), None, now);
            } else if left == 0 {
                self.task_event(
                    &waiter,
                    TaskTransition::Released,
                    None,
                    Some(format!("the tasks it depends on have ended (last: {task_id}, {status})")),
                    now,
                );
                self.tasks.enqueue(&waiter);
            }
        }
    }

    /// Submits a workflow in one transition: its group task and one task per step (a
    /// fan-out group for an `each_node` step), each step depending on the steps it needs
    /// or refers to. Checked as a whole first: every problem is named by its path
    /// (`steps.summarize.needs[0]: …`, 400), a fan-out step no online node matches is 409
    /// `unplaceable`, and nothing changes. Returns the workflow task's id.
    pub fn submit_workflow(&mut self, wf: Workflow, origin: &str, now: Now) -> Result<String, Error> {
        self.workflow_from(wf, origin, None, now)
    }

    /// [`Core::submit_workflow`], for a schedule's firing too (`schedule`: the workflow task
    /// names it).
    pub(super) fn workflow_from(
        &mut self,
        wf: Workflow,
        origin: &str,
        schedule: Option<crate::model::ScheduleOrigin>,
        now: Now,
    ) -> Result<String, Error> {
        let problems = wf.check();
        if !problems.is_empty() {
            let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
            return Err(Error::new(ErrorCode::BadRequest, text.join("; ")));
        }
        let order: Vec<String> = wf.order().into_iter().map(str::to_string).collect();
        let ids: BTreeMap<String, String> = order.iter().map(|s| (s.clone(), util::new_task_id())).collect();
        let group_id = util::new_task_id();
        let mut specs = Vec::with_capacity(order.len());
        for name in &order {
            let step = &wf.steps[name];
            let at = |e: Error| Error::new(e.code, format!("steps.{name}: {}", e.message));
            let mut spec = super::validate::task_spec(step_request(name, step), origin, &self.settings).map_err(at)?;
            if spec.target.as_ref().is_some_and(|t| t.each_node)
                && let Some(why) = self.unplaceable(&spec, now.ms)
            {
                return Err(Error::new(
                    ErrorCode::Unplaceable,
                    format!("steps.{name}: {why} (each_node fans out to the matching online nodes at submit time)"),
                ));
            }
            let mut parents: Vec<String> = step.needs.clone();
            let mut texts = Vec::new();
            collect_strings(&spec.parameters, &mut texts);
            for r in texts.iter().filter_map(|t| references(t).ok()).flatten() {
                if !parents.contains(&r.step) {
                    parents.push(r.step);
                }
            }
            spec.links = TaskLinks {
                depends_on: parents.iter().filter_map(|p| ids.get(p).cloned()).collect(),
                on_parent_failure: step.on_parent_failure.unwrap_or_default(),
                parent: Some(group_id.clone()),
                step: Some(name.clone()),
                group: None,
            };
            specs.push((name.clone(), spec));
        }
        let group = TaskSpec {
            name: wf.name.clone(),
            description: wf.description.clone(),
            task_type: TaskType::Batch,
            priority: crate::model::Priority::Normal,
            required_skills: Vec::new(),
            optional_skills: Vec::new(),
            affinity_tags: Vec::new(),
            parameters: Value::Object(Default::default()),
            metadata: json!({ "workflow": wf }),
            timeout: self.settings.default_timeout.as_secs_f64(),
            max_retries: 0,
            user_id: None,
            idempotency_key: None,
            target: None,
            origin: origin.to_string(),
            retry_of: None,
            secrets: Vec::new(),
            schedule,
            links: TaskLinks { group: Some(GroupKind::Workflow), ..Default::default() },
        };
        let children: Vec<String> = order.iter().filter_map(|s| ids.get(s).cloned()).collect();
        self.add_group(&group_id, group, &children, now);
        for (name, spec) in specs {
            let id = ids[&name].clone();
            if spec.target.as_ref().is_some_and(|t| t.each_node) {
                self.fan_out_as(id.clone(), spec, now);
            } else {
                self.submit_as(id.clone(), spec, now);
            }
            // A step that ended at once (cancelled for a parent that did) is an ended
            // parent to the steps after it.
            if self.tasks.get(&id).is_none()
                && let Some((state, _)) = self.tasks.state_and_skill(&id)
            {
                self.ended_parents.insert(id, state.status);
            }
        }
        self.ended_parents.clear();
        self.schedule(now);
        Ok(group_id)
    }

    /// Ends a group task, with its status combined from its children's (`error`: a reason
    /// that ends it without children).
    pub(super) fn end_group(&mut self, group_id: &str, error: Option<String>, now: Now) {
        let Some(g) = self.tasks.get(group_id) else { return };
        let kind = g.links.as_ref().and_then(|l| l.group).unwrap_or(GroupKind::EachNode);
        let mut result = g.state.result.clone().unwrap_or_else(|| json!({}));
        let children: Vec<(String, TaskStatus)> = result
            .get(members(kind))
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            v.get("status").and_then(|s| s.as_str()?.parse().ok()).unwrap_or(TaskStatus::Failed),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let statuses: Vec<TaskStatus> = children.iter().map(|(_, s)| *s).collect();
        let (outcome, word) = combined(&statuses, g.state.cancel_requested);
        if let Value::Object(map) = &mut result {
            map.insert("outcome".into(), Value::String(word.into()));
        }
        let error = error.or_else(|| {
            let bad: Vec<String> =
                children.iter().filter(|(_, s)| *s != TaskStatus::Completed).map(|(k, s)| format!("{k} {s}")).collect();
            (outcome != Outcome::Completed).then(|| match word {
                "partly_failed" => {
                    format!("partly failed: {} of {} did not complete ({})", bad.len(), children.len(), bad.join(", "))
                }
                "cancelled" => "cancelled".to_string(),
                _ => format!("every one failed ({})", bad.join(", ")),
            })
        });
        self.finish(group_id, outcome, Some(result), error, None, now);
    }

    /// Cancels a group: its active children are cancelled, and it ends cancelled once the
    /// last has ended (at once when none was running).
    pub(super) fn cancel_group(&mut self, group_id: &str, now: Now) -> super::tasks::Cancel {
        let Some(g) = self.tasks.get(group_id) else { return super::tasks::Cancel::NotActive };
        let children = g.state.waiting_for.clone();
        if let Some(s) = self.tasks.state_mut(group_id) {
            s.cancel_requested = true;
        }
        self.task_event(
            group_id,
            TaskTransition::CancelRequested,
            None,
            Some(format!("cancelling its {} unfinished task(s)", children.len())),
            now,
        );
        for child in children {
            self.cancel(&child, now);
        }
        if self.tasks.get(group_id).is_some() { super::tasks::Cancel::Requested } else { super::tasks::Cancel::Ended }
    }

    /// After a restore: every waiter is indexed under what it waits for. A task it waits
    /// for that is not active any more (its end reached the store without the waiter's
    /// update, which one batch rules out; or the row was removed by hand) is treated as
    /// ended with its status unknown: the waiter is released, saying so.
    pub(super) fn relink(&mut self, now: Now) {
        let waiting: Vec<(String, Vec<String>)> = self
            .tasks
            .all()
            .filter(|t| !t.state.waiting_for.is_empty())
            .map(|t| (t.task_id.to_string(), t.state.waiting_for.clone()))
            .collect();
        let mut orphans: BTreeSet<String> = BTreeSet::new();
        for (waiter, parents) in &waiting {
            for p in parents {
                if self.tasks.get(p).is_some() {
                    self.tasks.add_waiter(p, waiter);
                } else {
                    orphans.insert(waiter.clone());
                }
            }
        }
        for waiter in orphans {
            let Some(s) = self.tasks.state_mut(&waiter) else { continue };
            let gone: Vec<String> = std::mem::take(&mut s.waiting_for);
            let (still, lost): (Vec<String>, Vec<String>) = gone.into_iter().partition(|p| self.tasks.get(p).is_some());
            if let Some(s) = self.tasks.state_mut(&waiter) {
                s.waiting_for = still.clone();
            }
            tracing::warn!(target: "openclaw::coordinator", task_id = %waiter, lost = ?lost, "tasks it waited for are gone from the store");
            if still.is_empty() {
                if self.tasks.get(&waiter).is_some_and(|t| t.links.as_ref().is_some_and(|l| l.group.is_some())) {
                    self.end_group(&waiter, None, now);
                } else {
                    self.task_event(
                        &waiter,
                        TaskTransition::Released,
                        None,
                        Some(format!("tasks it waited for are gone from the store: {}", lost.join(", "))),
                        now,
                    );
                    self.tasks.enqueue(&waiter);
                }
            }
        }
    }
}
