//! The HTTP/1.1 server: accept loop, connection caps, time limits, graceful shutdown,
//! body limits, auth, request logs and request metrics. Everything endpoint-specific is in
//! [`super::handlers`].
//!
//! A hostile client costs little: the accept loop only accepts and admits (see
//! [`super::connections`]: capped overall and per address, waiting connections closed
//! first to make room, a share kept for node routes), headers must arrive within
//! `coordinator.header_read_timeout`, auth is decided from the headers alone, a route that
//! takes no body never reads one, a body must say `application/json` (415) and arrive
//! within `coordinator.body_read_timeout` (408), and a stream needs a place in the streams'
//! budget ([`super::stream_limits`]). With auth off, only requests from this machine are
//! served ([`auth::local_only`]). Every answer carries `nosniff`, and `no-store` unless it
//! sets its own `Cache-Control`.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Body;
use hyper::body::Incoming;
use hyper::header::{CACHE_CONTROL, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderValue};
use hyper::{Method, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::auth::{self, Caller};
use super::cluster::Cluster;
use super::connections::{self, Connections, Slot};
use super::error::ApiError;
use super::mcp::Door;
use super::stream_limits::{StreamLimits, StreamPermit};
use crate::api::{Access, Route};
use crate::model::ErrorCode;
use crate::model::limits::MapOnly;

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

/// The connection a request came on, for answers that outlive the handler (streams).
#[derive(Clone)]
pub struct Connection {
    /// Cancelling it drops the connection; it is cancelled once the connection has ended.
    pub close: CancellationToken,
    /// Where stream pumps run; awaited when the server stops.
    pub streams: TaskTracker,
    /// The coordinator's shutdown.
    pub shutdown: CancellationToken,
    /// The streams' budget, shared by every connection.
    pub stream_limits: Arc<StreamLimits>,
    /// The server speaks TLS (its origin is `https://…`).
    pub tls: bool,
}

/// A parsed request, as handlers see it.
pub struct Request {
    pub route: Route,
    /// Who is calling (decided before the body was read).
    pub caller: Caller,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub client: IpAddr,
    pub connection: Connection,
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

    /// A place in the streams' budget for this request's stream, or 429 naming the cap.
    pub fn stream_permit(&self) -> Result<StreamPermit, ApiError> {
        self.connection.stream_limits.admit(&self.caller, self.client)
    }
}

/// A request body: one JSON object (a struct is never read from an array), and nothing
/// after it. Integer fields may be written as `5.0`: JSON Schema counts that as the integer
/// 5, and so does the API (a body serde refused is read again with such numbers as
/// integers; see [`crate::model::limits::integral_numbers`]).
fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let error = match read_json(body) {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(body) else { return Err(error) };
    if !crate::model::limits::integral_numbers(&mut value) {
        return Err(error);
    }
    serde_path_to_error::deserialize(value).map(|MapOnly(v)| v).map_err(describe)
}

fn read_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    // Most bodies are good: read them without tracking the path, which only an error needs
    // (reading again gives the same error, now with its path).
    if let Ok(MapOnly(v)) = serde_json::from_slice(body) {
        return Ok(v);
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    let MapOnly(v) = serde_path_to_error::deserialize(&mut *de).map_err(describe)?;
    de.end().map_err(|e| ApiError::bad_request(format!("invalid request body: {}", strip_position(&e.to_string()))))?;
    Ok(v)
}

fn describe<E: std::fmt::Display>(e: serde_path_to_error::Error<E>) -> ApiError {
    let path = e.path().to_string();
    let inner = strip_position(&e.into_inner().to_string());
    if path == "." || path.is_empty() {
        ApiError::bad_request(format!("invalid request body: {inner}"))
    } else {
        ApiError::bad_request(format!("invalid request body: {path}: {inner}"))
    }
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
    mcp: Arc<Door>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: CancellationToken,
) {
    let settings = &shared.config().coordinator;
    let cap = connections::fit_to_fd_limit(settings.max_connections as usize);
    let metrics = shared.metrics();
    let connections = Arc::new(
        Connections::new(
            cap,
            settings.max_connections_per_ip as usize,
            settings.node_reserve_percent,
            settings.trusted_proxies.clone(),
        )
        .with_gauges(metrics.connections_open.clone(), metrics.connections_held.clone()),
    );
    let stream_limits = Arc::new(StreamLimits::new(shared.config()));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut accept_errors = connections::Throttle::default();
    let streams = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.cancelled() => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors: close the connection that has waited longest on
                // its client, so the next accept can succeed; otherwise back off briefly
                // rather than spin. Either way the log gets one line per period, not one
                // per failure.
                let freed = connections::out_of_descriptors(&e) && connections.evict_oldest();
                if accept_errors.ready() {
                    tracing::warn!(
                        target: "openclaw::coordinator",
                        error = %e, more_in_last_period = accept_errors.held_back(), open = connections.open(),
                        "accept failed (further failures in the next {}s are counted, not logged); if it says too many open files, raise LimitNOFILE / `ulimit -n` or lower coordinator.max_connections",
                        connections::Throttle::PERIOD.as_secs()
                    );
                }
                let pause = if freed { 5 } else { 50 };
                tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                continue;
            }
        };
        let Some(slot) = connections.admit(peer.ip()) else {
            refuse(stream, tls.is_none());
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (shared, mcp) = (shared.clone(), mcp.clone());
        let conn_slot = slot.clone();
        let connection = Connection {
            close: CancellationToken::new(),
            streams: streams.clone(),
            shutdown: shutdown.clone(),
            stream_limits: stream_limits.clone(),
            tls: tls.is_some(),
        };
        let close = connection.close.clone();
        let service = hyper::service::service_fn(move |req| {
            let (shared, mcp, connection) = (shared.clone(), mcp.clone(), connection.clone());
            let slot = conn_slot.clone();
            async move { Ok::<_, Infallible>(handle(shared, &mcp, peer, &slot, req, connection).await) }
        });
        // Each connection is tracked by `graceful`: shutdown below signals it and waits.
        let watcher = graceful.watcher();
        let http = http1(settings);
        match &tls {
            None => {
                let conn = watcher.watch(http.serve_connection(TokioIo::new(stream), service));
                tokio::spawn(async move {
                    // Closed to make room for another, or cut off (a stream's client that
                    // does not read): dropping the connection closes it.
                    tokio::select! {
                        _ = conn => {}
                        _ = slot.evicted() => {}
                        _ = close.cancelled() => {}
                    }
                    close.cancel();
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
                        _ = slot.evicted() => return,
                    };
                    let conn = watcher.watch(http.serve_connection(TokioIo::new(stream), service));
                    tokio::select! {
                        _ = conn => {}
                        _ = slot.evicted() => {}
                        _ = close.cancelled() => {}
                    }
                    close.cancel();
                });
            }
        }
    }
    drop(listener);
    let limit = shared.config().coordinator.shutdown_timeout.get();
    if tokio::time::timeout(limit, graceful.shutdown()).await.is_err() {
        tracing::warn!(target: "openclaw::coordinator", "in-flight requests did not finish within coordinator.shutdown_timeout; closing them");
    }
    // Stream pumps end on the shutdown token; wait for them to let go of the state.
    streams.close();
    let _ = tokio::time::timeout(limit, streams.wait()).await;
}

