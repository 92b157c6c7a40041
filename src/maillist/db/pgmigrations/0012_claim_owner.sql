-- As SQLite's 0012: which process holds a claimed batch (see db/deliveries.py).
ALTER TABLE outbound_batches ADD COLUMN claimed_by BIGINT NOT NULL DEFAULT 0;
