-- DKIM keys, one per list domain: the private key (PEM) the server signs copies with, and the
-- TXT record to publish at SELECTOR._domainkey.DOMAIN. The database file is created readable by
-- its owner only (db/store.py).
CREATE TABLE dkim_keys (
    domain      TEXT PRIMARY KEY COLLATE NOCASE,
    selector    TEXT NOT NULL,
    private_key TEXT NOT NULL,
    txt         TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
