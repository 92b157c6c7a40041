-- Digests: members with mode `digest` get the list's posts gathered once a day (at the list's
-- digest_hour, UTC) or sooner when the pending posts pass digest_size bytes.
ALTER TABLE lists ADD COLUMN digest_hour INTEGER NOT NULL DEFAULT 6;
ALTER TABLE lists ADD COLUMN digest_size INTEGER NOT NULL DEFAULT 102400;

-- Posts delivered and not yet in a digest, written with the post's fan-out job (so an approved
-- post joins the next digest too); taken out in the transaction that queues the digest.
CREATE TABLE digest_queue (
    list_id     INTEGER NOT NULL REFERENCES lists (id) ON DELETE CASCADE,
    message_row INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    PRIMARY KEY (list_id, message_row)
) WITHOUT ROWID;

-- Each digest sent: numbered Volume (the year of the list, from 1) / Issue (from 1 each volume),
-- written in the transaction that queues it, so a crash never sends one twice.
CREATE TABLE digests (
    id       INTEGER PRIMARY KEY,
    list_id  INTEGER NOT NULL REFERENCES lists (id) ON DELETE CASCADE,
    volume   INTEGER NOT NULL,
    issue    INTEGER NOT NULL,
    posts    INTEGER NOT NULL,
    job_id   INTEGER,
    sent_at  TEXT    NOT NULL,
    UNIQUE (list_id, volume, issue)
);
