//! The event log: every task and node transition, with an id in commit order. A task's
//! events are its history (deleted with the task); node events are purged with the same
//! retention as ended tasks. The event stream resumes from here by id.

use rusqlite::{Connection, Row, params};

use super::damaged;
use crate::coordinator::store::EventFilter;
use crate::model::{Event, EventKind, TaskEvent, Timestamp, Transition};

/// Appends an event (its id was assigned by the coordinator).
pub fn insert(conn: &Connection, e: &Event) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO events (id, at, kind, event, task_id, node_id, status, attempt, skill, message, schedule_id) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        e.id as i64,
        e.at.0,
        e.kind.as_str(),
        e.event.as_str(),
        e.task_id,
        e.node_id,
        e.status,
        e.attempt,
        e.skill,
        e.message,
        e.schedule_id
    ])?;
    Ok(())
}

const COLUMNS: &str = "id, at, kind, event, task_id, node_id, status, attempt, skill, message, schedule_id";

fn from_row(r: &Row) -> rusqlite::Result<Event> {
    let id: i64 = r.get(0)?;
    let kind: String = r.get(2)?;
    let kind: EventKind =
        kind.parse().map_err(|_| damaged(r, 2, "events", &id.to_string(), &format!("unknown kind `{kind}`")))?;
    let event: String = r.get(3)?;
    let event = Transition::parse(kind, &event)
        .map_err(|_| damaged(r, 3, "events", &id.to_string(), &format!("unknown {kind} event `{event}`")))?;
    Ok(Event {
        id: id as u64,
        at: Timestamp(r.get(1)?),
        kind,
        event,
        task_id: r.get(4)?,
        node_id: r.get(5)?,
        status: r.get(6)?,
        attempt: r.get(7)?,
        skill: r.get(8)?,
        message: r.get(9)?,
        schedule_id: r.get(10)?,
    })
}

/// A task's history, oldest first (without the schedule event that submitted it).
pub fn for_task(conn: &Connection, task_id: &str) -> rusqlite::Result<Vec<TaskEvent>> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {COLUMNS} FROM events WHERE task_id = ?1 AND kind = 'task' ORDER BY id"))?;
    let rows = stmt.query_map([task_id], |r| {
        let e = from_row(r)?;
        let status = e
            .status
            .parse()
            .map_err(|_| damaged(r, 6, "events", &e.id.to_string(), &format!("unknown task status `{}`", e.status)))?;
        Ok(TaskEvent {
            at: e.at,
            event: e.event.as_str().to_string(),
            status,
            attempt: e.attempt.unwrap_or(0),
            node_id: e.node_id,
            message: e.message,
        })
    })?;
    rows.collect()
}

/// Up to `limit` events after `after_id` that match `filter`, oldest first.
pub fn after(conn: &Connection, after_id: u64, filter: &EventFilter, limit: u32) -> rusqlite::Result<Vec<Event>> {
    let mut sql = format!("SELECT {COLUMNS} FROM events WHERE id > ?1");
    let mut args: Vec<&dyn rusqlite::ToSql> = Vec::new();
    let after_id = after_id.min(i64::MAX as u64) as i64;
    args.push(&after_id);
    let kind = filter.kind.map(|k| k.as_str());
    for (column, value) in [
        ("task_id", filter.task.as_ref()),
        ("node_id", filter.node.as_ref()),
        ("skill", filter.skill.as_ref()),
        ("schedule_id", filter.schedule.as_ref()),
    ] {
        if let Some(v) = value {
            args.push(v);
            sql.push_str(&format!(" AND {column} = ?{}", args.len()));
        }
    }
    if let Some(k) = &kind {
        args.push(k);
        sql.push_str(&format!(" AND kind = ?{}", args.len()));
    }
    args.push(&limit);
    sql.push_str(&format!(" ORDER BY id LIMIT ?{}", args.len()));
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(args.as_slice(), from_row)?;
    rows.collect()
}

/// The highest event id in use (0 when there is none).
pub fn max_id(conn: &Connection) -> rusqlite::Result<u64> {
    conn.query_row("SELECT coalesce(max(id), 0) FROM events", [], |r| r.get::<_, i64>(0)).map(|v| v as u64)
}

/// The lowest event id still stored (None when there is none): a resume point older than
/// this has lost events.
pub fn min_id(conn: &Connection) -> rusqlite::Result<Option<u64>> {
    conn.query_row("SELECT min(id) FROM events", [], |r| r.get::<_, Option<i64>>(0)).map(|v| v.map(|v| v as u64))
}

/// Deletes up to `limit` node events older than `before_ms`; returns how many. The newest
/// event is never deleted: the coordinator numbers new events after the highest stored id,
/// so ids never repeat, even after a restart on a cluster idle for longer than retention.
pub fn purge_node_events(conn: &Connection, before_ms: i64, limit: u32) -> rusqlite::Result<usize> {
    conn.prepare_cached(
        "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE task_id IS NULL AND at < ?1 \
         AND id < (SELECT max(id) FROM events) LIMIT ?2)",
    )?
    .execute(params![before_ms, limit])
}

/// The task whose event is the newest (never purged, see [`purge_node_events`]).
pub const NEWEST_EVENTS_TASK: &str = "(SELECT task_id FROM events WHERE id = (SELECT max(id) FROM events))";

/// The lowest and the highest event id stored (None when there is none).
pub fn bounds(conn: &Connection) -> rusqlite::Result<Option<(u64, u64)>> {
    conn.query_row("SELECT min(id), max(id) FROM events", [], |r| {
        Ok(match (r.get::<_, Option<i64>>(0)?, r.get::<_, Option<i64>>(1)?) {
            (Some(lo), Some(hi)) => Some((lo as u64, hi as u64)),
            _ => None,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{NodeTransition, TaskTransition};

    fn event(id: u64, at: i64, task: Option<&str>) -> Event {
        Event {
            id,
            at: Timestamp(at),
            kind: if task.is_some() { EventKind::Task } else { EventKind::Node },
            event: if task.is_some() { TaskTransition::Submitted.into() } else { NodeTransition::Online.into() },
            task_id: task.map(str::to_string),
            node_id: Some("n".into()),
            status: "pending".into(),
            attempt: None,
            skill: None,
            message: None,
            schedule_id: None,
        }
    }

    /// Regression: purging every old event let ids start again at 1 after a restart, so a
    /// client resuming with its last id would skip the new events.
    #[test]
    fn retention_keeps_the_newest_event_so_ids_never_repeat() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.db");
        drop(super::super::SqliteStore::open(&path).unwrap());
        let c = Connection::open(&path).unwrap();
        for id in 1..=5 {
            insert(&c, &event(id, 1000, None)).unwrap();
        }
        assert_eq!(purge_node_events(&c, 2000, 100).unwrap(), 4);
        assert_eq!(bounds(&c).unwrap(), Some((5, 5)));
        assert_eq!(max_id(&c).unwrap(), 5);
    }
}
