-- One event log for tasks and nodes (the task history and the cluster's event stream),
-- an index table for the skill filter, task columns for origin, retries of ended tasks and
-- the nodes an attempt failed on, and whether a node's secret was ever used.

CREATE TABLE events (
    id       INTEGER PRIMARY KEY,   -- assigned by the coordinator in commit order
    at       INTEGER NOT NULL,
    kind     TEXT NOT NULL,         -- 'task' or 'node'
    event    TEXT NOT NULL,
    task_id  TEXT REFERENCES tasks(task_id) ON DELETE CASCADE,
    node_id  TEXT,
    status   TEXT NOT NULL,
    attempt  INTEGER,
    skill    TEXT,
    message  TEXT
) STRICT;

INSERT INTO events (id, at, kind, event, task_id, node_id, status, attempt, skill, message)
    SELECT e.id, e.at, 'task', e.event, e.task_id, e.node_id, e.status, e.attempt,
           json_extract(t.required_skills, '$[0]'), e.message
    FROM task_events e JOIN tasks t ON t.task_id = e.task_id;

DROP TABLE task_events;

CREATE INDEX events_by_task ON events(task_id, id) WHERE task_id IS NOT NULL;
CREATE INDEX events_of_nodes ON events(at) WHERE task_id IS NULL;

CREATE TABLE task_skills (
    skill    TEXT NOT NULL,
    seq      INTEGER NOT NULL,
    task_id  TEXT NOT NULL REFERENCES tasks(task_id) ON DELETE CASCADE,
    PRIMARY KEY (skill, seq)
) STRICT, WITHOUT ROWID;

INSERT INTO task_skills (skill, seq, task_id)
    SELECT j.value, t.seq, t.task_id FROM tasks t, json_each(t.required_skills) j
    WHERE true ON CONFLICT DO NOTHING;

CREATE INDEX task_skills_by_task ON task_skills(task_id);

-- Whether a node's current secret was ever used (1 for nodes that existed before).
ALTER TABLE nodes ADD COLUMN secret_used INTEGER NOT NULL DEFAULT 1;

ALTER TABLE tasks ADD COLUMN origin TEXT NOT NULL DEFAULT 'api';
ALTER TABLE tasks ADD COLUMN retry_of TEXT;
ALTER TABLE tasks ADD COLUMN failed_on TEXT NOT NULL DEFAULT '[]';

CREATE INDEX tasks_by_status_node ON tasks(status, assigned_node, seq);
