-- Arbiter schema, version 7 (SQLite): the learning loop.
-- Decisions remember what they acted on (`subject`), who settled them and
-- whether people overrode them, for the blast radius and similar cases
-- (filled for existing rows by the upgrade in Rust, with the same rules as
-- new rows). Lessons, the full-text search index and rule suggestions.

ALTER TABLE decisions ADD COLUMN subject TEXT;
ALTER TABLE decisions ADD COLUMN final_source TEXT;
ALTER TABLE decisions ADD COLUMN overridden INTEGER;
CREATE INDEX decisions_agent_action ON decisions(agent, action_name, event_time);
CREATE INDEX decisions_subject ON decisions(subject, event_time) WHERE subject IS NOT NULL;
CREATE INDEX decisions_reviewed ON decisions(action_name, event_time) WHERE final_source = 'review';
CREATE INDEX decisions_agent_time ON decisions(agent, event_time);

CREATE TABLE lessons (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    review_id   TEXT NOT NULL UNIQUE,
    publish     INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    body        TEXT NOT NULL
);

-- One row per searchable document; its id is the rowid of its text in search_fts.
CREATE TABLE search_docs (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    kind           TEXT NOT NULL,
    ref_id         TEXT NOT NULL,
    title          TEXT NOT NULL,
    actions        TEXT NOT NULL,
    agents         TEXT NOT NULL,
    failure_modes  TEXT NOT NULL,
    at             INTEGER NOT NULL,
    UNIQUE (kind, ref_id)
);
-- `facets` holds one opaque token per filter value (kind, actions, agents,
-- failure modes), so filters are applied inside the full-text match.
CREATE VIRTUAL TABLE search_fts USING fts5(title, body, facets, tokenize = 'unicode61 remove_diacritics 2');

CREATE TABLE suggestions (
    id           TEXT PRIMARY KEY,
    fingerprint  TEXT NOT NULL UNIQUE,
    state        TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    body         TEXT NOT NULL
);
