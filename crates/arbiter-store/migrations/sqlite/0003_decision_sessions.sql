-- Arbiter schema, version 3 (SQLite): decisions remember the agent's session
-- (`context.session_id`), so a case's decision chain can follow a session
-- across traces; labelled decisions (with an outcome) are indexed for tuning
-- and backtests.

ALTER TABLE decisions ADD COLUMN session_id TEXT;
UPDATE decisions SET session_id = json_extract(body, '$.context.session_id')
    WHERE json_type(body, '$.context.session_id') = 'text';
CREATE INDEX decisions_session ON decisions(session_id) WHERE session_id IS NOT NULL;
CREATE INDEX decisions_labelled ON decisions(event_time) WHERE outcome_correct IS NOT NULL;
