//! Tasks on the wire: statuses, priorities, the submission, the stored spec and state, and
//! the task views and lists.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
use utoipa::openapi::{Ref, Schema};

use super::Timestamp;

string_enum! {
    /// Where a task is in its life.
    TaskStatus {
        Pending = "pending",
        Scheduled = "scheduled",
        Running = "running",
        Completed = "completed",
        Failed = "failed",
        Cancelled = "cancelled",
        Timeout = "timeout",
    }
}

#[allow(clippy::derivable_impls)] // the enum comes from a macro
impl Default for TaskStatus {
    fn default() -> Self {
        TaskStatus::Pending
    }
}

impl TaskStatus {
    /// Ended for good: completed, failed, cancelled or timeout.
    pub fn is_terminal(self) -> bool {
        matches!(self, TaskStatus::Completed | TaskStatus::Failed | TaskStatus::Cancelled | TaskStatus::Timeout)
    }
}

impl<'de> Deserialize<'de> for TaskStatus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

string_enum! {
    /// Task priority; the original's numbers are 0 (critical) to 3 (low).
    Priority {
        Critical = "critical",
        High = "high",
        Normal = "normal",
        Low = "low",
    }
}

impl Priority {
    /// The original's number: 0 critical … 3 low (lower runs first).
    pub fn number(self) -> i64 {
        match self {
            Priority::Critical => 0,
            Priority::High => 1,
            Priority::Normal => 2,
            Priority::Low => 3,
        }
    }

    pub fn from_number(n: i64) -> Option<Self> {
        Some(match n {
            0 => Priority::Critical,
            1 => Priority::High,
            2 => Priority::Normal,
            3 => Priority::Low,
            _ => return None,
        })
    }
}

/// A priority as a request may send it: the name, or the original's number 0-3.
fn priority_input() -> Schema {
    OneOfBuilder::new()
        .item(Ref::from_schema_name("Priority"))
        .item(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0)).maximum(Some(3)))
        .description(Some("critical, high, normal (default), low; or the original's 0 (critical) to 3 (low)"))
        .build()
        .into()
}

impl<'de> Deserialize<'de> for Priority {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => s.parse().map_err(serde::de::Error::custom),
            Value::Number(n) => n.as_i64().and_then(Priority::from_number).ok_or_else(|| {
                serde::de::Error::custom(format!("{n} is not a priority: use 0-3 or critical, high, normal, low"))
            }),
            other => {
                Err(serde::de::Error::custom(format!("{other} is not a priority: use critical, high, normal or low")))
            }
        }
    }
}

string_enum! {
    /// The original's task types; informational.
    TaskType {
        Interactive = "interactive",
        Batch = "batch",
        ComputeIntensive = "compute_intensive",
        IoIntensive = "io_intensive",
        Daemon = "daemon",
    }
}

impl<'de> Deserialize<'de> for TaskType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// `POST /api/v1/tasks`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitTask {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_type: Option<TaskType>,
    pub required_skills: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub optional_skills: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = priority_input)]
    pub priority: Option<Priority>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    /// Per-attempt time limit in seconds (1 to 604800).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub affinity_tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Free-form JSON object kept with the task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// Where the task may run (a hard constraint): one node, one platform, nodes with
    /// every one of some tags. Absent: any node with the skills.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
    /// Refuse the submission (409 `unplaceable`, nothing stored) when no online, undrained
    /// node has the skills and matches the target right now, instead of queueing it until
    /// one comes. A node that is only full does not make a task unplaceable.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reject_unplaceable: bool,
    /// The front-end the client says it is, recorded as the task's `origin`: one of
    /// [`CLAIMABLE_ORIGINS`]. A label for people reading the task list, never used to
    /// decide anything (the server cannot check it). Absent: `api`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
}

/// The `origin` labels a client may claim in [`SubmitTask::origin`]: `api` (the default)
/// and `mcp` (the `openclaw mcp` server, which reaches the coordinator over HTTP).
pub const CLAIMABLE_ORIGINS: &[&str] = &["api", "mcp"];

/// Where a task may run, on top of its required skills: a filter on the candidates, never
/// a preference (affinity tags are the preference). Every part given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// Only this node (its `node_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Only nodes of this platform, as nodes report it (`linux`, `macos`, `windows`;
    /// compared without regard to case).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// Only nodes that have every one of these tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

