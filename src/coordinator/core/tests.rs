//! State-machine tests: the transitions driven directly, with simulated time, no processes
//! and no sleeps. Every batch a transition produces is written through the store seam, as
//! the coordinator's writer writes it, to a real SQLite file at the current schema, so
//! "memory equals what a reload from the store gives" is checked against the real store
//! code. Another store runs the same tests by giving [`Sim::on`] its own [`Store`].

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use serde_json::json;

use super::nodes::Registrant;
use super::tasks::{Cancel, Report};
use super::validate::task_spec;
use super::{Core, Error, Now, Settings};
use crate::config::Strategy as Placement;
use crate::coordinator::metrics::Metrics;
use crate::coordinator::store::{Store, Write, WriteSession};
use crate::model::{
    ErrorCode, HeartbeatRequest, NodeCounters, NodeSpec, OnParentFailure, Outcome, Priority, RegisterRequest,
    ResultReport, SkillContent, SubmitTask, Target, TaskRef, TaskState, TaskStatus,
};

fn settings() -> Settings {
    Settings {
        heartbeat_timeout: Duration::from_secs(10),
        strategy: Placement::LeastLoaded,
        default_timeout: Duration::from_secs(60),
        default_max_retries: 2,
        backoff_base: Duration::from_secs(1),
        backoff_max: Duration::from_secs(4),
        reconcile_grace: Duration::from_secs(5),
        attempt_grace: Duration::from_secs(30),
        max_nodes: 8,
        output_tail_bytes: 64 * 1024,
    }
}

/// A state machine, the moment it lives in, and the store its batches go to.
struct Sim {
    core: Core,
    now: Now,
    store: Arc<dyn Store>,
    /// The writer's session: every batch goes through it, one transaction each.
    session: Box<dyn WriteSession>,
    /// The seed of the core's chance (the `random` strategy): every run places alike.
    seed: u64,
    /// What the store needs kept while it is used (its folder).
    _keep: Box<dyn std::any::Any>,
}

impl Sim {
    fn new() -> Sim {
        Sim::with(settings())
    }

    /// A simulation with these settings, on a new store (SQLite, or PostgreSQL with
    /// `OPENCLAW_TEST_STORE=postgres`: see `store::testing`).
    fn with(settings: Settings) -> Sim {
        let (store, keep) = crate::store::testing::new_store();
        Sim::on(settings, store, keep)
    }

    /// A simulation on `store` (empty), which lives as long as `keep`.
    fn on(settings: Settings, store: Arc<dyn Store>, keep: Box<dyn std::any::Any>) -> Sim {
        let epoch = crate::store::testing::lead(&*store);
        let session = store.write_session(epoch).unwrap();
        let mut core = Core::new(settings, Arc::new(Metrics::new()), 1, 1);
        core.seed(0);
        Sim { core, now: Now::get(), store, session, seed: 0, _keep: keep }
    }

    /// Seeds the core's chance.
    fn seed(&mut self, seed: u64) {
        self.seed = seed;
        self.core.seed(seed);
    }

    /// Writes what the last transitions changed, as the writer would.
    fn commit(&mut self) {
        if let Some(batch) = self.core.take_batch() {
            self.session.commit(&mut std::iter::once(&Write::Batch(batch))).unwrap();
        }
    }

    fn advance(&mut self, d: Duration) {
        self.now = self.now.after(d);
        self.core.fire_timers(self.now);
        self.commit();
    }

    fn register(&mut self, id: &str, skills: &[&str], max: u32) -> Result<String, Error> {
        self.register_as(Registrant::Join, id, skills, max)
    }

    fn register_as(&mut self, who: Registrant, id: &str, skills: &[&str], max: u32) -> Result<String, Error> {
        self.register_node(who, id, skills, max, "linux", &[])
    }

    /// Registers a node of a platform with tags.
    fn register_node(
        &mut self,
        who: Registrant,
        id: &str,
        skills: &[&str],
        max: u32,
        platform: &str,
        tags: &[&str],
    ) -> Result<String, Error> {
        let req = RegisterRequest {
            node_id: Some(id.into()),
            hostname: format!("{id}.local"),
            platform: platform.into(),
            arch: "x64".into(),
            available_skills: skills.iter().map(|s| s.to_string()).collect(),
            max_concurrent_tasks: Some(max),
            tags: Some(tags.iter().map(|t| t.to_string()).collect()),
            ..Default::default()
        };
        let r = self.core.register(req, who, None, self.now);
        self.commit();
        r.map(|r| r.node_secret)
    }

    fn heartbeat(&mut self, node: &str, held: Option<Vec<TaskRef>>) -> Result<Vec<TaskRef>, Error> {
        let req = HeartbeatRequest { held_tasks: held, ..Default::default() };
        let r = self.core.heartbeat(node, req, self.now);
        self.commit();
        r.map(|r| r.cancel)
    }

    fn submit_with(&mut self, req: SubmitTask) -> String {
        let spec = task_spec(req, "test", self.core.settings()).unwrap();
        let id = self.core.submit(spec, self.now);
        self.commit();
        id
    }

    fn submit(&mut self, skills: &[&str]) -> String {
        self.submit_with(SubmitTask {
            name: "t".into(),
            required_skills: skills.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        })
    }

    fn state(&self, id: &str) -> TaskState {
        match self.core.tasks.get(id) {
            Some(t) => t.state.clone(),
            None => self.store.task(id, false).unwrap().expect("task in the store").state,
        }
    }

    fn start(&mut self, node: &str, id: &str) -> Result<Report, Error> {
        let attempt = self.state(id).attempt;
        let r = self.core.start(node, id, attempt, self.now);
        self.commit();
        r
    }

    fn report(&mut self, node: &str, id: &str, outcome: Outcome, retry_after: Option<f64>) -> Result<Report, Error> {
        let report = ResultReport {
            attempt: self.state(id).attempt,
            outcome,
            result: Some(json!({"by": node})),
            error: (outcome != Outcome::Completed).then(|| "it broke".to_string()),
            duration_ms: 10,
            retry_after,
            permanent: false,
        };
        let r = self.core.result(node, id, report, self.now);
        self.commit();
        r
    }

    fn cancel(&mut self, id: &str) -> Cancel {
        let c = self.core.cancel(id, self.now);
        self.commit();
        c
    }

    /// The coordinator restarted on its store.
    fn reload(&mut self) {
        let snapshot = self.store.snapshot().unwrap();
        self.core = Core::restore(self.core.settings().clone(), Arc::new(Metrics::new()), snapshot, self.now);
        self.seed(self.seed + 1);
        self.commit();
    }

    fn events(&self, id: &str) -> Vec<String> {
        let task = self.store.task(id, true).unwrap().expect("task in the store");
        task.events.unwrap_or_default().into_iter().map(|e| e.event).collect()
    }
}

/// The durable part of a node, as memory and the store must agree on it.
#[derive(Debug, PartialEq)]
struct DurableNode {
    spec: NodeSpec,
    counters: NodeCounters,
    draining: bool,
    incarnation: u64,
    secret_hash: String,
}

/// Memory's durable state: nodes and active tasks.
fn durable(core: &Core) -> (BTreeMap<String, DurableNode>, BTreeMap<String, TaskState>) {
    let nodes = core
        .registry
        .inspect()
        .into_iter()
        .map(|(r, _, _)| {
            let node = DurableNode {
                spec: r.spec.clone(),
                counters: r.counters,
                draining: r.draining,
                incarnation: r.incarnation,
                secret_hash: r.secret_hash.clone(),
            };
            (r.node_id.clone(), node)
        })
        .collect();
    let tasks = core.tasks.inspect().into_iter().map(|(t, _)| (t.task_id.to_string(), t.state.clone())).collect();
    (nodes, tasks)
}

/// The invariants that hold after every transition.
fn check_invariants(sim: &Sim) {
    let core = &sim.core;
    let mut holders: HashMap<&str, Vec<&str>> = HashMap::new();
    for (record, _, assigned) in core.registry.inspect() {
        for t in assigned {
            holders.entry(t.as_str()).or_default().push(&record.node_id);
        }
    }
    for (task, queued) in core.tasks.inspect() {
        let s = &task.state;
        let on: Vec<&str> = holders.get(&*task.task_id).cloned().unwrap_or_default();
        let group = task.links.as_ref().is_some_and(|l| l.group.is_some());
        for w in &s.waiting_for {
            assert!(core.tasks.get(w).is_some(), "task {} waits for {w}, which is not active", task.task_id);
        }
        match s.status {
            _ if group => {
                assert_eq!(s.status, TaskStatus::Running, "group {} is not running", task.task_id);
                assert!(on.is_empty() && !queued, "group {} was placed", task.task_id);
                assert!(!s.waiting_for.is_empty(), "group {} waits for no child but has not ended", task.task_id);
            }
            TaskStatus::Pending if !s.waiting_for.is_empty() => {
                assert!(!queued && on.is_empty(), "task {} is placed while it waits", task.task_id);
            }
            TaskStatus::Pending => {
                assert!(on.is_empty(), "pending task {} is assigned to {on:?}", task.task_id);
                assert!(s.assigned_node.is_none(), "pending task {} names a node", task.task_id);
                // In the queue, or waiting for its retry timer: never both, never neither
                // (a task waiting with no timer would wait for ever).
                let waiting = s.next_attempt_at.is_some_and(|t| t.0 > sim.now.ms);
                assert!(queued || waiting || s.next_attempt_at.is_some(), "pending task {} is nowhere", task.task_id);
            }
            TaskStatus::Scheduled | TaskStatus::Running => {
                assert!(!queued, "placed task {} is still queued", task.task_id);
                let node = s.assigned_node.as_deref().expect("a placed task names its node");
                assert_eq!(on, vec![node], "task {} is held by {on:?}, not exactly by {node}", task.task_id);
            }
            ended => panic!("ended task {} ({ended}) is still in memory", task.task_id),
        }
    }
    for (record, _, assigned) in core.registry.inspect() {
        for t in assigned {
            let task = core.tasks.get(t).unwrap_or_else(|| panic!("node {} holds unknown task {t}", record.node_id));
            assert_eq!(task.state.assigned_node.as_deref(), Some(record.node_id.as_str()));
            if let Some(target) = &task.target {
                let spec = &record.spec;
                assert!(
                    target.admits(&record.node_id, &spec.platform, &spec.tags, &spec.skill_digests),
                    "task {t} placed outside {target}"
                );
            }
        }
    }
    // Memory equals the store: what a reload gives.
    let snapshot = sim.store.snapshot().unwrap();
    let reloaded = Core::restore(core.settings().clone(), Arc::new(Metrics::new()), snapshot, sim.now);
    let (mem_nodes, mem_tasks) = durable(core);
    let (disk_nodes, disk_tasks) = durable(&reloaded);
    for (task, _) in core.tasks.inspect() {
        let disk = reloaded.tasks.get(&task.task_id).map(|t| &t.target);
        assert_eq!(Some(&task.target), disk, "task {}'s target differs in the store", task.task_id);
    }
    assert_eq!(mem_nodes, disk_nodes, "nodes in memory and in the store differ");
    for (id, state) in &mem_tasks {
        let disk = disk_tasks.get(id).unwrap_or_else(|| panic!("active task {id} is not active in the store"));
        // A reload loses attempts whose node is gone; everything else is as stored.
        if core.registry.contains(state.assigned_node.as_deref().unwrap_or("")) || state.assigned_node.is_none() {
            assert_eq!(state, disk, "task {id} differs between memory and the store");
        }
    }
    assert_eq!(mem_tasks.len(), disk_tasks.len(), "active task sets differ");
}

