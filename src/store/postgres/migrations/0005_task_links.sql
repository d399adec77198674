-- Dependencies, fan-out and workflows (issue 20), the SQLite store's 0009_task_links in
-- PostgreSQL's words: how a task is linked to others as JSON text (the model's `TaskLinks`;
-- NULL for a plain task), its group task's id as an indexed column (a group's children),
-- and the tasks it still waits for (its state: rewritten by transitions).

ALTER TABLE tasks ADD COLUMN links TEXT;
ALTER TABLE tasks ADD COLUMN parent_id TEXT;
ALTER TABLE tasks ADD COLUMN waiting_for TEXT NOT NULL DEFAULT '[]';

CREATE INDEX tasks_by_parent ON tasks(parent_id, seq) WHERE parent_id IS NOT NULL;