impl Target {
    /// No constraint at all.
    pub fn is_any(&self) -> bool {
        self.node.is_none() && self.platform.is_none() && self.tags.is_empty()
    }

    /// Whether a node with this id, platform and tags may run the task.
    pub fn admits(&self, node_id: &str, platform: &str, tags: &[String]) -> bool {
        self.node.as_deref().is_none_or(|n| n == node_id)
            && self.platform.as_deref().is_none_or(|p| p.eq_ignore_ascii_case(platform))
            && self.tags.iter().all(|t| tags.contains(t))
    }
}

impl fmt::Display for Target {
    /// `node `w1`, platform `macos`, tags `gpu`, `fast``.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(n) = &self.node {
            parts.push(format!("node `{n}`"));
        }
        if let Some(p) = &self.platform {
            parts.push(format!("platform `{p}`"));
        }
        if !self.tags.is_empty() {
            let tags: Vec<String> = self.tags.iter().map(|t| format!("`{t}`")).collect();
            parts.push(format!("{} {}", if tags.len() == 1 { "tag" } else { "tags" }, tags.join(", ")));
        }
        f.write_str(&parts.join(", "))
    }
}

/// What was submitted, checked and with defaults applied: it never changes afterwards.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TaskSpec {
    pub name: String,
    pub description: String,
    pub task_type: TaskType,
    pub priority: Priority,
    pub required_skills: Vec<String>,
    pub optional_skills: Vec<String>,
    pub affinity_tags: Vec<String>,
    pub parameters: Value,
    pub metadata: Value,
    /// Per-attempt time limit, seconds.
    pub timeout: f64,
    pub max_retries: u32,
    pub user_id: Option<String>,
    pub idempotency_key: Option<String>,
    /// Where the task may run; null: any node with the skills.
    #[serde(default)]
    pub target: Option<Target>,
    /// Where the submission came from: `api` (HTTP), `mcp` (the MCP tools), …
    /// (informational).
    #[serde(default = "default_origin")]
    pub origin: String,
    /// The ended task this one retries (`openclaw tasks retry`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_of: Option<String>,
}

fn default_origin() -> String {
    "api".into()
}

impl TaskSpec {
    /// The skill that runs: the first required one.
    pub fn skill(&self) -> &str {
        self.required_skills.first().map(String::as_str).unwrap_or("")
    }
}

/// Where a task is in its life: everything a transition changes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TaskState {
    pub status: TaskStatus,
    pub assigned_node: Option<String>,
    /// The number of the current (or last) attempt; 0 before the first placement.
    pub attempt: u32,
    /// Failed attempts so far that counted against max_retries.
    pub retry_count: u32,
    pub result: Option<Value>,
    pub error: Option<String>,
    pub scheduled_at: Option<Timestamp>,
    pub started_at: Option<Timestamp>,
    pub completed_at: Option<Timestamp>,
    /// When a retry becomes due.
    pub next_attempt_at: Option<Timestamp>,
    /// Cancel was asked while running; the worker has been told.
    pub cancel_requested: bool,
    /// Nodes where an attempt failed: retries go elsewhere when another node can take them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_on: Vec<String>,
}

/// A task as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Task {
    pub task_id: String,
    #[serde(flatten)]
    pub spec: TaskSpec,
    #[serde(flatten)]
    pub state: TaskState,
    pub submitted_at: Timestamp,
    /// While pending: why no node has taken it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_reason: Option<String>,
    /// The history, oldest first (in `GET /api/v1/tasks/{id}` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<TaskEvent>>,
}

/// One step of a task's history.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TaskEvent {
    pub at: Timestamp,
    /// submitted, scheduled, running, completed, failed, timeout, cancel_requested,
    /// cancelled. A failed or timed-out attempt that will be retried is a `failed` or
    /// `timeout` event whose status is `pending`.
    pub event: String,
    /// The task's status after the event.
    pub status: TaskStatus,
    pub attempt: u32,
    pub node_id: Option<String>,
    pub message: Option<String>,
}

/// `GET /api/v1/tasks`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TaskList {
    pub tasks: Vec<Task>,
    /// Pass as `after` for the next page; null at the end.
    pub next: Option<String>,
}
