//! Who this worker is across restarts: its node secret, kept on disk, and the lock that
//! makes it the only worker with its node id on this machine.
//!
//! The lock is an OS file lock on `<state_dir>/worker-<node_id>.lock` (holding the PID),
//! taken at start and held until exit: a second worker with the same id on this machine
//! stops at once, naming the first; a crashed one leaves no stale lock. The secret from the
//! last registration lives in `<state_dir>/worker-<node_id>.secret` (mode 0600) so that a
//! restarted worker registers again *as itself* — a live node id can only be taken over
//! with its secret, never with the join token alone.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::tokens::{read_token_file, write_token_file};

/// The claim on a node id on this machine; dropping it releases the lock.
#[derive(Debug)]
pub struct Identity {
    secret_path: PathBuf,
    _lock: File,
}

impl Identity {
    /// Takes the lock for `node_id` in `dir` (created 0700 if missing), or says who has it.
    pub fn claim(dir: &Path, node_id: &str) -> anyhow::Result<Identity> {
        let io = |what: &str, path: &Path, e: std::io::Error| {
            anyhow::anyhow!(
                "cannot {what} {}: {e} (set worker.state_dir to a folder this user can write)",
                path.display()
            )
        };
        if !dir.exists() {
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            builder.create(dir).map_err(|e| io("create", dir, e))?;
        }
        let lock_path = dir.join(format!("worker-{node_id}.lock"));
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&lock_path).map_err(|e| io("open", &lock_path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let pid = file.read_to_string(&mut text).ok().and_then(|_| text.trim().parse::<u32>().ok());
                anyhow::bail!(
                    "another worker with node id `{node_id}` is already running on this machine{} (it holds {}); stop it first, or give this one its own --node-id",
                    pid.map(|p| format!(" (PID {p})")).unwrap_or_default(),
                    lock_path.display()
                );
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io("lock", &lock_path, e)),
        }
        let write_pid = |f: &mut File| -> std::io::Result<()> {
            f.set_len(0)?;
            f.seek(SeekFrom::Start(0))?;
            writeln!(f, "{}", std::process::id())?;
            f.flush()
        };
        write_pid(&mut file).map_err(|e| io("write", &lock_path, e))?;
        Ok(Identity { secret_path: dir.join(format!("worker-{node_id}.secret")), _lock: file })
    }

    /// The secret of the last registration, if one was kept.
    pub fn secret(&self) -> Option<String> {
        read_token_file(&self.secret_path).ok().flatten()
    }

    /// Keeps the secret of a new registration (a failure only costs a takeover later).
    pub fn keep(&self, secret: &str) {
        if let Err(e) = write_token_file(&self.secret_path, secret) {
            tracing::warn!(target: "openclaw::worker", file = %self.secret_path.display(), error = %e, "cannot keep the node secret; after a restart this worker must wait for its node to go offline before it can register again");
        }
    }

    /// Forgets a secret the coordinator no longer knows.
    pub fn forget(&self) {
        let _ = std::fs::remove_file(&self.secret_path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_claim_per_node_id_and_the_secret_survives() {
        let dir = tempfile::tempdir().unwrap();
        let first = Identity::claim(dir.path(), "w1").unwrap();
        let err = Identity::claim(dir.path(), "w1").unwrap_err().to_string();
        assert!(err.contains("`w1`") && err.contains(&format!("PID {}", std::process::id())), "{err}");
        Identity::claim(dir.path(), "w2").expect("another id is free");
        assert_eq!(first.secret(), None);
        first.keep("s3cret");
        drop(first);
        let again = Identity::claim(dir.path(), "w1").expect("free again after drop");
        assert_eq!(again.secret().as_deref(), Some("s3cret"));
        again.forget();
        assert_eq!(again.secret(), None);
    }
}
