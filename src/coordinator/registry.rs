//! The node registry: registration, heartbeats, liveness deadlines, drain, and the node
//! and cluster views.
//!
//! Liveness rule: a node is online from its registration or a heartbeat until
//! `heartbeat_timeout` passes without one; it goes offline at that deadline, driven by its
//! own timer. After a coordinator restart, known nodes come back from the store offline,
//! keep their secrets and assigned tasks, and become online at their first heartbeat; a
//! node that does not heartbeat within `heartbeat_timeout` of the start has its tasks
//! requeued.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use tokio::sync::Notify;

use super::error::ApiError;
use super::state::{NodeEntry, Now, State, Timer};
use crate::model::{
    CheckHeartbeatResponse, ClusterHealth, HeartbeatRequest, HeartbeatResponse, MAX_NODE_CONCURRENCY, Node,
    NodeActionResponse, NodeHealth, NodeStatus, RegisterRequest, RegisterResponse, TimedOutNode, Timestamp,
    node_id_from_hostname, validate_node_id,
};
use crate::store::nodes::{Liveness, NodeRecord};
use crate::util;

/// Path words under `/api/v1/nodes/` that cannot be node ids.
const RESERVED_IDS: &[&str] = &["online", "register", "skills"];

fn unknown_node(node_id: &str) -> ApiError {
    ApiError::NotFound(format!("no node `{node_id}` is registered (see GET /api/v1/nodes or `openclaw nodes`)"))
}

/// Trims, drops duplicates (keeping order) and checks a list of names.
pub fn clean_names(field: &str, names: &[String]) -> Result<Vec<String>, ApiError> {
    if names.len() > crate::model::MAX_SKILLS {
        return Err(ApiError::BadRequest(format!(
            "{field}: at most {} entries, got {}",
            crate::model::MAX_SKILLS,
            names.len()
        )));
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let name = name.trim();
        if name.is_empty() {
            return Err(ApiError::BadRequest(format!("{field}[{i}]: must not be empty")));
        }
        if name.chars().count() > 128 {
            return Err(ApiError::BadRequest(format!("{field}[{i}]: longer than 128 characters")));
        }
        if name.chars().any(char::is_control) {
            return Err(ApiError::BadRequest(format!("{field}[{i}]: contains control characters")));
        }
        if seen.insert(name.to_string()) {
            out.push(name.to_string());
        }
    }
    Ok(out)
}

fn check_usage(field: &str, v: f64) -> Result<f64, ApiError> {
    if v.is_finite() && (0.0..=100.0).contains(&v) {
        Ok(v)
    } else {
        Err(ApiError::BadRequest(format!("{field}: must be a percentage between 0 and 100, got {v}")))
    }
}

fn check_text(field: &str, v: &str, max: usize) -> Result<String, ApiError> {
    let v = v.trim();
    if v.is_empty() {
        return Err(ApiError::BadRequest(format!("{field}: must not be empty")));
    }
    if v.len() > max {
        return Err(ApiError::BadRequest(format!("{field}: longer than {max} characters")));
    }
    Ok(v.to_string())
}

impl State {
    /// The status the API shows for a node.
    pub fn status_of(entry: &NodeEntry) -> NodeStatus {
        if !entry.online {
            NodeStatus::Offline
        } else if entry.record.draining {
            NodeStatus::Maintenance
        } else if entry.free_slots() == 0 {
            NodeStatus::Busy
        } else {
            NodeStatus::Online
        }
    }

    /// The API view of a node.
    pub fn node_view(entry: &NodeEntry) -> Node {
        let r = &entry.record;
        let finished = r.successful_tasks + r.failed_tasks;
        Node {
            node_id: r.node_id.clone(),
            hostname: r.hostname.clone(),
            platform: r.platform.clone(),
            arch: r.arch.clone(),
            status: Self::status_of(entry),
            available_skills: r.available_skills.clone(),
            max_concurrent_tasks: r.max_concurrent_tasks,
            running_tasks: entry.running(),
            ip_address: r.ip_address.clone(),
            tailscale_ip: r.tailscale_ip.clone(),
            port: r.port,
            cpu_usage: r.cpu_usage,
            memory_usage: r.memory_usage,
            disk_usage: r.disk_usage,
            total_tasks_processed: r.total_tasks_processed,
            successful_tasks: r.successful_tasks,
            failed_tasks: r.failed_tasks,
            average_execution_time: if finished == 0 {
                0.0
            } else {
                r.total_execution_ms as f64 / 1000.0 / finished as f64
            },
            registered_at: Some(Timestamp(r.registered_at)),
            last_heartbeat: r.last_heartbeat.map(Timestamp),
            tags: r.tags.clone(),
            draining: r.draining,
            version: r.version.clone(),
            unavailable_skills: r.unavailable_skills.clone(),
        }
    }

