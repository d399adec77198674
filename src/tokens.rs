//! Token files, shared by every role: the coordinator writes `admin.token`,
//! `worker.token` and `tasks.token` beside its database on first start (mode 0600); the
//! CLI and a worker on the same machine read them from there.
//!
//! Invariant: a token file holds one token and a newline; an empty or missing file means
//! "no token here" (never an empty token).

use std::path::{Path, PathBuf};

use crate::config::Config;

/// The admin token's file name (all operations).
pub const ADMIN_TOKEN_FILE: &str = "admin.token";
/// The worker join token's file name (registration only).
pub const WORKER_TOKEN_FILE: &str = "worker.token";
/// The tasks token's file name (submit and read; for agents and MCP clients).
pub const TASKS_TOKEN_FILE: &str = "tasks.token";

/// Where a token file lives for a config: beside `storage.path`.
pub fn token_path(config: &Config, file: &str) -> PathBuf {
    config.data_dir().join(file)
}

/// Reads a token file (trimmed); `None` when it does not exist or is empty.
pub fn read_token_file(path: &Path) -> std::io::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text.trim().to_string()).filter(|t| !t.is_empty())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes a token file readable by its owner only (0600 on Unix), synced to disk.
pub fn write_token_file(path: &Path, token: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    std::io::Write::write_all(&mut file, format!("{token}\n").as_bytes())?;
    file.sync_all()
}
