//! What readers of the cluster's streams see: events, kept task output, and the data of
//! the stream-ending `end`, `error` and `gap` events.

use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use super::limits::{lenient, schema_type, string, trimmed_pattern};
use super::{OutputStream, TaskStatus, Timestamp};

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
