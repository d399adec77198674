//! The pending queue: tasks ready to be placed, grouped by what they need of a node (their
//! set of required skills and their target), each group in placement order (priority
//! number, then submission). A task waiting for a retry is not in the queue; its retry
//! timer puts it back when due.
//!
//! A group that no node could serve (no online, undrained node has all its skills and
//! matches its target) is *parked*: placement never looks at it, so a backlog nobody can
//! run costs nothing per submit. A node that comes online, changes its skills or is
//! undrained unparks the groups it can serve, found through an index of parked groups by
//! skill.
//!
//! Invariants: no group is empty; a group is either active or parked, never both; every
//! parked group is in `parked_by_skill` under each of its skills.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use crate::model::Target;

/// Placement order: priority number (0 = critical first), then submission order, then id.
pub type QueueKey = (i64, i64, Arc<str>);

/// What a task needs of a node: its required skills (sorted, without duplicates) and
/// where it may run. Tasks with equal needs form one group.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Needs {
    pub skills: Vec<String>,
    pub target: Option<Target>,
}

/// A group's key, shared by the group and its tasks.
pub type Group = Arc<Needs>;

/// The needs of a task with these required skills and this target.
pub fn needs(required: &[String], target: Option<&Target>) -> Needs {
    let mut skills: Vec<String> = required.to_vec();
    skills.sort();
    skills.dedup();
    Needs { skills, target: target.cloned() }
}

/// Ready tasks by what they need.
#[derive(Debug, Default)]
pub struct PendingQueue {
    active: HashMap<Group, BTreeSet<QueueKey>>,
    parked: HashMap<Group, BTreeSet<QueueKey>>,
    parked_by_skill: HashMap<String, HashSet<Group>>,
    len: usize,
}

impl PendingQueue {
    /// The group key of these needs, shared with the group's key when the group exists
    /// (so that a large backlog holds each set once).
    pub fn intern(&self, required: &[String], target: Option<&Target>) -> Group {
        let set = needs(required, target);
        match self.active.get_key_value(&set).or_else(|| self.parked.get_key_value(&set)) {
            Some((key, _)) => key.clone(),
            None => Arc::new(set),
        }
    }

    /// Adds a task to its group (a new group starts active; placement parks it if nobody
    /// can serve it).
    pub fn insert(&mut self, set: &Group, key: QueueKey) {
        let added = match self.parked.get_mut(set) {
            Some(group) => group.insert(key),
            None => self.active.entry(set.clone()).or_default().insert(key),
        };
        if added {
            self.len += 1;
        }
    }

    pub fn remove(&mut self, set: &Group, key: &QueueKey) {
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

    pub fn contains(&self, set: &Group, key: &QueueKey) -> bool {
        self.active.get(set).or_else(|| self.parked.get(set)).is_some_and(|g| g.contains(key))
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// How many groups are parked.
    pub fn parked_groups(&self) -> usize {
        self.parked.len()
    }

    /// The first task of each active group, with the group's needs.
    pub fn active_heads(&self) -> impl Iterator<Item = (&Group, &QueueKey)> {
        self.active.iter().filter_map(|(skills, g)| g.first().map(|k| (skills, k)))
    }

    /// Parks an active group: no node can serve it.
    pub fn park(&mut self, set: &Group) {
        if let Some(group) = self.active.remove(set) {
            for skill in &set.skills {
                self.parked_by_skill.entry(skill.clone()).or_default().insert(set.clone());
            }
            self.parked.insert(set.clone(), group);
        }
    }

    /// Unparks every parked group whose skills the node has and whose target `admits`
    /// the node; returns how many.
    pub fn unpark_servable(&mut self, node_skills: &[String], admits: impl Fn(Option<&Target>) -> bool) -> usize {
        let have: HashSet<&str> = node_skills.iter().map(String::as_str).collect();
        let mut servable: HashSet<Group> = HashSet::new();
        for skill in node_skills {
            if let Some(sets) = self.parked_by_skill.get(skill) {
                servable.extend(
                    sets.iter()
                        .filter(|s| s.skills.iter().all(|x| have.contains(x.as_str())) && admits(s.target.as_ref()))
                        .cloned(),
                );
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

    fn unindex(&mut self, set: &Group) {
        for skill in &set.skills {
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

    fn group(skills: &[&str], target: Option<&Target>) -> Group {
        let skills: Vec<String> = skills.iter().map(|s| s.to_string()).collect();
        Arc::new(needs(&skills, target))
    }

    #[test]
    fn parked_groups_leave_the_heads_until_a_node_can_serve_them() {
        let mut q = PendingQueue::default();
        let ab = group(&["b", "a", "a"], None);
        let c = group(&["c"], None);
        q.insert(&ab, key(2, 1));
        q.insert(&c, key(2, 2));
        q.park(&ab);
        assert_eq!(q.active_heads().count(), 1);
        assert_eq!(q.parked_groups(), 1);
        q.insert(&ab, key(0, 3));
        assert_eq!(q.len(), 3);
        let anyone = |_: Option<&Target>| true;
        assert_eq!(q.unpark_servable(&["a".into()], anyone), 0, "a node with only `a` cannot serve {{a, b}}");
        assert_eq!(q.unpark_servable(&["a".into(), "b".into(), "x".into()], anyone), 1);
        let heads: Vec<&QueueKey> = q.active_heads().map(|(_, k)| k).collect();
        assert!(heads.contains(&&key(0, 3)), "{heads:?}");
        q.remove(&ab, &key(0, 3));
        q.remove(&ab, &key(2, 1));
        q.remove(&c, &key(2, 2));
        assert!(q.len() == 0 && q.active_heads().next().is_none());
        assert!(q.parked_by_skill.is_empty());
    }

    /// The same skills with another target are another group, unparked only by a node the
    /// target admits.
    #[test]
    fn a_target_makes_its_own_group_unparked_only_by_a_node_it_admits() {
        let mut q = PendingQueue::default();
        let on_b = Target { node: Some("b".into()), ..Default::default() };
        let anywhere = q.intern(&["x".into()], None);
        q.insert(&anywhere, key(2, 1));
        let only_b = q.intern(&["x".into()], Some(&on_b));
        assert!(!Arc::ptr_eq(&anywhere, &only_b));
        q.insert(&only_b, key(2, 2));
        assert!(Arc::ptr_eq(&q.intern(&["x".into()], Some(&on_b)), &only_b), "interned");
        q.park(&only_b);
        let node = |id: &'static str| {
            move |t: Option<&Target>| t.is_none_or(|t| t.admits(id, "linux", &[], &Default::default()))
        };
        assert_eq!(q.unpark_servable(&["x".into()], node("a")), 0);
        assert_eq!(q.unpark_servable(&["x".into()], node("b")), 1);
        assert_eq!(q.active_heads().count(), 2);
    }
}
