//! Tasks end to end: real coordinator, real worker processes, real skills written here.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Cluster, Settings, Skill, eventually, exec_skill, show};

fn events(task: &Value) -> Vec<(String, u64, String)> {
    task["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["event"].as_str().unwrap().to_string(),
                e["attempt"].as_u64().unwrap(),
                e["node_id"].as_str().unwrap_or("-").to_string(),
            )
        })
        .collect()
}

/// A skill that waits for `gate` to exist (up to 30 s), then prints JSON with its name.
fn gated_skill(skills: &std::path::Path, name: &str, gate: &std::path::Path) {
    exec_skill(
        skills,
        name,
        &format!(
            "i=0; while [ ! -f {gate} ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done\necho \"{{\\\"task\\\": \\\"$OPENCLAW_TASK_ID\\\", \\\"node\\\": \\\"$OPENCLAW_NODE_ID\\\"}}\"\n",
            gate = gate.display()
        ),
    );
}

#[cfg(unix)]
#[tokio::test]
async fn an_exec_task_returns_its_json_result() {
    let cluster = Cluster::start().await;
    let _w = cluster.exec_worker("w1", &[Skill::exec("echo", "read input\necho \"{\\\"input\\\": $input, \\\"env\\\": [\\\"$OPENCLAW_TASK_ID\\\", \\\"$OPENCLAW_NODE_ID\\\", \\\"$OPENCLAW_SKILL\\\", \\\"$OPENCLAW_ATTEMPT\\\"], \\\"pwd\\\": \\\"$(pwd)\\\"}\"\necho warming up >&2\n"), Skill::exec("text", "echo plain words\n")], &[]).await;
    let id =
        cluster.submit(json!({"name": "say", "required_skills": ["echo"], "parameters": {"n": 3, "s": "x"}})).await;
    let task = cluster.wait_task(&id, 20).await;
    assert_eq!(task["status"], "completed", "{task}");
    let result = &task["result"];
    assert_eq!(result["input"], json!({"task_id": id, "attempt": 1, "name": "say", "parameters": {"n": 3, "s": "x"}}));
    assert_eq!(result["env"], json!([id, "w1", "echo", "1"]));
    assert!(result["pwd"].as_str().unwrap().ends_with("skills/echo"), "runs in the skill's folder: {result}");
    assert_eq!(
        events(&task).iter().map(|e| e.0.as_str()).collect::<Vec<_>>(),
        vec!["submitted", "scheduled", "running", "completed"]
    );
    for key in ["submitted_at", "scheduled_at", "started_at", "completed_at"] {
        assert!(task[key].is_string(), "{key}: {task}");
    }
    let text = cluster.submit(json!({"name": "t", "required_skills": ["text"]})).await;
    assert_eq!(cluster.wait_task(&text, 20).await["result"], json!({"stdout": "plain words\n"}));

    let node = cluster.node("w1").await;
    assert_eq!(
        (node["total_tasks_processed"].as_u64(), node["successful_tasks"].as_u64(), node["running_tasks"].as_u64()),
        (Some(2), Some(2), Some(0))
    );
    assert!(node["average_execution_time"].as_f64().unwrap() > 0.0, "{node}");
}

#[cfg(unix)]
#[tokio::test]
async fn priorities_decide_who_gets_the_one_free_slot_and_fifo_within_one() {
    let cluster = Cluster::start().await;
    let skills = cluster.path().join("skills");
    let gate = cluster.path().join("gate");
    gated_skill(&skills, "work", &gate);
    let _w = cluster.worker("w1", &skills, &["--max-concurrent-tasks", "1"]);
    cluster.wait_online("w1", &["work"]).await;
    let blocker = cluster.submit(json!({"name": "blocker", "required_skills": ["work"]})).await;
    eventually("the blocker runs", Duration::from_secs(10), || async {
        cluster.get(&format!("/api/v1/tasks/{blocker}")).await["status"] == "running"
    })
    .await;
    let mut ids = vec![];
    for (name, priority) in [
        ("low", json!("low")),
        ("normal-1", json!("normal")),
        ("high", json!(1)),
        ("normal-2", json!(2)),
        ("critical", json!("critical")),
    ] {
        ids.push((
            name,
            cluster.submit(json!({"name": name, "required_skills": ["work"], "priority": priority})).await,
        ));
    }
    let pending = cluster.get(&format!("/api/v1/tasks/{}", ids[0].1)).await;
    assert!(pending["pending_reason"].as_str().unwrap().contains("full (1/1)"), "{pending}");
    std::fs::write(&gate, "").unwrap();
    let mut order = vec![];
    for (name, id) in &ids {
        let t = cluster.wait_task(id, 30).await;
        assert_eq!(t["status"], "completed", "{t}");
        order.push((t["started_at"].as_str().unwrap().to_string(), name.to_string()));
    }
    order.sort();
    let names: Vec<&str> = order.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(names, vec!["critical", "high", "normal-1", "normal-2", "low"]);
}

#[cfg(unix)]
#[tokio::test]
async fn an_unplaceable_critical_task_does_not_block_a_normal_one() {
    let cluster = Cluster::start().await;
    let _w = cluster.exec_worker("w1", &[Skill::exec("echo", "echo '{}'\n")], &["--max-concurrent-tasks", "1"]).await;
    let stuck = cluster.submit(json!({"name": "stuck", "required_skills": ["ffmpeg"], "priority": "critical"})).await;
    let normal = cluster.submit(json!({"name": "fine", "required_skills": ["echo"]})).await;
    assert_eq!(cluster.wait_task(&normal, 20).await["status"], "completed");
    let stuck = cluster.get(&format!("/api/v1/tasks/{stuck}")).await;
    assert_eq!(stuck["status"], "pending");
    assert_eq!(stuck["pending_reason"], "no node has skill 'ffmpeg'");
}

