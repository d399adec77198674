//! Several coordinators on one PostgreSQL database (issue 19 items 3 to 5), as real
//! processes on a real server: exactly one leads, the others stand by (`/health` says so,
//! the API answers `503 not_leader` naming the leader), kill -9 of the leader under submit
//! load and with a real worker running tasks hands over to a standby with nothing
//! acknowledged lost and no task running twice at once, the CLI and the worker follow the
//! leader over several URLs, a PostgreSQL crash and restart mid-run loses nothing, and a
//! leader cut off from the database stops acting as one before its lease could be taken
//! over. Leadership is awaited through `/health`, never by sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{Cluster, Proc, Settings, Skill, free_port};

/// The shared server's presence, or None (with a loud note) where PostgreSQL is not
/// installed; under CI=true its absence fails the test.
fn have_postgres() -> bool {
    let ok = crate::postgres_server::shared().is_some();
    if !ok {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI: PostgreSQL's server binaries are missing");
        eprintln!("SKIPPED: PostgreSQL's server binaries (initdb, postgres) are not installed");
    }
    ok
}

/// Coordinators `c0`, `c1`, … of one cluster (one config, one data folder for the token
/// files, one database), each on a port of its own, and workers that know all of them.
struct Ha {
    cluster: Cluster,
    ports: Vec<u16>,
    procs: Vec<Option<Proc>>,
    starts: u32,
    /// `storage.url` per coordinator where it differs from the config's (a proxy).
    storage: Vec<Option<String>>,
}

impl Ha {
    fn new(n: usize, pg_url: Option<String>) -> Ha {
        let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let urls: Vec<String> = ports.iter().map(|p| format!("\"http://127.0.0.1:{p}\"")).collect();
        let settings = Settings {
            postgres: pg_url.is_none(),
            heartbeat_timeout: 5.0,
            extra_worker: format!("  coordinator_urls: [{}]\n", urls.join(", ")),
            ..Settings::default()
        };
        let mut cluster = Cluster::new(settings);
        if let Some(url) = pg_url {
            cluster.set_storage(&format!("  type: postgres\n  url: {url}\n"));
        }
        Ha { cluster, ports, procs: (0..n).map(|_| None).collect(), starts: 0, storage: vec![None; n] }
    }

