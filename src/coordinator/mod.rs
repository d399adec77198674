//! The coordinator: HTTP API, node registry, scheduler and store.
//!
//! [`Coordinator::start`] takes the store lock, opens the store, loads tokens and the state
//! (nodes, active tasks) and starts the background loops; [`Coordinator::serve`] answers
//! HTTP on a listener it is given until the shutdown token fires, then stops the loops,
//! flushes, closes the writer and releases the lock.

pub mod auth;
pub mod connections;
pub mod error;
pub mod handlers;
pub mod housekeeping;
pub mod http;
pub mod metrics;
pub mod queue;
pub mod registry;
pub mod router;
pub mod scheduler;
pub mod state;
pub mod tasks;
pub mod tls;

use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::store::{Store, StoreLock, Writer};
use state::{Now, Settings, State};

/// What every request handler and background loop shares.
pub struct Shared {
    /// The loaded configuration (read-only after start).
    pub config: Config,
    /// A std mutex, not tokio's: it is only ever held for short synchronous sections and
    /// never across an `.await` (see [`state`]).
    pub state: Mutex<State>,
    /// Reads (writes go through the state's writer, in memory order).
    pub store: Store,
    /// The admin and join tokens, for the auth check before dispatch.
    pub tokens: auth::Tokens,
    /// Shared with the state, which bumps counters where things happen.
    pub metrics: Arc<metrics::Metrics>,
    /// Fires on Ctrl+C / SIGTERM; long polls and waits return early on it.
    pub shutdown: CancellationToken,
}

impl Shared {
    /// The state, even if a panicking thread poisoned the lock (release builds abort on
    /// panic, so this only matters in tests).
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A started coordinator, ready to serve.
pub struct Coordinator {
    pub shared: Arc<Shared>,
    writer: Writer,
    writer_task: JoinHandle<()>,
    loops: Vec<JoinHandle<()>>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    _lock: StoreLock,
}

impl Coordinator {
    /// Locks and opens the store, loads the state, starts the background loops.
    pub async fn start(config: Config, shutdown: CancellationToken) -> anyhow::Result<Coordinator> {
        let path = config.storage.path.clone();
        crate::store::prepare_dir(&path).map_err(|e| match &e {
            crate::store::StoreError::Io { path, source } => {
                crate::store::probe::from_io(path, source).map_or_else(|| e.into(), anyhow::Error::new)
            }
            _ => anyhow::Error::new(e),
        })?;
        // Before anything answers: a coordinator that cannot write stops here (exit 3).
        crate::store::probe::check_files(&path)?;
        let lock = StoreLock::acquire(&path)?;
        let store = tokio::task::spawn_blocking({
            let path = path.clone();
            move || {
                Store::open(&path).map_err(|e| match e {
                    // These do not name the file themselves.
                    crate::store::StoreError::Sqlite(_)
                    | crate::store::StoreError::Pool(_)
                    | crate::store::StoreError::Migration(_) => {
                        anyhow::anyhow!("cannot open store at {}: {e}", path.display())
                    }
                    named => named.into(),
                })
            }
        })
        .await??;
        tokio::task::spawn_blocking({
            let path = path.clone();
            move || crate::store::probe::check_database(&path)
        })
        .await??;
        let tokens = auth::Tokens::load_or_create(&config)?;
        let tls = match (&config.coordinator.tls_cert, &config.coordinator.tls_key) {
            (Some(cert), Some(key)) => Some(tls::acceptor(cert, key)?),
            _ => None,
        };
        if !config.auth.enabled {
            let loopback = config.coordinator.host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
                || config.coordinator.host == "localhost";
            if !loopback {
                tracing::warn!(target: "openclaw::coordinator", host = %config.coordinator.host, "auth.enabled is false on a non-loopback address: anyone who can reach this port controls the cluster");
            }
        }
        if config.communication.nats_url.is_some() {
            tracing::debug!(target: "openclaw::coordinator", "communication.nats_url is accepted but unused: this version dispatches over HTTP");
        }
        let (writer, writer_task) = store.start_writer()?;
        let metrics = Arc::new(metrics::Metrics::new());
        let mut state = State::new(Settings::from_config(&config), writer.clone(), metrics.clone());
        let (nodes, tasks, keys, max_seq) = store
            .read(|c| {
                Ok((
                    crate::store::nodes::load_all(c)?,
                    crate::store::tasks::load_active(c)?,
                    crate::store::tasks::idempotency_keys(c)?,
                    crate::store::tasks::max_seq(c)?,
                ))
            })
            .await
            .context("cannot load the cluster state from the store")?;
        let now = Now::get();
        let (n_nodes, n_tasks) = (nodes.len(), tasks.len());
        for node in nodes {
            state.restore_node(node, now);
        }
        for task in tasks {
            state.restore_task(task, now);
        }
        state.idempotency.extend(keys);
        state.next_seq = state.next_seq.max(max_seq + 1);
        tracing::info!(target: "openclaw::coordinator", nodes = n_nodes, active_tasks = n_tasks, db = %path.display(), "store opened; known nodes are offline until they heartbeat");

        let shared =
            Arc::new(Shared { config, state: Mutex::new(state), store, tokens, metrics, shutdown: shutdown.clone() });
        let loops = vec![
            tokio::spawn(housekeeping::timer_loop(shared.clone(), shutdown.clone())),
            tokio::spawn(housekeeping::sweep_loop(shared.clone(), shutdown.clone())),
            tokio::spawn(housekeeping::retention_loop(shared.clone(), shutdown.clone())),
        ];
        Ok(Coordinator { shared, writer, writer_task, loops, tls, _lock: lock })
    }

    /// Serves HTTP on `listener` until the shutdown token fires, then winds down: in-flight
    /// requests finish (bounded), loops stop, batched state is flushed, the writer drains,
    /// and the lock is released.
    pub async fn serve(self, listener: TcpListener) -> anyhow::Result<()> {
        let address = listener.local_addr()?;
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        tracing::info!(target: "openclaw::coordinator", address = %address, "coordinator ready on {scheme}://{address}");
        http::serve(listener, self.shared.clone(), self.tls.clone(), self.shared.shutdown.clone()).await;
        self.stop().await
    }

    /// Stops the loops, flushes and closes the store.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shared.shutdown.cancel();
        for handle in self.loops {
            let _ = handle.await;
        }
        housekeeping::flush_liveness(&self.shared);
        let done = self.shared.lock().barrier();
        let flushed = done.committed().await;
        self.writer.close();
        let _ = self.writer_task.await;
        flushed.context("final flush to the store failed")?;
        tracing::info!(target: "openclaw::coordinator", "coordinator stopped");
        Ok(())
    }
}

/// Binds `host:port`; a busy port is an error naming the address.
pub async fn bind(host: &str, port: u16) -> anyhow::Result<TcpListener> {
    let address = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    TcpListener::bind(&address).await.with_context(|| {
        format!("cannot listen on {address} (is another coordinator or program using that port? choose another with --port or coordinator.port)")
    })
}

/// Runs a coordinator on `listener` until `shutdown` fires.
pub async fn run(listener: TcpListener, config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    Coordinator::start(config, shutdown).await?.serve(listener).await
}
