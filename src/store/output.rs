//! Task output: the kept tail of the lines a task's latest attempt printed (`task_output`),
//! and where that attempt's numbering began (`task_output_attempts`, which tells whether
//! the tail is truncated). Rows go with their task (foreign keys, `ON DELETE CASCADE`).
//!
//! The coordinator decides what is kept (see `coordinator::core::output`); this module only
//! writes what it decided, inside the writer's transaction, and reads it back.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::damaged;
use crate::model::{OutputLine, Timestamp};

/// What one output batch changes, in the order it must be applied.
#[derive(Debug, Clone)]
pub struct OutputWrite {
    pub task_id: String,
    pub attempt: u32,
    /// The batch begins a new kept attempt whose first line has this number: the previous
    /// attempt's lines go.
    pub new_attempt: Option<u64>,
    /// The new lines, numbered.
    pub lines: std::sync::Arc<Vec<OutputLine>>,
    /// Lines numbered below this one are dropped (the tail is over its size).
    pub drop_before: Option<u64>,
}

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

/// A task's kept output as stored.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Tail {
    /// The kept attempt and the number of its first line (None when it printed nothing).
    pub attempt: Option<(u32, u64)>,
    /// The number of the first kept line.
    pub first_kept: Option<u64>,
    /// The lines numbered above the `after` asked for, oldest first.
    pub lines: Vec<OutputLine>,
}

impl Tail {
    /// Lines of the kept attempt were dropped.
    pub fn truncated(&self) -> bool {
        matches!((self.attempt, self.first_kept), (Some((_, first_seq)), Some(first)) if first > first_seq)
    }
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

/// The kept output of an active task, as the coordinator needs it to go on numbering and
/// trimming after a restart.
#[derive(Debug, Clone, PartialEq)]
pub struct Kept {
    pub task_id: String,
    pub attempt: u32,
    pub first_seq: u64,
    /// The highest number handed out (kept or dropped).
    pub last_seq: u64,
    /// Each kept line's number and size in bytes, oldest first.
    pub lines: Vec<(u64, u64)>,
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