    /// A node by id, or 404.
    pub fn node(&self, node_id: &str) -> Result<&NodeEntry, ApiError> {
        self.nodes.get(node_id).ok_or_else(|| unknown_node(node_id))
    }

    fn node_mut(&mut self, node_id: &str) -> Result<&mut NodeEntry, ApiError> {
        self.nodes.get_mut(node_id).ok_or_else(|| unknown_node(node_id))
    }

    /// Puts a node restored from the store into the registry (offline until it heartbeats).
    pub fn restore_node(&mut self, record: NodeRecord, now: Now) {
        let id = record.node_id.clone();
        self.secrets.insert(record.secret_hash.clone(), id.clone());
        let entry = NodeEntry {
            offline_since: record.last_heartbeat.or(Some(record.registered_at)),
            record,
            online: false,
            deadline: now.at + self.settings.heartbeat_timeout,
            deadline_armed: true,
            assigned: Default::default(),
            wake: Arc::new(Notify::new()),
        };
        self.nodes.insert(id.clone(), entry);
        self.push_timer(now.at + self.settings.heartbeat_timeout, Timer::NodeDeadline(id));
    }

    /// Registers a node or re-registers it (a new incarnation with a new secret; the old
    /// incarnation's tasks are requeued).
    pub fn register(
        &mut self,
        req: RegisterRequest,
        peer: Option<IpAddr>,
        now: Now,
    ) -> Result<RegisterResponse, ApiError> {
        let hostname = check_text("hostname", &req.hostname, 255)?;
        let node_id = match &req.node_id {
            Some(id) => id.trim().to_string(),
            None => node_id_from_hostname(&hostname),
        };
        validate_node_id(&node_id).map_err(|e| ApiError::BadRequest(format!("node_id: {e}")))?;
        if RESERVED_IDS.contains(&node_id.as_str()) {
            return Err(ApiError::BadRequest(format!("node_id: `{node_id}` is reserved by the API; choose another")));
        }
        let platform = check_text("platform", &req.platform, 64)?;
        let arch = check_text("arch", &req.arch, 64)?;
        let skills = clean_names("available_skills", &req.available_skills)?;
        let tags = clean_names("tags", req.tags.as_deref().unwrap_or_default())?;
        let max = req.max_concurrent_tasks.unwrap_or(5);
        if !(1..=MAX_NODE_CONCURRENCY).contains(&max) {
            return Err(ApiError::BadRequest(format!(
                "max_concurrent_tasks: must be between 1 and {MAX_NODE_CONCURRENCY}, got {max}"
            )));
        }
        let ip_address =
            req.ip_address.filter(|s| !s.trim().is_empty()).or_else(|| peer.map(|p| p.to_string())).unwrap_or_default();
        let unavailable: BTreeMap<String, String> = req.unavailable_skills.unwrap_or_default();

        if let Some(old) = self.nodes.get(&node_id)
            && old.online
            && !old.record.ip_address.is_empty()
            && !ip_address.is_empty()
            && old.record.ip_address != ip_address
        {
            // Two machines with one node id (cloned images keep the host name) would take
            // the id from each other forever; a restart on the same machine keeps its address.
            return Err(ApiError::Conflict(format!(
                "node id `{node_id}` is in use by a running worker at {} (host {}); give this worker its own id (--node-id or worker.node_id), or stop the other one and retry after {}s",
                old.record.ip_address,
                old.record.hostname,
                self.settings.heartbeat_timeout.as_secs()
            )));
        }
        let secret = util::new_secret();
        let secret_hash = util::hash_secret(&secret);
        let existing = self.nodes.remove(&node_id);
        let is_new = existing.is_none();
        let armed = existing.as_ref().is_some_and(|e| e.deadline_armed);
        let (record, assigned, wake) = match existing {
            Some(old) => {
                self.secrets.remove(&old.record.secret_hash);
                let mut r = old.record;
                r.hostname = hostname;
                r.platform = platform;
                r.arch = arch;
                r.available_skills = skills;
                r.unavailable_skills = unavailable;
                r.max_concurrent_tasks = max;
                r.ip_address = ip_address;
                r.tailscale_ip = req.tailscale_ip.unwrap_or_default();
                r.port = req.port.unwrap_or(18789);
                r.tags = tags;
                r.version = req.version;
                r.incarnation += 1;
                r.secret_hash = secret_hash.clone();
                r.last_heartbeat = Some(now.ms);
                (r, old.assigned, old.wake)
            }
            None => (
                NodeRecord {
                    node_id: node_id.clone(),
                    hostname,
                    platform,
                    arch,
                    available_skills: skills,
                    unavailable_skills: unavailable,
                    max_concurrent_tasks: max,
                    ip_address,
                    tailscale_ip: req.tailscale_ip.unwrap_or_default(),
                    port: req.port.unwrap_or(18789),
                    tags,
                    version: req.version,
                    draining: false,
                    status: NodeStatus::Online.to_string(),
                    registered_at: now.ms,
                    last_heartbeat: Some(now.ms),
                    incarnation: 1,
                    secret_hash: secret_hash.clone(),
                    ..Default::default()
                },
                Default::default(),
                Arc::new(Notify::new()),
            ),
        };
        let incarnation = record.incarnation;
        let entry = NodeEntry {
            record,
            online: true,
            deadline: now.at + self.settings.heartbeat_timeout,
            deadline_armed: armed,
            offline_since: None,
            assigned: Default::default(),
            wake,
        };
        self.secrets.insert(secret_hash, node_id.clone());
        self.nodes.insert(node_id.clone(), entry);
        self.arm_deadline(&node_id, now);
        self.write_node(&node_id);
        if !assigned.is_empty() {
            let reason = format!("node `{node_id}` registered again (incarnation {incarnation}): its worker restarted");
            for task_id in assigned {
                self.attempt_lost(&task_id, &reason, now);
            }
        }
        tracing::info!(target: "openclaw::coordinator", node_id = %node_id, incarnation, new = is_new, "node registered");
        self.schedule(now);
        let entry = &self.nodes[&node_id];
        Ok(RegisterResponse {
            success: true,
            node_id: node_id.clone(),
            message: if is_new { "node registered".into() } else { "node registered again".into() },
            registered: is_new,
            node_info: Self::node_view(entry),
            node_secret: secret,
            incarnation,
        })
    }

