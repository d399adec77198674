//! Ctrl+C and SIGTERM become one [`CancellationToken`] that every server loop awaits.
//!
//! The first signal cancels the token: servers stop accepting and wind down. A second
//! signal exits at once (status 130), for when a graceful stop takes too long.

use tokio_util::sync::CancellationToken;

/// Returns a token cancelled by the first Ctrl+C or SIGTERM. Must be called inside a tokio
/// runtime; the listener lives until the process exits.
pub fn on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!(target: "openclaw::shutdown", "signal received, shutting down (send it again to exit at once)");
        trigger.cancel();
        wait_for_signal().await;
        tracing::warn!(target: "openclaw::shutdown", "second signal: exiting now");
        std::process::exit(130);
    });
    token
}

/// Resolves on Ctrl+C or SIGTERM (for commands that run until interrupted).
#[cfg(unix)]
pub async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Resolves on Ctrl+C.
#[cfg(not(unix))]
pub async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
