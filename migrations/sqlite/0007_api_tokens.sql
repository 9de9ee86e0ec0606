-- API tokens created with `signalbox tokens create` (those in the config are never stored).
-- Only the SHA-256 of a token is kept; a revoked token stays listed, and its name taken.
CREATE TABLE api_tokens (
    name          TEXT PRIMARY KEY,
    hash          TEXT NOT NULL UNIQUE,     -- hex SHA-256 of the token
    roles         TEXT NOT NULL,            -- ["read", ...]
    sources       TEXT,                     -- ingest: the sources it may claim; NULL = any not restricted
    created_at    TEXT NOT NULL,
    revoked_at    TEXT,
    last_used_at  TEXT                 -- updated at most once a minute
);

-- What tokens did: every request that changes something (operate, admin), with its answer.
CREATE TABLE token_uses (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      TEXT NOT NULL,
    token   TEXT NOT NULL,
    method  TEXT NOT NULL,
    path    TEXT NOT NULL,
    status  INTEGER NOT NULL
);
CREATE INDEX token_uses_at ON token_uses (at);

-- Which token posted a delivery (NULL: a signed platform webhook, or the API while open).
ALTER TABLE deliveries ADD COLUMN token TEXT;
