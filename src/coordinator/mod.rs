//! The coordinator: HTTP API, node registry, scheduler and store.
//!
//! Layers, each using only the one below: the HTTP server ([`http`], [`handlers`],
//! [`auth`], [`error`]; [`mcp`] for `/mcp`) → [`cluster::Cluster`], the one door into the
//! state → the state machine ([`core`]) and the store, through the seam the coordinator
//! owns ([`store`]; the stores themselves are `crate::store`).
//!
//! On a store several coordinators share (PostgreSQL), [`run`] first claims the leader
//! lease ([`leader`]), answering as a standby ([`standby`]) on its listener until it wins;
//! the rest is the same for every store and every coordinator, first start or takeover.
//! [`Coordinator::start`] opens the configured store (for SQLite: the lock first), loads
//! tokens, the state (nodes, active tasks) and the cluster secrets with their key
//! ([`secrets`]) and starts the background loops and the
//! transports it is given (doors to workers besides HTTP, [`cluster::TransportPlug`];
//! `crate::transport` has them); [`Coordinator::serve`] answers HTTP on a listener it is
//! given until the shutdown token fires, then stops the loops, flushes, closes the writer
//! and releases the lock. A store write that fails, or a lease the leader could not keep,
//! stops the coordinator through the same path, and `serve` returns the error (exit code 1).

pub mod auth;
pub mod cluster;
pub mod connections;
pub mod core;
pub mod dashboard;
pub mod error;
pub mod feeds;
pub mod handlers;
pub mod housekeeping;
pub mod http;
pub mod leader;
pub mod mcp;
pub mod metrics;
pub mod secrets;
pub mod skill_pushes;
pub mod sse;
pub mod standby;
pub mod store;
pub mod stream_limits;
pub mod tls;

use std::sync::{Arc, Mutex};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use self::core::{Core, Now, Settings};
use self::store::Writer;
use crate::config::Config;
use cluster::{Cluster, TransportPlug};

/// A started coordinator, ready to serve.
pub struct Coordinator {
    pub cluster: Arc<Cluster>,
    writer: Writer,
    writer_task: JoinHandle<()>,
    loops: Vec<JoinHandle<()>>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    /// Why the coordinator stopped by itself (a failed write, the lease lost).
    failure: Arc<Mutex<Option<Failure>>>,
    /// What the store needs held while it is used (the SQLite file's lock), released when
    /// the coordinator stops, after its last write.
    _guard: Box<dyn std::any::Any + Send + Sync>,
    /// The lease held on a store several coordinators could share, given up at the end.
    leadership: Option<(Arc<dyn store::Store>, leader::Leadership)>,
}

/// Why a coordinator stopped by itself.
enum Failure {
    /// A write to the store failed.
    Write(String),
    /// The leader lease was lost or could not be renewed in time: the leader steps down.
    Lease(String),
}

