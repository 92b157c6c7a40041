-- As SQLite's 0014: search finds word forms (the 'english' configuration stems words).
DROP INDEX search_document;
ALTER TABLE search DROP COLUMN document;
ALTER TABLE search ADD COLUMN document TSVECTOR GENERATED ALWAYS AS (
    setweight(to_tsvector('english', subject), 'A')
    || to_tsvector('english', body)
    || setweight(to_tsvector('english', author), 'B')
) STORED;
CREATE INDEX search_document ON search USING GIN (document);
