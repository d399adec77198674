//! The route table: every endpoint of the HTTP API, once. The server parses requests into
//! a [`Route`] with it, the client renders a `Route` back into a method and a path with
//! it, the CLI builds `Route`s (never path strings), and the API docs test walks it.
//!
//! | method | path | route | who may call |
//! |---|---|---|---|
//! | GET | `/` | Dashboard (the web UI's page) | anyone |
//! | GET | `/ui` | Ui (a redirect to `/`) | anyone |
//! | GET | `/assets/{asset}` | Asset (the web UI's scripts and styles) | anyone |
//! | GET | `/openapi.json` | OpenApi (this table as OpenAPI 3.1) | anyone |
//! | GET | `/health` | Health | anyone |
//! | GET | `/metrics` | Metrics | admin |
//! | GET | `/api/v1/whoami` | Whoami (which token this is) | read |
//! | POST | `/api/v1/nodes/register` | RegisterNode | join token, the node's secret, or admin |
//! | GET | `/api/v1/nodes` | ListNodes (`?status=`) | read |
//! | GET | `/api/v1/nodes/online` | OnlineNodes | read |
//! | GET | `/api/v1/nodes/skills/{skill}` | NodesWithSkill | read |
//! | GET | `/api/v1/nodes/{node}` | GetNode | read |
//! | DELETE | `/api/v1/nodes/{node}` | ForgetNode (offline nodes only) | admin |
//! | GET | `/api/v1/nodes/{node}/health` | NodeHealth | read |
//! | POST | `/api/v1/nodes/{node}/heartbeat` | Heartbeat | that node |
//! | POST | `/api/v1/nodes/{node}/shutdown` | ShutdownNode | that node |
//! | POST | `/api/v1/nodes/{node}/drain` | DrainNode | admin |
//! | POST | `/api/v1/nodes/{node}/undrain` | UndrainNode | admin |
//! | POST | `/api/v1/nodes/{node}/tasks/poll` | PollTasks | that node |
//! | POST | `/api/v1/nodes/{node}/tasks/{task}/start` | StartTask | that node |
//! | POST | `/api/v1/nodes/{node}/tasks/{task}/result` | TaskResult | that node |
//! | POST | `/api/v1/nodes/{node}/tasks/reports` | TaskReports | that node |
//! | POST | `/api/v1/nodes/{node}/tasks/{task}/output` | PushOutput | that node |
//! | GET | `/api/v1/cluster/health` | ClusterHealth | read |
//! | GET | `/api/v1/skills` | ClusterSkills (every skill, its nodes, digests, drift) | read |
//! | POST | `/api/v1/skills/push` | PushSkill (a package, to a selector) | admin |
//! | GET | `/api/v1/skills/pushes` | ListSkillPushes (each node's progress) | read |
//! | POST | `/api/v1/skills/pushes/{name}/remove` | RemoveSkillPush | admin |
//! | POST | `/api/v1/skills/pushes/{name}/rollback` | RollbackSkillPush | admin |
//! | GET | `/api/v1/nodes/{node}/skills/packages/{digest}` | SkillPackage (the tar) | that node |
//! | POST | `/api/v1/cluster/check-heartbeat` | CheckHeartbeat | admin |
//! | POST | `/api/v1/tasks` | SubmitTask | submit |
//! | GET | `/api/v1/tasks` | ListTasks (`?status= &node= &skill= &limit= &after=`) | read |
//! | GET | `/api/v1/tasks/{task}` | GetTask | read |
//! | GET | `/api/v1/tasks/{task}/wait` | WaitTask (`?timeout=`) | read |
//! | POST | `/api/v1/tasks/{task}/cancel` | CancelTask | submit |
//! | POST | `/api/v1/tasks/{task}/retry` | RetryTask | submit |
//! | POST | `/api/v1/workflows` | SubmitWorkflow (linked tasks, one transition) | submit |
//! | GET | `/api/v1/backup` | Backup | admin |
//! | GET | `/api/v1/secrets` | ListSecrets (names, never values) | admin |
//! | PUT | `/api/v1/secrets/{name}` | SetSecret | admin |
//! | DELETE | `/api/v1/secrets/{name}` | DeleteSecret | admin |
//! | POST | `/api/v1/secrets/rotate-key` | RotateSecretKey | admin |
//! | GET | `/api/v1/tasks/{task}/output` | TaskOutput (`?follow= &after=`) | read |
//! | GET | `/api/v1/events` | Events (`?task= &node= &skill= &kind= &schedule= &after=`) | read |
//! | POST | `/api/v1/schedules` | CreateSchedule | submit |
//! | GET | `/api/v1/schedules` | ListSchedules | read |
//! | GET | `/api/v1/schedules/{schedule}` | GetSchedule (by id or name) | read |
//! | PATCH | `/api/v1/schedules/{schedule}` | EditSchedule | submit |
//! | DELETE | `/api/v1/schedules/{schedule}` | RemoveSchedule | submit |
//! | POST | `/api/v1/schedules/{schedule}/pause` | PauseSchedule | submit |
//! | POST | `/api/v1/schedules/{schedule}/resume` | ResumeSchedule | submit |
//! | POST | `/api/v1/schedules/{schedule}/run` | RunSchedule (run now) | submit |
//! | GET | `/api/v1/schedules/{schedule}/runs` | ScheduleRuns (`?before= &limit=`) | read |
//! | POST | `/mcp` | Mcp (MCP over Streamable HTTP) | submit |
//!
//! Each row also says what the endpoint takes and answers (query and headers, body, success
//! answers, its own error codes), in the schemas of the wire model; [`LINKS`] says where a
//! registered node's id and secret and a task's id go next. [`crate::openapi`] turns both
//! into the OpenAPI document; this module imports nothing from the server.
//!
//! Invariants: a path template appears in [`TABLE`] only; a known path with another method
//! is a 405 naming the allowed ones; a query parameter a route does not take, or one that
//! does not parse, is a 400 naming it; the formats of query values are those of the
//! document (`TaskQuery::position`, `WaitQuery::wait` read them, from src/model).

use std::fmt;

use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaType, Type};
use utoipa::openapi::{Ref, RefOr, Schema};
use utoipa::{IntoParams, ToSchema};

use crate::model::{self as m, ErrorCode as E, EventKind, NodeStatus, TaskStatus};

/// Who may call an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, no token.
    Open,
    /// The join token (a new or offline node), the node's own secret, or the admin token.
    Join,
    /// Only the node named in the path, with its secret.
    Node,
    /// Reading the cluster: nodes, tasks, health.
    Read,
    /// Submitting and cancelling tasks.
    Submit,
    /// Everything else: drain, forget, metrics, liveness checks.
    Admin,
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Access::Open => "anyone",
            Access::Join => "join token, the node's secret, or admin",
            Access::Node => "that node's secret",
            Access::Read => "admin or tasks token",
            Access::Submit => "admin or tasks token",
            Access::Admin => "admin",
        })
    }
}

/// `?status=` of `GET /api/v1/nodes` (`status_filter` is the original's name).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct NodeQuery {
    /// Only nodes of this status (alias: `status_filter`).
    #[serde(default, alias = "status_filter", skip_serializing_if = "Option::is_none")]
    #[param(value_type = Option<m::NodeStatusInput>, inline)]
    pub status: Option<NodeStatus>,
    /// At most this many nodes, in node id order (1 to 10000); every node when absent. A
    /// full page that is not the last says where the next starts in a `Link` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(value_type = Option<m::NodePageLimit>, inline)]
    pub limit: Option<u32>,
    /// Only nodes whose id sorts after this one: the last node id of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(value_type = Option<m::NodeId>, inline)]
    pub after: Option<String>,
}

impl NodeQuery {
    /// The page size (None: every node), or why it is refused.
    pub fn page_limit(&self) -> Result<Option<usize>, String> {
        match self.limit {
            None => Ok(None),
            Some(l) if m::NODE_PAGE_LIMIT.contains(&l) => Ok(Some(l as usize)),
            Some(l) => Err(format!(
                "limit: must be from {} to {} nodes, got {l}",
                m::NODE_PAGE_LIMIT.start(),
                m::NODE_PAGE_LIMIT.end()
            )),
        }
    }

    /// The node id the page continues after, or why it is refused.
    pub fn position(&self) -> Result<Option<&str>, String> {
        match self.after.as_deref().map(str::trim) {
            Some(id) => m::validate_node_id(id).map(|()| Some(id)).map_err(|e| format!("after: {e}")),
            None => Ok(None),
        }
    }

    /// The same query continuing after `node_id` (the next page's).
    pub fn next_page(&self, node_id: &str) -> NodeQuery {
        NodeQuery { after: Some(node_id.to_string()), ..self.clone() }
    }
}

/// The filters and the page of `GET /api/v1/tasks`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TaskQuery {
    /// Only tasks of this status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(value_type = Option<m::TaskStatusInput>, inline)]
    pub status: Option<TaskStatus>,
    /// Only tasks assigned to this node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Only tasks that require this skill.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skill: Option<String>,
    /// 1 to 1000; 50 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(value_type = Option<m::PageLimit>, inline)]
    pub limit: Option<u32>,
    /// The `next` cursor of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(value_type = Option<m::TaskCursor>, inline)]
    pub after: Option<String>,
}

impl TaskQuery {
    /// The page size (`limit`, [`m::DEFAULT_PAGE_LIMIT`] when absent), or why it is refused.
    pub fn page_limit(&self) -> Result<u32, String> {
        match self.limit {
            None => Ok(m::DEFAULT_PAGE_LIMIT),
            Some(l) if m::PAGE_LIMIT.contains(&l) => Ok(l),
            Some(l) => {
                Err(format!("limit: must be from {} to {}, got {l}", m::PAGE_LIMIT.start(), m::PAGE_LIMIT.end()))
            }
        }
    }

