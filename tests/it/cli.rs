//! The binary itself: help, version, link names, config loading and its errors, logging.

use std::path::Path;
use std::time::Duration;

use crate::support::{Cluster, Skill, cli, show};

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn help_lists_every_subcommand_and_version_prints_the_crate_version() {
    let dir = tempfile::tempdir().unwrap();
    let o = cli(&["--help"], &[], dir.path());
    assert!(o.status.success(), "{}", show(&o));
    // The names listed under `Commands:` (the about text mentions some of them too).
    let text = stdout(&o);
    let listed: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    for sub in ["coordinator", "worker", "dev", "migrate", "nodes", "health", "tasks", "skills"] {
        assert!(listed.contains(&sub), "--help lists no {sub} command: {listed:?}\n{}", show(&o));
    }
    let o = cli(&["--version"], &[], dir.path());
    assert_eq!(stdout(&o).trim(), format!("openclaw {}", env!("CARGO_PKG_VERSION")));
}

#[cfg(unix)]
#[test]
fn link_names_act_as_their_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    for (link, expect) in [
        ("openclaw-coordinator", "--db-path"),
        ("openclaw-worker", "--coordinator-host"),
        ("openclaw-cluster", "Commands:"),
    ] {
        let path = dir.path().join(link);
        std::os::unix::fs::symlink(crate::support::BIN, &path).unwrap();
        let o = std::process::Command::new(&path).arg("--help").output().unwrap();
        assert!(o.status.success() && stdout(&o).contains(expect), "{link} --help:\n{}", show(&o));
        // Regression: `openclaw-coordinator --help` printed a usage line that then failed.
        let usage = stdout(&o).lines().find(|l| l.starts_with("Usage:")).unwrap_or_default().to_string();
        assert!(usage.starts_with(&format!("Usage: {link} ")) && !usage.contains("coordinator coordinator"), "{usage}");
    }
}

#[test]
fn completions_are_generated_for_every_shell_under_the_called_name() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_openclaw-cluster"))
            .args(["completions", shell])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{shell}: {}", show(&o));
        let text = stdout(&o);
        assert!(
            text.contains("openclaw-cluster") && text.contains("submit"),
            "{shell}: {}",
            &text[..text.len().min(400)]
        );
    }
    let o = cli(&["completions", "tcsh"], &[], dir.path());
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
}

/// `migrate --status` prints the database path: a cheap probe of storage.path.
fn db_path_seen(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["migrate", "--status"]);
    let mut tail: Vec<&str> = vec![];
    if let Some(i) = all.iter().position(|a| *a == "--db-path") {
        let value = all[i + 1];
        all.drain(i..i + 2);
        tail = vec!["--db-path", value];
    }
    all.extend(tail);
    let o = cli(&all, env, dir);
    assert!(o.status.success(), "{}", show(&o));
    stdout(&o).lines().find_map(|l| l.strip_prefix("database: ")).unwrap().to_string()
}

#[test]
fn file_env_and_flag_precedence() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c.yaml"), "storage:\n  path: from-file.db\n").unwrap();
    let env = [("OPENCLAW_STORAGE__PATH", "from-env.db")];
    assert_eq!(db_path_seen(dir.path(), &[], &[]), "./data/cluster.db");
    assert_eq!(db_path_seen(dir.path(), &["-c", "c.yaml"], &[]), "from-file.db");
    assert_eq!(db_path_seen(dir.path(), &["-c", "c.yaml"], &env), "from-env.db");
    assert_eq!(db_path_seen(dir.path(), &["-c", "c.yaml", "--db-path", "from-flag.db"], &env), "from-flag.db");
}

#[test]
fn the_seeds_config_yaml_loads_verbatim() {
    let dir = tempfile::tempdir().unwrap();
    let seed = "storage:            # storage\n  type: sqlite\n  path: ./data/cluster.db\ncoordinator:\n  host: 0.0.0.0\n  port: 8888\n  heartbeat_timeout: 90          # seconds without heartbeat before a node is offline\n  heartbeat_check_interval: 30   # seconds between liveness checks\nworker:\n  max_concurrent_tasks: 5\n  heartbeat_interval: 5          # seconds\n  skills_dir: ./skills\n  port: 18789\ncommunication:\n  nats_url: nats://localhost:4222\nlog:\n  level: INFO\n  format: json\n";
    std::fs::write(dir.path().join("config.yaml"), seed).unwrap();
    let o = cli(&["-c", "config.yaml", "migrate", "--status"], &[], dir.path());
    assert!(o.status.success(), "{}", show(&o));
}

