-- Gatehouse schema, PostgreSQL dialect.
--
-- Objects are created unqualified, in the first schema of search_path.

-- +goose Up
CREATE TABLE users (
    id             text        NOT NULL PRIMARY KEY CHECK (id <> ''),
    email          text        NOT NULL,
    email_key      text        NOT NULL CHECK (email_key <> ''),
    name           text        NOT NULL DEFAULT '',
    password_hash  text        NOT NULL DEFAULT '',
    email_verified boolean     NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL
);

CREATE UNIQUE INDEX users_email_key_idx ON users (email_key);

CREATE TABLE sessions (
    id            text        NOT NULL PRIMARY KEY CHECK (id <> ''),
    user_id       text        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash    bytea       NOT NULL CHECK (octet_length(token_hash) > 0),
    created_at    timestamptz NOT NULL,
    last_seen_at  timestamptz NOT NULL,
    auth_time     timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    ip            text        NOT NULL DEFAULT '',
    user_agent    text        NOT NULL DEFAULT '',
    location      text        NOT NULL DEFAULT '',
    aal           integer     NOT NULL DEFAULT 0,
    amr           jsonb       NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(amr) = 'array'),
    revoked_at    timestamptz,
    revoke_reason text        NOT NULL DEFAULT ''
);

CREATE UNIQUE INDEX sessions_token_hash_idx ON sessions (token_hash);
CREATE INDEX sessions_user_id_idx ON sessions (user_id);

-- user_id is deliberately not a foreign key: events are recorded for
-- unknown actors (empty user_id) and must outlive the account they describe.
CREATE TABLE audit_events (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    type       text        NOT NULL,
    user_id    text        NOT NULL DEFAULT '',
    session_id text        NOT NULL DEFAULT '',
    ip         text        NOT NULL DEFAULT '',
    user_agent text        NOT NULL DEFAULT '',
    at         timestamptz NOT NULL,
    details    jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(details) = 'object')
);

CREATE INDEX audit_events_user_id_id_idx ON audit_events (user_id, id);

-- +goose Down
DROP TABLE audit_events;
DROP TABLE sessions;
DROP TABLE users;
