-- The agent's durable store (agent/store.py). Times are INTEGER microseconds since the Unix
-- epoch, UTC. Headers are canonical JSON with no personal data. Inbox payloads are only ever
-- stored encrypted under a per-message data key (data_keys): deleting the key shreds them.
-- This file is migration 1 (agent/store/migrations.py): the schema of release 48272d7, whose
-- files already hold these tables at user_version 0 (hence IF NOT EXISTS). Never edit it: a
-- change to the schema is a new numbered migration in agent/store/sql.py.

CREATE TABLE IF NOT EXISTS outbox (
    id               TEXT PRIMARY KEY,
    client           TEXT NOT NULL,
    idempotency_key  TEXT,
    body_sha256      TEXT NOT NULL,
    recipient        TEXT NOT NULL,
    header_json      TEXT NOT NULL,
    frame            BLOB NOT NULL,
    status           TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    UNIQUE (client, idempotency_key)
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (status, next_attempt_at);
-- the envelopes retention still has to delete (a pass reads these, not every delivered row)
CREATE INDEX IF NOT EXISTS outbox_frames_kept ON outbox (status) WHERE length(frame) > 0;

CREATE TABLE IF NOT EXISTS history (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id  TEXT NOT NULL,
    at          INTEGER NOT NULL,
    status      TEXT NOT NULL,
    detail      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS history_by_message ON history (message_id, seq);

CREATE TABLE IF NOT EXISTS receipts (
    envelope_id  TEXT PRIMARY KEY,
    frame        BLOB NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('delivered', 'rejected')),
    reason       TEXT NOT NULL,
    at           INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS inbox (
    cursor       INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL UNIQUE,
    sender       TEXT NOT NULL,
    header_json  TEXT NOT NULL,
    ciphertext   BLOB NOT NULL,
    received_at  INTEGER NOT NULL,
    acked_at     INTEGER,
    purged_at    INTEGER
);

CREATE TABLE IF NOT EXISTS data_keys (
    message_id  TEXT PRIMARY KEY,
    key         BLOB NOT NULL
);

CREATE TABLE IF NOT EXISTS seen (
    envelope_id  TEXT PRIMARY KEY,
    seen_at      INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS meta (
    name   TEXT PRIMARY KEY,
    value  BLOB NOT NULL
);
