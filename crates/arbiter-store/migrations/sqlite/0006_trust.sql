-- Arbiter schema, version 6 (SQLite): trust.
-- Decisions are committed to the audit chain (a `decisions.committed` event per
-- written batch; existing decisions are committed once by the migration, in
-- Rust, after this script). Cases remember their agent, so the per-agent cap on
-- open approval cases is one indexed count. Keys can expire and carry their own
-- rate limit. Console sessions are stored, so signing out ends them at once.

ALTER TABLE cases ADD COLUMN agent TEXT;
UPDATE cases SET agent = json_extract(body, '$.agent');
CREATE INDEX cases_agent_active ON cases(agent, kind, state);

ALTER TABLE api_keys ADD COLUMN expires_at INTEGER;
ALTER TABLE api_keys ADD COLUMN rate_limit TEXT;
CREATE INDEX api_keys_name ON api_keys(name);

CREATE TABLE console_sessions (
    id          TEXT PRIMARY KEY,
    key_id      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
CREATE INDEX console_sessions_key ON console_sessions(key_id);
