-- Schedules (issue 20), the SQLite store's 0008_schedules in PostgreSQL's words: each
-- schedule's whole record as JSON text (the coordinator's `ScheduleRecord`), and one row
-- per firing. A firing is keyed by (schedule, due time): the unique partial index is the
-- store's half of "exactly once per due time" (a run-now has no due time). The task a
-- firing submitted names its schedule, and schedule events name theirs.

CREATE TABLE schedules (
    schedule_id TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    record      TEXT NOT NULL
);

CREATE TABLE schedule_runs (
    schedule_id TEXT NOT NULL REFERENCES schedules(schedule_id) ON DELETE CASCADE,
    run         BIGINT NOT NULL,
    due_at      BIGINT,
    fired_at    BIGINT NOT NULL,
    outcome     TEXT NOT NULL,
    task_id     TEXT,
    message     TEXT,
    PRIMARY KEY (schedule_id, run)
);

CREATE UNIQUE INDEX schedule_runs_by_due ON schedule_runs(schedule_id, due_at) WHERE due_at IS NOT NULL;

ALTER TABLE tasks ADD COLUMN schedule TEXT;
ALTER TABLE events ADD COLUMN schedule_id TEXT;
CREATE INDEX events_by_schedule ON events(schedule_id, id) WHERE schedule_id IS NOT NULL;
