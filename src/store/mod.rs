//! The stores: where the coordinator keeps its state. Each one implements the seam the
//! coordinator owns (`coordinator::store::Store` and its `WriteSession`); [`open`] picks
//! one by `storage.type`. Nothing above this module speaks a store's dialect.
//!
//! - [`sqlite`]: one SQLite file beside the tokens, locked to one process; the embedded
//!   default that needs nothing.
//! - [`postgres`]: a PostgreSQL database shared by one or more coordinators, one of which
//!   leads by the lease the store keeps (its write sessions are fenced by the lease's epoch).
//!
//! Adding a store: a module here implementing the seam, a variant of
//! `config::StorageKind`, and its line in [`open`]; `openclaw migrate` and `openclaw backup`
//! branch on `storage.type` (`cmd/migrate.rs`, `cmd/backup.rs`).

pub mod copy;
pub mod postgres;
pub mod sqlite;
#[cfg(test)]
pub mod testing;

use std::sync::Arc;

use crate::config::{StorageConfig, StorageKind};
use crate::coordinator::store::Store;

pub use sqlite::NotWritable;

/// An open store, and what must stay held while the coordinator uses it (for SQLite, the
/// database's lock: dropped when the coordinator stops, after its last write).
pub struct Opened {
    pub store: Arc<dyn Store>,
    pub guard: Box<dyn std::any::Any + Send + Sync>,
}

/// Opens the configured store for a coordinator (blocking). A store that cannot be written
/// fails with [`NotWritable`] in the error's chain (exit code 3).
pub fn open(storage: &StorageConfig) -> anyhow::Result<Opened> {
    match storage.kind {
        StorageKind::Sqlite => {
            let (store, lock) = sqlite::open_for_coordinator(&storage.path)?;
            Ok(Opened { store: Arc::new(store), guard: Box::new(lock) })
        }
        StorageKind::Postgres => {
            // The token files live in storage.path's folder with either store.
            sqlite::prepare_dir(&storage.path).map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(Opened { store: Arc::new(postgres::open_for_coordinator(storage)?), guard: Box::new(()) })
        }
    }
}
