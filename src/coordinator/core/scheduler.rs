//! Placement: which pending task goes to which node, and why a task still waits.
//!
//! [`Core::schedule`] runs on events (submit, node online, capacity freed, skills changed,
//! undrain, retry due), never on a polling interval. It places tasks in order — priority
//! first, FIFO within a priority — among the tasks some node can take now: each step takes
//! the earliest head of the active queue groups that have a candidate with a free slot. A
//! group no serving node could ever take is parked on the way (see the queue), so a step
//! costs O(active groups × holders of their rarest skill): neither the number of parked
//! skill sets nor the number of nodes without the skills counts.
//!
//! Candidates: online, not draining, every required skill, matching the task's target (a
//! node, a platform, tags), a free slot. A retry prefers
//! the candidates it has not failed on (a penalty, as Nomad's reschedule penalty: when only
//! nodes it failed on are free, it runs there). The strategy chooses among them; optional
//! skills break its ties.

use std::time::Duration;

use rand::seq::IndexedRandom;

use super::queue::QueueKey;
use super::registry::{Candidate, Capacity};
use super::tasks::ActiveTask;
use super::{Core, Now, Timer};
use crate::config::Strategy;
use crate::model::{Target, TaskSpec, TaskStatus, TaskTransition, Timestamp, short_digest};
use crate::util;

impl Core {
    /// Places every pending task that can be placed now.
    pub(super) fn schedule(&mut self, now: Now) {
        loop {
            // The earliest head among the groups some node can take now.
            let mut best: Option<QueueKey> = None;
            let mut nobody = Vec::new();
            for (group, head) in self.tasks.queue().active_heads() {
                if best.as_ref().is_some_and(|b| head >= b) {
                    continue;
                }
                match self.registry.capacity(&group.skills, group.target.as_ref()) {
                    Capacity::Free => best = Some(head.clone()),
                    Capacity::Full => {}
                    Capacity::Nobody => nobody.push(group.clone()),
                }
            }
            for group in &nobody {
                self.tasks.park(group);
            }
            let Some((_, _, task_id)) = best else { return };
            let Some(node) = self.pick_node(&task_id) else { return };
            self.place(&task_id, &node, now);
        }
    }

    /// The node a task should go to now, if any.
    fn pick_node(&mut self, task_id: &str) -> Option<String> {
        let strategy = self.settings.strategy;
        let rr = if strategy == Strategy::RoundRobin { self.registry.next_round() } else { 0 };
        let task = self.tasks.get(task_id)?;
        let mut candidates = self.registry.candidates(&task.required_skills, task.target.as_deref());
        if candidates.iter().any(|c| !task.state.failed_on.iter().any(|f| f == c.node_id)) {
            candidates.retain(|c| !task.state.failed_on.iter().any(|f| f == c.node_id));
        }
        let optional = |n: &Candidate| task.optional_skills.iter().filter(|s| n.skills.contains(s)).count();
        let load = |n: &Candidate| n.running as f64 / n.max as f64;
        let chosen = match strategy {
            Strategy::LeastLoaded => candidates.iter().min_by(|a, b| {
                load(a).total_cmp(&load(b)).then(optional(b).cmp(&optional(a))).then(a.running.cmp(&b.running))
            }),
            Strategy::BestFit => candidates.iter().max_by(|a, b| {
                best_fit_score(a)
                    .total_cmp(&best_fit_score(b))
                    .then(optional(a).cmp(&optional(b)))
                    .then(b.node_id.cmp(a.node_id))
            }),
            Strategy::Affinity => {
                let tags = |n: &Candidate| task.affinity_tags.iter().filter(|t| n.tags.contains(t)).count();
                candidates.iter().min_by(|a, b| {
                    tags(b).cmp(&tags(a)).then(load(a).total_cmp(&load(b))).then(optional(b).cmp(&optional(a)))
                })
            }
            Strategy::RoundRobin | Strategy::Random => {
                let best = candidates.iter().map(optional).max().unwrap_or(0);
                let preferred: Vec<&Candidate> = candidates.iter().filter(|n| optional(n) == best).collect();
                if strategy == Strategy::Random {
                    preferred.choose(&mut self.rng).copied()
                } else if preferred.is_empty() {
                    None
                } else {
                    preferred.get(rr % preferred.len()).copied()
                }
            }
        };
        chosen.map(|n| n.node_id.to_string())
    }

