-- Custos schema, SQLite dialect. Keep in step with ../postgres/0001_init.sql:
-- the two differ only in the byte type (BLOB/BYTEA) and the audit ID column.
--
-- Timestamps are BIGINT microseconds since the Unix epoch, UTC; IDs are
-- UUIDv7 text, so ID order is creation order; maps and lists are JSON text.
-- Every child of users carries an index on user_id so that deleting a user
-- (ON DELETE CASCADE) does not scan whole tables.

CREATE TABLE activation_profiles (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL,
    rank        INTEGER NOT NULL,
    max_devices INTEGER NOT NULL,
    types       TEXT NOT NULL, -- JSON object: platform -> activation type
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX activation_profiles_rank ON activation_profiles (rank, name);

-- email and username are NULL when an account has none, so that uniqueness
-- binds only real logins. Callers store them in lower case.
CREATE TABLE users (
    id                      TEXT PRIMARY KEY,
    email                   TEXT UNIQUE,
    username                TEXT UNIQUE,
    display_name            TEXT NOT NULL,
    source                  TEXT NOT NULL,
    activation_profile_id   TEXT REFERENCES activation_profiles (id) ON DELETE SET NULL,
    failed_activations      INTEGER NOT NULL DEFAULT 0,
    activation_locked_until BIGINT,
    created_at              BIGINT NOT NULL,
    updated_at              BIGINT NOT NULL
);
CREATE INDEX users_activation_profile ON users (activation_profile_id);

CREATE TABLE groups (
    id                    TEXT PRIMARY KEY,
    name                  TEXT NOT NULL UNIQUE,
    description           TEXT NOT NULL,
    activation_profile_id TEXT REFERENCES activation_profiles (id) ON DELETE SET NULL,
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL
);
CREATE INDEX groups_activation_profile ON groups (activation_profile_id);

CREATE TABLE group_members (
    group_id TEXT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id  TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user ON group_members (user_id, group_id);

-- device_id names the device that used the password. It has no foreign key:
-- a device is deleted only while activating (before it could use a
-- password) or together with its user, and so with the password.
CREATE TABLE activation_passwords (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    hash       BLOB NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT,
    device_id  TEXT,
    revoked_at BIGINT
);
CREATE INDEX activation_passwords_user ON activation_passwords (user_id, created_at);

-- profile_id records the profile a device was activated with; it has no
-- foreign key because that history outlives the profile.
CREATE TABLE devices (
    id              TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    hardware_id     TEXT NOT NULL,
    platform        TEXT NOT NULL,
    os_version      TEXT NOT NULL,
    model           TEXT NOT NULL,
    name            TEXT NOT NULL,
    activation_type TEXT NOT NULL,
    profile_id      TEXT,
    state           TEXT NOT NULL,
    cert_serial     TEXT,
    config_version  TEXT,
    created_at      BIGINT NOT NULL,
    enrolled_at     BIGINT,
    activated_at    BIGINT,
    last_seen_at    BIGINT,
    removed_at      BIGINT
);
-- One piece of hardware is enrolled for at most one device instance; the
-- race between two activations of the same hardware ends here.
CREATE UNIQUE INDEX devices_hardware_enrolled ON devices (hardware_id) WHERE state IN ('enrolled', 'active');
CREATE INDEX devices_hardware ON devices (hardware_id, user_id);
CREATE INDEX devices_user ON devices (user_id, id);
CREATE INDEX devices_state ON devices (state, id);

CREATE TABLE device_inventory (
    device_id   TEXT PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    info        TEXT NOT NULL, -- JSON device.Info
    software    TEXT NOT NULL, -- JSON array of device.App
    reported_at BIGINT NOT NULL
);

-- device_id has no foreign key: a superseded session keeps naming the stale
-- activating device that a newer attempt deleted.
CREATE TABLE enrollment_sessions (
    id          TEXT PRIMARY KEY,
    token_hash  BLOB NOT NULL UNIQUE,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    device_id   TEXT NOT NULL,
    password_id TEXT REFERENCES activation_passwords (id) ON DELETE CASCADE,
    state       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX enrollment_sessions_user ON enrollment_sessions (user_id);
CREATE INDEX enrollment_sessions_open_password ON enrollment_sessions (password_id) WHERE state = 'open';
CREATE INDEX enrollment_sessions_open_device ON enrollment_sessions (device_id) WHERE state = 'open';

-- No foreign key on device_id, on purpose: the CRL must keep listing a
-- revoked serial after its device and user are deleted.
CREATE TABLE certificates (
    serial     TEXT PRIMARY KEY,
    device_id  TEXT NOT NULL,
    not_before BIGINT NOT NULL,
    not_after  BIGINT NOT NULL,
    der        BLOB NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX certificates_device ON certificates (device_id);
CREATE INDEX certificates_revoked ON certificates (serial) WHERE revoked_at IS NOT NULL;

CREATE TABLE admins (
    id           TEXT PRIMARY KEY,
    username     TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    role         TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);

CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    admin_id     TEXT NOT NULL REFERENCES admins (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    hash         BLOB NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    last_used_at BIGINT,
    revoked_at   BIGINT
);
CREATE INDEX api_tokens_admin ON api_tokens (admin_id);

-- AUTOINCREMENT: an ID is never handed out twice, even after old entries
-- are pruned, so BeforeID cursors stay meaningful.
CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    actor_ip    TEXT NOT NULL,
    action      TEXT NOT NULL,
    object_type TEXT NOT NULL,
    object_id   TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    detail      TEXT -- JSON object, NULL when none
);
CREATE INDEX audit_log_actor ON audit_log (actor, id);
CREATE INDEX audit_log_action ON audit_log (action, id);
CREATE INDEX audit_log_object ON audit_log (object_id, id);
CREATE INDEX audit_log_at ON audit_log (at);
