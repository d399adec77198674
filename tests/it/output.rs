//! Task output: batches fenced by attempt, the kept tail (bounded, truncated, replaced by a
//! new attempt, kept across a restart), following it live, and `openclaw tasks logs` —
//! first with the test playing the worker over the node API (a registered node with its own
//! secret, exactly the requests a worker sends), then with a real worker running exec
//! skills: lines streamed while the task runs, secrets redacted, few requests for many lines.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Cluster, Proc, Settings, Skill, Sse, texts};

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
    push_numbered(cluster, node, secret, task, (attempt, None), lines).await
}

/// Sends a batch whose first line has the number `first` in its attempt, as the worker does.
async fn push_numbered(
    cluster: &Cluster,
    node: &str,
    secret: &str,
    task: &str,
    (attempt, first): (u64, Option<u64>),
    lines: &[(&str, &str)],
) -> (u16, Value) {
    let lines: Vec<Value> = lines
        .iter()
        .map(|(stream, text)| json!({"stream": stream, "text": text, "at": "2026-02-16T16:00:00.000Z"}))
        .collect();
    let mut body = json!({"attempt": attempt, "lines": lines});
    if let Some(first) = first {
        body["first"] = json!(first);
    }
    let body = body.to_string();
    cluster.call("POST", &format!("/api/v1/nodes/{node}/tasks/{task}/output"), Some(secret), Some(&body)).await
}

