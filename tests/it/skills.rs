//! One set of skills across the cluster (issue 21): each node's skill digests and sources,
//! kept by the coordinator through a restart, with real worker processes scanning real
//! skill folders.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::support::{Cluster, exec_skill};

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

/// Item 1: two workers with copies of one skill advertise one digest and their source; an
/// edit on one node changes its digest at the next rescan; the coordinator keeps them
/// through its restart.
#[tokio::test]
async fn workers_advertise_each_skills_digest_and_the_coordinator_keeps_it() {
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

    std::fs::write(two.join("summarize/run.sh"), "echo a newer summary\n").unwrap();
    let newer = digest_of(&two.join("summarize"));
    assert_ne!(same, newer);
    wait_digest(&cluster, "w2", "summarize", &newer).await;
    assert_eq!(cluster.node("w1").await["skill_digests"]["summarize"]["digest"], same.as_str());

    // Restored from the store, before any worker could send its lists again.
    cluster.kill_coordinator();
    cluster.start_coordinator().await;
    assert_eq!(cluster.node("w1").await["skill_digests"]["summarize"]["digest"], same.as_str());
    assert_eq!(cluster.node("w2").await["skill_digests"]["summarize"]["digest"], newer.as_str());
}