/// Runs `migrate --status` with a config and expects exit 2 with every `needle` in stderr.
fn config_error(yaml: Option<&str>, args: &[&str], env: &[(&str, &str)], needles: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let mut all = vec![];
    if let Some(y) = yaml {
        std::fs::write(dir.path().join("bad.yaml"), y).unwrap();
        all.extend(["-c", "bad.yaml"]);
    }
    all.extend_from_slice(args);
    if !args.contains(&"coordinator") && !args.contains(&"worker") {
        all.extend(["migrate", "--status"]);
    }
    let o = cli(&all, env, dir.path());
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    for n in needles {
        assert!(stderr(&o).contains(n), "stderr lacks {n:?}:\n{}", show(&o));
    }
    assert!(!dir.path().join("data").exists(), "a config error must change nothing");
}

#[test]
fn config_errors_name_the_key_and_where_it_came_from() {
    config_error(
        Some("coordinator:\n  prot: 1\n"),
        &[],
        &[],
        &["coordinator.prot", "bad.yaml:2", "unknown key `prot` (did you mean `port`?)", "heartbeat_timeout"],
    );
    config_error(Some("coordinator:\n  port: abc\n"), &[], &[], &["coordinator.port", "bad.yaml:2"]);
    config_error(Some("coordinator:\n  port: 70000\n"), &[], &[], &["coordinator.port", "bad.yaml:2", "0 to 65535"]);
    config_error(Some("coordinator:\n  port: 0\n"), &["worker"], &[], &["coordinator.port is 0", "--coordinator-port"]);
    config_error(
        Some("coordinator:\n  heartbeat_timeout: 5\nworker:\n  heartbeat_interval: 5\n"),
        &[],
        &[],
        &["coordinator.heartbeat_timeout", "bad.yaml:2", "worker.heartbeat_interval"],
    );
    config_error(Some("log:\n  level: LOUD\n"), &[], &[], &["log.level", "LOUD", "ERROR, WARN, INFO, DEBUG, TRACE"]);
    config_error(
        None,
        &[],
        &[("OPENCLAW_WORKER__MAX_CONCURRENT_TASKS", "0")],
        &["worker.max_concurrent_tasks", "OPENCLAW_WORKER__MAX_CONCURRENT_TASKS"],
    );
    config_error(
        None,
        &[],
        &[("OPENCLAW_COORDINATOR__PORT", "abc")],
        &["coordinator.port", "OPENCLAW_COORDINATOR__PORT"],
    );
    config_error(
        None,
        &[],
        &[("OPENCLAW_COORDINATOR__PROT", "1")],
        &["unknown key `prot`", "OPENCLAW_COORDINATOR__PROT"],
    );
    config_error(None, &["coordinator", "--port", "70000"], &[], &["--port"]);
}

/// Issue 17, item 10: an unknown key listed the valid keys twice and named the file
/// `<input>`; `host: [unclosed` read as "invalid type: sequence"; a bad environment
/// variable said `expected u16` without its value.
#[test]
fn config_errors_say_it_once_in_plain_words() {
    let dir = tempfile::tempdir().unwrap();
    let run = |yaml: Option<&str>, env: &[(&str, &str)]| {
        let mut args = vec![];
        if let Some(yaml) = yaml {
            std::fs::write(dir.path().join("bad.yaml"), yaml).unwrap();
            args.extend(["-c", "bad.yaml"]);
        }
        args.extend(["migrate", "--status"]);
        let o = cli(&args, env, dir.path());
        assert_eq!(o.status.code(), Some(2), "{}", show(&o));
        stderr(&o)
    };
    let err = run(Some("coordinator:\n  host: 0.0.0.0\n  prot: 9000\n"), &[]);
    assert_eq!(err.matches("heartbeat_timeout").count(), 1, "the keys are listed once:\n{err}");
    assert!(!err.contains("<input>") && err.contains("bad.yaml:3"), "{err}");
    assert_eq!(err.lines().count(), 1, "one line:\n{err}");
    let err = run(Some("coordinator:\n  host: [unclosed\n"), &[]);
    assert!(err.contains("bad.yaml:2") && err.contains("not valid YAML"), "{err}");
    assert!(!err.contains("invalid type"), "{err}");
    let err = run(None, &[("OPENCLAW_COORDINATOR__PORT", "abc")]);
    assert!(err.contains("OPENCLAW_COORDINATOR__PORT=abc") && err.contains("a whole number from 0 to 65535"), "{err}");
    assert!(!err.contains("u16"), "{err}");
    config_error(None, &["--log-level", "LOUD"], &[], &["log.level", "LOUD"]);
}

