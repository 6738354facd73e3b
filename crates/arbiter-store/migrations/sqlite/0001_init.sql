-- Arbiter schema, version 1 (SQLite).
-- Times are milliseconds since the Unix epoch (UTC).

CREATE TABLE policy_versions (
    hash        TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    source      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    created_by  TEXT NOT NULL
);

CREATE TABLE policy_activations (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    hash          TEXT NOT NULL REFERENCES policy_versions(hash),
    activated_at  INTEGER NOT NULL,
    activated_by  TEXT NOT NULL
);

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL,
    tags        TEXT NOT NULL,
    digest      BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);

CREATE TABLE decisions (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT NOT NULL UNIQUE,
    agent            TEXT NOT NULL,
    idempotency_key  TEXT,
    request_digest   TEXT NOT NULL,
    action_name      TEXT NOT NULL,
    confidence       REAL,
    verdict          TEXT NOT NULL,
    status           TEXT NOT NULL,
    final_verdict    TEXT,
    policy_hash      TEXT NOT NULL,
    case_id          TEXT,
    trace_id         TEXT,
    received_at      INTEGER NOT NULL,
    event_time       INTEGER NOT NULL,
    outcome_correct  INTEGER,
    outcome_cost     REAL,
    body             TEXT NOT NULL
);
CREATE UNIQUE INDEX decisions_idempotency ON decisions(agent, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX decisions_event_time ON decisions(event_time);
CREATE INDEX decisions_trace ON decisions(trace_id) WHERE trace_id IS NOT NULL;

CREATE TABLE cases (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    id            TEXT NOT NULL UNIQUE,
    kind          TEXT NOT NULL,
    state         TEXT NOT NULL,
    decision_id   TEXT,
    sla_deadline  INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    body          TEXT NOT NULL
);
CREATE INDEX cases_state ON cases(state, sla_deadline);

-- The append-only, hash-chained audit log. Each row's hash covers the previous
-- row's hash and a canonical JSON encoding of its own fields.
CREATE TABLE events (
    seq         INTEGER PRIMARY KEY,
    case_id     TEXT,
    decision_id TEXT,
    kind        TEXT NOT NULL,
    actor       TEXT NOT NULL,
    at          INTEGER NOT NULL,
    data        TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);
CREATE INDEX events_case ON events(case_id, seq) WHERE case_id IS NOT NULL;
