-- The not_me verification purpose ("this wasn't me" from the notice of a
-- sign-in by a new device), PostgreSQL dialect.

-- +goose Up
ALTER TABLE verifications DROP CONSTRAINT verifications_purpose_check;
ALTER TABLE verifications ADD CONSTRAINT verifications_purpose_check
    CHECK (purpose IN ('verify_email', 'recovery', 'magic_link', 'email_otp',
                       'sms_otp', 'verify_phone', 'change_email', 'revert_email', 'not_me'));

-- +goose Down
DELETE FROM verifications WHERE purpose = 'not_me';
ALTER TABLE verifications DROP CONSTRAINT verifications_purpose_check;
ALTER TABLE verifications ADD CONSTRAINT verifications_purpose_check
    CHECK (purpose IN ('verify_email', 'recovery', 'magic_link', 'email_otp',
                       'sms_otp', 'verify_phone', 'change_email', 'revert_email'));
