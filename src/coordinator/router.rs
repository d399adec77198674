//! Routing is parsing: a method and a path become a [`Route`], or a 404 / 405.
//!
//! | method | path | route | who may call |
//! |---|---|---|---|
//! | GET | `/health` | Health | anyone |
//! | GET | `/metrics` | Metrics | admin |
//! | POST | `/api/v1/nodes/register` | RegisterNode | join or admin token |
//! | GET | `/api/v1/nodes` | ListNodes (`?status=`, `?status_filter=`) | admin |
//! | GET | `/api/v1/nodes/online` | OnlineNodes | admin |
//! | GET | `/api/v1/nodes/skills/{skill}` | NodesWithSkill | admin |
//! | GET | `/api/v1/nodes/{id}` | GetNode | admin |
//! | DELETE | `/api/v1/nodes/{id}` | ForgetNode (offline nodes only) | admin |
//! | GET | `/api/v1/nodes/{id}/health` | NodeHealth | admin |
//! | POST | `/api/v1/nodes/{id}/heartbeat` | Heartbeat | that node |
//! | POST | `/api/v1/nodes/{id}/shutdown` | ShutdownNode | that node |
//! | POST | `/api/v1/nodes/{id}/drain` | DrainNode | admin |
//! | POST | `/api/v1/nodes/{id}/undrain` | UndrainNode | admin |
//! | POST | `/api/v1/nodes/{id}/tasks/poll` | PollTasks | that node |
//! | POST | `/api/v1/nodes/{id}/tasks/{task}/start` | StartTask | that node |
//! | POST | `/api/v1/nodes/{id}/tasks/{task}/result` | TaskResult | that node |
//! | GET | `/api/v1/cluster/health` | ClusterHealth | admin |
//! | POST | `/api/v1/cluster/check-heartbeat` | CheckHeartbeat | admin |
//! | POST | `/api/v1/tasks` | SubmitTask | admin |
//! | GET | `/api/v1/tasks` | ListTasks | admin |
//! | GET | `/api/v1/tasks/{id}` | GetTask | admin |
//! | GET | `/api/v1/tasks/{id}/wait` | WaitTask (`?timeout=`) | admin |
//! | POST | `/api/v1/tasks/{id}/cancel` | CancelTask | admin |

use hyper::Method;

use super::error::ApiError;

/// Every endpoint, with the path parameters it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Health,
    Metrics,
    RegisterNode,
    ListNodes,
    OnlineNodes,
    NodesWithSkill(String),
    GetNode(String),
    ForgetNode(String),
    NodeHealth(String),
    Heartbeat(String),
    ShutdownNode(String),
    DrainNode(String),
    UndrainNode(String),
    PollTasks(String),
    StartTask { node: String, task: String },
    TaskResult { node: String, task: String },
    ClusterHealth,
    CheckHeartbeat,
    SubmitTask,
    ListTasks,
    GetTask(String),
    WaitTask(String),
    CancelTask(String),
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access<'a> {
    Open,
    Admin,
    /// The join token or the admin token.
    Join,
    /// Only the node's own secret.
    Node(&'a str),
}

impl Route {
    pub fn access(&self) -> Access<'_> {
        match self {
            Route::Health => Access::Open,
            Route::RegisterNode => Access::Join,
            Route::Heartbeat(n)
            | Route::ShutdownNode(n)
            | Route::PollTasks(n)
            | Route::StartTask { node: n, .. }
            | Route::TaskResult { node: n, .. } => Access::Node(n),
            _ => Access::Admin,
        }
    }

    /// A short stable name for metrics and logs (no ids in it).
    pub fn name(&self) -> &'static str {
        match self {
            Route::Health => "health",
            Route::Metrics => "metrics",
            Route::RegisterNode => "nodes_register",
            Route::ListNodes => "nodes_list",
            Route::OnlineNodes => "nodes_online",
            Route::NodesWithSkill(_) => "nodes_by_skill",
            Route::GetNode(_) => "node_get",
            Route::ForgetNode(_) => "node_forget",
            Route::NodeHealth(_) => "node_health",
            Route::Heartbeat(_) => "node_heartbeat",
            Route::ShutdownNode(_) => "node_shutdown",
            Route::DrainNode(_) => "node_drain",
            Route::UndrainNode(_) => "node_undrain",
            Route::PollTasks(_) => "node_poll",
            Route::StartTask { .. } => "node_task_start",
            Route::TaskResult { .. } => "node_task_result",
            Route::ClusterHealth => "cluster_health",
            Route::CheckHeartbeat => "cluster_check_heartbeat",
            Route::SubmitTask => "tasks_submit",
            Route::ListTasks => "tasks_list",
            Route::GetTask(_) => "task_get",
            Route::WaitTask(_) => "task_wait",
            Route::CancelTask(_) => "task_cancel",
        }
    }
}

