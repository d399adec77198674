//! Placement: which pending task goes to which node, and why a task still waits.
//!
//! [`State::schedule`] runs on events (submit, node online, capacity freed, skills changed,
//! undrain, retry due), never on a polling interval. It places tasks in order — priority
//! first, FIFO within a priority — among the tasks some node can take now: each step takes
//! the earliest head of the required-skill groups that have an eligible node with a free
//! slot. A task nobody can run is never looked at past its group's head and never holds
//! back the ones others can run. A step costs O(groups × nodes), not O(pending tasks).
//!
//! Candidates: online, not draining, every required skill, a free slot. The strategy
//! chooses among them; optional skills break its ties.

use std::time::Duration;

use rand::seq::IndexedRandom;

use super::state::{NodeEntry, Now, State, Timer, event};
use crate::config::Strategy;
use crate::model::TaskStatus;
use crate::store::tasks::TaskRecord;
use crate::util;

impl State {
    /// Places every pending task that can be placed now.
    pub fn schedule(&mut self, now: Now) {
        while !self.queue.is_empty() {
            // The earliest head among the groups some node can take now.
            let mut best: Option<&super::queue::QueueKey> = None;
            for (skills, head) in self.queue.heads() {
                if best.is_some_and(|b| head >= b) {
                    continue;
                }
                if self.nodes.values().any(|n| n.accepts_work() && n.has_skills(skills)) {
                    best = Some(head);
                }
            }
            let Some(task_id) = best.map(|k| k.2.clone()) else { return };
            let Some(task) = self.tasks.get(&task_id) else { return };
            let wants = Wants {
                required: task.required_skills.clone(),
                optional: task.optional_skills.clone(),
                affinity: task.affinity_tags.clone(),
            };
            let Some(node) = self.pick_node(&wants) else { return };
            self.place(&task_id, &node, now);
        }
    }

    /// The node a task should go to now, if any.
    fn pick_node(&mut self, task: &Wants) -> Option<String> {
        let strategy = self.settings.strategy;
        let rr = self.rr_cursor.wrapping_add(1);
        let candidates: Vec<&NodeEntry> =
            self.nodes.values().filter(|n| n.accepts_work() && n.has_skills(&task.required)).collect();
        if candidates.is_empty() {
            return None;
        }
        let optional = |n: &NodeEntry| task.optional.iter().filter(|s| n.record.available_skills.contains(s)).count();
        let load = |n: &NodeEntry| n.running() as f64 / n.record.max_concurrent_tasks as f64;
        let chosen = match strategy {
            Strategy::LeastLoaded => candidates.iter().min_by(|a, b| {
                load(a).total_cmp(&load(b)).then(optional(b).cmp(&optional(a))).then(a.running().cmp(&b.running()))
            }),
            Strategy::BestFit => candidates.iter().max_by(|a, b| {
                best_fit_score(a)
                    .total_cmp(&best_fit_score(b))
                    .then(optional(a).cmp(&optional(b)))
                    .then(b.record.node_id.cmp(&a.record.node_id))
            }),
            Strategy::Affinity => {
                let tags = |n: &NodeEntry| task.affinity.iter().filter(|t| n.record.tags.contains(t)).count();
                candidates.iter().min_by(|a, b| {
                    tags(b).cmp(&tags(a)).then(load(a).total_cmp(&load(b))).then(optional(b).cmp(&optional(a)))
                })
            }
            Strategy::RoundRobin | Strategy::Random => {
                let best = candidates.iter().map(|n| optional(n)).max().unwrap_or(0);
                let preferred: Vec<&&NodeEntry> = candidates.iter().filter(|n| optional(n) == best).collect();
                if strategy == Strategy::Random {
                    preferred.choose(&mut rand::rng()).copied()
                } else {
                    preferred.get(rr % preferred.len()).copied()
                }
            }
        };
        let chosen = chosen.map(|n| n.record.node_id.clone());
        if strategy == Strategy::RoundRobin {
            self.rr_cursor = rr;
        }
        chosen
    }

    /// Assigns a pending task to a node: a new attempt.
    fn place(&mut self, task_id: &str, node_id: &str, now: Now) {
        let grace = self.settings.attempt_grace;
        let Some(task) = self.tasks.get_mut(task_id) else {
            return;
        };
        self.queue.remove(task);
        task.status = TaskStatus::Scheduled;
        task.assigned_node = Some(node_id.to_string());
        task.attempt += 1;
        task.scheduled_at = Some(now.ms);
        task.started_at = None;
        task.next_attempt_at = None;
        task.cancel_requested = false;
        let attempt = task.attempt;
        let deadline = now.at + Duration::from_millis(task.timeout_ms as u64) + grace;
        let e = event(task, "scheduled", Some(node_id), None, now.ms);
        let snapshot = task.clone();
        self.write_task(&snapshot, Some(e));
        if let Some(node) = self.nodes.get_mut(node_id) {
            node.assigned.insert(task_id.to_string());
            node.wake.notify_waiters();
        }
        self.push_timer(deadline, Timer::AttemptDeadline(task_id.to_string(), attempt));
        self.metrics.placements.inc();
    }

