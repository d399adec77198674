//! The store the library's tests run on: SQLite by default, PostgreSQL when
//! `OPENCLAW_TEST_STORE=postgres` (a database of its own on one real server per test
//! process, see `tests/it/postgres_server.rs`). CI runs the store-facing tests both ways.

use std::sync::Arc;

use crate::coordinator::store::{Claim, Store};

#[path = "../../tests/it/postgres_server.rs"]
pub mod server;

/// Which store the tests run on.
pub fn postgres_wanted() -> bool {
    std::env::var("OPENCLAW_TEST_STORE").as_deref() == Ok("postgres")
}

/// A new, empty store and what must live as long as it is used.
pub fn new_store() -> (Arc<dyn Store>, Box<dyn std::any::Any>) {
    if postgres_wanted() {
        let pg = server::shared().expect("OPENCLAW_TEST_STORE=postgres but PostgreSQL is not installed");
        let options = super::postgres::ConnectOptions::parse(&pg.fresh_db(), None, None, true).unwrap();
        (Arc::new(super::postgres::PostgresStore::open(options).unwrap()), Box::new(()))
    } else {
        let dir = tempfile::tempdir().unwrap();
        let store = super::sqlite::SqliteStore::open(&dir.path().join("cluster.db")).unwrap();
        (Arc::new(store), Box::new(dir))
    }
}

/// The epoch a test's writer is fenced at: the lease claimed for the test when the store
/// has one.
pub fn lead(store: &dyn Store) -> Option<u64> {
    store.lease().map(|l| match l.claim("test", "http://127.0.0.1:1", std::time::Duration::from_secs(3600)).unwrap() {
        Claim::Won(epoch) => epoch,
        other => panic!("a new store's lease is free, got {other:?}"),
    })
}
