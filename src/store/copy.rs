//! `openclaw migrate --to postgres://…`: the whole SQLite store copied into an empty
//! PostgreSQL database, in one PostgreSQL transaction, then checked table by table.
//!
//! The copy follows PostgreSQL's schema, not a list kept here: every table of the
//! PostgreSQL store except its own bookkeeping (`openclaw_schema`, `leader_lease`) is
//! copied column by column from the SQLite table of the same name, parents before the
//! tables whose foreign keys point at them. So a table that a later change adds to both
//! stores (same name and columns, as `store::postgres::schema` asks) is copied without
//! touching this module. Values are converted by the PostgreSQL column's type; one that
//! does not fit names its table, row and column.
//!
//! Invariants: the SQLite file is only read (under its lock, so no coordinator writes it
//! meanwhile) and must be at the current schema; the target must hold no openclaw rows (a
//! new database, or one a coordinator created but never used); the copy commits only when
//! every table's row count in PostgreSQL equals SQLite's, so a failed copy leaves the
//! target without rows (at most with the schema created).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{ToSql, Type};
use rusqlite::types::Value;

use super::postgres::{ConnectOptions, PgError, PostgresStore};
use super::sqlite::{self, schema as sqlite_schema};

/// A table's columns: name and PostgreSQL type, in order.
type Columns = Vec<(String, Type)>;

/// Tables that are the PostgreSQL store's own bookkeeping, not copied.
const NOT_COPIED: &[&str] = &["openclaw_schema", "leader_lease"];

/// What was copied: rows per table, in copy order.
#[derive(Debug, Clone)]
pub struct Copied {
    pub tables: Vec<(String, u64)>,
}

