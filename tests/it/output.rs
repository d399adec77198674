//! Task output, coordinator side: batches fenced by attempt, the kept tail (bounded,
//! truncated, replaced by a new attempt, kept across a restart), following it live, and
//! `openclaw tasks logs`. Here the test plays the worker over the node API (a registered
//! node with its own secret, exactly the requests a worker sends); the worker's own
//! streaming is tested in `worker.rs`.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Cluster, Proc, Settings, Sse};

/// Submits a task for `skill`, takes it as `node` and starts it; returns its id and attempt.
async fn start_task(cluster: &Cluster, node: &str, secret: &str, skill: &str) -> (String, u64) {
    let id = cluster.submit(json!({"name": "t", "required_skills": [skill], "max_retries": 2})).await;
    take(cluster, node, secret, &id).await
}

/// Polls as `node` until the task is handed over, and starts it.
async fn take(cluster: &Cluster, node: &str, secret: &str, id: &str) -> (String, u64) {
    for _ in 0..20 {
        let (status, poll) = cluster
            .call("POST", &format!("/api/v1/nodes/{node}/tasks/poll"), Some(secret), Some(r#"{"wait_secs": 5}"#))
            .await;
        assert_eq!(status, 200, "{poll}");
        if let Some(a) = poll["assignments"].as_array().unwrap().iter().find(|a| a["task_id"] == id) {
            let attempt = a["attempt"].as_u64().unwrap();
            let body = json!({"attempt": attempt}).to_string();
            let (status, answer) = cluster
                .call("POST", &format!("/api/v1/nodes/{node}/tasks/{id}/start"), Some(secret), Some(&body))
                .await;
            assert_eq!(status, 200, "{answer}");
            return (id.to_string(), attempt);
        }
    }
    panic!("task {id} was never handed to {node}");
}

/// Sends a batch of (stream, text) lines.
async fn push(
    cluster: &Cluster,
    node: &str,
    secret: &str,
    task: &str,
    attempt: u64,
    lines: &[(&str, &str)],
) -> (u16, Value) {
    let lines: Vec<Value> = lines
        .iter()
        .map(|(stream, text)| json!({"stream": stream, "text": text, "at": "2026-02-16T16:00:00.000Z"}))
        .collect();
    let body = json!({"attempt": attempt, "lines": lines}).to_string();
    cluster.call("POST", &format!("/api/v1/nodes/{node}/tasks/{task}/output"), Some(secret), Some(&body)).await
}

async fn finish(cluster: &Cluster, node: &str, secret: &str, task: &str, attempt: u64, outcome: &str) {
    let body = json!({"attempt": attempt, "outcome": outcome, "error": "boom"}).to_string();
    let (status, answer) =
        cluster.call("POST", &format!("/api/v1/nodes/{node}/tasks/{task}/result"), Some(secret), Some(&body)).await;
    assert_eq!(status, 200, "{answer}");
}

fn texts(output: &Value) -> Vec<String> {
    output["lines"].as_array().unwrap().iter().map(|l| l["text"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn output_is_fenced_by_attempt_kept_and_followed_live() {
    let cluster = Cluster::start().await;
    let secret = cluster.register("w1", &["s"], 2).await;
    let other = cluster.register("w2", &["z"], 2).await;
    let (task, attempt) = start_task(&cluster, "w1", &secret, "s").await;
    let tasks_token = std::fs::read_to_string(cluster.path().join("data/tasks.token")).unwrap().trim().to_string();
    let mut follow = Sse::open(&cluster, &format!("/api/v1/tasks/{task}/output?follow=true"), &tasks_token, None).await;

    let (status, ack) =
        push(&cluster, "w1", &secret, &task, attempt, &[("stdout", "hello"), ("stderr", "warming up")]).await;
    assert_eq!((status, &ack["accepted"], &ack["last_seq"]), (200, &json!(2), &json!(2)), "{ack}");
    let m = follow.next().await.unwrap();
    assert_eq!((m.event.as_str(), m.id.as_deref()), ("output", Some("1")));
    let line: Value = serde_json::from_str(&m.data).unwrap();
    assert_eq!(line, json!({"seq": 1, "at": "2026-02-16T16:00:00.000Z", "stream": "stdout", "text": "hello"}));
    assert_eq!(follow.next_json().await.unwrap().1["text"], "warming up");

    // Fencing: another attempt, another node, an unknown task.
    let (status, body) = push(&cluster, "w1", &secret, &task, attempt + 1, &[("stdout", "x")]).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("stale_attempt")), "{body}");
    let (status, _) = push(&cluster, "w1", &other, &task, attempt, &[("stdout", "x")]).await;
    assert_eq!(status, 403);
    let (status, _) = push(&cluster, "w2", &other, &task, attempt, &[("stdout", "x")]).await;
    assert_eq!(status, 409, "w2 does not run it");
    let (status, body) = push(&cluster, "w1", &secret, "task_nope", 1, &[("stdout", "x")]).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("unknown_task")), "{body}");
    // Bad lines are named and change nothing.
    let (status, body) = push(&cluster, "w1", &secret, &task, attempt, &[("stdin", "x")]).await;
    assert_eq!(status, 400);
    assert!(body["error"]["message"].as_str().unwrap().contains("lines[0].stream"), "{body}");
    let long = "y".repeat(20_000);
    let (status, body) = push(&cluster, "w1", &secret, &task, attempt, &[("stdout", "ok"), ("stdout", &long)]).await;
    assert_eq!(status, 400);
    assert!(body["error"]["message"].as_str().unwrap().contains("lines[1].text"), "{body}");
    let (status, body) = cluster
        .call(
            "POST",
            &format!("/api/v1/nodes/w1/tasks/{task}/output"),
            Some(&secret),
            Some(r#"{"attempt":1,"lines":[],"x":1}"#),
        )
        .await;
    assert_eq!(status, 400, "{body}");

    let (_, ack) = push(&cluster, "w1", &secret, &task, attempt, &[("stdout", "done")]).await;
    assert_eq!(ack["last_seq"], 3, "the refused batches took no numbers");
    assert_eq!(follow.next_json().await.unwrap().1["seq"], 3);
    finish(&cluster, "w1", &secret, &task, attempt, "completed").await;
    assert_eq!(follow.next_json().await.unwrap(), ("end".to_string(), json!({"status": "completed"})));
    assert!(follow.next().await.is_none(), "the stream ends with the task");

    let output = cluster.get(&format!("/api/v1/tasks/{task}/output")).await;
    assert_eq!(texts(&output), ["hello", "warming up", "done"]);
    assert_eq!(
        (&output["attempt"], &output["truncated"], &output["ended"]),
        (&json!(attempt), &json!(false), &json!(true)),
        "{output}"
    );
    assert_eq!(cluster.get(&format!("/api/v1/tasks/{task}/output?after=2")).await["lines"][0]["text"], "done");
    let (status, body) = push(&cluster, "w1", &secret, &task, attempt, &[("stdout", "late")]).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("stale_attempt")), "{body}");
    // Following an ended task replays it and ends; resuming skips what was seen.
    let mut again =
        Sse::open(&cluster, &format!("/api/v1/tasks/{task}/output?follow=true"), &tasks_token, Some(2)).await;
    assert_eq!(again.next_json().await.unwrap().1["text"], "done");
    assert_eq!(again.next_json().await.unwrap().0, "end");
    let (status, body) = cluster.api("GET", "/api/v1/tasks/task_nope/output", None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("unknown_task")), "{body}");
    let (status, _) = cluster.api("GET", &format!("/api/v1/tasks/{task}/output?follow=perhaps"), None).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_new_attempt_replaces_the_kept_output_and_numbers_go_on() {
    let cluster = Cluster::start().await;
    let secret = cluster.register("w1", &["s"], 2).await;
    let (task, first) = start_task(&cluster, "w1", &secret, "s").await;
    push(&cluster, "w1", &secret, &task, first, &[("stdout", "one"), ("stderr", "failing")]).await;
    finish(&cluster, "w1", &secret, &task, first, "failed").await;
    let output = cluster.get(&format!("/api/v1/tasks/{task}/output")).await;
    assert_eq!((texts(&output), &output["ended"]), (vec!["one".to_string(), "failing".into()], &json!(false)));
    let (_, second) = take(&cluster, "w1", &secret, &task).await;
    assert_eq!(second, first + 1);
    let (_, ack) = push(&cluster, "w1", &secret, &task, second, &[("stdout", "two")]).await;
    assert_eq!(ack["last_seq"], 3);
    let output = cluster.get(&format!("/api/v1/tasks/{task}/output")).await;
    assert_eq!((texts(&output), &output["attempt"]), (vec!["two".to_string()], &json!(second)));
    assert_eq!(output["lines"][0]["seq"], 3);
}

