//! Prometheus metrics (OpenMetrics text at `GET /metrics`).
//!
//! Counters are bumped where things happen; gauges (nodes by status, capacity, active
//! tasks) are computed from the state when scraped, so they cannot drift. A plug-in (a
//! transport) registers its own figures with [`Metrics::register`] when it starts.

use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::util::lock;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// A route table name (`Route::name`): static, so counting a request allocates nothing.
    pub route: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

/// Every metric the coordinator exports.
pub struct Metrics {
    /// A std mutex: taken to register a plug-in's figures (once, at start) and to encode
    /// (at a scrape); metrics themselves are updated without it.
    registry: Mutex<Registry>,
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
    /// Skill names whose nodes have different content.
    pub skills_drifted: Gauge,
    /// Schedule firings by outcome: fired, skipped, failed.
    pub schedule_firings: Family<KindLabel, Counter>,
    /// How late a firing submitted its task: from its due time (with the stagger) to the
    /// submission.
    pub schedule_lateness: Histogram,
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
            skills_drifted: Gauge::default(),
            schedule_firings: Family::default(),
            schedule_lateness: duration_histogram(),
            registry: Mutex::new(Registry::default()),
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
            "skills_drifted",
            "Skill names whose nodes have different content (digests); GET /api/v1/skills names them",
            m.skills_drifted.clone(),
        );
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
        Metrics { registry: Mutex::new(registry), ..m }
    }

    /// Adds a plug-in's figures to the export (under the `openclaw_` prefix).
    pub fn register(&self, add: impl FnOnce(&mut Registry)) {
        add(&mut lock(&self.registry));
    }

    /// The OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &lock(&self.registry));
        out
    }

    /// Records one HTTP request.
    pub fn observe_request(&self, route: &'static str, status: u16, seconds: f64) {
        self.requests.get_or_create(&RequestLabels { route, status }).inc();
        self.request_duration.get_or_create(&RouteLabel { route }).observe(seconds);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
