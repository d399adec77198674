//! Node rows: the durable part of the registry (identity, skills, counters, drain flag,
//! secret hash). Liveness and usage figures live in the coordinator's memory and reach
//! this table in batches.

use std::collections::BTreeMap;

use rusqlite::{Connection, Row, params};

use super::{from_json, to_json};

/// One row of `nodes`.
#[derive(Debug, Clone, Default)]
pub struct NodeRecord {
    pub node_id: String,
    pub hostname: String,
    pub platform: String,
    pub arch: String,
    pub available_skills: Vec<String>,
    pub unavailable_skills: BTreeMap<String, String>,
    pub max_concurrent_tasks: u32,
    pub ip_address: String,
    pub tailscale_ip: String,
    pub port: u16,
    pub tags: Vec<String>,
    pub version: Option<String>,
    pub draining: bool,
    /// The status when the row was last written (memory derives the live status).
    pub status: String,
    pub cpu_usage: f64,
    pub memory_usage: f64,
    pub disk_usage: f64,
    pub total_tasks_processed: u64,
    pub successful_tasks: u64,
    pub failed_tasks: u64,
    pub total_execution_ms: u64,
    pub registered_at: i64,
    pub last_heartbeat: Option<i64>,
    pub incarnation: u64,
    pub secret_hash: String,
}

const COLUMNS: &str = "node_id, hostname, platform, arch, available_skills, unavailable_skills, \
    max_concurrent_tasks, ip_address, tailscale_ip, port, tags, version, draining, status, \
    cpu_usage, memory_usage, disk_usage, total_tasks_processed, successful_tasks, failed_tasks, \
    total_execution_ms, registered_at, last_heartbeat, incarnation, secret_hash";

fn from_row(r: &Row) -> rusqlite::Result<NodeRecord> {
    Ok(NodeRecord {
        node_id: r.get(0)?,
        hostname: r.get(1)?,
        platform: r.get(2)?,
        arch: r.get(3)?,
        available_skills: from_json(&r.get::<_, String>(4)?),
        unavailable_skills: from_json(&r.get::<_, String>(5)?),
        max_concurrent_tasks: r.get(6)?,
        ip_address: r.get(7)?,
        tailscale_ip: r.get(8)?,
        port: r.get(9)?,
        tags: from_json(&r.get::<_, String>(10)?),
        version: r.get(11)?,
        draining: r.get(12)?,
        status: r.get(13)?,
        cpu_usage: r.get(14)?,
        memory_usage: r.get(15)?,
        disk_usage: r.get(16)?,
        total_tasks_processed: r.get::<_, i64>(17)? as u64,
        successful_tasks: r.get::<_, i64>(18)? as u64,
        failed_tasks: r.get::<_, i64>(19)? as u64,
        total_execution_ms: r.get::<_, i64>(20)? as u64,
        registered_at: r.get(21)?,
        last_heartbeat: r.get(22)?,
        incarnation: r.get::<_, i64>(23)? as u64,
        secret_hash: r.get(24)?,
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
    conn.execute(
        &format!(
            "INSERT OR REPLACE INTO nodes ({COLUMNS}) VALUES \
             (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25)"
        ),
        params![
            n.node_id,
            n.hostname,
            n.platform,
            n.arch,
            to_json(&n.available_skills),
            to_json(&n.unavailable_skills),
            n.max_concurrent_tasks,
            n.ip_address,
            n.tailscale_ip,
            n.port,
            to_json(&n.tags),
            n.version,
            n.draining,
            n.status,
            n.cpu_usage,
            n.memory_usage,
            n.disk_usage,
            n.total_tasks_processed as i64,
            n.successful_tasks as i64,
            n.failed_tasks as i64,
            n.total_execution_ms as i64,
            n.registered_at,
            n.last_heartbeat,
            n.incarnation as i64,
            n.secret_hash,
        ],
    )?;
    Ok(())
}

/// Deletes a node's row.
pub fn delete(conn: &Connection, node_id: &str) -> rusqlite::Result<()> {
    conn.execute("DELETE FROM nodes WHERE node_id = ?1", [node_id])?;
    Ok(())
}

/// The volatile figures of one node, flushed in batches.
#[derive(Debug, Clone)]
pub struct Liveness {
    pub node_id: String,
    pub status: String,
    pub cpu_usage: f64,
    pub memory_usage: f64,
    pub disk_usage: f64,
    pub last_heartbeat: Option<i64>,
}

/// Writes a batch of liveness figures.
pub fn update_liveness(conn: &Connection, batch: &[Liveness]) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(
        "UPDATE nodes SET status = ?2, cpu_usage = ?3, memory_usage = ?4, disk_usage = ?5, \
         last_heartbeat = ?6 WHERE node_id = ?1",
    )?;
    for l in batch {
        stmt.execute(params![l.node_id, l.status, l.cpu_usage, l.memory_usage, l.disk_usage, l.last_heartbeat])?;
    }
    Ok(())
}
