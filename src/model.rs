//! The types on the wire, defined once for the coordinator, the worker and the CLI.
//!
//! Node and cluster shapes keep the Python original's field names (so `jq '.[] |
//! .available_skills'` on `GET /api/v1/nodes` works as in the seed). Times are RFC 3339 in
//! UTC. Requests refuse unknown fields, except that the original's register payload is
//! accepted as it was sent.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, Type};
use utoipa::openapi::{Ref, RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use crate::util;

/// The longest per-attempt timeout a task may ask for.
pub const MAX_TASK_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);
/// The most retries a task may ask for.
pub const MAX_RETRIES: u32 = 100;
/// The most skills a node may advertise.
pub const MAX_SKILLS: usize = 1000;
/// The most concurrent tasks a node may declare.
pub const MAX_NODE_CONCURRENCY: u32 = 1000;

/// A moment, stored as milliseconds since the Unix epoch, written as RFC 3339 UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn now() -> Self {
        Timestamp(util::now_ms())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&util::rfc3339(self.0))
    }
}

/// Its serde is hand-written, so is its schema.
impl PartialSchema for Timestamp {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .description(Some("RFC 3339 time in UTC"))
            .into()
    }
}
impl ToSchema for Timestamp {}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        util::parse_rfc3339(&text)
            .map(Timestamp)
            .ok_or_else(|| serde::de::Error::custom(format!("`{text}` is not an RFC 3339 time")))
    }
}

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[$vm])* $variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The wire name.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s.trim().to_ascii_lowercase().as_str() {
                    $($text => Ok($name::$variant),)+
                    _ => Err(format!(
                        "`{s}` is not one of {}",
                        [$($text),+].join(", ")
                    )),
                }
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        /// The wire names, from the same list as serde's.
        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                ObjectBuilder::new().schema_type(Type::String).enum_values(Some([$($text),+])).into()
            }
        }
        impl ToSchema for $name {}
    };
}

string_enum! {
    /// A node's status as the API shows it.
    NodeStatus {
        Online = "online",
        Offline = "offline",
        /// Online with every slot taken.
        Busy = "busy",
        /// Drained: takes no new tasks.
        Maintenance = "maintenance",
        /// The original's; never set by this version, kept so that filters on it work.
        Error = "error",
    }
}

impl<'de> Deserialize<'de> for NodeStatus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

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

/// A node id is 1-128 characters of `A-Z a-z 0-9 . _ -`.
pub fn validate_node_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > 128 {
        return Err(format!("node_id must be 1-128 characters, got {}", id.len()));
    }
    if id == "." || id == ".." {
        return Err(format!("node_id `{id}` is not allowed (it is a path segment)"));
    }
    if let Some(c) = id.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        return Err(format!("node_id `{id}` has `{c}`; only A-Z, a-z, 0-9, '.', '_' and '-' are allowed"));
    }
    Ok(())
}

/// A node id derived from a host name: lower case, other characters as `-`.
pub fn node_id_from_hostname(hostname: &str) -> String {
    let mut id: String = hostname
        .trim()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c.to_ascii_lowercase() } else { '-' })
        .take(128)
        .collect();
    if id.is_empty() {
        id = "node".into();
    }
    id
}

/// What a worker declares about its node at registration (and later in heartbeats: the
/// skills). Stored with the node and shown in every node view.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NodeSpec {
    pub hostname: String,
    pub platform: String,
    pub arch: String,
    pub available_skills: Vec<String>,
    /// Agent skills this node has but cannot run right now, with the reason.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unavailable_skills: BTreeMap<String, String>,
    pub max_concurrent_tasks: u32,
    pub ip_address: String,
    pub tailscale_ip: String,
    pub port: u16,
    pub tags: Vec<String>,
    /// The worker's openclaw version.
    pub version: Option<String>,
}

/// What a node has done, counted by the coordinator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NodeCounters {
    pub total_tasks_processed: u64,
    pub successful_tasks: u64,
    pub failed_tasks: u64,
    /// Summed run time of the finished attempts, milliseconds (for the average).
    #[serde(default, skip_serializing)]
    pub total_execution_ms: u64,
}

