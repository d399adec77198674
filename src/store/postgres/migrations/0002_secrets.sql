-- Cluster secrets, sealed by the coordinator (never a value in clear; the key is in its own
-- file, never here), and the names of the secrets each task uses (SQLite's 0006).

CREATE TABLE secrets (
    name TEXT PRIMARY KEY,
    key_id TEXT NOT NULL,
    sealed BYTEA NOT NULL,
    scope TEXT,
    set_by TEXT NOT NULL,
    set_at BIGINT NOT NULL
);

ALTER TABLE tasks ADD COLUMN secrets TEXT NOT NULL DEFAULT '[]';