    fn url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.ports[i])
    }

    /// Starts coordinator `i` (again).
    fn start(&mut self, i: usize) {
        self.starts += 1;
        let config = self.cluster.config.display().to_string();
        let (id, port) = (format!("c{i}"), self.ports[i].to_string());
        let mut env = vec![("OPENCLAW_COORDINATOR__ID", id.as_str()), ("OPENCLAW_COORDINATOR__PORT", port.as_str())];
        if let Some(url) = &self.storage[i] {
            env.push(("OPENCLAW_STORAGE__URL", url.as_str()));
        }
        let name = format!("coordinator-c{i}-{}", self.starts);
        let p = Proc::spawn(&name, &["-c", &config, "coordinator"], &env, self.cluster.path(), &self.cluster.logs());
        self.procs[i] = Some(p);
    }

    fn kill9(&mut self, i: usize) {
        if let Some(mut p) = self.procs[i].take() {
            p.kill9();
        }
    }

    /// `GET /health` of coordinator `i`, None when it does not answer.
    async fn health(&self, i: usize) -> Option<Value> {
        let r = self.cluster.http.get(format!("{}/health", self.url(i))).timeout(Duration::from_secs(2)).send().await;
        r.ok()?.json().await.ok()
    }

    /// Waits until one of `among` says it leads; makes it the cluster's address.
    async fn leader(&mut self, among: &[usize], limit: Duration) -> usize {
        let started = Instant::now();
        loop {
            for &i in among {
                if let Some(h) = self.health(i).await
                    && h["role"] == "leader"
                {
                    self.cluster.port = self.ports[i];
                    return i;
                }
            }
            if started.elapsed() > limit {
                panic!("no coordinator of {among:?} leads after {limit:?}\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until coordinator `i` answers `/health` as a standby naming a leader.
    async fn standby(&self, i: usize) -> Value {
        let started = Instant::now();
        loop {
            if let Some(h) = self.health(i).await
                && h["role"] == "standby"
                && h["leader"].is_object()
            {
                return h;
            }
            if started.elapsed() > Duration::from_secs(20) {
                panic!("coordinator c{i} does not stand by\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn logs(&self) -> String {
        self.procs.iter().flatten().map(Proc::logs).collect::<Vec<_>>().join("\n")
    }
}

/// A submission with an idempotency key, sent to each coordinator once; the task id when one
/// acknowledged it (201, or 200 for a key it already has).
async fn try_submit(ha: &Ha, admin: &str, key: &str) -> Option<String> {
    let body = json!({"name": key, "required_skills": ["work"], "idempotency_key": key, "max_retries": 5});
    for i in 0..ha.ports.len() {
        let r = ha
            .cluster
            .http
            .post(format!("{}/api/v1/tasks", ha.url(i)))
            .bearer_auth(admin)
            .json(&body)
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        if let Ok(r) = r
            && (r.status() == 201 || r.status() == 200)
        {
            let task: Value = r.json().await.unwrap();
            return Some(task["task_id"].as_str().unwrap().to_string());
        }
    }
    None
}

/// A submission with an idempotency key, sent to the coordinators in turn until one
/// acknowledges it: what a careful client does through a failover. Returns the task id.
async fn submit_until_acknowledged(ha: &Ha, admin: &str, key: &str) -> String {
    let started = Instant::now();
    loop {
        if let Some(id) = try_submit(ha, admin, key).await {
            return id;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{key} was never acknowledged\n{}", ha.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An exec skill that takes a second, and records each run in `runs/`: a run that finds
/// the same task running already leaves a `DOUBLE` file.
fn work_skill(ha: &Ha) -> (Skill, std::path::PathBuf) {
    let runs = ha.cluster.path().join("runs");
    std::fs::create_dir_all(&runs).unwrap();
    let script = format!(
        "r={runs}/$OPENCLAW_TASK_ID\nmkdir \"$r.running\" 2>/dev/null || touch \"$r.DOUBLE\"\necho run >> \"$r.count\"\nsleep 1\nrmdir \"$r.running\"\necho '{{\"done\": true}}'\n",
        runs = runs.display()
    );
    (Skill::exec("work", &script), runs)
}

/// Kill -9 of the leader while a client submits with idempotency keys and a real worker
/// runs tasks: a standby leads (awaited through `/health`), every acknowledged submission
/// is there exactly once, every task completes, none ran twice at once, and the tasks
/// running at the kill delivered their results to the new leader (their first attempt
/// completed). The killed coordinator comes back as a standby.
#[tokio::test]
async fn kill_9_of_the_leader_under_load_hands_over_with_nothing_acknowledged_lost() {
    if !have_postgres() {
        return;
    }
    let mut ha = Ha::new(3, None);
    ha.start(0);
    let first = ha.leader(&[0], Duration::from_secs(30)).await;
    ha.start(1);
    ha.start(2);
    for i in [1, 2] {
        let h = ha.standby(i).await;
        assert_eq!(h["leader"]["id"], "c0", "{h}");
        assert_eq!(h["leader"]["url"], ha.url(0), "{h}");
    }
    let admin = ha.cluster.admin();
    let (skill, runs) = work_skill(&ha);
    let _worker = ha.cluster.exec_worker("w1", &[skill], &["--max-concurrent-tasks", "4"]).await;

    let mut acked = Vec::new();
    for n in 0..8 {
        acked.push(submit_until_acknowledged(&ha, &admin, &format!("key-{n}")).await);
    }
    // Wait until tasks run on the worker, then kill the leader in the middle of them.
    let running_at_kill = loop {
        let running = ha.cluster.get("/api/v1/tasks?status=running").await["tasks"].as_array().unwrap().clone();
        if !running.is_empty() {
            break running.iter().map(|t| t["task_id"].as_str().unwrap().to_string()).collect::<Vec<_>>();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let killed = Instant::now();
    ha.kill9(first);
    // Submissions go on while nobody leads: each is retried with its key until acknowledged.
    for n in 8..20 {
        acked.push(submit_until_acknowledged(&ha, &admin, &format!("key-{n}")).await);
    }
    let next = ha.leader(&[1, 2], Duration::from_secs(30)).await;
    eprintln!("failover: c{next} leads {:.2}s after the kill", killed.elapsed().as_secs_f64());
    let health = ha.health(next).await.unwrap();
    assert!(health["leader"]["epoch"].as_u64().unwrap() >= 2, "{health}");
    // The killed one comes back as a standby naming the new leader.
    ha.start(first);
    let h = ha.standby(first).await;
    assert_eq!(h["leader"]["id"], format!("c{next}"), "{h}");

    for id in &acked {
        let task = ha.cluster.wait_task(id, 60).await;
        assert_eq!(task["status"], "completed", "{task}\n{}", ha.logs());
    }
    let distinct: std::collections::BTreeSet<&String> = acked.iter().collect();
    assert_eq!(distinct.len(), 20, "every key names one task");
    assert_eq!(ha.cluster.sql_int("SELECT count(*) FROM tasks"), 20, "retried submissions made no duplicates");
    for id in &running_at_kill {
        let task = ha.cluster.get(&format!("/api/v1/tasks/{id}")).await;
        assert_eq!(
            (task["status"].as_str(), task["attempt"].as_u64()),
            (Some("completed"), Some(1)),
            "a task running at the kill delivered its result to the new leader: {task}"
        );
    }
    let doubles: Vec<_> = std::fs::read_dir(&runs)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.ends_with(".DOUBLE"))
        .collect();
    assert!(doubles.is_empty(), "tasks ran twice at once: {doubles:?}");
}

/// A standby answers `/health` as a standby naming the leader, every API route with `503
/// not_leader` and a `Location` on the leader, and the dashboard with a 307 to the leader's;
/// the leader's `/health` says `leader` with its epoch. The CLI given several URLs works
/// when the first is a standby, and when it is dead; so does `OPENCLAW_URL` as a comma list.
#[tokio::test]
async fn standbys_name_the_leader_and_the_cli_follows_it() {
    if !have_postgres() {
        return;
    }
    let mut ha = Ha::new(2, None);
    ha.start(0);
    ha.leader(&[0], Duration::from_secs(30)).await;
    ha.start(1);
    let h = ha.standby(1).await;
    assert_eq!((h["leader"]["id"].as_str(), h["leader"]["url"].as_str()), (Some("c0"), Some(ha.url(0).as_str())));
    let leading = ha.health(0).await.unwrap();
    assert_eq!((leading["role"].as_str(), leading["leader"]["id"].as_str()), (Some("leader"), Some("c0")));
    let epoch = leading["leader"]["epoch"].as_u64().unwrap();
    assert_eq!(h["leader"]["epoch"].as_u64(), Some(epoch));

    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let admin = ha.cluster.admin();
    let r = http.get(format!("{}/api/v1/tasks?limit=3", ha.url(1))).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["location"], format!("{}/api/v1/tasks?limit=3", ha.url(0)).as_str());
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_leader");
    assert!(body["error"]["message"].as_str().unwrap().contains(&ha.url(0)), "{body}");
    let r = http.get(format!("{}/", ha.url(1))).send().await.unwrap();
    assert_eq!(
        (r.status().as_u16(), r.headers()["location"].to_str().unwrap()),
        (307, format!("{}/", ha.url(0)).as_str())
    );
    // Nothing was written by the standby: it holds no writer.
    let r = http
        .post(format!("{}/api/v1/tasks", ha.url(1)))
        .bearer_auth(&admin)
        .json(&json!({"name": "x", "required_skills": ["x"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(ha.cluster.sql_int("SELECT count(*) FROM tasks"), 0);

    // The CLI, the standby first: it follows the Location to the leader.
    let standby_first = format!("{},{}", ha.url(1), ha.url(0));
    let o = ha.cluster.cli(&["tasks", "submit", "--skill", "x", "--queue", "--url", &standby_first, "--token", &admin]);
    assert!(o.status.success(), "{}", crate::support::show(&o));
    let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert!(id.starts_with("task_"), "{id}");
    // A dead coordinator first (a port nobody listens on), then the standby, through
    // OPENCLAW_URL: the next URL is tried, the standby names the leader.
    let dead = crate::support::DeadPort::new();
    let list = format!("http://127.0.0.1:{},{}", dead.port(), ha.url(1));
    let config = ha.cluster.config.display().to_string();
    let o = crate::support::cli(
        &["-c", &config, "tasks", "get", &id],
        &[("OPENCLAW_URL", &list), ("OPENCLAW_TOKEN", &admin)],
        ha.cluster.path(),
    );
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains(&id), "{}", crate::support::show(&o));
    // A bad list is a usage error naming the entry.
    let o = ha.cluster.cli(&["nodes", "list", "--url", "http://ok:1,ftp://nope", "--token", &admin]);
    assert_eq!(o.status.code(), Some(2), "{}", crate::support::show(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("ftp://nope"), "{}", crate::support::show(&o));

    // A clean stop of the leader gives the lease up: the standby leads at the next epoch.
    let mut c0 = ha.procs[0].take().unwrap();
    c0.term();
    assert!(c0.wait_exit(Duration::from_secs(20)).await.success(), "{}", c0.logs());
    ha.leader(&[1], Duration::from_secs(10)).await;
    assert_eq!(ha.health(1).await.unwrap()["leader"]["epoch"].as_u64(), Some(epoch + 1));
    assert_eq!(ha.cluster.get(&format!("/api/v1/tasks/{id}")).await["status"], "pending");
}

/// PostgreSQL crashes and restarts mid-run (its own server, so that other tests are not
/// disturbed): the coordinators reconnect — a leader that could not renew in time steps
/// down and exits 1, as a supervisor would see it, and is started again — some coordinator
/// leads again, and every acknowledged submission is still there.
#[tokio::test]
async fn postgres_restarted_mid_run_loses_nothing_acknowledged() {
    if !have_postgres() {
        return;
    }
    let mut pg = crate::postgres_server::PgServer::start().unwrap();
    let url = pg.create_db("ha");
    let mut ha = Ha::new(2, Some(url));
    ha.start(0);
    ha.leader(&[0], Duration::from_secs(30)).await;
    ha.start(1);
    ha.standby(1).await;
    let admin = ha.cluster.admin();
    let mut acked = Vec::new();
    for n in 0..5 {
        acked.push(submit_until_acknowledged(&ha, &admin, &format!("before-{n}")).await);
    }
    pg.restart();
    // Meanwhile a supervisor's part: a coordinator that stepped down (it could not renew
    // while the server was away) exited 1 saying why, and is started again.
    let started = Instant::now();
    let mut restarted = 0;
    for n in 0..5 {
        let key = format!("after-{n}");
        loop {
            for i in 0..2 {
                let p = ha.procs[i].as_mut().unwrap();
                if !p.is_running() {
                    let status = p.wait_exit(Duration::from_secs(1)).await;
                    assert_eq!(status.code(), Some(1), "{}", p.logs());
                    assert!(p.err().contains("stopped"), "{}", p.logs());
                    ha.start(i);
                    restarted += 1;
                }
            }
            if let Some(id) = try_submit(&ha, &admin, &key).await {
                acked.push(id);
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(90), "{key} was never acknowledged\n{}", ha.logs());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    eprintln!("coordinators restarted after stepping down: {restarted}");
    let leader = ha.leader(&[0, 1], Duration::from_secs(30)).await;
    for id in &acked {
        let (status, task) = ha.cluster.api("GET", &format!("/api/v1/tasks/{id}"), None).await;
        assert_eq!(status, 200, "acknowledged task {id} is gone: {task}\n{}", ha.logs());
    }
    let rows = pg.psql("ha", "SELECT count(*) FROM tasks");
    assert_eq!(rows, "10", "one row per key");
    eprintln!("after the PostgreSQL restart c{leader} leads");
}

/// A TCP forwarder between one coordinator and PostgreSQL that the test can cut: a stand-in
/// for a network partition, because the real server cannot be made to stop answering one
/// client while it keeps answering the others. Cut, it forwards nothing more but keeps every
/// connection open and accepts new ones (a black hole, as a partition looks from either
/// side), so the leader's queries hang rather than fail.
struct Partition {
    port: u16,
    cut: Arc<AtomicBool>,
    notify: Arc<tokio::sync::Notify>,
}

impl Partition {
    async fn to(upstream: u16) -> Partition {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let notify = Arc::new(tokio::sync::Notify::new());
        let (c, n) = (cut.clone(), notify.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut down, _)) = listener.accept().await else { return };
                let (cut, notify) = (c.clone(), n.clone());
                tokio::spawn(async move {
                    if cut.load(Ordering::SeqCst) {
                        std::future::pending::<()>().await;
                    }
                    let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)).await else { return };
                    let cutting = notify.notified();
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut down, &mut up) => {}
                        _ = cutting => std::future::pending::<()>().await,
                    }
                });
            }
        });
        Partition { port, cut, notify }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }
}

/// The leader cut off from PostgreSQL stops acting as the leader (it no longer answers and
/// exits 1 saying it stepped down) before the standby — which still reaches the database —
/// takes the lease over, and the new leader serves what the old one acknowledged.
#[tokio::test]
async fn a_leader_cut_off_from_postgres_steps_down_before_its_lease_can_be_taken_over() {
    if !have_postgres() {
        return;
    }
    let pg = crate::postgres_server::shared().unwrap();
    let url = pg.fresh_db();
    let partition = Partition::to(pg.port).await;
    let mut ha = Ha::new(2, Some(url.clone()));
    ha.storage[0] = Some(url.replace(&format!(":{}/", pg.port), &format!(":{}/", partition.port)));
    ha.start(0);
    ha.leader(&[0], Duration::from_secs(30)).await;
    ha.start(1);
    ha.standby(1).await;
    let admin = ha.cluster.admin();
    let id = submit_until_acknowledged(&ha, &admin, "before-the-cut").await;

    partition.cut();
    let cut_at = Instant::now();
    let mut old_stopped: Option<Duration> = None;
    let new_leads = loop {
        if old_stopped.is_none() && ha.health(0).await.is_none_or(|h| h["role"] != "leader") {
            old_stopped = Some(cut_at.elapsed());
        }
        if ha.health(1).await.is_some_and(|h| h["role"] == "leader") {
            break cut_at.elapsed();
        }
        assert!(cut_at.elapsed() < Duration::from_secs(30), "the standby never took over\n{}", ha.logs());
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let old_stopped = old_stopped.unwrap_or_else(|| panic!("the old leader still answered as leader\n{}", ha.logs()));
    eprintln!("cut: old leader stopped after {old_stopped:?}, the standby led after {new_leads:?}");
    assert!(old_stopped < new_leads, "the old leader acted until {old_stopped:?}, the new one led at {new_leads:?}");
    let p = ha.procs[0].as_mut().unwrap();
    let status = p.wait_exit(Duration::from_secs(30)).await;
    assert_eq!(status.code(), Some(1), "{}", p.logs());
    assert!(p.err().contains("stepping down before another coordinator may take over"), "{}", p.logs());
    ha.cluster.port = ha.ports[1];
    assert_eq!(ha.cluster.get(&format!("/api/v1/tasks/{id}")).await["name"], "before-the-cut");
}