async fn finish(cluster: &Cluster, node: &str, secret: &str, task: &str, attempt: u64, outcome: &str) {
    let body = json!({"attempt": attempt, "outcome": outcome, "error": "boom"}).to_string();
    let (status, answer) =
        cluster.call("POST", &format!("/api/v1/nodes/{node}/tasks/{task}/result"), Some(secret), Some(&body)).await;
    assert_eq!(status, 200, "{answer}");
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

/// A batch the worker sends again because its answer was lost (the coordinator killed
/// after the commit, or the connection cut) is kept once: lines carry their number in the
/// attempt, and the coordinator takes only those it does not have, after a restart too.
#[tokio::test]
async fn a_batch_sent_again_is_kept_once_even_across_a_restart() {
    let mut cluster = Cluster::start().await;
    let secret = cluster.register("w1", &["s"], 2).await;
    let (task, attempt) = start_task(&cluster, "w1", &secret, "s").await;
    let (status, ack) = push_numbered(&cluster, "w1", &secret, &task, (attempt, Some(0)), &[("stdout", "a")]).await;
    assert_eq!((status, &ack["last_seq"]), (200, &json!(1)), "{ack}");
    let again = [("stdout", "a"), ("stdout", "b")];
    let (status, ack) = push_numbered(&cluster, "w1", &secret, &task, (attempt, Some(0)), &again).await;
    assert_eq!((status, &ack["last_seq"]), (200, &json!(2)), "{ack}");
    cluster.kill_coordinator();
    cluster.start_coordinator().await;
    cluster.call("POST", "/api/v1/nodes/w1/heartbeat", Some(&secret), Some("{}")).await;
    let again = [("stdout", "b"), ("stderr", "c")];
    let (status, ack) = push_numbered(&cluster, "w1", &secret, &task, (attempt, Some(1)), &again).await;
    assert_eq!((status, &ack["last_seq"]), (200, &json!(3)), "{ack}");
    let output = cluster.get(&format!("/api/v1/tasks/{task}/output")).await;
    assert_eq!(texts(&output), ["a", "b", "c"]);
    // Without numbers (an older worker) every batch is new lines.
    push(&cluster, "w1", &secret, &task, attempt, &[("stdout", "c")]).await;
    assert_eq!(texts(&cluster.get(&format!("/api/v1/tasks/{task}/output")).await), ["a", "b", "c", "c"]);
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

/// A real worker streams what an exec skill prints while it runs — the skill waits for a
/// file the test creates only after it has seen the first lines on the followed stream —
/// with the secrets the worker knows redacted, and a task that completes keeps its stderr.
#[cfg(unix)]
#[tokio::test]
async fn a_worker_streams_a_running_task_with_its_secrets_redacted() {
    let cluster = Cluster::start().await;
    let skills = cluster.path().join("skills");
    // The skill declares a token variable of the worker's, which a skill may be given; the
    // worker still keeps its value out of the output.
    let dir = Skill::exec(
        "progress",
        "echo 'step 1'\necho 'warming up' >&2\necho \"join $(cat ../../data/worker.token) custom $OPENCLAW_CUSTOM_TOKEN\" >&2\n\
         while [ ! -e go ]; do sleep 0.05; done\necho 'step 2' >&2\necho '{\"ok\": true}'\n",
    )
    .env(&["OPENCLAW_CUSTOM_TOKEN"])
    .write(&skills);
    let custom = "custom-secret-value-0123456789";
    let _w = cluster.worker_env("w1", &skills, &[], &[("OPENCLAW_CUSTOM_TOKEN", custom)]);
    cluster.wait_online("w1", &["progress"]).await;
    let task = cluster.submit(json!({"name": "p", "required_skills": ["progress"]})).await;
    let mut follow =
        Sse::open(&cluster, &format!("/api/v1/tasks/{task}/output?follow=true"), &cluster.admin(), None).await;
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let (event, line) = follow.next_json().await.unwrap();
        assert_eq!(event, "output", "{line}");
        seen.push((line["stream"].as_str().unwrap().to_string(), line["text"].as_str().unwrap().to_string()));
    }
    // Still running: it waits for `go`.
    assert_eq!(cluster.get(&format!("/api/v1/tasks/{task}")).await["status"], "running");
    assert!(seen.contains(&("stdout".into(), "step 1".into())), "{seen:?}");
    assert!(seen.contains(&("stderr".into(), "warming up".into())), "{seen:?}");
    assert!(seen.contains(&("stderr".into(), "join [REDACTED] custom [REDACTED]".into())), "{seen:?}");
    std::fs::write(dir.join("go"), "").unwrap();
    loop {
        match follow.next_json().await.unwrap() {
            (e, end) if e == "end" => {
                assert_eq!(end, json!({"status": "completed"}));
                break;
            }
            (_, line) => seen.push((line["stream"].as_str().unwrap().into(), line["text"].as_str().unwrap().into())),
        }
    }
    assert!(seen.contains(&("stderr".into(), "step 2".into())), "{seen:?}");
    let output = cluster.get(&format!("/api/v1/tasks/{task}/output")).await;
    let kept: Vec<(String, String)> = output["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["stream"].as_str().unwrap().into(), l["text"].as_str().unwrap().into()))
        .collect();
    assert_eq!(kept, seen, "the kept tail is what was followed");
    assert_eq!(output["ended"], true);
    let everything = format!("{output} {}", cluster.get(&format!("/api/v1/tasks/{task}")).await);
    for secret in [cluster.worker_token(), custom.to_string()] {
        assert!(!everything.contains(&secret), "a secret leaked: {everything}");
    }
}

/// A task that prints many lines costs the coordinator few requests (batches of 250 ms or
/// 64 KiB), and its tail keeps the newest lines.
#[cfg(unix)]
#[tokio::test]
async fn a_chatty_task_costs_few_requests() {
    let cluster = Cluster::start().await;
    let _w = cluster.exec_worker("w1", &[Skill::exec("chatty", "seq 1 20000 >&2\necho '{}'\n")], &[]).await;
    let requests = || cluster.metric("openclaw_http_requests_total{route=\"node_task_output\"");
    let before = requests().await;
    let task = cluster.submit(json!({"name": "c", "required_skills": ["chatty"]})).await;
    assert_eq!(cluster.wait_task(&task, 60).await["status"], "completed");
    let output = cluster.get(&format!("/api/v1/tasks/{task}/output")).await;
    let lines = output["lines"].as_array().unwrap();
    let last = lines.iter().rev().find(|l| l["stream"] == "stderr").unwrap();
    assert_eq!(last["text"], "20000", "{output}");
    assert!(last["seq"].as_u64().unwrap() >= 20000, "{last}");
    assert_eq!(output["truncated"], true);
    // Counted before each answer went out, so before the result was sent.
    let sent = requests().await - before;
    eprintln!("20,000 lines in {sent} output requests");
    assert!(sent > 0.0 && sent <= 20.0, "20,000 lines took {sent} requests");
}

/// Lines printed while the coordinator is down wait on the worker and arrive once it is
/// back; what was acknowledged before the kill -9 is still there.
#[cfg(unix)]
#[tokio::test]
async fn output_printed_during_a_coordinator_outage_arrives_after_it() {
    let mut cluster = Cluster::start().await;
    let skills = cluster.skills_dir();
    let _w = cluster.exec_worker("w1", &[Skill::exec("slow", "echo before\nwhile [ ! -e go1 ]; do sleep 0.05; done\necho during\nwhile [ ! -e go2 ]; do sleep 0.05; done\necho after\n")], &[]).await;
    let task = cluster.submit(json!({"name": "s", "required_skills": ["slow"]})).await;
    let mut follow =
        Sse::open(&cluster, &format!("/api/v1/tasks/{task}/output?follow=true"), &cluster.admin(), None).await;
    assert_eq!(follow.next_json().await.unwrap().1["text"], "before");
    cluster.kill_coordinator();
    std::fs::write(skills.join("slow/go1"), "").unwrap();
    // The line is read while nobody answers: the worker keeps it.
    let worker_log = cluster.logs().join("worker-w1.out");
    crate::support::eventually("the worker noticed the outage", Duration::from_secs(20), || async {
        std::fs::read_to_string(&worker_log).unwrap_or_default().contains("the coordinator is not answering")
    })
    .await;
    cluster.start_coordinator().await;
    std::fs::write(skills.join("slow/go2"), "").unwrap();
    assert_eq!(cluster.wait_task(&task, 60).await["status"], "completed");
    let output = cluster.get(&format!("/api/v1/tasks/{task}/output")).await;
    assert_eq!(texts(&output), ["before", "during", "after"]);
}

/// `openclaw tasks logs -f` across streams that end at `coordinator.max_stream_lifetime`:
/// after each planned end it resumes after the last line it printed, quietly, and prints
/// every line once, in order, until the task ends.
#[tokio::test]
async fn a_followed_output_resumes_after_each_lifetime_without_loss_or_repeat() {
    let cluster =
        Cluster::start_with(Settings { extra_coordinator: "  max_stream_lifetime: 1\n".into(), ..Settings::default() })
            .await;
    let secret = cluster.register("w1", &["s"], 2).await;
    let (task, attempt) = start_task(&cluster, "w1", &secret, "s").await;
    let mut follow = cluster.cli_process("logs-f", &["tasks", "logs", "-f", &task]);
    let reconnects = r#"openclaw_http_requests_total{route="task_output",status="200"}"#;
    let mut want = String::new();
    for round in 0..3 {
        let before = cluster.metric(reconnects).await;
        let lines: Vec<String> = (0..4).map(|i| format!("round {round} line {i}")).collect();
        let batch: Vec<(&str, &str)> = lines.iter().map(|l| ("stdout", l.as_str())).collect();
        push(&cluster, "w1", &secret, &task, attempt, &batch).await;
        for l in &lines {
            want.push_str(&format!("{l}\n"));
        }
        follow.wait_for_output(&lines[3], Duration::from_secs(20)).await;
        crate::support::eventually("the follower reconnected", Duration::from_secs(20), || async {
            cluster.metric(reconnects).await > before
        })
        .await;
    }
    finish(&cluster, "w1", &secret, &task, attempt, "completed").await;
    assert_eq!(follow.wait_exit(Duration::from_secs(20)).await.code(), Some(0), "{}", follow.logs());
    assert_eq!(follow.out(), want, "every line once, in order");
    assert!(!follow.err().contains("note:"), "a planned end is resumed quietly:\n{}", follow.err());
}
