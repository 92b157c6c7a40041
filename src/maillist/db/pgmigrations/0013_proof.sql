-- As SQLite's 0013: badges need a proven author, bounce probes before disabling, sign-out ends
-- sessions, and delivery-mode requests that wait for a confirmation.
ALTER TABLE lists ADD COLUMN badges TEXT NOT NULL DEFAULT 'authenticated'
    CHECK (badges IN ('authenticated', 'unless-forged'));
ALTER TABLE subscriptions ADD COLUMN probe_sent_at TEXT NOT NULL DEFAULT '';
ALTER TABLE people ADD COLUMN signed_out_at TEXT NOT NULL DEFAULT '';
ALTER TABLE requests DROP CONSTRAINT requests_action_check;
ALTER TABLE requests ADD CONSTRAINT requests_action_check
    CHECK (action IN ('join', 'leave', 'moderate', 'mode'));
ALTER TABLE requests ADD COLUMN detail TEXT NOT NULL DEFAULT '';
