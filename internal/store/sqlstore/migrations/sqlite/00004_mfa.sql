-- Second factors: authenticator-app (TOTP) factors and recovery codes,
-- SQLite dialect.

-- +goose Up
-- One factor per user, pending until confirmed_at is set. The shared secret
-- is stored only sealed with key-encryption key version kek_version.
-- last_step is the last RFC 6238 time step accepted (replay protection).
CREATE TABLE totp_factors (
    user_id       TEXT    NOT NULL PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    secret_sealed BLOB    NOT NULL CHECK (length(secret_sealed) > 0),
    kek_version   INTEGER NOT NULL CHECK (kek_version > 0),
    created_at    INTEGER NOT NULL,
    confirmed_at  INTEGER,
    last_step     INTEGER NOT NULL DEFAULT 0 CHECK (last_step >= 0)
) STRICT;

-- Only hashes of the codes are stored; a code is single use (used_at).
CREATE TABLE recovery_codes (
    id         TEXT    NOT NULL PRIMARY KEY CHECK (id <> ''),
    user_id    TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    hash       BLOB    NOT NULL CHECK (length(hash) > 0),
    created_at INTEGER NOT NULL,
    used_at    INTEGER,
    UNIQUE (user_id, hash)
) STRICT;

CREATE INDEX recovery_codes_user_id_idx ON recovery_codes (user_id);

-- +goose Down
DROP TABLE recovery_codes;
DROP TABLE totp_factors;