/// The tail keeps the newest lines within `coordinator.output_tail_bytes`, says it is
/// truncated, and is still there (and numbered on) after a kill -9.
#[tokio::test]
async fn the_kept_tail_is_bounded_and_survives_a_restart() {
    let mut cluster = Cluster::start_with(Settings {
        extra_coordinator: "  output_tail_bytes: 2048\n".into(),
        ..Settings::default()
    })
    .await;
    let secret = cluster.register("w1", &["s"], 2).await;
    let (task, attempt) = start_task(&cluster, "w1", &secret, "s").await;
    for batch in 0..10 {
        let lines: Vec<String> = (0..20).map(|i| format!("batch {batch:02} line {i:02} {}", "-".repeat(20))).collect();
        let lines: Vec<(&str, &str)> = lines.iter().map(|l| ("stdout", l.as_str())).collect();
        let (status, ack) = push(&cluster, "w1", &secret, &task, attempt, &lines).await;
        assert_eq!(status, 200, "{ack}");
    }
    let before = cluster.get(&format!("/api/v1/tasks/{task}/output")).await;
    let kept = texts(&before);
    assert_eq!(before["truncated"], true);
    assert_eq!(kept.last().unwrap(), &format!("batch 09 line 19 {}", "-".repeat(20)));
    let cost: usize = kept.iter().map(|t| t.len() + 16).sum();
    assert!(cost <= 2048 && cost + 16 + kept[0].len() > 2048, "kept {} lines costing {cost}", kept.len());
    assert_eq!(before["lines"].as_array().unwrap().last().unwrap()["seq"], 200);

    cluster.kill_coordinator();
    cluster.start_coordinator().await;
    // The node heartbeats, as its worker would, so that its attempt stays its own.
    cluster.call("POST", "/api/v1/nodes/w1/heartbeat", Some(&secret), Some("{}")).await;
    assert_eq!(cluster.get(&format!("/api/v1/tasks/{task}/output")).await, before);
    let (status, ack) = push(&cluster, "w1", &secret, &task, attempt, &[("stdout", "after the restart")]).await;
    assert_eq!((status, &ack["last_seq"]), (200, &json!(201)), "{ack}");
    let after = cluster.get(&format!("/api/v1/tasks/{task}/output")).await;
    assert_eq!(texts(&after).last().unwrap(), "after the restart");
    let cost: usize = texts(&after).iter().map(|t| t.len() + 16).sum();
    assert!(cost <= 2048, "the tail grew past its size after the restart: {cost}");
}

