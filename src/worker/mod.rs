//! The worker: joins the coordinator, advertises the skills this machine really has, runs
//! the tasks it is given and reports how they ended.
//!
//! Split by its loops, each part the one owner of its state:
//! - [`session`]: registration and the heartbeat loop; owns the node secret (kept across
//!   restarts by [`identity`], which also makes this the only worker with its node id on
//!   this machine) and the link state ("is the coordinator answering").
//! - [`attempts`]: the poll loop and one task per attempt (start report, run, result
//!   delivery retried until the coordinator has it); owns the held attempts. Its start
//!   reports and results go through [`reports`], which batches them (one request and one
//!   commit for all that wait) and falls back to one request each for older coordinators.
//! - [`adverts`]: what this node advertises — the skills scan, rescanned every
//!   `skills_rescan_interval`, and the local OpenClaw gateway's availability, probed every
//!   `gateway_check_interval` while there are agent skills.
//! - [`runner`]: one file per kind of skill, with its availability check: exec (a skill's
//!   command as a process tree, under [`supervisor`]) and agent (one turn of the local
//!   OpenClaw agent through [`gateway`]); [`live_output`] streams what an attempt prints.
//! - [`transport`]: the seam a transport besides HTTP plugs into (NATS, in
//!   `crate::transport`): the worker never names one.
//! - [`skill_pushes`]: the skills the cluster's admin pushed to this node, installed into
//!   the managed skills folder (when `worker.accept_skill_pushes` says so) and reported.
//! - [`skills`] reads skills as OpenClaw's loader does (and OpenClaw's own, from its CLI's
//!   listing); [`openclaw`] is the local OpenClaw installation (its paths, its config, its
//!   CLI).
//!
//! The coordinator being away is never fatal: every part retries with backoff and jitter.
//! A refusal that retrying cannot fix (bad join token, an id owned by another worker) is
//! fatal: [`Context::fail`] stops taking tasks and `run` returns the message (exit 1).
//!
//! Shutdown: stop taking tasks, keep heartbeating while running ones finish (up to
//! `worker.shutdown_timeout`), kill what is left, tell the coordinator the node leaves.
//! What only decides what the node advertises (the skills scan with OpenClaw's listing,
//! the gateway probe) is dropped at once, never awaited: it ends with `stop_taking`.

pub mod adverts;
pub mod attempts;
pub mod gateway;
pub mod identity;
pub mod live_output;
pub mod openclaw;
pub mod reports;
pub mod runner;
pub mod session;
pub mod skill_pushes;
pub mod skills;
pub mod supervisor;
pub mod system;
pub mod transport;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::client::Client;
use crate::config::Config;
use crate::util::lock;

/// Who this worker is and how it stops: shared read-only by every part.
pub struct Context {
    pub config: Config,
    pub node_id: String,
    /// Cancelled on Ctrl+C / SIGTERM, or by a fatal refusal: take no new tasks.
    pub stop_taking: CancellationToken,
    /// Cancelled when the shutdown deadline passes: kill running tasks.
    pub kill_all: CancellationToken,
    /// Cancelled last: stop heartbeating and delivering results.
    pub leave: CancellationToken,
    /// Why the worker must stop, when the coordinator refused it for good. A std mutex:
    /// set once, read at exit.
    fatal: Mutex<Option<String>>,
}

impl Context {
    /// A refusal retrying cannot fix: log it, stop taking tasks, exit 1 with the message.
    pub fn fail(&self, message: String) {
        tracing::error!(target: "openclaw::worker", "{message}");
        *lock(&self.fatal) = Some(message);
        self.stop_taking.cancel();
    }

    pub fn failed(&self) -> bool {
        lock(&self.fatal).is_some()
    }
}

