-- Search finds word forms (Porter's stemmer for English): `rotate` finds posts that say
-- `rotated` and `rotating`. The index is rebuilt from its own columns: no post is parsed again.
CREATE VIRTUAL TABLE search_new USING fts5(
    subject, body, author, tokenize = 'porter unicode61 remove_diacritics 2'
);
INSERT INTO search_new (rowid, subject, body, author)
SELECT rowid, subject, body, author FROM search;
DROP TABLE search;
ALTER TABLE search_new RENAME TO search;
