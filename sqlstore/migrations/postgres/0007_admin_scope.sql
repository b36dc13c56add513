-- An administrator's scope: a JSON array of group IDs. The administrator
-- sees and acts on the devices of the users in these groups (subgroups
-- included); '[]' means every device, which is what every administrator
-- created before this migration keeps.
ALTER TABLE admins ADD COLUMN scope_groups TEXT NOT NULL DEFAULT '[]';
