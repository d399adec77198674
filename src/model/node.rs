//! Nodes on the wire: a node's spec, counters and view; registration and heartbeats;
//! node ids and the node-level answers.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa::openapi::schema::{ObjectBuilder, Type};

use super::limits::{Name, SkillNames, Text, bounded, excluding, lenient, schema_type, string, trimmed_pattern};
use super::{Label, SkillContent, Timestamp, Transport};

/// The most characters of a node id.
pub const NODE_ID_MAX: usize = 128;
/// Node ids that are words of the API's paths (`/api/v1/nodes/online`): no node may have one.
pub const RESERVED_NODE_IDS: &[&str] = &["online", "register", "skills"];
/// The most concurrent tasks a node may declare.
pub const MAX_NODE_CONCURRENCY: u32 = 1000;
/// The concurrency a node may declare.
pub const NODE_CONCURRENCY: RangeInclusive<u32> = 1..=MAX_NODE_CONCURRENCY;
/// Usage figures (CPU, memory, disk) are percentages.
pub const PERCENT: RangeInclusive<f64> = 0.0..=100.0;
/// A host name.
pub const HOSTNAME: Name = Name::new(255);
/// An address a node reports (blank: the one it connected from).
pub const ADDRESS: Name = Name::new(64);
/// Why an agent skill cannot run now.
pub const SKILL_REASON: Text = Text::new(2000);

/// The characters of a node id, as a regex class.
const NODE_ID_CHARS: &str = "[A-Za-z0-9._-]";

schema_type! {
    /// A node id, as a request may send it (white space around it is ignored).
    NodeId => node_id_schema();
    /// A host name.
    Hostname => HOSTNAME.schema();
    /// An address, or blank.
    Address => ADDRESS.schema_or_blank();
    /// A percentage.
    Percent => bounded(Type::Number, PERCENT, "Percent, 0 to 100");
    /// How many tasks a node runs at once.
    Concurrency => bounded(Type::Integer, NODE_CONCURRENCY, "How many tasks the node runs at once");
    /// A node status's name in a request.
    NodeStatusInput => lenient::<NodeStatus>();
}

/// Agent skills that cannot run now, by name, with the reason; or null.
fn unavailable_skills_or_null() -> utoipa::openapi::Schema {
    ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([Type::Object, Type::Null]))
        .property_names(Some(super::limits::SKILL_NAME.schema()))
        .additional_properties(Some(utoipa::openapi::schema::Schema::from(SKILL_REASON.schema())))
        .description(Some("Agent skills this node has but cannot run now, by name, with the reason"))
        .into()
}

/// What [`validate_node_id`] accepts once trimmed: 1 to 128 of `A-Z a-z 0-9 . _ -`, and not
/// `.`, `..` or a reserved word.
fn node_id_schema() -> utoipa::openapi::schema::Object {
    let refused: Vec<String> = [".", ".."].iter().chain(RESERVED_NODE_IDS).map(|w| w.replace('.', "\\.")).collect();
    let reserved: Vec<String> = RESERVED_NODE_IDS.iter().map(|w| format!("`{w}`")).collect();
    excluding(
        string(
            trimmed_pattern(&format!("{NODE_ID_CHARS}{{1,{NODE_ID_MAX}}}")),
            format!(
                "1 to {NODE_ID_MAX} of A-Z, a-z, 0-9, '.', '_' and '-'; not `.`, `..`, {}; white space around it is ignored",
                reserved.join(", ")
            ),
        ),
        trimmed_pattern(&refused.join("|")),
    )
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

/// A node id is 1-128 characters of `A-Z a-z 0-9 . _ -`, and neither `.` nor `..` nor one
/// of the [`RESERVED_NODE_IDS`].
pub fn validate_node_id(id: &str) -> Result<(), String> {
    let chars = id.chars().count();
    if id.is_empty() || chars > NODE_ID_MAX {
        return Err(format!("node_id must be 1-{NODE_ID_MAX} characters, got {chars}"));
    }
    if id == "." || id == ".." {
        return Err(format!("node_id `{id}` is not allowed (it is a path segment)"));
    }
    if let Some(c) = id.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        return Err(format!("node_id `{id}` has `{c}`; only A-Z, a-z, 0-9, '.', '_' and '-' are allowed"));
    }
    if RESERVED_NODE_IDS.contains(&id) {
        return Err(format!("`{id}` is reserved by the API; choose another"));
    }
    Ok(())
}

