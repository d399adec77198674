//! The OpenAPI document against the real server: it is served at `/openapi.json`, the
//! committed `docs/openapi.json` is what the binary serves (`OPENCLAW_UPDATE_DOCS=1 cargo
//! test --test it openapi` rewrites it), it is valid OpenAPI 3.1 (openapi-spec-validator),
//! and real answers of every route — successes and errors — are documented: status,
//! content type, headers, and a JSON body that validates against the documented schema
//! with every object closed (tests/tools/openapi_check.py).

use std::path::Path;

use serde_json::{Value, json};

use crate::support::{Cluster, Settings, Skill, run_tool, tool};

fn committed() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.json")
}

#[tokio::test]
async fn the_served_document_is_the_committed_one_and_valid_openapi_3_1() {
    let cluster = Cluster::start().await;
    let r = cluster.http.get(format!("{}/openapi.json", cluster.url())).send().await.unwrap();
    assert_eq!(r.status(), 200, "/openapi.json is open");
    assert_eq!(r.headers()["content-type"], "application/json");
    let served = r.text().await.unwrap();
    let doc: Value = serde_json::from_str(&served).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    if std::env::var_os("OPENCLAW_UPDATE_DOCS").is_some() {
        std::fs::write(committed(), &served).unwrap();
    }
    let file = std::fs::read_to_string(committed()).unwrap_or_default();
    assert!(
        file == served,
        "docs/openapi.json differs from what the binary serves: run OPENCLAW_UPDATE_DOCS=1 cargo test --test it openapi"
    );
    let Some(validator) = tool("venv/bin/openapi-spec-validator") else { return };
    let out = run_tool(&validator, &["--schema", "3.1", committed().to_str().unwrap()]);
    assert!(out.contains("OK"), "{out}");
}

/// One request and its answer, as the checker reads it.
struct Probe<'a> {
    cluster: &'a Cluster,
    samples: Vec<Value>,
}

impl Probe<'_> {
    /// Sends a request and records its answer; returns the status and the JSON body (or
    /// Null).
    async fn send(&mut self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
        self.send_with(method, path, token, body.map(|b| b.to_string()), &[]).await
    }

    async fn send_with(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<String>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let mut req = client.request(m.clone(), format!("{}{path}", self.cluster.url()));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let mut sent = serde_json::Map::new();
        for (k, v) in r.headers() {
            sent.insert(k.as_str().to_string(), v.to_str().unwrap_or("").into());
        }
        let text = if sent.get("content-type").is_some_and(|t| t == "text/event-stream") {
            read_stream(r).await
        } else {
            r.text().await.unwrap()
        };
        let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let (bare, query) = path.split_once('?').unwrap_or((path, ""));
        let template = match openclaw::api::Route::parse(&m, bare, query) {
            Ok(route) => route.endpoint().path,
            // A bad query still names its route: strip the query and look again.
            Err(_) => openclaw::api::Route::parse(&m, bare, "").map(|r| r.endpoint().path).unwrap_or("?"),
        };
        self.samples.push(json!({
            "method": method, "path": path, "template": template, "status": status,
            "headers": sent, "body": json.clone(), "text": text,
        }));
        (status, json)
    }
}

/// What a stream sent until it ended, or until it went quiet or sent 50 events (the event
/// stream never ends by itself).
async fn read_stream(mut r: reqwest::Response) -> String {
    let mut text = String::new();
    while text.matches("\n\n").count() < 50 {
        match tokio::time::timeout(std::time::Duration::from_secs(2), r.chunk()).await {
            Ok(Ok(Some(chunk))) => text.push_str(&String::from_utf8_lossy(&chunk)),
            _ => break,
        }
    }
    text
}

