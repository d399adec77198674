//! Pushing a skill to the cluster (issue 21 items 3 and 5), with real worker processes:
//! `openclaw skills push` to a tag, the chosen workers install it and advertise its digest
//! (its script's exec bit intact: a task runs it directly), a worker that does not accept
//! pushes refuses and says so in an event, a worker that joins later gets it, a new
//! version, a rollback and a removal reach the nodes, the push survives a coordinator
//! restart, and only the admin token may push.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Cluster, Skill, Sse, exec_skill, show};

fn digest_of(dir: &Path) -> String {
    openclaw::worker::skills::digest::digest(dir, openclaw::worker::skills::digest::CAPS).unwrap()
}

/// A skill whose command is its script, run directly: it runs only with its exec bit.
fn write_summarize(root: &Path, words: &str) -> std::path::PathBuf {
    let dir = Skill::command("summarize", &["./run.sh"]).write(root);
    std::fs::write(dir.join("run.sh"), format!("#!/bin/sh\necho {words}\n")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    dir
}

/// A worker with its own skills dir (one skill, so it is not empty), these tags, and
/// whether it accepts pushes; never OpenClaw's CLI (the real-OpenClaw test covers that).
fn worker(cluster: &Cluster, id: &str, tags: &[&str], accept: bool) -> crate::support::Proc {
    let dir = cluster.path().join(format!("skills-{id}"));
    exec_skill(&dir, "echo", "echo hi\n");
    let mut extra = Vec::new();
    for t in tags {
        extra.extend(["--tag", t]);
    }
    let accept = if accept { "true" } else { "false" };
    cluster.worker_env(
        id,
        &dir,
        &extra,
        &[("OPENCLAW_WORKER__ACCEPT_SKILL_PUSHES", accept), ("OPENCLAW_WORKER__OPENCLAW_CLI", "off")],
    )
}

async fn wait_digest(cluster: &Cluster, node: &str, digest: &str) -> Value {
    cluster
        .wait_node(node, &format!("summarize at {digest}"), Duration::from_secs(30), |n| {
            n["skill_digests"]["summarize"]["digest"] == digest
        })
        .await
}

/// The next event of the stream named `event`.
async fn next_event(sse: &mut Sse, event: &str) -> Value {
    loop {
        let (_, e) = sse.next_json().await.expect("the stream goes on");
        if e["event"] == event {
            return e;
        }
    }
}

#[tokio::test]
async fn push_to_tags_late_joiners_rollback_remove_and_refusals() {
    let mut cluster = Cluster::start().await;
    let _w1 = worker(&cluster, "w1", &["gpu"], true);
    let _w2 = worker(&cluster, "w2", &["gpu"], false);
    let _w3 = worker(&cluster, "w3", &[], true);
    for id in ["w1", "w2", "w3"] {
        cluster.wait_online(id, &["echo"]).await;
    }
    let src = cluster.path().join("src");
    let v1_dir = write_summarize(&src, "version one");
    let v1 = digest_of(&v1_dir);
    let mut sse = Sse::open(&cluster, "/api/v1/events?after=0&kind=skill", &cluster.admin(), None).await;

    // Only the admin token pushes: the tasks token and the join token get 403, nothing stored.
    let body = json!({"name": "summarize", "digest": v1, "package": "", "selector": {"all": true}}).to_string();
    for token in [
        std::fs::read_to_string(cluster.path().join("data/tasks.token")).unwrap().trim().to_string(),
        cluster.worker_token(),
    ] {
        let (status, answer) = cluster.call("POST", "/api/v1/skills/push", Some(&token), Some(&body)).await;
        assert_eq!((status, answer["error"]["code"].as_str()), (403, Some("forbidden")), "{answer}");
    }
    assert_eq!(cluster.get("/api/v1/skills/pushes").await["pushes"], json!([]));

    // A push to the gpu nodes: w1 installs it, w2 refuses (it does not accept pushes) and the
    // CLI says so (exit 1); w3 is not chosen.
    let src_dir = v1_dir.display().to_string();
    let cli = cluster.cli(&["skills", "push", &src_dir, "--tags", "gpu", "--timeout", "60s"]);
    let text = String::from_utf8_lossy(&cli.stdout).to_string();
    assert_eq!(cli.status.code(), Some(1), "{}", show(&cli));
    assert!(text.contains("pushed summarize sha256:") && text.contains("to nodes tagged gpu"), "{text}");
    assert!(text.contains("w1 installed"), "{text}");
    assert!(text.contains("w2 failed: this node does not accept pushed skills"), "{text}");
    assert!(text.contains("1 of 2 node(s) have summarize"), "{text}");
    wait_digest(&cluster, "w1", &v1).await;
    let w1 = cluster.node("w1").await;
    assert!(w1["available_skills"].as_array().unwrap().contains(&json!("summarize")), "{w1}");

    // The exec bit survived: the script runs as the command itself.
    let id = cluster.submit(json!({"name": "s", "required_skills": ["summarize"]})).await;
    let task = cluster.wait_task(&id, 20).await;
    assert_eq!((task["status"].as_str(), task["assigned_node"].as_str()), (Some("completed"), Some("w1")), "{task}");
    assert_eq!(task["result"], json!({"stdout": "version one\n"}));

    // Events: who pushed what where; w1's install; w2's refusal with its reason.
    let pushed = next_event(&mut sse, "skill_pushed").await;
    let message = pushed["message"].as_str().unwrap();
    assert!(message.starts_with("admin token from 127.0.0.1 pushed summarize sha256:"), "{pushed}");
    assert!(message.ends_with("to nodes tagged gpu"), "{pushed}");
    assert_eq!((pushed["kind"].as_str(), pushed["skill"].as_str()), (Some("skill"), Some("summarize")));
    // The two nodes' outcomes, in whichever order they came.
    let (mut refused, mut installed) = (None, None);
    while refused.is_none() || installed.is_none() {
        let (_, e) = sse.next_json().await.expect("the stream goes on");
        match (e["event"].as_str(), e["node_id"].as_str()) {
            (Some("skill_install_failed"), Some("w2")) => refused = Some(e),
            (Some("skill_installed"), Some("w1")) => installed = Some(e),
            (Some("skill_installed" | "skill_install_failed"), _) => panic!("an outcome from a node not chosen: {e}"),
            _ => {}
        }
    }
    let refused = refused.unwrap();
    assert!(refused["message"].as_str().unwrap().contains("worker.accept_skill_pushes"), "{refused}");
    assert_eq!(installed.unwrap()["message"], format!("w1 installed summarize {}", &v1[..19]));
    let pushes = cluster.get("/api/v1/skills/pushes").await;
    let nodes = &pushes["pushes"][0]["nodes"];
    assert_eq!(nodes[0], json!({"node_id": "w1", "state": "installed"}), "{pushes}");
    assert_eq!((nodes[1]["node_id"].as_str(), nodes[1]["state"].as_str()), (Some("w2"), Some("failed")), "{pushes}");
    assert!(nodes[1]["reason"].as_str().unwrap().contains("worker.accept_skill_pushes: true"), "{pushes}");
    assert_eq!(nodes.as_array().unwrap().len(), 2, "w3 is not chosen: {pushes}");
    assert!(cluster.node("w3").await["skill_digests"].get("summarize").is_none());

    // A worker that joins later with the tag gets it.
    let _w4 = worker(&cluster, "w4", &["gpu"], true);
    wait_digest(&cluster, "w4", &v1).await;

    // A new version reaches both; a rollback brings the first back; the push outlives a
    // coordinator restart (the desired state is in the store).
    let v2_dir = write_summarize(&src, "version two");
    let v2 = digest_of(&v2_dir);
    assert_ne!(v1, v2);
    let cli = cluster.cli(&["skills", "push", &src_dir, "--tags", "gpu", "--no-wait"]);
    assert!(cli.status.success(), "{}", show(&cli));
    wait_digest(&cluster, "w1", &v2).await;
    wait_digest(&cluster, "w4", &v2).await;
    cluster.kill_coordinator();
    cluster.start_coordinator().await;
    let pushes = cluster.get("/api/v1/skills/pushes").await;
    assert_eq!(
        (pushes["pushes"][0]["digest"].as_str(), pushes["pushes"][0]["previous"].as_str()),
        (Some(v2.as_str()), Some(v1.as_str())),
        "{pushes}"
    );
    let cli = cluster.cli(&["skills", "rollback", "summarize"]);
    assert!(cli.status.success(), "{}", show(&cli));
    assert!(String::from_utf8_lossy(&cli.stdout).contains("rolled back to sha256:"), "{}", show(&cli));
    wait_digest(&cluster, "w1", &v1).await;
    wait_digest(&cluster, "w4", &v1).await;

    // Removed from w4 only, then from everyone: the copies go, the hand-installed skill stays.
    let cli = cluster.cli(&["skills", "remove", "summarize", "--nodes", "w4"]);
    assert!(cli.status.success(), "{}", show(&cli));
    cluster
        .wait_node("w4", "without summarize", Duration::from_secs(30), |n| {
            n["skill_digests"].get("summarize").is_none()
        })
        .await;
    assert_eq!(cluster.node("w1").await["skill_digests"]["summarize"]["digest"], v1.as_str());
    let cli = cluster.cli(&["skills", "remove", "summarize"]);
    assert!(cli.status.success(), "{}", show(&cli));
    let w1 = cluster
        .wait_node("w1", "without summarize", Duration::from_secs(30), |n| {
            n["skill_digests"].get("summarize").is_none()
        })
        .await;
    assert_eq!(w1["available_skills"], json!(["echo"]), "{w1}");
    let pushes = cluster.cli(&["skills", "pushes"]);
    let text = String::from_utf8_lossy(&pushes.stdout);
    assert!(text.contains("summarize") && text.contains("removed"), "{text}");

    // A rollback with nothing before, and an unknown name: clear refusals.
    let (status, answer) = cluster.api("POST", "/api/v1/skills/pushes/nothing/rollback", None).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (404, Some("unknown_skill_push")), "{answer}");
}

