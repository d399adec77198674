//! What readers of the cluster's streams see: events, kept task output, and the data of
//! the stream-ending `end`, `error` and `gap` events.

use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use super::limits::{lenient, schema_type, string, trimmed_pattern};
use super::{Outcome, OutputStream, TaskStatus, Timestamp};

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

/// The data of an `error` event that ends a stream: `lagged` (the client fell behind and is
/// cut off) or `stream_lifetime` (the stream reached `coordinator.max_stream_lifetime`);
/// after either, reconnect with `Last-Event-ID` and nothing is missed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StreamError {
    pub code: String,
    pub message: String,
}

impl StreamError {
    /// The client fell behind the live feed and was cut off.
    pub const LAGGED: &str = "lagged";
    /// The stream reached its lifetime (a planned end).
    pub const LIFETIME: &str = "stream_lifetime";

    /// Whether the stream ended so that the client resumes at once from its last id.
    pub fn resume_at_once(&self) -> bool {
        self.code == Self::LAGGED || self.code == Self::LIFETIME
    }
}

/// The data of the `gap` event: events before `oldest` were purged, so some after the
/// resume point are gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StreamGap {
    pub oldest: u64,
}

string_enum! {
    /// What an event in the cluster's event stream is about.
    EventKind {
        Task = "task",
        Node = "node",
        Schedule = "schedule",
        Skill = "skill",
    }
}

/// The most digits of a `Last-Event-ID`.
const RESUME_DIGITS: usize = 19;

