-- A fan-out job expands in slices, one short transaction each, so a post to a big list never holds
-- the writer for long: `expanded_to` is the last person id whose batch is written (members are
-- taken in person-id order, the subscriptions table's own key order).
ALTER TABLE outbound_jobs ADD COLUMN expanded_to INTEGER NOT NULL DEFAULT 0;
