-- Bounce processing: each bounce as understood, and each member's score.
ALTER TABLE subscriptions ADD COLUMN bounce_score REAL NOT NULL DEFAULT 0;
ALTER TABLE subscriptions ADD COLUMN last_bounce_at TEXT NOT NULL DEFAULT '';
ALTER TABLE subscriptions ADD COLUMN disabled_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE lists ADD COLUMN bounce_threshold REAL NOT NULL DEFAULT 5.0;
ALTER TABLE lists ADD COLUMN bounce_stale_days INTEGER NOT NULL DEFAULT 7;

CREATE TABLE bounces (
    id          INTEGER PRIMARY KEY,
    list_id     INTEGER NOT NULL REFERENCES lists (id) ON DELETE CASCADE,
    message_row INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    member      TEXT    NOT NULL DEFAULT '',  -- the member it was matched to, '' if none
    found       TEXT    NOT NULL DEFAULT '',  -- the addresses the parser found, space-separated
    kind        TEXT    NOT NULL CHECK (kind IN ('hard', 'soft', 'policy', 'unknown')),
    status      TEXT    NOT NULL DEFAULT '',
    diagnostic  TEXT    NOT NULL DEFAULT '',
    scored      INTEGER NOT NULL DEFAULT 0,
    at          TEXT    NOT NULL
);
CREATE INDEX bounces_by_list ON bounces (list_id, at);
