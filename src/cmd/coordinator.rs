//! `openclaw coordinator`: bind, start, serve until Ctrl+C / SIGTERM.

use crate::config::Config;

pub async fn run(config: Config) -> anyhow::Result<()> {
    let shutdown = crate::shutdown::on_signal();
    let listener = crate::coordinator::bind(&config.coordinator.host, config.coordinator.port).await?;
    crate::coordinator::run(listener, config, shutdown, crate::transport::COORDINATOR).await
}
