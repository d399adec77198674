//! The store: schema versions, migrations with backups, the one-process lock, bad files,
//! and a clean stop.

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

use crate::support::{Cluster, Proc, Settings, cli, show};

const INIT_SQL: &str = include_str!("../../src/store/sqlite/migrations/0001_init.sql");

fn user_version(db: &Path) -> i64 {
    Connection::open(db).unwrap().pragma_query_value(None, "user_version", |r| r.get(0)).unwrap()
}

fn count(db: &Path, table: &str) -> i64 {
    Connection::open(db).unwrap().query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0)).unwrap()
}

/// A database at schema 1 with one node and one task, as an older binary left it.
fn schema_1_fixture(db: &Path) {
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let c = Connection::open(db).unwrap();
    c.execute_batch(INIT_SQL).unwrap();
    c.execute_batch(
        "INSERT INTO nodes (node_id, hostname, platform, arch, max_concurrent_tasks, status, registered_at, secret_hash)
           VALUES ('old-node', 'old.local', 'linux', 'x64', 5, 'offline', 1700000000000, 'x');
         INSERT INTO tasks (task_id, seq, name, task_type, priority, required_skills, timeout_ms, max_retries, status, submitted_at, completed_at)
           VALUES ('task_old', 1, 'old', 'batch', 2, '[\"echo\"]', 60000, 3, 'completed', unixepoch() * 1000, unixepoch() * 1000);
         INSERT INTO task_events (task_id, at, event, status, attempt, node_id)
           VALUES ('task_old', unixepoch() * 1000, 'completed', 'completed', 1, 'old-node');
         PRAGMA user_version = 1;",
    )
    .unwrap();
}

#[cfg(unix)]
#[tokio::test]
async fn a_new_database_is_created_at_the_current_schema_with_private_files() {
    use std::os::unix::fs::PermissionsExt;
    let cluster = Cluster::start().await;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(user_version(&cluster.db()), openclaw::store::sqlite::schema::LATEST as i64);
    assert_eq!(mode(&cluster.path().join("data")), 0o700);
    assert_eq!(mode(&cluster.db()), 0o600);
    assert_eq!(mode(&cluster.path().join("data/admin.token")), 0o600);
    assert_eq!(mode(&cluster.path().join("data/worker.token")), 0o600);
    assert!(cluster.admin().len() >= 43, "256 random bits, URL-safe");
    assert_ne!(cluster.admin(), cluster.worker_token());
    let log = cluster.coordinator.as_ref().unwrap().out();
    assert!(log.contains("admin.token") && !log.contains(&cluster.admin()), "the log names token paths, never values");
}

/// Issue 17, item 9: the coordinator's copy behind `GET /api/v1/backup` (and `migrate`'s)
/// was made by SQLite with mode 0644 beside a 0600 database: `backup_into` makes it 0600.
#[cfg(unix)]
#[test]
fn a_backup_copy_is_private_and_never_overwrites() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let conn = rusqlite::Connection::open(dir.path().join("db")).unwrap();
    conn.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);").unwrap();
    let copy = dir.path().join("copy");
    openclaw::store::sqlite::backup_into(&conn, &copy).unwrap();
    assert_eq!(std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777, 0o600);
    let back = rusqlite::Connection::open(&copy).unwrap();
    assert_eq!(back.query_row("SELECT x FROM t", [], |r| r.get::<_, i64>(0)).unwrap(), 1);
    assert!(openclaw::store::sqlite::backup_into(&conn, &copy).is_err(), "an existing file is not overwritten");
}

