-- Token sessions, refresh-token families, access-token signing keys and
-- revocation sync, PostgreSQL dialect.

-- +goose Up
ALTER TABLE sessions ADD COLUMN kind text NOT NULL DEFAULT 'cookie' CHECK (kind IN ('cookie', 'token'));

-- RevokedSessionsSince scans revocations by time; active sessions (the
-- bulk of the table) are not indexed.
CREATE INDEX sessions_revoked_at_idx ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;

CREATE TABLE refresh_tokens (
    id         text        NOT NULL PRIMARY KEY CHECK (id <> ''),
    session_id text        NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    hash       bytea       NOT NULL CHECK (octet_length(hash) > 0),
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    client     text        NOT NULL DEFAULT '',
    successor  bytea
);

CREATE UNIQUE INDEX refresh_tokens_hash_idx ON refresh_tokens (hash);
CREATE INDEX refresh_tokens_session_id_idx ON refresh_tokens (session_id);
-- ForgetRefreshSuccessors runs on every rotation: only the few tokens of a
-- family that still hold a sealed successor may be visited, never the
-- family's whole history.
CREATE INDEX refresh_tokens_sealed_idx ON refresh_tokens (session_id) WHERE successor IS NOT NULL;

-- public_jwk is text, not jsonb, so that the JSON is kept exactly as
-- written; the check still parses it. id sorts bytewise (COLLATE "C"), as
-- on SQLite, whatever the database's collation.
CREATE TABLE signing_keys (
    id             text        COLLATE "C" NOT NULL PRIMARY KEY CHECK (id <> ''),
    algorithm      text        NOT NULL CHECK (algorithm IN ('EdDSA', 'ES256')),
    public_jwk     text        NOT NULL CHECK (jsonb_typeof(public_jwk::jsonb) = 'object'),
    private_sealed bytea       NOT NULL CHECK (octet_length(private_sealed) > 0),
    kek_version    integer     NOT NULL CHECK (kek_version > 0),
    created_at     timestamptz NOT NULL,
    activates_at   timestamptz NOT NULL
);

-- +goose Down
DROP TABLE signing_keys;
DROP TABLE refresh_tokens;
DROP INDEX sessions_revoked_at_idx;
ALTER TABLE sessions DROP COLUMN kind;
