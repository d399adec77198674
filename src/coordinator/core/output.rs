//! Live task output: the batches of lines a worker sends while an attempt runs, kept as a
//! bounded tail per task.
//!
//! A batch is fenced like a start or result report: it must name the task's current
//! attempt on the node that sends it (`stale_attempt` otherwise). Lines are numbered per
//! task from 1, across attempts; line `i` of an attempt (the worker's count, `first` in
//! a batch) is number `first_seq + i`, so a batch sent again after its answer was lost
//! adds only what is new (exactly once), and lines the worker had to drop leave their
//! numbers unused. Each task keeps the lines of its latest
//! attempt that printed anything, within `coordinator.output_tail_bytes` (a line costs its
//! text plus [`LINE_OVERHEAD`]); the oldest go first, but the newest line always stays. The
//! first lines of a new attempt replace the previous attempt's.
//!
//! [`OutputRing`] is the in-memory accounting of an active task's kept lines (numbers and
//! sizes, never the text); the text goes to the store in the next batch of writes and, once
//! committed, to the followers of the task's output. Output records no events.

use std::collections::VecDeque;
use std::sync::Arc;

use super::{Core, Error};
use crate::model::{OUTPUT_LINE, OutputAck, OutputBatch, OutputLine};

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

/// What a kept line costs beyond its text (its number, time and stream).
pub const LINE_OVERHEAD: u64 = 16;

/// The kept lines of an active task: their numbers and costs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputRing {
    attempt: u32,
    /// The number of the attempt's first line.
    first_seq: u64,
    /// The number the next line gets.
    next_seq: u64,
    /// The cost of each kept line, oldest first; the last one is line `next_seq - 1`.
    costs: VecDeque<u32>,
    total: u64,
}

impl OutputRing {
    /// A task that printed nothing yet: its first line is number 1.
    pub fn new() -> OutputRing {
        OutputRing { attempt: 0, first_seq: 1, next_seq: 1, costs: VecDeque::new(), total: 0 }
    }

    /// The ring as the store left it (at coordinator start).
    pub fn restore(kept: &Kept) -> OutputRing {
        let costs: VecDeque<u32> = kept.lines.iter().map(|(_, len)| cost(*len)).collect();
        OutputRing {
            attempt: kept.attempt,
            first_seq: kept.first_seq,
            next_seq: kept.last_seq + 1,
            total: costs.iter().map(|c| u64::from(*c)).sum(),
            costs,
        }
    }

    /// Numbers `lines` and keeps them; `first` is the attempt's number of the first one
    /// (the worker's count), when the worker sends it. Returns where a new kept attempt
    /// begins, the new lines still kept (numbered), and the first kept number when older
    /// lines were dropped.
    fn append(
        &mut self,
        attempt: u32,
        first: Option<u64>,
        mut lines: Vec<OutputLine>,
        cap: u64,
    ) -> (Option<u64>, Vec<OutputLine>, Option<u64>) {
        if attempt == self.attempt
            && let Some(first) = first
        {
            // Lines this attempt already has are a resend: only what follows them is new.
            let have = self.next_seq - self.first_seq;
            let repeated = usize::try_from(have.saturating_sub(first)).unwrap_or(usize::MAX).min(lines.len());
            lines.drain(..repeated);
        }
        if lines.is_empty() {
            return (None, Vec::new(), None);
        }
        let new_attempt = (attempt != self.attempt).then(|| {
            self.attempt = attempt;
            self.first_seq = self.next_seq;
            self.costs.clear();
            self.total = 0;
            self.next_seq
        });
        if let Some(first) = first {
            // Lines the worker dropped before this batch keep their numbers, unused.
            let have = self.next_seq - self.first_seq;
            self.next_seq += first.saturating_sub(have).min(u64::from(u32::MAX));
        }
        let mut numbered = Vec::with_capacity(lines.len());
        for mut line in lines {
            line.seq = self.next_seq;
            self.next_seq += 1;
            let c = cost(line.text.len() as u64);
            self.costs.push_back(c);
            self.total += u64::from(c);
            numbered.push(line);
        }
        let before = self.first_kept();
        while self.total > cap && self.costs.len() > 1 {
            if let Some(c) = self.costs.pop_front() {
                self.total -= u64::from(c);
            }
        }
        let dropped = (self.first_kept() > before).then(|| self.first_kept());
        // Lines of this batch that are already dropped need not reach the disk.
        let first = self.first_kept();
        numbered.retain(|l| l.seq >= first);
        (new_attempt, numbered, dropped)
    }

    fn first_kept(&self) -> u64 {
        self.next_seq - self.costs.len() as u64
    }
}

impl Default for OutputRing {
    fn default() -> Self {
        Self::new()
    }
}

fn cost(text_len: u64) -> u32 {
    u32::try_from(text_len + LINE_OVERHEAD).unwrap_or(u32::MAX)
}

