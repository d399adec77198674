//! The worker's side of the NATS transport: pulls this node's assignments from its
//! durable consumer while the coordinator says so, and publishes results.
//!
//! The coordinator decides per heartbeat how this node receives work; the worker tells it
//! whether its own link is up (`HeartbeatRequest::nats`) and follows the answer
//! (`dispatch`): under `nats` the HTTP long poll pauses and [`run`] pulls, one message per
//! free slot; under `http`, or whenever this link is down, the poll runs as without NATS.
//! Both doors feed the same dispatch code, which holds each (task, attempt) once.
//!
//! Invariants:
//! - An assignment from NATS runs only after the coordinator accepted its start report
//!   (JetStream may deliver an old message again after a server crash); its message is
//!   acked then, or when the coordinator refuses the attempt, and delivered again later
//!   when the coordinator cannot be asked.
//! - Messages are checked against this node's secret ([`super::verify`]) before anything
//!   else; one that fails is dropped.
//! - A result published to NATS stays in the held list of the heartbeats until the
//!   coordinator says the attempt is over (a cancel for it in a heartbeat answer): until
//!   it is recorded, the coordinator must not take the attempt for lost.
//!
//! Locking: std mutexes, short sections, never across `.await`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::ConsumerErrorKind;
use async_nats::jetstream::{self, AckKind, ErrorCode};
use futures_util::StreamExt;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::link::Link;
use super::{Delivery, HEADER_MSG_ID, HEADER_NODE, HEADER_ROOM, HEADER_SIG, Names};
use crate::config::Config;
use crate::model::{ResultReport, TaskRef, Transport};
use crate::util::lock;
use crate::worker::Context;
use crate::worker::dispatch::{Dispatch, Taken};
use crate::worker::session::Session;

/// Whether assignments come over NATS: the coordinator's word and this side's state.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Mode {
    /// The last heartbeat answer said `nats`.
    dispatch: bool,
    /// The pull loop can pull (or waits for the coordinator to create its consumer).
    pulling: bool,
}

/// Why the paused HTTP poll loop wakes up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// NATS no longer carries the assignments: long-poll as usual.
    Http,
    /// An assignment too large for NATS is waiting: poll once, without waiting.
    PollOnce,
}

/// This worker's NATS transport.
pub struct WorkerNats {
    link: Arc<Link>,
    names: Names,
    node_id: String,
    mode: watch::Sender<Mode>,
    /// Results published and not yet known to be recorded: (task → attempt). A std mutex.
    unconfirmed: Mutex<HashMap<String, u32>>,
    /// Wakes the paused HTTP poll loop for one poll.
    poll_now: Notify,
}

impl WorkerNats {
    /// The transport when `communication.nats_url` is set.
    pub fn new(config: &Config, node_id: &str) -> Option<Arc<WorkerNats>> {
        let c = &config.communication;
        c.nats_url.as_ref()?;
        let link = match Link::new(c, format!("openclaw-worker {node_id}")) {
            Ok(link) => link,
            Err(e) => {
                tracing::error!(target: "openclaw::nats", error = %e, "communication.nats_url: {e}; carrying on over HTTP only");
                return None;
            }
        };
        Some(Arc::new(WorkerNats {
            link,
            names: Names::new(&c.nats_subject_prefix),
            node_id: node_id.to_string(),
            mode: watch::channel(Mode::default()).0,
            unconfirmed: Mutex::new(HashMap::new()),
            poll_now: Notify::new(),
        }))
    }

    /// For the heartbeat: this side can take assignments over NATS.
    pub fn linked(&self) -> bool {
        self.link.connected() && self.mode.borrow().pulling
    }

    /// The coordinator's answer to a heartbeat.
    pub fn set_dispatch(&self, dispatch: Option<Transport>) {
        let nats = dispatch == Some(Transport::Nats);
        if self.mode.send_if_modified(|m| std::mem::replace(&mut m.dispatch, nats) != nats) {
            if nats {
                tracing::info!(target: "openclaw::nats", url = %self.link.shown(), "assignments now come over NATS ({})", self.names.assignments(&self.node_id));
            } else {
                tracing::info!(target: "openclaw::nats", "assignments now come over HTTP (the coordinator's NATS link or this node's consumer is not ready)");
            }
        }
    }

    fn set_pulling(&self, pulling: bool) {
        self.mode.send_if_modified(|m| std::mem::replace(&mut m.pulling, pulling) != pulling);
    }

    /// Assignments come over NATS now: the HTTP long poll pauses.
    pub fn takes_assignments(&self) -> bool {
        self.mode.borrow().dispatch && self.linked()
    }

    /// For the paused poll loop: resolves when it must poll again.
    pub async fn paused(&self) -> Wake {
        let mut mode = self.mode.subscribe();
        let mut link = self.link.watch();
        loop {
            if !self.takes_assignments() {
                return Wake::Http;
            }
            tokio::select! {
                _ = mode.changed() => {}
                _ = link.changed() => {}
                _ = self.poll_now.notified() => return Wake::PollOnce,
            }
        }
    }

