-- Issue 9's storage fixes. Tables are rebuilt the way SQLite's documentation describes (new table,
-- copy, drop, rename); migrate.py runs every migration with foreign keys off and checks them all
-- before it commits.

-- Only a delivered (accepted or approved) post, a placeholder or a sub-address message claims its
-- Message-ID. A held, rejected or discarded post does not: a stranger who sends a member's
-- upcoming id first can no longer make the member's real post a "duplicate".
CREATE TABLE messages_new (
    id            INTEGER PRIMARY KEY,
    list_id       INTEGER NOT NULL REFERENCES lists (id) ON DELETE CASCADE,
    kind          TEXT    NOT NULL DEFAULT 'post'
                          CHECK (kind IN ('post', 'request', 'owner', 'join', 'leave',
                                          'bounces', 'confirm')),
    message_id    TEXT    NOT NULL,
    claimed       INTEGER NOT NULL DEFAULT 1 CHECK (claimed IN (0, 1)),
    thread_id     INTEGER REFERENCES threads (id) ON DELETE SET NULL,
    parent_id     INTEGER REFERENCES messages (id) ON DELETE SET NULL,
    envelope_from TEXT    NOT NULL DEFAULT '',
    recipient     TEXT    NOT NULL DEFAULT '',
    sender        TEXT    NOT NULL DEFAULT '',
    sender_name   TEXT    NOT NULL DEFAULT '',
    subject       TEXT    NOT NULL DEFAULT '',
    date          TEXT    NOT NULL DEFAULT '',
    in_reply_to   TEXT    NOT NULL DEFAULT '',
    refs          TEXT    NOT NULL DEFAULT '',
    raw           BLOB,
    size          INTEGER NOT NULL DEFAULT 0,
    received_at   TEXT    NOT NULL DEFAULT '',
    verdict       TEXT    NOT NULL DEFAULT ''
                          CHECK (verdict IN ('', 'accept', 'hold', 'reject', 'discard',
                                             'unhandled', 'approved', 'rejected', 'discarded')),
    reasons       TEXT    NOT NULL DEFAULT ''
);
INSERT INTO messages_new (id, list_id, kind, message_id, claimed, thread_id, parent_id,
                          envelope_from, recipient, sender, sender_name, subject, date,
                          in_reply_to, refs, raw, size, received_at, verdict, reasons)
SELECT id, list_id, kind, message_id,
       CASE WHEN verdict IN ('hold', 'reject', 'discard', 'rejected', 'discarded') THEN 0 ELSE 1 END,
       thread_id, parent_id, envelope_from, recipient, sender, sender_name, subject, date,
       in_reply_to, refs, raw, size, received_at, verdict, reasons
FROM messages;
DROP TABLE messages;
ALTER TABLE messages_new RENAME TO messages;
CREATE UNIQUE INDEX messages_claimed ON messages (list_id, kind, message_id) WHERE claimed = 1;
CREATE INDEX messages_by_id ON messages (list_id, kind, message_id);
CREATE INDEX messages_by_thread ON messages (thread_id, date);
CREATE INDEX messages_by_parent ON messages (parent_id);

-- A fan-out job that cannot be expanded is marked failed with its reason; it never blocks another.
CREATE TABLE outbound_jobs_new (
    id            INTEGER PRIMARY KEY,
    message_id    INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    list_id       INTEGER NOT NULL REFERENCES lists (id) ON DELETE CASCADE,
    state         TEXT    NOT NULL DEFAULT 'pending'
                          CHECK (state IN ('pending', 'expanded', 'failed')),
    personalized  INTEGER NOT NULL DEFAULT 0,
    envelope_from TEXT    NOT NULL DEFAULT '',
    rendered      BLOB,
    recipients    INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT    NOT NULL,
    last_error    TEXT    NOT NULL DEFAULT ''
);
INSERT INTO outbound_jobs_new (id, message_id, list_id, state, personalized, envelope_from,
                               rendered, recipients, created_at)
SELECT id, message_id, list_id, state, personalized, envelope_from, rendered, recipients, created_at
FROM outbound_jobs;
DROP TABLE outbound_jobs;
ALTER TABLE outbound_jobs_new RENAME TO outbound_jobs;
CREATE INDEX outbound_jobs_pending ON outbound_jobs (state);

-- When the last error happened (status --json last_errors[].at); next_attempt_at is when the
-- next try comes. A batch in `sending` uses next_attempt_at as its lease: past it, it is due again.
ALTER TABLE outbound_batches ADD COLUMN last_error_at TEXT NOT NULL DEFAULT '';
UPDATE outbound_batches SET last_error_at = coalesce(done_at, next_attempt_at) WHERE last_error <> '';

-- A digest of each copy the list sent, kept a few days: a copy that comes back as a post is a
-- loop, whatever happened to its headers on the way.
CREATE TABLE sent_copies (
    list_id INTEGER NOT NULL REFERENCES lists (id) ON DELETE CASCADE,
    digest  BLOB    NOT NULL,
    at      TEXT    NOT NULL,
    PRIMARY KEY (list_id, digest)
) WITHOUT ROWID;
CREATE INDEX sent_copies_by_age ON sent_copies (at);
