//! The worker's side of the NATS transport ([`WorkerNats`], the worker's
//! `CoordinatorTransport`): pulls this node's assignments from its durable consumer while
//! the coordinator says so, and publishes results.
//!
//! The coordinator decides per heartbeat how this node receives work; the worker tells it
//! whether its own link is up (`HeartbeatRequest::nats`), with the key its messages are
//! signed with (`nats_key`, see [`NodeKey`]), and follows the answer (`dispatch`): under
//! `nats` the HTTP long poll pauses and [`WorkerNats::run`] pulls, one message per free
//! slot; under `http`, or whenever this link is down, the poll runs as without NATS. Both
//! doors feed the worker's same attempts, which hold each (task, attempt) once.
//!
//! Invariants:
//! - An assignment from NATS runs only after the coordinator accepted its start report
//!   (JetStream may deliver an old message again after a server crash); its message is
//!   acked then, or when the coordinator refuses the attempt, and delivered again later
//!   when the coordinator cannot be asked.
//! - Messages are checked against this registration's key (signature and message id)
//!   before anything else; one that fails is dropped.
//! - A result published here counts as delivered only once the coordinator confirms it
//!   (the worker's attempts wait for that, and send it over HTTP when it does not come).
//!
//! Locking: none held across `.await`; the mode is a `watch`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::ConsumerErrorKind;
use async_nats::jetstream::{self, AckKind, ErrorCode};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use super::config::NatsConfig;
use super::link::Link;
use super::{Delivery, HEADER_MSG_ID, HEADER_NODE, HEADER_ROOM, HEADER_SIG, Names, NodeKey};
use crate::config::Config;
use crate::model::{HeartbeatRequest, HeartbeatResponse, ResultReport, Transport};
use crate::worker::transport::{CoordinatorTransport, Handle, Taken, Wake};

/// Whether assignments come over NATS: the coordinator's word and this side's state.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Mode {
    /// The last heartbeat answer said `nats`.
    carried: bool,
    /// The pull loop can pull (or waits for the coordinator to create its consumer).
    pulling: bool,
}

/// This worker's NATS transport.
pub struct WorkerNats {
    link: Arc<Link>,
    names: Names,
    node_id: String,
    mode: watch::Sender<Mode>,
    /// Wakes the paused HTTP poll loop for one poll.
    poll_now: Notify,
    /// The coordinator refused heartbeats with this transport's fields (it is older than
    /// this worker): they are left out, and nothing goes over NATS.
    refused: AtomicBool,
}

/// The worker's side when `communication.nats_url` is set (`crate::transport::WORKER`).
pub fn start(config: &Config, node_id: &str) -> Option<Arc<dyn CoordinatorTransport>> {
    let c = NatsConfig::of(config)?;
    let names = Names::new(&c.nats_subject_prefix);
    let link = match Link::new(&c, format!("openclaw-worker {node_id}"), names.node_inbox(node_id)) {
        Ok(link) => link,
        Err(e) => {
            tracing::error!(target: "openclaw::nats", error = %e, "communication.nats_url: {e}; carrying on over HTTP only");
            return None;
        }
    };
    Some(Arc::new(WorkerNats {
        link,
        names,
        node_id: node_id.to_string(),
        mode: watch::channel(Mode::default()).0,
        poll_now: Notify::new(),
        refused: AtomicBool::new(false),
    }))
}

impl WorkerNats {
    /// For the heartbeat: this side can take assignments over NATS.
    fn linked(&self) -> bool {
        self.link.connected() && self.mode.borrow().pulling
    }

    fn set_pulling(&self, pulling: bool) {
        self.mode.send_if_modified(|m| std::mem::replace(&mut m.pulling, pulling) != pulling);
    }

    fn set_carried(&self, carried: bool) {
        if self.mode.send_if_modified(|m| std::mem::replace(&mut m.carried, carried) != carried) {
            if carried {
                tracing::info!(target: "openclaw::nats", url = %self.link.shown(), "assignments now come over NATS ({})", self.names.assignments(&self.node_id));
            } else {
                tracing::info!(target: "openclaw::nats", "assignments now come over HTTP (the coordinator's NATS link or this node's consumer is not ready)");
            }
        }
    }

    fn takes_assignments(&self) -> bool {
        self.mode.borrow().carried && self.linked()
    }

    async fn publish_result(&self, task_id: &str, report: &ResultReport, secret: &str) -> bool {
        if !self.mode.borrow().carried {
            return false;
        }
        let Some(client) = self.link.client().filter(|_| self.link.connected()) else { return false };
        let max_payload = client.server_info().max_payload;
        let Ok(payload) = serde_json::to_vec(report) else { return false };
        if payload.len() + HEADER_ROOM > max_payload {
            tracing::info!(target: "openclaw::nats", task_id, bytes = payload.len(), max_payload, "the result is larger than the NATS server's max_payload; sending it over HTTP");
            return false;
        }
        let key = NodeKey::derive(secret);
        let subject = self.names.result(task_id);
        let id = key.result_id(task_id, report.attempt);
        let sig = key.sign(&subject, &id, &payload);
        let message = PublishMessage::build()
            .message_id(&id)
            .header(HEADER_NODE, self.node_id.as_str())
            .header(HEADER_SIG, sig.as_str())
            .payload(payload.into());
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
                false
            }
        }
    }
}