    /// Assigns a pending task to a node: a new attempt.
    fn place(&mut self, task_id: &str, node_id: &str, now: Now) {
        let grace = self.settings.attempt_grace;
        self.tasks.dequeue(task_id);
        let Some(state) = self.tasks.state_mut(task_id) else { return };
        let retried_elsewhere = state.failed_on.last().filter(|f| *f != node_id).cloned();
        state.status = TaskStatus::Scheduled;
        state.assigned_node = Some(node_id.to_string());
        state.attempt += 1;
        state.scheduled_at = Some(Timestamp(now.ms));
        state.started_at = None;
        state.next_attempt_at = None;
        state.cancel_requested = false;
        let attempt = state.attempt;
        let timeout = self.tasks.get(task_id).map(|t| t.timeout_ms.max(0) as u64).unwrap_or(0);
        let message = retried_elsewhere.map(|f| format!("placed away from `{f}`, where an earlier attempt failed"));
        self.task_event(task_id, TaskTransition::Scheduled, Some(node_id), message, now);
        self.registry.assign(node_id, task_id);
        self.push_timer(
            now.at + Duration::from_millis(timeout) + grace,
            Timer::AttemptDeadline(task_id.to_string(), attempt),
        );
        self.metrics.placements.inc();
    }

    /// Why a pending task has not been placed, in words.
    pub(super) fn pending_reason(&self, task: &ActiveTask, now_ms: i64) -> Option<String> {
        let state = &task.state;
        if state.status != TaskStatus::Pending {
            return None;
        }
        if let Some(why) = self.waiting_reason(&state.waiting_for) {
            return Some(why);
        }
        if let Some(due) = state.next_attempt_at.map(|t| t.0).filter(|d| *d > now_ms) {
            let wait = util::short_duration(Duration::from_millis((due - now_ms) as u64));
            let last = state.error.as_deref().map(|e| format!(" (last error: {e})")).unwrap_or_default();
            return Some(if state.retry_count == 0 {
                format!("requeued; next try due in {wait}{last}")
            } else {
                format!("retry {} of {} due in {wait}{last}", state.retry_count, task.max_retries)
            });
        }
        Some(self.why_waiting(&task.required_skills, task.target.as_deref(), now_ms))
    }

    /// Why no node can take a submission now, when that is so (`None`: some online,
    /// undrained node has the skills and matches the target, even if it is full).
    pub fn unplaceable(&self, spec: &TaskSpec, now_ms: i64) -> Option<String> {
        let target = spec.target.as_ref();
        (self.registry.capacity(&spec.required_skills, target) == Capacity::Nobody)
            .then(|| self.why_waiting(&spec.required_skills, target, now_ms))
    }