/// Copies the SQLite store at `from` into the PostgreSQL database of `to`. Blocking.
pub fn sqlite_to_postgres(from: &Path, to: ConnectOptions) -> anyhow::Result<Copied> {
    let shown = to.shown().to_string();
    match sqlite::inspect(from)? {
        Some(sqlite_schema::State::At(v)) if v == sqlite_schema::LATEST => {}
        Some(sqlite_schema::State::At(v)) => anyhow::bail!(
            "{} is at schema {v}, this binary's is {}: run `openclaw migrate` on it first, then copy",
            from.display(),
            sqlite_schema::LATEST
        ),
        None => anyhow::bail!("{} does not exist: nothing to copy (check storage.path or --db-path)", from.display()),
        Some(_) => anyhow::bail!("{} is not an openclaw store: nothing was copied", from.display()),
    }
    let _lock = sqlite::StoreLock::acquire(from)?;
    let lite = rusqlite::Connection::open_with_flags(from, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    // Create the schema in a new database (a coordinator may have created it already).
    let store = PostgresStore::open(to).map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
    let mut pg = store.client().map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
    let mut tx = pg.transaction().map_err(PgError::from)?;
    let tables = tables_in_copy_order(&mut tx)?;
    for (table, _) in &tables {
        let n: i64 = tx.query_one(&format!("SELECT count(*) FROM {table}"), &[]).map_err(PgError::from)?.get(0);
        if n > 0 {
            anyhow::bail!(
                "{shown} is not empty: its table {table} holds {n} rows; copy into a new database (CREATE DATABASE …) — nothing was copied"
            );
        }
    }
    let mut copied = Vec::new();
    for (table, columns) in &tables {
        let n = copy_table(&lite, &mut tx, table, columns)?;
        let want: i64 = lite.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?;
        let have: i64 = tx.query_one(&format!("SELECT count(*) FROM {table}"), &[]).map_err(PgError::from)?.get(0);
        if have != want || n != want as u64 {
            anyhow::bail!(
                "table {table}: SQLite holds {want} rows but {have} arrived in PostgreSQL; nothing was committed"
            );
        }
        copied.push((table.clone(), have as u64));
    }
    tx.commit().map_err(PgError::from)?;
    Ok(Copied { tables: copied })
}

/// The tables to copy with their columns (name, type), parents first.
fn tables_in_copy_order(tx: &mut postgres::Transaction) -> anyhow::Result<Vec<(String, Columns)>> {
    let mut columns: BTreeMap<String, Columns> = BTreeMap::new();
    let rows = tx
        .query(
            "SELECT c.relname::TEXT, a.attname::TEXT, a.atttypid FROM pg_attribute a \
             JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = current_schema() AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY c.relname, a.attnum",
            &[],
        )
        .map_err(PgError::from)?;
    for row in rows {
        let (table, column, oid): (String, String, u32) = (row.get(0), row.get(1), row.get(2));
        if NOT_COPIED.contains(&table.as_str()) {
            continue;
        }
        let ty = Type::from_oid(oid)
            .ok_or_else(|| anyhow::anyhow!("{table}.{column}: a column type openclaw does not copy"))?;
        columns.entry(table).or_default().push((column, ty));
    }
    let mut parents: BTreeMap<String, BTreeSet<String>> =
        columns.keys().map(|t| (t.clone(), BTreeSet::new())).collect();
    for row in tx
        .query(
            "SELECT conrelid::regclass::TEXT, confrelid::regclass::TEXT FROM pg_constraint \
             WHERE contype = 'f' AND connamespace = current_schema()::regnamespace",
            &[],
        )
        .map_err(PgError::from)?
    {
        let (child, parent): (String, String) = (row.get(0), row.get(1));
        if let Some(p) = parents.get_mut(&child)
            && child != parent
        {
            p.insert(parent);
        }
    }
    let mut order = Vec::new();
    while !parents.is_empty() {
        let ready: Vec<String> = parents
            .iter()
            .filter(|(_, ps)| ps.iter().all(|p| !parents.contains_key(p)))
            .map(|(t, _)| t.clone())
            .collect();
        if ready.is_empty() {
            anyhow::bail!("the PostgreSQL tables' foreign keys form a cycle: {:?}", parents.keys().collect::<Vec<_>>());
        }
        for t in ready {
            parents.remove(&t);
            let cols = columns.remove(&t).unwrap_or_default();
            order.push((t, cols));
        }
    }
    Ok(order)
}

/// Copies one table with PostgreSQL's binary COPY; the number of rows sent.
fn copy_table(
    lite: &rusqlite::Connection,
    tx: &mut postgres::Transaction,
    table: &str,
    columns: &[(String, Type)],
) -> anyhow::Result<u64> {
    let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
    let list = names.join(", ");
    let types: Vec<Type> = columns.iter().map(|(_, t)| t.clone()).collect();
    let mut select = lite.prepare(&format!("SELECT {list} FROM {table}")).map_err(|e| {
        anyhow::anyhow!("the SQLite store has no table {table} with columns {list} as PostgreSQL's has ({e})")
    })?;
    let sink = tx.copy_in(&format!("COPY {table} ({list}) FROM STDIN BINARY")).map_err(PgError::from)?;
    let mut writer = BinaryCopyInWriter::new(sink, &types);
    let mut rows = select.query([])?;
    let mut n = 0u64;
    while let Some(row) = rows.next()? {
        n += 1;
        let mut values: Vec<Box<dyn ToSql + Sync>> = Vec::with_capacity(columns.len());
        for (i, (column, ty)) in columns.iter().enumerate() {
            let v: Value = row.get(i)?;
            values.push(convert(v, ty).map_err(|what| anyhow::anyhow!("{table} row {n} column {column}: {what}"))?);
        }
        let refs: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| v.as_ref()).collect();
        writer.write(&refs).map_err(PgError::from)?;
    }
    writer.finish().map_err(PgError::from)?;
    Ok(n)
}

/// A SQLite value as the PostgreSQL column's type wants it.
fn convert(v: Value, ty: &Type) -> Result<Box<dyn ToSql + Sync>, String> {
    Ok(match (ty.name(), v) {
        ("text", Value::Null) => Box::new(None::<String>),
        ("int8", Value::Null) => Box::new(None::<i64>),
        ("int4", Value::Null) => Box::new(None::<i32>),
        ("bool", Value::Null) => Box::new(None::<bool>),
        ("float8", Value::Null) => Box::new(None::<f64>),
        ("text", Value::Text(s)) => Box::new(s),
        ("int8", Value::Integer(i)) => Box::new(i),
        ("int4", Value::Integer(i)) => Box::new(i32::try_from(i).map_err(|_| format!("{i} is out of range"))?),
        ("bool", Value::Integer(i)) => Box::new(i != 0),
        ("float8", Value::Real(f)) => Box::new(f),
        ("float8", Value::Integer(i)) => Box::new(i as f64),
        (name, v) => return Err(format!("{v:?} does not fit PostgreSQL's {name}")),
    })
}
