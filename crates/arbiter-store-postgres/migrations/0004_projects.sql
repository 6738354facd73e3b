-- Arbiter schema, version 4 (PostgreSQL): projects. Several teams share one
-- server; each project owns its policy, keys, decisions, cases, lessons,
-- suggestions, webhooks, drift episodes, spans and its own audit chain.
-- Everything stored before this version belongs to the project `default`,
-- whose chain is the old chain unchanged (same sequence numbers, same
-- hashes), so an anchor taken before the upgrade still verifies.
--
-- Each project has its own chain head row: a write batch locks the heads of
-- the projects it writes (in id order), so batches of different projects
-- commit side by side instead of queueing on one lock.
-- Global: projects, settings, console sessions, leases.

CREATE TABLE projects (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
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
    created_at  BIGINT NOT NULL,
    created_by  TEXT NOT NULL,
    PRIMARY KEY (project, home, principal)
);
CREATE INDEX memberships_of ON memberships(home, principal);

ALTER TABLE chain_head DROP CONSTRAINT chain_head_pkey;
ALTER TABLE chain_head DROP COLUMN id;
ALTER TABLE chain_head ADD COLUMN project TEXT NOT NULL DEFAULT 'default';
ALTER TABLE chain_head ALTER COLUMN project DROP DEFAULT;
ALTER TABLE chain_head ADD PRIMARY KEY (project);

ALTER TABLE events ADD COLUMN project TEXT NOT NULL DEFAULT 'default';
ALTER TABLE events ALTER COLUMN project DROP DEFAULT;
ALTER TABLE events DROP CONSTRAINT events_pkey;
ALTER TABLE events ADD PRIMARY KEY (project, seq);
DROP INDEX events_kind_at;
CREATE INDEX events_kind_at ON events(project, kind, at);

ALTER TABLE policy_activations DROP CONSTRAINT policy_activations_hash_fkey;
ALTER TABLE policy_versions ADD COLUMN project TEXT NOT NULL DEFAULT 'default';
ALTER TABLE policy_versions ALTER COLUMN project DROP DEFAULT;
ALTER TABLE policy_versions DROP CONSTRAINT policy_versions_pkey;
ALTER TABLE policy_versions ADD PRIMARY KEY (project, hash);
ALTER TABLE policy_activations ADD COLUMN project TEXT NOT NULL DEFAULT 'default';
ALTER TABLE policy_activations ALTER COLUMN project DROP DEFAULT;
ALTER TABLE policy_activations ADD FOREIGN KEY (project, hash) REFERENCES policy_versions(project, hash);
CREATE INDEX policy_activations_project ON policy_activations(project, seq);

ALTER TABLE api_keys ADD COLUMN project TEXT NOT NULL DEFAULT 'default';
ALTER TABLE api_keys ALTER COLUMN project DROP DEFAULT;
CREATE INDEX api_keys_project ON api_keys(project, created_at, id);

ALTER TABLE decisions ADD COLUMN project TEXT NOT NULL DEFAULT 'default';
ALTER TABLE decisions ALTER COLUMN project DROP DEFAULT;
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

ALTER TABLE decision_hourly ADD COLUMN project TEXT NOT NULL DEFAULT 'default';
ALTER TABLE decision_hourly ALTER COLUMN project DROP DEFAULT;
ALTER TABLE decision_hourly DROP CONSTRAINT decision_hourly_pkey;
ALTER TABLE decision_hourly ADD PRIMARY KEY (project, hour, action_name, verdict);

ALTER TABLE decision_endings_hourly ADD COLUMN project TEXT NOT NULL DEFAULT 'default';
ALTER TABLE decision_endings_hourly ALTER COLUMN project DROP DEFAULT;
ALTER TABLE decision_endings_hourly DROP CONSTRAINT decision_endings_hourly_pkey;
ALTER TABLE decision_endings_hourly ADD PRIMARY KEY (project, hour, action_name, final_verdict, final_source);

ALTER TABLE cases ADD COLUMN project TEXT NOT NULL DEFAULT 'default';
ALTER TABLE cases ALTER COLUMN project DROP DEFAULT;
DROP INDEX cases_state;
CREATE INDEX cases_state ON cases(project, state, sla_deadline);
DROP INDEX cases_due;
CREATE INDEX cases_due ON cases(project, due_at) WHERE due_at IS NOT NULL;
DROP INDEX cases_kind_state;
CREATE INDEX cases_kind_state ON cases(project, kind, state, seq);
DROP INDEX cases_agent_active;
CREATE INDEX cases_agent_active ON cases(project, agent, kind, state);

ALTER TABLE webhooks ADD COLUMN project TEXT NOT NULL DEFAULT 'default';
ALTER TABLE webhooks ALTER COLUMN project DROP DEFAULT;

ALTER TABLE lessons ADD COLUMN project TEXT NOT NULL DEFAULT 'default';
ALTER TABLE lessons ALTER COLUMN project DROP DEFAULT;
CREATE INDEX lessons_project ON lessons(project, updated_at);

ALTER TABLE search_docs ADD COLUMN project TEXT NOT NULL DEFAULT 'default';
ALTER TABLE search_docs ALTER COLUMN project DROP DEFAULT;

ALTER TABLE suggestions ADD COLUMN project TEXT NOT NULL DEFAULT 'default';
ALTER TABLE suggestions ALTER COLUMN project DROP DEFAULT;
ALTER TABLE suggestions DROP CONSTRAINT suggestions_fingerprint_key;
ALTER TABLE suggestions ADD UNIQUE (project, fingerprint);

ALTER TABLE drift_episodes ADD COLUMN project TEXT NOT NULL DEFAULT 'default';
ALTER TABLE drift_episodes ALTER COLUMN project DROP DEFAULT;
DROP INDEX drift_episodes_by_start;
CREATE INDEX drift_episodes_by_start ON drift_episodes (project, started_at DESC, id);
DROP INDEX drift_episodes_open;
CREATE INDEX drift_episodes_open ON drift_episodes (project, open, started_at DESC);

ALTER TABLE spans ADD COLUMN project TEXT NOT NULL DEFAULT 'default';
ALTER TABLE spans ALTER COLUMN project DROP DEFAULT;
