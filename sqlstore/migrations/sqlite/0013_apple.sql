-- Apple MDM enrollments (platform/apple): one row per enrollment (the
-- device channel's UDID, or the EnrollmentID of a User Enrollment), bound
-- to the Custos device named by its identity certificate's CN and to that
-- certificate's serial. A certificate is bound to at most one enrollment.
-- bootstrap_token and unlock_token are sealed with the Core's secret box.
CREATE TABLE apple_enrollments (
    udid             TEXT PRIMARY KEY,
    device_id        TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    cert_serial      TEXT NOT NULL UNIQUE,
    topic            TEXT NOT NULL,
    serial_number    TEXT NOT NULL,
    authenticated_at BIGINT NOT NULL,
    token_updated_at BIGINT,
    checked_out_at   BIGINT,
    bootstrap_token  TEXT NOT NULL,
    unlock_token     TEXT NOT NULL,
    awaiting_config  BOOLEAN NOT NULL
);
CREATE INDEX apple_enrollments_device ON apple_enrollments (device_id);

-- The InstallProfile/RemoveProfile commands a configuration sync expanded
-- into, so that the device's answer to each is recorded as the state of
-- the policy item it rendered (policy.RecordStatus).
CREATE TABLE apple_profile_commands (
    command_id TEXT PRIMARY KEY,
    device_id  TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    item_id    TEXT NOT NULL,
    revision   INTEGER NOT NULL,
    version    TEXT NOT NULL,
    remove     BOOLEAN NOT NULL,
    status     TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX apple_profile_commands_device ON apple_profile_commands (device_id, version);