#[test]
fn submit_place_start_complete() {
    let mut sim = Sim::new();
    sim.register("a", &["x"], 2).unwrap();
    let id = sim.submit(&["x"]);
    assert_eq!(sim.state(&id).status, TaskStatus::Scheduled);
    assert_eq!(sim.state(&id).assigned_node.as_deref(), Some("a"));
    let (handouts, cancels) = sim.core.poll("a", &[]);
    assert_eq!((handouts.len(), cancels.len()), (1, 0));
    assert_eq!(handouts[0].attempt, 1);
    assert!(matches!(sim.start("a", &id).unwrap(), Report::Done(_)));
    assert_eq!(sim.state(&id).status, TaskStatus::Running);
    sim.report("a", &id, Outcome::Completed, None).unwrap();
    check_invariants(&sim);
    assert!(sim.core.tasks.get(&id).is_none(), "an ended task leaves memory");
    let stored = sim.state(&id);
    assert_eq!((stored.status, stored.result), (TaskStatus::Completed, Some(json!({"by": "a"}))));
    assert_eq!(sim.events(&id), ["submitted", "scheduled", "running", "completed"]);
}

#[test]
fn a_failure_is_retried_after_a_backoff_on_another_node_then_ends_failed() {
    let mut sim = Sim::new();
    sim.register("a", &["x"], 1).unwrap();
    let id = sim.submit(&["x"]);
    sim.register("b", &["x"], 1).unwrap();
    sim.start("a", &id).unwrap();
    sim.report("a", &id, Outcome::Failed, None).unwrap();
    let s = sim.state(&id);
    assert_eq!((s.status, s.retry_count, s.failed_on.clone()), (TaskStatus::Pending, 1, vec!["a".to_string()]));
    check_invariants(&sim);
    sim.advance(Duration::from_secs(5));
    let s = sim.state(&id);
    assert_eq!((s.status, s.assigned_node.as_deref(), s.attempt), (TaskStatus::Scheduled, Some("b"), 2));
    // Fails on b too: with both nodes tried, the next retry may go anywhere.
    sim.start("b", &id).unwrap();
    sim.report("b", &id, Outcome::Failed, None).unwrap();
    sim.heartbeat("a", None).unwrap();
    sim.heartbeat("b", None).unwrap();
    sim.advance(Duration::from_secs(5));
    let node = sim
        .state(&id)
        .assigned_node
        .unwrap_or_else(|| panic!("{:?} {:?}", sim.state(&id), sim.core.registry.inspect()));
    sim.start(&node, &id).unwrap();
    sim.report(&node, &id, Outcome::Failed, None).unwrap();
    let s = sim.state(&id);
    assert_eq!((s.status, s.retry_count), (TaskStatus::Failed, 2));
    assert!(s.error.unwrap().contains("after 3 attempts"));
    check_invariants(&sim);
}

#[test]
fn a_permanent_failure_and_a_rate_limit_spend_no_retries() {
    let mut sim = Sim::new();
    sim.register("a", &["x"], 1).unwrap();
    let id = sim.submit(&["x"]);
    sim.start("a", &id).unwrap();
    sim.report("a", &id, Outcome::Failed, Some(2.0)).unwrap();
    assert_eq!((sim.state(&id).status, sim.state(&id).retry_count), (TaskStatus::Pending, 0));
    sim.advance(Duration::from_secs(3));
    sim.start("a", &id).unwrap();
    let report = ResultReport {
        attempt: 2,
        outcome: Outcome::Failed,
        result: None,
        error: Some("bad request".into()),
        duration_ms: 1,
        retry_after: None,
        permanent: true,
    };
    sim.core.result("a", &id, report, sim.now).unwrap();
    sim.commit();
    let s = sim.state(&id);
    assert_eq!((s.status, s.retry_count), (TaskStatus::Failed, 0), "a permanent failure spends no retry");
    assert!(s.error.unwrap().contains("permanent"));
    check_invariants(&sim);
}

#[test]
fn reports_are_fenced_by_node_and_attempt() {
    let mut sim = Sim::new();
    sim.register("a", &["x"], 1).unwrap();
    sim.register("b", &["x"], 1).unwrap();
    let id = sim.submit(&["x"]);
    let node = sim
        .state(&id)
        .assigned_node
        .unwrap_or_else(|| panic!("{:?} {:?}", sim.state(&id), sim.core.registry.inspect()));
    let other = if node == "a" { "b" } else { "a" };
    let err = sim.core.start(other, &id, 1, sim.now).unwrap_err();
    assert_eq!(err.code, ErrorCode::StaleAttempt);
    let err = sim.core.start(&node, &id, 2, sim.now).unwrap_err();
    assert_eq!(err.code, ErrorCode::StaleAttempt);
    sim.start(&node, &id).unwrap();
    sim.report(&node, &id, Outcome::Completed, None).unwrap();
    // A repeat after the end is found in the store by the caller.
    assert_eq!(sim.report(&node, &id, Outcome::Completed, None).unwrap(), Report::NotActive);
}

#[test]
fn a_batch_of_reports_is_one_transition_fenced_report_by_report() {
    let mut sim = Sim::new();
    sim.register("a", &["x"], 2).unwrap();
    let (t1, t2, t3) = (sim.submit(&["x"]), sim.submit(&["x"]), sim.submit(&["x"]));
    assert_eq!(sim.state(&t3).status, TaskStatus::Pending, "two slots");
    let starts = [TaskRef { task_id: t1.clone(), attempt: 1 }, TaskRef { task_id: t2.clone(), attempt: 9 }];
    let done = |attempt| ResultReport {
        attempt,
        outcome: Outcome::Completed,
        result: Some(json!({"ok": true})),
        error: None,
        duration_ms: 1,
        retry_after: None,
        permanent: false,
    };
    let results = vec![(t1.clone(), done(1)), ("task_nope".to_string(), done(1))];
    let (started, ended) = sim.core.reports("a", &starts, results, sim.now);
    sim.commit();
    assert!(matches!(started[0], Ok(Report::Done(_))), "{started:?}");
    assert_eq!(started[1].as_ref().unwrap_err().code, ErrorCode::StaleAttempt);
    assert!(matches!(&ended[0], Ok(Report::Done(r)) if r.status == TaskStatus::Completed), "{ended:?}");
    assert_eq!(ended[1].as_ref().unwrap(), &Report::NotActive, "the caller looks in the store");
    assert_eq!(sim.state(&t1).status, TaskStatus::Completed);
    assert_eq!(sim.state(&t2).status, TaskStatus::Scheduled, "the stale start changed nothing");
    assert_eq!(sim.state(&t3).status, TaskStatus::Scheduled, "the freed slot was filled in the same transition");
    assert_eq!(sim.events(&t1), ["submitted", "scheduled", "running", "completed"]);
    check_invariants(&sim);
}

#[test]
fn an_unreported_attempt_is_lost_after_the_grace_and_requeued() {
    let mut sim = Sim::new();
    sim.register("a", &["x"], 1).unwrap();
    let id = sim.submit(&["x"]);
    sim.start("a", &id).unwrap();
    // Within the grace, a report that misses the task changes nothing.
    sim.heartbeat("a", Some(vec![])).unwrap();
    assert_eq!(sim.state(&id).status, TaskStatus::Running);
    sim.now = sim.now.after(Duration::from_secs(6));
    let cancels = sim.heartbeat("a", Some(vec![TaskRef { task_id: "task_ghost".into(), attempt: 1 }])).unwrap();
    assert_eq!(cancels, vec![TaskRef { task_id: "task_ghost".into(), attempt: 1 }], "unknown work is stopped");
    let s = sim.state(&id);
    assert_eq!((s.status, s.retry_count), (TaskStatus::Pending, 1), "a started attempt that vanished counts");
    assert!(s.error.unwrap().contains("no longer reports it"));
    check_invariants(&sim);
}

#[test]
fn cancel_pending_at_once_and_running_through_the_worker() {
    let mut sim = Sim::new();
    let waiting = sim.submit(&["nobody-has-it"]);
    assert_eq!(sim.cancel(&waiting), Cancel::Ended);
    assert_eq!(sim.state(&waiting).status, TaskStatus::Cancelled);
    sim.register("a", &["x"], 1).unwrap();
    let id = sim.submit(&["x"]);
    sim.start("a", &id).unwrap();
    assert_eq!(sim.cancel(&id), Cancel::Requested);
    assert!(sim.state(&id).cancel_requested);
    let (_, cancels) = sim.core.poll("a", &[TaskRef { task_id: id.clone(), attempt: 1 }]);
    assert_eq!(cancels.len(), 1, "the worker is told");
    // However the attempt ends afterwards, the task ends cancelled, not retried.
    sim.report("a", &id, Outcome::Failed, None).unwrap();
    assert_eq!(sim.state(&id).status, TaskStatus::Cancelled);
    assert_eq!(sim.cancel(&id), Cancel::NotActive);
    check_invariants(&sim);
}

#[test]
fn a_silent_node_goes_offline_at_its_deadline_and_its_work_moves() {
    let mut sim = Sim::new();
    sim.register("a", &["x"], 1).unwrap();
    let id = sim.submit(&["x"]);
    sim.register("b", &["x"], 1).unwrap();
    sim.start("a", &id).unwrap();
    sim.advance(Duration::from_secs(9));
    sim.heartbeat("b", None).unwrap();
    assert_eq!(sim.core.registry.status("a"), Some(crate::model::NodeStatus::Busy));
    sim.advance(Duration::from_secs(2));
    assert_eq!(sim.core.registry.status("a"), Some(crate::model::NodeStatus::Offline));
    let s = sim.state(&id);
    assert_eq!((s.status, s.retry_count), (TaskStatus::Pending, 1));
    sim.advance(Duration::from_secs(5));
    assert_eq!(sim.state(&id).assigned_node.as_deref(), Some("b"));
    check_invariants(&sim);
}

