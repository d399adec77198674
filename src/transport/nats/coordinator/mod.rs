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
//! up, the node's durable consumer exists, and the worker says its own link is up and
//! sends the key its messages are signed with (kept here, in memory only; a worker that
//! sends no key, an older one, stays on HTTP); otherwise HTTP, where the long poll hands
//! out every scheduled attempt the worker does not hold. A node that switches to NATS gets
//! all its scheduled attempts published again (duplicates are dropped by JetStream's
//! message ids, then by the worker's held set and the fenced start report). A publish
//! that fails puts the node back on HTTP until its next heartbeat.
//!
//! Invariants: no NATS call runs on the state machine's path (the hook only reads and
//! writes the relay's own table); every spawned task is awaited before [`run`] returns;
//! a result is acked only after its commit (or its refusal), so a crash in between
//! delivers it again and the state machine answers the repeat idempotently.
//!
//! Locking: a std mutex over the per-node table, never held across `.await`.
//!
//! At start, a connection without credentials is a WARN: whoever reaches the server reads
//! every assignment's parameters, every result and event, and can use the JetStream API.
//!
//! Layout: this file holds the hook, the stream and consumer settings and the setup;
//! [`assignments`] publishes assignments, [`results`] records results, [`feed`] publishes
//! the events, [`metrics`] holds the figures.

mod assignments;
mod feed;
mod metrics;
mod results;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::stream::{self, DiscardPolicy, RetentionPolicy, StorageType};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::config::NatsConfig;
use super::link::Link;
use super::{COORDINATOR_CONSUMER, MAX_MESSAGE_BYTES, Names, NodeKey};
use crate::coordinator::cluster::{Cluster, WorkerTransport};
use crate::model::{ClusterHealth, HeartbeatRequest, NatsHealth, Transport};
use crate::util::lock;
use metrics::NatsMetrics;

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
    /// Its last heartbeat answer said `nats`: its assignments go over NATS.
    on_nats: bool,
    /// The key its messages are signed with, from its last heartbeat (memory only).
    key: Option<NodeKey>,
    /// Told the log once why it stays on HTTP (no key, or a bad one).
    warned: bool,
}

/// What the setup made on the server.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Ready {
    /// The tasks and results streams and the coordinator's consumer.
    streams: bool,
    /// The events stream (when configured).
    events: bool,
}

/// Work for the assignment loop from the heartbeat hook.
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
    config: NatsConfig,
    metrics: NatsMetrics,
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

/// Starts the NATS transport when `communication.nats_url` is set
/// (`crate::transport::COORDINATOR`): installs the hook, registers the metrics, and returns
/// the task running the loops (it ends after `shutdown`).
pub fn start(cluster: &Arc<Cluster>, shutdown: CancellationToken) -> Option<JoinHandle<()>> {
    let config = NatsConfig::of(cluster.config())?;
    let names = Names::new(&config.nats_subject_prefix);
    let link = match Link::new(&config, "openclaw-coordinator".into(), names.coordinator_inbox()) {
        Ok(link) => link,
        Err(e) => {
            tracing::error!(target: "openclaw::nats", error = %e, "communication.nats_url: {e}; carrying on over HTTP only");
            return None;
        }
    };
    if !config.has_credentials() {
        tracing::warn!(
            target: "openclaw::nats",
            url = %link.shown(),
            "the connection to NATS at {} has no credentials: task parameters, results and events travel in clear to anyone who can reach that server, who can also use its JetStream API. Give the coordinator and each worker an account of its own (communication.nats_creds_file, nats_nkey_seed_file, nats_user/nats_password or nats_token; see docs/nats.md for the permissions each needs), and TLS between machines",
            link.shown()
        );
    }
    let (requests, request_rx) = mpsc::unbounded_channel();
    let (echoes, echo_rx) = mpsc::channel(1024);
    let relay = Arc::new(Relay {
        link,
        names,
        config,
        metrics: NatsMetrics::default(),
        ready: watch::channel(Ready::default()).0,
        nodes: Mutex::new(HashMap::new()),
        requests,
        echoes,
        last_event: AtomicU64::new(0),
        setup_error: Mutex::new(None),
    });
    cluster.metrics().register(|registry| relay.metrics.register(registry, &relay));
    cluster.set_transport(relay.clone());
    Some(tokio::spawn(run(relay, cluster.clone(), request_rx, echo_rx, shutdown)))
}

