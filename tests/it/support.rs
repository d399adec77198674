//! Test harness: temp dirs, free ports, the real binary as child processes, an API client,
//! and waiting on observable conditions (with a deadline) instead of sleeping.
//! When a test fails, every process it started prints its logs and the temp dir is kept.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_openclaw");

/// An HTTP client (rustls needs its crypto provider installed once per process).
pub fn http_client() -> reqwest::Client {
    openclaw::cmd::install_crypto();
    reqwest::Client::new()
}

/// A port nobody listens on right now (bound, then released). Only for what must know a
/// port before the process that binds it starts (a worker started before its coordinator);
/// everything else binds port 0 and reads the port back.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A port that is bound but never listens, held as long as the value lives: connecting to
/// it is refused, and nobody else can take it (where a test needs "no gateway here").
pub struct DeadPort {
    socket: tokio::net::TcpSocket,
}

impl DeadPort {
    pub fn new() -> DeadPort {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        DeadPort { socket }
    }

    pub fn port(&self) -> u16 {
        self.socket.local_addr().unwrap().port()
    }
}

/// A child process whose output goes to files; killed (SIGKILL) when dropped.
pub struct Proc {
    pub name: String,
    child: Option<Child>,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    pub status: Option<ExitStatus>,
}

impl Proc {
    pub fn spawn(name: &str, args: &[&str], env: &[(&str, &str)], cwd: &Path, logs: &Path) -> Proc {
        Self::spawn_with(name, args, env, cwd, logs, |_| {})
    }

    /// Like [`Proc::spawn`], with a last change to the command (limits, signals).
    pub fn spawn_with(
        name: &str,
        args: &[&str],
        env: &[(&str, &str)],
        cwd: &Path,
        logs: &Path,
        prepare: impl FnOnce(&mut Command),
    ) -> Proc {
        std::fs::create_dir_all(logs).unwrap();
        let stdout = logs.join(format!("{name}.out"));
        let stderr = logs.join(format!("{name}.err"));
        let mut cmd = Command::new(BIN);
        isolate(&mut cmd, cwd);
        cmd.args(args).current_dir(cwd).stdin(Stdio::null()).stdout(append(&stdout)).stderr(append(&stderr));
        for (k, v) in env {
            cmd.env(k, v);
        }
        prepare(&mut cmd);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {BIN} {args:?}: {e}"));
        Proc { name: name.into(), child: Some(child), stdout, stderr, status: None }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    pub fn out(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    pub fn err(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// kill -9, and reap it.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            self.status = c.wait().ok();
        }
    }

    /// Sends SIGTERM.
    #[cfg(unix)]
    pub fn term(&self) {
        if let Some(c) = &self.child {
            // SAFETY: sending a signal to our own child.
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
        }
    }

    /// Waits for the process to exit on its own.
    pub async fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.status {
                return status;
            }
            let c = self.child.as_mut().expect("running");
            if let Some(status) = c.try_wait().unwrap() {
                self.status = Some(status);
                self.child = None;
                return status;
            }
            if started.elapsed() > limit {
                panic!("{} did not exit within {limit:?}\n{}", self.name, self.logs());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => c.try_wait().ok().flatten().is_none(),
            None => false,
        }
    }

    pub fn logs(&self) -> String {
        format!(
            "----- {} stdout ({}) -----\n{}\n----- {} stderr -----\n{}",
            self.name,
            self.stdout.display(),
            tail(&self.out(), 12_000),
            self.name,
            tail(&self.err(), 6_000)
        )
    }

