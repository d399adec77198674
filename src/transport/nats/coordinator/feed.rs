//! The event feed: every committed task and node event, in commit order, published on
//! `P.events.tasks.<status>` / `P.events.nodes.<status>` (through JetStream into
//! `P_EVENTS` with the event id as message id when that stream is on, else as core NATS
//! messages), from a cursor over the store's event log: nothing waits in memory, and an
//! outage of NATS (or of the coordinator, with the stream on) resumes exactly after the
//! last event published. A `cancel_requested` event also goes to its node as a wake-up on
//! `P.nodes.<N>.wake`, so a worker on NATS heartbeats at once and learns of the cancel. Also
//! the echo of accepted heartbeats on `P.nodes.heartbeat`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Relay;
use crate::coordinator::cluster::Cluster;
use crate::model::{Event, TaskTransition, Transition};
use crate::transport::nats::{HEADER_EVENT, HEADER_EVENT_ID};

/// How many events one publish round reads from the store.
const EVENTS_PER_ROUND: u32 = 512;

/// Publishes every committed event after a cursor, in order; an outage resumes exactly
/// where it stopped.
pub(super) async fn events_loop(
    relay: Arc<Relay>,
    cluster: Arc<Cluster>,
    js: jetstream::Context,
    at_start: u64,
    shutdown: CancellationToken,
) {
    let mut bus = cluster.subscribe();
    let mut status = relay.link.watch();
    let mut ready_rx = relay.ready.subscribe();
    let mut cursor: Option<u64> = None;
    let mut failures = 0u32;
    while !shutdown.is_cancelled() {
        let stream = relay.config.nats_events_stream && relay.link.facts().is_some_and(|f| f.jetstream);
        let ready = relay.link.connected() && (!stream || ready_rx.borrow_and_update().events);
        if !ready {
            tokio::select! {
                _ = status.changed() => {}
                _ = ready_rx.changed() => {}
                _ = shutdown.cancelled() => break,
            }
            continue;
        }
        let after = match cursor {
            Some(c) => c,
            None => match first_cursor(&relay, &js, stream, at_start).await {
                Some(c) => {
                    cursor = Some(c);
                    relay.last_event.store(c, Ordering::SeqCst);
                    c
                }
                None => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            },
        };
        // Drain the wake-ups first: everything committed so far is read below.
        while bus.try_recv().is_ok() {}
        let batch = match cluster.events_after(after, EVENTS_PER_ROUND).await {
            Ok(b) => b,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        if batch.is_empty() {
            tokio::select! {
                _ = bus.recv() => {}
                _ = status.changed() => {}
                _ = shutdown.cancelled() => break,
            }
            continue;
        }
        match publish_events(&relay, &js, &batch, stream).await {
            Ok(()) => {
                failures = 0;
                let last = batch.last().map(|e| e.id).unwrap_or(after);
                cursor = Some(last);
                relay.last_event.store(last, Ordering::SeqCst);
                relay.metrics.published.get_or_create(&kind("event")).inc_by(batch.len() as u64);
            }
            Err(e) => {
                failures += 1;
                relay.metrics.publish_failures.get_or_create(&kind("event")).inc();
                if failures == 1 {
                    tracing::warn!(target: "openclaw::nats", error = %e, after, "cannot publish events to NATS; they will be published in order when it answers again");
                }
                let delay = crate::util::backoff(Duration::from_millis(200), Duration::from_secs(5), failures);
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.cancelled() => break,
                }
            }
        }
    }
    // A last round for what was committed before the stop (bounded).
    if let Some(after) = cursor
        && relay.link.connected()
        && let Ok(batch) = cluster.events_after(after, EVENTS_PER_ROUND).await
        && !batch.is_empty()
    {
        let stream = relay.ready.borrow().events;
        if let Ok(Ok(())) =
            tokio::time::timeout(Duration::from_secs(2), publish_events(&relay, &js, &batch, stream)).await
        {
            relay.last_event.store(batch.last().map(|e| e.id).unwrap_or(after), Ordering::SeqCst);
        }
    }
}

