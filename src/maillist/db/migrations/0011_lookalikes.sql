-- Each person's TR 39 skeleton (lookalikes.py), to find the existing address a new one looks
-- like; filled in by `members add` / `badges grant` for rows that have none yet.
ALTER TABLE people ADD COLUMN skeleton TEXT NOT NULL DEFAULT '';
CREATE INDEX people_by_skeleton ON people (skeleton);
