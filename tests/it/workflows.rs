//! Linked tasks through the real binary and real workers: dependencies (`depends_on`, the
//! parents' results in the child's stdin as `inputs`, `on_parent_failure`), fan-out to every
//! node (`target.each_node`), a dependent surviving a `kill -9` of the coordinator, and
//! workflows from a file (`openclaw run`).

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Cluster, Skill, eventually, show};

/// A skill that waits until the file `gate` exists (the test's event to release it), then
/// prints `{"n": 7}`.
fn gated(dir: &Path) -> Skill {
    let gate = dir.join("go");
    Skill::exec("gated", &format!("while [ ! -f '{}' ]; do sleep 0.05; done\necho '{{\"n\": 7}}'\n", gate.display()))
}

/// A skill whose result is the task JSON it got on stdin (so `inputs` shows).
fn echo() -> Skill {
    Skill::exec("echo", "cat\n")
}

async fn status_of(c: &Cluster, id: &str) -> Value {
    c.get(&format!("/api/v1/tasks/{id}")).await
}

/// Waits until the task's pending reason is `reason`.
async fn wait_reason(c: &Cluster, id: &str, reason: &str) {
    eventually(&format!("task {id} pending with `{reason}`"), Duration::from_secs(20), || async {
        status_of(c, id).await["pending_reason"] == reason
    })
    .await;
}

#[tokio::test]
async fn a_dependent_waits_for_its_parent_then_gets_its_result_as_inputs() {
    let c = Cluster::start().await;
    let _w1 = c.exec_worker("w1", &[gated(c.path()), echo()], &[]).await;
    let parent = c.submit(json!({"name": "fetch", "required_skills": ["gated"]})).await;
    let child = c
        .submit(
            json!({"name": "summarize", "required_skills": ["echo"], "depends_on": [parent], "parameters": {"k": 1}}),
        )
        .await;
    // The parent runs on w1 (it waits for the gate): the child says what it waits for.
    wait_reason(&c, &child, &format!("waiting for task {parent} (running on w1)")).await;
    let t = status_of(&c, &child).await;
    assert_eq!(t["status"], "pending");
    assert_eq!(t["depends_on"], json!([parent]));
    assert_eq!(t["waiting_for"], json!([parent]));
    std::fs::write(c.path().join("go"), "").unwrap();
    let done = c.wait_task(&child, 30).await;
    assert_eq!(done["status"], "completed", "{done}");
    let stdin = &done["result"];
    assert_eq!(stdin["parameters"], json!({"k": 1}));
    assert_eq!(stdin["inputs"][&parent]["status"], "completed", "{stdin}");
    assert_eq!(stdin["inputs"][&parent]["result"], json!({"n": 7}), "{stdin}");
    let events: Vec<&str> = done["events"].as_array().unwrap().iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(&events[..2], &["submitted", "released"], "{events:?}");
}

