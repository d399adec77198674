//! Token files, shared by every role: the coordinator writes `admin.token`,
//! `worker.token` and `tasks.token` beside its database on first start (mode 0600); the
//! CLI and a worker on the same machine read them from there.
//!
//! Tokens stay home: beside them the coordinator records the address it listens on
//! (`coordinator.address`, e.g. `http://0.0.0.0:8888`, rewritten at every start), and a
//! client sends a token it found in a file only to that coordinator ([`reaches`]): the
//! recorded address itself, or a loopback name for a coordinator listening on every
//! address or on loopback. Another port, another host or another scheme is another
//! coordinator, which gets the token only when the user passes it explicitly.
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

/// The file beside the tokens naming the address the coordinator listens on.
pub const ADDRESS_FILE: &str = "coordinator.address";

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

/// Records the URL the coordinator listens on (`scheme://ip:port`) in `dir`, replacing the
/// file whole (write, sync, rename) so that a reader sees the old address or the new one.
pub fn write_address_file(dir: &Path, url: &str) -> std::io::Result<()> {
    let path = dir.join(ADDRESS_FILE);
    let next = dir.join(format!("{ADDRESS_FILE}.next"));
    let mut file = std::fs::File::create(&next)?;
    std::io::Write::write_all(&mut file, format!("{url}\n").as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&next, &path)
}

/// The URL recorded in `dir`, if any.
pub fn read_address_file(dir: &Path) -> std::io::Result<Option<String>> {
    read_token_file(&dir.join(ADDRESS_FILE))
}

/// Whether `target` is the coordinator that listens on `recorded`: the same scheme and port,
/// and the same host, or a loopback name when it listens on every address (0.0.0.0, ::) or
/// on loopback. A host name or another address of this machine is not known to be it.
pub fn reaches(recorded: &reqwest::Url, target: &reqwest::Url) -> bool {
    if recorded.scheme() != target.scheme() || recorded.port_or_known_default() != target.port_or_known_default() {
        return false;
    }
    let (Some(listens), Some(host)) = (recorded.host_str(), target.host_str()) else { return false };
    let ipv4_loopback = host.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback());
    host == listens
        || match listens {
            "0.0.0.0" => host == "localhost" || ipv4_loopback,
            "[::]" => host == "localhost" || host == "[::1]" || ipv4_loopback,
            "127.0.0.1" | "[::1]" => host == "localhost",
            _ => false,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_found_token_goes_only_to_the_coordinator_that_wrote_it() {
        let url = |s: &str| reqwest::Url::parse(s).unwrap();
        let yes = |r: &str, t: &str| assert!(reaches(&url(r), &url(t)), "{t} is the coordinator on {r}");
        let no = |r: &str, t: &str| assert!(!reaches(&url(r), &url(t)), "{t} is not the coordinator on {r}");
        yes("http://0.0.0.0:8888", "http://127.0.0.1:8888");
        yes("http://0.0.0.0:8888", "http://localhost:8888/");
        yes("http://0.0.0.0:8888", "http://127.0.0.2:8888");
        yes("http://[::]:8888", "http://[::1]:8888");
        yes("http://127.0.0.1:43211", "http://localhost:43211");
        yes("http://192.168.1.5:8888", "http://192.168.1.5:8888");
        yes("https://0.0.0.0:443", "https://localhost");
        no("http://0.0.0.0:8888", "http://127.0.0.1:8889");
        no("http://0.0.0.0:8888", "https://127.0.0.1:8888");
        no("http://0.0.0.0:8888", "http://10.0.0.9:8888");
        no("http://0.0.0.0:8888", "http://coordinator.example:8888");
        no("http://127.0.0.1:8888", "http://127.0.0.2:8888");
        no("http://192.168.1.5:8888", "http://127.0.0.1:8888");
        no("http://[::1]:8888", "http://127.0.0.1:8888");
    }

    #[test]
    fn the_address_file_is_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_address_file(dir.path()).unwrap(), None);
        write_address_file(dir.path(), "http://0.0.0.0:8888").unwrap();
        write_address_file(dir.path(), "http://127.0.0.1:9000").unwrap();
        assert_eq!(read_address_file(dir.path()).unwrap().as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file is left");
    }
}
