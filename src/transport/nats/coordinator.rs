//! The coordinator's side of the NATS transport: the streams, the assignment publisher,
//! the results consumer, the event feed and the heartbeat echo.
//!
//! It is a door, never a second state machine: what to publish comes from the committed
//! event bus and [`Cluster::scheduled_assignments`] (a `scheduled` event for node N means
//! "hand it over"); results go to [`Cluster::result`], the code the HTTP handler runs; the
//! event feed reads the store's event log after a cursor ([`Cluster::events_after`]).
//!
//! Which door a node uses is decided per heartbeat ([`Relay`] is the
//! [`WorkerTransport`] hook): NATS when the coordinator is connected with its streams set
//! up, the node's durable consumer exists and the worker says its own link is up;
//! otherwise HTTP, where the long poll hands out every scheduled attempt the worker does
//! not hold. A node that switches to NATS gets all its scheduled attempts published again
//! (duplicates are dropped by JetStream's message ids, then by the worker's held set and
//! the fenced start report). A publish that fails puts the node back on HTTP until its
//! next heartbeat.
//!
//! Invariants: no NATS call runs on the state machine's path (the hook only reads and
//! writes the relay's own table); every spawned task is awaited before [`run`] returns;
//! a result is acked only after its commit (or its refusal), so a crash in between
//! delivers it again and the state machine answers the repeat idempotently.
//!
//! Locking: a std mutex over the per-node table, never held across `.await`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{self, DiscardPolicy, RetentionPolicy, StorageType};
use async_nats::jetstream::{self, AckKind};
use futures_util::StreamExt;
use tokio::sync::{Semaphore, broadcast, mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use super::link::Link;
use super::{
    COORDINATOR_CONSUMER, Delivery, HEADER_EVENT, HEADER_EVENT_ID, HEADER_MSG_ID, HEADER_NODE, HEADER_ROOM, HEADER_SIG,
    MAX_MESSAGE_BYTES, Names,
};
use crate::config::CommunicationConfig;
use crate::coordinator::cluster::{Cluster, WorkerTransport};
use crate::coordinator::metrics::Metrics;
use crate::model::{ErrorCode, Event, EventKind, HeartbeatRequest, NatsHealth, ResultReport, Transport};
use crate::util::lock;

/// How many results are recorded at once (their commits share the writer's group commit).
const RESULTS_IN_FLIGHT: usize = 64;
/// How many events one publish round reads from the store.
const EVENTS_PER_ROUND: u32 = 512;

/// A node's durable consumer on the tasks stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Consumer {
    #[default]
    Missing,
    Creating,
    Ready,
}

/// What the relay knows of one node.
#[derive(Debug, Default)]
struct NodeLink {
    /// Its last heartbeat said its NATS link is up.
    linked: bool,
    consumer: Consumer,
    /// Its last heartbeat answer said `nats`.
    dispatch: bool,
}

/// What the setup made on the server.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Ready {
    /// The tasks and results streams and the coordinator's consumer.
    streams: bool,
    /// The events stream (when configured).
    events: bool,
}

/// Work for the dispatcher from the heartbeat hook.
enum Request {
    /// Create or update the node's durable consumer.
    Consumer(String),
    /// Publish every scheduled attempt of the node (it just switched to NATS).
    Resync(String),
}

/// The coordinator's NATS transport: the hook the cluster calls, and the state its loops
/// share.
pub struct Relay {
    link: Arc<Link>,
    names: Names,
    config: CommunicationConfig,
    /// What is set up on the server we are connected to now (a `watch`: loops wait for it).
    ready: watch::Sender<Ready>,
    /// A std mutex: short sections only.
    nodes: Mutex<HashMap<String, NodeLink>>,
    requests: mpsc::UnboundedSender<Request>,
    /// Accepted heartbeats to echo on `P.nodes.heartbeat` (dropped when full).
    echoes: mpsc::Sender<Vec<u8>>,
    /// The id of the last event published.
    last_event: AtomicU64,
    /// Why the streams are not set up, if they are not.
    setup_error: Mutex<Option<String>>,
}

