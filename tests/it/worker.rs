//! The worker process: joining with exactly its eligible skills, live rescans, the
//! losing and finding the coordinator, a wrong token, graceful leave. (The gateway check is
//! in `openclaw_gateway`, against the real OpenClaw.)

use std::time::Duration;

use serde_json::json;

use crate::support::{Cluster, Settings, Skill, agent_skill, eventually, exec_skill};

#[cfg(unix)]
#[tokio::test]
async fn a_worker_joins_with_exactly_its_eligible_skills() {
    let cluster = Cluster::start().await;
    let skills = cluster.path().join("skills");
    exec_skill(&skills, "echo", "cat\n");
    Skill::command("needs-bin", &["cat"]).bins(&["zzz-not-installed"]).write(&skills);
    Skill::command("needs-env", &["cat"]).env(&["ZZZ_UNSET_VAR"]).write(&skills);
    std::fs::create_dir_all(skills.join("broken")).unwrap();
    std::fs::write(skills.join("broken/SKILL.md"), "---\nname: [oops\n---\n").unwrap();
    // An agent skill with no gateway (worker.port points at nothing): listed unavailable.
    agent_skill(&skills, "chat");

    let worker = cluster.worker("w1", &skills, &["--tag", "gpu"]);
    let node = cluster.wait_online("w1", &["echo"]).await;
    assert_eq!(node["tags"], json!(["gpu"]));
    assert_eq!(node["max_concurrent_tasks"], 5);
    assert_eq!(node["platform"], "linux");
    assert!(["x64", "arm64"].contains(&node["arch"].as_str().unwrap()), "{node}");
    assert_eq!(node["ip_address"], "127.0.0.1", "the address used to reach the coordinator");
    assert!(node["unavailable_skills"]["chat"].as_str().unwrap().contains("not reachable"), "{node}");
    assert_eq!(cluster.get("/api/v1/nodes/skills/echo").await.as_array().unwrap().len(), 1);
    assert_eq!(cluster.get("/api/v1/nodes/skills/needs-env").await, json!([]));
    worker.wait_for_output("skipping a skill file", Duration::from_secs(5)).await;
    let warn = worker.out().lines().find(|l| l.contains("skipping a skill")).unwrap().to_string();
    assert!(warn.contains("broken/SKILL.md") && warn.contains("\"level\":\"WARN\""), "{warn}");

    // With the env var set, the gated skill is eligible.
    let w2 = cluster.worker_env("w2", &skills, &[], &[("ZZZ_UNSET_VAR", "1")]);
    cluster.wait_online("w2", &["echo", "needs-env"]).await;
    drop(w2);
    drop(worker);
}

/// Regression (review H5): a skill name the coordinator refuses made every heartbeat fail
/// and took the node offline.
#[cfg(unix)]
#[tokio::test]
async fn a_skill_with_an_overlong_name_is_skipped_not_fatal() {
    let cluster = Cluster::start().await;
    let skills = cluster.skills_dir();
    let _worker = cluster.exec_worker("w1", &[Skill::exec("fine", "cat\n")], &[]).await;
    exec_skill(&skills, &"n".repeat(129), "cat\n");
    exec_skill(&skills, "later", "cat\n");
    cluster.wait_online("w1", &["fine", "later"]).await;
    // Heartbeats keep coming for longer than heartbeat_timeout (3 s): the node stays online.
    let first = cluster.node("w1").await["last_heartbeat"].as_str().unwrap().to_string();
    let first = openclaw::util::parse_rfc3339(&first).unwrap();
    eventually("heartbeats for longer than the timeout", Duration::from_secs(20), || async {
        let last = cluster.node("w1").await["last_heartbeat"].as_str().map(str::to_string).unwrap_or_default();
        openclaw::util::parse_rfc3339(&last).is_some_and(|l| l - first > 3500)
    })
    .await;
    assert_eq!(cluster.node("w1").await["status"], "online");
}

#[cfg(unix)]
#[tokio::test]
async fn skill_changes_reach_the_coordinator_without_a_restart() {
    let cluster = Cluster::start().await;
    let skills = cluster.skills_dir();
    let _worker = cluster.exec_worker("w1", &[Skill::exec("one", "cat\n")], &[]).await;
    exec_skill(&skills, "two", "cat\n");
    cluster.wait_online("w1", &["one", "two"]).await;
    std::fs::write(skills.join("one/SKILL.md"), "---\nname: [broken\n---\n").unwrap();
    cluster.wait_online("w1", &["two"]).await;
    std::fs::remove_dir_all(skills.join("two")).unwrap();
    cluster.wait_online("w1", &[]).await;
}