/// Turns a method and a path into a route.
pub fn parse(method: &Method, path: &str) -> Result<Route, ApiError> {
    let raw: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let segs: Vec<String> =
        raw.iter().map(|s| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()).collect();
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let (allowed, route): (Method, Route) = match s.as_slice() {
        ["health"] => (Method::GET, Route::Health),
        ["metrics"] => (Method::GET, Route::Metrics),
        ["api", "v1", "nodes"] => (Method::GET, Route::ListNodes),
        ["api", "v1", "nodes", "register"] => (Method::POST, Route::RegisterNode),
        ["api", "v1", "nodes", "online"] => (Method::GET, Route::OnlineNodes),
        ["api", "v1", "nodes", "skills", skill] if !skill.is_empty() => {
            (Method::GET, Route::NodesWithSkill(skill.to_string()))
        }
        ["api", "v1", "nodes", id] if !id.is_empty() => match *method {
            Method::DELETE => (Method::DELETE, Route::ForgetNode(id.to_string())),
            _ => (Method::GET, Route::GetNode(id.to_string())),
        },
        ["api", "v1", "nodes", id, "health"] => (Method::GET, Route::NodeHealth(id.to_string())),
        ["api", "v1", "nodes", id, "heartbeat"] => (Method::POST, Route::Heartbeat(id.to_string())),
        ["api", "v1", "nodes", id, "shutdown"] => (Method::POST, Route::ShutdownNode(id.to_string())),
        ["api", "v1", "nodes", id, "drain"] => (Method::POST, Route::DrainNode(id.to_string())),
        ["api", "v1", "nodes", id, "undrain"] => (Method::POST, Route::UndrainNode(id.to_string())),
        ["api", "v1", "nodes", id, "tasks", "poll"] => (Method::POST, Route::PollTasks(id.to_string())),
        ["api", "v1", "nodes", id, "tasks", task, "start"] => {
            (Method::POST, Route::StartTask { node: id.to_string(), task: task.to_string() })
        }
        ["api", "v1", "nodes", id, "tasks", task, "result"] => {
            (Method::POST, Route::TaskResult { node: id.to_string(), task: task.to_string() })
        }
        ["api", "v1", "cluster", "health"] => (Method::GET, Route::ClusterHealth),
        ["api", "v1", "cluster", "check-heartbeat"] => (Method::POST, Route::CheckHeartbeat),
        ["api", "v1", "tasks"] => match *method {
            Method::POST => (Method::POST, Route::SubmitTask),
            _ => (Method::GET, Route::ListTasks),
        },
        ["api", "v1", "tasks", id] if !id.is_empty() => (Method::GET, Route::GetTask(id.to_string())),
        ["api", "v1", "tasks", id, "wait"] => (Method::GET, Route::WaitTask(id.to_string())),
        ["api", "v1", "tasks", id, "cancel"] => (Method::POST, Route::CancelTask(id.to_string())),
        _ => {
            return Err(ApiError::NotFound(format!("no endpoint at {path}; see docs/api.md")));
        }
    };
    let allow = match route {
        Route::SubmitTask | Route::ListTasks => "GET, POST",
        Route::GetNode(_) | Route::ForgetNode(_) => "GET, HEAD, DELETE",
        _ if allowed == Method::GET => "GET, HEAD",
        _ => "POST",
    };
    let ok = *method == allowed || (*method == Method::HEAD && allowed == Method::GET);
    if !ok {
        return Err(ApiError::MethodNotAllowed {
            method: method.to_string(),
            path: path.to_string(),
            allow: allow.into(),
        });
    }
    Ok(route)
}

