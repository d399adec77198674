//! Schedules on the wire: a schedule's definition (when it fires, what it submits, its
//! policies), its view with the next due time and the last run, and its run history.
//!
//! A schedule fires on a cron expression in a time zone, at a fixed interval, or once at a
//! moment; each firing submits its payload — one task, the fields of `tasks submit` — as an
//! ordinary task that names the schedule and the due time it came from. Every firing is recorded as a run keyed by (schedule, due
//! time): the coordinator commits the run, the schedule's next due time and the submitted
//! tasks together, so a restart or a failover neither skips nor repeats a due time.
//!
//! The text formats here (names, intervals) are each defined once, for the server's check
//! and the document's schema.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;
use utoipa::openapi::schema::{ObjectBuilder, Type};

use super::limits::{Text, lenient, schema_type, string, trimmed_pattern};
use super::{SubmitTask, TaskStatus, Timestamp};

/// The most characters of a schedule's (or a workflow step's) name.
pub const NAME_MAX: usize = 100;
/// A cron expression.
pub const CRON_TEXT: Text = Text::new(200);
/// A schedule's description.
pub const SCHEDULE_DESCRIPTION: Text = Text::new(2000);
/// The shortest `every`.
pub const MIN_EVERY: Duration = Duration::from_secs(1);
/// The stagger window of a top-of-hour cron expression (minute 0, any hour) when neither
/// `stagger` nor `exact` is given, as OpenClaw's own `cron add` does.
pub const AUTO_STAGGER: Duration = Duration::from_secs(300);
/// The most missed due times `catch_up: all` runs after an outage (the oldest beyond it are
/// skipped).
pub const CATCH_UP_LIMIT: usize = 100;
/// A due time fired later than this counts as missed (for `catch_up: none`).
pub const MISSED_AFTER: Duration = Duration::from_secs(60);
/// Runs on a page of `GET /api/v1/schedules/{schedule}/runs`.
pub const RUNS_PAGE: u32 = 50;
/// The prefix of schedule ids (a name may not start with it).
pub const SCHEDULE_ID_PREFIX: &str = "sched_";

/// The characters of a schedule or step name, as a regex class.
const NAME_CHARS: &str = "[A-Za-z0-9._-]";

/// A schedule's or a workflow step's name as kept (trimmed), or why it is refused: 1 to
/// [`NAME_MAX`] of `A-Z a-z 0-9 . _ -`, starting with a letter or a digit, and not starting
/// with `sched_` (the ids' prefix, so that a path names either one or the other).
pub fn check_name(text: &str) -> Result<String, String> {
    let t = text.trim();
    let chars = t.chars().count();
    if t.is_empty() || chars > NAME_MAX {
        return Err(format!("must be 1 to {NAME_MAX} characters, got {chars}"));
    }
    if let Some(c) = t.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        return Err(format!("`{t}` has `{}`; only A-Z, a-z, 0-9, '.', '_' and '-' are allowed", c.escape_debug()));
    }
    if !t.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(format!("`{t}` must start with a letter or a digit"));
    }
    if t.starts_with(SCHEDULE_ID_PREFIX) {
        return Err(format!("`{t}` starts with `{SCHEDULE_ID_PREFIX}`, which is for schedule ids"));
    }
    Ok(t.to_string())
}

/// What [`check_name`] accepts.
fn name_schema() -> utoipa::openapi::schema::Object {
    super::limits::excluding(
        string(
            trimmed_pattern(&format!("[A-Za-z0-9]{NAME_CHARS}{{0,{}}}", NAME_MAX - 1)),
            format!(
                "1 to {NAME_MAX} of A-Z, a-z, 0-9, '.', '_' and '-', starting with a letter or a digit and not with `{SCHEDULE_ID_PREFIX}`; white space around it is ignored"
            ),
        ),
        trimmed_pattern(&format!("{SCHEDULE_ID_PREFIX}{NAME_CHARS}*")),
    )
}

