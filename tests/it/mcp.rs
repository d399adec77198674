//! The cluster as an MCP server, driven by a real MCP client: the Python `mcp` SDK (pinned
//! in `.ci/mcp-client.env`, installed by `.ci/install-mcp-client` into a venv in
//! `$OPENCLAW_CI_DIR`, default `~/.cache/openclaw-ci`) runs `tests/it/mcp_client.py`
//! against `openclaw mcp` (stdio, spawned by the client) and the coordinator's `/mcp`
//! (Streamable HTTP), in both protocol modes the SDK has: every tool called, schemas
//! checked, structured results validated against their output schemas, resources read.
//!
//! Without the venv a test says so loudly and returns — unless `CI=true`, where it fails.

use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};

use crate::support::{BIN, Cluster, DeadPort, exec_skill, show};

/// The pinned versions, shared with `.ci/install-mcp-client`.
const VERSIONS: &str = include_str!("../../.ci/mcp-client.env");

/// The venv's Python, or `None` (after saying why) when it is not installed outside CI.
fn python() -> Option<PathBuf> {
    let version = VERSIONS
        .lines()
        .find_map(|l| l.strip_prefix("MCP_PY_VERSION="))
        .expect(".ci/mcp-client.env names MCP_PY_VERSION")
        .trim();
    let dir = std::env::var_os("OPENCLAW_CI_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/openclaw-ci"));
    let python = dir.join(format!("mcp-python-{version}/bin/python"));
    if python.exists() {
        return Some(python);
    }
    let message = format!("the Python MCP client is not installed at {}: run .ci/install-mcp-client", python.display());
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{message} (CI=true: this test may not skip)");
    }
    eprintln!("SKIPPED (loudly): {message}");
    None
}

/// Runs the client script with a plan and returns its report.
fn client(python: &PathBuf, plan: &Value) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/mcp_client.py");
    let out = Command::new(python).arg(script).arg(plan.to_string()).output().expect("run the MCP client");
    assert!(out.status.success(), "the MCP client failed: {}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{e}: {}", show(&out)))
}

/// A cluster with two workers: w1 has `echo` and `gated`, w2 only `echo`.
async fn cluster() -> (Cluster, crate::support::Proc, crate::support::Proc, PathBuf) {
    let c = Cluster::start().await;
    let (one, two) = (c.path().join("skills-w1"), c.path().join("skills-w2"));
    exec_skill(&one, "echo", "cat\n");
    exec_skill(&two, "echo", "cat\n");
    // Runs until the client opens the gate (it does so on the first progress notice).
    exec_skill(
        &one,
        "gated",
        "echo 'waiting for the gate' >&2\nwhile [ ! -e gate ]; do sleep 0.05; done\necho '{\"opened\": true}'\n",
    );
    let gate = one.join("gated/gate");
    let w1 = c.worker("w1", &one, &[]);
    let w2 = c.worker("w2", &two, &[]);
    c.wait_online("w1", &["echo", "gated"]).await;
    c.wait_online("w2", &["echo"]).await;
    (c, w1, w2, gate)
}

fn tasks_token(c: &Cluster) -> String {
    std::fs::read_to_string(c.path().join("data/tasks.token")).unwrap().trim().to_string()
}

fn plan(c: &Cluster, transport: &str, mode: &str, gate: &PathBuf) -> Value {
    let mut plan = json!({
        "mode": mode, "fast": "echo", "gated": "gated", "gate": gate, "node": "w2", "missing": "ocr",
    });
    if transport == "stdio" {
        // Found as every CLI command finds the coordinator: the config's address and the
        // token file beside the database (here the tasks token).
        plan["transport"] = json!("stdio");
        plan["command"] = json!([BIN, "-c", c.config, "mcp"]);
    } else {
        plan["transport"] = json!("http");
        plan["url"] = json!(format!("{}/mcp", c.url()));
        plan["token"] = json!(tasks_token(c));
    }
    plan
}

