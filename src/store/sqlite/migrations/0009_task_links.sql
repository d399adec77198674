-- Dependencies, fan-out and workflows (issue 20): how a task is linked to others, as JSON
-- (the model's `TaskLinks`: depends_on, on_parent_failure, parent, step, group; NULL for a
-- plain task), its group task's id as a column of its own so that a group's children are
-- an index lookup, and the tasks it still waits for (its state: rewritten by transitions).

ALTER TABLE tasks ADD COLUMN links TEXT;
ALTER TABLE tasks ADD COLUMN parent_id TEXT;
ALTER TABLE tasks ADD COLUMN waiting_for TEXT NOT NULL DEFAULT '[]';

CREATE INDEX tasks_by_parent ON tasks(parent_id, seq) WHERE parent_id IS NOT NULL;