/// The fields of a cron expression: name, lowest and highest value, and the regex of a
/// number in that range (one or two digits).
const CRON_FIELDS: [(&str, u16, u16, &str); 6] = [
    ("second", 0, 59, "[0-5]?[0-9]"),
    ("minute", 0, 59, "[0-5]?[0-9]"),
    ("hour", 0, 23, "(?:[01]?[0-9]|2[0-3])"),
    ("day of month", 1, 31, "(?:0?[1-9]|[12][0-9]|3[01])"),
    ("month", 1, 12, "(?:0?[1-9]|1[0-2])"),
    ("day of week", 0, 7, "0?[0-7]"),
];
/// The aliases a cron expression may be.
const CRON_ALIASES: &[&str] = &["@yearly", "@annually", "@monthly", "@weekly", "@daily", "@hourly"];

/// The regex of a cron expression ([`check_cron`] accepts exactly what it matches).
fn cron_pattern() -> String {
    let field = |number: &str| {
        let step = "/[1-9][0-9]?";
        let element = format!("(?:\\*(?:{step})?|{number}(?:-{number}(?:{step})?)?)");
        format!("{element}(?:,{element})*")
    };
    let five: Vec<String> = CRON_FIELDS[1..].iter().map(|f| field(f.3)).collect();
    let aliases: Vec<&str> = CRON_ALIASES.iter().map(|a| &a[1..]).collect();
    format!("@(?:{})|(?:{} +)?{}", aliases.join("|"), field(CRON_FIELDS[0].3), five.join(" +"))
}