/// Usage figures from the node's last heartbeat, percent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NodeUsage {
    pub cpu_usage: f64,
    pub memory_usage: f64,
    pub disk_usage: f64,
}

/// A node as every node endpoint shows it (the original's 21 fields, then ours).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Node {
    pub node_id: String,
    pub status: NodeStatus,
    #[serde(flatten)]
    pub spec: NodeSpec,
    pub running_tasks: u32,
    #[serde(flatten)]
    pub usage: NodeUsage,
    #[serde(flatten)]
    pub counters: NodeCounters,
    /// Seconds, over the tasks this node finished.
    pub average_execution_time: f64,
    pub registered_at: Option<Timestamp>,
    pub last_heartbeat: Option<Timestamp>,
    /// In maintenance: no new tasks are placed here.
    pub draining: bool,
}

/// `POST /api/v1/nodes/register`. The original's payload (with `null` tailscale_ip, and the
/// server-owned NodeInfo fields some clients send) is accepted; server-owned fields are
/// ignored.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    #[serde(default)]
    pub node_id: Option<String>,
    pub hostname: String,
    pub platform: String,
    pub arch: String,
    #[serde(default)]
    pub available_skills: Vec<String>,
    #[serde(default)]
    pub ip_address: Option<String>,
    #[serde(default)]
    pub tailscale_ip: Option<String>,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub max_concurrent_tasks: Option<u32>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    #[serde(default)]
    pub version: Option<String>,
    /// Agent skills found but not runnable now, with the reason (shown, never placed on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unavailable_skills: Option<BTreeMap<String, String>>,
    // Server-owned NodeInfo fields the original's clients may send.
    /// Server-owned: accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Value>,
    /// Server-owned: accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_tasks: Option<Value>,
    /// Server-owned: accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_usage: Option<Value>,
    /// Server-owned: accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_usage: Option<Value>,
    /// Server-owned: accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_usage: Option<Value>,
    /// Server-owned: accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_tasks_processed: Option<Value>,
    /// Server-owned: accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successful_tasks: Option<Value>,
    /// Server-owned: accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_tasks: Option<Value>,
    /// Server-owned: accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average_execution_time: Option<Value>,
    /// Server-owned: accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registered_at: Option<Value>,
    /// Server-owned: accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_heartbeat: Option<Value>,
}

/// The answer to a registration: the original's fields plus this node's secret.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RegisterResponse {
    pub success: bool,
    pub node_id: String,
    pub message: String,
    /// True when the node was new; false when it re-registered.
    pub registered: bool,
    pub node_info: Node,
    /// The bearer token for this node's own endpoints (heartbeat, poll, reports,
    /// shutdown). Shown once; the coordinator keeps only its hash.
    pub node_secret: String,
    /// Counts registrations of this node id; a new one makes the old one's tasks requeue.
    pub incarnation: u64,
}

/// `POST /api/v1/nodes/{id}/heartbeat`. The original sent the four numbers only.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatRequest {
    #[serde(default)]
    pub cpu_usage: f64,
    #[serde(default)]
    pub memory_usage: f64,
    #[serde(default)]
    pub disk_usage: f64,
    /// The original's count; informational (the coordinator counts assignments itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_tasks: Option<u32>,
    /// The tasks (id and attempt) this worker holds: received, starting or running. When
    /// present, the coordinator reconciles against it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_tasks: Option<Vec<TaskRef>>,
    /// The eligible skills, sent when they changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_skills: Option<Vec<String>>,
    /// Agent skills that are present but unusable, with the reason, sent with available_skills.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unavailable_skills: Option<BTreeMap<String, String>>,
    /// Sent by a worker configured for NATS: whether its NATS link is up and pulling, so
    /// that the coordinator may hand it assignments there (`dispatch` in the answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nats: Option<bool>,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HeartbeatResponse {
    pub success: bool,
    pub message: String,
    pub node_id: String,
    pub timestamp: Timestamp,
    /// Tasks this worker must stop: cancelled, ended or given to another node.
    #[serde(default)]
    pub cancel: Vec<TaskRef>,
    /// How this node receives its assignments until the next heartbeat: `nats` (pull them
    /// from its NATS consumer; no HTTP long poll) or `http`. Absent when the coordinator
    /// has no NATS transport configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispatch: Option<Transport>,
}

