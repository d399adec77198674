//! The store seam: what the coordinator needs from wherever its state is kept, and nothing
//! about how. The coordinator owns this trait; each store implements it (`crate::store`
//! picks one by `storage.type`), so no SQL dialect appears above it.
//!
//! What a store does for the coordinator:
//! - [`Store::snapshot`]: load every node, the active tasks, every schedule and where the
//!   numbering goes on, once at start;
//! - [`Store::write_session`]: a session for the one [`Writer`], which applies plain-data
//!   [`Write`]s — the [`Batch`] of changes the state machine made, heartbeat figures,
//!   retention purges — in one transaction per group of jobs (group commit) and commits
//!   durably before anyone is answered (see [`writer`]);
//! - the cluster secrets, sealed ([`Store::secrets`] at start, [`Write::Secrets`]): a
//!   store keeps the bytes it is given and never sees a value in clear;
//! - the reads the API and the feeds make: a task with its history, the task list with its
//!   cursor and filters, idempotency lookups, the handouts' texts, the task counts, events
//!   after an id, the kept output, and a consistent backup copy.
//!
//! Invariants every store keeps:
//! - a session's `commit` applies all of its writes or none, in the order given, and
//!   returns only once they are durable; an error means nothing of that call was committed
//!   (the writer then stops for good: fail-stop);
//! - reads see every commit that finished before they started;
//! - event ids, task seqs and output line numbers are the coordinator's (a store never
//!   numbers anything itself); [`Store::event_bounds`] and the snapshot's `max_seq` and
//!   `max_event` say where the numbering goes on after a restart;
//! - damaged data (an unparsable value, an unknown name) is an error naming where it is,
//!   never a silent default.
//!
//! The methods are blocking: a store may block on disk or network. The coordinator calls
//! them on tokio's blocking pool ([`blocking`]) and from the writer's own thread, never on
//! a runtime thread.
//!
//! Adding a store (PostgreSQL, issue 19): a module under `crate::store` with a type that
//! implements [`Store`] and [`WriteSession`] (run `Write::Batch` etc. inside one
//! transaction; a fencing check belongs in `commit`), a variant of `StorageKind` and one
//! line in `crate::store::open`. The state-machine tests (`core/tests.rs`) drive any
//! [`Store`] the same way.

pub mod writer;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;

pub use super::core::output::{Kept, OutputWrite};
pub use super::core::registry::{Liveness, NodeRecord};
pub use super::core::schedules::{RunRecord, ScheduleRecord, ScheduleWrites};
pub use super::core::skill_pushes::{PackageRow, PushRecord, PushRows, PushWrites};
pub use super::core::tasks::{ActiveTask, NewTask};
pub use super::core::{Batch, Snapshot};
pub use writer::{AfterCommit, Writer};

use crate::model::{Event, EventKind, OutputLine, ScheduleRun, Task, TaskStatus};

/// Why the store could not do what the coordinator asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The writer has stopped: the coordinator is shutting down.
    #[error("the store writer has stopped")]
    WriterGone,
    /// A write or its commit failed; nothing more will be written (fail-stop).
    #[error("a database write failed: {0}")]
    WriteFailed(String),
    /// The store does not do this (a file backup of PostgreSQL); the message says what to
    /// use instead.
    #[error("{0}")]
    Unsupported(String),
    /// The store failed a read or a write; the message names what and where.
    #[error("{0}")]
    Backend(Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// A store's own error.
    pub fn backend(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
        StoreError::Backend(Box::new(e))
    }
}

/// One job for the writer: plain data that a store turns into its own statements.
#[derive(Debug)]
pub enum Write {
    /// What transitions changed: new tasks, task states, node records, forgotten nodes,
    /// schedules (records, removals, then runs), skill packages then pushes, events and
    /// output, in that order. Runs
    /// are unique per (schedule, due time): a second one is an error, never a double.
    Batch(Batch),
    /// The heartbeat figures that changed since the last flush (not durable state: losing
    /// the last few seconds of them in a crash is fine).
    Liveness(Vec<Liveness>),
    /// Retention: up to `limit` ended tasks that completed before `before_ms` (with their
    /// events and output) and up to `limit` node events older than that, never the newest
    /// event (ids go on from the highest stored one after a restart). The larger of the
    /// two counts is sent on `purged` before the commit.
    Purge { before_ms: i64, limit: u32, purged: std::sync::mpsc::Sender<usize> },
    /// Cluster secrets set (inserted or replaced whole) or removed, in order.
    Secrets(Vec<SecretChange>),
}

