//! The dashboard in a real browser: Debian's chromium, driven by playwright-core
//! (tests/tools/dashboard.cjs), against the real coordinator and a real worker. It logs in
//! (a wrong token is refused; the tasks token gets drain disabled with a note), sees a node
//! appear and a task submitted through the form go to completed without a reload (both
//! arrive over the event stream: the activity feed shows the events), follows a running
//! task's output line by line, rides out a
//! coordinator restart (it reconnects and resumes by itself), filters, drains and undrains
//! with the admin token, sets and deletes a secret through its form (the value is never on
//! the page), and fits a phone's width. Its Skills view shows drift as it appears.
//!
//! `OPENCLAW_SCREENSHOTS=1 cargo test --test it dashboard_screenshots` rewrites the
//! pictures in docs/.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::support::{Cluster, Settings, Skill, exec_skill, tool};

/// chromium and playwright-core, or None (skipped outside CI; a failure under CI=true).
pub fn browser() -> Option<(PathBuf, PathBuf)> {
    let chromium = tool("/usr/bin/chromium")?;
    let playwright = tool("node/node_modules/playwright-core")?;
    Some((chromium, playwright))
}

pub fn driver(chromium: &Path, playwright: &Path, args: &[&str]) -> tokio::process::Command {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/dashboard.cjs");
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(script).args(args).env("CHROMIUM", chromium).env("PLAYWRIGHT_CORE", playwright).kill_on_drop(true);
    cmd
}

pub fn tasks_token(cluster: &Cluster) -> String {
    std::fs::read_to_string(cluster.path().join("data/tasks.token")).unwrap().trim().to_string()
}

/// A walk of the driver: its lines one at a time, a line on its stdin to let it go on past
/// a `STEP`, and its end (success, with `OK` last).
struct Walk {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    out: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    seen: Vec<String>,
}

impl Walk {
    fn start(mut command: tokio::process::Command) -> Walk {
        let mut child =
            command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("node runs");
        let stdin = child.stdin.take().unwrap();
        let out = BufReader::new(child.stdout.take().unwrap()).lines();
        Walk { child, stdin, out, seen: Vec::new() }
    }

    /// The next line it printed; `None` once it is done.
    async fn next(&mut self) -> Option<String> {
        let line = self.out.next_line().await.unwrap()?;
        self.seen.push(line.clone());
        Some(line)
    }

    async fn go(&mut self) {
        self.stdin.write_all(b"go\n").await.unwrap();
    }

    /// Waits for its end and fails the test unless it passed; returns what it printed.
    async fn finish(mut self) -> Vec<String> {
        let status = self.child.wait().await.unwrap();
        let mut stderr = String::new();
        tokio::io::AsyncReadExt::read_to_string(self.child.stderr.as_mut().unwrap(), &mut stderr).await.unwrap();
        assert!(
            status.success() && self.seen.last().map(String::as_str) == Some("OK"),
            "the browser walk failed:\n{}\n{stderr}",
            self.seen.join("\n")
        );
        self.seen
    }
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
    let mut walk = Walk::start(driver(&chromium, &playwright, &["test", &url, &admin, &tasks]));
    let mut worker = None;
    let mut task = None;
    let mut restarted = false;
    let mut output_seen = false;
    let mut secret_deleted = false;
    while let Some(line) = walk.next().await {
        if line == "STEP need-node" {
            worker = Some(cluster.worker("w1", &skills, &[]));
            walk.go().await;
        } else if let Some(id) = line.strip_prefix("STEP task ") {
            task = Some(id.to_string());
        } else if line == "STEP output" {
            std::fs::write(skills.join("progress/go"), "").unwrap();
            output_seen = true;
            walk.go().await;
        } else if line == "STEP secret-deleted" {
            secret_deleted = true;
        } else if line == "STEP restart" {
            cluster.kill_coordinator();
            cluster.start_coordinator().await;
            restarted = true;
            walk.go().await;
        }
    }
    walk.finish().await;
    assert!(worker.is_some() && restarted && output_seen && secret_deleted, "the walk skipped a step");
    // The secret set through the form was stored (the store logged it) and is gone again.
    let (_, secrets) = cluster.api("GET", "/api/v1/secrets", None).await;
    assert_eq!(secrets["secrets"], json!([]), "{secrets}");
    let log = cluster.coordinator.as_ref().unwrap().out();
    assert!(log.contains("secret set") && log.contains("secret removed"), "the form set and removed it");
    // What the page showed is what the API says.
    let task = task.expect("the walk submitted a task");
    let t = cluster.get(&format!("/api/v1/tasks/{task}")).await;
    assert_eq!((t["status"].as_str(), t["name"].as_str()), (Some("completed"), Some("hello from the browser")), "{t}");
    assert_eq!(t["parameters"], json!({"greeting": "hi"}));
}

