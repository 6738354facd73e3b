-- Drift alarm episodes (drift v2): one row per episode, its state in `body`
-- (JSON), `version` bumped on every save for optimistic concurrency.
CREATE TABLE drift_episodes (
    id TEXT PRIMARY KEY,
    action TEXT NOT NULL,
    open INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    version INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX drift_episodes_by_start ON drift_episodes (started_at DESC, id);
CREATE INDEX drift_episodes_open ON drift_episodes (open, started_at DESC);
-- `drift.alarm` events became `drift.episode.*`: a webhook subscribed to the
-- old kind keeps hearing of new alarms through the kind that replaced it.
UPDATE webhooks SET events = REPLACE(events, '"drift.alarm"', '"drift.episode.started"');
