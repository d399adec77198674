//! The event stream (`GET /api/v1/events`): resuming without gaps or duplicates, filters,
//! the gap event, tokens and bad input, a client that stops reading, and the CLI commands
//! that watch it (`openclaw tasks watch`, `openclaw nodes --watch`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{Cluster, Settings, Sse, eventually};

/// Reads events (skipping keep-alives) until one satisfies `last`, returning all of them.
async fn read_until(sse: &mut Sse, last: impl Fn(&Value) -> bool) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let (event, data) = sse.next_json().await.expect("the stream ended early");
        assert!(event == "task" || event == "node", "unexpected {event}: {data}");
        let done = last(&data);
        seen.push(data);
        if done {
            return seen;
        }
    }
}

fn ids(events: &[Value]) -> Vec<u64> {
    events.iter().map(|e| e["id"].as_u64().unwrap()).collect()
}

fn is(event: &str, node: &str) -> impl Fn(&Value) -> bool {
    let (event, node) = (event.to_string(), node.to_string());
    move |e| e["event"] == event.as_str() && e["node_id"] == node.as_str()
}

/// A resumed stream picks up exactly after the last id, across the switch from the store
/// to the live bus, while events keep being committed.
#[tokio::test]
async fn resuming_with_last_event_id_loses_and_repeats_nothing() {
    let cluster = Arc::new(Cluster::start().await);
    cluster.register("w1", &["x"], 50).await;
    let admin = cluster.admin();
    let mut first = Sse::open(&cluster, "/api/v1/events", &admin, None).await;
    let stop = Arc::new(AtomicBool::new(false));
    let generator = {
        let (cluster, stop) = (cluster.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) || n < 300 {
                // Half of them placed (submitted + scheduled), half waiting (submitted).
                let skill = if n % 2 == 0 { "x" } else { "nobody" };
                cluster.submit(json!({"name": format!("t{n}"), "required_skills": [skill]})).await;
                n += 1;
            }
        })
    };
    let mut seen = Vec::new();
    while seen.len() < 100 {
        let (_, e) = first.next_json().await.unwrap();
        seen.push(e);
    }
    drop(first);
    let last = *ids(&seen).last().unwrap();
    // Events committed while nobody listens come from the store, then the bus takes over.
    let mut resumed = Sse::open(&cluster, "/api/v1/events", &admin, Some(last)).await;
    let more = {
        let mut more = Vec::new();
        while more.len() < 200 {
            let (_, e) = resumed.next_json().await.unwrap();
            more.push(e);
        }
        more
    };
    stop.store(true, Ordering::Relaxed);
    generator.await.unwrap();
    cluster.api("POST", "/api/v1/nodes/w1/drain", None).await;
    let rest = read_until(&mut resumed, is("drained", "w1")).await;
    let all: Vec<u64> = [ids(&seen), ids(&more), ids(&rest)].concat();
    for pair in all.windows(2) {
        assert_eq!(pair[1], pair[0] + 1, "ids must follow each other without gaps or repeats: {all:?}");
    }
    // The same events as the store's, in the same order.
    let mut again = Sse::open(&cluster, "/api/v1/events", &admin, Some(all[0] - 1)).await;
    let replay = read_until(&mut again, is("drained", "w1")).await;
    assert_eq!(replay, [seen, more, rest].concat());
}

#[tokio::test]
async fn filters_by_task_node_skill_and_kind() {
    let cluster = Cluster::start().await;
    cluster.register("wa", &["a"], 5).await;
    cluster.register("wb", &["b"], 5).await;
    let ta = cluster.submit(json!({"name": "ta", "required_skills": ["a"]})).await;
    let tb = cluster.submit(json!({"name": "tb", "required_skills": ["b"]})).await;
    cluster.submit(json!({"name": "tn", "required_skills": ["nobody"]})).await;
    cluster.api("POST", &format!("/api/v1/tasks/{tb}/cancel"), None).await;
    cluster.api("POST", "/api/v1/nodes/wb/drain", None).await;
    cluster.register("marker", &["m"], 1).await;
    let admin = cluster.admin();
    let mut sse = Sse::open(&cluster, "/api/v1/events?after=0", &admin, None).await;
    let all = read_until(&mut sse, is("registered", "marker")).await;
    assert!(all.len() >= 10, "{all:?}");
    type Wanted<'a> = Box<dyn Fn(&Value) -> bool + 'a>;
    let cases: Vec<(String, Wanted)> = vec![
        (format!("task={ta}"), Box::new(|e: &Value| e["task_id"] == ta.as_str())),
        ("node=wb".into(), Box::new(|e: &Value| e["node_id"] == "wb")),
        ("skill=b".into(), Box::new(|e: &Value| e["skill"] == "b")),
        ("kind=node".into(), Box::new(|e: &Value| e["kind"] == "node")),
        ("kind=task&skill=a".into(), Box::new(|e: &Value| e["kind"] == "task" && e["skill"] == "a")),
    ];
    for (query, wanted) in cases {
        let expected: Vec<Value> = all.iter().filter(|e| wanted(e)).cloned().collect();
        assert!(!expected.is_empty(), "{query}: the test made no such events");
        let mut sse = Sse::open(&cluster, &format!("/api/v1/events?after=0&{query}"), &admin, None).await;
        let mut got = Vec::new();
        while got.len() < expected.len() {
            got.push(sse.next_json().await.unwrap().1);
        }
        assert_eq!(got, expected, "{query}");
    }
    // The header wins over ?after=.
    let second = ids(&all)[1];
    let mut sse = Sse::open(&cluster, "/api/v1/events?after=0", &admin, Some(second)).await;
    assert_eq!(sse.next_json().await.unwrap().1, all[2]);
}

