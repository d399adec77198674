//! Schedules through the real binary: the CLI and the API, and exactly once per due time
//! across a `kill -9` of the coordinator.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Cluster, show};

/// Waits until the schedule has at least `n` runs; returns them, oldest first.
async fn runs_at_least(c: &Cluster, schedule: &str, n: usize) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let page = c.get(&format!("/api/v1/schedules/{schedule}/runs?limit=1000")).await;
        let mut runs = page["runs"].as_array().cloned().unwrap_or_default();
        if runs.len() >= n {
            runs.reverse();
            return runs;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{schedule} never had {n} runs: {page}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn due(run: &Value) -> i64 {
    openclaw::util::parse_rfc3339(run["due_at"].as_str().unwrap()).unwrap()
}

/// A coordinator killed with SIGKILL between firings neither skips nor repeats a due time:
/// the due times of the runs, before and after, follow each other one interval apart, each
/// once, and each fired run's task names its schedule and due time.
#[tokio::test]
async fn a_kill_9_neither_skips_nor_doubles_a_due_time() {
    let mut c = Cluster::start().await;
    let body = json!({
        "name": "tick",
        "every": "1s",
        "overlap": "allow",
        "task": {"name": "tick", "required_skills": ["echo"]},
    });
    let (status, created) = c.api("POST", "/api/v1/schedules", Some(body)).await;
    assert_eq!(status, 201, "{created}");
    let before = runs_at_least(&c, "tick", 3).await.len();
    c.kill_coordinator();
    c.start_coordinator().await;
    let runs = runs_at_least(&c, "tick", before + 3).await;
    for pair in runs.windows(2) {
        assert_eq!(due(&pair[1]) - due(&pair[0]), 1000, "a due time skipped or repeated: {pair:?}");
    }
    for run in &runs {
        assert_eq!(run["outcome"], "fired", "{run}");
        let task = c.get(&format!("/api/v1/tasks/{}", run["task_id"].as_str().unwrap())).await;
        assert_eq!(task["schedule"]["schedule_id"], created["schedule_id"], "{task}");
        assert_eq!(task["schedule"]["due_at"], run["due_at"], "{task}");
        assert_eq!(task["origin"], "schedule");
    }
    let metrics = c.metrics().await;
    assert!(metrics.contains("openclaw_schedule_firings_total{kind=\"fired\"}"), "{metrics}");
    assert!(metrics.contains("openclaw_schedule_lateness_seconds_count"), "{metrics}");
}

#[tokio::test]
async fn the_cli_adds_lists_runs_pauses_edits_and_removes() {
    let c = Cluster::start().await;
    let o = c.cli(&[
        "schedules",
        "add",
        "morning",
        "--cron",
        "0 7 * * *",
        "--tz",
        "Europe/Berlin",
        "--skill",
        "summarize",
        "--param",
        "folder=inbox",
    ]);
    assert!(o.status.success(), "{}", show(&o));
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(text.contains("cron 0 7 * * * (Europe/Berlin)"), "{text}");
    let list = c.cli(&["schedules", "list"]);
    let text = String::from_utf8_lossy(&list.stdout).to_string();
    assert!(text.contains("morning") && text.contains("active") && text.contains("summarize"), "{text}");
    // Run now: a task that names its schedule.
    let o = c.cli(&["schedules", "run-now", "morning"]);
    assert!(o.status.success(), "{}", show(&o));
    let task = String::from_utf8_lossy(&o.stdout).trim().to_string();
    let t = c.get(&format!("/api/v1/tasks/{task}")).await;
    assert_eq!((t["schedule"]["name"].as_str(), t["parameters"]["folder"].as_str()), (Some("morning"), Some("inbox")));
    let o = c.cli(&["tasks", "get", &task]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("morning"), "{}", show(&o));
    let o = c.cli(&["schedules", "runs", "morning"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains(&task), "{}", show(&o));
    // Pause, edit, resume.
    let o = c.cli(&["schedules", "pause", "morning"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("paused"), "{}", show(&o));
    let o = c.cli(&["schedules", "edit", "morning", "--every", "10m", "--overlap", "queue"]);
    assert!(o.status.success(), "{}", show(&o));
    let s = c.get("/api/v1/schedules/morning").await;
    assert_eq!((s["every"].as_str(), s["overlap"].as_str(), s["cron"].as_str()), (Some("10m"), Some("queue"), None));
    assert_eq!(s["status"], "paused");
    let o = c.cli(&["schedules", "resume", "morning"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("active"), "{}", show(&o));
    // Bad input: exit 2, named, nothing changes.
    for (args, want) in [
        (vec!["schedules", "add", "x", "--every", "1m"], "--skill"),
        (vec!["schedules", "add", "x", "--skill", "s"], "--cron"),
        (vec!["schedules", "add", "x", "--cron", "61 * * * *", "--tz", "UTC", "--skill", "s"], "cron"),
        (vec!["schedules", "add", "x", "--cron", "0 7 * * *", "--tz", "Mars/Olympus", "--skill", "s"], "Mars/Olympus"),
        (vec!["schedules", "add", "morning", "--every", "1m", "--skill", "s"], "exists"),
    ] {
        let o = c.cli(&args);
        let all = show(&o);
        assert!(!o.status.success() && all.contains(want), "{args:?}: {all}");
    }
    assert_eq!(c.cli(&["schedules", "get", "nope"]).status.code(), Some(1));
    let (status, body) = c.api("POST", "/api/v1/schedules", Some(json!({"name": "y", "every": "1m"}))).await;
    assert_eq!(status, 400, "{body}");
    let o = c.cli(&["schedules", "remove", "morning"]);
    assert!(o.status.success(), "{}", show(&o));
    let list = c.get("/api/v1/schedules").await;
    assert_eq!(list["schedules"], json!([]), "{list}");
}
