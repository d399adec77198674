//! Cluster secrets: set from a file or stdin, listed without values, used by tasks by name,
//! handed only to the skill's process in the answer to the start report, and never shown:
//! not in task views, lists, events, MCP answers, output, results, logs, backups or the
//! database file. A backup restored without its key file says the secrets cannot be read;
//! key rotation keeps them working.

use std::time::Duration;

use serde_json::{Value, json};
use sha2::Digest;

use crate::support::{Cluster, Settings, Sse, show};

/// A value no test writes anywhere else, so that finding it anywhere is a leak.
const VALUE: &str = "sk-live-QX7Zb9UNIQUE-secret-value-4242";

fn sha256(text: &str) -> String {
    sha2::Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// `uses-key` proves it got the value (its hash, computed in the skill's process);
/// `prints-key` prints it on both streams and puts it in its result.
fn skills(dir: &std::path::Path) -> std::path::PathBuf {
    let skills = dir.join("skills");
    for (name, script) in [
        ("uses-key", "h=$(printf %s \"$API_KEY\" | sha256sum | cut -d' ' -f1)\nprintf '{\"sha\": \"%s\"}' \"$h\"\n"),
        (
            "prints-key",
            "echo \"key is $API_KEY\"\necho \"stderr key $API_KEY\" >&2\nprintf '{\"leak\": \"%s\"}' \"$API_KEY\"\n",
        ),
        ("undeclared", "printf '{\"saw\": \"%s\"}' \"$API_KEY\"\n"),
    ] {
        let d = skills.join(name);
        std::fs::create_dir_all(&d).unwrap();
        let env = if name == "undeclared" { "" } else { "  openclaw:\n    requires:\n      env: [API_KEY]\n" };
        std::fs::write(
            d.join("SKILL.md"),
            format!("---\nname: {name}\ndescription: d\nmetadata:\n{env}  cluster:\n    run: [sh, run.sh]\n---\n"),
        )
        .unwrap();
        std::fs::write(d.join("run.sh"), script).unwrap();
    }
    skills
}

/// Every byte under `dir` (recursively), as text where it is.
fn find_in_files(dir: &std::path::Path, needle: &[u8], found: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            find_in_files(&path, needle, found);
        } else if let Ok(bytes) = std::fs::read(&path)
            && bytes.windows(needle.len()).any(|w| w == needle)
        {
            found.push(path.display().to_string());
        }
    }
}

