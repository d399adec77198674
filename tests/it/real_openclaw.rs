//! The real OpenClaw for the tests: the Node and `openclaw` npm packages that
//! `.ci/install-openclaw` puts in `$OPENCLAW_CI_DIR` (default `~/.cache/openclaw-ci`), its
//! CLI, and its gateway started on a free loopback port with an isolated `HOME`, token
//! auth, chat completions on, and the tests' [`StubModel`] as its only LLM provider.
//!
//! When the install is missing, a test that needs it says so loudly and returns — unless
//! `CI=true`, where it fails: CI must never pass by skipping these.
//! The gateway runs in its own process group, killed (with its helpers) when dropped; a
//! failing test prints the gateway's log.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::stub_model::StubModel;
use crate::support::free_port;

/// The pinned versions, shared with `.ci/install-openclaw`.
const VERSIONS: &str = include_str!("../../.ci/openclaw.env");

fn pinned(key: &str) -> String {
    VERSIONS
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!(".ci/openclaw.env has no {key}"))
        .trim()
        .to_string()
}

/// Where the real OpenClaw is installed.
pub struct Install {
    pub node_bin: PathBuf,
    /// `node_modules/.bin/openclaw`.
    pub cli: PathBuf,
    /// The npm package folder (`node_modules/openclaw`).
    pub package: PathBuf,
    pub version: String,
}

impl Install {
    /// PATH with Node first, then `extra`, then this process's PATH.
    pub fn path(&self, extra: &[&Path]) -> String {
        let mut dirs: Vec<PathBuf> = vec![self.node_bin.clone()];
        dirs.extend(extra.iter().map(|p| p.to_path_buf()));
        dirs.extend(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()));
        std::env::join_paths(dirs).unwrap().into_string().unwrap()
    }

    /// Runs OpenClaw's CLI with `home` as HOME (and its own temp dir) and extra variables.
    pub fn run(&self, home: &Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
        let mut cmd = Command::new(&self.cli);
        isolate(&mut cmd, home);
        cmd.env("PATH", self.path(&[])).args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {}: {e}", self.cli.display()));
        if !out.status.success() {
            panic!("openclaw {args:?} failed: {}", crate::support::show(&out));
        }
        out
    }
}

/// OpenClaw sees only `home` (its state, config and logs live there).
fn isolate(cmd: &mut Command, home: &Path) {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("OPENCLAW_") {
            cmd.env_remove(&k);
        }
    }
    let tmp = home.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    cmd.env("HOME", home).env("TMPDIR", &tmp).env("NO_COLOR", "1").env_remove("USERPROFILE");
}

/// The installed OpenClaw, or `None` (after a loud message) when it is missing. Under
/// `CI=true` a missing install is a failure.
pub fn install() -> Option<&'static Install> {
    static INSTALL: OnceLock<Option<Install>> = OnceLock::new();
    INSTALL
        .get_or_init(|| {
            let dir = std::env::var_os("OPENCLAW_CI_DIR").map(PathBuf::from).unwrap_or_else(|| {
                PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/openclaw-ci")
            });
            let arch = if cfg!(target_arch = "aarch64") { "arm64" } else { "x64" };
            let version = pinned("OPENCLAW_VERSION");
            let node_bin = dir.join(format!("node-{}/node_modules/node-linux-{arch}/bin", pinned("NODE_VERSION")));
            let modules = dir.join(format!("openclaw-{version}/node_modules"));
            let install =
                Install { cli: modules.join(".bin/openclaw"), package: modules.join("openclaw"), node_bin, version };
            if install.node_bin.join("node").is_file() && install.cli.exists() {
                return Some(install);
            }
            let message = format!(
                "the real OpenClaw {} is not installed in {} (run .ci/install-openclaw)",
                install.version,
                dir.display()
            );
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("CI=true: {message}; the OpenClaw tests must not be skipped under CI");
            }
            eprintln!("\n*** SKIPPED: {message} ***\n");
            None
        })
        .as_ref()
}

/// Returns from the test (after the loud message) when OpenClaw is not installed.
#[macro_export]
macro_rules! require_openclaw {
    () => {
        match $crate::real_openclaw::install() {
            Some(install) => install,
            None => return,
        }
    };
}

