//! The PostgreSQL store (`storage.type: postgres`): the coordinator's state in a database
//! that one or more coordinators share, one of them leading (see [`lease`]).
//!
//! Crates: `postgres` (the blocking client, which wraps `tokio-postgres`) pooled by
//! `r2d2_postgres`. The store seam is blocking — its methods run on tokio's blocking pool
//! and on the one writer's thread — so the blocking client and an r2d2 pool fit it
//! directly, exactly as rusqlite and r2d2 do for SQLite; the async pair
//! (`tokio-postgres` + `deadpool-postgres`) would need a second, async seam for no gain.
//! TLS is `tokio-postgres-rustls` on rustls with ring (no aws-lc), see [`connect`].
//!
//! [`PostgresStore`] implements the coordinator's `Store`: reads take a pooled
//! connection; the writer's [`WriteSession`] owns one connection and runs each group of
//! jobs in one transaction whose first statement locks the lease row for share and checks
//! that the lease's epoch is still the session's (the fencing check): a coordinator that
//! lost the lease — paused, partitioned, replaced — commits nothing more. PostgreSQL's
//! commit is durable (`synchronous_commit` on, the server's default) before `commit`
//! returns. A write session whose connection broke reconnects before it begins a
//! transaction (nothing of that group was sent), so a restart of the server between two
//! groups costs nothing; a failure inside a transaction is the writer's fail-stop.
//!
//! The tables are the SQLite store's (same names, columns and meaning; JSON as text, parsed
//! and checked the same way, so damage names the table, the row and the column), plus
//! `leader_lease`. Their statements live in one module per table family, like SQLite's:
//! [`tasks`], [`nodes`], [`events`], [`output`], [`secrets`], [`schedules`], [`skill_pushes`]; the writer's prepared statements are
//! [`Stmts`]. The writer sends a batch's events and output lines as one statement each
//! (`unnest` of arrays), not one round trip per row.
//!
//! Schema versions: [`schema`], a series of its own (`migrations/NNNN_name.sql`, numbered
//! from 0001 independently of SQLite's; 0001 is SQLite's schema 5 plus the lease), kept in
//! the one-row table `openclaw_schema`.
//!
//! Adding a table (or columns) — what a branch that adds state does for PostgreSQL:
//! 1. the next file in `migrations/` (today `0004_…sql`) with the same tables, columns and
//!    names as the SQLite migration, in PostgreSQL's words (BIGINT for integers, BOOLEAN for
//!    flags, DOUBLE PRECISION for reals, TEXT for JSON), and its line in
//!    `schema::MIGRATIONS`;
//! 2. a module here for the table family (like [`tasks`]): its SQL, row reading through
//!    [`rows::Cols`], writes taking `&mut postgres::Transaction` and prepared statements
//!    added to [`Stmts`]; its `Write` arm in [`apply`] and its reads in the `Store` impl;
//! 3. nothing for `openclaw migrate --to`: it copies every table PostgreSQL has from the
//!    SQLite table of the same name and columns (`store::copy`), so keep them equal;
//! 4. run the state-machine and integration tests with `OPENCLAW_TEST_STORE=postgres`.

pub mod connect;
pub mod events;
pub mod lease;
pub mod nodes;
pub mod output;
pub mod rows;
pub mod schedules;
pub mod schema;
pub mod secrets;
pub mod skill_pushes;
pub mod tasks;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use postgres::Statement;
use r2d2_postgres::PostgresConnectionManager;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::coordinator::store::{
    EventFilter, HandoutText, Lease, ListFilter, SecretRow, Snapshot, Store, StoreError, Tail, Write, WriteSession,
};
use crate::model::{Event, ScheduleRun, Task};

pub use connect::{ConnectOptions, redact};

/// A pool of connections to the store's database.
pub type Pool = r2d2::Pool<PostgresConnectionManager<MakeRustlsConnect>>;

/// Why the PostgreSQL store cannot be opened or used. Messages name the database by its
/// URL without the password.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("{0}")]
    Config(String),
    #[error("database error: {}", describe(.0))]
    Db(#[from] postgres::Error),
    #[error("database pool error: {0}")]
    Pool(#[from] r2d2::Error),
    #[error("{0}")]
    Damaged(String),
    #[error(
        "the database holds tables but no openclaw schema version: it is not an openclaw store; give openclaw a database of its own (CREATE DATABASE openclaw)"
    )]
    Foreign,
    #[error(
        "the database is at schema {have}, this binary needs {need} — run `openclaw migrate` (pg_dump it first: see `openclaw migrate --dry-run`)"
    )]
    NeedsMigration { have: usize, need: usize },
    #[error(
        "the database is at schema {have}, newer than this binary understands ({need}) — it needs a newer openclaw; upgrade the binary"
    )]
    TooNew { have: usize, need: usize },
    #[error(
        "fenced: this coordinator's lease (epoch {mine}) was taken over (epoch {now}); it writes nothing more and stops"
    )]
    Fenced { mine: u64, now: u64 },
}

