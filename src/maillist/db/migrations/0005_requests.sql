-- Members and moderators act by email: confirmation requests with single-use tokens, and a log
-- of the notices maillist sends, which its rate limits count (so a restart resets nothing).

ALTER TABLE lists ADD COLUMN subscription TEXT NOT NULL DEFAULT 'confirm'
    CHECK (subscription IN ('confirm', 'approve', 'closed'));
ALTER TABLE lists ADD COLUMN token_days INTEGER NOT NULL DEFAULT 3;

-- One row per token handed out. Only the token's SHA-256 is stored: reading the database hands
-- out no live token. `pending` until used or expired; a join on an `approve` list waits in
-- `awaiting` for a moderator after its address confirmed.
CREATE TABLE requests (
    id           INTEGER PRIMARY KEY,
    list_id      INTEGER NOT NULL REFERENCES lists (id) ON DELETE CASCADE,
    action       TEXT    NOT NULL CHECK (action IN ('join', 'leave', 'moderate')),
    address      TEXT    NOT NULL,
    held_id      INTEGER REFERENCES held_messages (id) ON DELETE CASCADE,
    token_hash   BLOB    NOT NULL UNIQUE,
    state        TEXT    NOT NULL DEFAULT 'pending'
                         CHECK (state IN ('pending', 'awaiting', 'done', 'denied', 'cancelled')),
    created_at   TEXT    NOT NULL,
    expires_at   TEXT    NOT NULL,
    last_sent_at TEXT    NOT NULL,
    decided_at   TEXT,
    decided_by   TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX requests_open ON requests (list_id, address, action, state);
CREATE INDEX requests_by_held ON requests (held_id);

-- Every notice queued: to whom, for which list, prompted by which connecting client.
CREATE TABLE notices_sent (
    at      TEXT    NOT NULL,
    list_id INTEGER REFERENCES lists (id) ON DELETE CASCADE,
    address TEXT    NOT NULL,
    client  TEXT    NOT NULL DEFAULT '',
    kind    TEXT    NOT NULL
);
CREATE INDEX notices_by_address ON notices_sent (address, at);
CREATE INDEX notices_by_client ON notices_sent (client, at);

-- A notice is a one-recipient job whose copy is the notice itself (db/notices.py).
ALTER TABLE outbound_jobs ADD COLUMN notice INTEGER NOT NULL DEFAULT 0;
