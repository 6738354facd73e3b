-- Arbiter schema, version 13 (SQLite): every span records the principal whose
-- key sent it. A decision's run is assembled only from its own agent's spans,
-- and a span stored for one sender is never replaced by another. Spans stored
-- before this version have no sender: reviewers still read them by trace id,
-- but they are no longer part of any decision's run.

ALTER TABLE spans ADD COLUMN sender TEXT;
DROP INDEX spans_tool_call;
CREATE INDEX spans_tool_call ON spans(tool_call_id, sender) WHERE tool_call_id IS NOT NULL;
