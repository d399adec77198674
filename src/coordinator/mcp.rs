//! `POST /mcp`: the MCP tools of [`crate::mcp`] over Streamable HTTP, on the coordinator's
//! own HTTP server, with the coordinator's [`Cluster`] in process as their backend.
//!
//! A request gets here through the route table like any other: the bearer token (admin or
//! tasks) was checked before its body was read, and the body was read under the server's
//! size cap. rmcp then speaks the protocol, in stateless mode: a server per POST and no
//! sessions, so a coordinator restart loses nothing a client holds (GET and DELETE are
//! 405); a plain call is answered with JSON, one that sends progress with an SSE stream.
//!
//! rmcp's `Host` check (a guard against DNS rebinding, loopback names only by default) is
//! off while auth is on: a page a browser was tricked into loading cannot send the token,
//! and a coordinator is reached under many names. With auth off (a loopback trial), the
//! check stays on, so only `localhost`, `127.0.0.1` and `::1` work.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

use super::cluster::Cluster;
use super::core::Error;
use super::http::{Request, Response};
use crate::api::TaskQuery;
use crate::mcp::{Backend, BoxFuture, Failure, ScheduleAction, Tools};
use crate::model::{NewSchedule, Node, Schedule, ScheduleList, ScheduleRun, SubmitTask, Task, TaskOutput};

/// The `/mcp` endpoint.
pub struct Door {
    service: StreamableHttpService<Tools, LocalSessionManager>,
}

impl Door {
    pub fn new(cluster: Arc<Cluster>) -> Door {
        let mut config = StreamableHttpServerConfig::default()
            .with_legacy_session_mode(false)
            .with_json_response(true)
            .with_cancellation_token(cluster.shutdown().child_token());
        if cluster.config().auth.enabled {
            config = config.disable_allowed_hosts();
        }
        let tools = Tools::new(cluster);
        let service =
            StreamableHttpService::new(move || Ok(tools.clone()), Arc::new(LocalSessionManager::default()), config);
        Door { service }
    }

    /// Answers one MCP request (already authorized, its body read).
    pub async fn handle(&self, req: Request) -> Response {
        let mut request = hyper::Request::new(Full::new(req.body));
        *request.method_mut() = hyper::Method::POST;
        *request.uri_mut() = hyper::Uri::from_static("/mcp");
        *request.headers_mut() = req.headers;
        self.service.handle(request).await
    }
}

fn failure(e: Error) -> Failure {
    Failure { code: Some(e.code), message: e.message }
}

/// The tools' backend on the coordinator: the state machine, in process.
impl Backend for Cluster {
    fn nodes(&self) -> BoxFuture<'_, Result<Vec<Node>, Failure>> {
        Box::pin(async { Ok(self.view(|core| core.registry().list(None))) })
    }

    fn submit(&self, task: SubmitTask) -> BoxFuture<'_, Result<Task, Failure>> {
        Box::pin(async { Cluster::submit(self, task, None, "mcp").await.map(|(task, _)| task).map_err(failure) })
    }

    fn task<'a>(&'a self, id: &'a str, history: bool) -> BoxFuture<'a, Result<Task, Failure>> {
        Box::pin(async move { Cluster::task(self, id, history).await.map_err(failure) })
    }

    fn wait<'a>(&'a self, id: &'a str, timeout: Duration) -> BoxFuture<'a, Result<Task, Failure>> {
        Box::pin(async move { self.wait_task(id, timeout).await.map_err(failure) })
    }

    fn cancel<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Task, Failure>> {
        Box::pin(async move { Cluster::cancel(self, id).await.map_err(failure) })
    }

    fn output<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<TaskOutput, Failure>> {
        Box::pin(async move { Cluster::output(self, id, 0).await.map_err(failure) })
    }

    fn schedules(&self) -> BoxFuture<'_, Result<ScheduleList, Failure>> {
        Box::pin(async { Ok(ScheduleList { schedules: self.view(|c| c.schedule_list()) }) })
    }

    fn add_schedule(&self, schedule: NewSchedule) -> BoxFuture<'_, Result<Schedule, Failure>> {
        Box::pin(async move { self.mutate(|c, now| c.create_schedule(schedule, now)).await.map_err(failure) })
    }

    fn change_schedule<'a>(&'a self, key: &'a str, action: ScheduleAction) -> BoxFuture<'a, Result<Schedule, Failure>> {
        Box::pin(async move {
            let change = |c: &mut super::core::Core, now| match action {
                ScheduleAction::Pause => c.pause_schedule(key, true, now),
                ScheduleAction::Resume => c.pause_schedule(key, false, now),
                ScheduleAction::Remove => c.remove_schedule(key, now),
            };
            self.mutate(change).await.map_err(failure)
        })
    }

    fn run_schedule<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<ScheduleRun, Failure>> {
        Box::pin(async move { self.mutate(|c, now| c.run_schedule_now(key, now)).await.map_err(failure) })
    }

    fn recent_tasks(&self, limit: u32) -> BoxFuture<'_, Result<Vec<Task>, Failure>> {
        Box::pin(async move {
            let page = self.list_tasks(TaskQuery { limit: Some(limit), ..Default::default() }).await;
            page.map(|p| p.tasks).map_err(failure)
        })
    }
}