#[cfg(unix)]
#[tokio::test]
async fn kill_9_makes_the_node_offline_after_the_timeout() {
    let cluster = Cluster::start_with(Settings { heartbeat_timeout: 2.0, ..Settings::default() }).await;
    let mut worker = cluster.exec_worker("w1", &[Skill::exec("echo", "cat\n")], &[]).await;
    worker.kill9();
    cluster.wait_node("w1", "offline", Duration::from_secs(20), |n| n["status"] == "offline").await;
}

#[cfg(unix)]
#[tokio::test]
async fn the_worker_finds_a_restarted_coordinator_by_itself() {
    let settings = Settings { heartbeat_interval: 1.0, ..Settings::default() };
    let mut cluster = Cluster::start_with(settings).await;
    let worker = cluster.exec_worker("w1", &[Skill::exec("echo", "cat\n")], &[]).await;
    cluster.kill_coordinator();
    worker.wait_for_output("the coordinator is not answering", Duration::from_secs(10)).await;
    cluster.start_coordinator().await;
    cluster.wait_node("w1", "online again", Duration::from_secs(20), |n| n["status"] == "online").await;
    worker.wait_for_output("connected to the coordinator again", Duration::from_secs(5)).await;
    let warnings = worker.out().lines().filter(|l| l.contains("the coordinator is not answering")).count();
    assert_eq!(warnings, 1, "one WARN per outage, not one per attempt:\n{}", worker.out());
}

#[cfg(unix)]
#[tokio::test]
async fn a_worker_started_before_the_coordinator_waits_for_it() {
    let mut cluster = Cluster::new(Settings::default());
    // The worker starts first, so it must know the coordinator's port in advance.
    cluster.reserve_port();
    let skills = cluster.path().join("skills");
    exec_skill(&skills, "echo", "cat\n");
    // Auth off: no token file exists before the first coordinator start.
    cluster.append_config("auth:\n  enabled: false\n");
    let mut worker = cluster.worker("w1", &skills, &[]);
    worker.wait_for_output("the coordinator is not answering", Duration::from_secs(10)).await;
    assert!(worker.is_running(), "the worker must not exit while the coordinator is away");
    cluster.start_coordinator().await;
    cluster.wait_online("w1", &["echo"]).await;
}

#[tokio::test]
async fn a_wrong_token_exits_1_saying_so() {
    let cluster = Cluster::start().await;
    let skills = cluster.path().join("skills");
    std::fs::create_dir_all(&skills).unwrap();
    let mut worker = cluster.worker("w1", &skills, &["--token", "definitely-not-the-token"]);
    let status = worker.wait_exit(Duration::from_secs(15)).await;
    assert_eq!(status.code(), Some(1), "{}", worker.logs());
    assert!(worker.err().contains("join token") && worker.err().contains("401"), "{}", worker.logs());
}

#[cfg(unix)]
#[tokio::test]
async fn sigterm_lets_running_tasks_finish_then_leaves() {
    let cluster = Cluster::start().await;
    let skills = cluster.path().join("skills");
    let gate = cluster.path().join("gate");
    exec_skill(
        &skills,
        "gated",
        &format!("touch started; while [ ! -f {} ]; do sleep 0.05; done; echo '{{\"ok\": true}}'\n", gate.display()),
    );
    let mut worker = cluster.worker("w1", &skills, &[]);
    cluster.wait_online("w1", &["gated"]).await;
    let id = cluster.submit(json!({"name": "g", "required_skills": ["gated"]})).await;
    let started = skills.join("gated/started");
    eventually("the task started", Duration::from_secs(10), || async { started.exists() }).await;
    worker.term();
    worker.wait_for_output("taking no new tasks", Duration::from_secs(5)).await;
    assert!(worker.is_running(), "the worker waits for its running task");
    std::fs::write(&gate, "").unwrap();
    let task = cluster.wait_task(&id, 20).await;
    assert_eq!(task["status"], "completed", "{task}");
    let status = worker.wait_exit(Duration::from_secs(15)).await;
    assert_eq!(status.code(), Some(0), "{}", worker.logs());
    assert_eq!(cluster.node("w1").await["status"], "offline", "the node said it was leaving");
}

#[cfg(unix)]
#[tokio::test]
async fn the_default_node_id_comes_from_the_host_name() {
    let cluster = Cluster::start().await;
    let skills = cluster.path().join("skills");
    std::fs::create_dir_all(&skills).unwrap();
    let config = cluster.config.display().to_string();
    let skills_arg = skills.display().to_string();
    let _worker = crate::support::Proc::spawn(
        "worker-default",
        &["-c", &config, "worker", "--skills-dir", &skills_arg],
        &[],
        cluster.path(),
        &cluster.logs(),
    );
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim().to_ascii_lowercase();
    let expected = openclaw::model::node_id_from_hostname(&host);
    cluster.wait_node(&expected, "registered", Duration::from_secs(10), |n| !n.is_null()).await;
}

