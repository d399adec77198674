//! The NATS transport's figures in the coordinator's `/metrics` (`openclaw_nats_*`),
//! registered when the transport starts: counters bumped where things happen, and the two
//! gauges (connected, nodes on NATS) computed from the relay's state at each scrape, so
//! they cannot drift.

use std::sync::{Arc, Weak};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use super::Relay;
use crate::coordinator::metrics::KindLabel;

/// The counters; cheap to clone (they share their values).
#[derive(Debug, Default, Clone)]
pub struct NatsMetrics {
    /// Connections made after the first (the client reconnects by itself).
    pub reconnects: Counter,
    /// Messages published, by kind: assignment, event.
    pub published: Family<KindLabel, Counter>,
    /// Results taken from the results stream, by outcome: recorded, refused, retried.
    pub results: Family<KindLabel, Counter>,
    /// Publishes that failed (left to HTTP, or retried), by kind.
    pub publish_failures: Family<KindLabel, Counter>,
}

impl NatsMetrics {
    /// Counts one message of `kind` in `family`.
    pub fn count(family: &Family<KindLabel, Counter>, kind: &str) {
        family.get_or_create(&KindLabel { kind: kind.into() }).inc();
    }

    /// Adds the counters, and the gauges read from `relay` at each scrape, to `registry`.
    pub fn register(&self, registry: &mut Registry, relay: &Arc<Relay>) {
        registry.register(
            "nats_reconnects",
            "Reconnections to NATS after the first connection",
            self.reconnects.clone(),
        );
        registry.register("nats_published", "Messages published to NATS, by kind", self.published.clone());
        registry.register("nats_results", "Results taken from NATS, by outcome", self.results.clone());
        registry.register(
            "nats_publish_failures",
            "NATS publishes that failed, by kind",
            self.publish_failures.clone(),
        );
        registry.register_collector(Box::new(Gauges(Arc::downgrade(relay))));
    }
}

/// `nats_connected` and `nats_nodes`, from the relay when scraped.
#[derive(Debug)]
struct Gauges(Weak<Relay>);

impl Collector for Gauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(relay) = self.0.upgrade() else { return Ok(()) };
        let (connected, nodes) = relay.gauges();
        for (name, help, value) in [
            ("nats_connected", "1 while the coordinator is connected to NATS", connected),
            ("nats_nodes", "Nodes receiving their assignments over NATS", nodes),
        ] {
            let gauge = ConstGauge::new(value);
            let metric = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
            gauge.encode(metric)?;
        }
        Ok(())
    }
}
