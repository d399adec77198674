//! The configuration tree and its loader.
//!
//! One [`Config`] for every subcommand, merged by figment, lowest first: built-in defaults <
//! the YAML file given with `-c` < environment variables (`OPENCLAW_` prefix, `__` between
//! levels: `OPENCLAW_COORDINATOR__PORT=9000`) < command-line flags. Every key of the seed's
//! `config.yaml` exists with the seed's default. A bad key, type or value is a
//! [`UsageError`](crate::UsageError) (exit code 2) whose message names the key and where the
//! value came from: file and line, environment variable, or flag.
//!
//! Only variables of the form `OPENCLAW_<SECTION>__<KEY>` are configuration: OpenClaw's own
//! variables (`OPENCLAW_GATEWAY_TOKEN`, `OPENCLAW_GATEWAY_PORT`), the CLI's `OPENCLAW_URL`
//! and `OPENCLAW_TOKEN`, and the `OPENCLAW_TASK_*` variables given to exec skills share the
//! prefix and are not keys.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Format, Serialized};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

use crate::UsageError;

/// The whole configuration. Field names are the YAML keys.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub storage: StorageConfig,
    pub coordinator: CoordinatorConfig,
    pub worker: WorkerConfig,
    /// `communication.*`: the settings of the transports besides HTTP. Each transport
    /// defines, documents and checks its own keys (the NATS transport's are `nats_*`);
    /// `crate::transport::CONFIG` lists them for the loader.
    pub communication: PluginSection,
    pub log: LogConfig,
    pub auth: AuthConfig,
}

/// Where the coordinator keeps its state. A worker uses only the folder of `storage.path`,
/// where it finds `worker.token` (and, by default, keeps its node secret).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// The storage engine: `sqlite` (one file, one coordinator; the default) or `postgres`
    /// (a PostgreSQL database at `storage.url`, led by one coordinator at a time; see
    /// postgres.md).
    #[serde(rename = "type")]
    pub kind: StorageKind,
    /// The SQLite database file. The token files (and, for SQLite, the lock file) live in
    /// its folder, with either store.
    #[schema(value_type = String, format = "path")]
    pub path: PathBuf,
    /// Ended tasks older than this many days are purged in the background (0 keeps them all).
    pub task_retention_days: u32,
    /// The PostgreSQL database (`storage.type: postgres`; `--storage-url`):
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=…]`. `sslmode` is `disable`,
    /// `prefer` (the default: TLS when the server offers it, unverified), `require` (TLS,
    /// unverified), `verify-ca` (TLS, the certificate signed by a trusted CA) or
    /// `verify-full` (and naming the host). The password is never logged.
    #[serde(deserialize_with = "lenient_opt")]
    pub url: Option<String>,
    /// A file holding the PostgreSQL password (first line), instead of one in `storage.url`.
    #[schema(value_type = Option<String>, format = "path")]
    pub password_file: Option<PathBuf>,
    /// PEM CA certificate(s) that sign the PostgreSQL server's certificate (then only they
    /// are trusted, not the system's roots); implies `sslmode=verify-full` unless the URL
    /// says otherwise.
    #[schema(value_type = Option<String>, format = "path")]
    pub ca_file: Option<PathBuf>,
    /// The key that encrypts cluster secrets at rest (`openclaw secrets`): 32 random bytes,
    /// created (mode 0600) on first start. Unset: `secrets.key` beside `path`. Never in the
    /// database or its backups: keep a copy apart from them, or secrets restored from a
    /// backup cannot be read (set them again).
    #[schema(value_type = Option<String>, format = "path")]
    pub secrets_key_file: Option<PathBuf>,
    /// PostgreSQL: how long the leader's lease lasts without renewal (1 s to 60 s). The
    /// leader renews it every third of this and stops (exit 1) when a renewal has not
    /// succeeded for this minus a sixth; a standby tries to take it over every fifth of it,
    /// so a failover takes at most this plus a fifth (see high-availability.md).
    pub lease_ttl: Secs,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            kind: StorageKind::Sqlite,
            path: PathBuf::from("./data/cluster.db"),
            task_retention_days: 30,
            url: None,
            password_file: None,
            ca_file: None,
            secrets_key_file: None,
            lease_ttl: Secs::from_secs(3),
        }
    }
}

/// The storage engines there are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    /// One SQLite file beside the coordinator (embedded; one coordinator).
    Sqlite,
    /// A PostgreSQL database (one or more coordinators, one leader).
    Postgres,
}

/// The coordinator: the HTTP API, the node registry and the scheduler.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CoordinatorConfig {
    /// The address to listen on (`--host`); `0.0.0.0` is every IPv4 interface.
    #[serde(deserialize_with = "lenient")]
    pub host: String,
    /// The port to listen on (`--port`); 0 picks any free port, logged as `coordinator
    /// ready on …` (for tests and tools).
    pub port: u16,
    /// A cluster node without a heartbeat for this long is offline. Must be above
    /// `worker.heartbeat_interval`.
    pub heartbeat_timeout: Secs,
    /// Period of the background consistency sweep. Offline detection itself runs at each
    /// node's own deadline and does not wait for this sweep.
    pub heartbeat_check_interval: Secs,
    /// Request bodies above this many bytes get 413 (at least 1024).
    pub max_body_bytes: u64,
    /// A request's headers (and an idle keep-alive connection's next request) must arrive
    /// within this, else the connection is closed (0.1 s to 1 h).
    pub header_read_timeout: Secs,
    /// A request's whole body must arrive within this once its handler reads it, else 408
    /// and the connection is closed (0.1 s to 1 h).
    pub body_read_timeout: Secs,
    /// Open client connections at most (at least 16); past it the one that has waited
    /// longest on its client is closed to make room, and when none is, the new one gets
    /// 503. Size it at about three per worker plus dashboards and scripts; the process
    /// needs this many open files plus 128 (see operations.md, Connection limits).
    pub max_connections: u32,
    /// Open connections from one client address at most (1 to `max_connections`); trusted
    /// proxies are exempt.
    pub max_connections_per_ip: u32,
    /// Reverse proxies (IP addresses) whose X-Real-IP / X-Forwarded-For headers are
    /// believed.
    #[schema(value_type = Vec<String>)]
    pub trusted_proxies: Vec<IpAddr>,
    /// The share (percent, 0 to 90) of `max_connections` and of `max_connections_per_ip`
    /// that only the node endpoints (register, heartbeat, poll, start, output, result) may
    /// use: a stream, wait or API call that would take it gets 503 (see operations.md,
    /// Connection limits).
    pub node_reserve_percent: u32,
    /// Event and output streams open at once, at most (and at most half of
    /// `max_connections`); one past a stream cap gets 429 `too_many_streams` naming it.
    pub max_streams: u32,
    /// Streams open at once from one client address, at most (and at most half of
    /// `max_connections_per_ip`).
    pub max_streams_per_ip: u32,
    /// Streams open at once with one token (the admin token, the tasks token; with auth off,
    /// everyone counts as one), at most.
    pub max_streams_per_token: u32,
    /// A stream is ended after this long (1 s to 24 h; less up to a tenth at random) with
    /// `event: error`, code `stream_lifetime`; clients reconnect with `Last-Event-ID` and
    /// miss nothing.
    pub max_stream_lifetime: Secs,
    /// How a node is chosen among the eligible ones: `least_loaded` (fewest running tasks
    /// relative to capacity; the original's `least_tasks` too), `round_robin` (each in
    /// turn), `random`, `best_fit` (most free CPU, memory and slots), `affinity` (most tags
    /// in common with the task's, then least loaded).
    pub scheduling_strategy: Strategy,
    /// The time limit of each attempt of a task that sets none (1 s to 7 days).
    pub default_task_timeout: Secs,
    /// How many times a failed attempt is retried when the task does not say (0 to 100).
    pub default_max_retries: u32,
    /// The first retry's delay; it doubles with each failed attempt (with jitter).
    pub retry_backoff_base: Secs,
    /// The longest retry delay.
    pub retry_backoff_max: Secs,
    /// How long a worker's poll for tasks waits before an empty answer (1 s to 300 s).
    pub long_poll_timeout: Secs,
    /// On shutdown, how long in-flight requests may take to finish.
    pub shutdown_timeout: Secs,
    /// A PEM certificate chain; with `tls_key`, the coordinator serves HTTPS.
    #[schema(value_type = Option<String>, format = "path")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of `tls_cert` (set the two together).
    #[schema(value_type = Option<String>, format = "path")]
    pub tls_key: Option<PathBuf>,
    /// The most cluster nodes the registry holds; a registration of a new node id beyond it
    /// gets 409 `node_limit`.
    pub max_nodes: usize,
    /// The most state changes queued for the store and not yet on disk (at least 16);
    /// client requests that would change state beyond it get 503 `overloaded` with
    /// Retry-After.
    pub max_write_backlog: u64,
    /// How many bytes of each task's output are kept (the newest lines of its latest
    /// attempt, after it ends too), for `GET /api/v1/tasks/{id}/output` and `tasks logs`
    /// (1 KiB to 16 MiB).
    pub output_tail_bytes: u64,
    /// This coordinator's name in the leader lease of a shared store (PostgreSQL): unique
    /// among the coordinators of one database. Unset: the host name and the data folder.
    #[serde(deserialize_with = "lenient_opt")]
    pub id: Option<String>,
    /// The URL clients should use for this coordinator, which standbys name when it leads
    /// (`/health`, `503 not_leader` with a `Location`). Unset: `http(s)://host:port`, with the
    /// port actually bound and 0.0.0.0 meaning this host's name.
    #[serde(deserialize_with = "lenient_opt")]
    pub advertise_url: Option<String>,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        Self {
            host: "0.0.0.0".into(),
            port: 8888,
            heartbeat_timeout: Secs::from_secs(90),
            heartbeat_check_interval: Secs::from_secs(30),
            max_body_bytes: 1024 * 1024,
            header_read_timeout: Secs::from_secs(30),
            body_read_timeout: Secs::from_secs(30),
            max_connections: 4096,
            max_connections_per_ip: 256,
            trusted_proxies: Vec::new(),
            node_reserve_percent: 25,
            max_streams: 512,
            max_streams_per_ip: 32,
            max_streams_per_token: 256,
            max_stream_lifetime: Secs::from_secs(1800),
            scheduling_strategy: Strategy::LeastLoaded,
            default_task_timeout: Secs::from_secs(3600),
            default_max_retries: 3,
            retry_backoff_base: Secs::from_secs(2),
            retry_backoff_max: Secs::from_secs(300),
            long_poll_timeout: Secs::from_secs(25),
            shutdown_timeout: Secs::from_secs(10),
            tls_cert: None,
            tls_key: None,
            max_nodes: 1000,
            max_write_backlog: 10_000,
            output_tail_bytes: 64 * 1024,
            id: None,
            advertise_url: None,
        }
    }
}

