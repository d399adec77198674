//! Transports besides HTTP between the coordinator and its workers. Today: [`nats`]
//! (JetStream), enabled by `communication.nats_url`.
//!
//! Invariant: a transport is a door, not a second state machine. The coordinator's side
//! reads what to deliver from [`crate::coordinator::cluster::Cluster`] (its committed event
//! bus and its views) and hands what it receives to the same `Cluster` methods the HTTP
//! handlers call; the worker's side feeds the same dispatch code as the HTTP poll. Nothing
//! outside this module knows a NATS detail beyond the hooks it is given.

pub mod nats;
