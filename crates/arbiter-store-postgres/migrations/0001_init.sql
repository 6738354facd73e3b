-- Arbiter schema, version 1 (PostgreSQL): the SQLite store's schema 10 in
-- PostgreSQL's types. Times are milliseconds since the Unix epoch (UTC).
-- JSON bodies are TEXT, not JSONB: the audit chain commits the digest of the
-- exact stored text, and JSONB would normalise it.

CREATE TABLE policy_versions (
    hash        TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    source      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    created_by  TEXT NOT NULL
);

CREATE TABLE policy_activations (
    seq           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    hash          TEXT NOT NULL REFERENCES policy_versions(hash),
    activated_at  BIGINT NOT NULL,
    activated_by  TEXT NOT NULL
);

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL,
    tags        TEXT NOT NULL,
    digest      BYTEA NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT,
    expires_at  BIGINT,
    rate_limit  TEXT
);
CREATE INDEX api_keys_name ON api_keys(name);

CREATE TABLE console_sessions (
    id          TEXT PRIMARY KEY,
    key_id      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX console_sessions_key ON console_sessions(key_id);

CREATE TABLE decisions (
    seq              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id               TEXT NOT NULL UNIQUE,
    agent            TEXT NOT NULL,
    idempotency_key  TEXT,
    request_digest   TEXT NOT NULL,
    action_name      TEXT NOT NULL,
    confidence       DOUBLE PRECISION,
    verdict          TEXT NOT NULL,
    status           TEXT NOT NULL,
    final_verdict    TEXT,
    policy_hash      TEXT NOT NULL,
    case_id          TEXT,
    trace_id         TEXT,
    received_at      BIGINT NOT NULL,
    event_time       BIGINT NOT NULL,
    outcome_correct  BOOLEAN,
    outcome_cost     DOUBLE PRECISION,
    body             TEXT NOT NULL,
    session_id       TEXT,
    subject          TEXT,
    final_source     TEXT,
    overridden       BOOLEAN
);
CREATE UNIQUE INDEX decisions_idempotency ON decisions(agent, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX decisions_event_time ON decisions(event_time);
CREATE INDEX decisions_trace ON decisions(trace_id) WHERE trace_id IS NOT NULL;
CREATE INDEX decisions_session ON decisions(session_id) WHERE session_id IS NOT NULL;
CREATE INDEX decisions_labelled ON decisions(event_time) WHERE outcome_correct IS NOT NULL;
CREATE INDEX decisions_agent_action ON decisions(agent, action_name, event_time, subject);
CREATE INDEX decisions_subject ON decisions(subject, event_time) WHERE subject IS NOT NULL;
CREATE INDEX decisions_reviewed ON decisions(action_name, event_time) WHERE final_source = 'review';
CREATE INDEX decisions_agent_time ON decisions(agent, event_time, verdict, final_source, overridden);
CREATE INDEX decisions_similar ON decisions(action_name, event_time)
    WHERE final_source = 'review' OR outcome_correct IS NOT NULL;

CREATE TABLE decision_hourly (
    hour         BIGINT NOT NULL,
    action_name  TEXT NOT NULL,
    verdict      TEXT NOT NULL,
    decisions    BIGINT NOT NULL,
    PRIMARY KEY (hour, action_name, verdict)
);

CREATE TABLE decision_endings_hourly (
    hour           BIGINT NOT NULL,
    action_name    TEXT NOT NULL,
    final_verdict  TEXT NOT NULL,
    final_source   TEXT NOT NULL,
    decisions      BIGINT NOT NULL,
    PRIMARY KEY (hour, action_name, final_verdict, final_source)
);

CREATE TABLE cases (
    seq           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id            TEXT NOT NULL UNIQUE,
    kind          TEXT NOT NULL,
    state         TEXT NOT NULL,
    decision_id   TEXT,
    sla_deadline  BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    body          TEXT NOT NULL,
    due_at        BIGINT,
    trace_id      TEXT,
    agent         TEXT
);
CREATE INDEX cases_state ON cases(state, sla_deadline);
CREATE INDEX cases_due ON cases(due_at) WHERE due_at IS NOT NULL;
CREATE INDEX cases_kind_state ON cases(kind, state, seq);
CREATE INDEX cases_agent_active ON cases(agent, kind, state);

-- The append-only, hash-chained audit log. Appends lock the one row of
-- chain_head first (every write transaction does), so replicas append one
-- at a time; `seq` stays the primary key, so a fork would be a failed insert.
CREATE TABLE events (
    seq         BIGINT PRIMARY KEY,
    case_id     TEXT,
    decision_id TEXT,
    kind        TEXT NOT NULL,
    actor       TEXT NOT NULL,
    at          BIGINT NOT NULL,
    data        TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);
CREATE INDEX events_case ON events(case_id, seq) WHERE case_id IS NOT NULL;
CREATE INDEX events_kind_at ON events(kind, at);

CREATE TABLE chain_head (
    id    BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),
    seq   BIGINT NOT NULL,
    hash  TEXT NOT NULL
);
INSERT INTO chain_head (id, seq, hash) VALUES (TRUE, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE TABLE settings (
    name   TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);

CREATE TABLE webhooks (
    id          TEXT PRIMARY KEY,
    url         TEXT NOT NULL,
    events      TEXT NOT NULL,
    format      TEXT NOT NULL,
    secret      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    created_by  TEXT NOT NULL,
    active      BOOLEAN NOT NULL DEFAULT TRUE
);

CREATE TABLE webhook_deliveries (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id       TEXT NOT NULL REFERENCES webhooks(id),
    event_seq        BIGINT NOT NULL,
    kind             TEXT NOT NULL,
    status           TEXT NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT,
    last_status      BIGINT,
    last_error       TEXT,
    created_at       BIGINT NOT NULL,
    delivered_at     BIGINT
);
CREATE INDEX deliveries_due ON webhook_deliveries(next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_webhook ON webhook_deliveries(webhook_id, id);

CREATE TABLE lessons (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    review_id   TEXT NOT NULL UNIQUE,
    publish     BOOLEAN NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    body        TEXT NOT NULL
);

-- One row per searchable document. The words are Arbiter's own (the query
-- side splits them the same way), kept as lexemes: `title_words` for the
-- title alone (ranked first), `words` for title and body.
CREATE TABLE search_docs (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind           TEXT NOT NULL,
    ref_id         TEXT NOT NULL,
    title          TEXT NOT NULL,
    body           TEXT NOT NULL,
    actions        TEXT[] NOT NULL,
    agents         TEXT[] NOT NULL,
    failure_modes  TEXT[] NOT NULL,
    at             BIGINT NOT NULL,
    title_words    TSVECTOR NOT NULL,
    words          TSVECTOR NOT NULL,
    UNIQUE (kind, ref_id)
);
CREATE INDEX search_docs_words ON search_docs USING GIN (words);
CREATE INDEX search_docs_title_words ON search_docs USING GIN (title_words);

CREATE TABLE suggestions (
    id           TEXT PRIMARY KEY,
    fingerprint  TEXT NOT NULL UNIQUE,
    state        TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    body         TEXT NOT NULL
);

CREATE TABLE spans (
    trace_id      TEXT NOT NULL,
    span_id       TEXT NOT NULL,
    start_ns      BIGINT NOT NULL,
    received_at   BIGINT NOT NULL,
    tool_call_id  TEXT,
    body          TEXT NOT NULL,
    PRIMARY KEY (trace_id, span_id)
);
CREATE INDEX spans_received ON spans(received_at);
CREATE INDEX spans_tool_call ON spans(tool_call_id) WHERE tool_call_id IS NOT NULL;

CREATE TABLE receipt_consumptions (
    decision_id  TEXT PRIMARY KEY,
    consumer     TEXT NOT NULL,
    args_digest  TEXT NOT NULL,
    at           BIGINT NOT NULL
);

-- Leases on background work that only one replica may do at a time (the
-- drift monitor): held until `expires_at`, renewed by the holder.
CREATE TABLE leases (
    name        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    expires_at  BIGINT NOT NULL
);