string_enum! {
    /// How work travels between the coordinator and a worker.
    Transport {
        /// The worker long-polls `POST /api/v1/nodes/{id}/tasks/poll` and reports results
        /// over HTTP.
        Http = "http",
        /// Assignments and results travel through NATS JetStream (starts, heartbeats and
        /// registration stay on HTTP).
        Nats = "nats",
    }
}

impl<'de> Deserialize<'de> for Transport {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

string_enum! {
    /// The coordinator's connection to NATS.
    NatsState {
        /// Not connected yet: the first connection attempt failed or is under way.
        Connecting = "connecting",
        /// Connected; work goes over NATS once the streams are set up.
        Connected = "connected",
        /// Was connected and lost it; the client reconnects in the background.
        Disconnected = "disconnected",
    }
}

impl<'de> Deserialize<'de> for NatsState {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// The NATS transport as `GET /api/v1/cluster/health` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NatsHealth {
    pub state: NatsState,
    /// The configured server URL(s), without credentials.
    pub url: String,
    /// Since when `state` holds.
    pub since: Timestamp,
    /// The server's version, once connected.
    pub server_version: Option<String>,
    /// The server runs JetStream (`-js`); without it only the event feed uses NATS.
    pub jetstream: bool,
    /// The streams and the coordinator's consumer are set up on the server.
    pub streams_ready: bool,
    /// Nodes that receive their assignments over NATS now.
    pub nodes: u32,
    /// The id of the last event published on the event subjects.
    pub last_event_id: u64,
    /// The last connection or setup error, if any.
    pub last_error: Option<String>,
}

/// A task and one of its attempts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TaskRef {
    pub task_id: String,
    pub attempt: u32,
}

/// The answer to `POST /api/v1/nodes/{id}/shutdown` and to drain/undrain.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NodeActionResponse {
    pub success: bool,
    pub message: String,
    pub node_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_info: Option<Node>,
}

/// `GET /api/v1/nodes/{id}/health` (the original's keys plus `draining`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NodeHealth {
    pub node_id: String,
    pub hostname: String,
    pub healthy: bool,
    pub status: NodeStatus,
    pub last_heartbeat: Option<Timestamp>,
    /// Seconds since the last heartbeat.
    pub time_since_heartbeat: Option<f64>,
    pub is_timeout: bool,
    pub cpu_usage: f64,
    pub memory_usage: f64,
    pub disk_usage: f64,
    pub running_tasks: u32,
    pub max_concurrent_tasks: u32,
    pub available_capacity: u32,
    pub draining: bool,
}

/// `GET /api/v1/cluster/health`: the seed's fields, the original's, and task counts.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ClusterHealth {
    /// True when at least one node is online and the store answers.
    pub healthy: bool,
    pub total_nodes: u32,
    pub online_nodes: u32,
    pub total_capacity: u32,
    pub available_capacity: u32,
    pub timestamp: Timestamp,
    pub checked_at: Timestamp,
    pub nodes_by_status: BTreeMap<String, u32>,
    pub offline_nodes: u32,
    pub busy_nodes: u32,
    pub timeout_nodes_count: u32,
    pub used_capacity: u32,
    /// Percent of total capacity in use.
    pub capacity_utilization: f64,
    pub tasks_by_status: BTreeMap<String, u64>,
    /// How work travels: `nats` while the NATS transport is connected and set up, else
    /// `http`.
    #[serde(default = "default_transport")]
    pub transport: Transport,
    /// The NATS transport's state; absent when `communication.nats_url` is not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nats: Option<NatsHealth>,
}

fn default_transport() -> Transport {
    Transport::Http
}

/// `POST /api/v1/cluster/check-heartbeat` (the original's shape).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CheckHeartbeatResponse {
    pub checked_at: Timestamp,
    pub timeout_nodes_count: u32,
    pub timeout_nodes: Vec<TimedOutNode>,
    pub all_nodes_healthy: bool,
}

