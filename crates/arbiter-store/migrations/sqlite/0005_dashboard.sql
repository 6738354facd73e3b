-- Arbiter schema, version 5 (SQLite): what the console's dashboard reads.
-- Decisions are rolled up per hour (by event time), action class and verdict
-- as they are stored, so the dashboard reads a few hundred rows instead of
-- every decision; events get an index by kind and time.

CREATE TABLE decision_hourly (
    hour         INTEGER NOT NULL,
    action_name  TEXT NOT NULL,
    verdict      TEXT NOT NULL,
    decisions    INTEGER NOT NULL,
    PRIMARY KEY (hour, action_name, verdict)
) WITHOUT ROWID;
INSERT INTO decision_hourly (hour, action_name, verdict, decisions)
    SELECT event_time / 3600000, action_name, verdict, COUNT(*) FROM decisions GROUP BY 1, 2, 3;
CREATE INDEX events_kind_at ON events(kind, at);
