//! The node registry: the registered nodes, their indexes, and the node and cluster views.
//! The node transitions that change it are in [`super::nodes`].
//!
//! [`Registry`] owns the nodes and keeps its indexes (secret hash → node, skill → nodes)
//! consistent. Its mutable accessors say what a change is: [`Registry::entry_mut`] marks
//! the node dirty for the next batch (its durable record), [`Registry::live_mut`] for the
//! next liveness flush (heartbeat figures), and [`Registry::memory_mut`] touches only what
//! memory alone holds (the deadline); a node's record is never changed any other way.
//!
//! Node lists are written from a cache: each node's view as JSON, kept from the list that
//! wrote it until the node changes. Every mutable accessor (and every insert) gives the
//! node a new version from one counter and drops its JSON, and a list keeps what it wrote
//! only for nodes still at the version it read — so a list never shows an older view than
//! the state it read (the test holds the cached lists to serde's writing of `page`).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::{Error, Now};
use crate::model::{
    ClusterHealth, ClusterSkill, ClusterSkills, Node, NodeCounters, NodeHealth, NodeSpec, NodeStatus, NodeUsage,
    SkillHolder, Target, TaskStatus, Timestamp,
};

/// The durable part of a node: what its worker declared, its counters, the drain flag,
/// the secret's hash and the incarnation (a store keeps one of these per node).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeRecord {
    pub node_id: String,
    pub spec: NodeSpec,
    pub usage: NodeUsage,
    pub counters: NodeCounters,
    pub draining: bool,
    /// The status when the row was last written (memory derives the live status).
    pub status: String,
    pub registered_at: i64,
    pub last_heartbeat: Option<i64>,
    pub incarnation: u64,
    pub secret_hash: String,
    /// The current secret was used at least once (its worker got the registration's answer).
    pub secret_used: bool,
}

/// The volatile figures of one node, flushed in batches.
#[derive(Debug, Clone)]
pub struct Liveness {
    pub node_id: String,
    pub status: String,
    pub usage: NodeUsage,
    pub last_heartbeat: Option<i64>,
}

/// One registered node.
#[derive(Debug)]
pub(super) struct NodeEntry {
    /// The durable part.
    pub(super) record: NodeRecord,
    /// A heartbeat arrived within heartbeat_timeout.
    pub(super) online: bool,
    /// When the node goes offline unless it heartbeats.
    pub(super) deadline: Instant,
    /// A deadline timer for this node is in the heap.
    pub(super) deadline_armed: bool,
    /// Since when the node is offline (wall ms), for messages.
    pub(super) offline_since: Option<i64>,
    /// Tasks scheduled or running here.
    pub(super) assigned: BTreeSet<String>,
    /// Wakes this node's long poll.
    pub(super) wake: Arc<Notify>,
    /// Changes with every change of the node (the registry's counter; see the module).
    pub(super) version: u64,
    /// The node's view as JSON, written at `version` (for the node lists).
    pub(super) json: Option<Bytes>,
}

impl NodeEntry {
    fn running(&self) -> u32 {
        self.assigned.len() as u32
    }

    fn free_slots(&self) -> u32 {
        self.record.spec.max_concurrent_tasks.saturating_sub(self.running())
    }

    /// Online and not drained: placement may consider it.
    fn serves(&self) -> bool {
        self.online && !self.record.draining
    }

    fn has_skills(&self, skills: &[String]) -> bool {
        skills.iter().all(|s| self.record.spec.available_skills.iter().any(|a| a == s))
    }

    /// Whether a task with this target may run here.
    pub(super) fn admits(&self, target: Option<&Target>) -> bool {
        let spec = &self.record.spec;
        target.is_none_or(|t| t.admits(&self.record.node_id, &spec.platform, &spec.tags, &spec.skill_digests))
    }

    pub(super) fn status(&self) -> NodeStatus {
        if !self.online {
            NodeStatus::Offline
        } else if self.record.draining {
            NodeStatus::Maintenance
        } else if self.free_slots() == 0 {
            NodeStatus::Busy
        } else {
            NodeStatus::Online
        }
    }