#[test]
fn drain_stops_placement_and_undrain_resumes_it() {
    let mut sim = Sim::new();
    sim.register("a", &["x"], 1).unwrap();
    sim.core.set_draining("a", true, sim.now).unwrap();
    sim.commit();
    let id = sim.submit(&["x"]);
    assert_eq!(sim.state(&id).status, TaskStatus::Pending);
    let reason = sim.core.live(&id, sim.now.ms).unwrap().1.unwrap();
    assert!(reason.contains("draining"), "{reason}");
    sim.core.set_draining("a", false, sim.now).unwrap();
    sim.commit();
    assert_eq!(sim.state(&id).status, TaskStatus::Scheduled);
    check_invariants(&sim);
}

#[test]
fn priorities_first_fifo_within_one_and_nobodys_tasks_do_not_block() {
    let mut sim = Sim::new();
    let blocked = sim.submit_with(SubmitTask {
        name: "c".into(),
        required_skills: vec!["nobody".into()],
        priority: Some(Priority::Critical),
        ..Default::default()
    });
    let low = sim.submit_with(SubmitTask {
        name: "l".into(),
        required_skills: vec!["x".into()],
        priority: Some(Priority::Low),
        ..Default::default()
    });
    let first = sim.submit(&["x"]);
    let second = sim.submit(&["x"]);
    let high = sim.submit_with(SubmitTask {
        name: "h".into(),
        required_skills: vec!["x".into()],
        priority: Some(Priority::High),
        ..Default::default()
    });
    sim.register("a", &["x"], 1).unwrap();
    let mut order = Vec::new();
    for _ in 0..4 {
        let running: Vec<String> = sim.core.poll("a", &[]).0.into_iter().map(|h| h.task_id).collect();
        let id = running[0].clone();
        order.push(id.clone());
        sim.start("a", &id).unwrap();
        sim.report("a", &id, Outcome::Completed, None).unwrap();
    }
    assert_eq!(order, vec![high, first, second, low]);
    assert_eq!(sim.state(&blocked).status, TaskStatus::Pending);
    assert_eq!(sim.core.tasks.queued(), (1, 1), "the unplaceable group is parked");
    // A node with the skill unparks it.
    sim.register("b", &["nobody"], 1).unwrap();
    assert_eq!(sim.state(&blocked).assigned_node.as_deref(), Some("b"));
    check_invariants(&sim);
}

#[test]
fn restart_reload_keeps_work_and_loses_only_what_cannot_be_known() {
    let mut sim = Sim::new();
    let secret = sim.register("a", &["x"], 2).unwrap();
    let running = sim.submit(&["x"]);
    let scheduled = sim.submit(&["x"]);
    let waiting = sim.submit(&["y"]);
    sim.start("a", &running).unwrap();
    sim.reload();
    check_invariants(&sim);
    assert_eq!(sim.core.registry.status("a"), Some(crate::model::NodeStatus::Offline), "offline until it heartbeats");
    assert_eq!(sim.core.registry.node_of_secret(&crate::util::hash_secret(&secret)), Some("a"));
    assert_eq!(sim.state(&running).status, TaskStatus::Running);
    assert_eq!(sim.state(&scheduled).status, TaskStatus::Scheduled);
    assert_eq!(sim.state(&waiting).status, TaskStatus::Pending);
    // The node comes back within its deadline: nothing is lost.
    let held =
        vec![TaskRef { task_id: running.clone(), attempt: 1 }, TaskRef { task_id: scheduled.clone(), attempt: 1 }];
    sim.heartbeat("a", Some(held)).unwrap();
    assert_eq!(sim.state(&running).attempt, 1);
    // A new task continues the numbering.
    let next = sim.submit(&["y"]);
    let seqs: Vec<i64> = [&waiting, &next].iter().map(|id| sim.core.tasks.get(id).unwrap().seq).collect();
    assert!(seqs[1] > seqs[0], "{seqs:?}");
    check_invariants(&sim);
}

#[test]
fn identity_the_join_token_takes_new_or_offline_nodes_only() {
    let mut sim = Sim::new();
    let secret = sim.register("a", &["x"], 1).unwrap();
    // Until its worker uses the secret, the answer may have been lost: the join token may
    // register the node again (a coordinator that stopped before answering).
    let secret = {
        let _ = secret;
        sim.register("a", &["x"], 1).expect("an unused secret: the registration's answer may have been lost")
    };
    sim.heartbeat("a", None).unwrap();
    let err = sim.register("a", &["x"], 1).unwrap_err();
    assert_eq!(err.code, ErrorCode::NodeIdInUse);
    let owner = sim.core.registry.node_of_secret(&crate::util::hash_secret(&secret)).map(str::to_string);
    let again = sim.register_as(Registrant::Node(owner.unwrap()), "a", &["x"], 1).unwrap();
    sim.heartbeat("a", None).unwrap();
    let err = sim.register_as(Registrant::Node("a".into()), "b", &["x"], 1).unwrap_err();
    assert_eq!(err.code, ErrorCode::Forbidden);
    sim.register_as(Registrant::Admin, "a", &["x"], 1).unwrap();
    assert!(sim.core.registry.node_of_secret(&crate::util::hash_secret(&again)).is_none(), "rotated");
    sim.advance(Duration::from_secs(11));
    sim.register("a", &["x"], 1).expect("an offline node may be taken by the join token");
    check_invariants(&sim);
}

#[test]
fn the_node_cap_refuses_new_ids_but_not_known_ones() {
    let mut sim = Sim::new();
    for i in 0..8 {
        sim.register(&format!("n{i}"), &[], 1).unwrap();
    }
    assert_eq!(sim.register("n8", &[], 1).unwrap_err().code, ErrorCode::NodeLimit);
    sim.register_as(Registrant::Admin, "n0", &[], 1).expect("a known node registers again");
}

#[test]
fn the_scheduler_never_looks_at_parked_groups() {
    let mut sim = Sim::new();
    sim.register("a", &["x"], 100).unwrap();
    for i in 0..200 {
        sim.submit(&[&format!("nobody-{i}")]);
    }
    assert_eq!(sim.core.tasks.queued(), (200, 200));
    assert_eq!(sim.core.tasks.queue().active_heads().count(), 0);
    let id = sim.submit(&["x"]);
    assert_eq!(sim.state(&id).status, TaskStatus::Scheduled);
    check_invariants(&sim);
}

fn on(target: Target, skills: &[&str]) -> SubmitTask {
    SubmitTask {
        name: "t".into(),
        required_skills: skills.iter().map(|s| s.to_string()).collect(),
        target: Some(target),
        ..Default::default()
    }
}

#[test]
fn a_target_limits_placement_to_the_nodes_it_admits_without_blocking_others() {
    let mut sim = Sim::new();
    sim.register_node(Registrant::Join, "lin", &["x"], 4, "linux", &["gpu"]).unwrap();
    sim.register_node(Registrant::Join, "lin2", &["x"], 4, "linux", &[]).unwrap();
    // A node target beats the strategy's choice (lin2 is as idle as lin).
    let pinned = sim.submit_with(on(Target { node: Some("lin2".into()), ..Default::default() }, &["x"]));
    assert_eq!(sim.state(&pinned).assigned_node.as_deref(), Some("lin2"));
    let tagged = sim.submit_with(on(Target { tags: vec!["gpu".into()], ..Default::default() }, &["x"]));
    assert_eq!(sim.state(&tagged).assigned_node.as_deref(), Some("lin"));
    // Nobody matches: the task waits, says why, and its group is parked, so it blocks
    // nothing behind it.
    let mac = sim.submit_with(SubmitTask {
        priority: Some(Priority::Critical),
        ..on(Target { platform: Some("MacOS".into()), ..Default::default() }, &["x"])
    });
    assert_eq!(sim.state(&mac).status, TaskStatus::Pending);
    let reason = sim.core.live(&mac, sim.now.ms).unwrap().1.unwrap();
    assert_eq!(
        reason,
        "no node with 'x' matches the target (platform `macos`); nodes with it: lin (linux), lin2 (linux)"
    );
    let later = sim.submit(&["x"]);
    assert_eq!(sim.state(&later).status, TaskStatus::Scheduled, "the unmatched target blocks nothing");
    assert_eq!(sim.core.tasks.queued(), (1, 1), "its group is parked");
    // A node it admits unparks it; another platform's node with the skill does not.
    sim.register_node(Registrant::Join, "win", &["x"], 1, "windows", &[]).unwrap();
    assert_eq!(sim.state(&mac).status, TaskStatus::Pending);
    sim.register_node(Registrant::Join, "mac", &["x"], 1, "macos", &[]).unwrap();
    assert_eq!(sim.state(&mac).assigned_node.as_deref(), Some("mac"));
    check_invariants(&sim);
    // The target survives a restart of the coordinator.
    let waiting = sim.submit_with(on(Target { node: Some("elsewhere".into()), ..Default::default() }, &["x"]));
    sim.reload();
    assert_eq!(
        sim.core.tasks.get(&waiting).unwrap().target.as_deref(),
        Some(&Target { node: Some("elsewhere".into()), ..Default::default() })
    );
    check_invariants(&sim);
}

#[test]
fn a_target_is_checked_and_an_empty_one_means_anywhere() {
    let settings = settings();
    let spec = |t: Target| task_spec(on(t, &["x"]), "test", &settings);
    assert_eq!(spec(Target::default()).unwrap().target, None);
    let t = spec(Target { platform: Some(" Linux ".into()), tags: vec!["a".into(), "a".into()], ..Default::default() })
        .unwrap()
        .target
        .unwrap();
    assert_eq!((t.platform.as_deref(), t.tags), (Some("linux"), vec!["a".to_string()]));
    let e = spec(Target { node: Some("a/b".into()), ..Default::default() }).unwrap_err();
    assert!(e.message.starts_with("target.node:"), "{e}");
    let e = spec(Target { tags: vec!["".into()], ..Default::default() }).unwrap_err();
    assert!(e.message.starts_with("target.tags"), "{e}");
}

