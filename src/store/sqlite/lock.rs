//! One process per database file, whatever path names it.
//!
//! Two locks, both the kernel's, so a killed process never leaves a stale one:
//! 1. `<canonical database path>.lock`, taken with `std::fs::File::try_lock`, holding the
//!    holder's PID so that the loser can name it. The path is canonical (symbolic links,
//!    `.` and `..` resolved), so every path that reaches the file through links and
//!    relative names meets the same lock file.
//! 2. The database file itself, which also catches a hard link (another name for the same
//!    file, with its own lock file — and, for SQLite, its own `-wal`/`-shm` files, so two
//!    writers would corrupt it). How depends on the platform, because SQLite locks byte
//!    ranges of that same file and nothing may disturb those locks:
//!    - Linux: `flock(LOCK_EX)` on the database file. On Linux, flock locks and the POSIX
//!      (`fcntl`) byte-range locks SQLite takes are independent, so SQLite's locking in this
//!      process and in others is untouched; and a flock belongs to our open file
//!      description, so SQLite closing its own descriptors of the file cannot drop it (a
//!      POSIX lock of ours would be dropped then). The loser finds the holder's PID in
//!      `/proc/locks`. (Over NFS the kernel emulates flock with POSIX locks; SQLite does not
//!      support network file systems anyway.)
//!    - Windows: `LockFileEx` on one byte at offset 2^62: far beyond any database page and
//!      away from SQLite's own lock bytes (at 1 GiB). Windows byte-range locks are
//!      mandatory, so locking the whole file (what `File::try_lock` does) would make
//!      SQLite's own reads and writes fail; one unused byte blocks nothing but a second lock.
//!    - macOS and the BSDs: flock and POSIX locks see each other there (their flock(2) says
//!      to use one kind per process), so a flock on the database would block SQLite's own
//!      locks, and a POSIX lock would vanish when SQLite closes any descriptor of the file.
//!      Neither is safe: the database file is not locked, a hard link under another name is
//!      not detected, and a database with more than one link gets a WARN.
//!
//! Invariant: the locks are taken before this process opens the database with SQLite and
//! released (dropped) after.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Held while a coordinator or `migrate` uses the database; dropping it releases the lock.
#[derive(Debug)]
pub struct StoreLock {
    path: PathBuf,
    _file: File,
    /// The database file, held open (and locked where that is safe) for the lock's life.
    _database: File,
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
    /// The lock file for a database path (canonical when the database exists).
    pub fn path_for(db: &Path) -> PathBuf {
        let db = std::fs::canonicalize(db).unwrap_or_else(|_| db.to_path_buf());
        let mut name = db.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        name.push(".lock");
        db.with_file_name(name)
    }

    /// Takes both locks at once or fails naming the holder. Creates an empty database file
    /// (0600) when there is none, so that it can be locked before SQLite opens it.
    pub fn acquire(db: &Path) -> Result<StoreLock, LockError> {
        let database = open_database(db).map_err(|source| LockError::Io { path: db.to_path_buf(), source })?;
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
        let canonical = std::fs::canonicalize(db).unwrap_or_else(|_| db.to_path_buf());
        match platform::lock_database(&database, &canonical) {
            Ok(()) => {}
            Err(Refused::Held { pid }) => return Err(LockError::Held { path: canonical, pid }),
            Err(Refused::Io(source)) => return Err(LockError::Io { path: canonical, source }),
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(StoreLock { path, _file: file, _database: database })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(unix)]
fn private() -> OpenOptions {
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = OpenOptions::new();
    options.mode(0o600);
    options
}

#[cfg(not(unix))]
fn private() -> OpenOptions {
    OpenOptions::new()
}

fn open_lock_file(path: &Path) -> std::io::Result<File> {
    private().read(true).write(true).create(true).truncate(false).open(path)
}

/// The database file, created empty when missing (SQLite takes an empty file as a new
/// database). Opened for writing too: Windows needs a writable handle to lock it.
fn open_database(path: &Path) -> std::io::Result<File> {
    private().read(true).write(true).create(true).truncate(false).open(path)
}

/// Why the database file itself could not be locked.
#[cfg_attr(not(any(target_os = "linux", windows)), allow(dead_code))]
enum Refused {
    Held { pid: Option<u32> },
    Io(std::io::Error),
}

#[cfg(target_os = "linux")]
mod platform {
    use super::Refused;
    use std::fs::File;
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::io::AsRawFd;
    use std::path::Path;

    /// flock on the database file (see the module's notes on why flock is safe here).
    pub fn lock_database(file: &File, _path: &Path) -> Result<(), Refused> {
        // SAFETY: flock on a descriptor we own, for as long as the File lives.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(Refused::Io(err));
        }
        let pid =
            file.metadata().ok().and_then(|m| holder(&std::fs::read_to_string("/proc/locks").ok()?, m.dev(), m.ino()));
        Err(Refused::Held { pid })
    }

    /// The PID holding a flock on the file `(dev, ino)`, from the text of `/proc/locks`
    /// (`1: FLOCK  ADVISORY  WRITE 1234 fe:00:5661169 0 EOF`; device numbers in hex).
    pub fn holder(locks: &str, dev: u64, ino: u64) -> Option<u32> {
        // glibc's encoding of st_dev, as the kernel's MAJOR/MINOR print it.
        let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
        let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
        locks.lines().find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // Waiters are listed as "1: -> FLOCK ..."; they hold nothing.
            if fields.get(1) != Some(&"FLOCK") {
                return None;
            }
            let mut id = fields.get(5)?.split(':');
            let (maj, min, inode) = (id.next()?, id.next()?, id.next()?);
            let same = u64::from_str_radix(maj, 16).ok()? == major
                && u64::from_str_radix(min, 16).ok()? == minor
                && inode.parse::<u64>().ok()? == ino;
            if same { fields.get(4)?.parse().ok().filter(|p| *p != 0) } else { None }
        })
    }
}

