//! The HTTP/1.1 server: accept loop, graceful shutdown, body limits, auth, request logs
//! and request metrics. Everything endpoint-specific is in [`super::handlers`].

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderValue};
use hyper::{Method, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::auth::{self, Caller};
use super::cluster::Cluster;
use super::error::ApiError;
use crate::api::Route;

/// Every answer: a whole body, or a stream (events, live output, MCP).
pub type Response = hyper::Response<BoxBody<Bytes, Infallible>>;

/// A whole body.
pub fn full(bytes: impl Into<Bytes>) -> BoxBody<Bytes, Infallible> {
    Full::new(bytes.into()).boxed()
}

/// A body that streams what is sent on a channel, ending when the sender is dropped.
pub fn channel_body(rx: tokio::sync::mpsc::Receiver<Bytes>) -> BoxBody<Bytes, Infallible> {
    ChannelBody(rx).boxed()
}

struct ChannelBody(tokio::sync::mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|chunk| chunk.map(|b| Ok(hyper::body::Frame::data(b))))
    }
}

/// An answer with a whole body of a content type.
pub fn bytes(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response {
    let mut r = hyper::Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// A JSON answer.
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    bytes(status, "application/json", serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec()))
}

/// A parsed request, as handlers see it.
pub struct Request {
    pub route: Route,
    /// Who is calling (decided before the body was read).
    pub caller: Caller,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub client: IpAddr,
}

impl Request {
    /// The body as JSON; a bad body names the field (its serde path).
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::bad_request("request body is empty; expected a JSON object"));
        }
        parse_json(&self.body)
    }

    /// The body as JSON, or the default when there is none.
    pub fn json_or_default<T: DeserializeOwned + Default>(&self) -> Result<T, ApiError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(T::default());
        }
        parse_json(&self.body)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let inner = strip_position(&inner.to_string());
        if path == "." || path.is_empty() {
            ApiError::bad_request(format!("invalid request body: {inner}"))
        } else {
            ApiError::bad_request(format!("invalid request body: {path}: {inner}"))
        }
    })
}

/// serde_json's " at line 1 column 20" means little to a person sending one line.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// Serves until `shutdown`, then stops accepting, lets in-flight requests finish within
/// `coordinator.shutdown_timeout`, and returns.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Cluster>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: CancellationToken,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.cancelled() => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off briefly instead of spinning.
                tracing::warn!(target: "openclaw::coordinator", error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let service = hyper::service::service_fn(move |req| {
            let shared = shared.clone();
            async move { Ok::<_, Infallible>(handle(shared, peer, req).await) }
        });
        // Each connection is tracked by `graceful`: shutdown below signals it and waits.
        let watcher = graceful.watcher();
        match &tls {
            None => {
                let conn = watcher.watch(http1().serve_connection(TokioIo::new(stream), service));
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
            Some(acceptor) => {
                // The handshake runs in the connection's own task, bounded, so a slow or
                // silent client cannot hold up the accept loop.
                let acceptor = acceptor.clone();
                let shutdown = shutdown.clone();
                tokio::spawn(async move {
                    let handshake = tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(stream));
                    let stream = tokio::select! {
                        s = handshake => match s {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                tracing::debug!(target: "openclaw::coordinator", client = %peer, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => return,
                        },
                        _ = shutdown.cancelled() => return,
                    };
                    let _ = watcher.watch(http1().serve_connection(TokioIo::new(stream), service)).await;
                });
            }
        }
    }
    drop(listener);
    let limit = shared.config().coordinator.shutdown_timeout.get();
    if tokio::time::timeout(limit, graceful.shutdown()).await.is_err() {
        tracing::warn!(target: "openclaw::coordinator", "in-flight requests did not finish within coordinator.shutdown_timeout; closing them");
    }
}

/// The HTTP/1.1 settings of every connection.
fn http1() -> hyper::server::conn::http1::Builder {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(std::time::Duration::from_secs(30));
    builder
}

async fn handle(shared: Arc<Cluster>, peer: SocketAddr, req: hyper::Request<Incoming>) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let client = client_address(&shared, peer.ip(), req.headers());
    let (route_name, response) = match Route::parse(&method, &path, req.uri().query().unwrap_or("")) {
        Ok(route) => {
            let name = route.name();
            let response = match prepare(&shared, shared.tokens(), route, client, req).await {
                Ok(request) => super::handlers::dispatch(&shared, request).await,
                Err(e) => Err(e),
            };
            (name, response.unwrap_or_else(ApiError::into_response))
        }
        Err(e) => ("unmatched", ApiError::from(e).into_response()),
    };
    let mut response = response;
    if method == Method::HEAD {
        *response.body_mut() = full(Bytes::new());
    }
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    shared.metrics().observe_request(route_name, status, elapsed.as_secs_f64());
    tracing::debug!(
        target: "openclaw::coordinator",
        method = %method, path = %path, status, duration_ms = elapsed.as_secs_f64() * 1000.0, client = %client,
        "request"
    );
    response
}

/// Auth, query and body: everything a handler needs, checked before dispatch.
async fn prepare(
    shared: &Cluster,
    tokens: &auth::Tokens,
    route: Route,
    client: IpAddr,
    req: hyper::Request<Incoming>,
) -> Result<Request, ApiError> {
    let (parts, body) = req.into_parts();
    let header = parts.headers.get(hyper::header::AUTHORIZATION).map(|v| v.to_str().unwrap_or("\u{0}"));
    let token = auth::bearer(header)?;
    let caller = auth::authorize(tokens, route.access(), route.node(), token, |hash| {
        shared.view(|core| core.registry().node_of_secret(hash).map(str::to_string))
    })?;
    let limit = shared.config().coordinator.max_body_bytes;
    if let Some(len) =
        parts.headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok())
        && len > limit
    {
        return Err(ApiError::too_large(limit));
    }
    let body = match Limited::new(body, limit as usize).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(ApiError::too_large(limit));
        }
        Err(e) => {
            return Err(ApiError::bad_request(format!("could not read the request body: {e}")));
        }
    };
    Ok(Request { route, caller, headers: parts.headers, body, client })
}

/// The client's address: the peer, or what a trusted proxy says it forwarded.
fn client_address(shared: &Cluster, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
    if !shared.config().coordinator.trusted_proxies.contains(&peer) {
        return peer;
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(ip) = header("x-real-ip").and_then(|v| v.trim().parse().ok()) {
        return ip;
    }
    header("x-forwarded-for").and_then(|v| v.split(',').next()).and_then(|v| v.trim().parse().ok()).unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        n: u32,
        inner: Inner,
    }
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        list: Vec<String>,
    }

    #[test]
    fn body_errors_name_the_field() {
        let e = parse_json::<Body>(br#"{"n": "x", "inner": {"list": []}}"#).unwrap_err().to_string();
        assert!(e.starts_with("invalid request body: n: invalid type: string"), "{e}");
        let e = parse_json::<Body>(br#"{"n": 1, "inner": {"list": [1]}}"#).unwrap_err().to_string();
        assert!(e.contains("inner.list[0]"), "{e}");
        let e = parse_json::<Body>(br#"{"n": 1, "inner": {"list": []}, "x": 1}"#).unwrap_err().to_string();
        assert!(e.contains("unknown field `x`"), "{e}");
        let e = parse_json::<Body>(b"{not json").unwrap_err().to_string();
        assert!(e.starts_with("invalid request body"), "{e}");
    }
}