/// A node found past its deadline by a liveness check.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TimedOutNode {
    pub node_id: String,
    pub hostname: String,
    pub last_heartbeat: Option<Timestamp>,
    pub timeout_seconds: f64,
}

/// `GET /health`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ServiceHealth {
    pub status: String,
    pub timestamp: Timestamp,
    pub service: String,
    pub version: String,
}

string_enum! {
    /// The kind of token a request carries, as far as the dashboard cares.
    Role {
        /// Everything.
        Admin = "admin",
        /// Read the cluster, submit and cancel tasks.
        Tasks = "tasks",
    }
}

impl<'de> Deserialize<'de> for Role {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// `GET /api/v1/whoami`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Whoami {
    pub role: Role,
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

/// `POST /api/v1/nodes/{id}/tasks/poll`: a worker asks for work.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PollRequest {
    /// The tasks the worker holds now; anything assigned but not listed is (re)sent.
    #[serde(default)]
    pub held: Vec<TaskRef>,
    /// Wait at most this many seconds for work (capped by coordinator.long_poll_timeout).
    #[serde(default)]
    pub wait_secs: Option<f64>,
}

/// The answer to a poll.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct PollResponse {
    pub assignments: Vec<Assignment>,
    /// Tasks the worker must stop.
    pub cancel: Vec<TaskRef>,
}

/// A task handed to a worker.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Assignment {
    pub task_id: String,
    pub attempt: u32,
    pub name: String,
    pub description: String,
    /// The skill to run: the task's first required skill.
    pub skill: String,
    pub required_skills: Vec<String>,
    pub parameters: Value,
    /// Per-attempt time limit, seconds.
    pub timeout: f64,
    pub priority: Priority,
}

/// `POST /api/v1/nodes/{id}/tasks/{task_id}/start`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartReport {
    pub attempt: u32,
}

/// How an attempt ended, as the worker reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Completed,
    Failed,
    Timeout,
    Cancelled,
}

impl From<Outcome> for TaskStatus {
    /// The status a task ends with when an attempt ends this way.
    fn from(o: Outcome) -> TaskStatus {
        match o {
            Outcome::Completed => TaskStatus::Completed,
            Outcome::Failed => TaskStatus::Failed,
            Outcome::Timeout => TaskStatus::Timeout,
            Outcome::Cancelled => TaskStatus::Cancelled,
        }
    }
}

/// `POST /api/v1/nodes/{id}/tasks/{task_id}/result`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResultReport {
    pub attempt: u32,
    pub outcome: Outcome,
    #[serde(default)]
    pub result: Option<Value>,
    #[serde(default)]
    pub error: Option<String>,
    /// How long the attempt ran, milliseconds.
    #[serde(default)]
    pub duration_ms: u64,
    /// Not the task's fault (e.g. the gateway said 429): requeue after this many seconds
    /// without counting a retry.
    #[serde(default)]
    pub retry_after: Option<f64>,
    /// Retrying cannot help (the skill said so, or the gateway refused the request as
    /// malformed): the task ends failed without spending its retries.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub permanent: bool,
}

/// The answer to start and result reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReportResponse {
    pub success: bool,
    pub task_id: String,
    pub status: TaskStatus,
}

string_enum! {
    /// Which stream of a task's process a line of output came from.
    OutputStream {
        Stdout = "stdout",
        Stderr = "stderr",
    }
}

impl<'de> Deserialize<'de> for OutputStream {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// A line of output as the worker sends it (without the newline).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOutputLine {
    pub stream: OutputStream,
    pub text: String,
    /// When the worker read it.
    pub at: Timestamp,
}

/// `POST /api/v1/nodes/{id}/tasks/{task_id}/output`: lines of one attempt, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputBatch {
    pub attempt: u32,
    /// The attempt's number (from 0, counted by the worker) of the batch's first line.
    /// With it, a batch sent again after a lost answer adds only the lines the coordinator
    /// does not have yet; without it, every batch is taken as new lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first: Option<u64>,
    pub lines: Vec<NewOutputLine>,
}

/// The answer to an output batch: its lines are on disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OutputAck {
    pub success: bool,
    pub task_id: String,
    /// How many lines the batch held.
    pub accepted: u32,
    /// The number of the batch's last line (0 for an empty batch).
    pub last_seq: u64,
}

