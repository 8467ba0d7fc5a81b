-- The tamper-evident chain of audit events and the cursors of the sinks
-- that stream it, SQLite dialect.

-- +goose Up
-- seq, prev_hash and hash are an event's link in the chain, set together
-- and once by the sealer (internal/audit) shortly after the event commits;
-- until then all three are NULL (unsealed). Events older than this
-- migration start unsealed and the first sealer run seals them in id
-- order. seq is unique: two sealers can never give one position to two
-- events.
ALTER TABLE audit_events ADD COLUMN seq INTEGER CHECK (seq IS NULL OR seq > 0);
ALTER TABLE audit_events ADD COLUMN prev_hash BLOB CHECK (prev_hash IS NULL OR length(prev_hash) = 32);
ALTER TABLE audit_events ADD COLUMN hash BLOB
    CHECK ((hash IS NULL OR length(hash) = 32)
           AND (hash IS NULL) = (seq IS NULL) AND (hash IS NULL) = (prev_hash IS NULL));

CREATE UNIQUE INDEX audit_events_seq_idx ON audit_events (seq);
CREATE INDEX audit_events_unsealed_idx ON audit_events (id) WHERE seq IS NULL;

-- One row per streaming sink ("webhook", "stdout"): delivered_seq is the
-- seq of the last event the sink acknowledged; holder and lease_until
-- (unix microseconds) name the replica delivering, so one delivers at a
-- time.
CREATE TABLE audit_sinks (
    name          TEXT    NOT NULL PRIMARY KEY CHECK (name <> ''),
    delivered_seq INTEGER NOT NULL DEFAULT 0 CHECK (delivered_seq >= 0),
    holder        TEXT    NOT NULL DEFAULT '',
    lease_until   INTEGER
) STRICT;

-- +goose Down
DROP TABLE audit_sinks;
DROP INDEX audit_events_unsealed_idx;
DROP INDEX audit_events_seq_idx;
ALTER TABLE audit_events DROP COLUMN hash;
ALTER TABLE audit_events DROP COLUMN prev_hash;
ALTER TABLE audit_events DROP COLUMN seq;
