-- Every rule set that went into force, with its files: a start with broken rule files runs
-- the last good set instead of stopping intake.
CREATE TABLE rule_sets (
    id         TEXT PRIMARY KEY,   -- hash of the files' paths and texts
    files      TEXT NOT NULL,        -- {"path": "text", ...}
    loaded_at  TEXT NOT NULL,        -- when it last went into force
    origin     TEXT NOT NULL       -- where it came from: the rules folder's path
);