    /// Waits until a line of its stdout contains `text`.
    pub async fn wait_for_output(&self, text: &str, limit: Duration) {
        let started = Instant::now();
        while !self.out().contains(text) {
            if started.elapsed() > limit {
                panic!("{} never printed {text:?}\n{}", self.name, self.logs());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

fn tail(s: &str, n: usize) -> &str {
    if s.len() <= n {
        s
    } else {
        let mut start = s.len() - n;
        while !s.is_char_boundary(start) {
            start += 1;
        }
        &s[start..]
    }
}

fn append(path: &Path) -> Stdio {
    Stdio::from(std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap())
}

impl Drop for Proc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        self.kill9();
    }
}

/// Keeps the machine's own settings out of a test process: no inherited `OPENCLAW_*`
/// variables or `RUST_LOG`, no OpenClaw installation (its state dir is an empty folder
/// under `cwd`, its CLI is off). A test that wants OpenClaw passes its own values.
pub fn isolate(cmd: &mut Command, cwd: &Path) {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("OPENCLAW_") || k == "RUST_LOG" {
            cmd.env_remove(&k);
        }
    }
    cmd.env("OPENCLAW_STATE_DIR", cwd.join("no-openclaw")).env("OPENCLAW_WORKER__OPENCLAW_CLI", "off");
}

/// Runs the CLI to completion.
pub fn cli(args: &[&str], env: &[(&str, &str)], cwd: &Path) -> Output {
    let mut cmd = Command::new(BIN);
    isolate(&mut cmd, cwd);
    cmd.args(args).current_dir(cwd);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// Text of an output, for assertions and failure messages.
pub fn show(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Which store test clusters keep their state in: SQLite (a file in the cluster's temp dir)
/// by default; PostgreSQL with `OPENCLAW_TEST_STORE=postgres` — a database of its own per
/// cluster on one real server per test process (`postgres_server::shared`). CI runs the
/// store-facing suites (nodes, tasks, output, events, crash recovery) both ways.
pub fn on_postgres() -> bool {
    std::env::var("OPENCLAW_TEST_STORE").as_deref() == Ok("postgres")
}

/// A new, empty PostgreSQL database for a test; its URL.
pub fn postgres_db() -> String {
    crate::postgres_server::shared()
        .expect("OPENCLAW_TEST_STORE=postgres but PostgreSQL's server binaries are not installed")
        .fresh_db()
}

/// Knobs of a test cluster, rendered into its config file.
#[derive(Clone)]
pub struct Settings {
    pub heartbeat_timeout: f64,
    pub heartbeat_interval: f64,
    pub strategy: &'static str,
    pub retry_backoff_base: f64,
    /// The longest a worker's poll waits for work, seconds.
    pub long_poll_timeout: f64,
    /// Serve HTTPS with a certificate from a CA made for the test.
    pub tls: bool,
    pub extra_coordinator: String,
    pub extra_worker: String,
    /// Give the worker a gateway port of nobody (the default), so no test reaches a real
    /// gateway by accident; off, the worker finds the gateway in OpenClaw's config.
    pub pin_gateway_port: bool,
    /// Keep the state in a new PostgreSQL database even without `OPENCLAW_TEST_STORE`
    /// (the PostgreSQL store's own tests).
    pub postgres: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            heartbeat_timeout: 3.0,
            heartbeat_interval: 0.5,
            strategy: "least_loaded",
            retry_backoff_base: 0.2,
            long_poll_timeout: 5.0,
            tls: false,
            extra_coordinator: String::new(),
            extra_worker: String::new(),
            pin_gateway_port: true,
            postgres: false,
        }
    }
}

/// A temp dir with a config file and a coordinator process.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    /// The coordinator's port: 0 until it first binds one (port 0, read back from its
    /// log); restarts reuse it so that workers find the coordinator again.
    pub port: u16,
    pub scheme: &'static str,
    pub config: PathBuf,
    /// The config file with `__PORT__` for the coordinator's port.
    template: String,
    pub coordinator: Option<Proc>,
    pub http: reqwest::Client,
    restarts: u32,
    /// Where `worker.port` (the OpenClaw gateway) points: refused, unless a test sets
    /// a gateway of its own.
    pub no_gateway: DeadPort,
    /// The PostgreSQL database the coordinator uses ([`on_postgres`]); None: the SQLite
    /// file [`Cluster::db`].
    pub pg_url: Option<String>,
}

impl Cluster {
    /// A cluster with a running coordinator.
    pub async fn start() -> Cluster {
        Self::start_with(Settings::default()).await
    }

