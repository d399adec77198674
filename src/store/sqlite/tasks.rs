//! Task rows: what was submitted ([`TaskSpec`], written once) and where the task is
//! ([`TaskState`], rewritten by each transition), plus the `task_skills` index rows that
//! make the skill filter an index lookup.
//!
//! Reads build the API's [`Task`] directly from a row. The coordinator keeps only an
//! [`ActiveTask`] of each active task in memory — never its parameters, which are read
//! from here when the task is handed to a worker.

use std::collections::{BTreeMap, HashMap};

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::Value;

use super::{damaged, json_column, optional_json_column, to_json};
use crate::coordinator::store::{ActiveTask, HandoutText, ListFilter, NewTask};
use crate::model::{Priority, Target, Task, TaskSpec, TaskState, TaskStatus, Timestamp};

const SPEC: &str = "task_id, seq, name, description, task_type, priority, required_skills, \
    optional_skills, affinity_tags, parameters, metadata, timeout_ms, max_retries, user_id, \
    idempotency_key, origin, retry_of, submitted_at, target, secrets, schedule, links, parent_id";
const STATE: &str = "status, assigned_node, attempt, retry_count, result, error, scheduled_at, \
    started_at, completed_at, next_attempt_at, cancel_requested, failed_on, waiting_for";

fn text_enum<T: std::str::FromStr>(r: &Row, idx: usize, key: &str) -> rusqlite::Result<T> {
    let text: String = r.get(idx)?;
    text.parse().map_err(|_| damaged(r, idx, "tasks", key, &format!("unknown value `{text}`")))
}

fn priority(r: &Row, idx: usize, key: &str) -> rusqlite::Result<Priority> {
    let n: i64 = r.get(idx)?;
    Priority::from_number(n).ok_or_else(|| damaged(r, idx, "tasks", key, &format!("unknown priority {n}")))
}

/// The state columns starting at `at` (in [`STATE`] order).
fn state(r: &Row, at: usize, key: &str) -> rusqlite::Result<TaskState> {
    let result = optional_json_column::<Value>(r, at + 4, "tasks", key)?;
    Ok(TaskState {
        status: text_enum(r, at, key)?,
        assigned_node: r.get(at + 1)?,
        attempt: r.get(at + 2)?,
        retry_count: r.get(at + 3)?,
        result,
        error: r.get(at + 5)?,
        scheduled_at: r.get::<_, Option<i64>>(at + 6)?.map(Timestamp),
        started_at: r.get::<_, Option<i64>>(at + 7)?.map(Timestamp),
        completed_at: r.get::<_, Option<i64>>(at + 8)?.map(Timestamp),
        next_attempt_at: r.get::<_, Option<i64>>(at + 9)?.map(Timestamp),
        cancel_requested: r.get(at + 10)?,
        failed_on: json_column(r, at + 11, "tasks", key)?,
        waiting_for: json_column(r, at + 12, "tasks", key)?,
    })
}

/// A row of `SELECT {SPEC}, {STATE}` as the API's task, with its seq.
fn task_from_row(r: &Row) -> rusqlite::Result<(i64, Task)> {
    let task_id: String = r.get(0)?;
    let key = task_id.as_str();
    let timeout_ms: i64 = r.get(11)?;
    let spec = TaskSpec {
        name: r.get(2)?,
        description: r.get(3)?,
        task_type: text_enum(r, 4, key)?,
        priority: priority(r, 5, key)?,
        required_skills: json_column(r, 6, "tasks", key)?,
        optional_skills: json_column(r, 7, "tasks", key)?,
        affinity_tags: json_column(r, 8, "tasks", key)?,
        parameters: json_column(r, 9, "tasks", key)?,
        metadata: json_column(r, 10, "tasks", key)?,
        timeout: timeout_ms as f64 / 1000.0,
        max_retries: r.get(12)?,
        user_id: r.get(13)?,
        idempotency_key: r.get(14)?,
        origin: r.get(15)?,
        retry_of: r.get(16)?,
        target: optional_json_column(r, 18, "tasks", key)?,
        secrets: json_column(r, 19, "tasks", key)?,
        schedule: optional_json_column(r, 20, "tasks", key)?,
        links: optional_json_column(r, 21, "tasks", key)?.unwrap_or_default(),
    };
    let seq: i64 = r.get(1)?;
    let submitted_at = Timestamp(r.get(17)?);
    let state = state(r, 23, key)?;
    Ok((seq, Task { task_id, spec, state, submitted_at, pending_reason: None, events: None, children: None }))
}

