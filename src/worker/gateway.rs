//! The local OpenClaw gateway: where it is, whether it can run agent turns, and running one.
//!
//! Where: `worker.gateway_url` / `worker.port` / `worker.gateway_token` when set, else what
//! OpenClaw's own config says (port, bind address, TLS, `gateway.auth.token`, with
//! `OPENCLAW_GATEWAY_PORT` and `OPENCLAW_GATEWAY_TOKEN` as OpenClaw applies them). The
//! config is read again at every probe, so an edit there is picked up without a restart.
//!
//! Probing never starts an agent session: `GET /healthz` (no auth), then `GET /v1/models`
//! with the token. 200 and `openclaw/<agent_id>` among the listed models means ready; 404
//! means chat completions are off in OpenClaw's config; 401/403 a refused token; 429 with
//! type `rate_limited` the gateway's lockout after failed logins.
//!
//! A turn is `POST /v1/chat/completions` with model `openclaw/<agent_id>` and `stream:
//! true`: the answer's pieces (`choices[0].delta.content`) go to the task's live output as
//! they come, and the whole is the result. Its failures are sorted by what retrying can do
//! (see [`TurnOutcome`]), from the real gateway's statuses and error `type`s; once a stream
//! has begun (200), the gateway reports a failure as an `{"error": {message, type}}` chunk,
//! which is sorted by its type as the same failure without streaming would be by its
//! status. A gateway that answers plain JSON instead is read as before. Dropping the
//! connection (the task's timeout, a cancel) makes the gateway abort the turn.
//!
//! The token is a full owner credential: it is only ever sent to the gateway and never
//! logged. Connections are not pooled: each call opens its own, so a connection the gateway
//! closed while idle is never mistaken for a gateway failure.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use super::live_output::OutputSink;
use super::openclaw::{self, ENABLE_CHAT_COMMAND};
use crate::client::root_cause;
use crate::model::OutputStream;
use crate::util::lock;

/// Whether agent tasks can run here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Availability {
    Ready,
    /// Why not, with what to do about it.
    Unavailable(String),
}

/// How an agent turn ended, sorted by what the coordinator should do about it.
#[derive(Debug, Clone, PartialEq)]
pub enum TurnOutcome {
    Answer {
        text: String,
        model: Option<String>,
    },
    /// The turn never reached the gateway (connection refused): the attempt was lost before
    /// it started. Requeue at once without spending a retry; agent skills are withdrawn.
    NotStarted(String),
    /// The gateway cannot run turns now (endpoint off, token refused, locked out): withdraw
    /// agent skills and requeue after `retry_after` without spending a retry.
    Unavailable {
        message: String,
        retry_after: Duration,
    },
    /// The model provider is rate-limiting (429 without lockout): try again after
    /// `retry_after` (Retry-After, or a default) without spending a retry.
    RateLimited {
        retry_after: Duration,
        message: String,
    },
    /// 400: the gateway refused the request itself (unknown agent, a prompt the model
    /// rejects). Retrying cannot help.
    Refused(String),
    /// 408 or 5xx, or the connection was lost during the turn: a failed attempt, retried
    /// with backoff.
    Failed(String),
    TimedOut,
}

/// Requeue delay after a 429 that says nothing about when to come back.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(30);

/// Where the gateway is, resolved from the worker's settings and OpenClaw's config.
#[derive(Clone, PartialEq, Eq)]
struct Target {
    url: String,
    token: Option<String>,
    /// Why the token could not be resolved (a secret reference we cannot read, an unset
    /// `${VAR}`).
    token_error: Option<String>,
    /// OpenClaw's config file, when the address came from it.
    config: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target").field("url", &self.url).field("has_token", &self.token.is_some()).finish()
    }
}

/// What the worker's own config pins down.
#[derive(Clone, Default)]
struct Pinned {
    url: Option<String>,
    port: Option<u16>,
    token: Option<String>,
}

