//! `dispatch`: what each route does over HTTP. A handler parses the body, calls one
//! [`Cluster`] operation and answers; status codes come from the error codes (see
//! [`super::error`]) and the few success codes chosen here (201 for a new task). Every
//! state change is answered after its commit, by `Cluster::mutate`.

use std::sync::Arc;

use hyper::StatusCode;

use super::auth::Caller;
use super::cluster::Cluster;
use super::core::nodes::Registrant;
use super::error::ApiError;
use super::http::{Request, Response, json};
use super::mcp::Door;
use super::store::EventFilter;
use crate::api::Route;
use crate::model::{
    CLAIMABLE_ORIGINS, CoordinatorRole, ErrorCode, HeartbeatRequest, NewSchedule, OutputBatch, PollRequest,
    ReportBatch, ResultReport, Role, ScheduleEdit, ScheduleList, ServiceHealth, StartReport, SubmitTask, TaskStatus,
    Timestamp, Whoami,
};

/// Runs a route (`/mcp` goes to the MCP door, which calls the cluster itself).
pub async fn dispatch(cluster: &Arc<Cluster>, mcp: &Door, req: Request) -> Result<Response, ApiError> {
    let ok = |v: &dyn erased::Json| Ok(v.respond(StatusCode::OK));
    match &req.route {
        Route::Dashboard => Ok(super::dashboard::page()),
        Route::Ui => Ok(super::dashboard::redirect()),
        Route::Asset { asset } => super::dashboard::asset(asset),
        Route::OpenApi => Ok(super::http::bytes(StatusCode::OK, "application/json", crate::openapi::text())),
        // Read access lets only the admin and the tasks token through.
        Route::Whoami => ok(&Whoami { role: if req.caller == Caller::Tasks { Role::Tasks } else { Role::Admin } }),
        Route::Health => ok(&ServiceHealth {
            status: "healthy".into(),
            timestamp: Timestamp::now(),
            service: "openclaw coordinator".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            role: CoordinatorRole::Leader,
            leader: cluster.leader().cloned(),
        }),
        Route::Metrics => Ok(metrics(cluster)),
        Route::RegisterNode => {
            let who = match &req.caller {
                Caller::Admin => Registrant::Admin,
                Caller::Node(n) => Registrant::Node(n.clone()),
                Caller::Join | Caller::Tasks => Registrant::Join,
            };
            ok(&cluster.register(req.json()?, who, Some(req.client)).await?)
        }
        Route::ListNodes(q) => {
            let invalid = |e: String| ApiError::new(ErrorCode::InvalidQuery, e);
            let (limit, after) = (q.page_limit().map_err(invalid)?, q.position().map_err(invalid)?);
            let (nodes, last, more) = cluster.node_list_json(q.status, after, limit);
            let mut answer = super::http::bytes(StatusCode::OK, "application/json", nodes);
            // The next page continues after this one's last node (RFC 8288).
            if let Some(last) = last.filter(|_| more) {
                let (_, next) = Route::ListNodes(q.next_page(&last)).request();
                if let Ok(link) = hyper::header::HeaderValue::from_str(&format!("<{next}>; rel=\"next\"")) {
                    answer.headers_mut().insert(hyper::header::LINK, link);
                }
            }
            Ok(answer)
        }
        Route::OnlineNodes => ok(&cluster.view(|c| c.registry().online(None))),
        Route::NodesWithSkill { skill } => ok(&cluster.view(|c| c.registry().online(Some(skill)))),
        Route::GetNode { node } => ok(&cluster.view(|c| c.registry().view(node))?),
        Route::ForgetNode { node } => ok(&cluster.mutate(|c, now| c.forget_node(node, now)).await?),
        Route::NodeHealth { node } => ok(&cluster.view(|c| c.registry().health(node, super::core::Now::get()))?),
        Route::Heartbeat { node } => {
            let body: HeartbeatRequest = req.json_or_default()?;
            ok(&cluster.heartbeat(node, body).await?)
        }
        Route::ShutdownNode { node } => ok(&cluster.mutate(|c, now| c.node_shutdown(node, now)).await?),
        Route::DrainNode { node } => ok(&cluster.mutate(|c, now| c.set_draining(node, true, now)).await?),
        Route::UndrainNode { node } => ok(&cluster.mutate(|c, now| c.set_draining(node, false, now)).await?),
        Route::PollTasks { node } => {
            let body: PollRequest = req.json_or_default()?;
            ok(&cluster.poll(node, body).await?)
        }
        Route::StartTask { node, task } => {
            let body: StartReport = req.json()?;
            ok(&cluster.start(node, task, body.attempt).await?)
        }
        Route::TaskResult { node, task } => {
            let body: ResultReport = req.json()?;
            ok(&cluster.result(node, task, body).await?)
        }
        Route::TaskReports { node } => {
            let body: ReportBatch = req.json()?;
            ok(&cluster.reports(node, body).await?)
        }
        Route::PushOutput { node, task } => {
            let body: OutputBatch = req.json()?;
            ok(&cluster.push_output(node, task, body).await?)
        }
        Route::ClusterHealth => ok(&cluster.cluster_health().await?),
        Route::ClusterSkills => ok(&cluster.view(|c| c.registry().skills())),
        Route::PushSkill => {
            let by = admin_label(cluster, &req);
            Ok(cluster.push_skill(req.json()?, by).await?.respond(StatusCode::CREATED))
        }
        Route::ListSkillPushes => ok(&cluster.view(|c| c.push_list())),
        Route::RemoveSkillPush { name } => {
            let by = admin_label(cluster, &req);
            ok(&cluster.remove_pushed_skill(name, req.json_or_default()?, by).await?)
        }
        Route::RollbackSkillPush { name } => ok(&cluster.rollback_skill(name, admin_label(cluster, &req)).await?),
        Route::SkillPackage { node, digest } => {
            let bytes = cluster.skill_package(node, digest).await?;
            Ok(super::http::bytes(StatusCode::OK, "application/x-tar", bytes))
        }
        Route::CheckHeartbeat => ok(&cluster.mutate(|c, now| Ok(c.check_liveness(now))).await?),
        Route::SubmitTask => {
            let body: SubmitTask = req.json()?;
            let key = req.header("idempotency-key").map(str::to_string);
            let origin = match body.origin.as_deref() {
                None => "api",
                Some(claimed) => CLAIMABLE_ORIGINS.iter().find(|o| **o == claimed).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "origin: `{claimed}` is not one of {}; leave it out for `api`",
                        CLAIMABLE_ORIGINS.join(", ")
                    ))
                })?,
            };
            let (task, created) = cluster.submit(body, key, origin).await?;
            Ok(task.respond(if created { StatusCode::CREATED } else { StatusCode::OK }))
        }
        Route::ListTasks(q) => ok(&cluster.list_tasks(q.clone()).await?),
        Route::GetTask { task } => ok(&cluster.task(task, true).await?),
        Route::WaitTask { task, query } => {
            let timeout = query.wait().map_err(|e| ApiError::new(ErrorCode::InvalidQuery, e))?;
            ok(&cluster.wait_task(task, timeout).await?)
        }
        Route::CancelTask { task } => ok(&cluster.cancel(task).await?),
        Route::RetryTask { task } => Ok(cluster.retry(task, "api").await?.respond(StatusCode::CREATED)),
        Route::SubmitWorkflow => {
            let body: crate::model::Workflow = req.json()?;
            Ok(cluster.submit_workflow(body, "api").await?.respond(StatusCode::CREATED))
        }
        Route::Backup => backup(cluster).await,
        Route::ListSecrets => ok(&cluster.secrets()),
        Route::SetSecret { name } => ok(&cluster.set_secret(name, req.json()?, admin_label(cluster, &req)).await?),
        Route::DeleteSecret { name } => ok(&cluster.remove_secret(name).await?),
        Route::RotateSecretKey => ok(&cluster.rotate_secret_key().await?),
        Route::TaskOutput { task, query } => {
            let after = last_event_id(&req)?.or(query.after).unwrap_or(0);
            if query.follow != Some(true) {
                return ok(&cluster.output(task, after).await?);
            }
            let permit = req.stream_permit()?;
            let feed = cluster.follow_output(task, after).await?;
            Ok(super::sse::respond(feed, permit, &req.connection, cluster.shared_metrics()))
        }
        Route::Events(q) => {
            let filter = EventFilter {
                task: q.task.clone(),
                node: q.node.clone(),
                skill: q.skill.clone(),
                kind: q.kind,
                schedule: q.schedule.clone(),
            };
            let after = last_event_id(&req)?.or(q.after);
            let permit = req.stream_permit()?;
            let feed = cluster.events(filter, after).await?;
            Ok(super::sse::respond(feed, permit, &req.connection, cluster.shared_metrics()))
        }
        Route::CreateSchedule => {
            let body: NewSchedule = req.json()?;
            Ok(cluster.mutate(|c, now| c.create_schedule(body, now)).await?.respond(StatusCode::CREATED))
        }
        Route::ListSchedules => ok(&ScheduleList { schedules: cluster.view(|c| c.schedule_list()) }),
        Route::GetSchedule { schedule } => ok(&cluster.view(|c| c.schedule_view(schedule))?),
        Route::EditSchedule { schedule } => {
            let body: ScheduleEdit = req.json()?;
            ok(&cluster.mutate(|c, now| c.edit_schedule(schedule, body, now)).await?)
        }
        Route::RemoveSchedule { schedule } => ok(&cluster.mutate(|c, now| c.remove_schedule(schedule, now)).await?),
        Route::PauseSchedule { schedule } => {
            ok(&cluster.mutate(|c, now| c.pause_schedule(schedule, true, now)).await?)
        }
        Route::ResumeSchedule { schedule } => {
            ok(&cluster.mutate(|c, now| c.pause_schedule(schedule, false, now)).await?)
        }
        Route::RunSchedule { schedule } => {
            Ok(cluster.mutate(|c, now| c.run_schedule_now(schedule, now)).await?.respond(StatusCode::CREATED))
        }
        Route::ScheduleRuns { schedule, query } => {
            let limit = query.page_limit().map_err(|e| ApiError::new(ErrorCode::InvalidQuery, e))?;
            ok(&cluster.schedule_runs(schedule, query.before, limit).await?)
        }
        Route::Mcp => Ok(mcp.handle(req).await),
    }
}

