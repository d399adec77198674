//! Cluster-wide answers: cluster health, liveness checks, the service's own health and
//! who a token belongs to.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use super::{NatsHealth, Timestamp, Transport};

/// `GET /api/v1/cluster/health`: the seed's fields, the original's, and task counts.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ClusterHealth {
    /// True when at least one node is online and the store answers.
    pub healthy: bool,
    pub total_nodes: u32,
    pub online_nodes: u32,
    pub total_capacity: u32,
    pub available_capacity: u32,
    pub timestamp: Timestamp,
    pub checked_at: Timestamp,
    pub nodes_by_status: BTreeMap<String, u32>,
    pub offline_nodes: u32,
    pub busy_nodes: u32,
    pub timeout_nodes_count: u32,
    pub used_capacity: u32,
    /// Percent of total capacity in use.
    pub capacity_utilization: f64,
    pub tasks_by_status: BTreeMap<String, u64>,
    /// How work travels: `nats` while the NATS transport is connected and set up, else
    /// `http`.
    #[serde(default = "default_transport")]
    pub transport: Transport,
    /// The NATS transport's state; absent when `communication.nats_url` is not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nats: Option<NatsHealth>,
}

fn default_transport() -> Transport {
    Transport::Http
}

/// `POST /api/v1/cluster/check-heartbeat` (the original's shape).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CheckHeartbeatResponse {
    pub checked_at: Timestamp,
    pub timeout_nodes_count: u32,
    pub timeout_nodes: Vec<TimedOutNode>,
    pub all_nodes_healthy: bool,
}

/// A node found past its deadline by a liveness check.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TimedOutNode {
    pub node_id: String,
    pub hostname: String,
    pub last_heartbeat: Option<Timestamp>,
    pub timeout_seconds: f64,
}

/// `GET /health`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ServiceHealth {
    pub status: String,
    pub timestamp: Timestamp,
    pub service: String,
    pub version: String,
    /// `leader`: this coordinator serves the API (a load balancer routes here); `standby`:
    /// it waits to take over a shared store's lease and answers other requests with `503
    /// not_leader`. A coordinator on SQLite is always the leader.
    #[serde(default = "CoordinatorRole::leader")]
    pub role: CoordinatorRole,
    /// Who leads a shared store (PostgreSQL), as far as this coordinator knows: itself when
    /// it leads; none while nobody does (a standby about to take over).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<LeaderInfo>,
}

string_enum! {
    /// What a coordinator is doing (`GET /health`'s `role`).
    CoordinatorRole {
        /// It serves the API.
        Leader = "leader",
        /// It waits to take over; the API answers `503 not_leader`.
        Standby = "standby",
    }
}

impl CoordinatorRole {
    fn leader() -> CoordinatorRole {
        CoordinatorRole::Leader
    }
}

impl<'de> Deserialize<'de> for CoordinatorRole {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// The leader of a shared store: the lease's holder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LeaderInfo {
    /// Its `coordinator.id`.
    pub id: String,
    /// Its `coordinator.advertise_url`.
    pub url: String,
    /// The lease's fencing epoch: it grows by one at every change of leader.
    pub epoch: u64,
}

string_enum! {
    /// The kind of token a request carries, as far as the dashboard cares.
    Role {
        /// Everything.
        Admin = "admin",
        /// Read the cluster, submit and cancel tasks.
        Tasks = "tasks",
    }
}

impl<'de> Deserialize<'de> for Role {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// `GET /api/v1/whoami`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Whoami {
    pub role: Role,
}