/// A client for the local gateway.
#[derive(Clone)]
pub struct Gateway {
    http: reqwest::Client,
    pinned: Pinned,
    agent_id: String,
    /// The largest answer read (worker.max_output_bytes).
    max_answer: u64,
    /// The last resolved address. A std mutex: replaced whole, never held across `.await`.
    target: Arc<Mutex<Target>>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").field("target", &*lock(&self.target)).field("agent_id", &self.agent_id).finish()
    }
}

/// The gateway's `{"error": {"message", "type"}}`, or the body's start (a 404 from a
/// disabled endpoint is plain text).
/// The answer of a streamed turn as its chunks come: the text so far (also written to the
/// task's output), the model, and how it ended.
struct Answer {
    text: String,
    model: Option<String>,
    /// The `error` object of an error chunk.
    failed: Option<Value>,
    /// `data: [DONE]` came.
    done: bool,
    output: Option<super::live_output::StreamWriter>,
}

impl Answer {
    fn new(sink: Option<&OutputSink>) -> Answer {
        let output = sink.map(|s| s.writer(OutputStream::Stdout));
        Answer { text: String::new(), model: None, failed: None, done: false, output }
    }

    /// One `data:` of the stream.
    fn piece(&mut self, data: &str) {
        if data.trim() == "[DONE]" {
            self.done = true;
            return;
        }
        let Ok(chunk) = serde_json::from_str::<Value>(data) else { return };
        if let Some(error) = chunk.get("error") {
            self.failed = Some(error.clone());
            return;
        }
        if let Some(model) = chunk.get("model").and_then(Value::as_str) {
            self.model = Some(model.to_string());
        }
        if let Some(Value::String(piece)) = chunk.pointer("/choices/0/delta/content") {
            self.text.push_str(piece);
            if let Some(w) = &mut self.output {
                w.write(piece.as_bytes());
            }
        }
    }

    /// The stream ended: a last line without a newline goes to the output too.
    fn finish(&mut self) {
        if let Some(w) = self.output.take() {
            w.finish();
        }
    }
}

/// The status the gateway answers for an error `type` when it does not stream (seen on the
/// real gateway): what an error chunk of a stream is sorted as.
fn status_of(error: &Value) -> u16 {
    let message = error.get("message").and_then(Value::as_str).unwrap_or("");
    match error.get("type").and_then(Value::as_str).unwrap_or("") {
        "invalid_request_error" => 400,
        "unauthorized" => 401,
        "rate_limit_error" | "rate_limited" => 429,
        "api_error" if message.contains("timeout") => 408,
        _ => 502,
    }
}

fn error_parts(body: &[u8]) -> (String, Option<String>) {
    let v = serde_json::from_slice::<Value>(body).ok();
    let message = v.as_ref().and_then(|v| v.pointer("/error/message")).and_then(Value::as_str).map(str::to_string);
    let kind = v.as_ref().and_then(|v| v.pointer("/error/type")).and_then(Value::as_str).map(str::to_string);
    let message = message
        .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(300).collect::<String>().trim().to_string());
    (message, kind)
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get("retry-after")?
        .to_str()
        .ok()?
        .trim()
        .parse::<f64>()
        .ok()
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
}

impl Gateway {
    /// The gateway of a worker's config; unset parts come from OpenClaw's config.
    pub fn from_config(config: &crate::config::Config) -> Gateway {
        let w = &config.worker;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .pool_max_idle_per_host(0)
            .build()
            .expect("a client with only timeouts and no pooling always builds");
        let pinned = Pinned {
            url: w.gateway_url.clone().map(|u| u.trim_end_matches('/').to_string()),
            port: w.port,
            token: w.gateway_token.clone().filter(|t| !t.is_empty()),
        };
        let gateway = Gateway {
            http,
            pinned,
            agent_id: w.agent_id.clone(),
            max_answer: w.max_output_bytes,
            target: Arc::new(Mutex::new(Target { url: String::new(), token: None, token_error: None, config: None })),
        };
        gateway.resolve();
        gateway
    }