/// Bad pushes are refused (409 `invalid_skill_push`: rules the API document cannot
/// express) naming what is wrong, and nothing is stored: a
/// package whose content is not the digest announced, one with `..`, a SKILL.md naming
/// another skill, a selector with two ways of choosing.
#[tokio::test]
async fn bad_pushes_are_refused_and_nothing_is_stored() {
    use base64::Engine;
    let cluster = Cluster::start().await;
    let src = cluster.path().join("src");
    let dir = write_summarize(&src, "x");
    let packed = openclaw::worker::skills::package::pack(&dir).unwrap();
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let other = format!("sha256:{}", "0".repeat(64));
    let cases = [
        (
            json!({"name": "summarize", "digest": other, "package": b64(&packed.tar), "selector": {"all": true}}),
            "was announced",
        ),
        (
            json!({"name": "other", "digest": packed.digest, "package": b64(&packed.tar), "selector": {"all": true}}),
            "names the skill `summarize`",
        ),
        (
            json!({"name": "summarize", "digest": packed.digest, "package": b64(&packed.tar), "selector": {"all": true, "tags": ["x"]}}),
            "exactly one",
        ),
        (
            json!({"name": "summarize", "digest": packed.digest, "package": b64(&packed.tar[..1024]), "selector": {"all": true}}),
            "truncated",
        ),
        (
            json!({"name": "../x", "digest": packed.digest, "package": b64(&packed.tar), "selector": {"all": true}}),
            "cannot be a pushed skill's folder name",
        ),
        (
            json!({"name": "summarize", "digest": packed.digest, "package": "%%%", "selector": {"all": true}}),
            "not base64",
        ),
    ];
    for (body, expect) in cases {
        let (status, answer) = cluster.api("POST", "/api/v1/skills/push", Some(body)).await;
        assert_eq!((status, answer["error"]["code"].as_str()), (409, Some("invalid_skill_push")), "{answer}");
        assert!(answer["error"]["message"].as_str().unwrap().contains(expect), "{expect}: {answer}");
    }
    assert_eq!(cluster.get("/api/v1/skills/pushes").await["pushes"], json!([]));
    // The CLI refuses a folder that cannot be pushed (exit 2), naming it.
    let bad = src.join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    let cli = cluster.cli(&["skills", "push", &bad.display().to_string(), "--all"]);
    assert_eq!(cli.status.code(), Some(2), "{}", show(&cli));
    assert!(String::from_utf8_lossy(&cli.stderr).contains("has no SKILL.md"), "{}", show(&cli));
}

