-- Time-based rules: a subject's history, "A not followed by B" checks, schedules, state kept
-- per subject, delayed actions that a later event cancels, and cancelled actions.

-- A subject's events by type and time (the history a rule looks back over). Queries use these
-- expressions exactly as written here, so the planner can use the indexes.
CREATE INDEX events_claim_history ON events ((subject->>'claim'), type, occurred_at)
    WHERE (subject->>'claim') IS NOT NULL;
CREATE INDEX events_account_history ON events ((subject->>'account'), type, occurred_at)
    WHERE (subject->>'account') IS NOT NULL;
CREATE INDEX events_debtor_history ON events ((subject->>'debtor'), type, occurred_at)
    WHERE (subject->>'debtor') IS NOT NULL;

-- Pending "A not followed by B" checks: armed by an event (A) for a rule, satisfied by a later
-- event of an awaited type about the same subject, or fired at the deadline.
CREATE TABLE checks (
    id          TEXT PRIMARY KEY,          -- chk_<uuidv7>
    rule_id     TEXT NOT NULL,
    event_id    TEXT NOT NULL REFERENCES events (id),  -- the event that armed it
    subject_ref TEXT NOT NULL,                      -- claim:C-1
    awaits      JSONB NOT NULL,                      -- JSON array of event types
    deadline_ms BIGINT NOT NULL,
    status      TEXT NOT NULL DEFAULT 'pending',    -- pending | satisfied | fired | cancelled
    resolved_by TEXT,                               -- the satisfying event, the deadline event, or who cancelled it
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    UNIQUE (event_id, rule_id)                      -- armed once per (event, rule)
);
CREATE INDEX checks_due ON checks (deadline_ms) WHERE status = 'pending';
CREATE INDEX checks_subject ON checks (subject_ref) WHERE status = 'pending';
-- Resolved checks by age, for retention; lists by rule.
CREATE INDEX checks_resolved ON checks (updated_at) WHERE status <> 'pending';
CREATE INDEX checks_rule ON checks (rule_id, id);

-- Where each scheduled rule is: the schedule as written (a changed one starts anew) and the
-- last tick it ran for.
CREATE TABLE schedules (
    rule_id      TEXT PRIMARY KEY,
    expression   TEXT NOT NULL,
    last_tick_ms BIGINT NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);

-- Named values rules keep per subject, each until it expires (never, if NULL).
CREATE TABLE subject_state (
    subject_ref TEXT NOT NULL,                      -- claim:C-1
    name        TEXT NOT NULL,
    value       JSONB NOT NULL,                      -- JSON
    expires_ms  BIGINT,
    rule_id     TEXT NOT NULL,                      -- the rule that set it last
    updated_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (subject_ref, name)
);
CREATE INDEX subject_state_expires ON subject_state (expires_ms);

-- Delayed actions that a later event about the subject cancels while they are pending.
ALTER TABLE actions ADD COLUMN cancel_ref TEXT;     -- claim:C-1
ALTER TABLE actions ADD COLUMN cancel_types JSONB;   -- JSON array of event types
CREATE INDEX actions_cancellable ON actions (cancel_ref) WHERE status = 'pending' AND cancel_ref IS NOT NULL;
-- Status is now pending | in_flight | delivered | dead | cancelled: finished actions by age
-- include cancelled ones; dead actions by when they died, for digests.
DROP INDEX actions_finished;
CREATE INDEX actions_finished ON actions (updated_at) WHERE status IN ('delivered', 'dead', 'cancelled');
CREATE INDEX actions_dead ON actions (updated_at) WHERE status = 'dead';
