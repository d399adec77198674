//! Task rows and their `task_skills` index rows (see the SQLite store's `tasks`, whose
//! columns and meaning these are): what was submitted, written once, and where the task
//! is, rewritten by each transition.

use std::collections::{BTreeMap, HashMap};

use postgres::GenericClient;
use postgres::types::ToSql;
use serde_json::Value;

use super::rows::{Cols, to_json};
use super::{PgError, Stmts};
use crate::coordinator::store::{ActiveTask, HandoutText, ListFilter, NewTask};
use crate::model::{Priority, Target, Task, TaskSpec, TaskState, TaskStatus, Timestamp};

pub const SPEC: &str = "task_id, seq, name, description, task_type, priority, required_skills, \
    optional_skills, affinity_tags, parameters, metadata, timeout_ms, max_retries, user_id, \
    idempotency_key, origin, retry_of, submitted_at, target, secrets, schedule, links, parent_id";
pub const STATE: &str = "status, assigned_node, attempt, retry_count, result, error, scheduled_at, \
    started_at, completed_at, next_attempt_at, cancel_requested, failed_on, waiting_for";

pub const INSERT: &str = "INSERT INTO tasks (task_id, seq, name, description, task_type, priority, required_skills, \
    optional_skills, affinity_tags, parameters, metadata, timeout_ms, max_retries, user_id, \
    idempotency_key, origin, retry_of, submitted_at, target, secrets, schedule, links, parent_id, status) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, 'pending')";
pub const INSERT_SKILL: &str = "INSERT INTO task_skills (skill, seq, task_id) VALUES ($1, $2, $3)";
pub const UPDATE_STATE: &str = "UPDATE tasks SET status = $2, assigned_node = $3, attempt = $4, retry_count = $5, \
    result = $6, error = $7, scheduled_at = $8, started_at = $9, completed_at = $10, \
    next_attempt_at = $11, cancel_requested = $12, failed_on = $13, waiting_for = $14 WHERE task_id = $1";
pub const PURGE: &str = "DELETE FROM tasks WHERE task_id IN (SELECT task_id FROM tasks WHERE completed_at IS NOT NULL \
    AND completed_at < $1 AND status IN ('completed', 'failed', 'cancelled', 'timeout') \
    AND task_id IS DISTINCT FROM (SELECT task_id FROM events WHERE id = (SELECT max(id) FROM events)) LIMIT $2)";

fn priority(c: &Cols, idx: usize) -> Result<Priority, PgError> {
    let n: i64 = c.get(idx)?;
    Priority::from_number(n).ok_or_else(|| c.damaged(idx, &format!("unknown priority {n}")))
}

/// The state columns starting at `at` (in [`STATE`] order).
fn state(c: &Cols, at: usize) -> Result<TaskState, PgError> {
    let ts = |i: usize| -> Result<Option<Timestamp>, PgError> { Ok(c.get::<Option<i64>>(i)?.map(Timestamp)) };
    Ok(TaskState {
        status: c.name(at)?,
        assigned_node: c.get(at + 1)?,
        attempt: c.u32(at + 2)?,
        retry_count: c.u32(at + 3)?,
        result: c.opt_json::<Value>(at + 4)?,
        error: c.get(at + 5)?,
        scheduled_at: ts(at + 6)?,
        started_at: ts(at + 7)?,
        completed_at: ts(at + 8)?,
        next_attempt_at: ts(at + 9)?,
        cancel_requested: c.get(at + 10)?,
        failed_on: c.json(at + 11)?,
        waiting_for: c.json(at + 12)?,
    })
}

/// A row of `SELECT {SPEC}, {STATE}` as the API's task, with its seq.
fn task_from_row(row: &postgres::Row) -> Result<(i64, Task), PgError> {
    let c = Cols::keyed(row, "tasks", 0)?;
    let timeout_ms: i64 = c.get(11)?;
    let spec = TaskSpec {
        name: c.get(2)?,
        description: c.get(3)?,
        task_type: c.name(4)?,
        priority: priority(&c, 5)?,
        required_skills: c.json(6)?,
        optional_skills: c.json(7)?,
        affinity_tags: c.json(8)?,
        parameters: c.json(9)?,
        metadata: c.json(10)?,
        timeout: timeout_ms as f64 / 1000.0,
        max_retries: c.u32(12)?,
        user_id: c.get(13)?,
        idempotency_key: c.get(14)?,
        origin: c.get(15)?,
        retry_of: c.get(16)?,
        target: c.opt_json(18)?,
        secrets: c.json(19)?,
        schedule: c.opt_json(20)?,
        links: c.opt_json(21)?.unwrap_or_default(),
    };
    let seq: i64 = c.get(1)?;
    let submitted_at = Timestamp(c.get(17)?);
    let state = state(&c, 23)?;
    let task = Task {
        task_id: c.key().to_string(),
        spec,
        state,
        submitted_at,
        pending_reason: None,
        events: None,
        children: None,
    };
    Ok((seq, task))
}