#[test]
fn a_missing_config_file_is_a_usage_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let o = cli(&["-c", "nope.yaml", "migrate", "--status"], &[], dir.path());
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(stderr(&o).contains("nope.yaml"), "{}", show(&o));
}

#[test]
fn bad_arguments_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    for args in [vec!["frobnicate"], vec!["tasks", "submit"], vec!["coordinator", "--port", "x"]] {
        let o = cli(&args, &[], dir.path());
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", show(&o));
    }
}

#[tokio::test]
async fn log_lines_are_json_with_the_seeds_keys() {
    let mut cluster = Cluster::start().await;
    let (status, _) = cluster.call("GET", "/api/v1/nodes", None, None).await;
    assert_eq!(status, 401);
    let coordinator = cluster.coordinator.as_mut().unwrap();
    coordinator.wait_for_output("\"message\":\"request\"", Duration::from_secs(5)).await;
    let out = coordinator.out();
    let mut saw_coordinator_info = false;
    for line in out.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        for key in ["timestamp", "level", "message", "module"] {
            assert!(v.get(key).is_some_and(|k| k.is_string()), "{key} missing in {line}");
        }
        let ts = v["timestamp"].as_str().unwrap();
        assert!(
            ts.ends_with('Z')
                && time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339).is_ok(),
            "{ts}"
        );
        assert!(["ERROR", "WARN", "INFO", "DEBUG", "TRACE"].contains(&v["level"].as_str().unwrap()), "{line}");
        saw_coordinator_info |= v["module"] == "coordinator" && v["level"] == "INFO";
    }
    assert!(saw_coordinator_info, "no INFO line from module coordinator in:\n{out}");
    // The request log line carries method, path, status and client.
    let request = out.lines().find(|l| l.contains("\"status\":401") && l.contains("\"message\":\"request\"")).unwrap();
    let v: serde_json::Value = serde_json::from_str(request).unwrap();
    assert_eq!(
        (v["method"].as_str(), v["path"].as_str(), v["client"].as_str()),
        (Some("GET"), Some("/api/v1/nodes"), Some("127.0.0.1"))
    );
}

fn man_pages() -> Vec<(String, Vec<u8>)> {
    openclaw::manpages::pages()
}

/// The committed man pages match the CLI. Regenerate with
/// `OPENCLAW_UPDATE_MAN=1 cargo test --test it man_pages`.
#[test]
fn man_pages_are_current() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    let pages = man_pages();
    if std::env::var_os("OPENCLAW_UPDATE_MAN").is_some() {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, page) in &pages {
            std::fs::write(dir.join(name), page).unwrap();
        }
    }
    let mut stale = Vec::new();
    for (name, page) in &pages {
        if std::fs::read(dir.join(name)).ok().as_ref() != Some(page) {
            stale.push(name.clone());
        }
    }
    let committed = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
    for (name, page) in &pages {
        let text = String::from_utf8_lossy(page);
        for section in [".SH \"EXIT STATUS\"", ".SH ENVIRONMENT", ".SH EXAMPLES", ".SH \"SEE ALSO\""] {
            assert!(text.contains(section), "{name} has no {section} section");
        }
    }
    assert!(
        stale.is_empty() && committed == pages.len(),
        "man pages are out of date ({stale:?}; {committed} files for {} pages): run OPENCLAW_UPDATE_MAN=1 cargo test --test it man_pages",
        pages.len()
    );
}

#[tokio::test]
async fn a_busy_port_is_exit_1_naming_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let dir = tempfile::tempdir().unwrap();
    let o = cli(&["coordinator", "--host", "127.0.0.1", "--port", &port, "--db-path", "d/c.db"], &[], dir.path());
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(stderr(&o).contains(&format!("127.0.0.1:{port}")), "{}", show(&o));
    // The fatal error is a log line too, in the configured format (JSON by default).
    let fatal = stdout(&o)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["level"] == "ERROR")
        .unwrap_or_else(|| panic!("no ERROR log line\n{}", show(&o)));
    assert_eq!(fatal["module"], "coordinator");
    assert!(fatal["message"].as_str().unwrap().contains(&format!("127.0.0.1:{port}")), "{fatal}");
}

