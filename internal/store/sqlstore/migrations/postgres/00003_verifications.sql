-- Verified phone numbers and verifications (outstanding proofs of control
-- of an e-mail address or phone number), PostgreSQL dialect.

-- +goose Up
-- A verified number in E.164 form: '+', a non-zero digit and 6 to 14 more
-- digits (the same rule as the SQLite GLOB checks); '' is none.
ALTER TABLE users ADD COLUMN phone text NOT NULL DEFAULT '' CHECK (phone = '' OR phone ~ '^[+][1-9][0-9]{6,14}$');

CREATE UNIQUE INDEX users_phone_idx ON users (phone) WHERE phone <> '';

-- Only hashes of the secrets are stored. A verification carries a link, a
-- code or both. session_id is deliberately not a foreign key: it only
-- records which session asked. id sorts bytewise (COLLATE "C"), as on
-- SQLite, where it breaks ties between verifications created at one time.
CREATE TABLE verifications (
    id         text        COLLATE "C" NOT NULL PRIMARY KEY CHECK (id <> ''),
    user_id    text        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    text        NOT NULL CHECK (purpose IN ('verify_email', 'recovery', 'magic_link', 'email_otp',
                                                       'sms_otp', 'verify_phone', 'change_email', 'revert_email')),
    link_hash  bytea,
    code_hash  bytea,
    target     text        NOT NULL DEFAULT '',
    session_id text        NOT NULL DEFAULT '',
    binding    bytea,
    attempts   integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    CHECK (link_hash IS NOT NULL OR code_hash IS NOT NULL)
);

CREATE UNIQUE INDEX verifications_link_hash_idx ON verifications (link_hash) WHERE link_hash IS NOT NULL;
-- CurrentVerification, and the retirement of a user's outstanding ones,
-- visit only unused rows.
CREATE INDEX verifications_unused_idx ON verifications (user_id, purpose) WHERE used_at IS NULL;
-- DeleteVerificationsBefore (housekeeping).
CREATE INDEX verifications_expires_at_idx ON verifications (expires_at);

-- +goose Down
DROP TABLE verifications;
DROP INDEX users_phone_idx;
ALTER TABLE users DROP COLUMN phone;
