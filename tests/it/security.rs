//! What issue 24 found and what must stay true: with `auth.enabled: false` the coordinator
//! serves only its own machine (a loopback `Host`, its own `Origin`, no cross-site page —
//! checked with raw requests and with Debian's chromium running pages of other origins and
//! a DNS-rebinding page), and listens on loopback only unless told so loudly; JSON routes
//! take only `application/json`; every answer carries `nosniff` and `no-store`; a token the
//! CLI finds on disk goes only to the coordinator that wrote it.

use std::time::Duration;

use serde_json::{Value, json};

use crate::dashboard::{browser, driver};
use crate::support::{Cluster, Proc, Settings, show};

fn auth_off() -> Cluster {
    let mut cluster = Cluster::new(Settings::default());
    cluster.append_config("auth:\n  enabled: false\n");
    cluster
}

/// A request to the cluster's port with the headers given (reqwest sets `Host` from the URL
/// unless one is given).
async fn raw(
    cluster: &Cluster,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = cluster.http.request(method, format!("{}{path}", cluster.url()));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req.body(b.to_string());
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or_default()
}

/// Regression test for issue 24: with auth off, a DNS-rebinding page (`Host:
/// rebind.evil.example`) read the tasks and downloaded the backup, and a cross-site
/// text/plain POST created a task.
#[tokio::test]
async fn without_auth_only_loopback_hosts_and_the_own_origin_are_served() {
    let mut cluster = auth_off();
    cluster.start_coordinator().await;
    let port = cluster.port;
    let task = r#"{"name": "t", "required_skills": ["x"]}"#;
    let json = ("content-type", "application/json");
    for host in ["rebind.evil.example", "rebind.evil.example:8888", "192.168.1.5", "127.0.0.2"] {
        for (method, path, body) in [
            ("GET", "/api/v1/tasks", None),
            ("GET", "/api/v1/backup", None),
            ("POST", "/api/v1/tasks", Some(task)),
            ("GET", "/health", None),
        ] {
            let (status, body) = raw(&cluster, method, path, &[("host", host), json], body).await;
            assert_eq!(status, 403, "{method} {path} with Host {host}: {body}");
            assert_eq!(body["error"]["code"], "forbidden");
            assert!(message(&body).contains("auth.enabled: false") && message(&body).contains(host), "{body}");
        }
    }
    let own = format!("http://localhost:{port}");
    for (headers, why) in [
        (vec![("origin", "http://localhost:9999")], "another port"),
        (vec![("origin", "http://evil.example")], "another site"),
        (vec![("origin", "null")], "an opaque origin"),
        (vec![("sec-fetch-site", "cross-site")], "a cross-site page"),
        (vec![("sec-fetch-site", "same-site")], "a page of another port"),
    ] {
        let mut all = headers.clone();
        all.extend([("host", own.trim_start_matches("http://")), json]);
        let (status, body) = raw(&cluster, "POST", "/api/v1/tasks", &all, Some(task)).await;
        assert_eq!(status, 403, "{why}: {body}");
        assert!(message(&body).contains(&own), "the refusal says where the dashboard is: {body}");
    }
    // A text/plain body is refused on a JSON route (415), whoever sends it.
    let (status, body) =
        raw(&cluster, "POST", "/api/v1/tasks", &[("content-type", "text/plain;charset=UTF-8")], Some(task)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (415, Some("unsupported_media_type")), "{body}");
    assert!(message(&body).contains("Content-Type: application/json") && message(&body).contains("text/plain"));
    let (status, body) = raw(&cluster, "POST", "/api/v1/nodes/register", &[], Some("{}")).await;
    assert_eq!(status, 415, "a body without a Content-Type: {body}");
    assert!(message(&body).contains("no Content-Type"), "{body}");
    // Nothing above changed anything.
    let (_, tasks) = raw(&cluster, "GET", "/api/v1/tasks", &[], None).await;
    assert_eq!(tasks["tasks"], json!([]), "{tasks}");
    // What is allowed: loopback names, the own origin, a same-origin browser request.
    for host in [format!("127.0.0.1:{port}"), format!("localhost:{port}"), "[::1]".to_string()] {
        let (status, body) = raw(&cluster, "GET", "/api/v1/tasks", &[("host", &host)], None).await;
        assert_eq!(status, 200, "Host {host}: {body}");
    }
    let headers = [
        ("host", own.trim_start_matches("http://")),
        ("origin", own.as_str()),
        ("sec-fetch-site", "same-origin"),
        json,
    ];
    let (status, body) = raw(&cluster, "POST", "/api/v1/tasks", &headers, Some(task)).await;
    assert_eq!(status, 201, "{body}");
}

