-- Issue 20: what a stranger's word may no longer do on its own.
-- Badges are worn only by posts whose author is proven (an aligned DKIM signature, or a
-- trusted host's or ARC sealer's pass); 'unless-forged' is for sites that cannot authenticate.
ALTER TABLE lists ADD COLUMN badges TEXT NOT NULL DEFAULT 'authenticated'
    CHECK (badges IN ('authenticated', 'unless-forged'));
-- A bounce score at the threshold sends a probe first: delivery is disabled only when the
-- probe (a VERP address with a secret token) bounces too, which a forger cannot make happen.
ALTER TABLE subscriptions ADD COLUMN probe_sent_at TEXT NOT NULL DEFAULT '';
-- Signing out ends every session cookie issued before it.
ALTER TABLE people ADD COLUMN signed_out_at TEXT NOT NULL DEFAULT '';
-- A delivery mode asked for by a From nobody proved waits for the member's confirmation
-- (action 'mode', the mode wanted in detail).
CREATE TABLE requests_new (
    id           INTEGER PRIMARY KEY,
    list_id      INTEGER NOT NULL REFERENCES lists (id) ON DELETE CASCADE,
    action       TEXT    NOT NULL CHECK (action IN ('join', 'leave', 'moderate', 'mode')),
    address      TEXT    NOT NULL,
    held_id      INTEGER REFERENCES held_messages (id) ON DELETE CASCADE,
    token_hash   BLOB    NOT NULL UNIQUE,
    state        TEXT    NOT NULL DEFAULT 'pending'
                         CHECK (state IN ('pending', 'awaiting', 'done', 'denied', 'cancelled')),
    created_at   TEXT    NOT NULL,
    expires_at   TEXT    NOT NULL,
    last_sent_at TEXT    NOT NULL,
    decided_at   TEXT,
    decided_by   TEXT    NOT NULL DEFAULT '',
    detail       TEXT    NOT NULL DEFAULT ''
);
INSERT INTO requests_new (id, list_id, action, address, held_id, token_hash, state, created_at,
                          expires_at, last_sent_at, decided_at, decided_by)
SELECT id, list_id, action, address, held_id, token_hash, state, created_at, expires_at,
       last_sent_at, decided_at, decided_by
FROM requests;
DROP TABLE requests;
ALTER TABLE requests_new RENAME TO requests;
CREATE INDEX requests_open ON requests (list_id, address, action, state);
CREATE INDEX requests_by_held ON requests (held_id);
