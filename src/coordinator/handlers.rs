//! `dispatch`: what each route does. Handlers parse, call the state or the store, and
//! answer; status codes come from [`ApiError`] and the few success codes chosen here
//! (201 for a new task). A state change is answered only after it is committed.

use std::sync::Arc;
use std::time::Duration;

use hyper::StatusCode;
use hyper::header::{CONTENT_TYPE, HeaderValue};

use super::Shared;
use super::error::ApiError;
use super::http::{Request, Response, json};
use super::router::Route;
use super::state::{Now, State};
use super::tasks::Report;
use crate::model::{
    HeartbeatRequest, NodeStatus, PollRequest, PollResponse, RegisterRequest, ReportResponse, ResultReport,
    ServiceHealth, StartReport, SubmitTask, Task, TaskList, TaskStatus, Timestamp,
};
use crate::store::tasks::{self as task_store, ListFilter};

/// Runs a route.
pub async fn dispatch(shared: &Arc<Shared>, req: Request) -> Result<Response, ApiError> {
    let ok = |v: &dyn erased::Json| Ok(v.respond(StatusCode::OK));
    match &req.route {
        Route::Health => ok(&ServiceHealth {
            status: "healthy".into(),
            timestamp: Timestamp::now(),
            service: "openclaw coordinator".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        }),
        Route::Metrics => metrics(shared).await,
        Route::RegisterNode => {
            let body: RegisterRequest = req.json()?;
            let (answer, done) = {
                let mut st = shared.lock();
                let answer = st.register(body, Some(req.client), Now::get())?;
                (answer, st.barrier())
            };
            done.committed().await.map_err(ApiError::store)?;
            ok(&answer)
        }
        Route::ListNodes => {
            let status = match req.query("status").or_else(|| req.query("status_filter")) {
                Some(s) => Some(s.parse::<NodeStatus>().map_err(|e| ApiError::BadRequest(format!("status: {e}")))?),
                None => None,
            };
            ok(&shared.lock().list_nodes(status))
        }
        Route::OnlineNodes => ok(&shared.lock().online_nodes()),
        Route::NodesWithSkill(skill) => ok(&shared.lock().nodes_with_skill(skill)),
        Route::GetNode(id) => {
            let st = shared.lock();
            ok(&State::node_view(st.node(id)?))
        }
        Route::ForgetNode(id) => {
            let (answer, done) = {
                let mut st = shared.lock();
                (st.forget_node(id)?, st.barrier())
            };
            done.committed().await.map_err(ApiError::store)?;
            ok(&answer)
        }
        Route::NodeHealth(id) => ok(&shared.lock().node_health(id, Now::get())?),
        Route::Heartbeat(id) => {
            let body: HeartbeatRequest = req.json_or_default()?;
            let (answer, done) = {
                let mut st = shared.lock();
                let before = st.writes.get();
                let answer = st.heartbeat(id, body, Now::get())?;
                // The usual heartbeat only touches memory; one that changed state (skills,
                // a requeued task) answers once that is on disk.
                (answer, (st.writes.get() != before).then(|| st.barrier()))
            };
            if let Some(done) = done {
                done.committed().await.map_err(ApiError::store)?;
            }
            ok(&answer)
        }
        Route::ShutdownNode(id) => {
            let (answer, done) = {
                let mut st = shared.lock();
                (st.node_shutdown(id, Now::get())?, st.barrier())
            };
            done.committed().await.map_err(ApiError::store)?;
            ok(&answer)
        }
        Route::DrainNode(id) | Route::UndrainNode(id) => {
            let drain = matches!(req.route, Route::DrainNode(_));
            let (answer, done) = {
                let mut st = shared.lock();
                (st.set_draining(id, drain, Now::get())?, st.barrier())
            };
            done.committed().await.map_err(ApiError::store)?;
            ok(&answer)
        }
        Route::PollTasks(node) => {
            let body: PollRequest = req.json_or_default()?;
            ok(&poll(shared, node, body).await?)
        }
        Route::StartTask { node, task } => {
            let body: StartReport = req.json()?;
            let found = shared.lock().start(node, task, body.attempt, Now::get())?;
            report_answer(shared, found, node, task, body.attempt, None).await
        }
        Route::TaskResult { node, task } => {
            let body: ResultReport = req.json()?;
            let (attempt, outcome) = (body.attempt, body.outcome);
            let found = shared.lock().result(node, task, body, Now::get())?;
            report_answer(shared, found, node, task, attempt, Some(outcome)).await
        }
        Route::ClusterHealth => {
            let counts = shared.store.read(|c| Ok(task_store::count_by_status(c)?)).await.map_err(ApiError::store)?;
            ok(&shared.lock().cluster_health(counts, Now::get()))
        }
        Route::CheckHeartbeat => {
            let (answer, done) = {
                let mut st = shared.lock();
                (st.check_liveness(Now::get()), st.barrier())
            };
            done.committed().await.map_err(ApiError::store)?;
            ok(&answer)
        }
        Route::SubmitTask => {
            let body: SubmitTask = req.json()?;
            let key = req.header("idempotency-key").map(str::to_string);
            loop {
                let ((id, created), done) = {
                    let mut st = shared.lock();
                    (st.submit(body.clone(), key.clone(), Now::get())?, st.barrier())
                };
                done.committed().await.map_err(ApiError::store)?;
                match task_view(shared, &id, false).await {
                    // The key's task was purged by retention a moment ago: the key is free.
                    Err(ApiError::NotFound(_)) if !created => {
                        shared.lock().idempotency.retain(|_, v| *v != id);
                    }
                    task => return Ok(task?.respond(if created { StatusCode::CREATED } else { StatusCode::OK })),
                }
            }
        }
        Route::ListTasks => list_tasks(shared, &req).await,
        Route::GetTask(id) => ok(&task_view(shared, id, true).await?),
        Route::WaitTask(id) => {
            let timeout = match req.query("timeout") {
                Some(t) => crate::util::parse_duration(t).map_err(|e| ApiError::BadRequest(format!("timeout: {e}")))?,
                None => Duration::from_secs(30),
            }
            .min(Duration::from_secs(3600));
            ok(&wait_task(shared, id, timeout).await?)
        }
        Route::CancelTask(id) => {
            let (active, done) = {
                let mut st = shared.lock();
                (st.cancel(id, Now::get())?, st.barrier())
            };
            if !active {
                let task = task_view(shared, id, false).await?;
                return Err(ApiError::Conflict(format!(
                    "task {id} already ended ({}); nothing to cancel",
                    task.status
                )));
            }
            done.committed().await.map_err(ApiError::store)?;
            ok(&task_view(shared, id, true).await?)
        }
    }
}