    /// The position the page continues after (`after`), or why it is refused.
    pub fn position(&self) -> Result<Option<i64>, String> {
        self.after.as_deref().map(|a| m::parse_cursor(a).map_err(|e| format!("after: {e}"))).transpose()
    }
}

/// `?timeout=` of `GET /api/v1/tasks/{task}/wait`: seconds or `90s`, `10m` (at most 1 h).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WaitQuery {
    /// How long to wait: seconds (`90`, `1.5`) or a number with `ms`, `s`, `m` or `h`
    /// (`250ms`, `10m`); 30 s when absent, at most 1 h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(value_type = Option<m::WaitTimeout>, inline)]
    pub timeout: Option<String>,
}

impl WaitQuery {
    /// A wait of this long.
    pub fn new(wait: std::time::Duration) -> WaitQuery {
        WaitQuery { timeout: Some(m::wait_text(wait)) }
    }

    /// How long to wait (at most [`m::MAX_WAIT`]), or why the timeout is refused.
    pub fn wait(&self) -> Result<std::time::Duration, String> {
        match &self.timeout {
            None => Ok(m::DEFAULT_WAIT),
            Some(t) => m::parse_wait(t).map_err(|e| format!("query parameter `timeout`: {e}")),
        }
    }
}

/// The filters and the resume point of `GET /api/v1/events`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    /// Only this task's events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// Only events about this node (its own, and its tasks' placements and ends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Only events of tasks whose skill (first required) is this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skill: Option<String>,
    /// Only `task`, only `node` or only `schedule` events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(value_type = Option<m::EventKindInput>, inline)]
    pub kind: Option<EventKind>,
    /// Only this schedule's events (its id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// Resume after this event id (the `Last-Event-ID` header wins when both are sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<u64>,
}

/// `?before= &limit=` of `GET /api/v1/schedules/{schedule}/runs`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RunQuery {
    /// Only runs numbered below this one (the `next` of the previous page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<u64>,
    /// 1 to 1000; 50 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(value_type = Option<m::PageLimit>, inline)]
    pub limit: Option<u32>,
}

impl RunQuery {
    /// The page size, or why it is refused.
    pub fn page_limit(&self) -> Result<u32, String> {
        TaskQuery { limit: self.limit, ..Default::default() }.page_limit()
    }
}

/// `?follow= &after=` of `GET /api/v1/tasks/{task}/output`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OutputQuery {
    /// Stream the lines as Server-Sent Events until the task ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow: Option<bool>,
    /// Only lines after this `seq` (the `Last-Event-ID` header wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<u64>,
}

/// The component schemas an operation refers to, collected while the document is built.
pub type Components = Vec<(String, RefOr<Schema>)>;

/// Registers a schema (and those it refers to) and returns what an operation puts in place
/// of it: a `$ref`, an array of one, or an inline schema.
pub type SchemaFn = fn(&mut Components) -> RefOr<Schema>;

/// What a request body holds.
#[derive(Clone, Copy)]
pub enum Body {
    /// Nothing is read.
    None,
    /// JSON of this schema, required.
    Json(SchemaFn),
    /// JSON of this schema, or an empty body (every field is optional).
    Optional(SchemaFn),
}

/// What a success answer holds.
#[derive(Clone, Copy)]
pub enum Answer {
    /// JSON of this schema.
    Json(SchemaFn),
    /// A body of one of these media types.
    Media(&'static [&'static str]),
    /// A redirect to this location, no body.
    Redirect(&'static str),
    /// Server-Sent Events: each event's name and the schema of its `data` (JSON, one line);
    /// the document describes each event (name, `id`, `data` with its `contentSchema`).
    Stream(&'static [(&'static str, SchemaFn)]),
}

/// A model type, by reference.
pub fn json<T: ToSchema>(c: &mut Components) -> RefOr<Schema> {
    T::schemas(c);
    c.push((T::name().into_owned(), T::schema()));
    Ref::from_schema_name(T::name()).into()
}

/// An array of a model type.
pub fn list<T: ToSchema>(c: &mut Components) -> RefOr<Schema> {
    ArrayBuilder::new().items(json::<T>(c)).into()
}

/// The answer of `GET /openapi.json` (the document; its shape is OpenAPI's own).
pub fn document_schema(_: &mut Components) -> RefOr<Schema> {
    ObjectBuilder::new().schema_type(Type::Object).description(Some("An OpenAPI 3.1 document (this one)")).into()
}

/// A JSON-RPC 2.0 message of MCP (`/mcp`): a request, a notification or an answer. Its
/// `params` and `result` are MCP's own (modelcontextprotocol.io, the version the
/// `initialize` answer names).
pub fn json_rpc_schema(_: &mut Components) -> RefOr<Schema> {
    let any = || ObjectBuilder::new().schema_type(Type::Object);
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some("A JSON-RPC 2.0 message of the Model Context Protocol"))
        .property("jsonrpc", ObjectBuilder::new().schema_type(Type::String).enum_values(Some(["2.0"])))
        .required("jsonrpc")
        .property("id", ObjectBuilder::new().schema_type(SchemaType::from_iter([Type::String, Type::Integer])))
        .property("method", ObjectBuilder::new().schema_type(Type::String))
        .property("params", any())
        .property("result", any())
        .property("error", any())
        .into()
}

/// A schedule request's timing, beside its body's schema: exactly one of `cron`, `every`
/// and `at` (a new schedule), or at most one (a change).
fn one_timing(body: RefOr<Schema>, none_allowed: bool) -> RefOr<Schema> {
    use utoipa::openapi::schema::{AllOfBuilder, OneOfBuilder};
    const FIELDS: [&str; 3] = ["cron", "every", "at"];
    // Refinements of the body, not shapes of their own: no `type`, so they close nothing.
    let alternative = |set: Option<&str>| {
        let mut o = ObjectBuilder::new().schema_type(SchemaType::AnyValue);
        for f in FIELDS {
            o = if Some(f) == set {
                o.property(f, ObjectBuilder::new().schema_type(Type::String)).required(f)
            } else {
                o.property(f, ObjectBuilder::new().schema_type(Type::Null))
            };
        }
        o
    };
    let mut one_of = OneOfBuilder::new();
    if none_allowed {
        one_of = one_of.item(alternative(None));
    }
    for f in FIELDS {
        one_of = one_of.item(alternative(Some(f)));
    }
    AllOfBuilder::new().item(body).item(one_of).into()
}

/// `POST /api/v1/schedules`: a `NewSchedule` with exactly one timing.
pub fn new_schedule_schema(c: &mut Components) -> RefOr<Schema> {
    one_timing(json::<m::NewSchedule>(c), false)
}

/// `PATCH /api/v1/schedules/{schedule}`: a `ScheduleEdit` with at most one new timing.
pub fn schedule_edit_schema(c: &mut Components) -> RefOr<Schema> {
    one_timing(json::<m::ScheduleEdit>(c), true)
}

/// Every endpoint, with its path parameters and its typed query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Dashboard,
    Ui,
    Asset { asset: String },
    OpenApi,
    Health,
    Metrics,
    Whoami,
    RegisterNode,
    ListNodes(NodeQuery),
    OnlineNodes,
    NodesWithSkill { skill: String },
    GetNode { node: String },
    ForgetNode { node: String },
    NodeHealth { node: String },
    Heartbeat { node: String },
    ShutdownNode { node: String },
    DrainNode { node: String },
    UndrainNode { node: String },
    PollTasks { node: String },
    StartTask { node: String, task: String },
    TaskResult { node: String, task: String },
    TaskReports { node: String },
    PushOutput { node: String, task: String },
    ClusterHealth,
    ClusterSkills,
    PushSkill,
    ListSkillPushes,
    RemoveSkillPush { name: String },
    RollbackSkillPush { name: String },
    SkillPackage { node: String, digest: String },
    CheckHeartbeat,
    SubmitTask,
    ListTasks(TaskQuery),
    GetTask { task: String },
    WaitTask { task: String, query: WaitQuery },
    CancelTask { task: String },
    RetryTask { task: String },
    SubmitWorkflow,
    Backup,
    ListSecrets,
    SetSecret { name: String },
    DeleteSecret { name: String },
    RotateSecretKey,
    TaskOutput { task: String, query: OutputQuery },
    Events(EventQuery),
    CreateSchedule,
    ListSchedules,
    GetSchedule { schedule: String },
    EditSchedule { schedule: String },
    RemoveSchedule { schedule: String },
    PauseSchedule { schedule: String },
    ResumeSchedule { schedule: String },
    RunSchedule { schedule: String },
    ScheduleRuns { schedule: String, query: RunQuery },
    Mcp,
}

/// One row of the table.
pub struct Endpoint {
    pub method: Method,
    /// `{name}` marks a path parameter.
    pub path: &'static str,
    /// The route's name, as [`Route::name`] gives it (metrics, logs, docs).
    pub name: &'static str,
    pub access: Access,
    /// What it does, for the docs.
    pub summary: &'static str,
    /// The query parameters it takes (from the route's query type), and the headers it
    /// reads besides `Authorization`.
    pub query: Option<fn() -> Vec<Parameter>>,
    /// The request body it takes.
    pub body: Body,
    /// Its success answers: status and what the body holds.
    pub ok: &'static [(u16, Answer)],
    /// The error codes it may answer besides those every endpoint of its access and body
    /// answers (see [`Endpoint::error_codes`]).
    pub errors: &'static [E],
    /// Builds the route from the path parameters (in path order) and the raw query.
    build: fn(Vec<String>, &str) -> Result<Route, RouteError>,
}