/// A node id derived from a host name: lower case, other characters as `-`; always a valid
/// id (a host name that would give `.`, `..` or a reserved word gets a `node-` prefix).
pub fn node_id_from_hostname(hostname: &str) -> String {
    let mut id: String = hostname
        .trim()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c.to_ascii_lowercase() } else { '-' })
        .take(NODE_ID_MAX)
        .collect();
    if id.is_empty() {
        id = "node".into();
    }
    if validate_node_id(&id).is_err() {
        id = format!("node-{id}");
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
    /// Per skill (available or unavailable): where it came from and its content's digest.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub skill_digests: BTreeMap<String, SkillContent>,
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
    /// Absent or null: derived from the host name.
    #[serde(default)]
    #[schema(value_type = Option<NodeId>)]
    pub node_id: Option<String>,
    #[schema(value_type = Hostname)]
    pub hostname: String,
    #[schema(value_type = Label)]
    pub platform: String,
    #[schema(value_type = Label)]
    pub arch: String,
    #[serde(default)]
    #[schema(value_type = SkillNames)]
    pub available_skills: Vec<String>,
    /// Blank or absent: the address the request came from.
    #[serde(default)]
    #[schema(value_type = Option<Address>)]
    pub ip_address: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Address>)]
    pub tailscale_ip: Option<String>,
    #[serde(default)]
    pub port: Option<u16>,
    /// 5 when absent.
    #[serde(default)]
    #[schema(value_type = Option<Concurrency>)]
    pub max_concurrent_tasks: Option<u32>,
    #[serde(default)]
    #[schema(value_type = Option<SkillNames>)]
    pub tags: Option<Vec<String>>,
    #[serde(default)]
    #[schema(value_type = Option<Label>)]
    pub version: Option<String>,
    /// Agent skills found but not runnable now, with the reason (shown, never placed on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = unavailable_skills_or_null)]
    pub unavailable_skills: Option<BTreeMap<String, String>>,
    /// Where each skill came from and its content's digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = super::skill::skill_contents_or_null)]
    pub skill_digests: Option<BTreeMap<String, SkillContent>>,
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
    #[schema(value_type = Percent)]
    pub cpu_usage: f64,
    #[serde(default)]
    #[schema(value_type = Percent)]
    pub memory_usage: f64,
    #[serde(default)]
    #[schema(value_type = Percent)]
    pub disk_usage: f64,
    /// The original's count; informational (the coordinator counts assignments itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_tasks: Option<u32>,
    /// The tasks (id and attempt) this worker holds: received, starting or running. When
    /// present, the coordinator reconciles against it.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "super::limits::optional_objects")]
    pub held_tasks: Option<Vec<TaskRef>>,
    /// The eligible skills, sent when they changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<SkillNames>)]
    pub available_skills: Option<Vec<String>>,
    /// Agent skills that are present but unusable, with the reason, sent with available_skills.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = unavailable_skills_or_null)]
    pub unavailable_skills: Option<BTreeMap<String, String>>,
    /// Where each skill came from and its content's digest, sent with available_skills.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = super::skill::skill_contents_or_null)]
    pub skill_digests: Option<BTreeMap<String, SkillContent>>,
    /// Sent by a worker configured for NATS: whether its NATS link is up and pulling, so
    /// that the coordinator may hand it assignments there (`dispatch` in the answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nats: Option<bool>,
    /// Sent with `nats`: the key (base64 of 32 bytes, derived from the node secret) that
    /// signs this node's NATS messages both ways. The coordinator keeps it in memory only,
    /// never in its store; a worker that sends `nats` without it is kept on HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nats_key: Option<String>,
    /// What this worker did with pushed skills since its last heartbeat (installed,
    /// removed, or failed and why); sent only when there is something to report.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(max_items = 1000)]
    pub skill_installs: Vec<super::SkillInstallReport>,
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
    /// The names (never values) of the cluster secrets this node may receive: a skill
    /// that declares one in `requires.env` is eligible here without the variable being set
    /// on the worker (the value comes with each start answer).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
    /// The pushed skills this node should have (name, digest, where to fetch the package
    /// with its node secret). Absent when nothing was ever pushed; a pushed skill this node
    /// has and the list leaves out is to be removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skill_packages: Option<Vec<super::SkillPackageRef>>,
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