/// With auth on, the token is the guard: any `Host` is served (the coordinator is reached
/// under many names), and a body of another type than JSON is still refused.
#[tokio::test]
async fn with_auth_any_host_is_served_and_typed_bodies_must_be_json() {
    let cluster = Cluster::start().await;
    let admin = format!("Bearer {}", cluster.admin());
    let auth = ("authorization", admin.as_str());
    let (status, body) =
        raw(&cluster, "GET", "/api/v1/tasks", &[auth, ("host", "coordinator.example:8888")], None).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) =
        raw(&cluster, "POST", "/api/v1/tasks", &[auth, ("content-type", "text/plain")], Some("{\"name\":\"t\"}")).await;
    assert_eq!(status, 415, "{body}");
    // A body without a type is read as JSON with a token (as the Python original did, for
    // `curl -d` lines that name no type).
    let task = r#"{"name":"t","required_skills":["echo"]}"#;
    let (status, body) = raw(&cluster, "POST", "/api/v1/tasks", &[auth], Some(task)).await;
    assert_eq!(status, 201, "{body}");
}

/// `auth.enabled: false` on a non-loopback address is refused at start (exit 2), unless
/// `auth.insecure_listen_without_auth` says so; then it starts with a WARN, and a request
/// must still name a loopback `Host`.
#[cfg(unix)]
#[tokio::test]
async fn without_auth_a_non_loopback_address_needs_the_loud_setting() {
    let cluster = auth_off();
    let config = cluster.config.display().to_string();
    let port = crate::support::free_port().to_string();
    let o = cluster.cli(&["coordinator", "--host", "0.0.0.0", "--port", &port]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("auth.enabled is false")
            && err.contains("0.0.0.0")
            && err.contains("auth.insecure_listen_without_auth"),
        "{err}"
    );
    assert!(!cluster.db().exists(), "nothing was created before the refusal");
    let mut p = Proc::spawn(
        "open-coordinator",
        &["-c", &config, "coordinator", "--host", "0.0.0.0", "--port", &port],
        &[("OPENCLAW_AUTH__INSECURE_LISTEN_WITHOUT_AUTH", "true")],
        cluster.path(),
        &cluster.logs(),
    );
    p.wait_for_output("coordinator ready on ", Duration::from_secs(20)).await;
    assert!(p.out().contains("INSECURE") && p.out().contains("insecure_listen_without_auth"), "{}", p.logs());
    let url = format!("http://127.0.0.1:{port}/api/v1/nodes");
    let r = cluster.http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = cluster.http.get(&url).header("host", format!("10.1.2.3:{port}")).send().await.unwrap();
    assert_eq!(r.status(), 403);
    p.term();
    assert_eq!(p.wait_exit(Duration::from_secs(20)).await.code(), Some(0), "{}", p.logs());
}

