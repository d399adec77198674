//! The real OpenClaw gateway (npm `openclaw`, started by
//! [`real_openclaw`](crate::real_openclaw)) as the MCP client of the cluster: our server in
//! its `mcp.servers`, over Streamable HTTP (`/mcp`) and over stdio (`openclaw mcp`). The
//! only fake is the LLM: the stub model answers the turn with tool calls, as a model would.

use std::time::Duration;

use serde_json::{Value, json};

use crate::real_openclaw::{Gateway, Options};
use crate::require_openclaw;
use crate::stub_model::tool_results;
use crate::support::{BIN, Cluster, exec_skill};

/// A cluster where only w2 has `transcribe`; w1 has `echo`.
async fn cluster() -> (Cluster, crate::support::Proc, crate::support::Proc) {
    let c = Cluster::start().await;
    let (one, two) = (c.path().join("skills-w1"), c.path().join("skills-w2"));
    exec_skill(&one, "echo", "cat\n");
    exec_skill(&two, "transcribe", "echo '{\"transcript\": \"hello from the second machine\"}'\n");
    let w1 = c.worker("w1", &one, &[]);
    let w2 = c.worker("w2", &two, &[]);
    c.wait_online("w1", &["echo"]).await;
    c.wait_online("w2", &["transcribe"]).await;
    (c, w1, w2)
}

/// `mcp.servers` for this cluster: `cluster` over HTTP with the tasks token, `cluster-stdio`
/// spawning `openclaw mcp` (which finds the coordinator and the tasks token through the
/// cluster's config file).
fn servers(c: &Cluster) -> Value {
    let token = std::fs::read_to_string(c.path().join("data/tasks.token")).unwrap().trim().to_string();
    json!({
        "cluster": {
            "url": format!("{}/mcp", c.url()),
            "transport": "streamable-http",
            "headers": {"Authorization": format!("Bearer {token}")},
        },
        "cluster-stdio": {"command": BIN, "args": ["-c", c.config, "mcp"]},
    })
}

/// One turn through the gateway's chat completions: the answer's text.
async fn turn(g: &Gateway, prompt: &str) -> String {
    let body = json!({"model": "openclaw/default", "messages": [{"role": "user", "content": prompt}]});
    let r = crate::support::http_client()
        .post(format!("{}/v1/chat/completions", g.url()))
        .bearer_auth(&g.token)
        .timeout(Duration::from_secs(180))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let answer: Value = r.json().await.unwrap_or_default();
    assert!(status.is_success(), "chat completions answered {status}: {answer}\n{}", g.log_text());
    answer["choices"][0]["message"]["content"].as_str().unwrap_or_default().to_string()
}

/// Issue 9, item 4(b): the model's first answer is a call of `cluster__submit_task` for a
/// skill only the second worker has; the task runs there; the next model call carries the
/// tool result, and the model's final answer reaches the caller. `openclaw mcp doctor
/// --probe` passes for both transports.
#[tokio::test(flavor = "multi_thread")]
async fn openclaw_runs_a_skill_on_another_machine_through_the_cluster() {
    let install = require_openclaw!();
    let (c, _w1, _w2) = cluster().await;
    // Tool Search off: the MCP tools are offered to the model directly (with it on, the
    // default, the model finds them through `tool_search`; see the next test).
    let extra = json!({"mcp": {"servers": servers(&c)}, "tools": {"toolSearch": false}});
    let g = Gateway::start(install, Options { extra, ..Options::default() }).await;

    let out = g.cli(&["mcp", "doctor", "--probe", "--json"]);
    let doctor: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", crate::support::show(&out)));
    assert_eq!(doctor["ok"], true, "{doctor}");
    let names: Vec<&str> = doctor["servers"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 2, "{doctor}");
    assert!(doctor["servers"].as_array().unwrap().iter().all(|s| s["ok"] == true), "{doctor}");

    let marker = format!("M{}", uuid::Uuid::now_v7().simple());
    let args = json!({"skill": "transcribe", "prompt": "the meeting recording", "wait_seconds": 30});
    g.stub.call_tools(&marker, vec![("cluster__submit_task", args)]);
    let answer = turn(&g, &format!("{marker} transcribe the meeting on the machine that can")).await;

    let seen = g.stub.with(&marker);
    assert_eq!(seen.len(), 2, "two model calls: the tool call, then the answer");
    let offered: Vec<&str> =
        seen[0].body["tools"].as_array().unwrap().iter().filter_map(|t| t["function"]["name"].as_str()).collect();
    for tool in ["cluster__submit_task", "cluster__list_skills", "cluster-stdio__submit_task"] {
        assert!(offered.contains(&tool), "{tool} not offered to the model: {offered:?}");
    }
    let results = tool_results(&seen[1].body);
    assert_eq!(results.len(), 1, "{}", seen[1].text);
    let result = &results[0];
    assert!(result.contains("hello from the second machine") && result.contains("\"node\": \"w2\""), "{result}");
    // The model sees the task once, and the label saying what in it is data.
    assert_eq!(result.matches("\"task_id\"").count(), 1, "{result}");
    assert_eq!(result.matches("[openclaw cluster data]").count(), 1, "{result}");
    assert!(answer.starts_with("The tool said: ") && answer.contains("hello from the second machine"), "{answer}");

    let tasks = c.get("/api/v1/tasks").await;
    let task = &tasks["tasks"][0];
    assert_eq!(
        (
            task["required_skills"].clone(),
            task["assigned_node"].as_str(),
            task["status"].as_str(),
            task["origin"].as_str()
        ),
        (json!(["transcribe"]), Some("w2"), Some("completed"), Some("mcp")),
        "{tasks}"
    );
    assert_eq!(tasks["tasks"].as_array().unwrap().len(), 1, "{tasks}");
}

/// OpenClaw's default (Tool Search on): the MCP tools are not offered directly; the model
/// finds ours with `tool_search` in words a user would use, and runs one through
/// `tool_call`. A tool error (a skill nobody has) reaches the model as its text.
#[tokio::test(flavor = "multi_thread")]
async fn openclaw_finds_the_cluster_tools_by_searching() {
    let install = require_openclaw!();
    let (c, _w1, _w2) = cluster().await;
    let mut servers = servers(&c);
    servers.as_object_mut().unwrap().remove("cluster-stdio");
    let g =
        Gateway::start(install, Options { extra: json!({"mcp": {"servers": servers}}), ..Options::default() }).await;

    let marker = format!("M{}", uuid::Uuid::now_v7().simple());
    g.stub.call_tools(
        &marker,
        vec![
            ("tool_search", json!({"query": "run a skill on another machine of the cluster"})),
            ("tool_call", json!({"id": "cluster__submit_task", "args": {"skill": "ocr", "prompt": "read it"}})),
        ],
    );
    let answer = turn(&g, &format!("{marker} read the scan on whichever machine can")).await;
    let seen = g.stub.with(&marker);
    assert_eq!(seen.len(), 3, "search, call, answer");
    let found = &tool_results(&seen[1].body)[0];
    assert!(found.contains("cluster__submit_task"), "tool_search did not find submit_task: {found}");
    let refused = &tool_results(&seen[2].body)[1];
    assert!(refused.contains("not submitted: no node has skill 'ocr'"), "{refused}");
    assert!(answer.contains("not submitted: no node has skill 'ocr'"), "{answer}");
    assert_eq!(c.get("/api/v1/tasks").await["tasks"], json!([]), "a refused submission stores nothing");
}
