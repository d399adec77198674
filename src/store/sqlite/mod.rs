//! The SQLite store: one file, WAL mode, foreign keys on, a busy timeout. The embedded
//! default: it needs nothing but a folder it may write.
//!
//! [`SqliteStore`] implements the coordinator's store seam (`coordinator::store`). Locking
//! rule: every statement runs off the runtime threads (the coordinator calls the seam on
//! tokio's blocking pool, and the writer on its own thread). Reads take a connection from
//! the r2d2 pool. The writer's [`WriteSession`] owns one connection and runs each group of
//! jobs in one transaction (`synchronous=FULL`), so a commit that returned is on disk.
//!
//! One process per database file: [`open_for_coordinator`] takes the [`StoreLock`] (see
//! [`lock`]) before SQLite opens the file, and proves with [`probe`] that the folder, the
//! file and a committed transaction can be written (else [`NotWritable`], exit code 3).
//!
//! Damaged rows (a JSON column that does not parse, an unknown enum value) are errors that
//! name the table, the row and the column; they never turn into defaults.
//!
//! Schema versions live in `PRAGMA user_version`; see [`schema`]. A new file is created at
//! the current version; an older one must go through `openclaw migrate`.

pub mod events;
pub mod lock;
pub mod nodes;
pub mod output;
pub mod probe;
pub mod schedules;
pub mod schema;
pub mod secrets;
pub mod skill_pushes;
pub mod tasks;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::Connection;

use crate::coordinator::store::{
    EventFilter, HandoutText, ListFilter, SecretRow, Snapshot, Store, StoreError, Tail, Write, WriteSession,
};
use crate::model::{Event, ScheduleRun, Task};

pub use lock::{LockError, StoreLock};
pub use probe::NotWritable;

/// A pooled connection source.
pub type Pool = r2d2::Pool<SqliteConnectionManager>;

/// Why the SQLite store cannot be opened or used.
#[derive(Debug, thiserror::Error)]
pub enum SqliteError {
    #[error("{path} is not an SQLite database (or is corrupt); the file was left untouched — check storage.path")]
    NotADatabase { path: PathBuf },
    #[error(
        "cannot open store at {path}: the database is at schema {have}, this binary needs {need} — run `openclaw migrate` (it backs the database up first)"
    )]
    NeedsMigration { path: PathBuf, have: usize, need: usize },
    #[error(
        "cannot open store at {path}: the database is at schema {have}, newer than this binary understands ({need}) — it needs a newer openclaw (schema {have}); upgrade the binary or restore a backup"
    )]
    TooNew { path: PathBuf, have: usize, need: usize },
    #[error(
        "{path} holds tables but no openclaw schema version: it is not an openclaw store (perhaps the Python original's database); move it aside or set storage.path to another file"
    )]
    Foreign { path: PathBuf },
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("store I/O error on {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database pool error: {0}")]
    Pool(#[from] r2d2::Error),
    #[error("migration error: {0}")]
    Migration(#[from] rusqlite_migration::Error),
}

impl From<SqliteError> for StoreError {
    fn from(e: SqliteError) -> StoreError {
        StoreError::backend(e)
    }
}

/// Opens `path` as it is, without creating or changing anything, and reports its schema.
/// A missing file is `Ok(None)`.
pub fn inspect(path: &Path) -> Result<Option<schema::State>, SqliteError> {
    if !path.exists() {
        return Ok(None);
    }
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    schema::state(&conn, path).map(Some)
}

/// Creates the database's folder (0700 on Unix) if missing.
pub fn prepare_dir(path: &Path) -> Result<(), SqliteError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir).map_err(|source| SqliteError::Io { path: dir.to_path_buf(), source })?;
    }
    Ok(())
}

/// Creates the folder and an empty database file (0600) if missing.
fn prepare_files(path: &Path) -> Result<(), SqliteError> {
    let io = |source| SqliteError::Io { path: path.to_path_buf(), source };
    prepare_dir(path)?;
    if !path.exists() {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(path) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(e)),
        }
    }
    Ok(())
}

/// Settings every connection gets. busy_timeout comes first (r2d2 opens connections in
/// parallel; see reference/crates.md).
fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch("PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL;")
}

/// Opens the store for a coordinator at `path`: creates the folder (0700) if missing,
/// proves that it, the file and a committed transaction can be written ([`NotWritable`]
/// otherwise), takes the [`StoreLock`], and opens the database (see [`SqliteStore::open`]).
/// The store is usable while the lock is held; drop the lock after the store's last use.
/// Blocking.
pub fn open_for_coordinator(path: &Path) -> anyhow::Result<(SqliteStore, StoreLock)> {
    prepare_dir(path).map_err(|e| match &e {
        SqliteError::Io { path, source } => probe::from_io(path, source).map_or_else(|| e.into(), anyhow::Error::new),
        _ => anyhow::Error::new(e),
    })?;
    // Before anything answers: a coordinator that cannot write stops here (exit 3).
    probe::check_files(path)?;
    let lock = StoreLock::acquire(path)?;
    let store = SqliteStore::open(path).map_err(|e| match e {
        // These do not name the file themselves.
        SqliteError::Sqlite(_) | SqliteError::Pool(_) | SqliteError::Migration(_) => {
            anyhow::anyhow!("cannot open store at {}: {e}", path.display())
        }
        named => named.into(),
    })?;
    probe::check_database(path)?;
    Ok((store, lock))
}

