//! Node rows: the durable part of the registry (what the worker declared, counters, the
//! drain flag, the secret's hash, the incarnation). Liveness and usage figures live in the
//! coordinator's memory and reach this table in batches.

use rusqlite::{Connection, Row, params};

use super::{damaged, json_column, to_json};
use crate::coordinator::store::{Liveness, NodeRecord};
use crate::model::{NodeCounters, NodeSpec, NodeUsage};

const COLUMNS: &str = "node_id, hostname, platform, arch, available_skills, unavailable_skills, \
    max_concurrent_tasks, ip_address, tailscale_ip, port, tags, version, draining, status, \
    cpu_usage, memory_usage, disk_usage, total_tasks_processed, successful_tasks, failed_tasks, \
    total_execution_ms, registered_at, last_heartbeat, incarnation, secret_hash, secret_used, skill_digests";

fn count(r: &Row, idx: usize, key: &str) -> rusqlite::Result<u64> {
    let v: i64 = r.get(idx)?;
    u64::try_from(v).map_err(|_| damaged(r, idx, "nodes", key, &format!("negative count {v}")))
}

fn from_row(r: &Row) -> rusqlite::Result<NodeRecord> {
    let node_id: String = r.get(0)?;
    let key = node_id.as_str();
    Ok(NodeRecord {
        spec: NodeSpec {
            hostname: r.get(1)?,
            platform: r.get(2)?,
            arch: r.get(3)?,
            available_skills: json_column(r, 4, "nodes", key)?,
            unavailable_skills: json_column(r, 5, "nodes", key)?,
            skill_digests: json_column(r, 26, "nodes", key)?,
            max_concurrent_tasks: r.get(6)?,
            ip_address: r.get(7)?,
            tailscale_ip: r.get(8)?,
            port: r.get(9)?,
            tags: json_column(r, 10, "nodes", key)?,
            version: r.get(11)?,
        },
        draining: r.get(12)?,
        status: r.get(13)?,
        usage: NodeUsage { cpu_usage: r.get(14)?, memory_usage: r.get(15)?, disk_usage: r.get(16)? },
        counters: NodeCounters {
            total_tasks_processed: count(r, 17, key)?,
            successful_tasks: count(r, 18, key)?,
            failed_tasks: count(r, 19, key)?,
            total_execution_ms: count(r, 20, key)?,
        },
        registered_at: r.get(21)?,
        last_heartbeat: r.get(22)?,
        incarnation: count(r, 23, key)?,
        secret_hash: r.get(24)?,
        secret_used: r.get(25)?,
        node_id,
    })
}

/// Every node, for the registry at start.
pub fn load_all(conn: &Connection) -> rusqlite::Result<Vec<NodeRecord>> {
    let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM nodes ORDER BY node_id"))?;
    let rows = stmt.query_map([], from_row)?;
    rows.collect()
}

/// Inserts or replaces a node row.
pub fn upsert(conn: &Connection, n: &NodeRecord) -> rusqlite::Result<()> {
    let s = &n.spec;
    conn.prepare_cached(&format!(
        "INSERT OR REPLACE INTO nodes ({COLUMNS}) VALUES \
         (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27)"
    ))?
    .execute(params![
        n.node_id,
        s.hostname,
        s.platform,
        s.arch,
        to_json(&s.available_skills),
        to_json(&s.unavailable_skills),
        s.max_concurrent_tasks,
        s.ip_address,
        s.tailscale_ip,
        s.port,
        to_json(&s.tags),
        s.version,
        n.draining,
        n.status,
        n.usage.cpu_usage,
        n.usage.memory_usage,
        n.usage.disk_usage,
        n.counters.total_tasks_processed as i64,
        n.counters.successful_tasks as i64,
        n.counters.failed_tasks as i64,
        n.counters.total_execution_ms as i64,
        n.registered_at,
        n.last_heartbeat,
        n.incarnation as i64,
        n.secret_hash,
        n.secret_used,
        to_json(&s.skill_digests),
    ])?;
    Ok(())
}

/// Deletes a node's row.
pub fn delete(conn: &Connection, node_id: &str) -> rusqlite::Result<()> {
    conn.execute("DELETE FROM nodes WHERE node_id = ?1", [node_id])?;
    Ok(())
}

/// Writes a batch of liveness figures.
pub fn update_liveness(conn: &Connection, batch: &[Liveness]) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(
        "UPDATE nodes SET status = ?2, cpu_usage = ?3, memory_usage = ?4, disk_usage = ?5, \
         last_heartbeat = ?6 WHERE node_id = ?1",
    )?;
    for l in batch {
        let u = &l.usage;
        stmt.execute(params![l.node_id, l.status, u.cpu_usage, u.memory_usage, u.disk_usage, l.last_heartbeat])?;
    }
    Ok(())
}
