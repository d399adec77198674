//! The node and cluster API, auth, liveness, bad input, metrics, and the `nodes` /
//! `health` CLI, against a real coordinator process.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Cluster, Settings, Skill, cli, show};

/// The Python original's worker sent exactly this (worker/heartbeat.py), and its other
/// registration path sent `tailscale_ip: null` and `port`.
const ORIGINAL_REGISTER: &str = r#"{"hostname": "mac-mini", "platform": "macos", "arch": "arm64", "available_skills": ["python", "search", " python "], "ip_address": "192.168.1.20", "max_concurrent_tasks": 5, "node_id": "mac-worker-001"}"#;
const ORIGINAL_REGISTER_2: &str = r#"{"hostname": "win", "platform": "windows", "arch": "x64", "available_skills": ["media"], "ip_address": "192.168.1.21", "tailscale_ip": null, "port": 18789, "max_concurrent_tasks": 3}"#;
const ORIGINAL_HEARTBEAT: &str =
    r#"{"cpu_usage": 12.5, "memory_usage": 40.25, "disk_usage": 71.0, "running_tasks": 0}"#;

#[tokio::test]
async fn the_originals_payloads_work_and_every_endpoint_answers() {
    let cluster = Cluster::start().await;
    let w = cluster.worker_token();
    let (status, reg) = cluster.call("POST", "/api/v1/nodes/register", Some(&w), Some(ORIGINAL_REGISTER)).await;
    assert_eq!(status, 200, "{reg}");
    assert_eq!(
        (reg["success"].as_bool(), reg["registered"].as_bool(), reg["node_id"].as_str()),
        (Some(true), Some(true), Some("mac-worker-001"))
    );
    assert_eq!(reg["node_info"]["available_skills"], json!(["python", "search"]), "trimmed and de-duplicated");
    let secret = reg["node_secret"].as_str().unwrap().to_string();
    let (status, reg2) = cluster.call("POST", "/api/v1/nodes/register", Some(&w), Some(ORIGINAL_REGISTER_2)).await;
    assert_eq!(status, 200, "{reg2}");
    assert_eq!(reg2["node_id"], "win", "without node_id, the id derives from the host name");

    let (status, hb) =
        cluster.call("POST", "/api/v1/nodes/mac-worker-001/heartbeat", Some(&secret), Some(ORIGINAL_HEARTBEAT)).await;
    assert_eq!(status, 200, "{hb}");
    assert_eq!(hb["success"], true);

    // The seed's `jq '.[] | .available_skills'` shape, and every original field.
    let nodes = cluster.get("/api/v1/nodes").await;
    let list = nodes.as_array().expect("a JSON array");
    assert_eq!(list.len(), 2);
    for field in [
        "node_id",
        "hostname",
        "platform",
        "arch",
        "status",
        "available_skills",
        "max_concurrent_tasks",
        "running_tasks",
        "ip_address",
        "tailscale_ip",
        "port",
        "cpu_usage",
        "memory_usage",
        "disk_usage",
        "total_tasks_processed",
        "successful_tasks",
        "failed_tasks",
        "average_execution_time",
        "registered_at",
        "last_heartbeat",
        "tags",
    ] {
        assert!(list.iter().all(|n| n.get(field).is_some()), "field {field} missing: {nodes}");
    }
    let mac = list.iter().find(|n| n["node_id"] == "mac-worker-001").unwrap();
    assert_eq!(
        (mac["cpu_usage"].as_f64(), mac["memory_usage"].as_f64(), mac["disk_usage"].as_f64()),
        (Some(12.5), Some(40.25), Some(71.0))
    );
    assert_eq!(mac["ip_address"], "192.168.1.20");

    assert_eq!(cluster.get("/api/v1/nodes/online").await.as_array().unwrap().len(), 2);
    let python = cluster.get("/api/v1/nodes/skills/python").await;
    assert_eq!(
        python.as_array().unwrap().iter().map(|n| n["node_id"].clone()).collect::<Vec<_>>(),
        vec![json!("mac-worker-001")]
    );
    assert_eq!(cluster.get("/api/v1/nodes/skills/pyth").await, json!([]), "skills match whole names");
    assert_eq!(cluster.get("/api/v1/nodes?status=online").await.as_array().unwrap().len(), 2);
    assert_eq!(cluster.get("/api/v1/nodes?status_filter=offline").await, json!([]));
    assert_eq!(cluster.get("/api/v1/nodes/win").await["platform"], "windows");

    let health = cluster.get("/api/v1/nodes/mac-worker-001/health").await;
    for field in [
        "healthy",
        "status",
        "last_heartbeat",
        "time_since_heartbeat",
        "is_timeout",
        "cpu_usage",
        "memory_usage",
        "disk_usage",
        "running_tasks",
        "max_concurrent_tasks",
        "available_capacity",
    ] {
        assert!(health.get(field).is_some(), "{field} missing: {health}");
    }
    assert_eq!((health["healthy"].as_bool(), health["available_capacity"].as_u64()), (Some(true), Some(5)));

    let ch = cluster.get("/api/v1/cluster/health").await;
    assert_eq!(
        (
            ch["total_nodes"].as_u64(),
            ch["online_nodes"].as_u64(),
            ch["total_capacity"].as_u64(),
            ch["available_capacity"].as_u64()
        ),
        (Some(2), Some(2), Some(8), Some(8))
    );
    for field in [
        "timestamp",
        "nodes_by_status",
        "offline_nodes",
        "busy_nodes",
        "used_capacity",
        "capacity_utilization",
        "tasks_by_status",
    ] {
        assert!(ch.get(field).is_some(), "{field} missing: {ch}");
    }
    assert_eq!(ch["tasks_by_status"]["pending"], 0);
    assert!(ch["timestamp"].as_str().unwrap().ends_with('Z'));

    let (status, check) = cluster.api("POST", "/api/v1/cluster/check-heartbeat", None).await;
    assert_eq!(
        (status, check["timeout_nodes_count"].as_u64(), check["all_nodes_healthy"].as_bool()),
        (200, Some(0), Some(true))
    );

    let (status, drained) = cluster.api("POST", "/api/v1/nodes/win/drain", None).await;
    assert_eq!(
        (status, drained["node_info"]["status"].as_str(), drained["node_info"]["draining"].as_bool()),
        (200, Some("maintenance"), Some(true))
    );
    assert_eq!(cluster.node("win").await["status"], "maintenance");
    assert_eq!(cluster.get("/api/v1/nodes?status=maintenance").await.as_array().unwrap().len(), 1);
    let (status, _) = cluster.api("POST", "/api/v1/nodes/win/undrain", None).await;
    assert_eq!(status, 200);
    assert_eq!(cluster.node("win").await["status"], "online");

    let (status, bye) = cluster.call("POST", "/api/v1/nodes/mac-worker-001/shutdown", Some(&secret), None).await;
    assert_eq!((status, bye["success"].as_bool()), (200, Some(true)), "{bye}");
    assert_eq!(cluster.node("mac-worker-001").await["status"], "offline");

    let (status, h) = cluster.call("GET", "/health", None, None).await;
    assert_eq!((status, h["status"].as_str()), (200, Some("healthy")));

    let r = cluster.http.get(format!("{}/metrics", cluster.url())).bearer_auth(cluster.admin()).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    for needle in [
        "openclaw_nodes{status=\"offline\"} 1",
        "openclaw_heartbeats_total 1",
        "openclaw_capacity_slots{kind=\"total\"} 3",
        "openclaw_http_requests_total{route=\"nodes_register\",status=\"200\"} 2",
        "openclaw_http_request_duration_seconds_bucket",
    ] {
        assert!(text.contains(needle), "metrics lack {needle}:\n{text}");
    }
}

