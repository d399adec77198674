//! Load generator against the real `openclaw coordinator` process (a benchmark, not a
//! test: it prints figures). Run:
//! `cargo bench --bench load -- [heartbeats|siege|tasks|transport|sched|nodes|store|streams|mcp|secrets|paint|skills|push|schedules|failover|fanout|all]`.
//!
//! - heartbeats: N registered nodes (1,000 and 10,000) heartbeat as fast as 64 concurrent
//!   clients can send; heartbeats per second and latency percentiles.
//! - siege: 200 nodes heartbeat from 127.0.0.1, first while that address is quiet, then
//!   while clients on it hold every place they may (32 streams, 160 waits: the default
//!   caps less the workers' reserve); rate and latency of both, one coordinator, one run.
//! - tasks, saturated: simulated workers long-poll and complete every assignment at once;
//!   a submitter keeps 32 submissions in flight. Submit→complete throughput, side by side
//!   in one run: workers that send one request per start and per result (older workers),
//!   then workers that batch them (`POST .../tasks/reports`: the starts in hand in one
//!   request, their results in one that also asks for the next assignments), and the ratio.
//! - tasks, paced: one task every 10 ms to idle simulated workers: the submit→worker
//!   receipt latency alone (p50/p99).
//! - transport: the same two task loads (saturated, paced) over HTTP and over NATS
//!   JetStream, one coordinator (configured for NATS) and one real `nats-server`, one run:
//!   simulated workers long-poll over HTTP, or pull from their NATS consumer, report the
//!   starts in hand over HTTP in one batch and publish each signed result to NATS, as
//!   `openclaw worker` does; over HTTP, starts and results go in batches.
//! - sched: placeable-submit latency with 0 and with 20,000 distinct unplaceable skill sets
//!   waiting, one coordinator, one run.
//! - nodes: coordinator CPU per submit with one node and with 10,000 online nodes, and per
//!   registration with 0 and 3,000 unplaceable tasks waiting (CPU from /proc).
//! - store: RSS and list-page latency with 1,000,000 stored tasks, 100,000 pending.
//! - streams: coordinator CPU with 100 running tasks (simulated workers, each task 2 s),
//!   then with 10 event-stream watchers, with every task streaming output (5 lines every
//!   250 ms), and with both; one coordinator, one run, CPU from /proc.
//! - mcp: submit-and-wait of a no-op exec task on one real worker, interleaved in one run:
//!   the plain API (submit, then wait), the MCP tool `submit_task` on `/mcp` (rmcp's
//!   Streamable HTTP client), and the same through `openclaw mcp` (stdio child process).
//! - secrets: paced tasks to one idle simulated worker, alternately using 3 cluster secrets
//!   and none, one coordinator, one run: submit→start answer (the moment the worker holds
//!   everything it needs to run, the secrets' values included), p50/p99 of each.
//! - paint: the dashboard on loopback in headless Chromium (tests/tools/dashboard.cjs,
//!   installed by .ci/tools): first paint and first contentful paint of the page, and,
//!   logged in, the time until the first data is shown; medians of 30 fresh loads, with
//!   20 nodes and 200 tasks in the cluster.
//! - skills: the worker's skill digests (no coordinator): the bytes a skill's source and
//!   digest add to a heartbeat that carries the lists; the time to digest a typical skill
//!   folder first and at a rescan (listing only, nothing changed); OpenClaw's bundled skills
//!   (when `.ci/tools` installed OpenClaw); a folder just under the byte cap, and folders over
//!   the file and byte caps (refused after the listing).
//!
//! - push: time to push a 1 MiB skill (16 files of 64 KiB and a SKILL.md) to 100 simulated
//!   workers until all of them advertise its digest, on the real coordinator process:
//!   from the `POST /api/v1/skills/push` (the upload and the coordinator's check included)
//!   to the moment `GET /api/v1/skills/pushes` shows every node `installed`; and each
//!   node's fetch + verify + install. What is simulated: the 100 workers are tasks in this
//!   process, not `openclaw worker` processes; each heartbeats every second (a real
//!   worker's default is 5 s) and, when an answer lists a package it lacks, fetches it with
//!   its node secret, checks it with the worker's checker (`package::verify`) and installs
//!   it with the worker's `package::install` into a temp folder on disk, then heartbeats at
//!   once with the digest advertised and an `installed` report (as a real worker does after
//!   its rescan; the rescan itself is not run here).
//!
//! - schedules: coordinator CPU while idle with no schedule and with 10,000 idle ones (due
//!   in an hour), then the firing lateness (due time → task submitted, from each run's
//!   `fired_at` and `due_at`) p50/p99/max when 10,000 exact cron schedules are due the same
//!   minute; one coordinator, one run.
//!
//! - failover: PostgreSQL (started here) and 3 coordinators on one database, simulated
//!   workers that follow the leader (each task runs 300 ms), a submitter with idempotency
//!   keys; 20 rounds of kill -9 of the leader (the killed one restarted as a standby):
//!   failover time (kill → a standby's `/health` says leader) min/median/max, acknowledged
//!   submissions lost, and tasks handed to a worker while it still ran them.
//! - fanout: 1,000 simulated nodes (registered, online, idle); a fan-out (`target.each_node`)
//!   to all of them: time from the submit to its 201, and to every child read back as
//!   placed (scheduled on its own node), median of 5; beside it, the same 1,000 tasks
//!   submitted one by one (64 in flight), one coordinator, one run.
//!
//! The coordinator and this generator share the machine: figures from one run compare
//! with each other, not with another machine's.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hdrhistogram::Histogram;
use serde_json::{Value, json};

#[path = "../tests/it/nats_server.rs"]
mod nats_server;
#[path = "../tests/it/postgres_server.rs"]
mod postgres_server;

const BIN: &str = env!("CARGO_BIN_EXE_openclaw");

/// Where the coordinator answers, and its tokens.
#[derive(Clone)]
struct Endpoint {
    url: String,
    admin: String,
    join: String,
    http: reqwest::Client,
    /// The NATS server the coordinator uses, when it uses one.
    nats_url: Option<String>,
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
        self.memory_mib("VmRSS:")
    }

    /// The most resident memory the coordinator has had so far, MiB (issue 23 item 4).
    fn peak_rss_mib(&self) -> f64 {
        self.memory_mib("VmHWM:")
    }

    /// A figure of /proc/PID/status in kB, as MiB.
    fn memory_mib(&self, field: &str) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        let kb: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix(field))
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
    start_with(dir, "").await
}

/// Starts a coordinator with `extra` appended to its config file.
async fn start_with(dir: tempfile::TempDir, extra: &str) -> (Server, Endpoint) {
    start_on(dir, "", extra).await
}

/// Starts a coordinator whose `storage` section also has `storage` (indented lines, e.g.
/// `  type: postgres\n  url: …\n`), with `extra` appended to its config file.
async fn start_on(dir: tempfile::TempDir, storage: &str, extra: &str) -> (Server, Endpoint) {
    let http = reqwest::Client::builder().pool_max_idle_per_host(256).build().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "storage:\n  path: {}/cluster.db\n  task_retention_days: 0\n{storage}coordinator:\n  host: 127.0.0.1\n  port: {port}\n  heartbeat_timeout: 600\n  long_poll_timeout: 5\n  max_nodes: 20000\nlog:\n  level: WARN\n{extra}",
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
    let endpoint = Endpoint { url, admin: read("admin.token"), join: read("worker.token"), http, nats_url: None };
    (Server { child, _dir: dir }, endpoint)
}

impl Endpoint {
    /// GET `path` with the admin token, as JSON.
    async fn get_json(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.url))
            .bearer_auth(&self.admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

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

    /// Submits task `i` needing `skill`, recording its send time first (a worker may get
    /// it before the 201).
    async fn submit(&self, i: u64, sent: &Mutex<HashMap<u64, Instant>>, skill: &str) -> Duration {
        let t0 = Instant::now();
        sent.lock().unwrap().insert(i, t0);
        let body = json!({"name": format!("t{i}"), "required_skills": [skill], "parameters": {"i": i}});
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
    let (server, ep) = start().await;
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
    let clients = 64;
    if let Some(wrk) = Wrk::find() {
        // wrk costs the machine far less than this generator: the coordinator's own ceiling.
        // Each phase also says what the coordinator's CPU spent per request.
        let run = |url: &str, script: Option<&tempfile::NamedTempFile>| {
            let cpu = server.cpu_seconds();
            let figures = wrk.run(url, script, seconds);
            let micros = (server.cpu_seconds() - cpu) * 1e6 / (figures.rate * seconds as f64);
            (figures, micros)
        };
        let health = format!("{}/health", ep.url);
        let (ceiling, ceiling_cpu) = run(&health, None);
        println!("  wrk, ceiling: {ceiling}; coordinator CPU {ceiling_cpu:.1} µs a request");
        // wrk sends a fixed request without a script, and builds each one in Lua with one:
        // the same script machinery for GET /health shows what that costs the client.
        let (alike, alike_cpu) = run(&health, Some(&wrk_script(&secrets, false)));
        println!(
            "  wrk, ceiling, each request built by the script: {alike}; coordinator CPU {alike_cpu:.1} µs a request"
        );
        let (beats, beats_cpu) = run(&ep.url, Some(&wrk_script(&secrets, true)));
        println!("  wrk, {nodes} nodes: {beats}; coordinator CPU {beats_cpu:.1} µs a heartbeat");
        println!(
            "  ratio of rates (wrk), heartbeats / GET /health: {:.2} (issue 23 asks >= 0.85); to GET /health built alike: {:.2}; coordinator CPU, a heartbeat / a GET /health: {:.2}",
            beats.rate / ceiling.rate,
            beats.rate / alike.rate,
            beats_cpu / ceiling_cpu
        );
    } else {
        println!("  (wrk is not installed: the figures below include this generator's own cost)");
    }
    let ceiling = health_load(&ep, clients, seconds).await;
    let ceiling_rate = ceiling.len() as f64 / seconds as f64;
    println!("  ceiling: {ceiling_rate:.0} GET /health/s with {clients} clients; {}", report("latency", &ceiling));
    let all = heartbeat_load(&ep, Arc::new(secrets), clients, seconds).await;
    let rate = all.len() as f64 / seconds as f64;
    println!("  {nodes} nodes: {rate:.0} heartbeats/s with {clients} clients; {}", report("latency", &all));
    println!("  ratio of rates, heartbeats / GET /health: {:.2} (issue 23 asks >= 0.85)", rate / ceiling_rate);
    println!("  coordinator peak RSS with {nodes} nodes heartbeating: {:.1} MiB", server.peak_rss_mib());
    rate
}

/// `wrk` (when installed): 2 threads, 64 connections, latency percentiles.
struct Wrk(std::path::PathBuf);

/// What one wrk run measured.
struct WrkFigures {
    rate: f64,
    text: String,
}

impl std::fmt::Display for WrkFigures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.0} requests/s with 64 connections; latency: {}", self.rate, self.text)
    }
}