impl Core {
    /// A batch of output lines from the node running the attempt. `None`: the task is not
    /// active here (the caller checks the store).
    pub fn output(&mut self, node: &str, task_id: &str, batch: OutputBatch) -> Result<Option<OutputAck>, Error> {
        if self.check_report(node, task_id, batch.attempt)?.is_none() {
            return Ok(None);
        }
        for (i, line) in batch.lines.iter().enumerate() {
            if let Err(e) = OUTPUT_LINE.check(&line.text) {
                return Err(Error::invalid(&format!("lines[{i}].text"), format!("{e}: split long lines")));
            }
        }
        let accepted = batch.lines.len() as u32;
        let lines: Vec<OutputLine> =
            batch.lines.into_iter().map(|l| OutputLine { seq: 0, at: l.at, stream: l.stream, text: l.text }).collect();
        let cap = self.settings.output_tail_bytes;
        let Some(ring) = self.tasks.output_ring(task_id) else { return Ok(None) };
        let ring = ring.get_or_insert_with(|| Box::new(OutputRing::new()));
        let (new_attempt, lines, drop_before) = ring.append(batch.attempt, batch.first, lines, cap);
        let last_seq = ring.next_seq - 1;
        if lines.is_empty() && drop_before.is_none() {
            return Ok(Some(OutputAck { success: true, task_id: task_id.into(), accepted, last_seq }));
        }
        self.output.push(OutputWrite {
            task_id: task_id.to_string(),
            attempt: batch.attempt,
            new_attempt,
            lines: Arc::new(lines),
            drop_before,
        });
        Ok(Some(OutputAck { success: true, task_id: task_id.into(), accepted, last_seq }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{OutputStream, Timestamp};

    fn lines(texts: &[&str]) -> Vec<OutputLine> {
        texts
            .iter()
            .map(|t| OutputLine { seq: 0, at: Timestamp(0), stream: OutputStream::Stdout, text: t.to_string() })
            .collect()
    }

    fn ring() -> OutputRing {
        OutputRing::new()
    }

    #[test]
    fn lines_are_numbered_and_the_oldest_dropped_over_the_cap() {
        let mut r = ring();
        // Each line costs 4 + 16 = 20 bytes; 50 bytes hold two.
        let (new, kept, dropped) = r.append(1, None, lines(&["aaaa", "bbbb"]), 50);
        assert_eq!(new, Some(1));
        assert_eq!(kept.iter().map(|l| l.seq).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(dropped, None);
        let (new, kept, dropped) = r.append(1, None, lines(&["cccc", "dddd", "eeee"]), 50);
        assert_eq!(new, None);
        // Line 3 is dropped before it reaches the disk; 1 and 2 go from it.
        assert_eq!(kept.iter().map(|l| l.seq).collect::<Vec<_>>(), vec![4, 5]);
        assert_eq!(dropped, Some(4));
        assert_eq!((r.first_kept(), r.next_seq, r.total), (4, 6, 40));
    }

    #[test]
    fn the_newest_line_stays_however_long() {
        let mut r = ring();
        let long = "x".repeat(500);
        let (_, kept, _) = r.append(1, None, lines(&["a", &long]), 100);
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].text.len(), 500);
        assert_eq!(r.costs.len(), 1);
    }

    #[test]
    fn a_new_attempt_starts_over_and_numbers_go_on() {
        let mut r = ring();
        r.append(1, None, lines(&["a", "b"]), 1000);
        let (new, kept, dropped) = r.append(2, None, lines(&["c"]), 1000);
        assert_eq!(new, Some(3));
        assert_eq!(kept[0].seq, 3);
        assert_eq!(dropped, None);
        assert_eq!((r.attempt, r.first_seq, r.costs.len()), (2, 3, 1));
    }

    #[test]
    fn a_resent_batch_adds_only_its_new_lines_and_dropped_lines_keep_their_numbers() {
        let mut r = ring();
        let (_, kept, _) = r.append(1, Some(0), lines(&["a", "b"]), 1000);
        assert_eq!(kept.iter().map(|l| l.seq).collect::<Vec<_>>(), vec![1, 2]);
        // The answer was lost: the worker sends a, b again with c.
        let (new, kept, _) = r.append(1, Some(0), lines(&["a", "b", "c"]), 1000);
        assert_eq!((new, kept.iter().map(|l| (l.seq, l.text.as_str())).collect::<Vec<_>>()), (None, vec![(3, "c")]));
        // Only repeats: nothing to write.
        let (_, kept, dropped) = r.append(1, Some(1), lines(&["b", "c"]), 1000);
        assert!(kept.is_empty() && dropped.is_none());
        // The worker dropped its lines 3 and 4: 5 is number 6.
        let (_, kept, _) = r.append(1, Some(5), lines(&["f"]), 1000);
        assert_eq!(kept[0].seq, 6);
        assert_eq!(r.next_seq, 7);
        // A new attempt counts from its own first line.
        let (new, kept, _) = r.append(2, Some(0), lines(&["x"]), 1000);
        assert_eq!((new, kept[0].seq), (Some(7), 7));
    }

    #[test]
    fn restore_goes_on_after_the_last_number() {
        let kept = Kept { task_id: "t".into(), attempt: 2, first_seq: 5, last_seq: 9, lines: vec![(8, 4), (9, 4)] };
        let r = OutputRing::restore(&kept);
        assert_eq!((r.next_seq, r.first_kept(), r.total), (10, 8, 40));
    }
}
