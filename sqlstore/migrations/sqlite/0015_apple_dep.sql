-- Apple's MDM push certificate and automated device enrollment (packages
-- platform/apple/pushcert and platform/apple/dep), the same for both backends.
--
-- The one MDM push certificate of the installation (id is always 1). The
-- private key is sealed by the Core's secret.Box; cert_pem is public.
CREATE TABLE apple_push_certificate (
    id          INTEGER PRIMARY KEY,
    topic       TEXT NOT NULL,
    cert_pem    TEXT NOT NULL,
    key_sealed  TEXT NOT NULL,
    serial      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    not_before  BIGINT NOT NULL,
    not_after   BIGINT NOT NULL,
    uploaded_at BIGINT NOT NULL,
    uploaded_by TEXT NOT NULL
);

-- Settings of automated enrollment, one row per concern so that concurrent
-- writers of different concerns (the sync's cursor, an administrator's
-- token upload) never overwrite each other: the server token keypair, the
-- sealed OAuth1 tokens, the sync cursor, the profile and its config, the
-- default user.
CREATE TABLE apple_dep_settings (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Devices Apple Business Manager assigned to this server, as the device
-- sync last saw them, with the Custos user an administrator assigned each
-- to and the ADE profile assignment.
CREATE TABLE apple_dep_devices (
    serial          TEXT PRIMARY KEY,
    model           TEXT NOT NULL,
    description     TEXT NOT NULL,
    color           TEXT NOT NULL,
    device_family   TEXT NOT NULL,
    os              TEXT NOT NULL,
    op_type         TEXT NOT NULL,
    op_date         BIGINT,
    removed         BOOLEAN NOT NULL,
    apple_profile_uuid   TEXT NOT NULL,
    apple_profile_status TEXT NOT NULL,
    profile_uuid    TEXT NOT NULL,
    assign_status   TEXT NOT NULL,
    assigned_at     BIGINT,
    user_id         TEXT REFERENCES users (id) ON DELETE SET NULL,
    enrolled_device_id TEXT,
    enrolled_at     BIGINT,
    synced_at       BIGINT NOT NULL
);
CREATE INDEX apple_dep_devices_user ON apple_dep_devices (user_id);