/// A line of a task's output as it is kept and shown. `seq` numbers the lines of a task
/// from 1, across attempts, in order; lines dropped to keep the tail within
/// `coordinator.output_tail_bytes`, and lines the worker dropped while the coordinator was
/// away, leave their numbers unused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OutputLine {
    pub seq: u64,
    pub at: Timestamp,
    pub stream: OutputStream,
    pub text: String,
}

/// `GET /api/v1/tasks/{id}/output`: the kept tail of the output of the task's latest attempt
/// that printed anything.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TaskOutput {
    pub task_id: String,
    /// The attempt the lines come from (the task's current attempt when there are none).
    pub attempt: u32,
    pub lines: Vec<OutputLine>,
    /// Earlier lines of this attempt were dropped to keep within the tail's size.
    pub truncated: bool,
    /// The task has ended: no more lines will come.
    pub ended: bool,
}

/// The data of the `end` event of a followed output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OutputEnd {
    pub status: TaskStatus,
}

/// The data of an `error` event that ends a stream (`lagged`: the client fell behind and is
/// cut off; reconnect with `Last-Event-ID`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StreamError {
    pub code: String,
    pub message: String,
}

/// The data of the `gap` event: events before `oldest` were purged, so some after the
/// resume point are gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StreamGap {
    pub oldest: u64,
}

/// Every error answer: `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// The inside of [`ErrorBody`].
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable and machine-readable: one of [`ErrorCode`]'s names. Clients branch on it.
    pub code: String,
    pub message: String,
}

string_enum! {
    /// The stable `code` of every error answer. Clients branch on these, never on the
    /// message; each has one HTTP status (see docs/api.md).
    ErrorCode {
        /// The body is not the JSON the endpoint takes (the message names the field).
        BadRequest = "bad_request",
        /// An unknown or malformed query parameter (the message names it).
        InvalidQuery = "invalid_query",
        Unauthorized = "unauthorized",
        Forbidden = "forbidden",
        /// No endpoint at this path.
        NotFound = "not_found",
        MethodNotAllowed = "method_not_allowed",
        /// No node with this id is registered.
        UnknownNode = "unknown_node",
        /// No task with this id (ended tasks are purged after the retention period).
        UnknownTask = "unknown_task",
        /// A report (start, output, result) for an attempt that is not the task's current
        /// one on this node.
        StaleAttempt = "stale_attempt",
        /// The node id belongs to a live worker; only its secret (or the admin token) may
        /// register it again.
        NodeIdInUse = "node_id_in_use",
        /// The node still has work or is online (e.g. forget).
        NodeBusy = "node_busy",
        /// The cluster holds `coordinator.max_nodes` nodes already.
        NodeLimit = "node_limit",
        /// The task already ended (e.g. cancel).
        TaskEnded = "task_ended",
        /// The task has not ended yet (e.g. retry).
        TaskActive = "task_active",
        /// The idempotency key was used for a different submission.
        IdempotencyConflict = "idempotency_conflict",
        /// No online node can take the task now and the submission asked to be refused
        /// then (`reject_unplaceable`); the message says why.
        Unplaceable = "unplaceable",
        PayloadTooLarge = "payload_too_large",
        /// The client did not send its request in time.
        RequestTimeout = "request_timeout",
        /// Too much work queued for the store: retry after the `Retry-After` seconds.
        Overloaded = "overloaded",
        /// Shutting down, or the store failed: try again shortly.
        Unavailable = "unavailable",
        Internal = "internal",
    }
}