/// `unplaceable` says why when no online, undrained node can ever take the task now, and
/// nothing when one could (even a full one).
#[test]
fn unplaceable_names_why_and_ignores_nodes_that_are_only_full() {
    let mut sim = Sim::new();
    let spec = |skills: &[&str], target: Option<Target>| {
        let req = SubmitTask { target, ..on(Target::default(), skills) };
        task_spec(req, "test", &settings()).unwrap()
    };
    assert_eq!(sim.core.unplaceable(&spec(&["ocr"], None), sim.now.ms).unwrap(), "no node has skill 'ocr'");
    sim.register("gpu", &["ocr"], 1).unwrap();
    assert_eq!(sim.core.unplaceable(&spec(&["ocr"], None), sim.now.ms), None);
    sim.submit(&["ocr"]);
    assert_eq!(sim.core.unplaceable(&spec(&["ocr"], None), sim.now.ms), None, "full is not unplaceable");
    let elsewhere = Some(Target { node: Some("cpu".into()), ..Default::default() });
    let why = sim.core.unplaceable(&spec(&["ocr"], elsewhere), sim.now.ms).unwrap();
    assert!(why.starts_with("no node with 'ocr' matches the target (node `cpu`)"), "{why}");
    sim.advance(Duration::from_secs(11));
    sim.advance(Duration::from_secs(3 * 3600));
    let why = sim.core.unplaceable(&spec(&["ocr"], None), sim.now.ms).unwrap();
    assert_eq!(why, "no online node has 'ocr' (gpu has it, offline for 3h)");
}

fn placing(strategy: Placement) -> Sim {
    Sim::with(Settings { strategy, ..settings() })
}

impl Sim {
    /// Submits `req` and returns the node it was placed on.
    fn place(&mut self, req: SubmitTask) -> String {
        let id = self.submit_with(req);
        self.state(&id).assigned_node.unwrap_or_else(|| panic!("task {id} was not placed: {:?}", self.state(&id)))
    }

    /// Places `n` tasks needing `x` and returns where each went.
    fn place_many(&mut self, n: usize) -> Vec<String> {
        (0..n).map(|_| self.place(needs(&["x"]))).collect()
    }

    /// A heartbeat with these usage figures.
    fn usage(&mut self, node: &str, cpu: f64, memory: f64) {
        let req = HeartbeatRequest { cpu_usage: cpu, memory_usage: memory, ..Default::default() };
        self.core.heartbeat(node, req, self.now).unwrap();
        self.commit();
    }
}

/// A task needing `skills`.
fn needs(skills: &[&str]) -> SubmitTask {
    SubmitTask {
        name: "t".into(),
        required_skills: skills.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// least_loaded: the lowest share of its slots in use (not the fewest tasks), then the
/// most optional skills, then the fewest running tasks.
#[test]
fn least_loaded_takes_the_lowest_share_of_slots_in_use() {
    let mut sim = placing(Placement::LeastLoaded);
    sim.register("big", &["x"], 10).unwrap();
    sim.register("small", &["x"], 2).unwrap();
    // big at 2/10 is less loaded than small at 1/2; at 5/10 against 1/2 the fewer running
    // tasks win.
    assert_eq!(sim.place_many(7), names(&["big", "small", "big", "big", "big", "big", "small"]));
    // Optional skills break a tie of load.
    let mut sim = placing(Placement::LeastLoaded);
    sim.register("a", &["x"], 4).unwrap();
    sim.register("b", &["x", "gpu"], 4).unwrap();
    assert_eq!(sim.place(SubmitTask { optional_skills: names(&["gpu"]), ..needs(&["x"]) }), "b");
    assert_eq!(sim.place(needs(&["x"])), "a", "b has one running");
    check_invariants(&sim);
}

/// round_robin: each eligible node in turn; nodes without the skills or full are not in
/// the turn.
#[test]
fn round_robin_takes_each_eligible_node_in_turn() {
    let mut sim = placing(Placement::RoundRobin);
    // Unequal sizes: the turn ignores load (least_loaded would skip r2 the second time).
    for (id, max) in [("r1", 10), ("r2", 3), ("r3", 10)] {
        sim.register(id, &["x"], max).unwrap();
    }
    sim.register("other", &["y"], 10).unwrap();
    let seen = sim.place_many(6);
    let first: std::collections::BTreeSet<&String> = seen[..3].iter().collect();
    assert_eq!(first.len(), 3, "three placements, three nodes: {seen:?}");
    assert!((3..6).all(|i| seen[i] == seen[i - 3]), "the same turn again: {seen:?}");
    // A node that becomes full leaves the turn.
    let mut sim = placing(Placement::RoundRobin);
    sim.register("a", &["x"], 1).unwrap();
    sim.register("b", &["x"], 10).unwrap();
    let seen = sim.place_many(4);
    assert_eq!(seen.iter().filter(|n| *n == "a").count(), 1, "a has one slot: {seen:?}");
    check_invariants(&sim);
}

/// random: repeatable from a seed, spread over every eligible node, among those with the
/// most optional skills only.
#[test]
fn random_is_repeatable_from_a_seed_and_spreads_over_the_eligible_nodes() {
    let run = |seed: u64, optional: &[&str]| {
        let mut sim = placing(Placement::Random);
        sim.seed(seed);
        for id in ["n0", "n1", "n2", "n3"] {
            sim.register(id, &["x"], 100).unwrap();
        }
        sim.register("gpu", &["x", "cuda"], 100).unwrap();
        sim.register("other", &["y"], 100).unwrap();
        let seen: Vec<String> =
            (0..60).map(|_| sim.place(SubmitTask { optional_skills: names(optional), ..needs(&["x"]) })).collect();
        check_invariants(&sim);
        seen
    };
    let seen = run(7, &[]);
    assert_eq!(seen, run(7, &[]), "the same seed places alike");
    assert_ne!(seen, run(8, &[]), "another seed places otherwise");
    for id in ["n0", "n1", "n2", "n3", "gpu"] {
        assert!(seen.iter().any(|n| n == id), "{id} never chosen in 60 placements: {seen:?}");
    }
    assert!(!seen.iter().any(|n| n == "other"), "a node without the skill was chosen");
    assert!(run(7, &["cuda"]).iter().all(|n| n == "gpu"), "the only node with the optional skill is preferred");
}

/// best_fit: the most free CPU and memory (and free slots); a full node is no candidate.
#[test]
fn best_fit_takes_the_most_free_cpu_and_memory() {
    let mut sim = placing(Placement::BestFit);
    sim.register("hot", &["x"], 4).unwrap();
    sim.register("cool", &["x"], 4).unwrap();
    sim.usage("hot", 95.0, 90.0);
    sim.usage("cool", 5.0, 10.0);
    assert_eq!(sim.place_many(5), names(&["cool", "cool", "cool", "cool", "hot"]));
    // The figures decide, not the order: cool turns hot.
    let mut sim = placing(Placement::BestFit);
    sim.register("a", &["x"], 4).unwrap();
    sim.register("b", &["x"], 4).unwrap();
    sim.usage("a", 80.0, 80.0);
    sim.usage("b", 10.0, 10.0);
    assert_eq!(sim.place(needs(&["x"])), "b");
    sim.usage("b", 99.0, 99.0);
    assert_eq!(sim.place(needs(&["x"])), "a");
    check_invariants(&sim);
}

/// affinity: the most tags in common with the task's affinity tags, even when busier;
/// then the least loaded.
#[test]
fn affinity_takes_the_most_matching_tags_then_the_least_loaded() {
    let mut sim = placing(Placement::Affinity);
    sim.register_node(Registrant::Join, "plain", &["x"], 4, "linux", &[]).unwrap();
    sim.register_node(Registrant::Join, "gpu", &["x"], 4, "linux", &["gpu"]).unwrap();
    sim.register_node(Registrant::Join, "gpu-fast", &["x"], 4, "linux", &["gpu", "fast"]).unwrap();
    let wants = |tags: &[&str]| SubmitTask { affinity_tags: names(tags), ..needs(&["x"]) };
    assert_eq!(sim.place(wants(&["gpu", "fast"])), "gpu-fast");
    assert_eq!(sim.place(wants(&["gpu", "fast"])), "gpu-fast", "busier, and still the best match");
    assert_eq!(sim.place(wants(&["gpu"])), "gpu", "one tag each: the less loaded");
    assert_eq!(sim.place(wants(&[])), "plain", "no tags asked: the least loaded");
    // gpu-fast 2/4, gpu and plain 1/4 each.
    assert_ne!(sim.place(wants(&["tpu"])), "gpu-fast", "no match anywhere: the least loaded");
    check_invariants(&sim);
}

/// Issue 17, item 5: a skill a node has but cannot run read "no node has skill
/// 'summarize' (`vm` has 'summarize' but cannot run it: …)". It says "cannot run", with
/// the node's reason.
#[test]
fn a_skill_present_but_unavailable_reads_as_cannot_run() {
    let mut sim = Sim::new();
    let req = RegisterRequest {
        node_id: Some("vm".into()),
        hostname: "vm.local".into(),
        platform: "linux".into(),
        arch: "x64".into(),
        available_skills: vec!["echo".into()],
        unavailable_skills: Some([("summarize".to_string(), "the gateway is down".to_string())].into()),
        max_concurrent_tasks: Some(2),
        ..Default::default()
    };
    sim.core.register(req, Registrant::Join, None, sim.now).unwrap();
    sim.commit();
    let spec = |skills: &[&str]| task_spec(on(Target::default(), skills), "test", &settings()).unwrap();
    let why = sim.core.unplaceable(&spec(&["summarize"]), sim.now.ms).unwrap();
    assert_eq!(why, "no node can run 'summarize' now: `vm` has it but cannot run it: the gateway is down");
    let why = sim.core.unplaceable(&spec(&["summarize", "ocr"]), sim.now.ms).unwrap();
    assert_eq!(why, "no node has skill 'ocr'; `vm` has 'summarize' but cannot run it: the gateway is down");
}

/// One step of a random history.
#[derive(Debug, Clone)]
enum Op {
    Register { node: usize, skills: u8, max: u32 },
    Heartbeat { node: usize, honest: bool },
    Submit { skills: u8, priority: u8, retries: u32, on: Option<usize> },
    Start { pick: usize },
    Report { pick: usize, outcome: u8, retry_after: bool },
    Cancel { pick: usize },
    Drain { node: usize, on: bool },
    Leave { node: usize },
    Forget { node: usize },
    Advance { ms: u64 },
    Reload,
}

const NODES: [&str; 4] = ["n0", "n1", "n2", "n3"];
const SKILLS: [&str; 3] = ["s0", "s1", "s2"];

fn skills_of(mask: u8) -> Vec<&'static str> {
    SKILLS.iter().enumerate().filter(|(i, _)| mask & (1 << i) != 0).map(|(_, s)| *s).collect()
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..4usize, 0..8u8, 1..3u32).prop_map(|(node, skills, max)| Op::Register { node, skills, max }),
        (0..4usize, any::<bool>()).prop_map(|(node, honest)| Op::Heartbeat { node, honest }),
        (1..8u8, 0..4u8, 0..3u32, prop::option::of(0..4usize)).prop_map(|(skills, priority, retries, on)| Op::Submit {
            skills,
            priority,
            retries,
            on
        }),
        any::<usize>().prop_map(|pick| Op::Start { pick }),
        (any::<usize>(), 0..4u8, any::<bool>()).prop_map(|(pick, outcome, retry_after)| Op::Report {
            pick,
            outcome,
            retry_after
        }),
        any::<usize>().prop_map(|pick| Op::Cancel { pick }),
        (0..4usize, any::<bool>()).prop_map(|(node, on)| Op::Drain { node, on }),
        (0..4usize).prop_map(|node| Op::Leave { node }),
        (0..4usize).prop_map(|node| Op::Forget { node }),
        (0..15_000u64).prop_map(|ms| Op::Advance { ms }),
        Just(Op::Reload),
    ]
}