fn kind(k: &str) -> crate::coordinator::metrics::KindLabel {
    crate::coordinator::metrics::KindLabel { kind: k.into() }
}

/// Where the feed starts: after the last event in the events stream (so a restarted
/// coordinator publishes what it committed while NATS or it was away), else after the
/// last event stored when the coordinator started (`last_stored`).
async fn first_cursor(relay: &Relay, js: &jetstream::Context, stream: bool, last_stored: u64) -> Option<u64> {
    if !stream {
        return Some(last_stored);
    }
    let mut events = js.get_stream(relay.names.events_stream()).await.ok()?;
    let last_seq = events.info().await.ok()?.state.last_sequence;
    let last_published = if last_seq == 0 {
        None
    } else {
        match events.get_raw_message(last_seq).await {
            Ok(m) => m.headers.get(HEADER_EVENT_ID).and_then(|v| v.as_str().parse::<u64>().ok()),
            Err(_) => None,
        }
    };
    Some(match last_published {
        Some(id) if id <= last_stored => id,
        Some(id) => {
            tracing::warn!(target: "openclaw::nats", stream_last = id, store_last = last_stored, "the events stream holds later events than this coordinator's store (a new database?); publishing from the store's last event");
            last_stored
        }
        None => last_stored,
    })
}

/// Publishes events in order: through JetStream (message id = event id, so a repeat after
/// a failure is dropped) when the events stream is on, else as core NATS messages.
async fn publish_events(relay: &Relay, js: &jetstream::Context, batch: &[Event], stream: bool) -> Result<(), String> {
    let client = relay.link.client().ok_or("not connected")?;
    let mut acks = Vec::with_capacity(batch.len());
    for e in batch {
        let payload = serde_json::to_vec(e).map_err(|e| e.to_string())?;
        let id = e.id.to_string();
        let subject = relay.names.event(e);
        if stream {
            let message = PublishMessage::build()
                .message_id(&id)
                .header(HEADER_EVENT_ID, id.as_str())
                .header(HEADER_EVENT, e.event.as_str())
                .payload(payload.into());
            acks.push(js.send_publish(subject, message).await.map_err(|e| e.to_string())?);
        } else {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(HEADER_EVENT_ID, id.as_str());
            headers.insert(HEADER_EVENT, e.event.as_str());
            client.publish_with_headers(subject, headers, payload.into()).await.map_err(|e| e.to_string())?;
        }
        // A worker on NATS hears of a cancel in its heartbeat answer: ask for one now. Best
        // effort: a lost wake-up only means the cancel waits for the regular heartbeat, and
        // must not make the events around it be published again.
        if e.event == Transition::Task(TaskTransition::CancelRequested)
            && let Some(node) = &e.node_id
        {
            let _ = client.publish(relay.names.wake(node), bytes::Bytes::new()).await;
        }
    }
    if stream {
        for answer in futures_util::future::join_all(acks.into_iter().map(std::future::IntoFuture::into_future)).await {
            answer.map_err(|e| e.to_string())?;
        }
    } else {
        tokio::time::timeout(Duration::from_secs(5), client.flush())
            .await
            .map_err(|_| "flush timed out".to_string())?
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Echoes accepted heartbeats on `P.nodes.heartbeat` (core NATS; informational).
pub(super) async fn echo_loop(
    relay: Arc<Relay>,
    client: async_nats::Client,
    mut echoes: mpsc::Receiver<Vec<u8>>,
    shutdown: CancellationToken,
) {
    let subject = relay.names.heartbeats();
    loop {
        let echo = tokio::select! {
            e = echoes.recv() => match e { Some(e) => e, None => return },
            _ = shutdown.cancelled() => return,
        };
        if relay.link.connected() {
            // Bounded: a publish waits only when the client's buffer is full.
            let _ = tokio::time::timeout(Duration::from_secs(1), client.publish(subject.clone(), echo.into())).await;
        }
    }
}
