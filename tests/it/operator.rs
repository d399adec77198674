//! What an operator leans on: backups of a running coordinator, retrying an ended task,
//! and waits that say why a task waits and outlive a coordinator restart.

use std::time::Duration;

use serde_json::json;

use crate::support::{Cluster, Proc, Skill, eventually, exec_skill, show};

/// A backup taken under load restores into a new coordinator that serves every task the
/// backup held, with its status and history.
#[cfg(unix)]
#[tokio::test]
async fn a_backup_taken_under_load_restores_into_a_working_coordinator() {
    let cluster = Cluster::start().await;
    let _worker = cluster.exec_worker("w1", &[Skill::exec("echo", "cat\n")], &[]).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(
            cluster
                .submit(json!({"name": format!("before-{i}"), "required_skills": ["echo"], "parameters": {"i": i}}))
                .await,
        );
    }
    // Load while the backup runs: submissions racing it.
    let load = {
        let (http, url, admin) = (cluster.http.clone(), cluster.url(), cluster.admin());
        tokio::spawn(async move {
            for i in 0..100 {
                let body = json!({"name": format!("during-{i}"), "required_skills": ["echo"]});
                let r = http.post(format!("{url}/api/v1/tasks")).bearer_auth(&admin).json(&body).send().await.unwrap();
                assert_eq!(r.status(), 201);
            }
        })
    };
    let file = cluster.path().join("backup.db");
    let o = cluster.cli(&["backup", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("restore:"), "{}", show(&o));
    // Issue 17, item 9: the copy was 0644 while data/ is 0700 with 0600 files.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the backup is readable by its owner only: {mode:o}");
    }
    load.await.unwrap();
    // Taking it again onto the same name is refused and changes nothing.
    let again = cluster.cli(&["backup", file.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(2), "{}", show(&again));

    // A new coordinator on the backup.
    let mut restored = Cluster::start_on_copy(&file).await;
    for id in &ids {
        let t = restored.get(&format!("/api/v1/tasks/{id}")).await;
        assert_eq!(t["events"][0]["event"], "submitted", "{t}");
    }
    let listed = restored.get("/api/v1/tasks?limit=1000").await["tasks"].as_array().unwrap().len();
    assert!(listed >= ids.len(), "{listed} tasks restored");
    // It works: a new worker takes the tasks that were still waiting.
    let skills2 = restored.path().join("skills");
    exec_skill(&skills2, "echo", "cat\n");
    let _w = restored.worker("w2", &skills2, &[]);
    let id = restored.submit(json!({"name": "after", "required_skills": ["echo"]})).await;
    assert_eq!(restored.wait_task(&id, 30).await["status"], "completed");
    restored.kill_coordinator();
}

#[tokio::test]
async fn an_ended_task_can_be_retried_as_a_new_linked_task() {
    let cluster = Cluster::start().await;
    let id = cluster.submit(json!({"name": "t", "required_skills": ["nobody"], "parameters": {"p": 1}})).await;
    let (status, answer) = cluster.api("POST", &format!("/api/v1/tasks/{id}/retry"), None).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (409, Some("task_active")), "{answer}");
    cluster.api("POST", &format!("/api/v1/tasks/{id}/cancel"), None).await;
    let (status, new) = cluster.api("POST", &format!("/api/v1/tasks/{id}/retry"), None).await;
    assert_eq!(status, 201, "{new}");
    assert_eq!((new["retry_of"].as_str(), new["parameters"]["p"].as_i64()), (Some(id.as_str()), Some(1)));
    assert_ne!(new["task_id"], id.as_str());
    let history = cluster.get(&format!("/api/v1/tasks/{}", new["task_id"].as_str().unwrap())).await;
    assert!(history["events"][0]["message"].as_str().unwrap().contains(&id), "{history}");
    let o = cluster.cli(&["tasks", "retry", &id]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(cluster.cli(&["tasks", "retry", "task_nope"]).status.code(), Some(1));
}

/// Regression (operator review): `tasks submit --skill wordcout --wait` printed nothing and
/// hung; `tasks wait` showed the reason only after 60 s; a timed-out wait exited 1 like a
/// failed task.
#[tokio::test]
async fn waits_say_why_at_once_and_a_timeout_has_its_own_exit_code() {
    let cluster = Cluster::start().await;
    let config = cluster.config.display().to_string();
    let waiting = Proc::spawn(
        "submit-wait",
        &["-c", &config, "tasks", "submit", "--skill", "wordcout", "--queue", "--wait"],
        &[],
        cluster.path(),
        &cluster.logs(),
    );
    eventually("the pending reason is printed", Duration::from_secs(20), || async {
        waiting.err().contains("pending: no node has skill 'wordcout'")
    })
    .await;
    drop(waiting);
    let id = cluster.submit(json!({"name": "t", "required_skills": ["nobody"]})).await;
    let o = cluster.cli(&["tasks", "wait", &id, "--wait-timeout", "1s"]);
    assert_eq!(o.status.code(), Some(4), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("pending: no node has skill 'nobody'") && err.contains("still pending"), "{err}");
}