/// Placement strategies (`coordinator.scheduling_strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Fewest running tasks relative to capacity (the original's `least_tasks` too).
    #[serde(alias = "least_tasks")]
    LeastLoaded,
    /// Each eligible node in turn.
    RoundRobin,
    /// Any eligible node.
    Random,
    /// Most free CPU, memory and slots (the original's weighted score).
    BestFit,
    /// Most tags in common with the task's affinity_tags, then least loaded.
    Affinity,
}

/// The worker on each machine (the CLI also reads `coordinator_host`, `coordinator_port`,
/// `coordinator_tls` and `ca_file` to find the coordinator).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerConfig {
    /// This cluster node's id (`--node-id`): 1 to 128 of `A-Z a-z 0-9 . _ -`. Unset: derived
    /// from the host name.
    #[serde(deserialize_with = "lenient_opt")]
    pub node_id: Option<String>,
    /// Where the coordinator is (`--coordinator-host`; the CLI reads it too). Unset:
    /// `coordinator.host`, with 0.0.0.0 meaning 127.0.0.1.
    #[serde(deserialize_with = "lenient_opt")]
    pub coordinator_host: Option<String>,
    /// The coordinator's port (`--coordinator-port`). Unset: `coordinator.port`.
    pub coordinator_port: Option<u16>,
    /// Several coordinators of one PostgreSQL database (`--coordinator-url`, repeatable; the
    /// CLI's `OPENCLAW_URL` takes a comma list): the worker and the CLI follow whichever
    /// leads. Set, it replaces `coordinator_host` and `coordinator_port`.
    pub coordinator_urls: Vec<String>,
    /// Reach the coordinator with `https://` (set it on machines whose config has no
    /// `coordinator.tls_cert`).
    pub coordinator_tls: bool,
    /// PEM CA certificate(s) to trust for the coordinator's TLS besides the system's, for
    /// the worker and the CLI.
    #[schema(value_type = Option<String>, format = "path")]
    pub ca_file: Option<PathBuf>,
    /// The join token (`--token` and `OPENCLAW_TOKEN` win; never passed to skills). Unset:
    /// the `worker.token` file beside `storage.path`.
    #[serde(deserialize_with = "lenient_opt")]
    pub token: Option<String>,
    /// How many tasks this cluster node runs at once (1 to 1000; `--max-concurrent-tasks`).
    pub max_concurrent_tasks: u32,
    /// Time between heartbeats; must be below the coordinator's `heartbeat_timeout`.
    pub heartbeat_interval: Secs,
    /// The skills folder, or a list of them (`--skills-dir`); as with OpenClaw's
    /// `skills.load.extraDirs`, a later one wins a name clash.
    pub skills_dir: SkillsDirs,
    /// The local OpenClaw gateway's port. Unset: OpenClaw's own (`OPENCLAW_GATEWAY_PORT`,
    /// `gateway.port` in its config), else 18789.
    pub port: Option<u16>,
    /// The gateway's URL. Unset: from OpenClaw's `gateway.bind` and the port
    /// (`http://127.0.0.1:<port>` by default).
    #[serde(deserialize_with = "lenient_opt")]
    pub gateway_url: Option<String>,
    /// The gateway's bearer token (never logged). Unset: OpenClaw's `gateway.auth.token`,
    /// else `OPENCLAW_GATEWAY_TOKEN`.
    #[serde(deserialize_with = "lenient_opt")]
    pub gateway_token: Option<String>,
    /// OpenClaw's CLI, whose skills listing decides OpenClaw's agent skills: a path, or
    /// `off` to ignore it. Unset: the first `openclaw` on PATH that is OpenClaw's (never
    /// this program).
    #[serde(deserialize_with = "lenient_opt")]
    pub openclaw_cli: Option<String>,
    /// How often OpenClaw's skills listing is taken again when nothing it reads changed (at
    /// least 1 s; one listing costs seconds of CPU).
    pub openclaw_refresh_interval: Secs,
    /// The OpenClaw agent that runs agent tasks (model `openclaw/<agent_id>`, which the
    /// gateway must list in `/v1/models`).
    #[serde(deserialize_with = "lenient")]
    pub agent_id: String,
    /// Tags of this cluster node, for `affinity` placement and `--require-tag` (`--tag`).
    pub tags: Vec<String>,
    /// On shutdown, how long running tasks may take to finish before they are killed.
    pub shutdown_timeout: Secs,
    /// An exec task whose stdout exceeds this many bytes fails with "output too large".
    pub max_output_bytes: u64,
    /// How often the skills folders are rescanned (changes need no restart).
    pub skills_rescan_interval: Secs,
    /// How often the gateway is probed (two loopback GETs, never a chat call).
    pub gateway_check_interval: Secs,
    /// Where the worker keeps its node secret and its one-worker-per-node-id lock
    /// (`--state-dir`). Unset: the folder of `storage.path`.
    #[schema(value_type = Option<String>, format = "path")]
    pub state_dir: Option<PathBuf>,
    /// Install skills the cluster's admin pushes (`openclaw skills push`) into the managed
    /// skills folder: OpenClaw's (`<OpenClaw state dir>/skills`, so OpenClaw sees them
    /// too) when its CLI is found, else `<state_dir>/pushed-skills/<node id>`. Off: pushes
    /// to this node are refused, and the refusal shows in the event history.
    pub accept_skill_pushes: bool,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            node_id: None,
            coordinator_host: None,
            coordinator_port: None,
            coordinator_urls: Vec::new(),
            coordinator_tls: false,
            ca_file: None,
            token: None,
            max_concurrent_tasks: 5,
            heartbeat_interval: Secs::from_secs(5),
            skills_dir: SkillsDirs(vec![PathBuf::from("./skills")]),
            port: None,
            gateway_url: None,
            gateway_token: None,
            openclaw_cli: None,
            openclaw_refresh_interval: Secs::from_secs(300),
            agent_id: "default".into(),
            tags: Vec::new(),
            shutdown_timeout: Secs::from_secs(30),
            max_output_bytes: 1024 * 1024,
            skills_rescan_interval: Secs::from_secs(2),
            gateway_check_interval: Secs::from_secs(5),
            state_dir: None,
            accept_skill_pushes: false,
        }
    }
}

