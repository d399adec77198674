//! The coordinator's state machine: the node registry, the active tasks with their pending
//! queue, and the deadline timers. Every door into the cluster (HTTP handlers, MCP, NATS,
//! the dashboard, the background loops) goes through [`Core`]'s transition methods, via
//! [`super::Cluster::mutate`]; nothing else touches this state.
//!
//! Invariants:
//! - The owners of the data keep it consistent: [`registry::Registry`] (nodes, the secret
//!   and skill indexes), [`tasks::Tasks`] (active tasks, the pending queue, waiters) and
//!   [`timers::Timers`], [`schedules::Schedules`]; their fields are private to their files. The transitions are
//!   methods of [`Core`] beside them: [`nodes`] (registration, heartbeats, liveness),
//!   [`tasks`] (the task lifecycle), [`scheduler`] (placement), [`output`] (task output).
//! - Durability cannot be forgotten: the only mutable access to a task's state or a node's
//!   durable record marks it dirty in its owner, and [`Core::take_batch`] turns everything
//!   dirty, plus new tasks and recorded events, into one [`Batch`] of store writes. The
//!   caller queues the batch inside the same critical section, so the disk sees changes in
//!   memory order, and answers after its commit.
//! - A task is in exactly one place: pending (in the queue, or waiting for its retry
//!   timer), or scheduled/running in its node's `assigned` set. Ended tasks live in the
//!   store only.
//! - Every transition is synchronous and takes the moment it happens ([`Now`]): no clock
//!   is read inside, so tests drive it with simulated time. The one source of chance (the
//!   `random` placement strategy) is the core's own generator, which tests seed.

pub mod links;
pub mod nodes;
pub mod output;
pub mod registry;
pub mod scheduler;
pub mod schedules;
pub mod skill_pushes;
pub mod tasks;
pub mod timers;
pub mod validate;

mod queue;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::time::Instant;

use super::metrics::Metrics;
use crate::config::{Config, Strategy};
use crate::model::{ErrorCode, Event, NodeTransition, TaskState, TaskTransition, Timestamp, Transition, short_digest};

use output::{Kept, OutputWrite};
use registry::{Liveness, NodeRecord};
use tasks::{ActiveTask, NewTask};

pub use registry::Registry;
pub use tasks::Tasks;
pub use timers::{Timer, Timers};

/// Why a transition or a read was refused: a stable code (what clients branch on) and a
/// message that says what to do.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
}

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Error {
        Error { code, message: message.into() }
    }

    /// A field of a request that is not acceptable.
    pub fn invalid(field: &str, message: impl std::fmt::Display) -> Error {
        Error::new(ErrorCode::BadRequest, format!("{field}: {message}"))
    }

    pub fn unknown_node(node_id: &str) -> Error {
        Error::new(
            ErrorCode::UnknownNode,
            format!("no node `{node_id}` is registered (see GET /api/v1/nodes or `openclaw nodes`)"),
        )
    }

    pub fn unknown_task(task_id: &str) -> Error {
        Error::new(
            ErrorCode::UnknownTask,
            format!(
                "no task {task_id}: see `openclaw tasks list` (ended tasks are purged after storage.task_retention_days)"
            ),
        )
    }
}

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
    /// The most nodes the registry holds (`coordinator.max_nodes`).
    pub max_nodes: usize,
    /// How much of each task's output is kept (`coordinator.output_tail_bytes`).
    pub output_tail_bytes: u64,
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
            max_nodes: c.coordinator.max_nodes,
            output_tail_bytes: c.coordinator.output_tail_bytes,
        }
    }
}

/// The moment a transition happens: monotonic for deadlines, wall clock for records.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub at: Instant,
    pub ms: i64,
}

impl Now {
    pub fn get() -> Now {
        Now { at: Instant::now(), ms: crate::util::now_ms() }
    }

    /// `d` later (tests move time with it).
    pub fn after(self, d: Duration) -> Now {
        Now { at: self.at + d, ms: self.ms + d.as_millis() as i64 }
    }
}

/// An event as a transition records it; it gets its id when the batch is taken.
#[derive(Debug, Clone)]
struct Draft {
    at: i64,
    event: Transition,
    task_id: Option<String>,
    node_id: Option<String>,
    schedule_id: Option<String>,
    status: String,
    attempt: Option<u32>,
    skill: Option<String>,
    message: Option<String>,
}

