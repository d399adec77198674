//! Schedules: when each one is due, and the transitions that fire it.
//!
//! A schedule's due times come from its timing ([`When`]): a cron expression evaluated in
//! its time zone by `croner` (Vixie cron across DST changes: a time skipped by the spring
//! change runs at the first instant after the gap, a time repeated by the autumn change
//! runs once), a fixed interval from an anchor, or one moment. No clock is read here: every
//! transition takes [`Now`], so tests drive schedules with simulated time.
//!
//! Invariants:
//! - Exactly once per (schedule, due time). Firing a due time submits its task, records
//!   the run and advances the schedule's `next_due` in one transition, so the three reach
//!   the store in one batch (one transaction). After a crash either all three are there or
//!   none is, and the restarted coordinator fires exactly the due times the store has not
//!   passed. The store's unique (schedule, due time) index of runs backs this up.
//! - Due times passed while the coordinator was down follow `catch_up`; a firing while the
//!   schedule's previous task is active follows `overlap` (a queued due time is kept in
//!   the schedule's record, and fires when that task ends).
//! - [`Schedules`] owns the records; its only mutable access to one marks it dirty and
//!   keeps the due index (fire time → schedule) in step, so [`Core::take_batch`] writes
//!   every change and the timer loop sees every due time.

use std::collections::{BTreeSet, HashMap};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::TimeZone;
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use serde::{Deserialize, Serialize};

use super::{Core, Draft, Error, Now};
use crate::model::{
    CATCH_UP_LIMIT, CatchUp, ErrorCode, LastRun, MIN_EVERY, MISSED_AFTER, NewSchedule, Overlap, RunOutcome,
    SCHEDULE_DESCRIPTION, SCHEDULE_ID_PREFIX, Schedule, ScheduleEdit, ScheduleOrigin, ScheduleRun, ScheduleSpec,
    ScheduleStatus, ScheduleTransition, SubmitTask, TaskStatus, Timestamp, check_cron, check_name, croner_text,
    interval_text, parse_interval,
};

/// The most due times one firing looks through (an every-second schedule after a long
/// outage); beyond it, the schedule goes on from now.
const SCAN_LIMIT: usize = 100_000;

/// The most schedules a cluster holds.
pub const MAX_SCHEDULES: usize = 100_000;

/// A schedule as kept: its definition and where it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleRecord {
    pub schedule_id: String,
    pub spec: ScheduleSpec,
    pub paused: bool,
    /// A one-shot that fired: nothing more is due.
    pub done: bool,
    /// The next due time (without the stagger), ms; `None`: nothing more is due.
    pub next_due: Option<i64>,
    /// An interval's origin: its due times are `anchor + k × every`.
    pub anchor: i64,
    pub last_run: Option<LastRun>,
    /// The task of the latest run while it is active.
    pub running: Option<String>,
    /// A due time waiting for `running` to end (`overlap: queue`).
    pub queued: Option<i64>,
    /// Runs recorded so far (the number of the last one).
    pub runs: u64,
    /// The latest due time a run was recorded for: a retimed schedule never runs a due
    /// time again (a one-shot moved to the moment it already fired at is done).
    #[serde(default)]
    pub last_due: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One firing, as the store keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    pub schedule_id: String,
    pub run: u64,
    pub due_at: Option<i64>,
    pub fired_at: i64,
    pub outcome: RunOutcome,
    pub task_id: Option<String>,
    pub message: Option<String>,
}

impl RunRecord {
    /// The API's view (the task's status is the caller's to fill in).
    pub fn view(&self) -> ScheduleRun {
        ScheduleRun {
            schedule_id: self.schedule_id.clone(),
            run: self.run,
            due_at: self.due_at.map(Timestamp),
            fired_at: Timestamp(self.fired_at),
            outcome: self.outcome,
            task_id: self.task_id.clone(),
            status: None,
            message: self.message.clone(),
        }
    }
}

/// What the schedules changed since the last batch.
#[derive(Debug, Default)]
pub struct ScheduleWrites {
    /// The whole record of each schedule that changed (new ones included).
    pub schedules: Vec<ScheduleRecord>,
    /// Schedules removed (with their runs).
    pub removed: Vec<String>,
    /// Runs recorded, in order.
    pub runs: Vec<RunRecord>,
}

impl ScheduleWrites {
    pub fn is_empty(&self) -> bool {
        self.schedules.is_empty() && self.removed.is_empty() && self.runs.is_empty()
    }
}

