//! Secret rows: each cluster secret's sealed value (the coordinator seals and opens it;
//! this file only keeps the bytes), the id of the key that sealed it, its scope and who
//! set it — the SQLite store's `secrets` in PostgreSQL's words.

use postgres::GenericClient;

use super::PgError;
use super::rows::{Cols, to_json};
use crate::coordinator::store::{SecretChange, SecretRow};

/// Every stored secret, by name.
pub fn load_all(c: &mut impl GenericClient) -> Result<Vec<SecretRow>, PgError> {
    let rows = c.query("SELECT name, key_id, sealed, scope, set_by, set_at FROM secrets ORDER BY name", &[])?;
    rows.iter()
        .map(|row| {
            let c = Cols::keyed(row, "secrets", 0)?;
            Ok(SecretRow {
                name: c.key().to_string(),
                key_id: c.get(1)?,
                sealed: c.get(2)?,
                scope: c.opt_json(3)?,
                set_by: c.get(4)?,
                set_at: c.get(5)?,
            })
        })
        .collect()
}

/// Applies changes in order (inside the writer's transaction).
pub fn apply(tx: &mut postgres::Transaction, changes: &[SecretChange]) -> Result<(), PgError> {
    for change in changes {
        match change {
            SecretChange::Put(r) => {
                tx.execute(
                    "INSERT INTO secrets (name, key_id, sealed, scope, set_by, set_at) VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (name) DO UPDATE SET key_id = excluded.key_id, sealed = excluded.sealed, \
                     scope = excluded.scope, set_by = excluded.set_by, set_at = excluded.set_at",
                    &[&r.name, &r.key_id, &r.sealed, &r.scope.as_ref().map(to_json), &r.set_by, &r.set_at],
                )?;
            }
            SecretChange::Delete(name) => {
                tx.execute("DELETE FROM secrets WHERE name = $1", &[name])?;
            }
        }
    }
    Ok(())
}
