//! The API document is the whole contract. Schemathesis, a property-based API tester that
//! reads only `/openapi.json`, drives a real coordinator (port 0, a temp dir, the admin
//! token) through every operation: boundary and broken values of every parameter and field
//! (coverage), random ones (fuzzing), and chains that follow the document's links from a
//! registered node and a submitted task to everything that reads or changes them
//! (stateful, with the node's own secret for the worker protocol). It checks that nothing
//! answers 5xx, that every answer's status, content type, headers and body are documented,
//! that every request the document allows is accepted (no 4xx but 401/403/404/409) and
//! every request it forbids is refused — so each limit the server enforces is in the
//! document — and that a created task can be read and a forgotten node is gone.
//!
//! The run is bounded: a fixed number of examples per operation (and of scenarios and steps
//! in the stateful phase), one worker, a fixed seed and no example database, so that the
//! coverage and fuzzing phases send the same requests every time. The stateful phase can
//! end early (Hypothesis stops a suite when the API's state changed what it could draw), so
//! how deep it goes varies from run to run; whether the run passes does not depend on it.
//! What it leaves out, and why:
//! - `POST /mcp`: the MCP door's contract is the MCP specification (its JSON-RPC messages,
//!   the `Accept` header it requires); tests/it/mcp.rs drives it with the official SDK.
//! - `timeout` of `GET /api/v1/tasks/{task}/wait` is sent as `0`: any other value may hold
//!   the request for up to an hour. Its format is held to its parser in src/model (a
//!   property test).
//! - The `ignored_auth` check: it takes the node secret that a link carries from a
//!   registration's answer for a made-up one, and reports the 200 that the real secret gets.
//! - The `use_after_free` check: a forgotten node's id may be registered again (by any
//!   registration, whose path is not the node's), and the check would take the new node for
//!   the forgotten one.
//!
//! - `positive_data_acceptance` for `POST /api/v1/workflows`, for `POST`/`PATCH` of
//!   schedules (which may carry a workflow) and for `POST /api/v1/tasks`: a workflow's graph
//!   rules (each `needs` names a step, no cycle, a reference names a step it needs) and a
//!   task's `depends_on` (each id names a task the cluster has: issue 20 asks for a 400
//!   naming the unknown ones) cannot be said in JSON Schema, so a schema-valid request may
//!   rightly be refused with 400 naming the problem: for these operations a 400 is
//!   accepted too. The other checks (no 5xx, documented answers,
//!   refused invalid data) run on them as on every other.
//!
//! Streams are read for at most half a second or five events; a worker's long poll waits
//! one second at most (`coordinator.long_poll_timeout`).

use std::time::Instant;

use crate::support::{Cluster, Settings, tool};

/// The checks of the run.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
    response_headers_conformance,response_schema_conformance,positive_data_acceptance,\
    negative_data_rejection,missing_required_header,unsupported_method,allow_header_conformance,\
    ensure_resource_availability";

/// Schemathesis' configuration; `{token}` is the admin token.
const CONFIG: &str = r#"
seed = 1
workers = 1
request-timeout = 10

[generation]
max-examples = 25
database = "none"

[phases.stateful]
max-steps = 15

[phases.stateful.generation]
max-examples = 80

# The admin token for the `bearer` scheme; the `nodeSecret` scheme is left to the links,
# which carry each registered node's own secret.
[auth.openapi.bearer]
bearer = "{token}"

[[operations]]
include-operation-id = "task_wait"
parameters = { "query.timeout" = "0" }

[[operations]]
include-operation-id = ["workflows_submit", "schedules_create", "schedule_edit", "tasks_submit"]
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx"]

[[operations]]
include-operation-id = ["events", "task_output"]
request-timeout = 0.5
max-stream-events = 5
"#;

#[tokio::test]
async fn the_coordinator_keeps_every_promise_of_its_document() {
    let Some(st) = tool("venv/bin/st") else { return };
    let cluster = Cluster::start_with(Settings { long_poll_timeout: 1.0, ..Settings::default() }).await;
    let dir = cluster.path().join("schemathesis");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("schemathesis.toml");
    std::fs::write(&config, CONFIG.replace("{token}", &cluster.admin())).unwrap();
    let started = Instant::now();
    let out = tokio::process::Command::new(&st)
        .current_dir(&dir)
        .arg("--config-file")
        .arg(&config)
        .args(["run", &format!("{}/openapi.json", cluster.url()), "--checks", CHECKS])
        .args(["--exclude-checks", "ignored_auth,use_after_free", "--exclude-path", "/mcp", "--no-color"])
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", st.display()));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let summary: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.contains("API Links") || l.contains("generated,") || l.contains("Scenarios") || l.ends_with("s =")
        })
        .collect();
    eprintln!("schemathesis ({:.0?}): {}", started.elapsed(), summary.join(" | "));
    assert!(out.status.success(), "schemathesis found requests and answers the document does not describe:\n{text}");
    // Every operation it selected (all but `/mcp`) was tested.
    let selected = text.lines().find_map(|l| l.trim().strip_prefix("Selected: ")).and_then(|s| s.split_once('/'));
    let tested = text.lines().find_map(|l| l.trim().strip_prefix("Tested: "));
    let all_but_one = selected.and_then(|(s, of)| Some(s.parse::<usize>().ok()? + 1 == of.parse::<usize>().ok()?));
    assert!(all_but_one == Some(true) && tested == selected.map(|(s, _)| s), "not every operation was tested:\n{text}");
    let (status, health) = cluster.api("GET", "/health", None).await;
    assert_eq!(status, 200, "the coordinator is still up after the run: {health}");
}