impl CoordinatorTransport for WorkerNats {
    fn name(&self) -> &'static str {
        "nats"
    }

    fn heartbeat(&self, req: &mut HeartbeatRequest, secret: &str) {
        if self.refused.load(Ordering::SeqCst) {
            return;
        }
        req.nats = Some(self.linked());
        req.nats_key = Some(NodeKey::derive(secret).to_base64());
    }

    fn heartbeat_answer(&self, answer: &HeartbeatResponse) {
        self.set_carried(answer.dispatch == Some(Transport::Nats) && !self.refused.load(Ordering::SeqCst));
    }

    fn heartbeat_refused(&self) -> bool {
        if self.refused.swap(true, Ordering::SeqCst) {
            return false;
        }
        tracing::error!(target: "openclaw::nats", "the coordinator refused a heartbeat carrying this worker's NATS link state and key (nats, nats_key): it is older than this worker. Upgrade the coordinator first; until this worker restarts, its work goes over HTTP");
        self.set_carried(false);
        true
    }

    fn carries_assignments(&self) -> bool {
        self.takes_assignments()
    }

    fn paused(&self) -> BoxFuture<'_, Wake> {
        Box::pin(async move {
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
        })
    }

    fn activated(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let mut mode = self.mode.subscribe();
            let mut link = self.link.watch();
            while !self.takes_assignments() {
                tokio::select! {
                    changed = mode.changed() => if changed.is_err() { return std::future::pending().await },
                    changed = link.changed() => if changed.is_err() { return std::future::pending().await },
                }
            }
        })
    }

    /// Publishes a result to the results stream, signed with this registration's key;
    /// false when NATS cannot take it now (not connected, too large, no ack, or the
    /// coordinator's last word was `http`: it may not be reading the stream).
    fn send_result<'a>(&'a self, task_id: &'a str, report: &'a ResultReport, secret: &'a str) -> BoxFuture<'a, bool> {
        Box::pin(self.publish_result(task_id, report, secret))
    }

    fn run(self: Arc<Self>, worker: Handle) -> BoxFuture<'static, ()> {
        Box::pin(run(self, worker))
    }
}

/// Connects, then pulls this node's assignments until the worker stops taking tasks;
/// closes the connection once the worker leaves (results may be published until then).
async fn run(nats: Arc<WorkerNats>, worker: Handle) {
    let mut wake = None;
    if let Some(client) = nats.link.connect(worker.stop_taking()).await {
        let subject = nats.names.wake(&nats.node_id);
        wake = Some(tokio::spawn(wake_loop(client.clone(), subject, worker.clone())));
        pull(&nats, &worker, jetstream::new(client)).await;
    }
    nats.set_pulling(false);
    worker.leaving().cancelled().await;
    if let Some(w) = wake {
        w.abort();
    }
    nats.link.close().await;
}

/// Heartbeats early when the coordinator publishes a wake-up for this node: a cancel waits
/// in the next heartbeat answer (the HTTP long poll, paused under NATS, would have carried
/// it at once). The message is empty and unsigned: all it can do is bring a heartbeat, at
/// most every 250 ms. The client renews the subscription after a reconnection.
async fn wake_loop(client: async_nats::Client, subject: String, worker: Handle) {
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
                Some(_) => worker.heartbeat_now(),
                None => return,
            },
            _ = worker.leaving().cancelled() => return,
        }
    }
}

async fn pull(nats: &Arc<WorkerNats>, worker: &Handle, js: jetstream::Context) {
    let until = worker.stop_taking();
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
            let Some(free) = worker.free_slots().await else { break };
            let Some(client) = worker.registered().await else { break };
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
                    Ok(m) => take(nats, worker, &client, m, &mut acks).await,
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
    worker: &Handle,
    client: &crate::client::Client,
    m: jetstream::Message,
    acks: &mut JoinSet<()>,
) {
    let Some(key) = client.token().map(NodeKey::derive) else {
        let _ = m.ack_with(AckKind::Nak(Some(Duration::from_secs(1)))).await;
        return;
    };
    let header = |name: &str| m.headers.as_ref().and_then(|h| h.get(name)).map(|v| v.as_str().to_string());
    let (id, sig) = (header(HEADER_MSG_ID).unwrap_or_default(), header(HEADER_SIG).unwrap_or_default());
    if !key.verify(&m.subject, &id, &m.payload, &sig) {
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
            if id != key.assignment_id(&a.task_id, a.attempt) {
                tracing::warn!(target: "openclaw::nats", id = %id, task_id = %a.task_id, "dropping an assignment whose message id does not match it");
                let _ = m.double_ack().await;
                return;
            }
            let taken = worker.take(a, client);
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
