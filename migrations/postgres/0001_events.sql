-- Deliveries: every request that reached an ingestion endpoint, as it arrived.
CREATE TABLE deliveries (
    id              TEXT PRIMARY KEY,
    source          TEXT NOT NULL,
    received_at     TIMESTAMPTZ NOT NULL,
    headers         JSONB NOT NULL,
    body            BYTEA NOT NULL,
    verification    TEXT NOT NULL,      -- verified | unsigned | rejected
    reason          TEXT
);

-- Canonical events. (source, source_event_id) is the dedupe key.
CREATE TABLE events (
    id              TEXT PRIMARY KEY,   -- evt_<uuidv7>, time-ordered
    source          TEXT NOT NULL,
    source_event_id TEXT NOT NULL,
    type            TEXT NOT NULL,
    source_type     TEXT,
    occurred_at     TIMESTAMPTZ NOT NULL,
    received_at     TIMESTAMPTZ NOT NULL,
    subject         JSONB NOT NULL,
    amount_value    TEXT,
    amount_currency TEXT,
    data            JSONB NOT NULL,
    payload         JSONB NOT NULL,
    delivery_id     TEXT REFERENCES deliveries (id),
    state           TEXT NOT NULL DEFAULT 'pending',  -- pending | processed
    lease_owner     TEXT,
    lease_until_ms  BIGINT,
    processed_at    TIMESTAMPTZ,
    UNIQUE (source, source_event_id)
);

CREATE INDEX events_pending ON events (id) WHERE state = 'pending';
CREATE INDEX events_type ON events (type, id);
