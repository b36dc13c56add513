-- OMA-DM sessions of Windows devices (package platform/windows): what a
-- session's next message needs, whichever Core process it reaches. Keyed by
-- device and the device's SessionID (Windows numbers sessions per device).
-- pending is a JSON array of the commands sent and not answered yet,
-- delivered a JSON array of the queue command IDs handed out in the session.
CREATE TABLE windows_sessions (
    device_id  TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    session_id TEXT NOT NULL,
    msg_id     INTEGER NOT NULL,
    cmd_id     INTEGER NOT NULL,
    pending    TEXT NOT NULL,
    delivered  TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (device_id, session_id)
);
CREATE INDEX windows_sessions_updated ON windows_sessions (updated_at);