/// The active tasks placed on a node, in a stable order.
fn placed(sim: &Sim) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = sim
        .core
        .tasks
        .inspect()
        .into_iter()
        .filter_map(|(t, _)| t.state.assigned_node.clone().map(|n| (t.task_id.to_string(), n)))
        .collect();
    v.sort();
    v
}

fn run(sim: &mut Sim, op: &Op, submitted: &mut Vec<String>) {
    match op.clone() {
        Op::Register { node, skills, max } => {
            let _ = sim.register_as(Registrant::Admin, NODES[node], &skills_of(skills), max);
        }
        Op::Heartbeat { node, honest } => {
            let held = honest.then(|| {
                placed(sim)
                    .into_iter()
                    .filter(|(_, n)| n == NODES[node])
                    .map(|(id, _)| TaskRef { attempt: sim.state(&id).attempt, task_id: id })
                    .collect()
            });
            let _ = sim.heartbeat(NODES[node], held);
        }
        Op::Submit { skills, priority, retries, on } => {
            let id = sim.submit_with(SubmitTask {
                name: "p".into(),
                required_skills: skills_of(skills).iter().map(|s| s.to_string()).collect(),
                priority: Priority::from_number(i64::from(priority)),
                max_retries: Some(retries),
                target: on.map(|n| Target { node: Some(NODES[n].into()), ..Default::default() }),
                ..Default::default()
            });
            submitted.push(id);
        }
        Op::Start { pick } => {
            let p = placed(sim);
            if let Some((id, node)) = p.get(pick % p.len().max(1)) {
                let (id, node) = (id.clone(), node.clone());
                let _ = sim.start(&node, &id);
            }
        }
        Op::Report { pick, outcome, retry_after } => {
            let p = placed(sim);
            if let Some((id, node)) = p.get(pick % p.len().max(1)) {
                let (id, node) = (id.clone(), node.clone());
                let outcome =
                    [Outcome::Completed, Outcome::Failed, Outcome::Timeout, Outcome::Cancelled][outcome as usize];
                let _ = sim.report(&node, &id, outcome, retry_after.then_some(0.5));
            }
        }
        Op::Cancel { pick } => {
            if !submitted.is_empty() {
                let id = submitted[pick % submitted.len()].clone();
                sim.cancel(&id);
            }
        }
        Op::Drain { node, on } => {
            let _ = sim.core.set_draining(NODES[node], on, sim.now);
            sim.commit();
        }
        Op::Leave { node } => {
            let _ = sim.core.node_shutdown(NODES[node], sim.now);
            sim.commit();
        }
        Op::Forget { node } => {
            let _ = sim.core.forget_node(NODES[node], sim.now);
            sim.commit();
        }
        Op::Advance { ms } => sim.advance(Duration::from_millis(ms)),
        Op::Reload => sim.reload(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Any history keeps the invariants after every step, and every task ends up where
    /// its history says.
    #[test]
    fn random_histories_keep_the_invariants(
        strategy in prop::sample::select(&[
            Placement::LeastLoaded,
            Placement::RoundRobin,
            Placement::Random,
            Placement::BestFit,
            Placement::Affinity,
        ][..]),
        ops in prop::collection::vec(op(), 1..60),
    ) {
        let mut sim = placing(strategy);
        let mut submitted = Vec::new();
        for op in &ops {
            run(&mut sim, op, &mut submitted);
            check_invariants(&sim);
        }
        for id in &submitted {
            let stored = sim.state(id);
            let events = sim.events(id);
            prop_assert_eq!(events.first().map(String::as_str), Some("submitted"));
            if stored.status.is_terminal() {
                prop_assert_eq!(events.last().map(String::as_str), Some(stored.status.as_str()));
            }
        }
    }
}

fn content(source: &str, digest: Option<char>) -> SkillContent {
    SkillContent { source: source.into(), digest: digest.map(|c| format!("sha256:{}", c.to_string().repeat(64))) }
}

/// Issue 21, item 1: a node's skill digests are kept with its record (through a restart);
/// they travel with the lists; a heartbeat with the lists but without digests (an older
/// worker) leaves the content unknown; a malformed digest is refused and changes nothing.
#[test]
fn skill_digests_are_kept_per_node_and_checked() {
    let mut sim = Sim::new();
    let digests = |pairs: &[(&str, SkillContent)]| -> BTreeMap<String, SkillContent> {
        pairs.iter().map(|(n, c)| (n.to_string(), c.clone())).collect()
    };
    let req = RegisterRequest {
        node_id: Some("w1".into()),
        hostname: "w1.local".into(),
        platform: "linux".into(),
        arch: "x64".into(),
        available_skills: vec!["echo".into()],
        unavailable_skills: Some([("summarize".to_string(), "the gateway is down".to_string())].into()),
        // A digest for a skill the node does not list describes nothing: dropped.
        skill_digests: Some(digests(&[
            ("echo", content("skills_dir", Some('a'))),
            ("summarize", content("managed", Some('b'))),
            ("ghost", content("managed", Some('c'))),
        ])),
        ..Default::default()
    };
    sim.core.register(req, Registrant::Join, None, sim.now).unwrap();
    sim.commit();
    let kept = |sim: &Sim| sim.core.registry.view("w1").unwrap().spec.skill_digests;
    let first = digests(&[("echo", content("skills_dir", Some('a'))), ("summarize", content("managed", Some('b')))]);
    assert_eq!(kept(&sim), first);

    let bad = HeartbeatRequest {
        available_skills: Some(vec!["echo".into()]),
        skill_digests: Some(digests(&[("echo", content("skills_dir", None)), ("x", content("managed", Some('A')))])),
        ..Default::default()
    };
    let err = sim.core.heartbeat("w1", bad, sim.now).unwrap_err();
    assert!(err.to_string().contains("skill_digests.x.digest"), "{err}");
    assert_eq!(kept(&sim), first);

    let newer = HeartbeatRequest {
        available_skills: Some(vec!["echo".into()]),
        skill_digests: Some(digests(&[("echo", content("skills_dir", Some('d')))])),
        ..Default::default()
    };
    sim.core.heartbeat("w1", newer, sim.now).unwrap();
    sim.commit();
    let second = digests(&[("echo", content("skills_dir", Some('d')))]);
    assert_eq!(kept(&sim), second);
    sim.reload();
    assert_eq!(kept(&sim), second);

    let older_worker = HeartbeatRequest { available_skills: Some(vec!["echo".into()]), ..Default::default() };
    sim.core.heartbeat("w1", older_worker, sim.now).unwrap();
    assert!(kept(&sim).is_empty());
}

/// Issue 21, item 4: a task pinned to a version (`summarize@sha256:…`) is placed only on a
/// node whose copy has that digest, waits with a reason naming the other versions, and bad
/// pins are refused before anything changes.
#[test]
fn pinned_versions_place_only_on_that_content() {
    let mut sim = Sim::new();
    let digest = |c: char| format!("sha256:{}", c.to_string().repeat(64));
    for (node, c) in [("w1", 'a'), ("w2", 'b')] {
        let req = RegisterRequest {
            node_id: Some(node.into()),
            hostname: format!("{node}.local"),
            platform: "linux".into(),
            arch: "x64".into(),
            available_skills: vec!["summarize".into()],
            skill_digests: Some([("summarize".to_string(), content("skills_dir", Some(c)))].into()),
            max_concurrent_tasks: Some(10),
            ..Default::default()
        };
        sim.core.register(req, Registrant::Join, None, sim.now).unwrap();
        sim.commit();
    }
    let pinned = |d: &str| SubmitTask {
        name: "t".into(),
        required_skills: vec![format!("summarize@{d}")],
        ..Default::default()
    };
    for _ in 0..4 {
        assert_eq!(sim.place(pinned(&digest('b'))), "w2");
        assert_eq!(sim.place(pinned(&digest('a'))), "w1");
    }
    let spec = task_spec(pinned(&digest('c')), "test", &settings()).unwrap();
    assert_eq!(spec.required_skills, vec!["summarize".to_string()]);
    let why = sim.core.unplaceable(&spec, sim.now.ms).unwrap();
    assert_eq!(
        why,
        "no node has 'summarize' at sha256:cccccccccccc: w1 has summarize, but a different version (sha256:aaaaaaaaaaaa); \
         w2 has summarize, but a different version (sha256:bbbbbbbbbbbb)"
    );

    let refused = |req: SubmitTask| task_spec(req, "test", &settings()).unwrap_err().to_string();
    // Half a digest is part of a name (as the document's name rule says): no node has it.
    let half = task_spec(pinned("sha256:abc"), "test", &settings()).unwrap();
    assert_eq!(half.required_skills, vec!["summarize@sha256:abc".to_string()]);
    let two = SubmitTask {
        required_skills: vec![format!("summarize@{}", digest('a')), format!("summarize@{}", digest('b'))],
        ..pinned(&digest('a'))
    };
    assert!(refused(two).contains("pinned to two versions"));
    let bad = SubmitTask {
        target: Some(Target { digests: [("ocr".to_string(), "sha256:abc".to_string())].into(), ..Default::default() }),
        ..pinned(&digest('a'))
    };
    assert!(refused(bad).contains("target.digests.ocr"));
}

mod schedules {
    //! Schedules on simulated time: DST in a time zone, exactly once per due time across a
    //! crash, catch-up and overlap policies.

    use super::*;
    use crate::coordinator::core::schedules::{When, parse_cron, parse_tz};
    use crate::model::{CatchUp, NewSchedule, Overlap, RunOutcome, ScheduleStatus};

    fn ms(text: &str) -> i64 {
        crate::util::parse_rfc3339(text).unwrap()
    }

    fn cron(expr: &str, tz: &str) -> When {
        When::Cron(Box::new(parse_cron(expr).unwrap()), parse_tz(tz).unwrap())
    }

    /// New York springs forward on 2026-03-08 (02:00 → 03:00) and falls back on
    /// 2026-11-01 (01:00-02:00 twice): a 02:30 job runs at the first instant after the gap,
    /// a 01:30 job runs once, on the first 01:30.
    #[test]
    fn cron_follows_dst_as_cron_users_expect() {
        let spring = cron("30 2 * * *", "America/New_York");
        let day_before = ms("2026-03-07T07:30:00Z"); // 02:30 EST on the 7th
        assert_eq!(spring.next_after(day_before, 0), Some(ms("2026-03-08T07:00:00Z")), "03:00 EDT, after the gap");
        assert_eq!(spring.next_after(ms("2026-03-08T07:00:00Z"), 0), Some(ms("2026-03-09T06:30:00Z")), "02:30 EDT");
        let fall = cron("30 1 * * *", "America/New_York");
        let first = fall.next_after(ms("2026-10-31T12:00:00Z"), 0).unwrap();
        assert_eq!(first, ms("2026-11-01T05:30:00Z"), "01:30 EDT, the first of the two");
        assert_eq!(fall.next_after(first, 0), Some(ms("2026-11-02T06:30:00Z")), "not again at 01:30 EST");
        // A job every 30 minutes runs in both halves of the repeated hour.
        let half_hourly = cron("*/30 * * * *", "America/New_York");
        let mut t = ms("2026-11-01T04:59:00Z");
        let mut seen = vec![];
        for _ in 0..5 {
            t = half_hourly.next_after(t, 0).unwrap();
            seen.push(crate::util::rfc3339(t));
        }
        assert_eq!(seen.len(), 5);
        assert!(seen[2].starts_with("2026-11-01T06:00:00"), "{seen:?}");
        // Berlin: the same expression, another zone.
        let berlin = cron("0 7 * * *", "Europe/Berlin");
        assert_eq!(berlin.next_after(ms("2026-07-01T00:00:00Z"), 0), Some(ms("2026-07-01T05:00:00Z")));
        assert_eq!(berlin.next_after(ms("2026-12-01T00:00:00Z"), 0), Some(ms("2026-12-01T06:00:00Z")));
        assert!(parse_tz("Mars/Olympus").unwrap_err().contains("Mars/Olympus"));
        assert!(parse_cron("61 * * * *").is_err());
    }

    #[test]
    fn intervals_and_one_shots() {
        let every = When::Every(600_000);
        assert_eq!(every.next_after(1_000, 1_000), Some(601_000));
        assert_eq!(every.next_after(601_000, 1_000), Some(1_201_000));
        assert_eq!(every.next_after(700_000, 1_000), Some(1_201_000));
        let at = When::At(5_000);
        assert_eq!((at.next_after(4_999, 0), at.next_after(5_000, 0)), (Some(5_000), None));
    }

    fn every(name: &str, interval: &str) -> NewSchedule {
        NewSchedule {
            name: name.into(),
            every: Some(interval.into()),
            task: SubmitTask { name: "t".into(), required_skills: vec!["x".into()], ..Default::default() },
            ..Default::default()
        }
    }

    impl Sim {
        fn schedule(&mut self, req: NewSchedule) -> String {
            let s = self.core.create_schedule(req, self.now).unwrap();
            self.commit();
            s.schedule_id
        }

        fn runs(&self, id: &str) -> Vec<crate::model::ScheduleRun> {
            self.store.schedule_runs(id, None, 1000).unwrap()
        }

        fn fired(&self, id: &str) -> usize {
            self.runs(id).iter().filter(|r| r.outcome == RunOutcome::Fired).count()
        }
    }

    /// A firing whose batch never reached the store (a crash) fires again after the
    /// restart, once; one that was committed does not fire again.
    #[test]
    fn each_due_time_fires_exactly_once_across_restarts() {
        let mut sim = Sim::new();
        let id = sim.schedule(every("tick", "10m"));
        sim.advance(Duration::from_secs(599));
        assert_eq!(sim.fired(&id), 0);
        // Due now, fired in memory, and the coordinator dies before the commit.
        sim.now = sim.now.after(Duration::from_secs(1));
        sim.core.fire_timers(sim.now);
        let _lost = sim.core.take_batch();
        sim.reload();
        sim.core.fire_timers(sim.now);
        sim.commit();
        assert_eq!(sim.fired(&id), 1, "the lost firing happens after the restart");
        let task = sim.runs(&id)[0].task_id.clone().unwrap();
        let origin = sim.store.task(&task, false).unwrap().unwrap().spec.schedule.unwrap();
        assert_eq!((origin.schedule_id.as_str(), origin.name.as_str()), (id.as_str(), "tick"));
        // Committed: a restart does not fire it again.
        sim.reload();
        sim.core.fire_timers(sim.now);
        sim.commit();
        assert_eq!(sim.fired(&id), 1);
        assert_eq!(sim.core.schedule_view(&id).unwrap().runs, 1);
        // The store refuses a second run of one due time (the backstop).
        let mut dup = sim.core.take_batch().unwrap_or_default();
        let run = sim.store.schedule_runs(&id, None, 1).unwrap()[0].clone();
        dup.schedules.runs.push(crate::coordinator::store::RunRecord {
            schedule_id: id.clone(),
            run: 99,
            due_at: run.due_at.map(|t| t.0),
            fired_at: 0,
            outcome: RunOutcome::Fired,
            task_id: None,
            message: None,
        });
        assert!(sim.session.commit(&mut std::iter::once(&Write::Batch(dup))).is_err());
    }

    /// Ten due times pass while the coordinator is down (the newest over a minute ago).
    fn outage(catch_up: CatchUp) -> (Sim, String) {
        let mut sim = Sim::new();
        let id =
            sim.schedule(NewSchedule { catch_up: Some(catch_up), overlap: Some(Overlap::Allow), ..every("m", "2m") });
        sim.now = sim.now.after(Duration::from_secs(20 * 60 + 65));
        sim.reload();
        sim.core.fire_timers(sim.now);
        sim.commit();
        (sim, id)
    }

    #[test]
    fn missed_due_times_follow_catch_up() {
        let (sim, id) = outage(CatchUp::Latest);
        assert_eq!(sim.fired(&id), 1);
        let skipped: Vec<_> = sim.runs(&id).into_iter().filter(|r| r.outcome == RunOutcome::Skipped).collect();
        assert_eq!(skipped.len(), 1);
        assert!(skipped[0].message.as_deref().unwrap().starts_with("9 due time(s)"), "{skipped:?}");
        let (sim, id) = outage(CatchUp::None);
        assert_eq!(sim.fired(&id), 0);
        assert!(sim.runs(&id)[0].message.as_deref().unwrap().contains("10 due time(s)"));
        let (sim, id) = outage(CatchUp::All);
        assert_eq!(sim.fired(&id), 10);
        // Afterwards it is due at the next interval, not at once.
        let next = sim.core.schedule_view(&id).unwrap().next_due.unwrap().0;
        assert!(next > sim.now.ms && next - sim.now.ms <= 120_000);
    }

    #[test]
    fn overlapping_runs_follow_overlap() {
        let mut sim = Sim::new();
        // No node: the first run's task stays pending, so it is still active.
        let skip = sim.schedule(every("skip", "1m"));
        let queue = sim.schedule(NewSchedule { overlap: Some(Overlap::Queue), ..every("queue", "1m") });
        for _ in 0..3 {
            sim.advance(Duration::from_secs(60));
        }
        assert_eq!(sim.fired(&skip), 1);
        assert_eq!(sim.runs(&skip).iter().filter(|r| r.outcome == RunOutcome::Skipped).count(), 2);
        assert_eq!(sim.fired(&queue), 1);
        let view = sim.core.schedule_view(&queue).unwrap();
        assert!(view.queued.is_some() && view.running.is_some());
        // The first run ends: the queued due time fires at once.
        let first = view.running.unwrap();
        sim.cancel(&first);
        assert_eq!(sim.fired(&queue), 2);
        assert_ne!(sim.core.schedule_view(&queue).unwrap().running, Some(first));
    }

    #[test]
    fn bad_definitions_are_named_and_change_nothing() {
        let mut sim = Sim::new();
        let cases: Vec<(NewSchedule, &str)> = vec![
            (NewSchedule { cron: Some("0 7 * * *".into()), ..every("a", "1m") }, "cron: give exactly one"),
            (NewSchedule { every: None, cron: Some("0 7 * *".into()), ..every("a", "1m") }, "cron:"),
            (
                NewSchedule {
                    every: None,
                    cron: Some("0 7 * * *".into()),
                    tz: Some("Europe/Berln".into()),
                    ..every("a", "1m")
                },
                "tz:",
            ),
            (every("a", "0s"), "every:"),
            (every("sched_x", "1m"), "name:"),
            (
                NewSchedule { task: SubmitTask { name: "t".into(), ..Default::default() }, ..every("a", "1m") },
                "task.required_skills",
            ),
        ];
        for (req, want) in cases {
            let e = sim.core.create_schedule(req, sim.now).unwrap_err();
            assert!(e.message.starts_with(want), "{want}: {}", e.message);
        }
        assert!(sim.core.take_batch().is_none());
        sim.schedule(every("a", "1m"));
        assert_eq!(sim.core.create_schedule(every("a", "1m"), sim.now).unwrap_err().code, ErrorCode::ScheduleExists);
    }

    /// A one-shot fires once (at once when its moment has just passed), then is done.
    #[test]
    fn a_one_shot_fires_once_then_is_done() {
        let mut sim = Sim::new();
        let at = crate::model::Timestamp(sim.now.ms - 10_000);
        let id = sim.schedule(NewSchedule { at: Some(at), every: None, ..every("once", "1m") });
        sim.advance(Duration::from_millis(1));
        assert_eq!(sim.fired(&id), 1);
        assert_eq!(sim.runs(&id)[0].due_at, Some(at));
        let view = sim.core.schedule_view(&id).unwrap();
        assert_eq!((view.status, view.next_due), (ScheduleStatus::Done, None));
        sim.advance(Duration::from_secs(3600));
        assert_eq!(sim.fired(&id), 1);
        // Moved to the moment it already fired at: that due time does not run again (the
        // API fuzzer found the double, which the store's unique index refused).
        let edit = crate::model::ScheduleEdit { at: Some(at), ..Default::default() };
        sim.core.edit_schedule(&id, edit, sim.now).unwrap();
        sim.commit();
        sim.advance(Duration::from_secs(1));
        assert_eq!(sim.fired(&id), 1);
        assert_eq!(sim.core.schedule_view(&id).unwrap().status, ScheduleStatus::Done);
    }

    #[test]
    fn pause_resume_edit_remove_and_run_now() {
        let mut sim = Sim::new();
        let id = sim.schedule(every("a", "1m"));
        sim.core.pause_schedule("a", true, sim.now).unwrap();
        sim.commit();
        sim.advance(Duration::from_secs(300));
        assert_eq!(sim.fired(&id), 0);
        assert_eq!(sim.core.schedule_view("a").unwrap().status, ScheduleStatus::Paused);
        let run = sim.core.run_schedule_now("a", sim.now).unwrap();
        sim.commit();
        assert!(run.task_id.is_some() && run.due_at.is_none());
        sim.core.pause_schedule(&id, false, sim.now).unwrap();
        sim.commit();
        let view = sim.core.schedule_view("a").unwrap();
        assert!(view.next_due.unwrap().0 > sim.now.ms, "due times passed while paused do not run");
        let edit =
            crate::model::ScheduleEdit { name: Some("b".into()), every: Some("1h".into()), ..Default::default() };
        let edited = sim.core.edit_schedule("a", edit, sim.now).unwrap();
        sim.commit();
        assert_eq!((edited.spec.name.as_str(), edited.spec.every.as_deref()), ("b", Some("1h")));
        sim.reload();
        assert_eq!(sim.core.schedule_view("b").unwrap().schedule_id, id);
        sim.core.remove_schedule("b", sim.now).unwrap();
        sim.commit();
        sim.reload();
        assert_eq!(sim.core.schedule_view(&id).unwrap_err().code, ErrorCode::UnknownSchedule);
    }
}

// Linked tasks (issue 20): dependencies, fan-out groups.

impl Sim {
    /// Submits a task that depends on others, through the checked door (`known`: what the
    /// store says of the ones not active).
    fn submit_after(&mut self, skills: &[&str], parents: &[&str], policy: OnParentFailure) -> Result<String, Error> {
        let req = SubmitTask {
            name: "child".into(),
            required_skills: skills.iter().map(|s| s.to_string()).collect(),
            depends_on: parents.iter().map(|s| s.to_string()).collect(),
            on_parent_failure: Some(policy),
            ..Default::default()
        };
        let spec = task_spec(req, "test", self.core.settings())?;
        let mut known = super::links::Known::new();
        for p in parents {
            if let Some(t) = self.store.task(p, false).unwrap() {
                known.insert(p.to_string(), t.state.status);
            }
        }
        let r = self.core.submit_dependent(spec, &known, self.now);
        self.commit();
        r
    }

    fn run_to_end(&mut self, node: &str, id: &str, outcome: Outcome) {
        self.start(node, id).unwrap();
        self.report(node, id, outcome, None).unwrap();
    }
}

#[test]
fn a_dependent_waits_names_its_parent_and_runs_after_it_with_the_release_recorded() {
    let mut sim = Sim::new();
    sim.register("w1", &["x"], 4).unwrap();
    let parent = sim.submit(&["x"]);
    let child = sim.submit_after(&["x"], &[&parent], OnParentFailure::Cancel).unwrap();
    check_invariants(&sim);
    assert_eq!(sim.state(&child).status, TaskStatus::Pending);
    assert_eq!(sim.state(&child).waiting_for, vec![parent.clone()]);
    let reason = sim.core.live(&child, sim.now.ms).unwrap().1.unwrap();
    assert_eq!(reason, format!("waiting for task {parent} (scheduled on w1)"));
    sim.start("w1", &parent).unwrap();
    let reason = sim.core.live(&child, sim.now.ms).unwrap().1.unwrap();
    assert!(reason.contains("(running on w1)"), "{reason}");
    sim.report("w1", &parent, Outcome::Completed, None).unwrap();
    check_invariants(&sim);
    assert_eq!(sim.state(&child).status, TaskStatus::Scheduled, "released and placed");
    assert!(sim.state(&child).waiting_for.is_empty());
    assert_eq!(sim.events(&child), vec!["submitted", "released", "scheduled"]);
}

#[test]
fn unknown_parents_are_refused_naming_them_and_nothing_changes() {
    let mut sim = Sim::new();
    let parent = sim.submit(&["x"]);
    let before = sim.core.tasks.len();
    let e = sim.submit_after(&["x"], &[&parent, "task_nope", "task_gone"], OnParentFailure::Cancel).unwrap_err();
    assert_eq!(e.code, ErrorCode::BadRequest);
    assert!(e.message.contains("no task task_nope, task_gone"), "{}", e.message);
    assert!(!e.message.contains(&parent), "{}", e.message);
    assert_eq!(sim.core.tasks.len(), before);
    assert!(sim.core.take_batch().is_none(), "a refused submission wrote something");
}

#[test]
fn a_failed_parent_cancels_its_child_under_cancel_and_releases_it_under_run() {
    let mut sim = Sim::new();
    sim.register("w1", &["x"], 4).unwrap();
    let parent = sim.submit_with(SubmitTask {
        name: "p".into(),
        required_skills: vec!["x".into()],
        max_retries: Some(0),
        ..Default::default()
    });
    let cancelled = sim.submit_after(&["x"], &[&parent], OnParentFailure::Cancel).unwrap();
    let runs = sim.submit_after(&["x"], &[&parent], OnParentFailure::Run).unwrap();
    // A grandchild under cancel: the cancellation cascades, naming its own parent.
    let grandchild = sim.submit_after(&["x"], &[&cancelled], OnParentFailure::Cancel).unwrap();
    sim.run_to_end("w1", &parent, Outcome::Failed);
    check_invariants(&sim);
    let c = sim.state(&cancelled);
    assert_eq!(c.status, TaskStatus::Cancelled);
    let why = c.error.unwrap();
    assert!(
        why.contains(&parent) && why.contains("ended failed") && why.contains("on_parent_failure is cancel"),
        "{why}"
    );
    let g = sim.state(&grandchild);
    assert_eq!(g.status, TaskStatus::Cancelled);
    assert!(g.error.unwrap().contains(&format!("task {cancelled} ended cancelled")));
    assert_eq!(sim.state(&runs).status, TaskStatus::Scheduled, "`run` runs anyway");
    // A parent that had already failed: the new child is cancelled at once (and stored).
    let late = sim.submit_after(&["x"], &[&parent], OnParentFailure::Cancel).unwrap();
    assert_eq!(sim.state(&late).status, TaskStatus::Cancelled);
    let late_run = sim.submit_after(&["x"], &[&parent], OnParentFailure::Run).unwrap();
    assert_eq!(sim.state(&late_run).status, TaskStatus::Scheduled);
    check_invariants(&sim);
}

#[test]
fn cycles_among_new_tasks_are_found_and_named() {
    let needs = |pairs: &[(&str, &[&str])]| -> BTreeMap<String, Vec<String>> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect())).collect()
    };
    assert_eq!(super::links::cycle(&needs(&[("a", &[]), ("b", &["a"]), ("c", &["a", "b"])])), None);
    assert_eq!(
        super::links::cycle(&needs(&[("a", &["c"]), ("b", &["a"]), ("c", &["b"])])),
        Some(vec!["a".into(), "c".into(), "b".into(), "a".into()])
    );
    assert_eq!(super::links::cycle(&needs(&[("a", &["a"])])), Some(vec!["a".into(), "a".into()]));
    // An unknown name is not followed (it is refused on its own).
    assert_eq!(super::links::cycle(&needs(&[("a", &["zz"])])), None);
}

