//! Task output: the kept tail of each task's latest attempt (see the SQLite store's
//! `output`); the coordinator decides what is kept, this module writes and reads it.

use postgres::GenericClient;

use super::rows::Cols;
use super::{PgError, Stmts};
use crate::coordinator::store::{Kept, OutputWrite, Tail};
use crate::model::{OutputLine, Timestamp};

pub const CLEAR: &str = "DELETE FROM task_output WHERE task_id = $1";
pub const SET_ATTEMPT: &str = "INSERT INTO task_output_attempts (task_id, attempt, first_seq) VALUES ($1, $2, $3) \
    ON CONFLICT (task_id) DO UPDATE SET attempt = excluded.attempt, first_seq = excluded.first_seq";
/// All lines of a batch in one statement (one round trip, not one per line: a chatty
/// task sends thousands a second).
pub const INSERT: &str = "INSERT INTO task_output (task_id, seq, attempt, at, stream, text) \
    SELECT $1, s, $2, a, st, tx FROM unnest($3::BIGINT[], $4::BIGINT[], $5::TEXT[], $6::TEXT[]) AS l(s, a, st, tx)";
pub const DROP_BEFORE: &str = "DELETE FROM task_output WHERE task_id = $1 AND seq < $2";

/// Applies a batch (inside the writer's transaction).
pub fn apply(tx: &mut postgres::Transaction, s: &Stmts, w: &OutputWrite) -> Result<(), PgError> {
    let attempt = i64::from(w.attempt);
    if let Some(first) = w.new_attempt {
        tx.execute(&s.clear_output, &[&w.task_id])?;
        tx.execute(&s.set_output_attempt, &[&w.task_id, &attempt, &(first as i64)])?;
    }
    if !w.lines.is_empty() {
        let seqs: Vec<i64> = w.lines.iter().map(|l| l.seq as i64).collect();
        let ats: Vec<i64> = w.lines.iter().map(|l| l.at.0).collect();
        let streams: Vec<&str> = w.lines.iter().map(|l| l.stream.as_str()).collect();
        let texts: Vec<&str> = w.lines.iter().map(|l| l.text.as_str()).collect();
        tx.execute(&s.insert_output, &[&w.task_id, &attempt, &seqs, &ats, &streams, &texts])?;
    }
    if let Some(before) = w.drop_before {
        tx.execute(&s.drop_output_before, &[&w.task_id, &(before as i64)])?;
    }
    Ok(())
}

/// A task's kept output, the lines numbered above `after`.
pub fn read(c: &mut impl GenericClient, task_id: &str, after: u64) -> Result<Tail, PgError> {
    let attempt = match c
        .query_opt("SELECT task_id, attempt, first_seq FROM task_output_attempts WHERE task_id = $1", &[&task_id])?
    {
        Some(row) => {
            let cols = Cols::keyed(&row, "task_output_attempts", 0)?;
            Some((cols.u32(1)?, cols.u64(2)?))
        }
        None => None,
    };
    let first_kept: Option<i64> =
        c.query_one("SELECT min(seq) FROM task_output WHERE task_id = $1", &[&task_id])?.try_get(0)?;
    let rows = c.query(
        "SELECT task_id || '/' || seq, seq, at, stream, text FROM task_output WHERE task_id = $1 AND seq > $2 ORDER BY seq",
        &[&task_id, &(after.min(i64::MAX as u64) as i64)],
    )?;
    let lines = rows
        .iter()
        .map(|row| {
            let c = Cols::keyed(row, "task_output", 0)?;
            Ok(OutputLine { seq: c.u64(1)?, at: Timestamp(c.get(2)?), stream: c.name(3)?, text: c.get(4)? })
        })
        .collect::<Result<_, PgError>>()?;
    Ok(Tail { attempt, first_kept: first_kept.map(|v| v as u64), lines })
}

/// The kept output of every active task.
pub fn load_active(c: &mut impl GenericClient) -> Result<Vec<Kept>, PgError> {
    let heads = c.query(
        "SELECT a.task_id, a.attempt, a.first_seq FROM task_output_attempts a JOIN tasks t ON t.task_id = a.task_id \
         WHERE t.status IN ('pending', 'scheduled', 'running')",
        &[],
    )?;
    let mut kept = Vec::with_capacity(heads.len());
    for head in &heads {
        let h = Cols::keyed(head, "task_output_attempts", 0)?;
        let task_id = h.key().to_string();
        let first_seq = h.u64(2)?;
        let rows = c.query(
            "SELECT task_id || '/' || seq, seq, octet_length(text)::BIGINT FROM task_output WHERE task_id = $1 ORDER BY seq",
            &[&task_id],
        )?;
        let lines = rows
            .iter()
            .map(|row| {
                let c = Cols::keyed(row, "task_output", 0)?;
                Ok((c.u64(1)?, c.u64(2)?))
            })
            .collect::<Result<Vec<(u64, u64)>, PgError>>()?;
        // Numbers handed out but dropped still count: go on after the highest.
        let last_seq = lines.last().map(|(s, _)| *s).unwrap_or(0).max(first_seq.saturating_sub(1));
        kept.push(Kept { task_id, attempt: h.u32(1)?, first_seq, last_seq, lines });
    }
    Ok(kept)
}