/// When a schedule is due.
#[derive(Debug, Clone)]
pub enum When {
    Cron(Box<Cron>, Tz),
    /// Every this many ms from the anchor.
    Every(i64),
    /// Once, at this moment.
    At(i64),
}

/// A cron expression (5 fields, or 6 with seconds first), or why it is refused.
pub fn parse_cron(text: &str) -> Result<Cron, String> {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .build()
        .parse(text.trim())
        .map_err(|e| format!("`{}` is not a cron expression: {e}", text.trim()))
}

/// An IANA time zone, or why it is refused.
pub fn parse_tz(text: &str) -> Result<Tz, String> {
    Tz::from_str(text.trim()).map_err(|_| {
        format!("`{}` is not an IANA time zone: write one like Europe/Berlin, America/New_York or UTC", text.trim())
    })
}

impl When {
    /// The timing of a checked definition.
    pub fn of(spec: &ScheduleSpec) -> Result<When, String> {
        match (&spec.cron, &spec.every, &spec.at) {
            (Some(c), None, None) => {
                Ok(When::Cron(Box::new(parse_cron(&croner_text(c))?), parse_tz(spec.tz.as_deref().unwrap_or("UTC"))?))
            }
            (None, Some(e), None) => Ok(When::Every(parse_interval(e)?.as_millis() as i64)),
            (None, None, Some(a)) => Ok(When::At(a.0)),
            _ => Err("give exactly one of cron, every and at".into()),
        }
    }

    /// The first due time of a schedule made (or retimed) at `now`: the next one after it,
    /// or a one-shot's moment even if it has passed (it then fires at once, by `catch_up`).
    pub fn first_due(&self, now: i64) -> Option<i64> {
        match self {
            When::At(at) => Some(*at),
            _ => self.next_after(now, now),
        }
    }

    /// The first due time strictly after `after` (ms); `None`: no more.
    pub fn next_after(&self, after: i64, anchor: i64) -> Option<i64> {
        match self {
            When::Cron(cron, tz) => {
                let start = tz.timestamp_millis_opt(after).single()?;
                cron.find_next_occurrence(&start, false).ok().map(|t| t.timestamp_millis())
            }
            When::Every(every) => {
                let every = (*every).max(1);
                if after < anchor {
                    return Some(anchor);
                }
                let k = (after - anchor) / every + 1;
                anchor.checked_add(k.checked_mul(every)?)
            }
            When::At(at) => (*at > after).then_some(*at),
        }
    }
}

/// The default stagger of a cron expression: 5 minutes for a top-of-hour one (minute 0,
/// every hour or a step of hours), as OpenClaw's `cron add`; none otherwise.
fn auto_stagger(cron: &str) -> Duration {
    let fields: Vec<&str> = cron.split_whitespace().collect();
    let (minute, hour) = match fields.len() {
        5 => (fields[0], fields[1]),
        6 => (fields[1], fields[2]),
        _ => return Duration::ZERO,
    };
    if minute == "0" && hour.starts_with('*') { crate::model::AUTO_STAGGER } else { Duration::ZERO }
}

/// A schedule's fixed offset within its stagger window (the same on every coordinator).
fn offset(schedule_id: &str, stagger_ms: i64) -> i64 {
    if stagger_ms <= 0 {
        return 0;
    }
    // FNV-1a: stable across runs and builds, unlike std's hasher.
    let h =
        schedule_id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    (h % stagger_ms as u64) as i64
}

