-- Which process holds a batch it claimed (a random number each process draws at start). On
-- PostgreSQL each process also holds an advisory lock under that number for as long as it
-- lives, so the others can tell a dead owner's claims from a live one's and take them over at
-- once (db/deliveries.py). SQLite has one process: it resets every claim at start instead.
ALTER TABLE outbound_batches ADD COLUMN claimed_by INTEGER NOT NULL DEFAULT 0;
