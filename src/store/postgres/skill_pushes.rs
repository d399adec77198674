//! Pushed skills' rows — the SQLite store's `skill_packages` and `skill_pushes` in
//! PostgreSQL's words: each package's bytes under its digest (written once), and each
//! push's record (rewritten whole by each change).

use postgres::GenericClient;

use super::PgError;
use super::rows::{Cols, to_json};
use crate::coordinator::store::{PackageRow, PushRecord, PushRows};

/// Stores a package (a digest stored already is left as it is).
pub fn insert_package(tx: &mut postgres::Transaction, p: &PackageRow) -> Result<(), PgError> {
    tx.execute(
        "INSERT INTO skill_packages (digest, name, size, bytes, pushed_by, pushed_at) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (digest) DO NOTHING",
        &[&p.digest, &p.name, &(p.bytes.len() as i64), &p.bytes, &p.by, &p.at],
    )?;
    Ok(())
}

/// Writes a push's record.
pub fn upsert(tx: &mut postgres::Transaction, r: &PushRecord) -> Result<(), PgError> {
    tx.execute(
        "INSERT INTO skill_pushes (name, digest, previous, selector, except_nodes, pushed_by, pushed_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (name) DO UPDATE SET digest = excluded.digest, \
         previous = excluded.previous, selector = excluded.selector, except_nodes = excluded.except_nodes, \
         pushed_by = excluded.pushed_by, pushed_at = excluded.pushed_at",
        &[&r.name, &r.digest, &r.previous, &to_json(&r.selector), &to_json(&r.except), &r.by, &r.at],
    )?;
    Ok(())
}

/// Every push, and every package's digest and size.
pub fn load_all(c: &mut impl GenericClient) -> Result<PushRows, PgError> {
    let rows = c.query(
        "SELECT name, digest, previous, selector, except_nodes, pushed_by, pushed_at FROM skill_pushes ORDER BY name",
        &[],
    )?;
    let pushes = rows
        .iter()
        .map(|row| {
            let c = Cols::keyed(row, "skill_pushes", 0)?;
            Ok(PushRecord {
                name: c.key().to_string(),
                digest: c.get(1)?,
                previous: c.get(2)?,
                selector: c.json(3)?,
                except: c.json(4)?,
                by: c.get(5)?,
                at: c.get(6)?,
            })
        })
        .collect::<Result<Vec<_>, PgError>>()?;
    let sizes = c
        .query("SELECT digest, size FROM skill_packages", &[])?
        .iter()
        .map(|row| (row.get::<_, String>(0), row.get::<_, i64>(1).max(0) as u64))
        .collect();
    Ok((pushes, sizes))
}

/// A package's bytes.
pub fn package(c: &mut impl GenericClient, digest: &str) -> Result<Option<Vec<u8>>, PgError> {
    Ok(c.query_opt("SELECT bytes FROM skill_packages WHERE digest = $1", &[&digest])?.map(|row| row.get(0)))
}