/// A request's definition checked (with defaults applied), or the first field that is
/// wrong. `tz`, `stagger` and `exact` apply to `cron` only (ignored otherwise); the task's
/// `idempotency_key`, `origin` and `reject_unplaceable` are ignored (each firing is a new
/// task of origin `schedule`, queued until a node can run it).
pub fn check(req: NewSchedule, settings: &super::Settings) -> Result<ScheduleSpec, Error> {
    let name = check_name(&req.name).map_err(|e| Error::invalid("name", e))?;
    SCHEDULE_DESCRIPTION.check(&req.description).map_err(|e| Error::invalid("description", e))?;
    let timings = [req.cron.is_some(), req.every.is_some(), req.at.is_some()].iter().filter(|x| **x).count();
    if timings != 1 {
        return Err(Error::invalid("cron", "give exactly one of cron, every and at"));
    }
    let (mut cron, mut tz, mut every) = (None, None, None);
    let mut stagger = Duration::ZERO;
    let zone = req.tz.as_deref().map(parse_tz).transpose().map_err(|e| Error::invalid("tz", e))?;
    let window = req.stagger.as_deref().map(parse_interval).transpose().map_err(|e| Error::invalid("stagger", e))?;
    if let Some(c) = &req.cron {
        let c = check_cron(c).map_err(|e| Error::invalid("cron", e))?;
        parse_cron(&croner_text(&c)).map_err(|e| Error::invalid("cron", e))?;
        tz = Some(zone.unwrap_or(Tz::UTC).name().to_string());
        stagger = match (window, req.exact) {
            (_, true) => Duration::ZERO,
            (Some(s), false) => s,
            (None, false) => auto_stagger(&c),
        };
        cron = Some(c);
    }
    if let Some(e) = &req.every {
        let d = parse_interval(e).map_err(|e| Error::invalid("every", e))?;
        if d < MIN_EVERY || e.trim().ends_with("ms") {
            return Err(Error::invalid(
                "every",
                format!("must be at least {} in s, m, h or d, got {e}", interval_text(MIN_EVERY)),
            ));
        }
        every = Some(interval_text(d));
    }
    if let Some(o) = req.task.origin.as_deref()
        && !crate::model::CLAIMABLE_ORIGINS.contains(&o)
    {
        return Err(Error::invalid(
            "task.origin",
            format!("`{o}` is not one of {}; leave it out", crate::model::CLAIMABLE_ORIGINS.join(", ")),
        ));
    }
    match (&req.workflow, crate::model::is_no_task(&req.task)) {
        (Some(_), false) => {
            return Err(Error::invalid("task", "a schedule submits a task or a workflow: give one of the two"));
        }
        (Some(wf), true) => {
            let problems: Vec<String> = wf.check().iter().map(|p| format!("workflow.{p}")).collect();
            if !problems.is_empty() {
                return Err(Error::new(crate::model::ErrorCode::BadRequest, problems.join("; ")));
            }
        }
        (None, true) => {
            return Err(Error::invalid("task", "give the task each firing submits (or a workflow)"));
        }
        // Checked as sent (a malformed key is refused), kept without what does not apply.
        (None, false) => {
            super::validate::task_spec(req.task.clone(), "schedule", settings)
                .map_err(|e| Error::new(e.code, format!("task.{}", e.message)))?;
        }
    }
    let task = SubmitTask { idempotency_key: None, origin: None, reject_unplaceable: false, ..req.task };
    Ok(ScheduleSpec {
        name,
        description: req.description,
        cron,
        tz,
        every,
        at: req.at,
        stagger: interval_text(stagger).replace("0ms", "0s"),
        catch_up: req.catch_up.unwrap_or_default(),
        overlap: req.overlap.unwrap_or_default(),
        delete_after_run: req.delete_after_run.unwrap_or(false),
        task,
        workflow: req.workflow,
    })
}

/// The request that would give `spec` with `edit` applied (a new timing replaces the old).
fn edited(spec: &ScheduleSpec, edit: ScheduleEdit, paused: bool) -> NewSchedule {
    let new_timing = edit.cron.is_some() || edit.every.is_some() || edit.at.is_some();
    let (cron, every, at) =
        if new_timing { (edit.cron, edit.every, edit.at) } else { (spec.cron.clone(), spec.every.clone(), spec.at) };
    let tz = edit.tz.or_else(|| spec.tz.clone());
    let cron_kept = cron.is_some();
    let exact = edit.exact.unwrap_or(cron_kept && spec.stagger == "0s" && edit.stagger.is_none());
    let stagger = if exact {
        None
    } else {
        edit.stagger.or_else(|| (cron_kept && spec.stagger != "0s" && !new_timing).then(|| spec.stagger.clone()))
    };
    NewSchedule {
        name: edit.name.unwrap_or_else(|| spec.name.clone()),
        description: edit.description.unwrap_or_else(|| spec.description.clone()),
        cron,
        tz,
        every,
        at,
        stagger,
        exact: exact && cron_kept,
        catch_up: Some(edit.catch_up.unwrap_or(spec.catch_up)),
        overlap: Some(edit.overlap.unwrap_or(spec.overlap)),
        delete_after_run: Some(edit.delete_after_run.unwrap_or(spec.delete_after_run)),
        paused,
        // A new payload replaces the old one, whichever kind each is.
        task: match (&edit.task, &edit.workflow) {
            (None, None) => spec.task.clone(),
            _ => edit.task.clone().unwrap_or_default(),
        },
        workflow: match (&edit.task, edit.workflow) {
            (None, None) => spec.workflow.clone(),
            (_, w) => w,
        },
    }
}