#[tokio::test]
async fn register_again_keeps_counters_and_starts_a_new_incarnation() {
    let cluster = Cluster::start().await;
    let old = cluster.register("n1", &["a"], 2).await;
    let body = json!({"node_id": "n1", "hostname": "n1b", "platform": "linux", "arch": "arm64", "available_skills": ["b"], "max_concurrent_tasks": 7, "tags": ["gpu"]});
    let (status, answer) =
        cluster.call("POST", "/api/v1/nodes/register", Some(&cluster.worker_token()), Some(&body.to_string())).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (409, Some("node_id_in_use")),
        "the join token cannot take a live node"
    );
    let (status, again) = cluster.call("POST", "/api/v1/nodes/register", Some(&old), Some(&body.to_string())).await;
    assert_eq!(status, 200, "its own secret registers it again: {again}");
    assert_eq!((again["registered"].as_bool(), again["incarnation"].as_u64()), (Some(false), Some(2)));
    let node = cluster.node("n1").await;
    assert_eq!((node["hostname"].as_str(), node["max_concurrent_tasks"].as_u64()), (Some("n1b"), Some(7)));
    assert_eq!((node["available_skills"].clone(), node["tags"].clone()), (json!(["b"]), json!(["gpu"])));
    let (status, _) = cluster.call("POST", "/api/v1/nodes/n1/heartbeat", Some(&old), Some("{}")).await;
    assert_eq!(status, 401, "the previous incarnation's secret is void");
}

