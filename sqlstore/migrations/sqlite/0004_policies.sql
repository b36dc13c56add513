-- Nested groups, IT policies and profiles, their assignments to users and
-- groups, and what devices report about applying them. The SQLite and
-- PostgreSQL files are identical: no column here needs a byte type.

-- child_id is a subgroup of parent_id: its members are members of the
-- parent, at any depth. The store refuses cycles (AddSubgroup); the schema
-- cannot express that.
CREATE TABLE group_subgroups (
    parent_id TEXT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    child_id  TEXT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    PRIMARY KEY (parent_id, child_id)
);
-- Walking up (which groups reach a user) goes from child to parent.
CREATE INDEX group_subgroups_child ON group_subgroups (child_id, parent_id);

-- A name is unique per kind: "Sales" may name a Wi-Fi and a VPN profile.
CREATE TABLE policies (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    rank        INTEGER NOT NULL,
    platforms   TEXT NOT NULL, -- JSON array of platform names, [] for all
    settings    TEXT NOT NULL, -- JSON object, canonical form (sorted keys)
    revision    INTEGER NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    UNIQUE (kind, name)
);

-- One table per target kind, so that foreign keys check the target and
-- deleting a user or group deletes its assignments.
CREATE TABLE policy_users (
    policy_id  TEXT NOT NULL REFERENCES policies (id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (policy_id, user_id)
);
CREATE INDEX policy_users_user ON policy_users (user_id, policy_id);

CREATE TABLE policy_groups (
    policy_id  TEXT NOT NULL REFERENCES policies (id) ON DELETE CASCADE,
    group_id   TEXT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (policy_id, group_id)
);
CREATE INDEX policy_groups_group ON policy_groups (group_id, policy_id);

-- The configuration version a device last reported on, and when.
CREATE TABLE device_policy_reports (
    device_id   TEXT PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    version     TEXT NOT NULL,
    reported_at BIGINT NOT NULL
);

-- What the device did with each item, at the item's revision it applied.
CREATE TABLE device_policy_states (
    device_id TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    policy_id TEXT NOT NULL REFERENCES policies (id) ON DELETE CASCADE,
    revision  INTEGER NOT NULL,
    status    TEXT NOT NULL,
    error     TEXT NOT NULL,
    at        BIGINT NOT NULL,
    PRIMARY KEY (device_id, policy_id)
);
CREATE INDEX device_policy_states_policy ON device_policy_states (policy_id);