    /// Resolves once assignments come over NATS.
    pub async fn activated(&self) {
        let mut mode = self.mode.subscribe();
        let mut link = self.link.watch();
        while !self.takes_assignments() {
            tokio::select! {
                changed = mode.changed() => if changed.is_err() { return std::future::pending().await },
                changed = link.changed() => if changed.is_err() { return std::future::pending().await },
            }
        }
    }

    /// Attempts whose result went to NATS and is not known to be recorded: still held.
    pub fn unconfirmed(&self) -> Vec<TaskRef> {
        lock(&self.unconfirmed).iter().map(|(t, a)| TaskRef { task_id: t.clone(), attempt: *a }).collect()
    }

    /// The coordinator says these attempts are over (recorded, or no longer ours).
    pub fn confirmed(&self, cancels: &[TaskRef]) {
        let mut unconfirmed = lock(&self.unconfirmed);
        for c in cancels {
            if unconfirmed.get(&c.task_id) == Some(&c.attempt) {
                unconfirmed.remove(&c.task_id);
            }
        }
    }

    /// Publishes a result to the results stream (signed with the node's secret hash
    /// `key`); false when NATS cannot take it now (not connected, too large, no ack, or the
    /// coordinator's last word was `http`: it may not be reading the stream): the caller
    /// sends it over HTTP then.
    pub async fn publish_result(&self, task_id: &str, report: &ResultReport, key: &str) -> bool {
        if !self.mode.borrow().dispatch {
            return false;
        }
        let Some(client) = self.link.client().filter(|_| self.link.connected()) else { return false };
        let max_payload = client.server_info().max_payload;
        let Ok(payload) = serde_json::to_vec(report) else { return false };
        if payload.len() + HEADER_ROOM > max_payload {
            tracing::info!(target: "openclaw::nats", task_id, bytes = payload.len(), max_payload, "the result is larger than the NATS server's max_payload; sending it over HTTP");
            return false;
        }
        let subject = self.names.result(task_id);
        let id = super::result_id(task_id, report.attempt);
        let sig = super::signature(key, &subject, &id, &payload);
        let message = PublishMessage::build()
            .message_id(&id)
            .header(HEADER_NODE, self.node_id.as_str())
            .header(HEADER_SIG, sig.as_str())
            .payload(payload.into());
        // Held until the coordinator confirms, from before the publish on.
        let before = lock(&self.unconfirmed).insert(task_id.to_string(), report.attempt);
        let js = jetstream::new(client);
        let sent = tokio::time::timeout(Duration::from_secs(10), async {
            js.send_publish(subject, message).await.map_err(|e| e.to_string())?.await.map_err(|e| e.to_string())
        })
        .await;
        match sent {
            Ok(Ok(_)) => true,
            failure => {
                let why = match failure {
                    Ok(Err(e)) => e,
                    _ => "no acknowledgement within 10s".into(),
                };
                tracing::debug!(target: "openclaw::nats", task_id, error = %why, "cannot publish the result to NATS; sending it over HTTP");
                let mut unconfirmed = lock(&self.unconfirmed);
                match before {
                    Some(a) => unconfirmed.insert(task_id.to_string(), a),
                    None => unconfirmed.remove(task_id),
                };
                false
            }
        }
    }
}

/// Connects, then pulls this node's assignments until the worker stops taking tasks;
/// closes the connection once the worker leaves (results may be published until then).
pub async fn run(nats: Arc<WorkerNats>, dispatch: Arc<Dispatch>, session: Arc<Session>, ctx: Arc<Context>) {
    let until = ctx.stop_taking.clone();
    let mut wake = None;
    if let Some(client) = nats.link.connect(&until).await {
        let subject = nats.names.wake(&nats.node_id);
        wake = Some(tokio::spawn(wake_loop(client.clone(), subject, session.clone(), ctx.leave.clone())));
        pull(&nats, &dispatch, &session, &ctx, jetstream::new(client)).await;
    }
    nats.set_pulling(false);
    ctx.leave.cancelled().await;
    if let Some(w) = wake {
        w.abort();
    }
    nats.link.close().await;
}

/// Heartbeats early when the coordinator publishes a wake-up for this node: a cancel waits
/// in the next heartbeat answer (the HTTP long poll, paused under NATS, would have carried
/// it at once). The message is empty and unsigned: all it can do is bring a heartbeat, at
/// most every 250 ms. The client renews the subscription after a reconnection.
async fn wake_loop(client: async_nats::Client, subject: String, session: Arc<Session>, leave: CancellationToken) {
    let mut wakes = match client.subscribe(subject).await {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(target: "openclaw::nats", error = %e, "cannot subscribe to this node's wake-ups; cancels come with the regular heartbeat");
            return;
        }
    };
    loop {
        tokio::select! {
            m = wakes.next() => match m {
                Some(_) => session.heartbeat_now(),
                None => return,
            },
            _ = leave.cancelled() => return,
        }
    }
}