    pub async fn start_with(settings: Settings) -> Cluster {
        let mut c = Self::new(settings);
        c.start_coordinator().await;
        c
    }

    /// The files only, no process yet.
    pub fn new(s: Settings) -> Cluster {
        let dir = tempfile::Builder::new().prefix("openclaw-it-").tempdir().unwrap();
        let no_gateway = DeadPort::new();
        let gateway_port = if s.pin_gateway_port { format!("  port: {}\n", no_gateway.port()) } else { String::new() };
        let config = dir.path().join("config.yaml");
        let (mut extra_coordinator, mut extra_worker, mut http) =
            (s.extra_coordinator.clone(), s.extra_worker.clone(), http_client());
        if s.tls {
            let ca = test_certificates(dir.path());
            extra_coordinator
                .push_str(&format!("  tls_cert: {0}/cert.pem\n  tls_key: {0}/key.pem\n", dir.path().display()));
            extra_worker.push_str(&format!("  ca_file: {}\n", ca.display()));
            let root = reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap();
            http = reqwest::Client::builder().add_root_certificate(root).build().unwrap();
        }
        let pg_url = (s.postgres || on_postgres()).then(postgres_db);
        let pg = pg_url.as_ref().map(|url| format!("  type: postgres\n  url: {url}\n")).unwrap_or_default();
        let yaml = format!(
            "storage:\n  path: {data}/cluster.db\n{pg}coordinator:\n  host: 127.0.0.1\n  port: __PORT__\n  heartbeat_timeout: {ht}\n  heartbeat_check_interval: 5\n  retry_backoff_base: {rb}\n  retry_backoff_max: {rm}\n  long_poll_timeout: {lp}\n  shutdown_timeout: 5\n  scheduling_strategy: {strategy}\n{ec}worker:\n  heartbeat_interval: {hi}\n  skills_rescan_interval: 0.3\n  gateway_check_interval: 0.3\n  shutdown_timeout: 5\n{gateway_port}{ew}log:\n  level: DEBUG\n  format: json\n",
            data = dir.path().join("data").display(),
            ht = s.heartbeat_timeout,
            hi = s.heartbeat_interval,
            strategy = s.strategy,
            rb = s.retry_backoff_base,
            rm = (s.retry_backoff_base * 5.0).max(1.0),
            lp = s.long_poll_timeout,
            ec = extra_coordinator,
            ew = extra_worker,
        );
        let scheme = if s.tls { "https" } else { "http" };
        let c = Cluster {
            dir,
            port: 0,
            scheme,
            config,
            template: yaml,
            coordinator: None,
            http,
            restarts: 0,
            no_gateway,
            pg_url,
        };
        c.write_config();
        c
    }

    /// Replaces the config file whole (write + rename), so that a process starting at the
    /// same moment reads the old file or the new one, never half of one.
    fn write_config(&self) {
        let next = self.config.with_extension("yaml.next");
        std::fs::write(&next, self.template.replace("__PORT__", &self.port.to_string())).unwrap();
        std::fs::rename(&next, &self.config).unwrap();
    }

    /// A cluster whose database is a copy of `db` (a restored backup), with its
    /// coordinator running.
    pub async fn start_on_copy(db: &Path) -> Cluster {
        let mut c = Self::new(Settings::default());
        std::fs::create_dir_all(c.db().parent().unwrap()).unwrap();
        std::fs::copy(db, c.db()).unwrap();
        c.start_coordinator().await;
        c
    }

    /// Replaces the config's `storage` section with these indented lines (besides `path`,
    /// which stays, for the token files), e.g. `  type: postgres\n  url: …\n`.
    pub fn set_storage(&mut self, lines: &str) {
        let start = self.template.find("storage:\n").unwrap();
        let end = self.template.find("coordinator:\n").unwrap();
        let path = format!("  path: {}\n", self.db().display());
        self.template.replace_range(start..end, &format!("storage:\n{path}{lines}"));
        self.pg_url = lines.lines().find_map(|l| l.trim().strip_prefix("url: ")).map(str::to_string);
        self.write_config();
    }

