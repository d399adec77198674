//! Agent tasks through the real OpenClaw gateway (npm `openclaw`, started by
//! [`real_openclaw`](crate::real_openclaw) with an isolated home), whose only fake is the
//! LLM: the tests' stub model server. Each test starts its own gateway: they change its
//! config, lock it out or kill it.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::real_openclaw::{Gateway, Install, Options};
use crate::require_openclaw;
use crate::support::{Cluster, Settings, agent_skill, eventually};

/// Worker environment: this gateway's port and token pinned in the worker's config.
fn pinned(g: &Gateway) -> Vec<(String, String)> {
    vec![
        ("OPENCLAW_WORKER__PORT".into(), g.port.to_string()),
        ("OPENCLAW_WORKER__GATEWAY_TOKEN".into(), g.token.clone()),
    ]
}

/// Worker environment: no gateway settings at all, OpenClaw's home is the gateway's (the
/// worker reads OpenClaw's config), and OpenClaw's CLI is usable.
fn zero_config(g: &Gateway, install: &Install) -> Vec<(String, String)> {
    let home = g.home.path();
    vec![
        ("HOME".into(), home.display().to_string()),
        ("OPENCLAW_STATE_DIR".into(), home.join(".openclaw").display().to_string()),
        ("TMPDIR".into(), home.join("tmp").display().to_string()),
        ("PATH".into(), install.path(&[])),
        ("OPENCLAW_WORKER__OPENCLAW_CLI".into(), install.cli.display().to_string()),
    ]
}

fn env_refs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