/// Starts the NATS transport when `communication.nats_url` is set: installs the hook and
/// returns the task running the loops (it ends after `shutdown`).
pub fn start(cluster: &Arc<Cluster>, shutdown: CancellationToken) -> Option<JoinHandle<()>> {
    let config = cluster.config().communication.clone();
    config.nats_url.as_ref()?;
    let link = match Link::new(&config, "openclaw-coordinator".into()) {
        Ok(link) => link,
        Err(e) => {
            tracing::error!(target: "openclaw::nats", error = %e, "communication.nats_url: {e}; carrying on over HTTP only");
            return None;
        }
    };
    let (requests, request_rx) = mpsc::unbounded_channel();
    let (echoes, echo_rx) = mpsc::channel(1024);
    let relay = Arc::new(Relay {
        link,
        names: super::Names::new(&config.nats_subject_prefix),
        config,
        ready: watch::channel(Ready::default()).0,
        nodes: Mutex::new(HashMap::new()),
        requests,
        echoes,
        last_event: AtomicU64::new(0),
        setup_error: Mutex::new(None),
    });
    cluster.set_transport(relay.clone());
    Some(tokio::spawn(run(relay, cluster.clone(), request_rx, echo_rx, shutdown)))
}

impl WorkerTransport for Relay {
    fn heartbeat(&self, node: &str, req: &HeartbeatRequest) -> Transport {
        let linked = req.nats == Some(true);
        let usable = self.link.connected() && self.ready.borrow().streams;
        let nats = {
            let mut nodes = lock(&self.nodes);
            let entry = nodes.entry(node.to_string()).or_default();
            entry.linked = linked;
            if usable && linked && entry.consumer == Consumer::Missing {
                entry.consumer = Consumer::Creating;
                let _ = self.requests.send(Request::Consumer(node.to_string()));
            }
            let nats = usable && linked && entry.consumer == Consumer::Ready;
            if nats && !entry.dispatch {
                let _ = self.requests.send(Request::Resync(node.to_string()));
            }
            entry.dispatch = nats;
            nats
        };
        if self.link.connected() {
            let echo = serde_json::json!({
                "node_id": node, "at": crate::model::Timestamp::now(), "cpu_usage": req.cpu_usage,
                "memory_usage": req.memory_usage, "disk_usage": req.disk_usage,
                "running_tasks": req.held_tasks.as_ref().map(Vec::len).or(req.running_tasks.map(|n| n as usize)),
                "dispatch": if nats { Transport::Nats } else { Transport::Http },
            });
            let _ = self.echoes.try_send(echo.to_string().into_bytes());
        }
        if nats { Transport::Nats } else { Transport::Http }
    }

    fn health(&self) -> (Transport, NatsHealth) {
        let (status, facts) = self.link.health();
        let ready = self.ready.borrow().streams;
        let nodes = lock(&self.nodes).values().filter(|n| n.dispatch).count() as u32;
        let last_error = lock(&self.setup_error).clone().or(status.last_error.clone());
        let connected = status.state == crate::model::NatsState::Connected;
        let health = NatsHealth {
            state: status.state,
            url: self.link.shown().to_string(),
            since: super::link::since(&status),
            server_version: facts.as_ref().map(|f| f.version.clone()),
            jetstream: facts.as_ref().is_some_and(|f| f.jetstream),
            streams_ready: ready && connected,
            nodes,
            last_event_id: self.last_event.load(Ordering::SeqCst),
            last_error,
        };
        (if connected && ready { Transport::Nats } else { Transport::Http }, health)
    }
}

impl Relay {
    /// Whether node `node`'s assignments go over NATS now.
    fn dispatches_to(&self, node: &str) -> bool {
        lock(&self.nodes).get(node).is_some_and(|n| n.dispatch)
    }

    /// Puts a node back on HTTP until its next heartbeat (a publish failed).
    fn fall_back(&self, node: &str) {
        if let Some(n) = lock(&self.nodes).get_mut(node) {
            n.dispatch = false;
        }
    }

    fn nodes_on_nats(&self) -> Vec<String> {
        lock(&self.nodes).iter().filter(|(_, n)| n.dispatch).map(|(id, _)| id.clone()).collect()
    }

    fn set_consumer(&self, node: &str, state: Consumer) {
        if let Some(n) = lock(&self.nodes).get_mut(node) {
            n.consumer = state;
        }
    }