#[tokio::test]
async fn an_older_database_needs_migrate_which_backs_up_first_and_is_idempotent() {
    let cluster = Cluster::new(Settings::default());
    let db = cluster.db();
    schema_1_fixture(&db);
    let config = cluster.config.display().to_string();

    // The coordinator refuses and says what to do.
    let mut c = Proc::spawn("coordinator", &["-c", &config, "coordinator"], &[], cluster.path(), &cluster.logs());
    let status = c.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(1), "{}", c.logs());
    assert!(
        c.err().contains("schema 1")
            && c.err().contains(&format!("needs {}", openclaw::store::sqlite::schema::LATEST))
            && c.err().contains("openclaw migrate"),
        "{}",
        c.logs()
    );

    let o = cli(&["-c", &config, "migrate", "--status"], &[], cluster.path());
    assert!(o.status.success(), "{}", show(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("current schema: 1") && text.contains("0002_task_queries"), "{text}");

    let before = std::fs::read(&db).unwrap();
    let o = cli(&["-c", &config, "migrate", "--dry-run"], &[], cluster.path());
    assert!(o.status.success(), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("0002_task_queries"));
    assert_eq!(std::fs::read(&db).unwrap(), before, "--dry-run changed the database");
    assert_eq!(user_version(&db), 1);

    let o = cli(&["-c", &config, "migrate"], &[], cluster.path());
    assert!(o.status.success(), "{}", show(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let backup =
        out.lines().find_map(|l| l.strip_prefix("backup: ")).unwrap_or_else(|| panic!("no backup line: {out}"));
    let backup = Path::new(backup);
    assert_eq!(user_version(backup), 1, "the backup is the database as it was");
    assert_eq!((count(backup, "nodes"), count(backup, "tasks")), (1, 1));
    assert_eq!(user_version(&db), openclaw::store::sqlite::schema::LATEST as i64);
    assert_eq!((count(&db, "nodes"), count(&db, "tasks"), count(&db, "events")), (1, 1, 1), "migration kept the rows");

    let backups = |dir: &Path| {
        std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().contains(".backup-"))
            .count()
    };
    let o = cli(&["-c", &config, "migrate"], &[], cluster.path());
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("up to date"), "{}", show(&o));
    assert_eq!(backups(db.parent().unwrap()), 1, "a second run is a no-op");

    // Now the coordinator starts and still knows the old node.
    let mut cluster = cluster;
    cluster.start_coordinator().await;
    assert_eq!(cluster.node("old-node").await["status"], "offline");
    let old = cluster.get("/api/v1/tasks/task_old").await;
    assert_eq!(old["status"], "completed");
    assert_eq!(old["events"][0]["node_id"], "old-node", "the history moved with the migration: {old}");
    assert_eq!(
        cluster.get("/api/v1/tasks?skill=echo").await["tasks"][0]["task_id"],
        "task_old",
        "the skill index was filled"
    );
}

#[tokio::test]
async fn a_newer_database_is_refused_by_coordinator_and_migrate() {
    let cluster = Cluster::new(Settings::default());
    std::fs::create_dir_all(cluster.db().parent().unwrap()).unwrap();
    Connection::open(cluster.db())
        .unwrap()
        .execute_batch("CREATE TABLE future (x); PRAGMA user_version = 99;")
        .unwrap();
    let config = cluster.config.display().to_string();
    let mut c = Proc::spawn("coordinator", &["-c", &config, "coordinator"], &[], cluster.path(), &cluster.logs());
    assert_eq!(c.wait_exit(Duration::from_secs(10)).await.code(), Some(1), "{}", c.logs());
    assert!(c.err().contains("schema 99") && c.err().contains("newer"), "{}", c.logs());
    let o = cli(&["-c", &config, "migrate"], &[], cluster.path());
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("99"), "{}", show(&o));
    assert_eq!(user_version(&cluster.db()), 99);
}

