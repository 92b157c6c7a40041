-- The web archive: who may read each list's archive, full-text search, people's pictures, badge
-- styles, and the sign-in links of private archives.
ALTER TABLE lists ADD COLUMN archive TEXT NOT NULL DEFAULT 'private'
    CHECK (archive IN ('public', 'private', 'none'));

-- Search over every stored post (rowid = messages.id); readers only ever see delivered ones.
-- Kept in step by the ingest transaction; posts stored before this existed are indexed by
-- `maillist serve` at start (services/search.py).
CREATE VIRTUAL TABLE search USING fts5(
    subject, body, author, tokenize = 'unicode61 remove_diacritics 2'
);

-- A picture an admin set (`maillist people set-picture`), already resized; else one is drawn.
ALTER TABLE people ADD COLUMN picture BLOB;
ALTER TABLE people ADD COLUMN picture_type TEXT NOT NULL DEFAULT '';

-- How a badge looks beside a name: a CSS colour (#rrggbb) and a short icon (an emoji or two
-- letters), both checked when set.
ALTER TABLE badges ADD COLUMN colour TEXT NOT NULL DEFAULT '';
ALTER TABLE badges ADD COLUMN icon TEXT NOT NULL DEFAULT '';

-- Single-use sign-in links for private archives: the SHA-256 of the token, never the token.
CREATE TABLE sign_ins (
    token_hash TEXT PRIMARY KEY,
    address    TEXT NOT NULL COLLATE NOCASE,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at    TEXT NOT NULL DEFAULT ''
);
