//! The stores: where the coordinator keeps its state. Each one implements the seam the
//! coordinator owns (`coordinator::store::Store` and its `WriteSession`); [`open`] picks
//! one by `storage.type`. Nothing above this module speaks a store's dialect.
//!
//! - [`sqlite`]: one SQLite file beside the tokens, locked to one process; the embedded
//!   default that needs nothing.
//!
//! Adding a store (PostgreSQL, issue 19): a module here implementing the seam, a variant of
//! `config::StorageKind`, and its line in [`open`]. `openclaw migrate` and `openclaw backup`
//! work on the SQLite file today (`cmd/migrate.rs`, `cmd/backup.rs` call [`sqlite`]); a
//! second store gives them a branch on `storage.type` too.

pub mod sqlite;

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
    }
}