/// Inserts a new task and its skill index rows.
pub fn insert(conn: &Connection, t: &NewTask) -> rusqlite::Result<()> {
    let s = &t.spec;
    conn.prepare_cached(&format!(
        "INSERT INTO tasks ({SPEC}, {STATE}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, \
         ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, 'pending', NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL, 0, '[]', '[]')"
    ))?
    .execute(params![
        t.task_id,
        t.seq,
        s.name,
        s.description,
        s.task_type.as_str(),
        s.priority.number(),
        to_json(&s.required_skills),
        to_json(&s.optional_skills),
        to_json(&s.affinity_tags),
        to_json(&s.parameters),
        to_json(&s.metadata),
        (s.timeout * 1000.0).round() as i64,
        s.max_retries,
        s.user_id,
        s.idempotency_key,
        s.origin,
        s.retry_of,
        t.submitted_at,
        s.target.as_ref().map(to_json),
        to_json(&s.secrets),
        s.schedule.as_ref().map(to_json),
        (!s.links.is_empty()).then(|| to_json(&s.links)),
        s.links.parent,
    ])?;
    let mut skill = conn.prepare_cached("INSERT INTO task_skills (skill, seq, task_id) VALUES (?1, ?2, ?3)")?;
    for name in &s.required_skills {
        skill.execute(params![name, t.seq, t.task_id])?;
    }
    Ok(())
}

/// Writes a task's state (everything a transition can change).
pub fn update_state(conn: &Connection, task_id: &str, s: &TaskState) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE tasks SET status = ?2, assigned_node = ?3, attempt = ?4, retry_count = ?5, \
         result = ?6, error = ?7, scheduled_at = ?8, started_at = ?9, completed_at = ?10, \
         next_attempt_at = ?11, cancel_requested = ?12, failed_on = ?13, waiting_for = ?14 WHERE task_id = ?1",
    )?
    .execute(params![
        task_id,
        s.status.as_str(),
        s.assigned_node,
        s.attempt,
        s.retry_count,
        s.result.as_ref().map(to_json),
        s.error,
        s.scheduled_at.map(|t| t.0),
        s.started_at.map(|t| t.0),
        s.completed_at.map(|t| t.0),
        s.next_attempt_at.map(|t| t.0),
        s.cancel_requested,
        to_json(&s.failed_on),
        to_json(&s.waiting_for),
    ])?;
    Ok(())
}

/// One task by id, with its seq.
pub fn get(conn: &Connection, task_id: &str) -> rusqlite::Result<Option<(i64, Task)>> {
    conn.prepare_cached(&format!("SELECT {SPEC}, {STATE} FROM tasks WHERE task_id = ?1"))?
        .query_row([task_id], task_from_row)
        .optional()
}

/// The task submitted with an idempotency key (through the unique index).
pub fn by_idempotency_key(conn: &Connection, key: &str) -> rusqlite::Result<Option<(i64, Task)>> {
    conn.prepare_cached(&format!("SELECT {SPEC}, {STATE} FROM tasks WHERE idempotency_key = ?1"))?
        .query_row([key], task_from_row)
        .optional()
}

/// What a worker needs of the tasks it is handed beyond what memory holds: name,
/// description and parameters, by task id.
pub fn handout(conn: &Connection, ids: &[String]) -> rusqlite::Result<HashMap<String, HandoutText>> {
    let mut stmt =
        conn.prepare_cached("SELECT task_id, name, description, parameters FROM tasks WHERE task_id = ?1")?;
    let mut out = HashMap::with_capacity(ids.len());
    for id in ids {
        let row = stmt
            .query_row([id], |r| {
                let key: String = r.get(0)?;
                let parameters: Value = json_column(r, 3, "tasks", &key)?;
                Ok((key, HandoutText { name: r.get(1)?, description: r.get(2)?, parameters }))
            })
            .optional()?;
        if let Some((k, v)) = row {
            out.insert(k, v);
        }
    }
    Ok(out)
}

