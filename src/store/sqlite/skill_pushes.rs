//! Pushed skills' rows: each package's bytes under its digest (written once, never
//! changed), and each push's record (rewritten whole by each change).

use rusqlite::{Connection, OptionalExtension, params};

use super::{json_column, to_json};
use crate::coordinator::store::{PackageRow, PushRecord, PushRows};

/// Stores a package (a digest stored already is left as it is: same digest, same bytes).
pub fn insert_package(conn: &Connection, p: &PackageRow) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO skill_packages (digest, name, size, bytes, pushed_by, pushed_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
         ON CONFLICT (digest) DO NOTHING",
    )?
    .execute(params![p.digest, p.name, p.bytes.len() as i64, p.bytes, p.by, p.at])?;
    Ok(())
}

/// Writes a push's record.
pub fn upsert(conn: &Connection, r: &PushRecord) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO skill_pushes (name, digest, previous, selector, except_nodes, pushed_by, pushed_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![r.name, r.digest, r.previous, to_json(&r.selector), to_json(&r.except), r.by, r.at])?;
    Ok(())
}

/// Every push, and every package's digest and size.
pub fn load_all(conn: &Connection) -> rusqlite::Result<PushRows> {
    let mut stmt = conn.prepare_cached(
        "SELECT name, digest, previous, selector, except_nodes, pushed_by, pushed_at FROM skill_pushes ORDER BY name",
    )?;
    let pushes = stmt
        .query_map([], |r| {
            let name: String = r.get(0)?;
            Ok(PushRecord {
                digest: r.get(1)?,
                previous: r.get(2)?,
                selector: json_column(r, 3, "skill_pushes", &name)?,
                except: json_column(r, 4, "skill_pushes", &name)?,
                by: r.get(5)?,
                at: r.get(6)?,
                name,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut stmt = conn.prepare_cached("SELECT digest, size FROM skill_packages")?;
    let sizes = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?.max(0) as u64)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok((pushes, sizes))
}

/// A package's bytes.
pub fn package(conn: &Connection, digest: &str) -> rusqlite::Result<Option<Vec<u8>>> {
    conn.prepare_cached("SELECT bytes FROM skill_packages WHERE digest = ?1")?
        .query_row([digest], |r| r.get(0))
        .optional()
}