/// A cluster secret as stored: its value sealed by the coordinator (a store never sees it
/// in clear and never opens it), the id of the key that sealed it, its scope, who set it.
#[derive(Clone, PartialEq)]
pub struct SecretRow {
    pub name: String,
    pub key_id: String,
    /// Nonce, ciphertext and tag (see `coordinator::secrets`).
    pub sealed: Vec<u8>,
    /// Which nodes may receive it; `None`: every node.
    pub scope: Option<crate::model::Target>,
    pub set_by: String,
    /// Milliseconds since the epoch.
    pub set_at: i64,
}

impl std::fmt::Debug for SecretRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretRow").field("name", &self.name).field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

/// One change to the stored secrets.
#[derive(Debug, Clone, PartialEq)]
pub enum SecretChange {
    /// Insert, or replace the row of that name whole.
    Put(SecretRow),
    /// Remove the row of that name (absent: nothing to do).
    Delete(String),
}

/// The writer's connection to the store: applies jobs in one transaction per call.
pub trait WriteSession: Send {
    /// Applies `writes` in order in one transaction and commits it durably. On an error,
    /// nothing of this call is committed.
    fn commit(&mut self, writes: &mut dyn Iterator<Item = &Write>) -> Result<(), StoreError>;
}

/// Filters and cursor of a page of the task list (newest first).
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub status: Option<TaskStatus>,
    pub node: Option<String>,
    pub skill: Option<String>,
    /// Only tasks older than this seq (the cursor).
    pub before_seq: Option<i64>,
    pub limit: u32,
}

/// Which events a reader wants; every field set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    pub task: Option<String>,
    pub node: Option<String>,
    pub skill: Option<String>,
    pub kind: Option<EventKind>,
    pub schedule: Option<String>,
}

impl EventFilter {
    pub fn matches(&self, e: &Event) -> bool {
        let same = |want: &Option<String>, have: &Option<String>| want.is_none() || want == have;
        same(&self.task, &e.task_id)
            && same(&self.node, &e.node_id)
            && same(&self.skill, &e.skill)
            && self.kind.is_none_or(|k| k == e.kind)
            && same(&self.schedule, &e.schedule_id)
    }
}

/// A task's kept output as stored.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Tail {
    /// The kept attempt and the number of its first line (None when it printed nothing).
    pub attempt: Option<(u32, u64)>,
    /// The number of the first kept line.
    pub first_kept: Option<u64>,
    /// The lines numbered above the `after` asked for, oldest first.
    pub lines: Vec<OutputLine>,
}

impl Tail {
    /// Lines of the kept attempt were dropped.
    pub fn truncated(&self) -> bool {
        matches!((self.attempt, self.first_kept), (Some((_, first_seq)), Some(first)) if first > first_seq)
    }
}

/// What a worker needs of a task it is handed beyond what memory holds.
#[derive(Debug, Clone, PartialEq)]
pub struct HandoutText {
    pub name: String,
    pub description: String,
    pub parameters: Value,
}