/// Tasks not yet ended, oldest first: what the coordinator reloads at start.
pub fn load_active(conn: &Connection) -> rusqlite::Result<Vec<ActiveTask>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT task_id, seq, priority, required_skills, optional_skills, affinity_tags, timeout_ms, \
         max_retries, target, secrets, links, {STATE} FROM tasks WHERE status IN ('pending', 'scheduled', 'running') ORDER BY seq"
    ))?;
    let rows = stmt.query_map([], |r| {
        let task_id: String = r.get(0)?;
        let key = task_id.as_str();
        Ok(ActiveTask {
            seq: r.get(1)?,
            priority: priority(r, 2, key)?,
            required_skills: json_column(r, 3, "tasks", key)?,
            optional_skills: json_column(r, 4, "tasks", key)?,
            affinity_tags: json_column(r, 5, "tasks", key)?,
            timeout_ms: r.get(6)?,
            max_retries: r.get(7)?,
            target: optional_json_column::<Target>(r, 8, "tasks", key)?.map(Box::new),
            secrets: json_column(r, 9, "tasks", key)?,
            links: optional_json_column(r, 10, "tasks", key)?.map(Box::new),
            state: state(r, 11, key)?,
            task_id: task_id.into(),
        })
    })?;
    rows.collect()
}

/// A group task's children, in submission order (through `tasks_by_parent`).
pub fn children(conn: &Connection, parent_id: &str) -> rusqlite::Result<Vec<Task>> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {SPEC}, {STATE} FROM tasks WHERE parent_id = ?1 ORDER BY seq"))?;
    let rows = stmt.query_map([parent_id], |r| task_from_row(r).map(|(_, t)| t))?;
    rows.collect()
}

/// The highest seq in use (0 when there are no tasks).
pub fn max_seq(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("SELECT coalesce(max(seq), 0) FROM tasks", [], |r| r.get(0))
}

/// The SQL and arguments of a page of tasks, newest first. Every filter combination walks
/// an index in seq order (checked by a test on the query plans).
pub fn list_query(f: &ListFilter) -> (String, Vec<rusqlite::types::Value>) {
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    let mut conditions: Vec<String> = Vec::new();
    let arg = |v: rusqlite::types::Value, args: &mut Vec<rusqlite::types::Value>| {
        args.push(v);
        format!("?{}", args.len())
    };
    let from = match (&f.skill, f.status.is_some() && f.node.is_some()) {
        // The skill index drives the walk; each task row is joined by its key.
        (Some(s), _) => {
            let a = arg(s.clone().into(), &mut args);
            conditions.push(format!("k.skill = {a}"));
            "task_skills k CROSS JOIN tasks t ON t.task_id = k.task_id"
        }
        (None, true) => "tasks t INDEXED BY tasks_by_status_node",
        (None, false) => "tasks t",
    };
    let seq = if f.skill.is_some() { "k.seq" } else { "t.seq" };
    // With the skill index driving, `+` keeps the planner from looking tasks up by these
    // columns instead of by key.
    let column = |name: &str| if f.skill.is_some() { format!("+t.{name}") } else { format!("t.{name}") };
    if let Some(s) = f.status {
        let a = arg(s.as_str().to_string().into(), &mut args);
        conditions.push(format!("{} = {a}", column("status")));
    }
    if let Some(n) = &f.node {
        let a = arg(n.clone().into(), &mut args);
        conditions.push(format!("{} = {a}", column("assigned_node")));
    }
    if let Some(b) = f.before_seq {
        let a = arg(b.into(), &mut args);
        conditions.push(format!("{seq} < {a}"));
    }
    let limit = arg(i64::from(f.limit).into(), &mut args);
    let filter = if conditions.is_empty() { String::new() } else { format!(" WHERE {}", conditions.join(" AND ")) };
    let columns: String =
        format!("{SPEC}, {STATE}").split(", ").map(|c| format!("t.{}", c.trim())).collect::<Vec<_>>().join(", ");
    (format!("SELECT {columns} FROM {from}{filter} ORDER BY {seq} DESC LIMIT {limit}"), args)
}

/// A page of tasks, newest first, with their seqs.
pub fn list(conn: &Connection, f: &ListFilter) -> rusqlite::Result<Vec<(i64, Task)>> {
    let (sql, args) = list_query(f);
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(args), task_from_row)?;
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

