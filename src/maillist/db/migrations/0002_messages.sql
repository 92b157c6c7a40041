-- Messages as received, their threads, held posts and the outbound delivery queue.

CREATE TABLE threads (
    id               INTEGER PRIMARY KEY,
    list_id          INTEGER NOT NULL REFERENCES lists (id) ON DELETE CASCADE,
    subject          TEXT    NOT NULL DEFAULT '',
    subject_key      TEXT    NOT NULL DEFAULT '',
    started_at       TEXT    NOT NULL,
    last_activity_at TEXT    NOT NULL
);
CREATE INDEX threads_by_activity ON threads (list_id, last_activity_at);
CREATE INDEX threads_by_subject ON threads (list_id, subject_key, last_activity_at);

-- One row per (list, kind, Message-ID). A placeholder (raw IS NULL) stands for an id that replies
-- referenced before the message itself arrived, so the parent is linked when it comes.
CREATE TABLE messages (
    id            INTEGER PRIMARY KEY,
    list_id       INTEGER NOT NULL REFERENCES lists (id) ON DELETE CASCADE,
    kind          TEXT    NOT NULL DEFAULT 'post'
                          CHECK (kind IN ('post', 'request', 'owner', 'join', 'leave',
                                          'bounces', 'confirm')),
    message_id    TEXT    NOT NULL,
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
    reasons       TEXT    NOT NULL DEFAULT '',
    UNIQUE (list_id, kind, message_id)
);
CREATE INDEX messages_by_thread ON messages (thread_id, date);
CREATE INDEX messages_by_parent ON messages (parent_id);

CREATE TABLE held_messages (
    id         INTEGER PRIMARY KEY,
    message_id INTEGER NOT NULL UNIQUE REFERENCES messages (id) ON DELETE CASCADE,
    list_id    INTEGER NOT NULL REFERENCES lists (id) ON DELETE CASCADE,
    reason     TEXT    NOT NULL,
    held_at    TEXT    NOT NULL,
    decision   TEXT    CHECK (decision IN ('approved', 'rejected', 'discarded')),
    decided_at TEXT,
    decided_by TEXT,
    note       TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX held_open ON held_messages (list_id, decision);

-- One fan-out job per accepted post, written in the same transaction as the verdict. A delivery
-- worker expands it (in one transaction) into batches: one batch = one SMTP transaction, up to the
-- list's batch size recipients of one domain, or one member for personalised lists.
CREATE TABLE outbound_jobs (
    id            INTEGER PRIMARY KEY,
    message_id    INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    list_id       INTEGER NOT NULL REFERENCES lists (id) ON DELETE CASCADE,
    state         TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'expanded')),
    personalized  INTEGER NOT NULL DEFAULT 0,
    envelope_from TEXT    NOT NULL DEFAULT '',
    rendered      BLOB,
    recipients    INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT    NOT NULL
);
CREATE INDEX outbound_jobs_pending ON outbound_jobs (state);

CREATE TABLE outbound_batches (
    id              INTEGER PRIMARY KEY,
    job_id          INTEGER NOT NULL REFERENCES outbound_jobs (id) ON DELETE CASCADE,
    recipients      TEXT    NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'pending'
                            CHECK (state IN ('pending', 'sending', 'deferred', 'sent', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT    NOT NULL,
    last_error      TEXT    NOT NULL DEFAULT '',
    created_at      TEXT    NOT NULL,
    done_at         TEXT
);
CREATE INDEX outbound_batches_due ON outbound_batches (state, next_attempt_at);
CREATE INDEX outbound_batches_job ON outbound_batches (job_id);

-- A permanent (5xx) refusal for one recipient: what bounce processing will act on.
CREATE TABLE delivery_failures (
    id         INTEGER PRIMARY KEY,
    job_id     INTEGER NOT NULL REFERENCES outbound_jobs (id) ON DELETE CASCADE,
    list_id    INTEGER NOT NULL REFERENCES lists (id) ON DELETE CASCADE,
    address    TEXT    NOT NULL,
    reply      TEXT    NOT NULL,
    at         TEXT    NOT NULL
);
CREATE INDEX delivery_failures_by_address ON delivery_failures (list_id, address);

-- Site-wide values; `secret` signs per-member unsubscribe tokens.
CREATE TABLE site (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
INSERT INTO site (key, value) VALUES ('secret', lower(hex(randomblob(32))));
