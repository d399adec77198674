//! `openclaw migrate [--status] [--dry-run]`: schema status and migrations, with a backup
//! taken first.

use std::process::ExitCode;

use anyhow::Context;

use crate::Exit;
use crate::cli::MigrateArgs;
use crate::config::Config;
use crate::store::{StoreLock, schema};

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
        println!("database: {}", path.display());
        println!("current schema: {current}");
        println!("target schema:  {}", status.target);
        if status.pending.is_empty() {
            println!("pending: none (up to date)");
        } else {
            println!("pending:");
            for name in &status.pending {
                println!("  {name}");
            }
        }
        if args.dry_run && !status.pending.is_empty() {
            if status.current.is_some() {
                println!(
                    "a real run would first back the database up beside it, then apply each migration in its own transaction"
                );
            } else {
                println!("a real run would create the database at schema {}", status.target);
            }
        }
        return Ok(Exit::Ok.into());
    }
    crate::store::prepare_dir(path)?;
    let _lock = StoreLock::acquire(path)?;
    let report = schema::migrate(path).with_context(|| format!("migrating {} failed", path.display()))?;
    if let Some(backup) = &report.backup {
        println!("backup: {}", backup.display());
    }
    if report.applied.is_empty() {
        println!("{} is up to date (schema {}); nothing to do", path.display(), report.to);
    } else {
        for name in &report.applied {
            println!("applied {name}");
        }
        println!("{} is now at schema {}", path.display(), report.to);
    }
    Ok(Exit::Ok.into())
}
