//! Secret rows: each cluster secret's sealed value (the coordinator seals and opens it;
//! this file only keeps the bytes), the id of the key that sealed it, its scope and who
//! set it.

use rusqlite::{Connection, params};

use super::{optional_json_column, to_json};
use crate::coordinator::store::{SecretChange, SecretRow};

/// Every stored secret, by name.
pub fn load_all(conn: &Connection) -> rusqlite::Result<Vec<SecretRow>> {
    let mut stmt = conn.prepare("SELECT name, key_id, sealed, scope, set_by, set_at FROM secrets ORDER BY name")?;
    let rows = stmt.query_map([], |r| {
        let name: String = r.get(0)?;
        Ok(SecretRow {
            key_id: r.get(1)?,
            sealed: r.get(2)?,
            scope: optional_json_column(r, 3, "secrets", &name)?,
            set_by: r.get(4)?,
            set_at: r.get(5)?,
            name,
        })
    })?;
    rows.collect()
}

/// Applies changes in order.
pub fn apply(conn: &Connection, changes: &[SecretChange]) -> rusqlite::Result<()> {
    for change in changes {
        match change {
            SecretChange::Put(r) => {
                conn.prepare_cached(
                    "INSERT OR REPLACE INTO secrets (name, key_id, sealed, scope, set_by, set_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![
                    r.name,
                    r.key_id,
                    r.sealed,
                    r.scope.as_ref().map(to_json),
                    r.set_by,
                    r.set_at
                ])?;
            }
            SecretChange::Delete(name) => {
                conn.prepare_cached("DELETE FROM secrets WHERE name = ?1")?.execute([name])?;
            }
        }
    }
    Ok(())
}