/// One recognisable value, set by the CLI, used by a task that proves it received it and
/// by one that prints it; then every surface and every file of the cluster is searched.
#[tokio::test]
async fn a_secret_reaches_only_the_skill_and_is_never_shown() {
    let cluster = Cluster::start_with(Settings { log_level: "TRACE", ..Default::default() }).await;
    let skills = skills(cluster.path());
    let mut worker = cluster.worker("w1", &skills, &[]);
    // Until the secret exists, a skill that needs its variable is not eligible here.
    let node = cluster.wait_online("w1", &["undeclared"]).await;
    assert!(!node["available_skills"].to_string().contains("uses-key"), "{node}");

    // Set from a file (then removed: it is the one place the value is allowed to be).
    let file = cluster.path().join("value.txt");
    std::fs::write(&file, format!("{VALUE}\n")).unwrap();
    let o = cluster.cli(&["secrets", "set", "API_KEY", "--file", file.to_str().unwrap()]);
    assert!(o.status.success(), "{}", show(&o));
    std::fs::remove_file(&file).unwrap();
    // The heartbeat answers name it: the skills that declare it become eligible.
    cluster.wait_online("w1", &["prints-key", "undeclared", "uses-key"]).await;
    let o = cluster.cli(&["secrets", "list"]);
    let listed = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success() && listed.contains("API_KEY") && listed.contains("admin token from"), "{}", show(&o));

    // An unknown name is refused naming it (a state the document cannot know: 404, as the
    // API's contract has it), and nothing is stored.
    let (status, answer) = cluster
        .api("POST", "/api/v1/tasks", Some(json!({"name": "t", "required_skills": ["uses-key"], "secrets": ["NOPE"]})))
        .await;
    assert_eq!((status, answer["error"]["code"].as_str()), (404, Some("unknown_secret")), "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap().contains("`NOPE`"), "{answer}");

    let submit = |skill: &str| {
        let o = cluster.cli(&["tasks", "submit", "--skill", skill, "--secret", "API_KEY", "--wait", "--json"]);
        let task: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", show(&o)));
        task
    };
    let used = submit("uses-key");
    assert_eq!(used["status"], "completed", "{used}");
    assert_eq!(used["result"]["sha"], sha256(VALUE), "the skill's process got the value: {used}");
    assert_eq!(used["secrets"], json!(["API_KEY"]), "the task shows the name: {used}");
    let printed = submit("prints-key");
    assert_eq!(printed["status"], "completed", "{printed}");
    let result = printed["result"]["stdout"].as_str().unwrap_or_default();
    assert!(result.contains("key is [REDACTED]") && result.contains("\"leak\": \"[REDACTED]\""), "redacted: {printed}");
    // A skill that does not declare it does not get it: the attempt fails for good, saying why.
    let undeclared = submit("undeclared");
    assert_eq!(undeclared["status"], "failed", "{undeclared}");
    assert!(undeclared["error"].as_str().unwrap().contains("does not declare API_KEY"), "{undeclared}");
    let ids: Vec<String> =
        [&used, &printed, &undeclared].iter().map(|t| t["task_id"].as_str().unwrap().into()).collect();

    // Every surface that shows a task, as clients read it.
    let mut seen: Vec<(String, String)> = Vec::new();
    for id in &ids {
        for path in [format!("/api/v1/tasks/{id}"), format!("/api/v1/tasks/{id}/output")] {
            let (status, body) = cluster.api("GET", &path, None).await;
            assert_eq!(status, 200, "{path}: {body}");
            seen.push((path, body.to_string()));
        }
    }
    let (_, output) = cluster.api("GET", &format!("/api/v1/tasks/{}/output", ids[1]), None).await;
    assert!(output.to_string().contains("key is [REDACTED]"), "the printed line is there, redacted: {output}");
    for path in ["/api/v1/tasks?limit=100", "/api/v1/secrets", "/api/v1/nodes"] {
        seen.push((path.into(), cluster.api("GET", path, None).await.1.to_string()));
    }
    for args in [
        vec!["tasks", "get", ids[1].as_str()],
        vec!["tasks", "list"],
        vec!["tasks", "logs", ids[1].as_str()],
        vec!["secrets", "list", "--json"],
    ] {
        let o = cluster.cli(&args);
        seen.push((format!("openclaw {}", args.join(" ")), show(&o)));
    }
    // The event stream, from the first event to the last task's end.
    let mut events = Sse::open(&cluster, "/api/v1/events?after=0", &cluster.admin(), None).await;
    let mut stream = String::new();
    while let Some(m) = events.next().await {
        stream.push_str(&m.data);
        if m.data.contains(&ids[2]) && m.data.contains("\"failed\"") {
            break;
        }
    }
    seen.push(("GET /api/v1/events".into(), stream));
    // MCP answers (the HTTP door).
    let mcp = cluster
        .http
        .post(format!("{}/mcp", cluster.url()))
        .bearer_auth(cluster.admin())
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": "get_task", "arguments": {"task_id": ids[1]}}}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(mcp.contains(&ids[1]), "the MCP door answered about the task: {mcp}");
    seen.push(("MCP get_task".into(), mcp));
    // A backup, through the API.
    let backup = cluster
        .http
        .get(format!("{}/api/v1/backup", cluster.url()))
        .bearer_auth(cluster.admin())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(backup.starts_with(b"SQLite format 3"), "a real backup");
    assert!(!backup.windows(VALUE.len()).any(|w| w == VALUE.as_bytes()), "the backup holds no value");
    for (surface, text) in &seen {
        assert!(!text.contains(VALUE), "{surface} shows the secret's value:\n{text}");
    }

    // Logs (TRACE), the database and its WAL, the key file's folder: every file the cluster
    // wrote. The key file holds the key, not the value.
    worker.term();
    worker.wait_exit(Duration::from_secs(10)).await;
    let logs = worker.out() + &worker.err();
    assert!(logs.contains("task ended"), "the worker's log is there to search");
    let mut found = Vec::new();
    find_in_files(cluster.path(), VALUE.as_bytes(), &mut found);
    assert!(found.is_empty(), "the value is in {found:?}");
    let coordinator = cluster.coordinator.as_ref().unwrap();
    let coordinator_log = coordinator.out() + &coordinator.err();
    assert!(coordinator_log.contains("secret set") && !coordinator_log.contains(VALUE));
    assert!(!logs.contains(VALUE));
}

