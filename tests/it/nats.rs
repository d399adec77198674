//! The NATS transport against a real `nats-server -js` (Debian's package): each test starts
//! its own server on a random loopback port (`-p -1`, read back from `--ports_file_dir`)
//! with a temp store. Without `nats-server` installed the tests are skipped, except under
//! `CI=true`, where that fails the run (`.ci/run` installs it).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::PullConsumer, stream::RetentionPolicy};
use futures_util::StreamExt;
use serde_json::{Value, json};

use openclaw::transport::nats::config::NatsConfig;
use openclaw::transport::nats::{Names, NodeKey};

use crate::nats_server::{NatsServer, installed};
use crate::support::{Cluster, DeadPort, Proc, Settings, eventually, exec_skill, show};

/// A cluster whose coordinator (and workers) use `url`, with extra `communication.*` lines.
async fn nats_cluster(settings: Settings, url: &str, extra: &str) -> Cluster {
    let mut c = Cluster::new(settings);
    c.append_config(&format!("communication:\n  nats_url: {url}\n{extra}"));
    c.start_coordinator().await;
    c
}

/// A worker process under a name of its own (a restarted one keeps separate logs).
fn worker_named(c: &Cluster, name: &str, node: &str, skills: &Path) -> Proc {
    let config = c.config.display().to_string();
    let skills = skills.display().to_string();
    Proc::spawn(name, &["-c", &config, "worker", "--node-id", node, "--skills-dir", &skills], &[], c.path(), &c.logs())
}

/// Waits until the worker says its assignments come over NATS.
async fn on_nats(w: &Proc) {
    w.wait_for_output("assignments now come over NATS", Duration::from_secs(60)).await;
}

/// How each start of `task` on this worker got there (`nats` or `http`), from its log.
fn started_via(w: &Proc, task: &str) -> Vec<String> {
    w.out()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["message"] == "task started" && l["task_id"] == task)
        .map(|l| l["via"].as_str().unwrap_or("").to_string())
        .collect()
}

/// A counter or gauge from /metrics (0 when absent).
async fn metric(c: &Cluster, series: &str) -> u64 {
    let (status, body) = c.api("GET", "/metrics", None).await;
    assert_eq!(status, 200);
    let text = body.as_str().unwrap_or_default().to_string();
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.trim().parse::<f64>().ok()))
        .map(|v| v as u64)
        .unwrap_or(0)
}

async fn health(c: &Cluster) -> Value {
    c.get("/api/v1/cluster/health").await
}

/// Events of a task with the given name, from its history.
fn count_events(task: &Value, event: &str) -> usize {
    task["events"].as_array().map(|e| e.iter().filter(|e| e["event"] == event).count()).unwrap_or(0)
}

async fn jetstream_of(server: &NatsServer) -> (async_nats::Client, jetstream::Context) {
    let client = async_nats::connect(server.url()).await.unwrap();
    (client.clone(), jetstream::new(client))
}

async fn stream_messages(js: &jetstream::Context, name: &str) -> u64 {
    match js.get_stream(name).await {
        Ok(mut s) => s.info().await.map(|i| i.state.messages).unwrap_or(0),
        Err(_) => 0,
    }
}

/// (pending, ack pending, delivered) of a node's consumer.
async fn consumer_state(js: &jetstream::Context, node: &str) -> Option<(u64, usize, u64)> {
    let name = openclaw::transport::nats::Names::new("cluster").node_consumer(node);
    let mut consumer: PullConsumer = js.get_consumer_from_stream(&name, "CLUSTER_TASKS").await.ok()?;
    let info = consumer.info().await.ok()?;
    Some((info.num_pending, info.num_ack_pending, info.delivered.consumer_sequence))
}

/// Publishes a result as worker `node` would, signed with the key of its kept secret.
async fn publish_result(c: &Cluster, js: &jetstream::Context, node: &str, task: &str, report: Value) {
    let secret = std::fs::read_to_string(c.path().join(format!("data/worker-{node}.secret"))).unwrap();
    let key = NodeKey::derive(secret.trim());
    let attempt = report["attempt"].as_u64().unwrap() as u32;
    let subject = format!("cluster.task.results.{task}");
    let id = key.result_id(task, attempt);
    let payload = report.to_string().into_bytes();
    let sig = key.sign(&subject, &id, &payload);
    let message = jetstream::message::PublishMessage::build()
        .message_id(&id)
        .header("Openclaw-Node", node)
        .header("Openclaw-Sig", sig.as_str())
        .payload(payload.into());
    js.send_publish(subject, message).await.unwrap().await.unwrap();
}

/// `examples/nats-events.py` following a subject, its output in files.
struct Watcher {
    child: Child,
    out: PathBuf,
}