/// The server's own words for a database error (the client's Display says only "db error").
fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({}: {})", db.message(), db.severity(), db.code().code()),
        None => {
            let mut text = e.to_string();
            let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
            while let Some(s) = cur {
                text = format!("{text}: {s}");
                cur = s.source();
            }
            text
        }
    }
}

impl From<PgError> for StoreError {
    fn from(e: PgError) -> StoreError {
        StoreError::backend(e)
    }
}

/// The open store: a read pool and the options to connect again.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Arc<PoolOwner>,
    options: ConnectOptions,
}

/// Owns the pool so that it may be dropped anywhere: the blocking client closes its
/// connections by blocking on its own runtime, which panics on a thread that drives async
/// tasks (the coordinator drops its store at the end of an async function), so there the
/// pool is dropped on a thread of its own.
struct PoolOwner(Option<Pool>);

impl std::ops::Deref for PoolOwner {
    type Target = Pool;
    fn deref(&self) -> &Pool {
        self.0.as_ref().expect("the pool lives as long as its owner")
    }
}

impl Drop for PoolOwner {
    fn drop(&mut self) {
        if let Some(pool) = self.0.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                std::thread::spawn(move || drop(pool));
            } else {
                drop(pool);
            }
        }
    }
}

impl PostgresStore {
    /// Connects, and creates the schema in an empty database (under a lock, so several
    /// coordinators starting at once create it once). A database that needs migrating, is
    /// newer, or is not ours is refused. Blocking.
    pub fn open(options: ConnectOptions) -> Result<PostgresStore, PgError> {
        let store = PostgresStore::connect(options)?;
        let mut c = store.client()?;
        match schema::state(&mut *c)? {
            schema::State::Empty => {
                schema::apply(&mut c, schema::LATEST)?;
            }
            schema::State::At(v) if v == schema::LATEST => {}
            schema::State::At(v) if v < schema::LATEST => {
                return Err(PgError::NeedsMigration { have: v, need: schema::LATEST });
            }
            schema::State::At(v) => return Err(PgError::TooNew { have: v, need: schema::LATEST }),
            schema::State::Foreign => return Err(PgError::Foreign),
        }
        Ok(store)
    }

    /// Connects without looking at the schema (for `openclaw migrate`).
    pub fn connect(options: ConnectOptions) -> Result<PostgresStore, PgError> {
        // One connection first: its error says why (TLS, password, no such database),
        // where the pool's would only say that it timed out.
        let tls = options.tls().map_err(PgError::Config)?;
        drop(options.config().connect(tls)?);
        let manager = PostgresConnectionManager::new(options.config().clone(), options.tls().map_err(PgError::Config)?);
        let pool = r2d2::Pool::builder()
            .max_size(8)
            .min_idle(Some(1))
            .connection_timeout(Duration::from_secs(10))
            .test_on_check_out(true)
            .build(manager)?;
        Ok(PostgresStore { pool: Arc::new(PoolOwner(Some(pool))), options })
    }

    /// A pooled connection.
    pub fn client(&self) -> Result<r2d2::PooledConnection<PostgresConnectionManager<MakeRustlsConnect>>, PgError> {
        Ok(self.pool.get()?)
    }

    /// A connection of its own (the writer's, the lease's).
    fn dedicated(&self) -> Result<postgres::Client, PgError> {
        let tls = self.options.tls().map_err(PgError::Config)?;
        Ok(self.options.config().connect(tls)?)
    }

    /// Runs a read on a pooled connection.
    fn read<T>(&self, f: impl FnOnce(&mut postgres::Client) -> Result<T, PgError>) -> Result<T, StoreError> {
        let mut c = self.client()?;
        Ok(f(&mut c)?)
    }

    pub fn options(&self) -> &ConnectOptions {
        &self.options
    }
}

impl Store for PostgresStore {
    fn location(&self) -> String {
        self.options.shown().to_string()
    }