/// Deletes up to `limit` ended tasks that completed before `before_ms` (their events, output
/// and index rows go with them), but not the one with the newest event (see
/// [`super::events::purge_node_events`]). Returns how many were deleted.
pub fn purge_ended(conn: &Connection, before_ms: i64, limit: u32) -> rusqlite::Result<usize> {
    conn.prepare_cached(&format!(
        "DELETE FROM tasks WHERE task_id IN (SELECT task_id FROM tasks WHERE completed_at IS NOT NULL \
         AND completed_at < ?1 AND status IN ('completed', 'failed', 'cancelled', 'timeout') \
         AND task_id IS NOT {} LIMIT ?2)",
        super::events::NEWEST_EVENTS_TASK
    ))?
    .execute(params![before_ms, limit])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.db");
        drop(super::super::SqliteStore::open(&path).unwrap());
        (dir, Connection::open(&path).unwrap())
    }

    fn new_task(id: &str, seq: i64) -> NewTask {
        let spec = TaskSpec {
            name: "t".into(),
            description: String::new(),
            task_type: crate::model::TaskType::Batch,
            priority: Priority::Normal,
            required_skills: vec!["x".into()],
            optional_skills: vec![],
            affinity_tags: vec![],
            parameters: serde_json::json!({"n": 1}),
            metadata: serde_json::json!({}),
            timeout: 60.0,
            max_retries: 1,
            user_id: None,
            idempotency_key: None,
            origin: "api".into(),
            retry_of: None,
            target: None,
            secrets: vec![],
            schedule: None,
            links: Default::default(),
        };
        NewTask { task_id: id.into(), seq, spec, submitted_at: 1 }
    }

    /// Regression: a damaged `required_skills` became `[]`, so any node took the task,
    /// which then bounced for ever. Damage is an error naming the table, row and column.
    #[test]
    fn a_damaged_column_is_an_error_naming_table_row_and_column() {
        let (_dir, c) = store();
        insert(&c, &new_task("task_a", 1)).unwrap();
        assert_eq!(load_active(&c).unwrap()[0].required_skills, vec!["x".to_string()]);
        c.execute("UPDATE tasks SET required_skills = 'not json' WHERE task_id = 'task_a'", []).unwrap();
        let e = load_active(&c).unwrap_err().to_string();
        assert!(e.contains("tasks row task_a column required_skills"), "{e}");
        c.execute("UPDATE tasks SET required_skills = '[\"x\"]', priority = 9 WHERE task_id = 'task_a'", []).unwrap();
        let e = get(&c, "task_a").unwrap_err().to_string();
        assert!(e.contains("tasks row task_a column priority") && e.contains("9"), "{e}");
    }

    /// Every filter combination walks an index in seq order: no full scan of `tasks`, no
    /// temporary sort, whatever the number of stored tasks.
    #[test]
    fn every_list_filter_uses_an_index() {
        let (_dir, c) = store();
        for i in 0..50 {
            insert(&c, &new_task(&format!("task_{i}"), i)).unwrap();
        }
        c.execute_batch("ANALYZE").unwrap();
        let status = Some(TaskStatus::Pending);
        let node = Some("w1".to_string());
        let skill = Some("x".to_string());
        for status in [None, status] {
            for node in [None, node.clone()] {
                for skill in [None, skill.clone()] {
                    for before_seq in [None, Some(10)] {
                        let f = ListFilter { status, node: node.clone(), skill: skill.clone(), before_seq, limit: 50 };
                        let (sql, args) = list_query(&f);
                        let mut stmt = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
                        let plan: Vec<String> = stmt
                            .query_map(rusqlite::params_from_iter(args), |r| r.get::<_, String>(3))
                            .unwrap()
                            .collect::<Result<_, _>>()
                            .unwrap();
                        let text = plan.join(" | ");
                        assert!(!text.contains("TEMP B-TREE"), "{f:?} sorts: {text}");
                        if f.skill.is_some() {
                            assert!(text.contains("(task_id=?)"), "{f:?} joins tasks by another index: {text}");
                        }
                        assert!(
                            !plan.iter().any(|p| p.starts_with("SCAN t") && !p.contains("INDEX")),
                            "{f:?} scans the tasks table: {text}"
                        );
                    }
                }
            }
        }
    }
}
