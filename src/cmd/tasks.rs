//! `openclaw tasks submit|list|get|wait|cancel|retry` (`watch` and `logs` are in
//! `super::watch`).
//!
//! A submission for a skill no node has ever advertised is refused here, before it is
//! sent, with the skills the cluster knows (the MCP tools' own list, [`SkillList`]) and the
//! nearest name; `--queue` sends it anyway. A wait (`--wait`, `tasks wait`) has its own
//! limit, `--wait-timeout` (exit 4 when it passes), distinct from the attempt's `--timeout`.

use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::Exit;
use crate::api::{NodeQuery, Route, TaskQuery};
use crate::cli::{ListArgs, RetryArgs, SubmitArgs, TaskFields, TaskTarget, TasksCommand, WaitArgs};
use crate::client::Client;
use crate::config::Config;
use crate::mcp::views::SkillList;
use crate::model::{ClusterSkills, ErrorCode, Node, SubmitTask, Target, Task, TaskStatus, split_pin};
use crate::usage_error;
use crate::util::{ago, now_ms, short_duration};

use super::output::{clean, fields, out, outln, table};
use super::remote::{Remote, connect};

pub async fn run(config: &Config, command: TasksCommand) -> anyhow::Result<Exit> {
    match command {
        TasksCommand::Submit(args) => submit(config, *args).await,
        TasksCommand::List(args) => list(config, args).await,
        TasksCommand::Get(args) => get(config, args).await,
        TasksCommand::Wait(args) => wait(config, args).await,
        TasksCommand::Cancel(args) => cancel(config, args).await,
        TasksCommand::Retry(args) => retry(config, args).await,
        TasksCommand::Watch(args) => super::watch::tasks(config, args).await,
        TasksCommand::Logs(args) => super::watch::logs(config, args).await,
    }
}

/// The parameters from --params-json / --params-file, then each --param, then --prompt.
fn parameters(args: &TaskFields) -> anyhow::Result<Value> {
    let base = match (&args.params_json, &args.params_file) {
        (Some(text), _) => {
            serde_json::from_str(text).map_err(|e| usage_error(format!("--params-json is not valid JSON: {e}")))?
        }
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| usage_error(format!("cannot read --params-file {}: {e}", path.display())))?;
            serde_json::from_str(&text)
                .map_err(|e| usage_error(format!("--params-file {} is not valid JSON: {e}", path.display())))?
        }
        (None, None) => Value::Object(Map::new()),
    };
    if args.params.is_empty() && args.prompt.is_none() {
        return Ok(base);
    }
    let Value::Object(mut map) = base else {
        return Err(usage_error("--param and --prompt need the parameters to be a JSON object"));
    };
    for (k, v) in &args.params {
        map.insert(k.clone(), v.clone());
    }
    if let Some(p) = &args.prompt {
        map.insert("prompt".into(), Value::String(p.clone()));
    }
    Ok(Value::Object(map))
}

/// Refuses skills no node has ever advertised (usable or not, online or not): a typo would
/// otherwise wait forever. Says which skills the cluster knows and the nearest name.
async fn check_known_skills(client: &Remote, skills: &[String]) -> anyhow::Result<()> {
    let nodes: Vec<Node> = client.fetch(&Route::ListNodes(NodeQuery::default()), false).await?;
    let known = SkillList::of(&nodes, now_ms());
    let names: Vec<&str> = known.skills.iter().map(|s| s.name.as_str()).collect();
    let Some(unknown) = skills.iter().find(|s| !names.contains(&s.as_str())) else {
        return Ok(());
    };
    let queue = format!("submit with --queue to queue it anyway, until a node with '{}' joins", clean(unknown));
    if names.is_empty() {
        return Err(usage_error(format!(
            "no node has ever advertised skill '{}': no node advertises any skill yet (start a worker: openclaw-cluster worker), or {queue}",
            clean(unknown)
        )));
    }
    let hint = crate::util::closest(unknown, names.iter().copied())
        .map(|n| format!(" — did you mean '{}'?", clean(n)))
        .unwrap_or_default();
    Err(usage_error(format!(
        "no node has ever advertised skill '{}'{hint}\nthe skills the cluster knows: {}\n{queue}",
        clean(unknown),
        clean(&names.join(", "))
    )))
}

