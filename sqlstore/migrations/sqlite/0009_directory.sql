-- Accounts and groups from the company directory (LDAP, Active Directory).
-- The SQLite and PostgreSQL versions of this file are identical.
--
-- external_id is the directory's own identifier of the entry (entryUUID,
-- RFC 4530, or Active Directory's objectGUID), not its DN: a rename or move
-- in the directory changes the DN but keeps this, so the same Custos user
-- or group is updated. NULL for local accounts and groups; the unique
-- indexes bind only the linked ones (NULLs never collide on either backend).
ALTER TABLE users ADD COLUMN external_id TEXT;
CREATE UNIQUE INDEX users_external_id ON users (external_id);

-- directory_missing_since is set (microseconds, UTC) by the directory sync
-- when a directory account is no longer found there, and cleared when it
-- reappears. The user is kept rather than deleted: deleting would remove
-- and revoke their devices on the strength of one search result.
ALTER TABLE users ADD COLUMN directory_missing_since BIGINT;

ALTER TABLE groups ADD COLUMN external_id TEXT;
CREATE UNIQUE INDEX groups_external_id ON groups (external_id);