/// The answer to a connection past the caps while every open one is busy: a 503 written
/// only if the socket takes it at once, then closed. Never waits on the client.
fn refuse(stream: tokio::net::TcpStream, plain: bool) {
    if plain {
        const BODY: &str = r#"{"error":{"code":"unavailable","message":"the coordinator has too many open connections (coordinator.max_connections); try again shortly"}}"#;
        let answer = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncache-control: no-store\r\nx-content-type-options: nosniff\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{BODY}",
            BODY.len()
        );
        let _ = stream.try_write(answer.as_bytes());
        // Whatever the client already sent is read and dropped, so that closing sends a
        // FIN after the answer rather than a reset that could discard it.
        let mut sink = [0u8; 4096];
        for _ in 0..4 {
            if !matches!(stream.try_read(&mut sink), Ok(n) if n > 0) {
                break;
            }
        }
    }
}

/// The HTTP/1.1 settings of every connection. The header timeout also ends idle keep-alive
/// connections: hyper starts it whenever it waits for a request head.
pub(super) fn http1(settings: &crate::config::CoordinatorConfig) -> hyper::server::conn::http1::Builder {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(settings.header_read_timeout.get());
    builder
}

async fn handle(
    shared: Arc<Cluster>,
    mcp: &Door,
    peer: SocketAddr,
    slot: &Slot,
    req: hyper::Request<Incoming>,
    connection: Connection,
) -> Response {
    slot.busy();
    let started = Instant::now();
    let method = req.method().clone();
    let uri = req.uri().clone();
    let path = uri.path();
    let client = client_address(&shared, peer.ip(), req.headers());
    // A body the request declares but nobody reads leaves the connection unusable for
    // another request: hyper closes it after the answer; `Connection: close` says so.
    let mut body_unread = !req.body().is_end_stream();
    let mut held = false;
    let (route_name, response) = match Route::parse(&method, path, req.uri().query().unwrap_or("")) {
        Ok(route) => {
            let name = route.name();
            let response = async {
                if !shared.tokens().enabled {
                    auth::local_only(req.headers(), req.uri().authority().map(|a| a.as_str()), connection.tls)?;
                }
                // Node routes use the share of the connections kept for workers; any other
                // request must leave it free.
                if !matches!(route.access(), Access::Node | Access::Join) {
                    slot.hold().map_err(|no_room| ApiError::new(ErrorCode::Unavailable, no_room.0))?;
                    held = true;
                }
                let request = prepare(&shared, route, client, slot, req, &mut body_unread, connection).await?;
                super::handlers::dispatch(&shared, mcp, request).await
            }
            .await;
            (name, response.unwrap_or_else(ApiError::into_response))
        }
        Err(e) => ("unmatched", ApiError::from(e).into_response()),
    };
    let mut response = response;
    if method == Method::HEAD {
        *response.body_mut() = full(Bytes::new());
    }
    if body_unread {
        response.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
    }
    secure_headers(response.headers_mut());
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    shared.metrics().observe_request(route_name, status, elapsed.as_secs_f64());
    tracing::debug!(
        target: "openclaw::coordinator",
        method = %method, path = %path, status, duration_ms = elapsed.as_secs_f64() * 1000.0, client = %client,
        "request"
    );
    // A stream (events, followed output) is at work like a long poll while it is open: its
    // own pump cuts off a client that stops reading, so it is not closed to make room, and
    // it keeps its client place until it ends (the connection ends with it).
    let streaming = method != Method::HEAD
        && response.headers().get(CONTENT_TYPE).is_some_and(|v| v.as_bytes() == b"text/event-stream");
    if streaming {
        // The place is given back when the connection ends, so it must end with the stream
        // (ours say so already; an MCP call's progress stream does not).
        response.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
    } else {
        if held {
            slot.release();
        }
        slot.waiting();
    }
    response
}