    fn arm_deadline(&mut self, node_id: &str, now: Now) {
        let timeout = self.settings.heartbeat_timeout;
        if let Some(entry) = self.nodes.get_mut(node_id) {
            entry.deadline = now.at + timeout;
            if !entry.deadline_armed {
                entry.deadline_armed = true;
                let at = entry.deadline;
                self.push_timer(at, Timer::NodeDeadline(node_id.to_string()));
            }
        }
    }

    /// A heartbeat: liveness and figures in memory; skills and reconciliation when sent.
    pub fn heartbeat(&mut self, node_id: &str, req: HeartbeatRequest, now: Now) -> Result<HeartbeatResponse, ApiError> {
        let cpu = check_usage("cpu_usage", req.cpu_usage)?;
        let memory = check_usage("memory_usage", req.memory_usage)?;
        let disk = check_usage("disk_usage", req.disk_usage)?;
        let skills = req.available_skills.as_deref().map(|s| clean_names("available_skills", s)).transpose()?;
        let entry = self.nodes.get_mut(node_id).ok_or_else(|| {
            ApiError::NotFound(format!(
                "node `{node_id}` is not registered here (the coordinator may have lost its data): register again"
            ))
        })?;
        entry.record.cpu_usage = cpu;
        entry.record.memory_usage = memory;
        entry.record.disk_usage = disk;
        entry.record.last_heartbeat = Some(now.ms);
        let came_back = !entry.online;
        entry.online = true;
        entry.offline_since = None;
        let mut skills_changed = false;
        if let Some(skills) = skills
            && skills != entry.record.available_skills
        {
            entry.record.available_skills = skills;
            skills_changed = true;
        }
        if let Some(unavailable) = req.unavailable_skills
            && unavailable != entry.record.unavailable_skills
        {
            entry.record.unavailable_skills = unavailable;
            skills_changed = true;
        }
        self.dirty.insert(node_id.to_string());
        self.arm_deadline(node_id, now);
        self.metrics.heartbeats.inc();
        if came_back {
            tracing::info!(target: "openclaw::coordinator", node_id, "node is online again");
        }
        if skills_changed {
            tracing::info!(target: "openclaw::coordinator", node_id, "node's skills changed");
            self.write_node(node_id);
        }
        let cancel = match req.held_tasks {
            Some(held) => self.reconcile(node_id, &held, now),
            None => Vec::new(),
        };
        if came_back || skills_changed {
            self.schedule(now);
        }
        Ok(HeartbeatResponse {
            success: true,
            message: "heartbeat received".into(),
            node_id: node_id.to_string(),
            timestamp: Timestamp(now.ms),
            cancel,
        })
    }