/// The open store: a read pool and the path. The caller holds the [`StoreLock`].
#[derive(Clone)]
pub struct SqliteStore {
    pool: Pool,
    path: PathBuf,
}

impl SqliteStore {
    /// Opens the database: creates a new one at the current schema, refuses one that needs
    /// migrating, is newer, or is not ours.
    pub fn open(path: &Path) -> Result<SqliteStore, SqliteError> {
        match inspect(path)? {
            None | Some(schema::State::Empty) => {
                prepare_files(path)?;
                let mut conn = Connection::open(path)?;
                configure(&conn)?;
                conn.pragma_update(None, "journal_mode", "WAL")?;
                schema::create_current(&mut conn)?;
            }
            Some(schema::State::At(v)) if v == schema::LATEST => {}
            Some(schema::State::At(v)) if v < schema::LATEST => {
                return Err(SqliteError::NeedsMigration { path: path.into(), have: v, need: schema::LATEST });
            }
            Some(schema::State::At(v)) => {
                return Err(SqliteError::TooNew { path: path.into(), have: v, need: schema::LATEST });
            }
            Some(schema::State::Foreign) => return Err(SqliteError::Foreign { path: path.into() }),
        }
        {
            let conn = Connection::open(path)?;
            configure(&conn)?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
        }
        let manager = SqliteConnectionManager::file(path).with_init(|c| configure(c));
        let pool = r2d2::Pool::builder().max_size(4).build(manager)?;
        Ok(SqliteStore { pool, path: path.to_path_buf() })
    }

    /// Runs a read on a pooled connection (blocking).
    fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let conn = self.pool.get().map_err(SqliteError::from)?;
        f(&conn).map_err(|e| SqliteError::from(e).into())
    }
}

impl Store for SqliteStore {
    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn snapshot(&self) -> Result<Snapshot, StoreError> {
        self.read(|c| {
            let (skill_pushes, skill_packages) = skill_pushes::load_all(c)?;
            Ok(Snapshot {
                nodes: nodes::load_all(c)?,
                tasks: tasks::load_active(c)?,
                max_seq: tasks::max_seq(c)?,
                max_event: events::max_id(c)?,
                outputs: output::load_active(c)?,
                schedules: schedules::load_all(c)?,
                skill_pushes,
                skill_packages,
            })
        })
    }

    /// One process holds the file (the lock): there is no epoch to fence.
    fn write_session(&self, _epoch: Option<u64>) -> Result<Box<dyn WriteSession>, StoreError> {
        let conn = self.pool.get().map_err(SqliteError::from)?;
        Ok(Box::new(Session { conn }))
    }

    fn task(&self, task_id: &str, with_events: bool) -> Result<Option<Task>, StoreError> {
        self.read(|c| {
            let Some((_, task)) = tasks::get(c, task_id)? else { return Ok(None) };
            let events = if with_events { Some(events::for_task(c, task_id)?) } else { None };
            let children = match with_events && task.spec.links.group.is_some() {
                true => Some(tasks::children(c, task_id)?.iter().map(crate::model::ChildTask::of).collect()),
                false => None,
            };
            Ok(Some(Task { events, children, ..task }))
        })
    }

    fn task_by_idempotency_key(&self, key: &str) -> Result<Option<Task>, StoreError> {
        self.read(|c| Ok(tasks::by_idempotency_key(c, key)?.map(|(_, task)| task)))
    }

    fn tasks(&self, filter: &ListFilter) -> Result<Vec<(i64, Task)>, StoreError> {
        self.read(|c| tasks::list(c, filter))
    }

    fn handout_texts(&self, task_ids: &[String]) -> Result<HashMap<String, HandoutText>, StoreError> {
        self.read(|c| tasks::handout(c, task_ids))
    }

    fn count_by_status(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        self.read(tasks::count_by_status)
    }

    fn events_after(&self, after: u64, filter: &EventFilter, limit: u32) -> Result<Vec<Event>, StoreError> {
        self.read(|c| events::after(c, after, filter, limit))
    }

    fn event_bounds(&self) -> Result<Option<(u64, u64)>, StoreError> {
        self.read(events::bounds)
    }

    fn output(&self, task_id: &str, after: u64) -> Result<Tail, StoreError> {
        self.read(|c| output::read(c, task_id, after))
    }

    fn secrets(&self) -> Result<Vec<SecretRow>, StoreError> {
        self.read(secrets::load_all)
    }

    fn skill_package(&self, digest: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(|c| skill_pushes::package(c, digest))
    }

