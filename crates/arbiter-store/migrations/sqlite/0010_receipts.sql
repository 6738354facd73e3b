-- Arbiter schema, version 10 (SQLite): the single use of approval receipts.
-- A receipt is consumed once, by one consumer (a gateway); the same consumer
-- asking again gets the same answer, any other is refused. Each first use is
-- also an event in the audit chain (`receipt.consumed`).

CREATE TABLE receipt_consumptions (
    decision_id  TEXT PRIMARY KEY,
    consumer     TEXT NOT NULL,
    args_digest  TEXT NOT NULL,
    at           INTEGER NOT NULL
) WITHOUT ROWID;
