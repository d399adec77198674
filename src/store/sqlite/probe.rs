//! The write probe: before the coordinator answers anything it proves that it can write
//! the database's folder, the database file, and a committed transaction into the
//! database. A read-only mount, a file or folder it may not write, or a full disk then
//! stops it at start with [`NotWritable`] (exit code 3, [`crate::Exit::NotWritable`]),
//! instead of answering `/health` and dying on its first write — a restart loop under
//! systemd's `Restart=`.
//!
//! Invariant: the probes change nothing a user can see: the folder probe's file is
//! removed, and the database probe rewrites the schema version with its own value.

use std::io::Write;
use std::path::{Path, PathBuf};

use rusqlite::Connection;

/// The coordinator cannot write where it must.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot write {path}: {reason} — the coordinator must be able to write its database and the folder holding it (check the owner and mode, a read-only mount, and free disk space)"
)]
pub struct NotWritable {
    pub path: PathBuf,
    pub reason: String,
}

/// How much the folder probe writes: a full disk fails here rather than at the first
/// commit.
const PROBE_BYTES: usize = 64 * 1024;

/// The database's folder (a file written, synced and removed there) and, when it exists,
/// the database file (opened for writing).
pub fn check_files(db: &Path) -> Result<(), NotWritable> {
    let folder = match db.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = db.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let probe = folder.join(format!(".{name}.write-probe-{}", std::process::id()));
    let written = std::fs::File::create(&probe).and_then(|mut f| {
        f.write_all(&[0u8; PROBE_BYTES])?;
        f.sync_all()
    });
    let removed = std::fs::remove_file(&probe);
    written.map_err(|e| NotWritable { path: folder.clone(), reason: e.to_string() })?;
    removed.map_err(|e| NotWritable { path: folder, reason: format!("cannot remove a file it wrote: {e}") })?;
    if db.exists() {
        std::fs::OpenOptions::new()
            .write(true)
            .open(db)
            .map_err(|e| NotWritable { path: db.to_path_buf(), reason: e.to_string() })?;
    }
    Ok(())
}

/// A committed write into the database: its schema version rewritten with its own value
/// (a real page written to the WAL and synced). SQLite opens a file it may not write
/// read-only without a word; this is where that shows.
pub fn check_database(db: &Path) -> Result<(), NotWritable> {
    let fail = |e: rusqlite::Error| NotWritable { path: db.to_path_buf(), reason: e.to_string() };
    let mut conn = Connection::open(db).map_err(fail)?;
    conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(fail)?;
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(fail)?;
    let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(fail)?;
    tx.pragma_update(None, "user_version", version).map_err(fail)?;
    tx.commit().map_err(fail)
}

/// A folder that could not be created because of where it is (read-only, no permission,
/// no space) is a [`NotWritable`] too.
pub fn from_io(path: &Path, err: &std::io::Error) -> Option<NotWritable> {
    use std::io::ErrorKind::{PermissionDenied, ReadOnlyFilesystem, StorageFull};
    matches!(err.kind(), PermissionDenied | ReadOnlyFilesystem | StorageFull)
        .then(|| NotWritable { path: path.to_path_buf(), reason: err.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_writable_place_passes_and_the_probes_leave_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("cluster.db");
        check_files(&db).unwrap();
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA user_version = 7; CREATE TABLE t (x);").unwrap();
        check_database(&db).unwrap();
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(version, 7);
        let names: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
        assert!(names.iter().all(|n| !n.contains("probe")), "{names:?}");
    }

    #[test]
    fn a_missing_folder_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = check_files(&dir.path().join("nope/cluster.db")).unwrap_err();
        assert!(err.to_string().starts_with(&format!("cannot write {}", dir.path().join("nope").display())), "{err}");
    }
}
