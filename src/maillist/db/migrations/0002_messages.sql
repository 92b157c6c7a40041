-- Messages as received, their threads, held posts and the outbound delivery queue.

CREATE TABLE threads (
    id               INTEGER PRIMARY KEY,
    list_id          INTEGER NOT NULL REFERENCES lists (id) ON DELETE CASCADE,
    subject          TEXT    NOT NULL DEFAULT '',
    started_at       TEXT    NOT NULL,
    last_activity_at TEXT    NOT NULL
);
CREATE INDEX threads_by_activity ON threads (list_id, last_activity_at);

-- A message row exists per (list, Message-ID). A placeholder row (raw IS NULL) stands for an id that
-- replies referenced before the message itself arrived, so the parent can be linked when it comes.
CREATE TABLE messages (
    id          INTEGER PRIMARY KEY,
    list_id     INTEGER NOT NULL REFERENCES lists (id) ON DELETE CASCADE,
    message_id  TEXT    NOT NULL,
    thread_id   INTEGER REFERENCES threads (id) ON DELETE SET NULL,
    parent_id   INTEGER REFERENCES messages (id) ON DELETE SET NULL,
    kind        TEXT    NOT NULL DEFAULT 'post',
    sender      TEXT    NOT NULL DEFAULT '',
    person_id   INTEGER REFERENCES people (id) ON DELETE SET NULL,
    from_name   TEXT    NOT NULL DEFAULT '',
    subject     TEXT    NOT NULL DEFAULT '',
    date        TEXT,
    in_reply_to TEXT,
    refs        TEXT    NOT NULL DEFAULT '',
    raw         BLOB,
    received_at TEXT,
    verdict     TEXT,
    reasons     TEXT    NOT NULL DEFAULT '',
    UNIQUE (list_id, message_id)
);
CREATE INDEX messages_by_thread ON messages (thread_id);
CREATE INDEX messages_by_parent ON messages (parent_id);

CREATE TABLE held_messages (
    id         INTEGER PRIMARY KEY,
    message_id INTEGER NOT NULL UNIQUE REFERENCES messages (id) ON DELETE CASCADE,
    reason     TEXT    NOT NULL,
    held_at    TEXT    NOT NULL,
    decision   TEXT,
    decided_at TEXT,
    decided_by TEXT
);

-- One fan-out job per accepted post, written in the same transaction as the verdict; workers expand
-- it into recipient batches and record progress per batch.
CREATE TABLE outbound_jobs (
    id             INTEGER PRIMARY KEY,
    message_id     INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    list_id        INTEGER NOT NULL REFERENCES lists (id) ON DELETE CASCADE,
    state          TEXT    NOT NULL DEFAULT 'pending'
                           CHECK (state IN ('pending', 'expanding', 'done')),
    cursor         INTEGER NOT NULL DEFAULT 0,
    created_at     TEXT    NOT NULL
);

CREATE TABLE outbound_batches (
    id              INTEGER PRIMARY KEY,
    job_id          INTEGER NOT NULL REFERENCES outbound_jobs (id) ON DELETE CASCADE,
    recipients      TEXT    NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'pending'
                            CHECK (state IN ('pending', 'sending', 'deferred', 'sent', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT    NOT NULL,
    last_error      TEXT    NOT NULL DEFAULT '',
    created_at      TEXT    NOT NULL
);
CREATE INDEX outbound_batches_due ON outbound_batches (state, next_attempt_at);