#[tokio::test]
async fn a_file_that_is_not_sqlite_is_refused_and_left_untouched() {
    let cluster = Cluster::new(Settings::default());
    std::fs::create_dir_all(cluster.db().parent().unwrap()).unwrap();
    let junk: Vec<u8> = (0..8192u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(cluster.db(), &junk).unwrap();
    let config = cluster.config.display().to_string();
    let mut c = Proc::spawn("coordinator", &["-c", &config, "coordinator"], &[], cluster.path(), &cluster.logs());
    assert_eq!(c.wait_exit(Duration::from_secs(10)).await.code(), Some(1), "{}", c.logs());
    assert!(c.err().contains("not an SQLite database"), "{}", c.logs());
    for args in [vec!["migrate", "--status"], vec!["migrate"]] {
        let mut all = vec!["-c", config.as_str()];
        all.extend(args);
        let o = cli(&all, &[], cluster.path());
        assert_eq!(o.status.code(), Some(1), "{}", show(&o));
        assert!(String::from_utf8_lossy(&o.stderr).contains("not an SQLite database"), "{}", show(&o));
    }
    assert_eq!(std::fs::read(cluster.db()).unwrap(), junk, "the file was changed");
    let entries: Vec<String> = std::fs::read_dir(cluster.db().parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!entries.iter().any(|e| e.contains("-wal") || e.contains(".backup-")), "{entries:?}");
}

#[tokio::test]
async fn somebody_elses_database_is_refused() {
    let cluster = Cluster::new(Settings::default());
    std::fs::create_dir_all(cluster.db().parent().unwrap()).unwrap();
    Connection::open(cluster.db()).unwrap().execute_batch("CREATE TABLE nodes (id TEXT);").unwrap();
    let config = cluster.config.display().to_string();
    let mut c = Proc::spawn("coordinator", &["-c", &config, "coordinator"], &[], cluster.path(), &cluster.logs());
    assert_eq!(c.wait_exit(Duration::from_secs(10)).await.code(), Some(1), "{}", c.logs());
    assert!(c.err().contains("not an openclaw store"), "{}", c.logs());
}

#[tokio::test]
async fn a_second_process_on_the_same_database_is_refused_naming_the_lock_and_pid() {
    let mut cluster = Cluster::start().await;
    let config = cluster.config.display().to_string();
    let first_pid = cluster.coordinator.as_ref().unwrap().pid();
    let mut second = Proc::spawn(
        "coordinator-2",
        &["-c", &config, "coordinator", "--port", "0"],
        &[],
        cluster.path(),
        &cluster.logs(),
    );
    assert_eq!(second.wait_exit(Duration::from_secs(10)).await.code(), Some(1), "{}", second.logs());
    let err = second.err();
    assert!(err.contains("cluster.db.lock") && err.contains(&format!("PID {first_pid}")), "{}", second.logs());
    assert!(!err.contains("database is locked"));

    let o = cli(&["-c", &config, "migrate"], &[], cluster.path());
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cluster.db.lock"), "{}", show(&o));

    // A lock left by a killed process does not block the next start.
    cluster.kill_coordinator();
    cluster.start_coordinator().await;
}

#[cfg(unix)]
#[tokio::test]
async fn sigterm_stops_cleanly_with_database_and_tokens_intact() {
    let mut cluster = Cluster::start().await;
    cluster.register("n1", &["echo"], 2).await;
    let admin = cluster.admin();
    let c = cluster.coordinator.as_mut().unwrap();
    c.term();
    let status = c.wait_exit(Duration::from_secs(20)).await;
    assert_eq!(status.code(), Some(0), "{}", c.logs());
    assert!(c.out().contains("coordinator stopped"));
    assert_eq!(user_version(&cluster.db()), openclaw::store::sqlite::schema::LATEST as i64);
    assert_eq!(count(&cluster.db(), "nodes"), 1);
    let integrity: String =
        Connection::open(cluster.db()).unwrap().query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(integrity, "ok");
    cluster.start_coordinator().await;
    assert_eq!(cluster.admin(), admin, "tokens survive a restart");
    assert_eq!(cluster.node("n1").await["node_id"], "n1");
}

/// Regression (issue 14): the lock was keyed by the path given, so a second coordinator
/// reached the same database through a symbolic link and every task ran twice. A hard link
/// (another name, its own `-wal` file) must be refused too.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_second_coordinator_through_a_symlink_or_a_hard_link_is_refused() {
    let cluster = Cluster::start().await;
    let first_pid = cluster.coordinator.as_ref().unwrap().pid();
    let elsewhere = cluster.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::os::unix::fs::symlink(cluster.db(), elsewhere.join("link.db")).unwrap();
    std::fs::hard_link(cluster.db(), elsewhere.join("hard.db")).unwrap();
    let config = cluster.config.display().to_string();
    for (name, needle) in [("link.db", "cluster.db.lock"), ("hard.db", "hard.db")] {
        let db = elsewhere.join(name).display().to_string();
        let mut second = Proc::spawn(
            &format!("coordinator-{name}"),
            &["-c", &config, "coordinator", "--port", "0", "--db-path", &db],
            &[],
            cluster.path(),
            &cluster.logs(),
        );
        let status = second.wait_exit(Duration::from_secs(10)).await;
        assert_eq!(status.code(), Some(1), "{name}: {}", second.logs());
        let err = second.err();
        assert!(
            err.contains("the database is in use") && err.contains(needle) && err.contains(&format!("PID {first_pid}")),
            "{name}: {}",
            second.logs()
        );
        assert!(!elsewhere.join(format!("{name}-wal")).exists(), "{name}: SQLite was opened before the lock");
    }
    // The first coordinator goes on undisturbed.
    cluster.submit(serde_json::json!({"name": "after", "required_skills": ["x"]})).await;
    let integrity: String =
        Connection::open(cluster.db()).unwrap().query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(integrity, "ok");
}

/// Runs the coordinator to its exit as a user that file modes apply to: as root (CI runs
/// as root, and root writes through any mode) the test chowns the folder to `nobody` and
/// starts the coordinator as `nobody`.
#[cfg(unix)]
fn coordinator_without_privilege(cluster: &Cluster) -> std::process::Output {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new(crate::support::BIN);
    cmd.args(["-c", &cluster.config.display().to_string(), "coordinator"])
        .current_dir(cluster.path())
        .env_remove("OPENCLAW_TOKEN")
        .env_remove("RUST_LOG");
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        const NOBODY: u32 = 65534;
        for entry in walk(cluster.path()) {
            std::os::unix::fs::lchown(&entry, Some(NOBODY), Some(NOBODY)).unwrap();
        }
        cmd.uid(NOBODY).gid(NOBODY);
    }
    cmd.output().unwrap()
}