/// Runs a worker until `shutdown` fires (or the coordinator refuses it for good), with the
/// first of `transports` that the config turns on.
pub async fn run(
    mut config: Config,
    join_token: Option<String>,
    shutdown: CancellationToken,
    transports: &[transport::TransportPlug],
) -> anyhow::Result<()> {
    let node_id =
        config.worker.node_id.clone().unwrap_or_else(|| crate::model::node_id_from_hostname(&system::hostname()));
    let identity = identity::Identity::claim(&config.worker_state_dir(), &node_id)?;
    let (installer, ours) = skill_pushes::Installer::new(&config, &node_id);
    if ours && (config.worker.accept_skill_pushes || installer.managed().is_dir()) {
        // Pushed skills live in a folder of ours: scanned as one more skills dir.
        if let Err(e) = std::fs::create_dir_all(installer.managed()) {
            anyhow::bail!("cannot create {} for pushed skills (worker.state_dir): {e}", installer.managed().display());
        }
        config.worker.skills_dir.0.push(installer.managed().to_path_buf());
    }
    let installer = Arc::new(installer);
    let urls = config.coordinator_urls_for_clients();
    let join = Client::for_coordinators(&urls, join_token, config.worker.ca_file.as_deref())?;
    let gateway = gateway::Gateway::from_config(&config);
    let ctx = Arc::new(Context {
        config,
        node_id,
        stop_taking: shutdown.clone(),
        kill_all: CancellationToken::new(),
        leave: CancellationToken::new(),
        fatal: Mutex::new(None),
    });
    tracing::info!(target: "openclaw::worker", node_id = %ctx.node_id, coordinators = %urls.join(", "), "worker starting");
    let adverts = Arc::new(adverts::Adverts::new(&ctx.config, gateway.clone()));
    let session = Arc::new(session::Session::new(ctx.clone(), join, identity));
    let transport = transports
        .iter()
        .find_map(|start| start(&ctx.config, &ctx.node_id))
        .unwrap_or_else(|| Arc::new(transport::HttpOnly));
    let runners = runner::Runners::new(gateway, adverts.clone());
    let attempts =
        Arc::new(attempts::Attempts::new(ctx.clone(), session.clone(), adverts.clone(), runners, transport.clone()));
    // The first scan can take seconds (OpenClaw's listing): a Ctrl+C meanwhile ends it.
    tokio::select! {
        _ = adverts.refresh(true) => adverts.log_summary(),
        _ = shutdown.cancelled() => {}
    }

    let mut loops = vec![
        tokio::spawn(session::heartbeat_loop(
            session.clone(),
            attempts.clone(),
            adverts.clone(),
            transport.clone(),
            installer.clone(),
        )),
        tokio::spawn(skill_pushes::installer_loop(installer.clone(), session.clone(), adverts.clone(), ctx.clone())),
        tokio::spawn(attempts::poll_loop(attempts.clone())),
        tokio::spawn(adverts::skills_loop(adverts.clone(), ctx.clone())),
        tokio::spawn(adverts::gateway_loop(adverts.clone(), ctx.clone())),
    ];
    let handle = transport::Handle { ctx: ctx.clone(), attempts: attempts.clone(), session: session.clone() };
    loops.push(tokio::spawn(transport.run(handle)));
    shutdown.cancelled().await;
    wind_down(&ctx, &session, &attempts).await;
    for handle in loops {
        let _ = handle.await;
    }
    if let Some(message) = lock(&ctx.fatal).take() {
        return Err(crate::Logged(message).into());
    }
    tracing::info!(target: "openclaw::worker", "worker stopped");
    Ok(())
}

/// Graceful leave: running tasks get `shutdown_timeout`, then are killed; then the
/// coordinator is told the node leaves.
async fn wind_down(ctx: &Context, session: &session::Session, attempts: &attempts::Attempts) {
    let fatal = ctx.failed();
    let limit = ctx.config.worker.shutdown_timeout.get();
    if !fatal {
        tracing::info!(target: "openclaw::worker", running = attempts.running(), limit_s = limit.as_secs_f64(), "shutting down: taking no new tasks; running tasks may finish");
    }
    if !attempts.finish(limit).await {
        tracing::warn!(target: "openclaw::worker", running = attempts.running(), "shutdown deadline passed: stopping the tasks still running");
        ctx.kill_all.cancel();
        attempts.finish(Duration::from_secs(15)).await;
    }
    if !fatal {
        session.leave().await;
    }
    ctx.leave.cancel();
}
