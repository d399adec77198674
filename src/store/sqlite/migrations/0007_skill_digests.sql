-- Per skill a node has: where it came from and its content's digest (JSON object by skill
-- name of {"source", "digest"}); '{}' for nodes registered before digests, or by older workers.

ALTER TABLE nodes ADD COLUMN skill_digests TEXT NOT NULL DEFAULT '{}';