impl Endpoint {
    /// Every error code the endpoint can answer: those of every endpoint (a bad query; too
    /// many open connections; with auth off, a request not from this machine), of every
    /// endpoint that takes a token (a missing or wrong token, a token of another kind), of
    /// every endpoint that reads a body (a bad, oversized, slow or non-JSON body), of every
    /// stream (past a stream cap), and its row's own codes.
    pub fn error_codes(&self) -> Vec<E> {
        let mut codes = vec![E::InvalidQuery, E::Unavailable, E::Forbidden];
        if self.access != Access::Open {
            codes.push(E::Unauthorized);
        }
        if !matches!(self.body, Body::None) {
            codes.extend([E::BadRequest, E::PayloadTooLarge, E::RequestTimeout, E::UnsupportedMediaType]);
        }
        if self.ok.iter().any(|(_, answer)| matches!(answer, Answer::Stream(_))) {
            codes.push(E::TooManyStreams);
        }
        for code in self.errors {
            if !codes.contains(code) {
                codes.push(*code);
            }
        }
        codes
    }
}

/// A stream's parameters, and the `Last-Event-ID` header that resumes it.
fn resumable(mut parameters: Vec<Parameter>) -> Vec<Parameter> {
    use utoipa::PartialSchema;
    parameters.push(
        utoipa::openapi::path::ParameterBuilder::new()
            .name("Last-Event-ID")
            .parameter_in(ParameterIn::Header)
            .description(Some("Resume after this id (sent by EventSource clients when they reconnect)"))
            .schema(Some(m::LastEventId::schema()))
            .build(),
    );
    parameters
}

fn none(params: Vec<String>, query: &str, route: Route) -> Result<Route, RouteError> {
    let _ = params;
    no_query(query)?;
    Ok(route)
}