    fn tasks_stream(&self) -> stream::Config {
        stream::Config {
            name: self.names.tasks_stream(),
            description: Some(format!(
                "openclaw task assignments, one subject per node ({})",
                self.names.all_assignments()
            )),
            subjects: vec![self.names.all_assignments()],
            retention: RetentionPolicy::WorkQueue,
            storage: StorageType::File,
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_message_size: MAX_MESSAGE_BYTES,
            discard: DiscardPolicy::New,
            duplicate_window: Duration::from_secs(120),
            num_replicas: self.config.nats_replicas,
            ..Default::default()
        }
    }

    fn results_stream(&self) -> stream::Config {
        stream::Config {
            name: self.names.results_stream(),
            description: Some(format!("openclaw task results for the coordinator ({})", self.names.all_results())),
            subjects: vec![self.names.all_results()],
            retention: RetentionPolicy::WorkQueue,
            storage: StorageType::File,
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_message_size: MAX_MESSAGE_BYTES,
            discard: DiscardPolicy::New,
            duplicate_window: Duration::from_secs(600),
            num_replicas: self.config.nats_replicas,
            ..Default::default()
        }
    }

    fn events_stream(&self) -> stream::Config {
        stream::Config {
            name: self.names.events_stream(),
            description: Some(format!("openclaw task and node events ({})", self.names.all_events())),
            subjects: vec![self.names.all_events()],
            retention: RetentionPolicy::Limits,
            storage: StorageType::File,
            max_age: self.config.nats_events_max_age.get(),
            max_messages: i64::try_from(self.config.nats_events_max_msgs).unwrap_or(i64::MAX),
            max_message_size: MAX_MESSAGE_BYTES,
            discard: DiscardPolicy::Old,
            duplicate_window: Duration::from_secs(120),
            num_replicas: self.config.nats_replicas,
            ..Default::default()
        }
    }

    fn node_consumer(&self, node: &str) -> pull::Config {
        pull::Config {
            durable_name: Some(self.names.node_consumer(node)),
            description: Some(format!("openclaw assignments of node {node}")),
            filter_subject: self.names.assignments(node),
            ack_policy: AckPolicy::Explicit,
            ack_wait: Duration::from_secs(60),
            max_deliver: -1,
            max_ack_pending: 1024,
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        }
    }

    fn coordinator_consumer(&self) -> pull::Config {
        pull::Config {
            durable_name: Some(COORDINATOR_CONSUMER.into()),
            description: Some("openclaw coordinator: results to record".into()),
            filter_subject: self.names.all_results(),
            ack_policy: AckPolicy::Explicit,
            ack_wait: Duration::from_secs(30),
            max_deliver: -1,
            max_ack_pending: 4096,
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        }
    }

    /// Creates or updates the streams and the coordinator's consumer (idempotent: at each
    /// connection, so limits changed in the config are applied and a server that lost its
    /// store gets them back).
    async fn set_up(&self, js: &jetstream::Context) -> Result<(), String> {
        let facts = self.link.facts().unwrap_or_default();
        if !facts.jetstream {
            return Err(format!(
                "the NATS server at {} runs without JetStream: start it with -js (or a jetstream {{ store_dir: … }} block); until then assignments and results go over HTTP and events are published without a stream",
                self.link.shown()
            ));
        }
        let mut streams = vec![self.tasks_stream(), self.results_stream()];
        if self.config.nats_events_stream {
            streams.push(self.events_stream());
        }
        for config in streams {
            let name = config.name.clone();
            js.create_or_update_stream(config).await.map_err(|e| {
                format!(
                    "cannot create or update the stream {name}: {e}; if it exists with settings that cannot change (retention, storage), remove it (`nats stream rm {name}`) or choose another communication.nats_subject_prefix"
                )
            })?;
        }
        js.create_consumer_on_stream(self.coordinator_consumer(), self.names.results_stream()).await.map_err(|e| {
            format!("cannot create the consumer `{COORDINATOR_CONSUMER}` on {}: {e}", self.names.results_stream())
        })?;
        // Consumers of nodes already on NATS: again, in case the server lost them.
        let ready: Vec<String> =
            lock(&self.nodes).iter().filter(|(_, n)| n.consumer == Consumer::Ready).map(|(id, _)| id.clone()).collect();
        for node in ready {
            if js.create_consumer_on_stream(self.node_consumer(&node), self.names.tasks_stream()).await.is_err() {
                self.set_consumer(&node, Consumer::Missing);
            }
        }
        Ok(())
    }
}

