-- Administrator roles (package auth). Built-in roles (security_admin,
-- enterprise_admin, help_desk, junior_help_desk) are defined in code and
-- immutable; this table keeps custom roles only. admins.role holds a role
-- ID of either kind. There is no foreign key from admins.role (a built-in
-- role has no row): CreateAdmin and DeleteRole check each other in their
-- transactions instead.
--
-- permissions is a JSON array of permission names (auth.Permission).
CREATE TABLE roles (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    permissions TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX roles_name ON roles (lower(name));

-- Every administrator so far was a security administrator (the only role
-- there was); say so explicitly for any row that holds something else.
UPDATE admins SET role = 'security_admin'
    WHERE role NOT IN ('security_admin', 'enterprise_admin', 'help_desk', 'junior_help_desk');
CREATE INDEX admins_role ON admins (role);

-- A directory group (its external ID) granted a role, optionally limited
-- to the devices of some of our groups (scope_groups, a JSON array of
-- group IDs, as admins.scope_groups). Used when administrators sign in
-- through the directory.
CREATE TABLE role_group_bindings (
    id             TEXT PRIMARY KEY,
    role_id        TEXT NOT NULL,
    group_external TEXT NOT NULL,
    scope_groups   TEXT NOT NULL DEFAULT '[]',
    created_at     BIGINT NOT NULL,
    UNIQUE (role_id, group_external)
);
CREATE INDEX role_group_bindings_group ON role_group_bindings (group_external);