    /// Reads OpenClaw's config again and works out the address and token.
    fn resolve(&self) -> Target {
        let env = openclaw::process_env();
        let cfg = openclaw::load_config(&env);
        let settings = cfg.gateway(&env, || {
            (cfg.get("gateway.bind").and_then(Value::as_str) == Some("tailnet"))
                .then(super::system::tailscale_address)
                .flatten()
        });
        let (token, token_error) = match (&self.pinned.token, &settings.token) {
            (Some(t), _) => (Some(t.clone()), None),
            (None, Ok(t)) => (t.clone(), None),
            (None, Err(e)) => (None, Some(e.clone())),
        };
        let target = Target {
            url: self.pinned.url.clone().unwrap_or_else(|| settings.url_on(self.pinned.port)),
            token,
            token_error,
            config: cfg.found.then(|| cfg.path.clone()),
        };
        *lock(&self.target) = target.clone();
        target
    }

    fn current(&self) -> Target {
        lock(&self.target).clone()
    }

    pub fn url(&self) -> String {
        self.current().url
    }

    /// The gateway's token, only for redacting it from task output.
    pub fn token_to_redact(&self) -> Option<String> {
        self.current().token
    }

    pub fn agent_id(&self) -> &str {
        &self.agent_id
    }

    /// Where the address came from, for log lines and `openclaw skills`.
    pub fn origin(&self) -> String {
        match (&self.pinned.url, self.current().config) {
            (Some(_), _) => "worker.gateway_url".into(),
            (None, Some(path)) => format!("OpenClaw's config {}", path.display()),
            (None, None) => "OpenClaw's defaults (no OpenClaw config found)".into(),
        }
    }

    fn too_large(&self) -> TurnOutcome {
        TurnOutcome::Failed(format!(
            "the gateway's answer is larger than {} bytes (worker.max_output_bytes)",
            self.max_answer
        ))
    }

    fn disabled_hint(&self) -> String {
        let place = match self.current().config {
            Some(path) => format!("in OpenClaw's config ({})", path.display()),
            None => "in OpenClaw's config".into(),
        };
        format!(
            "chat completions are disabled {place}: run `{ENABLE_CHAT_COMMAND}` on this machine (the gateway picks it up without a restart)"
        )
    }

    fn lockout(&self, retry: Option<Duration>) -> String {
        let wait = retry.map(|d| format!(" for {}", crate::util::short_duration(d))).unwrap_or_default();
        format!(
            "the OpenClaw gateway at {} locked this machine out after failed logins (429 rate_limited){wait}; until then it refuses even the right token. Check worker.gateway_token / OPENCLAW_GATEWAY_TOKEN against OpenClaw's gateway.auth.token",
            self.url()
        )
    }

    fn refused_token(&self) -> String {
        format!(
            "the OpenClaw gateway at {} refused the token: set worker.gateway_token (or OPENCLAW_GATEWAY_TOKEN) to OpenClaw's gateway.auth.token, or leave both unset to use OpenClaw's config",
            self.url()
        )
    }