#[tokio::test]
async fn unknown_parents_are_refused_naming_them_and_nothing_is_stored() {
    let c = Cluster::start().await;
    let before = c.get("/api/v1/tasks").await["tasks"].as_array().unwrap().len();
    let (status, body) = c
        .api(
            "POST",
            "/api/v1/tasks",
            Some(json!({"name": "x", "required_skills": ["echo"], "depends_on": ["task_nope", "task_gone"]})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "bad_request", "{body}");
    let message = body["error"]["message"].as_str().or(body["message"].as_str()).unwrap_or_default().to_string();
    assert!(message.contains("task_nope, task_gone"), "{body}");
    assert_eq!(c.get("/api/v1/tasks").await["tasks"].as_array().unwrap().len(), before);
    // The CLI says the same (exit 2: bad input).
    let o = c.cli(&["tasks", "submit", "--skill", "echo", "--queue", "--depends-on", "task_nope"]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("task_nope"), "{}", show(&o));
}

#[tokio::test]
async fn a_failed_parent_cancels_a_child_under_cancel_and_not_under_run() {
    let c = Cluster::start().await;
    let _w1 = c.exec_worker("w1", &[Skill::exec("broken", "echo nope >&2; exit 3\n"), echo()], &[]).await;
    let parent = c.submit(json!({"name": "p", "required_skills": ["broken"], "max_retries": 0})).await;
    let cancelled = c.submit(json!({"name": "c", "required_skills": ["echo"], "depends_on": [parent]})).await;
    let runs = c
        .submit(json!({"name": "r", "required_skills": ["echo"], "depends_on": [parent], "on_parent_failure": "run"}))
        .await;
    let t = c.wait_task(&cancelled, 30).await;
    assert_eq!(t["status"], "cancelled", "{t}");
    let why = t["error"].as_str().unwrap();
    assert!(
        why.contains(&format!("task {parent} ended failed")) && why.contains("on_parent_failure is cancel"),
        "{why}"
    );
    let t = c.wait_task(&runs, 30).await;
    assert_eq!(t["status"], "completed", "{t}");
    assert_eq!(t["result"]["inputs"][&parent]["status"], "failed", "{t}");
    assert!(t["result"]["inputs"][&parent]["error"].as_str().unwrap().contains("nope"), "{t}");
}

#[tokio::test]
async fn a_waiting_dependent_survives_a_kill_9_of_the_coordinator_and_runs_after() {
    let mut c = Cluster::start().await;
    let _w1 = c.exec_worker("w1", &[gated(c.path()), echo()], &[]).await;
    let parent = c.submit(json!({"name": "fetch", "required_skills": ["gated"]})).await;
    let child = c.submit(json!({"name": "after", "required_skills": ["echo"], "depends_on": [parent]})).await;
    wait_reason(&c, &child, &format!("waiting for task {parent} (running on w1)")).await;
    c.kill_coordinator();
    c.start_coordinator().await;
    let t = status_of(&c, &child).await;
    assert_eq!(t["status"], "pending", "{t}");
    assert_eq!(t["waiting_for"], json!([parent]), "{t}");
    std::fs::write(c.path().join("go"), "").unwrap();
    let done = c.wait_task(&child, 60).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["result"]["inputs"][&parent]["result"], json!({"n": 7}), "{done}");
}

