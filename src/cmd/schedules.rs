//! `openclaw schedules add|list|get|edit|pause|resume|remove|run-now|runs`.
//!
//! The flags follow OpenClaw's `cron add` where the meaning is the same (`--cron`, `--tz`,
//! `--every`, `--at`, `--stagger`/`--exact`, `--delete-after-run`); the task fields are
//! those of `tasks submit`. A `--cron` without `--tz` is in this machine's time zone (named,
//! so the coordinator evaluates it the same wherever it runs).

use crate::Exit;
use crate::api::{Route, RunQuery};
use crate::cli::{
    ScheduleAddArgs, ScheduleEditArgs, ScheduleListArgs, ScheduleRunsArgs, ScheduleTarget, SchedulesCommand, TimingArgs,
};
use crate::config::Config;
use crate::model::{NewSchedule, RunList, Schedule, ScheduleEdit, ScheduleList, ScheduleRun, Timestamp};
use crate::usage_error;
use crate::util::{ago, now_ms, rfc3339};

use super::output::{clean, fields, out, outln, table};
use super::remote::{Remote, connect};
use super::tasks::task_request;

pub async fn run(config: &Config, command: SchedulesCommand) -> anyhow::Result<Exit> {
    match command {
        SchedulesCommand::Add(args) => add(config, *args).await,
        SchedulesCommand::List(args) => list(config, args).await,
        SchedulesCommand::Get(args) => {
            let route = Route::GetSchedule { schedule: args.schedule.clone() };
            show(&connect(config, &args.client)?, &route, None, args.json).await
        }
        SchedulesCommand::Edit(args) => edit(config, *args).await,
        SchedulesCommand::Pause(args) => act(config, args, |s| Route::PauseSchedule { schedule: s }).await,
        SchedulesCommand::Resume(args) => act(config, args, |s| Route::ResumeSchedule { schedule: s }).await,
        SchedulesCommand::Remove(args) => act(config, args, |s| Route::RemoveSchedule { schedule: s }).await,
        SchedulesCommand::RunNow(args) => run_now(config, args).await,
        SchedulesCommand::Runs(args) => runs(config, args).await,
    }
}

/// `--at`: an RFC 3339 time, or a duration from now.
fn at(text: &str) -> anyhow::Result<Timestamp> {
    if let Some(ms) = crate::util::parse_rfc3339(text.trim()) {
        return Ok(Timestamp(ms));
    }
    match crate::util::parse_duration(text) {
        Ok(d) => Ok(Timestamp(now_ms() + d.as_millis() as i64)),
        Err(_) => Err(usage_error(format!(
            "--at `{}`: give an RFC 3339 time (2026-12-24T18:00:00Z) or a duration from now (20m, 2h)",
            clean(text)
        ))),
    }
}

/// This machine's IANA time zone, for a --cron without --tz.
fn local_zone() -> String {
    iana_time_zone::get_timezone().unwrap_or_else(|_| "UTC".into())
}

/// The timing flags as the API's fields: (cron, tz, every, at, stagger).
type Timing = (Option<String>, Option<String>, Option<String>, Option<Timestamp>, Option<String>);

fn timing(t: &TimingArgs) -> anyhow::Result<Timing> {
    let tz = match (&t.cron, &t.tz) {
        (Some(_), None) => Some(local_zone()),
        (_, tz) => tz.clone(),
    };
    Ok((t.cron.clone(), tz, t.every.clone(), t.at.as_deref().map(at).transpose()?, t.stagger.clone()))
}

async fn add(config: &Config, args: ScheduleAddArgs) -> anyhow::Result<Exit> {
    let t = &args.timing;
    if t.cron.is_none() && t.every.is_none() && t.at.is_none() {
        return Err(usage_error("say when it fires: --cron EXPR [--tz ZONE], --every INTERVAL or --at TIME"));
    }
    let (cron, tz, every, at, stagger) = timing(t)?;
    let request = NewSchedule {
        name: args.schedule.clone(),
        description: String::new(),
        cron,
        tz,
        every,
        at,
        stagger,
        exact: t.exact,
        catch_up: args.catch_up,
        overlap: args.overlap,
        delete_after_run: args.delete_after_run.then_some(true),
        paused: args.paused,
        task: match &args.workflow {
            Some(_) => Default::default(),
            None => task_request(&args.task)?,
        },
        workflow: args.workflow.as_deref().map(super::run::load).transpose()?,
    };
    let client = connect(config, &args.client)?;
    let route = Route::CreateSchedule;
    let s: Schedule = client.send(&route, &request, args.json).await?;
    if !args.json {
        print_schedule(&s)?;
    }
    Ok(Exit::Ok)
}

async fn edit(config: &Config, args: ScheduleEditArgs) -> anyhow::Result<Exit> {
    let (cron, tz, every, at, stagger) = timing(&args.timing)?;
    let task = &args.task;
    let task_flags = !task.optional_skills.is_empty()
        || task.name.is_some()
        || task.description.is_some()
        || !task.params.is_empty()
        || task.params_json.is_some()
        || task.params_file.is_some()
        || task.prompt.is_some()
        || task.priority.is_some()
        || task.timeout.is_some()
        || task.retries.is_some()
        || !task.tags.is_empty()
        || task.node.is_some()
        || task.platform.is_some()
        || !task.require_tags.is_empty();
    if task_flags && task.skills.is_empty() {
        return Err(usage_error("the task flags replace the schedule's whole task: give its --skill too"));
    }
    let request = ScheduleEdit {
        name: args.rename.clone(),
        description: None,
        cron,
        tz: if args.timing.cron.is_some() { tz } else { args.timing.tz.clone() },
        every,
        at,
        stagger,
        exact: args.timing.exact.then_some(true),
        catch_up: args.catch_up,
        overlap: args.overlap,
        delete_after_run: args.delete_after_run,
        task: if task.skills.is_empty() { None } else { Some(task_request(task)?) },
        workflow: None,
    };
    let client = connect(config, &args.client)?;
    let s: Schedule =
        client.send(&Route::EditSchedule { schedule: args.schedule.clone() }, &request, args.json).await?;
    if !args.json {
        print_schedule(&s)?;
    }
    Ok(Exit::Ok)
}