/// A schedule in memory: its record, its compiled timing and its stagger offset.
#[derive(Debug)]
struct Entry {
    rec: ScheduleRecord,
    when: When,
    offset: i64,
}

impl Entry {
    fn new(rec: ScheduleRecord) -> Result<Entry, String> {
        let when = When::of(&rec.spec)?;
        let stagger = parse_interval(&rec.spec.stagger).map(|d| d.as_millis() as i64).unwrap_or(0);
        let offset = offset(&rec.schedule_id, stagger);
        Ok(Entry { rec, when, offset })
    }

    /// When it fires next (its due time plus its offset), if it is active.
    fn fire_at(&self) -> Option<i64> {
        if self.rec.paused || self.rec.done { None } else { self.rec.next_due.map(|d| d + self.offset) }
    }

    fn status(&self) -> ScheduleStatus {
        if self.rec.paused {
            ScheduleStatus::Paused
        } else if self.rec.done {
            ScheduleStatus::Done
        } else {
            ScheduleStatus::Active
        }
    }
}

/// The schedules, their due index and what changed since the last batch.
#[derive(Default)]
pub struct Schedules {
    entries: HashMap<Arc<str>, Entry>,
    by_name: HashMap<String, Arc<str>>,
    /// (fire time, schedule) of every active schedule.
    due: BTreeSet<(i64, Arc<str>)>,
    /// The schedule of each active task a run submitted.
    by_task: HashMap<String, Arc<str>>,
    dirty: BTreeSet<Arc<str>>,
    removed: Vec<String>,
    runs: Vec<RunRecord>,
}

impl Schedules {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The id of the schedule `key` names (an id or a name).
    fn id(&self, key: &str) -> Option<Arc<str>> {
        let key = key.trim();
        if let Some((id, _)) = self.entries.get_key_value(key) {
            return Some(id.clone());
        }
        self.by_name.get(key).cloned()
    }

    /// The next fire time of any schedule.
    pub fn next_fire(&self) -> Option<i64> {
        self.due.first().map(|(at, _)| *at)
    }

    fn insert(&mut self, entry: Entry) -> Arc<str> {
        let id: Arc<str> = entry.rec.schedule_id.as_str().into();
        if let Some(at) = entry.fire_at() {
            self.due.insert((at, id.clone()));
        }
        if let Some(task) = &entry.rec.running {
            self.by_task.insert(task.clone(), id.clone());
        }
        self.by_name.insert(entry.rec.spec.name.clone(), id.clone());
        self.entries.insert(id.clone(), entry);
        id
    }

    /// Changes a schedule, marking it dirty and keeping the indexes in step.
    fn update<T>(&mut self, id: &Arc<str>, f: impl FnOnce(&mut Entry) -> T) -> Option<T> {
        let entry = self.entries.get_mut(id)?;
        let (before, name, running) = (entry.fire_at(), entry.rec.spec.name.clone(), entry.rec.running.clone());
        let answer = f(entry);
        let (after, new_name, now_running) = (entry.fire_at(), entry.rec.spec.name.clone(), entry.rec.running.clone());
        if before != after {
            if let Some(at) = before {
                self.due.remove(&(at, id.clone()));
            }
            if let Some(at) = after {
                self.due.insert((at, id.clone()));
            }
        }
        if name != new_name {
            self.by_name.remove(&name);
            self.by_name.insert(new_name, id.clone());
        }
        if running != now_running {
            if let Some(t) = running {
                self.by_task.remove(&t);
            }
            if let Some(t) = now_running {
                self.by_task.insert(t, id.clone());
            }
        }
        self.dirty.insert(id.clone());
        Some(answer)
    }

    fn remove(&mut self, id: &Arc<str>) -> Option<Entry> {
        let entry = self.entries.remove(id)?;
        if let Some(at) = entry.fire_at() {
            self.due.remove(&(at, id.clone()));
        }
        self.by_name.remove(&entry.rec.spec.name);
        if let Some(t) = &entry.rec.running {
            self.by_task.remove(t);
        }
        self.dirty.remove(id);
        self.removed.push(id.to_string());
        Some(entry)
    }

