//! Command-line definitions: every subcommand and flag of `openclaw`, parsed with clap.
//!
//! Parsing only: nothing here opens a file or reads config. The `///` lines are the help
//! text, the man pages and the completions, so they are written for users.
//! The executable also answers to other names (busybox style): a link called
//! `openclaw-coordinator` or `openclaw-worker` runs that subcommand, and
//! `openclaw-cluster` behaves as `openclaw` (OpenClaw's own CLI is also called `openclaw`).

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::model::{NodeStatus, Priority, TaskStatus};

/// Run OpenClaw on several machines as one cluster: tasks land on the machine that has
/// the skills for them.
#[derive(Debug, Parser)]
#[command(
    name = "openclaw",
    version,
    about,
    propagate_version = true,
    max_term_width = 100,
    after_long_help = "Exit status: 0 success; 1 a negative answer (a task failed, the cluster is unhealthy, not found, unreachable) or a failure; 2 a usage or configuration error; 3 (coordinator, dev) the coordinator cannot write its database or the folder holding it; 4 a wait that ran out of its --wait-timeout with the task still pending or running."
)]
pub struct Cli {
    /// YAML configuration file (the Python original's config.yaml works as is).
    #[arg(short = 'c', long = "config", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Log level: ERROR, WARN, INFO, DEBUG or TRACE (overrides log.level; RUST_LOG wins).
    #[arg(long, global = true, value_name = "LEVEL")]
    pub log_level: Option<String>,

    /// Log format: json (one object per line) or text (overrides log.format).
    #[arg(long, global = true, value_name = "FORMAT")]
    pub log_format: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the coordinator: HTTP API, node registry, scheduler and the SQLite store.
    #[command(
        after_long_help = "Exit status: 0 after a clean stop (Ctrl+C, SIGTERM); 1 on a failure such as another coordinator holding the database or a busy port; 2 for a usage or configuration error; 3 when it cannot write its database or the folder holding it (read-only, not permitted, disk full) — checked at start, before it answers anything."
    )]
    Coordinator(CoordinatorArgs),
    /// Run a worker: join the coordinator, advertise this machine's skills, run tasks.
    Worker(WorkerArgs),
    /// Try it out: a coordinator on 127.0.0.1 and one worker in the same process.
    Dev(DevArgs),
    /// Show or apply schema migrations of the store (takes a consistent backup first).
    Migrate(MigrateArgs),
    /// List or inspect cluster nodes; drain, undrain or forget one.
    Nodes(NodesArgs),
    /// Cluster health, or one node's health; the exit code says healthy (0) or not (1).
    Health(HealthArgs),
    /// Submit, list, inspect, wait for and cancel tasks.
    Tasks(TasksArgs),
    /// Run tasks on their own: on a cron expression in a time zone, every interval, or once
    /// at a moment, exactly once per due time.
    Schedules(SchedulesArgs),
    /// Run a workflow file: steps with a skill, params, `needs:`, `each_node`, and
    /// `${{ steps.NAME.result }}` references to earlier results, checked before anything is
    /// submitted, then submitted as linked tasks in one go.
    #[command(
        after_long_help = "A workflow file:\n\n  name: morning\n  steps:\n    fetch:     {skill: fetch-mail, params: {folder: inbox}}\n    summarize: {skill: summarize, needs: [fetch], params: {text: \"${{ steps.fetch.result }}\"}}\n    report:    {skill: disk-report, each_node: true}\n\nA step runs when the steps it needs have ended; their results reach it as `inputs`, and a reference is replaced by the result it names. A step that needs a failed step is cancelled unless it says `on_parent_failure: run`. An each_node step runs once on every matching node online when the workflow is submitted; nodes that join later are not added.\n\nExit status: 0 when submitted (with --wait: when every step completed); 1 when a step failed or the coordinator refused it; 2 for a file that is not a valid workflow (each problem named with FILE:LINE); 4 when --wait-timeout ran out first."
    )]
    Run(RunArgs),
    /// Which skills this machine has, and why a skill is not eligible (--cluster: every
    /// node's, with digests and drift).
    Skills(SkillsArgs),
    /// Save a consistent copy of the coordinator's database while it runs.
    Backup(BackupArgs),
    /// Cluster secrets that tasks use by name (`tasks submit --secret NAME`): set, list,
    /// remove, rotate the key. Values are kept encrypted and never shown.
    Secrets(SecretsArgs),
    /// Run the worker as a Windows service: install, uninstall, or run (what the Service
    /// Control Manager starts).
    #[cfg(windows)]
    Service(ServiceArgs),
    /// Print a shell completion script: bash, zsh, fish or powershell (e.g.
    /// `openclaw-cluster completions bash > /etc/bash_completion.d/openclaw-cluster`).
    Completions(CompletionsArgs),
    /// Serve the cluster to an AI agent over MCP (Model Context Protocol) on stdin and
    /// stdout: tools to list nodes and skills, and to submit, follow and cancel tasks.
    Mcp(McpArgs),
}

/// `openclaw-cluster service` (Windows).
#[cfg(windows)]
#[derive(Debug, Args)]
pub struct ServiceArgs {
    #[command(subcommand)]
    pub action: ServiceAction,
    /// The service's name.
    #[arg(long, global = true, default_value = "openclaw-cluster-worker")]
    pub name: String,
}

/// What to do with the Windows service.
#[cfg(windows)]
#[derive(Debug, Subcommand)]
pub enum ServiceAction {
    /// Register the worker as a service started at boot, with this `-c` config file.
    Install,
    /// Remove the service.
    Uninstall,
    /// Run as the service (the Service Control Manager calls this).
    Run,
}