    pub(super) fn view(&self) -> Node {
        let r = &self.record;
        let finished = r.counters.successful_tasks + r.counters.failed_tasks;
        Node {
            node_id: r.node_id.clone(),
            status: self.status(),
            spec: r.spec.clone(),
            running_tasks: self.running(),
            usage: r.usage,
            counters: r.counters,
            average_execution_time: if finished == 0 {
                0.0
            } else {
                r.counters.total_execution_ms as f64 / 1000.0 / finished as f64
            },
            registered_at: Some(Timestamp(r.registered_at)),
            last_heartbeat: r.last_heartbeat.map(Timestamp),
            draining: r.draining,
        }
    }
}

/// A node placement may choose, as the strategies see it (it has the task's skills and
/// matches its target).
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub node_id: &'a str,
    pub running: u32,
    pub max: u32,
    pub usage: NodeUsage,
    pub tags: &'a [String],
    pub skills: &'a [String],
}

/// Whether some node can take a task with these skills now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capacity {
    /// A serving node with the skills has a free slot.
    Free,
    /// Serving nodes with the skills exist, all full.
    Full,
    /// No serving node has the skills.
    Nobody,
}

/// A node that has a task's skills, as pending reasons describe it.
#[derive(Debug, Clone)]
pub struct Holder {
    pub node_id: String,
    pub platform: String,
    pub tags: Vec<String>,
    pub online: bool,
    pub draining: bool,
    pub running: u32,
    pub max: u32,
    pub offline_since: Option<i64>,
}

impl Holder {
    /// `w1 (macos)`, or with its tags `w1 (macos; tags: gpu, fast)`.
    pub fn describe(&self, with_tags: bool) -> String {
        if with_tags && !self.tags.is_empty() {
            format!("{} ({}; tags: {})", self.node_id, self.platform, self.tags.join(", "))
        } else if with_tags {
            format!("{} ({}; no tags)", self.node_id, self.platform)
        } else {
            format!("{} ({})", self.node_id, self.platform)
        }
    }
}

/// The nodes and their indexes.
#[derive(Default)]
pub struct Registry {
    nodes: BTreeMap<String, NodeEntry>,
    /// Node secret hash → node id.
    secrets: HashMap<String, String>,
    /// Skill → the nodes that advertise it (any status).
    by_skill: HashMap<String, BTreeSet<String>>,
    /// Nodes whose durable row changed since the last batch.
    dirty: BTreeSet<String>,
    /// Nodes removed since the last batch.
    forgotten: Vec<String>,
    /// Nodes whose liveness figures changed since the last flush.
    liveness: HashSet<String>,
    /// Round-robin position.
    rr_cursor: usize,
    /// The last version given to a node (see the module).
    versions: u64,
}

/// A node of a node list: its JSON as written before, or its view to write now.
pub enum Listed {
    Kept(Bytes),
    Fresh { version: u64, node: Box<Node> },
}

/// A node's view written by a list, to keep if the node is still at `version`.
pub struct Written {
    node_id: String,
    version: u64,
    json: Bytes,
}

/// The JSON array of a node list, and the views it wrote now (to keep for the next list).
pub fn list_json(parts: Vec<Listed>) -> (Vec<u8>, Vec<Written>) {
    // About 500 bytes a node (`cargo bench --bench load -- nodes` prints the size).
    let mut out = Vec::with_capacity(600 * parts.len() + 2);
    let mut written = Vec::new();
    out.push(b'[');
    for (i, part) in parts.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match part {
            Listed::Kept(json) => out.extend_from_slice(&json),
            Listed::Fresh { version, node } => {
                let json = Bytes::from(serde_json::to_vec(&node).unwrap_or_else(|_| b"null".to_vec()));
                out.extend_from_slice(&json);
                written.push(Written { node_id: node.node_id, version, json });
            }
        }
    }
    out.push(b']');
    (out, written)
}

impl Registry {
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn contains(&self, node_id: &str) -> bool {
        self.nodes.contains_key(node_id)
    }

    pub fn status(&self, node_id: &str) -> Option<NodeStatus> {
        self.nodes.get(node_id).map(NodeEntry::status)
    }

    /// The hash of a node's current secret (the key its NATS messages are signed with).
    pub fn secret_hash(&self, node_id: &str) -> Option<&str> {
        self.nodes.get(node_id).map(|e| e.record.secret_hash.as_str())
    }