/// Pages of other origins in a real browser (Debian's chromium) cannot create or read
/// anything on a coordinator without auth: a page on another port, one on another host
/// name, and a DNS-rebinding page (its document from the attacker, its requests to the
/// coordinator's port). A page of the coordinator's own origin is the control: it can.
#[tokio::test]
async fn without_auth_pages_of_other_origins_cannot_create_or_read_anything() {
    let Some((chromium, playwright)) = browser() else { return };
    let mut cluster = auth_off();
    cluster.start_coordinator().await;
    let out = driver(&chromium, &playwright, &["attack", &cluster.url()]).output().await.expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the attack pages failed to run:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap();
    for page in ["another port", "another host name"] {
        let seen = &report[page];
        for read in ["read /api/v1/tasks", "read /api/v1/nodes", "read /api/v1/backup"] {
            assert!(seen[read]["error"].is_string(), "{page} could read {read}: {seen}");
        }
        for write in ["text/plain task", "text/plain node"] {
            assert_eq!(seen[write]["type"], "opaque", "{page}: {write}: {seen}");
        }
    }
    let rebinding = &report["dns rebinding"];
    for what in ["text/plain task", "text/plain node", "json task", "read /api/v1/tasks", "read /api/v1/backup"] {
        assert_eq!(rebinding[what]["status"], 403, "dns rebinding: {what}: {rebinding}");
        assert!(rebinding[what]["text"].as_str().unwrap().contains("rebind.test"), "{rebinding}");
    }
    let own = &report["own origin"];
    assert_eq!(own["text/plain task"]["status"], 415, "{own}");
    assert_eq!(own["json task"]["status"], 201, "the control must work: {own}");
    assert!(own["read /api/v1/tasks"]["text"].as_str().unwrap().contains("json task"), "{own}");

    // Only the control's task exists, no node; and the coordinator itself refused the
    // cross-site writes (not only the browser hid their answers).
    let (_, tasks) = raw(&cluster, "GET", "/api/v1/tasks", &[], None).await;
    let names: Vec<&str> = tasks["tasks"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["json task"], "{tasks}");
    let (_, nodes) = raw(&cluster, "GET", "/api/v1/nodes", &[], None).await;
    assert_eq!(nodes, json!([]));
    let log = cluster.coordinator.as_ref().unwrap().out();
    let refused = log
        .lines()
        .filter(|l| {
            l.contains(r#""path":"/api/v1/tasks""#) && l.contains(r#""method":"POST""#) && l.contains(r#""status":403"#)
        })
        .count();
    // Two cross-site fetches, two form posts, two rebinding posts.
    assert!(refused >= 6, "the coordinator refused {refused} cross-site task posts:\n{log}");
}

/// Every answer carries `X-Content-Type-Options: nosniff`; JSON answers (the register answer
/// with its `node_secret` among them) and errors also `Cache-Control: no-store`; answers
/// with a caching rule of their own keep it (dashboard assets `no-cache`, streams `no-cache`).
/// (Every JSON answer of the suite's `Cluster::call` is checked the same way.)
#[tokio::test]
async fn every_answer_is_nosniff_and_json_is_never_stored() {
    let cluster = Cluster::start().await;
    let admin = cluster.admin();
    let get = |path: &str, token: Option<&str>| {
        let mut req = cluster.http.get(format!("{}{path}", cluster.url()));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    let header = |r: &reqwest::Response, name: &str| {
        r.headers().get(name).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default()
    };
    let register = cluster
        .http
        .post(format!("{}/api/v1/nodes/register", cluster.url()))
        .bearer_auth(cluster.worker_token())
        .json(&json!({"node_id": "n1", "hostname": "h", "platform": "linux", "arch": "x64"}))
        .send()
        .await
        .unwrap();
    let mut answers = vec![("register".to_string(), register)];
    for (path, token) in [
        ("/health", None),
        ("/api/v1/nodes", Some(admin.as_str())),
        ("/api/v1/nodes", None),
        ("/api/v1/nodes/nobody", Some(admin.as_str())),
        ("/api/v1/nothing-here", None),
        ("/openapi.json", None),
        ("/metrics", Some(admin.as_str())),
        ("/assets/app.js", None),
        ("/", None),
    ] {
        answers.push((path.to_string(), get(path, token).await.unwrap()));
    }
    let mut json = 0;
    for (what, r) in &answers {
        assert_eq!(header(r, "x-content-type-options"), "nosniff", "{what}");
        let kind = header(r, "content-type");
        if kind.starts_with("application/json") {
            json += 1;
            assert_eq!(header(r, "cache-control"), "no-store", "{what}");
        } else if what.starts_with("/assets") || what == "/" {
            assert_eq!(header(r, "cache-control"), "no-cache", "{what}: the dashboard's own rule");
        } else {
            assert_eq!(header(r, "cache-control"), "no-store", "{what} ({kind})");
        }
    }
    assert!(json >= 6, "{json} JSON answers checked");
    let stream = get("/api/v1/events", Some(&admin)).await.unwrap();
    assert_eq!(
        (header(&stream, "cache-control"), header(&stream, "x-content-type-options")),
        ("no-cache".into(), "nosniff".into())
    );
}

/// Regression test for issue 24: the CLI sent the admin token it found on disk to any
/// `--url`. Now a token found beside a database goes only to the coordinator that wrote the
/// `coordinator.address` beside it; another coordinator on this machine (another port) gets
/// no token (it says "missing bearer token", not "invalid token") and the CLI says why and
/// what to pass. An explicit token goes where the user says, with a warning over plain http
/// off loopback.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_token_found_on_disk_goes_only_to_the_coordinator_that_wrote_it() {
    let home = Cluster::start().await;
    let other = Cluster::start().await;
    let recorded = std::fs::read_to_string(home.path().join("data/coordinator.address")).unwrap();
    assert_eq!(recorded.trim(), home.url(), "the coordinator records the address it listens on");

    // Home: the config's address, and a loopback name for it.
    for extra in [vec![], vec!["--url".to_string(), format!("http://localhost:{}", home.port)]] {
        let mut args = vec!["nodes"];
        args.extend(extra.iter().map(String::as_str));
        let o = home.cli(&args);
        assert_eq!(o.status.code(), Some(0), "{}", show(&o));
        assert!(!String::from_utf8_lossy(&o.stderr).contains("not sent"), "{}", show(&o));
    }
    // Another coordinator, by --url and by OPENCLAW_URL: the found token is not sent.
    let config = home.config.display().to_string();
    let by_flag = home.cli(&["nodes", "--url", &other.url()]);
    let by_env = crate::support::cli(&["-c", &config, "nodes"], &[("OPENCLAW_URL", &other.url())], home.path());
    for o in [&by_flag, &by_env] {
        assert_eq!(o.status.code(), Some(1), "{}", show(o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("admin.token was not sent to")
                && err.contains(&format!("listening on {}", home.url()))
                && err.contains("--token or OPENCLAW_TOKEN")
                && err.contains("401"),
            "{err}"
        );
    }
    let log = other.coordinator.as_ref().unwrap().out();
    assert!(
        log.contains("missing bearer token") && !log.contains("invalid token"),
        "the other coordinator got a token:\n{log}"
    );
    // Explicitly given, the other coordinator's token works.
    let o = crate::support::cli(
        &["-c", &config, "nodes", "--url", &other.url()],
        &[("OPENCLAW_TOKEN", &other.admin())],
        home.path(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    // Over plain http to an address that is not loopback (0.0.0.0 reaches this machine on
    // Linux, and is not a loopback address): a warning, and the request goes.
    let wide = format!("http://0.0.0.0:{}", home.port);
    let o = home.cli(&["nodes", "--url", &wide, "--token", &home.admin()]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("warning:") && err.contains("over plain http") && err.contains("coordinator.tls_cert"),
        "{err}"
    );
    // No record beside the token: it is sent nowhere, and the CLI says how to fix that.
    std::fs::remove_file(home.path().join("data/coordinator.address")).unwrap();
    let o = home.cli(&["nodes"]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no coordinator.address beside it") && err.contains("start the coordinator"), "{err}");
}