/// A `Last-Event-ID` header: the id of the last event (or the number of the last line of
/// output) a client saw, to resume after it; white space around it is ignored.
pub fn parse_last_event_id(text: &str) -> Result<u64, String> {
    let t = text.trim();
    if t.is_empty() || t.len() > RESUME_DIGITS || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{}` is not an id from this stream's `id:` lines", text.escape_debug()));
    }
    t.parse().map_err(|e| format!("`{t}`: {e}"))
}

schema_type! {
    /// An event kind's name in a request.
    EventKindInput => lenient::<EventKind>();
    /// A `Last-Event-ID`.
    LastEventId => string(
        trimmed_pattern(&format!("[0-9]{{1,{RESUME_DIGITS}}}")),
        "Resume after this id: the last `id:` the client saw (wins over `after`)".into(),
    );
}

impl<'de> Deserialize<'de> for EventKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

string_enum! {
    /// What happened to a task: the `event` of a `task` event.
    TaskTransition {
        Submitted = "submitted",
        Scheduled = "scheduled",
        Running = "running",
        Completed = "completed",
        Failed = "failed",
        Timeout = "timeout",
        CancelRequested = "cancel_requested",
        Cancelled = "cancelled",
        /// Every task it depends on has ended: it may be placed now.
        Released = "released",
        /// A group task's child ended (the event names the child in its message).
        ChildEnded = "child_ended",
    }
}

impl From<Outcome> for TaskTransition {
    /// The event of a task that ended this way.
    fn from(o: Outcome) -> TaskTransition {
        match o {
            Outcome::Completed => TaskTransition::Completed,
            Outcome::Failed => TaskTransition::Failed,
            Outcome::Timeout => TaskTransition::Timeout,
            Outcome::Cancelled => TaskTransition::Cancelled,
        }
    }
}

string_enum! {
    /// What happened to a node: the `event` of a `node` event.
    NodeTransition {
        Registered = "registered",
        Online = "online",
        Offline = "offline",
        Drained = "drained",
        Undrained = "undrained",
        SkillsChanged = "skills_changed",
        /// A skill this node has now differs from another node's copy (the first time it
        /// does; the event names the skill and the digests).
        SkillDrift = "skill_drift",
        SecretRotated = "secret_rotated",
        Left = "left",
        Forgotten = "forgotten",
    }
}

string_enum! {
    /// What happened to a schedule: the `event` of a `schedule` event.
    ScheduleTransition {
        Created = "created",
        Edited = "edited",
        Paused = "paused",
        Resumed = "resumed",
        Removed = "removed",
        /// A due time (or a run-now) submitted its task.
        Fired = "fired",
        /// A due time did not run (an overlap, a catch-up policy), or waits (`overlap: queue`).
        Skipped = "skipped",
        /// A due time could not submit its task (the message says why).
        FireFailed = "fire_failed",
    }
}

string_enum! {
    /// What happened to a pushed skill: the `event` of a `skill` event (the skill is in
    /// `skill`; a node's own outcome names the node).
    SkillTransition {
        /// An admin pushed a version to a selector (the message says who, what and where).
        Pushed = "skill_pushed",
        /// An admin removed a pushed skill (from every chosen node, or from some).
        Removed = "skill_removed",
        /// An admin went back to the version before.
        RolledBack = "skill_rolled_back",
        /// A node installed the pushed version.
        Installed = "skill_installed",
        /// A node removed its pushed copy.
        Uninstalled = "skill_uninstalled",
        /// A node could not install the pushed version (the message says why).
        InstallFailed = "skill_install_failed",
    }
}

/// The name of an event: a task's, a node's, a schedule's or a pushed skill's transition. On the wire it is the bare
/// name (`"scheduled"`, `"offline"`): the two lists share no name, so a name alone says
/// which kind it is. Whoever acts on an event matches on this, exhaustively, so a renamed
/// or a new transition is a compile error there, never a silently missed event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transition {
    Task(TaskTransition),
    Node(NodeTransition),
    Schedule(ScheduleTransition),
    Skill(SkillTransition),
}

impl Transition {
    /// The kind of event that carries this name.
    pub fn kind(self) -> EventKind {
        match self {
            Transition::Task(_) => EventKind::Task,
            Transition::Node(_) => EventKind::Node,
            Transition::Schedule(_) => EventKind::Schedule,
            Transition::Skill(_) => EventKind::Skill,
        }
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Transition::Task(t) => t.as_str(),
            Transition::Node(n) => n.as_str(),
            Transition::Schedule(s) => s.as_str(),
            Transition::Skill(s) => s.as_str(),
        }
    }

    /// The name `text` has for events of `kind` (an error for a name of the other kind).
    pub fn parse(kind: EventKind, text: &str) -> Result<Transition, String> {
        match kind {
            EventKind::Task => text.parse().map(Transition::Task),
            EventKind::Node => text.parse().map(Transition::Node),
            EventKind::Schedule => text.parse().map(Transition::Schedule),
            EventKind::Skill => text.parse().map(Transition::Skill),
        }
    }
}

impl From<TaskTransition> for Transition {
    fn from(t: TaskTransition) -> Transition {
        Transition::Task(t)
    }
}

impl From<NodeTransition> for Transition {
    fn from(n: NodeTransition) -> Transition {
        Transition::Node(n)
    }
}

impl From<ScheduleTransition> for Transition {
    fn from(s: ScheduleTransition) -> Transition {
        Transition::Schedule(s)
    }
}

impl From<SkillTransition> for Transition {
    fn from(s: SkillTransition) -> Transition {
        Transition::Skill(s)
    }
}

impl std::fmt::Display for Transition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Transition {
    type Err = String;
    fn from_str(s: &str) -> Result<Transition, String> {
        EventKind::ALL.iter().find_map(|k| Transition::parse(*k, s).ok()).ok_or_else(|| {
            let names: Vec<&str> = TaskTransition::ALL
                .iter()
                .map(|t| t.as_str())
                .chain(NodeTransition::ALL.iter().map(|n| n.as_str()))
                .chain(ScheduleTransition::ALL.iter().map(|n| n.as_str()))
                .chain(SkillTransition::ALL.iter().map(|n| n.as_str()))
                .collect();
            format!("`{s}` is not one of {}", names.join(", "))
        })
    }
}

impl Serialize for Transition {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Transition {
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
    // Always `event.kind()` (the core sets both from the transition; not a doc comment,
    // which would change the OpenAPI document).
    pub kind: EventKind,
    /// Tasks: submitted, scheduled, running, completed, failed, timeout, cancel_requested,
    /// cancelled, released (the tasks it depends on ended), child_ended (a group task's
    /// child ended). Nodes: registered, online, offline, drained, undrained, skills_changed,
    /// skill_drift, secret_rotated, left, forgotten. Schedules: created, edited, paused,
    /// resumed, removed, fired, skipped, fire_failed. Pushed skills: skill_pushed,
    /// skill_removed, skill_rolled_back, skill_installed, skill_uninstalled,
    /// skill_install_failed.
    #[schema(value_type = String)]
    pub event: Transition,
    /// A task's event, or the task a schedule's firing submitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    /// A schedule's event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    /// The task's or the node's status after the event.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// A task's first required skill (a `skill_drift` event: the skill that drifts; a
    /// `skill` event: the pushed skill).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skill: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A name alone says which kind of event it is, and the document lists every name.
    #[test]
    fn transition_names_are_unique_and_documented() {
        let names: Vec<Transition> = TaskTransition::ALL
            .iter()
            .map(|t| Transition::from(*t))
            .chain(NodeTransition::ALL.iter().map(|n| Transition::from(*n)))
            .chain(ScheduleTransition::ALL.iter().map(|n| Transition::from(*n)))
            .chain(SkillTransition::ALL.iter().map(|n| Transition::from(*n)))
            .collect();
        let schema = serde_json::to_value(<Event as utoipa::PartialSchema>::schema()).unwrap();
        let documented = schema["properties"]["event"]["description"].as_str().unwrap().to_string();
        for name in &names {
            assert_eq!(name.as_str().parse::<Transition>(), Ok(*name));
            assert_eq!(Transition::parse(name.kind(), name.as_str()), Ok(*name));
            assert_eq!(serde_json::to_value(name).unwrap(), serde_json::json!(name.as_str()));
            assert!(
                documented.split(|c: char| !c.is_ascii_alphabetic() && c != '_').any(|w| w == name.as_str()),
                "`{name}` is missing from Event.event's description: {documented}"
            );
        }
        assert!(Transition::parse(EventKind::Node, "scheduled").is_err());
    }
}
