//! Task rows and their event history.
//!
//! A [`TaskRecord`] is also the coordinator's in-memory form of an active task, so the
//! row written and the state held are the same struct.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::Value;

use super::{from_json, to_json};
use crate::model::{Priority, Task, TaskEvent, TaskStatus, TaskType, Timestamp};

/// One row of `tasks`.
#[derive(Debug, Clone)]
pub struct TaskRecord {
    pub task_id: String,
    /// Submission order; the list cursor.
    pub seq: i64,
    pub name: String,
    pub description: String,
    pub task_type: TaskType,
    pub priority: Priority,
    pub required_skills: Vec<String>,
    pub optional_skills: Vec<String>,
    pub affinity_tags: Vec<String>,
    pub parameters: Value,
    pub metadata: Value,
    pub timeout_ms: i64,
    pub max_retries: u32,
    pub retry_count: u32,
    pub attempt: u32,
    pub user_id: Option<String>,
    pub idempotency_key: Option<String>,
    pub status: TaskStatus,
    pub assigned_node: Option<String>,
    pub result: Option<Value>,
    pub error: Option<String>,
    pub submitted_at: i64,
    pub scheduled_at: Option<i64>,
    pub started_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub next_attempt_at: Option<i64>,
    pub cancel_requested: bool,
}

impl TaskRecord {
    /// The API form.
    pub fn to_model(&self, pending_reason: Option<String>, events: Option<Vec<TaskEvent>>) -> Task {
        Task {
            task_id: self.task_id.clone(),
            name: self.name.clone(),
            description: self.description.clone(),
            task_type: self.task_type,
            status: self.status,
            priority: self.priority,
            required_skills: self.required_skills.clone(),
            optional_skills: self.optional_skills.clone(),
            affinity_tags: self.affinity_tags.clone(),
            parameters: self.parameters.clone(),
            metadata: self.metadata.clone(),
            timeout: self.timeout_ms as f64 / 1000.0,
            max_retries: self.max_retries,
            retry_count: self.retry_count,
            attempt: self.attempt,
            user_id: self.user_id.clone(),
            idempotency_key: self.idempotency_key.clone(),
            assigned_node: self.assigned_node.clone(),
            result: self.result.clone(),
            error: self.error.clone(),
            submitted_at: Timestamp(self.submitted_at),
            scheduled_at: self.scheduled_at.map(Timestamp),
            started_at: self.started_at.map(Timestamp),
            completed_at: self.completed_at.map(Timestamp),
            next_attempt_at: self.next_attempt_at.map(Timestamp),
            cancel_requested: self.cancel_requested,
            pending_reason,
            events,
        }
    }

    /// The skill that runs: the first required one.
    pub fn skill(&self) -> &str {
        self.required_skills.first().map(String::as_str).unwrap_or("")
    }
}

const COLUMNS: &str = "task_id, seq, name, description, task_type, priority, required_skills, \
    optional_skills, affinity_tags, parameters, metadata, timeout_ms, max_retries, retry_count, \
    attempt, user_id, idempotency_key, status, assigned_node, result, error, submitted_at, \
    scheduled_at, started_at, completed_at, next_attempt_at, cancel_requested";

fn parse_enum<T: std::str::FromStr>(idx: usize, text: String) -> rusqlite::Result<T> {
    text.parse().map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(
            idx,
            rusqlite::types::Type::Text,
            format!("bad value `{text}`").into(),
        )
    })
}

fn from_row(r: &Row) -> rusqlite::Result<TaskRecord> {
    let priority: i64 = r.get(5)?;
    Ok(TaskRecord {
        task_id: r.get(0)?,
        seq: r.get(1)?,
        name: r.get(2)?,
        description: r.get(3)?,
        task_type: parse_enum(4, r.get(4)?)?,
        priority: Priority::from_number(priority).unwrap_or(Priority::Normal),
        required_skills: from_json(&r.get::<_, String>(6)?),
        optional_skills: from_json(&r.get::<_, String>(7)?),
        affinity_tags: from_json(&r.get::<_, String>(8)?),
        parameters: from_json(&r.get::<_, String>(9)?),
        metadata: from_json(&r.get::<_, String>(10)?),
        timeout_ms: r.get(11)?,
        max_retries: r.get(12)?,
        retry_count: r.get(13)?,
        attempt: r.get(14)?,
        user_id: r.get(15)?,
        idempotency_key: r.get(16)?,
        status: parse_enum(17, r.get(17)?)?,
        assigned_node: r.get(18)?,
        result: r.get::<_, Option<String>>(19)?.map(|t| from_json(&t)),
        error: r.get(20)?,
        submitted_at: r.get(21)?,
        scheduled_at: r.get(22)?,
        started_at: r.get(23)?,
        completed_at: r.get(24)?,
        next_attempt_at: r.get(25)?,
        cancel_requested: r.get(26)?,
    })
}

/// Inserts a new task.
pub fn insert(conn: &Connection, t: &TaskRecord) -> rusqlite::Result<()> {
    conn.execute(
        &format!(
            "INSERT INTO tasks ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, \
             ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27)"
        ),
        params![
            t.task_id,
            t.seq,
            t.name,
            t.description,
            t.task_type.as_str(),
            t.priority.number(),
            to_json(&t.required_skills),
            to_json(&t.optional_skills),
            to_json(&t.affinity_tags),
            to_json(&t.parameters),
            to_json(&t.metadata),
            t.timeout_ms,
            t.max_retries,
            t.retry_count,
            t.attempt,
            t.user_id,
            t.idempotency_key,
            t.status.as_str(),
            t.assigned_node,
            t.result.as_ref().map(to_json),
            t.error,
            t.submitted_at,
            t.scheduled_at,
            t.started_at,
            t.completed_at,
            t.next_attempt_at,
            t.cancel_requested,
        ],
    )?;
    Ok(())
}

