//! The streaming commands: `openclaw tasks watch`, `openclaw nodes --watch` (the event
//! stream) and `openclaw tasks logs` (a task's output, `-f` to follow it).
//!
//! They read Server-Sent Events through [`EventSource`], which reconnects on its own with
//! the last id it saw, so a dropped connection or a coordinator restart loses and repeats
//! nothing. They run until Ctrl+C (or SIGTERM), which ends them with exit 0; notes about
//! the connection go to stderr, events and output lines to stdout (stderr lines of a task's
//! output to stderr). Text from the server is printed with control characters escaped.
//!
//! `nodes --watch` first prints the nodes as they are (without `--after` and `--json`).
//! Nothing falls between that picture and the events: the picture is taken once the stream
//! is open (the server subscribes before it answers), so a change made meanwhile is in the
//! picture, or in the events, or in both.

use crate::Exit;
use crate::api::{EventQuery, NodeQuery, OutputQuery, Route};
use crate::cli::{ClientArgs, LogsArgs, WatchArgs};
use crate::config::Config;
use crate::eventsource::{EventSource, Message, Status};
use crate::model::{
    Event, EventKind, Node, NodeStatus, OutputEnd, OutputLine, OutputStream, StreamError, StreamGap, TaskOutput,
};
use crate::util::{ago, now_ms, rfc3339};

use super::output::{clean, outln};
use super::remote::{Remote, connect};

/// `openclaw tasks watch`.
pub async fn tasks(config: &Config, args: WatchArgs) -> anyhow::Result<Exit> {
    let query = EventQuery {
        task: args.task,
        node: args.node,
        skill: args.skill,
        kind: Some(EventKind::Task),
        schedule: None,
        after: None,
    };
    let remote = connect(config, &args.client)?;
    events(&remote, query, args.after, args.json, async || Ok(())).await
}

/// `openclaw nodes --watch [NODE_ID] [--after ID]`: the nodes as they are now (unless
/// replaying `--after` an event, or printing JSON), then their events.
pub async fn nodes(
    config: &Config,
    client: &ClientArgs,
    node: Option<String>,
    after: Option<u64>,
    json: bool,
) -> anyhow::Result<Exit> {
    let query = EventQuery { node: node.clone(), kind: Some(EventKind::Node), ..Default::default() };
    let remote = connect(config, client)?;
    let picture = after.is_none() && !json;
    events(
        &remote,
        query,
        after,
        json,
        async || if picture { print_nodes_now(&remote, node.as_deref()).await } else { Ok(()) },
    )
    .await
}

/// One line per node as it is now, before the events.
async fn print_nodes_now(remote: &Remote, node: Option<&str>) -> anyhow::Result<()> {
    let nodes: Vec<Node> = match node {
        Some(id) => vec![remote.fetch(&Route::GetNode { node: id.to_string() }, false).await?],
        None => remote.fetch(&Route::ListNodes(NodeQuery::default()), false).await?,
    };
    let now = now_ms();
    if nodes.is_empty() {
        outln!("{} no node has registered yet; waiting for one", rfc3339(now));
    }
    for n in &nodes {
        outln!("{}", node_now_line(n, now));
    }
    Ok(())
}

/// "2026-…Z node w1 is online: 1/5 tasks, last heartbeat 2s ago, skills echo, ocr".
fn node_now_line(n: &Node, now: i64) -> String {
    let seen = n.last_heartbeat.map(|t| ago(t.0, now)).unwrap_or_else(|| "never".into());
    let draining = if n.draining && n.status != NodeStatus::Maintenance { " (draining)" } else { "" };
    let skills = if n.spec.available_skills.is_empty() { "-".to_string() } else { n.spec.available_skills.join(", ") };
    let line = format!(
        "{} node {} is {}{draining}: {}/{} tasks, last heartbeat {seen}, skills {skills}",
        rfc3339(now),
        n.node_id,
        n.status,
        n.running_tasks,
        n.spec.max_concurrent_tasks
    );
    clean(&line).into_owned()
}