/// Events before the oldest kept one are gone: a resume point older than that is told.
#[cfg(unix)]
#[tokio::test]
async fn a_resume_point_older_than_what_is_kept_gets_a_gap() {
    let mut cluster = Cluster::start().await;
    cluster.register("w1", &["x"], 1).await;
    cluster.api("POST", "/api/v1/nodes/w1/drain", None).await;
    cluster.api("POST", "/api/v1/nodes/w1/undrain", None).await;
    cluster.register("w2", &["x"], 1).await;
    // Retention purges node events after storage.task_retention_days; a test cannot wait
    // days, so the oldest are deleted from the stopped coordinator's database by hand.
    let mut c = cluster.coordinator.take().unwrap();
    c.term();
    assert!(c.wait_exit(Duration::from_secs(20)).await.success());
    let oldest = cluster.sql_int("SELECT min(id) FROM events");
    cluster.sql(&format!("DELETE FROM events WHERE id < {}", oldest + 2));
    let oldest = oldest as u64;
    cluster.start_coordinator().await;
    let admin = cluster.admin();
    let mut sse = Sse::open(&cluster, "/api/v1/events", &admin, Some(oldest)).await;
    assert_eq!(sse.next_json().await.unwrap(), ("gap".to_string(), json!({"oldest": oldest + 2})));
    assert_eq!(sse.next_json().await.unwrap().1["id"], oldest + 2);
    // Resuming right before the oldest kept event is no gap.
    let mut sse = Sse::open(&cluster, "/api/v1/events", &admin, Some(oldest + 1)).await;
    let (event, data) = sse.next_json().await.unwrap();
    assert_eq!((event.as_str(), &data["id"]), ("node", &json!(oldest + 2)));
}