/// The transports besides HTTP: each one defines, documents and checks its own keys here
/// (the NATS transport's are `nats_*`; see nats.md).
///
/// A section whose keys plug-ins define: kept as loaded, each plug-in reading its own typed
/// settings with [`PluginSection::get`]. The loader checks it against the [`Plugin`]s it is
/// given: a key none of them defines is refused, and each plug-in's settings must parse and
/// pass its own checks, errors naming the key and where its value came from (file and line,
/// environment variable, flag).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PluginSection(Dict);

impl PluginSection {
    /// A plug-in's settings from this section: the keys it defines (the others belong to
    /// other plug-ins), defaults for the ones not set. Checked at load, so this fails only
    /// for a config built in code; the error names the key at fault.
    pub fn get<T: serde::de::DeserializeOwned>(&self) -> Result<T, KeyError> {
        Value::from(self.0.clone()).deserialize::<T>().map_err(|e| {
            use figment::error::Kind;
            let message = match &e.kind {
                Kind::InvalidType(found, expected) | Kind::InvalidValue(found, expected) => {
                    format!("expected {}, found {found}", expected_words(expected))
                }
                other => friendly(&other.to_string()),
            };
            KeyError { key: e.path.join("."), message }
        })
    }

    /// Sets `key` (tests and tools that build a config in code).
    pub fn set(&mut self, key: &str, value: impl Serialize) -> Result<(), String> {
        let value = Value::serialize(value).map_err(|e| e.to_string())?;
        self.0.insert(key.to_string(), value);
        Ok(())
    }

    fn keys(&self) -> impl Iterator<Item = &String> {
        self.0.keys()
    }
}

/// The schema of the section itself: its description; the keys are the plug-ins' (see
/// [`Plugin::section`]).
impl utoipa::PartialSchema for PluginSection {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "The transports besides HTTP, each with keys of its own; today NATS JetStream (see nats.md). Unset, work goes over HTTP only.",
            ))
            .into()
    }
}

impl ToSchema for PluginSection {}

/// A bad value in a plug-in's section: the key at fault (within the section) and what is
/// wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError {
    pub key: String,
    pub message: String,
}

impl KeyError {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> KeyError {
        KeyError { key: key.into(), message: message.into() }
    }
}

/// What a plug-in (a transport) adds to the `communication` section, for the loader and
/// the reference: `crate::transport::CONFIG` lists one per transport.
pub struct Plugin {
    /// Its settings type as a section (key `communication`): its keys, defaults and doc
    /// comments, which the reference shows with the section's.
    pub section: SectionInfo,
    /// Reads its settings from the section and checks them.
    pub check: fn(&PluginSection) -> Result<(), KeyError>,
}

impl Plugin {
    /// The keys it defines (its settings' fields).
    pub fn keys(&self) -> Vec<String> {
        match (self.section.defaults)() {
            serde_json::Value::Object(fields) => fields.into_iter().map(|(k, _)| k).collect(),
            _ => Vec::new(),
        }
    }
}

/// Logging (see operations.md, Logs).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// The lowest level logged, in any case (`--log-level`; `RUST_LOG`, when set, wins).
    pub level: LogLevel,
    /// `json` lines (top-level `timestamp`, `level`, `message`, `module`) or `text` for
    /// people (`--log-format`). `dev` writes text when its output is a terminal and the
    /// format is not set.
    pub format: LogFormat,
    /// Also write logs to daily-rotated `openclaw.<date>.log` files in this folder.
    #[schema(value_type = Option<String>, format = "path")]
    pub dir: Option<PathBuf>,
    /// How many rotated files to keep (at least 1).
    pub max_files: usize,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { level: LogLevel::Info, format: LogFormat::Json, dir: None, max_files: 7 }
    }
}

/// Log levels, written in any case (`INFO`, `info`; `WARNING` for `WARN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    /// The name tracing's filters understand.
    pub fn as_filter(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

impl std::str::FromStr for LogLevel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.to_ascii_uppercase().as_str() {
            "ERROR" => LogLevel::Error,
            "WARN" | "WARNING" => LogLevel::Warn,
            "INFO" => LogLevel::Info,
            "DEBUG" => LogLevel::Debug,
            "TRACE" => LogLevel::Trace,
            _ => {
                return Err(format!("unknown log level `{s}`, expected one of ERROR, WARN, INFO, DEBUG, TRACE"));
            }
        })
    }
}

impl Serialize for LogLevel {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.as_filter().to_ascii_uppercase())
    }
}

impl utoipa::PartialSchema for LogLevel {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(["ERROR", "WARN", "INFO", "DEBUG", "TRACE"]))
            .into()
    }
}

impl ToSchema for LogLevel {}

impl<'de> Deserialize<'de> for LogLevel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Log line formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Text,
}