/// How to set up a gateway.
pub struct Options {
    /// `gateway.http.endpoints.chatCompletions.enabled`.
    pub chat_completions: bool,
    /// Merged over the generated `openclaw.json`.
    pub extra: Value,
}

impl Default for Options {
    fn default() -> Self {
        Options { chat_completions: true, extra: json!({}) }
    }
}

/// A running OpenClaw gateway and its stub model.
pub struct Gateway {
    pub install: &'static Install,
    pub home: tempfile::TempDir,
    pub port: u16,
    pub token: String,
    pub stub: StubModel,
    child: Option<Child>,
    log: PathBuf,
}

fn merge(base: &mut Value, extra: &Value) {
    match (base, extra) {
        (Value::Object(b), Value::Object(e)) => {
            for (k, v) in e {
                merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, e) => *b = e.clone(),
    }
}

impl Gateway {
    pub async fn start(install: &'static Install, options: Options) -> Gateway {
        let stub = StubModel::start().await;
        let home = tempfile::Builder::new().prefix("openclaw-home-").tempdir().unwrap();
        let port = free_port();
        let token = format!("gw-token-{}", uuid::Uuid::now_v7().simple());
        let mut config = json!({
            "gateway": {
                "mode": "local", "bind": "loopback", "port": port,
                "auth": {"mode": "token", "token": token},
                "http": {"endpoints": {"chatCompletions": {"enabled": options.chat_completions}}},
            },
            "models": {"providers": {"stub": {
                "api": "openai-completions", "baseUrl": stub.base_url(), "apiKey": "stub-key",
                "models": [{"id": "stub-model", "name": "Stub model"}],
            }}},
            "agents": {"defaults": {"model": {"primary": "stub/stub-model"}}},
        });
        merge(&mut config, &options.extra);
        let state = home.path().join(".openclaw");
        std::fs::create_dir_all(state.join("agents/main/agent")).unwrap();
        std::fs::write(state.join("openclaw.json"), serde_json::to_string_pretty(&config).unwrap()).unwrap();
        // The agent's own settings: no same-model retries, so a provider failure reaches the
        // gateway's answer in seconds rather than after OpenClaw's 90 s of retries.
        std::fs::write(state.join("agents/main/agent/settings.json"), r#"{"retry": {"provider": {"maxRetries": 0}}}"#)
            .unwrap();
        let mut g = Gateway { install, home, port, token, stub, child: None, log: PathBuf::new() };
        g.spawn();
        g.wait_ready().await;
        g
    }

    fn spawn(&mut self) {
        self.log = self.home.path().join(format!("gateway-{}.log", uuid::Uuid::now_v7().simple()));
        let log = std::fs::File::create(&self.log).unwrap();
        let mut cmd = Command::new(&self.install.cli);
        isolate(&mut cmd, self.home.path());
        cmd.env("PATH", self.install.path(&[]))
            .args(["gateway", "run", "--port", &self.port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        self.child = Some(cmd.spawn().unwrap());
    }

    async fn wait_ready(&mut self) {
        let http = crate::support::http_client();
        let started = Instant::now();
        loop {
            if let Ok(r) = http.get(format!("{}/readyz", self.url())).send().await
                && r.status().is_success()
            {
                return;
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("the OpenClaw gateway exited ({status})\n{}", self.log_text());
            }
            if started.elapsed() > Duration::from_secs(90) {
                panic!("the OpenClaw gateway did not get ready in 90 s\n{}", self.log_text());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Its `openclaw.json`.
    pub fn config_path(&self) -> PathBuf {
        self.home.path().join(".openclaw/openclaw.json")
    }

    pub fn log_text(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let start = text.len().saturating_sub(8000);
        let start = (start..text.len()).find(|i| text.is_char_boundary(*i)).unwrap_or(text.len());
        format!("----- OpenClaw gateway log ({}) -----\n{}", self.log.display(), &text[start..])
    }

    /// Runs OpenClaw's CLI against this gateway's home.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        self.install.run(self.home.path(), args, &[])
    }

    /// Kills the gateway and its helper processes at once.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            #[cfg(unix)]
            // SAFETY: signalling the process group this gateway leads.
            unsafe {
                libc::kill(-(child.id() as i32), libc::SIGKILL);
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and home.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn();
        self.wait_ready().await;
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log_text());
        }
        self.kill();
    }
}
