//! Task output: the kept tail of the lines a task's latest attempt printed (`task_output`),
//! and where that attempt's numbering began (`task_output_attempts`, which tells whether
//! the tail is truncated). Rows go with their task (foreign keys, `ON DELETE CASCADE`).
//!
//! The coordinator decides what is kept (see `coordinator::core::output`); this module only
//! writes what it decided, inside the writer's transaction, and reads it back.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::damaged;
use crate::coordinator::store::{Kept, OutputWrite, Tail};
use crate::model::{OutputLine, Timestamp};

/// Applies a batch (inside the writer's transaction).
pub fn apply(c: &Connection, w: &OutputWrite) -> rusqlite::Result<()> {
    if let Some(first) = w.new_attempt {
        c.prepare_cached("DELETE FROM task_output WHERE task_id = ?1")?.execute([&w.task_id])?;
        c.prepare_cached(
            "INSERT INTO task_output_attempts (task_id, attempt, first_seq) VALUES (?1, ?2, ?3) \
             ON CONFLICT (task_id) DO UPDATE SET attempt = excluded.attempt, first_seq = excluded.first_seq",
        )?
        .execute(params![w.task_id, w.attempt, first as i64])?;
    }
    let mut insert = c.prepare_cached(
        "INSERT INTO task_output (task_id, seq, attempt, at, stream, text) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for line in w.lines.iter() {
        insert.execute(params![w.task_id, line.seq as i64, w.attempt, line.at.0, line.stream.as_str(), line.text])?;
    }
    if let Some(before) = w.drop_before {
        c.prepare_cached("DELETE FROM task_output WHERE task_id = ?1 AND seq < ?2")?
            .execute(params![w.task_id, before as i64])?;
    }
    Ok(())
}

fn line_from_row(r: &Row, task_id: &str) -> rusqlite::Result<OutputLine> {
    let seq: i64 = r.get(0)?;
    let stream: String = r.get(2)?;
    Ok(OutputLine {
        seq: seq as u64,
        at: Timestamp(r.get(1)?),
        stream: stream.parse().map_err(|_| {
            damaged(r, 2, "task_output", &format!("{task_id}/{seq}"), &format!("unknown stream `{stream}`"))
        })?,
        text: r.get(3)?,
    })
}

/// A task's kept output, the lines numbered above `after`.
pub fn read(c: &Connection, task_id: &str, after: u64) -> rusqlite::Result<Tail> {
    let attempt = c
        .prepare_cached("SELECT attempt, first_seq FROM task_output_attempts WHERE task_id = ?1")?
        .query_row([task_id], |r| Ok((r.get::<_, u32>(0)?, r.get::<_, i64>(1)? as u64)))
        .optional()?;
    let first_kept = c
        .prepare_cached("SELECT min(seq) FROM task_output WHERE task_id = ?1")?
        .query_row([task_id], |r| r.get::<_, Option<i64>>(0))?
        .map(|v| v as u64);
    let mut stmt =
        c.prepare_cached("SELECT seq, at, stream, text FROM task_output WHERE task_id = ?1 AND seq > ?2 ORDER BY seq")?;
    let lines = stmt.query_map(params![task_id, after.min(i64::MAX as u64) as i64], |r| line_from_row(r, task_id))?;
    Ok(Tail { attempt, first_kept, lines: lines.collect::<rusqlite::Result<_>>()? })
}

/// The kept output of every active task.
pub fn load_active(c: &Connection) -> rusqlite::Result<Vec<Kept>> {
    let mut stmt = c.prepare(
        "SELECT a.task_id, a.attempt, a.first_seq FROM task_output_attempts a JOIN tasks t ON t.task_id = a.task_id \
         WHERE t.status IN ('pending', 'scheduled', 'running')",
    )?;
    let heads: Vec<(String, u32, i64)> =
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<rusqlite::Result<_>>()?;
    let mut lines =
        c.prepare("SELECT seq, length(CAST(text AS BLOB)) FROM task_output WHERE task_id = ?1 ORDER BY seq")?;
    let mut kept = Vec::with_capacity(heads.len());
    for (task_id, attempt, first_seq) in heads {
        let rows: Vec<(u64, u64)> = lines
            .query_map([&task_id], |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)))?
            .collect::<rusqlite::Result<_>>()?;
        let first_seq = first_seq as u64;
        // Numbers handed out but dropped still count: go on after the highest.
        let last_seq = rows.last().map(|(s, _)| *s).unwrap_or(0).max(first_seq.saturating_sub(1));
        kept.push(Kept { task_id, attempt, first_seq, last_seq, lines: rows });
    }
    Ok(kept)
}