impl ErrorCode {
    /// When the code is sent, for the docs.
    pub fn meaning(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => {
                "the body is not what the endpoint takes: invalid JSON, a wrong type, an unknown field, a value out of range (the message names the field)"
            }
            ErrorCode::InvalidQuery => "an unknown query parameter, or one that does not parse (the message names it)",
            ErrorCode::Unauthorized => {
                "no token, a malformed `Authorization` header, or a token nobody has; the answer carries `WWW-Authenticate: Bearer`"
            }
            ErrorCode::Forbidden => "a valid token that may not use this endpoint (or act for this node)",
            ErrorCode::NotFound => "no endpoint at this path",
            ErrorCode::MethodNotAllowed => "a known path with another method; the answer carries `Allow`",
            ErrorCode::UnknownNode => "no node with this id is registered (for a node's own endpoints: register again)",
            ErrorCode::UnknownTask => {
                "no task with this id (ended tasks are purged after `storage.task_retention_days`)"
            }
            ErrorCode::StaleAttempt => {
                "a start, output or result report for an attempt that is not the task's current one on this node"
            }
            ErrorCode::NodeIdInUse => {
                "the node id belongs to a live worker: only its own secret (or the admin token) may register it again"
            }
            ErrorCode::NodeBusy => "the node is online or holds tasks (forget)",
            ErrorCode::NodeLimit => "the registry holds `coordinator.max_nodes` nodes already",
            ErrorCode::TaskEnded => "the task already ended (cancel)",
            ErrorCode::TaskActive => "the task has not ended yet (retry)",
            ErrorCode::IdempotencyConflict => {
                "the idempotency key was used for a different submission (the message names the first task)"
            }
            ErrorCode::Unplaceable => {
                "`reject_unplaceable` was set and no online, undrained node has the skills and matches the target (the message says why, as a pending reason would); nothing was stored"
            }
            ErrorCode::PayloadTooLarge => "the body is over `coordinator.max_body_bytes`",
            ErrorCode::RequestTimeout => {
                "the body did not arrive within `coordinator.body_read_timeout`; the connection is closed"
            }
            ErrorCode::Overloaded => {
                "more than `coordinator.max_write_backlog` changes wait for the disk; retry after `Retry-After` seconds"
            }
            ErrorCode::Unavailable => {
                "the coordinator is shutting down, stopping after a failed write, or has `coordinator.max_connections` connections all busy; retry after `Retry-After` seconds"
            }
            ErrorCode::Internal => {
                "the store failed a read (the message says so; details are in the coordinator's log)"
            }
        }
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

string_enum! {
    /// What an event in the cluster's event stream is about.
    EventKind {
        Task = "task",
        Node = "node",
    }
}

impl<'de> Deserialize<'de> for EventKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// One transition of a task or a node, as recorded and streamed. Ids increase in commit
/// order: resuming after id N gives every later event exactly once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Event {
    pub id: u64,
    pub at: Timestamp,
    pub kind: EventKind,
    /// Tasks: submitted, scheduled, running, completed, failed, timeout, cancel_requested,
    /// cancelled. Nodes: registered, online, offline, drained, undrained, skills_changed,
    /// secret_rotated, left, forgotten.
    pub event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    /// The task's or the node's status after the event.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// A task's first required skill.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skill: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_accept_names_and_the_originals_numbers() {
        let p: Priority = serde_json::from_str("\"HIGH\"").unwrap();
        assert_eq!(p, Priority::High);
        let p: Priority = serde_json::from_str("0").unwrap();
        assert_eq!(p, Priority::Critical);
        assert!(serde_json::from_str::<Priority>("7").is_err());
        assert!(serde_json::from_str::<Priority>("\"urgent\"").is_err());
    }

    #[test]
    fn node_ids_are_checked() {
        assert!(validate_node_id("mac-worker_001.local").is_ok());
        assert!(validate_node_id("").is_err());
        assert!(validate_node_id(&"a".repeat(129)).is_err());
        assert!(validate_node_id("a/b").unwrap_err().contains('/'));
        assert!(validate_node_id("..").is_err() && validate_node_id(".").is_err());
    }

    #[test]
    fn originals_register_payload_is_accepted() {
        let body = r#"{"hostname":"mac","platform":"macos","arch":"arm64","available_skills":["python"],
            "ip_address":"10.0.0.2","tailscale_ip":null,"port":18789,"max_concurrent_tasks":5,
            "status":"online","cpu_usage":1.5,"registered_at":null}"#;
        let r: RegisterRequest = serde_json::from_str(body).unwrap();
        assert_eq!(r.hostname, "mac");
        assert!(r.tailscale_ip.is_none());
    }
}