    /// The node a secret (by its hash) belongs to.
    pub fn node_of_secret(&self, hash: &str) -> Option<&str> {
        self.secrets.get(hash).map(String::as_str)
    }

    /// Online, or restored at start and still within its first deadline: it may be
    /// running what it was given.
    pub fn is_live(&self, node_id: &str, now: Instant) -> bool {
        self.nodes.get(node_id).is_some_and(|n| n.online || n.deadline > now)
    }

    pub fn deadline_armed(&self, node_id: &str) -> bool {
        self.nodes.get(node_id).is_some_and(|n| n.deadline_armed)
    }

    /// Wakes the node's long poll.
    pub fn wake(&self, node_id: &str) {
        if let Some(n) = self.nodes.get(node_id) {
            n.wake.notify_waiters();
        }
    }

    /// What a long poll waits on.
    pub fn waker(&self, node_id: &str) -> Option<Arc<Notify>> {
        self.nodes.get(node_id).map(|n| n.wake.clone())
    }

    /// The tasks assigned to a node.
    pub fn assigned(&self, node_id: &str) -> Vec<String> {
        self.nodes.get(node_id).map(|n| n.assigned.iter().cloned().collect()).unwrap_or_default()
    }

    pub fn assign(&mut self, node_id: &str, task_id: &str) {
        if let Some(n) = Self::changing(&mut self.nodes, &mut self.versions, node_id) {
            n.assigned.insert(task_id.to_string());
            n.wake.notify_waiters();
            self.liveness.insert(node_id.to_string());
        }
    }

    pub fn unassign(&mut self, node_id: &str, task_id: &str) {
        if let Some(n) = Self::changing(&mut self.nodes, &mut self.versions, node_id) {
            n.assigned.remove(task_id);
            self.liveness.insert(node_id.to_string());
        }
    }

    /// Whether the node's current secret has been used (unknown nodes: true, nothing to mark).
    pub fn is_secret_used(&self, node_id: &str) -> bool {
        self.nodes.get(node_id).is_none_or(|n| n.record.secret_used)
    }

    /// The node's current secret was used: from now on only it (or the admin token) may
    /// register the node again while it is live. Durable, so that a restart keeps it so.
    pub fn secret_used(&mut self, node_id: &str) {
        if self.nodes.get(node_id).is_some_and(|n| !n.record.secret_used)
            && let Some(e) = self.entry_mut(node_id)
        {
            e.record.secret_used = true;
        }
    }

    /// Counts a finished attempt in the node's figures.
    pub fn count_attempt(&mut self, node_id: &str, status: TaskStatus, duration: Duration) {
        if let Some(n) = self.entry_mut(node_id) {
            let c = &mut n.record.counters;
            c.total_tasks_processed += 1;
            c.total_execution_ms = c.total_execution_ms.saturating_add(duration.as_millis() as u64);
            match status {
                TaskStatus::Completed => c.successful_tasks += 1,
                TaskStatus::Failed | TaskStatus::Timeout => c.failed_tasks += 1,
                _ => {}
            }
        }
    }