fn events(task: &Value, kind: &str) -> Vec<String> {
    task["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == kind)
        .map(|e| e["message"].as_str().unwrap_or("").to_string())
        .collect()
}

/// A cluster whose one worker `w1` has the agent skill `chat`, on gateway `g` (pinned).
async fn chat_cluster(g: &Gateway) -> (Cluster, crate::support::Proc) {
    let cluster = Cluster::start().await;
    let skills = cluster.path().join("skills");
    agent_skill(&skills, "chat");
    let w = cluster.worker_env("w1", &skills, &[], &env_refs(&pinned(g)));
    cluster.wait_online("w1", &["chat"]).await;
    (cluster, w)
}

fn marker() -> String {
    format!("M{}", uuid::Uuid::now_v7().simple())
}

/// Item 3 of issue 8: a skill that lives only in the worker's skills dir reaches the agent
/// with a stock OpenClaw config — the model receives its instructions in the turn. And
/// OpenClaw's own skills, found through its CLI, are advertised and get theirs too.
#[tokio::test]
async fn an_agent_task_gets_its_skills_instructions() {
    let install = require_openclaw!();
    let g = Gateway::start(install, Options::default()).await;
    let cluster = Cluster::start_with(Settings { pin_gateway_port: false, ..Settings::default() }).await;
    let skills = cluster.path().join("skills");
    let instructions = marker();
    std::fs::create_dir_all(skills.join("notes")).unwrap();
    std::fs::write(
        skills.join("notes/SKILL.md"),
        format!(
            "---\nname: summarize-notes\ndescription: Summarize meeting notes.\n---\n\n# Notes\n\n{instructions}: write three bullets; the template is {{baseDir}}/template.md\n"
        ),
    )
    .unwrap();
    let env = zero_config(&g, install);
    let worker = cluster.worker_env("w1", &skills, &[], &env_refs(&env));
    // OpenClaw's bundled skill-creator needs nothing on this machine: OpenClaw's CLI lists
    // it eligible, so it is advertised next to the skills dir's.
    let node = cluster
        .wait_node("w1", "advertising its own and OpenClaw's skills", Duration::from_secs(60), |n| {
            let have = n["available_skills"].as_array().cloned().unwrap_or_default();
            have.contains(&json!("summarize-notes")) && have.contains(&json!("skill-creator"))
        })
        .await;
    assert!(!node["available_skills"].as_array().unwrap().contains(&json!("1password")), "op is not installed: {node}");
    // `openclaw skills` shows OpenClaw's verdicts next to the skills dir's.
    let config = cluster.config.display().to_string();
    let out = crate::support::cli(
        &["-c", &config, "skills", "--skills-dir", "skills", "--json"],
        &env_refs(&env),
        cluster.path(),
    );
    let items: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", crate::support::show(&out)));
    let item = |name: &str| items.as_array().unwrap().iter().find(|i| i["name"] == name).cloned().unwrap_or_default();
    assert_eq!(
        (item("1password")["eligible"].as_bool(), item("1password")["missing"]["bins"].clone()),
        (Some(false), json!(["op"]))
    );
    assert_eq!(item("1password")["source"], "openclaw:openclaw-bundled");
    assert_eq!(
        (item("skill-creator")["eligible"].as_bool(), item("summarize-notes")["source"].as_str()),
        (Some(true), Some("skills"))
    );

    let prompt = marker();
    let id = cluster
        .submit(json!({"name": "n", "required_skills": ["summarize-notes"], "parameters": {"prompt": format!("{prompt} REPLY(three bullet points)")}}))
        .await;
    let task = cluster.wait_task(&id, 60).await;
    assert_eq!(
        (task["status"].as_str(), task["result"]["text"].as_str(), task["result"]["model"].as_str()),
        (Some("completed"), Some("three bullet points"), Some("openclaw/default")),
        "{task}"
    );
    let seen = g.stub.with(&prompt);
    assert_eq!(seen.len(), 1, "one model call for one turn");
    let system = seen[0].system();
    assert!(system.contains(&instructions), "the model got the skill's instructions");
    assert!(system.contains(&format!("{}/template.md", skills.join("notes").display())), "{{baseDir}} is the folder");
    assert!(system.contains("summarize-notes") && seen[0].user().contains(&prompt), "{}", seen[0].text);
    // The price: the SKILL.md body plus a few lines around it, on top of OpenClaw's own
    // system prompt (printed for the figure in docs/skills.md).
    let body_len = std::fs::read_to_string(skills.join("notes/SKILL.md")).unwrap().len();
    eprintln!("system prompt {} bytes, skill file {body_len} bytes", system.len());

    // An OpenClaw skill: its own SKILL.md is found in OpenClaw's bundled skills and sent too.
    let bundled = std::fs::read_to_string(install.package.join("skills/skill-creator/SKILL.md")).unwrap();
    let line = bundled
        .lines()
        .skip_while(|l| *l != "---")
        .skip(1)
        .skip_while(|l| *l != "---")
        .skip(1)
        .find(|l| l.len() > 30)
        .unwrap();
    let prompt = marker();
    let id = cluster
        .submit(json!({"name": "c", "required_skills": ["skill-creator"], "description": format!("{prompt} make one")}))
        .await;
    let task = cluster.wait_task(&id, 60).await;
    assert_eq!(task["status"], "completed", "{task}");
    let seen = g.stub.with(&prompt);
    assert!(seen[0].system().contains(line.trim()), "the bundled skill's instructions reach the model");
    assert!(
        seen[0].user().contains(&format!("{prompt} make one")),
        "the description is the prompt without parameters.prompt"
    );
    assert!(!worker.out().contains(&g.token), "the gateway token leaked into the log");
}

/// Item 4: the gateway's failures, each sorted by what retrying can do.
#[tokio::test]
async fn gateway_failures_are_sorted_by_what_retrying_can_do() {
    let install = require_openclaw!();
    let g = Gateway::start(install, Options::default()).await;
    let (cluster, _w) = chat_cluster(&g).await;

    // The model fails (500): the gateway answers 502; the attempt fails and is retried.
    let m = marker();
    let id = cluster
        .submit(
            json!({"name": "a", "required_skills": ["chat"], "description": format!("{m} STUB-500"), "max_retries": 1}),
        )
        .await;
    let task = cluster.wait_task(&id, 60).await;
    let failed = events(&task, "failed");
    assert_eq!(task["status"], "failed", "{task}");
    assert!(
        failed[0].contains("502")
            && failed[0].contains("upstream provider error")
            && failed[0].contains("retry 1 of 1"),
        "{failed:?}"
    );
    assert_eq!(g.stub.with(&m).len(), 2, "two attempts");

    // The model refuses the request (400): passed on as 400, failed for good at once.
    let m = marker();
    let id = cluster
        .submit(
            json!({"name": "b", "required_skills": ["chat"], "description": format!("{m} STUB-400"), "max_retries": 3}),
        )
        .await;
    let task = cluster.wait_task(&id, 60).await;
    assert_eq!((task["status"].as_str(), task["attempt"].as_u64()), (Some("failed"), Some(1)), "{task}");
    assert_eq!(events(&task, "failed").len(), 1, "{task}");
    assert!(
        task["error"].as_str().unwrap().contains("400") && task["error"].as_str().unwrap().contains("permanent"),
        "{task}"
    );
    assert_eq!(g.stub.with(&m).len(), 1, "not retried");

    // The model rate-limits (429, passed on without Retry-After): requeued after the
    // default wait, without spending a retry.
    let m = marker();
    let id = cluster
        .submit(
            json!({"name": "c", "required_skills": ["chat"], "description": format!("{m} STUB-429"), "max_retries": 0}),
        )
        .await;
    eventually("the 429 requeues the task", Duration::from_secs(60), || async {
        let t = cluster.get(&format!("/api/v1/tasks/{id}")).await;
        t["status"] == "pending" && t["attempt"] == 1
    })
    .await;
    let task = cluster.get(&format!("/api/v1/tasks/{id}")).await;
    assert_eq!(task["retry_count"], 0, "{task}");
    let failed = events(&task, "failed");
    assert!(
        failed[0].contains("429") && failed[0].contains("without spending a retry") && failed[0].contains("30s"),
        "{failed:?}"
    );
    cluster.api("POST", &format!("/api/v1/tasks/{id}/cancel"), None).await;

    // The model hangs: at the task's timeout the worker hangs up, and the gateway aborts
    // the turn (the stub sees its connection closed).
    let m = marker();
    let id = cluster
        .submit(json!({"name": "d", "required_skills": ["chat"], "description": format!("{m} STUB-HANG"), "timeout": 3, "max_retries": 0}))
        .await;
    let task = cluster.wait_task(&id, 60).await;
    assert_eq!(task["status"], "timeout", "{task}");
    assert!(task["error"].as_str().unwrap().contains("cancelled on the gateway"), "{task}");
    eventually("the gateway aborts the model call", Duration::from_secs(20), || async {
        g.stub.with(&m).first().is_some_and(|s| s.closed_after.is_some())
    })
    .await;
}

/// Items 4 and 5: with no gateway settings the worker finds the gateway in OpenClaw's
/// config; an unknown agent is caught by the probe; a gateway that goes away withdraws the
/// agent skills at the first task that cannot reach it, without spending that task's retry.
#[tokio::test]
async fn zero_config_then_the_gateway_goes_away() {
    let install = require_openclaw!();
    let mut g = Gateway::start(install, Options::default()).await;
    let cluster = Cluster::start_with(Settings { pin_gateway_port: false, ..Settings::default() }).await;
    let skills = cluster.path().join("skills");
    agent_skill(&skills, "chat");
    let mut env = zero_config(&g, install);
    env.push(("OPENCLAW_WORKER__OPENCLAW_CLI".into(), "off".into()));
    // Probes every minute: only a task can notice the outage quickly.
    env.push(("OPENCLAW_WORKER__GATEWAY_CHECK_INTERVAL".into(), "60".into()));
    let worker = cluster.worker_env("w1", &skills, &[], &env_refs(&env));
    let node = cluster.wait_online("w1", &["chat"]).await;
    assert_eq!(node["port"], g.port, "the gateway's port came from OpenClaw's config");
    assert!(worker.out().contains(&g.config_path().display().to_string()), "the log says where the gateway was found");

    let mut other = env.clone();
    other.push(("OPENCLAW_WORKER__AGENT_ID".into(), "nosuch".into()));
    let _w2 = cluster.worker_env("w2", &skills, &[], &env_refs(&other));
    let node = cluster.wait_online("w2", &[]).await;
    let why = node["unavailable_skills"]["chat"].as_str().unwrap_or("");
    assert!(why.contains("no agent `nosuch`") && why.contains("main"), "{node}");

    g.kill();
    let killed = Instant::now();
    let id = cluster.submit(json!({"name": "x", "required_skills": ["chat"], "max_retries": 0})).await;
    cluster.wait_node("w1", "without chat", Duration::from_secs(20), |n| n["available_skills"] == json!([])).await;
    let withdrawn = killed.elapsed();
    eprintln!("gateway killed -> agent skills withdrawn (one task arriving): {withdrawn:?}");
    // The result report may arrive just after the withdrawal.
    eventually("the task is requeued", Duration::from_secs(20), || async {
        cluster.get(&format!("/api/v1/tasks/{id}")).await["status"] == "pending"
    })
    .await;
    let task = cluster.get(&format!("/api/v1/tasks/{id}")).await;
    assert_eq!(task["retry_count"], 0, "{task}");
    let failed = events(&task, "failed");
    assert!(failed[0].contains("not reachable") && failed[0].contains("without spending a retry"), "{failed:?}");
    let node = cluster.node("w1").await;
    assert!(node["unavailable_skills"]["chat"].as_str().unwrap().contains("not reachable"), "{node}");
    assert!(!worker.out().contains(&g.token), "the gateway token leaked into the log");
}

/// Item 5: chat completions off in OpenClaw's config — the worker and `openclaw skills` say
/// the exact command, and running it brings the skills back without a restart. Item 4:
/// the gateway's lockout after failed logins is reported as such.
#[tokio::test]
async fn the_disabled_endpoint_hint_works_and_a_lockout_is_named() {
    let install = require_openclaw!();
    let limit = json!({"maxAttempts": 3, "windowMs": 60000, "lockoutMs": 60000, "exemptLoopback": false});
    let g = Gateway::start(
        install,
        Options { chat_completions: false, extra: json!({"gateway": {"auth": {"rateLimit": limit}}}) },
    )
    .await;
    let cluster = Cluster::start_with(Settings { pin_gateway_port: false, ..Settings::default() }).await;
    let skills = cluster.path().join("skills");
    agent_skill(&skills, "chat");
    let mut env = zero_config(&g, install);
    env.push(("OPENCLAW_WORKER__OPENCLAW_CLI".into(), "off".into()));
    let worker = cluster.worker_env("w1", &skills, &[], &env_refs(&env));
    let node = cluster.wait_online("w1", &[]).await;
    let why = node["unavailable_skills"]["chat"].as_str().unwrap_or("").to_string();
    assert!(why.contains("openclaw config set gateway.http.endpoints.chatCompletions.enabled true"), "{node}");
    worker
        .wait_for_output(
            "openclaw config set gateway.http.endpoints.chatCompletions.enabled true",
            Duration::from_secs(10),
        )
        .await;
    let config = cluster.config.display().to_string();
    let out =
        crate::support::cli(&["-c", &config, "skills", "--skills-dir", "skills"], &env_refs(&env), cluster.path());
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("unavailable") && text.contains("chatCompletions.enabled true"), "{text}");

    // The command the hint gives, run as the operator would.
    g.cli(&["config", "set", "gateway.http.endpoints.chatCompletions.enabled", "true"]);
    cluster.wait_online("w1", &["chat"]).await;

    // A worker with a wrong token: three refusals, then the gateway locks this machine out
    // (a successful login in between resets its count, so the right worker stops first).
    drop(worker);
    let mut wrong = env.clone();
    wrong.push(("OPENCLAW_WORKER__GATEWAY_TOKEN".into(), "not-the-token".into()));
    let _w2 = cluster.worker_env("w2", &skills, &[], &env_refs(&wrong));
    let node = cluster
        .wait_node("w2", "locked out", Duration::from_secs(30), |n| {
            n["unavailable_skills"]["chat"].as_str().is_some_and(|s| s.contains("locked this machine out"))
        })
        .await;
    assert!(node["unavailable_skills"]["chat"].as_str().unwrap().contains("refuses even the right token"), "{node}");
}

