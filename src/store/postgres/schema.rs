//! Schema versions of the PostgreSQL store: numbered SQL files compiled into the binary
//! (a series of its own, not SQLite's numbers), and a one-row table `openclaw_schema`
//! saying which ones the database has.
//!
//! Each migration runs in its own transaction with the version bump, under a transaction
//! advisory lock, so two coordinators starting on a new database at once create it once,
//! and an interrupted run leaves the database at a whole version. PostgreSQL's DDL is
//! transactional, so no backup file is needed for that; `openclaw migrate` still says
//! how to take one (`pg_dump`) before it changes anything.
//!
//! Adding a table (or a column) to both stores: a new SQLite file in
//! `store/sqlite/migrations/` and a new file here with the same change in PostgreSQL's
//! words, then the rows in both stores' modules (see `docs/architecture.md`).

use postgres::GenericClient;

use super::PgError;

/// The migrations, in order: (name, SQL).
pub const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_init", include_str!("migrations/0001_init.sql")),
    ("0002_secrets", include_str!("migrations/0002_secrets.sql")),
    ("0003_skill_digests", include_str!("migrations/0003_skill_digests.sql")),
    ("0004_schedules", include_str!("migrations/0004_schedules.sql")),
    ("0005_task_links", include_str!("migrations/0005_task_links.sql")),
    ("0006_skill_pushes", include_str!("migrations/0006_skill_pushes.sql")),
];

/// The schema version this binary works with.
pub const LATEST: usize = MIGRATIONS.len();

/// Any number; every openclaw process takes this transaction lock to change the schema.
const SCHEMA_LOCK: i64 = 0x6f70_656e_636c_6177;

/// What a database holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// No tables in its schema: a new database.
    Empty,
    /// An openclaw store at this version.
    At(usize),
    /// Tables but no openclaw version: somebody else's database.
    Foreign,
}

/// Reads the state of a database without changing it.
pub fn state(c: &mut impl GenericClient) -> Result<State, PgError> {
    let ours: bool = c
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_name = 'openclaw_schema')",
            &[],
        )?
        .try_get(0)?;
    if ours {
        let v: i64 = c.query_one("SELECT version FROM openclaw_schema", &[])?.try_get(0)?;
        return Ok(State::At(usize::try_from(v).unwrap_or(usize::MAX)));
    }
    let tables: i64 = c
        .query_one("SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()", &[])?
        .try_get(0)?;
    Ok(if tables == 0 { State::Empty } else { State::Foreign })
}

/// Applies the migrations after `from` up to `to`, each in its own transaction; returns
/// their names. Re-reads the version under the lock, so a concurrent run is harmless.
pub fn apply(c: &mut postgres::Client, to: usize) -> Result<Vec<&'static str>, PgError> {
    let mut applied = Vec::new();
    loop {
        let mut tx = c.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])?;
        let now = match state(&mut tx)? {
            State::Empty => 0,
            State::At(v) => v,
            State::Foreign => return Err(PgError::Foreign),
        };
        if now >= to {
            return Ok(applied);
        }
        let (name, sql) = MIGRATIONS[now];
        if now == 0 {
            tx.batch_execute(
                "CREATE TABLE openclaw_schema (version BIGINT NOT NULL); INSERT INTO openclaw_schema VALUES (0);",
            )?;
        }
        tx.batch_execute(sql)?;
        tx.execute("UPDATE openclaw_schema SET version = $1", &[&((now + 1) as i64)])?;
        tx.commit()?;
        tracing::info!(target: "openclaw::store", version = now + 1, migration = name, "applied migration");
        applied.push(name);
    }
}

/// What `openclaw migrate --status` reports.
#[derive(Debug, Clone)]
pub struct Status {
    /// None for a new, empty database.
    pub current: Option<usize>,
    pub target: usize,
    /// Names of the migrations a run would apply.
    pub pending: Vec<&'static str>,
}

/// The status of a database (read only).
pub fn status(c: &mut impl GenericClient) -> Result<Status, PgError> {
    let current = match state(c)? {
        State::Empty => None,
        State::At(v) => Some(v),
        State::Foreign => return Err(PgError::Foreign),
    };
    let pending = MIGRATIONS.iter().skip(current.unwrap_or(0)).map(|(name, _)| *name).collect();
    Ok(Status { current, target: LATEST, pending })
}
