-- The PostgreSQL store at the SQLite store's schema 5: the same tables, columns and
-- indexes (so `openclaw migrate --to` copies row for row), plus the leader lease.
-- Times are milliseconds since the Unix epoch (UTC); lists and maps are JSON text, parsed
-- and checked by the store exactly as SQLite's are. Integers are BIGINT throughout.

CREATE TABLE nodes (
    node_id               TEXT PRIMARY KEY,
    hostname              TEXT NOT NULL,
    platform              TEXT NOT NULL,
    arch                  TEXT NOT NULL,
    available_skills      TEXT NOT NULL DEFAULT '[]',
    unavailable_skills    TEXT NOT NULL DEFAULT '{}',
    max_concurrent_tasks  BIGINT NOT NULL,
    ip_address            TEXT NOT NULL DEFAULT '',
    tailscale_ip          TEXT NOT NULL DEFAULT '',
    port                  BIGINT NOT NULL DEFAULT 18789,
    tags                  TEXT NOT NULL DEFAULT '[]',
    version               TEXT,
    draining              BOOLEAN NOT NULL DEFAULT false,
    status                TEXT NOT NULL,
    cpu_usage             DOUBLE PRECISION NOT NULL DEFAULT 0,
    memory_usage          DOUBLE PRECISION NOT NULL DEFAULT 0,
    disk_usage            DOUBLE PRECISION NOT NULL DEFAULT 0,
    total_tasks_processed BIGINT NOT NULL DEFAULT 0,
    successful_tasks      BIGINT NOT NULL DEFAULT 0,
    failed_tasks          BIGINT NOT NULL DEFAULT 0,
    total_execution_ms    BIGINT NOT NULL DEFAULT 0,
    registered_at         BIGINT NOT NULL,
    last_heartbeat        BIGINT,
    incarnation           BIGINT NOT NULL DEFAULT 1,
    secret_hash           TEXT NOT NULL,
    secret_used           BOOLEAN NOT NULL DEFAULT true
);

CREATE TABLE tasks (
    task_id          TEXT PRIMARY KEY,
    seq              BIGINT NOT NULL UNIQUE,
    name             TEXT NOT NULL,
    description      TEXT NOT NULL DEFAULT '',
    task_type        TEXT NOT NULL,
    priority         BIGINT NOT NULL,
    required_skills  TEXT NOT NULL,
    optional_skills  TEXT NOT NULL DEFAULT '[]',
    affinity_tags    TEXT NOT NULL DEFAULT '[]',
    parameters       TEXT NOT NULL DEFAULT '{}',
    metadata         TEXT NOT NULL DEFAULT '{}',
    timeout_ms       BIGINT NOT NULL,
    max_retries      BIGINT NOT NULL,
    retry_count      BIGINT NOT NULL DEFAULT 0,
    attempt          BIGINT NOT NULL DEFAULT 0,
    user_id          TEXT,
    idempotency_key  TEXT,
    status           TEXT NOT NULL,
    assigned_node    TEXT,
    result           TEXT,
    error            TEXT,
    submitted_at     BIGINT NOT NULL,
    scheduled_at     BIGINT,
    started_at       BIGINT,
    completed_at     BIGINT,
    next_attempt_at  BIGINT,
    cancel_requested BOOLEAN NOT NULL DEFAULT false,
    origin           TEXT NOT NULL DEFAULT 'api',
    retry_of         TEXT,
    failed_on        TEXT NOT NULL DEFAULT '[]',
    target           TEXT
);

CREATE INDEX tasks_by_status ON tasks(status, seq);
CREATE INDEX tasks_by_node ON tasks(assigned_node, seq);
CREATE INDEX tasks_by_status_node ON tasks(status, assigned_node, seq);
CREATE INDEX tasks_ended ON tasks(completed_at) WHERE completed_at IS NOT NULL;
CREATE UNIQUE INDEX tasks_by_idempotency_key ON tasks(idempotency_key) WHERE idempotency_key IS NOT NULL;

-- The skill filter's index: one row per required skill of each task.
CREATE TABLE task_skills (
    skill    TEXT NOT NULL,
    seq      BIGINT NOT NULL,
    task_id  TEXT NOT NULL REFERENCES tasks(task_id) ON DELETE CASCADE,
    PRIMARY KEY (skill, seq)
);
CREATE INDEX task_skills_by_task ON task_skills(task_id);

-- One event log for tasks and nodes; ids are assigned by the coordinator in commit order.
CREATE TABLE events (
    id       BIGINT PRIMARY KEY,
    at       BIGINT NOT NULL,
    kind     TEXT NOT NULL,
    event    TEXT NOT NULL,
    task_id  TEXT REFERENCES tasks(task_id) ON DELETE CASCADE,
    node_id  TEXT,
    status   TEXT NOT NULL,
    attempt  BIGINT,
    skill    TEXT,
    message  TEXT
);
CREATE INDEX events_by_task ON events(task_id, id) WHERE task_id IS NOT NULL;
CREATE INDEX events_of_nodes ON events(at) WHERE task_id IS NULL;
CREATE INDEX events_by_node ON events(node_id, id);

-- The kept tail of each task's output (see the SQLite store's 0004).
CREATE TABLE task_output (
    task_id  TEXT NOT NULL REFERENCES tasks(task_id) ON DELETE CASCADE,
    seq      BIGINT NOT NULL,
    attempt  BIGINT NOT NULL,
    at       BIGINT NOT NULL,
    stream   TEXT NOT NULL,
    text     TEXT NOT NULL,
    PRIMARY KEY (task_id, seq)
);

CREATE TABLE task_output_attempts (
    task_id    TEXT PRIMARY KEY REFERENCES tasks(task_id) ON DELETE CASCADE,
    attempt    BIGINT NOT NULL,
    first_seq  BIGINT NOT NULL
);

-- The leader lease: one row. `epoch` goes up by one at every takeover; a write batch
-- commits only while the epoch it was started under is still this one (checked under a
-- share lock on this row in the batch's own transaction, so a takeover, which updates
-- the row, waits for a batch in flight and every later batch of the old leader fails).
-- `renewed_at` is the server's clock (one clock for every coordinator); a lease whose
-- renewed_at + ttl_ms is past may be taken over.
CREATE TABLE leader_lease (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    epoch       BIGINT NOT NULL,
    holder      TEXT,
    url         TEXT,
    ttl_ms      BIGINT NOT NULL DEFAULT 0,
    renewed_at  TIMESTAMPTZ NOT NULL DEFAULT 'epoch'
);
INSERT INTO leader_lease (id, epoch) VALUES (1, 0);