/// The coordinator's tokens (see security.md). Each is at least 16 characters, and the three
/// differ.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// `false` turns authentication off, for a trial on one machine: the coordinator then
    /// answers only requests to a loopback `Host` (and a browser page of its own origin), and
    /// refuses to listen on a non-loopback address unless `insecure_listen_without_auth`
    /// (see security.md, Without authentication).
    pub enabled: bool,
    /// With auth off, listen on a non-loopback `coordinator.host` anyway (e.g. inside a
    /// container whose port is published on the host's loopback only). Requests must still
    /// name a loopback `Host`. Logged at WARN (`INSECURE`) on every start.
    pub insecure_listen_without_auth: bool,
    /// The admin token: everything. Unset: the `admin.token` file beside `storage.path`
    /// (created on first start).
    #[serde(deserialize_with = "lenient_opt")]
    pub admin_token: Option<String>,
    /// The join token: workers register with it, nothing else; not the admin token. Unset:
    /// the `worker.token` file beside `storage.path`.
    #[serde(deserialize_with = "lenient_opt")]
    pub worker_token: Option<String>,
    /// The tasks token: read nodes and tasks, submit and cancel tasks, nothing else (for
    /// agents and MCP clients). Unset: the `tasks.token` file beside `storage.path`.
    #[serde(deserialize_with = "lenient_opt")]
    pub tasks_token: Option<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            insecure_listen_without_auth: false,
            admin_token: None,
            worker_token: None,
            tasks_token: None,
        }
    }
}

/// The environment's UTF-8 variables (one that is not UTF-8 cannot be a key; skip it
/// rather than fail).
pub fn utf8_vars() -> impl Iterator<Item = (String, String)> {
    std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
}

/// A string key written as text, a number or a boolean (`node_id: 123`, or an environment
/// variable that looks like a number): `#[serde(deserialize_with = "lenient")]`.
pub fn lenient<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<String, E> {
            Ok(v.to_string())
        }
    }
    d.deserialize_any(V)
}

/// [`lenient`] for an optional key.
pub fn lenient_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            lenient(d).map(Some)
        }
    }
    d.deserialize_option(V)
}

/// One skills folder or a list of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct SkillsDirs(pub Vec<PathBuf>);

impl utoipa::PartialSchema for SkillsDirs {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new().title(Some("folder or list of folders")).into()
    }
}

impl ToSchema for SkillsDirs {}

impl<'de> Deserialize<'de> for SkillsDirs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(PathBuf),
            Many(Vec<PathBuf>),
        }
        match OneOrMany::deserialize(d) {
            Ok(OneOrMany::One(p)) => Ok(SkillsDirs(vec![p])),
            Ok(OneOrMany::Many(v)) => Ok(SkillsDirs(v)),
            Err(_) => Err(serde::de::Error::custom("expected a folder path or a list of folder paths")),
        }
    }
}

/// A duration written as plain seconds (the seed's `90`, or `1.5`) or as text (`90s`,
/// `10m`, `500ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Secs(pub Duration);

impl Secs {
    /// The longest duration any setting takes (ten years): beyond it, deadline arithmetic
    /// would overflow.
    pub const MAX: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

    fn checked<E: serde::de::Error>(d: Duration) -> Result<Secs, E> {
        if d > Self::MAX {
            Err(E::custom(format!("{}s is too long (at most ten years)", d.as_secs())))
        } else {
            Ok(Secs(d))
        }
    }

    pub const fn from_secs(s: u64) -> Self {
        Secs(Duration::from_secs(s))
    }
    pub fn get(self) -> Duration {
        self.0
    }
}

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}s", self.0.as_secs_f64())
    }
}

impl utoipa::PartialSchema for Secs {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new().title(Some("duration")).into()
    }
}

impl ToSchema for Secs {}

impl Serialize for Secs {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.0.as_secs_f64())
    }
}

impl<'de> Deserialize<'de> for Secs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Secs;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration: seconds (90) or text (90s, 10m)")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Secs, E> {
                Secs::checked(Duration::from_secs(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Secs, E> {
                let v = u64::try_from(v).map_err(|_| E::custom(format!("a duration cannot be negative ({v})")))?;
                Secs::checked(Duration::from_secs(v))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Secs, E> {
                let d = Duration::try_from_secs_f64(v)
                    .map_err(|_| E::custom(format!("`{v}` is not a valid number of seconds")))?;
                Secs::checked(d)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Secs, E> {
                Secs::checked(crate::util::parse_duration(v).map_err(E::custom)?)
            }
        }
        d.deserialize_any(V)
    }
}

/// Values given on the command line, each with the flag it came from (for messages).
#[derive(Debug, Default, Clone)]
pub struct FlagOverrides {
    entries: Vec<(&'static str, &'static str, Value)>,
}

impl FlagOverrides {
    /// Sets `key` (dotted, e.g. `coordinator.port`) from `flag` when the flag was given.
    pub fn set<T: Serialize>(&mut self, key: &'static str, flag: &'static str, value: Option<T>) {
        if let Some(value) = value
            && let Ok(value) = Value::serialize(value)
        {
            self.entries.push((key, flag, value));
        }
    }

    /// `--storage-url URL`: `storage.url`, and `storage.type` postgres.
    pub fn storage_url(&mut self, url: Option<String>) {
        if url.is_some() {
            self.set("storage.type", "--storage-url", Some(StorageKind::Postgres));
        }
        self.set("storage.url", "--storage-url", url);
    }

    fn flag_for(&self, key: &str) -> Option<&'static str> {
        self.entries.iter().rev().find(|(k, _, _)| *k == key).map(|(_, f, _)| *f)
    }
}

impl Provider for FlagOverrides {
    fn metadata(&self) -> Metadata {
        Metadata::named("command-line flags")
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut dict = Dict::new();
        for (key, _, value) in &self.entries {
            let path: Vec<String> = key.split('.').map(str::to_string).collect();
            insert_nested(&mut dict, &path, value.clone());
        }
        Ok(Profile::Default.collect(dict))
    }
}

/// A section of the configuration (`storage:`, `coordinator:`, …): its key, its defaults,
/// and its doc comments (through its utoipa schema), which are the reference
/// (docs/configuration.md). A section's type may live with the part it configures.
pub trait Section: ToSchema + Serialize + Default {
    /// The section's key in the YAML file and in `OPENCLAW_<SECTION>__<KEY>`.
    const KEY: &'static str;
}

impl Section for StorageConfig {
    const KEY: &'static str = "storage";
}
impl Section for CoordinatorConfig {
    const KEY: &'static str = "coordinator";
}
impl Section for WorkerConfig {
    const KEY: &'static str = "worker";
}
impl Section for PluginSection {
    const KEY: &'static str = "communication";
}
impl Section for LogConfig {
    const KEY: &'static str = "log";
}
impl Section for AuthConfig {
    const KEY: &'static str = "auth";
}

/// A section's schema (doc comments as descriptions) and the named schemas it refers to.
pub type SectionSchema = (RefOr<Schema>, Vec<(String, RefOr<Schema>)>);

/// What the reference needs of one section, without naming its type.
pub struct SectionInfo {
    pub key: &'static str,
    /// The section's schema and the schemas it refers to.
    pub schema: fn() -> SectionSchema,
    /// The section's built-in defaults, as JSON.
    pub defaults: fn() -> serde_json::Value,
}

impl SectionInfo {
    /// The section `S` (a plug-in's settings type too: `crate::transport` builds its
    /// [`Plugin::section`] with this).
    pub const fn of<S: Section>() -> SectionInfo {
        fn schema<S: Section>() -> SectionSchema {
            let mut refs = Vec::new();
            S::schemas(&mut refs);
            (S::schema(), refs)
        }
        fn defaults<S: Section>() -> serde_json::Value {
            serde_json::to_value(S::default()).unwrap_or_default()
        }
        SectionInfo { key: S::KEY, schema: schema::<S>, defaults: defaults::<S> }
    }
}

