-- WebAuthn credentials (passkeys and security keys), SQLite dialect.

-- +goose Up
-- Only public material is stored. credential_id is the authenticator's
-- credential id (WebAuthn §6.1: at most 1023 bytes), unique across users;
-- public_key is a COSE_Key. transports is a JSON array of strings.
-- sign_count is the authenticator's unsigned 32-bit signature counter.
-- backup_state (BS) may be set only on a backup-eligible (BE) credential
-- (WebAuthn §6.1).
CREATE TABLE webauthn_credentials (
    id               TEXT    NOT NULL PRIMARY KEY CHECK (id <> ''),
    user_id          TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_id    BLOB    NOT NULL CHECK (length(credential_id) BETWEEN 1 AND 1023),
    public_key       BLOB    NOT NULL CHECK (length(public_key) > 0),
    attestation_type TEXT    NOT NULL,
    aaguid           BLOB    NOT NULL CHECK (length(aaguid) = 16),
    transports       TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(transports) AND json_type(transports) = 'array'),
    discoverable     INTEGER NOT NULL CHECK (discoverable IN (0, 1)),
    backup_eligible  INTEGER NOT NULL CHECK (backup_eligible IN (0, 1)),
    backup_state     INTEGER NOT NULL CHECK (backup_state IN (0, 1) AND backup_state <= backup_eligible),
    sign_count       INTEGER NOT NULL CHECK (sign_count >= 0 AND sign_count <= 4294967295),
    name             TEXT    NOT NULL,
    created_at       INTEGER NOT NULL,
    last_used_at     INTEGER
) STRICT;

CREATE UNIQUE INDEX webauthn_credentials_credential_id_idx ON webauthn_credentials (credential_id);
CREATE INDEX webauthn_credentials_user_id_idx ON webauthn_credentials (user_id);

-- +goose Down
DROP TABLE webauthn_credentials;
