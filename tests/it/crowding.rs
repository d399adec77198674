//! Streams and long requests cannot crowd out workers (issue 24): event and output streams
//! have their own caps (overall, per address, per token), far below the connection caps,
//! and a share of the connections is kept for node routes. A real worker shares its address
//! (127.0.0.1) with the clients that fill every cap, and must keep heartbeating and finishing
//! tasks; each request past a cap gets a JSON error naming the cap and its config key. Other
//! client addresses are other 127/8 addresses (all loopback on Linux).

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Cluster, Settings, Skill, eventually};

/// The API as a client at `127.0.0.<last>` reaches it.
struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    fn at(cluster: &Cluster, last: u8) -> Client {
        openclaw::cmd::install_crypto();
        let http =
            reqwest::Client::builder().local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))).build().unwrap();
        Client { http, base: cluster.url() }
    }

    /// Sends a GET and returns the answer as soon as its head arrived (a stream stays open
    /// while the answer lives).
    async fn open(&self, path: &str, token: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .header("accept", "text/event-stream")
            .send()
            .await
            .unwrap()
    }

    async fn call(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// The sum of the samples of a metric (its line starts with `name`).
    async fn metric(&self, admin: &str, name: &str) -> f64 {
        let (status, text) = self.call("GET", "/metrics", admin, None).await;
        assert_eq!(status, 200, "{text}");
        let text = text.as_str().unwrap_or_default().to_string();
        text.lines().filter(|l| l.starts_with(name)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
    }
}

/// Asserts a refusal: its status, the stable code, and that the message names `key`.
async fn refused(r: reqwest::Response, status: u16, code: &str, key: &str) {
    assert_eq!(r.status().as_u16(), status, "past {key}");
    let kind = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    assert_eq!(kind, "application/json", "past {key}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains(key), "the refusal past {key} does not name it: {message}");
}

fn ok_stream(r: &reqwest::Response, what: &str) {
    assert_eq!(r.status(), 200, "{what}");
    assert_eq!(r.headers().get("content-type").unwrap(), "text/event-stream", "{what}");
}

/// Regression test for issue 24: 300 event streams from one address took every connection
/// that address may open, and a worker on the same address got 503 on its heartbeats and
/// went offline, losing its running task.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread")]
async fn streams_and_waits_up_to_every_cap_from_the_workers_address_leave_the_workers_working() {
    // Per address: 40 connections, a quarter kept for workers, so clients hold 30 at most;
    // overall 64 and 48. Streams: 12 overall, 6 per address, 8 per token.
    let cluster = Cluster::start_with(Settings {
        extra_coordinator: "  max_connections: 64\n  max_connections_per_ip: 40\n  node_reserve_percent: 25\n  max_streams: 12\n  max_streams_per_ip: 6\n  max_streams_per_token: 8\n".into(),
        ..Settings::default()
    })
    .await;
    let _worker = cluster.exec_worker("w1", &[Skill::exec("echo", "cat\n")], &[]).await;
    let admin = cluster.admin();
    let tasks = std::fs::read_to_string(cluster.path().join("data/tasks.token")).unwrap().trim().to_string();
    // A task nobody can run: its output stream and waits on it stay open.
    let parked = cluster.submit(json!({"name": "parked", "required_skills": ["nobody-has-it"]})).await;
    let output = format!("/api/v1/tasks/{parked}/output?follow=true");
    let (local, other, third, observer) =
        (Client::at(&cluster, 1), Client::at(&cluster, 2), Client::at(&cluster, 3), Client::at(&cluster, 4));
    let mut held = Vec::new();

    // Per address, from the worker's own: 6 streams (events and output), then 429.
    for i in 0..6 {
        let path = if i % 2 == 0 { "/api/v1/events" } else { output.as_str() };
        let r = local.open(path, &admin).await;
        ok_stream(&r, path);
        held.push(r);
    }
    refused(local.open("/api/v1/events", &tasks).await, 429, "too_many_streams", "coordinator.max_streams_per_ip")
        .await;
    // Per token: the admin token's 7th and 8th from another address, then 429.
    for _ in 0..2 {
        let r = other.open("/api/v1/events", &admin).await;
        ok_stream(&r, "admin stream");
        held.push(r);
    }
    refused(other.open(&output, &admin).await, 429, "too_many_streams", "coordinator.max_streams_per_token").await;
    // Overall: 4 with the tasks token fill the 12, then 429 from a fresh address and token.
    for _ in 0..4 {
        let r = other.open("/api/v1/events", &tasks).await;
        ok_stream(&r, "tasks stream");
        held.push(r);
    }
    refused(third.open("/api/v1/events", &tasks).await, 429, "too_many_streams", "(coordinator.max_streams)").await;

    // The connections: waits on the parked task from the worker's address fill the 30 that
    // clients may hold there (6 are streams). Each is counted before the next is sent.
    let wait = format!("/api/v1/tasks/{parked}/wait?timeout=300");
    let mut waits = Vec::new();
    for k in 1..=24 {
        let (http, url, token) = (local.http.clone(), format!("{}{wait}", local.base), admin.clone());
        waits.push(tokio::spawn(async move { http.get(url).bearer_auth(token).send().await.map(|r| r.status()) }));
        // 12 streams, k waits, and the scrape itself.
        let want = (12 + k + 1) as f64;
        eventually(&format!("{k} waits held"), Duration::from_secs(10), || async {
            observer.metric(&admin, "openclaw_connections_held").await == want
        })
        .await;
    }
    let r = local.http.get(format!("{}{wait}", local.base)).bearer_auth(&admin).send().await.unwrap();
    refused(r, 503, "unavailable", "coordinator.node_reserve_percent").await;
    assert!(waits.iter().all(|w| !w.is_finished()), "every wait is still held");

    // Everything a client may take is taken, much of it from the worker's address. The
    // worker goes on: for longer than two heartbeat timeouts (3 s each), tasks are placed
    // on it and finish, and it never goes offline.
    let heartbeats = observer.metric(&admin, "openclaw_heartbeats_total").await;
    let started = Instant::now();
    let mut done = 0;
    while started.elapsed() < Duration::from_secs(7) {
        let (status, task) = observer
            .call("POST", "/api/v1/tasks", &admin, Some(json!({"name": "under siege", "required_skills": ["echo"]})))
            .await;
        assert_eq!(status, 201, "{task}");
        let id = task["task_id"].as_str().unwrap();
        let (status, task) = observer.call("GET", &format!("/api/v1/tasks/{id}/wait?timeout=20"), &admin, None).await;
        assert_eq!((status, task["status"].as_str()), (200, Some("completed")), "{task}");
        assert_eq!(task["assigned_node"], "w1");
        done += 1;
    }
    let beats = observer.metric(&admin, "openclaw_heartbeats_total").await - heartbeats;
    // One every 0.5 s for 7 s: 14 expected; a heartbeat also follows each finished task.
    assert!(beats >= 10.0, "only {beats} heartbeats in {:?} while the caps were full", started.elapsed());
    assert!(done >= 3, "only {done} tasks finished");
    let (_, node) = observer.call("GET", "/api/v1/nodes/w1", &admin, None).await;
    assert_eq!(node["status"], "online", "{node}");
    let offline: i64 = rusqlite::Connection::open(cluster.db())
        .unwrap()
        .query_row(
            "SELECT count(*) FROM events WHERE kind = 'node' AND node_id = 'w1' AND event = 'offline'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(offline, 0, "the worker went offline while clients filled the caps");

    // Caps give places back: closing the streams and the waits frees them all.
    drop(held);
    for w in &waits {
        w.abort();
    }
    eventually("every stream closed", Duration::from_secs(10), || async {
        observer.metric(&admin, "openclaw_streams_open").await == 0.0
    })
    .await;
    let r = local.open("/api/v1/events", &tasks).await;
    ok_stream(&r, "a stream after the others closed");
}
