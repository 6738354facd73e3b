-- Arbiter schema, version 8 (SQLite): how decisions ended, rolled up per hour
-- (by event time), action class, final verdict and who settled it, kept as
-- decisions are stored and settled, so the dashboard's "how decisions ended"
-- reads a few hundred rows instead of every decision of the window.
-- A decision not settled yet counts under '' for both.

CREATE TABLE decision_endings_hourly (
    hour           INTEGER NOT NULL,
    action_name    TEXT NOT NULL,
    final_verdict  TEXT NOT NULL,
    final_source   TEXT NOT NULL,
    decisions      INTEGER NOT NULL,
    PRIMARY KEY (hour, action_name, final_verdict, final_source)
) WITHOUT ROWID;
INSERT INTO decision_endings_hourly (hour, action_name, final_verdict, final_source, decisions)
    SELECT event_time / 3600000, action_name, COALESCE(final_verdict, ''), COALESCE(final_source, ''), COUNT(*)
    FROM decisions GROUP BY 1, 2, 3, 4;

-- A case page's blast radius and similar cases read an agent's recent
-- decisions: cover those reads with their indexes, so they touch no table
-- rows (at 100,000 decisions of one agent they took about 100 ms each).
DROP INDEX decisions_agent_action;
CREATE INDEX decisions_agent_action ON decisions(agent, action_name, event_time, subject);
DROP INDEX decisions_agent_time;
CREATE INDEX decisions_agent_time ON decisions(agent, event_time, verdict, final_source, overridden);
CREATE INDEX decisions_similar ON decisions(action_name, event_time)
    WHERE final_source = 'review' OR outcome_correct IS NOT NULL;
