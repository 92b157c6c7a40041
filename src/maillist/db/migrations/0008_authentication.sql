-- Deliverability: how each post authenticated on receipt, what its author's domain asks of
-- lists (DMARC), the list options that act on both, and the warnings and probes that follow a
-- member whose delivery bounces disabled.
ALTER TABLE lists ADD COLUMN dmarc TEXT NOT NULL DEFAULT 'auto'
    CHECK (dmarc IN ('auto', 'munge', 'wrap', 'none'));
ALTER TABLE lists ADD COLUMN unauthenticated TEXT NOT NULL DEFAULT 'hold'
    CHECK (unauthenticated IN ('hold', 'accept', 'reject'));
ALTER TABLE lists ADD COLUMN bounce_warnings INTEGER NOT NULL DEFAULT 3;

-- RFC 8601 results (after the authserv-id), e.g. "dkim=pass header.d=example.org; arc=none;
-- dmarc=pass (p=reject) header.from=example.org"; '' for mail received before this existed.
ALTER TABLE messages ADD COLUMN auth TEXT NOT NULL DEFAULT '';
-- The author domain's DMARC p= on receipt: reject | quarantine | none | '' (none published) |
-- unknown (the lookup failed): decides DMARC mitigation of the copies (dmarc.py).
ALTER TABLE messages ADD COLUMN author_policy TEXT NOT NULL DEFAULT '';
-- 0: the From was not proven (failed DMARC, or the check had no answer): no badges, and the
-- footer says so.
ALTER TABLE messages ADD COLUMN verified INTEGER NOT NULL DEFAULT 1;

-- A member disabled by bounces is warned weekly (each warning a VERP probe); a probe that does
-- not bounce re-enables delivery, and after the list's bounce_warnings the member is removed.
ALTER TABLE subscriptions ADD COLUMN warnings_sent INTEGER NOT NULL DEFAULT 0;
ALTER TABLE subscriptions ADD COLUMN last_warning_at TEXT NOT NULL DEFAULT '';
ALTER TABLE subscriptions ADD COLUMN probe_bounced INTEGER NOT NULL DEFAULT 0;

-- An optional second key per domain (RFC 8463 Ed25519): copies then carry both signatures.
ALTER TABLE dkim_keys ADD COLUMN ed25519_selector TEXT NOT NULL DEFAULT '';
ALTER TABLE dkim_keys ADD COLUMN ed25519_key TEXT NOT NULL DEFAULT '';  -- base64 seed
ALTER TABLE dkim_keys ADD COLUMN ed25519_txt TEXT NOT NULL DEFAULT '';
