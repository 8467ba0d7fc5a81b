-- The tamper-evident chain of audit events and the cursors of the sinks
-- that stream it, PostgreSQL dialect.

-- +goose Up
-- seq, prev_hash and hash are an event's link in the chain, set together
-- and once by the sealer (internal/audit) shortly after the event commits;
-- until then all three are NULL (unsealed). Events older than this
-- migration start unsealed and the first sealer run seals them in id
-- order. seq is unique: two sealers can never give one position to two
-- events. Sealers serialise on the transaction advisory lock
-- (1195917635, hashtext(current_schema())) — see sqlstore/audit.go.
ALTER TABLE audit_events
    ADD COLUMN seq       bigint CHECK (seq > 0),
    ADD COLUMN prev_hash bytea  CHECK (octet_length(prev_hash) = 32),
    ADD COLUMN hash      bytea  CHECK (octet_length(hash) = 32),
    ADD CONSTRAINT audit_events_link_check
        CHECK ((hash IS NULL) = (seq IS NULL) AND (hash IS NULL) = (prev_hash IS NULL));

CREATE UNIQUE INDEX audit_events_seq_idx ON audit_events (seq);
CREATE INDEX audit_events_unsealed_idx ON audit_events (id) WHERE seq IS NULL;

-- One row per streaming sink ("webhook", "stdout"): delivered_seq is the
-- seq of the last event the sink acknowledged; holder and lease_until
-- name the replica delivering, so one delivers at a time.
CREATE TABLE audit_sinks (
    name          text        NOT NULL PRIMARY KEY CHECK (name <> ''),
    delivered_seq bigint      NOT NULL DEFAULT 0 CHECK (delivered_seq >= 0),
    holder        text        NOT NULL DEFAULT '',
    lease_until   timestamptz
);

-- +goose Down
DROP TABLE audit_sinks;
DROP INDEX audit_events_unsealed_idx;
DROP INDEX audit_events_seq_idx;
ALTER TABLE audit_events
    DROP CONSTRAINT audit_events_link_check,
    DROP COLUMN hash,
    DROP COLUMN prev_hash,
    DROP COLUMN seq;