    /// Everything changed since the last call.
    pub fn take_writes(&mut self) -> ScheduleWrites {
        let schedules = std::mem::take(&mut self.dirty)
            .into_iter()
            .filter_map(|id| self.entries.get(&id).map(|e| e.rec.clone()))
            .collect();
        ScheduleWrites { schedules, removed: std::mem::take(&mut self.removed), runs: std::mem::take(&mut self.runs) }
    }
}

impl Core {
    pub fn schedules(&self) -> &Schedules {
        &self.schedules
    }

    fn unknown_schedule(key: &str) -> Error {
        Error::new(
            ErrorCode::UnknownSchedule,
            format!("no schedule `{}`: see `openclaw schedules list`", key.trim().escape_debug()),
        )
    }

    fn schedule_id(&self, key: &str) -> Result<Arc<str>, Error> {
        self.schedules.id(key).ok_or_else(|| Core::unknown_schedule(key))
    }

    /// A schedule as the API shows it, its last run's status live.
    pub fn schedule_view(&self, key: &str) -> Result<Schedule, Error> {
        let id = self.schedule_id(key)?;
        Ok(self.view_of(&self.schedules.entries[&id]))
    }

    /// Every schedule, by name.
    pub fn schedule_list(&self) -> Vec<Schedule> {
        let mut list: Vec<Schedule> = self.schedules.entries.values().map(|e| self.view_of(e)).collect();
        list.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
        list
    }

    fn view_of(&self, e: &Entry) -> Schedule {
        let r = &e.rec;
        let mut last_run = r.last_run.clone();
        if let Some(run) = &mut last_run
            && let Some(task) = run.task_id.as_deref().and_then(|t| self.tasks.get(t))
        {
            run.status = Some(task.state.status);
        }
        Schedule {
            schedule_id: r.schedule_id.clone(),
            spec: r.spec.clone(),
            status: e.status(),
            next_due: e.fire_at().map(Timestamp),
            last_run,
            running: r.running.clone(),
            queued: r.queued.map(Timestamp),
            runs: r.runs,
            created_at: Timestamp(r.created_at),
            updated_at: Timestamp(r.updated_at),
        }
    }

    /// The live status of a task a run submitted, if it is active.
    pub fn live_status(&self, task_id: &str) -> Option<TaskStatus> {
        self.tasks.get(task_id).map(|t| t.state.status)
    }

    /// Records a schedule event.
    fn schedule_event(
        &mut self,
        id: &str,
        event: ScheduleTransition,
        task_id: Option<String>,
        message: Option<String>,
        now: Now,
    ) {
        let status = match self.schedules.entries.get(id) {
            Some(e) => e.status().as_str().to_string(),
            None => "removed".into(),
        };
        self.drafts.push(Draft {
            at: now.ms,
            event: event.into(),
            task_id,
            node_id: None,
            schedule_id: Some(id.to_string()),
            status,
            attempt: None,
            skill: None,
            message,
        });
    }

    /// Creates a schedule.
    pub fn create_schedule(&mut self, req: NewSchedule, now: Now) -> Result<Schedule, Error> {
        let paused = req.paused;
        let spec = check(req, &self.settings)?;
        if self.schedules.by_name.contains_key(&spec.name) {
            return Err(Error::new(
                ErrorCode::ScheduleExists,
                format!(
                    "a schedule named `{}` exists: choose another name, or change it with `openclaw schedules edit`",
                    spec.name
                ),
            ));
        }
        if self.schedules.len() >= MAX_SCHEDULES {
            return Err(Error::new(
                ErrorCode::BadRequest,
                format!("the cluster holds {MAX_SCHEDULES} schedules, the most it takes: remove some first"),
            ));
        }
        let schedule_id = format!("{SCHEDULE_ID_PREFIX}{}", &crate::util::new_task_id()["task_".len()..]);
        let mut rec = ScheduleRecord {
            schedule_id,
            spec,
            paused,
            done: false,
            next_due: None,
            anchor: now.ms,
            last_run: None,
            running: None,
            queued: None,
            runs: 0,
            last_due: None,
            created_at: now.ms,
            updated_at: now.ms,
        };
        let entry = Entry::new(rec.clone()).map_err(|e| Error::invalid("cron", e))?;
        rec.next_due = entry.when.first_due(now.ms);
        let entry = Entry { rec, ..entry };
        let id = self.schedules.insert(entry);
        self.schedules.dirty.insert(id.clone());
        let timing = self.schedules.entries[&id].rec.spec.timing();
        self.schedule_event(&id, ScheduleTransition::Created, None, Some(timing), now);
        self.timers.poke();
        self.schedule_view(&id)
    }