    /// Why a pending task has not been placed, in words.
    pub fn pending_reason(&self, task: &TaskRecord, now_ms: i64) -> Option<String> {
        if task.status != TaskStatus::Pending {
            return None;
        }
        if let Some(due) = task.next_attempt_at.filter(|d| *d > now_ms) {
            let wait = util::short_duration(Duration::from_millis((due - now_ms) as u64));
            let last = task.error.as_deref().map(|e| format!(" (last error: {e})")).unwrap_or_default();
            return Some(if task.retry_count == 0 {
                format!("requeued; next try due in {wait}{last}")
            } else {
                format!("retry {} of {} due in {wait}{last}", task.retry_count, task.max_retries)
            });
        }
        let skills = quote_list(&task.required_skills);
        let holders: Vec<&NodeEntry> = self.nodes.values().filter(|n| n.has_skills(&task.required_skills)).collect();
        if holders.is_empty() {
            let missing: Vec<String> = task
                .required_skills
                .iter()
                .filter(|s| !self.nodes.values().any(|n| n.record.available_skills.contains(s)))
                .cloned()
                .collect();
            let unavailable: Vec<String> = self
                .nodes
                .values()
                .filter_map(|n| {
                    task.required_skills.iter().find_map(|s| {
                        n.record
                            .unavailable_skills
                            .get(s)
                            .map(|why| format!("`{}` has '{s}' but cannot run it: {why}", n.record.node_id))
                    })
                })
                .take(3)
                .collect();
            let hint = if unavailable.is_empty() { String::new() } else { format!(" ({})", unavailable.join("; ")) };
            return Some(match (missing.len(), task.required_skills.len()) {
                (0, _) => format!("no node has all of {skills}{hint}"),
                (1, 1) => format!("no node has skill {skills}{hint}"),
                _ => format!("no node has skill {}{hint}", quote_list(&missing)),
            });
        }
        let noun = if task.required_skills.len() == 1 { skills.clone() } else { format!("all of {skills}") };
        let online: Vec<&&NodeEntry> = holders.iter().filter(|n| n.online).collect();
        if online.is_empty() {
            let examples: Vec<String> = holders
                .iter()
                .take(3)
                .map(|n| match n.offline_since {
                    Some(since) => format!(
                        "{} has it, offline for {}",
                        n.record.node_id,
                        util::short_duration(Duration::from_millis((now_ms - since).max(0) as u64))
                    ),
                    None => format!("{} has it, offline", n.record.node_id),
                })
                .collect();
            return Some(format!("no online node has {noun} ({})", examples.join("; ")));
        }
        let (draining, active): (Vec<&&&NodeEntry>, Vec<&&&NodeEntry>) = online.iter().partition(|n| n.record.draining);
        if active.is_empty() {
            return Some(match draining.len() {
                1 => format!("the only online node with {noun} ({}) is draining", draining[0].record.node_id),
                n => format!("all {n} online nodes with {noun} are draining"),
            });
        }
        if active.iter().all(|n| n.free_slots() == 0) {
            let loads: Vec<String> =
                active.iter().map(|n| format!("{}/{}", n.running(), n.record.max_concurrent_tasks)).collect();
            let extra = if draining.is_empty() { String::new() } else { format!("; {} more draining", draining.len()) };
            return Some(match active.len() {
                1 => format!("the only node with {noun} ({}) is full ({}){extra}", active[0].record.node_id, loads[0]),
                2 => format!("both nodes with {noun} are full ({}){extra}", loads.join(", ")),
                n => format!("all {n} nodes with {noun} are full ({}){extra}", loads.join(", ")),
            });
        }
        Some("waiting for its turn: a node with free capacity exists and placement is under way".into())
    }
}

/// What a task asks of a node.
struct Wants {
    required: Vec<String>,
    optional: Vec<String>,
    affinity: Vec<String>,
}

/// The original's best-fit score: free CPU and memory, and free slots.
fn best_fit_score(n: &NodeEntry) -> f64 {
    let free_ratio = n.free_slots() as f64 / n.record.max_concurrent_tasks as f64;
    (100.0 - n.record.cpu_usage) * 0.3 + (100.0 - n.record.memory_usage) * 0.3 + free_ratio * 100.0 * 0.2
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
