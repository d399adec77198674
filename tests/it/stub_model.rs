//! The only fake in the OpenClaw tests: an OpenAI-compatible model server that the real
//! OpenClaw gateway calls as its LLM provider (`models.providers.stub`, `api:
//! "openai-completions"`).
//!
//! It answers `GET /v1/models` and `POST /v1/chat/completions`, streaming (SSE chunks, as
//! the gateway always asks with `stream: true`) or not. It records every request. What it
//! does is chosen per request by a marker in the request's text, so several tests can
//! share one gateway: `STUB-500`, `STUB-429`, `STUB-400` answer that status with an
//! OpenAI-style error body; `STUB-HANG` opens the stream and sends only keep-alive comments
//! until the caller hangs up (recorded as `closed_after`); `STUB-GATED` streams "first line
//! of the answer\nsecond line", then waits until the test calls [`StubModel::open_gate`]
//! with a marker of the request before it streams " of the answer" (the gateway passes
//! pieces on as they come, but holds a trailing newline back until the next piece);
//! `REPLY(text)` answers `text`;
//! a marker given to [`StubModel::call_tools`] answers with those tool calls, one per turn,
//! then `The tool said: ` and the last tool result; anything else answers "stub answer".

#![allow(dead_code)]

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Frame;
use hyper::{Request, Response};
use serde_json::{Value, json};

/// One request the stub received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub body: Value,
    /// The whole body as text, for looking for markers and instructions.
    pub text: String,
    pub at: Instant,
    /// For `STUB-HANG`: how long until the caller closed the connection.
    pub closed_after: Option<Duration>,
}

impl Seen {
    /// The system prompt the gateway built.
    pub fn system(&self) -> String {
        self.messages("system")
    }

    /// The user messages, joined.
    pub fn user(&self) -> String {
        self.messages("user")
    }

