-- Arbiter schema, version 3 (PostgreSQL): every span records the principal
-- whose key sent it (see SQLite's 0013_span_senders.sql). Spans stored before
-- have no sender and belong to no decision's run.

ALTER TABLE spans ADD COLUMN sender TEXT;
DROP INDEX spans_tool_call;
CREATE INDEX spans_tool_call ON spans(tool_call_id, sender) WHERE tool_call_id IS NOT NULL;