/// Every section of [`Config`], in its order: the keys `OPENCLAW_<SECTION>__<KEY>`
/// variables may address, and the reference's chapters. A section is one line here.
pub const SECTIONS: &[SectionInfo] = &[
    SectionInfo::of::<StorageConfig>(),
    SectionInfo::of::<CoordinatorConfig>(),
    SectionInfo::of::<WorkerConfig>(),
    SectionInfo::of::<PluginSection>(),
    SectionInfo::of::<LogConfig>(),
    SectionInfo::of::<AuthConfig>(),
];

/// The configuration with the knowledge of where each value came from.
pub struct Loaded {
    pub config: Config,
    figment: Figment,
    file_text: Option<(PathBuf, String)>,
    flags: FlagOverrides,
}

impl Loaded {
    /// "from <where>" for a dotted key, for messages: the file and line, the environment
    /// variable, the flag, or the built-in default.
    pub fn origin(&self, key: &str) -> String {
        let Some(meta) = self.figment.find_metadata(key) else {
            return "the built-in default".into();
        };
        let parts: Vec<&str> = key.split('.').collect();
        match &meta.source {
            Some(figment::Source::File(path)) => {
                let line = self
                    .file_text
                    .as_ref()
                    .and_then(|(_, text)| yaml_key_line(text, &parts))
                    .map(|l| format!(":{l}"))
                    .unwrap_or_default();
                format!("{}{line}", path.display())
            }
            _ if meta.name == "command-line flags" => match self.flags.flag_for(key) {
                Some(flag) => format!("flag {flag}"),
                None => "a command-line flag".into(),
            },
            _ if meta.name.contains("environment") => {
                format!("environment variable {}", meta.interpolate(&Profile::Default, &parts))
            }
            _ => "the built-in default".into(),
        }
    }

    fn invalid(&self, key: &str, message: impl fmt::Display) -> UsageError {
        UsageError(format!("invalid config: {key} ({}): {message}", self.origin(key)))
    }
}

/// Loads the configuration: defaults < `file` < environment < `flags`, then checks values,
/// the `communication` section against `plugins` (`crate::transport::CONFIG`).
pub fn load(file: Option<&Path>, flags: FlagOverrides, plugins: &[Plugin]) -> Result<Loaded, UsageError> {
    load_with_env(file, flags, utf8_vars(), plugins)
}

/// [`load`] with an explicit environment (tests pass their own).
pub fn load_with_env(
    file: Option<&Path>,
    flags: FlagOverrides,
    env: impl IntoIterator<Item = (String, String)>,
    plugins: &[Plugin],
) -> Result<Loaded, UsageError> {
    let mut figment = Figment::from(Serialized::defaults(Config::default()));
    let mut file_text = None;
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| UsageError(format!("cannot read config file {}: {e}", path.display())))?;
        // Parse the file on its own first: saphyr's errors carry line and column. Syntax
        // first (a type error found while streaming would hide a syntax error after it),
        // then the keys and types.
        read_yaml::<Config>(path, &text, "config")?;
        figment = figment.merge(serde_saphyr::figment::Yaml::file_exact(path));
        file_text = Some((path.to_path_buf(), text));
    }
    let env = env_provider(env);
    let vars = env.0.clone();
    figment = figment.merge(env).merge(flags.clone());
    let config: Config = figment.extract().map_err(|e| UsageError(describe_figment_error(e, &vars)))?;
    let loaded = Loaded { config, figment, file_text, flags };
    validate(&loaded)?;
    check_plugins(&loaded, plugins)?;
    Ok(loaded)
}

/// A figment provider over the given `OPENCLAW_<SECTION>__<KEY>` variables.
fn env_provider(env: impl IntoIterator<Item = (String, String)>) -> EnvVars {
    let vars: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| {
            let Some(rest) = k.strip_prefix("OPENCLAW_") else {
                return false;
            };
            let Some((section, _)) = rest.split_once("__") else {
                return false;
            };
            let section = section.to_ascii_lowercase();
            SECTIONS.iter().any(|s| s.key == section)
        })
        .collect();
    EnvVars(vars)
}

/// The filtered variables as a figment provider (figment's `Env` reads the process
/// environment itself; tests need to pass their own).
struct EnvVars(Vec<(String, String)>);

impl Provider for EnvVars {
    fn metadata(&self) -> Metadata {
        Metadata::named("environment variable(s)").interpolater(|_, keys| {
            format!("OPENCLAW_{}", keys.iter().map(|k| k.to_ascii_uppercase()).collect::<Vec<_>>().join("__"))
        })
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut dict = Dict::new();
        for (key, value) in &self.0 {
            let path: Vec<String> = key["OPENCLAW_".len()..].split("__").map(|p| p.to_ascii_lowercase()).collect();
            let value: Value = value.parse().expect("figment's Value parse is infallible");
            insert_nested(&mut dict, &path, value);
        }
        Ok(Profile::Default.collect(dict))
    }
}

fn insert_nested(dict: &mut Dict, path: &[String], value: Value) {
    match path {
        [] => {}
        [last] => {
            dict.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            let entry = dict.entry(first.clone()).or_insert_with(|| Value::from(Dict::new()));
            if let Value::Dict(_, inner) = entry {
                insert_nested(inner, rest, value);
            } else {
                let mut inner = Dict::new();
                insert_nested(&mut inner, rest, value);
                *entry = Value::from(inner);
            }
        }
    }
}

/// A YAML file's text as `T` (`what` names the kind of file in messages: `config`,
/// `workflow`): syntax first (a type error found while streaming would hide a syntax error
/// after it), then the keys and types, each error naming the file and line.
pub fn read_yaml<T: serde::de::DeserializeOwned>(path: &Path, text: &str, what: &str) -> Result<T, UsageError> {
    if let Err(e) = serde_saphyr::from_str::<serde::de::IgnoredAny>(text) {
        return Err(UsageError(describe_yaml_syntax_error(path, &e, what)));
    }
    serde_saphyr::from_str::<T>(text).map_err(|e| UsageError(describe_yaml_error(path, text, &e, what)))
}

/// The line of a dotted key path (`steps.summarize.needs[0]`) in a YAML file's text: the
/// line of the longest leading part of the path that is a key line (list indexes and keys
/// inside flow mappings point at the line of the key that holds them).
pub fn yaml_line(text: &str, path: &str) -> Option<usize> {
    let bare: Vec<&str> = path.split('.').map(|p| p.split('[').next().unwrap_or(p)).collect();
    (1..=bare.len()).rev().find_map(|n| yaml_key_line(text, &bare[..n]))
}

/// "invalid config file config.yaml:2:9: not valid YAML: …".
fn describe_yaml_syntax_error(path: &Path, e: &serde_saphyr::Error, what: &str) -> String {
    let at = match e.location() {
        Some(l) => format!("{}:{}:{}", path.display(), l.line(), l.column()),
        None => path.display().to_string(),
    };
    format!("invalid {what} file {at}: not valid YAML: {}", yaml_message(e))
}

/// "invalid config: coordinator.port (config.yaml:2): expected …", once, without the
/// parser's snippet (which would repeat the message and name the file `<input>`).
fn describe_yaml_error(path: &Path, text: &str, e: &serde_saphyr::Error, what: &str) -> String {
    let line = e.location().map(|l| l.line() as usize);
    let key = line.and_then(|l| yaml_key_path_at(text, l));
    let message = yaml_message(e);
    match (key, line) {
        (Some(key), Some(line)) => format!("invalid {what}: {key} ({}:{line}): {message}", path.display()),
        (None, Some(line)) => format!("invalid {what} file {}:{line}: {message}", path.display()),
        _ => format!("invalid {what} file {}: {message}", path.display()),
    }
}

