-- Allow and deny rules for client address blocks, SQLite dialect.

-- +goose Up
-- prefix is the masked CIDR text (netip.Prefix.String), the rule's
-- identity; expires_at NULL means until deleted.
CREATE TABLE ip_rules (
    prefix     TEXT    NOT NULL PRIMARY KEY,
    action     TEXT    NOT NULL CHECK (action IN ('allow', 'deny')),
    reason     TEXT    NOT NULL DEFAULT '',
    created_by TEXT    NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    expires_at INTEGER
) STRICT;

-- +goose Down
DROP TABLE ip_rules;
