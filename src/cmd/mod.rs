//! One module per subcommand: the glue between parsed flags, the config, and the library.
//!
//! Servers (`coordinator`, `worker`, `dev`) run on a tokio runtime with the shutdown
//! token; local tools (`migrate`, `skills`) work on files; remote clients (`nodes`,
//! `health`, `tasks`, and `mcp`, the MCP server on stdio) talk to the coordinator's API
//! through [`crate::client`].

mod backup;
mod coordinator;
mod mcp;
mod migrate;
mod nodes;
pub mod output;
mod remote;
mod run;
mod schedules;
mod secrets;
#[cfg(windows)]
mod service;
mod skill_push;
mod skills;
mod tasks;
mod watch;
mod worker;

use std::process::ExitCode;

use crate::cli::{Cli, Command};
use crate::config::{self, FlagOverrides, Loaded};
use crate::{Exit, UsageError};

/// The program: parse arguments, run one subcommand, map the outcome to an exit code (see
/// [`Exit`]). Both executables call it.
pub fn main() -> ExitCode {
    // The worker runs this executable as the supervisor of each exec task; clap never
    // sees that invocation.
    if let Some(code) = crate::worker::supervisor::run_if_requested() {
        return code;
    }
    let args = crate::cli::args_from_invocation(std::env::args_os());
    let cli = match crate::cli::parse(args) {
        Ok(cli) => cli,
        Err(err) => {
            // clap prints help/version to stdout (exit 0) and usage errors to stderr (exit 2).
            let _ = err.print();
            if let Some(hint) = crate::cli::foreign_command_hint(&err) {
                eprintln!("{hint}");
            }
            return ExitCode::from(if err.use_stderr() { 2 } else { 0 });
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(err) => report(&err).into(),
    }
}

/// Prints an error that ends the program as `openclaw: …` on stderr and returns its exit
/// status. A closed stdout (`| head`) ends the command quietly. Errors quote the server and
/// the user: no raw control characters on the terminal.
fn report(err: &anyhow::Error) -> Exit {
    let exit = Exit::of(err);
    if exit != Exit::Ok {
        let message = format!("{err:#}");
        eprintln!(
            "{}: {}",
            crate::cli::program_name(std::env::args_os().next().as_ref()),
            output::clean_lines(&message)
        );
    }
    exit
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut flags = FlagOverrides::default();
    flags.set("log.level", "--log-level", cli.log_level.clone());
    flags.set("log.format", "--log-format", cli.log_format.clone());
    match cli.command {
        Command::Coordinator(args) => {
            flags.set("coordinator.host", "--host", args.host.clone());
            flags.set("coordinator.port", "--port", args.port);
            flags.set("storage.path", "--db-path", args.db_path.clone());
            flags.storage_url(args.storage_url.clone());
            let loaded = load(&cli.config, flags)?;
            server(&loaded, Role::Coordinator, coordinator::run(loaded.config.clone()))
        }
        Command::Migrate(args) => {
            flags.set("storage.path", "--db-path", args.db_path.clone());
            flags.storage_url(args.storage_url.clone());
            let loaded = load(&cli.config, flags)?;
            migrate::run(&loaded.config, &args)
        }
        Command::Worker(args) => {
            flags.set("worker.node_id", "--node-id", args.node_id.clone());
            flags.set("worker.coordinator_host", "--coordinator-host", args.coordinator_host.clone());
            flags.set("worker.coordinator_port", "--coordinator-port", args.coordinator_port);
            if !args.coordinator_urls.is_empty() {
                flags.set("worker.coordinator_urls", "--coordinator-url", Some(args.coordinator_urls.clone()));
            }
            if !args.skills_dir.is_empty() {
                flags.set("worker.skills_dir", "--skills-dir", Some(args.skills_dir.clone()));
            }
            flags.set("worker.max_concurrent_tasks", "--max-concurrent-tasks", args.max_concurrent_tasks);
            if !args.tags.is_empty() {
                flags.set("worker.tags", "--tag", Some(args.tags.clone()));
            }
            flags.set("worker.state_dir", "--state-dir", args.state_dir.clone());
            let loaded = load(&cli.config, flags)?;
            loaded.config.check_client_port("the worker")?;
            worker::check_skills_dirs(&loaded.config)?;
            server(&loaded, Role::Worker, worker::run(loaded.config.clone(), args.token))
        }
        Command::Dev(args) => {
            flags.set("coordinator.port", "--port", args.port);
            flags.set("storage.path", "--db-path", args.db_path.clone());
            if !args.skills_dir.is_empty() {
                flags.set("worker.skills_dir", "--skills-dir", Some(args.skills_dir.clone()));
            }
            flags.set("worker.node_id", "--node-id", args.node_id.clone());
            let mut loaded = load(&cli.config, flags)?;
            // A first try is read by a person: text logs on a terminal, unless asked otherwise.
            if loaded.origin("log.format") == "the built-in default"
                && std::io::IsTerminal::is_terminal(&std::io::stdout())
            {
                loaded.config.log.format = crate::config::LogFormat::Text;
            }
            worker::check_skills_dirs(&loaded.config)?;
            server(&loaded, Role::Coordinator, worker::dev(loaded.config.clone()))
        }
        Command::Skills(crate::cli::SkillsArgs { action: Some(action), .. }) => {
            let loaded = load(&cli.config, flags)?;
            client(skill_push::run(&loaded.config, action))
        }
        Command::Skills(args) if args.cluster => {
            let loaded = load(&cli.config, flags)?;
            client(skills::cluster(&loaded.config, args))
        }
        Command::Skills(args) => {
            if !args.skills_dir.is_empty() {
                flags.set("worker.skills_dir", "--skills-dir", Some(args.skills_dir.clone()));
            }
            let loaded = load(&cli.config, flags)?;
            worker::check_skills_dirs(&loaded.config)?;
            install_crypto();
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(skills::run(&loaded.config, &args))
        }
        Command::Nodes(args) => {
            let loaded = load(&cli.config, flags)?;
            client(nodes::nodes(&loaded.config, args))
        }
        Command::Health(args) => {
            let loaded = load(&cli.config, flags)?;
            client(nodes::health(&loaded.config, args))
        }
        Command::Tasks(args) => {
            let loaded = load(&cli.config, flags)?;
            client(tasks::run(&loaded.config, args.command))
        }
        Command::Schedules(args) => {
            let loaded = load(&cli.config, flags)?;
            client(schedules::run(&loaded.config, args.command))
        }
        Command::Run(args) => {
            let loaded = load(&cli.config, flags)?;
            client(run::run(&loaded.config, args))
        }
        #[cfg(windows)]
        Command::Service(args) => {
            let loaded = load(&cli.config, flags)?;
            Ok(service::run(loaded.config, cli.config.clone(), args)?.into())
        }
        Command::Completions(args) => {
            use clap::CommandFactory;
            let name = crate::cli::program_name(std::env::args_os().next().as_ref());
            let mut script = Vec::new();
            clap_complete::generate(args.shell, &mut crate::cli::Cli::command(), name, &mut script);
            output::write_stdout(format_args!("{}", String::from_utf8_lossy(&script)), false)?;
            Ok(Exit::Ok.into())
        }
        Command::Backup(args) => {
            let loaded = load(&cli.config, flags)?;
            client(backup::run(&loaded.config, args))
        }
        Command::Mcp(args) => {
            let loaded = load(&cli.config, flags)?;
            client(mcp::run(&loaded.config, args))
        }
        Command::Secrets(args) => {
            let loaded = load(&cli.config, flags)?;
            client(secrets::run(&loaded.config, args.action))
        }
    }
}

/// Loads the config (with every transport's keys); a config error is a usage error (exit 2).
fn load(file: &Option<std::path::PathBuf>, flags: FlagOverrides) -> Result<Loaded, UsageError> {
    config::load(file.as_deref(), flags, crate::transport::CONFIG)
}

/// Which server runs, for the module of its fatal log line.
#[derive(Clone, Copy)]
enum Role {
    Coordinator,
    Worker,
}

/// Runs a server future on a multi-threaded runtime with logging set up. A fatal error is
/// logged in the configured format (so `jq`, `grep '"level":"ERROR"'` and log files see
/// it), and printed as `openclaw: …` on stderr only when stderr is not where that log line
/// went: a person at a terminal reads it once.
fn server<F>(loaded: &Loaded, role: Role, fut: F) -> anyhow::Result<ExitCode>
where
    F: std::future::Future<Output = anyhow::Result<()>>,
{
    let _guard = crate::logging::init(&loaded.config.log)?;
    install_crypto();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = runtime.block_on(fut);
    // A blocking call still waiting on an unreachable database must not keep the process
    // alive once the server has stopped (a leader that stepped down must exit).
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    let Err(e) = result else {
        return Ok(Exit::Ok.into());
    };
    if !e.is::<crate::Logged>() {
        let message = format!("{e:#}");
        match role {
            Role::Coordinator => {
                tracing::error!(target: "openclaw::coordinator", error = %message, "stopping: {message}")
            }
            Role::Worker => tracing::error!(target: "openclaw::worker", error = %message, "stopping: {message}"),
        }
    }
    if crate::logging::stderr_is_the_log() {
        return Ok(Exit::of(&e).into());
    }
    Ok(report(&e).into())
}

/// Runs a client future on a small runtime (no logging: clients print).
fn client<F>(fut: F) -> anyhow::Result<ExitCode>
where
    F: std::future::Future<Output = anyhow::Result<Exit>>,
{
    install_crypto();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    Ok(runtime.block_on(fut)?.into())
}

/// rustls needs one process-wide crypto provider; reqwest panics without it.
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
