-- Where a task may run (a node, a platform, tags): JSON object, NULL for anywhere.

ALTER TABLE tasks ADD COLUMN target TEXT;