    /// Changes a schedule's definition; a new timing starts from now.
    pub fn edit_schedule(&mut self, key: &str, edit: ScheduleEdit, now: Now) -> Result<Schedule, Error> {
        let id = self.schedule_id(key)?;
        let old = self.schedules.entries[&id].rec.clone();
        let new_timing = edit.cron.is_some() || edit.every.is_some() || edit.at.is_some() || edit.tz.is_some();
        let spec = check(edited(&old.spec, edit, old.paused), &self.settings)?;
        if spec.name != old.spec.name && self.schedules.by_name.contains_key(&spec.name) {
            return Err(Error::new(ErrorCode::ScheduleExists, format!("a schedule named `{}` exists", spec.name)));
        }
        let compiled =
            Entry::new(ScheduleRecord { spec: spec.clone(), ..old.clone() }).map_err(|e| Error::invalid("cron", e))?;
        self.schedules.update(&id, |e| {
            let timing_changed = new_timing || spec.stagger != e.rec.spec.stagger;
            e.rec.spec = spec;
            e.when = compiled.when;
            e.offset = compiled.offset;
            if timing_changed {
                e.rec.anchor = now.ms;
                e.rec.done = false;
                e.rec.next_due = e.when.first_due(now.ms);
            }
            e.rec.updated_at = now.ms;
        });
        self.schedule_event(&id, ScheduleTransition::Edited, None, None, now);
        self.timers.poke();
        self.schedule_view(&id)
    }

    /// Pauses or resumes a schedule. Resuming goes on from now: due times passed while it
    /// was paused do not run.
    pub fn pause_schedule(&mut self, key: &str, pause: bool, now: Now) -> Result<Schedule, Error> {
        let id = self.schedule_id(key)?;
        if self.schedules.entries[&id].rec.paused == pause {
            return self.schedule_view(&id);
        }
        self.schedules.update(&id, |e| {
            e.rec.paused = pause;
            e.rec.updated_at = now.ms;
            if !pause
                && let Some(due) = e.rec.next_due
                && due + e.offset <= now.ms
            {
                e.rec.next_due = e.when.next_after(now.ms - e.offset, e.rec.anchor);
            }
        });
        let event = if pause { ScheduleTransition::Paused } else { ScheduleTransition::Resumed };
        self.schedule_event(&id, event, None, None, now);
        self.timers.poke();
        self.schedule_view(&id)
    }

    /// Removes a schedule and its run history (its tasks stay).
    pub fn remove_schedule(&mut self, key: &str, now: Now) -> Result<Schedule, Error> {
        let id = self.schedule_id(key)?;
        let view = self.schedule_view(&id)?;
        self.schedules.remove(&id);
        self.schedule_event(&id, ScheduleTransition::Removed, None, None, now);
        Ok(view)
    }

    /// Fires a schedule now, whatever its status and its overlap policy (no due time).
    pub fn run_schedule_now(&mut self, key: &str, now: Now) -> Result<ScheduleRun, Error> {
        let id = self.schedule_id(key)?;
        let run = self.fire(&id, None, None, now);
        Ok(run.view())
    }

    /// Fires every schedule whose fire time has come.
    pub fn fire_schedules(&mut self, now: Now) {
        while let Some((at, id)) = self.schedules.due.first().cloned() {
            if at > now.ms {
                break;
            }
            self.fire_due(&id, now);
        }
    }

