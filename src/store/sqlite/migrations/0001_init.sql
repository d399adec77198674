-- Nodes, tasks and the per-task event history.
-- Times are milliseconds since the Unix epoch (UTC); lists and maps are JSON text.

CREATE TABLE nodes (
    node_id               TEXT PRIMARY KEY NOT NULL,
    hostname              TEXT NOT NULL,
    platform              TEXT NOT NULL,
    arch                  TEXT NOT NULL,
    available_skills      TEXT NOT NULL DEFAULT '[]',
    unavailable_skills    TEXT NOT NULL DEFAULT '{}',
    max_concurrent_tasks  INTEGER NOT NULL,
    ip_address            TEXT NOT NULL DEFAULT '',
    tailscale_ip          TEXT NOT NULL DEFAULT '',
    port                  INTEGER NOT NULL DEFAULT 18789,
    tags                  TEXT NOT NULL DEFAULT '[]',
    version               TEXT,
    draining              INTEGER NOT NULL DEFAULT 0,
    status                TEXT NOT NULL,
    cpu_usage             REAL NOT NULL DEFAULT 0,
    memory_usage          REAL NOT NULL DEFAULT 0,
    disk_usage            REAL NOT NULL DEFAULT 0,
    total_tasks_processed INTEGER NOT NULL DEFAULT 0,
    successful_tasks      INTEGER NOT NULL DEFAULT 0,
    failed_tasks          INTEGER NOT NULL DEFAULT 0,
    total_execution_ms    INTEGER NOT NULL DEFAULT 0,
    registered_at         INTEGER NOT NULL,
    last_heartbeat        INTEGER,
    incarnation           INTEGER NOT NULL DEFAULT 1,
    secret_hash           TEXT NOT NULL
) STRICT;

CREATE TABLE tasks (
    task_id          TEXT PRIMARY KEY NOT NULL,
    seq              INTEGER NOT NULL UNIQUE,
    name             TEXT NOT NULL,
    description      TEXT NOT NULL DEFAULT '',
    task_type        TEXT NOT NULL,
    priority         INTEGER NOT NULL,
    required_skills  TEXT NOT NULL,
    optional_skills  TEXT NOT NULL DEFAULT '[]',
    affinity_tags    TEXT NOT NULL DEFAULT '[]',
    parameters       TEXT NOT NULL DEFAULT '{}',
    metadata         TEXT NOT NULL DEFAULT '{}',
    timeout_ms       INTEGER NOT NULL,
    max_retries      INTEGER NOT NULL,
    retry_count      INTEGER NOT NULL DEFAULT 0,
    attempt          INTEGER NOT NULL DEFAULT 0,
    user_id          TEXT,
    idempotency_key  TEXT,
    status           TEXT NOT NULL,
    assigned_node    TEXT,
    result           TEXT,
    error            TEXT,
    submitted_at     INTEGER NOT NULL,
    scheduled_at     INTEGER,
    started_at       INTEGER,
    completed_at     INTEGER,
    next_attempt_at  INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE TABLE task_events (
    id       INTEGER PRIMARY KEY,
    task_id  TEXT NOT NULL REFERENCES tasks(task_id) ON DELETE CASCADE,
    at       INTEGER NOT NULL,
    event    TEXT NOT NULL,
    status   TEXT NOT NULL,
    attempt  INTEGER NOT NULL,
    node_id  TEXT,
    message  TEXT
) STRICT;

CREATE INDEX task_events_by_task ON task_events(task_id, id);