#[tokio::test]
async fn pending_reasons_say_why() {
    let settings = Settings { retry_backoff_base: 30.0, ..Settings::default() };
    let cluster = Cluster::start_with(settings).await;
    let reason = |id: String| {
        let cluster = &cluster;
        async move { cluster.get(&format!("/api/v1/tasks/{id}")).await["pending_reason"].as_str().unwrap_or("").to_string() }
    };
    let task = |skills: Value| json!({"name": "t", "required_skills": skills});

    let t = cluster.submit(task(json!(["python", "cuda"]))).await;
    assert_eq!(reason(t.clone()).await, "no node has skill 'python' and 'cuda'");

    let n1 = cluster.register("n1", &["python"], 1).await;
    let first = cluster.submit(task(json!(["python"]))).await;
    assert_eq!(cluster.get(&format!("/api/v1/tasks/{first}")).await["status"], "scheduled");
    let second = cluster.submit(task(json!(["python"]))).await;
    assert_eq!(reason(second.clone()).await, "the only node with 'python' (n1) is full (1/1)");
    cluster.register("n2", &["python"], 1).await;
    assert_eq!(
        cluster.get(&format!("/api/v1/tasks/{second}")).await["status"],
        "scheduled",
        "a node joining places waiting work"
    );
    let third = cluster.submit(task(json!(["python"]))).await;
    assert_eq!(reason(third.clone()).await, "both nodes with 'python' are full (1/1, 1/1)");
    assert_eq!(reason(t.clone()).await, "no node has skill 'cuda'");
    cluster.register("n5", &["cuda"], 1).await;
    assert_eq!(reason(t).await, "no node has all of 'python' and 'cuda'");

    cluster.register("n3", &["ocr"], 1).await;
    cluster.api("POST", "/api/v1/nodes/n3/drain", None).await;
    let ocr = cluster.submit(task(json!(["ocr"]))).await;
    assert_eq!(reason(ocr.clone()).await, "the only online node with 'ocr' (n3) is draining");

    let n4 = cluster.register("n4", &["ffmpeg"], 1).await;
    cluster.call("POST", "/api/v1/nodes/n4/shutdown", Some(&n4), None).await;
    let ff = cluster.submit(task(json!(["ffmpeg"]))).await;
    let r = reason(ff).await;
    assert!(r.starts_with("no online node has 'ffmpeg' (n4 has it, offline for"), "{r}");

    // A failed attempt waits for its retry.
    let (_, poll) = cluster.call("POST", "/api/v1/nodes/n1/tasks/poll", Some(&n1), Some(r#"{"wait_secs": 0}"#)).await;
    let attempt = &poll["assignments"][0];
    let (status, _) = cluster
        .call(
            "POST",
            &format!("/api/v1/nodes/n1/tasks/{first}/result"),
            Some(&n1),
            Some(r#"{"attempt": 1, "outcome": "failed", "error": "boom"}"#),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(attempt["task_id"], first.as_str());
    let r = reason(first.clone()).await;
    assert!(r.starts_with("retry 1 of 3 due in") && r.contains("boom"), "{r}");
    // The CLI shows it.
    let o = cluster.cli(&["tasks", "get", &first]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("retry 1 of 3 due in"), "{}", show(&o));
    let o = cluster.cli(&["tasks", "list", "--status", "pending"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("is draining"), "{}", show(&o));
}

#[tokio::test]
async fn reports_are_fenced_by_node_and_attempt_and_repeats_are_harmless() {
    let cluster = Cluster::start().await;
    let a = cluster.register("a", &["x"], 1).await;
    let b = cluster.register("b", &["y"], 1).await;
    let id = cluster.submit(json!({"name": "t", "required_skills": ["x"]})).await;
    let (_, poll) = cluster.call("POST", "/api/v1/nodes/a/tasks/poll", Some(&a), Some(r#"{"wait_secs": 0}"#)).await;
    assert_eq!(poll["assignments"][0]["attempt"], 1, "{poll}");
    let path = format!("/api/v1/nodes/a/tasks/{id}");
    let (status, _) = cluster.call("POST", &format!("{path}/start"), Some(&a), Some(r#"{"attempt": 1}"#)).await;
    assert_eq!(status, 200);
    let (status, body) = cluster
        .call("POST", &format!("{path}/result"), Some(&a), Some(r#"{"attempt": 2, "outcome": "completed"}"#))
        .await;
    assert_eq!(status, 409, "a stale attempt: {body}");
    let (status, body) = cluster
        .call(
            "POST",
            &format!("/api/v1/nodes/b/tasks/{id}/result"),
            Some(&b),
            Some(r#"{"attempt": 1, "outcome": "completed"}"#),
        )
        .await;
    assert_eq!(status, 409, "not assigned to that node: {body}");
    let done = r#"{"attempt": 1, "outcome": "completed", "result": {"v": 1}, "duration_ms": 5}"#;
    let (status, _) = cluster.call("POST", &format!("{path}/result"), Some(&a), Some(done)).await;
    assert_eq!(status, 200);
    let (status, again) = cluster.call("POST", &format!("{path}/result"), Some(&a), Some(done)).await;
    assert_eq!((status, again["status"].as_str()), (200, Some("completed")), "a repeated report is harmless");
    let (status, _) =
        cluster.call("POST", &format!("{path}/result"), Some(&a), Some(r#"{"attempt": 1, "outcome": "failed"}"#)).await;
    assert_eq!(status, 409, "a different ending for an ended task");
    let task = cluster.get(&format!("/api/v1/tasks/{id}")).await;
    assert_eq!((task["status"].as_str(), task["result"].clone()), (Some("completed"), json!({"v": 1})));
    assert_eq!(events(&task).iter().filter(|e| e.0 == "completed").count(), 1);
    let (status, _) = cluster.call("POST", "/api/v1/nodes/a/tasks/task_nope/result", Some(&a), Some(done)).await;
    assert_eq!(status, 404);
}

#[cfg(unix)]
#[tokio::test]
async fn a_worker_killed_mid_task_loses_it_to_another_worker() {
    let cluster = Cluster::start_with(Settings { heartbeat_timeout: 2.0, ..Settings::default() }).await;
    let skills = cluster.skills_dir();
    let mut w1 = cluster.exec_worker("w1", &[Skill::exec("slow", "if [ \"$OPENCLAW_NODE_ID\" = w1 ]; then touch on-w1; sleep 30; fi\necho \"{\\\"by\\\": \\\"$OPENCLAW_NODE_ID\\\"}\"\n")], &[]).await;
    let id = cluster.submit(json!({"name": "t", "required_skills": ["slow"], "max_retries": 2})).await;
    let marker = skills.join("slow/on-w1");
    eventually("the task runs on w1", Duration::from_secs(10), || async { marker.exists() }).await;
    let _w2 = cluster.worker("w2", &skills, &[]);
    cluster.wait_online("w2", &["slow"]).await;
    w1.kill9();
    let task = cluster.wait_task(&id, 30).await;
    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(task["result"], json!({"by": "w2"}));
    assert_eq!(task["attempt"], 2);
    let ev = events(&task);
    assert!(
        ev.contains(&("scheduled".into(), 1, "w1".into())) && ev.contains(&("failed".into(), 1, "w1".into())),
        "{ev:?}"
    );
    assert!(
        ev.contains(&("scheduled".into(), 2, "w2".into())) && ev.contains(&("completed".into(), 2, "w2".into())),
        "{ev:?}"
    );
    let lost = task["events"].as_array().unwrap().iter().find(|e| e["event"] == "failed").unwrap();
    assert!(lost["message"].as_str().unwrap().contains("no heartbeat"), "{lost}");
}

#[cfg(unix)]
#[tokio::test]
async fn kill_9_of_the_coordinator_loses_no_acknowledged_task() {
    let mut cluster = Cluster::start().await;
    let skills = cluster.path().join("skills");
    let gate = cluster.path().join("gate");
    gated_skill(&skills, "gated", &gate);
    exec_skill(&skills, "quick", "echo '{\"quick\": true}'\n");
    let _w = cluster.worker("w1", &skills, &["--max-concurrent-tasks", "2"]);
    cluster.wait_online("w1", &["gated", "quick"]).await;

    let done = cluster.submit(json!({"name": "done", "required_skills": ["quick"]})).await;
    assert_eq!(cluster.wait_task(&done, 20).await["status"], "completed");
    let running: Vec<String> = vec![
        cluster.submit(json!({"name": "r1", "required_skills": ["gated"]})).await,
        cluster.submit(json!({"name": "r2", "required_skills": ["gated"]})).await,
    ];
    for id in &running {
        eventually("running", Duration::from_secs(10), || async {
            cluster.get(&format!("/api/v1/tasks/{id}")).await["status"] == "running"
        })
        .await;
    }
    let queued = cluster.submit(json!({"name": "queued", "required_skills": ["gated"], "priority": "high"})).await;
    let unplaceable = cluster.submit(json!({"name": "later", "required_skills": ["later"]})).await;
    let mut all = vec![done.clone(), queued.clone(), unplaceable.clone()];
    all.extend(running.iter().cloned());
    // Submissions racing the crash: whatever got a 201 must survive.
    let landed = std::sync::Arc::new(tokio::sync::Notify::new());
    let racing = {
        let url = cluster.url();
        let admin = cluster.admin();
        let http = cluster.http.clone();
        let landed = landed.clone();
        tokio::spawn(async move {
            let mut acked = vec![];
            for i in 0..200 {
                let r = http
                    .post(format!("{url}/api/v1/tasks"))
                    .bearer_auth(&admin)
                    .json(&json!({"name": format!("race-{i}"), "required_skills": ["quick"]}))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 201 => {
                        acked.push(r.json::<Value>().await.unwrap()["task_id"].as_str().unwrap().to_string());
                        landed.notify_one();
                    }
                    _ => break,
                }
            }
            acked
        })
    };
    // Kill it mid-stream: once a few submissions have been acknowledged.
    for _ in 0..5 {
        landed.notified().await;
    }
    cluster.kill_coordinator();
    let acked = racing.await.unwrap();
    all.extend(acked.iter().cloned());

    cluster.start_coordinator().await;
    for id in &all {
        let (status, task) = cluster.api("GET", &format!("/api/v1/tasks/{id}"), None).await;
        assert_eq!(status, 200, "acknowledged task {id} is gone after the crash: {task}");
    }
    std::fs::write(&gate, "").unwrap();
    exec_skill(&skills, "later", "echo '{\"later\": true}'\n");
    for id in &all {
        let task = cluster.wait_task(id, 60).await;
        assert_eq!(task["status"], "completed", "{task}");
    }
}

#[cfg(unix)]
#[tokio::test]
async fn cancelling_a_running_task_kills_its_child_and_grandchild() {
    let cluster = Cluster::start().await;
    let skills = cluster.skills_dir();
    let _w = cluster
        .exec_worker(
            "w1",
            &[Skill::exec("tree", "echo $$ > child.pid\nsleep 300 &\necho $! > grandchild.pid\nwait\n")],
            &[],
        )
        .await;
    let id = cluster.submit(json!({"name": "t", "required_skills": ["tree"]})).await;
    let (child, grandchild) = (skills.join("tree/child.pid"), skills.join("tree/grandchild.pid"));
    eventually("both processes started", Duration::from_secs(10), || async {
        grandchild.exists() && std::fs::read_to_string(&grandchild).is_ok_and(|s| !s.trim().is_empty())
    })
    .await;
    let pid = |p: &std::path::Path| std::fs::read_to_string(p).unwrap().trim().parse::<i32>().unwrap();
    let (child, grandchild) = (pid(&child), pid(&grandchild));
    let (status, answer) = cluster.api("POST", &format!("/api/v1/tasks/{id}/cancel"), None).await;
    assert_eq!(status, 200, "{answer}");
    let task = cluster.wait_task(&id, 20).await;
    assert_eq!(task["status"], "cancelled", "{task}");
    assert!(crate::support::gone(child).await, "child {child} still runs");
    assert!(crate::support::gone(grandchild).await, "grandchild {grandchild} still runs");
    let (status, _) = cluster.api("POST", &format!("/api/v1/tasks/{id}/cancel"), None).await;
    assert_eq!(status, 409, "cancelling an ended task");
    // A pending task is cancelled at once.
    let pending = cluster.submit(json!({"name": "p", "required_skills": ["nobody-has-this"]})).await;
    let (status, answer) = cluster.api("POST", &format!("/api/v1/tasks/{pending}/cancel"), None).await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("cancelled")));
}

#[cfg(unix)]
#[tokio::test]
async fn a_timeout_ends_the_task_as_timeout_and_kills_the_process() {
    let cluster = Cluster::start().await;
    let skills = cluster.skills_dir();
    let _w = cluster.exec_worker("w1", &[Skill::exec("hang", "echo $$ > hang.pid\nsleep 300\n")], &[]).await;
    let id = cluster.submit(json!({"name": "t", "required_skills": ["hang"], "timeout": 1, "max_retries": 0})).await;
    let task = cluster.wait_task(&id, 20).await;
    assert_eq!(task["status"], "timeout", "{task}");
    assert!(task["error"].as_str().unwrap().contains("timed out after 1s"), "{task}");
    let pid: i32 = std::fs::read_to_string(skills.join("hang/hang.pid")).unwrap().trim().parse().unwrap();
    assert!(crate::support::gone(pid).await, "the timed-out process {pid} still runs");
}

#[cfg(unix)]
#[tokio::test]
async fn a_skill_that_fails_twice_then_succeeds_completes_at_attempt_3() {
    let cluster = Cluster::start().await;
    let _w = cluster.exec_worker("w1", &[Skill::exec("flaky", "if [ \"$OPENCLAW_ATTEMPT\" -lt 3 ]; then echo \"boom $OPENCLAW_ATTEMPT\" >&2; exit 7; fi\necho '{\"ok\": true}'\n"), Skill::exec("broken", "echo nope >&2; exit 3\n")], &[]).await;
    let id = cluster.submit(json!({"name": "t", "required_skills": ["flaky"]})).await;
    let task = cluster.wait_task(&id, 30).await;
    assert_eq!(
        (task["status"].as_str(), task["attempt"].as_u64(), task["retry_count"].as_u64()),
        (Some("completed"), Some(3), Some(2)),
        "{task}"
    );
    let failures: Vec<&Value> = task["events"].as_array().unwrap().iter().filter(|e| e["event"] == "failed").collect();
    assert_eq!(failures.len(), 2);
    let first = failures[0]["message"].as_str().unwrap();
    assert!(first.contains("exited with code 7") && first.contains(": boom 1"), "{first}");
    assert!(failures[1]["message"].as_str().unwrap().contains("retry 2 of 3"), "{:?}", failures[1]);

    let id = cluster.submit(json!({"name": "t", "required_skills": ["broken"], "max_retries": 1})).await;
    let task = cluster.wait_task(&id, 30).await;
    assert_eq!((task["status"].as_str(), task["attempt"].as_u64()), (Some("failed"), Some(2)), "{task}");
    assert!(
        task["error"].as_str().unwrap().contains("exited with code 3")
            && task["error"].as_str().unwrap().contains(": nope"),
        "{task}"
    );
    assert_eq!(task["result"]["exit_code"], 3);
    let node = cluster.node("w1").await;
    assert_eq!((node["successful_tasks"].as_u64(), node["failed_tasks"].as_u64()), (Some(1), Some(4)), "{node}");
}

#[tokio::test]
async fn idempotent_submission_returns_the_first_task() {
    let cluster = Cluster::start().await;
    let body = json!({"name": "t", "required_skills": ["x"]});
    let post = |key: &'static str, body: Value| {
        let cluster = &cluster;
        async move {
            let r = cluster
                .http
                .post(format!("{}/api/v1/tasks", cluster.url()))
                .bearer_auth(cluster.admin())
                .header("idempotency-key", key)
                .json(&body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (s1, first) = post("order-42", body.clone()).await;
    let (s2, second) = post("order-42", body.clone()).await;
    assert_eq!((s1, s2), (201, 200));
    assert_eq!(first["task_id"], second["task_id"]);
    let (s3, third) = cluster
        .api(
            "POST",
            "/api/v1/tasks",
            Some(json!({"name": "t", "required_skills": ["x"], "idempotency_key": "order-42"})),
        )
        .await;
    assert_eq!((s3, third["task_id"].clone()), (200, first["task_id"].clone()));
    let (s4, _) = post("order-43", json!({"name": "t", "required_skills": ["x"], "idempotency_key": "order-44"})).await;
    assert_eq!(s4, 400, "header and body keys differ");
    // Regression (found by the API fuzzer): the key is kept trimmed, so a key sent with white
    // space around it is the same key. Looking it up as sent let a second insert break the
    // store's unique index, and that stopped the coordinator.
    let (s6, sixth) = cluster
        .api(
            "POST",
            "/api/v1/tasks",
            Some(json!({"name": "t", "required_skills": ["x"], "idempotency_key": " order-42\n"})),
        )
        .await;
    assert_eq!((s6, sixth["task_id"].clone()), (200, first["task_id"].clone()), "{sixth}");
    let (s7, _) =
        post("order-42", json!({"name": "t", "required_skills": ["x"], "idempotency_key": "order-42 "})).await;
    assert_eq!(s7, 200, "the header's key and the body's are the same key once trimmed");
    // The same key with a different submission is refused, naming the first task.
    let (s5, conflict) = post("order-42", json!({"name": "t", "required_skills": ["x"], "priority": "high"})).await;
    assert_eq!((s5, &conflict["error"]["code"]), (409, &json!("idempotency_conflict")), "{conflict}");
    let message = conflict["error"]["message"].as_str().unwrap();
    assert!(message.contains(first["task_id"].as_str().unwrap()), "{message}");
    assert_eq!(cluster.get("/api/v1/tasks").await["tasks"].as_array().unwrap().len(), 1);
    // The CLI flag does the same.
    let a = cluster.cli(&["tasks", "submit", "--skill", "x", "--queue", "--idempotency-key", "k1"]);
    let b = cluster.cli(&["tasks", "submit", "--skill", "x", "--queue", "--idempotency-key", "k1"]);
    assert_eq!(a.stdout, b.stdout, "{}\n{}", show(&a), show(&b));
}

#[tokio::test]
async fn every_bad_submission_is_a_400_naming_the_field() {
    let cluster = Cluster::start().await;
    let long = "n".repeat(201);
    let cases: Vec<(Value, &str)> = vec![
        (json!({"required_skills": ["x"]}), "name"),
        (json!({"name": "", "required_skills": ["x"]}), "name"),
        (json!({"name": long, "required_skills": ["x"]}), "name"),
        (json!({"name": "t"}), "required_skills"),
        (json!({"name": "t", "required_skills": []}), "required_skills"),
        (json!({"name": "t", "required_skills": "x"}), "required_skills"),
        (json!({"name": "t", "required_skills": ["x", " "]}), "required_skills[1]"),
        (json!({"name": "t", "required_skills": ["x"], "priority": "urgent"}), "priority"),
        (json!({"name": "t", "required_skills": ["x"], "priority": 9}), "priority"),
        (json!({"name": "t", "required_skills": ["x"], "timeout": 0}), "timeout"),
        (json!({"name": "t", "required_skills": ["x"], "timeout": 604801}), "timeout"),
        (json!({"name": "t", "required_skills": ["x"], "timeout": "soon"}), "timeout"),
        (json!({"name": "t", "required_skills": ["x"], "max_retries": 101}), "max_retries"),
        (json!({"name": "t", "required_skills": ["x"], "max_retries": -1}), "max_retries"),
        (json!({"name": "t", "required_skills": ["x"], "colour": "red"}), "colour"),
        (json!({"name": "t", "required_skills": ["x"], "task_type": "weird"}), "task_type"),
        (json!({"name": "t", "required_skills": ["x"], "metadata": [1]}), "metadata"),
        (json!({"name": "t", "required_skills": ["x"], "optional_skills": [1]}), "optional_skills[0]"),
        (json!({"name": "a\u{0}b", "required_skills": ["x"]}), "name"),
        (json!({"name": "\u{1b}[31mred", "required_skills": ["x"]}), "name"),
        (json!({"name": "t", "required_skills": ["x\u{7}"]}), "required_skills[0]"),
    ];
    for (body, field) in cases {
        let (status, answer) = cluster.api("POST", "/api/v1/tasks", Some(body.clone())).await;
        assert_eq!(status, 400, "{body}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(field), "{body}: {message:?} does not name {field}");
    }
    let (status, _) = cluster.call("POST", "/api/v1/tasks", Some(&cluster.admin()), Some("{\"name\": ")).await;
    assert_eq!(status, 400);
    assert_eq!(cluster.get("/api/v1/tasks").await["tasks"], json!([]), "nothing was stored");
    for (query, field) in
        [("status=done", "status"), ("limit=0", "limit"), ("limit=x", "limit"), ("after=abc", "after")]
    {
        let (status, answer) = cluster.api("GET", &format!("/api/v1/tasks?{query}"), None).await;
        assert_eq!(status, 400, "{query}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(field), "{answer}");
        assert_eq!(answer["error"]["code"], "invalid_query", "{answer}");
    }
    // The CLI maps a refused submission to exit 2.
    let o = cluster.cli(&["tasks", "submit", "--skill", "x", "--queue", "--timeout", "0"]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("timeout"), "{}", show(&o));
}

#[tokio::test]
async fn the_list_pages_newest_first_with_a_stable_cursor_and_filters() {
    let cluster = Cluster::start().await;
    cluster.register("a", &["x"], 1).await;
    let mut ids = vec![];
    for i in 0..5 {
        ids.push(
            cluster.submit(json!({"name": format!("t{i}"), "required_skills": [if i == 4 { "y" } else { "x" }]})).await,
        );
    }
    let page1 = cluster.get("/api/v1/tasks?limit=2").await;
    let got: Vec<&str> = page1["tasks"].as_array().unwrap().iter().map(|t| t["task_id"].as_str().unwrap()).collect();
    assert_eq!(got, vec![ids[4].as_str(), ids[3].as_str()]);
    // A new task does not shift the next page.
    cluster.submit(json!({"name": "late", "required_skills": ["x"]})).await;
    let next = page1["next"].as_str().unwrap();
    let page2 = cluster.get(&format!("/api/v1/tasks?limit=2&after={next}")).await;
    let got: Vec<&str> = page2["tasks"].as_array().unwrap().iter().map(|t| t["task_id"].as_str().unwrap()).collect();
    assert_eq!(got, vec![ids[2].as_str(), ids[1].as_str()]);
    let page3 = cluster.get(&format!("/api/v1/tasks?limit=2&after={}", page2["next"].as_str().unwrap())).await;
    assert_eq!(page3["tasks"].as_array().unwrap().len(), 1);
    assert!(page3["next"].is_null());
    assert_eq!(cluster.get("/api/v1/tasks?skill=y").await["tasks"].as_array().unwrap().len(), 1);
    assert_eq!(cluster.get("/api/v1/tasks?node=a").await["tasks"].as_array().unwrap().len(), 1);
    assert_eq!(cluster.get("/api/v1/tasks?status=scheduled").await["tasks"][0]["task_id"], ids[0].as_str());
}

#[tokio::test]
async fn reconciliation_requeues_lost_work_and_cancels_stale_work() {
    // A long heartbeat timeout: the node stays online while the reconcile grace passes.
    let cluster = Cluster::start_with(Settings { heartbeat_timeout: 20.0, ..Settings::default() }).await;
    let a = cluster.register("a", &["x"], 2).await;
    let id = cluster.submit(json!({"name": "t", "required_skills": ["x"]})).await;
    cluster.call("POST", "/api/v1/nodes/a/tasks/poll", Some(&a), Some(r#"{"wait_secs": 0}"#)).await;
    cluster.call("POST", &format!("/api/v1/nodes/a/tasks/{id}/start"), Some(&a), Some(r#"{"attempt": 1}"#)).await;
    // The node reports it holds nothing: within the grace nothing happens…
    let (_, hb) = cluster.call("POST", "/api/v1/nodes/a/heartbeat", Some(&a), Some(r#"{"held_tasks": []}"#)).await;
    assert_eq!(hb["cancel"], json!([]));
    assert_eq!(cluster.get(&format!("/api/v1/tasks/{id}")).await["status"], "running");
    // …after it (5 s with these settings), the task is requeued.
    eventually("the task missing from the reports is requeued", Duration::from_secs(20), || async {
        cluster.call("POST", "/api/v1/nodes/a/heartbeat", Some(&a), Some(r#"{"held_tasks": []}"#)).await;
        cluster.get(&format!("/api/v1/tasks/{id}")).await["status"] != "running"
    })
    .await;
    let task = cluster.get(&format!("/api/v1/tasks/{id}")).await;
    assert!(
        task["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["message"].as_str().is_some_and(|m| m.contains("no longer reports it"))),
        "{task}"
    );
    // A task the node holds but the coordinator ended is cancelled on the node.
    let other = cluster.submit(json!({"name": "gone", "required_skills": ["nobody"]})).await;
    cluster.api("POST", &format!("/api/v1/tasks/{other}/cancel"), None).await;
    let held = json!({"held_tasks": [{"task_id": other, "attempt": 1}]}).to_string();
    let (_, hb) = cluster.call("POST", "/api/v1/nodes/a/heartbeat", Some(&a), Some(&held)).await;
    assert_eq!(hb["cancel"], json!([{"task_id": other, "attempt": 1}]));
}

#[tokio::test]
async fn a_new_incarnation_requeues_the_old_ones_tasks_at_once() {
    let cluster = Cluster::start().await;
    let a = cluster.register("a", &["x"], 1).await;
    let id = cluster.submit(json!({"name": "t", "required_skills": ["x"]})).await;
    cluster.call("POST", "/api/v1/nodes/a/tasks/poll", Some(&a), Some(r#"{"wait_secs": 0}"#)).await;
    cluster.call("POST", &format!("/api/v1/nodes/a/tasks/{id}/start"), Some(&a), Some(r#"{"attempt": 1}"#)).await;
    let a2 = cluster.register_with(&a, "a", &["x"], 1).await;
    let task = cluster.get(&format!("/api/v1/tasks/{id}")).await;
    let failed =
        task["events"].as_array().unwrap().iter().find(|e| e["event"] == "failed").unwrap_or_else(|| panic!("{task}"));
    assert!(failed["message"].as_str().unwrap().contains("registered again"), "{failed}");
    let (_, poll) = cluster.call("POST", "/api/v1/nodes/a/tasks/poll", Some(&a2), Some(r#"{"wait_secs": 5}"#)).await;
    assert_eq!(poll["assignments"][0]["attempt"], 2, "{poll}");
}

#[tokio::test]
async fn a_long_poll_hands_over_a_placed_task_at_once() {
    let cluster = Cluster::start().await;
    let a = cluster.register("a", &["x"], 1).await;
    let waiting = {
        let url = cluster.url();
        let http = cluster.http.clone();
        let a = a.clone();
        tokio::spawn(async move {
            let r = http
                .post(format!("{url}/api/v1/nodes/a/tasks/poll"))
                .bearer_auth(a)
                .header("content-type", "application/json")
                .body(r#"{"wait_secs": 20}"#)
                .send()
                .await
                .unwrap();
            r.json::<Value>().await.unwrap()
        })
    };
    let id = cluster.submit(json!({"name": "t", "required_skills": ["x"]})).await;
    // A poll that waited for its timeout (long_poll_timeout is 5 s here) answers empty: an
    // assignment means the placement woke it.
    let poll = waiting.await.unwrap();
    assert_eq!(poll["assignments"][0]["task_id"], id.as_str());
    let (_, empty) = cluster
        .call(
            "POST",
            "/api/v1/nodes/a/tasks/poll",
            Some(&a),
            Some(&json!({"wait_secs": 0.2, "held": [{"task_id": id, "attempt": 1}]}).to_string()),
        )
        .await;
    assert_eq!(empty["assignments"], json!([]), "a held task is not sent again");
}

#[cfg(unix)]
#[tokio::test]
async fn the_tasks_cli_submits_waits_and_reports_with_exit_codes() {
    let cluster = Cluster::start().await;
    let _w = cluster
        .exec_worker(
            "w1",
            &[Skill::exec("echo", "read input; echo \"$input\"\n"), Skill::exec("fail", "echo broken >&2; exit 1\n")],
            &[],
        )
        .await;
    let o = cluster.cli(&[
        "tasks", "submit", "--skill", "echo", "--param", "n=3", "--param", "who=me", "--prompt", "hi", "--wait",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let out: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(out["parameters"], json!({"n": 3, "who": "me", "prompt": "hi"}));
    let o = cluster.cli(&["tasks", "submit", "--skill", "fail", "--retries", "0", "--wait"]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    // Regression (issue 17): "failed after attempt 4: … (after 4 attempts)" said it twice.
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("failed on w1: ") && err.contains("broken") && !err.contains("attempt"), "{}", show(&o));
    let o = cluster.cli(&["tasks", "submit", "--skill", "fail", "--retries", "1", "--wait"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.matches("attempt").count(), 1, "{}", show(&o));
    assert!(err.contains("(after 2 attempts)"), "{}", show(&o));
    let o = cluster.cli(&["tasks", "submit", "--skill", "echo"]);
    let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert!(id.starts_with("task_"), "{}", show(&o));
    let o = cluster.cli(&["tasks", "wait", &id, "--wait-timeout", "20s"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let o = cluster.cli(&["tasks", "get", &id, "--json"]);
    let task: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(task["events"].as_array().unwrap().len(), 4);
    let o = cluster.cli(&["tasks", "list"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.starts_with("TASK") && text.contains(&id), "{text}");
    let o = cluster.cli(&["tasks", "submit", "--skill", "nobody", "--queue", "--params-json", "[1]", "--param", "a=1"]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    let o = cluster.cli(&["tasks", "get", "task_missing"]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let pending = cluster.cli(&["tasks", "submit", "--skill", "nobody", "--queue"]);
    let pid = String::from_utf8_lossy(&pending.stdout).trim().to_string();
    let o = cluster.cli(&["tasks", "wait", &pid, "--wait-timeout", "1"]);
    assert_eq!(o.status.code(), Some(4), "a wait that timed out has its own code: {}", show(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no node has skill 'nobody'"), "{}", show(&o));
    let o = cluster.cli(&["tasks", "cancel", &pid]);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("cancelled"), "{}", show(&o));
}

#[tokio::test]
async fn old_ended_tasks_are_purged() {
    let mut cluster = Cluster::start().await;
    let id = cluster.submit(json!({"name": "keep", "required_skills": ["x"]})).await;
    cluster.api("POST", &format!("/api/v1/tasks/{id}/cancel"), None).await;
    cluster.kill_coordinator();
    // An old task, as a month-old store has it: its event is older (a lower id) than the
    // newest, which retention always keeps.
    let month_ago = openclaw::model::Timestamp::now().0 - 31 * 86_400_000;
    cluster.sql(&format!(
        "INSERT INTO tasks (task_id, seq, name, task_type, priority, required_skills, timeout_ms, max_retries, status, submitted_at, completed_at, idempotency_key)
         VALUES ('task_ancient', 100, 'old', 'batch', 2, '[\"x\"]', 1000, 0, 'completed', 0, {month_ago}, 'ancient-key');
         INSERT INTO events (id, task_id, at, kind, event, status, attempt) VALUES (0, 'task_ancient', 0, 'task', 'completed', 'completed', 1);",
    ));
    cluster.start_coordinator().await;
    eventually("the ancient task is purged", Duration::from_secs(10), || async {
        cluster.api("GET", "/api/v1/tasks/task_ancient", None).await.0 == 404
    })
    .await;
    assert_eq!(cluster.get(&format!("/api/v1/tasks/{id}")).await["status"], "cancelled");
    let events = cluster.sql_int("SELECT count(*) FROM events WHERE task_id = 'task_ancient'");
    assert_eq!(events, 0);
    // Its idempotency key is free again.
    let (status, _) = cluster
        .api(
            "POST",
            "/api/v1/tasks",
            Some(json!({"name": "t", "required_skills": ["x"], "idempotency_key": "ancient-key"})),
        )
        .await;
    assert_eq!(status, 201);
}

/// Places one task needing `skill` and returns the node it went to.
async fn placed_on(cluster: &Cluster, body: Value) -> String {
    let id = cluster.submit(body).await;
    let t = cluster.get(&format!("/api/v1/tasks/{id}")).await;
    t["assigned_node"].as_str().unwrap_or_else(|| panic!("not placed: {t}")).to_string()
}

#[tokio::test]
async fn strategies_choose_as_documented() {
    // least_loaded (default): the emptier node, optional skills break ties.
    let cluster = Cluster::start().await;
    cluster.register("a", &["x"], 4).await;
    cluster.register("b", &["x", "gpu"], 4).await;
    assert_eq!(
        placed_on(&cluster, json!({"name": "t", "required_skills": ["x"], "optional_skills": ["gpu"]})).await,
        "b"
    );
    assert_eq!(placed_on(&cluster, json!({"name": "t", "required_skills": ["x"]})).await, "a", "b has one running");

    // affinity: matching tags first, even when busier.
    let cluster = Cluster::start_with(Settings { strategy: "affinity", ..Settings::default() }).await;
    cluster.register("plain", &["x"], 4).await;
    let body = json!({"node_id": "tagged", "hostname": "t", "platform": "linux", "arch": "x64", "available_skills": ["x"], "max_concurrent_tasks": 4, "tags": ["gpu"]});
    cluster.call("POST", "/api/v1/nodes/register", Some(&cluster.worker_token()), Some(&body.to_string())).await;
    for _ in 0..2 {
        assert_eq!(
            placed_on(&cluster, json!({"name": "t", "required_skills": ["x"], "affinity_tags": ["gpu"]})).await,
            "tagged"
        );
    }

    // best_fit: the most free CPU and memory.
    let cluster = Cluster::start_with(Settings { strategy: "best_fit", ..Settings::default() }).await;
    let hot = cluster.register("hot", &["x"], 4).await;
    let cool = cluster.register("cool", &["x"], 4).await;
    cluster
        .call("POST", "/api/v1/nodes/hot/heartbeat", Some(&hot), Some(r#"{"cpu_usage": 95, "memory_usage": 90}"#))
        .await;
    cluster
        .call("POST", "/api/v1/nodes/cool/heartbeat", Some(&cool), Some(r#"{"cpu_usage": 5, "memory_usage": 10}"#))
        .await;
    assert_eq!(placed_on(&cluster, json!({"name": "t", "required_skills": ["x"]})).await, "cool");

    // round_robin: each eligible node in turn.
    let cluster = Cluster::start_with(Settings { strategy: "round_robin", ..Settings::default() }).await;
    cluster.register("r1", &["x"], 10).await;
    cluster.register("r2", &["x"], 10).await;
    let mut seen = vec![];
    for _ in 0..4 {
        seen.push(placed_on(&cluster, json!({"name": "t", "required_skills": ["x"]})).await);
    }
    assert!(seen[0] != seen[1] && seen[0] == seen[2] && seen[1] == seen[3], "{seen:?}");
}

/// A target is a requirement, unlike affinity tags: the node named, the platform, the tags.
/// `reject_unplaceable` refuses with the pending reason and stores nothing; the `origin`
/// a client claims must be one the API knows.
#[tokio::test]
async fn a_target_pins_placement_and_reject_unplaceable_refuses_with_the_reason() {
    let cluster = Cluster::start().await;
    cluster.register("a", &["x"], 4).await;
    cluster.register("b", &["x"], 4).await;
    let on = |target: Value| json!({"name": "t", "required_skills": ["x"], "target": target});
    for _ in 0..2 {
        assert_eq!(placed_on(&cluster, on(json!({"node": "b"}))).await, "b");
    }
    let out = cluster.cli(&["tasks", "submit", "--skill", "x", "--node", "a", "--json"]);
    assert!(out.status.success(), "{}", show(&out));
    let task: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((task["assigned_node"].as_str(), &task["target"]), (Some("a"), &json!({"node": "a"})));

    let waiting = cluster.submit(on(json!({"platform": "MacOS"}))).await;
    let t = cluster.get(&format!("/api/v1/tasks/{waiting}")).await;
    assert_eq!(
        t["pending_reason"],
        "no node with 'x' matches the target (platform `macos`); nodes with it: a (linux), b (linux)"
    );
    let out = cluster.cli(&["tasks", "get", &waiting]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("runs only on: platform `macos`"), "{}", show(&out));

    let before = cluster.get("/api/v1/tasks").await["tasks"].as_array().unwrap().len();
    let refused =
        json!({"name": "t", "required_skills": ["x"], "target": {"tags": ["gpu"]}, "reject_unplaceable": true});
    let (status, answer) = cluster.api("POST", "/api/v1/tasks", Some(refused)).await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["error"]["code"], "unplaceable");
    assert_eq!(
        answer["error"]["message"],
        "no node with 'x' matches the target (tag `gpu`); nodes with it: a (linux; no tags), b (linux; no tags)"
    );
    let accepted = json!({"name": "t", "required_skills": ["x"], "reject_unplaceable": true, "origin": "mcp"});
    let (status, answer) = cluster.api("POST", "/api/v1/tasks", Some(accepted)).await;
    assert_eq!((status, answer["origin"].as_str()), (201, Some("mcp")), "a full node is no reason to refuse");
    let claimed = json!({"name": "t", "required_skills": ["x"], "origin": "cron"});
    let (status, answer) = cluster.api("POST", "/api/v1/tasks", Some(claimed)).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap().starts_with("origin: `cron` is not one of api, mcp"));
    let after = cluster.get("/api/v1/tasks").await["tasks"].as_array().unwrap().len();
    assert_eq!(after, before + 1, "only the accepted submission was stored");
}

/// Regression (review L8): right after a coordinator restart a node is offline until it
/// heartbeats, but its worker may still run the task: a cancel must reach that worker, and
/// only end the task on its own when the node's deadline passes.
#[tokio::test]
async fn cancelling_a_task_whose_node_is_gone_ends_it_at_the_nodes_deadline() {
    let mut cluster = Cluster::start_with(Settings { heartbeat_timeout: 2.0, ..Settings::default() }).await;
    let a = cluster.register("a", &["x"], 1).await;
    let id = cluster.submit(json!({"name": "t", "required_skills": ["x"], "max_retries": 5})).await;
    cluster.call("POST", &format!("/api/v1/nodes/a/tasks/{id}/start"), Some(&a), Some(r#"{"attempt": 1}"#)).await;
    // After a restart the node is offline until it heartbeats; its task still counts as
    // running there until the node's deadline. Cancelling it must not wait for a worker.
    cluster.kill_coordinator();
    cluster.start_coordinator().await;
    let task = cluster.get(&format!("/api/v1/tasks/{id}")).await;
    assert_eq!(
        (task["status"].as_str(), cluster.node("a").await["status"].as_str()),
        (Some("running"), Some("offline"))
    );
    let (status, task) = cluster.api("POST", &format!("/api/v1/tasks/{id}/cancel"), None).await;
    assert_eq!(
        (status, task["status"].as_str(), task["cancel_requested"].as_bool()),
        (200, Some("running"), Some(true)),
        "{task}"
    );
    let task = cluster.wait_task(&id, 10).await;
    assert_eq!(task["status"], "cancelled", "{task}");
    assert!(task["error"].as_str().unwrap().contains("no heartbeat"), "{task}");
}

/// Regression (review H2): a failure reported after a cancel was acknowledged used to put
/// the task back in the queue to run again.
#[tokio::test]
async fn a_failure_after_a_cancel_ends_cancelled_not_retried() {
    let cluster = Cluster::start().await;
    let a = cluster.register("a", &["x"], 2).await;
    for outcome in ["failed", "timeout"] {
        let id = cluster.submit(json!({"name": "t", "required_skills": ["x"]})).await;
        cluster.call("POST", &format!("/api/v1/nodes/a/tasks/{id}/start"), Some(&a), Some(r#"{"attempt": 1}"#)).await;
        let (_, task) = cluster.api("POST", &format!("/api/v1/tasks/{id}/cancel"), None).await;
        assert_eq!(task["cancel_requested"], true);
        let report = json!({"attempt": 1, "outcome": outcome, "error": "exit 143"}).to_string();
        let (status, _) =
            cluster.call("POST", &format!("/api/v1/nodes/a/tasks/{id}/result"), Some(&a), Some(&report)).await;
        assert_eq!(status, 200);
        let task = cluster.get(&format!("/api/v1/tasks/{id}")).await;
        assert_eq!(
            (task["status"].as_str(), task["attempt"].as_u64()),
            (Some("cancelled"), Some(1)),
            "{outcome}: {task}"
        );
    }
}

/// Regression (review H1): a poll with an enormous wait_secs aborted the coordinator.
#[tokio::test]
async fn absurd_numbers_are_refused_or_clamped_not_fatal() {
    let cluster = Cluster::start_with(Settings { heartbeat_timeout: 30.0, ..Settings::default() }).await;
    let a = cluster.register("a", &["x"], 1).await;
    let (status, _) =
        cluster.call("POST", "/api/v1/nodes/a/tasks/poll", Some(&a), Some(r#"{"wait_secs": 1e20}"#)).await;
    assert_eq!(status, 200);
    let (status, _) = cluster.call("POST", "/api/v1/nodes/a/tasks/poll", Some(&a), Some(r#"{"wait_secs": -5}"#)).await;
    assert_eq!(status, 200);
    let id = cluster.submit(json!({"name": "t", "required_skills": ["nobody"]})).await;
    let (status, _) = cluster.api("GET", &format!("/api/v1/tasks/{id}/wait?timeout=1e20"), None).await;
    assert_eq!(status, 400);
    let (status, _) = cluster
        .api("POST", "/api/v1/tasks", Some(json!({"name": "t", "required_skills": ["x"], "timeout": 1e300})))
        .await;
    assert_eq!(status, 400);
    let id = cluster.submit(json!({"name": "t", "required_skills": ["x"]})).await;
    let report = json!({"attempt": 1, "outcome": "failed", "retry_after": 1e300, "duration_ms": u64::MAX}).to_string();
    let (status, _) =
        cluster.call("POST", &format!("/api/v1/nodes/a/tasks/{id}/result"), Some(&a), Some(&report)).await;
    assert_eq!(status, 200);
    let (status, _) = cluster.call("GET", "/health", None, None).await;
    assert_eq!(status, 200, "the coordinator survived");
}

/// Regression (review H3): a result larger than the coordinator's body limit was retried
/// for ever and held the worker's slot.
#[cfg(unix)]
#[tokio::test]
async fn a_result_too_large_for_the_coordinator_fails_the_attempt_and_frees_the_slot() {
    let cluster =
        Cluster::start_with(Settings { extra_coordinator: "  max_body_bytes: 65536\n".into(), ..Settings::default() })
            .await;
    let skills = cluster.path().join("skills");
    // 50,000 quotes print as 100,000 bytes of escaped JSON text: over the 64 KiB limit.
    exec_skill(&skills, "big", "head -c 50000 /dev/zero | tr '\\0' '\"'\n");
    let _w = cluster.worker("w1", &skills, &[]);
    cluster.wait_online("w1", &["big"]).await;
    let id = cluster.submit(json!({"name": "t", "required_skills": ["big"], "max_retries": 0})).await;
    let task = cluster.wait_task(&id, 20).await;
    assert_eq!(task["status"], "failed", "{task}");
    assert!(task["error"].as_str().unwrap().contains("max_body_bytes"), "{task}");
    cluster.wait_node("w1", "idle", Duration::from_secs(10), |n| n["running_tasks"] == 0).await;
}

/// Regression (review H4): while a cancelled task was still stopping, every poll came back
/// at once with the same cancel: tens of thousands of polls a second.
#[cfg(unix)]
#[tokio::test]
async fn a_slow_cancel_does_not_make_the_worker_spin() {
    let cluster = Cluster::start().await;
    let skills = cluster.skills_dir();
    let _w =
        cluster.exec_worker("w1", &[Skill::exec("stubborn", "trap '' TERM\ntouch started\nsleep 20\n")], &[]).await;
    let id = cluster.submit(json!({"name": "t", "required_skills": ["stubborn"]})).await;
    let started = skills.join("stubborn/started");
    eventually("the task started", Duration::from_secs(10), || async { started.exists() }).await;
    let polls = || async { cluster.metric("openclaw_http_requests_total{route=\"node_poll\"").await as u64 };
    let before = polls().await;
    cluster.api("POST", &format!("/api/v1/tasks/{id}/cancel"), None).await;
    // The process ignores SIGTERM: the worker needs the kill grace (3 s) to stop it.
    let task = cluster.wait_task(&id, 20).await;
    assert_eq!(task["status"], "cancelled", "{task}");
    let during = polls().await - before;
    assert!(during < 50, "{during} polls while one cancel took effect");
}

/// Regression (hardening, High): a join-token holder took over a live node by sending the
/// victim's `ip_address`, received its running task with its parameters, and had its forged
/// result recorded. Every step of that sequence must now fail and leave the victim's task
/// and result alone.
#[tokio::test]
async fn a_join_token_cannot_take_over_a_live_node() {
    let cluster = Cluster::start_with(Settings { heartbeat_timeout: 30.0, ..Default::default() }).await;
    let join = cluster.worker_token();
    let body = json!({"node_id": "victim", "hostname": "victim.local", "platform": "linux", "arch": "x64",
        "available_skills": ["pay"], "ip_address": "192.168.1.10"})
    .to_string();
    let (status, answer) = cluster.call("POST", "/api/v1/nodes/register", Some(&join), Some(&body)).await;
    assert_eq!(status, 200, "{answer}");
    let victim = answer["node_secret"].as_str().unwrap().to_string();
    let id = cluster.submit(json!({"name": "t", "required_skills": ["pay"], "parameters": {"api_key": "k-123"}})).await;
    let (_, poll) =
        cluster.call("POST", "/api/v1/nodes/victim/tasks/poll", Some(&victim), Some(r#"{"wait_secs": 5}"#)).await;
    assert_eq!(poll["assignments"][0]["parameters"]["api_key"], "k-123");
    let (status, _) = cluster
        .call("POST", &format!("/api/v1/nodes/victim/tasks/{id}/start"), Some(&victim), Some(r#"{"attempt": 1}"#))
        .await;
    assert_eq!(status, 200);

    // 1. The join token with the victim's id and address: refused, naming the code.
    let (status, answer) = cluster.call("POST", "/api/v1/nodes/register", Some(&join), Some(&body)).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (409, Some("node_id_in_use")), "{answer}");
    // 2. The join token on the victim's own endpoints.
    for (path, report) in [
        ("/api/v1/nodes/victim/tasks/poll".to_string(), r#"{"wait_secs": 0}"#),
        (
            format!("/api/v1/nodes/victim/tasks/{id}/result"),
            r#"{"attempt": 1, "outcome": "completed", "result": "forged"}"#,
        ),
        ("/api/v1/nodes/victim/heartbeat".to_string(), "{}"),
    ] {
        let (status, answer) = cluster.call("POST", &path, Some(&join), Some(report)).await;
        assert_eq!(status, 403, "{path}: {answer}");
    }
    // 3. The victim is untouched: its secret works, its task is still its attempt 1.
    let (status, _) = cluster.call("POST", "/api/v1/nodes/victim/heartbeat", Some(&victim), Some("{}")).await;
    assert_eq!(status, 200, "the victim's secret still works");
    let task = cluster.get(&format!("/api/v1/tasks/{id}")).await;
    assert_eq!((task["status"].as_str(), task["attempt"].as_u64()), (Some("running"), Some(1)), "{task}");
    assert_eq!(task["assigned_node"], "victim");
    let (status, _) = cluster
        .call(
            "POST",
            &format!("/api/v1/nodes/victim/tasks/{id}/result"),
            Some(&victim),
            Some(r#"{"attempt": 1, "outcome": "completed", "result": {"paid": true}}"#),
        )
        .await;
    assert_eq!(status, 200);
    let task = cluster.get(&format!("/api/v1/tasks/{id}")).await;
    assert_eq!((task["status"].clone(), task["result"].clone()), (json!("completed"), json!({"paid": true})));

    // The admin token may register a live node again: it rotates the secret, says so in the
    // event history, and the old secret stops working.
    let rotated = cluster.register_with(&cluster.admin(), "victim", &["pay"], 1).await;
    let (status, _) = cluster.call("POST", "/api/v1/nodes/victim/heartbeat", Some(&victim), Some("{}")).await;
    assert_eq!(status, 401, "the rotated secret is void");
    let (status, _) = cluster.call("POST", "/api/v1/nodes/victim/heartbeat", Some(&rotated), Some("{}")).await;
    assert_eq!(status, 200);
    let rotations =
        cluster.sql_int("SELECT count(*) FROM events WHERE node_id = 'victim' AND event = 'secret_rotated'");
    assert_eq!(rotations, 1, "the rotation is in the event history");
    // A node's own secret registers it again (a restarted worker), but not another node.
    let again = cluster.register_with(&rotated, "victim", &["pay"], 1).await;
    let other = json!({"node_id": "other", "hostname": "o", "platform": "linux", "arch": "x64"}).to_string();
    let (status, answer) = cluster.call("POST", "/api/v1/nodes/register", Some(&again), Some(&other)).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (403, Some("forbidden")), "{answer}");
}

/// The join token takes over a node only once it is offline.
#[tokio::test]
async fn the_join_token_takes_over_an_offline_node() {
    let cluster = Cluster::start().await;
    let old = cluster.register("pi", &["x"], 1).await;
    let (status, _) = cluster.call("POST", "/api/v1/nodes/pi/shutdown", Some(&old), None).await;
    assert_eq!(status, 200);
    cluster.wait_node("pi", "offline", Duration::from_secs(10), |n| n["status"] == "offline").await;
    // Offline, but still within its deadline: the old worker may come back, so wait for it.
    eventually("the join token can register the offline node", Duration::from_secs(10), || async {
        let body = json!({"node_id": "pi", "hostname": "new", "platform": "linux", "arch": "x64"}).to_string();
        cluster.call("POST", "/api/v1/nodes/register", Some(&cluster.worker_token()), Some(&body)).await.0 == 200
    })
    .await;
    assert_eq!(cluster.node("pi").await["hostname"], "new");
}

#[tokio::test]
async fn an_offline_node_can_be_forgotten() {
    let cluster = Cluster::start().await;
    let a = cluster.register("a", &["x"], 1).await;
    let (status, body) = cluster.api("DELETE", "/api/v1/nodes/a", None).await;
    assert_eq!(status, 409, "an online node: {body}");
    cluster.call("POST", "/api/v1/nodes/a/shutdown", Some(&a), None).await;
    let o = cluster.cli(&["nodes", "forget", "a"]);
    assert!(o.status.success(), "{}", show(&o));
    let (status, _) = cluster.api("GET", "/api/v1/nodes/a", None).await;
    assert_eq!(status, 404);
    let (status, _) = cluster.call("POST", "/api/v1/nodes/a/heartbeat", Some(&a), Some("{}")).await;
    assert_eq!(status, 401, "its secret is gone too");
    let (_, check) = cluster.api("POST", "/api/v1/cluster/check-heartbeat", None).await;
    assert_eq!(check["all_nodes_healthy"], true);
}