    /// Appends YAML to the config file (kept across the port rewrite).
    pub fn append_config(&mut self, yaml: &str) {
        self.template.push_str(yaml);
        self.write_config();
    }

    /// Fixes the coordinator's port before it starts, for a test whose worker starts first
    /// and so must know the port in advance.
    pub fn reserve_port(&mut self) {
        self.port = free_port();
        self.write_config();
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn db(&self) -> PathBuf {
        self.path().join("data/cluster.db")
    }

    /// Runs SQL on the cluster's store, whichever it is (SQLite's file or the PostgreSQL
    /// database), for a test that sets rows up or checks them by hand: write SQL that both
    /// dialects read. Returns the first column of each row as text.
    pub fn sql(&self, sql: &str) -> Vec<String> {
        if let Some(url) = &self.pg_url {
            let pg = crate::postgres_server::shared().unwrap();
            let db = url.rsplit('/').next().unwrap();
            return pg.psql(db, sql).lines().map(str::to_string).collect();
        }
        let c = rusqlite::Connection::open(self.db()).unwrap();
        let mut rows = Vec::new();
        for statement in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            let mut q = c.prepare(statement).unwrap();
            let n = q.column_count();
            let mut r = q.query([]).unwrap();
            while let Some(row) = r.next().unwrap() {
                if n > 0 {
                    let v: rusqlite::types::Value = row.get(0).unwrap();
                    rows.push(match v {
                        rusqlite::types::Value::Null => String::new(),
                        rusqlite::types::Value::Integer(i) => i.to_string(),
                        rusqlite::types::Value::Real(f) => f.to_string(),
                        rusqlite::types::Value::Text(t) => t,
                        rusqlite::types::Value::Blob(b) => String::from_utf8_lossy(&b).into_owned(),
                    });
                }
            }
        }
        rows
    }

    /// One number from [`Cluster::sql`] (a count, an id).
    pub fn sql_int(&self, sql: &str) -> i64 {
        let rows = self.sql(sql);
        rows.first().and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{sql:?} gave {rows:?}, not a number"))
    }

    pub fn logs(&self) -> PathBuf {
        self.path().join("logs")
    }

    pub fn url(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme, self.port)
    }

    pub fn admin(&self) -> String {
        std::fs::read_to_string(self.path().join("data/admin.token")).unwrap().trim().to_string()
    }

    pub fn worker_token(&self) -> String {
        std::fs::read_to_string(self.path().join("data/worker.token")).unwrap().trim().to_string()
    }

    /// Starts the coordinator and waits until it answers.
    pub async fn start_coordinator(&mut self) {
        let name =
            if self.restarts == 0 { "coordinator".to_string() } else { format!("coordinator-{}", self.restarts) };
        self.restarts += 1;
        let config = self.config.display().to_string();
        let p = Proc::spawn(&name, &["-c", &config, "coordinator"], &[], self.dir.path(), &self.logs());
        self.coordinator = Some(p);
        self.wait_ready().await;
    }

