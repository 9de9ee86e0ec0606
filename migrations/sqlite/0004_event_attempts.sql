-- Processing attempts. An event whose processing keeps failing (or keeps stopping the engine)
-- is parked as state 'failed' with the reason, instead of blocking the events behind it;
-- `signalbox events retry` puts it back. State is now pending | processed | failed.
ALTER TABLE events ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN next_attempt_ms INTEGER;
ALTER TABLE events ADD COLUMN last_error TEXT;

CREATE INDEX events_failed ON events (id) WHERE state = 'failed';