impl WorkerTransport for Relay {
    fn heartbeat(&self, node: &str, req: &HeartbeatRequest) -> Transport {
        let key = req.nats_key.as_deref().map(NodeKey::from_base64);
        let usable = self.link.connected() && self.ready.borrow().streams;
        let nats = {
            let mut nodes = lock(&self.nodes);
            let entry = nodes.entry(node.to_string()).or_default();
            entry.key = key.clone().flatten();
            entry.linked = req.nats == Some(true) && entry.key.is_some();
            if req.nats == Some(true) && entry.key.is_none() && !entry.warned {
                entry.warned = true;
                match key {
                    Some(None) => {
                        tracing::warn!(target: "openclaw::nats", node_id = %node, "node `{node}` sent a NATS key that is not 32 bytes of base64; it stays on HTTP")
                    }
                    _ => {
                        tracing::warn!(target: "openclaw::nats", node_id = %node, "node `{node}` runs an older worker that does not sign its NATS messages with a key of its own; it works over HTTP until it is upgraded")
                    }
                }
            }
            if usable && entry.linked && entry.consumer == Consumer::Missing {
                entry.consumer = Consumer::Creating;
                let _ = self.requests.send(Request::Consumer(node.to_string()));
            }
            let nats = usable && entry.linked && entry.consumer == Consumer::Ready;
            if nats && !entry.on_nats {
                let _ = self.requests.send(Request::Resync(node.to_string()));
            }
            entry.on_nats = nats;
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

    fn health(&self, health: &mut ClusterHealth) {
        let (status, facts) = self.link.health();
        let ready = self.ready.borrow().streams;
        let nodes = lock(&self.nodes).values().filter(|n| n.on_nats).count() as u32;
        let last_error = lock(&self.setup_error).clone().or(status.last_error.clone());
        let connected = status.state == crate::model::NatsState::Connected;
        health.transport = if connected && ready { Transport::Nats } else { Transport::Http };
        health.nats = Some(NatsHealth {
            state: status.state,
            url: self.link.shown().to_string(),
            since: super::link::since(&status),
            server_version: facts.as_ref().map(|f| f.version.clone()),
            jetstream: facts.as_ref().is_some_and(|f| f.jetstream),
            streams_ready: ready && connected,
            nodes,
            last_event_id: self.last_event.load(Ordering::SeqCst),
            last_error,
        });
    }
}

impl Relay {
    /// Whether node `node`'s assignments go over NATS now.
    fn on_nats(&self, node: &str) -> bool {
        lock(&self.nodes).get(node).is_some_and(|n| n.on_nats)
    }

    /// The key of node `node`'s messages, from its last heartbeat.
    fn key_of(&self, node: &str) -> Option<NodeKey> {
        lock(&self.nodes).get(node).and_then(|n| n.key.clone())
    }

    /// Puts a node back on HTTP until its next heartbeat (a publish failed).
    fn fall_back(&self, node: &str) {
        if let Some(n) = lock(&self.nodes).get_mut(node) {
            n.on_nats = false;
        }
    }

    fn nodes_on_nats(&self) -> Vec<String> {
        lock(&self.nodes).iter().filter(|(_, n)| n.on_nats).map(|(id, _)| id.clone()).collect()
    }

    /// For the metrics: connected (0 or 1), and how many nodes are on NATS.
    fn gauges(&self) -> (i64, i64) {
        let nodes = lock(&self.nodes).values().filter(|n| n.on_nats).count();
        (i64::from(self.link.connected()), nodes as i64)
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
        tokio::spawn(setup_loop(relay.clone(), js.clone(), shutdown.clone())),
        tokio::spawn(assignments::assignment_loop(
            relay.clone(),
            cluster.clone(),
            js.clone(),
            requests,
            shutdown.clone(),
        )),
        tokio::spawn(results::results_loop(relay.clone(), cluster.clone(), js.clone(), shutdown.clone())),
        tokio::spawn(feed::events_loop(relay.clone(), cluster.clone(), js, at_start, shutdown.clone())),
        tokio::spawn(feed::echo_loop(relay.clone(), client, echoes, shutdown)),
    ];
    for handle in loops {
        let _ = handle.await;
    }
    relay.link.close().await;
}

/// Sets the streams up at every (re)connection.
async fn setup_loop(relay: Arc<Relay>, js: jetstream::Context, shutdown: CancellationToken) {
    let mut status = relay.link.watch();
    let mut done_for = 0u64;
    let mut logged: Option<String> = None;
    let mut seen_connections = 0u64;
    loop {
        let now = status.borrow_and_update().clone();
        if now.connections > seen_connections {
            if seen_connections > 0 {
                relay.metrics.reconnects.inc_by(now.connections - seen_connections);
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