#[tokio::test]
async fn the_stream_takes_a_read_token_and_names_bad_input() {
    let cluster = Cluster::start().await;
    let secret = cluster.register("w1", &["x"], 1).await;
    let tasks = std::fs::read_to_string(cluster.path().join("data/tasks.token")).unwrap().trim().to_string();
    let head = |token: Option<String>, header: Option<&'static str>, query: &'static str| {
        let mut req = cluster.http.head(format!("{}/api/v1/events{query}", cluster.url()));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(h) = header {
            req = req.header("last-event-id", h);
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(head(None, None, "").await, 401);
    assert_eq!(head(Some(cluster.worker_token()), None, "").await, 403);
    assert_eq!(head(Some(secret), None, "").await, 403);
    assert_eq!(head(Some(tasks.clone()), None, "").await, 200);
    assert_eq!(head(Some(cluster.admin()), None, "?kind=node&after=3").await, 200);
    let (status, body) = cluster.api("GET", "/api/v1/events?kind=job", None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_query")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("kind"), "{body}");
    let (status, body) = cluster.api("GET", "/api/v1/events?since=4", None).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("`since`"), "{body}");
    let r = cluster
        .http
        .get(format!("{}/api/v1/events", cluster.url()))
        .bearer_auth(&tasks)
        .header("last-event-id", "yesterday")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("Last-Event-ID"), "{body}");
}

/// A client that stops reading is cut off by its own stream, while the coordinator goes on
/// answering and another watcher gets every event.
#[tokio::test]
async fn a_client_that_stops_reading_is_cut_off_and_slows_nothing() {
    let cluster = Arc::new(Cluster::start().await);
    cluster.register("w1", &["x"], 1).await;
    let admin = cluster.admin();
    // The stalled client: a small receive buffer, headers read, then never another byte.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stalled = socket.connect(format!("127.0.0.1:{}", cluster.port).parse().unwrap()).await.unwrap();
    stalled
        .write_all(
            format!("GET /api/v1/events HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {admin}\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut head = vec![0u8; 256];
    let n = stalled.read(&mut head).await.unwrap();
    assert!(head[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&head[..n]));
    // A healthy watcher, reading all along.
    let mut healthy = Sse::open(&cluster, "/api/v1/events", &admin, None).await;
    let watcher = tokio::spawn(async move { read_until(&mut healthy, is("drained", "w1")).await });
    // Events until the stalled client is cut off.
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut submitted = 0u32;
    while cluster.metric("openclaw_streams_cut_off_total").await < 1.0 {
        assert!(submitted < 100_000, "the stalled client was never cut off");
        let mut batch = Vec::new();
        for _ in 0..50 {
            let cluster = cluster.clone();
            batch.push(tokio::spawn(async move {
                let t = Instant::now();
                cluster.submit(json!({"name": "filler", "required_skills": ["nobody"]})).await;
                t.elapsed()
            }));
        }
        for b in batch {
            slowest = slowest.max(b.await.unwrap());
        }
        submitted += 50;
    }
    eprintln!(
        "cut off after {submitted} submits in {:.1} s; slowest submit meanwhile {:.1} ms",
        started.elapsed().as_secs_f64(),
        slowest.as_secs_f64() * 1000.0
    );
    // Its connection is closed: what it had not read ends, then EOF.
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), stalled.read_to_end(&mut rest))
        .await
        .expect("the stalled connection was not closed")
        .ok();
    // The coordinator answers, and the healthy watcher got every event in order.
    assert_eq!(cluster.get("/health").await["status"], "healthy");
    cluster.api("POST", "/api/v1/nodes/w1/drain", None).await;
    let got = watcher.await.unwrap();
    let submitted_seen = got.iter().filter(|e| e["event"] == "submitted").count();
    assert_eq!(submitted_seen, submitted as usize);
    for pair in ids(&got).windows(2) {
        assert_eq!(pair[1], pair[0] + 1);
    }
}

/// `tasks watch` and `nodes --watch` print one line per event, resume after a coordinator
/// restart without repeating or losing any, and end with exit 0 on Ctrl+C / SIGTERM.
#[cfg(unix)]
#[tokio::test]
async fn watch_commands_print_events_and_survive_a_restart() {
    let mut cluster = Cluster::start_with(Settings::default()).await;
    let mut tasks = cluster.cli_process("tasks-watch", &["tasks", "watch", "--skill", "echo"]);
    let mut nodes = cluster.cli_process("nodes-watch", &["nodes", "--watch"]);
    eventually("both watchers connected", Duration::from_secs(20), || async {
        cluster.metric("openclaw_streams_open").await >= 2.0
    })
    .await;
    let secret = cluster.register("w1", &["echo"], 5).await;
    nodes.wait_for_output("node w1 registered", Duration::from_secs(20)).await;
    let other = cluster.submit(json!({"name": "o", "required_skills": ["other"]})).await;
    let t1 = cluster.submit(json!({"name": "t1", "required_skills": ["echo"]})).await;
    tasks.wait_for_output(&format!("task {t1} scheduled attempt 1 on w1 (echo)"), Duration::from_secs(20)).await;
    assert!(tasks.out().contains(&format!("task {t1} submitted → pending (echo)")), "{}", tasks.out());

    cluster.kill_coordinator();
    cluster.start_coordinator().await;
    // Committed before the watchers are back: they get it from the store.
    let t2 = cluster.submit(json!({"name": "t2", "required_skills": ["echo"]})).await;
    let (status, _) = cluster
        .call("POST", &format!("/api/v1/nodes/w1/tasks/{t1}/start"), Some(&secret), Some(r#"{"attempt":1}"#))
        .await;
    assert_eq!(status, 200);
    tasks.wait_for_output(&format!("task {t1} running"), Duration::from_secs(30)).await;
    cluster.call("POST", "/api/v1/nodes/w1/heartbeat", Some(&secret), Some("{}")).await;
    nodes.wait_for_output("node w1 online", Duration::from_secs(30)).await;
    let out = tasks.out();
    for needle in [format!("task {t1} submitted"), format!("task {t2} submitted"), format!("task {t1} running")] {
        assert_eq!(out.matches(&needle).count(), 1, "{needle:?} once in:\n{out}");
    }
    assert!(!out.contains(&other), "a task of another skill was printed:\n{out}");
    assert!(tasks.err().contains("reconnecting"), "{}", tasks.err());

    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(tasks.pid() as i32, libc::SIGINT);
    }
    assert_eq!(tasks.wait_exit(Duration::from_secs(20)).await.code(), Some(0), "{}", tasks.logs());
    nodes.term();
    assert_eq!(nodes.wait_exit(Duration::from_secs(20)).await.code(), Some(0), "{}", nodes.logs());
}

/// Issue 17, item 8: `nodes --watch` printed nothing until an event happened, and
/// `nodes --watch --after 0` was refused although the docs offered `--after`. It prints the
/// nodes as they are, then their events; `--after` replays the kept events instead.
#[tokio::test]
async fn nodes_watch_shows_the_nodes_now_then_their_events() {
    let cluster = Cluster::start().await;
    cluster.register("w1", &["echo"], 3).await;
    let now = cluster.cli_process("nodes-now", &["nodes", "--watch"]);
    now.wait_for_output("node w1 is online: 0/3 tasks", Duration::from_secs(20)).await;
    cluster.api("POST", "/api/v1/nodes/w1/drain", None).await;
    now.wait_for_output("node w1 drained", Duration::from_secs(20)).await;
    let out = now.out();
    assert!(out.find("is online").unwrap() < out.find("drained").unwrap(), "the picture comes first:\n{out}");

    let replay = cluster.cli_process("nodes-after", &["nodes", "--watch", "--after", "0"]);
    replay.wait_for_output("node w1 drained", Duration::from_secs(20)).await;
    let out = replay.out();
    assert!(out.contains("node w1 registered"), "every kept event, from the first:\n{out}");
    assert!(!out.contains(" is online"), "a replay has no picture:\n{out}");
}

/// A stream ends at `coordinator.max_stream_lifetime` with `event: error`
/// (`stream_lifetime`); `tasks watch` and `nodes --watch` resume at once from their last id,
/// quietly, and print every event exactly once, in order.
#[tokio::test]
async fn streams_end_at_their_lifetime_and_the_watchers_resume_without_loss_or_repeat() {
    let cluster =
        Cluster::start_with(Settings { extra_coordinator: "  max_stream_lifetime: 1\n".into(), ..Settings::default() })
            .await;
    let mut tasks = cluster.cli_process("tasks-watch", &["tasks", "watch", "--json"]);
    let mut nodes = cluster.cli_process("nodes-watch", &["nodes", "--watch", "--json"]);
    eventually("both watchers connected", Duration::from_secs(20), || async {
        cluster.metric("openclaw_streams_open").await >= 2.0
    })
    .await;
    // The stream ends as documented (read by the test itself).
    let mut sse = Sse::open(&cluster, "/api/v1/events", &cluster.admin(), None).await;
    let opened = Instant::now();
    let (event, data) = sse.next_json().await.expect("an error event ends the stream");
    assert_eq!((event.as_str(), data["code"].as_str()), ("error", Some("stream_lifetime")), "{data}");
    assert!(data["message"].as_str().unwrap().contains("coordinator.max_stream_lifetime"), "{data}");
    assert!(opened.elapsed() < Duration::from_secs(5), "ended after {:?}", opened.elapsed());
    assert!(sse.next().await.is_none(), "nothing follows the lifetime's end");

    // Three rounds of work, each followed by at least one reconnect of both watchers.
    let reconnects = r#"openclaw_http_requests_total{route="events",status="200"}"#;
    for round in 0..3 {
        let before = cluster.metric(reconnects).await;
        for i in 0..5 {
            cluster.submit(json!({"name": format!("r{round}-{i}"), "required_skills": ["x"]})).await;
        }
        cluster.register(&format!("n{round}"), &["x"], 1).await;
        eventually("both watchers reconnected", Duration::from_secs(20), || async {
            cluster.metric(reconnects).await >= before + 2.0
        })
        .await;
    }
    let stored = |kind: &str| -> Vec<u64> {
        let ids = cluster.sql(&format!("SELECT id FROM events WHERE kind = '{kind}' ORDER BY id"));
        ids.iter().map(|id| id.parse().unwrap()).collect()
    };
    for (watcher, kind) in [(&mut tasks, "task"), (&mut nodes, "node")] {
        let want = stored(kind);
        assert!(want.len() >= 3, "{kind}: {want:?}");
        let last = format!("\"id\":{}", want.last().unwrap());
        watcher.wait_for_output(&last, Duration::from_secs(20)).await;
        let printed: Vec<u64> = watcher
            .out()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{l}: {e}"))["id"].as_u64().unwrap())
            .collect();
        assert_eq!(printed, want, "{kind} events printed once each, in order");
        assert!(!watcher.err().contains("note:"), "a planned end is resumed quietly:\n{}", watcher.err());
        watcher.term();
        assert_eq!(watcher.wait_exit(Duration::from_secs(20)).await.code(), Some(0), "{}", watcher.logs());
    }
}