    fn request(&self, method: reqwest::Method, path: &str, target: &Target) -> reqwest::RequestBuilder {
        let req = self.http.request(method, format!("{}{path}", target.url));
        match &target.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// Checks that agent turns can run, without running one.
    pub async fn probe(&self) -> Availability {
        let target = self.resolve();
        let url = &target.url;
        let health = self.http.get(format!("{url}/healthz")).timeout(Duration::from_secs(5)).send().await;
        match health {
            Err(e) => {
                return Availability::Unavailable(format!(
                    "the OpenClaw gateway at {url} is not reachable ({}); start it with OpenClaw's own CLI, `openclaw gateway` (the npm package openclaw, not openclaw-cluster), or set worker.gateway_url / worker.port",
                    root_cause(&e)
                ));
            }
            Ok(r) if !r.status().is_success() => {
                return Availability::Unavailable(format!(
                    "the OpenClaw gateway at {url} answered /healthz with {}",
                    r.status()
                ));
            }
            Ok(_) => {}
        }
        if let Some(e) = &target.token_error {
            return Availability::Unavailable(e.clone());
        }
        let answer =
            self.request(reqwest::Method::GET, "/v1/models", &target).timeout(Duration::from_secs(5)).send().await;
        let r = match answer {
            Err(e) => {
                return Availability::Unavailable(format!(
                    "the OpenClaw gateway at {url} failed on /v1/models: {}",
                    root_cause(&e)
                ));
            }
            Ok(r) => r,
        };
        let status = r.status().as_u16();
        let retry = retry_after(r.headers());
        let body = r.bytes().await.unwrap_or_default();
        let (message, kind) = error_parts(&body);
        match status {
            200..=299 => self.check_models(&body),
            404 => Availability::Unavailable(self.disabled_hint()),
            401 | 403 => Availability::Unavailable(self.refused_token()),
            429 if kind.as_deref() == Some("rate_limited") => Availability::Unavailable(self.lockout(retry)),
            s => Availability::Unavailable(format!(
                "the OpenClaw gateway at {url} answered /v1/models with {s}: {message}"
            )),
        }
    }

    /// Ready when `openclaw/<agent_id>` is among the listed models.
    fn check_models(&self, body: &[u8]) -> Availability {
        let want = format!("openclaw/{}", self.agent_id);
        let ids: Vec<String> = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v.get("data").and_then(Value::as_array).cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|m| m.get("id").and_then(Value::as_str).map(str::to_string))
            .collect();
        if ids.contains(&want) {
            return Availability::Ready;
        }
        let agents: Vec<&str> = ids.iter().filter_map(|i| i.strip_prefix("openclaw/")).collect();
        Availability::Unavailable(format!(
            "OpenClaw has no agent `{}` (its gateway lists {}): set worker.agent_id to one of them, or add the agent in OpenClaw",
            self.agent_id,
            if agents.is_empty() { "no agents".to_string() } else { agents.join(", ") }
        ))
    }