/// A number of a cron field (one or two digits, in range).
fn cron_number(text: &str, (name, lo, hi, _): (&str, u16, u16, &str)) -> Result<u16, String> {
    let n: u16 = (!text.is_empty() && text.len() <= 2 && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
        .ok_or_else(|| format!("`{}` is not a number of the {name} field", text.escape_debug()))?;
    if n < lo || n > hi {
        return Err(format!("{n} is not a {name} ({lo} to {hi})"));
    }
    Ok(n)
}

/// A cron expression as kept (fields separated by one space), or why it is refused: what
/// [`cron_pattern`] matches (white space around it is ignored).
pub fn check_cron(text: &str) -> Result<String, String> {
    CRON_TEXT.check(text)?;
    let t = text.trim();
    if CRON_ALIASES.contains(&t) {
        return Ok(t.to_string());
    }
    let fields: Vec<&str> = t.split(' ').filter(|f| !f.is_empty()).collect();
    let specs = match fields.len() {
        5 => &CRON_FIELDS[1..],
        6 => &CRON_FIELDS[..],
        n => {
            return Err(format!(
                "`{}` has {n} fields: write 5 (minute hour day-of-month month day-of-week), 6 with seconds first, or @daily and the like",
                t.escape_debug()
            ));
        }
    };
    for (field, spec) in fields.iter().zip(specs) {
        for element in field.split(',') {
            let (base, step) = match element.split_once('/') {
                Some((b, s)) => (b, Some(s)),
                None => (element, None),
            };
            if let Some(s) = step
                && (s.is_empty() || s.len() > 2 || !s.bytes().all(|b| b.is_ascii_digit()) || s.starts_with('0'))
            {
                return Err(format!("`{}`: a step is 1 to 99", element.escape_debug()));
            }
            match base.split_once('-') {
                _ if base == "*" => {}
                Some((a, b)) => {
                    cron_number(a, *spec)?;
                    cron_number(b, *spec)?;
                }
                None if step.is_some() => {
                    return Err(format!(
                        "`{}`: a step goes after `*` or a range (*/5, 0-30/5)",
                        element.escape_debug()
                    ));
                }
                None => {
                    cron_number(base, *spec)?;
                }
            }
        }
    }
    Ok(fields.join(" "))
}

/// A checked cron expression as `croner` takes it: a range from a higher to a lower number
/// wraps around the field (`22-2` → `22-23,0-2`), and a `*` in a list is the field's whole
/// range (`*,5` → `0-59,5`; croner takes `*` alone only).
pub fn croner_text(cron: &str) -> String {
    let fields: Vec<&str> = cron.split(' ').collect();
    let specs = if fields.len() == 6 { &CRON_FIELDS[..] } else { &CRON_FIELDS[1..] };
    if fields.len() != specs.len() {
        return cron.to_string();
    }
    let wrap = |element: &str, (_, lo, hi, _): (&str, u16, u16, &str)| -> String {
        let (base, step) = match element.split_once('/') {
            Some((b, s)) => (b, format!("/{s}")),
            None => (element, String::new()),
        };
        match base.split_once('-').map(|(a, b)| (a.parse::<u16>(), b.parse::<u16>())) {
            Some((Ok(a), Ok(b))) if a > b => format!("{a}-{hi}{step},{lo}-{b}{step}"),
            _ if base == "*" && step.is_empty() => format!("{lo}-{hi}"),
            _ => element.to_string(),
        }
    };
    fields
        .iter()
        .zip(specs)
        .map(
            |(f, spec)| {
                if *f == "*" {
                    f.to_string()
                } else {
                    f.split(',').map(|e| wrap(e, *spec)).collect::<Vec<_>>().join(",")
                }
            },
        )
        .collect::<Vec<_>>()
        .join(" ")
}

/// The units of an interval, and their milliseconds.
const INTERVAL_UNITS: &[(&str, u64)] = &[("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)];
/// The most digits of an interval's number.
const INTERVAL_DIGITS: usize = 9;

/// An interval as the API takes it: a whole number and a unit `ms`, `s`, `m`, `h` or `d`
/// (`90s`, `10m`, `1d`); white space around it is ignored.
pub fn parse_interval(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let refused =
        || format!("`{}` is not an interval: write a whole number and s, m, h or d (90s, 10m, 1d)", t.escape_debug());
    let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(refused)?;
    let (number, unit) = t.split_at(split);
    if number.is_empty() || number.len() > INTERVAL_DIGITS {
        return Err(refused());
    }
    let scale = INTERVAL_UNITS.iter().find(|(u, _)| *u == unit).ok_or_else(refused)?.1;
    let n: u64 = number.parse().map_err(|_| refused())?;
    Ok(Duration::from_millis(n.saturating_mul(scale)))
}

/// The text of an interval in its largest whole unit (`parse_interval` reads it back).
pub fn interval_text(d: Duration) -> String {
    let ms = d.as_millis() as u64;
    for (unit, scale) in INTERVAL_UNITS.iter().rev() {
        if ms.is_multiple_of(*scale) && ms / scale > 0 && (ms / scale).to_string().len() <= INTERVAL_DIGITS {
            return format!("{}{unit}", ms / scale);
        }
    }
    format!("{ms}ms")
}

schema_type! {
    /// A schedule's or a workflow step's name.
    ScheduleName => name_schema();
    /// A schedule, by id or by name.
    ScheduleKey => string(
        trimmed_pattern(&format!("{NAME_CHARS}{{1,{NAME_MAX}}}")),
        "A schedule's id (`sched_…`) or its name".into(),
    );
    /// An interval.
    Interval => string(
        trimmed_pattern(&format!(
            "[0-9]{{1,{INTERVAL_DIGITS}}}(?:{})",
            INTERVAL_UNITS.iter().map(|(u, _)| *u).collect::<Vec<_>>().join("|")
        )),
        "A whole number and a unit: ms, s, m, h or d (90s, 10m, 1d)".into(),
    );
    /// A cron expression.
    CronExpression => string(
        trimmed_pattern(&cron_pattern()),
        format!(
            "5 fields (minute hour day-of-month month day-of-week; day-of-week 0-7, 0 and 7 are Sunday) or 6 (seconds first), separated by spaces; each field a list of `*`, `*/STEP`, `N`, `N-M` or `N-M/STEP` (a range from a higher to a lower number wraps: hours `22-2` are 22, 23, 0, 1, 2); or @yearly, @annually, @monthly, @weekly, @daily, @hourly. At most {} characters",
            CRON_TEXT.max()
        ),
    )
    .max_length(Some(CRON_TEXT.max()));
    /// An interval of at least a second (`every`).
    EveryInterval => super::limits::excluding(
        string(
            trimmed_pattern(&format!("[0-9]{{1,{INTERVAL_DIGITS}}}(?:s|m|h|d)")),
            "A whole number and a unit: s, m, h or d (90s, 10m, 1d); at least 1s".into(),
        ),
        trimmed_pattern("0+(?:s|m|h|d)"),
    );
    /// An IANA time zone name.
    TimeZoneName => ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(chrono_tz::TZ_VARIANTS.iter().map(|z| z.name())))
        .description(Some("An IANA time zone (Europe/Berlin, America/New_York, UTC)"));
    /// A catch-up policy's name in a request.
    CatchUpInput => lenient::<CatchUp>();
    /// An overlap policy's name in a request.
    OverlapInput => lenient::<Overlap>();
    /// A schedule description.
    ScheduleDescription => SCHEDULE_DESCRIPTION.schema();
}

string_enum! {
    /// Which due times missed while the coordinator was down (or fired over a minute late)
    /// still run.
    #[derive(Default)]
    CatchUp {
        /// None: they are skipped.
        None = "none",
        /// The latest one runs, the earlier ones are skipped (the default).
        #[default]
        Latest = "latest",
        /// Every one runs, up to 100 (the oldest beyond that are skipped).
        All = "all",
    }
}

string_enum! {
    /// What a firing does while the schedule's previous run is still active.
    #[derive(Default)]
    Overlap {
        /// It is skipped (the default).
        #[default]
        Skip = "skip",
        /// It waits for the previous run to end, then runs; while one waits, further
        /// firings are skipped.
        Queue = "queue",
        /// It runs anyway.
        Allow = "allow",
    }
}

string_enum! {
    /// What became of one firing.
    RunOutcome {
        /// Its payload was submitted (`task_id` names the task).
        Fired = "fired",
        /// It did not run (the message says why: an overlap, a catch-up policy).
        Skipped = "skipped",
        /// Its payload could not be submitted (the message says why).
        Failed = "failed",
    }
}

string_enum! {
    /// Where a schedule is.
    ScheduleStatus {
        /// It fires at its next due time.
        Active = "active",
        /// It does not fire until resumed (run-now still works).
        Paused = "paused",
        /// A one-shot that has fired (or was missed): nothing more is due.
        Done = "done",
    }
}

macro_rules! lenient_deserialize {
    ($($t:ty),+) => {$(
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
            }
        }
    )+};
}
lenient_deserialize!(CatchUp, Overlap, RunOutcome, ScheduleStatus);

