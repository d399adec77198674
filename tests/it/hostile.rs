//! Hostile clients at the socket level (raw tokio `TcpStream`s, several loopback source
//! addresses): stalled headers and bodies, bodies nobody needs, more connections than the
//! caps. The coordinator must keep answering `/health` and admin calls, cut stalled bodies
//! at `coordinator.body_read_timeout`, and close refused requests cleanly.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::support::{Cluster, Settings};

/// A connection to the coordinator from `127.0.0.<last>` (every 127/8 address is loopback
/// on Linux, so each stands for another client address).
async fn connect_from(last: u8, port: u16) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from(([127, 0, 0, last], 0))).unwrap();
    socket.connect(SocketAddr::from(([127, 0, 0, 1], port))).await.unwrap()
}

/// Everything the server sends until it closes the connection. Panics if it is still open
/// after `guard` (a hang guard, far above any deadline under test).
async fn read_until_closed(stream: &mut TcpStream, guard: Duration) -> String {
    let mut out = Vec::new();
    match tokio::time::timeout(guard, stream.read_to_end(&mut out)).await {
        Ok(Ok(_)) => String::from_utf8_lossy(&out).into_owned(),
        Ok(Err(e)) => panic!(
            "the connection ended with an error instead of a clean close: {e}; read so far: {}",
            String::from_utf8_lossy(&out)
        ),
        Err(_) => panic!(
            "the server neither answered nor closed within {guard:?}; read so far: {}",
            String::from_utf8_lossy(&out)
        ),
    }
}

fn status_line(response: &str) -> &str {
    response.lines().next().unwrap_or("")
}

/// How many file descriptors a process has open.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_crowd_of_stalled_connections_cannot_lock_out_health_and_admin_calls() {
    let cluster = Cluster::start_with(Settings {
        extra_coordinator: "  max_connections: 32\n  max_connections_per_ip: 16\n".into(),
        ..Settings::default()
    })
    .await;
    let admin = cluster.admin();
    let pid = cluster.coordinator.as_ref().unwrap().pid();
    let started = Instant::now();
    // 300 connections from ten addresses, each stuck in another way. The header and body
    // deadlines are the defaults (30 s): only the caps can save the coordinator here.
    let stuck = [
        String::new(),                                // connected, silent
        "GET /health HTTP/1.1\r\nHost: x\r\n".into(), // headers never finished
        format!(
            "POST /api/v1/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"name\": "
        ), // a body that stops
        format!(
            "POST /api/v1/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{{\"na\r\n"
        ), // chunked without the last chunk
        format!(
            "POST /api/v1/nodes/register HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n"
        ), // Content-Length, no body
    ];
    let mut held = Vec::new();
    for i in 0..300usize {
        let mut s = connect_from(2 + (i % 10) as u8, cluster.port).await;
        // The server may already have closed it to make room: that is the point.
        let _ = s.write_all(stuck[i % stuck.len()].as_bytes()).await;
        held.push(s);
    }
    for round in 0..5 {
        let (status, body) = cluster.call("GET", "/health", None, None).await;
        assert_eq!(status, 200, "round {round}: /health: {body}");
        let id = cluster.submit(json!({"name": format!("under load {round}"), "required_skills": ["x"]})).await;
        assert_eq!(cluster.get(&format!("/api/v1/tasks/{id}")).await["status"], "pending");
        let fds = open_fds(pid);
        assert!(fds < 32 + 64, "the coordinator holds {fds} descriptors: the connection cap (32) is not enforced");
    }
    let coordinator = cluster.coordinator.as_ref().unwrap();
    let warnings = coordinator.out().lines().filter(|l| l.contains("connection limit reached")).count();
    let periods = started.elapsed().as_secs() / 10 + 1;
    assert!(
        (1..=periods as usize).contains(&warnings),
        "{warnings} WARN lines about the limit in {:?}: expected one per 10 s at most",
        started.elapsed()
    );
    drop(held);
}

#[cfg(unix)]
#[tokio::test]
async fn bodies_are_read_only_when_needed_within_the_deadline_and_refusals_close_cleanly() {
    let cluster =
        Cluster::start_with(Settings { extra_coordinator: "  body_read_timeout: 1\n".into(), ..Settings::default() })
            .await;
    let admin = cluster.admin();
    let guard = Duration::from_secs(20);

    // /health declares a body it does not need and never gets: answered, then closed.
    let mut s = connect_from(1, cluster.port).await;
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n").await.unwrap();
    let answer = read_until_closed(&mut s, guard).await;
    assert!(status_line(&answer).starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("connection: close"), "{answer}");

    // An admin route that takes no body answers without waiting for one.
    let mut s = connect_from(1, cluster.port).await;
    let request = format!(
        "GET /api/v1/nodes HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\nContent-Length: 100\r\n\r\n{{"
    );
    s.write_all(request.as_bytes()).await.unwrap();
    let answer = read_until_closed(&mut s, guard).await;
    assert!(status_line(&answer).starts_with("HTTP/1.1 200"), "{answer}");

    // No token, half a body: 401 at once, then a clean close (EOF, not a reset).
    let mut s = connect_from(1, cluster.port).await;
    s.write_all(b"POST /api/v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"name\": \"x\"").await.unwrap();
    let answer = read_until_closed(&mut s, guard).await;
    assert!(status_line(&answer).starts_with("HTTP/1.1 401"), "{answer}");

    // With the token, a body that stops halfway is cut at the deadline: 408, then closed.
    for (what, request) in [
        (
            "Content-Length",
            format!(
                "POST /api/v1/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"name\":"
            ),
        ),
        (
            "chunked",
            format!(
                "POST /api/v1/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n{{\"name\":\r\n"
            ),
        ),
    ] {
        let mut s = connect_from(1, cluster.port).await;
        let sent = Instant::now();
        s.write_all(request.as_bytes()).await.unwrap();
        let answer = read_until_closed(&mut s, guard).await;
        assert!(status_line(&answer).starts_with("HTTP/1.1 408"), "{what}: {answer}");
        assert!(answer.contains("coordinator.body_read_timeout"), "{what}: {answer}");
        assert!(sent.elapsed() >= Duration::from_secs(1), "{what}: cut before the deadline ({:?})", sent.elapsed());
    }

    // A complete request on a kept-alive connection still works after all that.
    let (status, _) = cluster.api("POST", "/api/v1/tasks", Some(json!({"name": "ok", "required_skills": ["x"]}))).await;
    assert_eq!(status, 201);
}
