-- Operator-designated administrators, SQLite dialect.

-- +goose Up
-- Set with `gatehouse users admin`; existing users are not administrators.
ALTER TABLE users ADD COLUMN admin INTEGER NOT NULL DEFAULT 0 CHECK (admin IN (0, 1));

-- +goose Down
ALTER TABLE users DROP COLUMN admin;
