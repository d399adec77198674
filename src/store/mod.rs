//! The SQLite store: one file, WAL mode, foreign keys on, a busy timeout.
//!
//! Locking rule: every statement runs on tokio's blocking pool, never on a runtime thread.
//! Reads take a connection from the r2d2 pool. Writes go through the one [`Writer`]: a
//! long-lived blocking task that owns one connection and commits whatever jobs are queued
//! in a single transaction (group commit, `synchronous=FULL`). Each job has a sequence
//! number; after a commit the writer publishes the highest one committed, so waiting for a
//! write is waiting for that number. The coordinator queues a job while it holds its state
//! lock, so jobs reach the disk in the order the in-memory state changed, and it answers a
//! client only after the job's commit — a 2xx on a state change means it is on disk. A
//! failed write stops the writer for good and tells its owner (fail-stop).
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
pub mod schema;
pub mod tasks;

use std::path::{Path, PathBuf};

use std::sync::{Arc, Mutex};

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::Connection;
use tokio::sync::{mpsc, watch};

pub use lock::{LockError, StoreLock};
pub use probe::NotWritable;

/// A pooled connection source.
pub type Pool = r2d2::Pool<SqliteConnectionManager>;

/// Why the store cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
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
    #[error("a database write failed: {0}")]
    WriteFailed(String),
    #[error("the store writer has stopped")]
    WriterGone,
    #[error("database task failed: {0}")]
    Join(String),
}

/// Opens `path` as it is, without creating or changing anything, and reports its schema.
/// A missing file is `Ok(None)`.
pub fn inspect(path: &Path) -> Result<Option<schema::State>, StoreError> {
    if !path.exists() {
        return Ok(None);
    }
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    schema::state(&conn, path).map(Some)
}

/// Creates the database's folder (0700 on Unix) if missing.
pub fn prepare_dir(path: &Path) -> Result<(), StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir).map_err(|source| StoreError::Io { path: dir.to_path_buf(), source })?;
    }
    Ok(())
}

/// Creates the folder and an empty database file (0600) if missing.
fn prepare_files(path: &Path) -> Result<(), StoreError> {
    let io = |source| StoreError::Io { path: path.to_path_buf(), source };
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

/// The open store: a read pool and the path. The caller holds the [`StoreLock`].
#[derive(Clone)]
pub struct Store {
    pool: Pool,
}

impl Store {
    /// Opens the store for the coordinator: creates a new database at the current schema,
    /// refuses one that needs migrating, is newer, or is not ours.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
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
                return Err(StoreError::NeedsMigration { path: path.into(), have: v, need: schema::LATEST });
            }
            Some(schema::State::At(v)) => {
                return Err(StoreError::TooNew { path: path.into(), have: v, need: schema::LATEST });
            }
            Some(schema::State::Foreign) => return Err(StoreError::Foreign { path: path.into() }),
        }
        Self::pool_for(path)
    }

    fn pool_for(path: &Path) -> Result<Store, StoreError> {
        {
            let conn = Connection::open(path)?;
            configure(&conn)?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
        }
        let manager = SqliteConnectionManager::file(path).with_init(|c| configure(c));
        let pool = r2d2::Pool::builder().max_size(4).build(manager)?;
        Ok(Store { pool })
    }

    /// Runs a read on the blocking pool.
    pub async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let conn = pool.get()?;
            f(&conn)
        })
        .await
        .map_err(|e| StoreError::Join(e.to_string()))?
    }

    /// Starts the writer. `on_failure` is called once, from the writer's thread, if a write
    /// or a commit fails (the caller stops the process through its shutdown path). The
    /// returned handle finishes once the writer is closed and its queue drained.
    pub fn start_writer(
        &self,
        on_failure: impl FnOnce(String) + Send + 'static,
    ) -> Result<(Writer, tokio::task::JoinHandle<()>), StoreError> {
        let conn = self.pool.get()?;
        let (tx, rx) = mpsc::unbounded_channel();
        let (committed, _) = watch::channel(Committed::Upto(0));
        let shared = Arc::new(WriterShared { queue: Mutex::new((0, tx)), committed });
        let writer = Writer { shared: shared.clone() };
        let handle = tokio::task::spawn_blocking(move || writer_loop(conn, rx, &shared, on_failure));
        Ok((writer, handle))
    }
}

/// A unit of work for the writer: statements run inside the batch's transaction.
pub type WriteOp = Box<dyn FnOnce(&Connection) -> rusqlite::Result<()> + Send>;

/// Run by the writer's thread right after the commit that made a write durable (in commit
/// order): the place to publish what the write recorded.
pub type AfterCommit = Box<dyn FnOnce() + Send>;

struct Job {
    seq: u64,
    /// `None` closes the writer after everything queued before it.
    op: Option<WriteOp>,
    after: Option<AfterCommit>,
}