/// `POST /api/v1/schedules`: when it fires (exactly one of `cron`, `every` and `at`), what
/// it submits (`task`), and its policies.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSchedule {
    /// Unique; `openclaw schedules get NAME`.
    #[schema(value_type = ScheduleName)]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schema(value_type = ScheduleDescription)]
    pub description: String,
    /// Fire on this cron expression, in `tz`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<CronExpression>)]
    pub cron: Option<String>,
    /// The time zone of `cron` (UTC when absent). DST changes behave as in cron: a time
    /// skipped by the spring change runs at the first minute after it, a time repeated by
    /// the autumn change runs once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<TimeZoneName>)]
    pub tz: Option<String>,
    /// Fire every this long, from the moment the schedule is created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<EveryInterval>)]
    pub every: Option<String>,
    /// Fire once, at this moment (one in the past fires at once, by `catch_up`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Timestamp>,
    /// Spread a cron schedule's firings over this window after each due time (a fixed
    /// offset per schedule). Absent: 5 minutes for a top-of-hour expression (minute 0, any
    /// hour), as OpenClaw's `cron add`, else none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Interval>)]
    pub stagger: Option<String>,
    /// No stagger at all (a cron schedule fires at its exact due times).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exact: bool,
    /// Missed due times: none, latest (default) or all (up to 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<CatchUpInput>, inline)]
    pub catch_up: Option<CatchUp>,
    /// A firing while the previous run is active: skip (default), queue or allow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<OverlapInput>, inline)]
    pub overlap: Option<Overlap>,
    /// Remove the schedule once a run completes (default: false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_after_run: Option<bool>,
    /// Create it paused.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
    /// The task each firing submits: the fields of `POST /api/v1/tasks` (its
    /// `idempotency_key`, `origin` and `reject_unplaceable` are ignored: each firing is a
    /// new task, of origin `schedule`, queued until a node can run it). Give this or
    /// `workflow`.
    #[serde(default, skip_serializing_if = "is_no_task")]
    pub task: SubmitTask,
    /// Or a workflow each firing submits (as `POST /api/v1/workflows`; its each_node steps
    /// take the nodes online at the firing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<super::Workflow>,
}

