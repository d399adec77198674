//! Tasks on the wire: statuses, priorities, the submission, the stored spec and state, and
//! the task views and lists.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::RangeInclusive;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa::openapi::Schema;
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};

use super::limits::{Name, RequiredSkills, SkillNames, Text, bounded, lenient, schema_type, string, trimmed_pattern};
use super::secret::SecretNames;
use super::{NodeId, SkillContent, Timestamp};

/// The longest per-attempt timeout a task may ask for.
pub const MAX_TASK_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);
/// The per-attempt timeouts a task may ask for, seconds.
pub const TASK_TIMEOUT_SECS: RangeInclusive<f64> = 1.0..=MAX_TASK_TIMEOUT.as_secs_f64();
/// The most retries a task may ask for.
pub const MAX_RETRIES: u32 = 100;
/// A task's name.
pub const TASK_NAME: Name = Name::new(200);
/// A task's description.
pub const DESCRIPTION: Text = Text::new(100_000);
/// Who submitted a task (`user_id`), and an idempotency key.
pub const CLIENT_KEY: Name = Name::new(200);
/// A platform name (`linux`, `macos`, …), an architecture, a version, an origin.
pub const LABEL: Name = Name::new(64);

/// Tasks on a page of `GET /api/v1/tasks`.
pub const PAGE_LIMIT: RangeInclusive<u32> = 1..=1000;
/// Tasks on a page when the request does not say.
pub const DEFAULT_PAGE_LIMIT: u32 = 50;
/// Nodes per page of `GET /api/v1/nodes` (`limit`; every node when absent).
pub const NODE_PAGE_LIMIT: RangeInclusive<u32> = 1..=10_000;
/// The most digits of a page cursor.
pub const CURSOR_DIGITS: usize = 18;
/// The longest `GET /api/v1/tasks/{id}/wait` waits; a longer timeout waits this long.
pub const MAX_WAIT: Duration = Duration::from_secs(3600);
/// How long a wait waits when the request does not say.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(30);
/// The most digits before and after the point of a wait's number.
const WAIT_DIGITS: (usize, usize) = (12, 9);
/// The units a wait may name, and their seconds.
const WAIT_UNITS: &[(&str, f64)] = &[("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0)];

/// A page cursor, as `GET /api/v1/tasks` gives it in `next` and takes it in `after`: the
/// list position of the previous page's last task, in decimal (white space around it is
/// ignored).
pub fn parse_cursor(text: &str) -> Result<i64, String> {
    let t = text.trim();
    if t.is_empty() || t.len() > CURSOR_DIGITS || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{}` is not a cursor from a previous page's `next`", text.escape_debug()));
    }
    t.parse().map_err(|e| format!("`{t}`: {e}"))
}

/// The text of a page cursor ([`parse_cursor`] reads it back).
pub fn cursor(position: i64) -> String {
    position.to_string()
}

/// How long a wait waits: a number of seconds (`90`, `1.5`), or a number with a unit `ms`,
/// `s`, `m` or `h` (`250ms`, `10m`); white space around it is ignored; at most
/// [`MAX_WAIT`] (a longer one waits that long).
pub fn parse_wait(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let refused = || {
        format!(
            "`{}` is not a wait: write seconds (90, 1.5) or a number with ms, s, m or h (250ms, 10m)",
            text.escape_debug()
        )
    };
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let scale = if unit.is_empty() { 1.0 } else { WAIT_UNITS.iter().find(|(u, _)| *u == unit).ok_or_else(refused)?.1 };
    let (whole, fraction) = match number.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (number, None),
    };
    let digits = |d: &str, most: usize| !d.is_empty() && d.len() <= most && d.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole, WAIT_DIGITS.0) || fraction.is_some_and(|f| !digits(f, WAIT_DIGITS.1)) {
        return Err(refused());
    }
    let secs: f64 = number.parse().map_err(|_| refused())?;
    Ok(Duration::from_secs_f64(secs * scale).min(MAX_WAIT))
}

/// The text of a wait ([`parse_wait`] reads it back), to the millisecond.
pub fn wait_text(wait: Duration) -> String {
    format!("{}ms", wait.as_millis())
}

schema_type! {
    /// A page size.
    PageLimit => bounded(Type::Integer, PAGE_LIMIT, "Tasks per page: 1 to 1000; 50 when absent");
    /// A page size of the node list.
    NodePageLimit => bounded(Type::Integer, NODE_PAGE_LIMIT, "Nodes per page: 1 to 10000; every node when absent");
    /// A page cursor.
    TaskCursor => string(
        trimmed_pattern(&format!("[0-9]{{1,{CURSOR_DIGITS}}}")),
        "A page cursor: the `next` of the previous page".into(),
    );
    /// How long a wait waits.
    WaitTimeout => string(
        trimmed_pattern(&format!(
            "[0-9]{{1,{}}}(?:\\.[0-9]{{1,{}}})?(?:{})?",
            WAIT_DIGITS.0,
            WAIT_DIGITS.1,
            WAIT_UNITS.iter().map(|(u, _)| *u).collect::<Vec<_>>().join("|")
        )),
        "Seconds (90, 1.5) or a number with ms, s, m or h (250ms, 10m); 30 s when absent, at most 1 h (a longer wait waits 1 h)"
            .into(),
    );
    /// A task's name.
    TaskName => TASK_NAME.schema();
    /// A task's description.
    TaskDescription => DESCRIPTION.schema();
    /// A user id or an idempotency key.
    ClientKey => CLIENT_KEY.schema();
    /// A platform, an architecture, a version.
    Label => LABEL.schema();
    /// A per-attempt time limit.
    TaskTimeout => bounded(Type::Number, TASK_TIMEOUT_SECS, "Per-attempt time limit, seconds (1 s to 7 days)");
    /// How many failed attempts may be retried.
    MaxRetries => bounded(Type::Integer, 0..=MAX_RETRIES, "How many failed attempts are retried");
    /// A task type's name in a request.
    TaskTypeInput => lenient::<TaskType>();
    /// A task status's name in a request.
    TaskStatusInput => lenient::<TaskStatus>();
    /// The origins a client may claim.
    ClaimableOrigin => ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(CLAIMABLE_ORIGINS.iter().copied()))
        .description(Some("The front-end the client says it is"));
}

/// A JSON object, or null.
fn object_or_null() -> Schema {
    ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([Type::Object, Type::Null]))
        .description(Some("Free-form JSON object kept with the task"))
        .into()
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

/// A priority as a request may send it: the name (in any case), or the original's number
/// 0-3, or null (normal).
fn priority_input() -> Schema {
    OneOfBuilder::new()
        .item(lenient::<Priority>())
        .item(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0)).maximum(Some(3)))
        .item(ObjectBuilder::new().schema_type(Type::Null))
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitTask {
    #[schema(value_type = TaskName)]
    pub name: String,
    #[serde(default)]
    #[schema(value_type = TaskDescription)]
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<TaskTypeInput>, inline)]
    pub task_type: Option<TaskType>,
    #[schema(value_type = RequiredSkills)]
    pub required_skills: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = SkillNames)]
    pub optional_skills: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = priority_input)]
    pub priority: Option<Priority>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    /// Per-attempt time limit in seconds; the coordinator's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<TaskTimeout>)]
    pub timeout: Option<f64>,
    /// How many failed attempts are retried; the coordinator's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<MaxRetries>)]
    pub max_retries: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = SkillNames)]
    pub affinity_tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<ClientKey>)]
    pub user_id: Option<String>,
    /// The same submission with the same key is stored once (the `Idempotency-Key` header
    /// may carry it instead; when both are sent they must be equal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<ClientKey>)]
    pub idempotency_key: Option<String>,
    /// Free-form JSON object kept with the task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = object_or_null)]
    pub metadata: Option<Value>,
    /// Where the task may run (a hard constraint): one node, one platform, nodes with
    /// every one of some tags. Absent: any node with the skills.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "super::limits::optional_object")]
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
    #[schema(value_type = Option<ClaimableOrigin>)]
    pub origin: Option<String>,
    /// Cluster secrets the task uses, by name (`openclaw secrets list`; an unknown one is
    /// 404 `unknown_secret`). Each reaches the skill's process as the environment variable of that name,
    /// when the skill declares it (`requires.env`); the task only runs on nodes every
    /// secret's scope allows. Values are never shown.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = SecretNames)]
    pub secrets: Vec<String>,
    /// Tasks that must end before this one runs, by id (at most 100). It stays pending
    /// ("waiting for task_…") until they end; their results reach it as `inputs`. Ids the
    /// coordinator does not know are refused (404 `unknown_task`) naming them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<ClientKey>)]
    pub depends_on: Vec<String>,
    /// What happens when a task it depends on ends other than completed: `cancel` (the
    /// default: it ends cancelled, naming that task and its status) or `run` (it runs anyway).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_parent_failure: Option<OnParentFailure>,
}

/// The most tasks one task may depend on.
pub const MAX_DEPENDENCIES: usize = 100;

string_enum! {
    /// What a task does when a task it depends on ends other than completed.
    OnParentFailure {
        /// End cancelled, naming the parent and its status (the default).
        Cancel = "cancel",
        /// Run anyway: the parent's outcome is in `inputs`.
        Run = "run",
    }
}

#[allow(clippy::derivable_impls)] // the enum comes from a macro
impl Default for OnParentFailure {
    fn default() -> Self {
        OnParentFailure::Cancel
    }
}

impl OnParentFailure {
    fn is_cancel(&self) -> bool {
        *self == OnParentFailure::Cancel
    }
}

impl<'de> Deserialize<'de> for OnParentFailure {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

string_enum! {
    /// What a group task gathers: the tasks of a fan-out, or the steps of a workflow.
    GroupKind {
        /// One child per matching online node at submit time (`target.each_node`).
        EachNode = "each_node",
        /// The steps of a workflow (`openclaw run`).
        Workflow = "workflow",
    }
}

impl<'de> Deserialize<'de> for GroupKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// How a task is linked to others: what it waits for, the group it belongs to, and, for a
/// group task, what it gathers. Written once with the task (one JSON column).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TaskLinks {
    /// The tasks it waits for, by id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// What it does when one of them ends other than completed.
    #[serde(default, skip_serializing_if = "OnParentFailure::is_cancel")]
    pub on_parent_failure: OnParentFailure,
    /// The group task it belongs to (a fan-out's or a workflow's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Its name in that group: the workflow step, or the node of a fan-out child. Its
    /// result is keyed by it in the group's result and in its dependents' `inputs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// Set on a group task: it never runs itself, and ends when all its children have
    /// ended, with their results combined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<GroupKind>,
}

impl TaskLinks {
    /// No link at all (a plain task).
    pub fn is_empty(&self) -> bool {
        *self == TaskLinks::default()
    }
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
    #[schema(value_type = Option<NodeId>)]
    pub node: Option<String>,
    /// Only nodes of this platform, as nodes report it (`linux`, `macos`, `windows`;
    /// compared without regard to case).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Label>)]
    pub platform: Option<String>,
    /// Only nodes that have every one of these tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = SkillNames)]
    pub tags: Vec<String>,
    /// Pinned versions: only nodes whose copy of each of these skills has this digest
    /// (`sha256:…`, as `GET /api/v1/skills` shows it). `required_skills` entries written
    /// `name@sha256:…` land here.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(schema_with = super::skill::pinned_digests)]
    pub digests: BTreeMap<String, String>,
    /// Fan out: one task per matching online node at submit time, grouped under a parent
    /// task that ends when they all have. Nodes that join later are not added.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub each_node: bool,
}

impl Target {
    /// No constraint at all.
    pub fn is_any(&self) -> bool {
        self.node.is_none()
            && self.platform.is_none()
            && self.tags.is_empty()
            && self.digests.is_empty()
            && !self.each_node
    }

    /// Whether a node with this id, platform, tags and skill contents may run the task.
    pub fn admits(
        &self,
        node_id: &str,
        platform: &str,
        tags: &[String],
        contents: &BTreeMap<String, SkillContent>,
    ) -> bool {
        self.node.as_deref().is_none_or(|n| n == node_id)
            && self.platform.as_deref().is_none_or(|p| p.eq_ignore_ascii_case(platform))
            && self.tags.iter().all(|t| tags.contains(t))
            && self
                .digests
                .iter()
                .all(|(skill, pin)| contents.get(skill).and_then(|c| c.digest.as_deref()) == Some(pin.as_str()))
    }

    /// The same target without its pinned versions.
    pub fn unpinned(&self) -> Target {
        Target { digests: BTreeMap::new(), ..self.clone() }
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
        for (skill, pin) in &self.digests {
            parts.push(format!("'{skill}' at {}", super::skill::short_digest(pin)));
        }
        if self.each_node {
            parts.push("each node".into());
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
    /// The cluster secrets it uses, by name (never their values).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
    /// The schedule whose firing submitted it (`openclaw schedules`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<super::ScheduleOrigin>,
    /// Dependencies and groups (`depends_on`, `parent`, …).
    #[serde(flatten)]
    pub links: TaskLinks,
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
    /// The tasks it still waits for: the parents it depends on (while it is pending), or a
    /// group task's children that have not ended.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waiting_for: Vec<String>,
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
    /// A group task's children, in submission order (in `GET /api/v1/tasks/{id}` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub children: Option<Vec<ChildTask>>,
}

/// A child of a group task, as its parent's view lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChildTask {
    pub task_id: String,
    pub name: String,
    /// Its name in the group: the workflow step, or the node of a fan-out child.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    pub status: TaskStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned_node: Option<String>,
    /// The tasks it waits for, by id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
}

impl ChildTask {
    pub fn of(t: &Task) -> ChildTask {
        ChildTask {
            task_id: t.task_id.clone(),
            name: t.spec.name.clone(),
            step: t.spec.links.step.clone(),
            status: t.state.status,
            assigned_node: t.state.assigned_node.clone(),
            depends_on: t.spec.links.depends_on.clone(),
        }
    }
}

/// One step of a task's history.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TaskEvent {
    pub at: Timestamp,
    /// submitted, scheduled, running, completed, failed, timeout, cancel_requested,
    /// cancelled, released, child_ended. A failed or timed-out attempt that will be retried is a `failed` or
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
    #[schema(value_type = Option<TaskCursor>)]
    pub next: Option<String>,
}