/// What one or more transitions changed, and the events they recorded: plain data that
/// a store writes in one transaction (see `coordinator::store`), in field order.
#[derive(Debug, Default)]
pub struct Batch {
    /// Tasks submitted (their state is `TaskState::default()`, pending, until a later
    /// entry of `task_states`).
    pub new_tasks: Vec<NewTask>,
    /// The whole state of each task that changed, as it is now (ended ones included).
    pub task_states: Vec<(String, TaskState)>,
    /// The whole durable record of each node that changed (its status as of now).
    pub nodes: Vec<NodeRecord>,
    /// Nodes removed from the registry.
    pub forgotten: Vec<String>,
    /// Events, numbered in the order they happened.
    pub events: Vec<Event>,
    /// Output lines of running attempts (no events: they are not transitions).
    pub output: Vec<OutputWrite>,
    /// Schedules changed or removed, and their runs (written before the events).
    pub schedules: schedules::ScheduleWrites,
    /// New skill packages, then changed pushes (written before the events); boxed, and
    /// absent when none, to keep every batch small.
    pub skill_pushes: Option<Box<skill_pushes::PushWrites>>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.new_tasks.is_empty()
            && self.task_states.is_empty()
            && self.nodes.is_empty()
            && self.forgotten.is_empty()
            && self.events.is_empty()
            && self.output.is_empty()
            && self.schedules.is_empty()
            && self.skill_pushes.is_none()
    }
}

/// What the coordinator loads from its store at start: every node, the active tasks, and
/// where the task and event numbering continues.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub nodes: Vec<NodeRecord>,
    /// Tasks not yet ended, in submission order.
    pub tasks: Vec<ActiveTask>,
    /// The highest task seq in use (0: none).
    pub max_seq: i64,
    /// The highest event id in use (0: none).
    pub max_event: u64,
    /// The kept output of the active tasks.
    pub outputs: Vec<Kept>,
    /// Every schedule.
    pub schedules: Vec<schedules::ScheduleRecord>,
    /// Every skill push, and the digest and size of every stored package.
    pub skill_pushes: Vec<skill_pushes::PushRecord>,
    pub skill_packages: Vec<(String, u64)>,
}

/// Everything behind the coordinator's mutex.
pub struct Core {
    settings: Settings,
    registry: Registry,
    tasks: Tasks,
    timers: Timers,
    schedules: schedules::Schedules,
    pushes: skill_pushes::SkillPushes,
    metrics: Arc<Metrics>,
    /// The next task's place in submission order.
    next_seq: i64,
    /// The next event's id.
    next_event: u64,
    /// Events recorded since the last batch.
    drafts: Vec<Draft>,
    /// Output received since the last batch.
    output: Vec<OutputWrite>,
    /// Chance, for the `random` strategy: seeded from the OS, or by a test.
    rng: StdRng,
    /// The skill names with drift as of the last skills change (a `skill_drift` event is
    /// recorded when a name joins).
    drifted: std::collections::BTreeSet<String>,
    /// During a dependent submission: the statuses of the ended tasks it depends on.
    ended_parents: links::Known,
}

impl Core {
    /// An empty state machine; `next_seq` and `next_event` continue the store's numbering.
    pub fn new(settings: Settings, metrics: Arc<Metrics>, next_seq: i64, next_event: u64) -> Core {
        Core {
            settings,
            registry: Registry::default(),
            tasks: Tasks::default(),
            timers: Timers::default(),
            schedules: schedules::Schedules::default(),
            pushes: Default::default(),
            metrics,
            next_seq: next_seq.max(1),
            next_event: next_event.max(1),
            drafts: Vec::new(),
            output: Vec::new(),
            rng: StdRng::from_rng(&mut rand::rng()),
            drifted: Default::default(),
            ended_parents: Default::default(),
        }
    }

    /// Makes the placements that depend on chance repeatable (simulations).
    #[cfg(test)]
    pub(super) fn seed(&mut self, seed: u64) {
        self.rng = StdRng::seed_from_u64(seed);
    }

