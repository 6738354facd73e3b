-- Arbiter schema, version 14 (SQLite): projects. Several teams share one
-- server; each project owns its policy, keys, decisions, cases, lessons,
-- suggestions, webhooks, drift episodes, spans and its own audit chain.
-- Everything stored before this version belongs to the project `default`,
-- whose chain is the old chain unchanged (same sequence numbers, same
-- hashes), so an anchor taken before the upgrade still verifies.
-- Global: projects, settings, console sessions, leases.

CREATE TABLE projects (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    created_by  TEXT NOT NULL
);
INSERT INTO projects (id, name, created_at, created_by) VALUES ('default', 'Default project', 0, 'system');

-- A person's role in a project other than their key's own (home).
CREATE TABLE memberships (
    project     TEXT NOT NULL,
    home        TEXT NOT NULL,
    principal   TEXT NOT NULL,
    role        TEXT NOT NULL,
    tags        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    created_by  TEXT NOT NULL,
    PRIMARY KEY (project, home, principal)
) WITHOUT ROWID;
CREATE INDEX memberships_of ON memberships(home, principal);

-- Policy versions are content-addressed within a project: two projects may
-- store the same text.
CREATE TABLE policy_versions_p (
    project     TEXT NOT NULL,
    hash        TEXT NOT NULL,
    name        TEXT NOT NULL,
    source      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    created_by  TEXT NOT NULL,
    PRIMARY KEY (project, hash)
);
INSERT INTO policy_versions_p SELECT 'default', hash, name, source, created_at, created_by FROM policy_versions;
CREATE TABLE policy_activations_p (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    project       TEXT NOT NULL,
    hash          TEXT NOT NULL,
    activated_at  INTEGER NOT NULL,
    activated_by  TEXT NOT NULL,
    FOREIGN KEY (project, hash) REFERENCES policy_versions_p(project, hash)
);
INSERT INTO policy_activations_p SELECT seq, 'default', hash, activated_at, activated_by FROM policy_activations;
DROP TABLE policy_activations;
DROP TABLE policy_versions;
ALTER TABLE policy_versions_p RENAME TO policy_versions;
ALTER TABLE policy_activations_p RENAME TO policy_activations;
CREATE INDEX policy_activations_project ON policy_activations(project, seq);

-- The audit log: one chain per project, numbered from 1 in each.
CREATE TABLE events_p (
    project     TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    case_id     TEXT,
    decision_id TEXT,
    kind        TEXT NOT NULL,
    actor       TEXT NOT NULL,
    at          INTEGER NOT NULL,
    data        TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL,
    PRIMARY KEY (project, seq)
);
INSERT INTO events_p SELECT 'default', seq, case_id, decision_id, kind, actor, at, data, prev_hash, hash FROM events;
DROP TABLE events;
ALTER TABLE events_p RENAME TO events;
CREATE INDEX events_case ON events(case_id, seq) WHERE case_id IS NOT NULL;
CREATE INDEX events_kind_at ON events(project, kind, at);

ALTER TABLE api_keys ADD COLUMN project TEXT NOT NULL DEFAULT 'default';
CREATE INDEX api_keys_project ON api_keys(project, id);

ALTER TABLE decisions ADD COLUMN project TEXT NOT NULL DEFAULT 'default';
DROP INDEX decisions_idempotency;
CREATE UNIQUE INDEX decisions_idempotency ON decisions(project, agent, idempotency_key) WHERE idempotency_key IS NOT NULL;
DROP INDEX decisions_event_time;
CREATE INDEX decisions_event_time ON decisions(project, event_time);
DROP INDEX decisions_labelled;
CREATE INDEX decisions_labelled ON decisions(project, event_time) WHERE outcome_correct IS NOT NULL;
DROP INDEX decisions_agent_action;
CREATE INDEX decisions_agent_action ON decisions(project, agent, action_name, event_time, subject);
DROP INDEX decisions_subject;
CREATE INDEX decisions_subject ON decisions(project, subject, event_time) WHERE subject IS NOT NULL;
DROP INDEX decisions_reviewed;
CREATE INDEX decisions_reviewed ON decisions(project, action_name, event_time) WHERE final_source = 'review';
DROP INDEX decisions_agent_time;
CREATE INDEX decisions_agent_time ON decisions(project, agent, event_time, verdict, final_source, overridden);
DROP INDEX decisions_similar;
CREATE INDEX decisions_similar ON decisions(project, action_name, event_time)
    WHERE final_source = 'review' OR outcome_correct IS NOT NULL;