/// What every run of the scenario must show, whatever the transport and protocol mode.
async fn check(c: &Cluster, r: &Value, mode: &str) {
    let ok = |name: &str| {
        let call = &r[name];
        assert_eq!(call["is_error"], false, "{name}: {call}");
        assert_eq!(call["schema_errors"], json!([]), "{name}: structured result does not match its outputSchema");
        assert_eq!(call["json_blocks"], 1, "{name}: the text has the pretty JSON once: {call}");
        assert_eq!(call["other_blocks"], json!([openclaw::mcp::views::DATA_LABEL]), "{name}: the data label: {call}");
        let marked = call["structured"]["untrusted_fields"].as_array().cloned().unwrap_or_default();
        assert!(!marked.is_empty(), "{name} names the fields nodes and skills wrote: {call}");
        call["structured"].clone()
    };
    let failed = |name: &str| {
        let call = &r[name];
        assert_eq!(call["is_error"], true, "{name} should be a tool error: {call}");
        call["text"].as_str().unwrap().to_string()
    };
    let want_protocol = if mode == "legacy" { "2025-11-25" } else { "2026-07-28" };
    assert_eq!(r["protocol"], want_protocol, "{r}");
    assert_eq!(r["server"], "openclaw-cluster");
    let tools = json!([
        "add_schedule",
        "cancel_task",
        "change_schedule",
        "get_task",
        "list_nodes",
        "list_schedules",
        "list_skills",
        "run_schedule",
        "submit_task",
        "wait_task"
    ]);
    assert_eq!(r["tools"], tools);
    assert_eq!(r["described"], tools, "every tool has a description a model can act on");
    assert_eq!(r["schema_problems"], json!([]));

    let nodes = ok("list_nodes");
    let ids: Vec<&str> = nodes["nodes"].as_array().unwrap().iter().map(|n| n["node_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["w1", "w2"]);
    assert!(nodes["summary"].as_str().unwrap().starts_with("2 nodes: 2 can take work now"), "{nodes}");
    let skills = ok("list_skills");
    let skill = |name: &str| skills["skills"].as_array().unwrap().iter().find(|s| s["name"] == name).cloned().unwrap();
    assert_eq!(skill("echo")["ready_on"], json!(["w1", "w2"]));
    assert_eq!(skill("gated")["ready_on"], json!(["w1"]));

    // Waited for, ran on the node asked for, with the prompt and parameters.
    let fast = ok("submit_fast");
    assert_eq!(
        (fast["status"].as_str(), fast["node"].as_str(), fast["ended"].as_bool()),
        (Some("completed"), Some("w2"), Some(true))
    );
    assert_eq!(fast["result"]["parameters"], json!({"n": 7, "prompt": "hello from mcp"}), "{fast}");
    let stored = c.get(&format!("/api/v1/tasks/{}", fast["task_id"].as_str().unwrap())).await;
    assert_eq!((stored["origin"].as_str(), stored["target"]["node"].as_str()), (Some("mcp"), Some("w2")), "{stored}");

    // Not waited for: answered at once with the id; wait_task sent progress, then the end.
    let gated = ok("submit_gated");
    assert_eq!(gated["ended"], false, "{gated}");
    assert!(gated["next"].as_str().unwrap().contains("wait_task"), "{gated}");
    let waited = ok("wait_gated");
    assert_eq!((waited["status"].as_str(), &waited["result"]), (Some("completed"), &json!({"opened": true})));
    let progress = r["progress"].as_array().unwrap();
    assert!(!progress.is_empty(), "no progress notification: {r}");
    let id = gated["task_id"].as_str().unwrap();
    assert_eq!(progress[0]["total"], 120.0);
    assert!(progress[0]["message"].as_str().unwrap().starts_with(&format!("task {id} is ")), "{progress:?}");
    let got = ok("get_gated");
    assert_eq!(got["status"], "completed");
    // The task answer shows the last lines the skill printed.
    let printed = got["last_output"].as_array().unwrap();
    assert!(printed.contains(&json!("stderr: waiting for the gate")), "{got}");

    // Queued for a skill nobody has, then cancelled.
    let queued = ok("submit_queued");
    assert_eq!(
        (queued["status"].as_str(), queued["pending_reason"].as_str()),
        (Some("pending"), Some("no node has skill 'ocr'"))
    );
    assert_eq!(ok("cancel_queued")["status"], "cancelled");

    // Tool errors that say what to do.
    assert!(failed("cancel_ended").contains("already ended (completed); nothing to cancel"));
    let missing = failed("submit_missing");
    assert!(missing.starts_with("not submitted: no node has skill 'ocr'"), "{missing}");
    assert!(missing.contains("queue_if_unavailable: true"), "{missing}");
    assert!(failed("submit_bad_priority").contains("`urgent` is not one of critical, high, normal, low"));
    // Schedules: add, fire now, list, remove; bad input and an unknown name say what to do.
    assert_eq!(ok("add_schedule")["tz"], "Europe/Berlin");
    assert!(failed("add_schedule_bad").starts_with("not accepted: cron:"), "{}", failed("add_schedule_bad"));
    assert!(ok("run_schedule")["task_id"].as_str().is_some_and(|t| t.starts_with("task_")));
    assert_eq!(ok("list_schedules")["schedules"][0]["name"], "mcp-daily");
    assert_eq!(ok("remove_schedule")["name"], "mcp-daily");
    assert!(failed("run_unknown_schedule").contains("list_schedules names them"));
    let unknown = failed("get_unknown");
    assert!(unknown.starts_with("no task task_nope") && unknown.contains("Check the task_id"), "{unknown}");

    let resources = r["resources"].as_array().unwrap();
    assert!(resources.contains(&json!("cluster://nodes")), "{resources:?}");
    assert!(resources.contains(&json!(format!("cluster://tasks/{id}"))), "{resources:?}");
    assert_eq!(r["templates"], json!(["cluster://tasks/{id}"]));
    assert_eq!(r["read_nodes"].as_array().unwrap().len(), 2);
    assert_eq!(r["read_task"]["task_id"], id);
    assert!(r["read_task"]["events"].as_array().is_some_and(|e| e.len() >= 4), "{}", r["read_task"]);
    assert!(r["read_unknown"].as_str().unwrap().contains("no task task_nope"), "{}", r["read_unknown"]);
}

/// Runs the scenario in both protocol modes (2026-07-28 without initialize, and the
/// initialize handshake OpenClaw and the Inspector use) and checks it, then checks that a
/// refused submission stored nothing: three tasks per run from `mcp`, and one from the
/// schedule it fires.
async fn both_modes(transport: &str) {
    let Some(python) = python() else { return };
    let (c, _w1, _w2, gate) = cluster().await;
    for mode in ["auto", "legacy"] {
        let _ = std::fs::remove_file(&gate);
        let report = client(&python, &plan(&c, transport, mode, &gate));
        check(&c, &report, mode).await;
    }
    let tasks = c.get("/api/v1/tasks").await;
    let tasks = tasks["tasks"].as_array().unwrap();
    let (mcp, scheduled): (Vec<&Value>, Vec<&Value>) = tasks.iter().partition(|t| t["origin"] == "mcp");
    assert_eq!((mcp.len(), scheduled.len()), (6, 2), "{tasks:?}");
    assert!(scheduled.iter().all(|t| t["origin"] == "schedule" && t["schedule"]["name"] == "mcp-daily"), "{tasks:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn python_sdk_over_stdio_calls_every_tool() {
    both_modes("stdio").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn python_sdk_over_http_calls_every_tool() {
    both_modes("http").await;
}

/// Only the admin and tasks tokens open `/mcp`, checked before the body is read; it is
/// POST only (stateless: no GET stream, no sessions to delete).
#[tokio::test(flavor = "multi_thread")]
async fn the_http_door_takes_the_admin_or_tasks_token() {
    let c = Cluster::start().await;
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    let (status, answer) = c.call("POST", "/mcp", None, Some(body)).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (401, Some("unauthorized")), "{answer}");
    let (status, answer) = c.call("POST", "/mcp", Some(&c.worker_token()), Some(body)).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (403, Some("forbidden")), "{answer}");
    let (status, answer) = c.call("GET", "/mcp", Some(&tasks_token(&c)), None).await;
    assert_eq!(status, 405, "{answer}");
    let Some(python) = python() else { return };
    let quick =
        |token: String| json!({"quick": true, "transport": "http", "url": format!("{}/mcp", c.url()), "token": token});
    let report = client(&python, &quick(c.admin()));
    assert_eq!(report["list_nodes"]["is_error"], false, "{report}");
    // The SDK reports the 401 as an error response, or as the connection the server closed
    // without reading the body it refused; either way it gets no tools.
    let report = client(&python, &quick("not-a-token".into()));
    assert!(report["error"].as_str().is_some_and(|e| !e.is_empty()), "{report}");
    assert!(report["tools"].is_null(), "{report}");
}

/// An MCP `initialize` with a given `Host` header: the status.
async fn initialize_as(c: &Cluster, host: &str, token: Option<&str>) -> u16 {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}}});
    let mut req = c
        .http
        .post(format!("{}/mcp", c.url()))
        .header("host", host)
        .header("accept", "application/json, text/event-stream")
        .json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap().status().as_u16()
}