/// Pause, resume or remove: prints the schedule as it is (as it was, for a removal).
async fn act(config: &Config, args: ScheduleTarget, route: fn(String) -> Route) -> anyhow::Result<Exit> {
    let client = connect(config, &args.client)?;
    let s: Schedule = client.send(&route(args.schedule.clone()), &(), args.json).await?;
    if !args.json {
        print_schedule(&s)?;
    }
    Ok(Exit::Ok)
}

async fn run_now(config: &Config, args: ScheduleTarget) -> anyhow::Result<Exit> {
    let client = connect(config, &args.client)?;
    let run: ScheduleRun = client.send(&Route::RunSchedule { schedule: args.schedule.clone() }, &(), args.json).await?;
    if !args.json {
        match &run.task_id {
            Some(t) => outln!("{}", clean(t)),
            None => eprintln!("{}: {}", run.outcome, clean(run.message.as_deref().unwrap_or(""))),
        }
    }
    Ok(if run.task_id.is_some() { Exit::Ok } else { Exit::Negative })
}

async fn show(client: &Remote, route: &Route, _: Option<()>, json: bool) -> anyhow::Result<Exit> {
    let s: Schedule = client.fetch(route, json).await?;
    if !json {
        print_schedule(&s)?;
    }
    Ok(Exit::Ok)
}

fn last_run_text(s: &Schedule, now: i64) -> String {
    let Some(r) = &s.last_run else { return "-".into() };
    let status = r.status.map(|st| st.to_string()).unwrap_or_else(|| r.outcome.to_string());
    format!("{} ({status})", ago(r.fired_at.0, now))
}

fn print_schedule(s: &Schedule) -> anyhow::Result<()> {
    let now = now_ms();
    let spec = &s.spec;
    let mut pairs = vec![
        ("schedule", s.schedule_id.clone()),
        ("name", spec.name.clone()),
        ("status", s.status.to_string()),
        ("when", spec.timing()),
        ("next due", s.next_due.map(|t| rfc3339(t.0)).unwrap_or_else(|| "-".into())),
        ("runs", spec.payload().to_string()),
        ("last run", last_run_text(s, now)),
        ("catch up", spec.catch_up.to_string()),
        ("overlap", spec.overlap.to_string()),
    ];
    if spec.stagger != "0s" {
        pairs.push(("stagger", spec.stagger.clone()));
    }
    if spec.delete_after_run {
        pairs.push(("delete after run", "yes".into()));
    }
    if let Some(t) = &s.running {
        pairs.push(("running", t.clone()));
    }
    pairs.push(("fired", s.runs.to_string()));
    out!("{}", fields(&pairs));
    Ok(())
}

async fn list(config: &Config, args: ScheduleListArgs) -> anyhow::Result<Exit> {
    let client = connect(config, &args.client)?;
    let page: ScheduleList = client.fetch(&Route::ListSchedules, args.json).await?;
    if args.json {
        return Ok(Exit::Ok);
    }
    if page.schedules.is_empty() {
        outln!("no schedules (add one: openclaw schedules add NAME --cron \"0 7 * * *\" --skill SKILL)");
        return Ok(Exit::Ok);
    }
    let now = now_ms();
    let rows = page
        .schedules
        .iter()
        .map(|s| {
            vec![
                s.spec.name.clone(),
                s.status.to_string(),
                s.spec.timing(),
                s.spec.payload().to_string(),
                s.next_due.map(|t| rfc3339(t.0)).unwrap_or_else(|| "-".into()),
                last_run_text(s, now),
            ]
        })
        .collect();
    out!("{}", table(&["NAME", "STATUS", "WHEN", "SKILL", "NEXT DUE", "LAST RUN"], rows));
    Ok(Exit::Ok)
}

async fn runs(config: &Config, args: ScheduleRunsArgs) -> anyhow::Result<Exit> {
    let client = connect(config, &args.client)?;
    let route = Route::ScheduleRuns {
        schedule: args.schedule.clone(),
        query: RunQuery { before: args.before, limit: args.limit },
    };
    let page: RunList = client.fetch(&route, args.json).await?;
    if args.json {
        return Ok(Exit::Ok);
    }
    if page.runs.is_empty() {
        outln!("no runs yet");
        return Ok(Exit::Ok);
    }
    let rows = page
        .runs
        .iter()
        .map(|r| {
            vec![
                r.run.to_string(),
                r.due_at.map(|t| rfc3339(t.0)).unwrap_or_else(|| "run now".into()),
                rfc3339(r.fired_at.0),
                r.outcome.to_string(),
                r.task_id.clone().unwrap_or_else(|| "-".into()),
                r.status.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
                r.message.clone().unwrap_or_default(),
            ]
        })
        .collect();
    out!("{}", table(&["RUN", "DUE", "FIRED", "OUTCOME", "TASK", "STATUS", "NOTE"], rows));
    if let Some(next) = page.next {
        outln!("more: openclaw schedules runs {} --before {next}", clean(&args.schedule));
    }
    Ok(Exit::Ok)
}