    /// The node leaves gracefully: offline now, its tasks requeued.
    pub fn node_shutdown(&mut self, node_id: &str, now: Now) -> Result<NodeActionResponse, ApiError> {
        self.node(node_id)?;
        self.mark_offline(node_id, &format!("node `{node_id}` shut down"), now);
        Ok(NodeActionResponse {
            success: true,
            message: format!("node {node_id} marked offline"),
            node_id: node_id.to_string(),
            node_info: Some(Self::node_view(&self.nodes[node_id])),
        })
    }

    /// Removes an offline node that holds no work from the registry and the store.
    pub fn forget_node(&mut self, node_id: &str) -> Result<NodeActionResponse, ApiError> {
        let entry = self.node(node_id)?;
        if entry.online || !entry.assigned.is_empty() {
            return Err(ApiError::Conflict(format!(
                "node `{node_id}` is {} with {} task(s); stop its worker and wait until it is offline with no tasks",
                Self::status_of(entry),
                entry.assigned.len()
            )));
        }
        let entry = self.nodes.remove(node_id).expect("looked up above");
        self.secrets.remove(&entry.record.secret_hash);
        self.dirty.remove(node_id);
        let id = node_id.to_string();
        self.write(move |c| crate::store::nodes::delete(c, &id));
        tracing::info!(target: "openclaw::coordinator", node_id, "node forgotten");
        Ok(NodeActionResponse {
            success: true,
            message: format!("node {node_id} forgotten"),
            node_id: node_id.to_string(),
            node_info: Some(Self::node_view(&entry)),
        })
    }

    /// Drain (maintenance) on or off.
    pub fn set_draining(&mut self, node_id: &str, draining: bool, now: Now) -> Result<NodeActionResponse, ApiError> {
        self.node_mut(node_id)?.record.draining = draining;
        self.write_node(node_id);
        tracing::info!(target: "openclaw::coordinator", node_id, draining, "node drain changed");
        if !draining {
            self.schedule(now);
        }
        let entry = &self.nodes[node_id];
        Ok(NodeActionResponse {
            success: true,
            message: if draining {
                format!("node {node_id} is draining: no new tasks; {} running will finish", entry.running())
            } else {
                format!("node {node_id} takes tasks again")
            },
            node_id: node_id.to_string(),
            node_info: Some(Self::node_view(entry)),
        })
    }

    /// Marks a node offline and requeues its tasks.
    pub fn mark_offline(&mut self, node_id: &str, reason: &str, now: Now) {
        let Some(entry) = self.nodes.get_mut(node_id) else {
            return;
        };
        let was_online = entry.online;
        entry.online = false;
        if entry.offline_since.is_none() {
            entry.offline_since = Some(now.ms);
        }
        let assigned: Vec<String> = entry.assigned.iter().cloned().collect();
        entry.wake.notify_waiters();
        self.dirty.insert(node_id.to_string());
        if was_online {
            tracing::info!(target: "openclaw::coordinator", node_id, reason, "node is offline");
        }
        for task_id in assigned {
            self.attempt_lost(&task_id, reason, now);
        }
        self.schedule(now);
    }

    /// A node's deadline timer fired.
    pub fn node_deadline(&mut self, node_id: &str, now: Now) {
        let Some(entry) = self.nodes.get_mut(node_id) else {
            return;
        };
        if entry.deadline > now.at {
            let at = entry.deadline;
            self.push_timer(at, Timer::NodeDeadline(node_id.to_string()));
            return;
        }
        entry.deadline_armed = false;
        if entry.online || !entry.assigned.is_empty() {
            let timeout = self.settings.heartbeat_timeout.as_secs_f64();
            self.mark_offline(node_id, &format!("node `{node_id}` sent no heartbeat for {timeout}s"), now);
        }
    }

