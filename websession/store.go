package websession

import (
	"context"
	"time"
)

// Realm separates the two kinds of principals that sign in to web pages:
// administrators to the management console, users to Self-Service. The
// same principal ID in two realms names two different accounts, with
// their own credentials, lockouts and sessions.
type Realm string

const (
	// RealmAdmin principals are auth administrator IDs.
	RealmAdmin Realm = "admin"
	// RealmUser principals are user IDs.
	RealmUser Realm = "user"
)

// Valid reports whether r is RealmAdmin or RealmUser.
func (r Realm) Valid() bool { return r == RealmAdmin || r == RealmUser }

// MaxPrincipalID bounds a principal ID (our IDs are far shorter).
const MaxPrincipalID = 64

// Credential is a principal's local password, as a PHC string.
type Credential struct {
	Realm       Realm
	PrincipalID string
	Hash        string
	UpdatedAt   time.Time
}

// Lockout is a principal's failed sign-in state.
type Lockout struct {
	// Failures counts the failures since the last lock, success, or quiet
	// period of FailurePolicy.Window.
	Failures int
	// Locks counts the locks since the last success: the nth lock lasts
	// FailurePolicy.LockFor(n), so that a sustained guessing attack is
	// slowed more and more.
	Locks int
	// LockedUntil is the end of the current (or last) lock, nil if none.
	LockedUntil   *time.Time
	LastFailureAt time.Time
}

// Locked reports whether the lock is in force at now.
func (l Lockout) Locked(now time.Time) bool {
	return l.LockedUntil != nil && now.Before(*l.LockedUntil)
}

// FailurePolicy tells RecordWebFailure when to lock.
type FailurePolicy struct {
	// Limit is the number of failures that locks; zero or less never locks.
	Limit int
	// Window: a failure more than Window after the previous one starts the
	// count again at one. Zero never restarts it.
	Window time.Duration
	// LockFor returns the duration of the nth lock (n from 1). It must be
	// set when Limit is positive, and must not call the store.
	LockFor func(n int) time.Duration
}

// Session is a signed-in browser. The store keeps only the SHA-256 of
// its ID, so a copy of the database signs nobody in.
type Session struct {
	IDHash      []byte
	Realm       Realm
	PrincipalID string
	CreatedAt   time.Time
	// LastSeenAt is the last request seen (written at most every
	// TouchInterval); the idle timeout runs from it.
	LastSeenAt time.Time
	// ExpiresAt is the absolute end of the session, however active.
	ExpiresAt time.Time
}

// CredentialStore keeps local passwords, keyed by (realm, principal ID).
// Realms and principal IDs are checked by the service, not the store.
type CredentialStore interface {
	// Credential returns the principal's credential; none is
	// errs.ErrNotFound.
	WebCredential(ctx context.Context, realm Realm, principalID string) (*Credential, error)
	// SetWebCredential creates or replaces the principal's credential and,
	// in the same write, clears its Lockout: setting a password is how an
	// administrator unlocks an account.
	SetWebCredential(ctx context.Context, c *Credential) error
	// RehashWebCredential replaces the hash only if it is still oldHash, so
	// that an upgrade computed from a password just checked never
	// overwrites a password changed in the meantime. No such credential,
	// or another hash, is errs.ErrNotFound (and changes nothing).
	RehashWebCredential(ctx context.Context, realm Realm, principalID, oldHash, newHash string, now time.Time) error
}

// FailureStore keeps the failed sign-in counters. Principals need no
// credential to have one (a directory account is locked the same way).
type FailureStore interface {
	// Lockout returns the principal's state; a principal that never failed
	// (or was swept) has the zero Lockout and no error.
	WebLockout(ctx context.Context, realm Realm, principalID string) (Lockout, error)
	// RecordWebFailure counts a failure at now, atomically: of any number of
	// concurrent calls, across processes, every one is counted. When the
	// count reaches p.Limit, it sets LockedUntil to now + p.LockFor(Locks+1),
	// increments Locks and restarts Failures at zero, in the same write. It
	// returns the state after the failure.
	RecordWebFailure(ctx context.Context, realm Realm, principalID string, now time.Time, p FailurePolicy) (Lockout, error)
	// ResetWebFailures forgets the principal's failures and locks (a
	// successful sign-in). A principal without any is not an error.
	ResetWebFailures(ctx context.Context, realm Realm, principalID string) error
}

// SessionStore keeps sessions by the SHA-256 of their IDs.
type SessionStore interface {
	// CreateWebSession stores s; a session with the same IDHash is
	// errs.ErrConflict.
	CreateWebSession(ctx context.Context, s *Session) error
	// Session returns the session with idHash, expired or not (the
	// service judges expiry); none is errs.ErrNotFound.
	WebSession(ctx context.Context, idHash []byte) (*Session, error)
	// TouchWebSession sets LastSeenAt to at, unless it is later already; no
	// such session is errs.ErrNotFound.
	TouchWebSession(ctx context.Context, idHash []byte, at time.Time) error
	// DeleteWebSession deletes the session; none is not an error (signing
	// out twice is signing out).
	DeleteWebSession(ctx context.Context, idHash []byte) error
	// DeleteWebSessions deletes every session of the principal in the realm
	// and returns how many there were.
	DeleteWebSessions(ctx context.Context, realm Realm, principalID string) (int, error)
}

// Sweeper removes what has expired, for the Core's scheduler. Both
// deletes are idempotent and touch disjoint rows when run concurrently,
// so several Core processes may sweep at once without a claim.
type Sweeper interface {
	// DeleteExpiredWebSessions deletes the sessions whose ExpiresAt is not
	// after now, or whose LastSeenAt is not after idleBefore, and returns
	// how many.
	DeleteExpiredWebSessions(ctx context.Context, now, idleBefore time.Time) (int, error)
	// DeleteStaleWebFailures deletes the failure counters whose last failure
	// is not after before and whose lock, if any, has ended by now, and
	// returns how many.
	DeleteStaleWebFailures(ctx context.Context, now, before time.Time) (int, error)
}

// Store is everything the Service needs.
type Store interface {
	CredentialStore
	FailureStore
	SessionStore
	Sweeper
}