/// Every route, with real data behind it: a worker that ran a task, a node registered by
/// hand that takes a task through the whole worker protocol, pending and cancelled tasks,
/// idempotent repeats, and the error answers of each kind of caller.
#[tokio::test]
async fn every_route_answers_as_the_document_says() {
    // Node n1 is driven by hand and sends no heartbeats between its steps: a long timeout
    // keeps it (and the task it holds) from being requeued on a busy machine.
    let cluster = Cluster::start_with(Settings { heartbeat_timeout: 120.0, ..Settings::default() }).await;
    let _w1 = cluster.exec_worker("w1", &[Skill::exec("echo", "cat\n")], &[]).await;
    let admin = cluster.admin();
    let join = cluster.worker_token();
    let tasks = std::fs::read_to_string(cluster.path().join("data/tasks.token")).unwrap().trim().to_string();
    let (admin, join, tasks) = (admin.as_str(), join.as_str(), tasks.as_str());
    let done = cluster.submit(json!({"name": "echo", "required_skills": ["echo"], "parameters": {"x": 1}})).await;
    assert_eq!(cluster.wait_task(&done, 30).await["status"], "completed");
    let s1 = cluster.register("n1", &["solo"], 1).await;
    let solo = cluster.submit(json!({"name": "solo", "required_skills": ["solo"]})).await;
    let pending = cluster.submit(json!({"name": "stuck", "required_skills": ["nobody"], "priority": 0})).await;

    let mut p = Probe { cluster: &cluster, samples: Vec::new() };
    // The dashboard and the service routes.
    p.send("GET", "/", None, None).await;
    p.send("GET", "/ui", None, None).await;
    for asset in ["app.js", "app.css", "icon.svg", "nope.js"] {
        p.send("GET", &format!("/assets/{asset}"), None, None).await;
    }
    p.send("GET", "/openapi.json", None, None).await;
    p.send("GET", "/health", None, None).await;
    p.send("GET", "/health?verbose=1", None, None).await;
    p.send("GET", "/metrics", Some(admin), None).await;
    p.send("GET", "/metrics", Some(tasks), None).await;
    p.send("GET", "/metrics", None, None).await;
    p.send("GET", "/api/v1/whoami", Some(admin), None).await;
    p.send("GET", "/api/v1/whoami", Some(tasks), None).await;
    p.send("GET", "/api/v1/whoami", Some(join), None).await;
    // Nodes.
    let reg = json!({"node_id": "n2", "hostname": "n2.local", "platform": "linux", "arch": "x64",
        "available_skills": ["x"], "tailscale_ip": null, "status": "online", "cpu_usage": 1.5,
        "skill_digests": {"x": {"source": "skills_dir", "digest": format!("sha256:{}", "0".repeat(64))}}});
    let (status, answer) = p.send("POST", "/api/v1/nodes/register", Some(join), Some(reg.clone())).await;
    assert_eq!(status, 200, "{answer}");
    let s2 = answer["node_secret"].as_str().unwrap().to_string();
    // Once its secret was used, the node id is taken: the join token cannot register it again.
    p.send("POST", "/api/v1/nodes/n2/heartbeat", Some(&s2), None).await;
    p.send("POST", "/api/v1/nodes/register", Some(join), Some(reg)).await;
    p.send("POST", "/api/v1/nodes/register", Some(join), Some(json!({"hostname": 5}))).await;
    p.send("GET", "/api/v1/nodes", Some(tasks), None).await;
    p.send("GET", "/api/v1/skills", Some(tasks), None).await;
    p.send("GET", "/api/v1/nodes?status=online", Some(admin), None).await;
    p.send("GET", "/api/v1/nodes?status=sleepy", Some(admin), None).await;
    p.send("GET", "/api/v1/nodes/online", Some(admin), None).await;
    p.send("GET", "/api/v1/nodes/skills/echo", Some(admin), None).await;
    p.send("GET", "/api/v1/nodes/w1", Some(admin), None).await;
    p.send("GET", "/api/v1/nodes/nope", Some(admin), None).await;
    p.send("GET", "/api/v1/nodes/w1/health", Some(tasks), None).await;
    p.send("GET", "/api/v1/nodes/nope/health", Some(tasks), None).await;
    p.send("POST", "/api/v1/nodes/w1/drain", Some(admin), None).await;
    p.send("POST", "/api/v1/nodes/w1/drain", Some(tasks), None).await;
    p.send("POST", "/api/v1/nodes/w1/undrain", Some(admin), None).await;
    p.send("POST", "/api/v1/nodes/nope/undrain", Some(admin), None).await;
    // The worker protocol, for node n1 and its task.
    let usage = json!({"cpu_usage": 5.0, "memory_usage": 10.0, "disk_usage": 20.0});
    p.send("POST", "/api/v1/nodes/n1/heartbeat", Some(&s1), Some(usage.clone())).await;
    p.send("POST", "/api/v1/nodes/n1/heartbeat", Some(admin), Some(usage)).await;
    p.send("POST", "/api/v1/nodes/n1/heartbeat", Some(&s1), Some(json!({"cpu_usage": "high"}))).await;
    let (status, polled) =
        p.send("POST", "/api/v1/nodes/n1/tasks/poll", Some(&s1), Some(json!({"wait_secs": 5}))).await;
    assert_eq!((status, polled["assignments"][0]["task_id"].as_str()), (200, Some(solo.as_str())), "{polled}");
    let start = format!("/api/v1/nodes/n1/tasks/{solo}/start");
    let result = format!("/api/v1/nodes/n1/tasks/{solo}/result");
    p.send("POST", &start, Some(&s1), Some(json!({"attempt": 1}))).await;
    p.send("POST", &start, Some(&s1), Some(json!({"attempt": 7}))).await;
    let output = format!("/api/v1/nodes/n1/tasks/{solo}/output");
    let line = json!({"stream": "stderr", "text": "working", "at": "2026-02-16T16:00:00.000Z"});
    let (status, ack) =
        p.send("POST", &output, Some(&s1), Some(json!({"attempt": 1, "first": 0, "lines": [line.clone()]}))).await;
    assert_eq!(status, 200, "{ack}");
    p.send("POST", &output, Some(&s1), Some(json!({"attempt": 7, "lines": [line]}))).await;
    p.send("POST", &output, Some(&s1), Some(json!({"attempt": 1, "lines": "working"}))).await;
    p.send("POST", "/api/v1/nodes/n1/tasks/nope/start", Some(&s1), Some(json!({"attempt": 1}))).await;
    let report = json!({"attempt": 1, "outcome": "completed", "result": {"ok": true}, "duration_ms": 12});
    p.send("POST", &result, Some(&s1), Some(report.clone())).await;
    p.send("POST", &result, Some(&s1), Some(report)).await;
    p.send("POST", "/api/v1/nodes/n1/tasks/poll", Some(&s1), Some(json!({"wait_secs": 0}))).await;
    // A batch: a repeat of the recorded result (200), a stale start, and a held list.
    let reports = "/api/v1/nodes/n1/tasks/reports";
    let batch = json!({
        "starts": [{"task_id": solo, "attempt": 7}],
        "results": [{"task_id": solo, "report": {"attempt": 1, "outcome": "completed", "result": {"ok": true}}}],
        "held": [],
    });
    let (status, answer) = p.send("POST", reports, Some(&s1), Some(batch)).await;
    assert_eq!((status, answer["results"][0]["status"].as_str()), (200, Some("completed")), "{answer}");
    p.send("POST", reports, Some(&s1), Some(json!({"starts": [{"task_id": solo}]}))).await;
    p.send("POST", reports, Some(&s2), Some(json!({}))).await;
    p.send("GET", &format!("/api/v1/tasks/{solo}/output"), Some(tasks), None).await;
    p.send("GET", &format!("/api/v1/tasks/{solo}/output?after=1"), Some(tasks), None).await;
    let (status, _) = p.send("GET", &format!("/api/v1/tasks/{solo}/output?follow=true"), Some(tasks), None).await;
    assert_eq!(status, 200);
    p.send("GET", "/api/v1/tasks/nope/output", Some(tasks), None).await;
    p.send("GET", &format!("/api/v1/tasks/{solo}/output?follow=maybe"), Some(tasks), None).await;
    p.send("POST", "/api/v1/nodes/n2/shutdown", Some(&s2), None).await;
    p.send("POST", "/api/v1/nodes/n2/shutdown", Some(&s1), None).await;
    p.send("DELETE", "/api/v1/nodes/n2", Some(admin), None).await;
    p.send("DELETE", "/api/v1/nodes/w1", Some(admin), None).await;
    // The cluster.
    p.send("GET", "/api/v1/cluster/health", Some(tasks), None).await;
    p.send("POST", "/api/v1/cluster/check-heartbeat", Some(admin), None).await;
    // Tasks.
    let submit = json!({"name": "again", "required_skills": ["echo"], "priority": "high", "timeout": 60}).to_string();
    p.send_with("POST", "/api/v1/tasks", Some(tasks), Some(submit.clone()), &[("idempotency-key", "k1")]).await;
    p.send_with("POST", "/api/v1/tasks", Some(tasks), Some(submit), &[("idempotency-key", "k1")]).await;
    let other = json!({"name": "other", "required_skills": ["echo"]}).to_string();
    p.send_with("POST", "/api/v1/tasks", Some(tasks), Some(other), &[("idempotency-key", "k1")]).await;
    p.send("POST", "/api/v1/tasks", Some(admin), Some(json!({"name": "t", "required_skills": ["echo"], "timeout": 0})))
        .await;
    p.send("POST", "/api/v1/tasks", Some(admin), Some(json!({"name": "t", "required_skills": ["echo"], "bogus": 1})))
        .await;
    p.send_with("POST", "/api/v1/tasks", Some(admin), Some("x".repeat(2 << 20)), &[]).await;
    p.send("GET", "/api/v1/tasks", Some(tasks), None).await;
    p.send("GET", "/api/v1/tasks?status=completed&limit=1", Some(admin), None).await;
    p.send("GET", "/api/v1/tasks?limit=many", Some(admin), None).await;
    p.send("GET", &format!("/api/v1/tasks/{done}"), Some(tasks), None).await;
    p.send("GET", &format!("/api/v1/tasks/{pending}"), Some(tasks), None).await;
    p.send("GET", "/api/v1/tasks/nope", Some(tasks), None).await;
    p.send("GET", &format!("/api/v1/tasks/{done}/wait?timeout=1"), Some(tasks), None).await;
    p.send("GET", &format!("/api/v1/tasks/{pending}/wait?timeout=0"), Some(tasks), None).await;
    p.send("GET", &format!("/api/v1/tasks/{done}/wait?timeout=soon"), Some(tasks), None).await;
    p.send("POST", &format!("/api/v1/tasks/{pending}/retry"), Some(tasks), None).await;
    p.send("POST", &format!("/api/v1/tasks/{pending}/cancel"), Some(tasks), None).await;
    p.send("POST", &format!("/api/v1/tasks/{pending}/cancel"), Some(tasks), None).await;
    p.send("POST", &format!("/api/v1/tasks/{done}/retry"), Some(admin), None).await;
    p.send("POST", "/api/v1/tasks/nope/retry", Some(admin), None).await;
    let workflow = json!({"name": "w", "steps": {"a": {"skill": "echo"}, "b": {"skill": "echo", "needs": ["a"]}}});
    p.send("POST", "/api/v1/workflows", Some(tasks), Some(workflow)).await;
    p.send("POST", "/api/v1/workflows", Some(tasks), Some(json!({"name": "w", "steps": {}}))).await;
    p.send("GET", "/api/v1/backup", Some(admin), None).await;
    p.send("GET", "/api/v1/backup", Some(tasks), None).await;
    // Secrets: set (and a bad name, a bad body), list, rotate, remove (and an unknown one).
    p.send(
        "PUT",
        "/api/v1/secrets/PROBE_KEY",
        Some(admin),
        Some(json!({"value": "probe-value-1234", "scope": {"tags": ["gpu"]}})),
    )
    .await;
    p.send("PUT", "/api/v1/secrets/1-bad", Some(admin), Some(json!({"value": "v"}))).await;
    p.send("PUT", "/api/v1/secrets/PROBE_KEY", Some(admin), Some(json!({"value": 3}))).await;
    p.send("PUT", "/api/v1/secrets/PROBE_KEY", Some(tasks), Some(json!({"value": "v"}))).await;
    p.send("GET", "/api/v1/secrets", Some(admin), None).await;
    p.send("POST", "/api/v1/secrets/rotate-key", Some(admin), None).await;
    p.send("DELETE", "/api/v1/secrets/PROBE_KEY", Some(admin), None).await;
    p.send("DELETE", "/api/v1/secrets/PROBE_KEY", Some(admin), None).await;
    // Pushed skills: a push to n2, its heartbeat answer and fetch, reports, remove, rollback.
    let pushed = Skill::command("pushed", &["true"]).write(&cluster.path().join("push-src"));
    let packed = openclaw::worker::skills::package::pack(&pushed).unwrap();
    let package = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(&packed.tar)
    };
    let reg =
        json!({"node_id": "n3", "hostname": "n3.local", "platform": "linux", "arch": "x64", "available_skills": ["x"]});
    let (status, answer) = p.send("POST", "/api/v1/nodes/register", Some(join), Some(reg)).await;
    assert_eq!(status, 200, "{answer}");
    let s3 = answer["node_secret"].as_str().unwrap().to_string();
    let push = json!({"name": "pushed", "digest": packed.digest, "package": package, "selector": {"nodes": ["n3"]}});
    let (status, answer) = p.send("POST", "/api/v1/skills/push", Some(admin), Some(push.clone())).await;
    assert_eq!(status, 201, "{answer}");
    p.send("POST", "/api/v1/skills/push", Some(tasks), Some(push)).await;
    p.send(
        "POST",
        "/api/v1/skills/push",
        Some(admin),
        Some(json!({"name": "pushed", "digest": packed.digest, "package": "", "selector": {}})),
    )
    .await;
    let report = json!({"skill_installs": [{"name": "pushed", "digest": packed.digest, "outcome": "failed", "reason": "probe"}]});
    let (status, answer) = p.send("POST", "/api/v1/nodes/n3/heartbeat", Some(&s3), Some(report)).await;
    assert_eq!(
        (status, answer["skill_packages"][0]["digest"].as_str()),
        (200, Some(packed.digest.as_str())),
        "{answer}"
    );
    p.send("GET", &format!("/api/v1/nodes/n3/skills/packages/{}", packed.digest), Some(&s3), None).await;
    p.send("GET", &format!("/api/v1/nodes/n3/skills/packages/sha256:{}", "0".repeat(64)), Some(&s3), None).await;
    p.send("GET", &format!("/api/v1/nodes/n3/skills/packages/{}", packed.digest), Some(admin), None).await;
    p.send("GET", "/api/v1/skills/pushes", Some(tasks), None).await;
    p.send("POST", "/api/v1/skills/pushes/pushed/rollback", Some(admin), None).await;
    p.send("POST", "/api/v1/skills/pushes/pushed/remove", Some(admin), Some(json!({"nodes": ["n3"]}))).await;
    p.send("POST", "/api/v1/skills/pushes/pushed/remove", Some(admin), None).await;
    p.send("POST", "/api/v1/skills/pushes/pushed/rollback", Some(admin), None).await;
    p.send("POST", "/api/v1/skills/pushes/nope/remove", Some(admin), None).await;
    p.send("POST", "/api/v1/skills/pushes/nope/rollback", Some(tasks), None).await;
    p.send("POST", "/api/v1/tasks/nope/cancel", Some(tasks), None).await;
    p.send("GET", "/api/v1/tasks", Some("not-a-token-at-all"), None).await;
    // Schedules: create, read, change, pause, resume, fire, runs, remove; and refusals.
    let schedule = json!({"name": "probe", "every": "1h", "task": {"name": "p", "required_skills": ["echo"]}});
    let (status, created) = p.send("POST", "/api/v1/schedules", Some(tasks), Some(schedule.clone())).await;
    assert_eq!(status, 201, "{created}");
    p.send("POST", "/api/v1/schedules", Some(tasks), Some(schedule.clone())).await;
    p.send("POST", "/api/v1/schedules", Some(tasks), Some(json!({"name": "x", "every": "1h"}))).await;
    p.send("GET", "/api/v1/schedules", Some(tasks), None).await;
    p.send("GET", "/api/v1/schedules/probe", Some(tasks), None).await;
    p.send("GET", "/api/v1/schedules/nope", Some(tasks), None).await;
    p.send("PATCH", "/api/v1/schedules/probe", Some(tasks), Some(json!({"every": "2h"}))).await;
    p.send("PATCH", "/api/v1/schedules/probe", Some(tasks), Some(json!({"every": "soon"}))).await;
    p.send("POST", "/api/v1/schedules/probe/pause", Some(tasks), None).await;
    p.send("POST", "/api/v1/schedules/probe/resume", Some(tasks), None).await;
    p.send("POST", "/api/v1/schedules/probe/run", Some(tasks), None).await;
    p.send("POST", "/api/v1/schedules/nope/run", Some(tasks), None).await;
    p.send("GET", "/api/v1/schedules/probe/runs?limit=10", Some(tasks), None).await;
    p.send("GET", "/api/v1/schedules/probe/runs?limit=0", Some(tasks), None).await;
    p.send("DELETE", "/api/v1/schedules/probe", Some(tasks), None).await;
    p.send("DELETE", "/api/v1/schedules/probe", Some(tasks), None).await;
    // The event stream, replayed from the start, and filtered.
    let sample = p.samples.len();
    p.send("GET", "/api/v1/events?after=0", Some(tasks), None).await;
    let text = p.samples[sample]["text"].as_str().unwrap_or("");
    assert!(text.contains("event: task") && text.contains("event: node"), "{text}");
    p.send("GET", &format!("/api/v1/events?task={done}&kind=task&after=0"), Some(admin), None).await;
    p.send("GET", "/api/v1/events?kind=sideways", Some(tasks), None).await;
    p.send_with("GET", "/api/v1/events", Some(tasks), None, &[("last-event-id", "yesterday")]).await;
    p.send("GET", "/api/v1/events", Some(join), None).await;
    // MCP: the handshake (JSON-RPC, answered with JSON) and a notification (202, no body).
    let mcp_headers = [("accept", "application/json, text/event-stream")];
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "probe", "version": "1"}}});
    let (status, answer) = p.send_with("POST", "/mcp", Some(tasks), Some(initialize.to_string()), &mcp_headers).await;
    assert_eq!((status, &answer["result"]["serverInfo"]["name"]), (200, &json!("openclaw-cluster")), "{answer}");
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string();
    p.send_with("POST", "/mcp", Some(tasks), Some(initialized), &mcp_headers).await;
    p.send_with("POST", "/mcp", None, Some(initialize.to_string()), &mcp_headers).await;

    // Every route of the table answered with success at least once.
    for e in openclaw::api::TABLE {
        let answered = p.samples.iter().any(|s| {
            s["template"] == e.path && s["method"] == e.method.as_str() && s["status"].as_u64().is_some_and(|s| s < 400)
        });
        assert!(answered, "no successful sample of {} {}: add one to this test", e.method, e.path);
    }
    let Some(python) = tool("venv/bin/python") else { return };
    let served =
        cluster.http.get(format!("{}/openapi.json", cluster.url())).send().await.unwrap().text().await.unwrap();
    let doc = cluster.path().join("openapi.json");
    std::fs::write(&doc, served).unwrap();
    let samples = cluster.path().join("samples.json");
    std::fs::write(&samples, serde_json::to_string_pretty(&p.samples).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/openapi_check.py");
    let out = run_tool(&python, &[script.to_str().unwrap(), doc.to_str().unwrap(), samples.to_str().unwrap()]);
    eprintln!("{out}");
}