impl Wrk {
    fn find() -> Option<Wrk> {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path).map(|d| d.join("wrk")).find(|p| p.is_file()).map(Wrk)
    }

    /// Runs wrk for `seconds` against `url` (with a Lua `script` that builds the requests);
    /// every answer must be a success.
    fn run(&self, url: &str, script: Option<&tempfile::NamedTempFile>, seconds: u64) -> WrkFigures {
        let mut cmd = std::process::Command::new(&self.0);
        cmd.args(["-t2", "-c64", &format!("-d{seconds}s"), "--latency"]);
        if let Some(script) = script {
            cmd.arg("-s").arg(script.path());
        }
        let out = cmd.arg(url).output().expect("run wrk");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success() && !text.contains("Non-2xx"),
            "wrk: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let field = |label: &str| {
            text.lines().find_map(|l| l.trim().strip_prefix(label).map(|v| v.trim().to_string())).unwrap_or_default()
        };
        WrkFigures {
            rate: field("Requests/sec:").parse().expect("wrk's Requests/sec"),
            text: format!("p50 {}, p90 {}, p99 {}", field("50%"), field("90%"), field("99%")),
        }
    }
}

/// A wrk script: each request a heartbeat of the next node, with that node's secret; or,
/// without `heartbeats`, a `GET /health` built the same way (with that node's header).
fn wrk_script(secrets: &[(String, String)], heartbeats: bool) -> tempfile::NamedTempFile {
    use std::io::Write;
    let mut f = tempfile::Builder::new().suffix(".lua").tempfile().unwrap();
    writeln!(f, "local nodes = {{").unwrap();
    for (id, secret) in secrets {
        writeln!(f, "  {{\"/api/v1/nodes/{id}/heartbeat\", \"Bearer {secret}\"}},").unwrap();
    }
    let request = if heartbeats {
        r#"return wrk.format("POST", n[1], {["Authorization"] = n[2], ["Content-Type"] = "application/json"}, body)"#
    } else {
        r#"return wrk.format("GET", "/health", {["Authorization"] = n[2]})"#
    };
    writeln!(
        f,
        r#"}}
local body = '{{"cpu_usage": 12.5, "memory_usage": 40.0, "disk_usage": 70.0, "held_tasks": []}}'
local i, started = 0, 0
setup = function(thread) thread:set("offset", started); started = started + 7919 end
init = function(args) i = offset or 0 end
request = function()
  i = i % #nodes + 1
  local n = nodes[i]
  {request}
end"#
    )
    .unwrap();
    f
}

/// `clients` concurrent clients send heartbeats for the nodes in `secrets`, in turn, as fast
/// as they can for `seconds`; the latency of each.
async fn heartbeat_load(
    ep: &Endpoint,
    secrets: Arc<Vec<(String, String)>>,
    clients: usize,
    seconds: u64,
) -> Histogram<u64> {
    let body = r#"{"cpu_usage": 12.5, "memory_usage": 40.0, "disk_usage": 70.0, "held_tasks": []}"#;
    let ep = ep.clone();
    request_load(clients, seconds, move |i| {
        let (id, secret) = &secrets[i % secrets.len()];
        ep.http
            .post(format!("{}/api/v1/nodes/{id}/heartbeat", ep.url))
            .bearer_auth(secret)
            .header("content-type", "application/json")
            .body(body)
    })
    .await
}

/// The coordinator's own ceiling: `clients` concurrent clients ask `GET /health` as fast
/// as they can for `seconds` (no authentication, no state: the HTTP stack alone).
async fn health_load(ep: &Endpoint, clients: usize, seconds: u64) -> Histogram<u64> {
    let ep = ep.clone();
    request_load(clients, seconds, move |_| ep.http.get(format!("{}/health", ep.url))).await
}