/// Serialize-and-answer for any JSON value, so `dispatch` can use one closure.
mod erased {
    use hyper::StatusCode;

    pub trait Json {
        fn respond(&self, status: StatusCode) -> super::Response;
    }

    impl<T: serde::Serialize> Json for T {
        fn respond(&self, status: StatusCode) -> super::Response {
            super::json(status, self)
        }
    }
}
use erased::Json as _;

async fn metrics(shared: &Arc<Shared>) -> Result<Response, ApiError> {
    {
        let st = shared.lock();
        let m = &shared.metrics;
        for status in NodeStatus::ALL {
            let n = st.nodes.values().filter(|e| State::status_of(e) == *status).count();
            m.nodes.get_or_create(&super::metrics::StatusLabel { status: status.to_string() }).set(n as i64);
        }
        let (total, used) =
            st.nodes.values().filter(|e| e.online).fold((0i64, 0i64), |(t, u), e| {
                (t + i64::from(e.record.max_concurrent_tasks), u + i64::from(e.running()))
            });
        m.capacity.get_or_create(&super::metrics::KindLabel { kind: "total".into() }).set(total);
        m.capacity.get_or_create(&super::metrics::KindLabel { kind: "used".into() }).set(used);
        for status in [TaskStatus::Pending, TaskStatus::Scheduled, TaskStatus::Running] {
            let n = st.tasks.values().filter(|t| t.status == status).count();
            m.tasks_active.get_or_create(&super::metrics::StatusLabel { status: status.to_string() }).set(n as i64);
        }
    }
    let mut r = hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from(shared.metrics.encode())));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"));
    Ok(r)
}

/// A worker's long poll: answers at once when there is something for it, else waits for
/// a placement or a cancel (or the poll timeout, or shutdown) and answers then.
async fn poll(shared: &Arc<Shared>, node: &str, req: PollRequest) -> Result<PollResponse, ApiError> {
    let limit = shared.config.coordinator.long_poll_timeout.get();
    // Clamp before converting: a huge wait_secs must not reach Duration's constructor.
    let wait = match req.wait_secs {
        Some(s) if s.is_finite() => Duration::from_secs_f64(s.clamp(0.0, limit.as_secs_f64())),
        _ => limit,
    };
    let deadline = tokio::time::Instant::now() + wait;
    let gone = || ApiError::NotFound(format!("node `{node}` is not registered here: register again"));
    loop {
        let (notified, answer, done) = {
            let st = shared.lock();
            // Register for the wake-up before looking at the state, so that a placement
            // made after the look is not missed (placements use notify_waiters).
            let mut notified = Box::pin(st.node(node).map_err(|_| gone())?.wake.clone().notified_owned());
            notified.as_mut().enable();
            let answer = st.poll(node, &req.held);
            let found = !answer.assignments.is_empty() || !answer.cancel.is_empty();
            (notified, answer, found.then(|| st.barrier()))
        };
        if let Some(done) = done {
            // Hand out only what is on disk: a restarted coordinator must know the attempt.
            done.committed().await.map_err(ApiError::store)?;
            return Ok(answer);
        }
        tokio::select! {
            _ = notified => {}
            _ = tokio::time::sleep_until(deadline) => return Ok(PollResponse::default()),
            _ = shared.shutdown.cancelled() => return Ok(PollResponse::default()),
        }
    }
}

