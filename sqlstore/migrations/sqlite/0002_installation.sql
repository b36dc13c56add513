-- Facts every Core process sharing this database must agree on (the CA's
-- fingerprint, a check value of the password-hashing secret), written by
-- the first process to start and compared by every later one.
CREATE TABLE installation (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
);