/// `--pin`: each skill without a version gets the digest the cluster's nodes have for it
/// now; refused (exit 2) when they have none or different ones.
async fn pin_current(client: &Remote, skills: &[String]) -> anyhow::Result<Vec<String>> {
    let view: ClusterSkills = client.fetch(&Route::ClusterSkills, false).await?;
    let mut out = Vec::with_capacity(skills.len());
    for entry in skills {
        let (name, pin) = split_pin(entry);
        if pin.is_some() {
            out.push(entry.clone());
            continue;
        }
        let Some(skill) = view.skills.iter().find(|s| s.name == name) else {
            return Err(usage_error(format!("cannot pin '{}': no node has it", clean(name))));
        };
        match skill.digests.as_slice() {
            [one] => out.push(format!("{name}@{one}")),
            [] => {
                return Err(usage_error(format!(
                    "cannot pin '{}': its nodes told no digest (workers older than digests, or a folder too large to digest)",
                    clean(name)
                )));
            }
            _ => {
                let copies: Vec<String> = skill
                    .nodes
                    .iter()
                    .filter_map(|n| n.digest.as_ref().map(|d| format!("{} on {}", d, n.node_id)))
                    .collect();
                return Err(usage_error(format!(
                    "cannot pin '{}': the nodes have different versions ({}); choose one with --skill {}@<digest>, or copy one version to every node",
                    clean(name),
                    copies.join(", "),
                    clean(name)
                )));
            }
        }
    }
    Ok(out)
}

/// The task the flags describe (`tasks submit`, `schedules add`); at least one --skill.
pub fn task_request(args: &TaskFields) -> anyhow::Result<SubmitTask> {
    let Some(first) = args.skills.first() else {
        return Err(usage_error(
            "give the skill that runs with --skill SKILL (see `openclaw skills` or `openclaw nodes`)",
        ));
    };
    Ok(SubmitTask {
        name: args.name.clone().unwrap_or_else(|| split_pin(first).0.to_string()),
        description: args.description.clone().unwrap_or_default(),
        task_type: None,
        required_skills: args.skills.clone(),
        optional_skills: args.optional_skills.clone(),
        priority: args.priority,
        parameters: Some(parameters(args)?),
        timeout: args.timeout.map(|t| t.as_secs_f64()),
        max_retries: args.retries,
        affinity_tags: args.tags.clone(),
        user_id: None,
        idempotency_key: None,
        metadata: None,
        target: Some(Target {
            node: args.node.clone(),
            platform: args.platform.clone(),
            tags: args.require_tags.clone(),
            each_node: args.each_node,
            ..Default::default()
        })
        .filter(|t| !t.is_any()),
        reject_unplaceable: false,
        origin: None,
        secrets: args.secrets.clone(),
        depends_on: Vec::new(),
        on_parent_failure: None,
    })
}

async fn submit(config: &Config, args: SubmitArgs) -> anyhow::Result<Exit> {
    let mut request = SubmitTask {
        idempotency_key: args.idempotency_key.clone(),
        depends_on: args.depends_on.clone(),
        on_parent_failure: args.on_parent_failure,
        ..task_request(&args.task)?
    };
    let client = connect(config, &args.client)?;
    if args.pin {
        request.required_skills = pin_current(&client, &request.required_skills).await?;
    }
    if !args.queue {
        let names: Vec<String> = request.required_skills.iter().map(|s| split_pin(s).0.to_string()).collect();
        check_known_skills(&client, &names).await?;
    }
    let task = client.submit(&request).await.map_err(|e| client.fail(e))?;
    if !args.wait && args.wait_timeout.is_none() {
        if args.json {
            outln!("{}", serde_json::to_string_pretty(&task)?);
        } else {
            outln!("{}", clean(&task.task_id));
            if let Some(reason) = &task.pending_reason {
                eprintln!("pending: {}", clean(reason));
            }
        }
        return Ok(Exit::Ok);
    }
    eprintln!("submitted {}", clean(&task.task_id));
    let task = wait_until_done(&client, &task.task_id.clone(), Some(task), args.wait_timeout).await?;
    report(&task, args.json)
}

/// How long one server-side wait lasts: the pending reason is checked at least this often.
const WAIT_CHUNK: Duration = Duration::from_secs(10);

