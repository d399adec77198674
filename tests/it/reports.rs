//! Batched reports (`POST /api/v1/nodes/{node}/tasks/reports`, issue 23): many start
//! reports and results in one request and one commit, each answered on its own and fenced
//! as on the per-task endpoints; the real worker sends its reports that way, and workers
//! of the per-task protocol keep working beside it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};

use crate::support::{Cluster, Skill};

/// Polls node `id` at once (no wait) and returns the assignments' (task id, attempt).
async fn poll(cluster: &Cluster, id: &str, secret: &str) -> Vec<(String, u64)> {
    let path = format!("/api/v1/nodes/{id}/tasks/poll");
    let (status, poll) = cluster.call("POST", &path, Some(secret), Some(r#"{"wait_secs": 0}"#)).await;
    assert_eq!(status, 200, "{poll}");
    poll["assignments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["task_id"].as_str().unwrap().to_string(), a["attempt"].as_u64().unwrap()))
        .collect()
}

/// Sends a batch as node `id`.
async fn reports(cluster: &Cluster, id: &str, secret: &str, body: &Value) -> (u16, Value) {
    let path = format!("/api/v1/nodes/{id}/tasks/reports");
    cluster.call("POST", &path, Some(secret), Some(&body.to_string())).await
}

fn completed(task: &str, attempt: u64, v: u64) -> Value {
    json!({"task_id": task, "report": {"attempt": attempt, "outcome": "completed", "result": {"v": v}, "duration_ms": 1}})
}

#[tokio::test]
async fn a_batch_refuses_its_stale_reports_and_commits_the_others() {
    let cluster = Cluster::start().await;
    let a = cluster.register("a", &["x"], 4).await;
    let ids = [
        cluster.submit(json!({"name": "t1", "required_skills": ["x"]})).await,
        cluster.submit(json!({"name": "t2", "required_skills": ["x"]})).await,
        cluster.submit(json!({"name": "t3", "required_skills": ["x"]})).await,
    ];
    assert_eq!(poll(&cluster, "a", &a).await.len(), 3);
    let starts = json!({"starts": [
        {"task_id": ids[0], "attempt": 1},
        {"task_id": ids[1], "attempt": 2},
        {"task_id": "task_nope", "attempt": 1},
        {"task_id": ids[2], "attempt": 1},
    ]});
    let (status, answer) = reports(&cluster, "a", &a, &starts).await;
    assert_eq!(status, 200, "{answer}");
    let s = &answer["starts"];
    assert_eq!((s[0]["success"].clone(), s[0]["status"].clone()), (json!(true), json!("running")), "{answer}");
    assert_eq!(s[1]["error"]["code"], "stale_attempt", "{answer}");
    assert_eq!(s[2]["error"]["code"], "unknown_task", "{answer}");
    assert_eq!(s[3]["status"], "running", "{answer}");
    assert!(answer.get("poll").is_none(), "no held list, no poll: {answer}");
    let state = |i: usize| {
        let (cluster, path) = (&cluster, format!("/api/v1/tasks/{}", ids[i]));
        async move { cluster.get(&path).await }
    };
    assert_eq!(state(1).await["status"], "scheduled", "the stale start changed nothing");

    // Results: one from another node's attempt number, the others fresh; with a held list,
    // the answer hands out what was placed meanwhile.
    let t4 = cluster.submit(json!({"name": "t4", "required_skills": ["x"]})).await;
    let results = json!({
        "results": [completed(&ids[0], 1, 0), completed(&ids[1], 7, 1), completed(&ids[2], 1, 2)],
        "held": [{"task_id": ids[1], "attempt": 1}],
    });
    let (status, answer) = reports(&cluster, "a", &a, &results).await;
    assert_eq!(status, 200, "{answer}");
    let r = &answer["results"];
    assert_eq!((r[0]["status"].as_str(), r[2]["status"].as_str()), (Some("completed"), Some("completed")), "{answer}");
    assert_eq!(r[1]["error"]["code"], "stale_attempt", "{answer}");
    let handed: Vec<&str> =
        answer["poll"]["assignments"].as_array().unwrap().iter().map(|a| a["task_id"].as_str().unwrap()).collect();
    assert_eq!(handed, [t4.as_str()], "{answer}");
    assert_eq!(state(0).await["result"], json!({"v": 0}));
    assert_eq!(state(2).await["result"], json!({"v": 2}));
    assert_eq!(state(1).await["status"], "scheduled");

    // A repeat of a recorded result is harmless, as on the per-task endpoint.
    let (status, answer) = reports(&cluster, "a", &a, &json!({"results": [completed(&ids[0], 1, 0)]})).await;
    assert_eq!((status, answer["results"][0]["status"].as_str()), (200, Some("completed")), "{answer}");
    // Fencing by node: another node's batch about a's attempt is refused.
    let b = cluster.register("b", &["x"], 1).await;
    let (status, answer) = reports(&cluster, "b", &b, &json!({"starts": [{"task_id": ids[1], "attempt": 1}]})).await;
    assert_eq!((status, answer["starts"][0]["error"]["code"].as_str()), (200, Some("stale_attempt")), "{answer}");
    // And only the node itself may send its batch.
    let (status, _) = reports(&cluster, "a", &b, &json!({})).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn a_malformed_or_oversized_batch_is_a_400_naming_it_and_changes_nothing() {
    let cluster = Cluster::start().await;
    let a = cluster.register("a", &["x"], 1).await;
    let id = cluster.submit(json!({"name": "t", "required_skills": ["x"]})).await;
    assert_eq!(poll(&cluster, "a", &a).await.len(), 1);
    let start = json!({"task_id": id, "attempt": 1});
    let too_many: Vec<Value> = (0..1025).map(|_| start.clone()).collect();
    let (status, body) = reports(&cluster, "a", &a, &json!({"starts": too_many})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("bad_request")), "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("starts: at most 1024") && message.contains("1025"), "{message}");
    for (bad, names) in [
        (json!({"starts": [start], "results": [{"task_id": id}]}), "report"),
        (json!({"starts": [start], "results": [{"task_id": id, "report": {"attempt": 1, "outcome": "won"}}]}), "won"),
        (json!({"starts": [start], "finished": []}), "finished"),
        (json!({"starts": start}), "starts"),
    ] {
        let (status, body) = reports(&cluster, "a", &a, &bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains(names), "{bad}: {body}");
    }
    let task = cluster.get(&format!("/api/v1/tasks/{id}")).await;
    assert_eq!(task["status"], "scheduled", "no refused batch started it: {task}");
}

#[cfg(unix)]
#[tokio::test]
async fn a_batch_answered_200_is_on_disk_after_a_kill_9() {
    let mut cluster = Cluster::start().await;
    let a = cluster.register("a", &["x"], 8).await;
    let mut ids = Vec::new();
    for i in 0..8 {
        ids.push(cluster.submit(json!({"name": format!("t{i}"), "required_skills": ["x"]})).await);
    }
    assert_eq!(poll(&cluster, "a", &a).await.len(), 8);
    // A start and the result of the same attempt may share a batch: the starts go first.
    let starts: Vec<Value> = ids.iter().map(|id| json!({"task_id": id, "attempt": 1})).collect();
    let results: Vec<Value> = ids.iter().enumerate().map(|(i, id)| completed(id, 1, i as u64)).collect();
    let (status, answer) = reports(&cluster, "a", &a, &json!({"starts": starts, "results": results})).await;
    assert_eq!(status, 200, "{answer}");
    cluster.kill_coordinator();
    cluster.start_coordinator().await;
    for (i, id) in ids.iter().enumerate() {
        let task = cluster.get(&format!("/api/v1/tasks/{id}")).await;
        assert_eq!((task["status"].as_str(), &task["result"]), (Some("completed"), &json!({"v": i})), "{task}");
    }
}

/// The real worker sends its start reports and results in batches; a node on the per-task
/// protocol (an older worker) works in the same cluster at the same time.
#[cfg(unix)]
#[tokio::test]
async fn the_worker_reports_in_batches_beside_an_old_protocol_node() {
    let cluster = Cluster::start().await;
    let _w = cluster.exec_worker("w1", &[Skill::exec("echo", "echo '{\"by\": \"w1\"}'\n")], &[]).await;
    let old = cluster.register("old", &["legacy"], 2).await;
    let mine: Vec<String> = {
        let mut ids = Vec::new();
        for i in 0..6 {
            ids.push(cluster.submit(json!({"name": format!("e{i}"), "required_skills": ["echo"]})).await);
        }
        ids
    };
    let legacy = cluster.submit(json!({"name": "l", "required_skills": ["legacy"]})).await;
    let assigned = poll(&cluster, "old", &old).await;
    assert_eq!(assigned, [(legacy.clone(), 1)]);
    let path = format!("/api/v1/nodes/old/tasks/{legacy}");
    let (status, body) = cluster.call("POST", &format!("{path}/start"), Some(&old), Some(r#"{"attempt": 1}"#)).await;
    assert_eq!(status, 200, "{body}");
    let done = r#"{"attempt": 1, "outcome": "completed", "result": {"by": "old"}}"#;
    let (status, body) = cluster.call("POST", &format!("{path}/result"), Some(&old), Some(done)).await;
    assert_eq!(status, 200, "{body}");
    for id in &mine {
        let task = cluster.wait_task(id, 30).await;
        assert_eq!((task["status"].as_str(), &task["result"]), (Some("completed"), &json!({"by": "w1"})), "{task}");
    }
    assert_eq!(cluster.get(&format!("/api/v1/tasks/{legacy}")).await["result"], json!({"by": "old"}));
    let count = |route: &'static str| {
        let cluster = &cluster;
        async move { cluster.metric(&format!("openclaw_http_requests_total{{route=\"{route}\"")).await as u64 }
    };
    let batches = count("node_task_reports").await;
    assert!(batches >= 1, "the worker sent no batch");
    assert!(batches <= 12, "{batches} batches for 6 starts and 6 results");
    // The per-task endpoints served only the old node's two reports.
    assert_eq!((count("node_task_start").await, count("node_task_result").await), (1, 1));
}

/// A coordinator from before the batch endpoint, as a worker sees one: the real
/// coordinator behind a proxy that answers the batch path the way a route table without it
/// does (404 `not_found`) and passes every other request through unchanged. A stand-in,
/// because no older binary is at hand in the tests. Returns its port and how many batches
/// it refused.
async fn older_coordinator(target: String) -> (u16, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let refused = Arc::new(AtomicU64::new(0));
    let (http, counter) = (reqwest::Client::new(), refused.clone());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let (http, target, counter) = (http.clone(), target.clone(), counter.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let (http, target, counter) = (http.clone(), target.clone(), counter.clone());
                    async move {
                        let path = req.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default();
                        if req.uri().path().ends_with("/tasks/reports") {
                            counter.fetch_add(1, Ordering::SeqCst);
                            let body =
                                json!({"error": {"code": "not_found", "message": format!("no endpoint at {path}")}});
                            let answer = hyper::Response::builder()
                                .status(404)
                                .header("content-type", "application/json")
                                .body(http_body_util::Full::new(bytes::Bytes::from(body.to_string())))
                                .unwrap();
                            return Ok::<_, std::convert::Infallible>(answer);
                        }
                        let (parts, body) = req.into_parts();
                        let body = http_body_util::BodyExt::collect(body).await.unwrap().to_bytes();
                        let mut forward = http.request(parts.method, format!("{target}{path}")).body(body);
                        for (name, value) in &parts.headers {
                            if name != hyper::header::HOST {
                                forward = forward.header(name, value);
                            }
                        }
                        let r = forward.send().await.unwrap();
                        let mut answer = hyper::Response::builder().status(r.status().as_u16());
                        for (name, value) in r.headers() {
                            answer = answer.header(name, value);
                        }
                        let bytes = r.bytes().await.unwrap();
                        Ok(answer.body(http_body_util::Full::new(bytes)).unwrap())
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (port, refused)
}

/// Against a coordinator that does not know the batch endpoint, the worker falls back to
/// the per-task endpoints for good after the first 404, and its tasks complete.
#[cfg(unix)]
#[tokio::test]
async fn the_worker_reports_task_by_task_to_a_coordinator_without_batches() {
    let cluster = Cluster::start().await;
    let (port, refused) = older_coordinator(cluster.url()).await;
    let url = format!("http://127.0.0.1:{port}");
    let skill = Skill::exec("echo", "echo '{\"by\": \"w1\"}'\n");
    skill.write(&cluster.skills_dir());
    let _w = cluster.worker("w1", &cluster.skills_dir(), &["--coordinator-url", &url]);
    cluster.wait_online("w1", &["echo"]).await;
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(cluster.submit(json!({"name": format!("e{i}"), "required_skills": ["echo"]})).await);
    }
    for id in &ids {
        let task = cluster.wait_task(id, 30).await;
        assert_eq!((task["status"].as_str(), &task["result"]), (Some("completed"), &json!({"by": "w1"})), "{task}");
    }
    assert_eq!(refused.load(Ordering::SeqCst), 1, "one refused batch, then task by task");
    let count = |route: &'static str| {
        let cluster = &cluster;
        async move { cluster.metric(&format!("openclaw_http_requests_total{{route=\"{route}\"")).await as u64 }
    };
    assert_eq!((count("node_task_start").await, count("node_task_result").await), (4, 4));
    assert_eq!(count("node_task_reports").await, 0);
}
