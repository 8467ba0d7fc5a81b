-- Verified phone numbers and verifications (outstanding proofs of control
-- of an e-mail address or phone number), SQLite dialect.

-- +goose Up
-- A verified number in E.164 form: '+', a non-zero digit and 6 to 14 more
-- digits (the same rule as the PostgreSQL regular expression); '' is none.
ALTER TABLE users ADD COLUMN phone TEXT NOT NULL DEFAULT '' CHECK (phone = '' OR (
    phone GLOB '+[1-9]*' AND substr(phone, 2) NOT GLOB '*[^0-9]*' AND length(phone) BETWEEN 8 AND 16));

CREATE UNIQUE INDEX users_phone_idx ON users (phone) WHERE phone <> '';

-- Only hashes of the secrets are stored. A verification carries a link, a
-- code or both. session_id is deliberately not a foreign key: it only
-- records which session asked.
CREATE TABLE verifications (
    id         TEXT    NOT NULL PRIMARY KEY CHECK (id <> ''),
    user_id    TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    TEXT    NOT NULL CHECK (purpose IN ('verify_email', 'recovery', 'magic_link', 'email_otp',
                                                   'sms_otp', 'verify_phone', 'change_email', 'revert_email')),
    link_hash  BLOB,
    code_hash  BLOB,
    target     TEXT    NOT NULL DEFAULT '',
    session_id TEXT    NOT NULL DEFAULT '',
    binding    BLOB,
    attempts   INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER,
    CHECK (link_hash IS NOT NULL OR code_hash IS NOT NULL)
) STRICT;

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
