//! The typed HTTP client for the coordinator's API, shared by the worker and the CLI.
//!
//! It follows the leader among several coordinators of one shared store: it knows their
//! URLs and the one that answered last (shared by every clone of a client, so the worker's
//! calls all move together). A request that could not connect, or that a standby answered
//! with `503 not_leader`, was not handled by anybody, so it goes again: to the leader the
//! standby named (its `Location`), else to the next URL; after a round of the list without
//! an answer it waits (100 ms, doubling to 1 s) and goes on for at most
//! [`Client::FOLLOW_FOR`] — a failover's length. A client of one URL that cannot connect
//! fails at once, as it always did. Any other failure (a timeout, a connection cut
//! mid-answer) is not retried here: the request may have been handled.
//!
//! It speaks exactly the request and response types of [`crate::model`]. Errors say what
//! was tried and what to check: "GET /api/v1/nodes returned 401 (unauthorized): …", or
//! "cannot reach the coordinator at http://… (GET /api/v1/nodes): Connection refused …
//! Check that it is running …".

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use reqwest::Method;

use crate::api::{Route, WaitQuery};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::model::{
    ErrorBody, ErrorCode, HeartbeatRequest, HeartbeatResponse, NodeActionResponse, OutputAck, OutputBatch, PollRequest,
    PollResponse, RegisterRequest, RegisterResponse, ReportBatch, ReportBatchAnswer, ReportResponse, ResultReport,
    SecretInfo, StartReport, SubmitTask, Task,
};

/// Why a call failed. Paths are shown decoded (`task_01…`, not `task%5F01…`); the caller
/// adds the hint that fits it (the CLI's flags differ from the worker's).
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the coordinator at {url} ({method} {path}): {cause}")]
    Unreachable { url: String, method: Method, path: String, cause: String },
    #[error(
        "the coordinator at {url} is not trusted ({method} {path}): {cause}; set worker.ca_file to the PEM file of the CA that signed its certificate (the worker and the CLI both read it), or give the coordinator a certificate this machine trusts"
    )]
    Untrusted { url: String, method: Method, path: String, cause: String },
    #[error("{method} {url}{path} returned {status} ({code}): {message}")]
    Status { url: String, method: Method, path: String, status: u16, code: String, message: String },
    #[error(
        "{method} {path}: the answer is not what this client understands ({cause}); are the client and the coordinator the same version? compare `openclaw --version` with GET /health"
    )]
    Decode { method: Method, path: String, cause: String },
}

impl ClientError {
    /// The HTTP status, when the coordinator answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The error's stable code, when the coordinator answered with one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Status { code, .. } => code.parse().ok(),
            _ => None,
        }
    }
}

/// A path for messages: percent-decoded.
fn shown(path: &str) -> String {
    percent_encoding::percent_decode_str(path).decode_utf8_lossy().into_owned()
}

/// The innermost cause of an error, which is the useful part ("Connection refused").
pub(crate) fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// A coordinator's URL as a client takes it (`host:port` means `http://host:port`): the
/// scheme, host and port, without a trailing `/`; anything else is an error naming it.
pub fn parse_base(url: &str) -> Result<String, String> {
    let url = url.trim();
    let full = if url.contains("://") { url.to_string() } else { format!("http://{url}") };
    let parsed = reqwest::Url::parse(&full).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(format!("`{url}` is not an http:// or https:// URL of a coordinator"));
    }
    Ok(full.trim_end_matches('/').to_string())
}

/// The coordinators a client knows, and the one it talks to.
#[derive(Debug)]
struct Coordinators {
    /// As configured, in order.
    urls: Vec<String>,
    /// The one that answered last (or a leader a standby named): where requests go first.
    /// A std mutex: held only to copy or replace the string.
    current: Mutex<String>,
}

/// Where to send a request that nobody handled.
enum Next {
    /// The leader a standby named.
    Leader(String),
    /// The next URL of the list.
    Another,
}