/// Who made an admin change, for the record: the admin token and where it came from.
fn admin_label(cluster: &Cluster, req: &Request) -> String {
    match &req.caller {
        Caller::Admin if !cluster.tokens().enabled => format!("admin (auth off) from {}", req.client),
        _ => format!("admin token from {}", req.client),
    }
}

/// Streams a consistent copy of the store, then removes the copy.
async fn backup(cluster: &Cluster) -> Result<Response, ApiError> {
    let path = cluster.backup().await?;
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) => {
            let _ = tokio::fs::remove_file(&path).await;
            return Err(ApiError::new(ErrorCode::Internal, format!("cannot read the backup copy: {e}")));
        }
    };
    let len = file.metadata().await.map(|m| m.len()).unwrap_or(0);
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let mut file = file;
        let mut buf = vec![0u8; 256 * 1024];
        while let Ok(n) = file.read(&mut buf).await {
            if n == 0 || tx.send(bytes::Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                break;
            }
        }
        let _ = tokio::fs::remove_file(&path).await;
    });
    let mut r = hyper::Response::new(super::http::channel_body(rx));
    let headers = r.headers_mut();
    headers.insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/vnd.sqlite3"));
    headers.insert(hyper::header::CONTENT_LENGTH, hyper::header::HeaderValue::from(len));
    Ok(r)
}

