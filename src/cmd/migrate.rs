//! `openclaw migrate [--status] [--dry-run] [--to URL]`: schema status and migrations of
//! the configured store (SQLite: a backup taken first; PostgreSQL: each migration in its
//! own transaction, `pg_dump` advised first), and the one-way copy of an SQLite store into
//! a new PostgreSQL database (`--to`).

use super::output::outln;
use std::process::ExitCode;

use anyhow::Context;

use crate::Exit;
use crate::cli::MigrateArgs;
use crate::config::{Config, StorageKind};
use crate::store::postgres::{self, PostgresStore};
use crate::store::sqlite::{StoreLock, schema};

pub fn run(config: &Config, args: &MigrateArgs) -> anyhow::Result<ExitCode> {
    if let Some(url) = &args.to {
        return copy_to(config, url);
    }
    let (database, status) = match config.storage.kind {
        StorageKind::Sqlite => {
            let path = &config.storage.path;
            let status = schema::status(path).with_context(|| format!("cannot read {}", path.display()))?;
            (
                path.display().to_string(),
                Status { current: status.current, target: status.target, pending: status.pending },
            )
        }
        StorageKind::Postgres => {
            let options = postgres::options_of(&config.storage)?;
            let shown = options.shown().to_string();
            let store = PostgresStore::connect(options).map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
            let mut c = store.client().map_err(|e| anyhow::anyhow!("cannot connect to {shown}: {e}"))?;
            let s = postgres::schema::status(&mut *c).map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
            (shown, Status { current: s.current, target: s.target, pending: s.pending })
        }
    };
    if let Some(current) = status.current
        && current > status.target
    {
        anyhow::bail!(
            "{database} is at schema {current}, newer than this binary ({}): it needs a newer openclaw (schema {current}); nothing was changed",
            status.target
        );
    }
    let current = match status.current {
        Some(v) => v.to_string(),
        None => "none (no database yet)".into(),
    };
    if args.status || args.dry_run {
        outln!("database: {database}");
        outln!("current schema: {current}");
        outln!("target schema:  {}", status.target);
        if status.pending.is_empty() {
            outln!("pending: none (up to date)");
        } else {
            outln!("pending:");
            for name in &status.pending {
                outln!("  {name}");
            }
        }
        if args.dry_run && !status.pending.is_empty() {
            match (config.storage.kind, status.current) {
                (_, None) => outln!("a real run would create the database's tables at schema {}", status.target),
                (StorageKind::Sqlite, Some(_)) => outln!(
                    "a real run would first back the database up beside it, then apply each migration in its own transaction"
                ),
                (StorageKind::Postgres, Some(_)) => outln!(
                    "a real run would apply each migration in its own transaction; back the database up first: pg_dump --format=custom --file=openclaw.dump '{database}'"
                ),
            }
        }
        return Ok(Exit::Ok.into());
    }
    match config.storage.kind {
        StorageKind::Sqlite => migrate_sqlite(config),
        StorageKind::Postgres => migrate_postgres(config),
    }
}

/// What `--status` shows, for either store.
struct Status {
    current: Option<usize>,
    target: usize,
    pending: Vec<&'static str>,
}

fn migrate_sqlite(config: &Config) -> anyhow::Result<ExitCode> {
    let path = &config.storage.path;
    crate::store::sqlite::prepare_dir(path)?;
    let _lock = StoreLock::acquire(path)?;
    let report = schema::migrate(path).with_context(|| format!("migrating {} failed", path.display()))?;
    if let Some(backup) = &report.backup {
        outln!("backup: {}", backup.display());
    }
    if report.applied.is_empty() {
        outln!("{} is up to date (schema {}); nothing to do", path.display(), report.to);
    } else {
        for name in &report.applied {
            outln!("applied {name}");
        }
        outln!("{} is now at schema {}", path.display(), report.to);
    }
    Ok(Exit::Ok.into())
}

fn migrate_postgres(config: &Config) -> anyhow::Result<ExitCode> {
    let options = postgres::options_of(&config.storage)?;
    let shown = options.shown().to_string();
    let store = PostgresStore::connect(options).map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
    let mut c = store.client().map_err(|e| anyhow::anyhow!("cannot connect to {shown}: {e}"))?;
    let applied = postgres::schema::apply(&mut c, postgres::schema::LATEST)
        .map_err(|e| anyhow::anyhow!("migrating {shown} failed (each migration is one transaction: the database is at the last one that finished): {e}"))?;
    if applied.is_empty() {
        outln!("{shown} is up to date (schema {}); nothing to do", postgres::schema::LATEST);
    } else {
        for name in &applied {
            outln!("applied {name}");
        }
        outln!("{shown} is now at schema {}", postgres::schema::LATEST);
    }
    Ok(Exit::Ok.into())
}

/// `--to URL`: the SQLite store (storage.path) copied into a new PostgreSQL database.
fn copy_to(config: &Config, url: &str) -> anyhow::Result<ExitCode> {
    if config.storage.kind == StorageKind::Postgres {
        return Err(crate::usage_error(
            "migrate --to copies the SQLite store (storage.path) into PostgreSQL, but storage.type is already postgres: run it with the SQLite config (or --db-path)",
        ));
    }
    let storage = crate::config::StorageConfig { url: Some(url.to_string()), ..config.storage.clone() };
    let options = postgres::options_of(&storage)?;
    let shown = options.shown().to_string();
    let from = &config.storage.path;
    let copied = crate::store::copy::sqlite_to_postgres(from, options)
        .with_context(|| format!("copying {} into {shown} failed", from.display()))?;
    outln!("copied {} into {shown}:", from.display());
    for (table, rows) in &copied.tables {
        outln!("  {table}: {rows} rows (counts match)");
    }
    outln!(
        "next: set storage.type: postgres and storage.url: {shown} in the coordinator's config (the password in storage.password_file), start the coordinator, and keep {} as a backup",
        from.display()
    );
    Ok(Exit::Ok.into())
}
