// Package sqlstore implements every store interface of Custos (users and
// groups, activation profiles, passwords and enrollment sessions, devices
// and their inventory, certificates for the CRL, administrators and API
// tokens, the audit trail) on one relational database: SQLite, embedded in
// the binary by default, or PostgreSQL for production and scale-out. Both
// run the same SQL text and pass the same conformance suites.
//
// What it promises:
//
//   - Every write method is atomic: it happens entirely or not at all, and a
//     method that returns an error has changed nothing. The multi-step ones
//     are the point: OpenSession (supersede, delete the stale attempt,
//     insert device and session, clear the failure counter), CompleteSession
//     (consume the session, use the password, retire the replaced instances
//     and revoke their certificates, enroll the device, record its
//     certificate), RemoveDevice (remove and revoke), SetPassword (replace
//     older passwords) and SaveReport (device columns and inventory).
//   - One-time secrets are consumed by a conditional UPDATE inside the write,
//     so of any number of concurrent CompleteSession calls on one session
//     exactly one succeeds, on either backend and across processes sharing a
//     PostgreSQL database.
//   - At most one device instance per hardware ID is enrolled or active; a
//     unique index enforces it, whatever the callers race.
//   - Certificates are never deleted: a revoked serial stays on the CRL until
//     it expires, even after its device and user are gone.
//   - Not found is errs.ErrNotFound and a duplicate is errs.ErrConflict on
//     both backends, wrapped with the object in question; a reference to a
//     missing object (a foreign key) is errs.ErrNotFound too.
//
// Timestamps are stored as microseconds since the Unix epoch and come back
// in UTC with microsecond precision.
//
// On SQLite all writes go through one goroutine that owns the single
// writer connection, so they queue in Go instead of contending for the file
// lock, and the writes that queued while a commit was in progress are
// committed together (group commit, see writeQueue): each still runs alone
// in its own savepoint (or its own transaction when no other write is
// queued), sees every write queued before it, and returns only
// once its commit is done, so to a caller it is a transaction of its own.
// Reads run in parallel on a separate pool of read-only connections (WAL
// mode lets them proceed during a write). On PostgreSQL every write is a
// transaction of its own at READ COMMITTED, and a transaction the server
// aborts as a deadlock victim is run again. Two hot paths are grouped on
// PostgreSQL (see groupQueue): a device's command round trip (Next, and
// CompleteAndNext, the result and the next delivery) and the identity read
// that starts every Apple request. The calls that arrive while others are
// in flight run as one statement, so a busy server pays one network round
// trip and one commit per group instead of four round trips per call; each
// caller still gets exactly what its lone call would have returned, and
// what a group cannot decide (a duplicate or unknown result, a failed
// statement) runs alone. The queue's statements about one device find its
// commands by index whatever the server's statistics say (see
// resultApplies and the group connections in openPostgres): a device's
// round trip never reads the rest of the fleet's queue.
//
// Statements are prepared once per connection and reused.
package sqlstore