    /// The due times of one schedule that have come, by its catch-up policy.
    fn fire_due(&mut self, id: &Arc<str>, now: Now) {
        let Some(e) = self.schedules.entries.get(id) else { return };
        let (offset, anchor, catch_up, last_due) = (e.offset, e.rec.anchor, e.rec.spec.catch_up, e.rec.last_due);
        let Some(first) = e.rec.next_due else { return };
        let late = |d: i64| now.ms - (d + offset) > MISSED_AFTER.as_millis() as i64;
        // The due times reached (the newest CATCH_UP_LIMIT of them), and how many in all.
        let mut reached = std::collections::VecDeque::new();
        let (mut total, mut next) = (0usize, Some(first));
        while let Some(d) = next {
            if d + offset > now.ms || total >= SCAN_LIMIT {
                break;
            }
            next = e.when.next_after(d, anchor);
            if last_due.is_some_and(|l| d <= l) {
                continue;
            }
            reached.push_back(d);
            if reached.len() > CATCH_UP_LIMIT {
                reached.pop_front();
            }
            total += 1;
        }
        if total >= SCAN_LIMIT {
            next = e.when.next_after(now.ms - offset, anchor);
        }
        let any_late = reached.front().is_some_and(|d| late(*d)) || total > reached.len();
        let newest = reached.back().copied();
        // Advance first: whatever happens below, these due times are passed.
        self.schedules.update(id, |e| {
            e.rec.next_due = next;
            e.rec.done = next.is_none();
        });
        let Some(newest) = newest else { return };
        let (fire, skipped): (Vec<i64>, usize) = if !any_late {
            (reached.iter().copied().collect(), 0)
        } else {
            match catch_up {
                CatchUp::None => (reached.iter().copied().filter(|d| !late(*d)).collect(), 0),
                CatchUp::Latest => (vec![newest], total - 1),
                CatchUp::All => (reached.iter().copied().collect(), total - reached.len()),
            }
        };
        let missed: Vec<i64> = reached.iter().copied().filter(|d| !fire.contains(d)).collect();
        let missed_count = if catch_up == CatchUp::None && any_late { total - fire.len() } else { skipped };
        if missed_count > 0 {
            let newest_missed = missed.last().copied().unwrap_or(first);
            let message = format!(
                "{missed_count} due time(s) from {} were missed while the coordinator was down (catch_up: {catch_up})",
                crate::util::rfc3339(first + offset)
            );
            self.record_run(id, Some(newest_missed), RunOutcome::Skipped, None, Some(message), now);
        }
        for due in fire {
            if !self.schedules.entries.contains_key(id) {
                break;
            }
            self.fire_with_overlap(id, due, now);
        }
    }

    /// One due time, by the schedule's overlap policy.
    fn fire_with_overlap(&mut self, id: &Arc<str>, due: i64, now: Now) {
        let e = &self.schedules.entries[id];
        let running = e.rec.running.clone().filter(|t| self.tasks.get(t).is_some());
        match (running, e.rec.spec.overlap) {
            (Some(task), Overlap::Skip) => {
                let message = format!("{task} of the previous run is still active (overlap: skip)");
                self.record_run(id, Some(due), RunOutcome::Skipped, None, Some(message), now);
            }
            (Some(task), Overlap::Queue) => {
                if e.rec.queued.is_some() {
                    let message =
                        format!("{task} is still active and a due time already waits for it (overlap: queue)");
                    self.record_run(id, Some(due), RunOutcome::Skipped, None, Some(message), now);
                } else {
                    self.schedules.update(id, |e| e.rec.queued = Some(due));
                    let message = format!("waits for {task} to end (overlap: queue)");
                    self.schedule_event(id, ScheduleTransition::Skipped, None, Some(message), now);
                }
            }
            _ => {
                self.fire(id, Some(due), None, now);
            }
        }
    }

    /// Submits the schedule's task for `due` (None: a run-now) and records the run.
    fn fire(&mut self, id: &Arc<str>, due: Option<i64>, note: Option<String>, now: Now) -> RunRecord {
        let e = &self.schedules.entries[id];
        let origin =
            ScheduleOrigin { schedule_id: id.to_string(), name: e.rec.spec.name.clone(), due_at: due.map(Timestamp) };
        let fire_at = due.map(|d| d + e.offset);
        if let Some(wf) = e.rec.spec.workflow.clone() {
            return match self.workflow_from(wf, "schedule", Some(origin), now) {
                Err(err) => {
                    let message = format!("its workflow was refused: {}", err.message);
                    self.record_run(id, due, RunOutcome::Failed, None, Some(message), now)
                }
                Ok(task_id) => {
                    if let Some(at) = fire_at {
                        self.metrics.schedule_lateness.observe((now.ms - at).max(0) as f64 / 1000.0);
                    }
                    self.schedules.update(id, |e| e.rec.running = Some(task_id.clone()));
                    self.record_run(id, due, RunOutcome::Fired, Some(task_id), note, now)
                }
            };
        }
        let spec = super::validate::task_spec(e.rec.spec.task.clone(), "schedule", &self.settings);
        match spec {
            Err(err) => {
                let message = format!("its task was refused: {}", err.message);
                self.record_run(id, due, RunOutcome::Failed, None, Some(message), now)
            }
            Ok(mut spec) => {
                spec.schedule = Some(origin);
                let task_id = self.submit(spec, now);
                if let Some(at) = fire_at {
                    self.metrics.schedule_lateness.observe((now.ms - at).max(0) as f64 / 1000.0);
                }
                self.schedules.update(id, |e| e.rec.running = Some(task_id.clone()));
                self.record_run(id, due, RunOutcome::Fired, Some(task_id), note, now)
            }
        }
    }