/// Flags of `openclaw completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, powershell or elvish.
    #[arg(value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

/// Flags of `openclaw backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Where to write the copy (an SQLite file; an existing file is not overwritten).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Flags of `openclaw coordinator`.
#[derive(Debug, Args, Default)]
pub struct CoordinatorArgs {
    /// Address to listen on (coordinator.host, default 0.0.0.0).
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// Port to listen on (coordinator.port, default 8888).
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,
    /// SQLite database file (storage.path, default ./data/cluster.db).
    #[arg(long, value_name = "PATH")]
    pub db_path: Option<PathBuf>,
    /// Keep the state in this PostgreSQL database instead (storage.url; sets storage.type
    /// postgres): postgres://USER@HOST:PORT/DATABASE[?sslmode=verify-full].
    #[arg(long, value_name = "URL")]
    pub storage_url: Option<String>,
}

/// Flags of `openclaw worker`.
#[derive(Debug, Args, Default)]
pub struct WorkerArgs {
    /// This node's id (worker.node_id; default: derived from the host name).
    #[arg(long, value_name = "ID")]
    pub node_id: Option<String>,
    /// Coordinator address (worker.coordinator_host; default: coordinator.host, 0.0.0.0 meaning 127.0.0.1).
    #[arg(long, value_name = "HOST")]
    pub coordinator_host: Option<String>,
    /// Coordinator port (worker.coordinator_port; default: coordinator.port).
    #[arg(long, value_name = "PORT")]
    pub coordinator_port: Option<u16>,
    /// A coordinator's URL; repeat for each coordinator of a shared PostgreSQL store, and the
    /// worker follows whichever leads (worker.coordinator_urls; replaces --coordinator-host
    /// and --coordinator-port).
    #[arg(long = "coordinator-url", value_name = "URL")]
    pub coordinator_urls: Vec<String>,
    /// Skills folder; repeat for several (as with OpenClaw's extraDirs, the later wins a name clash).
    #[arg(long, value_name = "DIR")]
    pub skills_dir: Vec<PathBuf>,
    /// How many tasks this node runs at once (worker.max_concurrent_tasks, default 5).
    #[arg(long, value_name = "N")]
    pub max_concurrent_tasks: Option<u32>,
    /// Join token (else OPENCLAW_TOKEN, worker.token, or the worker.token file beside storage.path).
    #[arg(long, env = "OPENCLAW_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    pub token: Option<String>,
    /// A tag for affinity placement; repeat for several (worker.tags).
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Where the node secret and the one-worker-per-node-id lock live (worker.state_dir;
    /// default: the folder of storage.path).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

/// Flags of `openclaw dev`.
#[derive(Debug, Args, Default)]
pub struct DevArgs {
    /// Port for the coordinator on 127.0.0.1 (default: coordinator.port, 8888).
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,
    /// SQLite database file (storage.path, default ./data/cluster.db).
    #[arg(long, value_name = "PATH")]
    pub db_path: Option<PathBuf>,
    /// Skills folder of the in-process worker; repeat for several.
    #[arg(long, value_name = "DIR")]
    pub skills_dir: Vec<PathBuf>,
    /// Node id of the in-process worker (default: derived from the host name).
    #[arg(long, value_name = "ID")]
    pub node_id: Option<String>,
}

/// Flags of `openclaw migrate`.
#[derive(Debug, Args, Default)]
pub struct MigrateArgs {
    /// SQLite database file (storage.path, default ./data/cluster.db).
    #[arg(long, value_name = "PATH")]
    pub db_path: Option<PathBuf>,
    /// Migrate this PostgreSQL database instead (storage.url; sets storage.type postgres).
    #[arg(long, value_name = "URL", conflicts_with = "to")]
    pub storage_url: Option<String>,
    /// Copy the SQLite store (storage.path) into this empty PostgreSQL database (created at
    /// the current schema), then check that every table's rows arrived. The SQLite file is
    /// only read; the coordinator must be stopped.
    #[arg(long, value_name = "URL", conflicts_with_all = ["status", "dry_run"])]
    pub to: Option<String>,
    /// Print the current and target schema versions and the pending migrations; change nothing.
    #[arg(long, conflicts_with = "dry_run")]
    pub status: bool,
    /// Print what would run; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Where a CLI client finds the coordinator and its token.
#[derive(Debug, Args, Default, Clone)]
pub struct ClientArgs {
    /// Coordinator URL, or a comma list of the coordinators of a shared PostgreSQL store, the
    /// leader followed (else OPENCLAW_URL, else worker.coordinator_urls, else
    /// coordinator.host:port from the config).
    #[arg(long, env = "OPENCLAW_URL", hide_env_values = true, value_name = "URL")]
    pub url: Option<String>,
    /// Admin token (else OPENCLAW_TOKEN, auth.admin_token, or the admin.token file beside
    /// --db-path, beside storage.path, or in /var/lib/openclaw-cluster; a token from a file
    /// goes only to the coordinator that wrote it, named in coordinator.address beside it).
    #[arg(long, env = "OPENCLAW_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    pub token: Option<String>,
    /// The coordinator's database, to find admin.token beside it (when the CLI runs on the
    /// coordinator's machine from another folder).
    #[arg(long, value_name = "PATH")]
    pub db_path: Option<PathBuf>,
}

/// Flags of `openclaw mcp`: a client's, looking for the tasks token.
#[derive(Debug, Args, Default)]
#[command(
    mut_arg("token", |a| a.help("Tasks token: reads the cluster, submits and cancels tasks, nothing else (else OPENCLAW_TOKEN, auth.tasks_token, or the tasks.token file beside --db-path, beside storage.path, or in /var/lib/openclaw-cluster; then the admin token's places)")),
    mut_arg("db_path", |a| a.help("The coordinator's database, to find tasks.token beside it")),
)]
pub struct McpArgs {
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Flags of `openclaw nodes`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct NodesArgs {
    /// Show one node in detail.
    #[arg(value_name = "NODE_ID")]
    pub node_id: Option<String>,
    /// Only online nodes.
    #[arg(long, conflicts_with_all = ["skill", "status"])]
    pub online: bool,
    /// Only online nodes that have this skill.
    #[arg(long, value_name = "SKILL", conflicts_with = "status")]
    pub skill: Option<String>,
    /// Only nodes in this status: online, offline, busy (every slot taken), maintenance (drained).
    #[arg(long, value_name = "STATUS")]
    pub status: Option<NodeStatus>,
    /// Print the nodes as they are now, then node events (registered, online, offline,
    /// drained, ...) as they happen, one line each, until Ctrl+C; with NODE_ID, only that
    /// node's. Reconnects on its own.
    #[arg(long, conflicts_with_all = ["online", "skill", "status"])]
    pub watch: bool,
    /// With --watch: instead of the nodes as they are now, first replay the kept events
    /// after this event id (0: every kept one).
    #[arg(long, value_name = "EVENT_ID", requires = "watch")]
    pub after: Option<u64>,
    /// At most this many nodes (1-10000), in node id order; the last line says how to ask
    /// for the next page. Every node when absent.
    #[arg(long, value_name = "N", conflicts_with_all = ["online", "skill", "watch", "node_id"])]
    pub limit: Option<u32>,
    /// Only nodes whose id sorts after this one (the last node of a previous page).
    #[arg(long, value_name = "NODE_ID", conflicts_with_all = ["online", "skill", "watch", "node_id"])]
    pub after_node: Option<String>,
    /// Print the API's JSON unchanged (with --watch: one event object per line).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub action: Option<NodesAction>,
}

/// `openclaw secrets`.
#[derive(Debug, Args)]
pub struct SecretsArgs {
    #[command(subcommand)]
    pub action: SecretsAction,
}

/// What to do with the cluster secrets.
#[derive(Debug, Subcommand)]
pub enum SecretsAction {
    /// Set or replace a secret. The value is read from standard input (one trailing newline
    /// is dropped) or from --file, never from the command line.
    Set(SetSecretArgs),
    /// The secrets: names, scopes, who set them and when (never values).
    List(SecretsListArgs),
    /// Remove a secret.
    Rm(SecretNameArgs),
    /// Seal every secret again under a new key (storage.secrets_key_file).
    RotateKey(SecretsListArgs),
}

/// `openclaw secrets set`.
#[derive(Debug, Args)]
pub struct SetSecretArgs {
    /// The secret's name: the environment variable the skill reads (e.g. OPENAI_API_KEY).
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Read the value from this file (whole, one trailing newline dropped) instead of stdin.
    #[arg(long, value_name = "PATH")]
    pub file: Option<std::path::PathBuf>,
    /// Only this node may receive it (tasks that use it run only there).
    #[arg(long, value_name = "NODE_ID")]
    pub node: Option<String>,
    /// Only nodes of this platform may receive it: linux, macos or windows.
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,
    /// Only nodes with this tag may receive it. Repeatable: every tag is required.
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Print the API's JSON unchanged.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `openclaw secrets list` and `rotate-key`.
#[derive(Debug, Args)]
pub struct SecretsListArgs {
    /// Print the API's JSON unchanged.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `openclaw secrets rm`.
#[derive(Debug, Args)]
pub struct SecretNameArgs {
    /// The secret's name.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Print the API's JSON unchanged.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `openclaw nodes drain|undrain|forget`.
#[derive(Debug, Subcommand)]
pub enum NodesAction {
    /// Put a node in maintenance: it gets no new tasks; running ones finish.
    Drain(NodeTarget),
    /// Take a node out of maintenance.
    Undrain(NodeTarget),
    /// Remove an offline node with no tasks from the registry.
    Forget(NodeTarget),
}

/// One node to act on.
#[derive(Debug, Args)]
pub struct NodeTarget {
    /// The node's id.
    #[arg(value_name = "NODE_ID")]
    pub node_id: String,
    /// Print the API's JSON unchanged.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Flags of `openclaw health`.
#[derive(Debug, Args)]
pub struct HealthArgs {
    /// One node's health instead of the cluster's.
    #[arg(long, value_name = "NODE_ID")]
    pub node: Option<String>,
    /// Print the API's JSON unchanged.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `openclaw tasks ...`.
#[derive(Debug, Args)]
pub struct TasksArgs {
    #[command(subcommand)]
    pub command: TasksCommand,
}

/// The task subcommands.
#[derive(Debug, Subcommand)]
pub enum TasksCommand {
    /// Submit a task; prints its id, or with --wait its outcome.
    Submit(Box<SubmitArgs>),
    /// List tasks, newest first.
    List(ListArgs),
    /// Show one task with its event history and, while pending, why it waits.
    Get(TaskTarget),
    /// Wait until a task ends; exit 0 if it completed, 1 if it failed, 4 if the wait timed out.
    Wait(WaitArgs),
    /// Cancel a task (a running one is killed on its worker).
    Cancel(TaskTarget),
    /// Submit an ended task again: a new task with the same request, linked to the old one.
    Retry(RetryArgs),
    /// Print task events (submitted, scheduled, running, completed, ...) as they happen, one
    /// line each, until Ctrl+C. Reconnects on its own without missing or repeating events.
    Watch(WatchArgs),
    /// Print a task's output: the kept tail of what its latest attempt printed, stdout lines
    /// on stdout and stderr lines on stderr; with -f, then its new lines until it ends.
    Logs(LogsArgs),
}

/// Flags of `openclaw tasks retry`.
#[derive(Debug, Args)]
pub struct RetryArgs {
    /// The ended task's id.
    #[arg(value_name = "TASK_ID")]
    pub task_id: String,
    /// Wait for the new task to end; exit 0 only if it completed.
    #[arg(long)]
    pub wait: bool,
    /// Wait at most this long (implies --wait): seconds or 90s, 10m...; exit 4 if the task
    /// has not ended by then (it keeps going).
    #[arg(long, value_name = "DURATION", value_parser = crate::util::parse_duration)]
    pub wait_timeout: Option<Duration>,
    /// Print the API's JSON unchanged.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// What a task asks for: the flags `tasks submit` and `schedules add` share.
#[derive(Debug, Args)]
pub struct TaskFields {
    /// A required skill; repeat for several. The first one is the skill that runs.
    /// `NAME@sha256:…` pins a version: only nodes with that content run it.
    #[arg(long = "skill", value_name = "SKILL")]
    pub skills: Vec<String>,
    /// An optional skill: nodes that have it are preferred. Repeatable.
    #[arg(long = "optional-skill", value_name = "SKILL")]
    pub optional_skills: Vec<String>,
    /// Task name (default: the first skill).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Description (the agent runner's prompt when there is no --prompt).
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,
    /// A parameter KEY=VALUE; VALUE is JSON when it parses as JSON, else a string. Repeatable.
    #[arg(long = "param", value_name = "KEY=VALUE", value_parser = parse_param)]
    pub params: Vec<(String, serde_json::Value)>,
    /// All parameters as one JSON object.
    #[arg(long, value_name = "JSON", conflicts_with = "params_file")]
    pub params_json: Option<String>,
    /// All parameters from a JSON file.
    #[arg(long, value_name = "FILE")]
    pub params_file: Option<PathBuf>,
    /// The prompt for an agent skill (sets parameters.prompt).
    #[arg(long, value_name = "TEXT")]
    pub prompt: Option<String>,
    /// critical, high, normal (default) or low.
    #[arg(long, value_name = "PRIORITY")]
    pub priority: Option<Priority>,
    /// Time limit of each attempt on its worker: seconds or a duration like 90s, 10m, 2h
    /// (default coordinator.default_task_timeout). How long --wait waits is --wait-timeout.
    #[arg(long, value_name = "DURATION", value_parser = crate::util::parse_duration)]
    pub timeout: Option<Duration>,
    /// How many times a failed attempt is retried (default coordinator.default_max_retries, 3).
    #[arg(long, value_name = "N")]
    pub retries: Option<u32>,
    /// An affinity tag: nodes with this tag are preferred. Repeatable.
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Run only on this node.
    #[arg(long, value_name = "NODE_ID")]
    pub node: Option<String>,
    /// Run only on nodes of this platform: linux, macos or windows.
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,
    /// Run only on nodes that have this tag (unlike --tag, a requirement). Repeatable.
    #[arg(long = "require-tag", value_name = "TAG")]
    pub require_tags: Vec<String>,
    /// A cluster secret the task uses (`openclaw secrets list`): the skill's process gets it
    /// as the environment variable of that name. Repeatable.
    #[arg(long = "secret", value_name = "NAME")]
    pub secrets: Vec<String>,
    /// Fan out: one task per matching online node, grouped under a parent task that ends
    /// when they all have (its result holds each node's). The nodes are those online when
    /// it is submitted (or when a schedule fires); nodes that join later are not added.
    #[arg(long)]
    pub each_node: bool,
}

/// Flags of `openclaw tasks submit`.
#[derive(Debug, Args)]
pub struct SubmitArgs {
    #[command(flatten)]
    pub task: TaskFields,
    /// Pin every --skill given without a version to the one the cluster's nodes have now
    /// (refused, naming the digests, when their copies differ; `openclaw skills --cluster`).
    #[arg(long)]
    pub pin: bool,
    /// A task that must end first (its id); repeatable. The task stays pending until they
    /// have ended; their results reach it as `inputs` (in an exec skill's stdin JSON, and in
    /// an agent skill's prompt). Not a schedule flag: a schedule fires again and again,
    /// and a task id names one run.
    #[arg(long = "depends-on", value_name = "TASK_ID")]
    pub depends_on: Vec<String>,
    /// When a task it depends on ends failed, timed out or cancelled: cancel (the default;
    /// the reason names that task) or run anyway.
    #[arg(long, value_name = "cancel|run", requires = "depends_on")]
    pub on_parent_failure: Option<crate::model::OnParentFailure>,
    /// Submitting again with the same key returns the first task instead of a new one.
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,
    /// Submit even when no node has ever advertised the first skill: the task waits until a
    /// node with it joins. Without it, such a submission is refused (exit 2) with the skills
    /// the cluster knows and the nearest name.
    #[arg(long)]
    pub queue: bool,
    /// Wait for the outcome and print it; exit 0 completed, 1 failed, timeout or cancelled.
    #[arg(long)]
    pub wait: bool,
    /// Wait at most this long (implies --wait): seconds or 90s, 10m...; exit 4 if the task
    /// has not ended by then (it keeps going). Not --timeout, which limits each attempt.
    #[arg(long, value_name = "DURATION", value_parser = crate::util::parse_duration)]
    pub wait_timeout: Option<Duration>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `openclaw schedules ...`.
#[derive(Debug, Args)]
pub struct SchedulesArgs {
    #[command(subcommand)]
    pub command: SchedulesCommand,
}

/// The schedule subcommands.
#[derive(Debug, Subcommand)]
pub enum SchedulesCommand {
    /// Add a schedule: when it fires (--cron, --every or --at) and the task it submits (the
    /// flags of `tasks submit`).
    Add(Box<ScheduleAddArgs>),
    /// List schedules: next due time, last run and its status.
    List(ScheduleListArgs),
    /// Show one schedule.
    Get(ScheduleTarget),
    /// Change a schedule: the flags given replace what it had (a new --skill replaces its
    /// whole task); a new timing starts from now.
    Edit(Box<ScheduleEditArgs>),
    /// Stop firing until resumed.
    Pause(ScheduleTarget),
    /// Fire again from the next due time (those passed while paused do not run).
    Resume(ScheduleTarget),
    /// Remove a schedule and its run history (its tasks stay).
    #[command(alias = "rm")]
    Remove(ScheduleTarget),
    /// Fire a schedule now, paused or not; prints the task's id.
    RunNow(ScheduleTarget),
    /// A schedule's runs, newest first: due time, outcome, task and its status.
    Runs(ScheduleRunsArgs),
}

/// When a schedule fires (the flags of OpenClaw's `cron add`).
#[derive(Debug, Args, Default)]
pub struct TimingArgs {
    /// A cron expression: 5 fields (minute hour day-of-month month day-of-week) or 6 with
    /// seconds first, e.g. "0 7 * * *"; evaluated in --tz.
    #[arg(long, value_name = "EXPR", conflicts_with_all = ["every", "at"])]
    pub cron: Option<String>,
    /// The IANA time zone of --cron (Europe/Berlin, America/New_York, UTC). Default: this
    /// machine's time zone.
    #[arg(long, value_name = "ZONE", requires = "cron")]
    pub tz: Option<String>,
    /// Fire every interval: a whole number and ms, s, m, h or d (90s, 10m, 1d).
    #[arg(long, value_name = "INTERVAL", conflicts_with = "at")]
    pub every: Option<String>,
    /// Fire once: an RFC 3339 time (2026-12-24T18:00:00Z, 2026-12-24T19:00:00+01:00) or a
    /// duration from now (20m, 2h).
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// Spread --cron firings over this window after each due time (a fixed offset per
    /// schedule). Default: 5m for a top-of-hour expression, else none.
    #[arg(long, value_name = "DURATION", requires = "cron", conflicts_with = "exact")]
    pub stagger: Option<String>,
    /// Fire --cron at its exact due times (no stagger).
    #[arg(long, requires = "cron")]
    pub exact: bool,
}

/// Flags of `openclaw schedules add`.
#[derive(Debug, Args)]
pub struct ScheduleAddArgs {
    /// The schedule's name (A-Z a-z 0-9 . _ -).
    #[arg(value_name = "NAME", id = "schedule")]
    pub schedule: String,
    #[command(flatten)]
    pub timing: TimingArgs,
    /// Due times missed while the coordinator was down: none, latest (default) or all (up
    /// to 100).
    #[arg(long, value_name = "POLICY")]
    pub catch_up: Option<crate::model::CatchUp>,
    /// A due time while the previous run is still active: skip (default), queue or allow.
    #[arg(long, value_name = "POLICY")]
    pub overlap: Option<crate::model::Overlap>,
    /// Remove the schedule once a run completes.
    #[arg(long)]
    pub delete_after_run: bool,
    /// Create it paused.
    #[arg(long, alias = "disabled")]
    pub paused: bool,
    /// Submit this workflow file (as `openclaw run` takes it, checked now) at each firing,
    /// instead of the task the task flags describe.
    #[arg(long, value_name = "FILE.yaml", conflicts_with = "skills")]
    pub workflow: Option<PathBuf>,
    #[command(flatten)]
    pub task: TaskFields,
    /// Print the API's JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Flags of `openclaw schedules edit`.
#[derive(Debug, Args)]
pub struct ScheduleEditArgs {
    /// The schedule's name or id.
    #[arg(value_name = "NAME", id = "schedule")]
    pub schedule: String,
    /// A new name.
    #[arg(long, value_name = "NAME")]
    pub rename: Option<String>,
    #[command(flatten)]
    pub timing: TimingArgs,
    /// none, latest or all.
    #[arg(long, value_name = "POLICY")]
    pub catch_up: Option<crate::model::CatchUp>,
    /// skip, queue or allow.
    #[arg(long, value_name = "POLICY")]
    pub overlap: Option<crate::model::Overlap>,
    /// Remove the schedule once a run completes: true or false.
    #[arg(long, value_name = "BOOL")]
    pub delete_after_run: Option<bool>,
    #[command(flatten)]
    pub task: TaskFields,
    /// Print the API's JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Flags of `openclaw schedules list`.
#[derive(Debug, Args)]
pub struct ScheduleListArgs {
    /// Print the API's JSON unchanged.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// One schedule to act on.
#[derive(Debug, Args)]
pub struct ScheduleTarget {
    /// The schedule's name or id.
    #[arg(value_name = "NAME")]
    pub schedule: String,
    /// Print the API's JSON unchanged.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Flags of `openclaw schedules runs`.
#[derive(Debug, Args)]
pub struct ScheduleRunsArgs {
    /// The schedule's name or id.
    #[arg(value_name = "NAME")]
    pub schedule: String,
    /// At most this many runs (1-1000, default 50).
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,
    /// Only runs numbered below this one (the `next` of a previous page).
    #[arg(long, value_name = "RUN")]
    pub before: Option<u64>,
    /// Print the API's JSON unchanged.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Flags of `openclaw tasks list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only tasks in this status.
    #[arg(long, value_name = "STATUS")]
    pub status: Option<TaskStatus>,
    /// Only tasks assigned to this node.
    #[arg(long, value_name = "NODE_ID")]
    pub node: Option<String>,
    /// Only tasks that require this skill.
    #[arg(long, value_name = "SKILL")]
    pub skill: Option<String>,
    /// At most this many tasks (1-1000, default 50).
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,
    /// Continue after this cursor (the `next` of a previous page).
    #[arg(long, value_name = "CURSOR")]
    pub after: Option<String>,
    /// Print the API's JSON unchanged.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Flags of `openclaw run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The workflow file (YAML).
    #[arg(value_name = "FILE.yaml")]
    pub file: PathBuf,
    /// Follow the workflow, printing each step's state as it changes, until it ends; exit 0
    /// only if every step completed.
    #[arg(long)]
    pub wait: bool,
    /// Wait at most this long (implies --wait): seconds or 90s, 10m...; exit 4 if the
    /// workflow has not ended by then (it keeps going).
    #[arg(long, value_name = "DURATION", value_parser = crate::util::parse_duration)]
    pub wait_timeout: Option<Duration>,
    /// Print the workflow task's JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// One task to act on.
#[derive(Debug, Args)]
pub struct TaskTarget {
    /// The task's id.
    #[arg(value_name = "TASK_ID")]
    pub task_id: String,
    /// Print the API's JSON unchanged.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Flags of `openclaw tasks wait`.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// The task's id.
    #[arg(value_name = "TASK_ID")]
    pub task_id: String,
    /// Give up after this long (seconds or 90s, 10m...; exit 4, the task keeps going);
    /// default: wait as long as it takes. (`--timeout` is an older name for it.)
    #[arg(long, alias = "timeout", value_name = "DURATION", value_parser = crate::util::parse_duration)]
    pub wait_timeout: Option<Duration>,
    /// Print the API's JSON unchanged.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Flags of `openclaw tasks watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Only this task's events.
    #[arg(long, value_name = "TASK_ID")]
    pub task: Option<String>,
    /// Only events of tasks whose skill (the first required one) is this.
    #[arg(long, value_name = "SKILL")]
    pub skill: Option<String>,
    /// Only events of tasks on this node.
    #[arg(long, value_name = "NODE_ID")]
    pub node: Option<String>,
    /// First replay the kept events after this event id; default: from now on.
    #[arg(long, value_name = "EVENT_ID")]
    pub after: Option<u64>,
    /// One event object (JSON) per line.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Flags of `openclaw tasks logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The task's id.
    #[arg(value_name = "TASK_ID")]
    pub task_id: String,
    /// Then print new lines as they come, until the task ends (or Ctrl+C).
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Print the API's JSON (with -f: one line object per line, then the end).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Flags of `openclaw skills`.
#[derive(Debug, Args, Default)]
pub struct SkillsArgs {
    /// Skills folder; repeat for several (default: worker.skills_dir).
    #[arg(long, value_name = "DIR")]
    pub skills_dir: Vec<PathBuf>,
    /// JSON in OpenClaw's vocabulary (name, description, eligible, missing) plus kind and path
    /// (with --cluster: the API's answer).
    #[arg(long)]
    pub json: bool,
    /// The whole cluster's skills instead of this machine's (from the coordinator): the nodes
    /// that have each skill, whether they can run it now, their digests, and drift (one name,
    /// different content); the exit code is 1 when a skill drifts.
    #[arg(long, conflicts_with = "skills_dir")]
    pub cluster: bool,
    #[command(flatten)]
    pub client: ClientArgs,
    /// Push a skill to nodes, remove or roll back a pushed skill, list the pushes.
    #[command(subcommand)]
    pub action: Option<SkillsAction>,
}

/// Pushed skills: the admin token's.
#[derive(Debug, Subcommand)]
pub enum SkillsAction {
    /// Pack a skill folder and push it to nodes (they install it into their managed skills
    /// folder when worker.accept_skill_pushes is on; nodes that join or come back later get
    /// it too); shows progress until the chosen nodes advertise it.
    Push(SkillPushArgs),
    /// Remove a pushed skill from the nodes it was pushed to (or only from --nodes).
    Remove(SkillRemoveArgs),
    /// Go back to the version pushed before.
    Rollback(SkillNameArgs),
    /// The pushed skills: version, the version before, selector, and each node's progress.
    Pushes(SkillPushesArgs),
}

/// `openclaw skills push`.
#[derive(Debug, Args)]
pub struct SkillPushArgs {
    /// The skill's folder (holding its SKILL.md); its name is the SKILL.md's `name`, else
    /// the folder's name.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// These nodes (comma-separated or repeated).
    #[arg(long, value_name = "NODE_ID", value_delimiter = ',', required_unless_present_any = ["tags", "all"], conflicts_with_all = ["tags", "all"])]
    pub nodes: Vec<String>,
    /// Every node with all of these tags (comma-separated or repeated).
    #[arg(long, value_name = "TAG", value_delimiter = ',', conflicts_with = "all")]
    pub tags: Vec<String>,
    /// Every node.
    #[arg(long)]
    pub all: bool,
    /// Return once the coordinator has it; do not wait for the nodes.
    #[arg(long)]
    pub no_wait: bool,
    /// How long to wait for the nodes to advertise it (e.g. 90s, 5m).
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = crate::util::parse_duration)]
    pub timeout: std::time::Duration,
    /// Print the API's JSON (the push, then each node's progress when waiting).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `openclaw skills remove`.
#[derive(Debug, Args)]
pub struct SkillRemoveArgs {
    /// The pushed skill's name.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Only from these nodes (comma-separated or repeated); default: every node of the push.
    #[arg(long, value_name = "NODE_ID", value_delimiter = ',')]
    pub nodes: Vec<String>,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `openclaw skills rollback`.
#[derive(Debug, Args)]
pub struct SkillNameArgs {
    /// The pushed skill's name.
    #[arg(value_name = "NAME")]
    pub name: String,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `openclaw skills pushes`.
#[derive(Debug, Args)]
pub struct SkillPushesArgs {
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Parses arguments (the first one is the program name). Called through a role link
/// (`openclaw-coordinator`), that role's usage line names the link alone.
pub fn parse(args: Vec<OsString>) -> Result<Cli, clap::Error> {
    use clap::{CommandFactory, FromArgMatches};
    let mut command = Cli::command();
    if let Some((link, role)) = role_link(&args) {
        command = command.mut_subcommand(role, |s| s.override_usage(format!("{link} [OPTIONS]")));
    }
    Cli::from_arg_matches(&command.try_get_matches_from(args)?)
}

/// The program's name as it was called (`openclaw-cluster`, `openclaw`, …).
pub fn program_name(args0: Option<&OsString>) -> String {
    args0
        .and_then(|p| std::path::Path::new(p).file_stem().map(|s| s.to_string_lossy().into_owned()))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "openclaw".into())
}

/// A role link (`openclaw-coordinator`, `openclaw-worker`) and its subcommand.
fn role_link(args: &[OsString]) -> Option<(String, &'static str)> {
    let stem = program_name(args.first()).to_ascii_lowercase();
    let role = match stem.as_str() {
        "openclaw-coordinator" => "coordinator",
        "openclaw-worker" => "worker",
        _ => return None,
    };
    Some((stem, role))
}

/// The arguments as `openclaw` would see them: a program called `openclaw-coordinator` or
/// `openclaw-worker` gets that subcommand put in front of its arguments.
pub fn args_from_invocation(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut args: Vec<OsString> = args.into_iter().collect();
    if args.is_empty() {
        return vec!["openclaw".into()];
    }
    if let Some((_, role)) = role_link(&args) {
        args.insert(1, role.into());
    }
    args
}

/// Commands of OpenClaw's own CLI, also called `openclaw`, that people type to this
/// program by mistake (the docs say `openclaw gateway` to start OpenClaw's gateway).
const OPENCLAW_COMMANDS: &[&str] = &[
    "gateway",
    "config",
    "onboard",
    "configure",
    "setup",
    "agent",
    "agents",
    "channels",
    "models",
    "plugins",
    "doctor",
    "message",
    "pairing",
];

/// For a usage error that names one of OpenClaw's own commands: which program has it.
pub fn foreign_command_hint(err: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue};
    let Some(ContextValue::String(name)) = err.get(ContextKind::InvalidSubcommand) else {
        return None;
    };
    OPENCLAW_COMMANDS.contains(&name.as_str()).then(|| {
        format!(
            "note: `{name}` is a command of OpenClaw's own CLI (the npm package openclaw), which is also called `openclaw`; this program is openclaw-cluster. Run OpenClaw's by its path, or install this one under the name openclaw-cluster only (cargo install --locked --path . --bin openclaw-cluster)."
        )
    })
}

fn parse_param(text: &str) -> Result<(String, serde_json::Value), String> {
    let (key, value) = text.split_once('=').ok_or_else(|| format!("`{text}` is not KEY=VALUE"))?;
    if key.is_empty() {
        return Err(format!("`{text}` has an empty key"));
    }
    let value = serde_json::from_str(value).unwrap_or_else(|_| value.into());
    Ok((key.to_string(), value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(args: &[&str]) -> Cli {
        parse(args.iter().map(OsString::from).collect()).expect("parses")
    }

    #[test]
    fn link_names_pick_the_subcommand() {
        let args = args_from_invocation(["/usr/bin/openclaw-coordinator", "--port", "9"].map(OsString::from));
        let cli = parse(args).unwrap();
        assert!(matches!(cli.command, Command::Coordinator(CoordinatorArgs { port: Some(9), .. })));
        let args = args_from_invocation(["openclaw-worker.exe"].map(OsString::from));
        assert!(matches!(parse(args).unwrap().command, Command::Worker(_)));
        let args = args_from_invocation(["openclaw-cluster", "nodes", "--online"].map(OsString::from));
        assert!(matches!(parse(args).unwrap().command, Command::Nodes(NodesArgs { online: true, .. })));
    }

    #[test]
    fn seed_worker_flags_parse() {
        let cli = parse_ok(&[
            "openclaw",
            "worker",
            "--node-id",
            "worker-001",
            "--coordinator-host",
            "localhost",
            "--coordinator-port",
            "8888",
            "--skills-dir",
            "./skills",
        ]);
        let Command::Worker(w) = cli.command else { panic!("not worker") };
        assert_eq!(w.node_id.as_deref(), Some("worker-001"));
        assert_eq!(w.coordinator_port, Some(8888));
        assert_eq!(w.skills_dir, vec![PathBuf::from("./skills")]);
    }

    #[test]
    fn a_worker_takes_several_coordinators() {
        let cli = parse_ok(&[
            "openclaw",
            "worker",
            "--coordinator-url",
            "http://a:8888",
            "--coordinator-url",
            "http://b:8888",
        ]);
        let Command::Worker(w) = cli.command else { panic!("not worker") };
        assert_eq!(w.coordinator_urls, ["http://a:8888", "http://b:8888"]);
    }

    #[test]
    fn config_flag_is_global() {
        let cli = parse_ok(&["openclaw", "coordinator", "-c", "config.yaml", "--host", "0.0.0.0"]);
        assert_eq!(cli.config, Some(PathBuf::from("config.yaml")));
    }

    #[test]
    fn nodes_drain_is_a_subcommand() {
        let cli = parse_ok(&["openclaw", "nodes", "drain", "w1"]);
        let Command::Nodes(n) = cli.command else { panic!() };
        assert!(matches!(n.action, Some(NodesAction::Drain(NodeTarget { ref node_id, .. })) if node_id == "w1"));
    }

    #[test]
    fn submit_params_are_json_when_they_parse() {
        let cli = parse_ok(&[
            "openclaw",
            "tasks",
            "submit",
            "--skill",
            "ocr",
            "--param",
            "n=3",
            "--param",
            "s=hello",
            "--timeout",
            "10m",
            "--priority",
            "high",
        ]);
        let Command::Tasks(TasksArgs { command: TasksCommand::Submit(s) }) = cli.command else { panic!() };
        assert_eq!(s.task.params[0], ("n".into(), serde_json::json!(3)));
        assert_eq!(s.task.params[1], ("s".into(), serde_json::json!("hello")));
        assert_eq!(s.task.timeout, Some(Duration::from_secs(600)));
        assert_eq!(s.task.priority, Some(Priority::High));
    }

    #[test]
    fn watch_and_logs_parse() {
        let cli = parse_ok(&["openclaw", "tasks", "watch", "--skill", "ocr", "--after", "12"]);
        let Command::Tasks(TasksArgs { command: TasksCommand::Watch(w) }) = cli.command else { panic!() };
        assert_eq!((w.skill.as_deref(), w.after), (Some("ocr"), Some(12)));
        let cli = parse_ok(&["openclaw", "tasks", "logs", "t1", "-f"]);
        let Command::Tasks(TasksArgs { command: TasksCommand::Logs(l) }) = cli.command else { panic!() };
        assert!(l.follow && l.task_id == "t1");
        let cli = parse_ok(&["openclaw", "nodes", "--watch", "w1"]);
        let Command::Nodes(n) = cli.command else { panic!() };
        assert!(n.watch && n.node_id.as_deref() == Some("w1"));
        assert!(parse(["openclaw", "nodes", "--watch", "--online"].map(OsString::from).to_vec()).is_err());
        // Regression (issue 17): `nodes --watch --after 0` was refused.
        let cli = parse_ok(&["openclaw", "nodes", "--watch", "--after", "0"]);
        let Command::Nodes(n) = cli.command else { panic!() };
        assert_eq!((n.watch, n.after), (true, Some(0)));
        assert!(parse(["openclaw", "nodes", "--after", "0"].map(OsString::from).to_vec()).is_err());
    }

    /// Issue 17: `--timeout` is the per-attempt limit; waiting has its own limit.
    #[test]
    fn waits_have_their_own_limit() {
        let cli =
            parse_ok(&["openclaw", "tasks", "submit", "--skill", "x", "--timeout", "90s", "--wait-timeout", "10m"]);
        let Command::Tasks(TasksArgs { command: TasksCommand::Submit(s) }) = cli.command else { panic!() };
        assert_eq!((s.task.timeout, s.wait_timeout), (Some(Duration::from_secs(90)), Some(Duration::from_secs(600))));
        for flag in ["--wait-timeout", "--timeout"] {
            let cli = parse_ok(&["openclaw", "tasks", "wait", "t1", flag, "5"]);
            let Command::Tasks(TasksArgs { command: TasksCommand::Wait(w) }) = cli.command else { panic!() };
            assert_eq!(w.wait_timeout, Some(Duration::from_secs(5)), "{flag}");
        }
    }

    #[test]
    fn openclaw_own_commands_get_a_hint() {
        let err = parse(["openclaw", "gateway"].map(OsString::from).to_vec()).unwrap_err();
        assert!(foreign_command_hint(&err).is_some_and(|h| h.contains("OpenClaw's own CLI")));
        let err = parse(["openclaw", "nodez"].map(OsString::from).to_vec()).unwrap_err();
        assert_eq!(foreign_command_hint(&err), None);
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for args in [
            vec!["openclaw", "tasks", "submit", "--skill", "x", "--priority", "urgent"],
            vec!["openclaw", "tasks", "submit", "--skill", "x", "--timeout", "soon"],
            vec!["openclaw", "tasks", "submit", "--skill", "x", "--param", "novalue"],
            vec!["openclaw", "coordinator", "--port", "70000"],
            vec!["openclaw", "tasks", "watch", "--after", "soon"],
            vec!["openclaw", "tasks", "logs"],
        ] {
            let err = parse(args.iter().map(OsString::from).collect()).unwrap_err();
            assert!(err.use_stderr(), "{args:?} should be a usage error");
        }
    }
}
