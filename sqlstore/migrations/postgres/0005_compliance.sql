-- Compliance state of each device: its last evaluation and how far up its
-- profile's ladder of actions it has gone (package compliance). The file is
-- the same for both backends.
--
-- One row per device, deleted with it. profile_id has no foreign key: the
-- record of which profile a device was judged by outlives the policy.
-- version is the compare-and-swap counter that keeps two concurrent checks
-- of one device from both taking a ladder step.
CREATE TABLE compliance_states (
    device_id      TEXT PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    status         TEXT NOT NULL,
    violations     TEXT NOT NULL, -- JSON array of compliance.Violation
    since          BIGINT,
    step           INTEGER NOT NULL,
    prompts        INTEGER NOT NULL,
    last_prompt_at BIGINT,
    untrusted      BOOLEAN NOT NULL,
    quarantined    BOOLEAN NOT NULL,
    profile_id     TEXT,
    taken          TEXT NOT NULL, -- JSON array of compliance.Taken
    version        BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE INDEX compliance_states_status ON compliance_states (status, device_id);
