-- Arbiter schema, version 9 (SQLite): the agents' own runs, as OpenTelemetry
-- spans received on /v1/traces, kept beside the decisions they explain.
-- A span is stored once per (trace, span) id: a re-sent span replaces it.
-- Spans are telemetry, not decisions: they are not in the audit chain, and a
-- retention purge removes old ones (never those of a decision under review).

CREATE TABLE spans (
    trace_id      TEXT NOT NULL,
    span_id       TEXT NOT NULL,
    start_ns      INTEGER NOT NULL,
    received_at   INTEGER NOT NULL,
    tool_call_id  TEXT,
    body          TEXT NOT NULL,
    PRIMARY KEY (trace_id, span_id)
) WITHOUT ROWID;
CREATE INDEX spans_received ON spans(received_at);
CREATE INDEX spans_tool_call ON spans(tool_call_id) WHERE tool_call_id IS NOT NULL;