CREATE TABLE decision_hourly_p (
    project      TEXT NOT NULL,
    hour         INTEGER NOT NULL,
    action_name  TEXT NOT NULL,
    verdict      TEXT NOT NULL,
    decisions    INTEGER NOT NULL,
    PRIMARY KEY (project, hour, action_name, verdict)
) WITHOUT ROWID;
INSERT INTO decision_hourly_p SELECT 'default', hour, action_name, verdict, decisions FROM decision_hourly;
DROP TABLE decision_hourly;
ALTER TABLE decision_hourly_p RENAME TO decision_hourly;

CREATE TABLE decision_endings_hourly_p (
    project        TEXT NOT NULL,
    hour           INTEGER NOT NULL,
    action_name    TEXT NOT NULL,
    final_verdict  TEXT NOT NULL,
    final_source   TEXT NOT NULL,
    decisions      INTEGER NOT NULL,
    PRIMARY KEY (project, hour, action_name, final_verdict, final_source)
) WITHOUT ROWID;
INSERT INTO decision_endings_hourly_p
    SELECT 'default', hour, action_name, final_verdict, final_source, decisions FROM decision_endings_hourly;
DROP TABLE decision_endings_hourly;
ALTER TABLE decision_endings_hourly_p RENAME TO decision_endings_hourly;

ALTER TABLE cases ADD COLUMN project TEXT NOT NULL DEFAULT 'default';
DROP INDEX cases_state;
CREATE INDEX cases_state ON cases(project, state, sla_deadline);
DROP INDEX cases_kind_state;
CREATE INDEX cases_kind_state ON cases(project, kind, state, seq);
DROP INDEX cases_due;
CREATE INDEX cases_due ON cases(project, due_at) WHERE due_at IS NOT NULL;
DROP INDEX cases_agent_active;
CREATE INDEX cases_agent_active ON cases(project, agent, kind, state);

ALTER TABLE webhooks ADD COLUMN project TEXT NOT NULL DEFAULT 'default';

ALTER TABLE lessons ADD COLUMN project TEXT NOT NULL DEFAULT 'default';
CREATE INDEX lessons_project ON lessons(project, updated_at);

ALTER TABLE search_docs ADD COLUMN project TEXT NOT NULL DEFAULT 'default';

-- A suggestion's fingerprint is unique within its project.
CREATE TABLE suggestions_p (
    id           TEXT PRIMARY KEY,
    project      TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    state        TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    body         TEXT NOT NULL,
    UNIQUE (project, fingerprint)
);
INSERT INTO suggestions_p SELECT id, 'default', fingerprint, state, created_at, expires_at, body FROM suggestions;
DROP TABLE suggestions;
ALTER TABLE suggestions_p RENAME TO suggestions;

ALTER TABLE drift_episodes ADD COLUMN project TEXT NOT NULL DEFAULT 'default';
DROP INDEX drift_episodes_by_start;
CREATE INDEX drift_episodes_by_start ON drift_episodes (project, started_at DESC, id);
DROP INDEX drift_episodes_open;
CREATE INDEX drift_episodes_open ON drift_episodes (project, open, started_at DESC);

ALTER TABLE spans ADD COLUMN project TEXT NOT NULL DEFAULT 'default';
