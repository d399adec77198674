//! The typed HTTP client for the coordinator's API, shared by the worker and the CLI.
//!
//! It speaks exactly the request and response types of [`crate::model`]. Errors say what
//! was tried and what to check: "GET /api/v1/nodes returned 401 (unauthorized): …", or
//! "cannot reach the coordinator at http://… (GET /api/v1/nodes): Connection refused …
//! Check that it is running …".

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use reqwest::Method;

use crate::api::{Route, WaitQuery};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::model::{
    ErrorBody, ErrorCode, HeartbeatRequest, HeartbeatResponse, NodeActionResponse, OutputAck, OutputBatch, PollRequest,
    PollResponse, RegisterRequest, RegisterResponse, ReportResponse, ResultReport, SecretInfo, StartReport, SubmitTask,
    Task,
};

/// Why a call failed. Paths are shown decoded (`task_01…`, not `task%5F01…`); the caller
/// adds the hint that fits it (the CLI's flags differ from the worker's).
#[derive(Debug, thiserror::Error)]
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

/// A client bound to one coordinator and one bearer token.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("base", &self.base).finish_non_exhaustive()
    }
}

impl Client {
    /// A client for `base` (e.g. `http://127.0.0.1:8888`), trusting the PEM certificate(s)
    /// in `ca_file` in addition to the system's roots.
    pub fn new(base: &str, token: Option<String>, ca_file: Option<&Path>) -> anyhow::Result<Client> {
        use anyhow::Context;
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
        Ok(Client { http, base: base.trim_end_matches('/').to_string(), token })
    }

    /// The same coordinator with another token (a worker switches to its node secret).
    pub fn with_token(&self, token: Option<String>) -> Client {
        Client { http: self.http.clone(), base: self.base.clone(), token }
    }

    /// The bearer token it sends (the worker redacts it from task output).
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// The error for a request that got no HTTP answer: untrusted TLS, or unreachable.
    fn transport(&self, method: &Method, path: &str, e: &reqwest::Error) -> ClientError {
        let cause = if e.is_timeout() { "timed out".to_string() } else { root_cause(e) };
        let (url, method, path) = (self.base.clone(), method.clone(), shown(path));
        let tls = ["certificate", "UnknownIssuer", "NotValidForName", "CertExpired", "BadSignature"];
        if tls.iter().any(|t| cause.contains(t)) {
            ClientError::Untrusted { url, method, path, cause }
        } else {
            ClientError::Unreachable { url, method, path, cause }
        }
    }

    /// The error for a non-2xx answer.
    fn refused(&self, method: Method, path: &str, status: reqwest::StatusCode, bytes: &[u8]) -> ClientError {
        let (code, message) = match serde_json::from_slice::<ErrorBody>(bytes) {
            Ok(e) => (e.error.code, e.error.message),
            Err(_) => (
                status.canonical_reason().unwrap_or("error").to_ascii_lowercase().replace(' ', "_"),
                String::from_utf8_lossy(bytes).chars().take(500).collect(),
            ),
        };
        ClientError::Status {
            url: self.base.clone(),
            method,
            path: shown(path),
            status: status.as_u16(),
            code,
            message,
        }
    }

    /// Sends a route's request and returns the raw body of a 2xx answer.
    pub async fn raw(&self, route: &Route, body: Option<Vec<u8>>, timeout: Duration) -> Result<Bytes, ClientError> {
        let (method, path) = route.request();
        let mut req = self.http.request(method.clone(), format!("{}{path}", self.base)).timeout(timeout);
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        if let Some(bytes) = body {
            req = req.header("content-type", "application/json").body(bytes);
        }
        let response = req.send().await.map_err(|e| self.transport(&method, &path, &e))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| self.transport(&method, &path, &e))?;
        if status.is_success() {
            return Ok(bytes);
        }
        Err(self.refused(method, &path, status, &bytes))
    }

    /// Opens a Server-Sent Events stream (no time limit), resuming after `last_id`; see
    /// [`crate::eventsource::EventSource`], which reads it.
    pub async fn open_stream(&self, route: &Route, last_id: Option<&str>) -> Result<reqwest::Response, ClientError> {
        let (method, path) = route.request();
        let mut req =
            self.http.request(method.clone(), format!("{}{path}", self.base)).header("accept", "text/event-stream");
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        if let Some(id) = last_id {
            req = req.header("last-event-id", id);
        }
        let response = req.send().await.map_err(|e| self.transport(&method, &path, &e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let bytes = response.bytes().await.map_err(|e| self.transport(&method, &path, &e))?;
        Err(self.refused(method, &path, status, &bytes))
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
        let write_failed = |e: std::io::Error| ClientError::Unreachable {
            url: self.base.clone(),
            method: method.clone(),
            path: shown(&path),
            cause: format!("cannot write the download: {e}"),
        };
        let mut total = 0u64;
        while let Some(chunk) = response.chunk().await.map_err(|e| self.transport(&method, &path, &e))? {
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
        let mut req = self.http.request(method.clone(), format!("{}{path}", self.base));
        if let Some(t) = timeout {
            req = req.timeout(t);
        }
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        let response = req.send().await.map_err(|e| self.transport(&method, &path, &e))?;
        let status = response.status();
        if !status.is_success() {
            let bytes = response.bytes().await.unwrap_or_default();
            return Err(self.refused(method, &path, status, &bytes));
        }
        Ok(response)
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
        let mut out = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.transport(&method, &path, &e))? {
            if (out.len() + chunk.len()) as u64 > max {
                return Err(ClientError::Unreachable {
                    url: self.base.clone(),
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