/// Issue 17, item 6: `tasks submit --skill ecoh --wait` queued a task no node could ever
/// take and waited forever, and `--timeout` (the attempt's limit) could not end the wait.
/// A skill no node has ever advertised is refused (exit 2), naming the known skills and the
/// nearest one, and nothing is stored; `--queue` submits it, and `--wait-timeout` ends the
/// wait with exit 4 while the task stays queued.
#[tokio::test]
async fn a_misspelt_skill_is_refused_with_a_suggestion_unless_queued() {
    let cluster = Cluster::start().await;
    cluster.register("w1", &["echo", "summarize"], 1).await;
    let o = cluster.cli(&["tasks", "submit", "--skill", "ecoh", "--wait"]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no node has ever advertised skill 'ecoh'") && err.contains("did you mean 'echo'?"), "{err}");
    assert!(err.contains("echo, summarize") && err.contains("--queue"), "{err}");
    assert_eq!(cluster.get("/api/v1/tasks").await["tasks"], json!([]), "nothing was stored");
    // A name far from every known one gets no suggestion.
    let o = cluster.cli(&["tasks", "submit", "--skill", "transcribe"]);
    assert!(!String::from_utf8_lossy(&o.stderr).contains("did you mean"), "{}", show(&o));
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));

    let o = cluster.cli(&["tasks", "submit", "--skill", "ecoh", "--queue", "--timeout", "1h", "--wait-timeout", "1s"]);
    assert_eq!(o.status.code(), Some(4), "the wait's own limit passed: {}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("pending: no node has skill 'ecoh'") && err.contains("still pending"), "{err}");
    let tasks = cluster.get("/api/v1/tasks").await;
    assert_eq!(tasks["tasks"][0]["status"], "pending", "{tasks}");
    assert_eq!(tasks["tasks"][0]["timeout"], 3600.0, "--timeout stays the attempt's limit: {tasks}");
}

/// A wait outlives a coordinator restart: it reconnects and reports the task's end.
#[cfg(unix)]
#[tokio::test]
async fn a_wait_survives_a_coordinator_restart() {
    let mut cluster = Cluster::start().await;
    let skills = cluster.path().join("skills");
    let gate = cluster.path().join("gate");
    exec_skill(
        &skills,
        "gated",
        &format!("while [ ! -f {} ]; do sleep 0.05; done; echo '{{\"ok\": true}}'\n", gate.display()),
    );
    let _worker = cluster.worker("w1", &skills, &[]);
    cluster.wait_online("w1", &["gated"]).await;
    let id = cluster.submit(json!({"name": "t", "required_skills": ["gated"]})).await;
    let config = cluster.config.display().to_string();
    let mut wait = Proc::spawn(
        "wait",
        &["-c", &config, "tasks", "wait", &id, "--wait-timeout", "120s"],
        &[],
        cluster.path(),
        &cluster.logs(),
    );
    eventually("the task runs", Duration::from_secs(20), || async {
        cluster.get(&format!("/api/v1/tasks/{id}")).await["status"] == "running"
    })
    .await;
    cluster.kill_coordinator();
    eventually("the wait notices", Duration::from_secs(30), || async {
        wait.err().contains("waiting for the coordinator")
    })
    .await;
    cluster.start_coordinator().await;
    std::fs::write(&gate, "").unwrap();
    assert_eq!(wait.wait_exit(Duration::from_secs(60)).await.code(), Some(0), "{}", wait.logs());
    assert!(wait.out().contains("\"ok\": true"), "{}", wait.logs());
}

/// Regression (operator review): every retry of a deterministic failure ran on the same
/// node although another had the skill. A skill can also say which exit codes mean
/// "retrying cannot help".
#[cfg(unix)]
#[tokio::test]
async fn retries_go_to_another_node_and_permanent_exit_codes_are_not_retried() {
    let cluster = Cluster::start().await;
    // The same skill on two nodes; on w1 it always fails (say, a tool is broken there).
    let write = |dir: &std::path::Path| {
        let d = dir.join("flaky");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("SKILL.md"),
            "---\nname: flaky\ndescription: d\nmetadata:\n  cluster:\n    run: [sh, run.sh]\n    permanent_exit_codes: [64]\n---\n",
        )
        .unwrap();
        std::fs::write(
            d.join("run.sh"),
            "read -r task\ncase \"$task\" in *permanent*) exit 64;; esac\n[ \"$OPENCLAW_NODE_ID\" = w1 ] && exit 3\necho '{\"on\": \"'$OPENCLAW_NODE_ID'\"}'\n",
        )
        .unwrap();
    };
    let (s1, s2) = (cluster.path().join("skills1"), cluster.path().join("skills2"));
    write(&s1);
    write(&s2);
    let _w1 = cluster.worker("w1", &s1, &[]);
    cluster.wait_online("w1", &["flaky"]).await;
    // Only w1 is there: the first attempt runs on it and fails.
    let id = cluster.submit(json!({"name": "t", "required_skills": ["flaky"], "max_retries": 3})).await;
    eventually("the first attempt failed", Duration::from_secs(20), || async {
        cluster.get(&format!("/api/v1/tasks/{id}")).await["failed_on"] == json!(["w1"])
    })
    .await;
    let _w2 = cluster.worker("w2", &s2, &[]);
    let task = cluster.wait_task(&id, 60).await;
    assert_eq!((task["status"].as_str(), task["result"]["on"].as_str()), (Some("completed"), Some("w2")), "{task}");
    let placed_away = task["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["event"] == "scheduled" && e["message"].as_str().is_some_and(|m| m.contains("away from `w1`")));
    assert!(placed_away, "the history says the retry went elsewhere: {task}");
    // Exit code 64 is declared permanent: no retry at all.
    let id = cluster.submit(json!({"name": "permanent", "required_skills": ["flaky"], "max_retries": 3})).await;
    let task = cluster.wait_task(&id, 60).await;
    assert_eq!(
        (task["status"].as_str(), task["attempt"].as_u64(), task["retry_count"].as_u64()),
        (Some("failed"), Some(1), Some(0)),
        "{task}"
    );
    assert!(task["error"].as_str().unwrap().contains("permanent"), "{task}");
}