/// What every answer carries: nothing is sniffed as another type, and nothing is kept by a
/// cache unless the answer says otherwise (JSON answers carry tokens, secrets and task data).
fn secure_headers(headers: &mut HeaderMap) {
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    if !headers.contains_key(CACHE_CONTROL) {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

/// Whether a request's `Content-Type` says JSON (any parameters, e.g. a charset).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

/// Auth, query and body: everything a handler needs, checked before dispatch. Auth comes
/// first, so an unauthenticated request never waits on its body; a route that takes no
/// body does not read one; a body must arrive within `coordinator.body_read_timeout`.
async fn prepare(
    shared: &Cluster,
    route: Route,
    client: IpAddr,
    slot: &Slot,
    req: hyper::Request<Incoming>,
    body_unread: &mut bool,
    connection: Connection,
) -> Result<Request, ApiError> {
    let (parts, body) = req.into_parts();
    let header = parts.headers.get(hyper::header::AUTHORIZATION).map(|v| v.to_str().unwrap_or("\u{0}"));
    // An open route does not look at the header at all (a browser may send one of its own).
    let token = if route.access() == Access::Open { None } else { auth::bearer(header)? };
    // Whose secret, and whether it was used before: one look at the registry.
    let mut first_use = false;
    let caller = auth::authorize(shared.tokens(), route.access(), route.node(), token, |hash| {
        shared.view(|core| {
            let node = core.registry().node_of_secret(hash)?;
            first_use = !core.registry().is_secret_used(node);
            Some(node.to_string())
        })
    })?;
    if let (true, Caller::Node(node), Access::Node) = (first_use, &caller, route.access()) {
        shared.node_secret_used(node).await?;
    }
    if !route.takes_body() {
        return Ok(Request { route, caller, headers: parts.headers, body: Bytes::new(), client, connection });
    }
    let mut limit = shared.config().coordinator.max_body_bytes;
    if route == Route::PushSkill {
        // A push carries its package (up to 16 MiB, as base64) whatever the limit for others.
        limit = limit.max(super::skill_pushes::MAX_PACKAGE_TEXT + 64 * 1024);
    }
    if let Some(len) =
        parts.headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok())
        && len > limit
    {
        return Err(ApiError::too_large(limit));
    }
    // A body says it is JSON. Without authentication a missing type is refused too (a
    // browser's `sendBeacon` sends a cross-site body without one); with it, a body without
    // a type is read as JSON, as the Python original did.
    let untyped_ok = shared.config().auth.enabled && !parts.headers.contains_key(CONTENT_TYPE);
    if !body.is_end_stream() && !untyped_ok && !is_json(&parts.headers) {
        let got = match parts.headers.get(CONTENT_TYPE) {
            Some(v) => format!("`{}`", v.to_str().unwrap_or("?").escape_debug()),
            None => "no Content-Type".to_string(),
        };
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!("this endpoint takes a JSON body: send it with `Content-Type: application/json` (got {got})"),
        ));
    }
    let deadline = shared.config().coordinator.body_read_timeout.get();
    slot.waiting();
    let read = tokio::time::timeout(deadline, Limited::new(body, limit as usize).collect()).await;
    slot.busy();
    let body = match read {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(ApiError::too_large(limit));
        }
        Ok(Err(e)) => {
            return Err(ApiError::bad_request(format!("could not read the request body: {e}")));
        }
        Err(_) => {
            return Err(ApiError::new(
                ErrorCode::RequestTimeout,
                format!(
                    "the request body did not arrive within {} (coordinator.body_read_timeout)",
                    crate::util::short_duration(deadline)
                ),
            ));
        }
    };
    *body_unread = false;
    Ok(Request { route, caller, headers: parts.headers, body, client, connection })
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
