//! `openclaw migrate [--status] [--dry-run]`: schema status and migrations, with a backup
//! taken first.

use super::output::outln;
use std::process::ExitCode;

use anyhow::Context;

use crate::Exit;
use crate::cli::MigrateArgs;
use crate::config::Config;
use crate::store::sqlite::{StoreLock, schema};

pub fn run(config: &Config, args: &MigrateArgs) -> anyhow::Result<ExitCode> {
    let path = &config.storage.path;
    let status = schema::status(path).with_context(|| format!("cannot read {}", path.display()))?;
    if let Some(current) = status.current
        && current > status.target
    {
        anyhow::bail!(
            "{} is at schema {current}, newer than this binary ({}): it needs a newer openclaw (schema {current}); nothing was changed",
            path.display(),
            status.target
        );
    }
    let current = match status.current {
        Some(v) => v.to_string(),
        None => "none (no database yet)".into(),
    };
    if args.status || args.dry_run {
        outln!("database: {}", path.display());
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
            if status.current.is_some() {
                outln!(
                    "a real run would first back the database up beside it, then apply each migration in its own transaction"
                );
            } else {
                outln!("a real run would create the database at schema {}", status.target);
            }
        }
        return Ok(Exit::Ok.into());
    }
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
