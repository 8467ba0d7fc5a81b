-- Operator-designated administrators, PostgreSQL dialect.

-- +goose Up
-- Set with `gatehouse users admin`; existing users are not administrators.
ALTER TABLE users ADD COLUMN admin boolean NOT NULL DEFAULT false;

-- +goose Down
ALTER TABLE users DROP COLUMN admin;