/// The table. Order matters only for reading; paths are matched exactly.
pub static TABLE: &[Endpoint] = &[
    Endpoint {
        method: Method::GET,
        path: "/",
        name: "dashboard",
        query: None,
        body: Body::None,
        ok: &[(200, Answer::Media(&["text/html"]))],
        errors: &[],
        access: Access::Open,
        summary: "The web dashboard (it logs in with a token of its own)",
        build: |p, q| none(p, q, Route::Dashboard),
    },
    Endpoint {
        method: Method::GET,
        path: "/ui",
        name: "ui",
        query: None,
        body: Body::None,
        ok: &[(308, Answer::Redirect("/"))],
        errors: &[],
        access: Access::Open,
        summary: "Redirects to the dashboard",
        build: |p, q| none(p, q, Route::Ui),
    },
    Endpoint {
        method: Method::GET,
        path: "/assets/{asset}",
        name: "asset",
        query: None,
        body: Body::None,
        ok: &[(200, Answer::Media(&["text/javascript", "text/css", "image/svg+xml"]))],
        errors: &[E::NotFound],
        access: Access::Open,
        summary: "A script, style sheet or icon of the dashboard",
        build: |mut p, q| {
            no_query(q)?;
            Ok(Route::Asset { asset: take(&mut p) })
        },
    },
    Endpoint {
        method: Method::GET,
        path: "/openapi.json",
        name: "openapi",
        query: None,
        body: Body::None,
        ok: &[(200, Answer::Json(document_schema))],
        errors: &[],
        access: Access::Open,
        summary: "This API as an OpenAPI 3.1 document",
        build: |p, q| none(p, q, Route::OpenApi),
    },
    Endpoint {
        method: Method::GET,
        path: "/health",
        name: "health",
        query: None,
        body: Body::None,
        ok: &[(200, Answer::Json(json::<m::ServiceHealth>))],
        errors: &[],
        access: Access::Open,
        summary: "Liveness of the coordinator",
        build: |p, q| none(p, q, Route::Health),
    },
    Endpoint {
        method: Method::GET,
        path: "/metrics",
        name: "metrics",
        query: None,
        body: Body::None,
        ok: &[(200, Answer::Media(&["application/openmetrics-text"]))],
        errors: &[],
        access: Access::Admin,
        summary: "Prometheus (OpenMetrics) text",
        build: |p, q| none(p, q, Route::Metrics),
    },
    Endpoint {
        method: Method::GET,
        path: "/api/v1/whoami",
        name: "whoami",
        query: None,
        body: Body::None,
        ok: &[(200, Answer::Json(json::<m::Whoami>))],
        errors: &[],
        access: Access::Read,
        summary: "Which kind of token the request carries (the dashboard shows admin controls by it)",
        build: |p, q| none(p, q, Route::Whoami),
    },
    Endpoint {
        method: Method::POST,
        path: "/api/v1/nodes/register",
        name: "nodes_register",
        query: None,
        body: Body::Json(json::<m::RegisterRequest>),
        ok: &[(200, Answer::Json(json::<m::RegisterResponse>))],
        errors: &[E::NodeIdInUse, E::NodeLimit, E::Overloaded, E::Unavailable],
        access: Access::Join,
        summary: "A worker joins; the answer carries its node secret",
        build: |p, q| none(p, q, Route::RegisterNode),
    },
    Endpoint {
        method: Method::GET,
        path: "/api/v1/nodes",
        name: "nodes_list",
        query: Some(|| NodeQuery::into_params(|| Some(ParameterIn::Query))),
        body: Body::None,
        ok: &[(200, Answer::Json(list::<m::Node>))],
        errors: &[],
        access: Access::Read,
        summary: "Every node, optionally of one status; in pages with `limit` and `after`",
        build: |_, q| Ok(Route::ListNodes(query(q)?)),
    },
    Endpoint {
        method: Method::GET,
        path: "/api/v1/nodes/online",
        name: "nodes_online",
        query: None,
        body: Body::None,
        ok: &[(200, Answer::Json(list::<m::Node>))],
        errors: &[],
        access: Access::Read,
        summary: "Online nodes",
        build: |p, q| none(p, q, Route::OnlineNodes),
    },
    Endpoint {
        method: Method::GET,
        path: "/api/v1/nodes/skills/{skill}",
        name: "nodes_by_skill",
        query: None,
        body: Body::None,
        ok: &[(200, Answer::Json(list::<m::Node>))],
        errors: &[],
        access: Access::Read,
        summary: "Online nodes that have the skill",
        build: |mut p, q| {
            no_query(q)?;
            Ok(Route::NodesWithSkill { skill: take(&mut p) })
        },
    },
    Endpoint {
        method: Method::GET,
        path: "/api/v1/nodes/{node}",
        name: "node_get",
        query: None,
        body: Body::None,
        ok: &[(200, Answer::Json(json::<m::Node>))],
        errors: &[E::UnknownNode],
        access: Access::Read,
        summary: "One node",
        build: |mut p, q| {
            no_query(q)?;
            Ok(Route::GetNode { node: take(&mut p) })
        },
    },
    Endpoint {
        method: Method::DELETE,
        path: "/api/v1/nodes/{node}",
        name: "node_forget",
        query: None,
        body: Body::None,
        ok: &[(200, Answer::Json(json::<m::NodeActionResponse>))],
        errors: &[E::UnknownNode, E::NodeBusy, E::Overloaded, E::Unavailable],
        access: Access::Admin,
        summary: "Forget an offline node that holds no work",
        build: |mut p, q| {
            no_query(q)?;
            Ok(Route::ForgetNode { node: take(&mut p) })
        },
    },
    Endpoint {
        method: Method::GET,
        path: "/api/v1/nodes/{node}/health",
        name: "node_health",
        query: None,
        body: Body::None,
        ok: &[(200, Answer::Json(json::<m::NodeHealth>))],
        errors: &[E::UnknownNode],
        access: Access::Read,
        summary: "One node's health",
        build: |mut p, q| {
            no_query(q)?;
            Ok(Route::NodeHealth { node: take(&mut p) })
        },
    },
    Endpoint {
        method: Method::POST,
        path: "/api/v1/nodes/{node}/heartbeat",
        name: "node_heartbeat",
        query: None,
        body: Body::Optional(json::<m::HeartbeatRequest>),
        ok: &[(200, Answer::Json(json::<m::HeartbeatResponse>))],
        errors: &[E::UnknownNode, E::Overloaded, E::Unavailable],
        access: Access::Node,
        summary: "Usage figures, held attempts, skills when they changed",
        build: |mut p, q| {
            no_query(q)?;
            Ok(Route::Heartbeat { node: take(&mut p) })
        },
    },
    Endpoint {
        method: Method::POST,
        path: "/api/v1/nodes/{node}/shutdown",
        name: "node_shutdown",
        query: None,
        body: Body::None,
        ok: &[(200, Answer::Json(json::<m::NodeActionResponse>))],
        errors: &[E::UnknownNode, E::Overloaded, E::Unavailable],
        access: Access::Node,
        summary: "The node leaves (offline now, its tasks requeued)",
        build: |mut p, q| {
            no_query(q)?;
            Ok(Route::ShutdownNode { node: take(&mut p) })
        },
    },
    Endpoint {
        method: Method::POST,
        path: "/api/v1/nodes/{node}/drain",
        name: "node_drain",
        query: None,
        body: Body::None,
        ok: &[(200, Answer::Json(json::<m::NodeActionResponse>))],
        errors: &[E::UnknownNode, E::Overloaded, E::Unavailable],
        access: Access::Admin,
        summary: "Maintenance on: no new tasks",
        build: |mut p, q| {
            no_query(q)?;
            Ok(Route::DrainNode { node: take(&mut p) })
        },
    },
    Endpoint {
        method: Method::POST,
        path: "/api/v1/nodes/{node}/undrain",
        name: "node_undrain",
        query: None,
        body: Body::None,
        ok: &[(200, Answer::Json(json::<m::NodeActionResponse>))],
        errors: &[E::UnknownNode, E::Overloaded, E::Unavailable],
        access: Access::Admin,
        summary: "Maintenance off",
        build: |mut p, q| {
            no_query(q)?;
            Ok(Route::UndrainNode { node: take(&mut p) })
        },
    },
    Endpoint {
        method: Method::POST,
        path: "/api/v1/nodes/{node}/tasks/poll",
        name: "node_poll",
        query: None,
        body: Body::Optional(json::<m::PollRequest>),
        ok: &[(200, Answer::Json(json::<m::PollResponse>))],
        errors: &[E::UnknownNode, E::Overloaded, E::Unavailable],
        access: Access::Node,
        summary: "Long poll for assignments and cancels",
        build: |mut p, q| {
            no_query(q)?;
            Ok(Route::PollTasks { node: take(&mut p) })
        },
    },
    Endpoint {
        method: Method::POST,
        path: "/api/v1/nodes/{node}/tasks/{task}/start",
        name: "node_task_start",
        query: None,
        body: Body::Json(json::<m::StartReport>),
        ok: &[(200, Answer::Json(json::<m::ReportResponse>))],
        errors: &[E::UnknownNode, E::UnknownTask, E::StaleAttempt, E::Overloaded, E::Unavailable],
        access: Access::Node,
        summary: "An attempt started",
        build: |mut p, q| {
            no_query(q)?;
            let node = take(&mut p);
            Ok(Route::StartTask { node, task: take(&mut p) })
        },
    },
    Endpoint {
        method: Method::POST,
        path: "/api/v1/nodes/{node}/tasks/{task}/result",
        name: "node_task_result",
        query: None,
        body: Body::Json(json::<m::ResultReport>),
        ok: &[(200, Answer::Json(json::<m::ReportResponse>))],
        errors: &[E::UnknownNode, E::UnknownTask, E::StaleAttempt, E::Overloaded, E::Unavailable],
        access: Access::Node,
        summary: "How an attempt ended",
        build: |mut p, q| {
            no_query(q)?;
            let node = take(&mut p);
            Ok(Route::TaskResult { node, task: take(&mut p) })
        },
    },
    Endpoint {
        method: Method::POST,
        path: "/api/v1/nodes/{node}/tasks/reports",
        name: "node_task_reports",
        query: None,
        body: Body::Json(json::<m::ReportBatch>),
        ok: &[(200, Answer::Json(json::<m::ReportBatchAnswer>))],
        errors: &[E::UnknownNode, E::Overloaded, E::Unavailable],
        access: Access::Node,
        summary: "Start reports and results of many attempts in one commit, each answered on its own",
        build: |mut p, q| {
            no_query(q)?;
            Ok(Route::TaskReports { node: take(&mut p) })
        },
    },
    Endpoint {
        method: Method::POST,
        path: "/api/v1/nodes/{node}/tasks/{task}/output",
        name: "node_task_output",
        query: None,
        body: Body::Json(json::<m::OutputBatch>),
        ok: &[(200, Answer::Json(json::<m::OutputAck>))],
        errors: &[E::UnknownNode, E::UnknownTask, E::StaleAttempt, E::Overloaded, E::Unavailable],
        access: Access::Node,
        summary: "Lines an attempt printed (batched; kept after the commit)",
        build: |mut p, q| {
            no_query(q)?;
            let node = take(&mut p);
            Ok(Route::PushOutput { node, task: take(&mut p) })
        },
    },
    Endpoint {
        method: Method::GET,
        path: "/api/v1/cluster/health",
        name: "cluster_health",
        query: None,
        body: Body::None,
        ok: &[(200, Answer::Json(json::<m::ClusterHealth>))],
        errors: &[E::Internal, E::Unavailable],
        access: Access::Read,
        summary: "Totals and task counts",
        build: |p, q| none(p, q, Route::ClusterHealth),
    },
    Endpoint {
        method: Method::GET,
        path: "/api/v1/skills",
        name: "skills_list",
        query: None,
        body: Body::None,
        ok: &[(200, Answer::Json(json::<m::ClusterSkills>))],
        errors: &[],
        access: Access::Read,
        summary: "Every skill of the cluster: the nodes that have it, whether each can run it now (and why not), their digests, and drift",
        build: |p, q| none(p, q, Route::ClusterSkills),
    },
    Endpoint {
        method: Method::POST,
        path: "/api/v1/skills/push",
        name: "skills_push",
        query: None,
        body: Body::Json(json::<m::PushSkill>),
        ok: &[(201, Answer::Json(json::<m::SkillPush>))],
        errors: &[E::InvalidSkillPush, E::Overloaded, E::Unavailable],
        access: Access::Admin,
        summary: "Push a skill's package to the nodes of a selector (now, and to those that join or come back later)",
        build: |p, q| none(p, q, Route::PushSkill),
    },
    Endpoint {
        method: Method::GET,
        path: "/api/v1/skills/pushes",
        name: "skills_pushes",
        query: None,
        body: Body::None,
        ok: &[(200, Answer::Json(json::<m::SkillPushList>))],
        errors: &[],
        access: Access::Read,
        summary: "The pushed skills: version, the version before, selector, who pushed, and each chosen node's progress",
        build: |p, q| none(p, q, Route::ListSkillPushes),
    },
    Endpoint {
        method: Method::POST,
        path: "/api/v1/skills/pushes/{name}/remove",
        name: "skills_push_remove",
        query: None,
        body: Body::Optional(json::<m::RemoveSkill>),
        ok: &[(200, Answer::Json(json::<m::SkillPush>))],
        errors: &[E::UnknownSkillPush, E::Overloaded, E::Unavailable],
        access: Access::Admin,
        summary: "Remove a pushed skill from its nodes (or from some of them)",
        build: |mut p, q| {
            no_query(q)?;
            Ok(Route::RemoveSkillPush { name: take(&mut p) })
        },
    },
    Endpoint {
        method: Method::POST,
        path: "/api/v1/skills/pushes/{name}/rollback",
        name: "skills_push_rollback",
        query: None,
        body: Body::None,
        ok: &[(200, Answer::Json(json::<m::SkillPush>))],
        errors: &[E::UnknownSkillPush, E::NoPreviousVersion, E::Overloaded, E::Unavailable],
        access: Access::Admin,
        summary: "Go back to the version pushed before",
        build: |mut p, q| {
            no_query(q)?;
            Ok(Route::RollbackSkillPush { name: take(&mut p) })
        },
    },
    Endpoint {
        method: Method::GET,
        path: "/api/v1/nodes/{node}/skills/packages/{digest}",
        name: "node_skill_package",
        query: None,
        body: Body::None,
        ok: &[(200, Answer::Media(&["application/x-tar"]))],
        errors: &[E::UnknownSkillPush, E::Internal],
        access: Access::Node,
        summary: "A pushed skill's package, for the node it is pushed to",
        build: |mut p, q| {
            no_query(q)?;
            let node = take(&mut p);
            Ok(Route::SkillPackage { node, digest: take(&mut p) })
        },
    },
    Endpoint {
        method: Method::POST,
        path: "/api/v1/cluster/check-heartbeat",
        name: "cluster_check_heartbeat",
        query: None,
        body: Body::None,
        ok: &[(200, Answer::Json(json::<m::CheckHeartbeatResponse>))],
        errors: &[E::Overloaded, E::Unavailable],
        access: Access::Admin,
        summary: "Run a liveness check now",
        build: |p, q| none(p, q, Route::CheckHeartbeat),
    },
    Endpoint {
        method: Method::POST,
        path: "/api/v1/tasks",
        name: "tasks_submit",
        query: None,
        body: Body::Json(json::<m::SubmitTask>),
        ok: &[(201, Answer::Json(json::<m::Task>)), (200, Answer::Json(json::<m::Task>))],
        errors: &[
            E::IdempotencyConflict,
            E::Unplaceable,
            E::UnknownSecret,
            E::SecretUnreadable,
            E::Overloaded,
            E::Unavailable,
        ],
        access: Access::Submit,
        summary: "Submit a task (201)",
        build: |p, q| none(p, q, Route::SubmitTask),
    },
    Endpoint {
        method: Method::GET,
        path: "/api/v1/tasks",
        name: "tasks_list",
        query: Some(|| TaskQuery::into_params(|| Some(ParameterIn::Query))),
        body: Body::None,
        ok: &[(200, Answer::Json(json::<m::TaskList>))],
        errors: &[E::Internal, E::Unavailable],
        access: Access::Read,
        summary: "A page of tasks, newest first",
        build: |_, q| Ok(Route::ListTasks(query(q)?)),
    },
    Endpoint {
        method: Method::GET,
        path: "/api/v1/tasks/{task}",
        name: "task_get",
        query: None,
        body: Body::None,
        ok: &[(200, Answer::Json(json::<m::Task>))],
        errors: &[E::UnknownTask, E::Internal, E::Unavailable],
        access: Access::Read,
        summary: "One task with its history and why it waits",
        build: |mut p, q| {
            no_query(q)?;
            Ok(Route::GetTask { task: take(&mut p) })
        },
    },
    Endpoint {
        method: Method::GET,
        path: "/api/v1/tasks/{task}/wait",
        name: "task_wait",
        query: Some(|| WaitQuery::into_params(|| Some(ParameterIn::Query))),
        body: Body::None,
        ok: &[(200, Answer::Json(json::<m::Task>))],
        errors: &[E::UnknownTask, E::Internal, E::Unavailable],
        access: Access::Read,
        summary: "Answers when the task ends or the timeout passes",
        build: |mut p, q| Ok(Route::WaitTask { task: take(&mut p), query: query(q)? }),
    },
    Endpoint {
        method: Method::POST,
        path: "/api/v1/tasks/{task}/cancel",
        name: "task_cancel",
        query: None,
        body: Body::None,
        ok: &[(200, Answer::Json(json::<m::Task>))],
        errors: &[E::UnknownTask, E::TaskEnded, E::Overloaded, E::Unavailable],
        access: Access::Submit,
        summary: "Cancel: pending ends now, running is stopped on its worker",
        build: |mut p, q| {
            no_query(q)?;
            Ok(Route::CancelTask { task: take(&mut p) })
        },
    },
    Endpoint {
        method: Method::POST,
        path: "/api/v1/tasks/{task}/retry",
        name: "task_retry",
        query: None,
        body: Body::None,
        ok: &[(201, Answer::Json(json::<m::Task>))],
        errors: &[
            E::UnknownTask,
            E::TaskActive,
            E::UnknownSecret,
            E::SecretUnreadable,
            E::Unplaceable,
            E::Overloaded,
            E::Unavailable,
            E::Internal,
        ],
        access: Access::Submit,
        summary: "Submit an ended task again as a new task linked to it",
        build: |mut p, q| {
            no_query(q)?;
            Ok(Route::RetryTask { task: take(&mut p) })
        },
    },
    Endpoint {
        method: Method::POST,
        path: "/api/v1/workflows",
        name: "workflows_submit",
        query: None,
        body: Body::Json(json::<m::Workflow>),
        ok: &[(201, Answer::Json(json::<m::Task>))],
        errors: &[E::Unplaceable, E::Overloaded, E::Unavailable],
        access: Access::Submit,
        summary: "Submit a workflow: a task per step, linked by their needs, under one workflow task (201)",
        build: |p, q| none(p, q, Route::SubmitWorkflow),
    },
    Endpoint {
        method: Method::GET,
        path: "/api/v1/backup",
        name: "backup",
        query: None,
        body: Body::None,
        ok: &[(200, Answer::Media(&["application/vnd.sqlite3"]))],
        errors: &[E::Internal, E::Unavailable, E::NotSupported],
        access: Access::Admin,
        summary: "A consistent copy of the store, taken while the coordinator runs (SQLite; a PostgreSQL store answers `not_supported` naming `pg_dump`)",
        build: |p, q| none(p, q, Route::Backup),
    },
    Endpoint {
        method: Method::GET,
        path: "/api/v1/secrets",
        name: "secrets_list",
        query: None,
        body: Body::None,
        ok: &[(200, Answer::Json(json::<m::SecretList>))],
        errors: &[],
        access: Access::Admin,
        summary: "The cluster secrets: names, scopes, who set them and when (never values)",
        build: |p, q| none(p, q, Route::ListSecrets),
    },
    Endpoint {
        method: Method::POST,
        path: "/api/v1/secrets/rotate-key",
        name: "secrets_rotate_key",
        query: None,
        body: Body::None,
        ok: &[(200, Answer::Json(json::<m::KeyRotated>))],
        errors: &[E::Internal, E::Overloaded, E::Unavailable],
        access: Access::Admin,
        summary: "Seal every secret again under a new key (storage.secrets_key_file)",
        build: |p, q| none(p, q, Route::RotateSecretKey),
    },
    Endpoint {
        method: Method::PUT,
        path: "/api/v1/secrets/{name}",
        name: "secret_set",
        query: None,
        body: Body::Json(json::<m::SetSecret>),
        ok: &[(200, Answer::Json(json::<m::SecretInfo>))],
        errors: &[E::Overloaded, E::Unavailable],
        access: Access::Admin,
        summary: "Set or replace a secret (kept encrypted; the value is never shown again)",
        build: |mut p, q| {
            no_query(q)?;
            Ok(Route::SetSecret { name: take(&mut p) })
        },
    },
    Endpoint {
        method: Method::DELETE,
        path: "/api/v1/secrets/{name}",
        name: "secret_delete",
        query: None,
        body: Body::None,
        ok: &[(200, Answer::Json(json::<m::SecretInfo>))],
        errors: &[E::UnknownSecret, E::Overloaded, E::Unavailable],
        access: Access::Admin,
        summary: "Remove a secret",
        build: |mut p, q| {
            no_query(q)?;
            Ok(Route::DeleteSecret { name: take(&mut p) })
        },
    },
    Endpoint {
        method: Method::GET,
        path: "/api/v1/tasks/{task}/output",
        name: "task_output",
        query: Some(|| resumable(OutputQuery::into_params(|| Some(ParameterIn::Query)))),
        body: Body::None,
        ok: &[
            (200, Answer::Json(json::<m::TaskOutput>)),
            (
                200,
                Answer::Stream(&[
                    ("output", json::<m::OutputLine>),
                    ("end", json::<m::OutputEnd>),
                    ("error", json::<m::StreamError>),
                ]),
            ),
        ],
        errors: &[E::UnknownTask, E::BadRequest, E::Internal, E::Unavailable],
        access: Access::Read,
        summary: "The kept tail of a task's output, or its lines as they come",
        build: |mut p, q| Ok(Route::TaskOutput { task: take(&mut p), query: query(q)? }),
    },
    Endpoint {
        method: Method::GET,
        path: "/api/v1/events",
        name: "events",
        query: Some(|| resumable(EventQuery::into_params(|| Some(ParameterIn::Query)))),
        body: Body::None,
        ok: &[(
            200,
            Answer::Stream(&[
                ("task", json::<m::Event>),
                ("node", json::<m::Event>),
                ("schedule", json::<m::Event>),
                ("skill", json::<m::Event>),
                ("gap", json::<m::StreamGap>),
                ("error", json::<m::StreamError>),
            ]),
        )],
        errors: &[E::BadRequest, E::Internal, E::Unavailable],
        access: Access::Read,
        summary: "Task, node and schedule transitions as Server-Sent Events; resumes with `Last-Event-ID`",
        build: |_, q| Ok(Route::Events(query(q)?)),
    },
    Endpoint {
        method: Method::POST,
        path: "/api/v1/schedules",
        name: "schedules_create",
        query: None,
        body: Body::Json(new_schedule_schema),
        ok: &[(201, Answer::Json(json::<m::Schedule>))],
        errors: &[E::ScheduleExists, E::Overloaded, E::Unavailable],
        access: Access::Submit,
        summary: "Create a schedule: a task submitted on a cron expression, at an interval, or once (201)",
        build: |p, q| none(p, q, Route::CreateSchedule),
    },
    Endpoint {
        method: Method::GET,
        path: "/api/v1/schedules",
        name: "schedules_list",
        query: None,
        body: Body::None,
        ok: &[(200, Answer::Json(json::<m::ScheduleList>))],
        errors: &[],
        access: Access::Read,
        summary: "Every schedule, by name, with its next due time and last run",
        build: |p, q| none(p, q, Route::ListSchedules),
    },
    Endpoint {
        method: Method::GET,
        path: "/api/v1/schedules/{schedule}",
        name: "schedule_get",
        query: None,
        body: Body::None,
        ok: &[(200, Answer::Json(json::<m::Schedule>))],
        errors: &[E::UnknownSchedule],
        access: Access::Read,
        summary: "One schedule, by id or by name",
        build: |mut p, q| {
            no_query(q)?;
            Ok(Route::GetSchedule { schedule: take(&mut p) })
        },
    },
    Endpoint {
        method: Method::PATCH,
        path: "/api/v1/schedules/{schedule}",
        name: "schedule_edit",
        query: None,
        body: Body::Json(schedule_edit_schema),
        ok: &[(200, Answer::Json(json::<m::Schedule>))],
        errors: &[E::UnknownSchedule, E::ScheduleExists, E::Overloaded, E::Unavailable],
        access: Access::Submit,
        summary: "Change a schedule (the fields given); a new timing starts from now",
        build: |mut p, q| {
            no_query(q)?;
            Ok(Route::EditSchedule { schedule: take(&mut p) })
        },
    },
    Endpoint {
        method: Method::DELETE,
        path: "/api/v1/schedules/{schedule}",
        name: "schedule_remove",
        query: None,
        body: Body::None,
        ok: &[(200, Answer::Json(json::<m::Schedule>))],
        errors: &[E::UnknownSchedule, E::Overloaded, E::Unavailable],
        access: Access::Submit,
        summary: "Remove a schedule and its run history (its tasks stay)",
        build: |mut p, q| {
            no_query(q)?;
            Ok(Route::RemoveSchedule { schedule: take(&mut p) })
        },
    },
    Endpoint {
        method: Method::POST,
        path: "/api/v1/schedules/{schedule}/pause",
        name: "schedule_pause",
        query: None,
        body: Body::None,
        ok: &[(200, Answer::Json(json::<m::Schedule>))],
        errors: &[E::UnknownSchedule, E::Overloaded, E::Unavailable],
        access: Access::Submit,
        summary: "Stop firing until resumed",
        build: |mut p, q| {
            no_query(q)?;
            Ok(Route::PauseSchedule { schedule: take(&mut p) })
        },
    },
    Endpoint {
        method: Method::POST,
        path: "/api/v1/schedules/{schedule}/resume",
        name: "schedule_resume",
        query: None,
        body: Body::None,
        ok: &[(200, Answer::Json(json::<m::Schedule>))],
        errors: &[E::UnknownSchedule, E::Overloaded, E::Unavailable],
        access: Access::Submit,
        summary: "Fire again from the next due time (those passed while paused do not run)",
        build: |mut p, q| {
            no_query(q)?;
            Ok(Route::ResumeSchedule { schedule: take(&mut p) })
        },
    },
    Endpoint {
        method: Method::POST,
        path: "/api/v1/schedules/{schedule}/run",
        name: "schedule_run",
        query: None,
        body: Body::None,
        ok: &[(201, Answer::Json(json::<m::ScheduleRun>))],
        errors: &[E::UnknownSchedule, E::Overloaded, E::Unavailable],
        access: Access::Submit,
        summary: "Fire a schedule now (paused or not, whatever its overlap policy) (201)",
        build: |mut p, q| {
            no_query(q)?;
            Ok(Route::RunSchedule { schedule: take(&mut p) })
        },
    },
    Endpoint {
        method: Method::GET,
        path: "/api/v1/schedules/{schedule}/runs",
        name: "schedule_runs",
        query: Some(|| RunQuery::into_params(|| Some(ParameterIn::Query))),
        body: Body::None,
        ok: &[(200, Answer::Json(json::<m::RunList>))],
        errors: &[E::UnknownSchedule, E::Internal, E::Unavailable],
        access: Access::Read,
        summary: "A schedule's runs, newest first",
        build: |mut p, q| Ok(Route::ScheduleRuns { schedule: take(&mut p), query: query(q)? }),
    },
    Endpoint {
        method: Method::POST,
        path: "/mcp",
        name: "mcp",
        query: None,
        body: Body::Json(json_rpc_schema),
        ok: &[
            (200, Answer::Json(json_rpc_schema)),
            (200, Answer::Media(&["text/event-stream"])),
            (202, Answer::Media(&[])),
        ],
        errors: &[],
        access: Access::Submit,
        summary: "MCP (Model Context Protocol) over Streamable HTTP: the tools of `openclaw mcp` (stateless)",
        build: |p, q| none(p, q, Route::Mcp),
    },
];

