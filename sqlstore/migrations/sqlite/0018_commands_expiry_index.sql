-- The command queue loses commands_open_expiry (0003). Every statement
-- that names the open statuses could use that index, and PostgreSQL chose
-- it wherever its statistics said few commands were open: the next
-- command of one device, or a result for one command id, then read every
-- open command of the fleet. After a command sent to the whole fleet, that
-- is each device reading every other device's command. The expiry sweep,
-- its only intended user, runs once a minute and now reads commands_due,
-- which holds the same open commands; every delivery also has one index
-- entry fewer to write.
DROP INDEX commands_open_expiry;
