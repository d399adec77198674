//! The PostgreSQL store's own behaviour (`storage.type: postgres`) on a real server the
//! tests start: the schema and `openclaw migrate` (status, dry run, too new), the password
//! never shown, TLS with a CA file, backup
//! advice, and `migrate --to` from SQLite. The suites that run on both stores (nodes,
//! tasks, output, events, crash recovery) run here with `OPENCLAW_TEST_STORE=postgres`;
//! several coordinators on one database are `failover`'s.

use std::time::Duration;

use serde_json::json;

use crate::postgres_server::{PgOptions, PgServer};
use crate::support::{Cluster, Proc, Settings, exec_skill};

/// The shared server, or None (with a loud note) where PostgreSQL is not installed;
/// under CI=true its absence fails the test.
fn server() -> Option<&'static PgServer> {
    let pg = crate::postgres_server::shared();
    if pg.is_none() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI: PostgreSQL's server binaries are missing");
        eprintln!("SKIPPED: PostgreSQL's server binaries (initdb, postgres) are not installed");
    }
    pg
}

fn on_pg() -> Settings {
    Settings { postgres: true, ..Settings::default() }
}

fn db_name(url: &str) -> &str {
    url.rsplit('/').next().unwrap().split('?').next().unwrap()
}

/// Runs `openclaw` with `args` against `cluster`'s config; returns (exit code, stdout, stderr).
fn run(cluster: &Cluster, args: &[&str]) -> (Option<i32>, String, String) {
    let o = cluster.cli(args);
    (o.status.code(), String::from_utf8_lossy(&o.stdout).into(), String::from_utf8_lossy(&o.stderr).into())
}