    /// Records a run (and its event) and makes it the schedule's last run.
    fn record_run(
        &mut self,
        id: &Arc<str>,
        due: Option<i64>,
        outcome: RunOutcome,
        task_id: Option<String>,
        message: Option<String>,
        now: Now,
    ) -> RunRecord {
        let run = self
            .schedules
            .update(id, |e| {
                e.rec.runs += 1;
                e.rec.last_due = e.rec.last_due.max(due);
                e.rec.last_run = Some(LastRun {
                    due_at: due.map(Timestamp),
                    fired_at: Timestamp(now.ms),
                    outcome,
                    task_id: task_id.clone(),
                    status: task_id.as_ref().map(|_| TaskStatus::Pending),
                });
                e.rec.runs
            })
            .unwrap_or(0);
        let record = RunRecord {
            schedule_id: id.to_string(),
            run,
            due_at: due,
            fired_at: now.ms,
            outcome,
            task_id: task_id.clone(),
            message: message.clone(),
        };
        self.schedules.runs.push(record.clone());
        let (event, label) = match outcome {
            RunOutcome::Fired => (ScheduleTransition::Fired, "fired"),
            RunOutcome::Skipped => (ScheduleTransition::Skipped, "skipped"),
            RunOutcome::Failed => (ScheduleTransition::FireFailed, "failed"),
        };
        self.metrics.schedule_firings.get_or_create(&super::super::metrics::KindLabel { kind: label.into() }).inc();
        let due_text = due.map(|d| format!("due {}", crate::util::rfc3339(d))).unwrap_or_else(|| "run now".into());
        let text = match &message {
            Some(m) => format!("{due_text}: {m}"),
            None => due_text,
        };
        self.schedule_event(id, event, task_id, Some(text), now);
        record
    }

    /// A task ended: its schedule's last run takes its status, a queued due time fires,
    /// and a `delete_after_run` schedule whose run completed is removed.
    pub(super) fn schedule_task_ended(&mut self, task_id: &str, status: TaskStatus, now: Now) {
        let Some(id) = self.schedules.by_task.get(task_id).cloned() else { return };
        let queued = self
            .schedules
            .update(&id, |e| {
                if let Some(run) = &mut e.rec.last_run
                    && run.task_id.as_deref() == Some(task_id)
                {
                    run.status = Some(status);
                }
                e.rec.running = None;
                e.rec.queued.take()
            })
            .flatten();
        let e = &self.schedules.entries[&id];
        if e.rec.spec.delete_after_run && status == TaskStatus::Completed {
            self.schedules.remove(&id);
            let message = format!("delete_after_run: {task_id} completed");
            self.schedule_event(&id, ScheduleTransition::Removed, None, Some(message), now);
            return;
        }
        if let Some(due) = queued {
            self.fire(&id, Some(due), Some(format!("queued behind {task_id} (overlap: queue)")), now);
        }
    }

    /// Puts a stored schedule back in memory (at start, after the active tasks): a run whose
    /// task is no longer active is over.
    pub fn restore_schedule(&mut self, mut rec: ScheduleRecord) {
        if rec.running.as_deref().is_some_and(|t| self.tasks.get(t).is_none()) {
            rec.running = None;
        }
        let entry = Entry::new(rec.clone()).unwrap_or_else(|e| {
            // A time zone gone from this build's database, say: kept paused (its name stays
            // taken; it can be edited or removed), never fired.
            tracing::error!(target: "openclaw::coordinator", schedule = %rec.spec.name, error = %e, "a stored schedule's timing cannot be read: it stays paused until edited (openclaw schedules edit)");
            Entry { when: When::At(i64::MAX), offset: 0, rec: ScheduleRecord { paused: true, ..rec } }
        });
        self.schedules.insert(entry);
    }
}