/// An absent `task` (a schedule of a workflow).
pub fn is_no_task(task: &SubmitTask) -> bool {
    *task == SubmitTask::default()
}

/// `PATCH /api/v1/schedules/{schedule}`: the fields to change; absent ones stay. A new
/// `cron`, `every` or `at` replaces the timing (and restarts an interval from now).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleEdit {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<ScheduleName>)]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<ScheduleDescription>)]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<CronExpression>)]
    pub cron: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<TimeZoneName>)]
    pub tz: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<EveryInterval>)]
    pub every: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Interval>)]
    pub stagger: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<CatchUpInput>, inline)]
    pub catch_up: Option<CatchUp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<OverlapInput>, inline)]
    pub overlap: Option<Overlap>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_after_run: Option<bool>,
    /// A new task payload (replaces the whole task, or the workflow).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "super::limits::optional_object")]
    pub task: Option<SubmitTask>,
    /// A new workflow payload (replaces the task, or the workflow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<super::Workflow>,
}

/// A schedule's definition as kept: checked, with defaults applied. Exactly one of `cron`,
/// `every` and `at` is set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ScheduleSpec {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// The time zone of `cron`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tz: Option<String>,
    /// The interval, in its largest whole unit (`10m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Timestamp>,
    /// The stagger window (`0s`: exact).
    pub stagger: String,
    pub catch_up: CatchUp,
    pub overlap: Overlap,
    pub delete_after_run: bool,
    /// The task each firing submits (absent for a workflow).
    #[serde(default, skip_serializing_if = "is_no_task")]
    pub task: SubmitTask,
    /// The workflow each firing submits, instead of a task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<super::Workflow>,
}

impl ScheduleSpec {
    /// When it fires, in words: `cron 0 7 * * * (Europe/Berlin)`, `every 10m`, `at …`.
    pub fn timing(&self) -> String {
        match (&self.cron, &self.every, &self.at) {
            (Some(c), _, _) => format!("cron {c} ({})", self.tz.as_deref().unwrap_or("UTC")),
            (_, Some(e), _) => format!("every {e}"),
            (_, _, Some(a)) => format!("at {}", crate::util::rfc3339(a.0)),
            _ => "never".into(),
        }
    }

    /// What it submits, in words: the skill that runs.
    pub fn payload(&self) -> &str {
        match &self.workflow {
            Some(w) => &w.name,
            None => self.task.required_skills.first().map(String::as_str).unwrap_or(&self.task.name),
        }
    }
}

/// Where a task submitted by a schedule came from (`tasks get` shows it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ScheduleOrigin {
    pub schedule_id: String,
    /// The schedule's name when it fired.
    pub name: String,
    /// The due time it fired for; null for a run-now.
    pub due_at: Option<Timestamp>,
}

/// The last firing of a schedule, as the list shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LastRun {
    /// The due time it was for (null for a run-now).
    pub due_at: Option<Timestamp>,
    pub fired_at: Timestamp,
    pub outcome: RunOutcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    /// The submitted task's status (as of its last change), when one was submitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<TaskStatus>,
}

/// A schedule as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Schedule {
    pub schedule_id: String,
    #[serde(flatten)]
    pub spec: ScheduleSpec,
    pub status: ScheduleStatus,
    /// When it fires next (with its stagger); null when paused or done.
    pub next_due: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<LastRun>,
    /// The task of its run that is still active, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<String>,
    /// A due time waiting for the active run to end (`overlap: queue`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued: Option<Timestamp>,
    /// How many firings were recorded (run-now included).
    pub runs: u64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// `GET /api/v1/schedules`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ScheduleList {
    /// By name.
    pub schedules: Vec<Schedule>,
}

