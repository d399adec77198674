-- Indexes for the task list filters, recovery at start, retention, and idempotent submit.

CREATE INDEX tasks_by_status ON tasks(status, seq);
CREATE INDEX tasks_by_node ON tasks(assigned_node, seq);
CREATE INDEX tasks_ended ON tasks(completed_at) WHERE completed_at IS NOT NULL;
CREATE UNIQUE INDEX tasks_by_idempotency_key ON tasks(idempotency_key) WHERE idempotency_key IS NOT NULL;