#[tokio::test]
async fn a_node_goes_offline_at_its_deadline_and_a_heartbeat_brings_it_back() {
    let settings = Settings { heartbeat_timeout: 2.0, heartbeat_interval: 0.5, ..Settings::default() };
    let cluster = Cluster::start_with(settings).await;
    let secret = cluster.register("n1", &["a"], 1).await;
    let (status, _) = cluster.call("POST", "/api/v1/nodes/n1/heartbeat", Some(&secret), Some(ORIGINAL_HEARTBEAT)).await;
    let last = Instant::now();
    assert_eq!(status, 200);
    cluster.wait_node("n1", "offline", Duration::from_secs(10), |n| n["status"] == "offline").await;
    // Never before its deadline (how soon after it is the timers' job, tested in the state
    // machine's unit tests with simulated time).
    let after = last.elapsed();
    assert!(after >= Duration::from_millis(1900), "offline too early: {after:?}");
    let log = cluster.coordinator.as_ref().unwrap().out();
    assert!(
        log.lines().any(|l| l.contains("\"module\":\"coordinator\"")
            && l.contains("node is offline")
            && l.contains("\"level\":\"INFO\"")),
        "{log}"
    );
    // A heartbeat brings it back.
    let (status, _) = cluster.call("POST", "/api/v1/nodes/n1/heartbeat", Some(&secret), Some("{}")).await;
    assert_eq!(status, 200);
    assert_eq!(cluster.node("n1").await["status"], "online");
}

#[tokio::test]
async fn after_a_restart_known_nodes_are_offline_until_they_heartbeat() {
    let mut cluster = Cluster::start().await;
    let secret = cluster.register("n1", &["a"], 1).await;
    cluster.kill_coordinator();
    cluster.start_coordinator().await;
    let node = cluster.node("n1").await;
    assert_eq!(node["status"], "offline", "{node}");
    assert_eq!(node["available_skills"], json!(["a"]));
    let (status, _) = cluster.call("POST", "/api/v1/nodes/n1/heartbeat", Some(&secret), Some("{}")).await;
    assert_eq!(status, 200, "the node secret survives the restart");
    assert_eq!(cluster.node("n1").await["status"], "online");
    let (status, body) = cluster.call("POST", "/api/v1/nodes/ghost/heartbeat", Some(&secret), Some("{}")).await;
    assert_eq!(status, 403, "{body}");
}

#[tokio::test]
async fn a_heartbeat_for_an_unknown_node_says_register_again() {
    // With auth on, no secret exists for an unknown node: 401.
    let cluster = Cluster::start().await;
    let (status, _) = cluster.call("POST", "/api/v1/nodes/ghost/heartbeat", Some("made-up"), Some("{}")).await;
    assert_eq!(status, 401);
    // Only with auth off does the request reach the registry.
    let mut open = Cluster::new(Settings::default());
    open.append_config("auth:\n  enabled: false\n");
    open.start_coordinator().await;
    let (status, body) = open.call("POST", "/api/v1/nodes/ghost/heartbeat", None, Some("{}")).await;
    assert_eq!(status, 404, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("register again"), "{body}");
}

