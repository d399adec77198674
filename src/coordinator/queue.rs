//! The pending queue: tasks ready to be placed, grouped by their required skills, each
//! group in placement order (priority number, then submission). A task waiting for a retry
//! is not in the queue; its retry timer puts it back when due.
//!
//! Grouping keeps placement cheap with a large backlog nobody can run: the scheduler looks
//! at one head per group, not at every pending task.

use std::collections::{BTreeSet, HashMap};

use crate::store::tasks::TaskRecord;

/// Placement order: priority number (0 = critical first), then submission order.
pub type QueueKey = (i64, i64, String);

fn key(task: &TaskRecord) -> QueueKey {
    (task.priority.number(), task.seq, task.task_id.clone())
}

/// Ready tasks by required-skill set.
#[derive(Debug, Default)]
pub struct PendingQueue {
    /// Never holds an empty group.
    groups: HashMap<Vec<String>, BTreeSet<QueueKey>>,
}

impl PendingQueue {
    pub fn insert(&mut self, task: &TaskRecord) {
        self.groups.entry(task.required_skills.clone()).or_default().insert(key(task));
    }

    pub fn remove(&mut self, task: &TaskRecord) {
        if let Some(group) = self.groups.get_mut(&task.required_skills)
            && group.remove(&key(task))
            && group.is_empty()
        {
            self.groups.remove(&task.required_skills);
        }
    }

    pub fn contains(&self, task: &TaskRecord) -> bool {
        self.groups.get(&task.required_skills).is_some_and(|g| g.contains(&key(task)))
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// The first task of each group, with the group's required skills.
    pub fn heads(&self) -> impl Iterator<Item = (&Vec<String>, &QueueKey)> {
        self.groups.iter().filter_map(|(skills, g)| g.first().map(|k| (skills, k)))
    }
}