async fn pull(
    nats: &Arc<WorkerNats>,
    dispatch: &Arc<Dispatch>,
    session: &Arc<Session>,
    ctx: &Arc<Context>,
    js: jetstream::Context,
) {
    let until = &ctx.stop_taking;
    let (stream, name) = (nats.names.tasks_stream(), nats.names.node_consumer(&nats.node_id));
    let mut acks: JoinSet<()> = JoinSet::new();
    let mut failures = 0u32;
    let mut warned = false;
    while !until.is_cancelled() {
        if nats.link.wait_connected(until).await.is_none() {
            break;
        }
        let consumer: PullConsumer = match js.get_consumer_from_stream(&name, &stream).await {
            Ok(c) => c,
            Err(e) => {
                let waiting = matches!(e.kind(), ConsumerErrorKind::JetStream(ref j)
                    if j.error_code() == ErrorCode::CONSUMER_NOT_FOUND || j.error_code() == ErrorCode::STREAM_NOT_FOUND);
                // Not created yet: the coordinator creates it once a heartbeat says this
                // link is up.
                nats.set_pulling(waiting);
                if !waiting && !warned {
                    tracing::warn!(target: "openclaw::nats", consumer = %name, error = %e, "cannot read this node's NATS consumer; assignments come over HTTP meanwhile");
                    warned = true;
                }
                failures += 1;
                let delay = crate::util::backoff(Duration::from_millis(250), Duration::from_secs(5), failures);
                tokio::select! {
                    _ = tokio::time::sleep(delay) => continue,
                    _ = until.cancelled() => break,
                }
            }
        };
        nats.set_pulling(true);
        failures = 0;
        warned = false;
        loop {
            let Some(free) = dispatch.free_slot(until).await else { break };
            let Some(client) = session.wait(until).await else { break };
            let batch = consumer.fetch().max_messages(free).expires(Duration::from_secs(5)).messages().await;
            let mut batch = match batch {
                Ok(b) => b,
                Err(e) => {
                    tracing::debug!(target: "openclaw::nats", error = %e, "pulling assignments");
                    break;
                }
            };
            let mut broken = false;
            while let Some(next) = tokio::select! { n = batch.next() => n, _ = until.cancelled() => None } {
                match next {
                    Ok(m) => take(nats, dispatch, session, &client, m, &mut acks).await,
                    Err(e) => {
                        tracing::debug!(target: "openclaw::nats", error = %e, "pulling assignments");
                        broken = true;
                        break;
                    }
                }
            }
            while acks.try_join_next().is_some() {}
            if broken || until.is_cancelled() {
                break;
            }
        }
    }
    // Assignments in hand get their answer (the start reports finish or fail quickly).
    while acks.join_next().await.is_some() {}
}

/// One message of this node's consumer.
async fn take(
    nats: &WorkerNats,
    dispatch: &Arc<Dispatch>,
    session: &Session,
    client: &crate::client::Client,
    m: jetstream::Message,
    acks: &mut JoinSet<()>,
) {
    let Some(key) = session.secret_hash() else {
        let _ = m.ack_with(AckKind::Nak(Some(Duration::from_secs(1)))).await;
        return;
    };
    let header = |name: &str| m.headers.as_ref().and_then(|h| h.get(name)).map(|v| v.as_str().to_string());
    let (id, sig) = (header(HEADER_MSG_ID).unwrap_or_default(), header(HEADER_SIG).unwrap_or_default());
    if !super::verify(&key, &m.subject, &id, &m.payload, &sig) {
        tracing::info!(target: "openclaw::nats", subject = %m.subject, id = %id, "dropping an assignment not signed for this registration of the node (from before it registered again, or forged)");
        let _ = m.double_ack().await;
        return;
    }
    let delivery: Delivery = match serde_json::from_slice(&m.payload) {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(target: "openclaw::nats", subject = %m.subject, error = %e, "dropping an assignment this worker does not understand (are the coordinator and the worker the same version?)");
            let _ = m.double_ack().await;
            return;
        }
    };
    match delivery {
        Delivery::Poll { task_id, attempt } => {
            tracing::debug!(target: "openclaw::nats", task_id = %task_id, attempt, "assignment too large for NATS: polling for it over HTTP");
            nats.poll_now.notify_one();
            let _ = m.double_ack().await;
        }
        Delivery::Assignment(a) => {
            if id != super::assignment_id(&a.task_id, a.attempt) {
                tracing::warn!(target: "openclaw::nats", id = %id, task_id = %a.task_id, "dropping an assignment whose message id does not match it");
                let _ = m.double_ack().await;
                return;
            }
            let taken = dispatch.take_confirmed(a, client);
            acks.spawn(async move {
                match taken.await {
                    Ok(Taken::Held | Taken::Started | Taken::Refused) => {
                        let _ = m.double_ack().await;
                    }
                    // Delivered again later: the coordinator could not be asked, or every
                    // slot filled up through the other door meanwhile.
                    Ok(Taken::Unreachable) | Err(_) => {
                        let _ = m.ack_with(AckKind::Nak(Some(Duration::from_secs(5)))).await;
                    }
                    Ok(Taken::Full) => {
                        let _ = m.ack_with(AckKind::Nak(Some(Duration::from_secs(1)))).await;
                    }
                }
            });
        }
    }
}
