//! Node rows: the durable part of the registry (see the SQLite store's `nodes`).

use postgres::GenericClient;
use postgres::types::ToSql;

use super::rows::{Cols, to_json};
use super::{PgError, Stmts};
use crate::coordinator::store::{Liveness, NodeRecord};
use crate::model::{NodeCounters, NodeSpec, NodeUsage};

pub const COLUMNS: &str = "node_id, hostname, platform, arch, available_skills, unavailable_skills, \
    max_concurrent_tasks, ip_address, tailscale_ip, port, tags, version, draining, status, \
    cpu_usage, memory_usage, disk_usage, total_tasks_processed, successful_tasks, failed_tasks, \
    total_execution_ms, registered_at, last_heartbeat, incarnation, secret_hash, secret_used";

/// `INSERT … ON CONFLICT (node_id) DO UPDATE` of every column.
pub fn upsert_sql() -> String {
    let names: Vec<&str> = COLUMNS.split(',').map(str::trim).collect();
    let values: Vec<String> = (1..=names.len()).map(|i| format!("${i}")).collect();
    let set: Vec<String> = names.iter().skip(1).map(|n| format!("{n} = excluded.{n}")).collect();
    format!(
        "INSERT INTO nodes ({COLUMNS}) VALUES ({}) ON CONFLICT (node_id) DO UPDATE SET {}",
        values.join(", "),
        set.join(", ")
    )
}

pub const DELETE: &str = "DELETE FROM nodes WHERE node_id = $1";
pub const LIVENESS: &str = "UPDATE nodes SET status = $2, cpu_usage = $3, memory_usage = $4, disk_usage = $5, \
    last_heartbeat = $6 WHERE node_id = $1";

fn from_row(row: &postgres::Row) -> Result<NodeRecord, PgError> {
    let c = Cols::keyed(row, "nodes", 0)?;
    Ok(NodeRecord {
        spec: NodeSpec {
            hostname: c.get(1)?,
            platform: c.get(2)?,
            arch: c.get(3)?,
            available_skills: c.json(4)?,
            unavailable_skills: c.json(5)?,
            max_concurrent_tasks: c.u32(6)?,
            ip_address: c.get(7)?,
            tailscale_ip: c.get(8)?,
            port: c.u16(9)?,
            tags: c.json(10)?,
            version: c.get(11)?,
        },
        draining: c.get(12)?,
        status: c.get(13)?,
        usage: NodeUsage { cpu_usage: c.get(14)?, memory_usage: c.get(15)?, disk_usage: c.get(16)? },
        counters: NodeCounters {
            total_tasks_processed: c.u64(17)?,
            successful_tasks: c.u64(18)?,
            failed_tasks: c.u64(19)?,
            total_execution_ms: c.u64(20)?,
        },
        registered_at: c.get(21)?,
        last_heartbeat: c.get(22)?,
        incarnation: c.u64(23)?,
        secret_hash: c.get(24)?,
        secret_used: c.get(25)?,
        node_id: c.key().to_string(),
    })
}

/// Every node, for the registry at start.
pub fn load_all(c: &mut impl GenericClient) -> Result<Vec<NodeRecord>, PgError> {
    c.query(&format!("SELECT {COLUMNS} FROM nodes ORDER BY node_id"), &[])?.iter().map(from_row).collect()
}

/// Inserts or replaces a node row.
pub fn upsert(tx: &mut postgres::Transaction, s: &Stmts, n: &NodeRecord) -> Result<(), PgError> {
    let spec = &n.spec;
    let params: [&(dyn ToSql + Sync); 26] = [
        &n.node_id,
        &spec.hostname,
        &spec.platform,
        &spec.arch,
        &to_json(&spec.available_skills),
        &to_json(&spec.unavailable_skills),
        &i64::from(spec.max_concurrent_tasks),
        &spec.ip_address,
        &spec.tailscale_ip,
        &i64::from(spec.port),
        &to_json(&spec.tags),
        &spec.version,
        &n.draining,
        &n.status,
        &n.usage.cpu_usage,
        &n.usage.memory_usage,
        &n.usage.disk_usage,
        &(n.counters.total_tasks_processed as i64),
        &(n.counters.successful_tasks as i64),
        &(n.counters.failed_tasks as i64),
        &(n.counters.total_execution_ms as i64),
        &n.registered_at,
        &n.last_heartbeat,
        &(n.incarnation as i64),
        &n.secret_hash,
        &n.secret_used,
    ];
    tx.execute(&s.upsert_node, &params)?;
    Ok(())
}

/// Writes a batch of liveness figures.
pub fn update_liveness(tx: &mut postgres::Transaction, s: &Stmts, batch: &[Liveness]) -> Result<(), PgError> {
    for l in batch {
        let u = &l.usage;
        tx.execute(
            &s.liveness,
            &[&l.node_id, &l.status, &u.cpu_usage, &u.memory_usage, &u.disk_usage, &l.last_heartbeat],
        )?;
    }
    Ok(())
}
