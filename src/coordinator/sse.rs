//! Server-Sent Events over hyper: the event stream and followed task output.
//!
//! A stream is a feed (see [`super::feeds`]) turned into frames by a pump task, which hands
//! them to the response body through a small queue. The pump, never the coordinator, is
//! what waits for the client:
//! - while idle it sends a `: keep-alive` comment every [`KEEP_ALIVE`];
//! - a client that accepts nothing for [`STALL_LIMIT`] while frames wait is cut off: its
//!   connection is closed;
//! - a feed that fell behind its bus ends with `event: error` (`lagged`), after which the
//!   client has [`CUT_OFF_GRACE`] to take what is queued before its connection is closed;
//! - a stream that reached its lifetime (its [`StreamPermit`], `coordinator.max_stream_lifetime`)
//!   ends the same way with `event: error` (`stream_lifetime`).
//!
//! A stream holds a [`StreamPermit`] (see [`super::stream_limits`]) until its pump ends.
//!
//! The bus never waits for a pump (a broadcast channel drops what a slow receiver has not
//! taken), so a slow consumer costs the coordinator nothing but its own queue. Streams
//! answer with `Connection: close`: when the stream ends, so does the connection, and the
//! pump can tell that the client took everything. Every pump ends on shutdown.

use std::time::Duration;

use bytes::Bytes;
use hyper::StatusCode;
use hyper::header::{CACHE_CONTROL, CONNECTION, CONTENT_TYPE, HeaderValue};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::feeds::{EventFeed, EventItem, OutputFeed, OutputItem};
use super::http::{Connection, Response};
use super::metrics::Metrics;
use super::stream_limits::StreamPermit;
use crate::model::{OutputEnd, StreamError, StreamGap};

/// How often an idle stream sends a comment, so that proxies and clients see it alive.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How long a client may accept nothing while frames wait before it is cut off.
pub const STALL_LIMIT: Duration = Duration::from_secs(10);
/// How long a client gets to take the last frames of a stream that ended before its
/// connection is closed.
pub const CUT_OFF_GRACE: Duration = Duration::from_secs(10);
/// Frames queued between a pump and its response body.
const QUEUE: usize = 32;

/// One frame of a stream; `last` ends it.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub bytes: Bytes,
    pub last: bool,
    /// It tells the client it fell behind (counted as a cut-off).
    pub lagged: bool,
}

impl Frame {
    /// `id:` (when given), `event:` and one `data:` line of JSON.
    pub fn event(id: Option<u64>, name: &str, data: &impl Serialize) -> Frame {
        let json = serde_json::to_string(data).unwrap_or_else(|_| "null".into());
        let id = id.map(|i| format!("id: {i}\n")).unwrap_or_default();
        Frame { bytes: Bytes::from(format!("{id}event: {name}\ndata: {json}\n\n")), last: false, lagged: false }
    }

    /// `event: error` with a code and a message; ends the stream.
    pub fn error(code: &str, message: impl Into<String>) -> Frame {
        Frame { last: true, ..Frame::event(None, "error", &StreamError { code: code.into(), message: message.into() }) }
    }

    fn keep_alive() -> Frame {
        Frame { bytes: Bytes::from_static(b": keep-alive\n\n"), last: false, lagged: false }
    }

    /// The planned end of a stream that reached its lifetime.
    fn expired(lifetime: Duration) -> Frame {
        Frame::error(
            StreamError::LIFETIME,
            format!(
                "this stream reached its lifetime ({}, coordinator.max_stream_lifetime); reconnect with the Last-Event-ID header (or ?after=) set to the last id you received",
                crate::util::short_duration(lifetime)
            ),
        )
    }

    fn lagged(missed: u64) -> Frame {
        let error = Frame::error(
            StreamError::LAGGED,
            format!(
                "this stream fell {missed} items behind and was cut off; reconnect with the Last-Event-ID header (or ?after=) set to the last id you received"
            ),
        );
        Frame { lagged: true, ..error }
    }
}

/// Where a pump takes its frames from.
pub trait Feed: Send + 'static {
    /// The next frame, or `None` when the stream is over.
    fn next(&mut self) -> impl Future<Output = Option<Frame>> + Send;
}

