//! The dashboard in a real browser: Debian's chromium, driven by playwright-core
//! (tests/tools/dashboard.cjs), against the real coordinator and a real worker. It logs in
//! (a wrong token is refused; the tasks token gets drain disabled with a note), sees a node
//! appear and a task submitted through the form go to completed without a reload (both
//! arrive over the event stream: the activity feed shows the events), follows a running
//! task's output line by line, rides out a
//! coordinator restart (it reconnects and resumes by itself), filters, drains and undrains
//! with the admin token, and fits a phone's width.
//!
//! `OPENCLAW_SCREENSHOTS=1 cargo test --test it dashboard_screenshots` rewrites the
//! pictures in docs/.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::support::{Cluster, exec_skill, tool};

/// chromium and playwright-core, or None (skipped outside CI; a failure under CI=true).
fn browser() -> Option<(PathBuf, PathBuf)> {
    let chromium = tool("/usr/bin/chromium")?;
    let playwright = tool("node/node_modules/playwright-core")?;
    Some((chromium, playwright))
}

fn driver(chromium: &Path, playwright: &Path, args: &[&str]) -> tokio::process::Command {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/dashboard.cjs");
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(script).args(args).env("CHROMIUM", chromium).env("PLAYWRIGHT_CORE", playwright).kill_on_drop(true);
    cmd
}

fn tasks_token(cluster: &Cluster) -> String {
    std::fs::read_to_string(cluster.path().join("data/tasks.token")).unwrap().trim().to_string()
}

#[tokio::test]
async fn the_dashboard_in_a_real_browser() {
    let Some((chromium, playwright)) = browser() else { return };
    let mut cluster = Cluster::start().await;
    let skills = cluster.path().join("skills");
    exec_skill(&skills, "echo", "cat\n");
    // Prints a line, waits for the test's go, prints another (its folder is its working dir).
    exec_skill(
        &skills,
        "progress",
        "echo 'step one of two' >&2\nwhile [ ! -e go ]; do sleep 0.05; done\necho 'step two of two' >&2\necho '{}'\n",
    );
    let (admin, tasks) = (cluster.admin(), tasks_token(&cluster));
    let url = cluster.url();
    let mut child = driver(&chromium, &playwright, &["test", &url, &admin, &tasks])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs");
    let mut stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut err = child.stderr.take().unwrap();
    let mut seen = Vec::new();
    let mut worker = None;
    let mut task = None;
    let mut restarted = false;
    let mut output_seen = false;
    while let Some(line) = out.next_line().await.unwrap() {
        seen.push(line.clone());
        if line == "STEP need-node" {
            worker = Some(cluster.worker("w1", &skills, &[]));
            stdin.write_all(b"go\n").await.unwrap();
        } else if let Some(id) = line.strip_prefix("STEP task ") {
            task = Some(id.to_string());
        } else if line == "STEP output" {
            std::fs::write(skills.join("progress/go"), "").unwrap();
            output_seen = true;
            stdin.write_all(b"go\n").await.unwrap();
        } else if line == "STEP restart" {
            cluster.kill_coordinator();
            cluster.start_coordinator().await;
            restarted = true;
            stdin.write_all(b"go\n").await.unwrap();
        }
    }
    let status = child.wait().await.unwrap();
    let mut stderr = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut err, &mut stderr).await.unwrap();
    assert!(
        status.success() && seen.last().map(String::as_str) == Some("OK"),
        "the browser walk failed:\n{}\n{stderr}",
        seen.join("\n")
    );
    assert!(worker.is_some() && restarted && output_seen, "the walk skipped a step");
    // What the page showed is what the API says.
    let task = task.expect("the walk submitted a task");
    let t = cluster.get(&format!("/api/v1/tasks/{task}")).await;
    assert_eq!((t["status"].as_str(), t["name"].as_str()), (Some("completed"), Some("hello from the browser")), "{t}");
    assert_eq!(t["parameters"], json!({"greeting": "hi"}));
}

/// Pictures of the main pages for docs/guide.md (only with OPENCLAW_SCREENSHOTS=1): a cluster
/// with two nodes (one draining), finished, failed and waiting tasks.
#[tokio::test]
async fn dashboard_screenshots() {
    if std::env::var_os("OPENCLAW_SCREENSHOTS").is_none() {
        return;
    }
    let Some((chromium, playwright)) = browser() else { return };
    let cluster = Cluster::start().await;
    let skills = cluster.path().join("skills");
    exec_skill(&skills, "echo", "cat\n");
    exec_skill(
        &skills,
        "summarize",
        "echo 'reading the input' >&2; sleep 0.2; echo '{\"summary\": \"three lines\"}'\n",
    );
    exec_skill(&skills, "flaky", "echo 'the model server is not answering' >&2; exit 3\n");
    let _w1 = cluster.worker("mac-studio", &skills, &["--tag", "gpu"]);
    let _w2 = cluster.worker("linux-box", &skills, &[]);
    cluster.wait_online("mac-studio", &["echo", "flaky", "summarize"]).await;
    cluster.wait_online("linux-box", &["echo", "flaky", "summarize"]).await;
    let mut ids = Vec::new();
    for (name, skill) in [("greet", "echo"), ("weekly report", "summarize"), ("nightly import", "flaky")] {
        ids.push(cluster.submit(json!({"name": name, "required_skills": [skill], "max_retries": 0})).await);
    }
    for id in &ids {
        cluster.wait_task(id, 30).await;
    }
    cluster.submit(json!({"name": "transcribe call", "required_skills": ["whisper"], "priority": "high"})).await;
    cluster.api("POST", "/api/v1/nodes/linux-box/drain", None).await;
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    let status =
        driver(&chromium, &playwright, &["screenshots", &cluster.url(), &cluster.admin(), out.to_str().unwrap()])
            .status()
            .await
            .unwrap();
    assert!(status.success());
}