/// A link of the document: from a success answer of one route to another route, saying
/// where each of the target's parameters comes from (OpenAPI runtime expressions), so that
/// a stateful API tester follows a registered node and a submitted task through every
/// operation that reads or changes them.
pub struct Link {
    /// The route whose answer the values come from.
    pub from: &'static str,
    /// The success status of that answer.
    pub status: u16,
    /// The route the link leads to (the link is named after it).
    pub to: &'static str,
    /// `path.node`, `query.after`, `header.Authorization`: where each value comes from.
    pub parameters: &'static [(&'static str, &'static str)],
    /// A request body for the target, merged into the one the tester makes, with
    /// expressions for the values that come from the answer or the request.
    pub body: Option<fn() -> serde_json::Value>,
}

/// The node a registration answered, and its secret.
const REGISTERED: &[(&str, &str)] = &[("path.node", "$response.body#/node_id")];
const REGISTERED_AS_IT: &[(&str, &str)] =
    &[("path.node", "$response.body#/node_id"), ("header.Authorization", "Bearer {$response.body#/node_secret}")];
/// The same node, with the same secret.
const SAME_NODE: &[(&str, &str)] =
    &[("path.node", "$request.path.node"), ("header.Authorization", "$request.header.Authorization")];
/// The task an answer shows.
const THE_TASK: &[(&str, &str)] = &[("path.task", "$response.body#/task_id")];
/// The task a poll handed out, reported on by the node that polled.
const ASSIGNED: &[(&str, &str)] = &[
    ("path.node", "$request.path.node"),
    ("path.task", "$response.body#/assignments/0/task_id"),
    ("header.Authorization", "$request.header.Authorization"),
];
fn assigned_attempt() -> serde_json::Value {
    serde_json::json!({ "attempt": "$response.body#/assignments/0/attempt" })
}
/// The attempt a start report named, reported on again.
const STARTED: &[(&str, &str)] = &[
    ("path.node", "$request.path.node"),
    ("path.task", "$request.path.task"),
    ("header.Authorization", "$request.header.Authorization"),
];
fn started_attempt() -> serde_json::Value {
    serde_json::json!({ "attempt": "$request.body#/attempt" })
}

