//! Load generator against the real `openclaw coordinator` process (a benchmark, not a
//! test: it prints figures). Run: `cargo bench --bench load -- [heartbeats|tasks|sched|nodes|store|paint|all]`.
//!
//! - heartbeats: N registered nodes (1,000 and 10,000) heartbeat as fast as 64 concurrent
//!   clients can send; heartbeats per second and latency percentiles.
//! - tasks, saturated: simulated workers long-poll and complete every assignment at once;
//!   a submitter keeps 32 submissions in flight. Submit→complete throughput.
//! - tasks, paced: one task every 10 ms to idle simulated workers: the submit→worker
//!   receipt latency alone (p50/p99).
//! - sched: placeable-submit latency with 0 and with 20,000 distinct unplaceable skill sets
//!   waiting, one coordinator, one run.
//! - nodes: coordinator CPU per submit with one node and with 10,000 online nodes, and per
//!   registration with 0 and 3,000 unplaceable tasks waiting (CPU from /proc).
//! - store: RSS and list-page latency with 1,000,000 stored tasks, 100,000 pending.
//! - paint: the dashboard on loopback in headless Chromium (tests/tools/dashboard.cjs,
//!   installed by .ci/tools): first paint and first contentful paint of the page, and,
//!   logged in, the time until the first data is shown; medians of 30 fresh loads, with
//!   20 nodes and 200 tasks in the cluster.
//!
//! The coordinator and this generator share the machine: figures from one run compare
//! with each other, not with another machine's.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_openclaw");

/// Where the coordinator answers, and its tokens.
#[derive(Clone)]
struct Endpoint {
    url: String,
    admin: String,
    join: String,
    http: reqwest::Client,
}

/// The coordinator process; killed on drop.
struct Server {
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Server {
    /// CPU seconds the coordinator has used (user + system), from /proc.
    fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
        let ticks: f64 = fields.get(11).and_then(|u| u.parse::<f64>().ok()).unwrap_or(0.0)
            + fields.get(12).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
        // SAFETY: sysconf has no preconditions.
        ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
    }

    /// Resident memory of the coordinator, MiB, from /proc.
    fn rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        let kb: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0.0);
        kb / 1024.0
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

fn report(name: &str, h: &Histogram<u64>) -> String {
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    format!(
        "{name}: p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms (n={})",
        ms(0.5),
        ms(0.99),
        ms(0.999),
        h.max() as f64 / 1000.0,
        h.len()
    )
}

async fn start() -> (Server, Endpoint) {
    start_in(tempfile::tempdir().unwrap()).await
}