/// Inserts a new task and its skill index rows.
pub fn insert(tx: &mut postgres::Transaction, s: &Stmts, t: &NewTask) -> Result<(), PgError> {
    let spec = &t.spec;
    let links = (!spec.links.is_empty()).then(|| to_json(&spec.links));
    let params: [&(dyn ToSql + Sync); 23] = [
        &t.task_id,
        &t.seq,
        &spec.name,
        &spec.description,
        &spec.task_type.as_str(),
        &spec.priority.number(),
        &to_json(&spec.required_skills),
        &to_json(&spec.optional_skills),
        &to_json(&spec.affinity_tags),
        &to_json(&spec.parameters),
        &to_json(&spec.metadata),
        &((spec.timeout * 1000.0).round() as i64),
        &i64::from(spec.max_retries),
        &spec.user_id,
        &spec.idempotency_key,
        &spec.origin,
        &spec.retry_of,
        &t.submitted_at,
        &spec.target.as_ref().map(to_json),
        &to_json(&spec.secrets),
        &spec.schedule.as_ref().map(to_json),
        &links,
        &spec.links.parent,
    ];
    tx.execute(&s.insert_task, &params)?;
    for name in &spec.required_skills {
        tx.execute(&s.insert_skill, &[name, &t.seq, &t.task_id])?;
    }
    Ok(())
}

/// Writes a task's state (everything a transition can change).
pub fn update_state(tx: &mut postgres::Transaction, s: &Stmts, task_id: &str, st: &TaskState) -> Result<(), PgError> {
    tx.execute(
        &s.update_state,
        &[
            &task_id,
            &st.status.as_str(),
            &st.assigned_node,
            &i64::from(st.attempt),
            &i64::from(st.retry_count),
            &st.result.as_ref().map(to_json),
            &st.error,
            &st.scheduled_at.map(|t| t.0),
            &st.started_at.map(|t| t.0),
            &st.completed_at.map(|t| t.0),
            &st.next_attempt_at.map(|t| t.0),
            &st.cancel_requested,
            &to_json(&st.failed_on),
            &to_json(&st.waiting_for),
        ],
    )?;
    Ok(())
}

/// One task by id, with its seq.
pub fn get(c: &mut impl GenericClient, task_id: &str) -> Result<Option<(i64, Task)>, PgError> {
    c.query_opt(&format!("SELECT {SPEC}, {STATE} FROM tasks WHERE task_id = $1"), &[&task_id])?
        .map(|r| task_from_row(&r))
        .transpose()
}

/// The task submitted with an idempotency key (through the unique index).
pub fn by_idempotency_key(c: &mut impl GenericClient, key: &str) -> Result<Option<(i64, Task)>, PgError> {
    c.query_opt(&format!("SELECT {SPEC}, {STATE} FROM tasks WHERE idempotency_key = $1"), &[&key])?
        .map(|r| task_from_row(&r))
        .transpose()
}

/// Name, description and parameters of these tasks, by id (one query).
pub fn handout(c: &mut impl GenericClient, ids: &[String]) -> Result<HashMap<String, HandoutText>, PgError> {
    let rows = c.query("SELECT task_id, name, description, parameters FROM tasks WHERE task_id = ANY($1)", &[&ids])?;
    let mut out = HashMap::with_capacity(rows.len());
    for row in &rows {
        let c = Cols::keyed(row, "tasks", 0)?;
        let text = HandoutText { name: c.get(1)?, description: c.get(2)?, parameters: c.json(3)? };
        out.insert(c.key().to_string(), text);
    }
    Ok(out)
}

