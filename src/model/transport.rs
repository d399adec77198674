//! How work travels between the coordinator and a worker (HTTP long poll or NATS), and the
//! NATS transport's health as the cluster reports it.

use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use super::Timestamp;

string_enum! {
    /// How work travels between the coordinator and a worker.
    Transport {
        /// The worker long-polls `POST /api/v1/nodes/{id}/tasks/poll` and reports results
        /// over HTTP.
        Http = "http",
        /// Assignments and results travel through NATS JetStream (starts, heartbeats and
        /// registration stay on HTTP).
        Nats = "nats",
    }
}

impl<'de> Deserialize<'de> for Transport {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

string_enum! {
    /// The coordinator's connection to NATS.
    NatsState {
        /// Not connected yet: the first connection attempt failed or is under way.
        Connecting = "connecting",
        /// Connected; work goes over NATS once the streams are set up.
        Connected = "connected",
        /// Was connected and lost it; the client reconnects in the background.
        Disconnected = "disconnected",
    }
}

impl<'de> Deserialize<'de> for NatsState {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// The NATS transport as `GET /api/v1/cluster/health` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NatsHealth {
    pub state: NatsState,
    /// The configured server URL(s), without credentials.
    pub url: String,
    /// Since when `state` holds.
    pub since: Timestamp,
    /// The server's version, once connected.
    pub server_version: Option<String>,
    /// The server runs JetStream (`-js`); without it only the event feed uses NATS.
    pub jetstream: bool,
    /// The streams and the coordinator's consumer are set up on the server.
    pub streams_ready: bool,
    /// Nodes that receive their assignments over NATS now.
    pub nodes: u32,
    /// The id of the last event published on the event subjects.
    pub last_event_id: u64,
    /// The last connection or setup error, if any.
    pub last_error: Option<String>,
}
