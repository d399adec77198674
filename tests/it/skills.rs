//! One set of skills across the cluster (issue 21): each node's skill digests and sources,
//! kept by the coordinator through a restart; the cluster's skills view and drift; pinned
//! versions — with real worker processes scanning real skill folders and running the tasks.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Cluster, Sse, exec_skill, show};

/// The digest the worker must advertise for a folder, from the worker's own module.
fn digest_of(dir: &Path) -> String {
    openclaw::worker::skills::digest::digest(dir, openclaw::worker::skills::digest::CAPS).unwrap()
}

/// Waits until the node advertises this digest for the skill, and returns the node.
async fn wait_digest(cluster: &Cluster, node: &str, skill: &str, digest: &str) -> Value {
    cluster
        .wait_node(node, &format!("{skill} at {digest}"), Duration::from_secs(20), |n| {
            n["skill_digests"][skill]["digest"] == digest
        })
        .await
}

/// Two workers with copies of one skill advertise one digest and their source (item 1); an
/// edit on one node changes its digest at the next rescan and makes drift, shown by the API,
/// the gauge, an event and the CLI (item 2); pinned tasks run only where their version is,
/// or wait saying which versions the nodes have (item 4); the coordinator keeps the digests
/// through its restart.
#[tokio::test]
async fn one_skill_across_nodes_digests_drift_and_pins() {
    let mut cluster = Cluster::start().await;
    let (one, two) = (cluster.path().join("skills-w1"), cluster.path().join("skills-w2"));
    for dir in [&one, &two] {
        exec_skill(dir, "summarize", "echo summary\n");
    }
    let same = digest_of(&one.join("summarize"));
    assert_eq!(same, digest_of(&two.join("summarize")));
    let _w1 = cluster.worker("w1", &one, &[]);
    let _w2 = cluster.worker("w2", &two, &[]);
    for node in ["w1", "w2"] {
        let n = wait_digest(&cluster, node, "summarize", &same).await;
        assert_eq!(n["skill_digests"]["summarize"]["source"], "skills_dir", "{n}");
    }

    // One version everywhere: no drift.
    let view = cluster.get("/api/v1/skills").await;
    assert_eq!(view["drifted"], json!([]), "{view}");
    assert_eq!(view["skills"][0]["digests"], json!([same]), "{view}");
    assert_eq!(cluster.metric("openclaw_skills_drifted").await, 0.0);
    let cli = cluster.cli(&["skills", "--cluster"]);
    assert!(cli.status.success(), "{}", show(&cli));

    std::fs::write(two.join("summarize/run.sh"), "echo a newer summary\n").unwrap();
    let newer = digest_of(&two.join("summarize"));
    assert_ne!(same, newer);
    wait_digest(&cluster, "w2", "summarize", &newer).await;
    assert_eq!(cluster.node("w1").await["skill_digests"]["summarize"]["digest"], same.as_str());

    // Item 2: drift, in the API, the gauge, the events and the CLI; who can run it and why not.
    cluster.api("POST", "/api/v1/nodes/w1/drain", None).await;
    let view = cluster.get("/api/v1/skills").await;
    assert_eq!(view["drifted"], json!(["summarize"]), "{view}");
    let skill = &view["skills"][0];
    assert_eq!((skill["name"].as_str(), skill["drift"].as_bool()), (Some("summarize"), Some(true)), "{view}");
    let mut both = vec![same.clone(), newer.clone()];
    both.sort();
    assert_eq!(skill["digests"], json!(both));
    assert_eq!(skill["runnable_nodes"], 1);
    let w1 = &skill["nodes"][0];
    assert_eq!((w1["node_id"].as_str(), w1["runnable"].as_bool()), (Some("w1"), Some(false)), "{view}");
    assert_eq!(w1["reason"], "the node is drained (maintenance)");
    assert_eq!((w1["source"].as_str(), w1["digest"].as_str()), (Some("skills_dir"), Some(same.as_str())));
    assert_eq!(skill["nodes"][1]["runnable"], true, "{view}");
    assert_eq!(cluster.metric("openclaw_skills_drifted").await, 1.0);
    let mut sse = Sse::open(&cluster, "/api/v1/events?after=0&node=w2", &cluster.admin(), None).await;
    let drift = loop {
        let (_, e) = sse.next_json().await.expect("the stream goes on");
        if e["event"] == "skill_drift" {
            break e;
        }
    };
    assert_eq!(drift["skill"], "summarize", "{drift}");
    let message = drift["message"].as_str().unwrap();
    for part in [format!("w1 {}", &same[..19]), format!("w2 {}", &newer[..19])] {
        assert!(message.contains(&part), "{message} lacks {part}");
    }
    let cli = cluster.cli(&["skills", "--cluster"]);
    assert_eq!(cli.status.code(), Some(1), "drift is exit 1: {}", show(&cli));
    let text = String::from_utf8_lossy(&cli.stdout);
    for part in
        ["no: the node is drained (maintenance)", "drift: 'summarize' differs across nodes", &same[..19], &newer[..19]]
    {
        assert!(text.contains(part), "{text} lacks {part}");
    }
    let json_out = cluster.cli(&["skills", "--cluster", "--json"]);
    let parsed: Value = serde_json::from_slice(&json_out.stdout).unwrap();
    assert_eq!(parsed["drifted"], json!(["summarize"]));

    // Item 4: pinned versions. `--pin` refuses to choose between two versions.
    cluster.api("POST", "/api/v1/nodes/w1/undrain", None).await;
    let cli = cluster.cli(&["tasks", "submit", "--skill", "summarize", "--pin"]);
    assert_eq!(cli.status.code(), Some(2), "{}", show(&cli));
    let err = String::from_utf8_lossy(&cli.stderr);
    for part in [format!("{same} on w1"), format!("{newer} on w2"), "--skill summarize@<digest>".into()] {
        assert!(err.contains(&part), "{err} lacks {part}");
    }
    // A pin runs only where that content is (each node could take every task).
    for _ in 0..3 {
        for (digest, node) in [(&same, "w1"), (&newer, "w2")] {
            let cli = cluster.cli(&["tasks", "submit", "--skill", &format!("summarize@{digest}"), "--wait", "--json"]);
            assert!(cli.status.success(), "{}", show(&cli));
            let task: Value = serde_json::from_slice(&cli.stdout).unwrap();
            assert_eq!(task["assigned_node"], node, "{task}");
            assert_eq!(task["required_skills"], json!(["summarize"]), "{task}");
            assert_eq!(task["target"]["digests"]["summarize"], digest.as_str(), "{task}");
        }
    }
    let nobody = format!("sha256:{}", "0".repeat(64));
    let id = cluster.submit(json!({"name": "old", "required_skills": [format!("summarize@{nobody}")]})).await;
    let task = cluster.get(&format!("/api/v1/tasks/{id}")).await;
    let why = task["pending_reason"].as_str().unwrap_or_default();
    for part in [
        format!("w1 has summarize, but a different version ({})", &same[..19]),
        format!("w2 has summarize, but a different version ({})", &newer[..19]),
    ] {
        assert!(why.contains(&part), "{why} lacks {part}");
    }
    // With one version everywhere, `--pin` takes it.
    std::fs::write(two.join("summarize/run.sh"), "echo summary\n").unwrap();
    wait_digest(&cluster, "w2", "summarize", &same).await;
    let cli = cluster.cli(&["tasks", "submit", "--skill", "summarize", "--pin", "--json"]);
    assert!(cli.status.success(), "{}", show(&cli));
    let task: Value = serde_json::from_slice(&cli.stdout).unwrap();
    assert_eq!(task["target"]["digests"]["summarize"], same.as_str(), "{task}");
    std::fs::write(two.join("summarize/run.sh"), "echo a newer summary\n").unwrap();
    wait_digest(&cluster, "w2", "summarize", &newer).await;

    // Restored from the store, before any worker could send its lists again.
    cluster.kill_coordinator();
    cluster.start_coordinator().await;
    assert_eq!(cluster.node("w1").await["skill_digests"]["summarize"]["digest"], same.as_str());
    assert_eq!(cluster.node("w2").await["skill_digests"]["summarize"]["digest"], newer.as_str());
}