/// The parser's message in plain words, without its location and snippet.
fn yaml_message(e: &serde_saphyr::Error) -> String {
    use serde_saphyr::{Error, MessageFormatter, UserMessageFormatter};
    match e.without_snippet() {
        Error::SerdeUnknownField { field, expected, .. } => unknown_key(field, expected),
        Error::SerdeInvalidType { unexpected, expected, .. }
        | Error::SerdeInvalidValue { unexpected, expected, .. } => {
            format!("expected {}, found {unexpected}", expected_words(expected))
        }
        other => friendly(&UserMessageFormatter.format_message(other)),
    }
}

/// "unknown key `prot` (did you mean `port`?); the keys here are: host, port, …" (each key
/// once).
fn unknown_key(field: &str, expected: &[&str]) -> String {
    let hint = crate::util::closest(field, expected.iter().copied())
        .map(|k| format!(" (did you mean `{k}`?)"))
        .unwrap_or_default();
    format!("unknown key `{field}`{hint}; the keys here are: {}", expected.join(", "))
}

/// Serde's name of an expected type, in plain words.
fn expected_words(expected: &str) -> String {
    match expected {
        "u16" => "a whole number from 0 to 65535".into(),
        "u32" => "a whole number from 0 to 4294967295".into(),
        "u64" | "usize" => "a whole number".into(),
        "i64" | "i32" => "a number".into(),
        "f64" | "f32" => "a number".into(),
        "bool" | "a boolean" => "true or false".into(),
        other => other.to_string(),
    }
}

/// Plain words for serde's integer range errors.
fn friendly(message: &str) -> String {
    message
        .replace("invalid u16", "expected a whole number from 0 to 65535")
        .replace("invalid u32", "expected a whole number from 0 to 4294967295")
        .replace("invalid u64", "expected a whole number")
        .replace("invalid usize", "expected a whole number")
}

/// The dotted key path of each key line of simple block YAML, by indentation:
/// `(1-based line, "coordinator.port")`. Good enough to point a person at a line.
fn yaml_keys(text: &str) -> Vec<(usize, String)> {
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let trimmed = raw.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('-') || !trimmed.contains(':') {
            continue;
        }
        let indent = raw.len() - trimmed.len();
        while stack.last().is_some_and(|(i, _)| *i >= indent) {
            stack.pop();
        }
        let key = trimmed.split(':').next().unwrap_or("").trim().trim_matches(['"', '\'']).to_string();
        stack.push((indent, key));
        out.push((n + 1, stack.iter().map(|(_, k)| k.as_str()).collect::<Vec<_>>().join(".")));
    }
    out
}

/// The key path on a line, or of the last key above it (a list item belongs to it).
fn yaml_key_path_at(text: &str, line: usize) -> Option<String> {
    yaml_keys(text).into_iter().take_while(|(l, _)| *l <= line).last().map(|(_, k)| k)
}

/// The line of a key path.
fn yaml_key_line(text: &str, path: &[&str]) -> Option<usize> {
    let wanted = path.join(".");
    yaml_keys(text).into_iter().find(|(_, k)| *k == wanted).map(|(l, _)| l)
}

/// Errors of the merged configuration (the environment and flags; the file was checked on
/// its own): "invalid config: OPENCLAW_COORDINATOR__PORT=abc (coordinator.port): expected
/// a whole number from 0 to 65535".
fn describe_figment_error(e: figment::Error, vars: &[(String, String)]) -> String {
    use figment::error::{Actual, Kind};
    let mut messages = Vec::new();
    for err in e {
        let key = err.path.join(".");
        let source = match &err.metadata {
            Some(meta) if meta.name.contains("environment") && !err.path.is_empty() => {
                let var = meta.interpolate(&Profile::Default, &err.path);
                match vars.iter().find(|(k, _)| k.eq_ignore_ascii_case(&var)) {
                    Some((k, v)) => format!("{k}={v}"),
                    None => format!("environment variable {var}"),
                }
            }
            Some(meta) => match &meta.source {
                Some(figment::Source::File(p)) => p.display().to_string(),
                _ => meta.name.to_string(),
            },
            None => String::new(),
        };
        let kind = match &err.kind {
            Kind::UnknownField(field, expected) => unknown_key(field, expected),
            Kind::InvalidType(actual, expected) | Kind::InvalidValue(actual, expected) => {
                let found = match actual {
                    Actual::Str(s) => format!("`{s}`"),
                    other => other.to_string(),
                };
                format!("expected {}, found {found}", expected_words(expected))
            }
            other => friendly(&other.to_string()),
        };
        messages.push(match (key.is_empty(), source.is_empty()) {
            (true, true) => format!("invalid config: {kind}"),
            (true, false) => format!("invalid config ({source}): {kind}"),
            (false, true) => format!("invalid config: {key}: {kind}"),
            (false, false) if source.contains('=') => format!("invalid config: {source} ({key}): {kind}"),
            (false, false) => format!("invalid config: {key} ({source}): {kind}"),
        });
    }
    messages.join("; ")
}

/// Checks values that types alone cannot, one section at a time, then the rules between
/// sections (the plug-ins' section is checked by [`check_plugins`]). The first problem
/// found is the error (it names the key and where it came from).
fn validate(l: &Loaded) -> Result<(), UsageError> {
    check_storage(l)?;
    check_coordinator(l)?;
    check_worker(l)?;
    check_log(l)?;
    check_auth(l)?;
    check_across_sections(l)
}

/// A duration between two bounds, or the error "must be between {low} and {high}".
fn check_between(
    l: &Loaded,
    key: &str,
    value: Secs,
    low: Duration,
    high: Duration,
    words: &str,
) -> Result<(), UsageError> {
    if value.get() < low || value.get() > high {
        return Err(l.invalid(key, format!("must be between {words}, not {value}")));
    }
    Ok(())
}

fn check_storage(l: &Loaded) -> Result<(), UsageError> {
    let s = &l.config.storage;
    if s.path.as_os_str().is_empty() {
        return Err(l.invalid("storage.path", "must not be empty"));
    }
    match (s.kind, &s.url) {
        (StorageKind::Postgres, None) => {
            return Err(l.invalid(
                "storage.url",
                "storage.type is postgres: set storage.url (or --storage-url) to postgres://USER@HOST:PORT/DATABASE",
            ));
        }
        (StorageKind::Postgres, Some(url)) => {
            crate::store::postgres::ConnectOptions::parse(url, s.password_file.as_deref(), s.ca_file.as_deref(), false)
                .map_err(|e| l.invalid("storage.url", e))?;
        }
        (StorageKind::Sqlite, _) => {}
    }
    check_between(l, "storage.lease_ttl", s.lease_ttl, Duration::from_secs(1), Duration::from_secs(60), "1s and 60s")?;
    Ok(())
}