    async fn wait_ready(&mut self) {
        let started = Instant::now();
        if self.port == 0 {
            let c = self.coordinator.as_ref().unwrap();
            c.wait_for_output("coordinator ready on ", Duration::from_secs(20)).await;
            let out = c.out();
            let line = out.lines().find(|l| l.contains("coordinator ready on ")).unwrap();
            let rest = &line[line.find("coordinator ready on ").unwrap()..];
            let port: String = rest.split(':').nth(2).unwrap().chars().take_while(char::is_ascii_digit).collect();
            self.port = port.parse().unwrap_or_else(|_| panic!("no port in {line:?}"));
            self.write_config();
        }
        loop {
            if let Ok(r) = self.http.get(format!("{}/health", self.url())).send().await
                && r.status().is_success()
            {
                return;
            }
            let c = self.coordinator.as_mut().unwrap();
            if !c.is_running() || started.elapsed() > Duration::from_secs(20) {
                panic!("the coordinator did not come up\n{}", c.logs());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn kill_coordinator(&mut self) {
        if let Some(mut c) = self.coordinator.take() {
            c.kill9();
            // Keep its logs on disk; the Proc is gone.
        }
    }

    /// Starts a worker process.
    pub fn worker(&self, node_id: &str, skills: &Path, extra: &[&str]) -> Proc {
        self.worker_env(node_id, skills, extra, &[])
    }

    pub fn worker_env(&self, node_id: &str, skills: &Path, extra: &[&str], env: &[(&str, &str)]) -> Proc {
        let config = self.config.display().to_string();
        let skills = skills.display().to_string();
        let mut args = vec!["-c", &config, "worker", "--node-id", node_id, "--skills-dir", &skills];
        args.extend_from_slice(extra);
        Proc::spawn(&format!("worker-{node_id}"), &args, env, self.dir.path(), &self.logs())
    }

    /// The set-up most task tests share: writes these skills into `<dir>/skills`, starts a
    /// worker `node_id` on them (with `extra` flags) and waits until it is online with all
    /// of them.
    pub async fn exec_worker(&self, node_id: &str, skills: &[Skill], extra: &[&str]) -> Proc {
        let dir = self.skills_dir();
        for skill in skills {
            skill.write(&dir);
        }
        let worker = self.worker(node_id, &dir, extra);
        let mut names: Vec<&str> = skills.iter().map(Skill::name).collect();
        names.sort();
        self.wait_online(node_id, &names).await;
        worker
    }

    /// The skills dir `exec_worker` writes into.
    pub fn skills_dir(&self) -> PathBuf {
        self.dir.path().join("skills")
    }

    /// Runs the CLI against this cluster's config.
    pub fn cli(&self, args: &[&str]) -> Output {
        let config = self.config.display().to_string();
        let mut all = vec!["-c", config.as_str()];
        all.extend_from_slice(args);
        cli(&all, &[], self.dir.path())
    }

    /// Starts the CLI against this cluster's config as a process that keeps running (a
    /// watcher, a follower), its output in the cluster's logs folder.
    pub fn cli_process(&self, name: &str, args: &[&str]) -> Proc {
        let config = self.config.display().to_string();
        let mut all = vec!["-c", config.as_str()];
        all.extend_from_slice(args);
        Proc::spawn(name, &all, &[], self.dir.path(), &self.logs())
    }

    /// A request with an explicit token (None: no Authorization header) and a raw body.
    pub async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.http.request(method, format!("{}{path}", self.url()));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b.to_string());
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        assert_private(r.headers(), &format!("{path} ({status})"));
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// A request with the admin token.
    pub async fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let body = body.map(|b| b.to_string());
        self.call(method, path, Some(&self.admin()), body.as_deref()).await
    }

    /// GET with the admin token, expecting 200.
    pub async fn get(&self, path: &str) -> Value {
        let (status, body) = self.api("GET", path, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// Submits a task, expecting 201.
    pub async fn submit(&self, body: Value) -> String {
        let (status, task) = self.api("POST", "/api/v1/tasks", Some(body)).await;
        assert_eq!(status, 201, "submit: {task}");
        task["task_id"].as_str().unwrap().to_string()
    }

    /// Waits on the server for the task to end (up to `secs`), and returns it.
    pub async fn wait_task(&self, id: &str, secs: u64) -> Value {
        let started = Instant::now();
        loop {
            let task = self.get(&format!("/api/v1/tasks/{id}/wait?timeout={secs}")).await;
            let status = task["status"].as_str().unwrap_or("");
            if ["completed", "failed", "cancelled", "timeout"].contains(&status) {
                return self.get(&format!("/api/v1/tasks/{id}")).await;
            }
            if started.elapsed() > Duration::from_secs(secs) {
                return task;
            }
        }
    }

    /// The coordinator's metrics (OpenMetrics text).
    pub async fn metrics(&self) -> String {
        let r = self.http.get(format!("{}/metrics", self.url())).bearer_auth(self.admin()).send().await.unwrap();
        r.text().await.unwrap()
    }

    /// The sum of a metric's samples whose line starts with `prefix` (a name, or a name and
    /// the start of its labels); 0 when there is none.
    pub async fn metric(&self, prefix: &str) -> f64 {
        let text = self.metrics().await;
        text.lines().filter(|l| l.starts_with(prefix)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
    }

    /// The node as the API shows it (Null when unknown).
    pub async fn node(&self, id: &str) -> Value {
        let (status, node) = self.api("GET", &format!("/api/v1/nodes/{id}"), None).await;
        if status == 200 { node } else { Value::Null }
    }

    /// Waits until `check(node)` holds for the node (polling the API every 50 ms).
    pub async fn wait_node(&self, id: &str, what: &str, limit: Duration, check: impl Fn(&Value) -> bool) -> Value {
        let started = Instant::now();
        loop {
            let node = self.node(id).await;
            if check(&node) {
                return node;
            }
            if started.elapsed() > limit {
                panic!("node {id} never became {what} within {limit:?}; last seen: {node}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the node is online with exactly these skills.
    pub async fn wait_online(&self, id: &str, skills: &[&str]) -> Value {
        let want: Vec<String> = skills.iter().map(|s| s.to_string()).collect();
        self.wait_node(id, &format!("online with {want:?}"), Duration::from_secs(20), |n| {
            n["status"] != "offline" && !n.is_null() && {
                let mut have: Vec<String> = n["available_skills"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect();
                have.sort();
                have == want
            }
        })
        .await
    }

    /// Registers a node through the API (no worker process) with the join token and
    /// returns its secret.
    pub async fn register(&self, id: &str, skills: &[&str], max: u32) -> String {
        self.register_with(&self.worker_token(), id, skills, max).await
    }

    /// Registers a node with the given bearer token (its own secret to register again, or
    /// the admin token) and returns the new secret.
    pub async fn register_with(&self, token: &str, id: &str, skills: &[&str], max: u32) -> String {
        let body = serde_json::json!({
            "node_id": id, "hostname": format!("{id}.local"), "platform": "linux", "arch": "x64",
            "available_skills": skills, "max_concurrent_tasks": max,
        });
        let (status, answer) = self.call("POST", "/api/v1/nodes/register", Some(token), Some(&body.to_string())).await;
        assert_eq!(status, 200, "register {id}: {answer}");
        let secret = answer["node_secret"].as_str().unwrap().to_string();
        // As a worker does: the first heartbeat right after registering (it also shows the
        // coordinator that the secret arrived).
        let (status, answer) =
            self.call("POST", &format!("/api/v1/nodes/{id}/heartbeat"), Some(&secret), Some("{}")).await;
        assert_eq!(status, 200, "heartbeat {id}: {answer}");
        secret
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Some(c) = &self.coordinator {
                eprintln!("{}", c.logs());
            }
            let kept = self.dir.path().to_path_buf();
            eprintln!("test files kept in {}", kept.display());
            // Keep the directory for a post-mortem.
            let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
            let _ = dir.keep();
        }
    }
}

/// A CA and a certificate for 127.0.0.1 signed by it, in `dir` (ca.pem, cert.pem, key.pem).
/// Returns the CA's path.
fn test_certificates(dir: &Path) -> PathBuf {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "openclaw test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(dir.join("cert.pem"), leaf.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    dir.join("ca.pem")
}

/// A skill folder for a test, declared as a SKILL.md declares it: an exec skill (`sh run.sh`
/// with a script, or any command) or an agent skill, with the `requires.env`/`requires.bins`
/// it needs. `write` puts it under a skills dir.
pub struct Skill {
    name: String,
    run: Option<Vec<String>>,
    script: Option<String>,
    env: Vec<String>,
    bins: Vec<String>,
}

impl Skill {
    /// An exec skill whose command is `sh run.sh` with this script.
    pub fn exec(name: &str, script: &str) -> Skill {
        Skill { script: Some(script.to_string()), ..Skill::command(name, &["sh", "run.sh"]) }
    }

    /// An exec skill that runs this command (no script file).
    pub fn command(name: &str, argv: &[&str]) -> Skill {
        Skill { run: Some(argv.iter().map(|a| a.to_string()).collect()), ..Skill::agent(name) }
    }

    /// An agent skill (no command: the worker's OpenClaw runs it).
    pub fn agent(name: &str) -> Skill {
        Skill { name: name.to_string(), run: None, script: None, env: Vec::new(), bins: Vec::new() }
    }

    /// Environment variables the skill requires (`metadata.openclaw.requires.env`).
    pub fn env(mut self, vars: &[&str]) -> Skill {
        self.env.extend(vars.iter().map(|v| v.to_string()));
        self
    }

    /// Binaries the skill requires on PATH (`metadata.openclaw.requires.bins`).
    pub fn bins(mut self, bins: &[&str]) -> Skill {
        self.bins.extend(bins.iter().map(|b| b.to_string()));
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Writes `<skills>/<name>/SKILL.md` (and `run.sh`); returns the skill's folder.
    pub fn write(&self, skills: &Path) -> PathBuf {
        let dir = skills.join(&self.name);
        std::fs::create_dir_all(&dir).unwrap();
        let mut metadata = serde_json::Map::new();
        if !self.env.is_empty() || !self.bins.is_empty() {
            let mut requires = serde_json::Map::new();
            if !self.env.is_empty() {
                requires.insert("env".into(), serde_json::json!(self.env));
            }
            if !self.bins.is_empty() {
                requires.insert("bins".into(), serde_json::json!(self.bins));
            }
            metadata.insert("openclaw".into(), serde_json::json!({ "requires": requires }));
        }
        if let Some(run) = &self.run {
            metadata.insert("cluster".into(), serde_json::json!({ "run": run }));
        }
        let (kind, body) = if self.run.is_some() { ("test", "") } else { ("agent", "Do the thing.\n") };
        let metadata =
            if metadata.is_empty() { String::new() } else { format!("metadata: {}\n", Value::Object(metadata)) };
        let name = &self.name;
        std::fs::write(
            dir.join("SKILL.md"),
            format!("---\nname: {name}\ndescription: {kind} skill {name}\n{metadata}---\n{body}"),
        )
        .unwrap();
        if let Some(script) = &self.script {
            std::fs::write(dir.join("run.sh"), script).unwrap();
        }
        dir
    }
}

/// Writes an exec skill whose command is `sh run.sh` with the given script.
pub fn exec_skill(skills: &Path, name: &str, script: &str) {
    Skill::exec(name, script).write(skills);
}

/// Writes an agent skill (no command).
pub fn agent_skill(skills: &Path, name: &str) {
    Skill::agent(name).write(skills);
}

/// Whether a process is gone (or a zombie nobody reaped yet) now.
#[cfg(unix)]
pub fn is_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')),
        // SAFETY: signal 0 only checks that the process exists.
        Err(_) => (unsafe { libc::kill(pid, 0) }) != 0,
    }
}

/// Whether a process is gone (or a zombie nobody reaped yet), waiting up to 5 s.
#[cfg(unix)]
pub async fn gone(pid: i32) -> bool {
    for _ in 0..100 {
        if is_gone(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Waits until `f` returns true, polling every 50 ms, up to `limit`.
pub async fn eventually<F, Fut>(what: &str, limit: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !f().await {
        if started.elapsed() > limit {
            panic!("timed out after {limit:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every JSON answer of the coordinator is kept by no cache and sniffed by no browser (it
/// may carry tokens, node secrets and task data). Checked on every answer the tests get
/// through [`Cluster::call`].
pub fn assert_private(headers: &reqwest::header::HeaderMap, what: &str) {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
    if get("content-type").starts_with("application/json") {
        assert_eq!(get("cache-control"), "no-store", "{what}: a JSON answer without Cache-Control: no-store");
        assert_eq!(get("x-content-type-options"), "nosniff", "{what}: a JSON answer without nosniff");
    }
}

/// A Server-Sent Events stream read by the test (the parser is the CLI's, unit-tested on
/// its own).
pub struct Sse {
    response: reqwest::Response,
    parser: openclaw::eventsource::Parser,
    ready: std::collections::VecDeque<openclaw::eventsource::Message>,
}

impl Sse {
    /// Opens `path` with `token`, resuming after `last_id`; expects 200 and an event stream.
    pub async fn open(cluster: &Cluster, path: &str, token: &str, last_id: Option<u64>) -> Sse {
        let mut req = cluster.http.get(format!("{}{path}", cluster.url())).bearer_auth(token);
        if let Some(id) = last_id {
            req = req.header("last-event-id", id.to_string());
        }
        let response = req.send().await.unwrap();
        assert_eq!(response.status(), 200, "GET {path}");
        let kind = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_string());
        assert_eq!(kind.as_deref(), Some("text/event-stream"), "GET {path}");
        Sse { response, parser: Default::default(), ready: Default::default() }
    }

    /// The next message; `None` when the server ended the stream. Panics when nothing
    /// comes for 30 s (the server sends a keep-alive every 15 s).
    pub async fn next(&mut self) -> Option<openclaw::eventsource::Message> {
        loop {
            if let Some(m) = self.ready.pop_front() {
                return Some(m);
            }
            let chunk = tokio::time::timeout(Duration::from_secs(30), self.response.chunk())
                .await
                .expect("nothing on the stream for 30 s")
                .ok()
                .flatten()?;
            self.ready.extend(self.parser.feed(&chunk));
        }
    }

    /// The next message's data as JSON, with its event name.
    pub async fn next_json(&mut self) -> Option<(String, Value)> {
        let m = self.next().await?;
        let data = serde_json::from_str(&m.data).unwrap_or_else(|e| panic!("{}: not JSON ({e})", m.data));
        Some((m.event, data))
    }
}

/// Where `.ci/tools` installs what some tests drive (chromium's driver, the Python
/// checkers): `$OPENCLAW_CI_DIR/tools`, by default `~/.cache/openclaw-ci/tools`.
pub fn tools_dir() -> PathBuf {
    std::env::var_os("OPENCLAW_CI_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/openclaw-ci"))
        .join("tools")
}

/// A tool installed by `.ci/tools` (a path under [`tools_dir`], or an absolute path).
/// Missing: under `CI=true` the test fails (CI must run everything); elsewhere the test is
/// skipped with a note on how to install it (None).
pub fn tool(path: &str) -> Option<PathBuf> {
    let full = if path.starts_with('/') { PathBuf::from(path) } else { tools_dir().join(path) };
    if full.exists() {
        return Some(full);
    }
    let what = format!(
        "{} is missing: run .ci/tools (it installs chromium, playwright-core and the Python checkers)",
        full.display()
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{what}");
    }
    eprintln!("SKIPPED: {what}");
    None
}

/// Runs a tool to completion, failing the test with its output when it fails.
pub fn run_tool(program: &Path, args: &[&str]) -> String {
    let out =
        Command::new(program).args(args).output().unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{} {args:?} failed ({:?}):\n{text}", program.display(), out.status.code());
    text
}

/// The texts of the lines of a task output answer (`GET /api/v1/tasks/{id}/output`).
pub fn texts(output: &Value) -> Vec<String> {
    output["lines"].as_array().unwrap().iter().map(|l| l["text"].as_str().unwrap().to_string()).collect()
}