#[test]
fn fan_out_statuses_combine_into_completed_partly_failed_failed_and_cancelled() {
    use super::links::combined;
    use TaskStatus::*;
    assert_eq!(combined(&[Completed, Completed], false), (Outcome::Completed, "completed"));
    assert_eq!(combined(&[Completed, Failed, Timeout], false), (Outcome::Failed, "partly_failed"));
    assert_eq!(combined(&[Failed, Timeout], false), (Outcome::Failed, "failed"));
    assert_eq!(combined(&[Completed, Cancelled], false), (Outcome::Failed, "partly_failed"));
    assert_eq!(combined(&[Cancelled, Cancelled], false), (Outcome::Cancelled, "cancelled"));
    assert_eq!(combined(&[Completed], true), (Outcome::Cancelled, "cancelled"));
}

#[test]
fn each_node_makes_one_child_per_online_matching_node_and_combines_their_results() {
    let mut sim = Sim::new();
    sim.register("w1", &["x"], 1).unwrap();
    sim.register("w2", &["x"], 1).unwrap();
    sim.register("w3", &["x"], 1).unwrap();
    sim.register("w4", &["y"], 1).unwrap();
    sim.register("w5", &["x"], 1).unwrap();
    sim.now = sim.now.after(Duration::from_secs(60));
    // w5 went silent: only online nodes count. w1-w3 heartbeat.
    for n in ["w1", "w2", "w3"] {
        sim.heartbeat(n, None).unwrap();
    }
    sim.core.check_liveness(sim.now);
    sim.commit();
    let group = sim.submit_with(SubmitTask {
        name: "disk".into(),
        required_skills: vec!["x".into()],
        target: Some(Target { each_node: true, ..Default::default() }),
        max_retries: Some(0),
        ..Default::default()
    });
    check_invariants(&sim);
    let g = sim.state(&group);
    assert_eq!(g.status, TaskStatus::Running);
    assert_eq!(g.waiting_for.len(), 3, "{g:?}");
    let children: Vec<(String, String)> = g
        .waiting_for
        .iter()
        .map(|c| (sim.core.tasks.get(c).unwrap().state.assigned_node.clone().unwrap(), c.clone()))
        .collect();
    let nodes: Vec<&str> = children.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(nodes, vec!["w1", "w2", "w3"]);
    sim.run_to_end("w1", &children[0].1, Outcome::Completed);
    sim.run_to_end("w2", &children[1].1, Outcome::Failed);
    assert_eq!(sim.state(&group).status, TaskStatus::Running, "one child is left");
    // A restart in the middle: the group still waits for exactly the child left.
    sim.reload();
    sim.heartbeat("w3", Some(vec![TaskRef { task_id: children[2].1.clone(), attempt: 1 }])).unwrap();
    check_invariants(&sim);
    assert_eq!(sim.state(&group).waiting_for, vec![children[2].1.clone()]);
    sim.run_to_end("w3", &children[2].1, Outcome::Completed);
    check_invariants(&sim);
    let g = sim.state(&group);
    assert_eq!(g.status, TaskStatus::Failed);
    let result = g.result.unwrap();
    assert_eq!(result["outcome"], "partly_failed");
    assert_eq!(result["nodes"]["w1"]["status"], "completed");
    assert_eq!(result["nodes"]["w1"]["result"], json!({"by": "w1"}));
    assert_eq!(result["nodes"]["w2"]["status"], "failed");
    assert!(g.error.unwrap().starts_with("partly failed: 1 of 3 did not complete (w2 failed)"));
    let stored = sim.store.task(&group, true).unwrap().unwrap();
    assert_eq!(stored.children.unwrap().len(), 3);
}