/// Waits (in server-side long waits) until the task ends or `limit` passes, printing the
/// pending reason at once and whenever it changes. A coordinator that stops answering (a
/// restart) is waited for with backoff, up to the wait's own limit.
async fn wait_until_done(
    client: &Remote,
    id: &str,
    first: Option<Task>,
    limit: Option<Duration>,
) -> anyhow::Result<Task> {
    let started = Instant::now();
    let mut last_reason: Option<String> = None;
    let mut task = first;
    let mut away = 0u32;
    loop {
        let left = limit.map(|l| l.saturating_sub(started.elapsed()));
        if let Some(t) = &task {
            if t.pending_reason != last_reason {
                if let Some(r) = &t.pending_reason {
                    eprintln!("pending: {}", clean(r));
                }
                last_reason = t.pending_reason.clone();
            }
            if t.state.status.is_terminal() || left.is_some_and(|l| l.is_zero()) {
                return Ok(t.clone());
            }
        }
        // Ask at once the first time, so the reason shows without delay.
        let chunk = if task.is_none() { Duration::ZERO } else { left.unwrap_or(WAIT_CHUNK).min(WAIT_CHUNK) };
        match client.wait_task(id, chunk).await {
            Ok(t) => {
                if away > 0 {
                    eprintln!("the coordinator answers again");
                    away = 0;
                }
                task = Some(t);
            }
            Err(e) if e.status().is_none() || e.code() == Some(ErrorCode::Unavailable) => {
                if left.is_some_and(|l| l.is_zero()) {
                    return Err(client.fail(e));
                }
                if away == 0 {
                    eprintln!(
                        "{}\nwaiting for the coordinator to come back (until this wait's own limit)",
                        clean(&e.to_string())
                    );
                }
                away += 1;
                let pause = crate::util::backoff(Duration::from_millis(500), Duration::from_secs(5), away);
                tokio::time::sleep(left.map(|l| l.min(pause)).unwrap_or(pause)).await;
            }
            Err(e) => return Err(client.fail(e)),
        }
    }
}

/// Prints how a task ended; exit 0 only when it completed, 4 when the wait timed out with
/// the task still pending or running.
fn report(task: &Task, json: bool) -> anyhow::Result<Exit> {
    if json {
        outln!("{}", serde_json::to_string_pretty(task)?);
    } else {
        let st = &task.state;
        match st.status {
            TaskStatus::Completed => {
                eprintln!(
                    "completed on {} (attempt {})",
                    clean(st.assigned_node.as_deref().unwrap_or("?")),
                    st.attempt
                );
                outln!("{}", serde_json::to_string_pretty(st.result.as_ref().unwrap_or(&Value::Null))?);
            }
            s if s.is_terminal() => {
                // The error says how many attempts it took ("… (after 4 attempts)") and
                // a cancel's says "cancelled …": neither is repeated here.
                let error = st.error.as_deref().unwrap_or("no error recorded");
                let on = st.assigned_node.as_deref().map(|n| format!(" on {}", clean(n))).unwrap_or_default();
                if error.starts_with(s.as_str()) {
                    eprintln!("{}", clean(error));
                } else {
                    eprintln!("{s}{on}: {}", clean(error));
                }
            }
            s => {
                eprintln!(
                    "still {s}{}",
                    task.pending_reason.as_deref().map(|r| format!(": {}", clean(r))).unwrap_or_default()
                );
            }
        }
    }
    Ok(match task.state.status {
        TaskStatus::Completed => Exit::Ok,
        s if s.is_terminal() => Exit::Negative,
        _ => Exit::StillRunning,
    })
}

async fn list(config: &Config, args: ListArgs) -> anyhow::Result<Exit> {
    let client = connect(config, &args.client)?;
    let query = TaskQuery {
        status: args.status,
        node: args.node.clone(),
        skill: args.skill.clone(),
        limit: args.limit,
        after: args.after.clone(),
    };
    let page: crate::model::TaskList = client.fetch(&Route::ListTasks(query), args.json).await?;
    if args.json {
        return Ok(Exit::Ok);
    }
    if page.tasks.is_empty() {
        outln!("no tasks");
        return Ok(Exit::Ok);
    }
    let now = now_ms();
    let rows = page
        .tasks
        .iter()
        .map(|t| {
            vec![
                t.task_id.clone(),
                t.state.status.to_string(),
                t.spec.priority.to_string(),
                t.spec.required_skills.join(","),
                t.state.assigned_node.clone().unwrap_or_else(|| "-".into()),
                t.state.attempt.to_string(),
                ago(t.submitted_at.0, now),
                t.pending_reason.clone().or_else(|| t.state.error.clone()).unwrap_or_default(),
            ]
        })
        .collect();
    out!("{}", table(&["TASK", "STATUS", "PRIORITY", "SKILLS", "NODE", "ATTEMPT", "SUBMITTED", "NOTE"], rows));
    if let Some(next) = page.next {
        outln!("more: openclaw tasks list --after {}", clean(&next));
    }
    Ok(Exit::Ok)
}

