//! The coordinator's in-memory state: the node registry, the active tasks, the pending
//! queue and the deadline timers, behind one `std::sync::Mutex`.
//!
//! Invariants:
//! - The mutex is never held across an `.await`; every method here is synchronous.
//! - Every change a client must be able to rely on is queued to the store [`Writer`] inside
//!   the same critical section that changes memory, so the disk sees changes in memory
//!   order. Handlers answer after [`State::barrier`] resolves.
//! - `tasks` holds only active tasks (pending, scheduled, running); ended tasks live in the
//!   store alone. A pending task is in `queue` when it is ready, or waits for its retry
//!   timer; every scheduled or running task is in its node's `assigned` set and nowhere else.
//! - Timers are lazy: a node has at most one deadline timer; when it fires early (the node
//!   heartbeated since), it is pushed again at the node's current deadline.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::metrics::Metrics;
use super::queue::PendingQueue;
use crate::config::{Config, Strategy};
use crate::model::TaskEvent;
use crate::store::nodes::NodeRecord;
use crate::store::tasks::TaskRecord;
use crate::store::{Pending, WriteOp, Writer};

/// The settings the state machine uses, copied from the config.
#[derive(Debug, Clone)]
pub struct Settings {
    pub heartbeat_timeout: Duration,
    pub strategy: Strategy,
    pub default_timeout: Duration,
    pub default_max_retries: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// How long a just-assigned or just-started task may be missing from a worker's report
    /// before it counts as lost (reports and assignments cross on the wire).
    pub reconcile_grace: Duration,
    /// How long past its timeout a running attempt may stay silent before the coordinator
    /// gives up on it (the worker enforces the timeout itself; this is the backstop).
    pub attempt_grace: Duration,
}

impl Settings {
    pub fn from_config(c: &Config) -> Settings {
        let heartbeat_timeout = c.coordinator.heartbeat_timeout.get();
        Settings {
            heartbeat_timeout,
            strategy: c.coordinator.scheduling_strategy,
            default_timeout: c.coordinator.default_task_timeout.get(),
            default_max_retries: c.coordinator.default_max_retries,
            backoff_base: c.coordinator.retry_backoff_base.get(),
            backoff_max: c.coordinator.retry_backoff_max.get(),
            reconcile_grace: (c.worker.heartbeat_interval.get() * 2).max(Duration::from_secs(5)),
            attempt_grace: heartbeat_timeout.max(Duration::from_secs(30)),
        }
    }
}

/// One registered node.
#[derive(Debug)]
pub struct NodeEntry {
    /// The durable part.
    pub record: NodeRecord,
    /// A heartbeat arrived within heartbeat_timeout.
    pub online: bool,
    /// When the node goes offline unless it heartbeats.
    pub deadline: Instant,
    /// A deadline timer for this node is in the heap.
    pub deadline_armed: bool,
    /// Since when the node is offline (wall ms), for messages.
    pub offline_since: Option<i64>,
    /// Tasks scheduled or running here.
    pub assigned: BTreeSet<String>,
    /// Wakes this node's long poll.
    pub wake: Arc<Notify>,
}

impl NodeEntry {
    pub fn running(&self) -> u32 {
        self.assigned.len() as u32
    }

    pub fn free_slots(&self) -> u32 {
        self.record.max_concurrent_tasks.saturating_sub(self.running())
    }

    /// Online, not drained, with a free slot.
    pub fn accepts_work(&self) -> bool {
        self.online && !self.record.draining && self.free_slots() > 0
    }

    pub fn has_skills(&self, skills: &[String]) -> bool {
        skills.iter().all(|s| self.record.available_skills.iter().any(|a| a == s))
    }
}

/// A deadline the timer loop acts on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Timer {
    /// A node's heartbeat deadline.
    NodeDeadline(String),
    /// A pending task's retry becomes due.
    RetryDue(String),
    /// The backstop for an attempt that never reports.
    AttemptDeadline(String, u32),
}

/// Everything behind the coordinator's mutex.
pub struct State {
    pub settings: Settings,
    pub writer: Writer,
    pub metrics: Arc<Metrics>,
    pub nodes: BTreeMap<String, NodeEntry>,
    /// Node secret hash → node id.
    pub secrets: HashMap<String, String>,
    /// Active tasks by id.
    pub tasks: HashMap<String, TaskRecord>,
    /// Pending tasks ready to be placed.
    pub queue: PendingQueue,
    /// Idempotency key → task id, for every task in the store.
    pub idempotency: HashMap<String, String>,
    pub next_seq: i64,
    pub timers: BinaryHeap<Reverse<(Instant, Timer)>>,
    /// Wakes the timer loop when a new earliest deadline is pushed.
    pub timer_wake: Arc<Notify>,
    /// Clients waiting for a task to end.
    pub waiters: HashMap<String, watch::Sender<bool>>,
    pub rr_cursor: usize,
    /// Nodes whose liveness figures changed since the last flush.
    pub dirty: HashSet<String>,
    /// Writes queued so far: a handler compares it before and after to know whether it
    /// changed anything it must wait for. (A Cell: writes are queued through `&self`.)
    pub writes: std::cell::Cell<u64>,
}

