//! [`Cluster`]: the one door into the coordinator's state, used by the HTTP handlers and
//! the background loops (and by every future transport). It owns the state machine behind
//! its mutex, the store (reads, through the seam in [`super::store`]) and its writer, and
//! the event bus.
//!
//! The durability rule lives here, once: [`Cluster::mutate`] runs a transition under the
//! lock, queues the batch of writes it produced inside the same critical section (so the
//! disk sees changes in memory order), and returns only after everything queued up to then
//! is committed — a caller that answers after `mutate` never shows an uncommitted change,
//! its own or another's. Events are published on the bus by the writer right after their
//! commit, so a subscriber never sees an event the store does not have; task output lines
//! go the same way on the output bus. Followers read both through [`super::feeds`].
//!
//! Locking: the state lives behind a std `Mutex`, held only for synchronous sections and
//! never across an `.await`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::auth::Tokens;
use super::core::nodes::Registrant;
use super::core::tasks::{Cancel, Report};
use super::core::validate::task_spec;
use super::core::{Core, Error, Now};
use super::feeds::{EventFeed, OutputFeed, OutputNews};
use super::metrics::Metrics;
use super::secrets::{self, Catalogue, Key};
use super::store::{EventFilter, ListFilter, SecretChange, SecretRow, Store, StoreError, Write, Writer};
use crate::api::TaskQuery;
use crate::config::Config;
use crate::model::{
    Assignment, ErrorCode, Event, HeartbeatRequest, HeartbeatResponse, KeyRotated, Outcome, OutputAck, OutputBatch,
    PollRequest, PollResponse, RegisterRequest, RegisterResponse, ReportBatch, ReportBatchAnswer, ReportResponse,
    ResultReport, RunList, SecretInfo, SecretList, SecretValues, SetSecret, SubmitTask, Task, TaskList, TaskOutput,
    TaskRef, TaskSpec, TaskStatus,
};
use crate::util::lock;

/// How many events the bus keeps for subscribers that fall behind.
pub const EVENT_BUS_CAPACITY: usize = 4096;
/// How many output batches (and task ends) the output bus keeps for followers that fall
/// behind.
pub const OUTPUT_BUS_CAPACITY: usize = 1024;

/// A second way to reach workers besides the HTTP poll (NATS, in `crate::transport`). It
/// never touches the state: it hands out what [`Cluster::scheduled_assignments`] shows and
/// reports through [`Cluster::result`], like the HTTP handlers.
pub trait WorkerTransport: Send + Sync {
    /// An accepted heartbeat of `node`: answers how that node receives its assignments
    /// until its next heartbeat.
    fn heartbeat(&self, node: &str, req: &HeartbeatRequest) -> crate::model::Transport;
    /// Adds how work travels now and the transport's own state to the cluster's health.
    fn health(&self, health: &mut crate::model::ClusterHealth);
}

/// Starts a transport's coordinator side when the config turns it on: installs its
/// [`WorkerTransport`] with [`Cluster::set_transport`], registers its metrics, and returns
/// the task running its loops, which ends after `shutdown` (the coordinator awaits it).
/// `crate::transport::COORDINATOR` lists one per transport.
pub type TransportPlug = fn(&Arc<Cluster>, CancellationToken) -> Option<tokio::task::JoinHandle<()>>;

/// The coordinator's state, its store and its event bus.
pub struct Cluster {
    config: Config,
    /// A std mutex, not tokio's: held only for short synchronous sections.
    core: Mutex<Core>,
    /// Where the state is kept (reads; writes go through `writer`).
    store: Arc<dyn Store>,
    writer: Writer,
    metrics: Arc<Metrics>,
    /// The admin and join tokens, for the auth check of every door.
    tokens: Tokens,
    shutdown: CancellationToken,
    /// Committed events, in commit order.
    events: broadcast::Sender<Event>,
    /// Committed output lines and task ends, in commit order.
    output: broadcast::Sender<OutputNews>,
    /// Submissions in flight per idempotency key: one at a time per key, so that the store
    /// lookup and the insert of two equal submissions cannot interleave.
    keys: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The second door for workers, when one is configured (set once at start).
    transport: OnceLock<Arc<dyn WorkerTransport>>,
    /// The secrets key and the sealed secrets (see [`super::secrets`]); a std mutex, held
    /// for short sections only and never together with the state's.
    secrets: Mutex<SecretState>,
    /// One change to the secrets at a time (set, remove, rotate), across their commits.
    secret_changes: tokio::sync::Mutex<()>,
    /// The lease this coordinator leads a shared store by (set once at start), for `/health`.
    leader: OnceLock<crate::model::LeaderInfo>,
}

/// The secrets key and what it seals.
struct SecretState {
    key: Arc<Key>,
    catalogue: Catalogue,
}

/// A store failure as the doors report it.
pub(super) fn store_error(err: StoreError) -> Error {
    match err {
        StoreError::WriterGone => {
            Error::new(ErrorCode::Unavailable, "the coordinator is shutting down; try again shortly")
        }
        StoreError::WriteFailed(e) => Error::new(
            ErrorCode::Unavailable,
            format!("the coordinator cannot write to its database ({e}) and is stopping; try again after it restarts"),
        ),
        StoreError::Unsupported(message) => Error::new(ErrorCode::NotSupported, message),
        err @ StoreError::Backend(_) => Error::new(ErrorCode::Internal, format!("the store failed: {err}")),
    }
}

