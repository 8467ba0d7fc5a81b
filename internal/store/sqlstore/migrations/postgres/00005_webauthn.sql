-- WebAuthn credentials (passkeys and security keys), PostgreSQL dialect.

-- +goose Up
-- Only public material is stored. credential_id is the authenticator's
-- credential id (WebAuthn §6.1: at most 1023 bytes), unique across users;
-- public_key is a COSE_Key. transports is a JSON array of strings.
-- sign_count is the authenticator's unsigned 32-bit signature counter.
-- backup_state (BS) may be set only on a backup-eligible (BE) credential
-- (WebAuthn §6.1).
CREATE TABLE webauthn_credentials (
    id               text        NOT NULL PRIMARY KEY CHECK (id <> ''),
    user_id          text        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_id    bytea       NOT NULL CHECK (octet_length(credential_id) BETWEEN 1 AND 1023),
    public_key       bytea       NOT NULL CHECK (octet_length(public_key) > 0),
    attestation_type text        NOT NULL,
    aaguid           bytea       NOT NULL CHECK (octet_length(aaguid) = 16),
    transports       jsonb       NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(transports) = 'array'),
    discoverable     boolean     NOT NULL,
    backup_eligible  boolean     NOT NULL,
    backup_state     boolean     NOT NULL
        CONSTRAINT webauthn_credentials_backup_state_check CHECK (backup_eligible OR NOT backup_state),
    sign_count       bigint      NOT NULL CHECK (sign_count >= 0 AND sign_count <= 4294967295),
    name             text        NOT NULL,
    created_at       timestamptz NOT NULL,
    last_used_at     timestamptz
);

CREATE UNIQUE INDEX webauthn_credentials_credential_id_idx ON webauthn_credentials (credential_id);
CREATE INDEX webauthn_credentials_user_id_idx ON webauthn_credentials (user_id);

-- +goose Down
DROP TABLE webauthn_credentials;