#[cfg(windows)]
mod platform {
    use super::Refused;
    use std::fs::File;
    use std::os::windows::io::AsRawHandle;
    use std::path::Path;

    use windows_sys::Win32::Foundation::{ERROR_LOCK_VIOLATION, HANDLE};
    use windows_sys::Win32::Storage::FileSystem::{LOCKFILE_EXCLUSIVE_LOCK, LOCKFILE_FAIL_IMMEDIATELY, LockFileEx};
    use windows_sys::Win32::System::IO::OVERLAPPED;

    /// An exclusive lock on the one byte at offset 2^62 (see the module's notes).
    pub fn lock_database(file: &File, _path: &Path) -> Result<(), Refused> {
        let mut at = OVERLAPPED::default();
        at.Anonymous.Anonymous.Offset = 0;
        at.Anonymous.Anonymous.OffsetHigh = 1 << 30;
        // SAFETY: a valid handle owned by `file`; `at` outlives the call, which completes
        // at once (FAIL_IMMEDIATELY on a handle not opened for overlapped I/O).
        let ok = unsafe {
            LockFileEx(
                file.as_raw_handle() as HANDLE,
                LOCKFILE_EXCLUSIVE_LOCK | LOCKFILE_FAIL_IMMEDIATELY,
                0,
                1,
                0,
                &mut at,
            )
        };
        if ok != 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(ERROR_LOCK_VIOLATION as i32) {
            return Err(Refused::Held { pid: None });
        }
        Err(Refused::Io(err))
    }
}

#[cfg(not(any(target_os = "linux", windows)))]
mod platform {
    use super::Refused;
    use std::fs::File;
    use std::path::Path;

    /// Not locked (see the module's notes); a second name for the file is only warned about.
    pub fn lock_database(file: &File, path: &Path) -> Result<(), Refused> {
        use std::os::unix::fs::MetadataExt;
        let links = file.metadata().map(|m| m.nlink()).unwrap_or(1);
        if links > 1 {
            tracing::warn!(target: "openclaw::store", path = %path.display(), links, "the database file has other names (hard links): a coordinator started on another name would not be stopped by the lock on this platform; remove the extra links");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_in_the_same_process_is_refused_and_names_the_pid() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("cluster.db");
        let first = StoreLock::acquire(&db).unwrap();
        let canonical_dir = std::fs::canonicalize(dir.path()).unwrap();
        assert_eq!(first.path(), canonical_dir.join("cluster.db.lock"));
        let err = StoreLock::acquire(&db).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("cluster.db.lock"), "{text}");
        assert!(text.contains(&format!("PID {}", std::process::id())), "{text}");
        drop(first);
        StoreLock::acquire(&db).expect("free again after drop");
    }

    /// Regression (issue 14): the lock was keyed by the path given, so a symbolic link to
    /// the same database got a lock of its own.
    #[cfg(unix)]
    #[test]
    fn a_symbolic_link_meets_the_same_lock() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("cluster.db");
        let _first = StoreLock::acquire(&db).unwrap();
        let other = dir.path().join("elsewhere");
        std::fs::create_dir(&other).unwrap();
        std::os::unix::fs::symlink(&db, other.join("link.db")).unwrap();
        let err = StoreLock::acquire(&other.join("link.db")).unwrap_err().to_string();
        assert!(err.contains("cluster.db.lock") && err.contains(&format!("PID {}", std::process::id())), "{err}");
    }

    /// A hard link has its own lock file; the lock on the database file itself stops it.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_hard_link_is_refused_by_the_lock_on_the_database_file() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("cluster.db");
        let _first = StoreLock::acquire(&db).unwrap();
        let other = dir.path().join("elsewhere");
        std::fs::create_dir(&other).unwrap();
        std::fs::hard_link(&db, other.join("hard.db")).unwrap();
        let err = StoreLock::acquire(&other.join("hard.db")).unwrap_err().to_string();
        assert!(err.contains("hard.db") && err.contains(&format!("PID {}", std::process::id())), "{err}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn proc_locks_lines_name_the_holder() {
        let text = "1: FLOCK  ADVISORY  WRITE 30755 fe:00:5661169 0 EOF\n2: -> FLOCK  ADVISORY  WRITE 999 fe:00:42 0 EOF\n3: FLOCK  ADVISORY  WRITE 4321 fe:00:42 0 EOF\n";
        let dev = (0xfe << 8) as u64;
        assert_eq!(platform::holder(text, dev, 42), Some(4321));
        assert_eq!(platform::holder(text, dev, 5661169), Some(30755));
        assert_eq!(platform::holder(text, dev, 7), None);
    }
}