/// Tasks not yet ended, oldest first: what a coordinator loads when it starts leading.
pub fn load_active(c: &mut impl GenericClient) -> Result<Vec<ActiveTask>, PgError> {
    let rows = c.query(
        &format!(
            "SELECT task_id, seq, priority, required_skills, optional_skills, affinity_tags, timeout_ms, \
             max_retries, target, secrets, links, {STATE} FROM tasks WHERE status IN ('pending', 'scheduled', 'running') ORDER BY seq"
        ),
        &[],
    )?;
    rows.iter()
        .map(|row| {
            let c = Cols::keyed(row, "tasks", 0)?;
            Ok(ActiveTask {
                seq: c.get(1)?,
                priority: priority(&c, 2)?,
                required_skills: c.json(3)?,
                optional_skills: c.json(4)?,
                affinity_tags: c.json(5)?,
                timeout_ms: c.get(6)?,
                max_retries: c.u32(7)?,
                target: c.opt_json::<Target>(8)?.map(Box::new),
                secrets: c.json(9)?,
                links: c.opt_json(10)?.map(Box::new),
                state: state(&c, 11)?,
                task_id: c.key().into(),
            })
        })
        .collect()
}

/// A group task's children, in submission order (through `tasks_by_parent`).
pub fn children(c: &mut impl GenericClient, parent_id: &str) -> Result<Vec<Task>, PgError> {
    let rows =
        c.query(&format!("SELECT {SPEC}, {STATE} FROM tasks WHERE parent_id = $1 ORDER BY seq"), &[&parent_id])?;
    rows.iter().map(|r| task_from_row(r).map(|(_, t)| t)).collect()
}

/// The highest seq in use (0 when there are no tasks).
pub fn max_seq(c: &mut impl GenericClient) -> Result<i64, PgError> {
    Ok(c.query_one("SELECT coalesce(max(seq), 0)::BIGINT FROM tasks", &[])?.try_get(0)?)
}

/// The SQL and arguments of a page of tasks, newest first. Each filter combination has an
/// index that yields rows in seq order (checked by a test on the query plans): the skill
/// index joined to tasks by key, (status, assigned_node, seq), (status, seq),
/// (assigned_node, seq), or seq itself.
pub fn list_query(f: &ListFilter) -> (String, Vec<Box<dyn ToSql + Sync>>) {
    let mut args: Vec<Box<dyn ToSql + Sync>> = Vec::new();
    let mut conditions: Vec<String> = Vec::new();
    let arg = |v: Box<dyn ToSql + Sync>, args: &mut Vec<Box<dyn ToSql + Sync>>| {
        args.push(v);
        format!("${}", args.len())
    };
    let (from, seq) = match &f.skill {
        Some(s) => {
            let a = arg(Box::new(s.clone()), &mut args);
            conditions.push(format!("k.skill = {a}"));
            ("task_skills k JOIN tasks t ON t.task_id = k.task_id", "k.seq")
        }
        None => ("tasks t", "t.seq"),
    };
    if let Some(s) = f.status {
        let a = arg(Box::new(s.as_str().to_string()), &mut args);
        conditions.push(format!("t.status = {a}"));
    }
    if let Some(n) = &f.node {
        let a = arg(Box::new(n.clone()), &mut args);
        conditions.push(format!("t.assigned_node = {a}"));
    }
    if let Some(b) = f.before_seq {
        let a = arg(Box::new(b), &mut args);
        conditions.push(format!("{seq} < {a}"));
    }
    let limit = arg(Box::new(i64::from(f.limit)), &mut args);
    let filter = if conditions.is_empty() { String::new() } else { format!(" WHERE {}", conditions.join(" AND ")) };
    let columns: String =
        format!("{SPEC}, {STATE}").split(", ").map(|c| format!("t.{}", c.trim())).collect::<Vec<_>>().join(", ");
    (format!("SELECT {columns} FROM {from}{filter} ORDER BY {seq} DESC LIMIT {limit}"), args)
}

/// A page of tasks, newest first, with their seqs.
pub fn list(c: &mut impl GenericClient, f: &ListFilter) -> Result<Vec<(i64, Task)>, PgError> {
    let (sql, args) = list_query(f);
    let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a.as_ref()).collect();
    c.query(&sql, &params)?.iter().map(task_from_row).collect()
}

/// How many tasks are in each status (every status present, zeros included).
pub fn count_by_status(c: &mut impl GenericClient) -> Result<BTreeMap<String, u64>, PgError> {
    let mut counts: BTreeMap<String, u64> = TaskStatus::ALL.iter().map(|s| (s.as_str().to_string(), 0)).collect();
    for row in c.query("SELECT status, count(*) FROM tasks GROUP BY status", &[])? {
        let status: String = row.try_get(0)?;
        let n: i64 = row.try_get(1)?;
        counts.insert(status, n as u64);
    }
    Ok(counts)
}
