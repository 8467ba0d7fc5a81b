-- Allow and deny rules for client address blocks, PostgreSQL dialect.

-- +goose Up
-- prefix is the masked CIDR text (netip.Prefix.String), the rule's
-- identity; expires_at NULL means until deleted.
CREATE TABLE ip_rules (
    prefix     text        NOT NULL PRIMARY KEY,
    action     text        NOT NULL CHECK (action IN ('allow', 'deny')),
    reason     text        NOT NULL DEFAULT '',
    created_by text        NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL,
    expires_at timestamptz
);

-- +goose Down
DROP TABLE ip_rules;