#[tokio::test]
async fn migrate_reports_creates_and_refuses_a_newer_schema() {
    let Some(pg) = server() else { return };
    let mut cluster = Cluster::new(on_pg());
    let db = db_name(cluster.pg_url.as_deref().unwrap()).to_string();
    // A new database: nothing yet, a dry run says what would happen and changes nothing.
    let (code, out, err) = run(&cluster, &["migrate", "--status"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("current schema: none") && out.contains("0001_init"), "{out}");
    let (code, out, _) = run(&cluster, &["migrate", "--dry-run"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("would create"), "{out}");
    assert_eq!(pg.psql(&db, "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"), "0");
    // A real run creates it; a second is a no-op.
    let (code, out, err) = run(&cluster, &["migrate"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("applied 0001_init"), "{out}");
    let (code, out, _) = run(&cluster, &["migrate"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("up to date"), "{out}");
    // The coordinator opens it and works.
    cluster.start_coordinator().await;
    let id = cluster.submit(json!({"name": "a", "required_skills": ["x"]})).await;
    assert_eq!(cluster.get(&format!("/api/v1/tasks/{id}")).await["status"], "pending");
    let mut c = cluster.coordinator.take().unwrap();
    c.term();
    assert!(c.wait_exit(Duration::from_secs(20)).await.success(), "{}", c.logs());
    // A database from a newer openclaw: both refuse, naming the versions, and change nothing.
    pg.psql(&db, "UPDATE openclaw_schema SET version = 99");
    let (code, out, err) = run(&cluster, &["migrate"]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(err.contains("schema 99") && err.contains("newer"), "{err}");
    let (code, out, err) = run(&cluster, &["migrate", "--status"]);
    assert_ne!(code, Some(0), "{out}{err}");
    let config = cluster.config.display().to_string();
    let mut c = Proc::spawn("coordinator-new", &["-c", &config, "coordinator"], &[], cluster.path(), &cluster.logs());
    assert!(!c.wait_exit(Duration::from_secs(30)).await.success());
    assert!(c.err().contains("schema 99") && c.err().contains("upgrade"), "{}", c.err());
    assert_eq!(pg.psql(&db, "SELECT version FROM openclaw_schema"), "99");
    assert_eq!(pg.psql(&db, "SELECT count(*) FROM tasks"), "1");
}

#[tokio::test]
async fn a_database_of_someone_else_is_refused() {
    let Some(pg) = server() else { return };
    let mut cluster = Cluster::new(on_pg());
    let db = db_name(cluster.pg_url.as_deref().unwrap()).to_string();
    pg.psql(&db, "CREATE TABLE invoices (id BIGINT)");
    let (code, _, err) = run(&cluster, &["migrate", "--status"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("not an openclaw store"), "{err}");
    let config = cluster.config.display().to_string();
    let mut c = Proc::spawn("coordinator", &["-c", &config, "coordinator"], &[], cluster.path(), &cluster.logs());
    assert!(!c.wait_exit(Duration::from_secs(30)).await.success());
    assert!(c.err().contains("not an openclaw store"), "{}", c.err());
    assert_eq!(pg.psql(&db, "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"), "1");
    cluster.coordinator = None;
}

/// `storage.password_file`, TLS with `sslmode=verify-full` and `storage.ca_file`: the
/// connection is encrypted (the server says so), the password appears in no log or error,
/// and a server certificate that the CA did not sign is refused with a message that names
/// the database without the password.
#[tokio::test]
async fn password_file_and_tls_verified_by_the_ca_file_and_the_password_never_shows() {
    if server().is_none() {
        return;
    }
    let pg = PgServer::start_with(PgOptions { tls: true }).unwrap();
    let password = "s3cret-Pw-7f1";
    pg.psql("postgres", &format!("CREATE ROLE app LOGIN PASSWORD '{password}'"));
    pg.psql("postgres", "CREATE DATABASE appdb OWNER app");
    let url = format!("postgres://app@localhost:{}/appdb?sslmode=verify-full", pg.port);
    let mut cluster = Cluster::new(Settings::default());
    std::fs::write(cluster.path().join("pgpass"), format!("{password}\n")).unwrap();
    let dir = cluster.path().display().to_string();
    cluster.set_storage(&format!(
        "  type: postgres\n  url: {url}\n  password_file: {dir}/pgpass\n  ca_file: {ca}\n",
        ca = pg.ca_file().display()
    ));
    cluster.start_coordinator().await;
    cluster.submit(json!({"name": "a", "required_skills": ["x"]})).await;
    let ssl = pg.psql(
        "appdb",
        "SELECT bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'openclaw'",
    );
    assert_eq!(ssl, "t", "every openclaw connection is TLS");
    let mut c = cluster.coordinator.take().unwrap();
    c.term();
    assert!(c.wait_exit(Duration::from_secs(20)).await.success());
    assert!(!c.logs().contains(password), "the password is in the coordinator's output:\n{}", c.logs());

    // Without the CA file, the test certificate is not trusted: refused, password unshown.
    let mut other = Cluster::new(Settings::default());
    other.set_storage(&format!(
        "  type: postgres\n  url: postgres://app:{password}@localhost:{}/appdb?sslmode=verify-full\n",
        pg.port
    ));
    let config = other.config.display().to_string();
    let mut c = Proc::spawn("coordinator", &["-c", &config, "coordinator"], &[], other.path(), &other.logs());
    assert!(!c.wait_exit(Duration::from_secs(30)).await.success());
    let err = c.err();
    assert!(err.contains("postgres://app:***@localhost") && err.to_lowercase().contains("certificate"), "{err}");
    assert!(!c.logs().contains(password), "{}", c.logs());
    // A wrong password is named as such, not shown.
    let (code, _, err) = run(&other, &["migrate", "--status", "--storage-url", &url.replace("app@", "app:wrong-pw@")]);
    assert_eq!(code, Some(1));
    assert!(!err.contains("wrong-pw") && err.contains("app:***@"), "{err}");
}

#[tokio::test]
async fn backup_of_a_postgres_store_says_to_use_pg_dump() {
    if server().is_none() {
        return;
    }
    let cluster = Cluster::start_with(on_pg()).await;
    let file = cluster.path().join("backup.db");
    let (code, _, err) = run(&cluster, &["backup", &file.display().to_string()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("pg_dump --format=custom") && err.contains("pg_restore"), "{err}");
    assert!(!file.exists());
    let (status, body) = cluster.api("GET", "/api/v1/backup", None).await;
    assert_eq!(status, 501, "{body}");
    assert_eq!(body["error"]["code"], "not_supported");
    assert!(body["error"]["message"].as_str().unwrap().contains("pg_dump"), "{body}");
}

/// `openclaw migrate --to`: nodes (with their secrets' hashes), tasks, events, output,
/// schedules and their runs of an SQLite store arrive in PostgreSQL with matching counts, a
/// coordinator on PostgreSQL serves them, and a target that holds rows is refused.
#[cfg(unix)]
#[tokio::test]
async fn migrate_to_copies_an_sqlite_store_into_postgres_and_refuses_a_non_empty_target() {
    let Some(pg) = server() else { return };
    let mut cluster = Cluster::start_with(Settings { postgres: false, ..Settings::default() }).await;
    assert!(cluster.pg_url.is_none() || crate::support::on_postgres());
    if cluster.pg_url.is_some() {
        return; // this test starts from SQLite; it runs in the SQLite pass
    }
    let skills = cluster.path().join("skills");
    exec_skill(&skills, "talk", "echo one\necho two >&2\necho '{\"ok\": true}'\n");
    let mut w = cluster.worker("w1", &skills, &[]);
    cluster.wait_online("w1", &["talk"]).await;
    let done = cluster.submit(json!({"name": "done", "required_skills": ["talk"]})).await;
    assert_eq!(cluster.wait_task(&done, 60).await["status"], "completed");
    let pending =
        cluster.submit(json!({"name": "later", "required_skills": ["nobody"], "idempotency_key": "k1"})).await;
    let schedule = json!({"name": "nightly", "cron": "0 3 * * *", "tz": "UTC", "task": {"name": "n", "required_skills": ["nobody"]}});
    let (status, body) = cluster.api("POST", "/api/v1/schedules", Some(schedule)).await;
    assert_eq!(status, 201, "{body}");
    let (status, fired) = cluster.api("POST", "/api/v1/schedules/nightly/run", None).await;
    assert!(status < 300, "{fired}");
    w.term();
    assert!(w.wait_exit(Duration::from_secs(20)).await.success());
    let mut c = cluster.coordinator.take().unwrap();
    c.term();
    assert!(c.wait_exit(Duration::from_secs(20)).await.success());
    let counts: Vec<(&str, i64)> = [
        "nodes",
        "tasks",
        "task_skills",
        "events",
        "task_output",
        "task_output_attempts",
        "schedules",
        "schedule_runs",
    ]
    .into_iter()
    .map(|t| (t, cluster.sql_int(&format!("SELECT count(*) FROM {t}"))))
    .collect();
    assert!(counts.iter().all(|(_, n)| *n > 0), "{counts:?}");

    let url = pg.fresh_db();
    let (code, out, err) = run(&cluster, &["migrate", "--to", &url]);
    assert_eq!(code, Some(0), "{out}{err}");
    let db = db_name(&url).to_string();
    for (table, n) in &counts {
        assert!(out.contains(&format!("{table}: {n} rows")), "{table}: {out}");
        assert_eq!(pg.psql(&db, &format!("SELECT count(*) FROM {table}")), n.to_string(), "{table}");
    }
    // The new columns came along too: the task a schedule submitted, the schedule's events.
    for sql in [
        "SELECT count(*) FROM tasks WHERE schedule IS NOT NULL",
        "SELECT count(*) FROM events WHERE schedule_id IS NOT NULL",
    ] {
        let n = cluster.sql_int(sql);
        assert!(n > 0, "{sql}");
        assert_eq!(pg.psql(&db, sql), n.to_string(), "{sql}");
    }
    // Again into the same database: refused, nothing doubled.
    let (code, out, err) = run(&cluster, &["migrate", "--to", &url]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(err.contains("is not empty"), "{err}");
    assert_eq!(pg.psql(&db, "SELECT count(*) FROM tasks"), counts[1].1.to_string());

    // The coordinator on PostgreSQL serves the copied history, output and keys.
    cluster.set_storage(&format!("  type: postgres\n  url: {url}\n"));
    cluster.start_coordinator().await;
    let task = cluster.get(&format!("/api/v1/tasks/{done}")).await;
    assert_eq!(task["status"], "completed", "{task}");
    let output = cluster.get(&format!("/api/v1/tasks/{done}/output")).await;
    let texts: Vec<&str> = output["lines"].as_array().unwrap().iter().map(|l| l["text"].as_str().unwrap()).collect();
    assert!(texts.contains(&"one") && texts.contains(&"two"), "{output}");
    let (status, again) = cluster
        .api(
            "POST",
            "/api/v1/tasks",
            Some(json!({"name": "later", "required_skills": ["nobody"], "idempotency_key": "k1"})),
        )
        .await;
    assert!(status < 300, "{again}");
    assert_eq!(again["task_id"], pending.as_str(), "the idempotency key came along");
    let runs = cluster.get("/api/v1/schedules/nightly/runs").await;
    let run = &runs["runs"][0];
    assert_eq!(run["outcome"], "fired", "{runs}");
    let task = cluster.get(&format!("/api/v1/tasks/{}", run["task_id"].as_str().unwrap())).await;
    assert_eq!(task["schedule"]["name"], "nightly", "the task's schedule came along: {task}");
    let w = cluster.worker("w1", &skills, &[]);
    cluster.wait_online("w1", &["talk"]).await;
    drop(w);
}

/// A heartbeat that changes nothing durable answers without waiting for other requests'
/// writes (a coordinator with 10,000 nodes writes their liveness every 2 s), while a
/// submission still answers only after its commit. The writer is held by a real lock on
/// the nodes table, taken from another session, while the liveness flush tries to write it.
#[tokio::test]
async fn a_heartbeat_does_not_wait_for_writes_it_does_not_show() {
    let Some(pg) = server() else { return };
    let cluster = Cluster::start_with(on_pg()).await;
    let db = db_name(cluster.pg_url.as_deref().unwrap()).to_string();
    let secret = cluster.register("n1", &["echo"], 2).await;
    let heartbeat =
        || cluster.call("POST", "/api/v1/nodes/n1/heartbeat", Some(&secret), Some(r#"{"cpu_usage": 10.0}"#));
    let mut holder = pg.session(&db);
    holder.run("BEGIN; LOCK TABLE nodes IN ACCESS EXCLUSIVE MODE;");
    // The heartbeat's figures are flushed within 2 s: the writer then waits for the lock.
    assert_eq!(heartbeat().await.0, 200);
    let waiting =
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()";
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while pg.psql(&db, waiting) == "0" {
        assert!(std::time::Instant::now() < deadline, "the liveness flush never waited for the lock");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The writer is stuck behind the lock: a heartbeat still answers (the bound only
    // keeps a regression from hanging the suite)...
    let (status, body) = tokio::time::timeout(Duration::from_secs(20), heartbeat())
        .await
        .expect("a heartbeat waited for the liveness flush of the other nodes");
    assert_eq!(status, 200, "{body}");
    // ...and a submission does not, until the writer can commit it.
    let submit = cluster.api("POST", "/api/v1/tasks", Some(json!({"name": "t", "required_skills": ["echo"]})));
    let mut submit = Box::pin(submit);
    assert!(
        tokio::time::timeout(Duration::from_millis(500), &mut submit).await.is_err(),
        "a submission answered before its commit"
    );
    holder.run("COMMIT;");
    let (status, task) = submit.await;
    assert_eq!(status, 201, "{task}");
    let id = task["task_id"].as_str().unwrap();
    assert_eq!(pg.psql(&db, &format!("SELECT count(*) FROM tasks WHERE task_id = '{id}'")), "1");
}
