-- How many emit actions led to this event (0 for events from outside); bounds rule chains.
ALTER TABLE events ADD COLUMN chain_depth BIGINT NOT NULL DEFAULT 0;

-- The outbox: one row per planned action, written with the evaluation that planned it.
CREATE TABLE actions (
    id              TEXT PRIMARY KEY,           -- act_<uuidv7>; also the Idempotency-Key sent
    event_id        TEXT NOT NULL REFERENCES events (id),
    rule_id         TEXT NOT NULL,
    action_index    BIGINT NOT NULL,
    kind            TEXT NOT NULL,              -- webhook | email | pause_strategy | resume_strategy | emit
    target          TEXT NOT NULL,              -- what it talks to (host, smtp, platform): concurrency key
    payload         JSONB NOT NULL,             -- {"version": 1, ...rendered parameters}
    status          TEXT NOT NULL DEFAULT 'pending',  -- pending | in_flight | delivered | dead
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_ms BIGINT NOT NULL,
    lease_owner     TEXT,
    lease_until_ms  BIGINT,
    last_error      TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    UNIQUE (event_id, rule_id, action_index)   -- planned once per (event, rule, action)
);

-- Due actions in time order, and leases to retake, each found without reading the rest.
CREATE INDEX actions_pending ON actions (next_attempt_ms) WHERE status = 'pending';
CREATE INDEX actions_leased ON actions (lease_until_ms) WHERE status = 'in_flight';
CREATE INDEX actions_rule ON actions (rule_id, status);

-- Every delivery attempt.
CREATE TABLE attempts (
    id          TEXT PRIMARY KEY,
    action_id   TEXT NOT NULL REFERENCES actions (id),
    attempt     BIGINT NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL,
    duration_ms BIGINT NOT NULL,
    outcome     TEXT NOT NULL,                  -- delivered | retry | failed
    instance    TEXT NOT NULL,                  -- the engine instance that made the attempt
    status_code BIGINT,                         -- HTTP status, or SMTP reply code
    reply       TEXT,
    error       TEXT
);

CREATE INDEX attempts_action ON attempts (action_id, attempt);

-- The collection strategy state of each claim as Signalbox last set it.
CREATE TABLE strategy_states (
    platform   TEXT NOT NULL,
    claim      TEXT NOT NULL,
    paused     BOOLEAN NOT NULL,
    rule_id    TEXT NOT NULL,
    reason     TEXT,
    changed_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (platform, claim)
);