/// A backup restored without the key file: the coordinator starts, says which secrets
/// cannot be read, refuses tasks that use them (naming the fix) and runs the others;
/// setting the secret again makes it usable. Rotating the key reseals every secret, and
/// the old key file no longer opens them.
#[tokio::test]
async fn without_its_key_a_restored_backup_cannot_read_secrets_and_rotation_reseals() {
    let cluster = Cluster::start().await;
    let (status, answer) =
        cluster.api("PUT", "/api/v1/secrets/API_KEY", Some(json!({"value": VALUE, "scope": {"tags": ["gpu"]}}))).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["readable"], true);
    // Placement: only nodes the secret's scope allows; the reason says why it waits.
    cluster.register("plain", &["uses-key"], 1).await;
    let id = cluster.submit(json!({"name": "t", "required_skills": ["uses-key"], "secrets": ["API_KEY"]})).await;
    let task = cluster.get(&format!("/api/v1/tasks/{id}")).await;
    let reason = task["pending_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("gpu") && reason.contains("API_KEY"), "{task}");

    // Rotation: a new key file, the secret still readable; the old key opens nothing.
    let key_file = cluster.path().join("data/secrets.key");
    let old_key = std::fs::read_to_string(&key_file).unwrap();
    let o = cluster.cli(&["secrets", "rotate-key"]);
    assert!(
        o.status.success() && String::from_utf8_lossy(&o.stdout).contains("1 secret(s) sealed again"),
        "{}",
        show(&o)
    );
    assert_ne!(std::fs::read_to_string(&key_file).unwrap(), old_key);
    let (_, list) = cluster.api("GET", "/api/v1/secrets", None).await;
    assert_eq!(list["secrets"][0]["readable"], true, "{list}");

    // Restore a backup on another cluster without the key file.
    let backup = cluster.path().join("backup.db");
    let o = cluster.cli(&["backup", backup.to_str().unwrap()]);
    assert!(o.status.success(), "{}", show(&o));
    let restored = Cluster::start_on_copy(&backup).await;
    let log = restored.coordinator.as_ref().unwrap().out();
    assert!(log.contains("cannot be read") && log.contains("API_KEY"), "the start says so: {log}");
    let o = restored.cli(&["secrets", "list"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("NO: set it again"), "{}", show(&o));
    let (status, answer) = restored
        .api("POST", "/api/v1/tasks", Some(json!({"name": "t", "required_skills": ["x"], "secrets": ["API_KEY"]})))
        .await;
    assert_eq!((status, answer["error"]["code"].as_str()), (409, Some("secret_unreadable")), "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains("cannot be read") && message.contains("secrets_key_file"), "{message}");
    // Everything else works: the old task is there, a task without secrets is taken.
    assert_eq!(restored.get(&format!("/api/v1/tasks/{id}")).await["task_id"], id.as_str());
    restored.submit(json!({"name": "t", "required_skills": ["x"]})).await;
    // Set again: readable.
    let (status, _) = restored.api("PUT", "/api/v1/secrets/API_KEY", Some(json!({"value": VALUE}))).await;
    assert_eq!(status, 200);
    let (_, list) = restored.api("GET", "/api/v1/secrets", None).await;
    assert_eq!(list["secrets"][0]["readable"], true, "{list}");
    // The value never travels in an argument: there is no flag for it.
    let o = restored.cli(&["secrets", "set", "OTHER", "--value", "x"]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    let (status, answer) = restored.api("DELETE", "/api/v1/secrets/NOPE", None).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (404, Some("unknown_secret")), "{answer}");
    let o = restored.cli(&["secrets", "rm", "API_KEY"]);
    assert!(o.status.success(), "{}", show(&o));
}