/// A node that has the skills a submitted task needs: the task is placed on it, and its
/// poll hands it out.
fn node_for_task() -> serde_json::Value {
    serde_json::json!({ "available_skills": "$response.body#/required_skills" })
}

/// A link without a body.
const fn link(
    from: &'static str,
    status: u16,
    to: &'static str,
    parameters: &'static [(&'static str, &'static str)],
) -> Link {
    Link { from, status, to, parameters, body: None }
}

/// Every link, by source: what a created node or task leads to (the document's `links`).
pub static LINKS: &[Link] = &[
    // A registered node: read it, drain it, forget it; and, with its secret, act as it.
    link("nodes_register", 200, "node_get", REGISTERED),
    link("nodes_register", 200, "node_health", REGISTERED),
    link("nodes_register", 200, "node_drain", REGISTERED),
    link("nodes_register", 200, "node_undrain", REGISTERED),
    link("nodes_register", 200, "node_forget", REGISTERED),
    link("nodes_register", 200, "node_heartbeat", REGISTERED_AS_IT),
    link("nodes_register", 200, "node_poll", REGISTERED_AS_IT),
    link("nodes_register", 200, "node_shutdown", REGISTERED_AS_IT),
    link("nodes_register", 200, "nodes_by_skill", &[("path.skill", "$response.body#/node_info/available_skills/0")]),
    link("nodes_register", 200, "tasks_list", &[("query.node", "$response.body#/node_id")]),
    link("nodes_list", 200, "node_get", &[("path.node", "$response.body#/0/node_id")]),
    link("nodes_online", 200, "node_get", &[("path.node", "$response.body#/0/node_id")]),
    link("node_drain", 200, "node_undrain", REGISTERED),
    link("node_shutdown", 200, "node_forget", REGISTERED),
    // The worker protocol, as the node that registered.
    link("node_heartbeat", 200, "node_poll", SAME_NODE),
    link("node_heartbeat", 200, "node_task_reports", SAME_NODE),
    link(
        "node_heartbeat",
        200,
        "node_skill_package",
        &[
            ("path.node", "$request.path.node"),
            ("path.digest", "$response.body#/skill_packages/0/digest"),
            ("header.Authorization", "$request.header.Authorization"),
        ],
    ),
    Link { body: Some(assigned_attempt), ..link("node_poll", 200, "node_task_start", ASSIGNED) },
    Link { body: Some(assigned_attempt), ..link("node_poll", 200, "node_task_output", ASSIGNED) },
    Link { body: Some(assigned_attempt), ..link("node_poll", 200, "node_task_result", ASSIGNED) },
    Link { body: Some(started_attempt), ..link("node_task_start", 200, "node_task_output", STARTED) },
    Link { body: Some(started_attempt), ..link("node_task_start", 200, "node_task_result", STARTED) },
    Link { body: Some(started_attempt), ..link("node_task_output", 200, "node_task_result", STARTED) },
    // A submitted task (201, or 200 for an idempotent repeat), and a retry's new task: read
    // it, wait for it, follow its output, cancel it; an ended one can be retried.
    link("tasks_submit", 201, "task_get", THE_TASK),
    link("tasks_submit", 201, "task_wait", THE_TASK),
    link("tasks_submit", 201, "task_output", THE_TASK),
    link("tasks_submit", 201, "task_cancel", THE_TASK),
    link("tasks_submit", 201, "task_retry", THE_TASK),
    Link { body: Some(node_for_task), ..link("tasks_submit", 201, "nodes_register", &[]) },
    link("tasks_submit", 200, "task_get", THE_TASK),
    link("tasks_submit", 200, "task_cancel", THE_TASK),
    link("task_cancel", 200, "task_retry", THE_TASK),
    link("task_cancel", 200, "task_get", THE_TASK),
    link("task_retry", 201, "task_get", THE_TASK),
    link("task_retry", 201, "task_cancel", THE_TASK),
    link("task_retry", 201, "task_output", THE_TASK),
    link("task_get", 200, "task_output", THE_TASK),
    // Pages of tasks: the next page, and a task on this one.
    link("tasks_list", 200, "tasks_list", &[("query.after", "$response.body#/next")]),
    link("tasks_list", 200, "task_get", &[("path.task", "$response.body#/tasks/0/task_id")]),
    // A created schedule: read, change, pause, resume, fire, list its runs, remove it.
    link("schedules_create", 201, "schedule_get", THE_SCHEDULE),
    link("schedules_create", 201, "schedule_edit", THE_SCHEDULE),
    link("schedules_create", 201, "schedule_pause", THE_SCHEDULE),
    link("schedules_create", 201, "schedule_resume", THE_SCHEDULE),
    link("schedules_create", 201, "schedule_run", THE_SCHEDULE),
    link("schedules_create", 201, "schedule_runs", THE_SCHEDULE),
    link("schedules_create", 201, "schedule_remove", THE_SCHEDULE),
    link("schedule_run", 201, "task_get", THE_TASK),
];

/// The schedule an answer shows.
const THE_SCHEDULE: &[(&str, &str)] = &[("path.schedule", "$response.body#/schedule_id")];

/// Why a request matches no route.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("no endpoint at {path}; see docs/api.md")]
    NotFound { path: String },
    #[error("method {method} is not allowed on {path}; allowed: {allow}")]
    MethodNotAllowed { method: String, path: String, allow: String },
    #[error("{0}")]
    InvalidQuery(String),
}

fn take(params: &mut Vec<String>) -> String {
    if params.is_empty() { String::new() } else { params.remove(0) }
}

fn no_query(query: &str) -> Result<(), RouteError> {
    match form_urlencoded::parse(query.as_bytes()).next() {
        None => Ok(()),
        Some((k, _)) => {
            Err(RouteError::InvalidQuery(format!("unknown query parameter `{k}`: this endpoint takes none")))
        }
    }
}

