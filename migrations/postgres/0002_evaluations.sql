-- What each rule did with each processed event, when it fired, was throttled, or failed.
CREATE TABLE evaluations (
    id           TEXT PRIMARY KEY,              -- evl_<uuidv7>
    event_id     TEXT NOT NULL REFERENCES events (id),
    rule_id      TEXT NOT NULL,
    rule_version TEXT NOT NULL,                 -- content hash of the rule as written
    outcome      TEXT NOT NULL,                 -- fired | throttled | failed
    error        TEXT,
    error_line   BIGINT,
    actions      JSONB NOT NULL,                -- planned actions, rendered
    logs         JSONB NOT NULL,
    duration_us  BIGINT NOT NULL,
    evaluated_at TIMESTAMPTZ NOT NULL,
    UNIQUE (event_id, rule_id)                  -- planned once per (rule, event)
);

CREATE INDEX evaluations_rule ON evaluations (rule_id, id);

-- When a throttled rule last fired for a key; shared by every instance using the store.
CREATE TABLE throttles (
    rule_id      TEXT NOT NULL,
    throttle_key TEXT NOT NULL,
    fired_at_ms  BIGINT NOT NULL,
    PRIMARY KEY (rule_id, throttle_key)
);