    /// Runs one agent turn: `system` merged into OpenClaw's system prompt, `prompt` as the
    /// user message. `timeout` is the task's; at its end the connection is dropped, which
    /// makes the gateway abort the turn. The answer streams into `output` as it comes.
    pub async fn turn(
        &self,
        system: &str,
        prompt: &str,
        timeout: Duration,
        output: Option<&OutputSink>,
    ) -> TurnOutcome {
        let target = self.current();
        if let Some(e) = target.token_error {
            return TurnOutcome::Unavailable { message: e, retry_after: Duration::from_secs(5) };
        }
        let body = json!({
            "model": format!("openclaw/{}", self.agent_id),
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": prompt},
            ],
            "stream": true,
        });
        let req = self.request(reqwest::Method::POST, "/v1/chat/completions", &target).timeout(timeout).json(&body);
        let response = match req.send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => return TurnOutcome::TimedOut,
            Err(e) if e.is_connect() => {
                return TurnOutcome::NotStarted(format!(
                    "the OpenClaw gateway at {} is not reachable ({}); the attempt did not start",
                    target.url,
                    root_cause(&e)
                ));
            }
            Err(e) => {
                return TurnOutcome::Failed(format!(
                    "the connection to the OpenClaw gateway at {} was lost during the turn: {}",
                    target.url,
                    root_cause(&e)
                ));
            }
        };
        let mut status = response.status().as_u16();
        let retry = retry_after(response.headers());
        let streamed = status == 200
            && response
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|t| t.starts_with("text/event-stream"));
        let mut response = response;
        let mut bytes = Vec::new();
        let mut answer = Answer::new(output);
        let mut parser = crate::eventsource::Parser::default();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) if streamed => {
                    for m in parser.feed(&chunk) {
                        answer.piece(&m.data);
                    }
                    if answer.failed.is_some() || answer.done {
                        break;
                    }
                    if answer.text.len() as u64 > self.max_answer {
                        return self.too_large();
                    }
                }
                Ok(Some(chunk)) => {
                    bytes.extend_from_slice(&chunk);
                    if bytes.len() as u64 > self.max_answer {
                        return self.too_large();
                    }
                }
                Ok(None) => break,
                Err(e) if e.is_timeout() => return TurnOutcome::TimedOut,
                Err(e) => {
                    return TurnOutcome::Failed(format!("reading the gateway's answer failed: {}", root_cause(&e)));
                }
            }
        }
        if streamed {
            answer.finish();
            (status, bytes) = match answer.failed.take() {
                Some(error) => (status_of(&error), serde_json::to_vec(&json!({ "error": error })).unwrap_or_default()),
                None if answer.done || !answer.text.is_empty() => {
                    let whole = json!({"model": answer.model, "choices": [{"message": {"content": answer.text}}]});
                    (200, serde_json::to_vec(&whole).unwrap_or_default())
                }
                None => (502, br#"{"error": {"message": "the gateway's stream ended without an answer"}}"#.to_vec()),
            };
        }
        let (message, kind) = error_parts(&bytes);
        let said = |status: u16| match &kind {
            Some(k) => format!("the OpenClaw gateway answered {status} ({k}): {message}"),
            None => format!("the OpenClaw gateway answered {status}: {message}"),
        };
        match status {
            200..=299 => {
                let Ok(v) = serde_json::from_slice::<Value>(&bytes) else {
                    return TurnOutcome::Failed("the gateway's answer is not JSON".into());
                };
                match v.pointer("/choices/0/message/content") {
                    Some(Value::String(text)) => TurnOutcome::Answer {
                        text: text.clone(),
                        model: v.get("model").and_then(Value::as_str).map(str::to_string),
                    },
                    _ => TurnOutcome::Failed("the gateway's answer has no choices[0].message.content".into()),
                }
            }
            400 | 422 => TurnOutcome::Refused(said(status)),
            404 => TurnOutcome::Unavailable { message: self.disabled_hint(), retry_after: Duration::from_secs(5) },
            401 | 403 if kind.as_deref() != Some("authentication_error") => {
                TurnOutcome::Unavailable { message: self.refused_token(), retry_after: Duration::from_secs(5) }
            }
            429 if kind.as_deref() == Some("rate_limited") => TurnOutcome::Unavailable {
                message: self.lockout(retry),
                retry_after: retry.unwrap_or(DEFAULT_RETRY_AFTER),
            },
            429 => TurnOutcome::RateLimited { retry_after: retry.unwrap_or(DEFAULT_RETRY_AFTER), message: said(429) },
            _ => TurnOutcome::Failed(said(status)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_streamed_answer_is_gathered_and_written_as_lines() {
        let (sink, mut lines) = OutputSink::new();
        let mut a = Answer::new(Some(&sink));
        for data in [
            r#"{"model":"openclaw/default","choices":[{"index":0,"delta":{"role":"assistant"}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"one"}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"\ntwo"}}]}"#,
            "[DONE]",
        ] {
            a.piece(data);
        }
        a.finish();
        drop(sink);
        assert_eq!((a.text.as_str(), a.model.as_deref(), a.done), ("one\ntwo", Some("openclaw/default"), true));
        let mut got = Vec::new();
        while let Ok(l) = lines.try_recv() {
            got.push(l.text);
        }
        assert_eq!(got, ["one", "two"]);
    }

    #[test]
    fn an_error_chunk_is_sorted_as_the_status_the_gateway_answers_without_streaming() {
        let mut a = Answer::new(None);
        a.piece(r#"{"error":{"message":"upstream provider error","type":"api_error"}}"#);
        assert_eq!(status_of(a.failed.as_ref().unwrap()), 502);
        for (kind, message, status) in [
            ("invalid_request_error", "400 bad", 400),
            ("rate_limit_error", "429 slow down", 429),
            ("rate_limited", "locked out", 429),
            ("unauthorized", "no", 401),
            ("api_error", "upstream provider timeout", 408),
            ("something_new", "?", 502),
        ] {
            assert_eq!(status_of(&json!({"type": kind, "message": message})), status, "{kind}");
        }
    }
}
