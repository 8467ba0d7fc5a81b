-- The not_me verification purpose ("this wasn't me" from the notice of a
-- sign-in by a new device), SQLite dialect. SQLite cannot change a CHECK
-- constraint in place: the table is rebuilt with the new one (no other
-- table references it) and its indexes made again.

-- +goose Up
CREATE TABLE verifications_new (
    id         TEXT    NOT NULL PRIMARY KEY CHECK (id <> ''),
    user_id    TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    TEXT    NOT NULL CHECK (purpose IN ('verify_email', 'recovery', 'magic_link', 'email_otp',
                                                   'sms_otp', 'verify_phone', 'change_email', 'revert_email',
                                                   'not_me')),
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
INSERT INTO verifications_new SELECT id, user_id, purpose, link_hash, code_hash, target, session_id, binding,
    attempts, created_at, expires_at, used_at FROM verifications;
DROP TABLE verifications;
ALTER TABLE verifications_new RENAME TO verifications;
CREATE UNIQUE INDEX verifications_link_hash_idx ON verifications (link_hash) WHERE link_hash IS NOT NULL;
CREATE INDEX verifications_unused_idx ON verifications (user_id, purpose) WHERE used_at IS NULL;
CREATE INDEX verifications_expires_at_idx ON verifications (expires_at);

-- +goose Down
CREATE TABLE verifications_old (
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
INSERT INTO verifications_old SELECT id, user_id, purpose, link_hash, code_hash, target, session_id, binding,
    attempts, created_at, expires_at, used_at FROM verifications WHERE purpose <> 'not_me';
DROP TABLE verifications;
ALTER TABLE verifications_old RENAME TO verifications;
CREATE UNIQUE INDEX verifications_link_hash_idx ON verifications (link_hash) WHERE link_hash IS NOT NULL;
CREATE INDEX verifications_unused_idx ON verifications (user_id, purpose) WHERE used_at IS NULL;
CREATE INDEX verifications_expires_at_idx ON verifications (expires_at);
