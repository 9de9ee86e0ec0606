-- Retention: indexes for the pruning job, which removes rows past their retention in batches
-- (store/retention.rs), and the size of each delivery's body as it arrived (a refused
-- delivery keeps only a prefix of it).
ALTER TABLE deliveries ADD COLUMN body_size INTEGER;

-- Refused deliveries (kept 7 days by default) apart from accepted ones (30 days), so neither
-- pass reads the other's rows.
CREATE INDEX deliveries_refused ON deliveries (received_at) WHERE reason IS NOT NULL;
CREATE INDEX deliveries_accepted ON deliveries (received_at) WHERE reason IS NULL;
-- Events pointing at a delivery being removed lose the link; also counts events per delivery.
CREATE INDEX events_delivery ON events (delivery_id);
-- Finished events by age; pending ones are never removed.
CREATE INDEX events_finished ON events (received_at) WHERE state IN ('processed', 'failed');
CREATE INDEX evaluations_evaluated ON evaluations (evaluated_at);
CREATE INDEX actions_finished ON actions (updated_at) WHERE status IN ('delivered', 'dead');
CREATE INDEX attempts_started ON attempts (started_at);