#[test]
fn a_dependent_survives_a_restart_and_runs_after_its_parent() {
    let mut sim = Sim::new();
    sim.register("w1", &["x"], 4).unwrap();
    let parent = sim.submit(&["x"]);
    let child = sim.submit_after(&["x"], &[&parent], OnParentFailure::Cancel).unwrap();
    sim.start("w1", &parent).unwrap();
    sim.reload();
    check_invariants(&sim);
    assert_eq!(sim.state(&child).waiting_for, vec![parent.clone()]);
    sim.heartbeat("w1", Some(vec![TaskRef { task_id: parent.clone(), attempt: 1 }])).unwrap();
    sim.report("w1", &parent, Outcome::Completed, None).unwrap();
    assert_eq!(sim.state(&child).status, TaskStatus::Scheduled);
    check_invariants(&sim);
}

#[test]
fn cancelling_a_group_cancels_its_children_and_ends_cancelled() {
    let mut sim = Sim::new();
    sim.register("w1", &["x"], 1).unwrap();
    sim.register("w2", &["x"], 1).unwrap();
    let group = sim.submit_with(SubmitTask {
        name: "g".into(),
        required_skills: vec!["x".into()],
        target: Some(Target { each_node: true, ..Default::default() }),
        ..Default::default()
    });
    let kids = sim.state(&group).waiting_for;
    sim.start("w1", &kids[0]).unwrap();
    assert_eq!(sim.cancel(&group), Cancel::Requested, "a child is running");
    assert_eq!(sim.state(&kids[1]).status, TaskStatus::Cancelled);
    sim.report("w1", &kids[0], Outcome::Cancelled, None).unwrap();
    let g = sim.state(&group);
    assert_eq!(g.status, TaskStatus::Cancelled);
    assert_eq!(g.result.unwrap()["outcome"], "cancelled");
    check_invariants(&sim);
}