impl Feed for EventFeed {
    async fn next(&mut self) -> Option<Frame> {
        Some(match EventFeed::next(self).await? {
            EventItem::Event(e) => Frame::event(Some(e.id), e.kind.as_str(), &e),
            EventItem::Gap { oldest } => Frame::event(None, "gap", &StreamGap { oldest }),
            EventItem::Lagged { missed } => Frame::lagged(missed),
            EventItem::Failed(e) => Frame::error(e.code.as_str(), e.message),
        })
    }
}

impl Feed for OutputFeed {
    async fn next(&mut self) -> Option<Frame> {
        Some(match OutputFeed::next(self).await? {
            OutputItem::Line(line) => Frame::event(Some(line.seq), "output", &line),
            OutputItem::End(status) => Frame { last: true, ..Frame::event(None, "end", &OutputEnd { status }) },
            OutputItem::Lagged { missed } => Frame::lagged(missed),
        })
    }
}

/// A `200 text/event-stream` answer fed by `feed` until it ends, the client leaves or is
/// cut off, the stream reaches its lifetime, or the coordinator stops.
pub fn respond(
    feed: impl Feed,
    permit: StreamPermit,
    connection: &Connection,
    metrics: std::sync::Arc<Metrics>,
) -> Response {
    let (tx, rx) = mpsc::channel(QUEUE);
    let (close, shutdown) = (connection.close.clone(), connection.shutdown.clone());
    let lifetime = permit.lifetime();
    connection.streams.spawn(async move {
        pump(feed, tx, close, shutdown, lifetime, metrics).await;
        drop(permit);
    });
    let mut r = hyper::Response::new(super::http::channel_body(rx));
    *r.status_mut() = StatusCode::OK;
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(CONNECTION, HeaderValue::from_static("close"));
    // nginx: pass each frame on at once.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    r
}

/// Moves frames from the feed to the body; see the module's rules.
async fn pump(
    feed: impl Feed,
    tx: mpsc::Sender<Bytes>,
    close: CancellationToken,
    shutdown: CancellationToken,
    lifetime: Duration,
    metrics: std::sync::Arc<Metrics>,
) {
    metrics.streams_open.inc();
    stream(feed, tx, close, shutdown, lifetime, &metrics).await;
    metrics.streams_open.dec();
}