/// Regression: `openclaw skills --json | head -c 100` aborted with exit 134 on the closed
/// pipe. A closed stdout ends the command quietly with exit 0, like ripgrep.
#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    // Enough output to overflow the pipe's buffer once the reader is gone.
    for i in 0..400 {
        crate::support::exec_skill(&dir.path().join("skills"), &format!("skill-{i:03}"), "cat\n");
    }
    let mut child = std::process::Command::new(crate::support::BIN)
        .args(["skills", "--json", "--skills-dir", "skills"])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 100];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    // The pipe's read end is dropped here.
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(out.stderr.is_empty(), "{}", show(&out));
}

#[tokio::test]
async fn log_dir_gets_rolling_files_of_the_same_json_lines() {
    // log.dir from the environment (the test config already has a `log:` section).
    let cluster = Cluster::new(crate::support::Settings::default());
    let config = cluster.config.display().to_string();
    let logs = cluster.path().join("rolled");
    let mut other = crate::support::Proc::spawn(
        "coordinator-logdir",
        &["-c", &config, "coordinator"],
        &[("OPENCLAW_LOG__DIR", logs.to_str().unwrap())],
        cluster.path(),
        &cluster.logs(),
    );
    other.wait_for_output("coordinator ready", Duration::from_secs(10)).await;
    other.term();
    assert_eq!(other.wait_exit(Duration::from_secs(10)).await.code(), Some(0));
    let files: Vec<_> = std::fs::read_dir(&logs).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("openclaw.") && name.ends_with(".log"), "{name}");
    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert!(text.lines().any(|l| l.contains("coordinator ready")), "{text}");
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(v["module"].is_string() && v["timestamp"].is_string());
    }
}

#[cfg(unix)]
#[test]
fn the_skills_command_explains_every_skill() {
    let dir = tempfile::tempdir().unwrap();
    let skills = dir.path().join("skills");
    crate::support::exec_skill(&skills, "echo", "cat\n");
    std::fs::create_dir_all(skills.join("needs-op")).unwrap();
    std::fs::write(
        skills.join("needs-op/SKILL.md"),
        "---\nname: needs-op\ndescription: d\nmetadata:\n  openclaw: {requires: {bins: [zzz-op], env: [ZZZ_KEY], config: [browser.enabled, zzz.cfg]}}\n  cluster: {run: cat}\n---\n",
    )
    .unwrap();
    crate::support::agent_skill(&skills, "chat");
    std::fs::create_dir_all(skills.join("bad")).unwrap();
    std::fs::write(skills.join("bad/SKILL.md"), "no frontmatter").unwrap();
    let no_gateway = crate::support::DeadPort::new();
    let port = no_gateway.port().to_string();
    let env = [("OPENCLAW_WORKER__PORT", port.as_str())];
    let o = cli(&["skills", "--skills-dir", "skills"], &env, dir.path());
    assert!(o.status.success(), "{}", show(&o));
    let text = stdout(&o);
    let line = |name: &str| {
        text.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name} missing:\n{text}")).to_string()
    };
    assert!(line("echo").contains("ready") && line("echo").contains("exec"), "{text}");
    let op = line("needs-op");
    assert!(
        op.contains("missing")
            && op.contains("bins: zzz-op")
            && op.contains("env: ZZZ_KEY")
            && op.contains("config: zzz.cfg (in OpenClaw's config)"),
        "{op}"
    );
    assert!(line("chat").contains("unavailable") && line("chat").contains("gateway"), "{text}");
    assert!(line("bad").contains("parse error"), "{text}");

    let o = cli(&["skills", "--skills-dir", "skills", "--json"], &env, dir.path());
    let items: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let op = items.as_array().unwrap().iter().find(|i| i["name"] == "needs-op").unwrap();
    assert_eq!(op["eligible"], false);
    assert_eq!(
        op["missing"],
        serde_json::json!({"bins": ["zzz-op"], "anyBins": [], "env": ["ZZZ_KEY"], "config": ["zzz.cfg"], "os": []})
    );
    assert_eq!(op["kind"], "exec");
    assert!(op["path"].as_str().unwrap().ends_with("needs-op"));
    let echo = items.as_array().unwrap().iter().find(|i| i["name"] == "echo").unwrap();
    assert_eq!((echo["eligible"].as_bool(), echo["description"].as_str()), (Some(true), Some("test skill echo")));
}