/// `clients` concurrent clients send the requests `make` builds (client k sends numbers
/// k, k + clients, …) as fast as they can for `seconds`; the latency of each (every answer
/// must be a success).
async fn request_load(
    clients: usize,
    seconds: u64,
    make: impl Fn(usize) -> reqwest::RequestBuilder + Clone + Send + 'static,
) -> Histogram<u64> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for k in 0..clients {
        let (make, stop) = (make.clone(), stop.clone());
        handles.push(tokio::spawn(async move {
            let mut h = histogram();
            let mut i = k;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let r = make(i).send().await.unwrap();
                assert!(r.status().is_success(), "{}: {}", r.url().path(), r.status());
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
    all
}

/// siege: `nodes` nodes heartbeat from 127.0.0.1 (16 clients) for `seconds` while that
/// address is quiet, then for `seconds` while clients on the same address hold every place
/// they may (default caps): 32 event streams (`max_streams_per_ip`) and waits on a task
/// nobody runs up to the clients' share of `max_connections_per_ip` (192 of 256). One
/// coordinator, one run.
async fn siege(nodes: usize, seconds: u64) {
    let (_server, ep) = start().await;
    let mut secrets = Vec::new();
    for i in 0..nodes {
        let id = format!("node-{i:04}");
        let secret = ep.register(&id, 4).await;
        secrets.push((id, secret));
    }
    let secrets = Arc::new(secrets);
    let quiet = heartbeat_load(&ep, secrets.clone(), 16, seconds).await;
    // The siege, from the nodes' own address; the figures are read from another one.
    let crowd = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let observer = reqwest::Client::builder().local_address(std::net::IpAddr::from([127, 0, 0, 2])).build().unwrap();
    let body = json!({"name": "parked", "required_skills": ["nobody-has-it"]});
    let r = ep.http.post(format!("{}/api/v1/tasks", ep.url)).bearer_auth(&ep.admin).json(&body).send().await.unwrap();
    let parked = r.json::<Value>().await.unwrap()["task_id"].as_str().unwrap().to_string();
    let mut streams = Vec::new();
    for _ in 0..32 {
        let r = crowd.get(format!("{}/api/v1/events", ep.url)).bearer_auth(&ep.admin).send().await.unwrap();
        assert_eq!(r.status(), 200);
        streams.push(r);
    }
    let extra = crowd.get(format!("{}/api/v1/events", ep.url)).bearer_auth(&ep.admin).send().await.unwrap();
    assert_eq!(extra.status(), 429, "the 33rd stream from one address");
    let mut waits = Vec::new();
    for _ in 0..160 {
        let url = format!("{}/api/v1/tasks/{parked}/wait?timeout=600", ep.url);
        let (crowd, admin) = (crowd.clone(), ep.admin.clone());
        waits.push(tokio::spawn(async move { crowd.get(url).bearer_auth(admin).send().await.map(|r| r.status()) }));
    }
    let held = || async {
        let r = observer.get(format!("{}/metrics", ep.url)).bearer_auth(&ep.admin).send().await.unwrap();
        let text = r.text().await.unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("openclaw_connections_held "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // 192 from the nodes' address, and the scrape itself.
    while held().await < 193.0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refused =
        crowd.get(format!("{}/api/v1/tasks/{parked}/wait", ep.url)).bearer_auth(&ep.admin).send().await.unwrap();
    assert_eq!(refused.status(), 503, "a client request past the clients' share");
    let besieged = heartbeat_load(&ep, secrets, 16, seconds).await;
    let (q, b) = (quiet.len() as f64 / seconds as f64, besieged.len() as f64 / seconds as f64);
    println!("  quiet:    {q:.0} heartbeats/s; {}", report("latency", &quiet));
    println!(
        "  besieged: {b:.0} heartbeats/s; {} (32 streams + 160 waits held on the same address)",
        report("latency", &besieged)
    );
    let p = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64;
    println!(
        "  ratios besieged / quiet: rate {:.2}, p50 {:.2}, p99 {:.2}",
        b / q,
        p(&besieged, 0.5) / p(&quiet, 0.5),
        p(&besieged, 0.99) / p(&quiet, 0.99)
    );
    drop(streams);
    for w in waits {
        w.abort();
    }
}

/// Which door simulated workers take their assignments through.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Door {
    /// The HTTP long poll; start and result reports over HTTP.
    Http,
    /// Their NATS consumer; the start report over HTTP, the result published to NATS.
    Nats,
}

impl Door {
    fn name(self) -> &'static str {
        match self {
            Door::Http => "http",
            Door::Nats => "nats",
        }
    }
}

/// How simulated workers report starts and results.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reports {
    /// One request (and one commit) per report: `POST .../tasks/{task}/start`, then
    /// `.../result`, each task in its own tokio task (the protocol of older workers).
    PerTask,
    /// `POST .../tasks/reports`: the starts of everything in hand in one request, then their
    /// results in one request that also asks for the next assignments (issue 23).
    Batched,
}

impl Reports {
    fn name(self) -> &'static str {
        match self {
            Reports::PerTask => "per-task reports",
            Reports::Batched => "batched reports",
        }
    }
}

/// Simulated workers: each takes its assignments through its door, and completes every
/// one at once (start report, then result), as a worker with free slots would; per task
/// in its own task, or batched (see [`Reports`]).
struct Simulated {
    done: Arc<AtomicU64>,
    receipt: Arc<Mutex<Histogram<u64>>>,
    stop: Arc<AtomicBool>,
    handles: Vec<tokio::task::JoinHandle<()>>,
}

impl Simulated {
    async fn start(
        ep: &Endpoint,
        reports: Reports,
        workers: usize,
        slots: u32,
        sent: Arc<Mutex<HashMap<u64, Instant>>>,
    ) -> Simulated {
        Self::start_as(ep, Door::Http, reports, "work", workers, slots, sent).await
    }

    /// `workers` nodes with the one skill `skill`, taking work through `door` (for NATS,
    /// the coordinator must be configured for it; `nats_url` is then in `ep`).
    async fn start_as(
        ep: &Endpoint,
        door: Door,
        reports: Reports,
        skill: &str,
        workers: usize,
        slots: u32,
        sent: Arc<Mutex<HashMap<u64, Instant>>>,
    ) -> Simulated {
        let sim = Simulated {
            done: Arc::new(AtomicU64::new(0)),
            receipt: Arc::new(Mutex::new(histogram())),
            stop: Arc::new(AtomicBool::new(false)),
            handles: Vec::new(),
        };
        let mut sim = sim;
        for w in 0..workers {
            let id = format!("{skill}-{}-{w}", door.name());
            let secret = ep.register_with(&id, slots, &[skill]).await;
            let handle = match (door, reports) {
                (Door::Http, Reports::PerTask) => {
                    tokio::spawn(http_worker(ep.clone(), id, secret, sent.clone(), sim.shared()))
                }
                (Door::Http, Reports::Batched) => {
                    tokio::spawn(http_worker_batched(ep.clone(), id, secret, sent.clone(), sim.shared()))
                }
                (Door::Nats, _) => {
                    let worker = nats_worker(ep.clone(), id, secret, reports, sent.clone(), sim.shared()).await;
                    tokio::spawn(worker)
                }
            };
            sim.handles.push(handle);
        }
        sim
    }

    fn shared(&self) -> (Arc<AtomicU64>, Arc<Mutex<Histogram<u64>>>, Arc<AtomicBool>) {
        (self.done.clone(), self.receipt.clone(), self.stop.clone())
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

/// Records an assignment's submit→receipt latency.
fn received(a: &Value, sent: &Mutex<HashMap<u64, Instant>>, receipt: &Mutex<Histogram<u64>>) {
    if let Some(t0) = a["parameters"]["i"].as_u64().and_then(|i| sent.lock().unwrap().get(&i).copied()) {
        receipt.lock().unwrap().record(t0.elapsed().as_micros() as u64).unwrap();
    }
}

/// One simulated worker on the HTTP long poll.
async fn http_worker(
    ep: Endpoint,
    id: String,
    secret: String,
    sent: Arc<Mutex<HashMap<u64, Instant>>>,
    (done, receipt, stop): (Arc<AtomicU64>, Arc<Mutex<Histogram<u64>>>, Arc<AtomicBool>),
) {
    let held: Arc<Mutex<Vec<Value>>> = Arc::new(Mutex::new(Vec::new()));
    while !stop.load(Ordering::Relaxed) {
        let body = json!({"wait_secs": 1, "held": held.lock().unwrap().clone()});
        let url = format!("{}/api/v1/nodes/{id}/tasks/poll", ep.url);
        let Ok(r) = ep.http.post(url).bearer_auth(&secret).json(&body).send().await else { continue };
        let poll: Value = r.json().await.unwrap_or(Value::Null);
        for a in poll["assignments"].as_array().cloned().unwrap_or_default() {
            received(&a, &sent, &receipt);
            let task = a["task_id"].as_str().unwrap().to_string();
            let attempt = a["attempt"].as_u64().unwrap();
            held.lock().unwrap().push(json!({"task_id": task, "attempt": attempt}));
            let (ep, secret, done, held, id) = (ep.clone(), secret.clone(), done.clone(), held.clone(), id.clone());
            tokio::spawn(async move {
                let base = format!("{}/api/v1/nodes/{id}/tasks/{task}", ep.url);
                ep.http
                    .post(format!("{base}/start"))
                    .bearer_auth(&secret)
                    .json(&json!({"attempt": attempt}))
                    .send()
                    .await
                    .unwrap();
                let result = completed(attempt);
                let r = ep.http.post(format!("{base}/result")).bearer_auth(&secret).json(&result).send().await.unwrap();
                assert!(r.status().is_success(), "{}", r.text().await.unwrap());
                held.lock().unwrap().retain(|h| h["task_id"] != task.as_str());
                done.fetch_add(1, Ordering::Relaxed);
            });
        }
    }
}

/// The body of a completed attempt's result.
fn completed(attempt: u64) -> Value {
    json!({"attempt": attempt, "outcome": "completed", "result": {"ok": true}, "duration_ms": 1})
}

/// Sends a batch of reports as node `id`; panics unless every report was taken.
async fn send_reports(ep: &Endpoint, id: &str, secret: &str, body: &Value) -> Value {
    let url = format!("{}/api/v1/nodes/{id}/tasks/reports", ep.url);
    let r = ep.http.post(url).bearer_auth(secret).json(body).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let answer: Value = r.json().await.unwrap();
    for one in answer["starts"].as_array().unwrap().iter().chain(answer["results"].as_array().unwrap()) {
        assert_eq!(one["success"], true, "{one}");
    }
    answer
}

/// One simulated worker on the HTTP long poll that batches its reports: the starts of what
/// it has in hand in one request, then their results in one that also asks for the next
/// assignments (so a busy worker polls only when that answer brings none).
async fn http_worker_batched(
    ep: Endpoint,
    id: String,
    secret: String,
    sent: Arc<Mutex<HashMap<u64, Instant>>>,
    (done, receipt, stop): (Arc<AtomicU64>, Arc<Mutex<Histogram<u64>>>, Arc<AtomicBool>),
) {
    let mut in_hand: Vec<Value> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        if in_hand.is_empty() {
            let url = format!("{}/api/v1/nodes/{id}/tasks/poll", ep.url);
            let body = json!({"wait_secs": 1, "held": []});
            let Ok(r) = ep.http.post(url).bearer_auth(&secret).json(&body).send().await else { continue };
            let poll: Value = r.json().await.unwrap_or(Value::Null);
            in_hand = poll["assignments"].as_array().cloned().unwrap_or_default();
            continue;
        }
        let refs: Vec<Value> = in_hand
            .iter()
            .map(|a| {
                received(a, &sent, &receipt);
                json!({"task_id": a["task_id"], "attempt": a["attempt"]})
            })
            .collect();
        send_reports(&ep, &id, &secret, &json!({"starts": refs})).await;
        let results: Vec<Value> = refs
            .iter()
            .map(|r| json!({"task_id": r["task_id"], "report": completed(r["attempt"].as_u64().unwrap())}))
            .collect();
        let answer = send_reports(&ep, &id, &secret, &json!({"results": results, "held": []})).await;
        done.fetch_add(refs.len() as u64, Ordering::Relaxed);
        in_hand = answer["poll"]["assignments"].as_array().cloned().unwrap_or_default();
    }
}

/// One simulated worker on NATS: heartbeats with `nats: true` and its key until the coordinator says
/// `dispatch: nats` (the answer to return), then pulls from its consumer. Heartbeats carry
/// no `held_tasks`, so the coordinator does not reconcile (as the HTTP ones never heartbeat).
async fn nats_worker(
    ep: Endpoint,
    id: String,
    secret: String,
    reports: Reports,
    sent: Arc<Mutex<HashMap<u64, Instant>>>,
    (done, receipt, stop): (Arc<AtomicU64>, Arc<Mutex<Histogram<u64>>>, Arc<AtomicBool>),
) -> impl std::future::Future<Output = ()> {
    use async_nats::jetstream::{self, consumer::PullConsumer, message::PublishMessage};
    use openclaw::transport::nats::{Delivery, Names, NodeKey};
    let beat = {
        let (ep, id, secret) = (ep.clone(), id.clone(), secret.clone());
        move || {
            let (ep, id, secret) = (ep.clone(), id.clone(), secret.clone());
            async move {
                let url = format!("{}/api/v1/nodes/{id}/heartbeat", ep.url);
                let key = NodeKey::derive(&secret).to_base64();
                let body = json!({"nats": true, "nats_key": key});
                let r = ep.http.post(url).bearer_auth(&secret).json(&body).send().await.unwrap();
                r.json::<Value>().await.unwrap()["dispatch"] == "nats"
            }
        }
    };
    while !beat().await {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let nats_url = ep.nats_url.clone().expect("a coordinator configured for NATS");
    let client = async_nats::connect(nats_url).await.unwrap();
    let js = jetstream::new(client);
    let names = Names::new("cluster");
    let consumer: PullConsumer =
        js.get_consumer_from_stream(names.node_consumer(&id), names.tasks_stream()).await.unwrap();
    let key = NodeKey::derive(&secret);
    async move {
        let mut messages = consumer.stream().max_messages_per_batch(64).messages().await.unwrap();
        let mut last_beat = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            if last_beat.elapsed() > Duration::from_secs(1) {
                beat().await;
                last_beat = Instant::now();
            }
            let Ok(Some(Ok(first))) = tokio::time::timeout(Duration::from_millis(200), messages.next()).await else {
                continue;
            };
            // Everything the consumer has in hand now, as one batch.
            let mut batch = Vec::new();
            let mut next = Some(first);
            while let Some(m) = next.take() {
                match serde_json::from_slice::<Delivery>(&m.payload) {
                    Ok(Delivery::Assignment(a)) => {
                        received(&json!({"parameters": a.parameters}), &sent, &receipt);
                        batch.push((a, m));
                    }
                    _ => {
                        let _ = m.ack().await;
                    }
                }
                if batch.len() < 64
                    && let Some(Some(Ok(m))) = futures_util::FutureExt::now_or_never(messages.next())
                {
                    next = Some(m);
                }
            }
            if batch.is_empty() {
                continue;
            }
            let (ep, secret, done, id, js, key, names) =
                (ep.clone(), secret.clone(), done.clone(), id.clone(), js.clone(), key.clone(), names.clone());
            tokio::spawn(async move {
                match reports {
                    Reports::PerTask => {
                        futures_util::future::join_all(batch.iter().map(|(a, _)| async {
                            let base = format!("{}/api/v1/nodes/{id}/tasks/{}", ep.url, a.task_id);
                            let body = json!({"attempt": a.attempt});
                            let r = ep.http.post(format!("{base}/start")).bearer_auth(&secret).json(&body).send().await;
                            let r = r.unwrap();
                            assert!(r.status().is_success(), "{}", r.text().await.unwrap());
                        }))
                        .await;
                    }
                    Reports::Batched => {
                        let starts: Vec<Value> =
                            batch.iter().map(|(a, _)| json!({"task_id": a.task_id, "attempt": a.attempt})).collect();
                        send_reports(&ep, &id, &secret, &json!({"starts": starts})).await;
                    }
                }
                let published = batch.iter().map(|(a, m)| async {
                    let _ = m.ack().await;
                    let subject = names.result(&a.task_id);
                    let payload = completed(a.attempt.into()).to_string().into_bytes();
                    let msg_id = key.result_id(&a.task_id, a.attempt);
                    let sig = key.sign(&subject, &msg_id, &payload);
                    let message = PublishMessage::build()
                        .message_id(&msg_id)
                        .header("Openclaw-Node", id.as_str())
                        .header("Openclaw-Sig", sig.as_str())
                        .payload(payload.into());
                    js.send_publish(subject, message).await.unwrap().await.unwrap();
                });
                futures_util::future::join_all(published).await;
                done.fetch_add(batch.len() as u64, Ordering::Relaxed);
            });
        }
    }
}

/// Submits `total` tasks needing `skill`, 32 in flight, until `sim` completed them all:
/// tasks per second, submit→complete, and the submit latencies.
async fn saturate(
    ep: &Endpoint,
    sim: &Simulated,
    sent: &Arc<Mutex<HashMap<u64, Instant>>>,
    total: u64,
    skill: &str,
) -> (f64, Histogram<u64>) {
    let started = Instant::now();
    let in_flight = Arc::new(tokio::sync::Semaphore::new(32));
    let submit_latency = Arc::new(Mutex::new(histogram()));
    let mut submits = Vec::new();
    for i in 0..total {
        let permit = in_flight.clone().acquire_owned().await.unwrap();
        let (ep, sent, lat, skill) = (ep.clone(), sent.clone(), submit_latency.clone(), skill.to_string());
        submits.push(tokio::spawn(async move {
            let d = ep.submit(i, &sent, &skill).await;
            lat.lock().unwrap().record(d.as_micros() as u64).unwrap();
            drop(permit);
        }));
    }
    for s in submits {
        s.await.unwrap();
    }
    sim.wait_for(total).await;
    let rate = total as f64 / started.elapsed().as_secs_f64();
    let latency = submit_latency.lock().unwrap().clone();
    (rate, latency)
}

/// One task needing `skill` every `gap` to idle workers, until `sim` completed them all.
async fn pace(
    ep: &Endpoint,
    sim: &Simulated,
    sent: &Arc<Mutex<HashMap<u64, Instant>>>,
    total: u64,
    gap: Duration,
    skill: &str,
) -> Histogram<u64> {
    tokio::time::sleep(Duration::from_millis(300)).await; // every simulated worker is waiting for work
    for i in 0..total {
        ep.submit(i, sent, skill).await;
        tokio::time::sleep(gap).await;
    }
    sim.wait_for(total).await;
    sim.receipt.lock().unwrap().clone()
}

/// The saturated load with each way of reporting, one after the other in this run, each
/// on a new coordinator: the per-task protocol of older workers, then batched reports.
async fn tasks_saturated(total: u64, workers: usize, slots: u32, storage: &dyn Fn() -> String) -> f64 {
    let mut rates = Vec::new();
    for reports in [Reports::PerTask, Reports::Batched] {
        let (_server, ep) = start_on(tempfile::tempdir().unwrap(), &storage(), "").await;
        let sent = Arc::new(Mutex::new(HashMap::new()));
        let sim = Simulated::start(&ep, reports, workers, slots, sent.clone()).await;
        let started = Instant::now();
        let (rate, submit_latency) = saturate(&ep, &sim, &sent, total, "work").await;
        let elapsed = started.elapsed().as_secs_f64();
        sim.stop().await;
        println!(
            "  saturated, {}: {total} tasks, {workers} simulated workers x {slots} slots: {rate:.0} tasks/s submit→complete ({elapsed:.2} s)",
            reports.name()
        );
        println!("    {}", report("submit answered (201, committed)", &submit_latency));
        rates.push(rate);
    }
    println!("  ratio of throughput, batched / per-task reports: {:.2}", rates[1] / rates[0]);
    rates[1]
}

/// The peer of the saturated load (issue 23 item 5): Celery + Redis, durable as we are
/// (`benches/peers/celery_tasks.py`), on this machine in this run; its rate in tasks/s, or
/// `None` (said why) when Celery or Redis is not installed.
fn celery_peer(total: u64, workers: usize, slots: u32) -> Option<(String, f64)> {
    let python = std::env::var("OPENCLAW_PEER_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/peers/celery_tasks.py");
    let has = |cmd: &mut std::process::Command| cmd.output().is_ok_and(|o| o.status.success());
    if !has(std::process::Command::new(&python).args(["-c", "import celery, redis"]))
        || !has(std::process::Command::new("redis-server").arg("--version"))
    {
        println!(
            "  (peer not run: it needs redis-server and Celery: `apt-get install redis-server`, `pip install 'celery[redis]'`, OPENCLAW_PEER_PYTHON=that python)"
        );
        return None;
    }
    let args = [total.to_string(), workers.to_string(), slots.to_string()];
    let out = std::process::Command::new(&python).arg(script).args(&args).output().expect("run the Celery peer");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "the Celery peer failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    // `celery <version> tasks/s <rate> elapsed <seconds>`
    let words: Vec<&str> = text.split_whitespace().collect();
    Some((words[1].to_string(), words[3].parse().expect("the peer's rate")))
}

/// Paced dispatch, optionally with `backlog` pending tasks that no node can run in front of
/// it (they must not slow placement down: the queue looks at one head per skill set).
async fn tasks_paced(total: u64, gap: Duration, backlog: u64, storage: &str) -> f64 {
    let (_server, ep) = start_on(tempfile::tempdir().unwrap(), storage, "").await;
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
    let sim = Simulated::start(&ep, Reports::Batched, 4, 8, sent.clone()).await;
    let receipt = pace(&ep, &sim, &sent, total, gap, "work").await;
    sim.stop().await;
    println!(
        "  paced ({total} tasks, one every {gap:?}, idle workers, {backlog} unplaceable critical tasks queued): {}",
        report("submit→worker receipt", &receipt)
    );
    receipt.value_at_quantile(0.99) as f64
}

/// Issue 22: what 3 cluster secrets add to a task's way to its worker. One simulated HTTP
/// worker takes each assignment and reports its start at once; the time from the submit
/// to the start answer (which carries the values) is recorded per kind, tasks alternating.
async fn secrets_cost(total: u64, gap: Duration) {
    let (_server, ep) = start().await;
    let names = ["BENCH_SECRET_A", "BENCH_SECRET_B", "BENCH_SECRET_C"];
    for name in names {
        let r = ep
            .http
            .put(format!("{}/api/v1/secrets/{name}", ep.url))
            .bearer_auth(&ep.admin)
            .json(&json!({"value": format!("{name}-value-0123456789abcdef0123456789abcdef")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
    let id = "secrets-0";
    let secret = ep.register_with(id, 64, &["work"]).await;
    let sent: Arc<Mutex<HashMap<u64, Instant>>> = Arc::new(Mutex::new(HashMap::new()));
    let answered = Arc::new([Mutex::new(histogram()), Mutex::new(histogram())]);
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let (ep, sent, answered, done, stop) = (ep.clone(), sent.clone(), answered.clone(), done.clone(), stop.clone());
        tokio::spawn(async move {
            let held: Arc<Mutex<Vec<Value>>> = Arc::new(Mutex::new(Vec::new()));
            while !stop.load(Ordering::Relaxed) {
                let body = json!({"wait_secs": 1, "held": held.lock().unwrap().clone()});
                let url = format!("{}/api/v1/nodes/{id}/tasks/poll", ep.url);
                let Ok(r) = ep.http.post(url).bearer_auth(&secret).json(&body).send().await else { continue };
                let poll: Value = r.json().await.unwrap_or(Value::Null);
                for a in poll["assignments"].as_array().cloned().unwrap_or_default() {
                    let task = a["task_id"].as_str().unwrap().to_string();
                    let attempt = a["attempt"].as_u64().unwrap();
                    held.lock().unwrap().push(json!({"task_id": task, "attempt": attempt}));
                    let (ep, secret, sent, answered, done, held) =
                        (ep.clone(), secret.clone(), sent.clone(), answered.clone(), done.clone(), held.clone());
                    tokio::spawn(async move {
                        let i = a["parameters"]["i"].as_u64().unwrap();
                        let base = format!("{}/api/v1/nodes/{id}/tasks/{task}", ep.url);
                        let r = ep
                            .http
                            .post(format!("{base}/start"))
                            .bearer_auth(&secret)
                            .json(&json!({"attempt": attempt}))
                            .send()
                            .await
                            .unwrap();
                        let started: Value = r.json().await.unwrap();
                        let t0 = sent.lock().unwrap().get(&i).copied().unwrap();
                        let kind = (i % 2) as usize;
                        let values = started["secrets"].as_object().map_or(0, |m| m.len());
                        assert_eq!(values, if kind == 1 { 3 } else { 0 }, "{started}");
                        answered[kind].lock().unwrap().record(t0.elapsed().as_micros() as u64).unwrap();
                        let result = json!({"attempt": attempt, "outcome": "completed", "duration_ms": 1});
                        ep.http.post(format!("{base}/result")).bearer_auth(&secret).json(&result).send().await.unwrap();
                        held.lock().unwrap().retain(|h| h["task_id"] != task.as_str());
                        done.fetch_add(1, Ordering::Relaxed);
                    });
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await; // the worker is waiting for work
    for i in 0..total {
        let secrets: &[&str] = if i % 2 == 1 { &names } else { &[] };
        sent.lock().unwrap().insert(i, Instant::now());
        let body =
            json!({"name": format!("t{i}"), "required_skills": ["work"], "parameters": {"i": i}, "secrets": secrets});
        let r =
            ep.http.post(format!("{}/api/v1/tasks", ep.url)).bearer_auth(&ep.admin).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        tokio::time::sleep(gap).await;
    }
    while done.load(Ordering::Relaxed) < total {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let _ = worker.await;
    let (none, three) = (answered[0].lock().unwrap().clone(), answered[1].lock().unwrap().clone());
    println!("  no secrets: {}", report("submit→start answer", &none));
    println!("  3 secrets:  {}", report("submit→start answer", &three));
    println!(
        "  ratio 3 secrets / none: p50 {:.2}, p99 {:.2}",
        three.value_at_quantile(0.5) as f64 / none.value_at_quantile(0.5) as f64,
        three.value_at_quantile(0.99) as f64 / none.value_at_quantile(0.99) as f64
    );
}

/// Issue 12: the same loads over HTTP and over NATS, one coordinator, one run. The
/// coordinator publishes its event feed to NATS in both phases.
async fn transports(total: u64, paced: u64, gap: Duration) {
    if !nats_server::installed() {
        println!("  skipped: nats-server is not installed (apt-get install nats-server)");
        return;
    }
    let server = nats_server::NatsServer::start_on(-1, None);
    let extra = format!("communication:\n  nats_url: {}\n", server.url());
    let (_coordinator, mut ep) = start_with(tempfile::tempdir().unwrap(), &extra).await;
    ep.nats_url = Some(server.url());
    let mut rows = Vec::new();
    for door in [Door::Http, Door::Nats] {
        let skill = format!("work-{}", door.name());
        let sent = Arc::new(Mutex::new(HashMap::new()));
        let sim = Simulated::start_as(&ep, door, Reports::Batched, &format!("{skill}-s"), 8, 16, sent.clone()).await;
        let (rate, _) = saturate(&ep, &sim, &sent, total, &format!("{skill}-s")).await;
        sim.stop().await;
        let sent = Arc::new(Mutex::new(HashMap::new()));
        let sim = Simulated::start_as(&ep, door, Reports::Batched, &format!("{skill}-p"), 4, 8, sent.clone()).await;
        let receipt = pace(&ep, &sim, &sent, paced, gap, &format!("{skill}-p")).await;
        sim.stop().await;
        println!(
            "  {}: saturated {total} tasks, 8 simulated workers x 16 slots: {rate:.0} tasks/s submit→complete; paced {paced} (one every {gap:?}): {}",
            door.name(),
            report("submit→worker receipt", &receipt)
        );
        rows.push((rate, receipt));
    }
    let q = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64;
    println!(
        "  nats / http: throughput {:.2}, receipt p50 {:.2}, p99 {:.2}",
        rows[1].0 / rows[0].0,
        q(&rows[1].1, 0.5) / q(&rows[0].1, 0.5),
        q(&rows[1].1, 0.99) / q(&rows[0].1, 0.99)
    );
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
    // The listing (issue 23: p50 <= 10 ms for every node), and one page of 100.
    for (what, query) in [("every node", ""), ("a page of 100", "?limit=100&after=early-01000")] {
        let mut h = histogram();
        let mut size = 0;
        for _ in 0..50 {
            let t = Instant::now();
            let r = ep.http.get(format!("{}/api/v1/nodes{query}", ep.url)).bearer_auth(&ep.admin).send().await.unwrap();
            assert!(r.status().is_success());
            size = r.bytes().await.unwrap().len();
            h.record(t.elapsed().as_micros() as u64).unwrap();
        }
        println!("  GET /api/v1/nodes, {what} of {} ({size} bytes): {}", nodes + 10, report("latency", &h));
    }
}

/// Issue 20: a fan-out to `nodes` simulated nodes: submit → 201 (the group and its children
/// committed, each child placed in the same transition), and submit → every child read back
/// scheduled on the node it names; beside it, `nodes` single tasks submitted 64 at a time.
async fn fan_out(nodes: u64, runs: u32) {
    let (_server, ep) = start().await;
    let in_flight = Arc::new(tokio::sync::Semaphore::new(32));
    let mut handles = Vec::new();
    for i in 0..nodes {
        let permit = in_flight.clone().acquire_owned().await.unwrap();
        let ep = ep.clone();
        handles.push(tokio::spawn(async move {
            ep.register_with(&format!("n{i:05}"), runs + 2, &["disk"]).await;
            drop(permit);
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let (mut answered, mut placed) = (Vec::new(), Vec::new());
    for run in 0..runs {
        let body = json!({"name": format!("fan{run}"), "required_skills": ["disk"], "target": {"each_node": true}});
        let t0 = Instant::now();
        let r =
            ep.http.post(format!("{}/api/v1/tasks", ep.url)).bearer_auth(&ep.admin).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 201);
        let group: Value = r.json().await.unwrap();
        answered.push(t0.elapsed().as_secs_f64() * 1000.0);
        let id = group["task_id"].as_str().unwrap().to_string();
        loop {
            let g = ep.get_json(&format!("/api/v1/tasks/{id}")).await;
            let children = g["children"].as_array().cloned().unwrap_or_default();
            let all = children.len() as u64 == nodes
                && children.iter().all(|c| c["status"] == "scheduled" && c["assigned_node"] == c["step"]);
            if all {
                break;
            }
            assert!(t0.elapsed() < Duration::from_secs(60), "children never all placed: {g}");
        }
        placed.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let t0 = Instant::now();
    submit_many(&ep, nodes, |_| "disk".into()).await;
    let singles = t0.elapsed().as_secs_f64() * 1000.0;
    let (answered, placed) = (median(&mut answered), median(&mut placed));
    println!(
        "  fan-out to {nodes} nodes: submit → 201 {answered:.1} ms, submit → all {nodes} children read back placed {placed:.1} ms (median of {runs})"
    );
    println!(
        "  the same {nodes} tasks submitted one by one (64 in flight): {singles:.1} ms; ratio fan-out / singles {:.2}",
        placed / singles
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

/// Creates `n` schedules from `body(i)`, 32 at a time.
async fn create_schedules(ep: &Endpoint, n: u64, body: impl Fn(u64) -> Value) {
    let in_flight = Arc::new(tokio::sync::Semaphore::new(32));
    let mut handles = Vec::new();
    for i in 0..n {
        let permit = in_flight.clone().acquire_owned().await.unwrap();
        let (ep, body) = (ep.clone(), body(i));
        handles.push(tokio::spawn(async move {
            let r = ep
                .http
                .post(format!("{}/api/v1/schedules", ep.url))
                .bearer_auth(&ep.admin)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
            drop(permit);
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
}

/// Issue 20: coordinator CPU with 10,000 idle schedules, and firing lateness with 10,000
/// schedules due the same minute.
async fn schedules(n: u64, idle_secs: u64) {
    let (server, ep) = start().await;
    let idle = |secs| async move { tokio::time::sleep(Duration::from_secs(secs)).await };
    let c0 = server.cpu_seconds();
    idle(idle_secs).await;
    let empty = (server.cpu_seconds() - c0) / idle_secs as f64 * 100.0;
    let task = json!({"name": "s", "required_skills": ["nobody-has-it"]});
    create_schedules(&ep, n, |i| json!({"name": format!("idle-{i}"), "every": "1h", "task": task})).await;
    let c0 = server.cpu_seconds();
    idle(idle_secs).await;
    let loaded = (server.cpu_seconds() - c0) / idle_secs as f64 * 100.0;
    println!(
        "  idle coordinator CPU: {empty:.2}% with no schedule, {loaded:.2}% with {n} idle schedules ({idle_secs} s each); RSS {:.0} MiB",
        server.rss_mib()
    );
    // All due at the same minute: the first whole minute at least 90 s away (creating them
    // takes a while on a shared machine).
    let now = openclaw::util::now_ms();
    let due_ms = (now + 90_000) / 60_000 * 60_000 + 60_000;
    let due_s = due_ms / 1000;
    let (minute, hour) = ((due_s / 60) % 60, (due_s / 3600) % 24);
    let cron = format!("{minute} {hour} * * *");
    let c0 = Instant::now();
    create_schedules(&ep, n, |i| {
        json!({"name": format!("due-{i}"), "cron": cron, "tz": "UTC", "exact": true, "overlap": "allow", "task": task})
    })
    .await;
    println!("  created {n} cron schedules in {:.1} s", c0.elapsed().as_secs_f64());
    let wait = due_ms - openclaw::util::now_ms();
    assert!(wait > 0, "creating the schedules took past their due time; raise the margin");
    tokio::time::sleep(Duration::from_millis(wait as u64 + 5_000)).await;
    let mut lateness = histogram();
    let mut fired = 0;
    loop {
        let list = ep.get_json("/api/v1/schedules").await;
        let runs: Vec<&Value> = list["schedules"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["name"].as_str().unwrap().starts_with("due-"))
            .filter_map(|s| s.get("last_run"))
            .collect();
        if runs.len() as u64 == n {
            for r in runs {
                let at = |k: &str| openclaw::util::parse_rfc3339(r[k].as_str().unwrap()).unwrap();
                lateness.record(((at("fired_at") - at("due_at")).max(0) as u64 * 1000).max(1)).unwrap();
                fired += 1;
            }
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    println!("  {}", report(&format!("firing lateness of {fired} schedules due the same minute"), &lateness));
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
        "  coordinator up in {:.2} s; RSS {:.1} MiB, peak {:.1} MiB (goal <= 100)",
        started.elapsed().as_secs_f64(),
        server.rss_mib(),
        server.peak_rss_mib()
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
    println!(
        "  RSS after the lists: {:.1} MiB; peak so far {:.1} MiB (goal <= 100)",
        server.rss_mib(),
        server.peak_rss_mib()
    );
    register_many(&ep, 10_000, "node", 0).await;
    println!(
        "  RSS with 10,000 nodes registered too: {:.1} MiB; peak {:.1} MiB",
        server.rss_mib(),
        server.peak_rss_mib()
    );
}

/// What the simulated lanes and watchers do in the current phase.
#[derive(Default)]
struct Phase {
    /// Tasks send output batches while they run.
    output: AtomicBool,
    stop: AtomicBool,
    /// Counters for the report.
    tasks_done: AtomicU64,
    output_batches: AtomicU64,
}

/// One simulated worker with one slot and its own skill, looping: submit a task for its
/// skill, take it (long poll), start it, run it for `run_for` (sending output batches when
/// the phase says so), report it completed.
async fn lane(ep: Endpoint, i: usize, run_for: Duration, phase: Arc<Phase>) {
    let (node, skill) = (format!("lane-{i:03}"), format!("skill-{i:03}"));
    let secret = ep.register_with(&node, 1, &[skill.as_str()]).await;
    let base = format!("{}/api/v1/nodes/{node}", ep.url);
    let text = format!("lane {i:03} progress line {}", "·".repeat(50));
    while !phase.stop.load(Ordering::Relaxed) {
        let body = json!({"name": format!("{node}-task"), "required_skills": [skill]});
        let r =
            ep.http.post(format!("{}/api/v1/tasks", ep.url)).bearer_auth(&ep.admin).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 201);
        let task = r.json::<Value>().await.unwrap()["task_id"].as_str().unwrap().to_string();
        let attempt = loop {
            let r = ep
                .http
                .post(format!("{base}/tasks/poll"))
                .bearer_auth(&secret)
                .json(&json!({"wait_secs": 5}))
                .send()
                .await
                .unwrap();
            let poll: Value = r.json().await.unwrap();
            if let Some(a) =
                poll["assignments"].as_array().and_then(|a| a.iter().find(|a| a["task_id"] == task.as_str()))
            {
                break a["attempt"].as_u64().unwrap();
            }
        };
        let task_url = format!("{base}/tasks/{task}");
        ep.http
            .post(format!("{task_url}/start"))
            .bearer_auth(&secret)
            .json(&json!({"attempt": attempt}))
            .send()
            .await
            .unwrap();
        let until = Instant::now() + run_for;
        while Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(250)).await;
            if phase.output.load(Ordering::Relaxed) {
                let at = "2026-02-16T16:00:00.000Z";
                let lines: Vec<Value> = (0..5).map(|_| json!({"stream": "stdout", "text": text, "at": at})).collect();
                let r = ep
                    .http
                    .post(format!("{task_url}/output"))
                    .bearer_auth(&secret)
                    .json(&json!({"attempt": attempt, "lines": lines}))
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success(), "{}", r.text().await.unwrap());
                phase.output_batches.fetch_add(1, Ordering::Relaxed);
            }
        }
        let result = completed(attempt);
        let r = ep.http.post(format!("{task_url}/result")).bearer_auth(&secret).json(&result).send().await.unwrap();
        assert!(r.status().is_success());
        phase.tasks_done.fetch_add(1, Ordering::Relaxed);
    }
}

/// An event-stream watcher: counts the events it gets until `stop`.
async fn watcher(ep: Endpoint, stop: Arc<AtomicBool>) -> (u64, u64) {
    let mut r = ep.http.get(format!("{}/api/v1/events", ep.url)).bearer_auth(&ep.admin).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let mut parser = openclaw::eventsource::Parser::default();
    let (mut events, mut errors) = (0, 0);
    while !stop.load(Ordering::Relaxed) {
        let Ok(Ok(Some(chunk))) = tokio::time::timeout(Duration::from_millis(200), r.chunk()).await else { continue };
        for m in parser.feed(&chunk) {
            if m.event == "error" {
                errors += 1;
            } else {
                events += 1;
            }
        }
    }
    (events, errors)
}

/// Issue 10: the coordinator's extra CPU for streaming output and event-stream watchers,
/// against the same task load without them.
async fn streams(lanes: usize, watchers: usize, seconds: u64) {
    let (server, ep) = start().await;
    let phase = Arc::new(Phase::default());
    let run_for = Duration::from_secs(2);
    let mut handles = Vec::new();
    for i in 0..lanes {
        handles.push(tokio::spawn(lane(ep.clone(), i, run_for, phase.clone())));
    }
    tokio::time::sleep(Duration::from_secs(3)).await; // every lane is registered and busy
    let mut rows = Vec::new();
    for (name, output, watching) in [
        ("tasks only", false, false),
        (&*format!("+ {watchers} watchers"), false, true),
        ("+ output", true, false),
        (&*format!("+ output + {watchers} watchers"), true, true),
        ("tasks only, again", false, false),
    ] {
        phase.output.store(output, Ordering::Relaxed);
        let stop = Arc::new(AtomicBool::new(false));
        let watching: Vec<_> =
            (0..if watching { watchers } else { 0 }).map(|_| tokio::spawn(watcher(ep.clone(), stop.clone()))).collect();
        tokio::time::sleep(Duration::from_millis(500)).await; // settle into the phase
        let (c0, t0) = (server.cpu_seconds(), Instant::now());
        let (done0, batches0) =
            (phase.tasks_done.load(Ordering::Relaxed), phase.output_batches.load(Ordering::Relaxed));
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        let wall = t0.elapsed().as_secs_f64();
        let cpu = (server.cpu_seconds() - c0) / wall * 100.0;
        let tasks = (phase.tasks_done.load(Ordering::Relaxed) - done0) as f64 / wall;
        let batches = (phase.output_batches.load(Ordering::Relaxed) - batches0) as f64 / wall;
        stop.store(true, Ordering::Relaxed);
        let mut got = (0, 0);
        for w in watching {
            let (events, errors) = w.await.unwrap();
            got = (got.0 + events, got.1 + errors);
        }
        println!(
            "  {name:<28} coordinator CPU {cpu:5.1}% of a core; {tasks:.0} tasks/s, {batches:.0} output batches/s ({:.0} lines/s); watchers got {} events, {} errors",
            batches * 5.0,
            got.0,
            got.1
        );
        rows.push(cpu);
    }
    phase.stop.store(true, Ordering::Relaxed);
    for h in handles {
        let _ = h.await;
    }
    let base = (rows[0] + rows[4]) / 2.0;
    println!(
        "  extra CPU over tasks only (mean of the two): watchers {:+.1}, output {:+.1}, both {:+.1} points of a core",
        rows[1] - base,
        rows[2] - base,
        rows[3] - base
    );
}

/// One MCP client session, connected the way real clients connect.
async fn mcp_client<T, E, A>(transport: T) -> rmcp::service::RunningService<rmcp::RoleClient, ()>
where
    T: rmcp::transport::IntoTransport<rmcp::RoleClient, E, A>,
    E: std::error::Error + Send + Sync + 'static,
{
    use rmcp::ServiceExt;
    ().serve(transport).await.expect("MCP handshake")
}

/// One `submit_task` that waits for the end; panics unless the task completed.
async fn mcp_submit(client: &rmcp::service::RunningService<rmcp::RoleClient, ()>) {
    let args = json!({"skill": "noop", "wait_seconds": 50});
    let call = rmcp::model::CallToolRequestParams::new("submit_task").with_arguments(args.as_object().unwrap().clone());
    let r = client.call_tool(call).await.expect("tools/call");
    let status = r.structured_content.as_ref().and_then(|v| v["status"].as_str().map(str::to_string));
    assert_eq!(status.as_deref(), Some("completed"), "{r:?}");
}

/// The same through the plain API: submit, then wait on the server.
async fn api_submit(ep: &Endpoint) {
    let body = json!({"name": "noop", "required_skills": ["noop"]});
    let r = ep.http.post(format!("{}/api/v1/tasks", ep.url)).bearer_auth(&ep.admin).json(&body).send().await.unwrap();
    let task: Value = r.json().await.unwrap();
    let id = task["task_id"].as_str().unwrap().to_string();
    let mut status = task["status"].as_str().unwrap_or("").to_string();
    while !["completed", "failed", "cancelled", "timeout"].contains(&status.as_str()) {
        let url = format!("{}/api/v1/tasks/{id}/wait?timeout=30", ep.url);
        let t: Value = ep.http.get(url).bearer_auth(&ep.admin).send().await.unwrap().json().await.unwrap();
        status = t["status"].as_str().unwrap_or("").to_string();
    }
    assert_eq!(status, "completed");
}

/// Submit-and-wait of a no-op exec task: the API, `/mcp`, and `openclaw mcp`, interleaved.
async fn mcp_overhead(rounds: u64) {
    let dir = tempfile::tempdir().unwrap();
    let skills = dir.path().join("skills/noop");
    std::fs::create_dir_all(&skills).unwrap();
    std::fs::write(
        skills.join("SKILL.md"),
        "---\nname: noop\ndescription: does nothing\nmetadata:\n  cluster:\n    run: [sh, -c, \"exec cat >/dev/null\"]\n---\n",
    )
    .unwrap();
    let config = dir.path().join("config.yaml").display().to_string();
    let skills_dir = dir.path().join("skills").display().to_string();
    let (_server, ep) = start_in(dir).await;
    let mut worker = std::process::Command::new(BIN)
        .args(["-c", &config, "worker", "--node-id", "w1", "--skills-dir", &skills_dir])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    loop {
        let r = ep.http.get(format!("{}/api/v1/nodes/w1", ep.url)).bearer_auth(&ep.admin).send().await.unwrap();
        let node: Value = r.json().await.unwrap_or_default();
        if node["available_skills"] == json!(["noop"]) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let tasks_token = std::fs::read_to_string(std::path::Path::new(&config).with_file_name("tasks.token")).unwrap();
    let http_config = rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig::with_uri(format!(
        "{}/mcp",
        ep.url
    ))
    .auth_header(tasks_token.trim().to_string());
    let http = mcp_client(rmcp::transport::StreamableHttpClientTransport::from_config(http_config)).await;
    let mut command = tokio::process::Command::new(BIN);
    command.args(["-c", &config, "mcp"]);
    let stdio = mcp_client(rmcp::transport::TokioChildProcess::new(command).unwrap()).await;
    let (mut api, mut door, mut child) = (histogram(), histogram(), histogram());
    for i in 0..rounds + 20 {
        let t = Instant::now();
        api_submit(&ep).await;
        let a = t.elapsed();
        let t = Instant::now();
        mcp_submit(&http).await;
        let h = t.elapsed();
        let t = Instant::now();
        mcp_submit(&stdio).await;
        let s = t.elapsed();
        // The first rounds warm up connections, the worker and the caches.
        if i >= 20 {
            api.record(a.as_micros() as u64).unwrap();
            door.record(h.as_micros() as u64).unwrap();
            child.record(s.as_micros() as u64).unwrap();
        }
    }
    println!("  {}", report("API submit + wait        ", &api));
    println!("  {}", report("MCP submit_task, /mcp    ", &door));
    println!("  {}", report("MCP submit_task, stdio   ", &child));
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    for (name, h) in [("/mcp", &door), ("stdio", &child)] {
        println!(
            "  overhead of {name} over the API: p50 {:+.2} ms, p99 {:+.2} ms",
            ms(h, 0.5) - ms(&api, 0.5),
            ms(h, 0.99) - ms(&api, 0.99)
        );
    }
    let _ = http.cancel().await;
    let _ = stdio.cancel().await;
    let _ = worker.kill();
    let _ = worker.wait();
}

/// Median of `runs` timings of `f`, in milliseconds.
fn median_ms(runs: usize, mut f: impl FnMut()) -> f64 {
    let mut v: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Issue 21: what skill digests cost the worker and the wire.
fn skill_digests() {
    use openclaw::model::{HeartbeatRequest, SkillContent};
    use openclaw::worker::skills::digest::{CAPS, Digester, digest};
    // The wire: 50 skills with and without their source and digest.
    let names: Vec<String> = (0..50).map(|i| format!("skill-number-{i:02}")).collect();
    let plain = HeartbeatRequest { available_skills: Some(names.clone()), ..Default::default() };
    let digests = names
        .iter()
        .map(|n| {
            (
                n.clone(),
                SkillContent { source: "skills_dir".into(), digest: Some(format!("sha256:{}", "a".repeat(64))) },
            )
        })
        .collect();
    let with = HeartbeatRequest { skill_digests: Some(digests), ..plain.clone() };
    let (a, b) = (serde_json::to_vec(&plain).unwrap().len(), serde_json::to_vec(&with).unwrap().len());
    println!(
        "  heartbeat with the lists of 50 skills: {a} bytes, with digests {b} bytes: +{:.0} bytes per skill (only when the lists changed; a plain heartbeat carries neither)",
        (b - a) as f64 / 50.0
    );

    let dir = tempfile::tempdir().unwrap();
    let typical = dir.path().join("typical");
    std::fs::create_dir_all(typical.join("scripts")).unwrap();
    std::fs::write(typical.join("SKILL.md"), "x".repeat(4_000)).unwrap();
    for i in 0..4 {
        std::fs::write(typical.join(format!("scripts/s{i}.py")), "y".repeat(3_000)).unwrap();
    }
    let cold = median_ms(200, || {
        digest(&typical, CAPS).unwrap();
    });
    let mut digester = Digester::default();
    digester.digest(&typical).unwrap();
    let warm = median_ms(200, || {
        digester.digest(&typical).unwrap();
    });
    println!(
        "  typical skill (5 files, 16 KB): first digest {cold:.3} ms, rescan unchanged {warm:.3} ms (median of 200)"
    );

    let bundled = std::env::var_os("OPENCLAW_CI_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/openclaw-ci")
        })
        .join("openclaw-2026.9.6/node_modules/openclaw/skills");
    if let Ok(entries) = std::fs::read_dir(&bundled) {
        let folders: Vec<std::path::PathBuf> =
            entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_dir()).collect();
        let cold = median_ms(20, || {
            for f in &folders {
                let _ = digest(f, CAPS);
            }
        });
        let mut digester = Digester::default();
        for f in &folders {
            let _ = digester.digest(f);
        }
        let warm = median_ms(20, || {
            for f in &folders {
                let _ = digester.digest(f);
            }
        });
        println!(
            "  OpenClaw's {} bundled skills: all digested {cold:.2} ms, a rescan with nothing changed {warm:.2} ms (median of 20)",
            folders.len()
        );
    } else {
        println!("  OpenClaw's bundled skills: skipped ({} is missing; run .ci/tools)", bundled.display());
    }

    let big = dir.path().join("big");
    std::fs::create_dir_all(&big).unwrap();
    let mib = vec![b'z'; 1024 * 1024];
    for i in 0..63 {
        std::fs::write(big.join(format!("blob{i}")), &mib).unwrap();
    }
    let full = median_ms(5, || {
        digest(&big, CAPS).unwrap();
    });
    std::fs::write(big.join("blob63"), &mib).unwrap();
    std::fs::write(big.join("blob64"), &mib).unwrap();
    let over_bytes = median_ms(5, || {
        digest(&big, CAPS).unwrap_err();
    });
    let many = dir.path().join("many");
    std::fs::create_dir_all(&many).unwrap();
    for i in 0..(CAPS.max_files + 1000) {
        std::fs::write(many.join(format!("f{i}")), "x").unwrap();
    }
    let over_files = median_ms(5, || {
        digest(&many, CAPS).unwrap_err();
    });
    println!(
        "  63 MiB folder (under the cap): {full:.1} ms; 65 MiB (over the byte cap): refused in {over_bytes:.2} ms; {} files (over the file cap): refused in {over_files:.2} ms (median of 5)",
        CAPS.max_files + 1000
    );
}

/// One simulated worker: heartbeats every second; installs what an answer lists and it
/// lacks (fetch, verify, install to disk), then heartbeats at once advertising it. Returns
/// its fetch + verify + install time in microseconds.
async fn push_sim_worker(
    ep: Endpoint,
    id: String,
    secret: String,
    dir: std::path::PathBuf,
    stop: Arc<AtomicBool>,
) -> u64 {
    use openclaw::worker::skills::package;
    let mut installed: Option<(String, String)> = None;
    let mut report: Option<Value> = None;
    let mut took = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let mut body = json!({});
        if let Some((name, digest)) = &installed {
            body["available_skills"] = json!([name]);
            body["skill_digests"] = json!({ name: {"source": "skills_dir", "digest": digest} });
        }
        if let Some(r) = report.take() {
            body["skill_installs"] = json!([r]);
        }
        let answer: Value = match ep
            .http
            .post(format!("{}/api/v1/nodes/{id}/heartbeat", ep.url))
            .bearer_auth(&secret)
            .json(&body)
            .send()
            .await
        {
            Ok(r) => r.json().await.unwrap_or_default(),
            Err(_) => Value::Null,
        };
        let want = answer["skill_packages"][0].clone();
        let fresh = want["digest"].as_str().is_some_and(|d| installed.as_ref().is_none_or(|(_, have)| have != d));
        if fresh {
            let (name, digest) =
                (want["name"].as_str().unwrap().to_string(), want["digest"].as_str().unwrap().to_string());
            let t0 = Instant::now();
            let r = ep
                .http
                .get(format!("{}/api/v1/nodes/{id}/skills/packages/{digest}", ep.url))
                .bearer_auth(&secret)
                .send()
                .await
                .unwrap();
            let bytes = r.bytes().await.unwrap().to_vec();
            let (d, n, folder) = (digest.clone(), name.clone(), dir.clone());
            tokio::task::spawn_blocking(move || {
                let files = package::verify(&bytes, &d).unwrap();
                package::install(&folder, &n, &files, &d).unwrap();
            })
            .await
            .unwrap();
            took = t0.elapsed().as_micros() as u64;
            report = Some(json!({"name": name, "digest": digest, "outcome": "installed"}));
            installed = Some((name, digest));
            continue;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    took
}

async fn push_to_workers(n: usize) {
    use base64::Engine;
    let (_server, ep) = start().await;
    let dir = tempfile::tempdir().unwrap();
    let skill = dir.path().join("src/bigskill");
    std::fs::create_dir_all(&skill).unwrap();
    std::fs::write(skill.join("SKILL.md"), "---\nname: bigskill\ndescription: a 1 MiB skill\n---\n").unwrap();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for f in 0..16 {
        let data: Vec<u8> = (0..64 * 1024)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        std::fs::write(skill.join(format!("data-{f:02}.bin")), data).unwrap();
    }
    let packed = openclaw::worker::skills::package::pack(&skill).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mut sims = Vec::new();
    for i in 0..n {
        let id = format!("push-{i:03}");
        let body = json!({"node_id": id, "hostname": id, "platform": "linux", "arch": "x64", "available_skills": [], "max_concurrent_tasks": 1, "tags": ["bench"]});
        let r: Value = ep
            .http
            .post(format!("{}/api/v1/nodes/register", ep.url))
            .bearer_auth(&ep.join)
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let secret = r["node_secret"].as_str().unwrap().to_string();
        let folder = dir.path().join("nodes").join(&id);
        sims.push(tokio::spawn(push_sim_worker(ep.clone(), id, secret, folder, stop.clone())));
    }
    // Every simulated worker is heartbeating before the push.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let req = json!({
        "name": packed.name, "digest": packed.digest, "selector": {"tags": ["bench"]},
        "package": base64::engine::general_purpose::STANDARD.encode(&packed.tar),
    });
    let t0 = Instant::now();
    let r =
        ep.http.post(format!("{}/api/v1/skills/push", ep.url)).bearer_auth(&ep.admin).json(&req).send().await.unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
    let stored = t0.elapsed();
    let all = loop {
        let list = ep.get_json("/api/v1/skills/pushes").await;
        let nodes = list["pushes"][0]["nodes"].as_array().cloned().unwrap_or_default();
        if nodes.len() == n && nodes.iter().all(|x| x["state"] == "installed") {
            break t0.elapsed();
        }
        assert!(t0.elapsed() < Duration::from_secs(300), "not every node installed it within 300 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    stop.store(true, Ordering::Relaxed);
    let mut per_node = histogram();
    for s in sims {
        per_node.record(s.await.unwrap().max(1)).unwrap();
    }
    println!("  package: {} bytes ({} files), digest {}", packed.tar.len(), packed.files, &packed.digest[..19]);
    println!("  push accepted (upload + check + commit): {:.1} ms", stored.as_secs_f64() * 1000.0);
    println!("  all {n} workers advertise it: {:.2} s after the push (heartbeat every 1 s)", all.as_secs_f64());
    println!("  {}", report("each worker's fetch + verify + install", &per_node));
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
        if which == "siege" || which == "all" {
            println!("siege (10 s per phase):");
            siege(200, 10).await;
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
        if which == "streams" || which == "all" {
            println!("streams (15 s per phase):");
            streams(100, 10, 15).await;
        }
        if which == "mcp" || which == "all" {
            println!("mcp (500 rounds):");
            mcp_overhead(500).await;
        }
        if which == "transport" || which == "all" {
            println!("transport (HTTP vs NATS, one coordinator, one run):");
            transports(5_000, 500, Duration::from_millis(10)).await;
        }
        if which == "secrets" || which == "all" {
            println!("secrets (3 per task vs none, interleaved, one run):");
            secrets_cost(1_000, Duration::from_millis(10)).await;
        }
        if which == "paint" || which == "all" {
            println!("dashboard:");
            paint(30).await;
        }
        if which == "skills" || which == "all" {
            println!("skill digests:");
            skill_digests();
        }
        if which == "fanout" || which == "all" {
            println!("fan-out:");
            fan_out(1_000, 5).await;
        }
        if which == "push" || which == "all" {
            println!("skill push (1 MiB skill, 100 simulated workers):");
            push_to_workers(100).await;
        }
        if which == "schedules" || which == "all" {
            println!("schedules:");
            schedules(10_000, 20).await;
        }
        if which == "failover" || which == "all" {
            println!("failover (3 coordinators on one PostgreSQL, kill -9 of the leader):");
            failover(20).await;
        }
        if which == "tasks" || which == "all" {
            // The same loads on each store, one after the other in this run (issue 19):
            // SQLite, then PostgreSQL on a server started here (fsync and synchronous
            // commit on, as in production) when its binaries are installed.
            let pg = postgres_server::PgServer::start();
            let mut stores = vec![("sqlite", None)];
            match &pg {
                Some(pg) => stores.push(("postgres", Some(pg))),
                None => println!("  (PostgreSQL is not installed: SQLite only)"),
            }
            for (name, pg) in stores {
                // A new database for each coordinator, as a new SQLite file is.
                let storage =
                    || pg.map(|pg| format!("  type: postgres\n  url: {}\n", pg.fresh_db())).unwrap_or_default();
                println!("tasks on {name}:");
                let rate = tasks_saturated(5_000, 8, 16, &storage).await;
                if name == "sqlite"
                    && let Some((version, peer)) = celery_peer(5_000, 8, 16)
                {
                    println!(
                        "  peer: Celery {version} + Redis (appendfsync always, late acks), the same 5,000 tasks, 8 workers x 16 threads: {peer:.0} tasks/s; ours (batched) / peer: {:.1}",
                        rate / peer
                    );
                }
                let clear = tasks_paced(500, Duration::from_millis(10), 0, &storage()).await;
                let backlog = tasks_paced(500, Duration::from_millis(10), 20_000, &storage()).await;
                println!("  ratio of p99 receipt latency, 20,000-task backlog / none: {:.2}", backlog / clear);
            }
        }
    });
}

/// Coordinators `b0`, `b1`, `b2` on one PostgreSQL database, for the failover benchmark.
struct Ha {
    dir: tempfile::TempDir,
    config: std::path::PathBuf,
    ports: Vec<u16>,
    children: Vec<Option<std::process::Child>>,
    http: reqwest::Client,
}

impl Ha {
    fn url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.ports[i])
    }

    fn start(&mut self, i: usize) {
        let child = std::process::Command::new(BIN)
            .args(["-c", &self.config.display().to_string(), "coordinator"])
            .env("OPENCLAW_COORDINATOR__ID", format!("b{i}"))
            .env("OPENCLAW_COORDINATOR__PORT", self.ports[i].to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        self.children[i] = Some(child);
    }

    fn kill9(&mut self, i: usize) {
        if let Some(mut c) = self.children[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The coordinator that says it leads, polling every 5 ms.
    async fn leader(&self, among: &[usize]) -> usize {
        loop {
            for &i in among {
                let r = self.http.get(format!("{}/health", self.url(i))).timeout(Duration::from_secs(1)).send().await;
                if let Ok(r) = r
                    && r.json::<Value>().await.is_ok_and(|h| h["role"] == "leader")
                {
                    return i;
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for Ha {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill9(i);
        }
    }
}

/// Sends a node's request to whichever coordinator leads now (`leader`), again after a
/// connection error or a 503 (a standby, or nobody leading yet), for up to a minute.
async fn to_leader(
    http: &reqwest::Client,
    leader: &Mutex<String>,
    path: &str,
    secret: &str,
    body: &Value,
) -> Option<Value> {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        let url = format!("{}{path}", leader.lock().unwrap().clone());
        match http.post(url).bearer_auth(secret).json(body).timeout(Duration::from_secs(10)).send().await {
            Ok(r) if r.status() == 503 => {}
            Ok(r) => return r.json().await.ok(),
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// Issue 19: failover under load, `rounds` kills of the leader.
async fn failover(rounds: usize) {
    let Some(pg) = postgres_server::PgServer::start() else {
        println!("  (PostgreSQL is not installed: skipped)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "storage:\n  path: {}/cluster.db\n  type: postgres\n  url: {}\ncoordinator:\n  host: 127.0.0.1\n  heartbeat_timeout: 600\n  long_poll_timeout: 2\nlog:\n  level: WARN\n",
            dir.path().display(),
            pg.fresh_db()
        ),
    )
    .unwrap();
    let ports =
        (0..3).map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()).collect();
    let http = reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap();
    let mut ha = Ha { dir, config, ports, children: vec![None, None, None], http: http.clone() };
    ha.start(0);
    let first = ha.leader(&[0]).await;
    ha.start(1);
    ha.start(2);
    let read = |f: &str| std::fs::read_to_string(ha.dir.path().join(f)).unwrap().trim().to_string();
    let (admin, join) = (read("admin.token"), read("worker.token"));
    let leader = Arc::new(Mutex::new(ha.url(first)));

    // Simulated workers: poll the leader, run each assignment 300 ms, report start and result.
    let stop = Arc::new(AtomicBool::new(false));
    let running: Arc<Mutex<std::collections::HashSet<String>>> = Arc::default();
    let duplicated = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for w in 0..4 {
        let id = format!("sim-{w}");
        let body = json!({"node_id": id, "hostname": id, "platform": "linux", "arch": "x64", "available_skills": ["work"], "max_concurrent_tasks": 8});
        let secret = to_leader(&http, &leader, "/api/v1/nodes/register", &join, &body).await.unwrap()["node_secret"]
            .as_str()
            .unwrap()
            .to_string();
        let (http, leader, stop, running, duplicated) =
            (http.clone(), leader.clone(), stop.clone(), running.clone(), duplicated.clone());
        workers.push(tokio::spawn(async move {
            let held: Arc<Mutex<Vec<Value>>> = Arc::default();
            let mut beat = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                if beat.elapsed() > Duration::from_secs(1) {
                    beat = Instant::now();
                    let body = json!({"cpu_usage": 1.0, "memory_usage": 1.0, "disk_usage": 1.0, "held_tasks": held.lock().unwrap().clone()});
                    let url = format!("{}/api/v1/nodes/{id}/heartbeat", leader.lock().unwrap().clone());
                    let _ = http.post(url).bearer_auth(&secret).json(&body).timeout(Duration::from_secs(2)).send().await;
                }
                let body = json!({"wait_secs": 1, "held": held.lock().unwrap().clone()});
                let url = format!("{}/api/v1/nodes/{id}/tasks/poll", leader.lock().unwrap().clone());
                let poll = match http.post(url).bearer_auth(&secret).json(&body).timeout(Duration::from_secs(5)).send().await {
                    Ok(r) if r.status().is_success() => r.json::<Value>().await.unwrap_or(Value::Null),
                    _ => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                for a in poll["assignments"].as_array().cloned().unwrap_or_default() {
                    let task = a["task_id"].as_str().unwrap().to_string();
                    let attempt = a["attempt"].as_u64().unwrap();
                    let reference = json!({"task_id": task, "attempt": attempt});
                    if held.lock().unwrap().contains(&reference) {
                        continue;
                    }
                    if !running.lock().unwrap().insert(task.clone()) {
                        duplicated.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    held.lock().unwrap().push(reference.clone());
                    let (http, leader, running, held, id, secret) =
                        (http.clone(), leader.clone(), running.clone(), held.clone(), id.clone(), secret.clone());
                    tokio::spawn(async move {
                        let base = format!("/api/v1/nodes/{id}/tasks/{task}");
                        to_leader(&http, &leader, &format!("{base}/start"), &secret, &json!({"attempt": attempt})).await;
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        let result = json!({"attempt": attempt, "outcome": "completed", "result": {"ok": true}, "duration_ms": 300});
                        to_leader(&http, &leader, &format!("{base}/result"), &secret, &result).await;
                        running.lock().unwrap().remove(&task);
                        held.lock().unwrap().retain(|r| *r != reference);
                    });
                }
            }
        }));
    }

    // The submitter: one task at a time, each key retried at every coordinator until one
    // acknowledges it; pauses of 20 ms between tasks.
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let submitter = {
        let (http, stop, acked, admin) = (http.clone(), stop.clone(), acked.clone(), admin.clone());
        let urls: Vec<String> = (0..3).map(|i| ha.url(i)).collect();
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let body = json!({"name": format!("t{n}"), "required_skills": ["work"], "idempotency_key": format!("key-{n}"), "max_retries": 10});
                'key: loop {
                    for url in &urls {
                        let r = http
                            .post(format!("{url}/api/v1/tasks"))
                            .bearer_auth(&admin)
                            .json(&body)
                            .timeout(Duration::from_secs(10))
                            .send()
                            .await;
                        if let Ok(r) = r
                            && (r.status() == 201 || r.status() == 200)
                            && let Ok(task) = r.json::<Value>().await
                        {
                            acked.lock().unwrap().push(task["task_id"].as_str().unwrap_or("").to_string());
                            break 'key;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                n += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    let mut current = first;
    let mut times = Vec::new();
    for _ in 0..rounds {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let killed = Instant::now();
        ha.kill9(current);
        let others: Vec<usize> = (0..3).filter(|i| *i != current).collect();
        let next = ha.leader(&others).await;
        times.push(killed.elapsed().as_secs_f64());
        *leader.lock().unwrap() = ha.url(next);
        ha.start(current);
        current = next;
    }
    stop.store(true, Ordering::Relaxed);
    let _ = submitter.await;
    for w in workers {
        let _ = w.await;
    }
    let acked = acked.lock().unwrap().clone();
    let mut lost = 0;
    for id in &acked {
        let r = http.get(format!("{}/api/v1/tasks/{id}", ha.url(current))).bearer_auth(&admin).send().await.unwrap();
        if r.status() != 200 {
            lost += 1;
        }
    }
    times.sort_by(f64::total_cmp);
    println!(
        "  failover over {rounds} kills: min {:.2} s, median {:.2} s, max {:.2} s (storage.lease_ttl 3 s)",
        times[0],
        times[times.len() / 2],
        times[times.len() - 1]
    );
    println!(
        "  acknowledged submissions: {}, lost: {lost}; tasks handed to a worker still running them: {}",
        acked.len(),
        duplicated.load(Ordering::Relaxed)
    );
}