/// Regression guard for rmcp's DNS-rebinding check, which by default answers 403 to any
/// `Host` but loopback names: with auth on, a coordinator reached by its network name
/// serves `/mcp` (the token is the guard); with auth off, only loopback names are served.
#[tokio::test(flavor = "multi_thread")]
async fn the_host_check_applies_only_without_auth() {
    let c = Cluster::start().await;
    assert_eq!(initialize_as(&c, "mac-mini.local:8888", Some(&tasks_token(&c))).await, 200);
    let mut open = Cluster::new(crate::support::Settings::default());
    open.append_config("auth:\n  enabled: false\n");
    open.start_coordinator().await;
    assert_eq!(initialize_as(&open, &format!("127.0.0.1:{}", open.port), None).await, 200);
    assert_eq!(initialize_as(&open, "attacker.example", None).await, 403);
}

/// `openclaw mcp` starts without the coordinator and says, as a tool error, what is wrong:
/// nothing answers there, or the token is not one it takes.
#[tokio::test(flavor = "multi_thread")]
async fn the_stdio_server_explains_an_unreachable_coordinator_and_a_wrong_token() {
    let Some(python) = python() else { return };
    let c = Cluster::start().await;
    let dead = DeadPort::new();
    let stdio = |args: Vec<String>| {
        let mut command = vec![BIN.to_string()];
        command.extend(args);
        json!({"quick": true, "transport": "stdio", "command": command})
    };
    let report = client(
        &python,
        &stdio(vec![
            "mcp".into(),
            "--url".into(),
            format!("127.0.0.1:{}", dead.port()),
            "--token".into(),
            "x".repeat(20),
        ]),
    );
    let text = report["list_nodes"]["text"].as_str().unwrap_or_default();
    assert_eq!(report["list_nodes"]["is_error"], true, "{report}");
    assert!(text.starts_with("cannot reach the coordinator at http://127.0.0.1:"), "{text}");
    let report = client(
        &python,
        &stdio(vec!["mcp".into(), "--url".into(), c.url(), "--token".into(), "wrong-token-wrong-token".into()]),
    );
    let text = report["list_nodes"]["text"].as_str().unwrap_or_default();
    assert!(
        text.contains("invalid token")
            && text.contains("the token came from --token; openclaw mcp needs the tasks token"),
        "{text}"
    );
    let report =
        client(&python, &stdio(vec!["mcp".into(), "--url".into(), c.url(), "--token".into(), tasks_token(&c)]));
    assert_eq!(report["list_nodes"]["is_error"], false, "{report}");
}
