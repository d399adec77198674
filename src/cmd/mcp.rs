//! `openclaw mcp`: the MCP server on stdin and stdout, for an MCP client that spawns it
//! (Claude Code, Cursor, OpenClaw's `mcp.servers` with a `command`). The tools are
//! [`crate::mcp`]'s, the same as the coordinator's `/mcp`; their backend here is the HTTP
//! client every CLI command uses, so this process holds no state, needs only the tasks
//! token, and may start before the coordinator answers (a call then says it cannot reach
//! it). stdout is the JSON-RPC channel: nothing else is written there.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rmcp::ServiceExt;

use super::remote::{Remote, TokenKind, connect_as};
use crate::Exit;
use crate::api::{NodeQuery, OutputQuery, Route, TaskQuery};
use crate::cli::McpArgs;
use crate::client::ClientError;
use crate::config::Config;
use crate::mcp::{Backend, BoxFuture, Failure, ScheduleAction, Tools};
use crate::model::{
    ErrorCode, NewSchedule, Node, Schedule, ScheduleList, ScheduleRun, SubmitTask, Task, TaskList, TaskOutput,
};

pub async fn run(config: &Config, args: McpArgs) -> anyhow::Result<Exit> {
    let remote = connect_as(config, &args.client, TokenKind::Tasks)?;
    let tools = Tools::new(Arc::new(remote));
    let server = tools
        .serve(rmcp::transport::stdio())
        .await
        .context("the MCP client on stdin/stdout did not complete the handshake")?;
    server.waiting().await.context("the MCP session on stdin/stdout failed")?;
    Ok(Exit::Ok)
}

impl Remote {
    /// A failed call as the tools report it: the coordinator's message (it says what to
    /// do), or for a refused token where it came from.
    fn failure(&self, e: ClientError) -> Failure {
        match e {
            ClientError::Status { status: 401 | 403, message, .. } => Failure {
                code: Some(ErrorCode::Unauthorized),
                message: format!(
                    "{message} (the token came from {}; openclaw mcp needs the tasks token: pass it with --token or OPENCLAW_TOKEN, it is tasks.token beside the coordinator's database)",
                    self.token_from
                ),
            },
            ClientError::Status { code, message, .. } => Failure { code: code.parse().ok(), message },
            other => Failure { code: None, message: other.to_string() },
        }
    }
}

/// The tools' backend in `openclaw mcp`: the coordinator's HTTP API.
/// How long a schedule call waits for the coordinator.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

impl Backend for Remote {
    fn nodes(&self) -> BoxFuture<'_, Result<Vec<Node>, Failure>> {
        Box::pin(async { self.get(&Route::ListNodes(NodeQuery::default())).await.map_err(|e| self.failure(e)) })
    }

    fn submit(&self, task: SubmitTask) -> BoxFuture<'_, Result<Task, Failure>> {
        // The coordinator records the label a client claims; `mcp` is one it accepts.
        let task = SubmitTask { origin: Some("mcp".into()), ..task };
        let client: &crate::client::Client = self;
        Box::pin(async move { client.submit(&task).await.map_err(|e| self.failure(e)) })
    }

    fn task<'a>(&'a self, id: &'a str, history: bool) -> BoxFuture<'a, Result<Task, Failure>> {
        Box::pin(async move {
            let mut task: Task = self.get(&Route::GetTask { task: id.into() }).await.map_err(|e| self.failure(e))?;
            if !history {
                task.events = None;
            }
            Ok(task)
        })
    }

    fn wait<'a>(&'a self, id: &'a str, timeout: Duration) -> BoxFuture<'a, Result<Task, Failure>> {
        Box::pin(async move { self.wait_task(id, timeout).await.map_err(|e| self.failure(e)) })
    }

    fn cancel<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Task, Failure>> {
        Box::pin(async move { self.cancel_task(id).await.map_err(|e| self.failure(e)) })
    }

    fn output<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<TaskOutput, Failure>> {
        Box::pin(async move {
            let route = Route::TaskOutput { task: id.into(), query: OutputQuery::default() };
            self.get(&route).await.map_err(|e| self.failure(e))
        })
    }

    fn schedules(&self) -> BoxFuture<'_, Result<ScheduleList, Failure>> {
        Box::pin(async { self.get(&Route::ListSchedules).await.map_err(|e| self.failure(e)) })
    }

    fn add_schedule(&self, schedule: NewSchedule) -> BoxFuture<'_, Result<Schedule, Failure>> {
        Box::pin(async move {
            self.call(&Route::CreateSchedule, Some(&schedule), CALL_TIMEOUT).await.map_err(|e| self.failure(e))
        })
    }

    fn change_schedule<'a>(&'a self, key: &'a str, action: ScheduleAction) -> BoxFuture<'a, Result<Schedule, Failure>> {
        Box::pin(async move {
            self.call(&action.route(key.into()), None::<&()>, CALL_TIMEOUT).await.map_err(|e| self.failure(e))
        })
    }

    fn run_schedule<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<ScheduleRun, Failure>> {
        let route = Route::RunSchedule { schedule: key.into() };
        Box::pin(async move { self.call(&route, None::<&()>, CALL_TIMEOUT).await.map_err(|e| self.failure(e)) })
    }

    fn recent_tasks(&self, limit: u32) -> BoxFuture<'_, Result<Vec<Task>, Failure>> {
        Box::pin(async move {
            let route = Route::ListTasks(TaskQuery { limit: Some(limit), ..Default::default() });
            let page: TaskList = self.get(&route).await.map_err(|e| self.failure(e))?;
            Ok(page.tasks)
        })
    }
}