/// Parses a query string into a route's typed query; unknown or malformed parameters are
/// named in the error.
fn query<T: DeserializeOwned>(query: &str) -> Result<T, RouteError> {
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        let text = e.into_inner().to_string();
        RouteError::InvalidQuery(match text.strip_prefix("unknown field ") {
            Some(rest) => {
                format!("unknown query parameter {}", rest.replacen(", expected one of", "; this endpoint takes", 1))
            }
            None if field != "." && !field.is_empty() => format!("query parameter `{field}`: {text}"),
            None => format!("bad query string: {text}"),
        })
    })
}

/// Matches `path` against a template, returning the decoded parameters.
/// The segments of a path after its first `/`, a trailing `/` ignored (`[""]` for `/`).
fn segments(path: &str) -> Vec<&str> {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() { vec![""] } else { trimmed.split('/').skip(1).collect() }
}

/// The segments of every endpoint's path template, split once (routing runs per request).
static TEMPLATES: std::sync::LazyLock<Vec<Vec<&'static str>>> =
    std::sync::LazyLock::new(|| TABLE.iter().map(|e| e.path.split('/').skip(1).collect()).collect());

/// The parameters of a path (`have`: its segments) that fits a template, decoded; None
/// when it does not fit (a parameter never matches an empty segment). Compared from the
/// end: most templates share their first segments (`api`, `v1`), few their last.
fn matches(template: &[&str], have: &[&str]) -> Option<Vec<String>> {
    if template.len() != have.len() {
        return None;
    }
    let fits = template.iter().zip(have).rev().all(|(w, h)| if w.starts_with('{') { !h.is_empty() } else { w == h });
    fits.then(|| {
        template
            .iter()
            .zip(have)
            .filter(|(w, _)| w.starts_with('{'))
            .map(|(_, h)| percent_encoding::percent_decode_str(h).decode_utf8_lossy().into_owned())
            .collect()
    })
}

impl Route {
    /// Turns a method, a path and a query string into a route, or a 404 / 405 / 400.
    pub fn parse(method: &Method, path: &str, query: &str) -> Result<Route, RouteError> {
        // A literal segment beats a parameter (`/nodes/online` is not node `online`).
        let have = segments(path);
        let candidates: Vec<(&Endpoint, Vec<String>)> =
            TABLE.iter().zip(TEMPLATES.iter()).filter_map(|(e, t)| matches(t, &have).map(|p| (e, p))).collect();
        let literal = |e: &Endpoint| e.path.bytes().filter(|b| *b == b'{').count();
        let Some(best) = candidates.iter().map(|(e, _)| literal(e)).min() else {
            return Err(RouteError::NotFound { path: path.to_string() });
        };
        let same_path: Vec<&(&Endpoint, Vec<String>)> = candidates.iter().filter(|(e, _)| literal(e) == best).collect();
        let wanted = if *method == Method::HEAD { Method::GET } else { method.clone() };
        match same_path.iter().find(|(e, _)| e.method == wanted) {
            Some((e, params)) => (e.build)(params.clone(), query),
            None => {
                let mut allow: Vec<&str> = Vec::new();
                for (e, _) in &same_path {
                    allow.push(e.method.as_str());
                    if e.method == Method::GET {
                        allow.push("HEAD");
                    }
                }
                Err(RouteError::MethodNotAllowed {
                    method: method.to_string(),
                    path: path.to_string(),
                    allow: allow.join(", "),
                })
            }
        }
    }

    /// A short stable name for metrics and logs (no ids in it).
    pub fn name(&self) -> &'static str {
        match self {
            Route::Dashboard => "dashboard",
            Route::Ui => "ui",
            Route::Asset { .. } => "asset",
            Route::OpenApi => "openapi",
            Route::Health => "health",
            Route::Metrics => "metrics",
            Route::Whoami => "whoami",
            Route::RegisterNode => "nodes_register",
            Route::ListNodes(_) => "nodes_list",
            Route::OnlineNodes => "nodes_online",
            Route::NodesWithSkill { .. } => "nodes_by_skill",
            Route::GetNode { .. } => "node_get",
            Route::ForgetNode { .. } => "node_forget",
            Route::NodeHealth { .. } => "node_health",
            Route::Heartbeat { .. } => "node_heartbeat",
            Route::ShutdownNode { .. } => "node_shutdown",
            Route::DrainNode { .. } => "node_drain",
            Route::UndrainNode { .. } => "node_undrain",
            Route::PollTasks { .. } => "node_poll",
            Route::StartTask { .. } => "node_task_start",
            Route::TaskResult { .. } => "node_task_result",
            Route::TaskReports { .. } => "node_task_reports",
            Route::PushOutput { .. } => "node_task_output",
            Route::ClusterHealth => "cluster_health",
            Route::ClusterSkills => "skills_list",
            Route::PushSkill => "skills_push",
            Route::ListSkillPushes => "skills_pushes",
            Route::RemoveSkillPush { .. } => "skills_push_remove",
            Route::RollbackSkillPush { .. } => "skills_push_rollback",
            Route::SkillPackage { .. } => "node_skill_package",
            Route::CheckHeartbeat => "cluster_check_heartbeat",
            Route::SubmitTask => "tasks_submit",
            Route::ListTasks(_) => "tasks_list",
            Route::GetTask { .. } => "task_get",
            Route::WaitTask { .. } => "task_wait",
            Route::CancelTask { .. } => "task_cancel",
            Route::RetryTask { .. } => "task_retry",
            Route::SubmitWorkflow => "workflows_submit",
            Route::Backup => "backup",
            Route::ListSecrets => "secrets_list",
            Route::SetSecret { .. } => "secret_set",
            Route::DeleteSecret { .. } => "secret_delete",
            Route::RotateSecretKey => "secrets_rotate_key",
            Route::TaskOutput { .. } => "task_output",
            Route::Events(_) => "events",
            Route::CreateSchedule => "schedules_create",
            Route::ListSchedules => "schedules_list",
            Route::GetSchedule { .. } => "schedule_get",
            Route::EditSchedule { .. } => "schedule_edit",
            Route::RemoveSchedule { .. } => "schedule_remove",
            Route::PauseSchedule { .. } => "schedule_pause",
            Route::ResumeSchedule { .. } => "schedule_resume",
            Route::RunSchedule { .. } => "schedule_run",
            Route::ScheduleRuns { .. } => "schedule_runs",
            Route::Mcp => "mcp",
        }
    }

    /// The route's row of the table.
    pub fn endpoint(&self) -> &'static Endpoint {
        let name = self.name();
        TABLE.iter().find(|e| e.name == name).expect("every route has a row (checked by a test)")
    }

    /// Who may call it.
    pub fn access(&self) -> Access {
        self.endpoint().access
    }

    /// The node a node-only route acts for.
    pub fn node(&self) -> Option<&str> {
        match self {
            Route::Heartbeat { node }
            | Route::ShutdownNode { node }
            | Route::PollTasks { node }
            | Route::StartTask { node, .. }
            | Route::TaskResult { node, .. }
            | Route::TaskReports { node }
            | Route::PushOutput { node, .. }
            | Route::SkillPackage { node, .. } => Some(node),
            _ => None,
        }
    }

    /// The path parameters, in path order.
    fn params(&self) -> Vec<&str> {
        match self {
            Route::Asset { asset } => vec![asset],
            Route::NodesWithSkill { skill } => vec![skill],
            Route::SetSecret { name } | Route::DeleteSecret { name } => vec![name],
            Route::RemoveSkillPush { name } | Route::RollbackSkillPush { name } => vec![name],
            Route::SkillPackage { node, digest } => vec![node, digest],
            Route::GetNode { node }
            | Route::ForgetNode { node }
            | Route::NodeHealth { node }
            | Route::Heartbeat { node }
            | Route::ShutdownNode { node }
            | Route::DrainNode { node }
            | Route::UndrainNode { node }
            | Route::PollTasks { node }
            | Route::TaskReports { node } => vec![node],
            Route::StartTask { node, task } | Route::TaskResult { node, task } | Route::PushOutput { node, task } => {
                vec![node, task]
            }
            Route::GetTask { task }
            | Route::WaitTask { task, .. }
            | Route::CancelTask { task }
            | Route::RetryTask { task }
            | Route::TaskOutput { task, .. } => vec![task],
            Route::GetSchedule { schedule }
            | Route::EditSchedule { schedule }
            | Route::RemoveSchedule { schedule }
            | Route::PauseSchedule { schedule }
            | Route::ResumeSchedule { schedule }
            | Route::RunSchedule { schedule }
            | Route::ScheduleRuns { schedule, .. } => vec![schedule],
            _ => vec![],
        }
    }

    fn query_string(&self) -> String {
        let encoded = match self {
            Route::ListNodes(q) => serde_urlencoded::to_string(q),
            Route::ListTasks(q) => serde_urlencoded::to_string(q),
            Route::WaitTask { query, .. } => serde_urlencoded::to_string(query),
            Route::TaskOutput { query, .. } => serde_urlencoded::to_string(query),
            Route::Events(q) => serde_urlencoded::to_string(q),
            Route::ScheduleRuns { query, .. } => serde_urlencoded::to_string(query),
            _ => Ok(String::new()),
        };
        encoded.unwrap_or_default()
    }

    /// The method and the path with its query, percent-encoded, as a client sends them.
    pub fn request(&self) -> (Method, String) {
        let endpoint = self.endpoint();
        let mut params = self.params().into_iter();
        let mut path = String::new();
        for segment in endpoint.path.split('/').skip(1) {
            path.push('/');
            if segment.starts_with('{') {
                let value = params.next().unwrap_or_default();
                path.push_str(
                    &percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string(),
                );
            } else {
                path.push_str(segment);
            }
        }
        let query = self.query_string();
        if !query.is_empty() {
            path.push('?');
            path.push_str(&query);
        }
        (endpoint.method.clone(), path)
    }
}