    /// One consistent snapshot (a repeatable-read transaction): what a coordinator that
    /// starts leading loads.
    fn snapshot(&self) -> Result<Snapshot, StoreError> {
        self.read(|c| {
            let mut tx = c
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
            let (skill_pushes, skill_packages) = skill_pushes::load_all(&mut tx)?;
            let snapshot = Snapshot {
                nodes: nodes::load_all(&mut tx)?,
                tasks: tasks::load_active(&mut tx)?,
                max_seq: tasks::max_seq(&mut tx)?,
                max_event: events::max_id(&mut tx)?,
                outputs: output::load_active(&mut tx)?,
                schedules: schedules::load_all(&mut tx)?,
                skill_pushes,
                skill_packages,
            };
            tx.commit()?;
            Ok(snapshot)
        })
    }

    fn write_session(&self, epoch: Option<u64>) -> Result<Box<dyn WriteSession>, StoreError> {
        let Some(epoch) = epoch else {
            return Err(PgError::Config("a PostgreSQL write session needs the leader lease's epoch".into()).into());
        };
        let mut client = self.dedicated()?;
        let stmts = Stmts::prepare(&mut client)?;
        writer_settings(&mut client)?;
        Ok(Box::new(Session { store: self.clone(), client, stmts, epoch }))
    }

