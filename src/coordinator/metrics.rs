//! Prometheus metrics (OpenMetrics text at `GET /metrics`).
//!
//! Counters are bumped where things happen; gauges (nodes by status, capacity, active
//! tasks) are computed from the state when scraped, so they cannot drift.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

/// Every metric the coordinator exports.
pub struct Metrics {
    registry: Registry,
    pub heartbeats: Counter,
    pub tasks_submitted: Counter,
    pub placements: Counter,
    pub tasks_ended: Family<StatusLabel, Counter>,
    pub requests: Family<RequestLabels, Counter>,
    pub request_duration: Family<RouteLabel, Histogram, fn() -> Histogram>,
    pub nodes: Family<StatusLabel, Gauge>,
    pub capacity: Family<KindLabel, Gauge>,
    pub tasks_active: Family<StatusLabel, Gauge>,
    /// Event and output streams open now.
    pub streams_open: Gauge,
    /// Streams ended because their client fell behind or stopped reading.
    pub streams_cut_off: Counter,
    /// Client connections open now.
    pub connections_open: Gauge,
    /// Connections serving a client request (anything but a node route) now.
    pub connections_held: Gauge,
    /// Schedule firings by outcome: fired, skipped, failed.
    pub schedule_firings: Family<KindLabel, Counter>,
    /// How late a firing submitted its task: from its due time (with the stagger) to the
    /// submission.
    pub schedule_lateness: Histogram,
    /// The NATS transport (registered only when `communication.nats_url` is set).
    pub nats: NatsMetrics,
}

/// The NATS transport's figures.
#[derive(Default)]
pub struct NatsMetrics {
    /// 1 while connected to NATS.
    pub connected: Gauge,
    /// Nodes receiving their assignments over NATS.
    pub nodes: Gauge,
    /// Connections made after the first (the client reconnects by itself).
    pub reconnects: Counter,
    /// Messages published, by kind: assignment, event, heartbeat.
    pub published: Family<KindLabel, Counter>,
    /// Results taken from the results stream, by outcome: recorded, refused, retried.
    pub results: Family<KindLabel, Counter>,
    /// Publishes that failed (left to HTTP, or retried), by kind.
    pub publish_failures: Family<KindLabel, Counter>,
}

fn duration_histogram() -> Histogram {
    // 0.1 ms to ~26 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 19))
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("openclaw");
        let m = Metrics {
            heartbeats: Counter::default(),
            tasks_submitted: Counter::default(),
            placements: Counter::default(),
            tasks_ended: Family::default(),
            requests: Family::default(),
            request_duration: Family::new_with_constructor(duration_histogram),
            nodes: Family::default(),
            capacity: Family::default(),
            tasks_active: Family::default(),
            streams_open: Gauge::default(),
            streams_cut_off: Counter::default(),
            connections_open: Gauge::default(),
            connections_held: Gauge::default(),
            schedule_firings: Family::default(),
            schedule_lateness: duration_histogram(),
            nats: NatsMetrics::default(),
            registry: Registry::default(),
        };
        registry.register("heartbeats", "Heartbeats received", m.heartbeats.clone());
        registry.register("tasks_submitted", "Tasks accepted", m.tasks_submitted.clone());
        registry.register("task_placements", "Attempts placed on a node", m.placements.clone());
        registry.register("tasks_ended", "Tasks that ended, by final status", m.tasks_ended.clone());
        registry.register("http_requests", "HTTP requests by route and status", m.requests.clone());
        registry.register(
            "http_request_duration_seconds",
            "HTTP request duration by route",
            m.request_duration.clone(),
        );
        registry.register("nodes", "Nodes by status", m.nodes.clone());
        registry.register("capacity_slots", "Task slots of online nodes: total and used", m.capacity.clone());
        registry.register("tasks_active", "Active tasks by status", m.tasks_active.clone());
        registry.register("streams_open", "Event and output streams open", m.streams_open.clone());
        registry.register(
            "streams_cut_off",
            "Event and output streams ended because the client fell behind or stopped reading",
            m.streams_cut_off.clone(),
        );
        registry.register("connections_open", "Client connections open", m.connections_open.clone());
        registry.register(
            "connections_held",
            "Connections serving a client request (not a node route); at most the connection caps less coordinator.node_reserve_percent",
            m.connections_held.clone(),
        );
        registry.register(
            "schedule_firings",
            "Due times of schedules (and run-nows), by outcome: fired, skipped, failed",
            m.schedule_firings.clone(),
        );
        registry.register(
            "schedule_lateness_seconds",
            "From a schedule's due time (with its stagger) to its task's submission",
            m.schedule_lateness.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Adds the NATS transport's figures to the export (once, when it is configured).
    pub fn register_nats(&mut self) {
        let n = &self.nats;
        let r = &mut self.registry;
        r.register("nats_connected", "1 while the coordinator is connected to NATS", n.connected.clone());
        r.register("nats_nodes", "Nodes receiving their assignments over NATS", n.nodes.clone());
        r.register("nats_reconnects", "Reconnections to NATS after the first connection", n.reconnects.clone());
        r.register("nats_published", "Messages published to NATS, by kind", n.published.clone());
        r.register("nats_results", "Results taken from NATS, by outcome", n.results.clone());
        r.register("nats_publish_failures", "NATS publishes that failed, by kind", n.publish_failures.clone());
    }

    /// Sets the NATS gauges from the transport's state (at scrape time).
    pub fn observe_transport(&self, nats: &crate::model::NatsHealth) {
        self.nats.connected.set(i64::from(nats.state == crate::model::NatsState::Connected));
        self.nats.nodes.set(i64::from(nats.nodes));
    }

    /// Counts one NATS message of `kind` in `family`.
    pub fn nats_count(family: &Family<KindLabel, Counter>, kind: &str) {
        family.get_or_create(&KindLabel { kind: kind.into() }).inc();
    }

    /// The OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Records one HTTP request.
    pub fn observe_request(&self, route: &str, status: u16, seconds: f64) {
        self.requests.get_or_create(&RequestLabels { route: route.into(), status }).inc();
        self.request_duration.get_or_create(&RouteLabel { route: route.into() }).observe(seconds);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