/// Connects, then runs the loops until `shutdown`; closes the connection last.
async fn run(
    relay: Arc<Relay>,
    cluster: Arc<Cluster>,
    requests: mpsc::UnboundedReceiver<Request>,
    echoes: mpsc::Receiver<Vec<u8>>,
    shutdown: CancellationToken,
) {
    // The feed starts with what is committed from now on (or resumes the events stream).
    let at_start = match cluster.last_event_id().await {
        Ok(id) => id,
        Err(e) => {
            tracing::error!(target: "openclaw::nats", error = %e, "cannot read the event log; the NATS transport is off");
            return;
        }
    };
    let Some(client) = relay.link.connect(&shutdown).await else { return };
    let js = jetstream::new(client.clone());
    let loops = vec![
        tokio::spawn(setup_loop(relay.clone(), cluster.clone(), js.clone(), shutdown.clone())),
        tokio::spawn(dispatch_loop(relay.clone(), cluster.clone(), js.clone(), requests, shutdown.clone())),
        tokio::spawn(results_loop(relay.clone(), cluster.clone(), js.clone(), shutdown.clone())),
        tokio::spawn(events_loop(relay.clone(), cluster.clone(), js, at_start, shutdown.clone())),
        tokio::spawn(echo_loop(relay.clone(), client, echoes, shutdown)),
    ];
    for handle in loops {
        let _ = handle.await;
    }
    relay.link.close().await;
}