impl Route {
    /// Whether the route reads a request body. The server reads no body for the others:
    /// it answers without waiting for one (and closes the connection after the answer
    /// when a body was declared anyway).
    pub fn takes_body(&self) -> bool {
        !matches!(self.endpoint().body, Body::None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(method: Method, target: &str) -> Result<Route, RouteError> {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        Route::parse(&method, path, query)
    }

    /// Every row renders and parses back to itself, and its name is the route's.
    #[test]
    fn every_row_round_trips() {
        for e in TABLE {
            let params: Vec<String> = e.path.matches('{').enumerate().map(|(i, _)| format!("p {i}/x")).collect();
            let route = (e.build)(params, "").unwrap_or_else(|err| panic!("{}: {err}", e.path));
            assert_eq!(route.name(), e.name, "{}", e.path);
            let (method, target) = route.request();
            assert_eq!(method, e.method);
            assert_eq!(parse(method, &target).unwrap(), route, "{target}");
        }
        let mut names: Vec<&str> = TABLE.iter().map(|e| e.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), TABLE.len(), "route names are unique");
    }

    #[test]
    fn paths_become_routes() {
        assert_eq!(parse(Method::GET, "/health").unwrap(), Route::Health);
        assert_eq!(parse(Method::GET, "/api/v1/nodes/").unwrap(), Route::ListNodes(NodeQuery::default()));
        assert_eq!(parse(Method::GET, "/api/v1/nodes/online").unwrap(), Route::OnlineNodes);
        assert_eq!(
            parse(Method::GET, "/api/v1/nodes/skills/data%20analysis").unwrap(),
            Route::NodesWithSkill { skill: "data analysis".into() }
        );
        assert_eq!(parse(Method::GET, "/api/v1/nodes/w1").unwrap(), Route::GetNode { node: "w1".into() });
        assert_eq!(parse(Method::HEAD, "/api/v1/nodes/w1").unwrap(), Route::GetNode { node: "w1".into() });
        assert_eq!(parse(Method::DELETE, "/api/v1/nodes/w1").unwrap(), Route::ForgetNode { node: "w1".into() });
        assert_eq!(
            parse(Method::POST, "/api/v1/nodes/w1/tasks/t1/result").unwrap(),
            Route::TaskResult { node: "w1".into(), task: "t1".into() }
        );
        assert_eq!(parse(Method::POST, "/api/v1/tasks").unwrap(), Route::SubmitTask);
        assert_eq!(
            parse(Method::GET, "/api/v1/tasks?status=pending&limit=5").unwrap(),
            Route::ListTasks(TaskQuery { status: Some(TaskStatus::Pending), limit: Some(5), ..Default::default() })
        );
        assert_eq!(
            parse(Method::GET, "/api/v1/nodes?status_filter=online").unwrap(),
            Route::ListNodes(NodeQuery { status: Some(NodeStatus::Online), ..NodeQuery::default() })
        );
        assert_eq!(
            parse(Method::GET, "/api/v1/events?kind=node&after=42&skill=ocr").unwrap(),
            Route::Events(EventQuery {
                kind: Some(EventKind::Node),
                after: Some(42),
                skill: Some("ocr".into()),
                ..Default::default()
            })
        );
        assert_eq!(
            parse(Method::GET, "/api/v1/tasks/t1/output?follow=true").unwrap(),
            Route::TaskOutput { task: "t1".into(), query: OutputQuery { follow: Some(true), after: None } }
        );
        assert_eq!(
            parse(Method::POST, "/api/v1/nodes/w1/tasks/t1/output").unwrap(),
            Route::PushOutput { node: "w1".into(), task: "t1".into() }
        );
    }

    #[test]
    fn unknown_paths_are_404_and_wrong_methods_405() {
        assert!(matches!(parse(Method::GET, "/api/v2/nodes"), Err(RouteError::NotFound { .. })));
        assert_eq!(parse(Method::GET, "/").unwrap(), Route::Dashboard);
        assert!(matches!(parse(Method::GET, "/ui/x"), Err(RouteError::NotFound { .. })));
        assert!(matches!(parse(Method::GET, "/api/v1/nodes//health"), Err(RouteError::NotFound { .. })));
        match parse(Method::DELETE, "/api/v1/nodes") {
            Err(RouteError::MethodNotAllowed { allow, .. }) => assert_eq!(allow, "GET, HEAD"),
            other => panic!("{other:?}"),
        }
        match parse(Method::GET, "/api/v1/nodes/w1/heartbeat") {
            Err(RouteError::MethodNotAllowed { allow, .. }) => assert_eq!(allow, "POST"),
            other => panic!("{other:?}"),
        }
        match parse(Method::PUT, "/api/v1/nodes/w1") {
            Err(RouteError::MethodNotAllowed { allow, .. }) => assert_eq!(allow, "GET, HEAD, DELETE"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse(Method::PUT, "/api/v1/tasks"), Err(RouteError::MethodNotAllowed { .. })));
    }

    /// Regression: `?stauts=pending` used to return every task.
    #[test]
    fn unknown_or_malformed_query_parameters_are_named() {
        let e = parse(Method::GET, "/api/v1/tasks?stauts=pending").unwrap_err().to_string();
        assert!(e.contains("`stauts`"), "{e}");
        let e = parse(Method::GET, "/api/v1/tasks?limit=many").unwrap_err().to_string();
        assert!(e.contains("limit") || e.contains("invalid digit"), "{e}");
        let e = parse(Method::GET, "/api/v1/tasks?status=sleepy").unwrap_err().to_string();
        assert!(e.contains("sleepy"), "{e}");
        let e = parse(Method::GET, "/api/v1/events?kind=job").unwrap_err().to_string();
        assert!(e.contains("kind") && e.contains("job"), "{e}");
        let e = parse(Method::GET, "/api/v1/events?after=-1").unwrap_err().to_string();
        assert!(e.contains("after"), "{e}");
        let e = parse(Method::GET, "/api/v1/tasks/t1/output?follow=maybe").unwrap_err().to_string();
        assert!(e.contains("follow"), "{e}");
        let e = parse(Method::GET, "/health?x=1").unwrap_err().to_string();
        assert!(e.contains("`x`") && e.contains("takes none"), "{e}");
    }

    fn row(name: &str) -> &'static Endpoint {
        TABLE.iter().find(|e| e.name == name).unwrap_or_else(|| panic!("no route {name}"))
    }

    /// Each link leaves from a success answer of a real route and fills only parameters
    /// its target has.
    #[test]
    fn links_name_real_routes_and_parameters() {
        for l in LINKS {
            let (from, to) = (row(l.from), row(l.to));
            assert!(from.ok.iter().any(|(s, _)| *s == l.status), "{} answers no {}", l.from, l.status);
            for (name, expression) in l.parameters {
                let (place, param) = name.split_once('.').unwrap();
                let known = match place {
                    "path" => to.path.contains(&format!("{{{param}}}")),
                    "query" => to.query.is_some_and(|q| q().iter().any(|p| p.name == param)),
                    "header" => param == "Authorization",
                    _ => false,
                };
                assert!(known, "{} -> {}: {name} is not a parameter of {}", l.from, l.to, l.to);
                if let Some(p) = expression.strip_prefix("$request.path.") {
                    assert!(from.path.contains(&format!("{{{p}}}")), "{} has no path parameter {p}", l.from);
                }
            }
            assert!(l.body.is_none() || !matches!(to.body, Body::None), "{} takes no body", l.to);
        }
    }

    /// Following links from a registration and a submission reaches every route that acts on
    /// one node or one task.
    #[test]
    fn links_reach_every_route_on_a_node_or_a_task() {
        let mut reached = vec!["nodes_register", "tasks_submit"];
        let mut i = 0;
        while i < reached.len() {
            let from = reached[i];
            for l in LINKS.iter().filter(|l| l.from == from) {
                if !reached.contains(&l.to) {
                    reached.push(l.to);
                }
            }
            i += 1;
        }
        for e in TABLE.iter().filter(|e| e.path.contains("{node}") || e.path.contains("{task}")) {
            assert!(reached.contains(&e.name), "no link leads to {} {}", e.method, e.path);
        }
    }

    /// The words of the API's paths under `/api/v1/nodes/` are the reserved node ids.
    #[test]
    fn reserved_node_ids_are_the_paths_words() {
        let mut words: Vec<&str> = TABLE
            .iter()
            .filter_map(|e| e.path.strip_prefix("/api/v1/nodes/"))
            .map(|rest| rest.split('/').next().unwrap_or(""))
            .filter(|w| !w.starts_with('{'))
            .collect();
        words.sort();
        words.dedup();
        assert_eq!(words, m::RESERVED_NODE_IDS);
    }

    #[test]
    fn node_routes_name_their_node() {
        let r = parse(Method::POST, "/api/v1/nodes/w1/heartbeat").unwrap();
        assert_eq!((r.access(), r.node()), (Access::Node, Some("w1")));
        assert_eq!(parse(Method::POST, "/api/v1/nodes/register").unwrap().access(), Access::Join);
        assert_eq!(parse(Method::GET, "/health").unwrap().access(), Access::Open);
        assert_eq!(parse(Method::POST, "/api/v1/nodes/w1/drain").unwrap().access(), Access::Admin);
    }
}
