-- Arbiter schema, version 11 (SQLite): leases on background work that only
-- one process may do at a time (the drift monitor), held until `expires_at`
-- and renewed by their holder. One SQLite file has one server, but the
-- schema stays the PostgreSQL store's, so `arbiter migrate` copies it as is.

CREATE TABLE leases (
    name        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    expires_at  INTEGER NOT NULL
) WITHOUT ROWID;
