//! openclaw: run OpenClaw on several machines as one cluster.
//!
//! Layout:
//! - [`api`]: the route table, once for the server, the client, the CLI and the docs, and the
//!   links between its routes.
//! - [`cli`]: clap definitions of every subcommand and flag (parsing only, no side effects).
//! - [`cmd`]: one module per subcommand; the glue between parsed flags and the library.
//! - [`config`]: the `Config` tree and its figment loader (defaults < YAML < env < flags).
//! - [`config_reference`]: the configuration reference (docs/configuration.md), rendered from
//!   the config types' doc comments.
//! - [`logging`]: tracing setup (JSON lines or text, stdout and optional rolling files).
//! - [`manpages`]: the man pages, rendered from the CLI definitions.
//! - [`mcp`]: the cluster as an MCP server: the tools, written once over a backend (the
//!   coordinator's state in process, or the HTTP client).
//! - [`model`]: the serde types on the wire, shared by coordinator, worker and CLI, with the
//!   limits a request may not break (each once, for the server's checks and the document).
//! - [`openapi`]: the OpenAPI 3.1 document, built from the route table and the model's schemas
//!   (and nothing of the server's).
//! - [`store`]: the stores behind the coordinator's store seam, chosen by `storage.type`:
//!   SQLite (reads, the writer's transactions, migrations, the file lock).
//! - [`coordinator`]: the server: router, auth, registry, scheduler, the store seam and its
//!   group-commit writer, metrics, the web dashboard.
//! - [`worker`]: the node agent: join, heartbeat, skill discovery, runners.
//! - [`client`]: the typed HTTP client used by the worker and the CLI clients.
//! - [`eventsource`]: reading Server-Sent Events (the event stream, followed output).
//! - [`transport`]: doors besides HTTP (NATS JetStream): plug-ins into seams the coordinator,
//!   the worker and the config loader own (one line each in `transport/mod.rs`).
//! - [`shutdown`]: Ctrl+C / SIGTERM turned into one cancellation token.
//! - [`tokens`]: the token files beside the database, read by every role.
//! - [`util`]: small shared helpers (time, ids, secrets).

pub mod api;
pub mod cli;
pub mod client;
pub mod cmd;
pub mod config;
pub mod config_reference;
pub mod coordinator;
pub mod eventsource;
pub mod logging;
pub mod manpages;
pub mod mcp;
pub mod model;
pub mod openapi;
pub mod shutdown;
pub mod store;
pub mod tokens;
pub mod transport;
pub mod util;
pub mod worker;

/// How the process ends: `main` maps this onto the exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Success (0).
    Ok,
    /// A negative answer: unhealthy, not found, failed task, unreachable (1).
    Negative,
    /// Bad usage or configuration (2).
    Usage,
    /// The coordinator cannot write its database or the folder holding it: read-only,
    /// not permitted, or the disk is full (3). Restarting cannot help until that is fixed.
    NotWritable,
    /// A wait ran out of time with the task still pending or running (4).
    StillRunning,
}

impl Exit {
    /// The exit status for an error that reached `main`: [`UsageError`] means 2,
    /// [`store::NotWritable`] 3, anything else 1.
    pub fn of(err: &anyhow::Error) -> Exit {
        if err.chain().any(|e| e.downcast_ref::<cmd::output::ClosedStdout>().is_some()) {
            Exit::Ok
        } else if err.chain().any(|e| e.downcast_ref::<store::NotWritable>().is_some()) {
            Exit::NotWritable
        } else if err.chain().any(|e| e.downcast_ref::<UsageError>().is_some()) {
            Exit::Usage
        } else {
            Exit::Negative
        }
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> Self {
        std::process::ExitCode::from(match exit {
            Exit::Ok => 0,
            Exit::Negative => 1,
            Exit::Usage => 2,
            Exit::NotWritable => 3,
            Exit::StillRunning => 4,
        })
    }
}

/// An error in what the user asked for (a flag, a config key, an argument): exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// A fatal error that was already logged where it happened (servers log fatal errors once).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Logged(pub String);

/// Shorthand for returning a [`UsageError`] wrapped in `anyhow`.
pub fn usage_error(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(message.into()))
}