#[cfg(unix)]
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() && !path.is_symlink() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Regression (issue 14): a coordinator that could not write answered `/health`, then died
/// on its first write — a crash loop under `Restart=`. Now it stops at start with exit 3,
/// naming what it cannot write.
#[cfg(unix)]
#[tokio::test]
async fn a_coordinator_that_cannot_write_stops_at_start_with_exit_3() {
    use std::os::unix::fs::PermissionsExt;
    let mut cluster = Cluster::start().await;
    let c = cluster.coordinator.as_mut().unwrap();
    c.term();
    assert_eq!(c.wait_exit(Duration::from_secs(20)).await.code(), Some(0), "{}", c.logs());
    let data = cluster.path().join("data");
    let mode = |path: &Path, mode: u32| std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();

    // A read-only database file.
    mode(&cluster.db(), 0o444);
    let o = coordinator_without_privilege(&cluster);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(3), "{}", show(&o));
    assert!(err.contains(&format!("cannot write {}", cluster.db().display())), "{}", show(&o));
    assert!(!String::from_utf8_lossy(&o.stdout).contains("coordinator ready"), "{}", show(&o));

    // A read-only folder.
    mode(&cluster.db(), 0o600);
    mode(&data, 0o500);
    let o = coordinator_without_privilege(&cluster);
    mode(&data, 0o700);
    assert_eq!(o.status.code(), Some(3), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains(&format!("cannot write {}", data.display())), "{}", show(&o));

    // Writable again: it starts (as root, the files now belong to nobody: root still writes).
    cluster.start_coordinator().await;
}

/// Regression (core review): a failed write called `process::exit(1)` from the writer, so the
/// non-blocking log writer could lose the ERROR that explained it. Now a store failure stops
/// the coordinator through its shutdown path: the ERROR is logged, the exit code is 1, and
/// nothing acknowledged is lost. The fault is real: the process may not grow files past
/// RLIMIT_FSIZE, so SQLite's writes fail as on a full disk.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_failed_write_stops_the_coordinator_cleanly_and_loses_nothing_acknowledged() {
    let mut cluster = Cluster::new(Settings::default());
    let config = cluster.config.display().to_string();
    let limit: u64 = 3 * 1024 * 1024;
    let mut c = Proc::spawn_with(
        "coordinator-limited",
        &["-c", &config, "coordinator"],
        &[],
        cluster.path(),
        &cluster.logs(),
        |cmd| {
            use std::os::unix::process::CommandExt;
            // SAFETY: only async-signal-safe calls between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                    let lim = libc::rlimit { rlim_cur: limit, rlim_max: limit };
                    if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        },
    );
    c.wait_for_output("coordinator ready on ", Duration::from_secs(20)).await;
    let out = c.out();
    let line = out.lines().find(|l| l.contains("coordinator ready on ")).unwrap();
    let port: String = line[line.find("127.0.0.1:").unwrap() + 10..].chars().take_while(char::is_ascii_digit).collect();
    let url = format!("http://127.0.0.1:{port}");
    let http = crate::support::http_client();
    let admin = cluster.admin();
    let big = "x".repeat(100_000);
    let mut acked = Vec::new();
    let mut refused = None;
    for i in 0..200 {
        let r = http
            .post(format!("{url}/api/v1/tasks"))
            .bearer_auth(&admin)
            .json(&serde_json::json!({"name": format!("t{i}"), "required_skills": ["x"], "parameters": {"pad": big}}))
            .send()
            .await;
        match r {
            Ok(r) if r.status() == 201 => {
                acked.push(r.json::<serde_json::Value>().await.unwrap()["task_id"].as_str().unwrap().to_string())
            }
            Ok(r) => {
                refused = Some((r.status().as_u16(), r.text().await.unwrap()));
                break;
            }
            Err(e) => {
                refused = Some((0, e.to_string()));
                break;
            }
        }
    }
    let (status, body) = refused.expect("the file size limit was never reached");
    assert!(status == 0 || status == 503, "{status}: {body}");
    assert_eq!(c.wait_exit(Duration::from_secs(30)).await.code(), Some(1), "{}", c.logs());
    let error = c.out().lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()).find(|v| {
        v["level"] == "ERROR" && v["message"].as_str().unwrap_or("").contains("cannot write to the database")
    });
    assert!(error.is_some(), "the ERROR explaining the stop was not logged\n{}", c.logs());
    assert!(c.err().contains("a write to the database"), "{}", c.logs());
    assert!(!acked.is_empty());
    // Without the limit, everything acknowledged is there.
    cluster.coordinator = None;
    cluster.port = 0;
    cluster.start_coordinator().await;
    for id in &acked {
        let (status, _) = cluster.api("GET", &format!("/api/v1/tasks/{id}"), None).await;
        assert_eq!(status, 200, "acknowledged task {id} was lost");
    }
}