async fn stream(
    mut feed: impl Feed,
    tx: mpsc::Sender<Bytes>,
    close: CancellationToken,
    shutdown: CancellationToken,
    lifetime: Duration,
    metrics: &Metrics,
) {
    let mut idle = tokio::time::interval_at(tokio::time::Instant::now() + KEEP_ALIVE, KEEP_ALIVE);
    let expiry = tokio::time::sleep(lifetime);
    tokio::pin!(expiry);
    let mut expired = false;
    loop {
        let frame = tokio::select! {
            _ = tx.closed() => return,
            _ = shutdown.cancelled() => break,
            _ = &mut expiry, if !expired => {
                expired = true;
                Frame::expired(lifetime)
            }
            f = feed.next() => match f {
                Some(f) => f,
                None => break,
            },
            _ = idle.tick() => Frame::keep_alive(),
        };
        idle.reset();
        let sent = tokio::select! {
            s = tokio::time::timeout(STALL_LIMIT, tx.send(frame.bytes)) => s,
            _ = shutdown.cancelled() => break,
        };
        match sent {
            Ok(Ok(())) => {}
            // The client left.
            Ok(Err(_)) => return,
            Err(_) => {
                metrics.streams_cut_off.inc();
                tracing::info!(target: "openclaw::coordinator", "cut off a stream client that took nothing for {}s", STALL_LIMIT.as_secs());
                close.cancel();
                return;
            }
        }
        if frame.last {
            if frame.lagged {
                metrics.streams_cut_off.inc();
                tracing::info!(target: "openclaw::coordinator", "ended a stream that fell behind its bus; the client resumes from the store");
            }
            break;
        }
    }
    // The body ends once it has passed on what is queued; then the connection closes
    // (`Connection: close`). A client that does not take it in time is disconnected (also
    // on shutdown: the stream then ends cleanly for a client that reads).
    drop(tx);
    tokio::select! {
        _ = close.cancelled() => {}
        _ = tokio::time::sleep(CUT_OFF_GRACE) => close.cancel(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIFETIME: Duration = Duration::from_secs(3600);

    /// A feed of fixed frames, then silence.
    struct Fixed(Vec<Frame>);

    impl Feed for Fixed {
        async fn next(&mut self) -> Option<Frame> {
            if self.0.is_empty() {
                std::future::pending::<()>().await;
            }
            Some(self.0.remove(0))
        }
    }

    fn start(feed: Fixed) -> (mpsc::Receiver<Bytes>, CancellationToken, CancellationToken, std::sync::Arc<Metrics>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let (close, shutdown) = (CancellationToken::new(), CancellationToken::new());
        let metrics = std::sync::Arc::new(Metrics::new());
        tokio::spawn(pump(feed, tx, close.clone(), shutdown.clone(), LIFETIME, metrics.clone()));
        (rx, close, shutdown, metrics)
    }

    #[test]
    fn frames_are_sse() {
        let f = Frame::event(Some(7), "task", &serde_json::json!({"a": 1}));
        assert_eq!(f.bytes, Bytes::from_static(b"id: 7\nevent: task\ndata: {\"a\":1}\n\n"));
        let f = Frame::error("lagged", "x");
        assert!(f.last);
        assert_eq!(f.bytes, Bytes::from_static(b"event: error\ndata: {\"code\":\"lagged\",\"message\":\"x\"}\n\n"));
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_stream_sends_keep_alives() {
        let (mut rx, ..) = start(Fixed(vec![Frame::event(Some(1), "task", &1)]));
        assert!(rx.recv().await.unwrap().starts_with(b"id: 1"));
        let before = tokio::time::Instant::now();
        assert_eq!(rx.recv().await.unwrap(), Bytes::from_static(b": keep-alive\n\n"));
        assert_eq!(before.elapsed(), KEEP_ALIVE);
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_takes_nothing_is_cut_off() {
        let frames = (0..QUEUE as u64 + 5).map(|i| Frame::event(Some(i), "task", &i)).collect();
        let (rx, close, _shutdown, metrics) = start(Fixed(frames));
        // Nobody reads `rx`: the queue fills, and the pump gives up after the stall limit.
        close.cancelled().await;
        assert_eq!(metrics.streams_cut_off.get(), 1);
        drop(rx);
    }

    #[tokio::test(start_paused = true)]
    async fn a_last_frame_ends_the_stream_and_then_the_connection() {
        let (mut rx, close, ..) =
            start(Fixed(vec![Frame::event(Some(1), "task", &1), Frame::error("lagged", "behind")]));
        assert!(rx.recv().await.unwrap().starts_with(b"id: 1"));
        assert!(rx.recv().await.unwrap().starts_with(b"event: error"));
        assert_eq!(rx.recv().await, None, "the body ends after the last frame");
        // The connection would end now with `Connection: close`; here nobody closes it, so
        // the pump does after the grace.
        close.cancelled().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_ends_at_its_lifetime_saying_so() {
        let (mut rx, close, ..) = start(Fixed(vec![Frame::event(Some(1), "task", &1)]));
        let opened = tokio::time::Instant::now();
        assert!(rx.recv().await.unwrap().starts_with(b"id: 1"));
        let mut last = Bytes::new();
        while let Some(frame) = rx.recv().await {
            last = frame;
        }
        assert_eq!(opened.elapsed(), LIFETIME, "ends at the lifetime, not before or later");
        let text = String::from_utf8_lossy(&last);
        assert!(text.starts_with("event: error\n") && text.contains("\"stream_lifetime\""), "{text}");
        assert!(text.contains("coordinator.max_stream_lifetime") && text.contains("Last-Event-ID"), "{text}");
        close.cancelled().await;
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_ends_the_stream() {
        let (mut rx, _close, shutdown, _) = start(Fixed(vec![]));
        shutdown.cancel();
        assert_eq!(rx.recv().await, None);
    }
}