/// The store opened and the tokens loaded: what a coordinator needs before it may lead.
struct Opened {
    config: Config,
    store: Arc<dyn store::Store>,
    guard: Box<dyn std::any::Any + Send + Sync>,
    tokens: auth::Tokens,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Opened {
    async fn open(config: Config) -> anyhow::Result<Opened> {
        check_auth_off(&config)?;
        // Before anything answers: a coordinator that cannot write stops here (exit 3).
        let crate::store::Opened { store, guard } = tokio::task::spawn_blocking({
            let storage = config.storage.clone();
            move || crate::store::open(&storage)
        })
        .await??;
        let tokens = auth::Tokens::load_or_create(&config)?;
        let tls = match (&config.coordinator.tls_cert, &config.coordinator.tls_key) {
            (Some(cert), Some(key)) => Some(tls::acceptor(cert, key)?),
            _ => None,
        };
        Ok(Opened { config, store, guard, tokens, tls })
    }

    /// Claims the lease of a shared store (standing by on `listener` meanwhile, when given),
    /// then starts leading; None when `shutdown` fired first.
    async fn claim_and_start(
        self,
        listener: Option<&TcpListener>,
        shutdown: CancellationToken,
        transports: &[TransportPlug],
    ) -> anyhow::Result<Option<Coordinator>> {
        let bound = listener.map(TcpListener::local_addr).transpose()?;
        let url = leader::advertise_url(&self.config, bound);
        let leadership = match leader::claim(&self.store, &self.config, url, listener, &shutdown).await? {
            leader::Lead::Stopped => return Ok(None),
            leader::Lead::Alone => None,
            leader::Lead::Leader(lead) => Some(lead),
        };
        self.start(leadership, shutdown, transports).await.map(Some)
    }

    /// Starts leading: the writer (fenced at the lease's epoch), the state loaded from the
    /// store, the background loops and the transports. The doors open after this.
    async fn start(
        self,
        leadership: Option<leader::Leadership>,
        shutdown: CancellationToken,
        transports: &[TransportPlug],
    ) -> anyhow::Result<Coordinator> {
        let Opened { config, store, guard, tokens, tls } = self;
        let location = store.location();
        let failure = Arc::new(Mutex::new(None));
        let session = tokio::task::spawn_blocking({
            let store = store.clone();
            let epoch = leadership.as_ref().map(|l| l.epoch);
            move || store.write_session(epoch)
        })
        .await?
        .map_err(|e| anyhow::anyhow!("cannot open the store at {location} for writing: {e}"))?;
        let stop_because = |wrap: fn(String) -> Failure| {
            let failure = failure.clone();
            let shutdown = shutdown.clone();
            move |message: String| {
                let mut slot = crate::util::lock(&failure);
                if slot.is_none() {
                    *slot = Some(wrap(message));
                }
                shutdown.cancel();
            }
        };
        let (writer, writer_task) = Writer::start(session, stop_because(Failure::Write));
        // The lease is renewed from now on: loading a large store may take longer than it.
        let renewing = leadership.as_ref().map(|lead| {
            let times = leader::LeaseTimes::from_config(&config);
            tokio::spawn(leader::renew_loop(
                store.clone(),
                lead.clone(),
                times,
                shutdown.clone(),
                stop_because(Failure::Lease),
            ))
        });
        let metrics = Arc::new(metrics::Metrics::new());
        let snapshot = store::blocking(&store, |s| s.snapshot())
            .await
            .map_err(|e| anyhow::anyhow!("cannot load the cluster state from the store at {location}: {e}"))?;
        let (n_nodes, n_tasks) = (snapshot.nodes.len(), snapshot.tasks.len());
        let core = Core::restore(Settings::from_config(&config), metrics.clone(), snapshot, Now::get());
        tracing::info!(target: "openclaw::coordinator", nodes = n_nodes, active_tasks = n_tasks, db = %location, "store opened; known nodes are offline until they heartbeat");

        let secret_rows = store::blocking(&store, |s| s.secrets())
            .await
            .map_err(|e| anyhow::anyhow!("cannot load the cluster secrets from the store at {location}: {e}"))?;
        let secret_key = secrets::load_key(&config, &secret_rows)?;
        let cluster = Arc::new(
            Cluster::new(config, core, store.clone(), writer.clone(), tokens, metrics, shutdown.clone())
                .with_secrets(secret_key, secret_rows),
        );
        // Tasks whose node is gone were requeued while loading: write that down.
        cluster.internal(|_, _| ());
        let mut loops = vec![
            tokio::spawn(housekeeping::timer_loop(cluster.clone(), shutdown.clone())),
            tokio::spawn(housekeeping::sweep_loop(cluster.clone(), shutdown.clone())),
            tokio::spawn(housekeeping::retention_loop(cluster.clone(), shutdown.clone())),
        ];
        if let Some(lead) = &leadership {
            cluster.set_leader(lead.info());
        }
        loops.extend(renewing);
        // The other doors for workers (and their event feeds) that the config turns on.
        loops.extend(transports.iter().filter_map(|start| start(&cluster, shutdown.clone())));
        let leadership = leadership.map(|lead| (store.clone(), lead));
        Ok(Coordinator { cluster, writer, writer_task, loops, tls, failure, _guard: guard, leadership })
    }
}

impl Coordinator {
    /// Opens the store, loads the state, starts the background loops and the transports
    /// that the config turns on. On a shared store it first waits for the leader lease,
    /// answering nothing meanwhile ([`run`] answers as a standby).
    pub async fn start(
        config: Config,
        shutdown: CancellationToken,
        transports: &[TransportPlug],
    ) -> anyhow::Result<Coordinator> {
        Opened::open(config)
            .await?
            .claim_and_start(None, shutdown, transports)
            .await?
            .ok_or_else(|| anyhow::anyhow!("stopped while waiting for the leader lease"))
    }