/// Prints events until interrupted; `first` runs once the stream is open.
async fn events(
    remote: &Remote,
    query: EventQuery,
    after: Option<u64>,
    json: bool,
    first: impl AsyncFnOnce() -> anyhow::Result<()>,
) -> anyhow::Result<Exit> {
    follow(remote, Route::Events(query), after.map(|a| a.to_string()), first, |m| {
        match m.event.as_str() {
            "task" | "node" if json => outln!("{}", m.data),
            "task" | "node" => match serde_json::from_str::<Event>(&m.data) {
                Ok(e) => outln!("{}", event_line(&e)),
                Err(e) => eprintln!("note: skipped an event this client does not understand ({e})"),
            },
            "gap" => {
                let oldest = serde_json::from_str::<StreamGap>(&m.data).map(|g| g.oldest).unwrap_or(0);
                eprintln!(
                    "note: events before id {oldest} are no longer kept (storage.task_retention_days); some were missed"
                );
            }
            "error" => note_error(&m),
            _ => {}
        }
        Ok(false)
    })
    .await
}

/// Reads a stream, resuming by itself, and hands each message to `handle` until it says
/// the stream is done (`true`) or the user interrupts (both exit 0). `first` runs once,
/// when the stream is first open (before any message is handled).
pub(super) async fn follow(
    remote: &Remote,
    route: Route,
    last_id: Option<String>,
    first: impl AsyncFnOnce() -> anyhow::Result<()>,
    mut handle: impl FnMut(Message) -> anyhow::Result<bool>,
) -> anyhow::Result<Exit> {
    let mut source = EventSource::new((**remote).clone(), route, last_id);
    let interrupted = crate::shutdown::wait_for_signal();
    tokio::pin!(interrupted);
    let mut reconnecting = false;
    let mut first = Some(first);
    loop {
        let next = tokio::select! {
            n = source.next() => n,
            _ = &mut interrupted => return Ok(Exit::Ok),
        };
        match next.map_err(|e| remote.fail(e))? {
            Err(Status::Connected) if first.is_some() => {
                if let Some(first) = first.take() {
                    first().await?;
                }
            }
            Err(status) => note_connection(status, &mut reconnecting, source.last_id()),
            Ok(m) => {
                if handle(m)? {
                    return Ok(Exit::Ok);
                }
            }
        }
    }
}

/// One line per event: time, subject, what happened, and the details it carries (control
/// characters escaped).
fn event_line(e: &Event) -> String {
    let subject = match e.kind {
        EventKind::Task => e.task_id.as_deref().unwrap_or("-"),
        EventKind::Node => e.node_id.as_deref().unwrap_or("-"),
        EventKind::Schedule => e.schedule_id.as_deref().unwrap_or("-"),
        EventKind::Skill => e.skill.as_deref().unwrap_or("-"),
    };
    let mut line = format!("{} {} {} {}", rfc3339(e.at.0), e.kind, subject, e.event);
    if e.status != e.event.as_str() {
        line.push_str(&format!(" → {}", e.status));
    }
    if e.kind == EventKind::Task {
        if let Some(a) = e.attempt.filter(|a| *a > 0) {
            line.push_str(&format!(" attempt {a}"));
        }
        if let Some(n) = &e.node_id {
            line.push_str(&format!(" on {n}"));
        }
        if let Some(s) = &e.skill {
            line.push_str(&format!(" ({s})"));
        }
    }
    if let Some(m) = &e.message {
        line.push_str(&format!(": {m}"));
    }
    clean(&line).into_owned()
}

/// Tells the user about the connection, once per outage.
fn note_connection(status: Status, reconnecting: &mut bool, last_id: Option<&str>) {
    match status {
        Status::Reconnecting(why) if !*reconnecting => {
            *reconnecting = true;
            eprintln!("note: {why}; reconnecting (resuming after id {})", last_id.unwrap_or("-"));
        }
        Status::Reconnecting(_) => {}
        Status::Connected if *reconnecting => {
            *reconnecting = false;
            eprintln!("note: connected again");
        }
        Status::Connected => {}
    }
}

