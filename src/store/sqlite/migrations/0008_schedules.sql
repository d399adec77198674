-- Schedules (issue 20): each schedule's whole record as JSON (the coordinator's
-- `ScheduleRecord`: its definition, where it is, its next due time and last run), and one
-- row per firing. A firing is keyed by (schedule, due time): the unique index is the store's
-- half of "exactly once per due time" (a run-now has no due time). The task a firing
-- submitted names its schedule, and schedule events name theirs.

CREATE TABLE schedules (
    schedule_id TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    record      TEXT NOT NULL
) STRICT;

CREATE TABLE schedule_runs (
    schedule_id TEXT NOT NULL REFERENCES schedules(schedule_id) ON DELETE CASCADE,
    run         INTEGER NOT NULL,
    due_at      INTEGER,
    fired_at    INTEGER NOT NULL,
    outcome     TEXT NOT NULL,
    task_id     TEXT,
    message     TEXT,
    PRIMARY KEY (schedule_id, run)
) STRICT;

CREATE UNIQUE INDEX schedule_runs_by_due ON schedule_runs(schedule_id, due_at) WHERE due_at IS NOT NULL;

ALTER TABLE tasks ADD COLUMN schedule TEXT;
ALTER TABLE events ADD COLUMN schedule_id TEXT;
CREATE INDEX events_by_schedule ON events(schedule_id, id) WHERE schedule_id IS NOT NULL;