    fn schedule_runs(
        &self,
        schedule_id: &str,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<ScheduleRun>, StoreError> {
        self.read(|c| schedules::runs(c, schedule_id, before, limit))
    }

    /// `VACUUM INTO` a new file beside the database: one consistent snapshot while writers
    /// go on, compacted and without a WAL.
    fn backup(&self) -> Result<PathBuf, StoreError> {
        let name =
            self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "cluster.db".into());
        let to = self.path.with_file_name(format!(
            "{name}.backup-{}-{}.tmp",
            crate::util::now_ms(),
            &crate::util::new_secret()[..8]
        ));
        self.read(|c| backup_into(c, &to)).inspect_err(|_| {
            let _ = std::fs::remove_file(&to);
        })?;
        Ok(to)
    }
}

/// The writer's connection.
struct Session {
    conn: r2d2::PooledConnection<SqliteConnectionManager>,
}

impl WriteSession for Session {
    fn commit(&mut self, writes: &mut dyn Iterator<Item = &Write>) -> Result<(), StoreError> {
        let tx = self.conn.transaction().map_err(StoreError::backend)?;
        for write in writes {
            apply(&tx, write).map_err(StoreError::backend)?;
        }
        tx.commit().map_err(StoreError::backend)
    }
}

/// Runs one job's statements (inside the writer's transaction).
pub fn apply(c: &Connection, write: &Write) -> rusqlite::Result<()> {
    match write {
        Write::Batch(b) => {
            for t in &b.new_tasks {
                tasks::insert(c, t)?;
            }
            for (id, state) in &b.task_states {
                tasks::update_state(c, id, state)?;
            }
            for n in &b.nodes {
                nodes::upsert(c, n)?;
            }
            for id in &b.forgotten {
                nodes::delete(c, id)?;
            }
            for s in &b.schedules.schedules {
                schedules::upsert(c, s)?;
            }
            for id in &b.schedules.removed {
                schedules::delete(c, id)?;
            }
            for r in &b.schedules.runs {
                schedules::insert_run(c, r)?;
            }
            let pushes = b.skill_pushes.as_deref().map(|w| (&w.packages[..], &w.pushes[..])).unwrap_or_default();
            for p in pushes.0 {
                skill_pushes::insert_package(c, p)?;
            }
            for r in pushes.1 {
                skill_pushes::upsert(c, r)?;
            }
            for e in &b.events {
                events::insert(c, e)?;
            }
            for o in &b.output {
                output::apply(c, o)?;
            }
            Ok(())
        }
        Write::Liveness(batch) => nodes::update_liveness(c, batch),
        Write::Secrets(changes) => secrets::apply(c, changes),
        Write::Purge { before_ms, limit, purged } => {
            let tasks = tasks::purge_ended(c, *before_ms, *limit)?;
            let events = events::purge_node_events(c, *before_ms, *limit)?;
            let _ = purged.send(tasks.max(events));
            Ok(())
        }
    }
}

/// Writes a consistent copy of the database to `to` (which must not exist) while writers go
/// on: SQLite's `VACUUM INTO` reads one snapshot. The copy is compacted and has no WAL. It
/// is created mode 0600 on Unix, like the database (SQLite would make it 0644): it is
/// created empty with that mode first, which `VACUUM INTO` accepts.
pub fn backup_into(conn: &Connection, to: &Path) -> rusqlite::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(to).map_err(|e| {
        rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
            Some(format!("cannot create {}: {e}", to.display())),
        )
    })?;
    conn.execute("VACUUM INTO ?1", [to.to_string_lossy().as_ref()])?;
    Ok(())
}

/// JSON text of a value for a TEXT column.
pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

/// Column `idx` of a row of `table` (whose key is `key`) as JSON; damage is an error that
/// names the table, the row and the column, never a silent default.
pub(crate) fn json_column<T: serde::de::DeserializeOwned>(
    row: &rusqlite::Row,
    idx: usize,
    table: &str,
    key: &str,
) -> rusqlite::Result<T> {
    let text: String = row.get(idx)?;
    parse_json(row, idx, table, key, &text)
}

/// A nullable JSON column: NULL is `None`, damage an error naming the row and column.
pub(crate) fn optional_json_column<T: serde::de::DeserializeOwned>(
    row: &rusqlite::Row,
    idx: usize,
    table: &str,
    key: &str,
) -> rusqlite::Result<Option<T>> {
    let text: Option<String> = row.get(idx)?;
    text.map(|text| parse_json(row, idx, table, key, &text)).transpose()
}

fn parse_json<T: serde::de::DeserializeOwned>(
    row: &rusqlite::Row,
    idx: usize,
    table: &str,
    key: &str,
    text: &str,
) -> rusqlite::Result<T> {
    serde_json::from_str(text).map_err(|e| damaged(row, idx, table, key, &format!("not the JSON expected ({e})")))
}

/// An error for a damaged column: `tasks row task_x column required_skills: …`.
pub(crate) fn damaged(row: &rusqlite::Row, idx: usize, table: &str, key: &str, what: &str) -> rusqlite::Error {
    let column = row.as_ref().column_name(idx).unwrap_or("?").to_string();
    rusqlite::Error::FromSqlConversionFailure(
        idx,
        rusqlite::types::Type::Text,
        format!("damaged row in the store: {table} row {key} column {column}: {what}").into(),
    )
}
