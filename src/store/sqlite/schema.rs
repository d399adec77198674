//! Schema versions and migrations.
//!
//! Each migration is a numbered SQL file compiled into the binary; `PRAGMA user_version`
//! says which ones a database has. [`migrate`] takes a consistent online backup
//! (`VACUUM INTO`) before it changes anything, then applies each pending migration in its
//! own transaction, so an interrupted run leaves the database at a whole version.

use std::path::{Path, PathBuf};

use rusqlite::Connection;
use rusqlite_migration::{M, Migrations};

use super::SqliteError;

/// The migrations, in order: (name, SQL).
pub const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_init", include_str!("migrations/0001_init.sql")),
    ("0002_task_queries", include_str!("migrations/0002_task_queries.sql")),
    ("0003_events_and_indexes", include_str!("migrations/0003_events_and_indexes.sql")),
    ("0004_task_output", include_str!("migrations/0004_task_output.sql")),
    ("0005_task_target", include_str!("migrations/0005_task_target.sql")),
    ("0006_secrets", include_str!("migrations/0006_secrets.sql")),
    ("0007_skill_digests", include_str!("migrations/0007_skill_digests.sql")),
    ("0008_schedules", include_str!("migrations/0008_schedules.sql")),
    ("0009_task_links", include_str!("migrations/0009_task_links.sql")),
    ("0010_skill_pushes", include_str!("migrations/0010_skill_pushes.sql")),
];

/// The schema version this binary works with.
pub const LATEST: usize = MIGRATIONS.len();

fn migrations() -> Migrations<'static> {
    Migrations::new(MIGRATIONS.iter().map(|(_, sql)| M::up(sql)).collect())
}

/// What a database file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// No tables: a new database.
    Empty,
    /// An openclaw store at this version.
    At(usize),
    /// Tables but no version: somebody else's database.
    Foreign,
}

/// Reads the state of an open database without changing it.
pub fn state(conn: &Connection, path: &Path) -> Result<State, SqliteError> {
    let not_db = |e: rusqlite::Error| match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase) => SqliteError::NotADatabase { path: path.into() },
        _ => SqliteError::Sqlite(e),
    };
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(not_db)?;
    let tables: i64 =
        conn.query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table'", [], |r| r.get(0)).map_err(not_db)?;
    Ok(match (version, tables) {
        (0, 0) => State::Empty,
        (0, _) => State::Foreign,
        (v, _) => State::At(usize::try_from(v).unwrap_or(usize::MAX)),
    })
}

/// Brings a new, empty database to the current version.
pub fn create_current(conn: &mut Connection) -> Result<(), SqliteError> {
    migrations().to_latest(conn)?;
    Ok(())
}

/// What `openclaw migrate --status` reports.
#[derive(Debug, Clone)]
pub struct Status {
    /// None when there is no database file yet.
    pub current: Option<usize>,
    pub target: usize,
    /// Names of the migrations a run would apply.
    pub pending: Vec<&'static str>,
}

/// The status of the database at `path` (read only).
pub fn status(path: &Path) -> Result<Status, SqliteError> {
    let current = match super::inspect(path)? {
        None | Some(State::Empty) => None,
        Some(State::Foreign) => return Err(SqliteError::Foreign { path: path.into() }),
        Some(State::At(v)) => Some(v),
    };
    let from = current.unwrap_or(0);
    let pending = MIGRATIONS.iter().skip(from).map(|(name, _)| *name).collect();
    Ok(Status { current, target: LATEST, pending })
}

/// What a migration run did.
#[derive(Debug, Clone)]
pub struct Report {
    pub from: Option<usize>,
    pub to: usize,
    pub applied: Vec<&'static str>,
    pub backup: Option<PathBuf>,
}

/// Migrates the database at `path` to [`LATEST`]. The caller holds the store lock.
/// A database newer than the binary is refused; one that is current is left alone.
pub fn migrate(path: &Path) -> Result<Report, SqliteError> {
    let status = status(path)?;
    if let Some(v) = status.current
        && v > LATEST
    {
        return Err(SqliteError::TooNew { path: path.into(), have: v, need: LATEST });
    }
    if status.pending.is_empty() {
        return Ok(Report { from: status.current, to: LATEST, applied: vec![], backup: None });
    }
    let Some(from) = status.current else {
        // No database yet: create it at the current version; nothing to back up.
        super::SqliteStore::open(path)?;
        return Ok(Report { from: None, to: LATEST, applied: status.pending, backup: None });
    };
    let mut conn = Connection::open(path)?;
    super::configure(&conn)?;
    let backup = backup_path(path, from);
    super::backup_into(&conn, &backup)?;
    let migrations = migrations();
    let mut applied = Vec::new();
    for version in from + 1..=LATEST {
        migrations.to_version(&mut conn, version)?;
        applied.push(MIGRATIONS[version - 1].0);
        tracing::info!(target: "openclaw::store", version, migration = MIGRATIONS[version - 1].0, "applied migration");
    }
    conn.pragma_update(None, "journal_mode", "WAL")?;
    Ok(Report { from: Some(from), to: LATEST, applied, backup: Some(backup) })
}

/// `cluster.db` at version 1 → `cluster.db.backup-v1-20260216T160000Z`, never overwriting.
fn backup_path(path: &Path, version: usize) -> PathBuf {
    let stamp = crate::util::rfc3339(crate::util::now_ms())
        .replace([':', '-'], "")
        .replace(".", "")
        .chars()
        .take(15)
        .collect::<String>();
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "db".into());
    let mut candidate = path.with_file_name(format!("{name}.backup-v{version}-{stamp}Z"));
    let mut n = 1;
    while candidate.exists() {
        candidate = path.with_file_name(format!("{name}.backup-v{version}-{stamp}Z-{n}"));
        n += 1;
    }
    candidate
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_valid() {
        migrations().validate().unwrap();
    }

    #[test]
    fn backup_names_carry_version_and_time() {
        let p = backup_path(Path::new("/tmp/x/cluster.db"), 1);
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("cluster.db.backup-v1-2"), "{name}");
        assert!(name.ends_with('Z'), "{name}");
    }
}