    fn messages(&self, role: &str) -> String {
        self.body["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| m["role"] == role)
            .map(|m| match &m["content"] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Tool calls a request with `marker` is answered with, one per turn.
#[derive(Debug, Clone)]
struct Script {
    marker: String,
    calls: Vec<(String, Value)>,
}

pub struct StubModel {
    pub port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    scripts: Arc<Mutex<Vec<Script>>>,
    /// Markers whose `STUB-GATED` answers may go on.
    gates: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StubModel {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A response body fed by a channel, so a stream can stay open.
struct ChannelBody(tokio::sync::mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

impl StubModel {
    pub async fn start() -> StubModel {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let scripts: Arc<Mutex<Vec<Script>>> = Arc::new(Mutex::new(Vec::new()));
        let gates: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
        let (s, sc, g) = (seen.clone(), scripts.clone(), gates.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let (s, sc, g) = (s.clone(), sc.clone(), g.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| answer(s.clone(), sc.clone(), g.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        StubModel { port, seen, scripts, gates, task }
    }

    /// Lets the `STUB-GATED` answers of requests containing `marker` go on.
    pub fn open_gate(&self, marker: &str) {
        self.gates.lock().unwrap().push(marker.to_string());
    }

    /// A turn whose text contains `marker` calls these tools, as a model would: the n-th
    /// model call of the turn (the one carrying n-1 tool results) answers with the n-th
    /// call; the one after the last answers `The tool said: ` and the last tool result's
    /// text (a sentence: OpenClaw 2026.9 dropped a leading `TOOL-RESULT: ` from the answer).
    pub fn call_tools(&self, marker: &str, calls: Vec<(&str, Value)>) {
        let calls = calls.into_iter().map(|(name, args)| (name.to_string(), args)).collect();
        self.scripts.lock().unwrap().push(Script { marker: marker.to_string(), calls });
    }

    /// The base URL for OpenClaw's provider config.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The requests whose text contains `marker`.
    pub fn with(&self, marker: &str) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.text.contains(marker)).collect()
    }
}

fn sse(data: &Value) -> Bytes {
    Bytes::from(format!("data: {data}\n\n"))
}

/// The text of the `tool` messages of a request, oldest first (content as a string or as
/// text parts).
pub fn tool_results(request: &Value) -> Vec<String> {
    request["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["role"] == "tool")
        .map(|m| match &m["content"] {
            Value::String(s) => s.clone(),
            Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect(),
            other => other.to_string(),
        })
        .collect()
}

async fn answer(
    seen: Arc<Mutex<Vec<Seen>>>,
    scripts: Arc<Mutex<Vec<Script>>>,
    gates: Arc<Mutex<Vec<String>>>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<ChannelBody>, Infallible> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    let mut response = Response::new(ChannelBody(rx));
    let path = req.uri().path().to_string();
    let body = req.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    if path.ends_with("/models") {
        response.headers_mut().insert("content-type", "application/json".parse().unwrap());
        let _ = tx.try_send(Bytes::from(
            json!({"object": "list", "data": [{"id": "stub-model", "object": "model"}]}).to_string(),
        ));
        return Ok(response);
    }
    let text = String::from_utf8_lossy(&body).into_owned();
    let request: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let index = {
        let mut s = seen.lock().unwrap();
        s.push(Seen { body: request.clone(), text: text.clone(), at: Instant::now(), closed_after: None });
        s.len() - 1
    };
    for (marker, status, kind) in [
        ("STUB-500", 500, "server_error"),
        ("STUB-429", 429, "rate_limit_exceeded"),
        ("STUB-400", 400, "invalid_request_error"),
    ] {
        if text.contains(marker) {
            *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
            response.headers_mut().insert("content-type", "application/json".parse().unwrap());
            let error = json!({"error": {"message": format!("the stub model says {status}"), "type": kind}});
            let _ = tx.try_send(Bytes::from(error.to_string()));
            return Ok(response);
        }
    }
    let model = request["model"].clone();
    let script = scripts.lock().unwrap().iter().find(|s| text.contains(&s.marker)).cloned();
    let results = tool_results(&request);
    let call = script.as_ref().and_then(|s| s.calls.get(results.len())).map(|(name, args)| {
        json!([{"index": 0, "id": format!("call_{}", results.len() + 1), "type": "function",
            "function": {"name": name, "arguments": args.to_string()}}])
    });
    let reply = match (&script, results.last()) {
        (Some(_), Some(last)) => format!("The tool said: {last}"),
        _ => text
            .find("REPLY(")
            .and_then(|i| text[i + 6..].find(')').map(|j| text[i + 6..i + 6 + j].to_string()))
            .unwrap_or_else(|| "stub answer".into()),
    };
    let (message, finish) = match &call {
        Some(calls) => (json!({"role": "assistant", "content": null, "tool_calls": calls}), "tool_calls"),
        None => (json!({"role": "assistant", "content": reply}), "stop"),
    };
    if request["stream"] != true {
        response.headers_mut().insert("content-type", "application/json".parse().unwrap());
        let done = json!({"id": "stub-1", "object": "chat.completion", "created": 1, "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}});
        let _ = tx.try_send(Bytes::from(done.to_string()));
        return Ok(response);
    }
    response.headers_mut().insert("content-type", "text/event-stream".parse().unwrap());
    let hang = text.contains("STUB-HANG");
    tokio::spawn(async move {
        let started = Instant::now();
        if hang {
            // Keep-alive comments until the caller hangs up: a closed connection is what
            // tells us the gateway cancelled the turn.
            while tx.send(Bytes::from_static(b": keep-alive\n\n")).await.is_ok() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            seen.lock().unwrap()[index].closed_after = Some(started.elapsed());
            return;
        }
        let chunk = |delta: Value, finish: Value| {
            json!({"id": "stub-1", "object": "chat.completion.chunk", "created": 1, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        };
        if text.contains("STUB-GATED") {
            let first = json!({"role": "assistant", "content": "first line of the answer\nsecond line"});
            let _ = tx.send(sse(&chunk(first, Value::Null))).await;
            while !gates.lock().unwrap().iter().any(|m| text.contains(m.as_str())) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let second = json!({"content": " of the answer"});
            let _ = tx.send(sse(&chunk(second, Value::Null))).await;
        } else {
            let _ = tx.send(sse(&chunk(message, Value::Null))).await;
        }
        let mut last = chunk(json!({}), json!(finish));
        last["usage"] = json!({"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2});
        let _ = tx.send(sse(&last)).await;
        let _ = tx.send(Bytes::from_static(b"data: [DONE]\n\n")).await;
    });
    Ok(response)
}
