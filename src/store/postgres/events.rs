//! The event log (see the SQLite store's `events`): ids in commit order, assigned by the
//! coordinator; node events purged with the ended tasks' retention, never the newest.

use postgres::GenericClient;
use postgres::types::ToSql;

use super::rows::Cols;
use super::{PgError, Stmts};
use crate::coordinator::store::EventFilter;
use crate::model::{Event, EventKind, TaskEvent, Timestamp, Transition};

pub const COLUMNS: &str = "id, at, kind, event, task_id, node_id, status, attempt, skill, message, schedule_id";
/// A batch's events in one statement (one round trip for the whole batch).
pub const INSERT: &str = "INSERT INTO events (id, at, kind, event, task_id, node_id, status, attempt, skill, message, \
    schedule_id) SELECT * FROM unnest($1::BIGINT[], $2::BIGINT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::TEXT[], \
    $7::TEXT[], $8::BIGINT[], $9::TEXT[], $10::TEXT[], $11::TEXT[])";
pub const PURGE_NODE_EVENTS: &str = "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE task_id IS NULL \
    AND at < $1 AND id < (SELECT max(id) FROM events) LIMIT $2)";

/// Appends events (their ids were assigned by the coordinator).
pub fn insert(tx: &mut postgres::Transaction, s: &Stmts, events: &[Event]) -> Result<(), PgError> {
    if events.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = events.iter().map(|e| e.id as i64).collect();
    let ats: Vec<i64> = events.iter().map(|e| e.at.0).collect();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    let names: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    let tasks: Vec<Option<&str>> = events.iter().map(|e| e.task_id.as_deref()).collect();
    let nodes: Vec<Option<&str>> = events.iter().map(|e| e.node_id.as_deref()).collect();
    let statuses: Vec<&str> = events.iter().map(|e| e.status.as_str()).collect();
    let attempts: Vec<Option<i64>> = events.iter().map(|e| e.attempt.map(i64::from)).collect();
    let skills: Vec<Option<&str>> = events.iter().map(|e| e.skill.as_deref()).collect();
    let messages: Vec<Option<&str>> = events.iter().map(|e| e.message.as_deref()).collect();
    let schedules: Vec<Option<&str>> = events.iter().map(|e| e.schedule_id.as_deref()).collect();
    tx.execute(
        &s.insert_event,
        &[&ids, &ats, &kinds, &names, &tasks, &nodes, &statuses, &attempts, &skills, &messages, &schedules],
    )?;
    Ok(())
}

fn from_row(row: &postgres::Row) -> Result<Event, PgError> {
    let c = Cols::keyed(row, "events", 0)?;
    let id: i64 = c.get(0)?;
    let kind: EventKind = c.name(2)?;
    let event: &str = c.get(3)?;
    let event = Transition::parse(kind, event).map_err(|_| c.damaged(3, &format!("unknown {kind} event `{event}`")))?;
    Ok(Event {
        id: id as u64,
        at: Timestamp(c.get(1)?),
        kind,
        event,
        task_id: c.get(4)?,
        node_id: c.get(5)?,
        status: c.get(6)?,
        attempt: c.opt_u32(7)?,
        skill: c.get(8)?,
        message: c.get(9)?,
        schedule_id: c.get(10)?,
    })
}

/// A task's history, oldest first (without the schedule event that submitted it).
pub fn for_task(c: &mut impl GenericClient, task_id: &str) -> Result<Vec<TaskEvent>, PgError> {
    let rows = c.query(
        &format!("SELECT {COLUMNS} FROM events WHERE task_id = $1 AND kind = 'task' ORDER BY id"),
        &[&task_id],
    )?;
    rows.iter()
        .map(|row| {
            let e = from_row(row)?;
            let status = e.status.parse().map_err(|_| {
                Cols::keyed(row, "events", 0)
                    .map(|c| c.damaged(6, &format!("unknown task status `{}`", e.status)))
                    .unwrap_or_else(|e| e)
            })?;
            Ok(TaskEvent {
                at: e.at,
                event: e.event.as_str().to_string(),
                status,
                attempt: e.attempt.unwrap_or(0),
                node_id: e.node_id,
                message: e.message,
            })
        })
        .collect()
}

/// Up to `limit` events after `after_id` that match `filter`, oldest first.
pub fn after(
    c: &mut impl GenericClient,
    after_id: u64,
    filter: &EventFilter,
    limit: u32,
) -> Result<Vec<Event>, PgError> {
    let mut sql = format!("SELECT {COLUMNS} FROM events WHERE id > $1");
    let after_id = after_id.min(i64::MAX as u64) as i64;
    let kind = filter.kind.map(|k| k.as_str());
    let mut args: Vec<&(dyn ToSql + Sync)> = vec![&after_id];
    for (column, value) in [
        ("task_id", filter.task.as_ref()),
        ("node_id", filter.node.as_ref()),
        ("skill", filter.skill.as_ref()),
        ("schedule_id", filter.schedule.as_ref()),
    ] {
        if let Some(v) = value {
            args.push(v);
            sql.push_str(&format!(" AND {column} = ${}", args.len()));
        }
    }
    if let Some(k) = &kind {
        args.push(k);
        sql.push_str(&format!(" AND kind = ${}", args.len()));
    }
    let limit = i64::from(limit);
    args.push(&limit);
    sql.push_str(&format!(" ORDER BY id LIMIT ${}", args.len()));
    c.query(&sql, &args)?.iter().map(from_row).collect()
}

/// The highest event id in use (0 when there is none).
pub fn max_id(c: &mut impl GenericClient) -> Result<u64, PgError> {
    let v: i64 = c.query_one("SELECT coalesce(max(id), 0)::BIGINT FROM events", &[])?.try_get(0)?;
    Ok(v as u64)
}

/// The lowest and the highest event id stored (None when there is none).
pub fn bounds(c: &mut impl GenericClient) -> Result<Option<(u64, u64)>, PgError> {
    let row = c.query_one("SELECT min(id), max(id) FROM events", &[])?;
    Ok(match (row.try_get::<_, Option<i64>>(0)?, row.try_get::<_, Option<i64>>(1)?) {
        (Some(lo), Some(hi)) => Some((lo as u64, hi as u64)),
        _ => None,
    })
}
