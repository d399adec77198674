//! The node registry and the node transitions: registration, heartbeats, liveness
//! deadlines, drain, leave, forget; and the node and cluster views.
//!
//! Liveness rule: a node is online from its registration or a heartbeat until
//! `heartbeat_timeout` passes without one; it goes offline at that deadline, driven by its
//! own timer. After a coordinator restart, known nodes come back from the store offline,
//! keep their secrets and assigned tasks, and become online at their first heartbeat; a
//! node that does not heartbeat within `heartbeat_timeout` of the start has its tasks
//! requeued. A node is *live* while it is online or its deadline has not passed.
//!
//! Identity rule: a node is whoever holds its current secret. Registering a live node
//! takes that secret (a restarted worker) or the admin token (which rotates the secret,
//! logged and recorded); the join token registers new or offline nodes only. Addresses in
//! request bodies are information, never identity.
//!
//! [`Registry`] owns the nodes and keeps its indexes (secret hash → node, skill → nodes)
//! consistent; a durable change marks the node dirty for the next batch, a liveness
//! change for the next liveness flush.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::{Core, Error, Now, Timer};
use crate::model::limits::{Name, SKILL_NAME};
use crate::model::{
    ADDRESS, CheckHeartbeatResponse, ClusterHealth, ErrorCode, HOSTNAME, HeartbeatRequest, HeartbeatResponse, LABEL,
    MAX_NODE_CONCURRENCY, NODE_CONCURRENCY, Node, NodeActionResponse, NodeHealth, NodeSpec, NodeStatus, NodeUsage,
    PERCENT, RegisterRequest, RegisterResponse, SKILL_REASON, Target, TaskStatus, TimedOutNode, Timestamp,
    node_id_from_hostname, validate_node_id,
};
use crate::store::nodes::{Liveness, NodeRecord};
use crate::util;

/// Who is registering a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registrant {
    /// The join token: new or offline nodes only.
    Join,
    /// The admin token: any node; a live node's secret is rotated.
    Admin,
    /// A node's own secret: that node only (a restarted worker).
    Node(String),
}

/// One registered node.
#[derive(Debug)]
struct NodeEntry {
    /// The durable part.
    record: NodeRecord,
    /// A heartbeat arrived within heartbeat_timeout.
    online: bool,
    /// When the node goes offline unless it heartbeats.
    deadline: Instant,
    /// A deadline timer for this node is in the heap.
    deadline_armed: bool,
    /// Since when the node is offline (wall ms), for messages.
    offline_since: Option<i64>,
    /// Tasks scheduled or running here.
    assigned: BTreeSet<String>,
    /// Wakes this node's long poll.
    wake: Arc<Notify>,
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
    fn admits(&self, target: Option<&Target>) -> bool {
        let spec = &self.record.spec;
        target.is_none_or(|t| t.admits(&self.record.node_id, &spec.platform, &spec.tags))
    }