/// Pushes as desired state (issue 21 item 3): a push chooses nodes by tag, now and later;
/// a new version keeps the one before; rollback swaps them back; a removal from one node
/// or from all; refusals change nothing; everything survives a reload from the store, and
/// the package is stored once under its digest.
#[test]
fn skill_pushes_are_desired_state_kept_by_the_store() {
    use crate::coordinator::store::PackageRow;
    use crate::model::{InstallOutcome, PushState, SkillInstallReport, SkillSelector};
    let mut sim = Sim::new();
    sim.register_node(Registrant::Join, "g1", &["echo"], 1, "linux", &["gpu"]).unwrap();
    sim.register_node(Registrant::Join, "c1", &["echo"], 1, "linux", &[]).unwrap();
    let (v1, v2) = (format!("sha256:{}", "1".repeat(64)), format!("sha256:{}", "2".repeat(64)));
    let package =
        |d: &str| PackageRow { digest: d.into(), name: "s".into(), bytes: vec![7; 10], by: "t".into(), at: 0 };
    let gpu = SkillSelector { tags: vec!["gpu".into()], ..Default::default() };
    assert!(sim.core.skill_packages_for("g1").is_none(), "nothing pushed: the answer leaves the list out");

    // A digest the coordinator has no package for, without one: refused, nothing recorded.
    let err = sim.core.push_skill("s", &v1, gpu.clone(), None, "admin".into(), sim.now).unwrap_err();
    assert_eq!(err.code, ErrorCode::BadRequest);
    assert!(sim.core.push_list().pushes.is_empty());

    sim.core.push_skill("s", &v1, gpu.clone(), Some(package(&v1)), "admin".into(), sim.now).unwrap();
    sim.commit();
    let list = sim.core.skill_packages_for("g1").unwrap();
    assert_eq!((list.len(), list[0].digest.as_str()), (1, v1.as_str()));
    assert_eq!(list[0].url, format!("/api/v1/nodes/g1/skills/packages/{v1}"));
    assert_eq!(sim.core.skill_packages_for("c1"), Some(vec![]), "c1 is not chosen");
    // A node that joins later with the tag is chosen.
    sim.register_node(Registrant::Join, "g2", &["echo"], 1, "linux", &["gpu"]).unwrap();
    assert_eq!(sim.core.skill_packages_for("g2").unwrap().len(), 1);

    // Reports: g1 failed, then installed; the view follows the node's advert.
    let report = |outcome, reason: Option<&str>| SkillInstallReport {
        name: "s".into(),
        digest: Some(v1.clone()),
        outcome,
        reason: reason.map(str::to_string),
    };
    sim.core.skill_reports("g1", vec![report(InstallOutcome::Failed, Some("disk full"))], sim.now);
    let view = sim.core.push_view("s").unwrap();
    assert_eq!((view.nodes[0].state, view.nodes[0].reason.as_deref()), (PushState::Failed, Some("disk full")));
    sim.core.skill_reports("g1", vec![report(InstallOutcome::Installed, None)], sim.now);
    let advert = HeartbeatRequest {
        available_skills: Some(vec!["echo".into(), "s".into()]),
        skill_digests: Some(
            [("s".to_string(), SkillContent { source: "managed".into(), digest: Some(v1.clone()) })].into(),
        ),
        ..Default::default()
    };
    sim.core.heartbeat("g1", advert, sim.now).unwrap();
    sim.commit();
    let view = sim.core.push_view("s").unwrap();
    assert_eq!(
        view.nodes.iter().map(|n| (n.node_id.as_str(), n.state)).collect::<Vec<_>>(),
        [("g1", PushState::Installed), ("g2", PushState::Pending)]
    );

    // A new version keeps the one before; the same version again does not lose it.
    sim.core.push_skill("s", &v2, gpu.clone(), Some(package(&v2)), "admin".into(), sim.now).unwrap();
    sim.core.push_skill("s", &v2, gpu.clone(), None, "admin".into(), sim.now).unwrap();
    sim.commit();
    let view = sim.core.push_view("s").unwrap();
    assert_eq!((view.digest.as_deref(), view.previous.as_deref()), (Some(v2.as_str()), Some(v1.as_str())));
    sim.reload();
    let view = sim.core.push_view("s").unwrap();
    assert_eq!(
        (view.digest.as_deref(), view.previous.as_deref(), view.size),
        (Some(v2.as_str()), Some(v1.as_str()), 10)
    );
    assert_eq!(sim.store.skill_package(&v1).unwrap(), Some(vec![7; 10]));

    sim.core.rollback_skill("s", "admin".into(), sim.now).unwrap();
    sim.commit();
    let view = sim.core.push_view("s").unwrap();
    assert_eq!((view.digest.as_deref(), view.previous.as_deref()), (Some(v1.as_str()), Some(v2.as_str())));

    // From g2 only, then from everyone; then nothing is left to remove.
    sim.core.remove_pushed_skill("s", vec!["g2".into()], "admin".into(), sim.now).unwrap();
    assert_eq!(sim.core.skill_packages_for("g2"), Some(vec![]));
    assert_eq!(sim.core.skill_packages_for("g1").unwrap().len(), 1);
    sim.core.remove_pushed_skill("s", vec![], "admin".into(), sim.now).unwrap();
    sim.commit();
    sim.reload();
    assert_eq!(sim.core.skill_packages_for("g1"), Some(vec![]), "removed: the list is empty, not absent");
    let err = sim.core.remove_pushed_skill("s", vec![], "admin".into(), sim.now).unwrap_err();
    assert_eq!(err.code, ErrorCode::UnknownSkillPush);
    // A rollback after a removal brings the version back.
    sim.core.rollback_skill("s", "admin".into(), sim.now).unwrap();
    assert_eq!(sim.core.skill_packages_for("g1").unwrap()[0].digest, v1);
    let err = sim.core.rollback_skill("nothing", "admin".into(), sim.now).unwrap_err();
    assert_eq!(err.code, ErrorCode::UnknownSkillPush);
    sim.commit();
}

/// Node lists written from kept views say what serde writes of the state at that moment,
/// through every kind of change a node has (heartbeat figures, an assignment, a drain,
/// new skills, a registration again, a missed deadline); a view written before a change
/// that happened while the list was being written is not kept.
#[test]
fn node_lists_from_kept_views_are_the_state_as_it_is() {
    use super::registry::list_json;
    let mut sim = Sim::new();
    for id in ["a", "b", "c"] {
        sim.register(id, &["x"], 1).unwrap();
    }
    let list = |sim: &mut Sim, what: &str| {
        let (parts, last, more) = sim.core.registry().listed(None, None, None);
        let (json, written) = list_json(parts);
        sim.core.keep_listed(written);
        let expected = serde_json::to_string(&sim.core.registry().page(None, None, None).0).unwrap();
        assert_eq!(String::from_utf8(json).unwrap(), expected, "after {what}");
        assert_eq!((last.as_deref(), more), (Some("c"), false));
    };
    list(&mut sim, "registration");
    list(&mut sim, "nothing (every view kept)");
    let figures = HeartbeatRequest { cpu_usage: 55.5, memory_usage: 12.0, ..Default::default() };
    sim.core.heartbeat("a", figures, sim.now.after(Duration::from_secs(1))).unwrap();
    list(&mut sim, "a heartbeat with new figures");
    sim.submit(&["x"]);
    list(&mut sim, "an assignment");
    sim.core.set_draining("b", true, sim.now).unwrap();
    list(&mut sim, "a drain");
    let skills = HeartbeatRequest { available_skills: Some(vec!["x".into(), "y".into()]), ..Default::default() };
    sim.core.heartbeat("c", skills, sim.now).unwrap();
    list(&mut sim, "new skills");
    sim.register_as(Registrant::Admin, "a", &["x"], 3).unwrap();
    list(&mut sim, "a registration again");
    // A node changes while a list is being written: what that list wrote of it is stale.
    let (parts, _, _) = sim.core.registry().listed(None, None, None);
    let (_, written) = list_json(parts);
    sim.core.set_draining("c", true, sim.now).unwrap();
    sim.core.keep_listed(written);
    list(&mut sim, "a change during a list");
    sim.advance(Duration::from_secs(11));
    list(&mut sim, "a missed deadline");
    let (page, last, more) = sim.core.registry().listed(None, Some("a"), Some(1));
    assert_eq!((page.len(), last.as_deref(), more), (1, Some("b"), true));
}