/// The answer to a start or result report; a report for a task no longer active is a
/// harmless repeat when it matches how the task ended, else a conflict.
async fn report_answer(
    shared: &Arc<Shared>,
    found: Report,
    node: &str,
    task_id: &str,
    attempt: u32,
    outcome: Option<crate::model::Outcome>,
) -> Result<Response, ApiError> {
    match found {
        Report::Done(answer) => {
            let done = shared.lock().barrier();
            done.committed().await.map_err(ApiError::store)?;
            Ok(json(StatusCode::OK, &answer))
        }
        Report::NotActive => {
            let id = task_id.to_string();
            let stored = shared.store.read(move |c| Ok(task_store::get(c, &id)?)).await.map_err(ApiError::store)?;
            let Some(task) = stored else {
                return Err(ApiError::NotFound(format!(
                    "no task {task_id} (ended tasks are purged after storage.task_retention_days)"
                )));
            };
            let same_attempt = task.attempt == attempt && task.assigned_node.as_deref() == Some(node);
            let same_end = outcome.is_some_and(|o| TaskStatus::from(o) == task.status);
            if same_attempt && same_end {
                return Ok(json(
                    StatusCode::OK,
                    &ReportResponse { success: true, task_id: task_id.into(), status: task.status },
                ));
            }
            Err(ApiError::Conflict(format!(
                "stale report: task {task_id} already ended ({}) at attempt {} on {}",
                task.status,
                task.attempt,
                task.assigned_node.as_deref().unwrap_or("no node")
            )))
        }
    }
}

/// One task as the API shows it: the live record when active (with its pending reason),
/// else the stored one.
async fn task_view(shared: &Arc<Shared>, id: &str, with_events: bool) -> Result<Task, ApiError> {
    let (live, done) = {
        let st = shared.lock();
        let live = st.active_task(id).map(|t| t.to_model(st.pending_reason(t, crate::util::now_ms()), None));
        // Changes made by timers (a node lost, a retry) may still be queued: read the
        // history once they are on disk, so that it agrees with the live record.
        (live, with_events.then(|| st.barrier()))
    };
    if let Some(done) = done {
        done.committed().await.map_err(ApiError::store)?;
    }
    let key = id.to_string();
    let need_row = live.is_none();
    let (stored, events) = shared
        .store
        .read(move |c| {
            let events = if with_events { Some(task_store::events(c, &key)?) } else { None };
            let row = if need_row { task_store::get(c, &key)? } else { None };
            Ok((row, events))
        })
        .await
        .map_err(ApiError::store)?;
    let mut task = match (live, stored) {
        (Some(t), _) => t,
        (None, Some(r)) => r.to_model(None, None),
        (None, None) => {
            return Err(ApiError::NotFound(format!(
                "no task {id}: see `openclaw tasks list` (ended tasks are purged after storage.task_retention_days)"
            )));
        }
    };
    task.events = events;
    Ok(task)
}

async fn list_tasks(shared: &Arc<Shared>, req: &Request) -> Result<Response, ApiError> {
    let status = match req.query("status") {
        Some(s) => Some(s.parse::<TaskStatus>().map_err(|e| ApiError::BadRequest(format!("status: {e}")))?),
        None => None,
    };
    let limit = match req.query("limit") {
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=1000).contains(l))
            .ok_or_else(|| ApiError::BadRequest(format!("limit: must be a number from 1 to 1000, got `{l}`")))?,
        None => 50,
    };
    let before_seq = match req.query("after") {
        Some(a) => Some(a.parse::<i64>().map_err(|_| {
            ApiError::BadRequest(format!("after: `{a}` is not a cursor from a previous page's `next`"))
        })?),
        None => None,
    };
    let filter = ListFilter {
        status,
        node: req.query("node").map(str::to_string),
        skill: req.query("skill").map(str::to_string),
        before_seq,
        limit,
    };
    let rows = shared.store.read(move |c| Ok(task_store::list(c, &filter)?)).await.map_err(ApiError::store)?;
    let next = (rows.len() == limit as usize).then(|| rows.last().map(|r| r.seq.to_string())).flatten();
    let now = crate::util::now_ms();
    let tasks = {
        let st = shared.lock();
        rows.iter()
            .map(|r| match st.active_task(&r.task_id) {
                Some(live) => live.to_model(st.pending_reason(live, now), None),
                None => r.to_model(None, None),
            })
            .collect()
    };
    Ok(json(StatusCode::OK, &TaskList { tasks, next }))
}

async fn wait_task(shared: &Arc<Shared>, id: &str, timeout: Duration) -> Result<Task, ApiError> {
    let rx = {
        let mut st = shared.lock();
        if st.active_task(id).is_some() { Some(st.wait_for(id)) } else { None }
    };
    if let Some(mut rx) = rx {
        tokio::select! {
            _ = tokio::time::timeout(timeout, rx.changed()) => {}
            _ = shared.shutdown.cancelled() => {}
        }
        // The end was queued before the wake-up; read it once it is on disk.
        let done = shared.lock().barrier();
        done.committed().await.map_err(ApiError::store)?;
    }
    task_view(shared, id, false).await
}