/// How far the writer got.
#[derive(Debug, Clone, PartialEq)]
enum Committed {
    /// Every write with a sequence number up to this one is on disk.
    Upto(u64),
    /// A write or commit failed; nothing more will be written.
    Failed(String),
}

struct WriterShared {
    /// The last sequence number handed out and the channel, together so that writes reach
    /// the writer in sequence order.
    queue: Mutex<(u64, mpsc::UnboundedSender<Job>)>,
    committed: watch::Sender<Committed>,
}

/// The handle for queueing writes. Cheap to clone.
#[derive(Clone)]
pub struct Writer {
    shared: Arc<WriterShared>,
}

impl Writer {
    /// Queues a write without waiting (safe to call while holding a std mutex) and returns
    /// its sequence number. `after` runs once it is committed.
    pub fn queue(&self, op: WriteOp, after: Option<AfterCommit>) -> u64 {
        let mut queue = self.shared.queue.lock().unwrap_or_else(|e| e.into_inner());
        queue.0 += 1;
        let seq = queue.0;
        let _ = queue.1.send(Job { seq, op: Some(op), after });
        seq
    }

    /// The sequence number of the last write queued.
    pub fn queued(&self) -> u64 {
        self.shared.queue.lock().unwrap_or_else(|e| e.into_inner()).0
    }

    /// How many queued writes are not committed yet.
    pub fn backlog(&self) -> u64 {
        match &*self.shared.committed.borrow() {
            Committed::Upto(done) => self.queued().saturating_sub(*done),
            Committed::Failed(_) => 0,
        }
    }

    /// Waits until every write up to `seq` is committed.
    pub async fn committed(&self, seq: u64) -> Result<(), StoreError> {
        let mut rx = self.shared.committed.subscribe();
        let state = rx
            .wait_for(|c| match c {
                Committed::Upto(done) => *done >= seq,
                Committed::Failed(_) => true,
            })
            .await
            .map_err(|_| StoreError::WriterGone)?;
        match &*state {
            Committed::Upto(_) => Ok(()),
            Committed::Failed(e) => Err(StoreError::WriteFailed(e.clone())),
        }
    }

    /// Stops the writer once everything queued so far is committed; later writes fail.
    pub fn close(&self) {
        let queue = self.shared.queue.lock().unwrap_or_else(|e| e.into_inner());
        let _ = queue.1.send(Job { seq: queue.0, op: None, after: None });
    }
}

/// The most jobs committed in one transaction.
const MAX_BATCH: usize = 1024;

fn writer_loop(
    mut conn: r2d2::PooledConnection<SqliteConnectionManager>,
    mut rx: mpsc::UnboundedReceiver<Job>,
    shared: &WriterShared,
    on_failure: impl FnOnce(String),
) {
    let mut batch = Vec::with_capacity(64);
    let mut closing = false;
    while !closing {
        let Some(first) = rx.blocking_recv() else {
            break;
        };
        closing = first.op.is_none();
        if !closing {
            batch.push(first);
        }
        while !closing && batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) if job.op.is_none() => closing = true,
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let Some(last) = batch.last().map(|j| j.seq) else {
            continue;
        };
        match commit_batch(&mut conn, &mut batch) {
            Ok(()) => {
                for job in batch.drain(..) {
                    if let Some(after) = job.after {
                        after();
                    }
                }
                shared.committed.send_replace(Committed::Upto(last));
            }
            Err(e) => {
                // The disk refused a write or a commit (full, I/O error, or a bug). Memory
                // now claims what the disk does not have: nobody gets a 2xx for this batch
                // or any later one, and the owner stops the process so that a restart
                // reloads the truth from the store.
                let message = e.to_string();
                tracing::error!(target: "openclaw::store", error = %message, "cannot write to the database; stopping so that a restart reloads a consistent state");
                shared.committed.send_replace(Committed::Failed(message.clone()));
                on_failure(message);
                return;
            }
        }
    }
}

/// Runs every job of the batch in one transaction. A failing job is a bug that left memory
/// ahead of the disk: it fails the whole batch, which stops the process (see the loop).
fn commit_batch(conn: &mut Connection, batch: &mut [Job]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    for job in batch.iter_mut() {
        if let Some(op) = job.op.take() {
            op(&tx)?;
        }
    }
    tx.commit()
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

/// What the coordinator loads at start: every node, the active tasks, and where the task
/// and event numbering continues.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub nodes: Vec<nodes::NodeRecord>,
    pub tasks: Vec<tasks::ActiveRow>,
    pub max_seq: i64,
    pub max_event: u64,
    /// The kept output of the active tasks.
    pub outputs: Vec<output::Kept>,
}

/// Reads a [`Snapshot`].
pub fn snapshot(c: &Connection) -> rusqlite::Result<Snapshot> {
    Ok(Snapshot {
        nodes: nodes::load_all(c)?,
        tasks: tasks::load_active(c)?,
        max_seq: tasks::max_seq(c)?,
        max_event: events::max_id(c)?,
        outputs: output::load_active(c)?,
    })
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
