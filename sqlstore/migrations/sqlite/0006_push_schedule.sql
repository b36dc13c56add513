-- Push tokens: how the Core reaches a device through APNs, FCM or WNS.
-- The token is a device-supplied routing value, not a secret of ours;
-- PushMagic (Apple MDM) proves a push to the device.
CREATE TABLE device_push (
    device_id  TEXT PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    provider   TEXT NOT NULL,
    token      TEXT NOT NULL,
    topic      TEXT NOT NULL,
    push_magic TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Scheduled jobs that must run once per interval across every Core process
-- sharing this database. A process claims a run by moving next_run forward
-- with a conditional UPDATE: the row lock lets exactly one of several
-- concurrent claimers match the condition.
CREATE TABLE scheduled_runs (
    name     TEXT PRIMARY KEY,
    next_run BIGINT NOT NULL,
    owner    TEXT NOT NULL,
    last_run BIGINT
);