/// A client for the coordinators of one cluster, with one bearer token.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    coordinators: Arc<Coordinators>,
    token: Option<String>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("coordinators", &self.coordinators.urls).finish_non_exhaustive()
    }
}

impl Client {
    /// How long a request looks for the leader among the coordinators before it fails.
    pub const FOLLOW_FOR: Duration = Duration::from_secs(15);

    /// A client for `base` (e.g. `http://127.0.0.1:8888`), trusting the PEM certificate(s)
    /// in `ca_file` in addition to the system's roots.
    pub fn new(base: &str, token: Option<String>, ca_file: Option<&Path>) -> anyhow::Result<Client> {
        Client::for_coordinators(&[base.to_string()], token, ca_file)
    }

    /// A client for the coordinators at `urls` (at least one), following the leader.
    pub fn for_coordinators(urls: &[String], token: Option<String>, ca_file: Option<&Path>) -> anyhow::Result<Client> {
        use anyhow::Context;
        let urls: Vec<String> = urls.iter().map(|u| u.trim_end_matches('/').to_string()).collect();
        let first = urls.first().cloned().context("no coordinator URL given")?;
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(50))
            .user_agent(concat!("openclaw/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = ca_file {
            let pem = std::fs::read(path).with_context(|| format!("cannot read worker.ca_file {}", path.display()))?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem)
                .with_context(|| format!("worker.ca_file {} is not a PEM certificate", path.display()))?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder.build().context("cannot set up the HTTP client")?;
        let coordinators = Arc::new(Coordinators { urls, current: Mutex::new(first) });
        Ok(Client { http, coordinators, token })
    }

    /// The same coordinators with another token (a worker switches to its node secret); it
    /// follows the leader together with this one.
    pub fn with_token(&self, token: Option<String>) -> Client {
        Client { http: self.http.clone(), coordinators: self.coordinators.clone(), token }
    }

    /// The bearer token it sends (the worker redacts it from task output).
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The same coordinators and token (clones of one client): requests of one registration.
    pub fn same_as(&self, other: &Client) -> bool {
        Arc::ptr_eq(&self.coordinators, &other.coordinators) && self.token == other.token
    }

    /// The coordinator it talks to now (the leader, as far as it knows).
    pub fn base(&self) -> String {
        crate::util::lock(&self.coordinators.current).clone()
    }