/// Sets the streams up at every (re)connection.
async fn setup_loop(relay: Arc<Relay>, cluster: Arc<Cluster>, js: jetstream::Context, shutdown: CancellationToken) {
    let mut status = relay.link.watch();
    let mut done_for = 0u64;
    let mut logged: Option<String> = None;
    let mut seen_connections = 0u64;
    loop {
        let now = status.borrow_and_update().clone();
        if now.connections > seen_connections {
            if seen_connections > 0 {
                cluster.metrics().nats.reconnects.inc_by(now.connections - seen_connections);
            }
            seen_connections = now.connections;
        }
        let mut retry = false;
        if now.state == crate::model::NatsState::Connected && now.connections != done_for {
            relay.ready.send_replace(Ready::default());
            match relay.set_up(&js).await {
                Ok(()) => {
                    let first = done_for == 0;
                    done_for = now.connections;
                    *lock(&relay.setup_error) = None;
                    relay.ready.send_replace(Ready { streams: true, events: relay.config.nats_events_stream });
                    if logged.take().is_some() || first {
                        tracing::info!(
                            target: "openclaw::nats",
                            tasks = %relay.names.tasks_stream(), results = %relay.names.results_stream(),
                            events = %if relay.config.nats_events_stream { relay.names.events_stream() } else { "off".into() },
                            "NATS streams ready: nodes whose workers are on NATS receive their assignments there from their next heartbeat"
                        );
                    }
                }
                Err(e) => {
                    if logged.as_deref() != Some(e.as_str()) {
                        tracing::error!(target: "openclaw::nats", error = %e, "{e}");
                        logged = Some(e.clone());
                    }
                    *lock(&relay.setup_error) = Some(e);
                    retry = true;
                }
            }
        }
        tokio::select! {
            changed = status.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(Duration::from_secs(10)), if retry => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Publishes assignments for nodes on NATS, creates their consumers, and cleans up after
/// attempts that ended before they started and nodes that were forgotten.
async fn dispatch_loop(
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
    match (e.kind, e.event.as_str()) {
        (EventKind::Task, "scheduled") => {
            if let Some(node) = e.node_id {
                due.entry(node).or_insert(false);
            }
        }
        (EventKind::Task, event) => {
            let (Some(task), Some(attempt)) = (e.task_id, e.attempt) else { return };
            if let Some(seq) = published.remove(&(task, attempt))
                && event != "running"
            {
                // The attempt ended or was requeued before its worker took it.
                stale.push(seq);
            }
        }
        // A new worker process, or none: HTTP until its heartbeats say otherwise.
        (EventKind::Node, "registered" | "secret_rotated" | "offline" | "left") => {
            if let Some(node) = e.node_id {
                relay.fall_back(&node);
            }
        }
        (EventKind::Node, "forgotten") => {
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
        _ => {}
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
        if !relay.dispatches_to(&node) {
            continue;
        }
        let Some(key) = cluster.view(|c| c.registry().secret_hash(&node).map(str::to_string)) else { continue };
        let assignments = match cluster.scheduled_assignments(&node).await {
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
            let id = super::assignment_id(&a.task_id, a.attempt);
            let (task_id, attempt) = (a.task_id.clone(), a.attempt);
            let mut payload = serde_json::to_vec(&Delivery::Assignment(a)).unwrap_or_default();
            if payload.len() + HEADER_ROOM > max_payload {
                payload = serde_json::to_vec(&Delivery::Poll { task_id, attempt }).unwrap_or_default();
            }
            let sig = super::signature(&key, &subject, &id, &payload);
            let message =
                PublishMessage::build().message_id(&id).header(HEADER_SIG, sig.as_str()).payload(payload.into());
            match js.send_publish(subject, message).await {
                Ok(ack) => acks.push((node.clone(), key_of, ack)),
                Err(e) => failed(relay, cluster, &node, &e.to_string()),
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
                Metrics::nats_count(&cluster.metrics().nats.published, "assignment");
                published.insert(key, ack.sequence);
            }
            Err(e) => failed(relay, cluster, &node, &e.to_string()),
        }
    }
}

/// A publish to a node failed: HTTP carries its work until its next heartbeat.
fn failed(relay: &Relay, cluster: &Cluster, node: &str, error: &str) {
    Metrics::nats_count(&cluster.metrics().nats.publish_failures, "assignment");
    if relay.dispatches_to(node) {
        tracing::warn!(target: "openclaw::nats", node_id = %node, error = %error, "cannot publish an assignment for node `{node}` to NATS; it goes over HTTP until the node's next heartbeat");
    }
    relay.fall_back(node);
}

/// Takes results from the results stream and records them through [`Cluster::result`].
async fn results_loop(relay: Arc<Relay>, cluster: Arc<Cluster>, js: jetstream::Context, shutdown: CancellationToken) {
    let slots = Arc::new(Semaphore::new(RESULTS_IN_FLIGHT));
    let mut status = relay.link.watch();
    let mut ready = relay.ready.subscribe();
    let mut in_flight: JoinSet<()> = JoinSet::new();
    let mut failures = 0u32;
    'outer: while !shutdown.is_cancelled() {
        if !ready.borrow_and_update().streams || !relay.link.connected() {
            tokio::select! {
                _ = status.changed() => {}
                _ = ready.changed() => {}
                _ = shutdown.cancelled() => break,
            }
            continue;
        }
        let consumer: Result<PullConsumer, String> = js
            .get_consumer_from_stream(COORDINATOR_CONSUMER, relay.names.results_stream())
            .await
            .map_err(|e| e.to_string());
        let messages = match consumer {
            Ok(c) => c
                .stream()
                .max_messages_per_batch(RESULTS_IN_FLIGHT)
                .heartbeat(Duration::from_secs(5))
                .expires(Duration::from_secs(30))
                .messages()
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        let mut messages = match messages {
            Ok(m) => m,
            Err(e) => {
                failures += 1;
                tracing::debug!(target: "openclaw::nats", error = %e, "cannot pull results yet; retrying");
                let delay = crate::util::backoff(Duration::from_millis(200), Duration::from_secs(5), failures);
                tokio::select! {
                    _ = tokio::time::sleep(delay) => continue,
                    _ = shutdown.cancelled() => break,
                }
            }
        };
        failures = 0;
        loop {
            let permit = tokio::select! {
                p = slots.clone().acquire_owned() => p.expect("the semaphore is never closed"),
                _ = shutdown.cancelled() => break 'outer,
            };
            let next = tokio::select! {
                m = messages.next() => m,
                Some(_) = in_flight.join_next(), if !in_flight.is_empty() => continue,
                _ = shutdown.cancelled() => break 'outer,
            };
            match next {
                Some(Ok(m)) => {
                    let (relay, cluster) = (relay.clone(), cluster.clone());
                    in_flight.spawn(async move {
                        take_result(&relay, &cluster, m).await;
                        drop(permit);
                    });
                }
                Some(Err(e)) => {
                    use async_nats::jetstream::consumer::pull::MessagesErrorKind as K;
                    match e.kind() {
                        // The server is away or restarting: the stream resumes by itself.
                        K::MissingHeartbeat | K::NoResponders | K::Pull | K::Other => {
                            tracing::debug!(target: "openclaw::nats", error = %e, "pulling results");
                        }
                        K::ConsumerDeleted | K::PushBasedConsumer | K::RequestLimitExceeded => {
                            tracing::warn!(target: "openclaw::nats", error = %e, "the results consumer went away; setting it up again");
                            // The setup loop makes it again at the next connection;
                            // meanwhile wait a little and look again.
                            tokio::select! {
                                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                                _ = shutdown.cancelled() => break 'outer,
                            }
                            if let Err(e) = relay.set_up(&js).await {
                                tracing::error!(target: "openclaw::nats", error = %e, "{e}");
                            }
                            continue 'outer;
                        }
                    }
                }
                None => continue 'outer,
            }
        }
    }
    // Results in hand are recorded (the writer closes after this loop ends).
    while in_flight.join_next().await.is_some() {}
}

/// How a result message was dealt with.
enum Taken {
    Recorded,
    Refused(String),
    Later(String),
}

/// Checks one result message and records it; acks after the commit or the refusal.
async fn take_result(relay: &Relay, cluster: &Cluster, m: jetstream::Message) {
    let taken = judge(relay, cluster, &m).await;
    let family = &cluster.metrics().nats.results;
    match taken {
        Taken::Recorded => {
            Metrics::nats_count(family, "recorded");
            let _ = m.double_ack().await;
        }
        Taken::Refused(why) => {
            Metrics::nats_count(family, "refused");
            tracing::info!(target: "openclaw::nats", subject = %m.subject, reason = %why, "a result from NATS was not recorded: {why}");
            let _ = m.double_ack().await;
        }
        Taken::Later(why) => {
            Metrics::nats_count(family, "retried");
            tracing::debug!(target: "openclaw::nats", subject = %m.subject, reason = %why, "a result from NATS will be tried again");
            let _ = m.ack_with(AckKind::Nak(Some(Duration::from_secs(5)))).await;
        }
    }
}

async fn judge(relay: &Relay, cluster: &Cluster, m: &jetstream::Message) -> Taken {
    let Some(task) = relay.names.task_of_result(&m.subject) else {
        return Taken::Refused(format!("`{}` is not a result subject", m.subject));
    };
    let header = |name: &str| m.headers.as_ref().and_then(|h| h.get(name)).map(|v| v.as_str().to_string());
    let (Some(node), Some(sig), Some(id)) = (header(HEADER_NODE), header(HEADER_SIG), header(HEADER_MSG_ID)) else {
        return Taken::Refused(format!("the message lacks one of {HEADER_NODE}, {HEADER_SIG}, {HEADER_MSG_ID}"));
    };
    let Some(key) = cluster.view(|c| c.registry().secret_hash(&node).map(str::to_string)) else {
        return Taken::Refused(format!("node `{node}` is not registered"));
    };
    if !super::verify(&key, &m.subject, &id, &m.payload, &sig) {
        return Taken::Refused(format!(
            "the signature does not match node `{node}`'s current secret (a forged message, or one sent before the node registered again)"
        ));
    }
    let report: ResultReport = match serde_json::from_slice(&m.payload) {
        Ok(r) => r,
        Err(e) => return Taken::Refused(format!("the body is not a result report: {e}")),
    };
    if id != super::result_id(task, report.attempt) {
        return Taken::Refused(format!("the message id `{id}` does not name task {task} attempt {}", report.attempt));
    }
    match cluster.result(&node, task, report).await {
        Ok(_) => Taken::Recorded,
        Err(e) if matches!(e.code, ErrorCode::Unavailable | ErrorCode::Overloaded | ErrorCode::Internal) => {
            Taken::Later(e.message)
        }
        Err(e) => Taken::Refused(e.message),
    }
}

/// Publishes every committed event after a cursor, in order; an outage resumes exactly
/// where it stopped.
async fn events_loop(
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
                cluster.metrics().nats.published.get_or_create(&kind("event")).inc_by(batch.len() as u64);
            }
            Err(e) => {
                failures += 1;
                cluster.metrics().nats.publish_failures.get_or_create(&kind("event")).inc();
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
async fn echo_loop(
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