impl Cluster {
    pub fn new(
        config: Config,
        core: Core,
        store: Arc<dyn Store>,
        writer: Writer,
        tokens: Tokens,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> Cluster {
        let (events, _) = broadcast::channel(EVENT_BUS_CAPACITY);
        let (output, _) = broadcast::channel(OUTPUT_BUS_CAPACITY);
        Cluster {
            config,
            core: Mutex::new(core),
            store,
            writer,
            metrics,
            tokens,
            shutdown,
            events,
            output,
            keys: Mutex::new(HashMap::new()),
            transport: OnceLock::new(),
            secrets: Mutex::new(SecretState { key: Arc::new(Key::generate()), catalogue: Catalogue::default() }),
            secret_changes: tokio::sync::Mutex::new(()),
            leader: OnceLock::new(),
        }
    }

    /// The secrets key and the stored secrets (at start).
    pub fn with_secrets(self, key: Key, rows: Vec<SecretRow>) -> Cluster {
        *lock(&self.secrets) = SecretState { key: Arc::new(key), catalogue: Catalogue::new(rows) };
        self
    }

    /// Records the lease this coordinator leads by (once, at start).
    pub fn set_leader(&self, leader: crate::model::LeaderInfo) {
        let _ = self.leader.set(leader);
    }

    /// The lease this coordinator leads by (None: a store without one, SQLite).
    pub fn leader(&self) -> Option<&crate::model::LeaderInfo> {
        self.leader.get()
    }

    /// Installs the second door for workers (once, at start).
    pub fn set_transport(&self, transport: Arc<dyn WorkerTransport>) {
        let _ = self.transport.set(transport);
    }

    pub fn tokens(&self) -> &Tokens {
        &self.tokens
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The metrics, for what outlives a request (stream pumps).
    pub fn shared_metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Fires on Ctrl+C / SIGTERM or a store failure; long waits return early on it.
    pub fn shutdown(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// Committed events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    fn lock(&self) -> MutexGuard<'_, Core> {
        lock(&self.core)
    }

    /// Queues what the state machine changed (called with the lock held).
    fn queue(&self, core: &mut Core) {
        if let Some(batch) = core.take_batch() {
            let events = batch.events.clone();
            let mut news: Vec<OutputNews> = batch
                .output
                .iter()
                .map(|o| OutputNews::Lines { task_id: o.task_id.as_str().into(), lines: o.lines.clone() })
                .collect();
            // A task's state is in a batch as it ends, and never again.
            news.extend(
                batch
                    .task_states
                    .iter()
                    .filter(|(_, s)| s.status.is_terminal())
                    .map(|(id, s)| OutputNews::Ended { task_id: id.as_str().into(), status: s.status }),
            );
            let (tx, out) = (self.events.clone(), self.output.clone());
            self.writer.queue(
                Write::Batch(batch),
                Some(Box::new(move || {
                    for e in events {
                        let _ = tx.send(e);
                    }
                    for n in news {
                        let _ = out.send(n);
                    }
                })),
            );
        }
    }

    /// Runs a transition for a client: refused with `overloaded` when too many writes wait
    /// for the disk; answers once its changes (and all before them) are committed.
    pub async fn mutate<T>(&self, f: impl FnOnce(&mut Core, Now) -> Result<T, Error>) -> Result<T, Error> {
        self.mutate_revealing(f, |_| true).await
    }

    /// [`Cluster::mutate`] for a transition whose answer may show nothing that another
    /// request changed unless `reveals` says so (a heartbeat without cancellations): when
    /// it queued nothing itself and reveals nothing, it answers without waiting for the
    /// writes of others (a heartbeat must not wait for the liveness flush of 10,000 nodes).
    /// Whatever it queued is committed before the answer, as always.
    pub async fn mutate_revealing<T>(
        &self,
        f: impl FnOnce(&mut Core, Now) -> Result<T, Error>,
        reveals: impl FnOnce(&T) -> bool,
    ) -> Result<T, Error> {
        let backlog = self.writer.backlog();
        if backlog > self.config.coordinator.max_write_backlog {
            return Err(Error::new(
                ErrorCode::Overloaded,
                format!(
                    "{backlog} changes are waiting for the disk (coordinator.max_write_backlog); retry in a second"
                ),
            ));
        }
        let (answer, before, seq) = {
            let mut core = self.lock();
            let before = self.writer.queued();
            let answer = f(&mut core, Now::get());
            self.queue(&mut core);
            (answer, before, self.writer.queued())
        };
        let answer = answer?;
        if seq > before || reveals(&answer) {
            self.writer.committed(seq).await.map_err(store_error)?;
        }
        Ok(answer)
    }

    /// Runs a transition for the coordinator itself (timers, sweeps): never refused, not
    /// awaited.
    pub fn internal<T>(&self, f: impl FnOnce(&mut Core, Now) -> T) -> T {
        let mut core = self.lock();
        let answer = f(&mut core, Now::get());
        self.queue(&mut core);
        answer
    }

    /// A read of the state (no change).
    pub fn view<T>(&self, f: impl FnOnce(&Core) -> T) -> T {
        f(&self.lock())
    }

    /// Resolves once everything queued so far is committed.
    pub async fn settled(&self) -> Result<(), Error> {
        let seq = self.writer.queued();
        self.writer.committed(seq).await.map_err(store_error)
    }

    /// A page of the node list as a JSON array (see `Registry::page`), the last node's id,
    /// and whether more follow. Views written before are reused while their nodes have not
    /// changed; the ones written now are kept for the next list.
    pub fn node_list_json(
        &self,
        status: Option<crate::model::NodeStatus>,
        after: Option<&str>,
        limit: Option<usize>,
    ) -> (Vec<u8>, Option<String>, bool) {
        let (parts, last, more) = self.view(|core| core.registry().listed(status, after, limit));
        // Written outside the lock: heartbeats go on meanwhile.
        let (json, written) = super::core::registry::list_json(parts);
        if !written.is_empty() {
            self.internal(|core, _| core.keep_listed(written));
        }
        (json, last, more)
    }

    /// Queues the heartbeat figures changed since the last call, in memory order.
    pub fn flush_liveness(&self) {
        let mut core = self.lock();
        let batch = core.take_liveness();
        if !batch.is_empty() {
            self.writer.queue(Write::Liveness(batch), None);
        }
    }

    /// Queues a write in memory order (retention).
    pub fn write(&self, write: Write) -> u64 {
        let _core = self.lock();
        self.writer.queue(write, None)
    }

    /// Waits for one write.
    pub async fn committed(&self, seq: u64) -> Result<(), Error> {
        self.writer.committed(seq).await.map_err(store_error)
    }

    /// Where the store keeps the state, for messages.
    pub fn store_location(&self) -> String {
        self.store.location()
    }

    /// A read of the store, on the blocking pool.
    pub(super) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, Error> {
        super::store::blocking(&self.store, f).await.map_err(store_error)
    }

    /// Registers a node.
    pub async fn register(
        &self,
        req: RegisterRequest,
        who: Registrant,
        peer: Option<std::net::IpAddr>,
    ) -> Result<RegisterResponse, Error> {
        self.mutate(|core, now| core.register(req, who, peer, now)).await
    }

    /// Submits a task; with an idempotency key, a repeat returns the first task (`false`).
    /// `origin` is the door's label for the task (`api`, `mcp`); `req.origin` is the HTTP
    /// door's business (it checks what a client claims and passes it here).
    pub async fn submit(
        &self,
        req: SubmitTask,
        header_key: Option<String>,
        origin: &str,
    ) -> Result<(Task, bool), Error> {
        let key = match (header_key, req.idempotency_key.clone()) {
            (Some(h), Some(b)) if h.trim() != b.trim() => {
                return Err(Error::invalid(
                    "idempotency_key",
                    "the Idempotency-Key header and the body's idempotency_key differ",
                ));
            }
            (h, b) => h.or(b),
        };
        let reject = req.reject_unplaceable;
        let spec = {
            let core = self.lock();
            task_spec(SubmitTask { idempotency_key: key, ..req }, origin, core.settings())?
        };
        let spec = self.with_secret_scopes(spec)?;
        // The key as kept (trimmed): the one the store's unique index holds. Looking up the
        // key as sent instead let ` k` and `k` both insert, and the second insert's
        // constraint failure stopped the coordinator.
        let Some(key) = spec.idempotency_key.clone() else {
            let id = self.place(spec, reject).await?;
            return Ok((self.task(&id, false).await?, true));
        };
        let gate = lock(&self.keys).entry(key.clone()).or_default().clone();
        let answer = {
            let _turn = gate.lock().await;
            let k = key.clone();
            match self.read(move |s| s.task_by_idempotency_key(&k)).await? {
                Some(first) if same_submission(&first.spec, &spec) => Ok((self.overlay(first), false)),
                Some(first) => Err(Error::new(
                    ErrorCode::IdempotencyConflict,
                    format!(
                        "idempotency key `{key}` was used for task {} with a different submission; use another key, or submit exactly what was sent then",
                        first.task_id
                    ),
                )),
                None => {
                    let id = self.place(spec, reject).await?;
                    self.task(&id, false).await.map(|t| (t, true))
                }
            }
        };
        let mut keys = lock(&self.keys);
        if Arc::strong_count(&gate) <= 2 {
            keys.remove(&key);
        }
        answer
    }

    /// Accepts a checked submission. The store is read first for the tasks it depends on
    /// (the core knows only active ones); when one of them ends in between, once more.
    async fn place(&self, spec: TaskSpec, reject: bool) -> Result<String, Error> {
        if spec.links.depends_on.is_empty() {
            return self.mutate(place(spec, reject, None)).await;
        }
        let mut tries = 0;
        loop {
            let ids = spec.links.depends_on.clone();
            let known = self
                .read(move |s| {
                    let mut known = super::core::links::Known::new();
                    for id in ids {
                        if let Some(t) = s.task(&id, false)? {
                            known.insert(id, t.state.status);
                        }
                    }
                    Ok(known)
                })
                .await?;
            tries += 1;
            match self.mutate(place(spec.clone(), reject, Some(known))).await {
                Err(e) if e.code == ErrorCode::Unavailable && tries < 3 => continue,
                other => return other,
            }
        }
    }

    /// The live state of an active task over its stored row.
    fn overlay(&self, mut task: Task) -> Task {
        let now = crate::util::now_ms();
        if let Some((state, reason)) = self.view(|core| core.live(&task.task_id, now)) {
            task.state = state;
            task.pending_reason = reason.map(|r| self.name_scoped_secrets(r, &task.spec.secrets));
        }
        if let Some(children) = task.children.as_mut() {
            self.view(|core| {
                for c in children.iter_mut() {
                    if let Some((state, _)) = core.live(&c.task_id, now) {
                        c.status = state.status;
                        c.assigned_node = state.assigned_node;
                    }
                }
            });
        }
        task
    }

    /// A pending reason about the target names the secrets whose scope is part of it.
    fn name_scoped_secrets(&self, reason: String, names: &[String]) -> String {
        if names.is_empty() || !reason.contains("the target") {
            return reason;
        }
        let state = lock(&self.secrets);
        let scoped: Vec<String> = names
            .iter()
            .filter_map(|n| state.catalogue.get(n).and_then(|r| r.scope.as_ref()).map(|s| format!("{n} ({s})")))
            .collect();
        if scoped.is_empty() {
            return reason;
        }
        format!("{reason}; the target includes the scope of secret {}", scoped.join(", "))
    }

    /// One task as the API shows it, with its history when asked.
    pub async fn task(&self, id: &str, with_events: bool) -> Result<Task, Error> {
        if with_events {
            // Changes made by timers may still be queued: read the history once they are
            // on disk, so that it agrees with the live record.
            self.settled().await?;
        }
        let key = id.to_string();
        let Some(task) = self.read(move |s| s.task(&key, with_events)).await? else {
            return Err(Error::unknown_task(id));
        };
        Ok(self.overlay(task))
    }

    /// A page of tasks, newest first.
    pub async fn list_tasks(&self, q: TaskQuery) -> Result<TaskList, Error> {
        let invalid = |e: String| Error::new(ErrorCode::InvalidQuery, e);
        let limit = q.page_limit().map_err(invalid)?;
        let before_seq = q.position().map_err(invalid)?;
        let filter = ListFilter { status: q.status, node: q.node, skill: q.skill, before_seq, limit };
        let rows = self.read(move |s| s.tasks(&filter)).await?;
        let next =
            (rows.len() == limit as usize).then(|| rows.last().map(|(seq, _)| crate::model::cursor(*seq))).flatten();
        let now = crate::util::now_ms();
        let tasks = self.view(|core| {
            rows.into_iter()
                .map(|(_, mut t)| {
                    if let Some((state, reason)) = core.live(&t.task_id, now) {
                        t.state = state;
                        t.pending_reason = reason;
                    }
                    t
                })
                .collect()
        });
        Ok(TaskList { tasks, next })
    }

    /// Waits up to `timeout` for a task to end, then shows it.
    pub async fn wait_task(&self, id: &str, timeout: Duration) -> Result<Task, Error> {
        let rx = self.lock().wait_for(id);
        if let Some(mut rx) = rx {
            tokio::select! {
                _ = tokio::time::timeout(timeout, rx.changed()) => {}
                _ = self.shutdown.cancelled() => {}
            }
            // The end was queued before the wake-up; read it once it is on disk.
            self.settled().await?;
        }
        self.task(id, false).await
    }

    /// Cancels a task; an ended one is `task_ended`.
    pub async fn cancel(&self, id: &str) -> Result<Task, Error> {
        let outcome = self.mutate(|core, now| Ok(core.cancel(id, now))).await?;
        if outcome == Cancel::NotActive {
            let task = self.task(id, false).await?;
            return Err(Error::new(
                ErrorCode::TaskEnded,
                format!("task {id} already ended ({}); nothing to cancel", task.state.status),
            ));
        }
        self.task(id, true).await
    }

    /// Submits an ended task again: a new task with the same request, `retry_of` the old.
    pub async fn retry(&self, id: &str, origin: &str) -> Result<Task, Error> {
        let old = self.task(id, false).await?;
        if !old.state.status.is_terminal() {
            return Err(Error::new(
                ErrorCode::TaskActive,
                format!("task {id} is still {}: cancel it first, or wait for it to end", old.state.status),
            ));
        }
        let spec = crate::model::TaskSpec {
            idempotency_key: None,
            origin: origin.to_string(),
            retry_of: Some(id.to_string()),
            ..old.spec
        };
        let spec = self.with_secret_scopes(spec)?;
        let new = self.mutate(|core, now| Ok(core.submit(spec, now))).await?;
        self.task(&new, false).await
    }

    /// Submits a workflow (checked as a whole; one transition); shows its workflow task
    /// with its steps.
    pub async fn submit_workflow(&self, wf: crate::model::Workflow, origin: &str) -> Result<Task, Error> {
        let origin = origin.to_string();
        let id = self.mutate(move |core, now| core.submit_workflow(wf, &origin, now)).await?;
        self.task(&id, true).await
    }

    /// A request authenticated by `node`'s secret: the first one marks the secret used
    /// (committed before the request goes on, so a restart keeps it), after which the join
    /// token cannot take the live node over. Later ones only read.
    pub async fn node_secret_used(&self, node: &str) -> Result<(), Error> {
        if self.view(|core| core.registry().is_secret_used(node)) {
            return Ok(());
        }
        self.mutate(|core, _| {
            core.secret_used(node);
            Ok(())
        })
        .await
    }

    /// A page of a schedule's runs (newest first), with the live status of active tasks.
    pub async fn schedule_runs(&self, key: &str, before: Option<u64>, limit: u32) -> Result<RunList, Error> {
        let id = self.view(|c| c.schedule_view(key))?.schedule_id;
        let mut runs = self.read(move |s| s.schedule_runs(&id, before, limit)).await?;
        self.view(|c| {
            for r in &mut runs {
                if let Some(status) = r.task_id.as_deref().and_then(|t| c.live_status(t)) {
                    r.status = Some(status);
                }
            }
        });
        let next = (runs.len() == limit as usize).then(|| runs.last().map(|r| r.run)).flatten();
        Ok(RunList { runs, next })
    }

    /// A worker's long poll: answers at once when there is something for it, else waits for
    /// a placement or a cancel (or `wait`, or shutdown) and answers then. Hands out only
    /// what is on disk: a restarted coordinator must know the attempt.
    pub async fn poll(&self, node: &str, req: PollRequest) -> Result<PollResponse, Error> {
        let limit = self.config.coordinator.long_poll_timeout.get();
        // Clamp before converting: a huge wait_secs must not reach Duration's constructor.
        let wait = match req.wait_secs {
            Some(s) if s.is_finite() => Duration::from_secs_f64(s.clamp(0.0, limit.as_secs_f64())),
            _ => limit,
        };
        let deadline = tokio::time::Instant::now() + wait;
        let gone =
            || Error::new(ErrorCode::UnknownNode, format!("node `{node}` is not registered here: register again"));
        loop {
            let (notified, (handouts, cancel)) = {
                let core = self.lock();
                // Register for the wake-up before looking at the state, so that a placement
                // made after the look is not missed (placements use notify_waiters).
                let mut notified = Box::pin(core.registry().waker(node).ok_or_else(gone)?.notified_owned());
                notified.as_mut().enable();
                (notified, core.poll(node, &req.held))
            };
            if !handouts.is_empty() || !cancel.is_empty() {
                self.settled().await?;
                let assignments = self.assignments(handouts).await?;
                return Ok(PollResponse { assignments, cancel });
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(deadline) => return Ok(PollResponse::default()),
                _ = self.shutdown.cancelled() => return Ok(PollResponse::default()),
            }
        }
    }

    /// A worker's heartbeat; with a second transport configured, the answer says how the
    /// node receives its assignments.
    pub async fn heartbeat(&self, node: &str, req: HeartbeatRequest) -> Result<HeartbeatResponse, Error> {
        let seen = self.transport.get().map(|_| req.clone());
        // Cancellations come from other requests' changes: those wait for their commit.
        let beat = |core: &mut Core, now| {
            let mut answer = core.heartbeat(node, req, now)?;
            answer.skill_packages = core.skill_packages_for(node);
            Ok(answer)
        };
        let mut answer = self.mutate_revealing(beat, |a| !a.cancel.is_empty()).await?;
        if let (Some(transport), Some(req)) = (self.transport.get(), seen) {
            answer.dispatch = Some(transport.heartbeat(node, &req));
        }
        answer.secrets = self.secrets_for(node);
        Ok(answer)
    }

    /// Every attempt placed on `node` and not started yet, as the HTTP poll hands them out
    /// (for the other transports), except those in `skip` (handed out already). Only what
    /// is on disk.
    pub async fn scheduled_assignments(&self, node: &str, skip: &[TaskRef]) -> Result<Vec<Assignment>, Error> {
        let handouts = self.view(|core| core.poll(node, skip).0);
        if handouts.is_empty() {
            return Ok(Vec::new());
        }
        self.settled().await?;
        self.assignments(handouts).await
    }

    /// The assignments of handouts, with their names and parameters from the store.
    async fn assignments(&self, handouts: Vec<super::core::tasks::Handout>) -> Result<Vec<Assignment>, Error> {
        let ids: Vec<String> = handouts.iter().map(|h| h.task_id.clone()).collect();
        let parents: Vec<String> = handouts
            .iter()
            .filter_map(|h| h.links.as_ref())
            .flat_map(|l| l.depends_on.iter().cloned())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let (mut texts, parents) = self
            .read(move |s| {
                let texts = s.handout_texts(&ids)?;
                let mut found = HashMap::new();
                for id in parents {
                    if let Some(t) = s.task(&id, false)? {
                        found.insert(id, t);
                    }
                }
                Ok((texts, found))
            })
            .await?;
        Ok(handouts
            .into_iter()
            .filter_map(|h| {
                let mut text = texts.remove(&h.task_id)?;
                let inputs = h.links.as_ref().filter(|l| !l.depends_on.is_empty()).map(|l| {
                    let (inputs, results) = inputs_of(&l.depends_on, &parents);
                    if l.step.is_some() {
                        text.parameters = crate::model::workflow::substitute(&text.parameters, &results);
                    }
                    inputs
                });
                Some(Assignment {
                    inputs,
                    task_id: h.task_id,
                    attempt: h.attempt,
                    name: text.name,
                    description: text.description,
                    skill: h.skill,
                    required_skills: h.required_skills,
                    parameters: text.parameters,
                    timeout: h.timeout,
                    priority: h.priority,
                    secrets: h.secrets,
                })
            })
            .collect())
    }

    /// A worker's start report. Accepted for an attempt that uses secrets, the answer
    /// carries their values: the only place a value leaves the coordinator. A secret that
    /// is gone, cannot be read, or may not go to this node fails the attempt for good, and
    /// the worker is told not to run it.
    pub async fn start(&self, node: &str, task: &str, attempt: u32) -> Result<ReportResponse, Error> {
        let found = self.mutate(|core, now| core.start(node, task, attempt, now)).await?;
        self.start_answer(found, node, task, attempt).await
    }

    /// The answer to a start report whose transition is committed (see [`Cluster::start`]).
    async fn start_answer(&self, found: Report, node: &str, task: &str, attempt: u32) -> Result<ReportResponse, Error> {
        let delivered = matches!(found, Report::Done(_));
        let mut answer = self.report_answer(found, node, task, attempt, None).await?;
        let names = if delivered { self.view(|core| core.task_secrets(task).to_vec()) } else { Vec::new() };
        if !names.is_empty() {
            let node_view = self.view(|core| core.registry().view(node).ok());
            match self.open_secrets(&names, node, node_view.as_ref()) {
                Ok(values) => answer.secrets = values,
                Err(why) => {
                    let error = format!("task {task} cannot run on node `{node}`: {why}");
                    let report = ResultReport {
                        attempt,
                        outcome: Outcome::Failed,
                        result: None,
                        error: Some(error.clone()),
                        duration_ms: 0,
                        retry_after: None,
                        permanent: true,
                    };
                    self.mutate(|core, now| core.result(node, task, report, now)).await?;
                    return Err(Error::new(ErrorCode::StaleAttempt, error));
                }
            }
        }
        Ok(answer)
    }

    /// The values of `names` for an attempt on `node`, or why one cannot go there.
    fn open_secrets(
        &self,
        names: &[String],
        node: &str,
        view: Option<&crate::model::Node>,
    ) -> Result<SecretValues, String> {
        let state = lock(&self.secrets);
        let mut values = SecretValues::default();
        for name in names {
            let Some(row) = state.catalogue.get(name) else {
                return Err(format!("secret `{name}` was removed; set it again (`openclaw secrets set {name}`)"));
            };
            if let Some(scope) = &row.scope {
                let allowed =
                    view.is_some_and(|v| scope.admits(node, &v.spec.platform, &v.spec.tags, &v.spec.skill_digests));
                if !allowed {
                    return Err(format!("secret `{name}` may not go to this node (its scope is {scope})"));
                }
            }
            let value = (row.key_id == state.key.id()).then(|| state.key.open(name, &row.sealed)).flatten();
            values.0.insert(name.clone(), value.ok_or_else(|| secrets::unreadable(name))?);
        }
        Ok(values)
    }

    /// The names of the secrets `node` may receive (its scope allows it).
    fn secrets_for(&self, node: &str) -> Vec<String> {
        if lock(&self.secrets).catalogue.rows().next().is_none() {
            return Vec::new();
        }
        // Never both locks at once.
        let Ok(view) = self.view(|core| core.registry().view(node)) else { return Vec::new() };
        let state = lock(&self.secrets);
        state
            .catalogue
            .rows()
            .filter(|r| {
                r.scope
                    .as_ref()
                    .is_none_or(|s| s.admits(node, &view.spec.platform, &view.spec.tags, &view.spec.skill_digests))
            })
            .map(|r| r.name.clone())
            .collect()
    }

    /// A submission's secrets checked against the catalogue, their scopes added to its
    /// target.
    fn with_secret_scopes(&self, spec: TaskSpec) -> Result<TaskSpec, Error> {
        if spec.secrets.is_empty() {
            return Ok(spec);
        }
        let state = lock(&self.secrets);
        let target = state.catalogue.apply(&state.key, &spec.secrets, spec.target.clone())?;
        Ok(TaskSpec { target, ..spec })
    }

    /// The stored secrets (names, scopes, who set them; never values).
    pub fn secrets(&self) -> SecretList {
        let state = lock(&self.secrets);
        SecretList { secrets: state.catalogue.list(&state.key) }
    }

    /// Sets (or replaces) a secret, sealed under the current key; answers after the commit.
    pub async fn set_secret(&self, name: &str, req: SetSecret, set_by: String) -> Result<SecretInfo, Error> {
        crate::model::check_secret_name(name).map_err(|e| Error::invalid("name", e))?;
        if req.value.is_empty() {
            return Err(Error::invalid("value", "must not be empty"));
        }
        crate::model::SECRET_VALUE.check(&req.value).map_err(|e| Error::invalid("value", e))?;
        let scope = req
            .scope
            .map(|t| super::core::validate::check_target(t).map_err(|e| Error::invalid("scope", e.message)))
            .transpose()?
            .filter(|t| !t.is_any());
        let _turn = self.secret_changes.lock().await;
        let key = lock(&self.secrets).key.clone();
        let row = SecretRow {
            name: name.to_string(),
            key_id: key.id().to_string(),
            sealed: key.seal(name, &req.value),
            scope,
            set_by,
            set_at: crate::util::now_ms(),
        };
        self.write_secrets(vec![SecretChange::Put(row.clone())]).await?;
        let mut state = lock(&self.secrets);
        state.catalogue.put(row);
        tracing::info!(target: "openclaw::coordinator", name, "secret set");
        let info = state.catalogue.list(&state.key).into_iter().find(|s| s.name == name);
        info.ok_or_else(|| Error::new(ErrorCode::Internal, "the secret vanished while it was set"))
    }

    /// Removes a secret; answers after the commit.
    pub async fn remove_secret(&self, name: &str) -> Result<SecretInfo, Error> {
        let _turn = self.secret_changes.lock().await;
        let info = {
            let state = lock(&self.secrets);
            state.catalogue.list(&state.key).into_iter().find(|s| s.name == name)
        };
        let info = info.ok_or_else(|| {
            Error::new(ErrorCode::UnknownSecret, format!("no secret `{name}` (see `openclaw secrets list`)"))
        })?;
        self.write_secrets(vec![SecretChange::Delete(name.to_string())]).await?;
        lock(&self.secrets).catalogue.remove(name);
        tracing::info!(target: "openclaw::coordinator", name, "secret removed");
        Ok(info)
    }

    /// Seals every readable secret again under a new key, then makes it the key file (see
    /// [`super::secrets`] for a crash in between).
    pub async fn rotate_secret_key(&self) -> Result<KeyRotated, Error> {
        let failed = |e: anyhow::Error| Error::new(ErrorCode::Internal, format!("the key rotation failed: {e:#}"));
        let _turn = self.secret_changes.lock().await;
        let (old, rows) = {
            let state = lock(&self.secrets);
            (state.key.clone(), state.catalogue.rows().cloned().collect::<Vec<_>>())
        };
        let new = secrets::begin_rotation(&self.config).map_err(failed)?;
        let mut changes = Vec::new();
        let mut unreadable = Vec::new();
        for row in rows {
            match (row.key_id == old.id()).then(|| old.open(&row.name, &row.sealed)).flatten() {
                Some(value) => changes.push(SecretChange::Put(SecretRow {
                    key_id: new.id().to_string(),
                    sealed: new.seal(&row.name, &value),
                    ..row
                })),
                None => unreadable.push(row.name),
            }
        }
        let resealed = changes.len() as u32;
        self.write_secrets(changes.clone()).await?;
        secrets::commit_rotation(&self.config).map_err(failed)?;
        let key_id = new.id().to_string();
        let mut state = lock(&self.secrets);
        state.key = Arc::new(new);
        for change in changes {
            if let SecretChange::Put(row) = change {
                state.catalogue.put(row);
            }
        }
        tracing::info!(target: "openclaw::coordinator", key_id, resealed, "secrets key rotated");
        Ok(KeyRotated { key_id, resealed, unreadable })
    }

    /// Queues secret changes for the writer and waits for their commit.
    async fn write_secrets(&self, changes: Vec<SecretChange>) -> Result<(), Error> {
        let seq = self.writer.queue(Write::Secrets(changes), None);
        self.writer.committed(seq).await.map_err(store_error)
    }

    /// A worker's result report.
    pub async fn result(&self, node: &str, task: &str, report: ResultReport) -> Result<ReportResponse, Error> {
        let (attempt, outcome) = (report.attempt, report.outcome);
        let found = self.mutate(|core, now| core.result(node, task, report, now)).await?;
        self.report_answer(found, node, task, attempt, Some(outcome)).await
    }

    /// A worker's batch of start reports and results: one transition and one commit for
    /// all of them, then each answered as its per-task endpoint would answer it (a stale
    /// or unknown one refuses only itself). With `held`, the answer also carries what a
    /// poll would hand out now, without waiting.
    pub async fn reports(&self, node: &str, batch: ReportBatch) -> Result<ReportBatchAnswer, Error> {
        batch.check().map_err(|e| Error::new(ErrorCode::BadRequest, e))?;
        let ReportBatch { starts, results, held } = batch;
        let ends: Vec<(u32, Outcome)> = results.iter().map(|r| (r.report.attempt, r.report.outcome)).collect();
        let ids: Vec<String> = results.iter().map(|r| r.task_id.clone()).collect();
        let results = results.into_iter().map(|r| (r.task_id, r.report)).collect();
        let (started, ended) = self.mutate(|core, now| Ok(core.reports(node, &starts, results, now))).await?;
        let mut answer = ReportBatchAnswer::default();
        for (s, found) in starts.iter().zip(started) {
            let one = match found {
                Ok(found) => self.start_answer(found, node, &s.task_id, s.attempt).await,
                Err(e) => Err(e),
            };
            answer.starts.push(batched(one));
        }
        for ((task, (attempt, outcome)), found) in ids.iter().zip(ends).zip(ended) {
            let one = match found {
                Ok(found) => self.report_answer(found, node, task, attempt, Some(outcome)).await,
                Err(e) => Err(e),
            };
            answer.results.push(batched(one));
        }
        if let Some(held) = held {
            let (handouts, cancel) = self.view(|core| core.poll(node, &held));
            let assignments = if handouts.is_empty() {
                Vec::new()
            } else {
                // Placed by others' changes, maybe not committed yet: hand out only what is on disk.
                self.settled().await?;
                self.assignments(handouts).await?
            };
            answer.poll = Some(PollResponse { assignments, cancel });
        }
        Ok(answer)
    }

    /// Results of attempts on any nodes, from a transport that carries many at once
    /// (`(node, task, report)`): one transition and one commit for all, then each answered
    /// as [`Cluster::result`] would answer it, in order.
    pub async fn results(
        &self,
        results: Vec<(String, String, ResultReport)>,
    ) -> Result<Vec<Result<ReportResponse, Error>>, Error> {
        let keys: Vec<(String, String, u32, Outcome)> =
            results.iter().map(|(n, t, r)| (n.clone(), t.clone(), r.attempt, r.outcome)).collect();
        let found = self.mutate(|core, now| Ok(core.results(results, now))).await?;
        let mut answers = Vec::with_capacity(found.len());
        for ((node, task, attempt, outcome), found) in keys.into_iter().zip(found) {
            answers.push(match found {
                Ok(found) => self.report_answer(found, &node, &task, attempt, Some(outcome)).await,
                Err(e) => Err(e),
            });
        }
        Ok(answers)
    }

    /// A report for a task no longer active is a harmless repeat when it matches how the
    /// task ended, else stale.
    async fn report_answer(
        &self,
        found: Report,
        node: &str,
        task_id: &str,
        attempt: u32,
        outcome: Option<crate::model::Outcome>,
    ) -> Result<ReportResponse, Error> {
        match found {
            Report::Done(answer) => Ok(answer),
            Report::NotActive => {
                let task = self.task(task_id, false).await?;
                let same_attempt = task.state.attempt == attempt && task.state.assigned_node.as_deref() == Some(node);
                let same_end = outcome.is_some_and(|o| TaskStatus::from(o) == task.state.status);
                if same_attempt && same_end {
                    return Ok(ReportResponse {
                        success: true,
                        task_id: task_id.into(),
                        status: task.state.status,
                        secrets: Default::default(),
                    });
                }
                Err(Error::new(
                    ErrorCode::StaleAttempt,
                    format!(
                        "stale report: task {task_id} already ended ({}) at attempt {} on {}",
                        task.state.status,
                        task.state.attempt,
                        task.state.assigned_node.as_deref().unwrap_or("no node")
                    ),
                ))
            }
        }
    }

    /// The cluster's health with task counts from the store, and the transport's state.
    pub async fn cluster_health(&self) -> Result<crate::model::ClusterHealth, Error> {
        let counts: BTreeMap<String, u64> = self.read(|s| s.count_by_status()).await?;
        let mut health = self.view(|core| core.registry().cluster_health(counts, Now::get()));
        if let Some(transport) = self.transport.get() {
            transport.health(&mut health);
        }
        Ok(health)
    }

    /// The id of the last committed event (0 when there is none).
    pub async fn last_event_id(&self) -> Result<u64, Error> {
        self.settled().await?;
        Ok(self.read(|s| s.event_bounds()).await?.map_or(0, |(_, newest)| newest))
    }

    /// A consistent copy of the store in a new file (the caller streams it and removes
    /// it). Every change acknowledged before the call is in it.
    pub async fn backup(&self) -> Result<std::path::PathBuf, Error> {
        self.settled().await?;
        self.read(|s| s.backup()).await
    }

    /// Committed events after `after` from the store, oldest first (for resuming).
    pub async fn events_after(&self, after: u64, limit: u32) -> Result<Vec<Event>, Error> {
        self.read(move |s| s.events_after(after, &EventFilter::default(), limit)).await
    }

    /// The events that match `filter`: with `after`, every stored one after it first (and
    /// a gap when some were purged), then live ones; without, live ones from now on.
    pub async fn events(&self, filter: EventFilter, after: Option<u64>) -> Result<EventFeed, Error> {
        // Subscribe before reading the store: see `feeds`.
        let rx = self.subscribe();
        let Some(after) = after else { return Ok(EventFeed::live(rx, self.store.clone(), filter)) };
        let bounds = self.read(|s| s.event_bounds()).await?;
        Ok(EventFeed::resume(rx, self.store.clone(), filter, after, bounds))
    }

    /// A batch of output lines from the node running the attempt; answers once they are on
    /// disk. Output yields to state changes: it is refused as `overloaded` at half the
    /// write backlog that refuses them.
    pub async fn push_output(&self, node: &str, task_id: &str, batch: OutputBatch) -> Result<OutputAck, Error> {
        let backlog = self.writer.backlog();
        if backlog > self.config.coordinator.max_write_backlog / 2 {
            return Err(Error::new(
                ErrorCode::Overloaded,
                format!("{backlog} changes are waiting for the disk; send the output again in a second"),
            ));
        }
        let attempt = batch.attempt;
        if let Some(ack) = self.mutate(|core, _| core.output(node, task_id, batch)).await? {
            return Ok(ack);
        }
        let task = self.task(task_id, false).await?;
        Err(Error::new(
            ErrorCode::StaleAttempt,
            format!(
                "stale output: task {task_id} already ended ({}); output of attempt {attempt} is not kept",
                task.state.status
            ),
        ))
    }

    /// The kept tail of a task's output, the lines numbered above `after`.
    pub async fn output(&self, task_id: &str, after: u64) -> Result<TaskOutput, Error> {
        // The status first: once it says ended, every line is on disk.
        let task = self.task(task_id, false).await?;
        let key = task_id.to_string();
        let tail = self.read(move |s| s.output(&key, after)).await?;
        Ok(TaskOutput {
            task_id: task.task_id,
            attempt: tail.attempt.map(|(attempt, _)| attempt).unwrap_or(task.state.attempt),
            truncated: tail.truncated(),
            ended: task.state.status.is_terminal(),
            lines: tail.lines,
        })
    }

    /// A task's kept lines after `after`, then its new lines as they are committed, then
    /// its end.
    pub async fn follow_output(&self, task_id: &str, after: u64) -> Result<OutputFeed, Error> {
        let rx = self.output.subscribe();
        let task = self.task(task_id, false).await?;
        let ended = Some(task.state.status).filter(|s| s.is_terminal());
        let key = task_id.to_string();
        let tail = self.read(move |s| s.output(&key, after)).await?;
        Ok(OutputFeed::new(rx, task_id, after, tail.lines, ended))
    }
}

/// One report's answer in a batch: the per-task endpoint's answer, or its error's body.
fn batched(one: Result<ReportResponse, Error>) -> crate::model::BatchedAnswer {
    match one {
        Ok(r) => crate::model::BatchedAnswer::Taken(r),
        Err(e) => crate::model::BatchedAnswer::Refused(crate::model::ErrorBody {
            error: crate::model::ErrorDetail { code: e.code.to_string(), message: e.message },
        }),
    }
}

/// The transition of a submission: refused with `unplaceable` when asked to and no node
/// can take it now, else accepted. The check and the insert run in one critical section,
/// so no node can go away in between.
/// A fan-out (`target.each_node`) that no online node matches is always refused: it
/// would have no task at all.
fn place(
    spec: TaskSpec,
    reject: bool,
    known: Option<super::core::links::Known>,
) -> impl FnOnce(&mut Core, Now) -> Result<String, Error> {
    move |core, now| {
        let each_node = spec.target.as_ref().is_some_and(|t| t.each_node);
        if (reject || each_node)
            && let Some(why) = core.unplaceable(&spec, now.ms)
        {
            let why = match each_node {
                true => format!("{why} (each_node fans out to the matching online nodes at submit time)"),
                false => why,
            };
            return Err(Error::new(ErrorCode::Unplaceable, why));
        }
        match known {
            Some(known) => core.submit_dependent(spec, &known, now),
            None => Ok(core.submit(spec, now)),
        }
    }
}

/// What a task gets of the tasks it depends on: `inputs` (each parent's status, result and
/// error, keyed by its step name in a workflow, else by its id), and the results by that key
/// (for `${{ steps.NAME.result }}`).
fn inputs_of(depends_on: &[String], parents: &HashMap<String, Task>) -> (Value, BTreeMap<String, Value>) {
    let mut inputs = serde_json::Map::new();
    let mut results = BTreeMap::new();
    for id in depends_on {
        let Some(p) = parents.get(id) else { continue };
        let key = p.spec.links.step.clone().unwrap_or_else(|| id.clone());
        let result = p.state.result.clone().unwrap_or(Value::Null);
        inputs.insert(
            key.clone(),
            serde_json::json!({ "task_id": id, "status": p.state.status, "result": result, "error": p.state.error }),
        );
        results.insert(key, result);
    }
    (Value::Object(inputs), results)
}

/// Two submissions are the same when what they ask for is the same (defaults applied).
fn same_submission(a: &crate::model::TaskSpec, b: &crate::model::TaskSpec) -> bool {
    let normal = |s: &crate::model::TaskSpec| crate::model::TaskSpec { origin: String::new(), ..s.clone() };
    normal(a) == normal(b)
}