/// Regression (hardening): a second worker with a node id already running stayed up and
/// both ran tasks (some twice). Now the second one stops at once, saying why — whether it
/// runs on the same machine (the node-id lock) or on another (the coordinator's 409).
#[cfg(unix)]
#[tokio::test]
async fn a_second_live_worker_with_the_same_id_stops_at_once() {
    let cluster = Cluster::start_with(Settings { heartbeat_timeout: 30.0, ..Default::default() }).await;
    let skills = cluster.skills_dir();
    let mut a = cluster.exec_worker("dup", &[Skill::exec("echo", "cat\n")], &[]).await;
    let config = cluster.config.display().to_string();
    let skills_arg = skills.display().to_string();
    let args = |state_dir: &str| -> Vec<String> {
        let mut v: Vec<String> = ["-c", &config, "worker", "--node-id", "dup", "--skills-dir", &skills_arg]
            .iter()
            .map(|s| s.to_string())
            .collect();
        if !state_dir.is_empty() {
            v.extend(["--state-dir".to_string(), state_dir.to_string()]);
        }
        v
    };
    // Same machine, same state dir: the lock.
    let same = args("");
    let mut b = crate::support::Proc::spawn(
        "worker-dup-same",
        &same.iter().map(String::as_str).collect::<Vec<_>>(),
        &[],
        cluster.path(),
        &cluster.logs(),
    );
    assert_eq!(b.wait_exit(Duration::from_secs(20)).await.code(), Some(1), "{}", b.logs());
    assert!(b.err().contains("already running on this machine"), "{}", b.logs());
    // Another machine (its own state dir): the coordinator refuses the join token.
    let other_dir = cluster.path().join("other-machine");
    let other = args(&other_dir.display().to_string());
    let mut c = crate::support::Proc::spawn(
        "worker-dup-other",
        &other.iter().map(String::as_str).collect::<Vec<_>>(),
        &[],
        cluster.path(),
        &cluster.logs(),
    );
    assert_eq!(c.wait_exit(Duration::from_secs(20)).await.code(), Some(1), "{}", c.logs());
    assert!(c.err().contains("node_id_in_use") && c.err().contains("owns this node id"), "{}", c.logs());
    assert!(a.is_running(), "the first worker keeps running\n{}", a.logs());
    cluster.submit(json!({"name": "t", "required_skills": ["echo"]})).await;

    // A worker killed outright and started again is the same node: it registers with its kept
    // secret at once instead of waiting for the node to time out (30 s here).
    a.kill9();
    let mut restarted = cluster.worker("dup", &skills, &[]);
    restarted.wait_for_output(r#""incarnation":2"#, Duration::from_secs(20)).await;
    assert!(restarted.is_running(), "{}", restarted.logs());
}

/// Regression (issue 14): a worker killed with kill -9 left its skill's processes running,
/// and the task ran to its end twice. Now the supervisor ends the whole tree — a child, a
/// grandchild whose parent exited, one that called setsid — and only the retry finishes.
/// (Measured: all gone at the first re-check, 50 ms after the kill; the 20 s here only
/// guards against a hang.)
#[cfg(target_os = "linux")]
#[tokio::test]
async fn kill_9_of_the_worker_ends_its_skills_process_tree_and_only_the_retry_finishes() {
    let cluster = Cluster::start_with(Settings { heartbeat_timeout: 2.0, ..Settings::default() }).await;
    let skills = cluster.path().join("skills");
    let finished = cluster.path().join("finished");
    exec_skill(
        &skills,
        "slow",
        &format!(
            r#"if [ "$OPENCLAW_NODE_ID" = w1 ]; then
  echo $$ >> pids
  sleep 60 & echo $! >> pids
  setsid sh -c 'echo $$ >> pids; sleep 60; echo setsid >> {finished}' &
  sh -c 'sh -c "echo \$\$ >> pids; sleep 60; echo orphan >> {finished}" & exit 0'
  while [ "$(wc -l < pids)" -lt 4 ]; do sleep 0.05; done
  touch started
  sleep 60
fi
echo "$OPENCLAW_NODE_ID" >> {finished}
echo '{{"done": true}}'
"#,
            finished = finished.display()
        ),
    );
    let mut w1 = cluster.worker("w1", &skills, &[]);
    cluster.wait_online("w1", &["slow"]).await;
    let id = cluster.submit(json!({"name": "t", "required_skills": ["slow"], "max_retries": 2})).await;
    let started = skills.join("slow/started");
    eventually("the task runs on w1", Duration::from_secs(10), || async { started.exists() }).await;
    let pids: Vec<i32> =
        std::fs::read_to_string(skills.join("slow/pids")).unwrap().lines().map(|l| l.trim().parse().unwrap()).collect();
    assert_eq!(pids.len(), 4, "{pids:?}");
    assert!(pids.iter().all(|p| !crate::support::is_gone(*p)), "the task's processes run: {pids:?}");
    let _w2 = cluster.worker("w2", &skills, &[]);
    cluster.wait_online("w2", &["slow"]).await;

    w1.kill9();
    // Left alone, every one of them would run for another minute.
    eventually("the task's process tree ends with its worker", Duration::from_secs(20), || async {
        pids.iter().all(|p| crate::support::is_gone(*p))
    })
    .await;
    let task = cluster.wait_task(&id, 30).await;
    assert_eq!((task["status"].as_str(), task["assigned_node"].as_str()), (Some("completed"), Some("w2")), "{task}");
    assert_eq!(std::fs::read_to_string(&finished).unwrap(), "w2\n", "only the retry on w2 ran to its end");
}

/// Skills run with an allowlisted environment: what they declare, PATH and the like, the
/// task's variables — never the worker's tokens (issue 14).
#[cfg(unix)]
#[tokio::test]
async fn an_exec_skill_sees_its_declared_variables_and_no_token() {
    let cluster = Cluster::start().await;
    let skills = cluster.path().join("skills");
    let dir = Skill::exec("envdump", "env > env.txt\necho '{}'\n")
        .env(&["SKILL_API_KEY", "OPENCLAW_GATEWAY_TOKEN"])
        .write(&skills);
    let join = cluster.worker_token();
    let worker = cluster.worker_env(
        "w1",
        &skills,
        &[],
        &[
            ("SKILL_API_KEY", "declared-value"),
            ("UNDECLARED_SECRET", "not-for-skills"),
            ("OPENCLAW_GATEWAY_TOKEN", "gateway-secret-123456"),
            ("OPENCLAW_WORKER__TOKEN", &join),
            ("OPENCLAW_TOKEN", &join),
        ],
    );
    cluster.wait_online("w1", &["envdump"]).await;
    let id = cluster.submit(json!({"name": "env", "required_skills": ["envdump"]})).await;
    assert_eq!(cluster.wait_task(&id, 20).await["status"], "completed");
    let env = std::fs::read_to_string(dir.join("env.txt")).unwrap();
    let names: Vec<&str> = env.lines().filter_map(|l| l.split_once('=').map(|(k, _)| k)).collect();
    for wanted in
        ["SKILL_API_KEY", "PATH", "OPENCLAW_TASK_ID", "OPENCLAW_NODE_ID", "OPENCLAW_SKILL", "OPENCLAW_ATTEMPT"]
    {
        assert!(names.contains(&wanted), "{wanted} missing:\n{env}");
    }
    assert!(env.contains("SKILL_API_KEY=declared-value"), "{env}");
    for secret in ["OPENCLAW_GATEWAY_TOKEN", "OPENCLAW_WORKER__TOKEN", "OPENCLAW_TOKEN", "UNDECLARED_SECRET"] {
        assert!(!names.contains(&secret), "{secret} reached the skill:\n{env}");
    }
    assert!(
        !env.contains(&join) && !env.contains("gateway-secret-123456"),
        "a token's value reached the skill:\n{env}"
    );
    // This worker shares the coordinator's data folder: its skills could read admin.token.
    let warn = worker.out().lines().find(|l| l.contains("admin token")).map(str::to_string).unwrap_or_default();
    assert!(warn.contains("\"level\":\"WARN\"") && warn.contains("admin.token"), "{}", worker.logs());
    assert!(worker.out().contains("never passes its own or OpenClaw's tokens"), "{}", worker.logs());
}

/// The admin.token warning is about what the worker can read, not a fixed line: a worker
/// whose data folder has no admin.token stays quiet.
#[cfg(unix)]
#[tokio::test]
async fn a_worker_that_cannot_reach_admin_token_does_not_warn() {
    let cluster = Cluster::start().await;
    let skills = cluster.path().join("skills");
    exec_skill(&skills, "echo", "cat\n");
    let elsewhere = cluster.path().join("worker-data/cluster.db").display().to_string();
    let join = cluster.worker_token();
    let worker =
        cluster.worker_env("w1", &skills, &[], &[("OPENCLAW_STORAGE__PATH", &elsewhere), ("OPENCLAW_TOKEN", &join)]);
    cluster.wait_online("w1", &["echo"]).await;
    assert!(!worker.out().contains("admin token"), "{}", worker.logs());
}

/// Regression (operator review): `worker --skills-dir /tmp/does-not-exist` registered with no
/// skills and no warning.
#[tokio::test]
async fn a_worker_whose_skills_folder_does_not_exist_is_refused() {
    let cluster = Cluster::start().await;
    let missing = cluster.path().join("does-not-exist");
    let config = cluster.config.display().to_string();
    let o = crate::support::cli(
        &["-c", &config, "worker", "--node-id", "w1", "--skills-dir", missing.to_str().unwrap()],
        &[],
        cluster.path(),
    );
    assert_eq!(o.status.code(), Some(2), "{}", crate::support::show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no skills folder exists") && err.contains("does-not-exist"), "{err}");
    assert!(cluster.node("w1").await.is_null(), "nothing registered");
}

/// Regression (operator review): the gateway WARN fired on workers that have only exec
/// skills; `openclaw skills --skills-dir /nonexistent` said "no skills found", exit 0.
#[cfg(unix)]
#[tokio::test]
async fn an_exec_only_worker_never_warns_about_the_gateway() {
    let cluster = Cluster::start().await;
    let worker = cluster.exec_worker("w1", &[Skill::exec("echo", "cat\n")], &[]).await;
    worker.wait_for_output("registered with the coordinator", Duration::from_secs(10)).await;
    assert!(!worker.out().contains("agent skills are unavailable"), "{}", worker.logs());
    let o = cluster.cli(&["skills", "--skills-dir", cluster.path().join("nope").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", crate::support::show(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no skills folder exists"), "{}", crate::support::show(&o));
}

/// Issue 17, item 12: Ctrl+C left the worker (and `dev`) lingering about 2 s where
/// OpenClaw's CLI is installed: the shutdown waited for the skills listing in flight (a
/// Node process of 2-7 s, with a 60 s limit). Advertising no longer matters once the worker
/// stops taking tasks, so the listing is dropped (its process killed), at start and in the
/// rescan loop alike.
///
/// A stand-in for OpenClaw's CLI (a script, which the worker accepts as OpenClaw's): the
/// real one's listing ends by itself within seconds, and this test needs one that is
/// certainly still running when the signal comes. The 20 s bound only guards against a
/// hang (the listing's own limit is 60 s).
#[cfg(unix)]
#[tokio::test]
async fn a_signal_does_not_wait_for_openclaws_skills_listing() {
    use std::os::unix::fs::PermissionsExt;
    let cluster = Cluster::start().await;
    let skills = cluster.path().join("skills");
    exec_skill(&skills, "echo", "cat\n");
    let calls = cluster.path().join("listings");
    std::fs::create_dir_all(&calls).unwrap();
    let cli = cluster.path().join("openclaw");
    // Each call leaves a file; the first fails at once, later ones hang.
    let script = format!(
        "#!/bin/sh\nn=$(ls {dir} | wc -l)\ntouch {dir}/call-$n\n[ \"$n\" = 0 ] && exit 1\nexec sleep 300\n",
        dir = calls.display()
    );
    std::fs::write(&cli, script).unwrap();
    std::fs::set_permissions(&cli, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cli_env = cli.display().to_string();
    let env =
        [("OPENCLAW_WORKER__OPENCLAW_CLI", cli_env.as_str()), ("OPENCLAW_WORKER__OPENCLAW_REFRESH_INTERVAL", "1")];

    // In the rescan loop: the first listing failed, the next one hangs.
    let mut worker = cluster.worker_env("w1", &skills, &[], &env);
    cluster.wait_online("w1", &["echo"]).await;
    eventually("a second listing runs", Duration::from_secs(20), || async { calls.join("call-1").exists() }).await;
    worker.term();
    let status = worker.wait_exit(Duration::from_secs(20)).await;
    assert_eq!(status.code(), Some(0), "{}", worker.logs());
    assert!(worker.out().contains("worker stopped"), "{}", worker.logs());

    // At start: the very first listing hangs (the earlier calls' files are there).
    let mut worker = cluster.worker_env("w2", &skills, &[], &env);
    eventually("the first listing runs", Duration::from_secs(20), || async { calls.join("call-2").exists() }).await;
    worker.term();
    let status = worker.wait_exit(Duration::from_secs(20)).await;
    assert_eq!(status.code(), Some(0), "{}", worker.logs());
}
