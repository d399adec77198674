//! A real PostgreSQL server for the tests and the benchmarks: `initdb` into a temp dir and
//! `pg_ctl`/`postgres` on a free loopback port, its socket in the same dir. PostgreSQL
//! refuses to run as root, so when the tests run as root the server runs as `nobody` (its
//! files are chowned to it); otherwise as the current user. Trust authentication on
//! loopback for the test role, plus an optional password role and TLS (a self-signed
//! certificate made by the harness) for the tests of `storage.password_file` and `sslmode`.
//! SIGKILL, restart on the same port and data, and a clean stop. Shared by `tests/it`, the
//! library's unit tests (`store::testing`) and `benches/load.rs` (included there by path).
//!
//! [`shared`] is one server for a whole test process, a database per test ([`PgServer::fresh_db`]):
//! starting a server costs about a second, a database a few milliseconds. The server dies
//! with the process (Linux's parent-death signal, from a thread that lives as long as the
//! process) and its folder is removed at exit.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The unprivileged account the server runs as when the tests run as root.
const RUN_AS: &str = "nobody";

/// A real PostgreSQL server; SIGKILLed (with its children) on drop.
pub struct PgServer {
    dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
}

/// Finds a PostgreSQL server binary: `$PATH`, then Debian's versioned folders.
pub fn binary(name: &str) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join(name)).collect::<Vec<_>>())
        .unwrap_or_default();
    let debian = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            let mut v: Vec<PathBuf> = rd.flatten().map(|e| e.path().join("bin").join(name)).collect();
            v.sort();
            v.reverse();
            v
        })
        .unwrap_or_default();
    on_path.into_iter().chain(debian).find(|p| p.is_file())
}

/// Whether a PostgreSQL server can run here; under CI=true its absence fails the test.
pub fn installed() -> bool {
    let found = binary("initdb").is_some() && binary("postgres").is_some();
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "PostgreSQL's server binaries (initdb, postgres) are missing: CI needs them (apt-get install postgresql; .ci/run does this)"
        );
        eprintln!("skipped: PostgreSQL's server binaries are not installed (apt-get install postgresql)");
    }
    found
}

fn running_as_root() -> bool {
    #[cfg(unix)]
    {
        // SAFETY: geteuid has no preconditions and cannot fail.
        unsafe { libc::geteuid() == 0 }
    }
    #[cfg(not(unix))]
    {
        false
    }
}

/// A command that runs `program` as the server's account: the process itself (no wrapper
/// in between), so that killing the child is killing the server.
fn as_server_user(program: &Path) -> Command {
    let mut cmd = Command::new(program);
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe; it runs in the child after the uid change
        // (which would clear it) and before exec. The server then dies with the thread that
        // started it, so a test process that ends for any reason leaves no server behind.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    #[cfg(unix)]
    if running_as_root() {
        use std::os::unix::process::CommandExt;
        let id = |flag: &str| -> u32 {
            let out = Command::new("id").args([flag, RUN_AS]).output().expect("run id");
            String::from_utf8_lossy(&out.stdout).trim().parse().expect("a numeric id")
        };
        cmd.uid(id("-u")).gid(id("-g"));
    }
    cmd
}

fn chown_to_server_user(path: &Path) {
    if running_as_root() {
        let status = Command::new("chown").args(["-R", &format!("{RUN_AS}:")]).arg(path).status().expect("chown");
        assert!(status.success(), "chown -R {RUN_AS} {} failed", path.display());
    }
}

/// A port nobody listens on now (PostgreSQL has no port-0 mode; a start that loses the
/// race is retried on another port).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One server for the whole process (None when PostgreSQL is not installed, outside CI),
/// started from a thread that never ends, so that the parent-death signal fires only when
/// the process exits; its files are removed at exit.
pub fn shared() -> Option<&'static PgServer> {
    static SERVER: std::sync::OnceLock<Option<PgServer>> = std::sync::OnceLock::new();
    SERVER
        .get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let server = PgServer::start();
                if let Some(s) = &server {
                    *SHARED_FILES.lock().unwrap() =
                        Some((s.child.as_ref().map(|c| c.id()).unwrap_or(0), s.dir.path().to_path_buf()));
                    // SAFETY: registering a plain extern "C" function.
                    unsafe { libc::atexit(remove_shared) };
                }
                tx.send(server).unwrap();
                loop {
                    std::thread::park();
                }
            });
            rx.recv().unwrap()
        })
        .as_ref()
}

