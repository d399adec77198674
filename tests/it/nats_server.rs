//! A real `nats-server -js` for the tests and the benchmarks: a random loopback port read
//! back from `--ports_file_dir`, a temp store, SIGKILL and restart on the same port and
//! store. Shared by `tests/it` and `benches/load.rs` (included there by path).

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A real nats-server with JetStream on a random port and a temp store; SIGKILLed on drop.
pub struct NatsServer {
    dir: tempfile::TempDir,
    pub port: u16,
    conf: Option<PathBuf>,
    child: Option<Child>,
}

/// Whether nats-server can run here; under CI=true its absence fails the test.
pub fn installed() -> bool {
    let found = Command::new("nats-server").arg("--version").output().is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "nats-server is not installed: CI needs it (apt-get install nats-server; .ci/run does this)"
        );
        eprintln!("skipped: nats-server is not installed (apt-get install nats-server)");
    }
    found
}

impl NatsServer {
    /// A server on a random port; `conf` is extra server config (auth, limits). `None`
    /// when nats-server is not installed (outside CI).
    pub fn start(conf: Option<&str>) -> Option<NatsServer> {
        installed().then(|| Self::start_on(-1, conf))
    }

    /// A server on `port` (-1: random). A `store_dir:` line in `conf` (a whole server
    /// config, as shipped) is pointed at the temp store.
    pub fn start_on(port: i32, conf: Option<&str>) -> NatsServer {
        let dir = tempfile::Builder::new().prefix("openclaw-nats-").tempdir().unwrap();
        let store = dir.path().join("store");
        let conf = conf.map(|text| {
            let text: Vec<String> = text
                .lines()
                .map(|l| match l.split_once("store_dir:") {
                    Some((indent, _)) => format!("{indent}store_dir: {:?}", store.display().to_string()),
                    None => l.to_string(),
                })
                .collect();
            let path = dir.path().join("server.conf");
            std::fs::write(&path, text.join("\n")).unwrap();
            path
        });
        let mut s = NatsServer { dir, port: 0, conf, child: None };
        s.spawn(port);
        s
    }

    /// Starts the process and waits for its ports file (written once it listens).
    fn spawn(&mut self, port: i32) {
        let ports = self.dir.path().join("ports");
        let _ = std::fs::remove_dir_all(&ports);
        std::fs::create_dir_all(&ports).unwrap();
        let mut cmd = Command::new("nats-server");
        let mut store_in_conf = false;
        if let Some(conf) = &self.conf {
            cmd.arg("-c").arg(conf);
            store_in_conf = std::fs::read_to_string(conf).unwrap().contains("store_dir:");
        }
        cmd.args(["-js", "-a", "127.0.0.1", "-p", &port.to_string()]);
        if !store_in_conf {
            // nats-server refuses a store dir given twice.
            cmd.arg("-sd").arg(self.dir.path().join("store"));
        }
        cmd.arg("--ports_file_dir")
            .arg(&ports)
            .arg("-l")
            .arg(self.dir.path().join("server.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().expect("start nats-server");
        let file = ports.join(format!("nats-server_{}.ports", child.id()));
        let started = Instant::now();
        loop {
            if let Some(url) = std::fs::read_to_string(&file)
                .ok()
                .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                .and_then(|v| v["nats"][0].as_str().map(str::to_string))
            {
                self.port = url.rsplit(':').next().unwrap().parse().unwrap();
                break;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("nats-server exited ({status}):\n{}", self.log());
            }
            assert!(started.elapsed() < Duration::from_secs(20), "nats-server did not start:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = Some(child);
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// SIGKILL: a crash.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// A crash, then the same port, config and store again.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn(self.port as i32);
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log();
            eprintln!("----- nats-server log -----\n{}", &log[log.len().saturating_sub(4000)..]);
        }
        self.kill();
    }
}
