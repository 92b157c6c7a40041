-- A fan-out job expands in slices, one short transaction each, so a post to a big list never holds
-- the writer for long. Members are taken in (domain, person id) order, so each slice holds whole
-- runs of one domain and batches stay full (one SMTP transaction per domain and batch_size); the
-- job's cursor is the last (domain, person id) whose batch is written.
ALTER TABLE subscriptions ADD COLUMN domain TEXT NOT NULL DEFAULT '';
UPDATE subscriptions SET domain = (
    SELECT lower(substr(p.address, instr(p.address, '@') + 1)) FROM people p
    WHERE p.id = subscriptions.person_id
);
CREATE INDEX subscriptions_by_domain ON subscriptions (list_id, domain, person_id);
ALTER TABLE outbound_jobs ADD COLUMN expanded_domain TEXT NOT NULL DEFAULT '';
ALTER TABLE outbound_jobs ADD COLUMN expanded_to INTEGER NOT NULL DEFAULT 0;