/// An `error` event ends the stream; the source reconnects after it.
fn note_error(m: &Message) {
    match serde_json::from_str::<StreamError>(&m.data) {
        Ok(e) if e.code == StreamError::LAGGED => {
            eprintln!("note: this client fell behind; resuming from the last id it got")
        }
        // A planned end: the source resumes at once, nothing is missed.
        Ok(e) if e.code == StreamError::LIFETIME => {}
        Ok(e) => eprintln!("note: the stream ended with {}: {}", e.code, e.message),
        Err(_) => eprintln!("note: the stream ended with an error: {}", m.data),
    }
}

/// `openclaw tasks logs ID [-f]`.
pub async fn logs(config: &Config, args: LogsArgs) -> anyhow::Result<Exit> {
    let remote = connect(config, &args.client)?;
    if !args.follow {
        let route = Route::TaskOutput { task: args.task_id.clone(), query: OutputQuery::default() };
        let output: TaskOutput = remote.fetch(&route, args.json).await?;
        if args.json {
            return Ok(Exit::Ok);
        }
        if output.truncated {
            eprintln!(
                "note: earlier lines were dropped (the coordinator keeps coordinator.output_tail_bytes per task)"
            );
        }
        for line in &output.lines {
            print_line(line)?;
        }
        if !output.ended {
            eprintln!(
                "note: task {} is still active; follow its output with `openclaw tasks logs -f {}`",
                output.task_id, output.task_id
            );
        }
        return Ok(Exit::Ok);
    }
    let route =
        Route::TaskOutput { task: args.task_id.clone(), query: OutputQuery { follow: Some(true), after: None } };
    follow(
        &remote,
        route,
        None,
        async || Ok(()),
        |m| {
            match m.event.as_str() {
                "output" | "end" if args.json => outln!("{}", m.data),
                "output" => match serde_json::from_str::<OutputLine>(&m.data) {
                    Ok(line) => print_line(&line)?,
                    Err(e) => eprintln!("note: skipped a line this client does not understand ({e})"),
                },
                "end" => {
                    if let Ok(end) = serde_json::from_str::<OutputEnd>(&m.data) {
                        eprintln!("task {} ended: {}", args.task_id, end.status);
                    }
                }
                "error" => note_error(&m),
                _ => {}
            }
            Ok(m.event == "end")
        },
    )
    .await
}

/// A line of output on the stream it came from, control characters (colours too) escaped:
/// `--json` has the text as it was printed.
fn print_line(line: &OutputLine) -> anyhow::Result<()> {
    match line.stream {
        OutputStream::Stdout => outln!("{}", clean(&line.text)),
        OutputStream::Stderr => eprintln!("{}", clean(&line.text)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Timestamp;

    #[test]
    fn event_lines_say_what_happened_where() {
        let e = Event {
            id: 9,
            at: Timestamp(1_771_257_600_123),
            kind: EventKind::Task,
            event: crate::model::TaskTransition::Failed.into(),
            task_id: Some("task_1".into()),
            node_id: Some("w1".into()),
            status: "pending".into(),
            attempt: Some(2),
            skill: Some("ocr".into()),
            message: Some("exit 3; retry 2 of 3 in 4s".into()),
            schedule_id: None,
        };
        assert_eq!(
            event_line(&e),
            "2026-02-16T16:00:00.123Z task task_1 failed → pending attempt 2 on w1 (ocr): exit 3; retry 2 of 3 in 4s"
        );
        let n = Event {
            kind: EventKind::Node,
            event: crate::model::NodeTransition::Online.into(),
            status: "online".into(),
            task_id: None,
            attempt: None,
            skill: None,
            message: None,
            ..e
        };
        assert_eq!(event_line(&n), "2026-02-16T16:00:00.123Z node w1 online");
    }
}
