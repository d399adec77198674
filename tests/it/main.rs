//! The integration tests: one binary, one module per topic. They start the real
//! `openclaw` executable on free loopback ports, with real SQLite files in temp dirs.

mod support;

mod cli;
mod docs;
mod fuzz;
mod hostile;
mod nodes;
mod operator;
mod stand_in_gateway;
mod store;
mod tasks;
mod worker;