/// Where the worker's OpenClaw is installed, a pushed skill goes into OpenClaw's managed
/// skills folder: the worker advertises it from OpenClaw's own listing (source `managed`),
/// and the real `openclaw skills list --json` on that machine shows it.
#[tokio::test]
async fn a_pushed_skill_is_one_of_openclaws_own_where_openclaw_is_installed() {
    let install = crate::require_openclaw!();
    let cluster = Cluster::start().await;
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join("tmp")).unwrap();
    let state = home.path().join(".openclaw");
    let (state_text, tmp, path) =
        (state.display().to_string(), home.path().join("tmp").display().to_string(), install.path(&[]));
    let home_text = home.path().display().to_string();
    let cli = install.cli.display().to_string();
    let skills = cluster.path().join("skills-w1");
    exec_skill(&skills, "echo", "echo hi\n");
    let _w1 = cluster.worker_env(
        "w1",
        &skills,
        &[],
        &[
            ("HOME", home_text.as_str()),
            ("OPENCLAW_STATE_DIR", state_text.as_str()),
            ("TMPDIR", tmp.as_str()),
            ("PATH", path.as_str()),
            ("OPENCLAW_WORKER__OPENCLAW_CLI", cli.as_str()),
            ("OPENCLAW_WORKER__ACCEPT_SKILL_PUSHES", "true"),
        ],
    );
    cluster.wait_node("w1", "online", Duration::from_secs(60), |n| n["status"] == "online").await;

    let src = cluster.path().join("src/pushed-notes");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(
        src.join("SKILL.md"),
        "---\nname: pushed-notes\ndescription: Notes pushed by the cluster.\n---\n\nWrite three bullets.\n",
    )
    .unwrap();
    let digest = digest_of(&src);
    let out = cluster.cli(&["skills", "push", &src.display().to_string(), "--nodes", "w1", "--no-wait"]);
    assert!(out.status.success(), "{}", show(&out));
    let node = cluster
        .wait_node("w1", "advertising pushed-notes", Duration::from_secs(90), |n| {
            n["skill_digests"]["pushed-notes"]["digest"] == digest.as_str()
        })
        .await;
    assert_eq!(node["skill_digests"]["pushed-notes"]["source"], "managed", "{node}");
    assert!(state.join("skills/pushed-notes/SKILL.md").is_file());

    let listed =
        install.run(home.path(), &["skills", "list", "--json"], &[("OPENCLAW_STATE_DIR", state_text.as_str())]);
    let listing: Value = serde_json::from_slice(&listed.stdout)
        .unwrap_or_else(|e| panic!("`openclaw skills list --json` is not JSON ({e}): {}", show(&listed)));
    let ours = listing["skills"].as_array().unwrap().iter().find(|s| s["name"] == "pushed-notes");
    let ours = ours.unwrap_or_else(|| panic!("OpenClaw does not list the pushed skill: {listing}"));
    assert_eq!(ours["source"], "openclaw-managed", "{ours}");
}