fn check_coordinator(l: &Loaded) -> Result<(), UsageError> {
    let c = &l.config.coordinator;
    if c.host.trim().is_empty() {
        return Err(l.invalid("coordinator.host", "must not be empty"));
    }
    if c.heartbeat_check_interval.get().is_zero() {
        return Err(l.invalid("coordinator.heartbeat_check_interval", "must be above 0"));
    }
    if c.max_body_bytes < 1024 {
        return Err(l.invalid("coordinator.max_body_bytes", "must be at least 1024"));
    }
    let (tenth, hour) = (Duration::from_millis(100), Duration::from_secs(3600));
    check_between(l, "coordinator.header_read_timeout", c.header_read_timeout, tenth, hour, "0.1s and 1h")?;
    check_between(l, "coordinator.body_read_timeout", c.body_read_timeout, tenth, hour, "0.1s and 1h")?;
    if c.max_connections < 16 {
        return Err(l.invalid("coordinator.max_connections", format!("must be at least 16, not {}", c.max_connections)));
    }
    if c.max_connections_per_ip == 0 || c.max_connections_per_ip > c.max_connections {
        return Err(l.invalid(
            "coordinator.max_connections_per_ip",
            format!(
                "must be between 1 and coordinator.max_connections ({}), not {}",
                c.max_connections, c.max_connections_per_ip
            ),
        ));
    }
    if c.node_reserve_percent > 90 {
        return Err(l.invalid(
            "coordinator.node_reserve_percent",
            format!("must be between 0 and 90, not {}", c.node_reserve_percent),
        ));
    }
    for (key, value) in [
        ("coordinator.max_streams", c.max_streams),
        ("coordinator.max_streams_per_ip", c.max_streams_per_ip),
        ("coordinator.max_streams_per_token", c.max_streams_per_token),
    ] {
        if value == 0 {
            return Err(l.invalid(key, "must be at least 1"));
        }
    }
    check_between(
        l,
        "coordinator.max_stream_lifetime",
        c.max_stream_lifetime,
        Duration::from_secs(1),
        Duration::from_secs(24 * 3600),
        "1s and 24h",
    )?;
    let task_timeout = (Duration::from_secs(1), crate::model::MAX_TASK_TIMEOUT);
    check_between(
        l,
        "coordinator.default_task_timeout",
        c.default_task_timeout,
        task_timeout.0,
        task_timeout.1,
        "1s and 7 days",
    )?;
    if c.default_max_retries > crate::model::MAX_RETRIES {
        return Err(l.invalid(
            "coordinator.default_max_retries",
            format!("must be between 0 and {}", crate::model::MAX_RETRIES),
        ));
    }
    let poll = (Duration::from_secs(1), Duration::from_secs(300));
    check_between(l, "coordinator.long_poll_timeout", c.long_poll_timeout, poll.0, poll.1, "1s and 300s")?;
    if c.max_nodes == 0 {
        return Err(l.invalid("coordinator.max_nodes", "must be at least 1"));
    }
    if c.max_write_backlog < 16 {
        return Err(l.invalid("coordinator.max_write_backlog", "must be at least 16"));
    }
    if !(1024..=16 * 1024 * 1024).contains(&c.output_tail_bytes) {
        return Err(l.invalid("coordinator.output_tail_bytes", "must be between 1024 and 16777216 (16 MiB)"));
    }
    if c.tls_cert.is_some() != c.tls_key.is_some() {
        return Err(l.invalid("coordinator.tls_cert", "tls_cert and tls_key must be set together"));
    }
    Ok(())
}

fn check_worker(l: &Loaded) -> Result<(), UsageError> {
    let w = &l.config.worker;
    if w.port == Some(0) {
        return Err(l.invalid("worker.port", "must be between 1 and 65535, not 0"));
    }
    if w.coordinator_port == Some(0) {
        return Err(l.invalid("worker.coordinator_port", "must be between 1 and 65535, not 0"));
    }
    for url in &w.coordinator_urls {
        crate::client::parse_base(url).map_err(|e| l.invalid("worker.coordinator_urls", e))?;
    }
    if w.heartbeat_interval.get().is_zero() {
        return Err(l.invalid("worker.heartbeat_interval", "must be above 0"));
    }
    if !(1..=crate::model::MAX_NODE_CONCURRENCY).contains(&w.max_concurrent_tasks) {
        return Err(l.invalid(
            "worker.max_concurrent_tasks",
            format!("must be between 1 and {}, not {}", crate::model::MAX_NODE_CONCURRENCY, w.max_concurrent_tasks),
        ));
    }
    if w.skills_dir.0.is_empty() {
        return Err(l.invalid("worker.skills_dir", "needs at least one folder"));
    }
    if w.openclaw_refresh_interval.get() < Duration::from_secs(1) {
        return Err(
            l.invalid("worker.openclaw_refresh_interval", "must be at least 1s (one listing costs seconds of CPU)")
        );
    }
    if w.max_output_bytes == 0 {
        return Err(l.invalid("worker.max_output_bytes", "must be above 0"));
    }
    if let Some(id) = &w.node_id
        && let Err(e) = crate::model::validate_node_id(id)
    {
        return Err(l.invalid("worker.node_id", e));
    }
    Ok(())
}

fn check_log(l: &Loaded) -> Result<(), UsageError> {
    if l.config.log.max_files == 0 {
        return Err(l.invalid("log.max_files", "must be at least 1"));
    }
    Ok(())
}

fn check_auth(l: &Loaded) -> Result<(), UsageError> {
    let a = &l.config.auth;
    for (key, token) in [
        ("auth.admin_token", &a.admin_token),
        ("auth.worker_token", &a.worker_token),
        ("auth.tasks_token", &a.tasks_token),
    ] {
        if let Some(t) = token
            && t.trim().len() < 16
        {
            return Err(l.invalid(key, "must be at least 16 characters (use a long random value)"));
        }
    }
    Ok(())
}

/// Checks the `communication` section against the plug-ins: every key belongs to one, and
/// each one's settings parse and pass its checks.
fn check_plugins(l: &Loaded, plugins: &[Plugin]) -> Result<(), UsageError> {
    let known: Vec<String> = plugins.iter().flat_map(Plugin::keys).collect();
    if let Some(key) = l.config.communication.keys().find(|k| !known.contains(k)) {
        let message = if known.is_empty() {
            format!("unknown key `{key}`; this build has no transport besides HTTP")
        } else {
            unknown_key(key, &known.iter().map(String::as_str).collect::<Vec<_>>())
        };
        return Err(l.invalid(&format!("communication.{key}"), message));
    }
    for plugin in plugins {
        if let Err(e) = (plugin.check)(&l.config.communication) {
            return Err(l.invalid(&format!("communication.{}", e.key), e.message));
        }
    }
    Ok(())
}

/// Rules between sections: a node must heartbeat more often than the coordinator's
/// timeout, or every node would flap offline.
fn check_across_sections(l: &Loaded) -> Result<(), UsageError> {
    let (c, w) = (&l.config.coordinator, &l.config.worker);
    if c.heartbeat_timeout <= w.heartbeat_interval {
        return Err(l.invalid(
            "coordinator.heartbeat_timeout",
            format!(
                "{} must be above worker.heartbeat_interval ({}), or every node would flap offline",
                c.heartbeat_timeout, w.heartbeat_interval
            ),
        ));
    }
    Ok(())
}

impl Config {
    /// The directory holding the database, the token files and the lock file.
    pub fn data_dir(&self) -> PathBuf {
        match self.storage.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }

    /// Where a worker keeps its node secret and lock: `worker.state_dir`, else the data dir.
    pub fn worker_state_dir(&self) -> PathBuf {
        self.worker.state_dir.clone().unwrap_or_else(|| self.data_dir())
    }