/// The shared server's pid and folder, for [`remove_shared`].
static SHARED_FILES: std::sync::Mutex<Option<(u32, PathBuf)>> = std::sync::Mutex::new(None);

extern "C" fn remove_shared() {
    if let Ok(mut files) = SHARED_FILES.lock()
        && let Some((pid, dir)) = files.take()
    {
        #[cfg(unix)]
        // SAFETY: signalling the server this process started.
        unsafe {
            libc::kill(pid as i32, libc::SIGKILL);
        }
        // Its backends notice and exit; give them a moment before the files go.
        std::thread::sleep(Duration::from_millis(100));
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Options of a test server.
#[derive(Debug, Clone, Default)]
pub struct PgOptions {
    /// Also listen with TLS (a self-signed certificate; `ca_file()` is it).
    pub tls: bool,
}

impl PgServer {
    /// A new cluster on a free port, trust authentication for `postgres` on loopback.
    /// `None` when PostgreSQL is not installed (outside CI).
    pub fn start() -> Option<PgServer> {
        Self::start_with(PgOptions::default())
    }

    pub fn start_with(options: PgOptions) -> Option<PgServer> {
        if !installed() {
            return None;
        }
        let dir = tempfile::Builder::new().prefix("openclaw-pg-").tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(dir.path().join("pwfile"), "postgres\n").unwrap();
        chown_to_server_user(dir.path());
        // The temp dir itself is 0700 root's: the server's account must reach its files.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
            std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
        }
        let initdb = binary("initdb").unwrap();
        let out = as_server_user(&initdb)
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"])
            .stdin(Stdio::null())
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // Loopback TCP: trust for the test role `postgres`, passwords (scram) for others.
        let hba = "local all all trust\n\
                   host all postgres 127.0.0.1/32 trust\n\
                   host all all 127.0.0.1/32 scram-sha-256\n\
                   hostssl all all 127.0.0.1/32 scram-sha-256\n";
        std::fs::write(data.join("pg_hba.conf"), hba).unwrap();
        let mut conf = String::from(
            "listen_addresses = '127.0.0.1'\nmax_connections = 200\nfsync = on\nsynchronous_commit = on\n\
             log_destination = 'stderr'\nlogging_collector = off\n",
        );
        if options.tls {
            make_certificate(dir.path());
            conf.push_str(&format!(
                "ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\n",
                dir.path().join("server.crt").display(),
                dir.path().join("server.key").display()
            ));
            chown_to_server_user(dir.path());
        }
        std::fs::write(data.join("postgresql.auto.conf"), conf).unwrap();
        let mut server = PgServer { dir, port: 0, child: None };
        let mut tries = 0;
        loop {
            match server.spawn(free_port()) {
                Ok(()) => break,
                Err(log) if tries < 5 && log.contains("could not bind") => tries += 1,
                Err(log) => panic!("PostgreSQL did not start:\n{log}"),
            }
        }
        Some(server)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// Starts `postgres` in the foreground (so a SIGKILL of the child is a crash) and waits
    /// until it accepts connections.
    fn spawn(&mut self, port: u16) -> Result<(), String> {
        let log = std::fs::File::create(self.log_path()).unwrap();
        chown_to_server_user(&self.log_path());
        let postgres = binary("postgres").unwrap();
        let mut child = as_server_user(&postgres)
            .arg("-D")
            .arg(self.data())
            .args(["-p", &port.to_string(), "-k"])
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start postgres");
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return Err(format!("postgres exited ({status}):\n{}", self.log()));
            }
            if self.log().contains("database system is ready to accept connections")
                && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            {
                break;
            }
            if started.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                return Err(format!("postgres did not start within 60 s:\n{}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        self.port = port;
        self.child = Some(child);
        Ok(())
    }

    /// A connection URL for database `db` as the trusted test role.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Runs SQL with `psql` as the test role (for set-up: databases, roles).
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let psql = binary("psql").expect("psql");
        let out = Command::new(psql)
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-h", "127.0.0.1", "-U", "postgres"])
            .args(["-p", &self.port.to_string(), "-d", db, "-c", sql])
            .output()
            .expect("run psql");
        assert!(out.status.success(), "psql {sql:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// A `psql` session kept open on database `db` (to hold a transaction, a lock).
    pub fn session(&self, db: &str) -> PgSession {
        let psql = binary("psql").expect("psql");
        let mut child = Command::new(psql)
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-h", "127.0.0.1", "-U", "postgres"])
            .args(["-p", &self.port.to_string(), "-d", db])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("run psql");
        let stdin = child.stdin.take().unwrap();
        let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        PgSession { child, stdin, stdout, done: 0 }
    }

    /// A new empty database with a name of its own; its URL.
    pub fn fresh_db(&self) -> String {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.create_db(&format!("t{}_{n}", std::process::id()))
    }

    /// A new empty database; its URL.
    pub fn create_db(&self, name: &str) -> String {
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""));
        self.url(name)
    }

    /// The CA that signed the certificate a TLS server presents (`PgOptions::tls`).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// SIGKILL of the postmaster: a crash (its backends exit when they notice).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            // The backends of a killed postmaster exit on their own; the next start waits
            // for the old shared memory to be released.
        }
    }

    /// A clean, fast shutdown (SIGINT: fast mode).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            #[cfg(unix)]
            {
                let _ = Command::new("kill").args(["-INT", &c.id().to_string()]).status();
            }
            let _ = c.wait();
        }
    }

    /// A crash, then the same port and data again (crash recovery runs).
    pub fn restart(&mut self) {
        self.kill();
        let port = self.port;
        let started = Instant::now();
        // The old backends may hold the port or shared memory for a moment after a SIGKILL.
        loop {
            match self.spawn(port) {
                Ok(()) => return,
                Err(log) if started.elapsed() < Duration::from_secs(30) => {
                    let _ = log;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(log) => panic!("PostgreSQL did not restart:\n{log}"),
            }
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }
}

/// A self-signed certificate for 127.0.0.1 and localhost, with `openssl` (present wherever
/// PostgreSQL's Debian package is).
fn make_certificate(dir: &Path) {
    // A CA and a server certificate it signs (a self-signed certificate is a CA, which a
    // verifying client refuses as a server's own).
    std::fs::write(dir.join("server.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
        .unwrap();
    let openssl = |args: &[&str]| {
        let status = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run openssl");
        assert!(status.success(), "openssl {args:?} could not make a test certificate");
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=openclaw test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "server.ext",
        "-out",
        "server.crt",
    ]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.join("server.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- PostgreSQL log ({}) ---\n{}", self.log_path().display(), self.log());
        }
        self.kill();
    }
}

#[test]
fn a_test_server_starts_takes_sql_survives_a_crash_and_stops() {
    let Some(mut pg) = PgServer::start() else { return };
    pg.create_db("probe");
    pg.psql("probe", "CREATE TABLE t (v int); INSERT INTO t VALUES (1)");
    pg.restart();
    assert_eq!(pg.psql("probe", "SELECT count(*) FROM t"), "1", "a committed row survives SIGKILL");
    pg.stop();
    assert!(std::net::TcpStream::connect(("127.0.0.1", pg.port)).is_err(), "the server stopped");
}

#[test]
fn a_tls_test_server_serves_tls() {
    let Some(pg) = PgServer::start_with(PgOptions { tls: true }) else { return };
    assert_eq!(pg.psql("postgres", "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"), "t");
    assert!(pg.ca_file().is_file());
}

/// An open `psql` session; killed on drop (its transaction then rolls back).
pub struct PgSession {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    stdout: std::io::BufReader<std::process::ChildStdout>,
    done: u32,
}

impl PgSession {
    /// Runs `sql` and returns once psql has run it (its output up to a marker line).
    pub fn run(&mut self, sql: &str) -> String {
        use std::io::{BufRead, Write};
        self.done += 1;
        let marker = format!("done-{}", self.done);
        writeln!(self.stdin, "{sql}\n\\echo {marker}").expect("write to psql");
        self.stdin.flush().expect("write to psql");
        let mut out = String::new();
        loop {
            let mut line = String::new();
            assert!(self.stdout.read_line(&mut line).expect("read psql") > 0, "psql ended running {sql:?}: {out}");
            if line.trim() == marker {
                return out;
            }
            out.push_str(&line);
        }
    }
}

impl Drop for PgSession {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
