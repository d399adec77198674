//! Schedule rows: each schedule's whole record (JSON, rewritten by each change) and one row
//! per firing. The unique (schedule, due time) index of runs refuses a second firing of one
//! due time: the commit fails rather than doubling it (see `coordinator::core::schedules`).

use rusqlite::{Connection, Row, params};

use super::{damaged, json_column, to_json};
use crate::coordinator::store::{RunRecord, ScheduleRecord};
use crate::model::{RunOutcome, ScheduleRun, TaskStatus, Timestamp};

/// Writes a schedule's record (a new one or a change).
pub fn upsert(conn: &Connection, s: &ScheduleRecord) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO schedules (schedule_id, name, record) VALUES (?1, ?2, ?3) \
         ON CONFLICT (schedule_id) DO UPDATE SET name = excluded.name, record = excluded.record",
    )?
    .execute(params![s.schedule_id, s.spec.name, to_json(s)])?;
    Ok(())
}

/// Removes a schedule and its runs.
pub fn delete(conn: &Connection, schedule_id: &str) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM schedules WHERE schedule_id = ?1")?.execute([schedule_id])?;
    Ok(())
}

/// Appends a run.
pub fn insert_run(conn: &Connection, r: &RunRecord) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO schedule_runs (schedule_id, run, due_at, fired_at, outcome, task_id, message) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        r.schedule_id,
        r.run as i64,
        r.due_at,
        r.fired_at,
        r.outcome.as_str(),
        r.task_id,
        r.message
    ])?;
    Ok(())
}

/// Every schedule.
pub fn load_all(conn: &Connection) -> rusqlite::Result<Vec<ScheduleRecord>> {
    let mut stmt = conn.prepare_cached("SELECT schedule_id, record FROM schedules ORDER BY name")?;
    let rows = stmt.query_map([], |r| {
        let id: String = r.get(0)?;
        json_column(r, 1, "schedules", &id)
    })?;
    rows.collect()
}

fn run_from_row(r: &Row) -> rusqlite::Result<ScheduleRun> {
    let schedule_id: String = r.get(0)?;
    let run: i64 = r.get(1)?;
    let key = format!("{schedule_id}/{run}");
    let outcome: String = r.get(4)?;
    let outcome: RunOutcome =
        outcome.parse().map_err(|_| damaged(r, 4, "schedule_runs", &key, &format!("unknown outcome `{outcome}`")))?;
    let status: Option<String> = r.get(7)?;
    let status = status
        .map(|s| s.parse::<TaskStatus>().map_err(|_| damaged(r, 7, "tasks", &key, &format!("unknown status `{s}`"))))
        .transpose()?;
    Ok(ScheduleRun {
        schedule_id,
        run: run as u64,
        due_at: r.get::<_, Option<i64>>(2)?.map(Timestamp),
        fired_at: Timestamp(r.get(3)?),
        outcome,
        task_id: r.get(5)?,
        message: r.get(6)?,
        status,
    })
}

/// Up to `limit` runs of a schedule numbered below `before` (all when `None`), newest
/// first, each with its task's stored status (none once the task is purged).
pub fn runs(
    conn: &Connection,
    schedule_id: &str,
    before: Option<u64>,
    limit: u32,
) -> rusqlite::Result<Vec<ScheduleRun>> {
    let before = before.map(|b| b.min(i64::MAX as u64) as i64).unwrap_or(i64::MAX);
    let mut stmt = conn.prepare_cached(
        "SELECT r.schedule_id, r.run, r.due_at, r.fired_at, r.outcome, r.task_id, r.message, t.status \
         FROM schedule_runs r LEFT JOIN tasks t ON t.task_id = r.task_id \
         WHERE r.schedule_id = ?1 AND r.run < ?2 ORDER BY r.run DESC LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![schedule_id, before, limit], run_from_row)?;
    rows.collect()
}