/// One firing of a schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ScheduleRun {
    pub schedule_id: String,
    /// Its number within the schedule, from 1.
    pub run: u64,
    /// The due time it was for; null for a run-now.
    pub due_at: Option<Timestamp>,
    pub fired_at: Timestamp,
    pub outcome: RunOutcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    /// The task's status now (absent once the task is purged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<TaskStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `GET /api/v1/schedules/{schedule}/runs`: newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RunList {
    pub runs: Vec<ScheduleRun>,
    /// Pass as `before` for the next page; null at the end.
    pub next: Option<u64>,
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::Value;
    use utoipa::PartialSchema;

    use super::*;
    use crate::model::limits::tests::{near, valid};

    fn json<T: PartialSchema>() -> Value {
        serde_json::to_value(T::schema()).unwrap()
    }

    #[test]
    fn intervals_read_back() {
        for ms in [1, 1000, 90_000, 600_000, 3_600_000, 86_400_000, 1_500] {
            let d = Duration::from_millis(ms);
            assert_eq!(parse_interval(&interval_text(d)), Ok(d), "{ms}");
        }
        assert_eq!(interval_text(Duration::from_secs(600)), "10m");
        assert_eq!(parse_interval(" 1d "), Ok(Duration::from_secs(86_400)));
        assert!(parse_interval("1h30m").is_err() && parse_interval("10").is_err() && parse_interval("m").is_err());
    }

    proptest! {
        #[test]
        fn names_match_their_schema(s in near(vec![
            "morning".into(), "a".into(), "sched_x".into(), "-x".into(), "a b".into(), "x".repeat(100), "x".repeat(101),
            "Backup.v2_daily-1".into(),
        ])) {
            prop_assert_eq!(check_name(&s).is_ok(), valid(&json::<ScheduleName>(), &Value::String(s.clone())), "{:?}", s);
        }

        #[test]
        fn cron_expressions_match_their_schema(s in near(vec![
            "0 7 * * *".into(), "*/15 9-17 * * 1-5".into(), "0 0 1 1 *".into(), "30 2 * * *".into(), "@daily".into(),
            "0 0 7 * * *".into(), "22-2 * * * *".into(), "0-30/5 * * * 0,6,7".into(), "61 * * * *".into(),
            "0 24 * * *".into(), "* * 0 * *".into(), "5/10 * * * *".into(), "*/0 * * * *".into(), "* * * *".into(),
            "L * * * *".into(), "@reboot".into(), "*,5 */7,* 4-24,*/21 * 05-03,0-00,*,6-07".into(), "0 7 * * MON".into(), " 0  7 * * * ".into(),
        ])) {
            let valid_here = check_cron(&s).is_ok();
            prop_assert_eq!(valid_here, valid(&json::<CronExpression>(), &Value::String(s.clone())), "{:?}", s);
            if valid_here {
                let kept = check_cron(&s).unwrap();
                prop_assert!(croner::parser::CronParser::builder()
                    .seconds(croner::parser::Seconds::Optional)
                    .build()
                    .parse(&croner_text(&kept))
                    .is_ok(), "{:?}", kept);
            }
        }

        #[test]
        fn every_intervals_match_their_schema(s in near(vec![
            "10m".into(), "1s".into(), "0s".into(), "000s".into(), "1000ms".into(), "1d".into(), "9".repeat(9) + "d",
        ])) {
            let here = parse_interval(&s).is_ok_and(|d| d >= MIN_EVERY) && !s.trim().ends_with("ms");
            prop_assert_eq!(here, valid(&json::<EveryInterval>(), &Value::String(s.clone())), "{:?}", s);
        }

        #[test]
        fn intervals_match_their_schema(s in near(vec![
            "10m".into(), "90s".into(), "1d".into(), "250ms".into(), "1h".into(), "9".repeat(9) + "s", "9".repeat(10) + "s",
            "10".into(), "1.5h".into(), "1w".into(),
        ])) {
            prop_assert_eq!(parse_interval(&s).is_ok(), valid(&json::<Interval>(), &Value::String(s.clone())), "{:?}", s);
        }
    }
}
