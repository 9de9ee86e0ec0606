-- Deliveries: every request that reached an ingestion endpoint, as it arrived.
CREATE TABLE deliveries (
    id              TEXT PRIMARY KEY NOT NULL,
    source          TEXT NOT NULL,
    received_at     TEXT NOT NULL,
    headers         TEXT NOT NULL,
    body            BLOB NOT NULL,
    verification    TEXT NOT NULL,      -- verified | unsigned | rejected
    reason          TEXT
);

-- Canonical events. (source, source_event_id) is the dedupe key.
CREATE TABLE events (
    id              TEXT PRIMARY KEY NOT NULL,  -- evt_<uuidv7>, time-ordered
    source          TEXT NOT NULL,
    source_event_id TEXT NOT NULL,
    type            TEXT NOT NULL,
    source_type     TEXT,
    occurred_at     TEXT NOT NULL,
    received_at     TEXT NOT NULL,
    subject         TEXT NOT NULL,
    amount_value    TEXT,
    amount_currency TEXT,
    data            TEXT NOT NULL,
    payload         TEXT NOT NULL,
    delivery_id     TEXT REFERENCES deliveries (id),
    state           TEXT NOT NULL DEFAULT 'pending',  -- pending | processed
    lease_owner     TEXT,
    lease_until_ms  INTEGER,
    processed_at    TEXT,
    UNIQUE (source, source_event_id)
);

CREATE INDEX events_pending ON events (id) WHERE state = 'pending';
CREATE INDEX events_type ON events (type, id);