    /// Refuses a config whose clients could not find the coordinator: with
    /// `coordinator.port` 0 (any free port) a client needs the real one.
    pub fn check_client_port(&self, who: &str) -> Result<(), UsageError> {
        if self.coordinator.port == 0
            && self.worker.coordinator_port.is_none()
            && self.worker.coordinator_urls.is_empty()
        {
            return Err(UsageError(format!(
                "coordinator.port is 0 (a free port chosen at start, logged as `coordinator ready on …`): {who} needs the real port — set worker.coordinator_port (--coordinator-port) or --url"
            )));
        }
        Ok(())
    }

    /// The coordinators a client follows: `worker.coordinator_urls`, else the one of
    /// [`Config::coordinator_url_for_clients`].
    pub fn coordinator_urls_for_clients(&self) -> Vec<String> {
        if self.worker.coordinator_urls.is_empty() {
            return vec![self.coordinator_url_for_clients()];
        }
        // Checked when the config was loaded; `host:port` means `http://host:port`.
        self.worker
            .coordinator_urls
            .iter()
            .map(|u| crate::client::parse_base(u).unwrap_or_else(|_| u.clone()))
            .collect()
    }

    /// The coordinator's address as a client should use it (0.0.0.0 / :: mean loopback).
    pub fn coordinator_url_for_clients(&self) -> String {
        let host = self.worker.coordinator_host.clone().unwrap_or_else(|| self.coordinator.host.clone());
        let host = match host.as_str() {
            "0.0.0.0" | "" => "127.0.0.1".to_string(),
            "::" | "[::]" => "[::1]".to_string(),
            h if h.contains(':') && !h.starts_with('[') => format!("[{h}]"),
            h => h.to_string(),
        };
        let port = self.worker.coordinator_port.unwrap_or(self.coordinator.port);
        let scheme = if self.worker.coordinator_tls || self.coordinator.tls_cert.is_some() { "https" } else { "http" };
        format!("{scheme}://{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(yaml: &str, env: &[(&str, &str)]) -> Result<Loaded, UsageError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, yaml).unwrap();
        load_with_env(
            Some(&path),
            FlagOverrides::default(),
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
            &[],
        )
    }

    #[test]
    fn yaml_key_path_of_a_line() {
        let text = "storage:\n  path: x\ncoordinator:\n  # note\n  host: h\n  port: abc\nlog:\n  level: LOUD\n";
        assert_eq!(yaml_key_path_at(text, 6).as_deref(), Some("coordinator.port"));
        assert_eq!(yaml_key_path_at(text, 8).as_deref(), Some("log.level"));
        assert_eq!(yaml_key_path_at(text, 1).as_deref(), Some("storage"));
        let list = "coordinator:\n  trusted_proxies:\n    - not-an-ip\n";
        assert_eq!(yaml_key_path_at(list, 3).as_deref(), Some("coordinator.trusted_proxies"));
    }

    #[test]
    fn flags_win_and_are_named() {
        let mut flags = FlagOverrides::default();
        flags.set("worker.coordinator_port", "--coordinator-port", Some(0u16));
        let err = load_with_env(None, flags, Vec::<(String, String)>::new(), &[]).err().unwrap();
        assert!(err.0.contains("flag --coordinator-port"), "{}", err.0);
    }

    #[test]
    fn coordinator_lists_and_the_lease_are_checked() {
        let l = load_text("worker:\n  coordinator_urls: [http://a:1/, 'b:2']\n", &[]).unwrap();
        assert_eq!(l.config.coordinator_urls_for_clients(), ["http://a:1", "http://b:2"]);
        l.config.check_client_port("x").unwrap();
        let err = load_text("worker:\n  coordinator_urls: [ftp://a]\n", &[]).err().unwrap();
        assert!(err.0.contains("worker.coordinator_urls") && err.0.contains("ftp://a"), "{}", err.0);
        let err = load_text("storage:\n  lease_ttl: 0.5\n", &[]).err().unwrap();
        assert!(err.0.contains("storage.lease_ttl") && err.0.contains("between 1s and 60s"), "{}", err.0);
        let l = load_text("", &[]).unwrap();
        assert_eq!(l.config.storage.lease_ttl.get(), Duration::from_secs(3));
        assert_eq!(l.config.coordinator_urls_for_clients(), ["http://127.0.0.1:8888"]);
    }

    #[test]
    fn yaml_line_finder_follows_indentation() {
        let text = "storage:\n  path: x\ncoordinator:\n  # note\n  host: h\n  port: 0\nworker:\n  port: 1\n";
        assert_eq!(yaml_key_line(text, &["coordinator", "port"]), Some(6));
        assert_eq!(yaml_key_line(text, &["worker", "port"]), Some(8));
        assert_eq!(yaml_key_line(text, &["log", "level"]), None);
    }

    #[test]
    fn durations_accept_seconds_and_text() {
        let l = load_text(
            "coordinator:\n  heartbeat_timeout: 2.5\n  retry_backoff_base: 500ms\nworker:\n  heartbeat_interval: 1\n",
            &[],
        )
        .unwrap();
        assert_eq!(l.config.coordinator.heartbeat_timeout.get(), Duration::from_millis(2500));
        assert_eq!(l.config.coordinator.retry_backoff_base.get(), Duration::from_millis(500));
    }

    #[test]
    fn foreign_openclaw_variables_are_not_keys() {
        let l = load_text(
            "",
            &[
                ("OPENCLAW_GATEWAY_TOKEN", "x"),
                ("OPENCLAW_URL", "http://x"),
                ("OPENCLAW_TASK_ID", "t"),
                ("OPENCLAW_LOG__LEVEL", "debug"),
            ],
        )
        .unwrap();
        assert_eq!(l.config.log.level, LogLevel::Debug);
    }

    #[test]
    fn numbers_are_accepted_for_string_keys_and_huge_durations_refused() {
        let l = load_text(
            "",
            &[("OPENCLAW_WORKER__NODE_ID", "123"), ("OPENCLAW_AUTH__ADMIN_TOKEN", "1234567890123456789")],
        )
        .unwrap();
        assert_eq!(l.config.worker.node_id.as_deref(), Some("123"));
        let err = load_text("", &[("OPENCLAW_COORDINATOR__HEARTBEAT_TIMEOUT", "1e19")]).err().unwrap();
        assert!(err.0.contains("heartbeat_timeout") && err.0.contains("ten years"), "{}", err.0);
        let err = load_text("coordinator:\n  heartbeat_timeout: 1e19\n", &[]).err().unwrap();
        assert!(err.0.contains("heartbeat_timeout"), "{}", err.0);
    }

    #[test]
    fn skills_dir_is_one_or_many() {
        let l = load_text("worker:\n  skills_dir: [a, b]\n", &[]).unwrap();
        assert_eq!(l.config.worker.skills_dir.0, vec![PathBuf::from("a"), PathBuf::from("b")]);
        let l = load_text("worker:\n  skills_dir: ./s\n", &[]).unwrap();
        assert_eq!(l.config.worker.skills_dir.0, vec![PathBuf::from("./s")]);
    }

    #[test]
    fn client_url_maps_wildcard_to_loopback() {
        let mut c = Config::default();
        assert_eq!(c.coordinator_url_for_clients(), "http://127.0.0.1:8888");
        c.worker.coordinator_host = Some("10.0.0.2".into());
        c.worker.coordinator_port = Some(9000);
        assert_eq!(c.coordinator_url_for_clients(), "http://10.0.0.2:9000");
    }
}