async fn get(config: &Config, args: TaskTarget) -> anyhow::Result<Exit> {
    let client = connect(config, &args.client)?;
    let t: Task = client.fetch(&Route::GetTask { task: args.task_id.clone() }, args.json).await?;
    if args.json {
        return Ok(Exit::Ok);
    }
    let now = now_ms();
    let (spec, st) = (&t.spec, &t.state);
    let mut pairs = vec![
        ("task", t.task_id.clone()),
        ("name", spec.name.clone()),
        ("status", st.status.to_string()),
        ("priority", spec.priority.to_string()),
        ("skills", spec.required_skills.join(", ")),
        ("node", st.assigned_node.clone().unwrap_or_else(|| "-".into())),
        ("attempt", format!("{} (retries used {} of {})", st.attempt, st.retry_count, spec.max_retries)),
        ("timeout", short_duration(Duration::from_secs_f64(spec.timeout))),
        ("submitted", format!("{} (from {})", ago(t.submitted_at.0, now), spec.origin)),
    ];
    if let Some(target) = &spec.target {
        pairs.push(("runs only on", target.to_string()));
    }
    if let Some(s) = &spec.schedule {
        let due = s.due_at.map(|d| format!("due {}", crate::util::rfc3339(d.0))).unwrap_or_else(|| "run now".into());
        pairs.push(("schedule", format!("{} ({}), {due}", s.name, s.schedule_id)));
    }
    let links = &spec.links;
    if let Some(p) = &links.parent {
        let step = links.step.as_deref().map(|s| format!(" as {s}")).unwrap_or_default();
        pairs.push(("parent", format!("{p}{step}")));
    }
    if !links.depends_on.is_empty() {
        let policy = format!("on parent failure: {}", links.on_parent_failure);
        pairs.push(("depends on", format!("{} ({policy})", links.depends_on.join(", "))));
    }
    if let Some(kind) = links.group {
        let n = t.children.as_ref().map(Vec::len).unwrap_or_default();
        pairs.push(("group", format!("{kind} of {n} task(s); {} not ended", st.waiting_for.len())));
    }
    if let Some(r) = &t.pending_reason {
        pairs.push(("pending", r.clone()));
    }
    if let Some(e) = &st.error {
        pairs.push(("error", e.clone()));
    }
    if let Some(r) = &st.result {
        pairs.push(("result", serde_json::to_string(r)?));
    }
    out!("{}", fields(&pairs));
    if let Some(children) = t.children.as_ref().filter(|c| !c.is_empty()) {
        outln!();
        let rows = children
            .iter()
            .map(|c| {
                vec![
                    c.step.clone().unwrap_or_else(|| "-".into()),
                    c.task_id.clone(),
                    c.status.to_string(),
                    c.assigned_node.clone().unwrap_or_else(|| "-".into()),
                    c.depends_on.join(", "),
                ]
            })
            .collect();
        out!("{}", table(&["STEP", "TASK", "STATUS", "NODE", "DEPENDS ON"], rows));
    }
    if let Some(events) = &t.events {
        outln!();
        let rows = events
            .iter()
            .map(|e| {
                vec![
                    crate::util::rfc3339(e.at.0),
                    e.event.clone(),
                    e.attempt.to_string(),
                    e.node_id.clone().unwrap_or_else(|| "-".into()),
                    e.message.clone().unwrap_or_default(),
                ]
            })
            .collect();
        out!("{}", table(&["TIME", "EVENT", "ATTEMPT", "NODE", "DETAIL"], rows));
    }
    Ok(Exit::Ok)
}

async fn wait(config: &Config, args: WaitArgs) -> anyhow::Result<Exit> {
    let client = connect(config, &args.client)?;
    let task = wait_until_done(&client, &args.task_id, None, args.wait_timeout).await?;
    report(&task, args.json)
}

async fn retry(config: &Config, args: RetryArgs) -> anyhow::Result<Exit> {
    let client = connect(config, &args.client)?;
    let route = Route::RetryTask { task: args.task_id.clone() };
    let task: Task = client.call(&route, None::<&()>, Client::SHORT).await.map_err(|e| client.fail(e))?;
    if !args.wait && args.wait_timeout.is_none() {
        if args.json {
            outln!("{}", serde_json::to_string_pretty(&task)?);
        } else {
            outln!("{}", clean(&task.task_id));
        }
        return Ok(Exit::Ok);
    }
    eprintln!("submitted {} (a retry of {})", clean(&task.task_id), clean(&args.task_id));
    let task = wait_until_done(&client, &task.task_id.clone(), Some(task), args.wait_timeout).await?;
    report(&task, args.json)
}

async fn cancel(config: &Config, args: TaskTarget) -> anyhow::Result<Exit> {
    let client = connect(config, &args.client)?;
    let task = client.cancel_task(&args.task_id).await.map_err(|e| client.fail(e))?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&task)?);
    } else if task.state.status == TaskStatus::Cancelled {
        outln!("{} cancelled", clean(&task.task_id));
    } else {
        outln!("{}: cancel requested; its worker is stopping it", clean(&task.task_id));
    }
    Ok(Exit::Ok)
}