    /// The liveness check (the sweep and `POST /cluster/check-heartbeat`): every online node
    /// past its deadline goes offline now.
    pub fn check_liveness(&mut self, now: Now) -> CheckHeartbeatResponse {
        let late: Vec<String> = self
            .nodes
            .values()
            .filter(|e| e.online && e.deadline <= now.at)
            .map(|e| e.record.node_id.clone())
            .collect();
        let timeout = self.settings.heartbeat_timeout.as_secs_f64();
        let mut timed_out = Vec::new();
        for id in late {
            let e = &self.nodes[&id];
            timed_out.push(TimedOutNode {
                node_id: id.clone(),
                hostname: e.record.hostname.clone(),
                last_heartbeat: e.record.last_heartbeat.map(Timestamp),
                timeout_seconds: timeout,
            });
            // The node's own timer stays armed in the heap; it finds the node offline.
            self.mark_offline(&id, &format!("node `{id}` sent no heartbeat for {timeout}s"), now);
        }
        let all_healthy = self.nodes.values().all(|e| e.online);
        CheckHeartbeatResponse {
            checked_at: Timestamp(now.ms),
            timeout_nodes_count: timed_out.len() as u32,
            timeout_nodes: timed_out,
            all_nodes_healthy: all_healthy,
        }
    }

    /// Nodes, optionally only those with a status.
    pub fn list_nodes(&self, status: Option<NodeStatus>) -> Vec<Node> {
        self.nodes.values().filter(|e| status.is_none_or(|s| Self::status_of(e) == s)).map(Self::node_view).collect()
    }

    /// Online nodes (online, busy or maintenance) that have a skill.
    pub fn nodes_with_skill(&self, skill: &str) -> Vec<Node> {
        self.nodes
            .values()
            .filter(|e| e.online && e.record.available_skills.iter().any(|s| s == skill))
            .map(Self::node_view)
            .collect()
    }

    /// Online nodes.
    pub fn online_nodes(&self) -> Vec<Node> {
        self.nodes.values().filter(|e| e.online).map(Self::node_view).collect()
    }

    /// One node's health (the original's keys).
    pub fn node_health(&self, node_id: &str, now: Now) -> Result<NodeHealth, ApiError> {
        let e = self.node(node_id)?;
        let status = Self::status_of(e);
        let since = e.record.last_heartbeat.map(|t| ((now.ms - t).max(0)) as f64 / 1000.0);
        let is_timeout = !e.online;
        Ok(NodeHealth {
            node_id: node_id.to_string(),
            hostname: e.record.hostname.clone(),
            healthy: e.online,
            status,
            last_heartbeat: e.record.last_heartbeat.map(Timestamp),
            time_since_heartbeat: since,
            is_timeout,
            cpu_usage: e.record.cpu_usage,
            memory_usage: e.record.memory_usage,
            disk_usage: e.record.disk_usage,
            running_tasks: e.running(),
            max_concurrent_tasks: e.record.max_concurrent_tasks,
            available_capacity: e.free_slots(),
            draining: e.record.draining,
        })
    }

    /// The cluster's health; task counts come from the store.
    pub fn cluster_health(&self, tasks_by_status: BTreeMap<String, u64>, now: Now) -> ClusterHealth {
        let mut by_status: BTreeMap<String, u32> = NodeStatus::ALL.iter().map(|s| (s.to_string(), 0)).collect();
        let (mut total, mut used, mut available, mut online, mut late) = (0u32, 0u32, 0u32, 0u32, 0u32);
        for e in self.nodes.values() {
            let status = Self::status_of(e);
            *by_status.entry(status.to_string()).or_default() += 1;
            if e.online {
                online += 1;
                total += e.record.max_concurrent_tasks;
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
        }
    }

    /// Takes the liveness figures changed since the last call, for a batched write.
    pub fn take_dirty(&mut self) -> Vec<Liveness> {
        let dirty = std::mem::take(&mut self.dirty);
        dirty
            .into_iter()
            .filter_map(|id| self.nodes.get(&id))
            .map(|e| Liveness {
                node_id: e.record.node_id.clone(),
                status: Self::status_of(e).to_string(),
                cpu_usage: e.record.cpu_usage,
                memory_usage: e.record.memory_usage,
                disk_usage: e.record.disk_usage,
                last_heartbeat: e.record.last_heartbeat,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames_become_valid_ids() {
        assert_eq!(node_id_from_hostname("Mac Mini.local"), "mac-mini.local");
        assert_eq!(node_id_from_hostname("DESKTOP-ÄB"), "desktop--b");
        assert!(validate_node_id(&node_id_from_hostname(&"x".repeat(300))).is_ok());
        assert_eq!(node_id_from_hostname(""), "node");
    }

    #[test]
    fn names_are_trimmed_and_deduplicated() {
        let v = clean_names("s", &[" a ".into(), "b".into(), "a".into()]).unwrap();
        assert_eq!(v, vec!["a", "b"]);
        let err = clean_names("available_skills", &["a".into(), " ".into()]).unwrap_err();
        assert!(err.to_string().contains("available_skills[1]"));
    }
}
