//! The integration tests: one binary, one module per topic. They start the real
//! `openclaw` executable on free loopback ports, with real SQLite files in temp dirs.

mod real_openclaw;
mod stub_model;
mod support;

mod cli;
mod contract;
mod crowding;
mod dashboard;
mod docs;
mod events;
mod failover;
mod fuzz;
mod grafana;
mod hostile;
mod mcp;
mod nats;
mod nats_server;
mod nodes;
mod openapi;
mod openclaw_gateway;
mod openclaw_mcp;
mod openclaw_skills;
mod operator;
mod output;
mod postgres;
mod postgres_server;
mod reports;
mod schedules;
mod secrets;
mod security;
mod skill_push;
mod skills;
mod store;
mod tasks;
mod worker;
mod workflows;
