//! The local OpenClaw gateway: whether it can run agent turns, and running one.
//!
//! Probing never starts an agent session: `GET /healthz` (no auth), then `GET /v1/models`
//! with the gateway token — 200 means the OpenAI-compatible endpoints are enabled, 404
//! that they are disabled in OpenClaw's config, 401/403 that the token is wrong. A turn is
//! `POST /v1/chat/completions` with model `openclaw/{agent_id}`; the answer is
//! `choices[0].message.content`. The gateway token is a full owner credential: it is only
//! ever sent to the gateway and never logged.

use std::time::Duration;

use serde_json::{Value, json};

use crate::client::root_cause;

/// Whether agent tasks can run here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Availability {
    Ready,
    /// Why not, with what to do about it.
    Unavailable(String),
}

/// How an agent turn ended.
#[derive(Debug, Clone, PartialEq)]
pub enum TurnOutcome {
    Answer {
        text: String,
        model: Option<String>,
    },
    /// The gateway said 429: try again later without counting it as the task's failure.
    RateLimited {
        retry_after: Duration,
        message: String,
    },
    /// 404: the endpoint is off; agent skills stop being advertised.
    Disabled(String),
    Failed(String),
    TimedOut,
}

/// A client for one gateway.
#[derive(Clone)]
pub struct Gateway {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    agent_id: String,
    /// The largest answer read (worker.max_output_bytes).
    max_answer: u64,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").field("base", &self.base).field("agent_id", &self.agent_id).finish_non_exhaustive()
    }
}

/// The gateway's `{"error": {"message"}}`, or the body's start.
fn error_message(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.pointer("/error/message").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(300).collect())
}

impl Gateway {
    pub fn new(base: &str, token: Option<String>, agent_id: &str, max_answer: u64) -> Gateway {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .build()
            .expect("a client with only a connect timeout always builds");
        Gateway {
            http,
            base: base.trim_end_matches('/').to_string(),
            token,
            agent_id: agent_id.to_string(),
            max_answer,
        }
    }

    /// The gateway of a worker's config: `worker.gateway_url` (default
    /// `http://127.0.0.1:{worker.port}`), the token from `worker.gateway_token` or
    /// `OPENCLAW_GATEWAY_TOKEN`.
    pub fn from_config(config: &crate::config::Config) -> Gateway {
        let w = &config.worker;
        let url = w.gateway_url.clone().unwrap_or_else(|| format!("http://127.0.0.1:{}", w.port));
        let token =
            w.gateway_token.clone().or_else(|| std::env::var("OPENCLAW_GATEWAY_TOKEN").ok()).filter(|t| !t.is_empty());
        Gateway::new(&url, token, &w.agent_id, w.max_output_bytes)
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    /// Checks that agent turns can run, without running one.
    pub async fn probe(&self) -> Availability {
        let health = self.http.get(format!("{}/healthz", self.base)).timeout(Duration::from_secs(5)).send().await;
        match health {
            Err(e) => {
                return Availability::Unavailable(format!(
                    "the OpenClaw gateway at {} is not reachable ({}); start OpenClaw's gateway or set worker.gateway_url / worker.port",
                    self.base,
                    root_cause(&e)
                ));
            }
            Ok(r) if !r.status().is_success() => {
                return Availability::Unavailable(format!(
                    "the OpenClaw gateway at {} answered /healthz with {}",
                    self.base,
                    r.status()
                ));
            }
            Ok(_) => {}
        }
        let mut req = self.http.get(format!("{}/v1/models", self.base)).timeout(Duration::from_secs(5));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        match req.send().await {
            Err(e) => Availability::Unavailable(format!("the OpenClaw gateway at {} failed on /v1/models: {}", self.base, root_cause(&e))),
            Ok(r) => match r.status().as_u16() {
                200..=299 => Availability::Ready,
                404 => Availability::Unavailable(
                    "chat completions are disabled in OpenClaw's config: set gateway.http.endpoints.chatCompletions.enabled: true".into(),
                ),
                401 | 403 => Availability::Unavailable(
                    "the OpenClaw gateway refused the token: set worker.gateway_token or OPENCLAW_GATEWAY_TOKEN to OpenClaw's gateway.auth.token".into(),
                ),
                s => Availability::Unavailable(format!("the OpenClaw gateway answered /v1/models with {s}")),
            },
        }
    }

    /// Runs one agent turn: a system message naming the skill(s), the prompt as the user
    /// message. `timeout` is the task's.
    pub async fn turn(&self, skill: &str, other_skills: &[String], prompt: &str, timeout: Duration) -> TurnOutcome {
        let mut system = format!(
            "You are running a task for an openclaw cluster. Use the skill `{skill}` to do it and answer with the result only."
        );
        if !other_skills.is_empty() {
            system.push_str(&format!(" These skills are available too: {}.", other_skills.join(", ")));
        }
        let body = json!({
            "model": format!("openclaw/{}", self.agent_id),
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": prompt},
            ],
            "stream": false,
        });
        let mut req = self.http.post(format!("{}/v1/chat/completions", self.base)).timeout(timeout).json(&body);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let response = match req.send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => return TurnOutcome::TimedOut,
            Err(e) => {
                return TurnOutcome::Failed(format!(
                    "the OpenClaw gateway at {} is not reachable: {}",
                    self.base,
                    root_cause(&e)
                ));
            }
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs)
            .unwrap_or(Duration::from_secs(30));
        let mut response = response;
        let mut bytes = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    bytes.extend_from_slice(&chunk);
                    if bytes.len() as u64 > self.max_answer {
                        return TurnOutcome::Failed(format!(
                            "the gateway's answer is larger than {} bytes (worker.max_output_bytes)",
                            self.max_answer
                        ));
                    }
                }
                Ok(None) => break,
                Err(e) if e.is_timeout() => return TurnOutcome::TimedOut,
                Err(e) => {
                    return TurnOutcome::Failed(format!("reading the gateway's answer failed: {}", root_cause(&e)));
                }
            }
        }
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
            429 => TurnOutcome::RateLimited {
                retry_after,
                message: format!("gateway rate limit (429): {}", error_message(&bytes)),
            },
            404 => TurnOutcome::Disabled(format!(
                "the gateway answered 404: chat completions are disabled in OpenClaw's config (gateway.http.endpoints.chatCompletions.enabled): {}",
                error_message(&bytes)
            )),
            401 | 403 => {
                TurnOutcome::Failed(format!("the gateway refused the token ({status}): {}", error_message(&bytes)))
            }
            _ => TurnOutcome::Failed(format!("the gateway failed ({status}): {}", error_message(&bytes))),
        }
    }
}
