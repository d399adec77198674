//! A stand-in for the OpenClaw gateway, which cannot run here (it needs a model). It
//! speaks the documented wire format of `reference/openclaw.md`: `GET /healthz` →
//! `{"ok":true,"status":"live"}`; `GET /v1/models` (200 when chat completions are enabled,
//! 404 when disabled, 401 on a bad token); `POST /v1/chat/completions` with the
//! OpenAI-compatible request and the `chat.completion` answer, or
//! `{"error":{"message","type"}}` with 400/401/403/404/429/500.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use serde_json::{Value, json};

/// What the stand-in answers to a chat completion.
#[derive(Clone, Debug)]
pub enum Chat {
    Answer(String),
    /// An error status with the gateway's error message (and Retry-After for 429).
    Error(u16, String),
}

pub struct Behaviour {
    pub healthy: bool,
    /// Status of `GET /v1/models`.
    pub models: u16,
    /// Answers to the next chat completions, in order; then `default_chat`.
    pub script: VecDeque<Chat>,
    pub default_chat: Chat,
    /// Every chat request body and Authorization header seen.
    pub requests: Vec<(Value, Option<String>)>,
}

pub struct StandIn {
    pub port: u16,
    pub behaviour: Arc<Mutex<Behaviour>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl StandIn {
    pub async fn start() -> StandIn {
        let behaviour = Arc::new(Mutex::new(Behaviour {
            healthy: true,
            models: 200,
            script: VecDeque::new(),
            default_chat: Chat::Answer("done".into()),
            requests: Vec::new(),
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let b = behaviour.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let b = b.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| answer(b.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        StandIn { port, behaviour, task }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn set(&self, f: impl FnOnce(&mut Behaviour)) {
        f(&mut self.behaviour.lock().unwrap());
    }

    pub fn requests(&self) -> Vec<(Value, Option<String>)> {
        self.behaviour.lock().unwrap().requests.clone()
    }
}

fn reply(status: u16, body: Value, retry_after: bool) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
    r.headers_mut().insert("content-type", "application/json".parse().unwrap());
    if retry_after {
        r.headers_mut().insert("retry-after", "1".parse().unwrap());
    }
    r
}

async fn answer(
    b: Arc<Mutex<Behaviour>>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    let auth = req.headers().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string);
    let body = req.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    let mut b = b.lock().unwrap();
    let error = |status: u16, message: &str, kind: &str| {
        reply(status, json!({"error": {"message": message, "type": kind}}), status == 429)
    };
    Ok(match path.as_str() {
        "/healthz" if b.healthy => reply(200, json!({"ok": true, "status": "live"}), false),
        "/healthz" => error(503, "not live", "api_error"),
        "/v1/models" => match b.models {
            200 => {
                reply(200, json!({"object": "list", "data": [{"id": "openclaw/default", "object": "model"}]}), false)
            }
            404 => error(404, "Not Found", "invalid_request_error"),
            s => error(s, "Unauthorized", "invalid_request_error"),
        },
        "/v1/chat/completions" => {
            let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            b.requests.push((request.clone(), auth));
            let chat = b.script.pop_front().unwrap_or_else(|| b.default_chat.clone());
            match chat {
                Chat::Answer(text) => reply(
                    200,
                    json!({
                        "id": "chatcmpl_1", "object": "chat.completion", "created": 1_771_257_600,
                        "model": request["model"], "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
                    }),
                    false,
                ),
                Chat::Error(status, message) => {
                    let kind = if status >= 500 { "api_error" } else { "invalid_request_error" };
                    error(status, &message, kind)
                }
            }
        }
        _ => error(404, "Not Found", "invalid_request_error"),
    })
}
