//! Schedule rows (see the SQLite store's `schedules`, whose columns and meaning these are):
//! each schedule's whole record (JSON text, rewritten by each change) and one row per
//! firing. The unique (schedule, due time) index of runs refuses a second firing of one due
//! time: the commit fails rather than doubling it (see `coordinator::core::schedules`).

use postgres::GenericClient;

use super::rows::{Cols, to_json};
use super::{PgError, Stmts};
use crate::coordinator::store::{RunRecord, ScheduleRecord};
use crate::model::{RunOutcome, ScheduleRun, TaskStatus, Timestamp};

pub const UPSERT: &str = "INSERT INTO schedules (schedule_id, name, record) VALUES ($1, $2, $3) \
    ON CONFLICT (schedule_id) DO UPDATE SET name = excluded.name, record = excluded.record";
/// Removes a schedule; its runs go with it (ON DELETE CASCADE).
pub const DELETE: &str = "DELETE FROM schedules WHERE schedule_id = $1";
pub const INSERT_RUN: &str = "INSERT INTO schedule_runs (schedule_id, run, due_at, fired_at, outcome, task_id, message) \
    VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// Writes a schedule's record (a new one or a change).
pub fn upsert(tx: &mut postgres::Transaction, s: &Stmts, r: &ScheduleRecord) -> Result<(), PgError> {
    tx.execute(&s.upsert_schedule, &[&r.schedule_id, &r.spec.name, &to_json(r)])?;
    Ok(())
}

/// Removes a schedule and its runs.
pub fn delete(tx: &mut postgres::Transaction, s: &Stmts, schedule_id: &str) -> Result<(), PgError> {
    tx.execute(&s.delete_schedule, &[&schedule_id])?;
    Ok(())
}

/// Appends a run.
pub fn insert_run(tx: &mut postgres::Transaction, s: &Stmts, r: &RunRecord) -> Result<(), PgError> {
    let run =
        i64::try_from(r.run).map_err(|_| PgError::Config(format!("schedule run number {} is out of range", r.run)))?;
    tx.execute(
        &s.insert_run,
        &[&r.schedule_id, &run, &r.due_at, &r.fired_at, &r.outcome.as_str(), &r.task_id, &r.message],
    )?;
    Ok(())
}

/// Every schedule.
pub fn load_all(c: &mut impl GenericClient) -> Result<Vec<ScheduleRecord>, PgError> {
    let rows = c.query("SELECT schedule_id, record FROM schedules ORDER BY name", &[])?;
    rows.iter().map(|row| Cols::keyed(row, "schedules", 0)?.json(1)).collect()
}

fn run_from_row(row: &postgres::Row) -> Result<ScheduleRun, PgError> {
    let c = Cols::keyed(row, "schedule_runs", 0)?;
    let run = c.u64(1)?;
    let status: Option<String> = c.get(7)?;
    let status = status
        .map(|s| s.parse::<TaskStatus>().map_err(|_| c.damaged(7, &format!("unknown task status `{s}`"))))
        .transpose()?;
    Ok(ScheduleRun {
        schedule_id: c.key().to_string(),
        run,
        due_at: c.get::<Option<i64>>(2)?.map(Timestamp),
        fired_at: Timestamp(c.get(3)?),
        outcome: c.name::<RunOutcome>(4)?,
        task_id: c.get(5)?,
        message: c.get(6)?,
        status,
    })
}

/// Up to `limit` runs of a schedule numbered below `before` (all when `None`), newest
/// first, each with its task's stored status (none once the task is purged).
pub fn runs(
    c: &mut impl GenericClient,
    schedule_id: &str,
    before: Option<u64>,
    limit: u32,
) -> Result<Vec<ScheduleRun>, PgError> {
    let before = before.map(|b| b.min(i64::MAX as u64) as i64).unwrap_or(i64::MAX);
    let rows = c.query(
        "SELECT r.schedule_id, r.run, r.due_at, r.fired_at, r.outcome, r.task_id, r.message, t.status \
         FROM schedule_runs r LEFT JOIN tasks t ON t.task_id = r.task_id \
         WHERE r.schedule_id = $1 AND r.run < $2 ORDER BY r.run DESC LIMIT $3",
        &[&schedule_id, &before, &i64::from(limit)],
    )?;
    rows.iter().map(run_from_row).collect()
}
