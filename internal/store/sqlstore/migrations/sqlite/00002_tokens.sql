-- Token sessions, refresh-token families, access-token signing keys and
-- revocation sync, SQLite dialect.

-- +goose Up
ALTER TABLE sessions ADD COLUMN kind TEXT NOT NULL DEFAULT 'cookie' CHECK (kind IN ('cookie', 'token'));

-- RevokedSessionsSince scans revocations by time; active sessions (the
-- bulk of the table) are not indexed.
CREATE INDEX sessions_revoked_at_idx ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;

CREATE TABLE refresh_tokens (
    id         TEXT    NOT NULL PRIMARY KEY CHECK (id <> ''),
    session_id TEXT    NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    hash       BLOB    NOT NULL CHECK (length(hash) > 0),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER,
    client     TEXT    NOT NULL DEFAULT '',
    successor  BLOB
) STRICT;

CREATE UNIQUE INDEX refresh_tokens_hash_idx ON refresh_tokens (hash);
CREATE INDEX refresh_tokens_session_id_idx ON refresh_tokens (session_id);
-- ForgetRefreshSuccessors runs on every rotation: only the few tokens of a
-- family that still hold a sealed successor may be visited, never the
-- family's whole history.
CREATE INDEX refresh_tokens_sealed_idx ON refresh_tokens (session_id) WHERE successor IS NOT NULL;

-- public_jwk keeps the JSON exactly as written; private_sealed is the
-- private half sealed with key-encryption key version kek_version.
CREATE TABLE signing_keys (
    id             TEXT    NOT NULL PRIMARY KEY CHECK (id <> ''),
    algorithm      TEXT    NOT NULL CHECK (algorithm IN ('EdDSA', 'ES256')),
    public_jwk     TEXT    NOT NULL CHECK (json_valid(public_jwk) AND json_type(public_jwk) = 'object'),
    private_sealed BLOB    NOT NULL CHECK (length(private_sealed) > 0),
    kek_version    INTEGER NOT NULL CHECK (kek_version > 0),
    created_at     INTEGER NOT NULL,
    activates_at   INTEGER NOT NULL
) STRICT;

-- +goose Down
DROP TABLE signing_keys;
DROP TABLE refresh_tokens;
DROP INDEX sessions_revoked_at_idx;
ALTER TABLE sessions DROP COLUMN kind;