/// The checker is not a rubber stamp: an undocumented field, an undocumented status and a
/// wrong type are each reported.
#[tokio::test]
async fn the_checker_finds_what_the_document_lacks() {
    let Some(python) = tool("venv/bin/python") else { return };
    let dir = tempfile::tempdir().unwrap();
    let doc = dir.path().join("openapi.json");
    std::fs::write(&doc, openclaw::openapi::text()).unwrap();
    let health = json!({"status": "healthy", "timestamp": "2026-01-01T00:00:00.000Z", "service": "s", "version": "1"});
    let mut extra = health.clone();
    extra["uptime"] = json!(5);
    let mut wrong = health.clone();
    wrong["timestamp"] = json!("yesterday");
    let sample = |status: u16, body: &Value| {
        json!({"method": "GET", "path": "/health", "template": "/health", "status": status,
            "headers": {"content-type": "application/json"}, "body": body})
    };
    let check = |samples: Value| {
        let file = dir.path().join("samples.json");
        std::fs::write(&file, samples.to_string()).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/openapi_check.py");
        std::process::Command::new(&python).args([script.as_path(), doc.as_path(), file.as_path()]).output().unwrap()
    };
    assert!(check(json!([sample(200, &health)])).status.success());
    for (bad, why) in
        [(sample(200, &extra), "uptime"), (sample(200, &wrong), "date-time"), (sample(418, &health), "418")]
    {
        let out = check(json!([bad]));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success() && text.contains(why), "the checker let {why} through:\n{text}");
    }
}