impl Watcher {
    /// Starts the script and waits until it follows `subject`; `None` without python3
    /// (outside CI).
    async fn start(url: &str, subject: &str, dir: &Path) -> Option<Watcher> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/nats-events.py");
        let (out, err) = (dir.join("watcher.out"), dir.join("watcher.err"));
        let child = match Command::new("python3")
            .arg(&script)
            .args([url, subject])
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                assert!(std::env::var("CI").as_deref() != Ok("true"), "python3 is needed in CI: {e}");
                eprintln!("skipped the nats-events.py check: no python3 ({e})");
                return None;
            }
        };
        let mut w = Watcher { child, out };
        let started = Instant::now();
        while !std::fs::read_to_string(&err).unwrap_or_default().contains("following") {
            if let Some(status) = w.child.try_wait().unwrap() {
                panic!("nats-events.py exited ({status}): {}", std::fs::read_to_string(&err).unwrap_or_default());
            }
            assert!(started.elapsed() < Duration::from_secs(20), "nats-events.py never subscribed");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Some(w)
    }

    /// The first event it printed about `task`.
    async fn event_of(&mut self, task: &str) -> Value {
        let started = Instant::now();
        loop {
            let text = std::fs::read_to_string(&self.out).unwrap_or_default();
            if let Some(e) =
                text.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).find(|e| e["task_id"] == task)
            {
                return e;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "nats-events.py printed nothing about {task}: {text}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_run_over_nats_end_to_end_and_every_transition_is_published() {
    let Some(server) = NatsServer::start(None) else { return };
    let c = nats_cluster(Settings::default(), &server.url(), "").await;
    let (nc, js) = jetstream_of(&server).await;
    let mut feed = nc.subscribe("cluster.events.>").await.unwrap();
    nc.flush().await.unwrap();
    let skills = c.path().join("skills");
    exec_skill(&skills, "echo", "cat\n");
    let w = c.worker("w1", &skills, &[]);
    on_nats(&w).await;

    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(c.submit(json!({"name": format!("t{i}"), "required_skills": ["echo"], "parameters": {"i": i}})).await);
    }
    for (i, id) in ids.iter().enumerate() {
        let task = c.wait_task(id, 30).await;
        assert_eq!(task["status"], "completed", "{task}");
        assert_eq!(task["result"]["parameters"]["i"], i, "{task}");
        assert_eq!(started_via(&w, id), ["nats"], "task {id} should have come over NATS");
    }
    assert_eq!(metric(&c, r#"openclaw_nats_results_total{kind="recorded"}"#).await, 5);
    let h = health(&c).await;
    assert_eq!(h["transport"], "nats", "{h}");
    assert_eq!(h["nats"]["state"], "connected", "{h}");
    assert_eq!(h["nats"]["nodes"], 1, "{h}");
    let out = c.cli(&["health"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("transport: nats"), "{}", show(&out));

    // The feed: every transition on `cluster.events.<kind>.<status>`, in commit order.
    let mut by_task: HashMap<String, Vec<(String, String)>> = HashMap::new();
    let mut node_events = Vec::new();
    let mut last_id = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ids.iter().all(|id| by_task.get(id).is_some_and(|v| v.iter().any(|(_, e)| e == "completed"))) {
        let left = deadline.saturating_duration_since(Instant::now());
        let m = tokio::time::timeout(left, feed.next()).await.expect("every task's events on NATS").unwrap();
        let event: Value = serde_json::from_slice(&m.payload).unwrap();
        let id = event["id"].as_u64().unwrap();
        let header = m.headers.as_ref().and_then(|h| h.get("Openclaw-Event-Id")).unwrap().as_str().to_string();
        assert_eq!(header, id.to_string());
        assert!(id > last_id, "events out of order: {id} after {last_id}");
        last_id = id;
        let kind = if event["kind"] == "task" { "tasks" } else { "nodes" };
        assert_eq!(m.subject.as_str(), format!("cluster.events.{kind}.{}", event["status"].as_str().unwrap()));
        match event["task_id"].as_str() {
            Some(t) => by_task
                .entry(t.to_string())
                .or_default()
                .push((m.subject.to_string(), event["event"].as_str().unwrap().to_string())),
            None => node_events.push((m.subject.to_string(), event)),
        }
    }
    for id in &ids {
        let events: Vec<&str> = by_task[id].iter().map(|(_, e)| e.as_str()).collect();
        assert_eq!(events, ["submitted", "scheduled", "running", "completed"], "{id}");
        let subjects: Vec<&str> = by_task[id].iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(
            subjects,
            [
                "cluster.events.tasks.pending",
                "cluster.events.tasks.scheduled",
                "cluster.events.tasks.running",
                "cluster.events.tasks.completed"
            ]
        );
    }
    assert!(
        node_events.iter().any(|(s, e)| s == "cluster.events.nodes.online" && e["event"] == "registered"),
        "{node_events:?} {by_task:?}"
    );

    // The streams, as documented.
    let mut tasks = js.get_stream("CLUSTER_TASKS").await.unwrap();
    let info = tasks.info().await.unwrap().clone();
    assert_eq!(info.config.retention, RetentionPolicy::WorkQueue);
    assert_eq!(info.config.subjects, ["cluster.nodes.*.tasks"]);
    let mut results = js.get_stream("CLUSTER_RESULTS").await.unwrap();
    let info = results.info().await.unwrap().clone();
    assert_eq!(info.config.retention, RetentionPolicy::WorkQueue);
    assert_eq!(info.config.subjects, ["cluster.task.results.*"]);
    let mut events = js.get_stream("CLUSTER_EVENTS").await.unwrap();
    let info = events.info().await.unwrap().clone();
    assert_eq!(info.config.retention, RetentionPolicy::Limits);
    assert_eq!(info.config.max_age, Duration::from_secs(24 * 3600));
    // The worker took all five from its consumer, and acked them.
    eventually("the node's consumer drained", Duration::from_secs(10), || async {
        consumer_state(&js, "w1")
            .await
            .is_some_and(|(pending, acks, delivered)| pending == 0 && acks == 0 && delivered >= 5)
    })
    .await;
    eventually("the results stream drained", Duration::from_secs(10), || async {
        stream_messages(&js, "CLUSTER_RESULTS").await == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_published_while_the_coordinator_is_down_are_recorded_once_when_it_returns() {
    let Some(server) = NatsServer::start(None) else { return };
    let mut c = nats_cluster(Settings::default(), &server.url(), "").await;
    let (_nc, js) = jetstream_of(&server).await;
    let skills = c.path().join("skills");
    // Runs until the test creates `go` beside it.
    exec_skill(&skills, "gate", "while [ ! -f go ]; do sleep 0.05; done\ncat\n");
    let w = c.worker("w1", &skills, &[]);
    on_nats(&w).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(c.submit(json!({"name": format!("g{i}"), "required_skills": ["gate"]})).await);
    }
    // Running on both sides: the coordinator committed each start, and the worker got the
    // answer and started the skill. (Regression: waiting for the coordinator's word alone
    // raced the kill below with its answer to the last start report; that worker then never
    // ran the task while the coordinator was away, and only two results came.)
    eventually("the three gated tasks running", Duration::from_secs(20), || async {
        let mut running = 0;
        for id in &ids {
            let on_coordinator = c.get(&format!("/api/v1/tasks/{id}")).await["status"] == "running";
            running += usize::from(on_coordinator && !started_via(&w, id).is_empty());
        }
        running == 3
    })
    .await;

    c.kill_coordinator();
    std::fs::write(skills.join("gate/go"), "").unwrap();
    // The worker publishes the results; NATS keeps them for the coordinator.
    eventually("three results waiting in NATS", Duration::from_secs(20), || async {
        stream_messages(&js, "CLUSTER_RESULTS").await == 3
    })
    .await;

    c.start_coordinator().await;
    for id in &ids {
        let task = c.wait_task(id, 30).await;
        assert_eq!(task["status"], "completed", "{task}");
        assert_eq!(task["attempt"], 1, "{task}");
        assert_eq!(count_events(&task, "completed"), 1, "{task}");
    }
    eventually("the results stream drained", Duration::from_secs(10), || async {
        stream_messages(&js, "CLUSTER_RESULTS").await == 0
    })
    .await;
    // The streams were set up again without complaint (create-or-update is idempotent).
    let second = c.coordinator.as_ref().unwrap();
    second.wait_for_output("NATS streams ready", Duration::from_secs(10)).await;
    assert!(!second.out().contains("cannot create or update the stream"), "{}", second.logs());
    let node = c.node("w1").await;
    assert_eq!(node["successful_tasks"], 3, "{node}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_server_crash_mid_run_loses_no_task_and_duplicates_are_harmless() {
    let Some(mut server) = NatsServer::start(None) else { return };
    let c = nats_cluster(Settings::default(), &server.url(), "").await;
    let skills = c.path().join("skills");
    exec_skill(&skills, "echo", "cat\n");
    let w = c.worker("w1", &skills, &["--max-concurrent-tasks", "3"]);
    on_nats(&w).await;
    let submit = |i: usize| json!({"name": format!("t{i}"), "required_skills": ["echo"], "parameters": {"i": i}});
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(c.submit(submit(i)).await);
    }
    c.wait_task(&ids[2], 30).await;
    server.kill();
    for i in 10..20 {
        ids.push(c.submit(submit(i)).await);
    }
    server.restart();
    for i in 20..30 {
        ids.push(c.submit(submit(i)).await);
    }
    let mut by_id = BTreeMap::new();
    for id in &ids {
        let task = c.wait_task(id, 60).await;
        assert_eq!(task["status"], "completed", "{task}");
        assert_eq!(count_events(&task, "completed"), 1, "{task}");
        by_id.insert(id.clone(), task);
    }
    eventually("the coordinator back on NATS", Duration::from_secs(30), || async {
        health(&c).await["transport"] == "nats"
    })
    .await;
    let h = health(&c).await;
    assert!(h["nats"]["last_error"].is_string() || h["nats"]["state"] == "connected", "{h}");
    assert!(metric(&c, "openclaw_nats_reconnects_total").await >= 1);

    // Duplicates: the restarted server forgot which result ids it saw, so these reach the
    // coordinator. A repeat of a recorded result changes nothing; a different end for the
    // same attempt is refused as stale.
    let (_nc, js) = jetstream_of(&server).await;
    let (a, b) = (&ids[0], &ids[1]);
    let before = metric(&c, r#"openclaw_nats_results_total{kind="refused"}"#).await
        + metric(&c, r#"openclaw_nats_results_total{kind="recorded"}"#).await;
    let original = &by_id[a];
    publish_result(
        &c,
        &js,
        "w1",
        a,
        json!({"attempt": 1, "outcome": "completed", "result": original["result"], "duration_ms": 1}),
    )
    .await;
    publish_result(&c, &js, "w1", b, json!({"attempt": 1, "outcome": "failed", "error": "a late twin"})).await;
    eventually("both duplicates taken", Duration::from_secs(20), || async {
        metric(&c, r#"openclaw_nats_results_total{kind="refused"}"#).await
            + metric(&c, r#"openclaw_nats_results_total{kind="recorded"}"#).await
            >= before + 2
    })
    .await;
    for id in [a, b] {
        let task = c.get(&format!("/api/v1/tasks/{id}")).await;
        assert_eq!(task["status"], "completed", "{task}");
        assert_eq!(count_events(&task, "completed"), 1, "{task}");
        assert_eq!(task["result"], by_id[id]["result"], "{task}");
    }
    let node = c.node("w1").await;
    assert_eq!(node["successful_tasks"], 30, "{node}");
    assert_eq!(node["total_tasks_processed"], 30, "{node}");

    // The event feed resumed exactly: the events stream holds every id once, no gap.
    let started = Instant::now();
    let last = loop {
        let published = health(&c).await["nats"]["last_event_id"].as_u64().unwrap_or(0);
        if published > 0 && stream_messages(&js, "CLUSTER_EVENTS").await == published {
            break published;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the events stream never caught up with {published}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let stream = js.get_stream("CLUSTER_EVENTS").await.unwrap();
    let mut seen = Vec::new();
    for seq in 1..=last {
        let m = stream.get_raw_message(seq).await.unwrap();
        let e: Value = serde_json::from_slice(&m.payload).unwrap();
        seen.push(e["id"].as_u64().unwrap());
    }
    assert_eq!(seen, (1..=last).collect::<Vec<_>>(), "the events stream has gaps or repeats");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assignment_waits_in_nats_for_its_worker_and_runs_when_it_returns() {
    let Some(server) = NatsServer::start(None) else { return };
    // The node stays live (no lease runs out) while its worker is away.
    let settings = Settings { heartbeat_timeout: 60.0, ..Settings::default() };
    let c = nats_cluster(settings, &server.url(), "").await;
    let (_nc, js) = jetstream_of(&server).await;
    let skills = c.path().join("skills");
    exec_skill(&skills, "echo", "cat\n");
    let mut w = c.worker("w1", &skills, &[]);
    on_nats(&w).await;
    w.kill9();
    let id = c.submit(json!({"name": "waits", "required_skills": ["echo"]})).await;
    eventually("the assignment waiting in the node's consumer", Duration::from_secs(20), || async {
        consumer_state(&js, "w1").await.is_some_and(|(pending, _, _)| pending == 1)
    })
    .await;
    assert_eq!(c.get(&format!("/api/v1/tasks/{id}")).await["status"], "scheduled");

    let back = worker_named(&c, "worker-w1-back", "w1", &skills);
    let task = c.wait_task(&id, 30).await;
    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(task["assigned_node"], "w1", "{task}");
    assert_eq!(task["retry_count"], 0, "{task}");
    assert_eq!(count_events(&task, "completed"), 1, "{task}");
    assert_eq!(started_via(&back, &id).len(), 1, "{}", back.logs());
    eventually("the node's consumer drained", Duration::from_secs(20), || async {
        consumer_state(&js, "w1").await.is_some_and(|(pending, acks, _)| pending == 0 && acks == 0)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assignment_of_a_worker_that_stays_away_is_requeued_when_its_lease_runs_out() {
    let Some(server) = NatsServer::start(None) else { return };
    let c = nats_cluster(Settings::default(), &server.url(), "").await;
    let (_nc, js) = jetstream_of(&server).await;
    let skills = c.path().join("skills");
    exec_skill(&skills, "echo", "cat\n");
    let mut w1 = c.worker("w1", &skills, &[]);
    on_nats(&w1).await;
    w1.kill9();
    let id = c.submit(json!({"name": "orphan", "required_skills": ["echo"]})).await;
    let task = c.get(&format!("/api/v1/tasks/{id}")).await;
    assert_eq!(task["assigned_node"], "w1", "{task}");
    // heartbeat_timeout (3 s) passes: w1 goes offline and the attempt is requeued.
    eventually("the attempt requeued", Duration::from_secs(30), || async {
        let task = c.get(&format!("/api/v1/tasks/{id}")).await;
        task["status"] == "pending" && count_events(&task, "failed") == 1
    })
    .await;
    let w2 = c.worker("w2", &skills, &[]);
    let task = c.wait_task(&id, 30).await;
    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(task["assigned_node"], "w2", "{task}");
    assert_eq!(task["attempt"], 2, "{task}");
    assert_eq!(started_via(&w2, &id).len(), 1);

    // w1 comes back: its old assignment is gone or refused; it never runs the task.
    let back = worker_named(&c, "worker-w1-back", "w1", &skills);
    on_nats(&back).await;
    eventually("w1's consumer empty", Duration::from_secs(20), || async {
        consumer_state(&js, "w1").await.is_some_and(|(pending, acks, _)| pending == 0 && acks == 0)
    })
    .await;
    assert!(started_via(&back, &id).is_empty(), "{}", back.logs());
    let task = c.get(&format!("/api/v1/tasks/{id}")).await;
    assert_eq!(count_events(&task, "completed"), 1, "{task}");
    assert_eq!(task["assigned_node"], "w2", "{task}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_away_at_start_is_an_error_naming_it_then_work_switches_to_nats_when_it_comes() {
    if !installed() {
        return;
    }
    let closed = DeadPort::new();
    let port = closed.port();
    let url = format!("nats://127.0.0.1:{port}");
    let c = nats_cluster(Settings::default(), &url, "").await;
    let coordinator = c.coordinator.as_ref().unwrap();
    coordinator.wait_for_output("cannot connect to NATS", Duration::from_secs(20)).await;
    let line = coordinator
        .out()
        .lines()
        .find(|l| l.contains("cannot connect to NATS"))
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .unwrap();
    assert_eq!(line["level"], "ERROR", "{line}");
    let message = line["message"].as_str().unwrap();
    assert!(message.contains(&url), "{message}");
    assert!(message.contains("Connection refused"), "{message}");
    assert!(message.contains("is nats-server running there"), "{message}");
    let h = health(&c).await;
    assert_eq!(h["transport"], "http", "{h}");
    assert_eq!(h["nats"]["state"], "connecting", "{h}");
    assert!(h["nats"]["last_error"].as_str().unwrap().contains("refused"), "{h}");
    let out = c.cli(&["health"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("transport: http"), "{}", show(&out));

    // Work goes over HTTP meanwhile.
    let skills = c.path().join("skills");
    exec_skill(&skills, "echo", "cat\n");
    let w = c.worker("w1", &skills, &[]);
    let first = c.submit(json!({"name": "over-http", "required_skills": ["echo"]})).await;
    assert_eq!(c.wait_task(&first, 30).await["status"], "completed");
    assert_eq!(started_via(&w, &first), ["http"]);

    // NATS comes up on that address: both sides connect, and work moves there.
    drop(closed);
    let _server = NatsServer::start_on(port as i32, None);
    on_nats(&w).await;
    eventually("the coordinator on NATS", Duration::from_secs(60), || async {
        health(&c).await["transport"] == "nats"
    })
    .await;
    let second = c.submit(json!({"name": "over-nats", "required_skills": ["echo"]})).await;
    assert_eq!(c.wait_task(&second, 30).await["status"], "completed");
    assert_eq!(started_via(&w, &second), ["nats"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authenticated_nats_carries_the_work_and_wrong_credentials_are_named() {
    let Some(server) =
        NatsServer::start(Some("authorization { users = [ {user: \"openclaw\", password: \"s3cret-pw\"} ] }\n"))
    else {
        return;
    };
    let c = nats_cluster(
        Settings::default(),
        &server.url(),
        "  nats_user: openclaw\n  nats_password: s3cret-pw\n  nats_subject_prefix: site-a.oc\n",
    )
    .await;
    let skills = c.path().join("skills");
    exec_skill(&skills, "echo", "cat\n");
    let w = c.worker("w1", &skills, &[]);
    on_nats(&w).await;
    // docs/nats.md's way to follow the events without the nats CLI (standard-library Python).
    let watcher = Watcher::start(
        &format!("nats://openclaw:s3cret-pw@127.0.0.1:{}", server.port),
        "site-a.oc.events.tasks.completed",
        c.path(),
    )
    .await;
    let id = c.submit(json!({"name": "authed", "required_skills": ["echo"]})).await;
    assert_eq!(c.wait_task(&id, 30).await["status"], "completed");
    assert_eq!(started_via(&w, &id), ["nats"]);
    if let Some(mut watcher) = watcher {
        let event = watcher.event_of(&id).await;
        assert_eq!(event["event"], "completed", "{event}");
        assert_eq!(event["node_id"], "w1", "{event}");
        watcher.stop();
    }
    // The prefix names the streams.
    let client = async_nats::ConnectOptions::with_user_and_password("openclaw".into(), "s3cret-pw".into())
        .connect(server.url())
        .await
        .unwrap();
    assert!(jetstream::new(client).get_stream("SITE-A_OC_TASKS").await.is_ok());

    // A coordinator with a wrong token says so, and carries on over HTTP.
    let token_server = NatsServer::start_on(-1, Some("authorization { token: \"right-token\" }\n"));
    let wrong = nats_cluster(Settings::default(), &token_server.url(), "  nats_token: wrong-token\n").await;
    let coordinator = wrong.coordinator.as_ref().unwrap();
    coordinator.wait_for_output("cannot connect to NATS", Duration::from_secs(20)).await;
    let out = coordinator.out();
    assert!(out.contains("authorization violation"), "{out}");
    assert!(out.contains("communication.nats_token"), "{out}");
    assert!(!out.contains("wrong-token"), "a credential reached the log: {out}");
    assert_eq!(health(&wrong).await["transport"], "http");
}

#[test]
fn bad_nats_settings_are_config_errors_naming_the_key() {
    let cases: [(&str, &[&str]); 6] = [
        (
            "communication:\n  nats_url: nats://h\n  nats_urll: nats://g\n",
            &["communication.nats_urll", "c.yaml:3", "unknown key", "nats_subject_prefix"],
        ),
        ("communication:\n  nats_url: http://127.0.0.1:4222\n", &["communication.nats_url", "c.yaml:2", "nats://"]),
        (
            "communication:\n  nats_url: nats://u:p@127.0.0.1\n  nats_token: t\n",
            &["communication.nats_url", "one way to authenticate"],
        ),
        ("communication:\n  nats_url: nats://h\n  nats_user: u\n", &["communication.nats_password", "together"]),
        ("communication:\n  nats_subject_prefix: My_Cluster\n", &["communication.nats_subject_prefix", "c.yaml:2"]),
        (
            "communication:\n  nats_url: nats://h\n  nats_creds_file: /nonexistent/user.creds\n",
            &["communication.nats_creds_file", "/nonexistent/user.creds"],
        ),
    ];
    for (yaml, needles) in cases {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("c.yaml"), yaml).unwrap();
        let o = crate::support::cli(&["-c", "c.yaml", "migrate", "--status"], &[], dir.path());
        assert_eq!(o.status.code(), Some(2), "{yaml}: {}", show(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        for n in needles {
            assert!(err.contains(n), "{yaml}: stderr lacks {n:?}: {err}");
        }
    }
}

#[test]
fn the_example_configs_load_with_their_nats_keys() {
    for file in ["config/coordinator.yaml", "config/worker.yaml"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
        let loaded = openclaw::config::load(Some(&path), Default::default(), openclaw::transport::CONFIG)
            .unwrap_or_else(|e| panic!("{file} does not load: {e}"));
        let nats: NatsConfig = loaded.config.communication.get().unwrap();
        assert_eq!(nats.nats_subject_prefix, "cluster", "{file}");
        assert!(nats.nats_url.is_none(), "{file}: NATS is opt-in");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_reaches_a_task_that_came_over_nats() {
    let Some(server) = NatsServer::start(None) else { return };
    // Heartbeats every 4 s: a cancel that waited for the next regular one would take that long.
    let settings = Settings { heartbeat_interval: 4.0, heartbeat_timeout: 20.0, ..Settings::default() };
    let c = nats_cluster(settings, &server.url(), "").await;
    let skills = c.path().join("skills");
    exec_skill(&skills, "gate", "while [ ! -f go ]; do sleep 0.05; done\ncat\n");
    let w = c.worker("w1", &skills, &[]);
    on_nats(&w).await;
    let id = c.submit(json!({"name": "long", "required_skills": ["gate"]})).await;
    // Running: the coordinator accepted the start report, and the worker says so.
    eventually("the task running", Duration::from_secs(20), || async {
        c.get(&format!("/api/v1/tasks/{id}")).await["status"] == "running" && !started_via(&w, &id).is_empty()
    })
    .await;
    assert_eq!(started_via(&w, &id), ["nats"]);
    // Cancel right after a regular heartbeat, so the next one is 4 s away.
    let last = c.get("/api/v1/nodes/w1").await["last_heartbeat"].clone();
    eventually("a heartbeat", Duration::from_secs(20), || async {
        c.get("/api/v1/nodes/w1").await["last_heartbeat"] != last
    })
    .await;
    let asked = std::time::Instant::now();
    let (status, _) = c.api("POST", &format!("/api/v1/tasks/{id}/cancel"), None).await;
    assert_eq!(status, 200);
    // The coordinator publishes a wake-up on `cluster.nodes.w1.wake`; the worker heartbeats
    // at once, its answer carries the cancel, the worker stops the process and reports.
    let task = c.wait_task(&id, 30).await;
    assert_eq!(task["status"], "cancelled", "{task}");
    assert_eq!(count_events(&task, "cancelled"), 1, "{task}");
    // Not a speed assertion: half the heartbeat interval tells "woken" from "waited for the
    // next heartbeat" with seconds to spare.
    let took = asked.elapsed();
    assert!(took < Duration::from_secs(2), "the cancel waited for the regular heartbeat ({took:?})");
}

/// The example server config (config/nats-server.conf), as shipped.
fn example_server_config() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/nats-server.conf")).unwrap()
}

/// A client of `server` as `user`, with the inbox prefix a process of that role uses
/// (replies to its requests arrive there, so its account may read them).
async fn client_as(server: &NatsServer, user: &str, password: &str, inbox: &str) -> jetstream::Context {
    let client = async_nats::ConnectOptions::with_user_and_password(user.into(), password.into())
        .custom_inbox_prefix(inbox)
        .request_timeout(Some(Duration::from_secs(2)))
        .connect(server.url())
        .await
        .unwrap();
    jetstream::new(client)
}

/// The worker's environment for its own NATS account.
fn worker_account(user: &'static str, password: &'static str) -> [(&'static str, &'static str); 2] {
    [("OPENCLAW_COMMUNICATION__NATS_USER", user), ("OPENCLAW_COMMUNICATION__NATS_PASSWORD", password)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_least_privilege_accounts_of_the_example_carry_a_task() {
    // The shipped example, as it is: if a permission it lists were missing, the task would
    // not run over NATS (and the server would log a violation).
    let Some(server) = NatsServer::start(Some(&example_server_config())) else { return };
    let c = nats_cluster(
        Settings::default(),
        &server.url(),
        "  nats_user: coordinator\n  nats_password: change-me-coordinator\n",
    )
    .await;
    let coordinator = c.coordinator.as_ref().unwrap();
    let skills = c.path().join("skills");
    exec_skill(&skills, "echo", "cat\n");
    let w = c.worker_env("worker-1", &skills, &[], &worker_account("worker-1", "change-me-worker-1"));
    on_nats(&w).await;
    let watcher = async_nats::ConnectOptions::with_user_and_password("watcher".into(), "change-me-watcher".into())
        .connect(server.url())
        .await
        .unwrap();
    let mut feed = watcher.subscribe("cluster.events.tasks.completed").await.unwrap();
    watcher.flush().await.unwrap();

    let id = c.submit(json!({"name": "least-privilege", "required_skills": ["echo"], "parameters": {"n": 7}})).await;
    let task = c.wait_task(&id, 30).await;
    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(task["result"]["parameters"]["n"], 7, "{task}");
    assert_eq!(started_via(&w, &id), ["nats"], "{}", w.logs());
    eventually("the result recorded from NATS", Duration::from_secs(10), || async {
        metric(&c, r#"openclaw_nats_results_total{kind="recorded"}"#).await == 1
    })
    .await;
    let event = tokio::time::timeout(Duration::from_secs(10), feed.next()).await.expect("the watcher sees it").unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&event.payload).unwrap()["task_id"], id.as_str());
    // With credentials, no warning about traffic in clear.
    assert!(!coordinator.out().contains("has no credentials"), "{}", coordinator.logs());
    for log in [server.log(), coordinator.out(), w.out()] {
        assert!(!log.to_lowercase().contains("permissions violation"), "{log}");
    }

    // What the worker's account may not do: read the coordinator's results consumer or
    // another worker's queue, or publish an assignment. Its own queue it may read (so the
    // refusals below are the permissions, not a broken client).
    let js = client_as(&server, "worker-1", "change-me-worker-1", "_INBOX.node.worker-1.probe").await;
    let readable = |name: String, stream: &'static str| {
        let js = js.clone();
        async move {
            let consumer: Result<PullConsumer, _> = js.get_consumer_from_stream(name, stream).await;
            consumer.is_ok()
        }
    };
    let names = Names::new("cluster");
    assert!(readable(names.node_consumer("worker-1"), "CLUSTER_TASKS").await);
    assert!(!readable("coordinator".into(), "CLUSTER_RESULTS").await);
    assert!(!readable(names.node_consumer("worker-2"), "CLUSTER_TASKS").await);
    let forged = js.publish("cluster.nodes.worker-2.tasks", "{}".into()).await.unwrap();
    assert!(forged.await.is_err(), "a worker's account published an assignment");
}

/// What the coordinator keeps about `node`: the SHA-256 of its secret, read from a backup
/// as anyone who holds one can.
fn stored_secret_hash(c: &Cluster, node: &str) -> String {
    let file = c.path().join("stolen-backup.db");
    let out = c.cli(&["backup", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", show(&out));
    let db = rusqlite::Connection::open(&file).unwrap();
    db.query_row("SELECT secret_hash FROM nodes WHERE node_id = ?1", [node], |r| r.get(0)).unwrap()
}

/// Publishes `report` on task `task`'s result subject, as node `node`, under message id
/// `id`, with the signature `sign` makes of (subject, id, payload).
async fn publish_as(
    js: &jetstream::Context,
    node: &str,
    task: &str,
    id: &str,
    report: &Value,
    sign: impl Fn(&str, &str, &[u8]) -> String,
) {
    let subject = format!("cluster.task.results.{task}");
    let payload = report.to_string().into_bytes();
    let sig = sign(&subject, id, &payload);
    let message = jetstream::message::PublishMessage::build()
        .message_id(id)
        .header("Openclaw-Node", node)
        .header("Openclaw-Sig", sig.as_str())
        .payload(payload.into());
    js.send_publish(subject, message).await.unwrap().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_forged_from_a_backup_or_claiming_the_real_ones_id_changes_nothing() {
    // Regression (issue 24): results were signed with a key the store holds (the SHA-256
    // of the node secret), so a backup could sign a result for any node; and their message
    // id was `<task>.<attempt>.result`, so whoever published that id first had JetStream
    // drop the real result as a duplicate while the worker counted it delivered.
    let Some(server) = NatsServer::start(None) else { return };
    let c = nats_cluster(Settings::default(), &server.url(), "").await;
    let (_nc, js) = jetstream_of(&server).await;
    let skills = c.path().join("skills");
    exec_skill(&skills, "gate", "while [ ! -f go ]; do sleep 0.05; done\ncat\n");
    let w = c.worker("w1", &skills, &[]);
    on_nats(&w).await;
    let id = c.submit(json!({"name": "guarded", "required_skills": ["gate"], "parameters": {"real": true}})).await;
    eventually("the task running", Duration::from_secs(20), || async {
        c.get(&format!("/api/v1/tasks/{id}")).await["status"] == "running"
    })
    .await;

    let stored = stored_secret_hash(&c, "w1");
    let forged = json!({"attempt": 1, "outcome": "completed", "result": {"forged": true}, "duration_ms": 1});
    let refused = || metric(&c, r#"openclaw_nats_results_total{kind="refused"}"#);
    let before = refused().await;
    // The old scheme: HMAC-SHA256 keyed by the stored hash, under the old, guessable id.
    let old_id = format!("{id}.1.result");
    publish_as(&js, "w1", &id, &old_id, &forged, |subject, msg_id, payload| {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, stored.as_bytes());
        let tag = ring::hmac::sign(&key, &[subject.as_bytes(), b"\n", msg_id.as_bytes(), b"\n", payload].concat());
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(tag)
    })
    .await;
    // The new scheme, keyed by what the backup holds instead of the secret itself.
    let from_backup = NodeKey::derive(&stored);
    let new_id = from_backup.result_id(&id, 1);
    publish_as(&js, "w1", &id, &new_id, &forged, |s, i, p| from_backup.sign(s, i, p)).await;
    // Unsigned bodies under ids a watcher could guess, to have the real one dropped.
    for guess in [format!("{id}.1.result.0000000000000000"), format!("{id}.1")] {
        publish_as(&js, "w1", &id, &guess, &json!({"attempt": 1, "outcome": "failed"}), |_, _, _| "x".into()).await;
    }
    eventually("the four forgeries refused", Duration::from_secs(20), || async { refused().await >= before + 4 }).await;
    let task = c.get(&format!("/api/v1/tasks/{id}")).await;
    assert_eq!(task["status"], "running", "a forged result was recorded: {task}");

    // The real result goes over NATS, and is recorded (not swallowed as a duplicate).
    std::fs::write(skills.join("gate/go"), "").unwrap();
    let task = c.wait_task(&id, 30).await;
    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(task["result"]["parameters"]["real"], true, "{task}");
    assert_eq!(count_events(&task, "completed"), 1, "{task}");
    // Recorded from NATS: a real result dropped as a duplicate never reaches the coordinator
    // (the worker's HTTP fallback would then have delivered it, with this still 0).
    eventually("the real result recorded from NATS", Duration::from_secs(10), || async {
        metric(&c, r#"openclaw_nats_results_total{kind="recorded"}"#).await == 1
    })
    .await;
    // Without credentials, the coordinator warned that everything travels in clear.
    let coordinator = c.coordinator.as_ref().unwrap();
    let warning = coordinator
        .out()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["message"].as_str().is_some_and(|m| m.contains("has no credentials")))
        .unwrap_or_else(|| panic!("no warning about NATS without credentials: {}", coordinator.logs()));
    assert_eq!(warning["level"], "WARN", "{warning}");
    assert!(warning["message"].as_str().unwrap().contains("task parameters"), "{warning}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_the_coordinator_never_takes_from_nats_is_delivered_over_http() {
    // The worker counts a result delivered only once the coordinator confirms it. Here the
    // coordinator's account may not pull the results stream (the example's accounts, minus
    // that one permission): the result waits in NATS unread, and goes over HTTP.
    let conf = example_server_config().replace("\"$JS.API.CONSUMER.MSG.NEXT.CLUSTER_RESULTS.coordinator\",", "");
    assert_ne!(conf, example_server_config(), "the example no longer has the line this test removes");
    let Some(server) = NatsServer::start(Some(&conf)) else { return };
    let c = nats_cluster(
        Settings::default(),
        &server.url(),
        "  nats_user: coordinator\n  nats_password: change-me-coordinator\n",
    )
    .await;
    let skills = c.path().join("skills");
    exec_skill(&skills, "echo", "cat\n");
    let w = c.worker_env("worker-1", &skills, &[], &worker_account("worker-1", "change-me-worker-1"));
    on_nats(&w).await;
    let id = c.submit(json!({"name": "unread", "required_skills": ["echo"]})).await;
    let task = c.wait_task(&id, 30).await;
    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(started_via(&w, &id), ["nats"]);
    assert!(w.out().contains("has not confirmed this result after two heartbeats"), "{}", w.logs());
    assert_eq!(metric(&c, r#"openclaw_nats_results_total{kind="recorded"}"#).await, 0);
    let js = client_as(&server, "coordinator", "change-me-coordinator", "_INBOX.coordinator.probe").await;
    assert_eq!(stream_messages(&js, "CLUSTER_RESULTS").await, 1, "the published result should still wait unread");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_worker_that_sends_no_key_stays_on_http() {
    // A worker from before the node keys says its NATS link is up but sends no key: the
    // coordinator could not check its messages, so it keeps it on HTTP and says why, once.
    let Some(server) = NatsServer::start(None) else { return };
    let c = nats_cluster(Settings::default(), &server.url(), "").await;
    let coordinator = c.coordinator.as_ref().unwrap();
    coordinator.wait_for_output("NATS streams ready", Duration::from_secs(20)).await;
    let secret = c.register("old", &["echo"], 1).await;
    for _ in 0..3 {
        assert_eq!(dispatch_after_heartbeat(&c, "old", &secret, json!({"nats": true})).await, "http");
    }
    coordinator.wait_for_output("runs an older worker", Duration::from_secs(10)).await;
    assert_eq!(coordinator.out().matches("runs an older worker").count(), 1, "{}", coordinator.logs());
    let bad = json!({"nats": true, "nats_key": "c2hvcnQ="});
    assert_eq!(dispatch_after_heartbeat(&c, "old", &secret, bad).await, "http");
    // With its key, the same node moves to NATS once its consumer exists.
    let with_key = json!({"nats": true, "nats_key": NodeKey::derive(&secret).to_base64()});
    eventually("the node on NATS", Duration::from_secs(20), || async {
        dispatch_after_heartbeat(&c, "old", &secret, with_key.clone()).await == "nats"
    })
    .await;
}

/// Heartbeats as node `node` with `body`; the answer's `dispatch`.
async fn dispatch_after_heartbeat(c: &Cluster, node: &str, secret: &str, body: Value) -> String {
    let path = format!("/api/v1/nodes/{node}/heartbeat");
    let (status, answer) = c.call("POST", &path, Some(secret), Some(&body.to_string())).await;
    assert_eq!(status, 200, "{answer}");
    answer["dispatch"].as_str().unwrap().to_string()
}