    /// Serves HTTP on `listener` until the shutdown token fires, then winds down: in-flight
    /// requests finish (bounded), loops stop, batched state is flushed, the writer drains,
    /// and the lock is released.
    pub async fn serve(self, listener: TcpListener) -> anyhow::Result<()> {
        let address = listener.local_addr()?;
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        record_address(self.cluster.config(), &format!("{scheme}://{address}"));
        tracing::info!(target: "openclaw::coordinator", address = %address, "coordinator ready on {scheme}://{address}");
        let mcp = Arc::new(mcp::Door::new(self.cluster.clone()));
        http::serve(listener, self.cluster.clone(), mcp, self.tls.clone(), self.cluster.shutdown().clone()).await;
        self.stop().await
    }

    /// Stops the loops, flushes and closes the store.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.cluster.shutdown().cancel();
        let wind_down = async {
            for handle in self.loops {
                let _ = handle.await;
            }
            housekeeping::flush_liveness(&self.cluster);
            let flushed = self.cluster.settled().await;
            self.writer.close();
            let _ = self.writer_task.await;
            flushed
        };
        // A leader that lost its lease may be cut off from the database, where a loop or
        // the writer can wait on a query for long: it has nothing to finish (whatever it
        // still writes is fenced off), so it waits a bounded time and exits.
        let lease_lost = matches!(*crate::util::lock(&self.failure), Some(Failure::Lease(_)));
        let flushed = if lease_lost {
            let limit = self.cluster.config().coordinator.shutdown_timeout.get();
            tokio::time::timeout(limit, wind_down).await.unwrap_or(Ok(()))
        } else {
            wind_down.await
        };
        let failure = crate::util::lock(&self.failure).take();
        if let (Some((store, lead)), None) = (&self.leadership, &failure) {
            leader::release(store, lead).await;
        }
        match failure {
            Some(Failure::Write(message)) => anyhow::bail!(
                "stopped: a write to the database at {} failed ({message}); nothing unwritten was acknowledged — fix the cause (disk full? read-only?) and start again",
                self.cluster.store_location()
            ),
            Some(Failure::Lease(message)) => anyhow::bail!("stopped leading: {message}"),
            None => {}
        }
        flushed.map_err(|e| anyhow::anyhow!("final flush to the store failed: {e}"))?;
        tracing::info!(target: "openclaw::coordinator", "coordinator stopped");
        Ok(())
    }
}

/// With auth off, the coordinator listens on loopback only, unless
/// `auth.insecure_listen_without_auth` says otherwise (a WARN at every start then).
fn check_auth_off(config: &Config) -> Result<(), crate::UsageError> {
    let host = config.coordinator.host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback()) || host == "localhost";
    if config.auth.enabled || loopback {
        return Ok(());
    }
    if !config.auth.insecure_listen_without_auth {
        return Err(crate::UsageError(format!(
            "auth.enabled is false and coordinator.host is {host}, not a loopback address: anyone who can reach the port would control the cluster. Listen on 127.0.0.1 (coordinator.host or --host), or turn auth on; if only this machine can reach the port (a container port published on 127.0.0.1), set auth.insecure_listen_without_auth: true"
        )));
    }
    tracing::warn!(target: "openclaw::coordinator", host = %host, "INSECURE: auth.enabled is false and the coordinator listens on {host} (auth.insecure_listen_without_auth): make sure only this machine can reach the port; requests must still name localhost, 127.0.0.1 or [::1] as their Host");
    Ok(())
}

/// Writes the address the coordinator listens on beside the token files, so that a CLI that
/// finds a token there sends it to this coordinator only (see [`crate::tokens`]).
fn record_address(config: &Config, url: &str) {
    let dir = config.data_dir();
    if let Err(e) = crate::tokens::write_address_file(&dir, url) {
        let path = dir.join(crate::tokens::ADDRESS_FILE);
        // A stale address would send the token to whoever listens there now.
        let _ = std::fs::remove_file(&path);
        tracing::warn!(target: "openclaw::coordinator", path = %path.display(), error = %e, "cannot record the address beside the token files: CLI commands on this machine will not send the token files' tokens until it can (pass --token)");
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

/// Runs a coordinator on `listener` until `shutdown` fires, with the `transports` the
/// config turns on.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: CancellationToken,
    transports: &[TransportPlug],
) -> anyhow::Result<()> {
    let opened = Opened::open(config).await?;
    match opened.claim_and_start(Some(&listener), shutdown, transports).await? {
        Some(coordinator) => coordinator.serve(listener).await,
        None => {
            tracing::info!(target: "openclaw::coordinator", "standby coordinator stopped");
            Ok(())
        }
    }
}
