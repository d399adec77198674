//! The pending queue: tasks ready to be placed, grouped by their set of required skills,
//! each group in placement order (priority number, then submission). A task waiting for a
//! retry is not in the queue; its retry timer puts it back when due.
//!
//! A group that no node could serve (no online, undrained node has all its skills) is
//! *parked*: placement never looks at it, so a backlog nobody can run costs nothing per
//! submit. A node that comes online, changes its skills or is undrained unparks the groups
//! it can serve, found through an index of parked groups by skill.
//!
//! Invariants: no group is empty; a group is either active or parked, never both; every
//! parked group is in `parked_by_skill` under each of its skills.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

/// Placement order: priority number (0 = critical first), then submission order, then id.
pub type QueueKey = (i64, i64, Arc<str>);

/// A set of required skills, sorted and without duplicates (the group's key).
pub type SkillSet = Arc<[String]>;

/// The group key of a task's required skills.
pub fn skill_set(required: &[String]) -> SkillSet {
    let mut v: Vec<String> = required.to_vec();
    v.sort();
    v.dedup();
    v.into()
}

/// Ready tasks by required-skill set.
#[derive(Debug, Default)]
pub struct PendingQueue {
    active: HashMap<SkillSet, BTreeSet<QueueKey>>,
    parked: HashMap<SkillSet, BTreeSet<QueueKey>>,
    parked_by_skill: HashMap<String, HashSet<SkillSet>>,
    len: usize,
}

impl PendingQueue {
    /// The group key of these skills, shared with the group's key when the group exists
    /// (so that a large backlog holds each set once).
    pub fn intern(&self, required: &[String]) -> SkillSet {
        let set = skill_set(required);
        match self.active.get_key_value(&*set).or_else(|| self.parked.get_key_value(&*set)) {
            Some((key, _)) => key.clone(),
            None => set,
        }
    }

    /// Adds a task to its group (a new group starts active; placement parks it if nobody
    /// can serve it).
    pub fn insert(&mut self, set: &SkillSet, key: QueueKey) {
        let added = match self.parked.get_mut(set) {
            Some(group) => group.insert(key),
            None => self.active.entry(set.clone()).or_default().insert(key),
        };
        if added {
            self.len += 1;
        }
    }

    pub fn remove(&mut self, set: &SkillSet, key: &QueueKey) {
        let mut removed = false;
        if let Some(group) = self.active.get_mut(set) {
            removed = group.remove(key);
            if group.is_empty() {
                self.active.remove(set);
            }
        } else if let Some(group) = self.parked.get_mut(set) {
            removed = group.remove(key);
            if group.is_empty() {
                self.parked.remove(set);
                self.unindex(set);
            }
        }
        if removed {
            self.len -= 1;
        }
    }

    pub fn contains(&self, set: &SkillSet, key: &QueueKey) -> bool {
        self.active.get(set).or_else(|| self.parked.get(set)).is_some_and(|g| g.contains(key))
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// How many groups are parked.
    pub fn parked_groups(&self) -> usize {
        self.parked.len()
    }

    /// The first task of each active group, with the group's skills.
    pub fn active_heads(&self) -> impl Iterator<Item = (&SkillSet, &QueueKey)> {
        self.active.iter().filter_map(|(skills, g)| g.first().map(|k| (skills, k)))
    }

    /// Parks an active group: no node can serve it.
    pub fn park(&mut self, set: &SkillSet) {
        if let Some(group) = self.active.remove(set) {
            for skill in set.iter() {
                self.parked_by_skill.entry(skill.clone()).or_default().insert(set.clone());
            }
            self.parked.insert(set.clone(), group);
        }
    }

    /// Unparks every parked group whose skills the node has; returns how many.
    pub fn unpark_servable(&mut self, node_skills: &[String]) -> usize {
        let have: HashSet<&str> = node_skills.iter().map(String::as_str).collect();
        let mut servable: HashSet<SkillSet> = HashSet::new();
        for skill in node_skills {
            if let Some(sets) = self.parked_by_skill.get(skill) {
                servable.extend(sets.iter().filter(|s| s.iter().all(|x| have.contains(x.as_str()))).cloned());
            }
        }
        for set in &servable {
            if let Some(group) = self.parked.remove(set) {
                self.unindex(set);
                self.active.insert(set.clone(), group);
            }
        }
        servable.len()
    }

    fn unindex(&mut self, set: &SkillSet) {
        for skill in set.iter() {
            if let Some(sets) = self.parked_by_skill.get_mut(skill) {
                sets.remove(set);
                if sets.is_empty() {
                    self.parked_by_skill.remove(skill);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(p: i64, seq: i64) -> QueueKey {
        (p, seq, format!("t{seq}").into())
    }

    #[test]
    fn parked_groups_leave_the_heads_until_a_node_can_serve_them() {
        let mut q = PendingQueue::default();
        let ab = skill_set(&["b".into(), "a".into(), "a".into()]);
        let c = skill_set(&["c".into()]);
        q.insert(&ab, key(2, 1));
        q.insert(&c, key(2, 2));
        q.park(&ab);
        assert_eq!(q.active_heads().count(), 1);
        assert_eq!(q.parked_groups(), 1);
        q.insert(&ab, key(0, 3));
        assert_eq!(q.len(), 3);
        assert_eq!(q.unpark_servable(&["a".into()]), 0, "a node with only `a` cannot serve {{a, b}}");
        assert_eq!(q.unpark_servable(&["a".into(), "b".into(), "x".into()]), 1);
        let heads: Vec<&QueueKey> = q.active_heads().map(|(_, k)| k).collect();
        assert!(heads.contains(&&key(0, 3)), "{heads:?}");
        q.remove(&ab, &key(0, 3));
        q.remove(&ab, &key(2, 1));
        q.remove(&c, &key(2, 2));
        assert!(q.len() == 0 && q.active_heads().next().is_none());
        assert!(q.parked_by_skill.is_empty());
    }
}