    /// Sends the request `build` makes for a coordinator's base URL, following the leader
    /// (see the module's doc); returns a 2xx answer, or the error.
    async fn send(
        &self,
        method: &Method,
        path: &str,
        build: impl Fn(&str) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ClientError> {
        let started = tokio::time::Instant::now();
        let mut delay = Duration::from_millis(100);
        let mut misses = 0usize;
        loop {
            let base = self.base();
            let mut req = build(&base);
            if let Some(token) = &self.token {
                req = req.bearer_auth(token);
            }
            let (next, error) = match req.send().await {
                Ok(response) if response.status().is_success() => return Ok(response),
                Ok(response) => {
                    let status = response.status();
                    let location = response.headers().get(reqwest::header::LOCATION).cloned();
                    let bytes = response.bytes().await.map_err(|e| self.transport(&base, method, path, &e))?;
                    let error = self.refused(&base, method.clone(), path, status, &bytes);
                    if error.code() != Some(ErrorCode::NotLeader) {
                        return Err(error);
                    }
                    // The standby's Location is the leader's base plus this request's path.
                    let leader = location
                        .and_then(|l| l.to_str().ok().map(str::to_string))
                        .and_then(|l| l.strip_suffix(path).map(str::to_string))
                        .filter(|l| *l != base);
                    (leader.map_or(Next::Another, Next::Leader), error)
                }
                Err(e) if e.is_connect() && (self.coordinators.urls.len() > 1 || misses > 0) => {
                    (Next::Another, self.transport(&base, method, path, &e))
                }
                Err(e) => return Err(self.transport(&base, method, path, &e)),
            };
            misses += 1;
            if started.elapsed() >= Self::FOLLOW_FOR {
                return Err(error);
            }
            let known = &self.coordinators.urls;
            let target = match next {
                Next::Leader(leader) => leader,
                Next::Another => {
                    let at = known.iter().position(|u| *u == base);
                    known[at.map_or(0, |i| (i + 1) % known.len())].clone()
                }
            };
            tracing::debug!(target: "openclaw::client", from = %base, to = %target, error = %error, "looking for the leading coordinator");
            *crate::util::lock(&self.coordinators.current) = target;
            // A round of the list without an answer: wait before the next one.
            if misses.is_multiple_of(known.len().max(1)) {
                tokio::time::sleep(delay.min(Self::FOLLOW_FOR.saturating_sub(started.elapsed()))).await;
                delay = (delay * 2).min(Duration::from_secs(1));
            }
        }
    }

    /// The error for a request that got no HTTP answer: untrusted TLS, or unreachable.
    fn transport(&self, base: &str, method: &Method, path: &str, e: &reqwest::Error) -> ClientError {
        let cause = if e.is_timeout() { "timed out".to_string() } else { root_cause(e) };
        let (url, method, path) = (base.to_string(), method.clone(), shown(path));
        let tls = ["certificate", "UnknownIssuer", "NotValidForName", "CertExpired", "BadSignature"];
        if tls.iter().any(|t| cause.contains(t)) {
            ClientError::Untrusted { url, method, path, cause }
        } else {
            ClientError::Unreachable { url, method, path, cause }
        }
    }

    /// The error for a non-2xx answer.
    fn refused(
        &self,
        base: &str,
        method: Method,
        path: &str,
        status: reqwest::StatusCode,
        bytes: &[u8],
    ) -> ClientError {
        let (code, message) = match serde_json::from_slice::<ErrorBody>(bytes) {
            Ok(e) => (e.error.code, e.error.message),
            Err(_) => (
                status.canonical_reason().unwrap_or("error").to_ascii_lowercase().replace(' ', "_"),
                String::from_utf8_lossy(bytes).chars().take(500).collect(),
            ),
        };
        ClientError::Status { url: base.to_string(), method, path: shown(path), status: status.as_u16(), code, message }
    }

    /// Sends a route's request and returns the raw body of a 2xx answer.
    pub async fn raw(&self, route: &Route, body: Option<Vec<u8>>, timeout: Duration) -> Result<Bytes, ClientError> {
        let (method, path) = route.request();
        let body = body.map(Bytes::from);
        let response = self
            .send(&method, &path, |base| {
                let req = self.http.request(method.clone(), format!("{base}{path}")).timeout(timeout);
                match &body {
                    Some(bytes) => req.header("content-type", "application/json").body(bytes.clone()),
                    None => req,
                }
            })
            .await?;
        let base = self.base();
        response.bytes().await.map_err(|e| self.transport(&base, &method, &path, &e))
    }

    /// Opens a Server-Sent Events stream (no time limit), resuming after `last_id`; see
    /// [`crate::eventsource::EventSource`], which reads it.
    pub async fn open_stream(&self, route: &Route, last_id: Option<&str>) -> Result<reqwest::Response, ClientError> {
        let (method, path) = route.request();
        self.send(&method, &path, |base| {
            let req = self.http.request(method.clone(), format!("{base}{path}")).header("accept", "text/event-stream");
            match last_id {
                Some(id) => req.header("last-event-id", id),
                None => req,
            }
        })
        .await
    }

    /// Sends a route's request with an optional JSON body and decodes the answer.
    pub async fn call<T: DeserializeOwned, B: Serialize>(
        &self,
        route: &Route,
        body: Option<&B>,
        timeout: Duration,
    ) -> Result<T, ClientError> {
        let body = body.map(|b| serde_json::to_vec(b).unwrap_or_default());
        let bytes = self.raw(route, body, timeout).await?;
        let (method, path) = route.request();
        decode(&method, &path, &bytes)
    }

    /// Streams a route's answer into `out` (a large download: a backup); returns its size.
    pub async fn download(&self, route: &Route, out: &mut tokio::fs::File) -> Result<u64, ClientError> {
        use tokio::io::AsyncWriteExt;
        let (method, path) = route.request();
        let mut response = self.get_stream(route, None).await?;
        let base = self.base();
        let write_failed = |e: std::io::Error| ClientError::Unreachable {
            url: base.clone(),
            method: method.clone(),
            path: shown(&path),
            cause: format!("cannot write the download: {e}"),
        };
        let mut total = 0u64;
        while let Some(chunk) = response.chunk().await.map_err(|e| self.transport(&base, &method, &path, &e))? {
            out.write_all(&chunk).await.map_err(write_failed)?;
            total += chunk.len() as u64;
        }
        out.flush().await.map_err(write_failed)?;
        Ok(total)
    }

    /// Sends a route's request without a body and returns a 2xx answer unread (a large
    /// download), within `timeout` when given.
    async fn get_stream(&self, route: &Route, timeout: Option<Duration>) -> Result<reqwest::Response, ClientError> {
        let (method, path) = route.request();
        self.send(&method, &path, |base| {
            let req = self.http.request(method.clone(), format!("{base}{path}"));
            match timeout {
                Some(t) => req.timeout(t),
                None => req,
            }
        })
        .await
    }

    /// A GET-style call without a body.
    pub async fn get<T: DeserializeOwned>(&self, route: &Route) -> Result<T, ClientError> {
        self.call(route, NONE, Self::SHORT).await
    }

    pub const SHORT: Duration = Duration::from_secs(15);

    pub async fn register(&self, req: &RegisterRequest) -> Result<RegisterResponse, ClientError> {
        self.call(&Route::RegisterNode, Some(req), Self::SHORT).await
    }

    pub async fn heartbeat(&self, node: &str, req: &HeartbeatRequest) -> Result<HeartbeatResponse, ClientError> {
        self.call(&Route::Heartbeat { node: node.into() }, Some(req), Self::SHORT).await
    }

    pub async fn shutdown_node(&self, node: &str) -> Result<NodeActionResponse, ClientError> {
        self.call(&Route::ShutdownNode { node: node.into() }, NONE, Self::SHORT).await
    }

    /// A long poll: waits up to `wait` on the coordinator for work.
    pub async fn poll(&self, node: &str, req: &PollRequest, wait: Duration) -> Result<PollResponse, ClientError> {
        self.call(&Route::PollTasks { node: node.into() }, Some(req), wait + Duration::from_secs(10)).await
    }

    pub async fn report_start(&self, node: &str, task: &str, attempt: u32) -> Result<ReportResponse, ClientError> {
        let route = Route::StartTask { node: node.into(), task: task.into() };
        self.call(&route, Some(&StartReport { attempt }), Self::SHORT).await
    }

    pub async fn report_result(
        &self,
        node: &str,
        task: &str,
        report: &ResultReport,
    ) -> Result<ReportResponse, ClientError> {
        self.call(&Route::TaskResult { node: node.into(), task: task.into() }, Some(report), Self::SHORT).await
    }

    /// Start reports and results of many attempts in one request (one commit); each is
    /// answered on its own. A coordinator older than this endpoint answers 404 or 405.
    pub async fn report_batch(&self, node: &str, batch: &ReportBatch) -> Result<ReportBatchAnswer, ClientError> {
        self.call(&Route::TaskReports { node: node.into() }, Some(batch), Self::SHORT).await
    }

    /// A batch of an attempt's output lines.
    pub async fn push_output(&self, node: &str, task: &str, batch: &OutputBatch) -> Result<OutputAck, ClientError> {
        self.call(&Route::PushOutput { node: node.into(), task: task.into() }, Some(batch), Self::SHORT).await
    }

    pub async fn set_draining(&self, node: &str, drain: bool) -> Result<NodeActionResponse, ClientError> {
        let route =
            if drain { Route::DrainNode { node: node.into() } } else { Route::UndrainNode { node: node.into() } };
        self.call(&route, NONE, Self::SHORT).await
    }

    pub async fn forget_node(&self, node: &str) -> Result<NodeActionResponse, ClientError> {
        self.call(&Route::ForgetNode { node: node.into() }, NONE, Self::SHORT).await
    }

    pub async fn submit(&self, task: &SubmitTask) -> Result<Task, ClientError> {
        self.call(&Route::SubmitTask, Some(task), Self::SHORT).await
    }

    /// Submits a workflow; the answer is its workflow task, with its steps as children.
    pub async fn submit_workflow(&self, wf: &crate::model::Workflow) -> Result<Task, ClientError> {
        self.call(&Route::SubmitWorkflow, Some(wf), Self::SHORT).await
    }

    /// Waits on the coordinator up to `wait` for the task to end.
    pub async fn wait_task(&self, id: &str, wait: Duration) -> Result<Task, ClientError> {
        let route = Route::WaitTask { task: id.into(), query: WaitQuery::new(wait) };
        self.call(&route, NONE, wait + Duration::from_secs(10)).await
    }

    pub async fn cancel_task(&self, id: &str) -> Result<Task, ClientError> {
        self.call(&Route::CancelTask { task: id.into() }, NONE, Self::SHORT).await
    }

    /// Sets a secret (the value travels in the body only).
    pub async fn set_secret(&self, name: &str, req: &crate::model::SetSecret) -> Result<SecretInfo, ClientError> {
        self.call(&Route::SetSecret { name: name.into() }, Some(req), Self::SHORT).await
    }

    pub async fn delete_secret(&self, name: &str) -> Result<SecretInfo, ClientError> {
        self.call(&Route::DeleteSecret { name: name.into() }, NONE, Self::SHORT).await
    }

    pub async fn rotate_secret_key(&self) -> Result<crate::model::KeyRotated, ClientError> {
        self.call(&Route::RotateSecretKey, NONE, Self::SHORT).await
    }

    /// Pushes a skill's package (a slow link may take a while with 16 MiB).
    pub async fn push_skill(&self, req: &crate::model::PushSkill) -> Result<crate::model::SkillPush, ClientError> {
        self.call(&Route::PushSkill, Some(req), Duration::from_secs(300)).await
    }

    /// A pushed skill's package for this node, at most `max` bytes: a longer answer is cut
    /// off and refused (the checker then never sees it).
    pub async fn skill_package(&self, node: &str, digest: &str, max: u64) -> Result<Vec<u8>, ClientError> {
        let route = Route::SkillPackage { node: node.into(), digest: digest.into() };
        let (method, path) = route.request();
        let mut response = self.get_stream(&route, Some(Duration::from_secs(300))).await?;
        let base = self.base();
        let mut out = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.transport(&base, &method, &path, &e))? {
            if (out.len() + chunk.len()) as u64 > max {
                return Err(ClientError::Unreachable {
                    url: base.clone(),
                    method,
                    path: shown(&path),
                    cause: format!("the package is larger than {max} bytes; refused"),
                });
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }
}

/// No request body.
const NONE: Option<&()> = None;

/// Decodes a JSON answer.
pub fn decode<T: DeserializeOwned>(method: &Method, path: &str, bytes: &[u8]) -> Result<T, ClientError> {
    serde_json::from_slice(bytes).map_err(|e| ClientError::Decode {
        method: method.clone(),
        path: shown(path),
        cause: e.to_string(),
    })
}