    fn lease(&self) -> Option<&dyn Lease> {
        Some(self)
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

    fn schedule_runs(
        &self,
        schedule_id: &str,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<ScheduleRun>, StoreError> {
        self.read(|c| schedules::runs(c, schedule_id, before, limit))
    }

    /// PostgreSQL is backed up by its own tools, online and consistent: the message says
    /// the command.
    fn secrets(&self) -> Result<Vec<SecretRow>, StoreError> {
        self.read(secrets::load_all)
    }

    fn skill_package(&self, digest: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(|c| skill_pushes::package(c, digest))
    }

    fn backup(&self) -> Result<PathBuf, StoreError> {
        Err(StoreError::Unsupported(backup_advice(&self.options)))
    }
}

/// What to run to back a PostgreSQL store up (and restore it).
pub fn backup_advice(options: &ConnectOptions) -> String {
    backup_advice_for(options.shown())
}

/// [`backup_advice`] for a URL as shown (password already replaced).
pub fn backup_advice_for(shown: &str) -> String {
    format!(
        "the PostgreSQL store is backed up with PostgreSQL's own tools, online and consistent: `pg_dump --format=custom --file=openclaw.dump '{shown}'` (restore into an empty database with `pg_restore --dbname='{shown}' openclaw.dump`); a password goes in PGPASSWORD or ~/.pgpass, not on the command line"
    )
}

/// The writer's prepared statements (one parse per session, not per row).
pub struct Stmts {
    lease_epoch: Statement,
    insert_task: Statement,
    insert_skill: Statement,
    update_state: Statement,
    upsert_node: Statement,
    delete_node: Statement,
    liveness: Statement,
    insert_event: Statement,
    clear_output: Statement,
    set_output_attempt: Statement,
    insert_output: Statement,
    drop_output_before: Statement,
    purge_tasks: Statement,
    purge_node_events: Statement,
    upsert_schedule: Statement,
    delete_schedule: Statement,
    insert_run: Statement,
}

impl Stmts {
    fn prepare(c: &mut postgres::Client) -> Result<Stmts, PgError> {
        Ok(Stmts {
            lease_epoch: c.prepare("SELECT epoch FROM leader_lease WHERE id = 1 FOR SHARE")?,
            insert_task: c.prepare(tasks::INSERT)?,
            insert_skill: c.prepare(tasks::INSERT_SKILL)?,
            update_state: c.prepare(tasks::UPDATE_STATE)?,
            upsert_node: c.prepare(&nodes::upsert_sql())?,
            delete_node: c.prepare(nodes::DELETE)?,
            liveness: c.prepare(nodes::LIVENESS)?,
            insert_event: c.prepare(events::INSERT)?,
            clear_output: c.prepare(output::CLEAR)?,
            set_output_attempt: c.prepare(output::SET_ATTEMPT)?,
            insert_output: c.prepare(output::INSERT)?,
            drop_output_before: c.prepare(output::DROP_BEFORE)?,
            purge_tasks: c.prepare(tasks::PURGE)?,
            purge_node_events: c.prepare(events::PURGE_NODE_EVENTS)?,
            upsert_schedule: c.prepare(schedules::UPSERT)?,
            delete_schedule: c.prepare(schedules::DELETE)?,
            insert_run: c.prepare(schedules::INSERT_RUN)?,
        })
    }
}

/// The writer's session settings. A write transaction holds a share lock on the lease row
/// (the fencing check); if the leader is cut off from the server in the middle of one, the
/// server would keep it open — and a standby's claim waiting on that lock — until its TCP
/// keepalive gives up, hours later. The server ends such a transaction after 2 s instead
/// (nothing of it commits), well within a failover.
fn writer_settings(client: &mut postgres::Client) -> Result<(), PgError> {
    client.batch_execute("SET idle_in_transaction_session_timeout = '2s'")?;
    Ok(())
}

/// The writer's connection, fenced at `epoch`.
struct Session {
    store: PostgresStore,
    client: postgres::Client,
    stmts: Stmts,
    epoch: u64,
}

impl WriteSession for Session {
    fn commit(&mut self, writes: &mut dyn Iterator<Item = &Write>) -> Result<(), StoreError> {
        if self.client.is_closed() {
            // The server restarted or the connection broke between two groups: nothing of
            // this group was sent, so connecting again is safe (the fence is checked below).
            tracing::warn!(target: "openclaw::store", db = %self.store.location(), "the writer's connection to the database broke; connecting again");
            self.client = self.store.dedicated()?;
            self.stmts = Stmts::prepare(&mut self.client)?;
            writer_settings(&mut self.client)?;
        }
        let mut tx = self.client.transaction().map_err(PgError::from)?;
        let now: i64 = tx.query_one(&self.stmts.lease_epoch, &[]).and_then(|r| r.try_get(0)).map_err(PgError::from)?;
        if now as u64 != self.epoch {
            return Err(PgError::Fenced { mine: self.epoch, now: now as u64 }.into());
        }
        for write in writes {
            apply(&mut tx, &self.stmts, write)?;
        }
        tx.commit().map_err(PgError::from)?;
        Ok(())
    }
}

/// Runs one job's statements (inside the writer's transaction).
fn apply(tx: &mut postgres::Transaction, s: &Stmts, write: &Write) -> Result<(), PgError> {
    match write {
        Write::Batch(b) => {
            for t in &b.new_tasks {
                tasks::insert(tx, s, t)?;
            }
            for (id, state) in &b.task_states {
                tasks::update_state(tx, s, id, state)?;
            }
            for n in &b.nodes {
                nodes::upsert(tx, s, n)?;
            }
            for id in &b.forgotten {
                tx.execute(&s.delete_node, &[id])?;
            }
            for r in &b.schedules.schedules {
                schedules::upsert(tx, s, r)?;
            }
            for id in &b.schedules.removed {
                schedules::delete(tx, s, id)?;
            }
            for r in &b.schedules.runs {
                schedules::insert_run(tx, s, r)?;
            }
            let pushes = b.skill_pushes.as_deref().map(|w| (&w.packages[..], &w.pushes[..])).unwrap_or_default();
            for p in pushes.0 {
                skill_pushes::insert_package(tx, p)?;
            }
            for r in pushes.1 {
                skill_pushes::upsert(tx, r)?;
            }
            events::insert(tx, s, &b.events)?;
            for o in &b.output {
                output::apply(tx, s, o)?;
            }
            Ok(())
        }
        Write::Liveness(batch) => nodes::update_liveness(tx, s, batch),
        Write::Secrets(changes) => secrets::apply(tx, changes),
        Write::Purge { before_ms, limit, purged } => {
            let limit = i64::from(*limit);
            let tasks = tx.execute(&s.purge_tasks, &[before_ms, &limit])?;
            let events = tx.execute(&s.purge_node_events, &[before_ms, &limit])?;
            let _ = purged.send(tasks.max(events) as usize);
            Ok(())
        }
    }
}

/// Opens the store for a coordinator (blocking): `storage.url` with its password file and
/// TLS settings, the schema created in an empty database.
pub fn open_for_coordinator(storage: &crate::config::StorageConfig) -> anyhow::Result<PostgresStore> {
    let options = options_of(storage)?;
    let shown = options.shown().to_string();
    PostgresStore::open(options).map_err(|e| anyhow::anyhow!("cannot open the store at {shown}: {e}"))
}

/// The connection options of a config (reads the password and CA files).
pub fn options_of(storage: &crate::config::StorageConfig) -> anyhow::Result<ConnectOptions> {
    let url = storage.url.as_deref().ok_or_else(|| {
        crate::usage_error("storage.type is postgres but storage.url is not set (postgres://USER@HOST:PORT/DATABASE)")
    })?;
    ConnectOptions::parse(url, storage.password_file.as_deref(), storage.ca_file.as_deref(), true)
        .map_err(|e| crate::usage_error(format!("storage.url: {e}")))
}
