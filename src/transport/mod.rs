//! Transports besides HTTP between the coordinator and its workers: plug-ins into seams
//! that the roles own. Today: [`nats`] (JetStream), turned on by `communication.nats_url`.
//!
//! A transport implements the coordinator's `WorkerTransport`
//! (`crate::coordinator::cluster`) and the worker's `CoordinatorTransport`
//! (`crate::worker::transport`), defines its settings in the `communication` section
//! (`crate::config::Plugin`), and keeps its own metrics. Neither role, nor the config
//! loader, nor the wire model imports anything from here: the program wires the lists
//! below in (`crate::cmd`). Adding a transport is a module here and one line in each list.
//!
//! Invariant: a transport is a door, not a second state machine. The coordinator's side
//! reads what to deliver from [`crate::coordinator::cluster::Cluster`] (its committed event
//! bus and its views) and hands what it receives to the same `Cluster` methods the HTTP
//! handlers call; the worker's side hands assignments to the same attempts as the HTTP
//! poll.

pub mod nats;

use crate::{config, coordinator, worker};

/// Every transport's keys in `communication.*`, for the config loader.
pub const CONFIG: &[config::Plugin] = &[nats::config::PLUGIN];

/// Every transport's coordinator side; each starts when its config turns it on.
pub const COORDINATOR: &[coordinator::cluster::TransportPlug] = &[nats::coordinator::start];

/// Every transport's worker side; the first that its config turns on is used.
pub const WORKER: &[worker::transport::TransportPlug] = &[nats::worker::start];