#[cfg(unix)]
#[tokio::test]
async fn dev_runs_a_coordinator_and_a_worker_that_take_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let skills = dir.path().join("skills");
    crate::support::exec_skill(&skills, "echo", "echo '{\"hi\": 1}'\n");
    let no_gateway = crate::support::DeadPort::new();
    let mut dev = crate::support::Proc::spawn(
        "dev",
        &["dev", "--port", "0", "--db-path", "data/cluster.db", "--skills-dir", "skills", "--node-id", "devnode"],
        &[("OPENCLAW_WORKER__PORT", &no_gateway.port().to_string())],
        dir.path(),
        &dir.path().join("logs"),
    );
    dev.wait_for_output("registered with the coordinator", Duration::from_secs(15)).await;
    let out = dev.out();
    let ready =
        out.lines().find(|l| l.contains("coordinator ready on http://")).expect("the dev coordinator says where");
    let url: String = ready[ready.find("http://").unwrap()..].chars().take_while(|c| *c != '"').collect();
    // The CLI finds data/admin.token from the default storage.path in this folder.
    let o = cli(&["tasks", "submit", "--url", &url, "--skill", "echo", "--wait"], &[], dir.path());
    assert_eq!(o.status.code(), Some(0), "{}\n{}", show(&o), dev.logs());
    assert!(stdout(&o).contains("\"hi\": 1"), "{}", show(&o));
    dev.term();
    let status = dev.wait_exit(Duration::from_secs(20)).await;
    assert_eq!(status.code(), Some(0), "{}", dev.logs());
    assert!(dev.out().contains("told the coordinator this node is leaving"), "{}", dev.logs());
}

#[cfg(unix)]
#[tokio::test]
async fn a_second_signal_exits_at_once() {
    let cluster = Cluster::start().await;
    let skills = cluster.skills_dir();
    let mut worker = cluster.exec_worker("w1", &[Skill::exec("hang", "touch started; sleep 60\n")], &[]).await;
    cluster.submit(serde_json::json!({"name": "t", "required_skills": ["hang"]})).await;
    let started = skills.join("hang/started");
    crate::support::eventually("the task started", Duration::from_secs(10), || async { started.exists() }).await;
    worker.term();
    worker.wait_for_output("taking no new tasks", Duration::from_secs(5)).await;
    worker.term();
    let status = worker.wait_exit(Duration::from_secs(5)).await;
    assert_eq!(status.code(), Some(130), "{}", worker.logs());
}

/// The launchd plist is a property list launchd can read (checked with Python's plistlib,
/// which implements Apple's format) and runs the installed name as a worker.
#[test]
fn the_launchd_plist_is_a_valid_property_list() {
    let plist = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/launchd/org.openclaw-cluster.worker.plist");
    let script = "import plistlib, sys, json; d = plistlib.load(open(sys.argv[1], 'rb')); print(json.dumps(d))";
    let o = std::process::Command::new("python3").args(["-c", script]).arg(&plist).output().expect("python3 runs");
    assert!(o.status.success(), "{}", show(&o));
    let d: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(d["Label"], "org.openclaw-cluster.worker");
    assert_eq!(d["ProgramArguments"][0], "/usr/local/bin/openclaw-cluster");
    assert_eq!(d["ProgramArguments"].as_array().unwrap().last().unwrap(), "worker");
}

