//! `openclaw-cluster service install|uninstall|run` (Windows only): the worker as a Windows
//! service, managed by the Service Control Manager.
//!
//! `install` registers a service that runs `openclaw-cluster.exe -c CONFIG service run`,
//! started automatically at boot; `run` is what the SCM starts: it hands control to the
//! SCM's dispatcher, and the service's main runs the worker until the SCM says Stop, which
//! takes the same graceful path as Ctrl+C elsewhere (running tasks may finish). A service has
//! no console: logs go to `log.dir` (default `%ProgramData%\openclaw-cluster\logs`).

use std::ffi::OsString;
use std::sync::OnceLock;
use std::time::Duration;

use windows_service::service::{
    ServiceAccess, ServiceControl, ServiceControlAccept, ServiceErrorControl, ServiceExitCode, ServiceInfo,
    ServiceStartType, ServiceState, ServiceStatus, ServiceType,
};
use windows_service::service_control_handler::{self, ServiceControlHandlerResult};
use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};
use windows_service::{define_windows_service, service_dispatcher};

use crate::Exit;
use crate::cli::{ServiceAction, ServiceArgs};
use crate::config::Config;

/// The config the SCM's thread runs the worker with (set before the dispatcher starts).
static CONFIG: OnceLock<Config> = OnceLock::new();

pub fn run(config: Config, config_file: Option<std::path::PathBuf>, args: ServiceArgs) -> anyhow::Result<Exit> {
    match args.action {
        ServiceAction::Install => install(&args.name, config_file),
        ServiceAction::Uninstall => uninstall(&args.name),
        ServiceAction::Run => {
            let mut config = config;
            if config.log.dir.is_none() {
                let base = std::env::var_os("ProgramData").map(std::path::PathBuf::from).unwrap_or_else(|| ".".into());
                config.log.dir = Some(base.join("openclaw-cluster").join("logs"));
            }
            let _ = CONFIG.set(config);
            service_dispatcher::start(&args.name, ffi_service_main).map_err(|e| {
                anyhow::anyhow!(
                    "cannot start as the service `{}` (is this run by the Service Control Manager?): {e}",
                    args.name
                )
            })?;
            Ok(Exit::Ok)
        }
    }
}

fn install(name: &str, config_file: Option<std::path::PathBuf>) -> anyhow::Result<Exit> {
    let manager = ServiceManager::local_computer(
        None::<&str>,
        ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE,
    )
    .map_err(|e| {
        anyhow::anyhow!("cannot open the Service Control Manager (run this in an administrator PowerShell): {e}")
    })?;
    let mut arguments: Vec<OsString> = Vec::new();
    if let Some(file) = config_file {
        let file = std::path::absolute(&file)?;
        arguments.extend(["-c".into(), file.into_os_string()]);
    }
    arguments.extend(["service".into(), "run".into(), "--name".into(), name.into()]);
    let info = ServiceInfo {
        name: name.into(),
        display_name: "openclaw-cluster worker".into(),
        service_type: ServiceType::OWN_PROCESS,
        start_type: ServiceStartType::AutoStart,
        error_control: ServiceErrorControl::Normal,
        executable_path: std::env::current_exe()?,
        launch_arguments: arguments,
        dependencies: vec![],
        account_name: None,
        account_password: None,
    };
    let service = manager.create_service(&info, ServiceAccess::CHANGE_CONFIG).map_err(|e| {
        anyhow::anyhow!("cannot install the service `{name}` (does it exist already? `sc.exe query {name}`): {e}")
    })?;
    let _ = service.set_description("Runs this machine's OpenClaw skills for an openclaw cluster (the worker).");
    println!("installed the service `{name}`; start it with: Start-Service {name}");
    Ok(Exit::Ok)
}

fn uninstall(name: &str) -> anyhow::Result<Exit> {
    let manager = ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CONNECT).map_err(|e| {
        anyhow::anyhow!("cannot open the Service Control Manager (run this in an administrator PowerShell): {e}")
    })?;
    let service = manager
        .open_service(name, ServiceAccess::DELETE)
        .map_err(|e| anyhow::anyhow!("no service `{name}` to remove: {e}"))?;
    service.delete().map_err(|e| anyhow::anyhow!("cannot remove the service `{name}`: {e}"))?;
    println!("removed the service `{name}` (it stops when its last handle closes)");
    Ok(Exit::Ok)
}

define_windows_service!(ffi_service_main, service_main);

fn service_main(arguments: Vec<OsString>) {
    let name =
        arguments.first().map(|a| a.to_string_lossy().into_owned()).unwrap_or_else(|| "openclaw-cluster-worker".into());
    let _ = serve(&name);
}

fn status(state: ServiceState, accept: ServiceControlAccept, code: u32) -> ServiceStatus {
    ServiceStatus {
        service_type: ServiceType::OWN_PROCESS,
        current_state: state,
        controls_accepted: accept,
        exit_code: ServiceExitCode::Win32(code),
        checkpoint: 0,
        wait_hint: Duration::from_secs(60),
        process_id: None,
    }
}

/// Runs the worker until the SCM says Stop.
fn serve(name: &str) -> windows_service::Result<()> {
    let Some(config) = CONFIG.get().cloned() else { return Ok(()) };
    let shutdown = tokio_util::sync::CancellationToken::new();
    let stop = shutdown.clone();
    let handle = service_control_handler::register(name, move |control| match control {
        ServiceControl::Stop | ServiceControl::Shutdown => {
            stop.cancel();
            ServiceControlHandlerResult::NoError
        }
        ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
        _ => ServiceControlHandlerResult::NotImplemented,
    })?;
    handle.set_service_status(status(
        ServiceState::Running,
        ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN,
        0,
    ))?;
    let outcome = (|| -> anyhow::Result<()> {
        let _guard = crate::logging::init(&config.log)?;
        super::install_crypto();
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        let token = super::worker::join_token(&config, None);
        runtime.block_on(crate::worker::run(config, token, shutdown, crate::transport::WORKER))
    })();
    if let Err(e) = &outcome {
        tracing::error!(target: "openclaw::worker", error = %format!("{e:#}"), "the worker service stopped on an error");
    }
    handle.set_service_status(status(
        ServiceState::Stopped,
        ServiceControlAccept::empty(),
        u32::from(outcome.is_err()),
    ))?;
    Ok(())
}