    fn status(&self) -> NodeStatus {
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

    fn view(&self) -> Node {
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
        if let Some(n) = self.nodes.get_mut(node_id) {
            n.assigned.insert(task_id.to_string());
            n.wake.notify_waiters();
            self.liveness.insert(node_id.to_string());
        }
    }

    pub fn unassign(&mut self, node_id: &str, task_id: &str) {
        if let Some(n) = self.nodes.get_mut(node_id) {
            n.assigned.remove(task_id);
            self.liveness.insert(node_id.to_string());
        }
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

    fn entry_mut(&mut self, node_id: &str) -> Option<&mut NodeEntry> {
        let entry = self.nodes.get_mut(node_id)?;
        self.dirty.insert(node_id.to_string());
        Some(entry)
    }

    fn live_mut(&mut self, node_id: &str) -> Option<&mut NodeEntry> {
        let entry = self.nodes.get_mut(node_id)?;
        self.liveness.insert(node_id.to_string());
        Some(entry)
    }

    /// Puts an entry in, indexing its secret and skills (replacing any entry of that id).
    fn insert(&mut self, entry: NodeEntry) {
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
    fn set_skills(&mut self, node_id: &str, skills: Vec<String>) {
        let Some(entry) = self.nodes.remove(node_id) else { return };
        let mut entry = entry;
        self.unindex(&entry);
        entry.record.spec.available_skills = skills;
        self.insert(entry);
    }

    fn remove(&mut self, node_id: &str) -> Option<NodeEntry> {
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
        self.nodes.values().filter(|e| status.is_none_or(|s| e.status() == s)).map(NodeEntry::view).collect()
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

/// Trims, drops duplicates (keeping order) and checks a list of names.
pub fn clean_names(field: &str, names: &[String]) -> Result<Vec<String>, Error> {
    if names.len() > crate::model::MAX_SKILLS {
        return Err(Error::invalid(
            field,
            format!("at most {} entries, got {}", crate::model::MAX_SKILLS, names.len()),
        ));
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let name = check_name(&format!("{field}[{i}]"), name, SKILL_NAME)?;
        if seen.insert(name.clone()) {
            out.push(name);
        }
    }
    Ok(out)
}

/// A trimmed, non-empty name without control characters (NUL included), at most
/// `rule.max()` characters ([`Name::check`]).
pub fn check_name(field: &str, v: &str, rule: Name) -> Result<String, Error> {
    rule.check(v).map_err(|e| Error::invalid(field, e))
}

fn check_usage(field: &str, v: f64) -> Result<f64, Error> {
    if v.is_finite() && PERCENT.contains(&v) {
        Ok(v)
    } else {
        Err(Error::invalid(field, format!("must be a percentage between 0 and 100, got {v}")))
    }
}

/// Agent skills that cannot run now: skill names, and reasons of at most 2000 characters
/// without NUL.
fn check_unavailable(unavailable: &BTreeMap<String, String>) -> Result<(), Error> {
    for (skill, why) in unavailable {
        check_name("unavailable_skills", skill, SKILL_NAME)?;
        SKILL_REASON.check(why).map_err(|e| Error::invalid(&format!("unavailable_skills.{skill}"), e))?;
    }
    Ok(())
}

/// The spec a registration declares, checked.
fn spec_of(req: &RegisterRequest, peer: Option<IpAddr>) -> Result<NodeSpec, Error> {
    let max = req.max_concurrent_tasks.unwrap_or(5);
    if !NODE_CONCURRENCY.contains(&max) {
        return Err(Error::invalid(
            "max_concurrent_tasks",
            format!("must be between 1 and {MAX_NODE_CONCURRENCY}, got {max}"),
        ));
    }
    let optional = |field: &str, v: &Option<String>| -> Result<String, Error> {
        let kept = v.as_deref().map(|v| ADDRESS.check_or_blank(v)).transpose();
        Ok(kept.map_err(|e| Error::invalid(field, e))?.flatten().unwrap_or_default())
    };
    let unavailable = req.unavailable_skills.clone().unwrap_or_default();
    check_unavailable(&unavailable)?;
    let ip = optional("ip_address", &req.ip_address)?;
    Ok(NodeSpec {
        hostname: check_name("hostname", &req.hostname, HOSTNAME)?,
        platform: check_name("platform", &req.platform, LABEL)?,
        arch: check_name("arch", &req.arch, LABEL)?,
        available_skills: clean_names("available_skills", &req.available_skills)?,
        unavailable_skills: unavailable,
        max_concurrent_tasks: max,
        ip_address: if ip.is_empty() { peer.map(|p| p.to_string()).unwrap_or_default() } else { ip },
        tailscale_ip: optional("tailscale_ip", &req.tailscale_ip)?,
        port: req.port.unwrap_or(18789),
        tags: clean_names("tags", req.tags.as_deref().unwrap_or_default())?,
        version: match &req.version {
            Some(v) => Some(check_name("version", v, LABEL)?),
            None => None,
        },
    })
}

impl Core {
    /// The liveness figures changed since the last call, for a batched write.
    pub fn take_liveness(&mut self) -> Vec<Liveness> {
        self.registry.take_liveness()
    }

    /// Puts a node restored from the store into the registry (offline until it heartbeats).
    pub fn restore_node(&mut self, record: NodeRecord, now: Now) {
        let id = record.node_id.clone();
        let deadline = now.at + self.settings.heartbeat_timeout;
        self.registry.insert(NodeEntry {
            offline_since: record.last_heartbeat.or(Some(record.registered_at)),
            record,
            online: false,
            deadline,
            deadline_armed: true,
            assigned: Default::default(),
            wake: Arc::new(Notify::new()),
        });
        // Loading is not a change.
        self.registry.dirty.remove(&id);
        self.push_timer(deadline, Timer::NodeDeadline(id));
    }

    /// Registers a node, or registers it again: a new incarnation with a new secret, whose
    /// predecessor's tasks are requeued.
    pub fn register(
        &mut self,
        req: RegisterRequest,
        who: Registrant,
        peer: Option<IpAddr>,
        now: Now,
    ) -> Result<RegisterResponse, Error> {
        let spec = spec_of(&req, peer)?;
        let node_id = match &req.node_id {
            Some(id) => id.trim().to_string(),
            None => node_id_from_hostname(&spec.hostname),
        };
        validate_node_id(&node_id).map_err(|e| Error::invalid("node_id", e))?;
        let existing = self.registry.nodes.get(&node_id);
        if let Registrant::Node(owner) = &who
            && *owner != node_id
        {
            return Err(Error::new(
                ErrorCode::Forbidden,
                format!("this node secret belongs to node `{owner}`; it cannot register node `{node_id}`"),
            ));
        }
        let live = self.registry.is_live(&node_id, now.at);
        // A secret never used means its worker never got the registration's answer (the
        // coordinator stopped in between): that worker may only have the join token.
        let claimed = existing.is_some_and(|e| e.record.secret_used);
        if let (Some(old), Registrant::Join, true, true) = (existing, &who, live, claimed) {
            let seen = old.record.last_heartbeat.map(|t| util::ago(t, now.ms)).unwrap_or_else(|| "never".into());
            return Err(Error::new(
                ErrorCode::NodeIdInUse,
                format!(
                    "node id `{node_id}` belongs to a live worker (host {}, last heartbeat {seen}); give this worker its own id (--node-id or worker.node_id), or stop the other one and retry after {}s",
                    old.record.spec.hostname,
                    self.settings.heartbeat_timeout.as_secs()
                ),
            ));
        }
        if existing.is_none() && self.registry.len() >= self.settings.max_nodes {
            return Err(Error::new(
                ErrorCode::NodeLimit,
                format!(
                    "the cluster already has {} nodes (coordinator.max_nodes); forget offline ones (`openclaw nodes forget ID`) or raise the limit",
                    self.registry.len()
                ),
            ));
        }
        let secret = util::new_secret();
        let secret_hash = util::hash_secret(&secret);
        let old = self.registry.remove(&node_id);
        // Re-registering is not forgetting.
        self.registry.forgotten.retain(|f| *f != node_id);
        let is_new = old.is_none();
        let armed = old.as_ref().is_some_and(|e| e.deadline_armed);
        let (record, assigned, wake) = match old {
            Some(old) => {
                let record = NodeRecord {
                    spec,
                    incarnation: old.record.incarnation + 1,
                    secret_hash,
                    secret_used: false,
                    last_heartbeat: Some(now.ms),
                    ..old.record
                };
                (record, old.assigned, old.wake)
            }
            None => (
                NodeRecord {
                    node_id: node_id.clone(),
                    spec,
                    status: NodeStatus::Online.to_string(),
                    registered_at: now.ms,
                    last_heartbeat: Some(now.ms),
                    incarnation: 1,
                    secret_hash,
                    secret_used: false,
                    ..Default::default()
                },
                Default::default(),
                Arc::new(Notify::new()),
            ),
        };
        let incarnation = record.incarnation;
        self.registry.insert(NodeEntry {
            record,
            online: true,
            deadline: now.at + self.settings.heartbeat_timeout,
            deadline_armed: armed,
            offline_since: None,
            assigned: Default::default(),
            wake,
        });
        self.arm_deadline(&node_id, now);
        let rotated = live && who == Registrant::Admin;
        let (event, message) = match (&who, is_new) {
            (_, true) => ("registered", None),
            (Registrant::Admin, false) if rotated => (
                "secret_rotated",
                Some(format!(
                    "registered again with the admin token (incarnation {incarnation}): the previous secret no longer works"
                )),
            ),
            _ => ("registered", Some(format!("registered again (incarnation {incarnation})"))),
        };
        self.node_event(&node_id, event, message, now);
        if rotated {
            tracing::warn!(target: "openclaw::coordinator", node_id = %node_id, incarnation, "a live node was registered again with the admin token: its secret was rotated");
        }
        if !assigned.is_empty() {
            let reason = format!("node `{node_id}` registered again (incarnation {incarnation}): its worker restarted");
            for task_id in assigned {
                self.attempt_lost(&task_id, &reason, now);
            }
        }
        tracing::info!(target: "openclaw::coordinator", node_id = %node_id, incarnation, new = is_new, "node registered");
        self.unpark_for(&node_id);
        self.schedule(now);
        Ok(RegisterResponse {
            success: true,
            node_id: node_id.clone(),
            message: if is_new { "node registered".into() } else { "node registered again".into() },
            registered: is_new,
            node_info: self.registry.view(&node_id)?,
            node_secret: secret,
            incarnation,
        })
    }

    /// Unparks the queue groups this node can serve: its skills, a target it matches.
    fn unpark_for(&mut self, node_id: &str) {
        let Some(node) = self.registry.nodes.get(node_id) else { return };
        self.tasks.unpark_servable(&node.record.spec.available_skills, |t| node.admits(t));
    }

    fn arm_deadline(&mut self, node_id: &str, now: Now) {
        let deadline = now.at + self.settings.heartbeat_timeout;
        let Some(entry) = self.registry.nodes.get_mut(node_id) else { return };
        entry.deadline = deadline;
        if !entry.deadline_armed {
            entry.deadline_armed = true;
            self.push_timer(deadline, Timer::NodeDeadline(node_id.to_string()));
        }
    }

    /// A heartbeat: liveness and figures in memory; skills and reconciliation when sent.
    pub fn heartbeat(&mut self, node_id: &str, req: HeartbeatRequest, now: Now) -> Result<HeartbeatResponse, Error> {
        let usage = NodeUsage {
            cpu_usage: check_usage("cpu_usage", req.cpu_usage)?,
            memory_usage: check_usage("memory_usage", req.memory_usage)?,
            disk_usage: check_usage("disk_usage", req.disk_usage)?,
        };
        let skills = req.available_skills.as_deref().map(|s| clean_names("available_skills", s)).transpose()?;
        if let Some(unavailable) = &req.unavailable_skills {
            check_unavailable(unavailable)?;
        }
        let entry = self.registry.live_mut(node_id).ok_or_else(|| {
            Error::new(
                ErrorCode::UnknownNode,
                format!(
                    "node `{node_id}` is not registered here (the coordinator may have lost its data): register again"
                ),
            )
        })?;
        entry.record.usage = usage;
        entry.record.last_heartbeat = Some(now.ms);
        let first_use = !entry.record.secret_used;
        let came_back = !entry.online;
        entry.online = true;
        entry.offline_since = None;
        let skills_changed = skills.as_ref().is_some_and(|s| *s != entry.record.spec.available_skills);
        let unavailable_changed =
            req.unavailable_skills.as_ref().is_some_and(|u| *u != entry.record.spec.unavailable_skills);
        if let Some(skills) = skills.filter(|_| skills_changed) {
            self.registry.set_skills(node_id, skills);
        }
        if let Some(unavailable) = req.unavailable_skills.filter(|_| unavailable_changed)
            && let Some(e) = self.registry.entry_mut(node_id)
        {
            e.record.spec.unavailable_skills = unavailable;
        }
        if first_use {
            self.registry.secret_used(node_id);
        }
        self.arm_deadline(node_id, now);
        self.metrics.heartbeats.inc();
        if came_back {
            tracing::info!(target: "openclaw::coordinator", node_id, "node is online again");
            // Its status is durable: a restart must not show it offline with live tasks.
            self.registry.dirty.insert(node_id.to_string());
            self.node_event(node_id, "online", None, now);
        }
        if skills_changed || unavailable_changed {
            tracing::info!(target: "openclaw::coordinator", node_id, "node's skills changed");
            self.node_event(node_id, "skills_changed", None, now);
        }
        let cancel = match req.held_tasks {
            Some(held) => self.reconcile(node_id, &held, now),
            None => Vec::new(),
        };
        if came_back || skills_changed {
            self.unpark_for(node_id);
            self.schedule(now);
        }
        Ok(HeartbeatResponse {
            success: true,
            message: "heartbeat received".into(),
            node_id: node_id.to_string(),
            timestamp: Timestamp(now.ms),
            cancel,
            dispatch: None,
        })
    }

    /// The node leaves gracefully: offline now, its tasks requeued.
    pub fn node_shutdown(&mut self, node_id: &str, now: Now) -> Result<NodeActionResponse, Error> {
        self.registry.view(node_id)?;
        self.mark_offline(node_id, &format!("node `{node_id}` shut down"), "left", now);
        Ok(NodeActionResponse {
            success: true,
            message: format!("node {node_id} marked offline"),
            node_id: node_id.to_string(),
            node_info: Some(self.registry.view(node_id)?),
        })
    }

    /// Removes an offline node that holds no work from the registry and the store.
    pub fn forget_node(&mut self, node_id: &str, now: Now) -> Result<NodeActionResponse, Error> {
        let entry = self.registry.nodes.get(node_id).ok_or_else(|| Error::unknown_node(node_id))?;
        if entry.online || !entry.assigned.is_empty() {
            return Err(Error::new(
                ErrorCode::NodeBusy,
                format!(
                    "node `{node_id}` is {} with {} task(s); stop its worker and wait until it is offline with no tasks",
                    entry.status(),
                    entry.assigned.len()
                ),
            ));
        }
        let view = entry.view();
        self.registry.remove(node_id);
        self.node_event(node_id, "forgotten", None, now);
        tracing::info!(target: "openclaw::coordinator", node_id, "node forgotten");
        Ok(NodeActionResponse {
            success: true,
            message: format!("node {node_id} forgotten"),
            node_id: node_id.to_string(),
            node_info: Some(view),
        })
    }

    /// Drain (maintenance) on or off.
    pub fn set_draining(&mut self, node_id: &str, draining: bool, now: Now) -> Result<NodeActionResponse, Error> {
        let entry = self.registry.entry_mut(node_id).ok_or_else(|| Error::unknown_node(node_id))?;
        let changed = entry.record.draining != draining;
        entry.record.draining = draining;
        if changed {
            self.node_event(node_id, if draining { "drained" } else { "undrained" }, None, now);
            tracing::info!(target: "openclaw::coordinator", node_id, draining, "node drain changed");
        }
        if !draining {
            self.unpark_for(node_id);
            self.schedule(now);
        }
        let view = self.registry.view(node_id)?;
        Ok(NodeActionResponse {
            success: true,
            message: if draining {
                format!("node {node_id} is draining: no new tasks; {} running will finish", view.running_tasks)
            } else {
                format!("node {node_id} takes tasks again")
            },
            node_id: node_id.to_string(),
            node_info: Some(view),
        })
    }

    /// Marks a node offline and requeues its tasks.
    fn mark_offline(&mut self, node_id: &str, reason: &str, event: &str, now: Now) {
        let Some(entry) = self.registry.live_mut(node_id) else { return };
        let was_online = entry.online;
        entry.online = false;
        if entry.offline_since.is_none() {
            entry.offline_since = Some(now.ms);
        }
        let assigned: Vec<String> = entry.assigned.iter().cloned().collect();
        entry.wake.notify_waiters();
        if was_online {
            self.registry.dirty.insert(node_id.to_string());
            self.node_event(node_id, event, Some(reason.to_string()), now);
            tracing::info!(target: "openclaw::coordinator", node_id, reason, "node is offline");
        }
        for task_id in assigned {
            self.attempt_lost(&task_id, reason, now);
        }
        self.schedule(now);
    }

    /// A node's deadline timer fired.
    pub(super) fn node_deadline(&mut self, node_id: &str, now: Now) {
        let Some(entry) = self.registry.nodes.get_mut(node_id) else { return };
        if entry.deadline > now.at {
            let at = entry.deadline;
            self.timers.push(at, Timer::NodeDeadline(node_id.to_string()));
            return;
        }
        entry.deadline_armed = false;
        if entry.online || !entry.assigned.is_empty() {
            let timeout = self.settings.heartbeat_timeout.as_secs_f64();
            self.mark_offline(node_id, &format!("node `{node_id}` sent no heartbeat for {timeout}s"), "offline", now);
        }
    }

    /// The liveness check (the sweep and `POST /cluster/check-heartbeat`): every online node
    /// past its deadline goes offline now.
    pub fn check_liveness(&mut self, now: Now) -> CheckHeartbeatResponse {
        let late: Vec<TimedOutNode> = self
            .registry
            .nodes
            .values()
            .filter(|e| e.online && e.deadline <= now.at)
            .map(|e| TimedOutNode {
                node_id: e.record.node_id.clone(),
                hostname: e.record.spec.hostname.clone(),
                last_heartbeat: e.record.last_heartbeat.map(Timestamp),
                timeout_seconds: self.settings.heartbeat_timeout.as_secs_f64(),
            })
            .collect();
        for n in &late {
            // The node's own timer stays armed in the heap; it finds the node offline.
            let reason = format!("node `{}` sent no heartbeat for {}s", n.node_id, n.timeout_seconds);
            self.mark_offline(&n.node_id, &reason, "offline", now);
        }
        CheckHeartbeatResponse {
            checked_at: Timestamp(now.ms),
            timeout_nodes_count: late.len() as u32,
            timeout_nodes: late,
            all_nodes_healthy: self.registry.nodes.values().all(|e| e.online),
        }
    }
}
