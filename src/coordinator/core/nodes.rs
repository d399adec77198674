//! The node transitions: registration, heartbeats, liveness deadlines, drain, leave,
//! forget, and restoring a node at start. The registry itself (the nodes, their indexes
//! and the views) is [`super::registry`]; these transitions change it only through its
//! accessors, which mark what they touch for the next batch (durable) or the next
//! liveness flush (heartbeat figures).
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
//! logged and recorded); the join token registers new or offline nodes only, and a live
//! node whose secret was never used for any request (its worker may have lost the
//! registration's answer). Any authenticated request, a poll included, marks the secret
//! used, durably. Addresses in request bodies are information, never identity.

use std::net::IpAddr;
use std::sync::Arc;

use tokio::sync::Notify;

use super::registry::{NodeEntry, NodeRecord};
use super::validate::{check_unavailable, check_usage, clean_names, node_spec, skill_digests};
use super::{Core, Error, Now, Timer};
use crate::model::{
    CheckHeartbeatResponse, ErrorCode, HeartbeatRequest, HeartbeatResponse, NodeActionResponse, NodeStatus,
    NodeTransition, NodeUsage, RegisterRequest, RegisterResponse, TimedOutNode, Timestamp, node_id_from_hostname,
    validate_node_id,
};
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

impl Core {
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
            version: 0,
            json: None,
        });
        // Loading is not a change.
        self.registry.mark_clean(&id);
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
        let spec = node_spec(&req, peer)?;
        let node_id = match &req.node_id {
            Some(id) => id.trim().to_string(),
            None => node_id_from_hostname(&spec.hostname),
        };
        validate_node_id(&node_id).map_err(|e| Error::invalid("node_id", e))?;
        let existing = self.registry.entry(&node_id);
        if let Registrant::Node(owner) = &who
            && *owner != node_id
        {
            return Err(Error::new(
                ErrorCode::Forbidden,
                format!("this node secret belongs to node `{owner}`; it cannot register node `{node_id}`"),
            ));
        }
        let live = self.registry.is_live(&node_id, now.at);
        // A secret never used for any request means its worker never got the registration's
        // answer (the coordinator stopped in between): that worker may only have the join
        // token. One use (a poll included) proves it has the answer.
        let claimed = existing.is_some_and(|e| e.record.secret_used);
        if let (Some(old), Registrant::Join, true, true) = (existing, &who, live, claimed) {
            let seen = old.record.last_heartbeat.map(|t| util::ago(t, now.ms)).unwrap_or_else(|| "never".into());
            return Err(Error::new(
                ErrorCode::NodeIdInUse,
                format!(
                    "node id `{node_id}` belongs to a live worker that uses its node secret (host {}, last heartbeat {seen}); the join token cannot take it over: give this worker its own id (--node-id or worker.node_id), or stop the other one and retry after {}s (or register with the admin token, which rotates the node's secret)",
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
        self.registry.unforget(&node_id);
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
            version: 0,
            json: None,
        });
        self.arm_deadline(&node_id, now);
        let rotated = live && who == Registrant::Admin;
        let (event, message) = match (&who, is_new) {
            (_, true) => (NodeTransition::Registered, None),
            (Registrant::Admin, false) if rotated => (
                NodeTransition::SecretRotated,
                Some(format!(
                    "registered again with the admin token (incarnation {incarnation}): the previous secret no longer works"
                )),
            ),
            _ => (NodeTransition::Registered, Some(format!("registered again (incarnation {incarnation})"))),
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
        self.note_drift(&node_id, now);
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
        let Some(node) = self.registry.entry(node_id) else { return };
        self.tasks.unpark_servable(&node.record.spec.available_skills, |t| node.admits(t));
    }

    fn arm_deadline(&mut self, node_id: &str, now: Now) {
        let deadline = now.at + self.settings.heartbeat_timeout;
        let Some(entry) = self.registry.memory_mut(node_id) else { return };
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
        // Digests come with the lists (none with them: an older worker, content unknown).
        let digests = match &skills {
            Some(available) => {
                let known = self.registry.entry(node_id).map(|e| &e.record.spec.unavailable_skills);
                let unavailable = req.unavailable_skills.as_ref().or(known);
                Some(skill_digests(req.skill_digests.as_ref(), available, unavailable.unwrap_or(&Default::default()))?)
            }
            None => None,
        };
        let reports = req.skill_installs;
        if reports.len() > crate::model::MAX_SKILLS {
            return Err(Error::invalid("skill_installs", format!("at most {} reports", crate::model::MAX_SKILLS)));
        }
        for (i, r) in reports.iter().enumerate() {
            if r.name.trim().is_empty() || r.name.chars().count() > 128 {
                return Err(Error::invalid(&format!("skill_installs[{i}].name"), "1 to 128 characters"));
            }
            if let Some(d) = &r.digest {
                crate::model::validate_digest(d)
                    .map_err(|e| Error::invalid(&format!("skill_installs[{i}].digest"), e))?;
            }
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
        let digests_changed = digests.as_ref().is_some_and(|d| *d != entry.record.spec.skill_digests);
        if let Some(skills) = skills.filter(|_| skills_changed) {
            self.registry.set_skills(node_id, skills);
        }
        if (unavailable_changed || digests_changed)
            && let Some(e) = self.registry.entry_mut(node_id)
        {
            if let Some(unavailable) = req.unavailable_skills.filter(|_| unavailable_changed) {
                e.record.spec.unavailable_skills = unavailable;
            }
            if let Some(digests) = digests.filter(|_| digests_changed) {
                e.record.spec.skill_digests = digests;
            }
        }
        if first_use {
            self.registry.secret_used(node_id);
        }
        self.arm_deadline(node_id, now);
        self.metrics.heartbeats.inc();
        if came_back {
            tracing::info!(target: "openclaw::coordinator", node_id, "node is online again");
            // Its status is durable: a restart must not show it offline with live tasks.
            self.registry.mark_dirty(node_id);
            self.node_event(node_id, NodeTransition::Online, None, now);
        }
        if skills_changed || unavailable_changed || digests_changed {
            tracing::info!(target: "openclaw::coordinator", node_id, "node's skills changed");
            self.node_event(node_id, NodeTransition::SkillsChanged, None, now);
            self.note_drift(node_id, now);
        }
        if !reports.is_empty() {
            self.skill_reports(node_id, reports, now);
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
            secrets: Vec::new(),
            skill_packages: None,
        })
    }

    /// The node leaves gracefully: offline now, its tasks requeued.
    pub fn node_shutdown(&mut self, node_id: &str, now: Now) -> Result<NodeActionResponse, Error> {
        self.registry.view(node_id)?;
        self.mark_offline(node_id, &format!("node `{node_id}` shut down"), NodeTransition::Left, now);
        Ok(NodeActionResponse {
            success: true,
            message: format!("node {node_id} marked offline"),
            node_id: node_id.to_string(),
            node_info: Some(self.registry.view(node_id)?),
        })
    }

    /// Removes an offline node that holds no work from the registry and the store.
    pub fn forget_node(&mut self, node_id: &str, now: Now) -> Result<NodeActionResponse, Error> {
        let entry = self.registry.entry(node_id).ok_or_else(|| Error::unknown_node(node_id))?;
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
        self.node_event(node_id, NodeTransition::Forgotten, None, now);
        self.note_drift(node_id, now);
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
            let event = if draining { NodeTransition::Drained } else { NodeTransition::Undrained };
            self.node_event(node_id, event, None, now);
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
    fn mark_offline(&mut self, node_id: &str, reason: &str, event: NodeTransition, now: Now) {
        let Some(entry) = self.registry.live_mut(node_id) else { return };
        let was_online = entry.online;
        entry.online = false;
        if entry.offline_since.is_none() {
            entry.offline_since = Some(now.ms);
        }
        let assigned: Vec<String> = entry.assigned.iter().cloned().collect();
        entry.wake.notify_waiters();
        if was_online {
            self.registry.mark_dirty(node_id);
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
        let Some(entry) = self.registry.memory_mut(node_id) else { return };
        if entry.deadline > now.at {
            let at = entry.deadline;
            self.timers.push(at, Timer::NodeDeadline(node_id.to_string()));
            return;
        }
        entry.deadline_armed = false;
        if entry.online || !entry.assigned.is_empty() {
            let timeout = self.settings.heartbeat_timeout.as_secs_f64();
            self.mark_offline(
                node_id,
                &format!("node `{node_id}` sent no heartbeat for {timeout}s"),
                NodeTransition::Offline,
                now,
            );
        }
    }

    /// Keeps the views a node list wrote (see [`super::registry::list_json`]): in memory
    /// only, for the next list.
    pub fn keep_listed(&mut self, written: Vec<super::registry::Written>) {
        self.registry.keep_listed(written);
    }

    /// Any authenticated use of the node's secret (a poll, a start, a result, output, a
    /// heartbeat): its worker has the registration's answer, so from now on the join token
    /// cannot take the node while it is live. Durable (the registry marks it for the batch).
    pub fn secret_used(&mut self, node_id: &str) {
        self.registry.secret_used(node_id);
    }

    /// The liveness check (the sweep and `POST /cluster/check-heartbeat`): every online node
    /// past its deadline goes offline now.
    pub fn check_liveness(&mut self, now: Now) -> CheckHeartbeatResponse {
        let late: Vec<TimedOutNode> = self
            .registry
            .entries()
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
            self.mark_offline(&n.node_id, &reason, NodeTransition::Offline, now);
        }
        CheckHeartbeatResponse {
            checked_at: Timestamp(now.ms),
            timeout_nodes_count: late.len() as u32,
            timeout_nodes: late,
            all_nodes_healthy: self.registry.entries().all(|e| e.online),
        }
    }
}