/// With streams that live one second, the page stays live across their planned ends, shows
/// each event once, and follows a running task's output across them: every line once.
#[tokio::test]
async fn the_dashboard_rides_planned_stream_ends() {
    let Some((chromium, playwright)) = browser() else { return };
    let cluster =
        Cluster::start_with(Settings { extra_coordinator: "  max_stream_lifetime: 1\n".into(), ..Settings::default() })
            .await;
    let skills = cluster.path().join("skills");
    // Prints a line, then waits for the test's go before the next.
    exec_skill(
        &skills,
        "ticker",
        "for i in 1 2 3; do echo \"tick $i\" >&2; while [ ! -e go$i ]; do sleep 0.05; done; done\necho '{}'\n",
    );
    let _worker = cluster.worker("w1", &skills, &[]);
    cluster.wait_online("w1", &["ticker"]).await;
    let mut walk = Walk::start(driver(&chromium, &playwright, &["lifetime", &cluster.url(), &cluster.admin()]));
    while let Some(line) = walk.next().await {
        if let Some(n) = line.strip_prefix("STEP tick ") {
            std::fs::write(skills.join(format!("ticker/go{n}")), "").unwrap();
            walk.go().await;
        }
    }
    let seen = walk.finish().await;
    assert_eq!(seen.iter().filter(|l| l.starts_with("STEP tick")).count(), 3, "{seen:?}");
}

/// Issue 21, item 2: the Skills view shows each skill's nodes and version, and drift as it
/// appears (one worker's copy changes), without a reload; the versions it shows are the API's.
#[tokio::test]
async fn the_dashboard_shows_skill_drift() {
    let Some((chromium, playwright)) = browser() else { return };
    let cluster = Cluster::start().await;
    let (one, two) = (cluster.path().join("skills-w1"), cluster.path().join("skills-w2"));
    for dir in [&one, &two] {
        exec_skill(dir, "summarize", "echo summary\n");
    }
    let _w1 = cluster.worker("w1", &one, &[]);
    let _w2 = cluster.worker("w2", &two, &[]);
    let mut walk = Walk::start(driver(&chromium, &playwright, &["skills", &cluster.url(), &cluster.admin()]));
    let mut shown = None;
    while let Some(line) = walk.next().await {
        if line == "STEP drift" {
            std::fs::write(two.join("summarize/run.sh"), "echo a newer summary\n").unwrap();
            walk.go().await;
        } else if let Some(list) = line.strip_prefix("STEP digests ") {
            shown = Some(serde_json::from_str::<serde_json::Value>(list).unwrap());
        }
    }
    walk.finish().await;
    let view = cluster.get("/api/v1/skills").await;
    assert_eq!(Some(&view["skills"][0]["digests"]), shown.as_ref(), "{view}");
}

/// A workflow's dialog lists its steps, their states and what each needs, and follows them
/// live: `fetch` running and `summarize` pending, then both completed without a reload.
#[tokio::test]
async fn the_dashboard_shows_a_workflows_steps_and_their_states() {
    let Some((chromium, playwright)) = browser() else { return };
    let cluster = Cluster::start().await;
    let gate = cluster.path().join("go");
    let fetch =
        Skill::exec("fetch", &format!("while [ ! -f '{}' ]; do sleep 0.05; done\necho '{{}}'\n", gate.display()));
    let _w1 = cluster.exec_worker("w1", &[fetch, Skill::exec("summarize", "cat\n")], &[]).await;
    let body = json!({"name": "morning", "steps": {
        "fetch": {"skill": "fetch"},
        "summarize": {"skill": "summarize", "needs": ["fetch"]},
    }});
    let (status, wf) = cluster.api("POST", "/api/v1/workflows", Some(body)).await;
    assert_eq!(status, 201, "{wf}");
    let id = wf["task_id"].as_str().unwrap();
    let mut walk = Walk::start(driver(&chromium, &playwright, &["workflow", &cluster.url(), &cluster.admin(), id]));
    while let Some(line) = walk.next().await {
        if line == "STEP running" {
            std::fs::write(&gate, "").unwrap();
            walk.go().await;
        }
    }
    walk.finish().await;
    assert_eq!(cluster.get(&format!("/api/v1/tasks/{id}")).await["status"], "completed");
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