/// `openclaw tasks logs` prints stdout lines on stdout and stderr lines on stderr; `-f`
/// follows until the task ends.
#[tokio::test]
async fn tasks_logs_prints_and_follows() {
    let cluster = Cluster::start().await;
    let secret = cluster.register("w1", &["s"], 2).await;
    let (task, attempt) = start_task(&cluster, "w1", &secret, "s").await;
    push(&cluster, "w1", &secret, &task, attempt, &[("stdout", "first out"), ("stderr", "first err")]).await;
    let o = cluster.cli(&["tasks", "logs", &task]);
    assert!(o.status.success(), "{}", crate::support::show(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "first out\n");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("first err") && err.contains("still active"), "{err}");

    let config = cluster.config.display().to_string();
    let mut follow =
        Proc::spawn("logs-f", &["-c", &config, "tasks", "logs", "-f", &task], &[], cluster.path(), &cluster.logs());
    follow.wait_for_output("first out", Duration::from_secs(20)).await;
    push(&cluster, "w1", &secret, &task, attempt, &[("stdout", "second out")]).await;
    follow.wait_for_output("second out", Duration::from_secs(20)).await;
    finish(&cluster, "w1", &secret, &task, attempt, "completed").await;
    assert_eq!(follow.wait_exit(Duration::from_secs(20)).await.code(), Some(0), "{}", follow.logs());
    assert_eq!(follow.out(), "first out\nsecond out\n");
    assert!(follow.err().contains("first err") && follow.err().contains("ended: completed"), "{}", follow.err());

    let o = cluster.cli(&["tasks", "logs", &task, "--json"]);
    let json: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(json["lines"].as_array().unwrap().len(), 3);
    let o = cluster.cli(&["tasks", "logs", "task_nope"]);
    assert_eq!(o.status.code(), Some(1), "{}", crate::support::show(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no task task_nope"), "{}", crate::support::show(&o));
}
