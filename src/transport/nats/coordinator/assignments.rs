//! Publishing assignments: for every node on NATS, each attempt placed on it (a
//! `scheduled` event on the committed bus) is published to `P.nodes.<N>.tasks`, signed
//! with the node's key and under a message id that needs it; a node that just switched to NATS, or a bus that lagged,
//! gets all its scheduled attempts published again (JetStream drops the repeats by
//! message id within two minutes, the worker's held set and start report drop the rest).
//! Also: the durable consumer of a node, created when its heartbeat asks; the message of
//! an attempt that ended or was requeued before its worker took it, deleted; a forgotten
//! node's consumer and subject, removed. A publish that fails puts the node back on HTTP
//! until its next heartbeat, so the long poll hands its work out.

use std::collections::HashMap;
use std::sync::Arc;

use async_nats::jetstream::{self, message::PublishMessage};
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::metrics::NatsMetrics;
use super::{Consumer, Relay, Request};
use crate::coordinator::cluster::Cluster;
use crate::model::{Event, NodeTransition, TaskRef, TaskTransition, Transition};
use crate::transport::nats::{Delivery, HEADER_ROOM, HEADER_SIG};
use crate::util::lock;

/// Publishes assignments for nodes on NATS, creates their consumers, and cleans up after
/// attempts that ended before they started and nodes that were forgotten.
pub(super) async fn assignment_loop(
    relay: Arc<Relay>,
    cluster: Arc<Cluster>,
    js: jetstream::Context,
    mut requests: mpsc::UnboundedReceiver<Request>,
    shutdown: CancellationToken,
) {
    let mut bus = cluster.subscribe();
    // Published and not yet started: (task, attempt) → stream sequence.
    let mut published: HashMap<(String, u32), u64> = HashMap::new();
    let mut chores: JoinSet<()> = JoinSet::new();
    loop {
        let mut due: HashMap<String, bool> = HashMap::new();
        let mut stale: Vec<u64> = Vec::new();
        tokio::select! {
            event = bus.recv() => match event {
                Ok(e) => note(&relay, &js, &mut chores, e, &mut due, &mut published, &mut stale),
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    for node in relay.nodes_on_nats() {
                        due.insert(node, true);
                    }
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            request = requests.recv() => match request {
                Some(r) => ask(&relay, &js, &mut chores, r, &mut due),
                None => break,
            },
            Some(_) = chores.join_next(), if !chores.is_empty() => continue,
            _ = shutdown.cancelled() => break,
        }
        // Take whatever else is there now, so that one round publishes a batch.
        loop {
            match bus.try_recv() {
                Ok(e) => note(&relay, &js, &mut chores, e, &mut due, &mut published, &mut stale),
                Err(broadcast::error::TryRecvError::Lagged(_)) => {
                    for node in relay.nodes_on_nats() {
                        due.insert(node, true);
                    }
                }
                Err(_) => break,
            }
        }
        while let Ok(r) = requests.try_recv() {
            ask(&relay, &js, &mut chores, r, &mut due);
        }
        if !stale.is_empty() {
            let stream = relay.names.tasks_stream();
            let js = js.clone();
            chores.spawn(async move {
                if let Ok(s) = js.get_stream_no_info(&stream).await {
                    for seq in stale {
                        // Best effort: the worker may have taken it already.
                        let _ = s.delete_message(seq).await;
                    }
                }
            });
        }
        if !due.is_empty() {
            publish(&relay, &cluster, &js, due, &mut published).await;
        }
    }
    while chores.join_next().await.is_some() {}
}

/// Takes one committed event into the round's work.
fn note(
    relay: &Arc<Relay>,
    js: &jetstream::Context,
    chores: &mut JoinSet<()>,
    e: Event,
    due: &mut HashMap<String, bool>,
    published: &mut HashMap<(String, u32), u64>,
    stale: &mut Vec<u64>,
) {
    use NodeTransition as N;
    use TaskTransition as T;
    match e.event {
        Transition::Task(T::Scheduled) => {
            if let Some(node) = e.node_id {
                due.entry(node).or_insert(false);
            }
        }
        Transition::Task(
            event @ (T::Running
            | T::Submitted
            | T::Completed
            | T::Failed
            | T::Timeout
            | T::CancelRequested
            | T::Cancelled),
        ) => {
            let (Some(task), Some(attempt)) = (e.task_id, e.attempt) else { return };
            if let Some(seq) = published.remove(&(task, attempt))
                && event != T::Running
            {
                // The attempt ended or was requeued before its worker took it.
                stale.push(seq);
            }
        }
        // No attempt is involved: a release queues the task, a group never runs.
        Transition::Task(T::Released | T::ChildEnded) => {}
        // A new worker process, or none: HTTP until its heartbeats say otherwise.
        Transition::Node(N::Registered | N::SecretRotated | N::Offline | N::Left) => {
            if let Some(node) = e.node_id {
                relay.fall_back(&node);
            }
        }
        Transition::Node(N::Forgotten) => {
            let Some(node) = e.node_id else { return };
            lock(&relay.nodes).remove(&node);
            let (js, stream, consumer, subject) = (
                js.clone(),
                relay.names.tasks_stream(),
                relay.names.node_consumer(&node),
                relay.names.assignments(&node),
            );
            chores.spawn(async move {
                if let Ok(s) = js.get_stream_no_info(&stream).await {
                    let _ = s.delete_consumer(&consumer).await;
                    let _ = s.purge().filter(subject).await;
                }
            });
        }
        // Nothing to publish or clean up.
        Transition::Node(N::Online | N::Drained | N::Undrained | N::SkillsChanged | N::SkillDrift)
        | Transition::Schedule(_)
        | Transition::Skill(_) => {}
    }
}

/// Acts on a request of the heartbeat hook.
fn ask(
    relay: &Arc<Relay>,
    js: &jetstream::Context,
    chores: &mut JoinSet<()>,
    request: Request,
    due: &mut HashMap<String, bool>,
) {
    match request {
        Request::Resync(node) => {
            due.insert(node, true);
        }
        Request::Consumer(node) => {
            let (relay, js) = (relay.clone(), js.clone());
            chores.spawn(async move {
                let config = relay.node_consumer(&node);
                match js.create_consumer_on_stream(config, relay.names.tasks_stream()).await {
                    Ok(_) => relay.set_consumer(&node, Consumer::Ready),
                    Err(e) => {
                        tracing::warn!(target: "openclaw::nats", node_id = %node, error = %e, "cannot create the NATS consumer of node `{node}`; it stays on HTTP (retried at its next heartbeat)");
                        relay.set_consumer(&node, Consumer::Missing);
                    }
                }
            });
        }
    }
}

/// Publishes the scheduled attempts of the nodes due (all of them for a resync, the new
/// ones otherwise); a node whose publish fails goes back to HTTP.
async fn publish(
    relay: &Relay,
    cluster: &Cluster,
    js: &jetstream::Context,
    due: HashMap<String, bool>,
    published: &mut HashMap<(String, u32), u64>,
) {
    let max_payload = relay.link.facts().map(|f| f.max_payload).unwrap_or(1 << 20);
    let mut acks = Vec::new();
    for (node, all) in due {
        if !relay.on_nats(&node) {
            continue;
        }
        let Some(key) = relay.key_of(&node) else { continue };
        // Only what is not published yet is read from the store (all of it for a resync).
        let skip: Vec<TaskRef> = if all {
            Vec::new()
        } else {
            published.keys().map(|(task_id, attempt)| TaskRef { task_id: task_id.clone(), attempt: *attempt }).collect()
        };
        let assignments = match cluster.scheduled_assignments(&node, &skip).await {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!(target: "openclaw::nats", node_id = %node, error = %e, "cannot read the assignments to publish; they stay on HTTP");
                relay.fall_back(&node);
                continue;
            }
        };
        for a in assignments {
            let key_of = (a.task_id.clone(), a.attempt);
            if !all && published.contains_key(&key_of) {
                continue;
            }
            let subject = relay.names.assignments(&node);
            let id = key.assignment_id(&a.task_id, a.attempt);
            let (task_id, attempt) = (a.task_id.clone(), a.attempt);
            let mut payload = serde_json::to_vec(&Delivery::Assignment(a)).unwrap_or_default();
            if payload.len() + HEADER_ROOM > max_payload {
                payload = serde_json::to_vec(&Delivery::Poll { task_id, attempt }).unwrap_or_default();
            }
            let sig = key.sign(&subject, &id, &payload);
            let message =
                PublishMessage::build().message_id(&id).header(HEADER_SIG, sig.as_str()).payload(payload.into());
            match js.send_publish(subject, message).await {
                Ok(ack) => acks.push((node.clone(), key_of, ack)),
                Err(e) => failed(relay, &node, &e.to_string()),
            }
        }
    }
    let results = futures_util::future::join_all(acks.into_iter().map(|(node, key, ack)| async move {
        let answer = ack.await;
        (node, key, answer)
    }))
    .await;
    for (node, key, answer) in results {
        match answer {
            Ok(ack) => {
                NatsMetrics::count(&relay.metrics.published, "assignment");
                published.insert(key, ack.sequence);
            }
            Err(e) => failed(relay, &node, &e.to_string()),
        }
    }
}

/// A publish to a node failed: HTTP carries its work until its next heartbeat.
fn failed(relay: &Relay, node: &str, error: &str) {
    NatsMetrics::count(&relay.metrics.publish_failures, "assignment");
    if relay.on_nats(node) {
        tracing::warn!(target: "openclaw::nats", node_id = %node, error = %error, "cannot publish an assignment for node `{node}` to NATS; it goes over HTTP until the node's next heartbeat");
    }
    relay.fall_back(node);
}