/// The `Last-Event-ID` header of a stream's reconnect (it wins over `?after=`).
fn last_event_id(req: &Request) -> Result<Option<u64>, ApiError> {
    let Some(value) = req.headers.get("last-event-id") else { return Ok(None) };
    crate::model::parse_last_event_id(value.to_str().unwrap_or(""))
        .map(Some)
        .map_err(|e| ApiError::new(ErrorCode::BadRequest, format!("header Last-Event-ID: {e}")))
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

/// The OpenMetrics text, with the gauges computed from the state now.
fn metrics(cluster: &Cluster) -> Response {
    let m = cluster.metrics();
    cluster.view(|core| {
        let (nodes, total, used) = core.registry().gauges();
        for (status, n) in nodes {
            m.nodes.get_or_create(&super::metrics::StatusLabel { status: status.to_string() }).set(n);
        }
        m.capacity.get_or_create(&super::metrics::KindLabel { kind: "total".into() }).set(total);
        m.capacity.get_or_create(&super::metrics::KindLabel { kind: "used".into() }).set(used);
        m.skills_drifted.set(core.registry().drifted().len() as i64);
        let counts = core.tasks().counts();
        for status in [TaskStatus::Pending, TaskStatus::Scheduled, TaskStatus::Running] {
            let n = counts.get(&status).copied().unwrap_or(0);
            m.tasks_active.get_or_create(&super::metrics::StatusLabel { status: status.to_string() }).set(n);
        }
    });
    super::http::bytes(StatusCode::OK, "application/openmetrics-text; version=1.0.0; charset=utf-8", m.encode())
}
