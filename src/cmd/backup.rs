//! `openclaw backup FILE`: a consistent copy of the coordinator's database, taken through the
//! API while it runs (`cp` of a live WAL database is not a backup). A PostgreSQL store is
//! backed up with `pg_dump`: the command says so (exit 2), as does the coordinator (501).
//!
//! The copy is written to `FILE.partial`, synced, checked to be a readable openclaw store,
//! then renamed to `FILE`: a `FILE` that exists is always a whole backup. Both are mode
//! 0600 on Unix, like the database they copy: they hold the node secrets' hashes and every
//! task's parameters and results.

use crate::Exit;
use crate::api::Route;
use crate::cli::BackupArgs;
use crate::config::Config;
use crate::usage_error;

use super::output::outln;
use super::remote::connect;

pub async fn run(config: &Config, args: BackupArgs) -> anyhow::Result<Exit> {
    // A PostgreSQL store is backed up by PostgreSQL's own tools (a coordinator on one
    // answers `not_supported` with the same advice, for a CLI whose config does not say).
    if config.storage.kind == crate::config::StorageKind::Postgres {
        let advice = match crate::store::postgres::options_of(&config.storage) {
            Ok(options) => crate::store::postgres::backup_advice(&options),
            Err(_) => crate::store::postgres::backup_advice_for("postgres://USER@HOST:PORT/DATABASE"),
        };
        return Err(usage_error(format!("openclaw backup copies an SQLite store; {advice}")));
    }
    if args.file.exists() {
        return Err(usage_error(format!("{} exists; choose a new file name", args.file.display())));
    }
    let client = connect(config, &args.client)?;
    let mut partial = args.file.clone().into_os_string();
    partial.push(".partial");
    let partial = std::path::PathBuf::from(partial);
    let mut out =
        private_file(&partial).await.map_err(|e| usage_error(format!("cannot create {}: {e}", partial.display())))?;
    let size = match client.download(&Route::Backup, &mut out).await {
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(client.fail(e));
        }
    };
    out.sync_all().await?;
    drop(out);
    match crate::store::sqlite::inspect(&partial) {
        Ok(Some(crate::store::sqlite::schema::State::At(version))) => {
            std::fs::rename(&partial, &args.file)?;
            outln!("{} ({size} bytes, schema {version})", args.file.display());
            outln!(
                "restore: stop the coordinator, replace storage.path with this file (remove the old -wal and -shm files beside it), start the coordinator"
            );
            Ok(Exit::Ok)
        }
        other => {
            let _ = std::fs::remove_file(&partial);
            anyhow::bail!(
                "the coordinator sent something that is not an openclaw database ({other:?}); nothing was written"
            )
        }
    }
}

/// Creates (or empties) a file only its owner can read (0600 on Unix, also when a stale
/// `.partial` was left with other permissions).
async fn private_file(path: &std::path::Path) -> std::io::Result<tokio::fs::File> {
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let file = options.open(path).await?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600)).await?;
    }
    Ok(file)
}