/// Writes the mutable part of a task (everything a transition can change).
pub fn update(conn: &Connection, t: &TaskRecord) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE tasks SET status = ?2, assigned_node = ?3, attempt = ?4, retry_count = ?5, \
         result = ?6, error = ?7, scheduled_at = ?8, started_at = ?9, completed_at = ?10, \
         next_attempt_at = ?11, cancel_requested = ?12 WHERE task_id = ?1",
    )?
    .execute(params![
        t.task_id,
        t.status.as_str(),
        t.assigned_node,
        t.attempt,
        t.retry_count,
        t.result.as_ref().map(to_json),
        t.error,
        t.scheduled_at,
        t.started_at,
        t.completed_at,
        t.next_attempt_at,
        t.cancel_requested,
    ])?;
    Ok(())
}

/// Appends an event to a task's history.
pub fn add_event(conn: &Connection, task_id: &str, e: &TaskEvent) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO task_events (task_id, at, event, status, attempt, node_id, message) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![task_id, e.at.0, e.event, e.status.as_str(), e.attempt, e.node_id, e.message])?;
    Ok(())
}

/// One task by id.
pub fn get(conn: &Connection, task_id: &str) -> rusqlite::Result<Option<TaskRecord>> {
    conn.query_row(&format!("SELECT {COLUMNS} FROM tasks WHERE task_id = ?1"), [task_id], from_row).optional()
}

/// A task's history, oldest first.
pub fn events(conn: &Connection, task_id: &str) -> rusqlite::Result<Vec<TaskEvent>> {
    let mut stmt = conn.prepare_cached(
        "SELECT at, event, status, attempt, node_id, message FROM task_events WHERE task_id = ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map([task_id], |r| {
        Ok(TaskEvent {
            at: Timestamp(r.get(0)?),
            event: r.get(1)?,
            status: parse_enum(2, r.get(2)?)?,
            attempt: r.get(3)?,
            node_id: r.get(4)?,
            message: r.get(5)?,
        })
    })?;
    rows.collect()
}

/// Tasks not yet ended, oldest first: what the coordinator reloads at start.
pub fn load_active(conn: &Connection) -> rusqlite::Result<Vec<TaskRecord>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM tasks WHERE status IN ('pending', 'scheduled', 'running') ORDER BY seq"
    ))?;
    let rows = stmt.query_map([], from_row)?;
    rows.collect()
}

/// The highest seq in use (0 when there are no tasks).
pub fn max_seq(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("SELECT coalesce(max(seq), 0) FROM tasks", [], |r| r.get(0))
}

/// Filters of the task list.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub status: Option<TaskStatus>,
    pub node: Option<String>,
    pub skill: Option<String>,
    /// Only tasks older than this seq (the cursor).
    pub before_seq: Option<i64>,
    pub limit: u32,
}

/// A page of tasks, newest first.
pub fn list(conn: &Connection, f: &ListFilter) -> rusqlite::Result<Vec<TaskRecord>> {
    let mut sql = format!("SELECT {COLUMNS} FROM tasks WHERE 1 = 1");
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    if let Some(s) = f.status {
        args.push(s.as_str().to_string().into());
        sql.push_str(&format!(" AND status = ?{}", args.len()));
    }
    if let Some(n) = &f.node {
        args.push(n.clone().into());
        sql.push_str(&format!(" AND assigned_node = ?{}", args.len()));
    }
    if let Some(s) = &f.skill {
        args.push(s.clone().into());
        sql.push_str(&format!(
            " AND EXISTS (SELECT 1 FROM json_each(tasks.required_skills) WHERE value = ?{})",
            args.len()
        ));
    }
    if let Some(b) = f.before_seq {
        args.push(b.into());
        sql.push_str(&format!(" AND seq < ?{}", args.len()));
    }
    args.push(i64::from(f.limit).into());
    sql.push_str(&format!(" ORDER BY seq DESC LIMIT ?{}", args.len()));
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(args), from_row)?;
    rows.collect()
}

/// How many tasks are in each status (every status present, zeros included).
pub fn count_by_status(conn: &Connection) -> rusqlite::Result<BTreeMap<String, u64>> {
    let mut counts: BTreeMap<String, u64> = TaskStatus::ALL.iter().map(|s| (s.as_str().to_string(), 0)).collect();
    let mut stmt = conn.prepare_cached("SELECT status, count(*) FROM tasks GROUP BY status")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
    for row in rows {
        let (status, n) = row?;
        counts.insert(status, n as u64);
    }
    Ok(counts)
}

/// Deletes up to `limit` ended tasks that completed before `before_ms` (events go with
/// them). Returns the idempotency key (if any) of each deleted task.
pub fn purge_ended(conn: &Connection, before_ms: i64, limit: u32) -> rusqlite::Result<Vec<Option<String>>> {
    let mut stmt = conn.prepare_cached(
        "DELETE FROM tasks WHERE task_id IN (SELECT task_id FROM tasks WHERE completed_at IS NOT NULL \
         AND completed_at < ?1 AND status IN ('completed', 'failed', 'cancelled', 'timeout') LIMIT ?2) \
         RETURNING idempotency_key",
    )?;
    let rows = stmt.query_map(params![before_ms, limit], |r| r.get(0))?;
    rows.collect()
}

/// Every idempotency key in use, with its task.
pub fn idempotency_keys(conn: &Connection) -> rusqlite::Result<Vec<(String, String)>> {
    let mut stmt = conn.prepare("SELECT idempotency_key, task_id FROM tasks WHERE idempotency_key IS NOT NULL")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}
