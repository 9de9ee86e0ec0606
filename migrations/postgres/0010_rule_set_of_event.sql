-- The rule set an event was evaluated against (`rule_sets.id`), so that explain can answer
-- with the rules that were in force, not today's.
ALTER TABLE events ADD COLUMN rule_set_id TEXT;