/// Item 1 of issue 10 for agent skills: the answer reaches the task's live output as the
/// gateway streams it — the first line is there while the model is still answering — and
/// the whole answer is the result.
#[tokio::test]
async fn an_agent_answer_streams_into_the_task_output() {
    let install = require_openclaw!();
    let g = Gateway::start(install, Options::default()).await;
    let (cluster, _w) = chat_cluster(&g).await;
    let m = marker();
    let id = cluster
        .submit(json!({"name": "a", "required_skills": ["chat"], "description": format!("{m} STUB-GATED")}))
        .await;
    let output = format!("/api/v1/tasks/{id}/output");
    eventually("the first line in the output while the model answers", Duration::from_secs(60), || async {
        crate::support::texts(&cluster.get(&output).await) == ["first line of the answer"]
    })
    .await;
    assert_eq!(cluster.get(&format!("/api/v1/tasks/{id}")).await["status"], "running");
    g.stub.open_gate(&m);
    let task = cluster.wait_task(&id, 60).await;
    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(task["result"]["text"], "first line of the answer\nsecond line of the answer", "{task}");
    let lines = cluster.get(&output).await;
    assert_eq!(crate::support::texts(&lines), ["first line of the answer", "second line of the answer"]);
    assert!(lines["lines"].as_array().unwrap().iter().all(|l| l["stream"] == "stdout"), "{lines}");
}
