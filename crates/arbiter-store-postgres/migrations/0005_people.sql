-- Single sign-on: a console session may belong to a person signed in through
-- the identity provider (their roles as of sign-in, JSON) instead of a key.
ALTER TABLE console_sessions ADD COLUMN identity TEXT;

-- The people directory (server-wide): each person's roles as of their last
-- sign-in, and their chat account once linked.
CREATE TABLE people (
    name          TEXT PRIMARY KEY,
    email         TEXT,
    identity      TEXT,
    signed_in_at  BIGINT,
    slack_user    TEXT UNIQUE
);
CREATE INDEX people_email ON people(email);

-- The Slack message of each approval case, per channel it was posted to
-- (updated in place as the case moves; tier changes go in its thread).
CREATE TABLE slack_messages (
    project     TEXT NOT NULL,
    case_id     TEXT NOT NULL,
    channel     TEXT NOT NULL,
    ts          TEXT NOT NULL,
    PRIMARY KEY (project, case_id, channel)
);

-- Paging: a webhook may ask only for cases of at least this severity
-- (PagerDuty's `trigger` at a case's opening).
ALTER TABLE webhooks ADD COLUMN min_severity TEXT;

-- When a case stopped being active (decided or closed): decided cases are
-- listed by it, newest first. Backfilled from the last change.
ALTER TABLE cases ADD COLUMN ended_at BIGINT;
UPDATE cases SET ended_at = updated_at WHERE state NOT IN ('open', 'claimed');
CREATE INDEX cases_ended ON cases(project, ended_at, seq);
