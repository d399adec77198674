-- Pushed skills (issue 21): each package's bytes under its content digest, and the pushes
-- as desired state (per skill name: the version its selector's nodes should have, none
-- once removed, and the version before for a rollback). Numbered 0010 after the
-- failover and workflow branches' migrations (renumber at merge if they land after).

CREATE TABLE skill_packages (
    digest    TEXT PRIMARY KEY,
    name      TEXT NOT NULL,
    size      INTEGER NOT NULL,
    bytes     BLOB NOT NULL,
    pushed_by TEXT NOT NULL,
    pushed_at INTEGER NOT NULL
);

CREATE TABLE skill_pushes (
    name      TEXT PRIMARY KEY,
    digest    TEXT,
    previous  TEXT,
    selector  TEXT NOT NULL,
    except_nodes TEXT NOT NULL DEFAULT '[]',
    pushed_by TEXT NOT NULL,
    pushed_at INTEGER NOT NULL
);