    /// The state a store holds, as a coordinator starting on it sees it: known nodes
    /// offline until they heartbeat, attempts of unknown nodes lost.
    pub fn restore(settings: Settings, metrics: Arc<Metrics>, snapshot: Snapshot, now: Now) -> Core {
        let mut core = Core::new(settings, metrics, snapshot.max_seq + 1, snapshot.max_event + 1);
        for node in snapshot.nodes {
            core.restore_node(node, now);
        }
        // Drift that was there before the restart was told then.
        core.drifted = core.registry.drifted();
        for task in snapshot.tasks {
            core.restore_task(task, now);
        }
        core.relink(now);
        for schedule in snapshot.schedules {
            core.restore_schedule(schedule);
        }
        core.pushes = skill_pushes::SkillPushes::restore(snapshot.skill_pushes, snapshot.skill_packages);
        for kept in &snapshot.outputs {
            if let Some(ring) = core.tasks.output_ring(&kept.task_id) {
                *ring = Some(Box::new(output::OutputRing::restore(kept)));
            }
        }
        core
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn timers(&self) -> &Timers {
        &self.timers
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn tasks(&self) -> &Tasks {
        &self.tasks
    }

    /// Everything changed since the last call, as one batch of writes (`None`: nothing).
    pub fn take_batch(&mut self) -> Option<Batch> {
        let (new_tasks, task_states) = self.tasks.take_dirty();
        let nodes = self.registry.take_dirty();
        let forgotten = self.registry.take_forgotten();
        let events: Vec<Event> = self
            .drafts
            .drain(..)
            .map(|d| {
                let id = self.next_event;
                self.next_event += 1;
                Event {
                    id,
                    at: Timestamp(d.at),
                    kind: d.event.kind(),
                    event: d.event,
                    task_id: d.task_id,
                    node_id: d.node_id,
                    schedule_id: d.schedule_id,
                    status: d.status,
                    attempt: d.attempt,
                    skill: d.skill,
                    message: d.message,
                }
            })
            .collect();
        let output = std::mem::take(&mut self.output);
        let schedules = self.schedules.take_writes();
        let skill_pushes = Some(self.pushes.take_writes()).filter(|w| !w.is_empty()).map(Box::new);
        let batch = Batch { new_tasks, task_states, nodes, forgotten, events, output, schedules, skill_pushes };
        (!batch.is_empty()).then_some(batch)
    }

    /// The liveness figures changed since the last call, for a batched write.
    pub fn take_liveness(&mut self) -> Vec<Liveness> {
        self.registry.take_liveness()
    }

    /// Records a task event (its status and attempt are the task's now).
    fn task_event(
        &mut self,
        task_id: &str,
        event: TaskTransition,
        node: Option<&str>,
        message: Option<String>,
        now: Now,
    ) {
        let Some((state, skill)) = self.tasks.state_and_skill(task_id) else { return };
        self.drafts.push(Draft {
            at: now.ms,
            event: event.into(),
            task_id: Some(task_id.to_string()),
            node_id: node.map(str::to_string),
            schedule_id: None,
            status: state.status.as_str().to_string(),
            attempt: Some(state.attempt),
            skill: Some(skill),
            message,
        });
    }

    /// Records a node event (its status is the node's now).
    fn node_event(&mut self, node_id: &str, event: NodeTransition, message: Option<String>, now: Now) {
        let status =
            self.registry.status(node_id).map(|s| s.as_str().to_string()).unwrap_or_else(|| "forgotten".into());
        self.drafts.push(Draft {
            at: now.ms,
            event: event.into(),
            task_id: None,
            node_id: Some(node_id.to_string()),
            schedule_id: None,
            status,
            attempt: None,
            skill: None,
            message,
        });
    }

    /// After `node_id`'s skills changed: a `skill_drift` event for each skill name whose
    /// nodes now differ and did not before, naming the node that made it so and every
    /// node's digest.
    fn note_drift(&mut self, node_id: &str, now: Now) {
        let drifted = self.registry.drifted();
        let new: Vec<String> = drifted.difference(&self.drifted).cloned().collect();
        if !new.is_empty() {
            let view = self.registry.skills();
            for name in new {
                let Some(skill) = view.skills.iter().find(|s| s.name == name) else { continue };
                let copies: Vec<String> = skill
                    .nodes
                    .iter()
                    .filter_map(|n| n.digest.as_deref().map(|d| format!("{} {}", n.node_id, short_digest(d))))
                    .collect();
                let message = format!("skill '{name}' differs across nodes: {}", copies.join(", "));
                tracing::warn!(target: "openclaw::coordinator", node_id, skill = %name, "{message}");
                let status = self.registry.status(node_id).map(|s| s.as_str().to_string()).unwrap_or_default();
                self.drafts.push(Draft {
                    at: now.ms,
                    event: NodeTransition::SkillDrift.into(),
                    task_id: None,
                    node_id: Some(node_id.to_string()),
                    status,
                    attempt: None,
                    skill: Some(name),
                    message: Some(message),
                    schedule_id: None,
                });
            }
        }
        self.drifted = drifted;
    }

    /// Acts on every timer and fires every schedule due at `now`; returns the next
    /// deadline (a schedule's due time, on the wall clock, as a monotonic instant).
    pub fn fire_timers(&mut self, now: Now) -> Option<Instant> {
        for timer in self.timers.take_due(now.at) {
            match timer {
                Timer::NodeDeadline(node) => self.node_deadline(&node, now),
                Timer::RetryDue(task) => self.retry_due(&task, now),
                Timer::AttemptDeadline(task, attempt) => self.attempt_deadline(&task, attempt, now),
            }
        }
        self.fire_schedules(now);
        let schedule = self.schedules.next_fire().map(|ms| now.at + Duration::from_millis((ms - now.ms).max(0) as u64));
        match (self.timers.next(), schedule) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Pushes a timer, dropping dead ones when the heap grows past the live state.
    fn push_timer(&mut self, at: Instant, timer: Timer) {
        self.timers.push(at, timer);
        if self.timers.len() > 2 * (self.tasks.len() + self.registry.len()) + 4096 {
            let (tasks, registry) = (&self.tasks, &self.registry);
            self.timers.retain(|t| match t {
                Timer::NodeDeadline(n) => registry.deadline_armed(n),
                Timer::RetryDue(t) => tasks.is_waiting_for_retry(t),
                Timer::AttemptDeadline(t, a) => tasks.is_on_attempt(t, *a),
            });
        }
    }
}