#[tokio::test]
async fn each_node_runs_once_per_online_node_and_combines_the_results_by_node() {
    let c = Cluster::start().await;
    let disk = Skill::exec("disk", "echo \"{\\\"node\\\": \\\"$OPENCLAW_NODE_ID\\\"}\"\n");
    let _w1 = c.exec_worker("w1", &[disk], &[]).await;
    let _w2 = c.worker("w2", &c.skills_dir(), &[]);
    c.wait_online("w2", &["disk"]).await;
    let o = c.cli(&["tasks", "submit", "--skill", "disk", "--each-node", "--wait", "--json"]);
    assert!(o.status.success(), "{}", show(&o));
    let group: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(group["status"], "completed", "{group}");
    assert_eq!(group["result"]["outcome"], "completed");
    assert_eq!(group["result"]["nodes"]["w1"]["result"], json!({"node": "w1"}), "{group}");
    assert_eq!(group["result"]["nodes"]["w2"]["result"], json!({"node": "w2"}), "{group}");
    let id = group["task_id"].as_str().unwrap();
    let full = status_of(&c, id).await;
    let children = full["children"].as_array().unwrap();
    let steps: Vec<&str> = children.iter().map(|k| k["step"].as_str().unwrap()).collect();
    assert_eq!(steps, vec!["w1", "w2"], "{full}");
    for k in children {
        let child = status_of(&c, k["task_id"].as_str().unwrap()).await;
        assert_eq!(child["parent"], id, "{child}");
        assert_eq!(child["assigned_node"], k["step"]);
    }
    // `tasks get` shows the group and its children.
    let o = c.cli(&["tasks", "get", id]);
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(text.contains("each_node of 2 task(s)") && text.contains("STEP"), "{text}");
    // No matching online node: refused, saying fan-out takes the nodes online now.
    let (status, body) = c
        .api(
            "POST",
            "/api/v1/tasks",
            Some(json!({"name": "x", "required_skills": ["disk"], "target": {"each_node": true, "tags": ["gpu"]}})),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(body.to_string().contains("each_node fans out to the matching online nodes at submit time"), "{body}");
}

#[tokio::test]
async fn a_fan_out_with_a_failing_node_is_partly_failed() {
    let c = Cluster::start().await;
    // The skill fails on w2 only.
    let flaky = Skill::exec("flaky", "[ \"$OPENCLAW_NODE_ID\" = w2 ] && exit 5\necho '{\"ok\": true}'\n");
    let _w1 = c.exec_worker("w1", &[flaky], &[]).await;
    let _w2 = c.worker("w2", &c.skills_dir(), &[]);
    c.wait_online("w2", &["flaky"]).await;
    let id = c
        .submit(json!({"name": "f", "required_skills": ["flaky"], "max_retries": 0, "target": {"each_node": true}}))
        .await;
    let g = c.wait_task(&id, 30).await;
    assert_eq!(g["status"], "failed", "{g}");
    assert_eq!(g["result"]["outcome"], "partly_failed", "{g}");
    assert_eq!(g["result"]["nodes"]["w1"]["status"], "completed");
    assert_eq!(g["result"]["nodes"]["w2"]["status"], "failed");
    assert!(g["error"].as_str().unwrap().starts_with("partly failed: 1 of 2 did not complete (w2 failed)"), "{g}");
    let events: Vec<&str> = g["events"].as_array().unwrap().iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(events.iter().filter(|e| **e == "child_ended").count(), 2, "{events:?}");
}

/// The issue's example, as written: `fetch`, then `summarize` with fetch's result put in
/// its params by reference, and `report` on every node; `--wait` prints each step's
/// changes and exits 0 when all completed.
const MORNING: &str = r#"name: morning
steps:
  fetch:     {skill: fetch-mail, params: {folder: inbox}}
  summarize: {skill: summarize, needs: [fetch], params: {text: "${{ steps.fetch.result }}"}}
  report:    {skill: disk-report, each_node: true}
"#;

#[tokio::test]
async fn the_morning_workflow_runs_from_a_file_and_wait_prints_each_step() {
    let c = Cluster::start().await;
    let skills = [
        Skill::exec("fetch-mail", "echo '{\"mails\": 3}'\n"),
        Skill::exec("summarize", "cat\n"),
        Skill::exec("disk-report", "echo \"{\\\"free\\\": \\\"$OPENCLAW_NODE_ID\\\"}\"\n"),
    ];
    let _w1 = c.exec_worker("w1", &skills, &[]).await;
    let _w2 = c.worker("w2", &c.skills_dir(), &[]);
    c.wait_online("w2", &["disk-report", "fetch-mail", "summarize"]).await;
    let file = c.path().join("morning.yaml");
    std::fs::write(&file, MORNING).unwrap();
    let o = c.cli(&["run", file.to_str().unwrap(), "--wait"]);
    assert!(o.status.success(), "{}", show(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    for line in ["fetch completed", "summarize released", "summarize completed", "report child_ended"] {
        assert!(out.contains(line), "no `{line}` in:\n{out}");
    }
    let id = out.lines().find_map(|l| l.strip_prefix("workflow ")).unwrap().split(' ').next().unwrap().to_string();
    let wf = status_of(&c, &id).await;
    assert_eq!(wf["status"], "completed", "{wf}");
    let steps = &wf["result"]["steps"];
    // The reference became fetch's result; fetch's result also came as `inputs`.
    let got = &steps["summarize"]["result"];
    assert_eq!(got["parameters"]["text"], json!({"mails": 3}), "{got}");
    assert_eq!(got["inputs"]["fetch"]["result"], json!({"mails": 3}), "{got}");
    assert_eq!(steps["report"]["result"]["nodes"]["w2"]["result"], json!({"free": "w2"}), "{wf}");
    let names: Vec<&str> = wf["children"].as_array().unwrap().iter().map(|k| k["step"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["fetch", "report", "summarize"]);
    let summarize = wf["children"].as_array().unwrap().iter().find(|k| k["step"] == "summarize").unwrap();
    let fetch = wf["children"].as_array().unwrap().iter().find(|k| k["step"] == "fetch").unwrap();
    assert_eq!(summarize["depends_on"], json!([fetch["task_id"]]));
}

#[tokio::test]
async fn bad_workflow_files_exit_2_naming_file_line_and_submit_nothing() {
    let c = Cluster::start().await;
    let cases = [
        (
            "cycle.yaml",
            "name: loop\nsteps:\n  a: {skill: x, needs: [b]}\n  b: {skill: x, needs: [a]}\n",
            vec!["cycle.yaml:3: steps.a.needs: the steps' needs form a cycle: a → b → a"],
        ),
        (
            "unknown.yaml",
            "name: typo\nsteps:\n  fetch: {skill: x}\n  summarize:\n    skill: y\n    needs: [fecth]\n",
            vec!["unknown.yaml:6: steps.summarize.needs[0]: no step `fecth` — did you mean `fetch`?"],
        ),
        (
            "reference.yaml",
            "name: r\nsteps:\n  a: {skill: x}\n  b: {skill: y, params: {t: \"${{ steps.nope.result }}\"}}\n",
            vec!["reference.yaml:4: steps.b.params.t: refers to steps.nope, and there is no such step"],
        ),
        ("syntax.yaml", "name: s\nsteps:\n  a: {skill: x\n", vec!["invalid workflow file", "syntax.yaml:"]),
        ("keys.yaml", "name: k\nsteps:\n  a: {skill: x, nedds: [b]}\n", vec!["keys.yaml:3", "unknown"]),
    ];
    for (name, text, wanted) in cases {
        let file = c.path().join(name);
        std::fs::write(&file, text).unwrap();
        let o = c.cli(&["run", file.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{name}: {}", show(&o));
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        for w in wanted {
            assert!(err.contains(w), "{name}: no `{w}` in: {err}");
        }
    }
    assert_eq!(c.get("/api/v1/tasks").await["tasks"], json!([]), "something was submitted");
    // The API refuses the same, naming the problem.
    let body =
        json!({"name": "loop", "steps": {"a": {"skill": "x", "needs": ["b"]}, "b": {"skill": "x", "needs": ["a"]}}});
    let (status, answer) = c.api("POST", "/api/v1/workflows", Some(body)).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer.to_string().contains("cycle: a → b → a"), "{answer}");
}

#[tokio::test]
async fn a_failed_step_cancels_the_steps_that_need_it_and_fails_the_workflow() {
    let c = Cluster::start().await;
    let _w1 = c.exec_worker("w1", &[Skill::exec("broken", "exit 3\n"), echo()], &[]).await;
    let body = json!({"name": "f", "steps": {
        "a": {"skill": "broken", "retries": 0},
        "b": {"skill": "echo", "needs": ["a"]},
        "c": {"skill": "echo", "needs": ["a"], "on_parent_failure": "run"},
    }});
    let (status, wf) = c.api("POST", "/api/v1/workflows", Some(body)).await;
    assert_eq!(status, 201, "{wf}");
    let done = c.wait_task(wf["task_id"].as_str().unwrap(), 30).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["result"]["outcome"], "partly_failed", "{done}");
    let steps = &done["result"]["steps"];
    assert_eq!(steps["a"]["status"], "failed");
    assert_eq!(steps["b"]["status"], "cancelled");
    assert!(steps["b"]["error"].as_str().unwrap().contains("ended failed"), "{done}");
    assert_eq!(steps["c"]["status"], "completed");
    assert_eq!(steps["c"]["result"]["inputs"]["a"]["status"], "failed");
}

/// A schedule's payload may be a workflow: each firing submits the workflow task and its
/// steps, naming the schedule. The CLI checks the file first (exit 2 with FILE:LINE).
#[tokio::test]
async fn a_schedule_fires_a_workflow() {
    let c = Cluster::start().await;
    let _w1 = c.exec_worker("w1", &[Skill::exec("fetch-mail", "echo '{\"mails\": 1}'\n"), echo()], &[]).await;
    let file = c.path().join("wf.yaml");
    std::fs::write(
        &file,
        "name: mail\nsteps:\n  fetch: {skill: fetch-mail}\n  show: {skill: echo, needs: [fetch], params: {n: \"${{ steps.fetch.result.mails }}\"}}\n",
    )
    .unwrap();
    let o = c.cli(&["schedules", "add", "mail", "--every", "1h", "--workflow", file.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", show(&o));
    let o = c.cli(&["schedules", "run-now", "mail"]);
    assert!(o.status.success(), "{}", show(&o));
    let runs = c.get("/api/v1/schedules/mail/runs").await;
    let id = runs["runs"][0]["task_id"].as_str().unwrap().to_string();
    let wf = c.wait_task(&id, 30).await;
    assert_eq!(wf["status"], "completed", "{wf}");
    assert_eq!(wf["group"], "workflow");
    assert_eq!(wf["schedule"]["name"], "mail", "{wf}");
    assert_eq!(wf["result"]["steps"]["show"]["result"]["parameters"]["n"], 1, "{wf}");
    // A bad file is refused before anything is sent.
    std::fs::write(&file, "name: mail\nsteps:\n  show: {skill: echo, needs: [fetch]}\n").unwrap();
    let o = c.cli(&["schedules", "add", "bad", "--every", "1h", "--workflow", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("wf.yaml:3: steps.show.needs[0]: no step `fetch`"),
        "{}",
        show(&o)
    );
    let (status, _) = c.api("GET", "/api/v1/schedules/bad", None).await;
    assert_eq!(status, 404);
}
