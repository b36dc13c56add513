-- One-time SCEP challenges of Apple enrollment profiles (package
-- platform/apple/enroll). Only the SHA-256 of a challenge is stored: the
-- challenge itself is a 128-bit random string written into one profile.
-- device_id has no foreign key, like enrollment_sessions: a challenge may
-- outlive the activating device a newer attempt replaced, and redeeming it
-- then fails. used_at is set, with cert_serial, in the transaction that
-- records the issued certificate.
CREATE TABLE apple_scep_challenges (
    hash        BYTEA PRIMARY KEY,
    device_id   TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT,
    cert_serial TEXT
);
CREATE INDEX apple_scep_challenges_expiry ON apple_scep_challenges (expires_at);
CREATE INDEX apple_scep_challenges_device ON apple_scep_challenges (device_id);
