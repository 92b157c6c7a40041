-- Lists, people, subscriptions, badges and the audit log: everything the admin CLI manages.

CREATE TABLE lists (
    id               INTEGER PRIMARY KEY,
    address          TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    name             TEXT    NOT NULL,
    description      TEXT    NOT NULL DEFAULT '',
    posting          TEXT    NOT NULL DEFAULT 'members'
                             CHECK (posting IN ('members', 'open', 'moderated')),
    subject_prefix   TEXT    NOT NULL DEFAULT '',
    max_message_size INTEGER NOT NULL DEFAULT 10485760,
    reply_to         TEXT    NOT NULL DEFAULT 'author',
    personalize      INTEGER NOT NULL DEFAULT 0,
    web_url          TEXT    NOT NULL DEFAULT '',
    created_at       TEXT    NOT NULL,
    batch_size       INTEGER NOT NULL DEFAULT 100,
    footer           INTEGER NOT NULL DEFAULT 1
);

-- One row per address, site-wide: a person's name and badges follow them to every list.
CREATE TABLE people (
    id         INTEGER PRIMARY KEY,
    address    TEXT NOT NULL UNIQUE COLLATE NOCASE,
    name       TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL
);

CREATE TABLE subscriptions (
    list_id    INTEGER NOT NULL REFERENCES lists (id) ON DELETE CASCADE,
    person_id  INTEGER NOT NULL REFERENCES people (id) ON DELETE CASCADE,
    role       TEXT    NOT NULL DEFAULT 'member'
                       CHECK (role IN ('member', 'moderator', 'owner')),
    mode       TEXT    NOT NULL DEFAULT 'regular'
                       CHECK (mode IN ('regular', 'digest', 'nomail')),
    status     TEXT    NOT NULL DEFAULT 'enabled'
                       CHECK (status IN ('enabled', 'disabled')),
    -- whether the member gets a copy of their own posts
    receive_own INTEGER NOT NULL DEFAULT 1,
    created_at TEXT    NOT NULL,
    PRIMARY KEY (list_id, person_id)
) WITHOUT ROWID;
CREATE INDEX subscriptions_by_person ON subscriptions (person_id);

CREATE TABLE badges (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE COLLATE NOCASE,
    created_at TEXT NOT NULL
);

CREATE TABLE badge_grants (
    person_id  INTEGER NOT NULL REFERENCES people (id) ON DELETE CASCADE,
    badge_id   INTEGER NOT NULL REFERENCES badges (id) ON DELETE CASCADE,
    granted_at TEXT    NOT NULL,
    granted_by TEXT    NOT NULL,
    PRIMARY KEY (person_id, badge_id)
) WITHOUT ROWID;
CREATE INDEX badge_grants_by_badge ON badge_grants (badge_id);

-- Who changed what, when. Never deleted with the thing it describes.
CREATE TABLE audit_log (
    id     INTEGER PRIMARY KEY,
    at     TEXT NOT NULL,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
