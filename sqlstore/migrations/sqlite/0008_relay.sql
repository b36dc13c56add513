-- The relay's state (package relay): the Cores registered with it, the
-- routes that say which Core a user may activate against, and which relay
-- process holds a live link of which Core. The file is the same for both
-- backends but for the byte type (BLOB/BYTEA).
--
-- key_hash is the SHA-256 of the Core's key, never the key.
CREATE TABLE relay_servers (
    id         TEXT PRIMARY KEY,
    key_hash   BLOB NOT NULL,
    license    BLOB,
    disabled   BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- A route is owned by at most one server: the primary key is what makes
-- two Cores claiming the same domain or address a conflict, whatever the
-- callers race. An address route's value is the keyed hash of the address.
CREATE TABLE relay_routes (
    kind      TEXT NOT NULL,
    value     TEXT NOT NULL,
    server_id TEXT NOT NULL REFERENCES relay_servers (id) ON DELETE CASCADE,
    PRIMARY KEY (kind, value)
);
CREATE INDEX relay_routes_server ON relay_routes (server_id);

-- Live links, one per (server, relay process), refreshed while the link
-- lasts; readers ignore the ones not seen recently.
CREATE TABLE relay_links (
    server_id TEXT NOT NULL REFERENCES relay_servers (id) ON DELETE CASCADE,
    relay_id  TEXT NOT NULL,
    address   TEXT NOT NULL,
    seen_at   BIGINT NOT NULL,
    PRIMARY KEY (server_id, relay_id)
);
