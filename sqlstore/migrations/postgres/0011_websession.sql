-- The web sign-in layer (package websession), shared by the console
-- (realm 'admin': administrator IDs) and Self-Service (realm 'user': user
-- IDs). Its tables are keyed by (realm, principal_id) and reference no
-- other table, so no administrator or user table changes; a principal's
-- rows are removed with websession's RevokeAll and by the sweep. The file
-- is the same for both backends but for the byte type (BLOB/BYTEA).
--
-- hash is an argon2id PHC string, never a password.
CREATE TABLE web_credentials (
    realm        TEXT NOT NULL CHECK (realm IN ('admin', 'user')),
    principal_id TEXT NOT NULL,
    hash         TEXT NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (realm, principal_id)
);

-- Failed sign-ins per principal: the counter since the last lock or
-- success, how many locks in a row (each lasts longer), and the lock in
-- force. One row per principal, so that the increment is one atomic
-- upsert on either backend.
CREATE TABLE web_signin_failures (
    realm           TEXT NOT NULL CHECK (realm IN ('admin', 'user')),
    principal_id    TEXT NOT NULL,
    failures        INTEGER NOT NULL,
    locks           INTEGER NOT NULL,
    locked_until    BIGINT,
    last_failure_at BIGINT NOT NULL,
    PRIMARY KEY (realm, principal_id)
);
CREATE INDEX web_signin_failures_last ON web_signin_failures (last_failure_at);

-- Sessions by the SHA-256 of their ID, never the ID. The indexes serve
-- RevokeAll (principal) and the expiry sweep (absolute, idle).
CREATE TABLE web_sessions (
    id_hash      BYTEA PRIMARY KEY,
    realm        TEXT NOT NULL CHECK (realm IN ('admin', 'user')),
    principal_id TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX web_sessions_principal ON web_sessions (realm, principal_id);
CREATE INDEX web_sessions_expires ON web_sessions (expires_at);
CREATE INDEX web_sessions_last_seen ON web_sessions (last_seen_at);
