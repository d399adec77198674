//! Load generator against the real `openclaw coordinator` process (a benchmark, not a
//! test: it prints figures). Run: `cargo bench --bench load -- [heartbeats|tasks|all]`.
//!
//! - heartbeats: N registered nodes (1,000 and 10,000) heartbeat as fast as 64 concurrent
//!   clients can send; heartbeats per second and latency percentiles.
//! - tasks, saturated: simulated workers long-poll and complete every assignment at once;
//!   a submitter keeps 32 submissions in flight. Submit→complete throughput.
//! - tasks, paced: one task every 10 ms to idle simulated workers: the submit→worker
//!   receipt latency alone (p50/p99).
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
    let http = reqwest::Client::builder().pool_max_idle_per_host(256).build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "storage:\n  path: {}/cluster.db\ncoordinator:\n  host: 127.0.0.1\n  port: {port}\n  heartbeat_timeout: 600\n  long_poll_timeout: 5\nlog:\n  level: WARN\n",
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
    for _ in 0..400 {
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
        let body = json!({"node_id": id, "hostname": id, "platform": "linux", "arch": "x64", "available_skills": ["work"], "max_concurrent_tasks": slots});
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
        if which == "tasks" || which == "all" {
            println!("tasks:");
            tasks_saturated(5_000, 8, 16).await;
            let clear = tasks_paced(500, Duration::from_millis(10), 0).await;
            let backlog = tasks_paced(500, Duration::from_millis(10), 20_000).await;
            println!("  ratio of p99 receipt latency, 20,000-task backlog / none: {:.2}", backlog / clear);
        }
    });
}
