-- The kept tail of each task's output: the lines of its latest attempt that printed
-- anything, numbered per task from 1 (across attempts). The coordinator drops the oldest
-- lines of a task to keep its tail within coordinator.output_tail_bytes, and a new
-- attempt's first lines replace the previous attempt's.

CREATE TABLE task_output (
    task_id  TEXT NOT NULL REFERENCES tasks(task_id) ON DELETE CASCADE,
    seq      INTEGER NOT NULL,
    attempt  INTEGER NOT NULL,
    at       INTEGER NOT NULL,
    stream   TEXT NOT NULL,        -- 'stdout' or 'stderr'
    text     TEXT NOT NULL,
    PRIMARY KEY (task_id, seq)
) STRICT, WITHOUT ROWID;

-- The attempt whose lines are kept and the number of its first line: when the first kept
-- line has a higher number, earlier lines were dropped (the tail is truncated).
CREATE TABLE task_output_attempts (
    task_id    TEXT PRIMARY KEY REFERENCES tasks(task_id) ON DELETE CASCADE,
    attempt    INTEGER NOT NULL,
    first_seq  INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