/// Where the coordinator's state is kept.
pub trait Store: Send + Sync + 'static {
    /// Where the data is, for messages (`./data/cluster.db`; never a password).
    fn location(&self) -> String;

    /// Every node, the active tasks and their kept output, and where task seqs and event
    /// ids go on.
    fn snapshot(&self) -> Result<Snapshot, StoreError>;

    /// The writer's session (called once, at start). A store shared by several coordinators
    /// ([`Store::lease`]) fences it: its commits succeed only while the lease's epoch is still
    /// `epoch`; a store of one coordinator gets `None`.
    fn write_session(&self, epoch: Option<u64>) -> Result<Box<dyn WriteSession>, StoreError>;

    /// The leader lease, for a store several coordinators may share (PostgreSQL); `None`
    /// for a store that one process holds alone (SQLite's file lock).
    fn lease(&self) -> Option<&dyn Lease> {
        None
    }

    /// One task as stored, with its history (`events`, oldest first) when `with_events`.
    fn task(&self, task_id: &str, with_events: bool) -> Result<Option<Task>, StoreError>;

    /// The task submitted with this idempotency key.
    fn task_by_idempotency_key(&self, key: &str) -> Result<Option<Task>, StoreError>;

    /// A page of tasks, newest first, each with its seq (submission order: the cursor).
    /// Every filter combination must cost the page, not the number of stored tasks.
    fn tasks(&self, filter: &ListFilter) -> Result<Vec<(i64, Task)>, StoreError>;

    /// Name, description and parameters of these tasks, by id (missing ones are left out).
    fn handout_texts(&self, task_ids: &[String]) -> Result<HashMap<String, HandoutText>, StoreError>;

    /// How many tasks are in each status, every status present (zeros included).
    fn count_by_status(&self) -> Result<BTreeMap<String, u64>, StoreError>;

    /// Up to `limit` events after `after` that match `filter`, oldest first.
    fn events_after(&self, after: u64, filter: &EventFilter, limit: u32) -> Result<Vec<Event>, StoreError>;

    /// The lowest and the highest stored event id (`None`: no events).
    fn event_bounds(&self) -> Result<Option<(u64, u64)>, StoreError>;

    /// A task's kept output, the lines numbered above `after`.
    fn output(&self, task_id: &str, after: u64) -> Result<Tail, StoreError>;

    /// Every stored cluster secret (sealed), at start.
    fn secrets(&self) -> Result<Vec<SecretRow>, StoreError>;
    /// A pushed skill's package (the tar's bytes) by its digest.
    fn skill_package(&self, digest: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Up to `limit` runs of a schedule numbered below `before` (all when `None`), newest
    /// first, each with the stored status of its task (none once the task is purged).
    fn schedule_runs(&self, schedule_id: &str, before: Option<u64>, limit: u32)
    -> Result<Vec<ScheduleRun>, StoreError>;

    /// A consistent copy of everything committed so far, in a new file that the caller
    /// streams and then removes.
    fn backup(&self) -> Result<PathBuf, StoreError>;
}

/// The coordinator that leads a shared store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leader {
    /// Its `coordinator.id`.
    pub id: String,
    /// Where clients reach it (`coordinator.advertise_url`).
    pub url: String,
    /// The fencing epoch of its lease.
    pub epoch: u64,
}

/// The answer to a claim of the lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The lease is ours at this epoch (one more than the last holder's).
    Won(u64),
    /// Somebody else holds a lease that has not run out (None: the lease is free or run out
    /// but another claim was first).
    Held(Option<Leader>),
}

/// A lease that makes one of several coordinators the leader, with a fencing epoch.
///
/// Invariants a store keeps: the epoch only goes up, by one per claim won; a claim wins
/// only when the lease is free, its holder has not renewed it for its time to live (by
/// the store's one clock), or the claimant is the holder (a coordinator restarting after a
/// crash: its old session is fenced by the new epoch all the same); and a write session fenced at an epoch commits nothing once the
/// epoch has moved on — the check runs inside the session's transaction, under a lock that
/// a claim must wait for. The holder decides by its own monotonic clock when its lease may
/// have run out (counted from when it sent the last renewal that succeeded).
pub trait Lease: Send + Sync {
    /// Claims the lease for `id` (reached at `url`), for `ttl` from now.
    fn claim(&self, id: &str, url: &str, ttl: std::time::Duration) -> Result<Claim, StoreError>;
    /// Renews the lease held at `epoch` for `ttl` from now; `false` when it was taken over.
    fn renew(&self, epoch: u64, ttl: std::time::Duration) -> Result<bool, StoreError>;
    /// Gives the lease up at a clean stop, so that a standby takes over at once.
    fn release(&self, epoch: u64) -> Result<(), StoreError>;
    /// Who leads now (None: nobody holds a lease that has not run out).
    fn leader(&self) -> Result<Option<Leader>, StoreError>;
}

/// Runs `f` on the store on tokio's blocking pool.
pub async fn blocking<T, F>(store: &Arc<dyn Store>, f: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
{
    let store = store.clone();
    tokio::task::spawn_blocking(move || f(&*store))
        .await
        .map_err(|e| StoreError::Backend(format!("database task failed: {e}").into()))?
}