/// Regression (issue 14): terminal escape sequences in node and task fields reached the
/// CLI's output raw. Names refuse control characters on the server; free text (a skill's
/// error, a worker's reasons) keeps them and is printed escaped.
#[tokio::test]
async fn escape_sequences_from_the_server_are_printed_escaped() {
    let cluster = Cluster::start().await;
    let evil = "\u{1b}[2J\u{1b}]0;pwned\u{7}";
    let body = serde_json::json!({
        "node_id": "esc", "hostname": "esc.local", "platform": "linux", "arch": "x64",
        "available_skills": ["x"], "max_concurrent_tasks": 1,
        "unavailable_skills": {"chat": format!("the gateway said {evil}")},
    });
    let (status, answer) =
        cluster.call("POST", "/api/v1/nodes/register", Some(&cluster.worker_token()), Some(&body.to_string())).await;
    assert_eq!(status, 200, "{answer}");
    let secret = answer["node_secret"].as_str().unwrap().to_string();
    let id = cluster.submit(serde_json::json!({"name": "t", "required_skills": ["x"], "max_retries": 0})).await;
    let (_, poll) =
        cluster.call("POST", "/api/v1/nodes/esc/tasks/poll", Some(&secret), Some(r#"{"wait_secs": 0}"#)).await;
    assert_eq!(poll["assignments"][0]["task_id"], id.as_str(), "{poll}");
    let path = format!("/api/v1/nodes/esc/tasks/{id}");
    cluster.call("POST", &format!("{path}/start"), Some(&secret), Some(r#"{"attempt": 1}"#)).await;
    let report = serde_json::json!({"attempt": 1, "outcome": "failed", "error": format!("boom {evil}")});
    let (status, _) = cluster.call("POST", &format!("{path}/result"), Some(&secret), Some(&report.to_string())).await;
    assert_eq!(status, 200);

    let runs: [(&[&str], bool); 4] = [
        (&["nodes", "esc"], true),
        (&["tasks", "get", &id], true),
        (&["tasks", "list"], true),
        (&["tasks", "wait", &id], false),
    ];
    for (args, on_stdout) in runs {
        let o = cluster.cli(args);
        let (out, err) = (stdout(&o), String::from_utf8_lossy(&o.stderr).into_owned());
        assert!(
            !out.contains('\u{1b}') && !err.contains('\u{1b}') && !out.contains('\u{7}'),
            "{args:?}: raw escape\n{}",
            show(&o)
        );
        let shown = if on_stdout { &out } else { &err };
        assert!(shown.contains("\\x1b[2J\\x1b]0;pwned\\x07"), "{args:?}: not shown escaped\n{}", show(&o));
    }
}

/// Runs the program in a pseudo-terminal (through Python's `pty`, as a person's terminal
/// would be) until `until` appears in its output, then types Ctrl+C and reads to the end.
/// Returns the output (colours removed) and the exit code.
#[cfg(unix)]
fn on_a_terminal(args: &[&str], env: &[(&str, &str)], cwd: &Path, until: &str) -> (String, Option<i32>) {
    const SCRIPT: &str = r#"
import os, pty, sys, time, select, re
until = sys.argv[1].encode()
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
out, deadline, sent = b"", time.time() + 60, False
while True:
    r, _, _ = select.select([fd], [], [], 0.1)
    if r:
        try:
            data = os.read(fd, 65536)
        except OSError:
            data = b""
        if not data:
            break
        out += data
    if not sent and (until in out or time.time() > deadline):
        os.write(fd, b"\x03")
        sent = True
_, status = os.waitpid(pid, 0)
text = re.sub(rb"\x1b\[[0-9;]*m", b"", out).decode("utf-8", "replace")
sys.stdout.write(text)
sys.stdout.write("\nEXIT %d\n" % (os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1))
"#;
    let mut cmd = std::process::Command::new("python3");
    crate::support::isolate(&mut cmd, cwd);
    cmd.arg("-c").arg(SCRIPT).arg(until).arg(crate::support::BIN).args(args).current_dir(cwd);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = cmd.output().expect("python3 runs");
    let text = String::from_utf8_lossy(&o.stdout).replace("\r\n", "\n");
    let code = text.rsplit("EXIT ").next().and_then(|c| c.trim().parse().ok());
    (text, code)
}

/// Issue 17, item 4 and "must be true" 2: `dev` on a terminal printed JSON, a first line
/// from a library with a cargo registry path in it, and a WARN about the admin token that
/// `dev` shares on purpose. Now: text, no warning about what `dev` intends, and one line
/// saying which example skills can run and why the others cannot, naming OpenClaw's own
/// CLI for the fix. Ctrl+C then stops it with exit 0.
#[cfg(unix)]
#[tokio::test]
async fn dev_on_a_terminal_says_what_can_run_in_one_readable_line() {
    let dir = tempfile::tempdir().unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/skills");
    let no_gateway = crate::support::DeadPort::new();
    let port = no_gateway.port().to_string();
    let (out, code) = tokio::task::spawn_blocking({
        let cwd = dir.path().to_path_buf();
        move || {
            on_a_terminal(
                &["dev", "--port", "0", "--skills-dir", examples.to_str().unwrap(), "--node-id", "devnode"],
                &[("OPENCLAW_WORKER__PORT", &port)],
                &cwd,
                "registered with the coordinator",
            )
        }
    })
    .await
    .unwrap();
    let lines: Vec<&str> = out.lines().filter(|l| l.starts_with("20")).collect();
    assert!(!lines.is_empty() && lines.iter().all(|l| !l.contains("{\"")), "text logs on a terminal:\n{out}");
    assert!(!out.contains("admin token"), "no warning about what dev intends:\n{out}");
    assert!(lines.iter().all(|l| l.contains(" openclaw::")), "only our own lines, no library's:\n{out}");
    let skills: Vec<&&str> = lines.iter().filter(|l| l.contains("skills: ")).collect();
    assert_eq!(skills.len(), 1, "one line about the skills:\n{out}");
    let line = skills[0];
    assert!(line.contains("echo can run now") && line.contains("summarize cannot run"), "{line}");
    assert!(line.contains("OpenClaw's own CLI, `openclaw gateway`"), "{line}");
    assert!(!out.contains("agent skills are unavailable"), "said once, in that line:\n{out}");
    assert_eq!(code, Some(0), "Ctrl+C stops dev cleanly:\n{out}");
    assert!(lines.last().is_some_and(|l| l.contains("coordinator stopped")), "{out}");
}

/// Issue 17, item 11: a fatal start-up error was printed twice where a person reads it —
/// once as a log line, once as `openclaw: …`. With stdout and stderr on one terminal (here:
/// one file), it comes once; with them apart, the log has it and stderr says it too.
#[cfg(unix)]
#[tokio::test]
async fn a_fatal_start_up_error_is_said_once() {
    let cluster = Cluster::start().await;
    let config = cluster.config.display().to_string();
    let skills = cluster.skills_dir();
    let _first = cluster.exec_worker("dup", &[Skill::exec("echo", "cat\n")], &[]).await;
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_port = busy.local_addr().unwrap().port().to_string();
    let skills_arg = skills.display().to_string();
    let cases: Vec<(&str, Vec<&str>, &str)> = vec![
        (
            "port-in-use",
            vec!["coordinator", "--host", "127.0.0.1", "--port", &busy_port, "--db-path", "other/cluster.db"],
            "127.0.0.1:",
        ),
        ("database-locked", vec!["coordinator", "--port", "0"], "cluster.db.lock"),
        ("same-node-id", vec!["worker", "--node-id", "dup", "--skills-dir", &skills_arg], "dup"),
        (
            "wrong-join-token",
            vec!["worker", "--node-id", "w2", "--skills-dir", &skills_arg, "--token", "not-the-join-token-at-all"],
            "401",
        ),
    ];
    for (name, args, needle) in cases {
        let mut all = vec!["-c", config.as_str()];
        all.extend(args.iter().copied());
        let combined = cluster.logs().join(format!("{name}.both"));
        let file = std::fs::File::create(&combined).unwrap();
        let mut p = crate::support::Proc::spawn_with(name, &all, &[], cluster.path(), &cluster.logs(), |cmd| {
            cmd.stdout(file.try_clone().unwrap()).stderr(file);
        });
        let status = p.wait_exit(Duration::from_secs(20)).await;
        assert_eq!(status.code(), Some(1), "{name}: {}", std::fs::read_to_string(&combined).unwrap());
        let text = std::fs::read_to_string(&combined).unwrap();
        let saying: Vec<&str> =
            text.lines().filter(|l| l.contains("\"level\":\"ERROR\"") || l.starts_with("openclaw:")).collect();
        assert_eq!(saying.len(), 1, "{name}: the error once, not {}:\n{text}", saying.len());
        assert!(saying[0].contains(needle), "{name}: {text}");
    }
    // Apart, both places have it: the log for tools, stderr for the person.
    let mut apart = crate::support::Proc::spawn(
        "apart",
        &["-c", &config, "coordinator", "--port", "0"],
        &[],
        cluster.path(),
        &cluster.logs(),
    );
    assert_eq!(apart.wait_exit(Duration::from_secs(20)).await.code(), Some(1), "{}", apart.logs());
    assert!(apart.out().contains("\"level\":\"ERROR\"") && apart.err().starts_with("openclaw:"), "{}", apart.logs());
    drop(busy);
}
