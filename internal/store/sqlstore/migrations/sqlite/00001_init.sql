-- Gatehouse schema, SQLite dialect.
--
-- Times are INTEGER unix microseconds (UTC); JSON columns are TEXT checked
-- with the JSON1 functions. Tables are STRICT so a wrongly typed value is
-- rejected instead of silently stored.

-- +goose Up
CREATE TABLE users (
    id             TEXT    NOT NULL PRIMARY KEY CHECK (id <> ''),
    email          TEXT    NOT NULL,
    email_key      TEXT    NOT NULL CHECK (email_key <> ''),
    name           TEXT    NOT NULL DEFAULT '',
    password_hash  TEXT    NOT NULL DEFAULT '',
    email_verified INTEGER NOT NULL DEFAULT 0 CHECK (email_verified IN (0, 1)),
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
) STRICT;

CREATE UNIQUE INDEX users_email_key_idx ON users (email_key);

CREATE TABLE sessions (
    id            TEXT    NOT NULL PRIMARY KEY CHECK (id <> ''),
    user_id       TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash    BLOB    NOT NULL CHECK (length(token_hash) > 0),
    created_at    INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL,
    auth_time     INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    ip            TEXT    NOT NULL DEFAULT '',
    user_agent    TEXT    NOT NULL DEFAULT '',
    location      TEXT    NOT NULL DEFAULT '',
    aal           INTEGER NOT NULL DEFAULT 0,
    amr           TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(amr) AND json_type(amr) = 'array'),
    revoked_at    INTEGER,
    revoke_reason TEXT    NOT NULL DEFAULT ''
) STRICT;

CREATE UNIQUE INDEX sessions_token_hash_idx ON sessions (token_hash);
CREATE INDEX sessions_user_id_idx ON sessions (user_id);

-- user_id is deliberately not a foreign key: events are recorded for
-- unknown actors (empty user_id) and must outlive the account they describe.
CREATE TABLE audit_events (
    id         INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    type       TEXT    NOT NULL,
    user_id    TEXT    NOT NULL DEFAULT '',
    session_id TEXT    NOT NULL DEFAULT '',
    ip         TEXT    NOT NULL DEFAULT '',
    user_agent TEXT    NOT NULL DEFAULT '',
    at         INTEGER NOT NULL,
    details    TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(details) AND json_type(details) = 'object')
) STRICT;

CREATE INDEX audit_events_user_id_id_idx ON audit_events (user_id, id);

-- +goose Down
DROP TABLE audit_events;
DROP TABLE sessions;
DROP TABLE users;
