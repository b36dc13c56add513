-- The device command queue (package command). Keep in step with
-- ../postgres/0003_commands.sql: the two are identical.
--
-- One row per command per device. status moves pending → sent → (not_now →
-- sent …) → a final state; only Enqueue inserts rows in state pending.
-- payload and result are JSON text, NULL when there is none. The foreign key
-- deletes a device's queue with the device (which is deleted only while
-- activating, or together with its user).
CREATE TABLE commands (
    id           TEXT PRIMARY KEY,
    device_id    TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    type         TEXT NOT NULL,
    priority     INTEGER NOT NULL,
    payload      TEXT,
    status       TEXT NOT NULL,
    created_by   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    not_before   BIGINT,
    deliveries   INTEGER NOT NULL DEFAULT 0,
    sent_at      BIGINT,
    completed_at BIGINT,
    message      TEXT NOT NULL DEFAULT '',
    result       TEXT
);
-- Next: the open commands of one device in delivery order. Partial, so a
-- device with a long history of final commands costs Next nothing more.
CREATE INDEX commands_due ON commands (device_id, priority DESC, id) WHERE status IN ('pending', 'sent', 'not_now');
-- A device's history (ListCommands by device) and the cascade from devices.
CREATE INDEX commands_device ON commands (device_id, id);
-- The expiry sweep looks at open commands only.
CREATE INDEX commands_open_expiry ON commands (expires_at) WHERE status IN ('pending', 'sent', 'not_now');
-- At most one undelivered configuration sync per device: Enqueue inserts
-- with ON CONFLICT DO NOTHING, so repeated configuration changes do not
-- pile up. Only pending ones count: a delivered sync may have fetched the
-- configuration before the change, so a new one must be queued after it.
CREATE UNIQUE INDEX commands_sync_config_pending ON commands (device_id) WHERE type = 'sync_config' AND status = 'pending';