    /// The nodes that advertise every one of `skills` (the rarest skill's holders, checked)
    /// and match `target`.
    fn holding<'a>(
        &'a self,
        skills: &'a [String],
        target: Option<&'a Target>,
    ) -> impl Iterator<Item = &'a NodeEntry> + 'a {
        let rarest = skills.iter().filter_map(|s| self.by_skill.get(s).map(|n| (n.len(), n))).min_by_key(|(n, _)| *n);
        let none = skills.iter().any(|s| !self.by_skill.contains_key(s));
        rarest
            .filter(|_| !none && !skills.is_empty())
            .into_iter()
            .flat_map(|(_, ids)| ids.iter())
            .filter_map(|id| self.nodes.get(id))
            .filter(move |n| n.has_skills(skills) && n.admits(target))
    }

    /// Whether a task with these skills and this target could be placed now.
    pub fn capacity(&self, skills: &[String], target: Option<&Target>) -> Capacity {
        let mut capacity = Capacity::Nobody;
        for n in self.holding(skills, target).filter(|n| n.serves()) {
            if n.free_slots() > 0 {
                return Capacity::Free;
            }
            capacity = Capacity::Full;
        }
        capacity
    }

    /// The nodes that can take a task with these skills and this target now.
    pub fn candidates<'a>(&'a self, skills: &'a [String], target: Option<&'a Target>) -> Vec<Candidate<'a>> {
        self.holding(skills, target)
            .filter(|n| n.serves() && n.free_slots() > 0)
            .map(|n| Candidate {
                node_id: &n.record.node_id,
                running: n.running(),
                max: n.record.spec.max_concurrent_tasks,
                usage: n.record.usage,
                tags: &n.record.spec.tags,
                skills: &n.record.spec.available_skills,
            })
            .collect()
    }

    /// Every node that has these skills and matches the target, for pending reasons.
    pub fn holders(&self, skills: &[String], target: Option<&Target>) -> Vec<Holder> {
        self.holding(skills, target)
            .map(|n| Holder {
                node_id: n.record.node_id.clone(),
                platform: n.record.spec.platform.clone(),
                tags: n.record.spec.tags.clone(),
                online: n.online,
                draining: n.record.draining,
                running: n.running(),
                max: n.record.spec.max_concurrent_tasks,
                offline_since: n.offline_since,
            })
            .collect()
    }

    /// The digest of a node's copy of a skill, when it told one.
    pub fn digest_of(&self, node_id: &str, skill: &str) -> Option<&str> {
        self.nodes.get(node_id)?.record.spec.skill_digests.get(skill)?.digest.as_deref()
    }

    /// Whether any node advertises the skill.
    pub fn anyone_has(&self, skill: &str) -> bool {
        self.by_skill.contains_key(skill)
    }

    /// Nodes that have one of the skills but cannot run it now: (node, skill, the node's
    /// reason), at most `max`.
    pub fn unavailable<'a>(&'a self, skills: &'a [String], max: usize) -> Vec<(&'a str, &'a str, &'a str)> {
        self.nodes
            .values()
            .filter_map(|n| {
                skills.iter().find_map(|s| {
                    n.record
                        .spec
                        .unavailable_skills
                        .get(s)
                        .map(|why| (n.record.node_id.as_str(), s.as_str(), why.as_str()))
                })
            })
            .take(max)
            .collect()
    }

    /// Advances the round-robin cursor and returns it.
    pub fn next_round(&mut self) -> usize {
        self.rr_cursor = self.rr_cursor.wrapping_add(1);
        self.rr_cursor
    }

    /// A node, to read.
    pub(super) fn entry(&self, node_id: &str) -> Option<&NodeEntry> {
        self.nodes.get(node_id)
    }

    /// Every node, to read, in id order.
    pub(super) fn entries(&self) -> impl Iterator<Item = &NodeEntry> {
        self.nodes.values()
    }

    /// A node to change durably: it goes into the next batch.
    pub(super) fn entry_mut(&mut self, node_id: &str) -> Option<&mut NodeEntry> {
        let entry = Self::changing(&mut self.nodes, &mut self.versions, node_id)?;
        self.dirty.insert(node_id.to_string());
        Some(entry)
    }

    /// A node whose heartbeat figures (usage, last heartbeat, online) change: it goes into
    /// the next liveness flush.
    pub(super) fn live_mut(&mut self, node_id: &str) -> Option<&mut NodeEntry> {
        let entry = Self::changing(&mut self.nodes, &mut self.versions, node_id)?;
        if !self.liveness.contains(node_id) {
            self.liveness.insert(node_id.to_string());
        }
        Some(entry)
    }

    /// A node about to change: a new version, its written view dropped.
    fn changing<'a>(
        nodes: &'a mut BTreeMap<String, NodeEntry>,
        versions: &mut u64,
        node_id: &str,
    ) -> Option<&'a mut NodeEntry> {
        let entry = nodes.get_mut(node_id)?;
        *versions += 1;
        entry.version = *versions;
        entry.json = None;
        Some(entry)
    }

    /// Keeps the views a node list wrote, for nodes that did not change since it read them.
    pub(super) fn keep_listed(&mut self, written: Vec<Written>) {
        for w in written {
            if let Some(entry) = self.nodes.get_mut(&w.node_id).filter(|e| e.version == w.version) {
                entry.json = Some(w.json);
            }
        }
    }

    /// A node whose in-memory fields only (the deadline and its timer) change.
    pub(super) fn memory_mut(&mut self, node_id: &str) -> Option<&mut NodeEntry> {
        self.nodes.get_mut(node_id)
    }

    /// The node's durable record goes into the next batch (its status changed).
    pub(super) fn mark_dirty(&mut self, node_id: &str) {
        if self.nodes.contains_key(node_id) {
            self.dirty.insert(node_id.to_string());
        }
    }

    /// The node's record is as the store has it (just loaded).
    pub(super) fn mark_clean(&mut self, node_id: &str) {
        self.dirty.remove(node_id);
    }

    /// A node forgotten since the last batch is registered again: not forgotten.
    pub(super) fn unforget(&mut self, node_id: &str) {
        self.forgotten.retain(|f| f != node_id);
    }

    /// Puts an entry in, indexing its secret and skills (replacing any entry of that id).
    pub(super) fn insert(&mut self, mut entry: NodeEntry) {
        self.versions += 1;
        entry.version = self.versions;
        entry.json = None;
        let id = entry.record.node_id.clone();
        if let Some(old) = self.nodes.remove(&id) {
            self.unindex(&old);
        }
        self.secrets.insert(entry.record.secret_hash.clone(), id.clone());
        for s in &entry.record.spec.available_skills {
            self.by_skill.entry(s.clone()).or_default().insert(id.clone());
        }
        self.dirty.insert(id.clone());
        self.nodes.insert(id, entry);
    }

    fn unindex(&mut self, entry: &NodeEntry) {
        self.secrets.remove(&entry.record.secret_hash);
        for s in &entry.record.spec.available_skills {
            if let Some(ids) = self.by_skill.get_mut(s) {
                ids.remove(&entry.record.node_id);
                if ids.is_empty() {
                    self.by_skill.remove(s);
                }
            }
        }
    }

    /// Replaces a node's skills, keeping the index right.
    pub(super) fn set_skills(&mut self, node_id: &str, skills: Vec<String>) {
        let Some(entry) = self.nodes.remove(node_id) else { return };
        let mut entry = entry;
        self.unindex(&entry);
        entry.record.spec.available_skills = skills;
        self.insert(entry);
    }

    /// Takes a node out (it goes into the next batch as forgotten).
    pub(super) fn remove(&mut self, node_id: &str) -> Option<NodeEntry> {
        let entry = self.nodes.remove(node_id)?;
        self.unindex(&entry);
        self.dirty.remove(node_id);
        self.liveness.remove(node_id);
        self.forgotten.push(node_id.to_string());
        Some(entry)
    }

    /// Every node's durable record, whether it is online, and its assigned tasks (tests).
    #[cfg(test)]
    pub(super) fn inspect(&self) -> Vec<(&NodeRecord, bool, &BTreeSet<String>)> {
        self.nodes.values().map(|n| (&n.record, n.online, &n.assigned)).collect()
    }

    /// The durable rows changed since the last call (status as of now).
    pub fn take_dirty(&mut self) -> Vec<NodeRecord> {
        let dirty = std::mem::take(&mut self.dirty);
        dirty
            .into_iter()
            .filter_map(|id| self.nodes.get(&id))
            .map(|e| NodeRecord { status: e.status().to_string(), ..e.record.clone() })
            .collect()
    }

    pub fn take_forgotten(&mut self) -> Vec<String> {
        std::mem::take(&mut self.forgotten)
    }

    /// The liveness figures changed since the last call, for a batched write.
    pub fn take_liveness(&mut self) -> Vec<Liveness> {
        let changed = std::mem::take(&mut self.liveness);
        changed
            .into_iter()
            .filter_map(|id| self.nodes.get(&id))
            .map(|e| Liveness {
                node_id: e.record.node_id.clone(),
                status: e.status().to_string(),
                usage: e.record.usage,
                last_heartbeat: e.record.last_heartbeat,
            })
            .collect()
    }

    /// A node as the API shows it.
    pub fn view(&self, node_id: &str) -> Result<Node, Error> {
        self.nodes.get(node_id).map(NodeEntry::view).ok_or_else(|| Error::unknown_node(node_id))
    }

    /// Nodes, optionally only those with a status.
    pub fn list(&self, status: Option<NodeStatus>) -> Vec<Node> {
        self.page(status, None, None).0
    }

    /// Nodes in node id order after `after`, optionally only those with a status, at most
    /// `limit` (None: all); and whether a later one matches too.
    pub fn page(&self, status: Option<NodeStatus>, after: Option<&str>, limit: Option<usize>) -> (Vec<Node>, bool) {
        let (page, _, more) = self.page_of(status, after, limit, NodeEntry::view);
        (page, more)
    }

    /// `page` for a node list written as JSON ([`list_json`]): each node's JSON as written
    /// before when it has not changed since, else its view; and the last node's id.
    pub fn listed(
        &self,
        status: Option<NodeStatus>,
        after: Option<&str>,
        limit: Option<usize>,
    ) -> (Vec<Listed>, Option<String>, bool) {
        self.page_of(status, after, limit, |e| match &e.json {
            Some(json) => Listed::Kept(json.clone()),
            None => Listed::Fresh { version: e.version, node: Box::new(e.view()) },
        })
    }

    /// A page of nodes in node id order, each as `f` makes it; the last one's id; whether
    /// a later one matches too.
    fn page_of<T>(
        &self,
        status: Option<NodeStatus>,
        after: Option<&str>,
        limit: Option<usize>,
        f: impl Fn(&NodeEntry) -> T,
    ) -> (Vec<T>, Option<String>, bool) {
        use std::ops::Bound;
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut matching = self
            .nodes
            .range::<str, _>((from, Bound::Unbounded))
            .map(|(_, e)| e)
            .filter(|e| status.is_none_or(|s| e.status() == s));
        let limit = limit.unwrap_or(usize::MAX);
        let mut last = None;
        let page: Vec<T> = matching
            .by_ref()
            .take(limit)
            .map(|e| {
                last = Some(e);
                f(e)
            })
            .collect();
        let more = page.len() == limit && matching.next().is_some();
        (page, last.map(|e| e.record.node_id.clone()), more)
    }

    /// Online nodes (online, busy or maintenance), optionally only those with a skill.
    pub fn online(&self, skill: Option<&str>) -> Vec<Node> {
        match skill {
            Some(s) => {
                let skills = [s.to_string()];
                let mut v: Vec<Node> = self.holding(&skills, None).filter(|e| e.online).map(NodeEntry::view).collect();
                v.sort_by(|a, b| a.node_id.cmp(&b.node_id));
                v
            }
            None => self.nodes.values().filter(|e| e.online).map(NodeEntry::view).collect(),
        }
    }

    /// One node's health (the original's keys).
    pub fn health(&self, node_id: &str, now: Now) -> Result<NodeHealth, Error> {
        let e = self.nodes.get(node_id).ok_or_else(|| Error::unknown_node(node_id))?;
        let r = &e.record;
        Ok(NodeHealth {
            node_id: node_id.to_string(),
            hostname: r.spec.hostname.clone(),
            healthy: e.online,
            status: e.status(),
            last_heartbeat: r.last_heartbeat.map(Timestamp),
            time_since_heartbeat: r.last_heartbeat.map(|t| ((now.ms - t).max(0)) as f64 / 1000.0),
            is_timeout: !e.online,
            cpu_usage: r.usage.cpu_usage,
            memory_usage: r.usage.memory_usage,
            disk_usage: r.usage.disk_usage,
            running_tasks: e.running(),
            max_concurrent_tasks: r.spec.max_concurrent_tasks,
            available_capacity: e.free_slots(),
            draining: r.draining,
        })
    }

    /// The cluster's health; task counts come from the store.
    pub fn cluster_health(&self, tasks_by_status: BTreeMap<String, u64>, now: Now) -> ClusterHealth {
        let mut by_status: BTreeMap<String, u32> = NodeStatus::ALL.iter().map(|s| (s.to_string(), 0)).collect();
        let (mut total, mut used, mut available, mut online, mut late) = (0u32, 0u32, 0u32, 0u32, 0u32);
        for e in self.nodes.values() {
            *by_status.entry(e.status().to_string()).or_default() += 1;
            if e.online {
                online += 1;
                total += e.record.spec.max_concurrent_tasks;
                used += e.running();
                if !e.record.draining {
                    available += e.free_slots();
                }
                if e.deadline <= now.at {
                    late += 1;
                }
            }
        }
        ClusterHealth {
            healthy: online > 0,
            total_nodes: self.nodes.len() as u32,
            online_nodes: online,
            total_capacity: total,
            available_capacity: available,
            timestamp: Timestamp(now.ms),
            checked_at: Timestamp(now.ms),
            offline_nodes: by_status.get("offline").copied().unwrap_or(0),
            busy_nodes: by_status.get("busy").copied().unwrap_or(0),
            nodes_by_status: by_status,
            timeout_nodes_count: late,
            used_capacity: used,
            capacity_utilization: if total == 0 { 0.0 } else { (used as f64 / total as f64 * 1000.0).round() / 10.0 },
            tasks_by_status,
            transport: crate::model::Transport::Http,
            nats: None,
        }
    }

    /// The distinct digests nodes report, by skill name (skills without any digest absent).
    fn digests_by_skill(&self) -> BTreeMap<&str, BTreeSet<&str>> {
        let mut out: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for e in self.nodes.values() {
            for (name, c) in &e.record.spec.skill_digests {
                if let Some(d) = &c.digest {
                    out.entry(name.as_str()).or_default().insert(d.as_str());
                }
            }
        }
        out
    }

    /// The skill names whose nodes (any status) report different content.
    pub fn drifted(&self) -> BTreeSet<String> {
        self.digests_by_skill().into_iter().filter(|(_, d)| d.len() > 1).map(|(n, _)| n.to_string()).collect()
    }

    /// Every skill any node has (available, or present but unavailable), with each node's
    /// copy, whether that node would be given it now, and drift.
    pub fn skills(&self) -> ClusterSkills {
        let digests = self.digests_by_skill();
        let mut by_name: BTreeMap<&str, Vec<SkillHolder>> = BTreeMap::new();
        for e in self.nodes.values() {
            let spec = &e.record.spec;
            let names = spec.available_skills.iter().chain(spec.unavailable_skills.keys());
            for name in names {
                let reason = if let Some(why) = spec.unavailable_skills.get(name) {
                    Some(format!("cannot run it: {why}"))
                } else if !e.online {
                    Some("the node is offline".to_string())
                } else if e.record.draining {
                    Some("the node is drained (maintenance)".to_string())
                } else {
                    None
                };
                let content = spec.skill_digests.get(name);
                by_name.entry(name.as_str()).or_default().push(SkillHolder {
                    node_id: e.record.node_id.clone(),
                    status: e.status(),
                    runnable: reason.is_none(),
                    reason,
                    source: content.map(|c| c.source.clone()),
                    digest: content.and_then(|c| c.digest.clone()),
                });
            }
        }
        let skills: Vec<ClusterSkill> = by_name
            .into_iter()
            .map(|(name, nodes)| {
                let digests: Vec<String> = digests.get(name).into_iter().flatten().map(|d| d.to_string()).collect();
                ClusterSkill {
                    name: name.to_string(),
                    drift: digests.len() > 1,
                    runnable_nodes: nodes.iter().filter(|n| n.runnable).count() as u32,
                    digests,
                    nodes,
                }
            })
            .collect();
        let drifted = skills.iter().filter(|s| s.drift).map(|s| s.name.clone()).collect();
        ClusterSkills { skills, drifted }
    }

    /// Counts by status and capacity, for the metrics gauges.
    pub fn gauges(&self) -> (BTreeMap<NodeStatus, i64>, i64, i64) {
        let mut by_status: BTreeMap<NodeStatus, i64> = NodeStatus::ALL.iter().map(|s| (*s, 0)).collect();
        let (mut total, mut used) = (0i64, 0i64);
        for e in self.nodes.values() {
            *by_status.entry(e.status()).or_default() += 1;
            if e.online {
                total += i64::from(e.record.spec.max_concurrent_tasks);
                used += i64::from(e.running());
            }
        }
        (by_status, total, used)
    }
}