impl State {
    pub fn new(settings: Settings, writer: Writer, metrics: Arc<Metrics>) -> State {
        State {
            settings,
            writer,
            metrics,
            nodes: BTreeMap::new(),
            secrets: HashMap::new(),
            tasks: HashMap::new(),
            queue: PendingQueue::default(),
            idempotency: HashMap::new(),
            next_seq: 1,
            timers: BinaryHeap::new(),
            timer_wake: Arc::new(Notify::new()),
            waiters: HashMap::new(),
            rr_cursor: 0,
            dirty: HashSet::new(),
            writes: std::cell::Cell::new(0),
        }
    }

    /// Queues a write (in memory order).
    pub fn write(&self, op: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<()> + Send + 'static) {
        let op: WriteOp = Box::new(op);
        self.writes.set(self.writes.get() + 1);
        self.writer.queue_detached(op);
    }

    /// Resolves once everything queued so far is committed.
    pub fn barrier(&self) -> Pending {
        self.writer.queue(Box::new(|_| Ok(())))
    }

    /// Queues the task's row and, if given, an event.
    pub fn write_task(&self, task: &TaskRecord, event: Option<TaskEvent>) {
        let task = task.clone();
        self.write(move |c| {
            crate::store::tasks::update(c, &task)?;
            if let Some(e) = event {
                crate::store::tasks::add_event(c, &task.task_id, &e)?;
            }
            Ok(())
        });
    }

    /// Queues the node's row (with its status as of now).
    pub fn write_node(&self, node_id: &str) {
        if let Some(entry) = self.nodes.get(node_id) {
            let mut record = entry.record.clone();
            record.status = State::status_of(entry).to_string();
            self.write(move |c| crate::store::nodes::upsert(c, &record));
        }
    }

    pub fn push_timer(&mut self, at: Instant, timer: Timer) {
        let earliest = self.timers.peek().map(|Reverse((t, _))| *t);
        self.timers.push(Reverse((at, timer)));
        if earliest.is_none_or(|e| at < e) {
            self.timer_wake.notify_one();
        }
        // Timers of ended tasks stay in the heap until they fire; keep their number
        // proportional to the live state rather than to the task rate times the timeout.
        if self.timers.len() > 2 * (self.tasks.len() + self.nodes.len()) + 4096 {
            self.compact_timers();
        }
    }

    /// Drops timers that can no longer do anything.
    fn compact_timers(&mut self) {
        let (tasks, nodes) = (&self.tasks, &self.nodes);
        self.timers.retain(|Reverse((_, timer))| match timer {
            Timer::NodeDeadline(n) => nodes.get(n).is_some_and(|n| n.deadline_armed),
            Timer::RetryDue(t) => tasks.get(t).is_some_and(|t| t.status == crate::model::TaskStatus::Pending),
            Timer::AttemptDeadline(t, a) => {
                tasks.get(t).is_some_and(|t| t.attempt == *a && t.status != crate::model::TaskStatus::Pending)
            }
        });
    }

    /// The next deadline, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((t, _))| *t)
    }

    /// Pops every timer due at `now`.
    pub fn take_due(&mut self, now: Instant) -> Vec<Timer> {
        let mut due = Vec::new();
        while let Some(Reverse((at, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            if let Some(Reverse((_, timer))) = self.timers.pop() {
                due.push(timer);
            }
        }
        due
    }

    /// Tells waiters that a task ended.
    pub fn notify_ended(&mut self, task_id: &str) {
        if let Some(tx) = self.waiters.remove(task_id) {
            let _ = tx.send(true);
        }
    }

    /// A receiver that changes when the task ends (the task must be active).
    pub fn wait_for(&mut self, task_id: &str) -> watch::Receiver<bool> {
        self.waiters.entry(task_id.to_string()).or_insert_with(|| watch::channel(false).0).subscribe()
    }
}

/// An event for a task's history.
pub fn event(task: &TaskRecord, name: &str, node: Option<&str>, message: Option<String>, at_ms: i64) -> TaskEvent {
    TaskEvent {
        at: crate::model::Timestamp(at_ms),
        event: name.to_string(),
        status: task.status,
        attempt: task.attempt,
        node_id: node.map(str::to_string),
        message,
    }
}

/// The moment an operation happens: monotonic for deadlines, wall clock for records.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub at: Instant,
    pub ms: i64,
}

impl Now {
    pub fn get() -> Now {
        Now { at: Instant::now(), ms: crate::util::now_ms() }
    }
}
