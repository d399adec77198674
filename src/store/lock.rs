//! One process per database: an exclusive OS file lock on `<database>.lock`.
//!
//! The lock is the kernel's (flock / LockFileEx through `std::fs::File::try_lock`), so a
//! killed process never leaves a stale lock: the kernel drops it with the process. The
//! holder writes its PID into the file so that the loser can name it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Held while a coordinator or `migrate` uses the database; dropping it releases the lock.
#[derive(Debug)]
pub struct StoreLock {
    path: PathBuf,
    _file: File,
}

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "the database is in use: {path} is locked by another openclaw process{pid}; only one coordinator (or migrate) may use a database at a time — stop that process first",
        pid = match .pid { Some(p) => format!(" (PID {p})"), None => String::new() }
    )]
    Held { path: PathBuf, pid: Option<u32> },
    #[error("cannot create lock file {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

impl StoreLock {
    /// The lock file for a database path.
    pub fn path_for(db: &Path) -> PathBuf {
        let mut name = db.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        name.push(".lock");
        db.with_file_name(name)
    }

    /// Takes the lock at once or fails naming the holder.
    pub fn acquire(db: &Path) -> Result<StoreLock, LockError> {
        let path = Self::path_for(db);
        let io = |source| LockError::Io { path: path.clone(), source };
        let mut file = open_lock_file(&path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let pid = file.read_to_string(&mut text).ok().and_then(|_| text.trim().parse().ok());
                return Err(LockError::Held { path, pid });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(StoreLock { path, _file: file })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(unix)]
fn open_lock_file(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600).open(path)
}

#[cfg(not(unix))]
fn open_lock_file(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_in_the_same_process_is_refused_and_names_the_pid() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("cluster.db");
        let first = StoreLock::acquire(&db).unwrap();
        assert_eq!(first.path(), dir.path().join("cluster.db.lock"));
        let err = StoreLock::acquire(&db).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("cluster.db.lock"), "{text}");
        assert!(text.contains(&format!("PID {}", std::process::id())), "{text}");
        drop(first);
        StoreLock::acquire(&db).expect("free again after drop");
    }
}