    /// Why a task with these skills and this target is not placed, in words: nobody has
    /// the skills, nobody with them matches the target, all are offline, draining or full.
    fn why_waiting(&self, required: &[String], target: Option<&Target>, now_ms: i64) -> String {
        let skills = quote_list(required);
        let noun = if required.len() == 1 { skills.clone() } else { format!("all of {skills}") };
        let holders = self.registry.holders(required, target);
        if let Some(target) = target.filter(|t| holders.is_empty() && !t.digests.is_empty()) {
            let others = self.registry.holders(required, Some(&target.unpinned()));
            if !others.is_empty() {
                let pins: Vec<String> =
                    target.digests.iter().map(|(s, d)| format!("'{s}' at {}", short_digest(d))).collect();
                let copies: Vec<String> = others
                    .iter()
                    .take(3)
                    .filter_map(|n| {
                        let (skill, _) = target.digests.iter().find(|(s, d)| {
                            self.registry.digest_of(&n.node_id, s) != Some(d.as_str())
                        })?;
                        Some(match self.registry.digest_of(&n.node_id, skill) {
                            Some(d) => format!("{} has {skill}, but a different version ({})", n.node_id, short_digest(d)),
                            None => format!("{} has {skill}, but not a version it could tell (an older worker, or a folder too large to digest)", n.node_id),
                        })
                    })
                    .collect();
                let more = if others.len() > 3 { format!(" and {} more", others.len() - 3) } else { String::new() };
                return format!("no node has {}: {}{more}", pins.join(" and "), copies.join("; "));
            }
        }
        if let Some(target) = target.filter(|_| holders.is_empty()) {
            let others = self.registry.holders(required, None);
            if !others.is_empty() {
                let with_tags = !target.tags.is_empty();
                let examples: Vec<String> = others.iter().take(3).map(|n| n.describe(with_tags)).collect();
                let more = if others.len() > 3 { format!(" and {} more", others.len() - 3) } else { String::new() };
                return format!(
                    "no node with {noun} matches the target ({target}); nodes with it: {}{more}",
                    examples.join(", ")
                );
            }
        }
        if holders.is_empty() {
            // A node that has a skill but cannot run it (OpenClaw's gateway away) does not
            // advertise it: say "cannot run", with the node's reason, not "has no".
            let unavailable = self.registry.unavailable(required, 3);
            let missing: Vec<String> = required
                .iter()
                .filter(|s| !self.registry.anyone_has(s) && !unavailable.iter().any(|(_, skill, _)| skill == s))
                .cloned()
                .collect();
            let cannot: Vec<String> = unavailable
                .iter()
                .map(|(node, skill, why)| match required.len() {
                    1 => format!("`{node}` has it but cannot run it: {why}"),
                    _ => format!("`{node}` has '{skill}' but cannot run it: {why}"),
                })
                .collect();
            let cannot = cannot.join("; ");
            return match (missing.len(), required.len(), unavailable.is_empty()) {
                (0, _, true) => format!("no node has all of {skills}"),
                (0, _, false) => format!("no node can run {noun} now: {cannot}"),
                (1, 1, _) => format!("no node has skill {skills}"),
                (_, _, true) => format!("no node has skill {}", quote_list(&missing)),
                (_, _, false) => format!("no node has skill {}; {cannot}", quote_list(&missing)),
            };
        }
        let online: Vec<_> = holders.iter().filter(|n| n.online).collect();
        if online.is_empty() {
            let examples: Vec<String> = holders
                .iter()
                .take(3)
                .map(|n| match n.offline_since {
                    Some(since) => format!(
                        "{} has it, offline for {}",
                        n.node_id,
                        util::short_duration(Duration::from_millis((now_ms - since).max(0) as u64))
                    ),
                    None => format!("{} has it, offline", n.node_id),
                })
                .collect();
            return format!("no online node has {noun} ({})", examples.join("; "));
        }
        let (draining, active): (Vec<&&super::registry::Holder>, Vec<&&super::registry::Holder>) =
            online.iter().partition(|n| n.draining);
        if active.is_empty() {
            return match draining.len() {
                1 => format!("the only online node with {noun} ({}) is draining", draining[0].node_id),
                n => format!("all {n} online nodes with {noun} are draining"),
            };
        }
        if active.iter().all(|n| n.running >= n.max) {
            let loads: Vec<String> = active.iter().map(|n| format!("{}/{}", n.running, n.max)).collect();
            let extra = if draining.is_empty() { String::new() } else { format!("; {} more draining", draining.len()) };
            return match active.len() {
                1 => format!("the only node with {noun} ({}) is full ({}){extra}", active[0].node_id, loads[0]),
                2 => format!("both nodes with {noun} are full ({}){extra}", loads.join(", ")),
                n => format!("all {n} nodes with {noun} are full ({}){extra}", loads.join(", ")),
            };
        }
        "waiting for its turn: a node with free capacity exists and placement is under way".into()
    }
}

/// The original's best-fit score: free CPU and memory, and free slots.
fn best_fit_score(n: &Candidate) -> f64 {
    let free_ratio = (n.max - n.running.min(n.max)) as f64 / n.max as f64;
    (100.0 - n.usage.cpu_usage) * 0.3 + (100.0 - n.usage.memory_usage) * 0.3 + free_ratio * 100.0 * 0.2
}

/// `'a'`, `'a' and 'b'`, `'a', 'b' and 'c'`.
fn quote_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("'{s}'")).collect();
    match quoted.len() {
        0 => String::new(),
        1 => quoted[0].clone(),
        n => format!("{} and {}", quoted[..n - 1].join(", "), quoted[n - 1]),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn lists_read_naturally() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(super::quote_list(&v(&["a"])), "'a'");
        assert_eq!(super::quote_list(&v(&["a", "b"])), "'a' and 'b'");
        assert_eq!(super::quote_list(&v(&["a", "b", "c"])), "'a', 'b' and 'c'");
    }
}