impl Route {
    /// Whether the route reads a request body. The others answer without waiting for one
    /// (a body sent anyway is left unread and the connection closed after the answer).
    pub fn takes_body(&self) -> bool {
        match self {
            Route::RegisterNode
            | Route::Heartbeat(_)
            | Route::PollTasks(_)
            | Route::StartTask { .. }
            | Route::TaskResult { .. }
            | Route::SubmitTask => true,
            Route::Health
            | Route::Metrics
            | Route::ListNodes
            | Route::OnlineNodes
            | Route::NodesWithSkill(_)
            | Route::GetNode(_)
            | Route::ForgetNode(_)
            | Route::NodeHealth(_)
            | Route::ShutdownNode(_)
            | Route::DrainNode(_)
            | Route::UndrainNode(_)
            | Route::ClusterHealth
            | Route::CheckHeartbeat
            | Route::ListTasks
            | Route::GetTask(_)
            | Route::WaitTask(_)
            | Route::CancelTask(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_become_routes() {
        assert_eq!(parse(&Method::GET, "/health").unwrap(), Route::Health);
        assert_eq!(parse(&Method::GET, "/api/v1/nodes/").unwrap(), Route::ListNodes);
        assert_eq!(parse(&Method::GET, "/api/v1/nodes/online").unwrap(), Route::OnlineNodes);
        assert_eq!(
            parse(&Method::GET, "/api/v1/nodes/skills/data%20analysis").unwrap(),
            Route::NodesWithSkill("data analysis".into())
        );
        assert_eq!(parse(&Method::GET, "/api/v1/nodes/w1").unwrap(), Route::GetNode("w1".into()));
        assert_eq!(parse(&Method::DELETE, "/api/v1/nodes/w1").unwrap(), Route::ForgetNode("w1".into()));
        assert!(matches!(parse(&Method::PUT, "/api/v1/nodes/w1"), Err(ApiError::MethodNotAllowed { .. })));
        assert_eq!(
            parse(&Method::POST, "/api/v1/nodes/w1/tasks/t1/result").unwrap(),
            Route::TaskResult { node: "w1".into(), task: "t1".into() }
        );
        assert_eq!(parse(&Method::POST, "/api/v1/tasks").unwrap(), Route::SubmitTask);
        assert_eq!(parse(&Method::GET, "/api/v1/tasks").unwrap(), Route::ListTasks);
    }

    #[test]
    fn unknown_paths_are_404_and_wrong_methods_405() {
        assert!(matches!(parse(&Method::GET, "/api/v2/nodes"), Err(ApiError::NotFound(_))));
        assert!(matches!(parse(&Method::GET, "/"), Err(ApiError::NotFound(_))));
        match parse(&Method::DELETE, "/api/v1/nodes") {
            Err(ApiError::MethodNotAllowed { allow, .. }) => assert_eq!(allow, "GET, HEAD"),
            other => panic!("{other:?}"),
        }
        match parse(&Method::GET, "/api/v1/nodes/w1/heartbeat") {
            Err(ApiError::MethodNotAllowed { allow, .. }) => assert_eq!(allow, "POST"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse(&Method::PUT, "/api/v1/tasks"), Err(ApiError::MethodNotAllowed { .. })));
    }

    #[test]
    fn node_routes_need_that_node() {
        assert_eq!(parse(&Method::POST, "/api/v1/nodes/w1/heartbeat").unwrap().access(), Access::Node("w1"));
        assert_eq!(parse(&Method::POST, "/api/v1/nodes/register").unwrap().access(), Access::Join);
        assert_eq!(parse(&Method::GET, "/health").unwrap().access(), Access::Open);
        assert_eq!(parse(&Method::POST, "/api/v1/nodes/w1/drain").unwrap().access(), Access::Admin);
    }
}
