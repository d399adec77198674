//! `openclaw run FILE.yaml [--wait]`: a workflow from a file.
//!
//! The file is read and checked here before anything is sent: YAML errors and every
//! problem of the workflow (unknown `needs`, cycles, references to steps that are not
//! needed) are named with `FILE:LINE` and end the command with exit 2, and nothing is
//! submitted. The coordinator checks again (the API is a door of its own) and submits the
//! whole workflow in one transition.
//!
//! With `--wait`, the event stream is opened first and the workflow submitted once it is
//! open, so no step's change can fall between the two; each event of the workflow task or
//! of one of its steps is printed as it comes, until the workflow task ends.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;

use crate::Exit;
use crate::api::{EventQuery, Route};
use crate::cli::RunArgs;
use crate::config::{Config, read_yaml, yaml_line};
use crate::model::{Event, EventKind, Task, TaskStatus, Workflow};
use crate::usage_error;
use crate::util::rfc3339;

use super::output::{clean, outln, table};
use super::remote::{Remote, connect};

/// Reads and checks a workflow file: every problem named with `FILE:LINE` (exit 2).
pub fn load(path: &Path) -> anyhow::Result<Workflow> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| usage_error(format!("cannot read workflow file {}: {e}", path.display())))?;
    let wf: Workflow = read_yaml(path, &text, "workflow")?;
    let problems = wf.check();
    if problems.is_empty() {
        return Ok(wf);
    }
    let lines: Vec<String> = problems
        .iter()
        .map(|p| match yaml_line(&text, &p.path) {
            Some(line) => format!("{}:{line}: {p}", path.display()),
            None => format!("{}: {p}", path.display()),
        })
        .collect();
    Err(usage_error(format!("invalid workflow:\n{}", lines.join("\n"))))
}

/// `openclaw run`.
pub async fn run(config: &Config, args: RunArgs) -> anyhow::Result<Exit> {
    let wf = load(&args.file)?;
    let remote = connect(config, &args.client)?;
    if !args.wait && args.wait_timeout.is_none() {
        let task = remote.submit_workflow(&wf).await.map_err(|e| remote.fail(e))?;
        if args.json {
            outln!("{}", serde_json::to_string_pretty(&task)?);
        } else {
            outln!("{}", clean(&task.task_id));
            print_steps(&task)?;
        }
        return Ok(Exit::Ok);
    }
    let followed = follow(&remote, &wf, args.json);
    let outcome = match args.wait_timeout {
        Some(limit) => match tokio::time::timeout(limit, followed).await {
            Ok(r) => r?,
            Err(_) => None,
        },
        None => followed.await?,
    };
    let Some(id) = outcome else {
        eprintln!("the workflow has not ended within --wait-timeout; it keeps going");
        return Ok(Exit::StillRunning);
    };
    let task: Task = remote.fetch(&Route::GetTask { task: id }, false).await?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&task)?);
    } else {
        outln!("workflow {} {}", clean(&task.task_id), task.state.status);
        if let Some(e) = &task.state.error {
            outln!("error: {}", clean(e));
        }
        print_steps(&task)?;
    }
    Ok(if task.state.status == TaskStatus::Completed { Exit::Ok } else { Exit::Negative })
}

/// What the follower knows: the workflow task's id and its steps' names by task id.
#[derive(Default)]
struct Followed {
    workflow: Option<String>,
    steps: HashMap<String, String>,
}

/// Opens the event stream, submits once it is open, prints the workflow's events until its
/// task ends (with `json`, silently: only the end result is printed); returns its id
/// (`None` when interrupted first).
async fn follow(remote: &Remote, wf: &Workflow, json: bool) -> anyhow::Result<Option<String>> {
    let state = Rc::new(RefCell::new(Followed::default()));
    let query = EventQuery { kind: Some(EventKind::Task), ..Default::default() };
    let (submit, handle) = (state.clone(), state.clone());
    let ended = Rc::new(RefCell::new(false));
    let done = ended.clone();
    super::watch::follow(
        remote,
        Route::Events(query),
        None,
        async move || {
            let task = remote.submit_workflow(wf).await.map_err(|e| remote.fail(e))?;
            eprintln!("submitted workflow {} ({} steps)", clean(&task.task_id), wf.steps.len());
            let mut s = submit.borrow_mut();
            for c in task.children.iter().flatten() {
                s.steps.insert(c.task_id.clone(), c.step.clone().unwrap_or_default());
            }
            s.workflow = Some(task.task_id);
            Ok(())
        },
        move |m| {
            if m.event != "task" {
                return Ok(false);
            }
            let Ok(e) = serde_json::from_str::<Event>(&m.data) else { return Ok(false) };
            let s = handle.borrow();
            let Some(task) = e.task_id.as_deref() else { return Ok(false) };
            if s.workflow.as_deref() == Some(task) {
                if e.status.parse::<TaskStatus>().is_ok_and(TaskStatus::is_terminal) {
                    *done.borrow_mut() = true;
                    return Ok(true);
                }
                return Ok(false);
            }
            if let Some(step) = s.steps.get(task).filter(|_| !json) {
                outln!("{}", step_line(step, &e));
            }
            Ok(false)
        },
    )
    .await?;
    let id = state.borrow().workflow.clone();
    Ok(id.filter(|_| *ended.borrow()))
}

/// "2026-…Z fetch scheduled on w1", "… report child_ended: w2 (task_…) ended completed".
fn step_line(step: &str, e: &Event) -> String {
    let node = e.node_id.as_deref().map(|n| format!(" on {n}")).unwrap_or_default();
    let detail = e.message.as_deref().map(|m| format!(": {m}")).unwrap_or_default();
    let line = format!("{} {step} {}{node} ({}){detail}", rfc3339(e.at.0), e.event, e.status);
    clean(&line).into_owned()
}

/// The steps of a workflow task, one row each.
fn print_steps(task: &Task) -> anyhow::Result<()> {
    let rows: Vec<Vec<String>> = task
        .children
        .iter()
        .flatten()
        .map(|c| {
            vec![
                c.step.clone().unwrap_or_default(),
                c.task_id.clone(),
                c.status.to_string(),
                c.assigned_node.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    if !rows.is_empty() {
        outln!("{}", table(&["STEP", "TASK", "STATUS", "NODE"], rows).trim_end());
    }
    Ok(())
}
