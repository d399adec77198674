//! The worker side of an attempt on the wire: polls and assignments, start and result
//! reports, output batches and their answers.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::limits::{Text, lenient, schema_type};
use super::{Priority, SecretValues, TaskRef, TaskStatus, Timestamp};

/// A line of output, as a worker sends it: workers split longer lines.
pub const OUTPUT_LINE: Text = Text::any(16 * 1024);

schema_type! {
    /// The text of a line of output.
    OutputText => OUTPUT_LINE.schema();
    /// An output stream's name in a request.
    OutputStreamInput => lenient::<OutputStream>();
}

/// `POST /api/v1/nodes/{id}/tasks/poll`: a worker asks for work.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PollRequest {
    /// The tasks the worker holds now; anything assigned but not listed is (re)sent.
    #[serde(default, deserialize_with = "super::limits::objects")]
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
    /// The cluster secrets it uses, by name: their values come only in the answer to this
    /// attempt's start report.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
    /// The results of the tasks it depends on, keyed by task id (or by step name in a
    /// workflow): each `{status, result, error}`. Absent for a task without dependencies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Value>,
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
    /// In the answer to the start report of an attempt that uses secrets: their values, by
    /// name (this attempt only; the worker passes them to the skill's process and keeps
    /// them no longer than the attempt).
    #[serde(default, skip_serializing_if = "SecretValues::is_empty")]
    pub secrets: SecretValues,
}

/// The most start reports, and the most results, one batch may carry.
pub const MAX_BATCH_REPORTS: usize = 1024;

/// `POST /api/v1/nodes/{id}/tasks/reports`: start reports and results of many attempts,
/// applied in one commit and answered one by one (a stale report refuses only itself).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportBatch {
    /// Attempts that started, applied first, in order.
    #[serde(default, deserialize_with = "super::limits::objects", skip_serializing_if = "Vec::is_empty")]
    #[schema(max_items = 1024)]
    pub starts: Vec<TaskRef>,
    /// Attempts that ended, applied after the starts, in order.
    #[serde(default, deserialize_with = "super::limits::objects", skip_serializing_if = "Vec::is_empty")]
    #[schema(max_items = 1024)]
    pub results: Vec<AttemptResult>,
    /// The tasks the worker holds once these reports are in: when present, the answer also
    /// carries what a poll with this list would hand out now (it does not wait for work).
    #[serde(default, deserialize_with = "super::limits::optional_objects", skip_serializing_if = "Option::is_none")]
    pub held: Option<Vec<TaskRef>>,
}

impl ReportBatch {
    /// How many reports it carries.
    pub fn len(&self) -> usize {
        self.starts.len() + self.results.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Too many reports for one batch: the message names the list and the limit (the
    /// document's `maxItems` of each list).
    pub fn check(&self) -> Result<(), String> {
        for (field, n) in [("starts", self.starts.len()), ("results", self.results.len())] {
            if n > MAX_BATCH_REPORTS {
                return Err(format!(
                    "{field}: at most {MAX_BATCH_REPORTS} in one batch, got {n}; send the rest in another batch"
                ));
            }
        }
        Ok(())
    }
}

/// One result in a [`ReportBatch`]: the task and its attempt's [`ResultReport`].
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttemptResult {
    pub task_id: String,
    #[serde(deserialize_with = "super::limits::object")]
    pub report: ResultReport,
}

/// The answer to a [`ReportBatch`], after its commit: one answer per report, in the order
/// sent.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct ReportBatchAnswer {
    pub starts: Vec<BatchedAnswer>,
    pub results: Vec<BatchedAnswer>,
    /// What a poll would hand out now; present when the batch said what it holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll: Option<PollResponse>,
}

/// How one report of a batch went: its [`ReportResponse`], or its error (`stale_attempt`,
/// `unknown_task`, ...), as the per-task endpoint would have answered it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum BatchedAnswer {
    Taken(ReportResponse),
    Refused(super::ErrorBody),
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
    #[schema(value_type = OutputStreamInput, inline)]
    pub stream: OutputStream,
    #[schema(value_type = OutputText)]
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
    #[serde(deserialize_with = "super::limits::objects")]
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
