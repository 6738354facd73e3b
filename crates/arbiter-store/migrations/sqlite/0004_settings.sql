-- Arbiter schema, version 4 (SQLite): server-wide settings that every replica
-- must share (e.g. the console's session-signing secret).

CREATE TABLE settings (
    name   TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