/// Starts a coordinator on the store in `dir` (created if there is none).
async fn start_in(dir: tempfile::TempDir) -> (Server, Endpoint) {
    let http = reqwest::Client::builder().pool_max_idle_per_host(256).build().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "storage:\n  path: {}/cluster.db\n  task_retention_days: 0\ncoordinator:\n  host: 127.0.0.1\n  port: {port}\n  heartbeat_timeout: 600\n  long_poll_timeout: 5\n  max_nodes: 20000\nlog:\n  level: WARN\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let child = std::process::Command::new(BIN)
        .args(["-c", &config.display().to_string(), "coordinator"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..4000 {
        if http.get(format!("{url}/health")).send().await.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap().trim().to_string();
    let endpoint = Endpoint { url, admin: read("admin.token"), join: read("worker.token"), http };
    (Server { child, _dir: dir }, endpoint)
}

impl Endpoint {
    async fn register(&self, id: &str, slots: u32) -> String {
        self.register_with(id, slots, &["work"]).await
    }

    async fn register_with(&self, id: &str, slots: u32, skills: &[&str]) -> String {
        let body = json!({"node_id": id, "hostname": id, "platform": "linux", "arch": "x64", "available_skills": skills, "max_concurrent_tasks": slots});
        let r = self
            .http
            .post(format!("{}/api/v1/nodes/register", self.url))
            .bearer_auth(&self.join)
            .json(&body)
            .send()
            .await
            .unwrap();
        r.json::<Value>().await.unwrap()["node_secret"].as_str().unwrap().to_string()
    }

    /// Submits task `i`, recording its send time first (a worker may get it before the 201).
    async fn submit(&self, i: u64, sent: &Mutex<HashMap<u64, Instant>>) -> Duration {
        let t0 = Instant::now();
        sent.lock().unwrap().insert(i, t0);
        let body = json!({"name": format!("t{i}"), "required_skills": ["work"], "parameters": {"i": i}});
        let r = self
            .http
            .post(format!("{}/api/v1/tasks", self.url))
            .bearer_auth(&self.admin)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let _ = r.bytes().await;
        t0.elapsed()
    }
}

async fn heartbeats(nodes: usize, seconds: u64) -> f64 {
    let (_server, ep) = start().await;
    let started = Instant::now();
    let mut registering = Vec::new();
    for part in (0..nodes).collect::<Vec<_>>().chunks(nodes.div_ceil(32)) {
        let (ep, part) = (ep.clone(), part.to_vec());
        registering.push(tokio::spawn(async move {
            let mut v = Vec::new();
            for i in part {
                let id = format!("node-{i:05}");
                let secret = ep.register(&id, 4).await;
                v.push((id, secret));
            }
            v
        }));
    }
    let mut secrets = Vec::with_capacity(nodes);
    for r in registering {
        secrets.extend(r.await.unwrap());
    }
    println!(
        "  registered {nodes} nodes in {:.2} s ({:.0}/s)",
        started.elapsed().as_secs_f64(),
        nodes as f64 / started.elapsed().as_secs_f64()
    );
    let secrets = Arc::new(secrets);
    let stop = Arc::new(AtomicBool::new(false));
    let clients = 64;
    let mut handles = Vec::new();
    for k in 0..clients {
        let (ep, secrets, stop) = (ep.clone(), secrets.clone(), stop.clone());
        handles.push(tokio::spawn(async move {
            let mut h = histogram();
            let body = r#"{"cpu_usage": 12.5, "memory_usage": 40.0, "disk_usage": 70.0, "held_tasks": []}"#;
            let mut i = k;
            while !stop.load(Ordering::Relaxed) {
                let (id, secret) = &secrets[i % secrets.len()];
                let t = Instant::now();
                let r = ep
                    .http
                    .post(format!("{}/api/v1/nodes/{id}/heartbeat", ep.url))
                    .bearer_auth(secret)
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success());
                let _ = r.bytes().await;
                h.record(t.elapsed().as_micros() as u64).unwrap();
                i += clients;
            }
            h
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = histogram();
    for h in handles {
        all.add(h.await.unwrap()).unwrap();
    }
    let rate = all.len() as f64 / seconds as f64;
    println!("  {nodes} nodes: {rate:.0} heartbeats/s with {clients} clients; {}", report("latency", &all));
    rate
}

/// Simulated workers: each long-polls, and completes every assignment at once in its own
/// task (start report, then result report), as a worker with free slots would.
struct Simulated {
    done: Arc<AtomicU64>,
    receipt: Arc<Mutex<Histogram<u64>>>,
    stop: Arc<AtomicBool>,
    handles: Vec<tokio::task::JoinHandle<()>>,
}

impl Simulated {
    async fn start(ep: &Endpoint, workers: usize, slots: u32, sent: Arc<Mutex<HashMap<u64, Instant>>>) -> Simulated {
        let done = Arc::new(AtomicU64::new(0));
        let receipt = Arc::new(Mutex::new(histogram()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut handles = Vec::new();
        for w in 0..workers {
            let id = format!("sim-{w}");
            let secret = ep.register(&id, slots).await;
            let (ep, sent, receipt, done, stop) =
                (ep.clone(), sent.clone(), receipt.clone(), done.clone(), stop.clone());
            handles.push(tokio::spawn(async move {
                let held: Arc<Mutex<Vec<Value>>> = Arc::new(Mutex::new(Vec::new()));
                while !stop.load(Ordering::Relaxed) {
                    let body = json!({"wait_secs": 1, "held": held.lock().unwrap().clone()});
                    let url = format!("{}/api/v1/nodes/{id}/tasks/poll", ep.url);
                    let Ok(r) = ep.http.post(url).bearer_auth(&secret).json(&body).send().await else { continue };
                    let poll: Value = r.json().await.unwrap_or(Value::Null);
                    for a in poll["assignments"].as_array().cloned().unwrap_or_default() {
                        if let Some(t0) = a["parameters"]["i"].as_u64().and_then(|i| sent.lock().unwrap().get(&i).copied()) {
                            receipt.lock().unwrap().record(t0.elapsed().as_micros() as u64).unwrap();
                        }
                        let task = a["task_id"].as_str().unwrap().to_string();
                        let attempt = a["attempt"].as_u64().unwrap();
                        held.lock().unwrap().push(json!({"task_id": task, "attempt": attempt}));
                        let (ep, secret, done, held, id) = (ep.clone(), secret.clone(), done.clone(), held.clone(), id.clone());
                        tokio::spawn(async move {
                            let base = format!("{}/api/v1/nodes/{id}/tasks/{task}", ep.url);
                            ep.http.post(format!("{base}/start")).bearer_auth(&secret).json(&json!({"attempt": attempt})).send().await.unwrap();
                            let result = json!({"attempt": attempt, "outcome": "completed", "result": {"ok": true}, "duration_ms": 1});
                            let r = ep.http.post(format!("{base}/result")).bearer_auth(&secret).json(&result).send().await.unwrap();
                            assert!(r.status().is_success(), "{}", r.text().await.unwrap());
                            held.lock().unwrap().retain(|h| h["task_id"] != task.as_str());
                            done.fetch_add(1, Ordering::Relaxed);
                        });
                    }
                }
            }));
        }
        Simulated { done, receipt, stop, handles }
    }

    async fn wait_for(&self, total: u64) {
        while self.done.load(Ordering::Relaxed) < total {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for h in self.handles {
            let _ = h.await;
        }
    }
}

async fn tasks_saturated(total: u64, workers: usize, slots: u32) {
    let (_server, ep) = start().await;
    let sent = Arc::new(Mutex::new(HashMap::new()));
    let sim = Simulated::start(&ep, workers, slots, sent.clone()).await;
    let started = Instant::now();
    let in_flight = Arc::new(tokio::sync::Semaphore::new(32));
    let submit_latency = Arc::new(Mutex::new(histogram()));
    let mut submits = Vec::new();
    for i in 0..total {
        let permit = in_flight.clone().acquire_owned().await.unwrap();
        let (ep, sent, lat) = (ep.clone(), sent.clone(), submit_latency.clone());
        submits.push(tokio::spawn(async move {
            let d = ep.submit(i, &sent).await;
            lat.lock().unwrap().record(d.as_micros() as u64).unwrap();
            drop(permit);
        }));
    }
    for s in submits {
        s.await.unwrap();
    }
    sim.wait_for(total).await;
    let elapsed = started.elapsed().as_secs_f64();
    sim.stop().await;
    println!(
        "  saturated: {total} tasks, {workers} simulated workers x {slots} slots: {:.0} tasks/s submit→complete ({elapsed:.2} s)",
        total as f64 / elapsed
    );
    println!("  {}", report("submit answered (201, committed)", &submit_latency.lock().unwrap()));
}

/// Paced dispatch, optionally with `backlog` pending tasks that no node can run in front of
/// it (they must not slow placement down: the queue looks at one head per skill set).
async fn tasks_paced(total: u64, gap: Duration, backlog: u64) -> f64 {
    let (_server, ep) = start().await;
    if backlog > 0 {
        let in_flight = Arc::new(tokio::sync::Semaphore::new(64));
        let mut submits = Vec::new();
        for i in 0..backlog {
            let permit = in_flight.clone().acquire_owned().await.unwrap();
            let ep = ep.clone();
            submits.push(tokio::spawn(async move {
                let body = json!({"name": format!("stuck{i}"), "required_skills": ["nobody-has-this"], "priority": "critical"});
                let r = ep.http.post(format!("{}/api/v1/tasks", ep.url)).bearer_auth(&ep.admin).json(&body).send().await.unwrap();
                assert_eq!(r.status(), 201);
                drop(permit);
            }));
        }
        for s in submits {
            s.await.unwrap();
        }
    }
    let sent = Arc::new(Mutex::new(HashMap::new()));
    let sim = Simulated::start(&ep, 4, 8, sent.clone()).await;
    tokio::time::sleep(Duration::from_millis(300)).await; // every simulated worker is in its long poll
    for i in 0..total {
        ep.submit(i, &sent).await;
        tokio::time::sleep(gap).await;
    }
    sim.wait_for(total).await;
    let receipt = sim.receipt.lock().unwrap().clone();
    sim.stop().await;
    println!(
        "  paced ({total} tasks, one every {gap:?}, idle workers, {backlog} unplaceable critical tasks queued): {}",
        report("submit→worker receipt", &receipt)
    );
    receipt.value_at_quantile(0.99) as f64
}

/// Submits `n` tasks needing `skill(i)`, 64 in flight, and returns each one's latency.
async fn submit_many(ep: &Endpoint, n: u64, skill: impl Fn(u64) -> String) -> Histogram<u64> {
    let in_flight = Arc::new(tokio::sync::Semaphore::new(64));
    let latency = Arc::new(Mutex::new(histogram()));
    let mut submits = Vec::new();
    for i in 0..n {
        let permit = in_flight.clone().acquire_owned().await.unwrap();
        let (ep, lat) = (ep.clone(), latency.clone());
        let body = json!({"name": format!("t{i}"), "required_skills": [skill(i)], "parameters": {"i": i}});
        submits.push(tokio::spawn(async move {
            let t = Instant::now();
            let r = ep
                .http
                .post(format!("{}/api/v1/tasks", ep.url))
                .bearer_auth(&ep.admin)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
            lat.lock().unwrap().record(t.elapsed().as_micros() as u64).unwrap();
            drop(permit);
        }));
    }
    for s in submits {
        s.await.unwrap();
    }
    latency.lock().unwrap().clone()
}

/// Placeable submits one at a time (each placed at once on an idle node), latency each.
async fn placeable_submits(ep: &Endpoint, n: u64, tag: &str) -> Histogram<u64> {
    let mut h = histogram();
    for i in 0..n {
        let body = json!({"name": format!("{tag}{i}"), "required_skills": ["work"]});
        let t = Instant::now();
        let r =
            ep.http.post(format!("{}/api/v1/tasks", ep.url)).bearer_auth(&ep.admin).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 201);
        let task: Value = r.json().await.unwrap();
        h.record(t.elapsed().as_micros() as u64).unwrap();
        assert_eq!(task["status"], "scheduled", "placeable: {task}");
    }
    h
}

/// Issue 11: a placeable submit's cost with 0 and with 20,000 distinct unplaceable skill
/// sets waiting, in one run on one coordinator.
/// The dashboard's first paint and first data, from Chromium's own timings.
async fn paint(runs: u32) {
    let tools = std::env::var_os("OPENCLAW_CI_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/openclaw-ci")
        })
        .join("tools/node/node_modules/playwright-core");
    if !tools.exists() {
        println!("  skipped: {} is missing (run .ci/tools)", tools.display());
        return;
    }
    let (_server, ep) = start().await;
    for i in 0..20 {
        ep.register(&format!("node-{i:02}"), 4).await;
    }
    submit_many(&ep, 200, |i| format!("skill-{}", i % 7)).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools/dashboard.cjs");
    let out = std::process::Command::new("node")
        .args([script, "paint", &ep.url, &runs.to_string(), &ep.admin])
        .env("PLAYWRIGHT_CORE", &tools)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let m = &v["median_ms"];
    println!(
        "  {runs} fresh loads, medians: first paint {} ms, first contentful paint {} ms, DOMContentLoaded {} ms, load {} ms; logged in, first data shown {} ms",
        m["first_paint"], m["first_contentful_paint"], m["dom_content_loaded"], m["load"], m["data_shown"]
    );
}

async fn scheduler(backlog: u64) {
    let (_server, ep) = start().await;
    ep.register("holder", 1000).await;
    let clear = placeable_submits(&ep, 400, "a").await;
    let started = Instant::now();
    submit_many(&ep, backlog, |i| format!("nobody-has-{i}")).await;
    let fill = started.elapsed();
    let loaded = placeable_submits(&ep, 400, "b").await;
    println!("  {}", report("placeable submit, nothing waiting", &clear));
    println!("  {}", report(&format!("placeable submit, {backlog} distinct unplaceable skill sets waiting"), &loaded));
    println!(
        "  backlog of {backlog} filled in {:.2} s ({:.0} submits/s)",
        fill.as_secs_f64(),
        backlog as f64 / fill.as_secs_f64()
    );
    let q = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64;
    println!(
        "  ratio with / without the backlog: p50 {:.2}, p99 {:.2} (target <= 1.5)",
        q(&loaded, 0.5) / q(&clear, 0.5),
        q(&loaded, 0.99) / q(&clear, 0.99)
    );
}

/// Issue 14: a submit's coordinator CPU with no other node and with 10,000 online nodes
/// that lack the skill; a registration's CPU with 0 and with 3,000 unplaceable tasks
/// waiting. CPU comes from /proc, so the load generator's own work does not count.
async fn cluster_size(nodes: u64) {
    let (server, ep) = start().await;
    for h in 0..10 {
        ep.register(&format!("holder-{h}"), 1000).await;
    }
    let per = |cpu: f64, n: u64| cpu / n as f64 * 1000.0;
    let (submits, registrations) = (5000, 3000);
    let c0 = server.cpu_seconds();
    submit_many(&ep, submits, |_| "work".into()).await;
    let alone = per(server.cpu_seconds() - c0, submits);
    let c0 = server.cpu_seconds();
    register_many(&ep, registrations, "early", 0).await;
    let reg_idle = per(server.cpu_seconds() - c0, registrations);
    submit_many(&ep, 3000, |i| format!("missing-{i}")).await;
    let c0 = server.cpu_seconds();
    register_many(&ep, registrations, "late", 0).await;
    let reg_busy = per(server.cpu_seconds() - c0, registrations);
    register_many(&ep, nodes - 2 * registrations, "bulk", 0).await;
    let c0 = server.cpu_seconds();
    submit_many(&ep, submits, |_| "work".into()).await;
    let crowded = per(server.cpu_seconds() - c0, submits);
    println!(
        "  submit CPU: {alone:.3} ms with 10 nodes, {crowded:.3} ms with {} online nodes; ratio {:.2} (target <= 2)",
        nodes + 10,
        crowded / alone
    );
    println!(
        "  register CPU: {reg_idle:.3} ms with nothing waiting, {reg_busy:.3} ms with 3,000 unplaceable tasks waiting; ratio {:.2}",
        reg_busy / reg_idle
    );
}

async fn register_many(ep: &Endpoint, n: u64, prefix: &str, offset: u64) {
    let in_flight = Arc::new(tokio::sync::Semaphore::new(32));
    let mut handles = Vec::new();
    for i in 0..n {
        let permit = in_flight.clone().acquire_owned().await.unwrap();
        let ep = ep.clone();
        let id = format!("{prefix}-{:05}", i + offset);
        handles.push(tokio::spawn(async move {
            let skill = format!("other-{}", i % 50);
            ep.register_with(&id, 4, &[skill.as_str()]).await;
            drop(permit);
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
}

/// Issue 11: memory and list latency with 1,000,000 stored tasks, 100,000 of them pending.
/// The store is filled with SQL before the coordinator starts (as a long-lived cluster
/// would have left it), then the real coordinator loads it.
async fn store(stored: u64, pending: u64) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cluster.db");
    let started = Instant::now();
    let o = std::process::Command::new(BIN).args(["migrate", "--db-path", &db.display().to_string()]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF; BEGIN;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {stored})
         INSERT INTO tasks (task_id, seq, name, description, task_type, priority, required_skills, parameters,
                            timeout_ms, max_retries, status, assigned_node, attempt, result, submitted_at,
                            scheduled_at, started_at, completed_at)
         SELECT printf('task_%032d', i), i, 'task ' || i, 'a stored task', 'batch', i % 4,
                json_array('skill-' || (i % 20)), json_object('i', i, 'text', 'some parameters of the task'),
                60000, 3,
                CASE WHEN i > {stored} - {pending} THEN 'pending' ELSE 'completed' END,
                CASE WHEN i > {stored} - {pending} THEN NULL ELSE 'node-' || (i % 10) END,
                CASE WHEN i > {stored} - {pending} THEN 0 ELSE 1 END,
                CASE WHEN i > {stored} - {pending} THEN NULL ELSE json_object('ok', 1) END,
                1700000000000 + i, NULL, NULL,
                CASE WHEN i > {stored} - {pending} THEN NULL ELSE 1700000000000 + i END
         FROM n;
         INSERT INTO task_skills (skill, seq, task_id) SELECT json_extract(required_skills, '$[0]'), seq, task_id FROM tasks;
         INSERT INTO events (id, at, kind, event, task_id, status, attempt, skill)
           SELECT seq, submitted_at, 'task', 'submitted', task_id, 'pending', 0, json_extract(required_skills, '$[0]') FROM tasks;
         COMMIT; PRAGMA wal_checkpoint(TRUNCATE);"
    ))
    .unwrap();
    drop(c);
    println!(
        "  filled {stored} tasks ({pending} pending) in {:.1} s; database {:.0} MiB",
        started.elapsed().as_secs_f64(),
        std::fs::metadata(&db).unwrap().len() as f64 / 1048576.0
    );
    let started = Instant::now();
    let (server, ep) = start_in(dir).await;
    println!(
        "  coordinator up in {:.2} s; RSS {:.1} MiB (goal <= 100)",
        started.elapsed().as_secs_f64(),
        server.rss_mib()
    );
    let pages = [
        ("newest 50", "/api/v1/tasks?limit=50".to_string()),
        ("status=pending", "/api/v1/tasks?status=pending".to_string()),
        ("status=completed", "/api/v1/tasks?status=completed".to_string()),
        ("skill=skill-7", "/api/v1/tasks?skill=skill-7".to_string()),
        ("node=node-3", "/api/v1/tasks?node=node-3".to_string()),
        ("status=completed&node=node-3", "/api/v1/tasks?status=completed&node=node-3".to_string()),
        ("skill=skill-7&status=pending", "/api/v1/tasks?skill=skill-7&status=pending".to_string()),
        ("deep page (after=500000)", "/api/v1/tasks?after=500000".to_string()),
        ("limit=1000", "/api/v1/tasks?limit=1000".to_string()),
    ];
    for (what, path) in pages {
        let mut h = histogram();
        for _ in 0..30 {
            let t = Instant::now();
            let r = ep.http.get(format!("{}{path}", ep.url)).bearer_auth(&ep.admin).send().await.unwrap();
            assert!(r.status().is_success());
            let page: Value = r.json().await.unwrap();
            h.record(t.elapsed().as_micros() as u64).unwrap();
            assert!(!page["tasks"].as_array().unwrap().is_empty(), "{what}: empty page");
        }
        println!("  {}", report(&format!("list {what}"), &h));
    }
    println!("  RSS after the lists: {:.1} MiB", server.rss_mib());
    register_many(&ep, 10_000, "node", 0).await;
    println!("  RSS with 10,000 nodes registered too: {:.1} MiB", server.rss_mib());
}

fn main() {
    let which = std::env::args().skip(1).find(|a| !a.starts_with('-')).unwrap_or_else(|| "all".into());
    openclaw::cmd::install_crypto();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        if which == "heartbeats" || which == "all" {
            println!("heartbeats (10 s each):");
            let small = heartbeats(1_000, 10).await;
            let large = heartbeats(10_000, 10).await;
            println!("  ratio of rates, 10,000 / 1,000 nodes: {:.2}", large / small);
        }
        if which == "sched" || which == "all" {
            println!("scheduler:");
            scheduler(20_000).await;
        }
        if which == "nodes" || which == "all" {
            println!("cluster size:");
            cluster_size(10_000).await;
        }
        if which == "store" || which == "all" {
            println!("store:");
            store(1_000_000, 100_000).await;
        }
        if which == "paint" || which == "all" {
            println!("dashboard:");
            paint(30).await;
        }
        if which == "tasks" || which == "all" {
            println!("tasks:");
            tasks_saturated(5_000, 8, 16).await;
            let clear = tasks_paced(500, Duration::from_millis(10), 0).await;
            let backlog = tasks_paced(500, Duration::from_millis(10), 20_000).await;
            println!("  ratio of p99 receipt latency, 20,000-task backlog / none: {:.2}", backlog / clear);
        }
    });
}
