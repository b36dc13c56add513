-- Administrators who sign in through the company directory: the entry's
-- unique ID (entryUUID, objectGUID) ties the record to the directory, so
-- a renamed account stays the same administrator. Local administrators
-- have none.
ALTER TABLE admins ADD COLUMN external_id TEXT;
CREATE UNIQUE INDEX admins_external_id ON admins (external_id) WHERE external_id IS NOT NULL;
