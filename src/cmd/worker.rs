//! `openclaw worker` and `openclaw dev`.

use crate::config::Config;
use crate::tokens::{WORKER_TOKEN_FILE, read_token_file, token_path};

/// The join token: the flag or OPENCLAW_TOKEN, else `worker.token` in the config, else
/// the worker.token file beside storage.path (so a worker on the coordinator's machine
/// needs no token handling).
pub fn join_token(config: &Config, flag: Option<String>) -> Option<String> {
    flag.or_else(|| config.worker.token.clone())
        .or_else(|| read_token_file(&token_path(config, WORKER_TOKEN_FILE)).ok().flatten())
        .filter(|t| !t.trim().is_empty())
}

/// What a worker process sets up before its first task: exec commands under our own
/// supervisor, a process its skills cannot look into, and (`check_admin_token`) a WARN
/// when they could read the coordinator's admin token. `dev` shares the coordinator's
/// folder on purpose and does not warn about it.
fn prepare_worker_process(config: &Config, check_admin_token: bool) {
    crate::worker::runner::exec::supervise_with_this_executable();
    crate::worker::runner::exec::protect_worker_process();
    if check_admin_token {
        crate::worker::runner::exec::warn_if_admin_token_readable(config);
    }
}

/// Refuses a worker none of whose skills folders exists (it would join with no skills and
/// no warning); WARNs about the missing ones when some exist.
pub fn check_skills_dirs(config: &Config) -> Result<(), crate::UsageError> {
    let dirs = &config.worker.skills_dir.0;
    let missing: Vec<String> = dirs.iter().filter(|d| !d.is_dir()).map(|d| d.display().to_string()).collect();
    if missing.len() == dirs.len() {
        return Err(crate::UsageError(format!(
            "no skills folder exists: {} (worker.skills_dir / --skills-dir); create it, or point --skills-dir at the folder holding your skills",
            missing.join(", ")
        )));
    }
    for d in missing {
        eprintln!(
            "openclaw: warning: skills folder {d} does not exist (worker.skills_dir); skills put there later are found without a restart"
        );
    }
    Ok(())
}

pub async fn run(config: Config, token: Option<String>) -> anyhow::Result<()> {
    let shutdown = crate::shutdown::on_signal();
    prepare_worker_process(&config, true);
    let token = join_token(&config, token);
    crate::worker::run(config, token, shutdown, crate::transport::WORKER).await
}

/// A coordinator on 127.0.0.1 and one worker in this process.
pub async fn dev(mut config: Config) -> anyhow::Result<()> {
    // Ctrl+C stops the worker first; the coordinator stops after the worker has left.
    let shutdown = crate::shutdown::on_signal();
    let coordinator_stop = tokio_util::sync::CancellationToken::new();
    config.coordinator.host = "127.0.0.1".into();
    let listener = crate::coordinator::bind(&config.coordinator.host, config.coordinator.port).await?;
    let port = listener.local_addr()?.port();
    let coordinator =
        crate::coordinator::Coordinator::start(config.clone(), coordinator_stop.clone(), crate::transport::COORDINATOR)
            .await?;
    let server = tokio::spawn(coordinator.serve(listener));
    config.worker.coordinator_host = Some("127.0.0.1".into());
    config.worker.coordinator_port = Some(port);
    let token = join_token(&config, None);
    prepare_worker_process(&config, false);
    let me = this_program();
    tracing::info!(
        target: "openclaw::worker",
        url = %format!("http://127.0.0.1:{port}"),
        admin_token_file = %token_path(&config, crate::tokens::ADMIN_TOKEN_FILE).display(),
        "dev cluster on http://127.0.0.1:{port} (the dashboard too): in another terminal here, try `{me} nodes` and `{me} tasks submit --skill <name> --wait`"
    );
    let worker = crate::worker::run(config, token, shutdown.clone(), crate::transport::WORKER).await;
    coordinator_stop.cancel();
    let served = server.await?;
    worker.and(served)
}

/// How to run this program from the current folder, for hints: its path when it lives below
/// the folder (`target/release/openclaw-cluster` after `cargo run`), else the name it was
/// called by.
fn this_program() -> String {
    let called = crate::cli::program_name(std::env::args_os().next().as_ref());
    let (Ok(exe), Ok(cwd)) = (std::env::current_exe(), std::env::current_dir()) else {
        return called;
    };
    match exe.strip_prefix(&cwd) {
        Ok(relative) => relative.display().to_string(),
        Err(_) => called,
    }
}
