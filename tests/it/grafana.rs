//! The Grafana dashboard in packaging/grafana loads and shows real series: it has what
//! Grafana's dashboard model needs to import it (title, uid, schemaVersion, panels with
//! unique ids, types Grafana ships, grid positions inside the 24-column grid without
//! overlaps, targets with unique refIds, datasources that are the dashboard's own
//! variable), and every PromQL expression parses (promql-parser) and selects only metric
//! families that a real coordinator's `/metrics` exports, with the suffixes of their type.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::{Value, json};

use crate::support::{Cluster, Skill, tool};

fn dashboard() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/grafana/openclaw-dashboard.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The names a PromQL selector may use for each family of an OpenMetrics exposition.
fn selectable(metrics: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in metrics.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else { continue };
        let mut parts = rest.split_whitespace();
        let (Some(family), Some(kind)) = (parts.next(), parts.next()) else { continue };
        let suffixes: &[&str] = match kind {
            "counter" => &["_total", "_created"],
            "histogram" => &["_bucket", "_sum", "_count", "_created"],
            "summary" => &["", "_sum", "_count", "_created"],
            _ => &[""],
        };
        names.extend(suffixes.iter().map(|s| format!("{family}{s}")));
    }
    names
}

#[test]
fn selectors_follow_the_family_types() {
    let names = selectable("# TYPE a counter\n# TYPE b histogram\n# TYPE c gauge\n");
    assert!(names.contains("a_total") && !names.contains("a"));
    assert!(names.contains("b_bucket") && !names.contains("b"));
    assert!(names.contains("c") && !names.contains("c_total"));
}

/// Grafana's variables, replaced by values PromQL accepts.
fn substitute(expr: &str) -> String {
    expr.replace("$__rate_interval", "5m").replace("$job", ".*")
}

#[test]
fn the_dashboard_has_what_grafana_needs_to_import_it() {
    let d = dashboard();
    for key in ["title", "uid"] {
        assert!(d[key].as_str().is_some_and(|s| !s.is_empty()), "{key} is required");
    }
    let uid = d["uid"].as_str().unwrap();
    assert!(uid.len() <= 40 && uid.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'), "uid {uid}");
    assert!(d["schemaVersion"].as_u64().is_some_and(|v| v >= 36), "schemaVersion");
    let variables: BTreeMap<&str, &Value> = d["templating"]["list"]
        .as_array()
        .expect("templating.list")
        .iter()
        .map(|v| (v["name"].as_str().expect("a variable has a name"), v))
        .collect();
    assert_eq!(variables["datasource"]["type"], "datasource");
    assert_eq!(variables["datasource"]["query"], "prometheus");
    let panels = d["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    let mut cells = BTreeMap::new();
    for p in panels {
        let title = p["title"].as_str().expect("a panel has a title");
        assert!(ids.insert(p["id"].as_u64().expect("a panel has an id")), "{title}: duplicate id");
        let kind = p["type"].as_str().unwrap();
        assert!(
            ["row", "stat", "gauge", "timeseries", "table", "bargauge", "text"].contains(&kind),
            "{title}: type {kind}"
        );
        let g = &p["gridPos"];
        let (x, y, w, h) = (g["x"].as_u64(), g["y"].as_u64(), g["w"].as_u64(), g["h"].as_u64());
        let (Some(x), Some(y), Some(w), Some(h)) = (x, y, w, h) else { panic!("{title}: gridPos needs x, y, w, h") };
        assert!(w >= 1 && h >= 1 && x + w <= 24, "{title}: {g} is outside the 24-column grid");
        for cx in x..x + w {
            for cy in y..y + h {
                if let Some(other) = cells.insert((cx, cy), title) {
                    panic!("{title} overlaps {other} at ({cx}, {cy})");
                }
            }
        }
        if kind == "row" {
            continue;
        }
        assert_eq!(p["datasource"], json!({"type": "prometheus", "uid": "${datasource}"}), "{title}");
        let mut refs = BTreeSet::new();
        let targets =
            p["targets"].as_array().filter(|t| !t.is_empty()).unwrap_or_else(|| panic!("{title}: no targets"));
        for t in targets {
            assert!(refs.insert(t["refId"].as_str().expect("refId")), "{title}: duplicate refId");
            assert!(t["expr"].as_str().is_some_and(|e| !e.is_empty()), "{title}: a target without expr");
        }
    }
}

#[tokio::test]
async fn every_expression_parses_and_names_a_family_of_our_metrics() {
    let Some(python) = tool("venv/bin/python") else { return };
    // A coordinator that has seen a node, a task and requests, so every family has samples.
    let cluster = Cluster::start().await;
    let _w1 = cluster.exec_worker("w1", &[Skill::exec("echo", "cat\n")], &[]).await;
    let id = cluster.submit(json!({"name": "t", "required_skills": ["echo"]})).await;
    assert_eq!(cluster.wait_task(&id, 30).await["status"], "completed");
    let r = cluster.http.get(format!("{}/metrics", cluster.url())).bearer_auth(cluster.admin()).send().await.unwrap();
    let names = selectable(&r.text().await.unwrap());
    assert!(names.contains("openclaw_nodes"), "{names:?}");

    let d = dashboard();
    let mut exprs: Vec<String> = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().into_iter().flatten() {
            exprs.push(substitute(t["expr"].as_str().unwrap()));
        }
    }
    for v in d["templating"]["list"].as_array().unwrap() {
        if let Some(q) = v["query"]["query"].as_str().and_then(|q| q.strip_prefix("label_values(")) {
            exprs.push(q.split(',').next().unwrap().trim().to_string());
        }
    }
    let input = cluster.path().join("exprs.txt");
    std::fs::write(&input, exprs.join("\n")).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/promql_names.py");
    let out =
        std::process::Command::new(&python).arg(&script).stdin(std::fs::File::open(&input).unwrap()).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "an expression does not parse:\n{text}{}", String::from_utf8_lossy(&out.stderr));
    let mut checked = 0;
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let used = v["names"].as_array().unwrap();
        assert!(!used.is_empty(), "{} selects no metric", v["expr"]);
        for name in used {
            let name = name.as_str().unwrap();
            assert!(names.contains(name), "{name} (in {}) is not exported by /metrics; it has {names:?}", v["expr"]);
            checked += 1;
        }
    }
    assert_eq!(text.lines().count(), exprs.len());
    assert!(checked >= exprs.len());
}