/// Every route with a body that is valid for it (`task` is a pending task's id; node
/// `gone` is offline with no tasks).
fn routes(task: &str) -> Vec<(&'static str, String, Option<String>, &'static str)> {
    vec![
        ("GET", format!("/api/v1/tasks/{task}"), None, "read"),
        ("GET", format!("/api/v1/tasks/{task}/wait?timeout=0"), None, "read"),
        ("POST", format!("/api/v1/tasks/{task}/cancel"), None, "submit"),
        ("DELETE", "/api/v1/nodes/gone".into(), None, "admin"),
        ("GET", "/metrics".into(), None, "admin"),
        ("GET", "/api/v1/nodes".into(), None, "read"),
        ("GET", "/api/v1/whoami".into(), None, "read"),
        ("GET", "/api/v1/nodes/online".into(), None, "read"),
        ("GET", "/api/v1/nodes/skills/a".into(), None, "read"),
        ("GET", "/api/v1/nodes/a1".into(), None, "read"),
        ("GET", "/api/v1/nodes/a1/health".into(), None, "read"),
        ("POST", "/api/v1/nodes/a1/drain".into(), None, "admin"),
        ("POST", "/api/v1/nodes/a1/undrain".into(), None, "admin"),
        ("GET", "/api/v1/cluster/health".into(), None, "read"),
        ("POST", "/api/v1/cluster/check-heartbeat".into(), None, "admin"),
        ("POST", "/api/v1/tasks".into(), Some(r#"{"name":"t","required_skills":["zzz"]}"#.into()), "submit"),
        ("GET", "/api/v1/tasks".into(), None, "read"),
        (
            "POST",
            "/api/v1/nodes/register".into(),
            Some(r#"{"node_id":"reg","hostname":"h","platform":"linux","arch":"x64"}"#.into()),
            "join",
        ),
        ("POST", "/api/v1/nodes/a1/heartbeat".into(), Some("{}".into()), "node"),
        ("POST", "/api/v1/nodes/a1/tasks/poll".into(), Some(r#"{"wait_secs":0}"#.into()), "node"),
        ("POST", "/api/v1/nodes/a1/tasks/t/start".into(), Some(r#"{"attempt":1}"#.into()), "node"),
        (
            "POST",
            "/api/v1/nodes/a1/tasks/t/result".into(),
            Some(r#"{"attempt":1,"outcome":"completed"}"#.into()),
            "node",
        ),
        (
            "POST",
            "/api/v1/nodes/a1/tasks/t/output".into(),
            Some(r#"{"attempt":1,"lines":[{"stream":"stdout","text":"x","at":"2026-01-01T00:00:00Z"}]}"#.into()),
            "node",
        ),
        ("GET", format!("/api/v1/tasks/{task}/output"), None, "read"),
        // Streams: HEAD answers the headers (and the access check) without the stream.
        ("HEAD", "/api/v1/events?kind=task".into(), None, "read"),
        ("HEAD", format!("/api/v1/tasks/{task}/output?follow=true"), None, "read"),
        ("POST", "/api/v1/nodes/a1/shutdown".into(), None, "node"),
    ]
}

#[tokio::test]
async fn the_auth_matrix_on_every_route() {
    let cluster = Cluster::start().await;
    let a1 = cluster.register("a1", &["a"], 1).await;
    let b1 = cluster.register("b1", &["a"], 1).await;
    let gone = cluster.register("gone", &["a"], 1).await;
    cluster.call("POST", "/api/v1/nodes/gone/shutdown", Some(&gone), None).await;
    let task = cluster.submit(json!({"name": "t", "required_skills": ["nobody"]})).await;
    let admin = cluster.admin();
    let join = cluster.worker_token();
    let tasks = std::fs::read_to_string(cluster.path().join("data/tasks.token")).unwrap().trim().to_string();
    let (status, _) = cluster.call("GET", "/health", None, None).await;
    assert_eq!(status, 200, "/health is open");
    for (method, path, body, who) in routes(&task) {
        let body = body.as_deref();
        let r = cluster.http.request(method.parse().unwrap(), format!("{}{path}", cluster.url())).send().await.unwrap();
        assert_eq!(r.status(), 401, "{method} {path} without a token");
        assert_eq!(r.headers().get("www-authenticate").map(|v| v.to_str().unwrap()), Some("Bearer"), "{method} {path}");
        let r = cluster
            .http
            .request(method.parse().unwrap(), format!("{}{path}", cluster.url()))
            .header("authorization", "Basic eDp5")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{method} {path} with a malformed header");
        // A cancel that went through once is `task_ended` the next time: still allowed.
        let ok = |s: u16| {
            (200..300).contains(&s)
                || (s == 404 && path.contains("/tasks/t/"))
                || (s == 409 && path.ends_with("/cancel"))
        };
        let (wrong, _) = cluster.call(method, &path, Some("not-a-token-at-all"), body).await;
        assert_eq!(wrong, 401, "{method} {path} with a wrong token");
        let (with_join, _) = cluster.call(method, &path, Some(&join), body).await;
        let (with_tasks, _) = cluster.call(method, &path, Some(&tasks), body).await;
        let (with_admin, _) = cluster.call(method, &path, Some(&admin), body).await;
        let (with_other, _) = cluster.call(method, &path, Some(&b1), body).await;
        match who {
            "admin" => {
                assert_eq!((with_join, with_tasks), (403, 403), "{method} {path}: worker token, tasks token");
                assert!(ok(with_admin), "{method} {path}: admin got {with_admin}");
                assert_eq!(with_other, 403, "{method} {path}: a node secret");
            }
            "read" | "submit" => {
                assert_eq!(with_join, 403, "{method} {path}: worker token");
                assert!(ok(with_tasks) && ok(with_admin), "{method} {path}: tasks {with_tasks}, admin {with_admin}");
                assert_eq!(with_other, 403, "{method} {path}: a node secret");
            }
            "join" => {
                assert!(ok(with_join) && ok(with_admin), "{method} {path}: {with_join} {with_admin}");
                assert_eq!((with_tasks, with_other), (403, 403), "{method} {path}: tasks token, a node secret");
            }
            _ => {
                assert_eq!(
                    (with_join, with_tasks, with_admin, with_other),
                    (403, 403, 403, 403),
                    "{method} {path}: join, tasks, admin, another node's secret"
                );
                let (own, answer) = cluster.call(method, &path, Some(&a1), body).await;
                assert!(ok(own), "{method} {path}: own secret got {own}: {answer}");
            }
        }
    }
}

#[tokio::test]
async fn bad_input_gets_4xx_and_changes_nothing() {
    let cluster =
        Cluster::start_with(Settings { extra_coordinator: "  max_body_bytes: 4096\n".into(), ..Settings::default() })
            .await;
    let join = cluster.worker_token();
    let secret = cluster.register("n1", &["a"], 2).await;
    let before = cluster.get("/api/v1/nodes").await;
    let huge = format!(
        r#"{{"hostname":"h","platform":"linux","arch":"x64","node_id":"big","available_skills":["{}"]}}"#,
        "x".repeat(5000)
    );
    let cases: Vec<(&str, &str, String, u16, &str)> = vec![
        ("POST", "/api/v1/nodes/register", "{not json".into(), 400, "invalid request body"),
        ("POST", "/api/v1/nodes/register", "".into(), 400, "empty"),
        ("POST", "/api/v1/nodes/register", r#"[1,2]"#.into(), 400, "invalid request body"),
        (
            "POST",
            "/api/v1/nodes/register",
            r#"{"hostname":"h","platform":"linux","arch":"x64","max_concurrent_tasks":"five"}"#.into(),
            400,
            "max_concurrent_tasks",
        ),
        (
            "POST",
            "/api/v1/nodes/register",
            r#"{"hostname":"h","platform":"linux","arch":"x64","max_concurrent_tasks":0}"#.into(),
            400,
            "max_concurrent_tasks",
        ),
        (
            "POST",
            "/api/v1/nodes/register",
            r#"{"hostname":"h","platform":"linux","arch":"x64","max_concurrent_tasks":1001}"#.into(),
            400,
            "max_concurrent_tasks",
        ),
        (
            "POST",
            "/api/v1/nodes/register",
            r#"{"hostname":"h","platform":"linux","arch":"x64","node_id":"a/b"}"#.into(),
            400,
            "node_id",
        ),
        (
            "POST",
            "/api/v1/nodes/register",
            format!(r#"{{"hostname":"h","platform":"linux","arch":"x64","node_id":"{}"}}"#, "a".repeat(129)),
            400,
            "node_id",
        ),
        (
            "POST",
            "/api/v1/nodes/register",
            r#"{"hostname":"h","platform":"linux","arch":"x64","node_id":"online"}"#.into(),
            400,
            "reserved",
        ),
        (
            "POST",
            "/api/v1/nodes/register",
            r#"{"hostname":"h","platform":"linux","arch":"x64","node_id":"n\u0000x"}"#.into(),
            400,
            "node_id",
        ),
        (
            "POST",
            "/api/v1/nodes/register",
            r#"{"hostname":"h\u001b[2J","platform":"linux","arch":"x64","node_id":"n9"}"#.into(),
            400,
            "hostname",
        ),
        (
            "POST",
            "/api/v1/nodes/register",
            r#"{"hostname":"h","platform":"linux","arch":"x64","node_id":"n9","tags":["gpu\u0007"]}"#.into(),
            400,
            "tags",
        ),
        (
            "POST",
            "/api/v1/nodes/register",
            r#"{"hostname":"  ","platform":"linux","arch":"x64"}"#.into(),
            400,
            "hostname",
        ),
        ("POST", "/api/v1/nodes/register", r#"{"platform":"linux","arch":"x64"}"#.into(), 400, "hostname"),
        (
            "POST",
            "/api/v1/nodes/register",
            r#"{"hostname":"h","platform":"linux","arch":"x64","available_skills":"python"}"#.into(),
            400,
            "available_skills",
        ),
        (
            "POST",
            "/api/v1/nodes/register",
            r#"{"hostname":"h","platform":"linux","arch":"x64","available_skills":["ok", 3]}"#.into(),
            400,
            "available_skills[1]",
        ),
        (
            "POST",
            "/api/v1/nodes/register",
            r#"{"hostname":"h","platform":"linux","arch":"x64","available_skills":["ok", ""]}"#.into(),
            400,
            "available_skills[1]",
        ),
        (
            "POST",
            "/api/v1/nodes/register",
            r#"{"hostname":"h","platform":"linux","arch":"x64","surprise":1}"#.into(),
            400,
            "surprise",
        ),
        ("POST", "/api/v1/nodes/register", huge, 413, "max_body_bytes"),
    ];
    for (method, path, body, want, needle) in &cases {
        let (status, answer) = cluster.call(method, path, Some(&join), Some(body)).await;
        assert_eq!(status, *want, "{path} with {}: {answer}", &body[..body.len().min(120)]);
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{path}: message {message:?} lacks {needle:?}");
        assert!(answer["error"]["code"].is_string());
    }
    for (body, needle) in [
        (r#"{"cpu_usage": 101}"#, "cpu_usage"),
        (r#"{"memory_usage": -1}"#, "memory_usage"),
        (r#"{"disk_usage": "full"}"#, "disk_usage"),
        (r#"{"held_tasks": [{"task_id": 1}]}"#, "held_tasks[0]"),
    ] {
        let (status, answer) = cluster.call("POST", "/api/v1/nodes/n1/heartbeat", Some(&secret), Some(body)).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(answer["error"]["message"].as_str().unwrap().contains(needle), "{answer}");
    }
    let (status, answer) = cluster.api("GET", "/api/v1/nodes?status=sleepy", None).await;
    assert_eq!(status, 400, "{answer}");
    let (status, _) = cluster.api("GET", "/api/v1/nodes/nobody", None).await;
    assert_eq!(status, 404);
    let (status, _) = cluster.api("POST", "/api/v1/nodes/nobody/drain", None).await;
    assert_eq!(status, 404);
    let (status, _) = cluster.api("GET", "/api/v2/nothing", None).await;
    assert_eq!(status, 404);
    let r = cluster
        .http
        .delete(format!("{}/api/v1/nodes", cluster.url()))
        .bearer_auth(cluster.admin())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers().get("allow").unwrap(), "GET, HEAD");

    assert_eq!(cluster.get("/api/v1/nodes").await, before, "bad input changed the registry");
    // A declared length over the limit is refused before the body is read: send none.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", cluster.port)).await.unwrap();
        let head = format!(
            "POST /api/v1/nodes/register HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {join}\r\ncontent-length: 2000000000\r\n\r\n"
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let mut answer = vec![0u8; 512];
        let n = s.read(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer[..n]);
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    }
    // A chunked body (no declared length) is cut at the limit too.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", cluster.port)).await.unwrap();
        let mut req = format!(
            "POST /api/v1/nodes/register HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {join}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
        );
        for _ in 0..5 {
            req.push_str(&format!("3e8\r\n{}\r\n", " ".repeat(1000)));
        }
        req.push_str("0\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut answer = vec![0u8; 512];
        let n = s.read(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer[..n]);
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    }
    let rows = cluster.sql_int("SELECT count(*) FROM nodes");
    assert_eq!(rows, 1, "bad input changed the store");
    let (status, _) = cluster.call("GET", "/health", None, None).await;
    assert_eq!(status, 200, "still serving");
}

#[tokio::test]
async fn forwarded_addresses_are_believed_only_from_trusted_proxies() {
    let plain = Cluster::start().await;
    let trusting = Cluster::start_with(Settings {
        extra_coordinator: "  trusted_proxies: [127.0.0.1]\n".into(),
        ..Settings::default()
    })
    .await;
    for (cluster, want) in [(&plain, "127.0.0.1"), (&trusting, "10.9.8.7")] {
        let r = cluster
            .http
            .post(format!("{}/api/v1/nodes/register", cluster.url()))
            .bearer_auth(cluster.worker_token())
            .header("x-forwarded-for", "10.9.8.7, 127.0.0.1")
            .header("content-type", "application/json")
            .body(r#"{"node_id":"n","hostname":"h","platform":"linux","arch":"x64"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(cluster.node("n").await["ip_address"], want);
    }
}

#[tokio::test]
async fn nodes_and_health_cli_against_a_live_coordinator() {
    let cluster = Cluster::start().await;
    // No node yet: unhealthy, exit 1.
    let o = cluster.cli(&["health"]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("unhealthy"), "{}", show(&o));

    let secret = cluster.register("mac-worker-001", &["python", "ocr"], 5).await;
    cluster.call("POST", "/api/v1/nodes/mac-worker-001/heartbeat", Some(&secret), Some(ORIGINAL_HEARTBEAT)).await;
    let o = cluster.cli(&["health"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let o = cluster.cli(&["nodes"]);
    assert!(o.status.success(), "{}", show(&o));
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let header = text.lines().next().unwrap();
    assert!(header.starts_with("NODE") && header.contains("STATUS") && header.contains("LAST SEEN"), "{text}");
    let row = text.lines().find(|l| l.starts_with("mac-worker-001")).unwrap_or_else(|| panic!("{text}"));
    assert!(
        row.contains("online") && row.contains("0/5") && row.contains("ago") && row.contains("python,ocr"),
        "{row}"
    );
    // Columns line up: STATUS starts at the same offset in the header and the row.
    assert_eq!(header.find("STATUS"), row.find("online"), "{text}");

    let o = cluster.cli(&["nodes", "--json"]);
    let api = cluster.get("/api/v1/nodes").await;
    let printed: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(printed.as_array().unwrap().len(), api.as_array().unwrap().len());
    assert_eq!(printed[0]["available_skills"], json!(["python", "ocr"]));

    let o = cluster.cli(&["nodes", "--skill", "ocr", "--json"]);
    assert_eq!(serde_json::from_slice::<Value>(&o.stdout).unwrap().as_array().unwrap().len(), 1);
    let o = cluster.cli(&["nodes", "mac-worker-001"]);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("cpu 12%"), "{}", show(&o));
    let o = cluster.cli(&["nodes", "nobody"]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("404"), "{}", show(&o));
    let o = cluster.cli(&["health", "--node", "mac-worker-001", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(serde_json::from_slice::<Value>(&o.stdout).unwrap()["healthy"], true);

    let o = cluster.cli(&["nodes", "drain", "mac-worker-001"]);
    assert!(o.status.success(), "{}", show(&o));
    assert_eq!(cluster.node("mac-worker-001").await["status"], "maintenance");
    let o = cluster.cli(&["nodes", "--status", "maintenance"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("mac-worker-001"), "{}", show(&o));
    assert!(cluster.cli(&["nodes", "undrain", "mac-worker-001"]).status.success());

    // A wrong token: exit 1 with the status and a hint.
    let o = cluster.cli(&["nodes", "--token", "wrong-token-value"]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("401"), "{}", show(&o));
}

/// Issue 17, item 13: `health --node` on an offline node showed its last load as if it
/// were current.
#[tokio::test]
async fn health_of_an_offline_node_shows_no_load_as_current() {
    let cluster = Cluster::start().await;
    let secret = cluster.register("w1", &["echo"], 2).await;
    let (status, _) = cluster
        .call("POST", "/api/v1/nodes/w1/heartbeat", Some(&secret), Some(r#"{"cpu_usage": 77, "memory_usage": 55}"#))
        .await;
    assert_eq!(status, 200);
    let o = cluster.cli(&["health", "--node", "w1"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("cpu 77%"), "online: its load now: {}", show(&o));
    let (status, _) = cluster.call("POST", "/api/v1/nodes/w1/shutdown", Some(&secret), Some("{}")).await;
    assert_eq!(status, 200);
    let o = cluster.cli(&["health", "--node", "w1"]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("(offline)") && out.contains("last seen") && out.contains("unknown"), "{out}");
    assert!(!out.contains("77%") && !out.contains("slots free"), "no load shown as current: {out}");
}

#[test]
fn an_unreachable_coordinator_is_exit_1_naming_the_address_and_the_checks() {
    let dir = tempfile::tempdir().unwrap();
    let nobody = crate::support::DeadPort::new();
    let url = format!("http://127.0.0.1:{}", nobody.port());
    for args in [vec!["nodes", "--url", url.as_str()], vec!["health", "--url", url.as_str()]] {
        let o = cli(&args, &[("OPENCLAW_TOKEN", "x")], dir.path());
        assert_eq!(o.status.code(), Some(1), "{}", show(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(&url) && err.contains("running") && err.contains("firewall"), "{err}");
    }
}

#[cfg(unix)]
#[tokio::test]
async fn tls_end_to_end_with_a_private_ca() {
    let cluster = Cluster::start_with(Settings { tls: true, ..Settings::default() }).await;
    assert!(cluster.url().starts_with("https://"));
    // Plain HTTP to a TLS port gets no answer.
    let plain = crate::support::http_client().get(format!("http://127.0.0.1:{}/health", cluster.port)).send().await;
    assert!(plain.map(|r| !r.status().is_success()).unwrap_or(true), "plain HTTP was served");
    // A client without the CA refuses the certificate.
    let untrusting = crate::support::http_client().get(format!("{}/health", cluster.url())).send().await;
    assert!(untrusting.is_err(), "the private CA's certificate was trusted without worker.ca_file");
    // A worker and the CLI that trust the CA (worker.ca_file) work over HTTPS.
    let worker = cluster.exec_worker("w1", &[Skill::exec("echo", "cat\n")], &[]).await;
    let o = cluster.cli(&["nodes", "--json"]);
    assert!(o.status.success(), "{}", show(&o));
    let task = cluster.submit(json!({"name": "t", "required_skills": ["echo"], "parameters": {"over": "tls"}})).await;
    assert_eq!(cluster.wait_task(&task, 20).await["status"], "completed");
    drop(worker);
    let log = cluster.coordinator.as_ref().unwrap().out();
    assert!(log.contains("coordinator ready on https://"), "{log}");
    // Regression (operator review): a TLS trust failure was reported as "cannot reach".
    let o = crate::support::cli(&["nodes", "--url", &cluster.url(), "--token", &cluster.admin()], &[], cluster.path());
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("not trusted") && err.contains("worker.ca_file") && !err.contains("cannot reach"), "{err}");
}

/// Regression (operator review): `cd /tmp; openclaw nodes` failed with a 401 and a hint
/// about `./data/admin.token`; errors named neither the URL nor where the token came from,
/// and showed percent-encoded ids.
#[tokio::test]
async fn the_cli_finds_the_token_from_anywhere_and_its_errors_say_where_things_came_from() {
    let cluster = Cluster::start().await;
    let elsewhere = tempfile::tempdir().unwrap();
    let url = cluster.url();
    let db = cluster.db().display().to_string();
    // From another folder, --db-path finds admin.token beside the database.
    let o = crate::support::cli(&["nodes", "--url", &url, "--db-path", &db], &[], elsewhere.path());
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    // Without it there is no token: the error names the URL and every place looked at.
    let o = crate::support::cli(&["nodes", "--url", &url], &[], elsewhere.path());
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&url) && err.contains("no token") && err.contains("admin.token"), "{err}");
    // A wrong token says where it came from.
    let o =
        crate::support::cli(&["nodes", "--url", &url], &[("OPENCLAW_TOKEN", "wrong-wrong-wrong")], elsewhere.path());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("401") && err.contains("the token came from OPENCLAW_TOKEN"), "{err}");
    // Ids are shown as typed, not percent-encoded.
    let o = cluster.cli(&["tasks", "get", "task_missing"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("/api/v1/tasks/task_missing") && !err.contains("%5F"), "{err}");
}

/// Issue 23, item 3: `GET /api/v1/nodes?limit=N` answers pages in node id order, a full
/// page that is not the last links the next one (`Link: <…>; rel="next"`), `status`
/// carries over, bad page parameters are 400 naming them; the CLI pages the same way.
#[tokio::test]
async fn node_lists_come_in_pages_through_the_api_and_the_cli() {
    let cluster = Cluster::start().await;
    for id in ["n5", "n1", "n4", "n2", "n3"] {
        cluster.register(id, &["echo"], 1).await;
    }
    cluster.cli(&["nodes", "drain", "n2"]);
    let http = crate::support::http_client();
    let page = |path: String| {
        let req = http.get(format!("{}{path}", cluster.url())).bearer_auth(cluster.admin());
        async move {
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 200);
            let next = r.headers().get("link").map(|l| l.to_str().unwrap().to_string());
            let ids: Vec<String> =
                r.json::<Vec<Value>>().await.unwrap().iter().map(|n| n["node_id"].to_string()).collect();
            (ids.join(",").replace('"', ""), next)
        }
    };
    let (ids, next) = page("/api/v1/nodes?limit=2".into()).await;
    assert_eq!(ids, "n1,n2");
    let next = next.expect("a Link to the next page");
    assert_eq!(next, r#"</api/v1/nodes?limit=2&after=n2>; rel="next""#);
    let (ids, next) = page(next[1..next.find('>').unwrap()].to_string()).await;
    assert_eq!((ids.as_str(), next.as_deref()), ("n3,n4", Some(r#"</api/v1/nodes?limit=2&after=n4>; rel="next""#)));
    let (ids, last) = page("/api/v1/nodes?limit=2&after=n4".into()).await;
    assert_eq!((ids.as_str(), last), ("n5", None));
    // Exactly full and last: no link.
    assert_eq!(page("/api/v1/nodes?limit=5".into()).await.1, None);
    // Without a limit: every node, as the original's clients expect.
    assert_eq!(page("/api/v1/nodes".into()).await, ("n1,n2,n3,n4,n5".into(), None));
    let (ids, next) = page("/api/v1/nodes?status=online&limit=2".into()).await;
    assert_eq!(ids, "n1,n3");
    assert!(next.unwrap().contains("status=online&limit=2&after=n3"));
    for (query, named) in
        [("limit=0", "limit"), ("limit=10001", "limit"), ("after=a%20b", "after"), ("limit=x", "limit")]
    {
        let (status, body) = cluster.api("GET", &format!("/api/v1/nodes?{query}"), None).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains(named), "{query}: {body}");
    }

    let o = cluster.cli(&["nodes", "--limit", "2"]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success() && text.contains("n1") && text.contains("n2") && !text.contains("n3"), "{}", show(&o));
    assert!(text.contains("next page: openclaw nodes --limit 2 --after-node n2"), "{text}");
    let o = cluster.cli(&["nodes", "--limit", "2", "--after-node", "n4", "--json"]);
    let printed: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(printed.as_array().unwrap().len(), 1, "{}", show(&o));
    let o = cluster.cli(&["nodes", "--limit", "0"]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("limit: must be from 1 to 10000"), "{}", show(&o));
}
