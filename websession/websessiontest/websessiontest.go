// Package websessiontest is the conformance suite of websession.Store, run
// by every implementation against each of its backends. Each contract
// written on the Store's methods is one named case here.
package websessiontest

import (
	"context"
	"crypto/rand"
	"sync"
	"testing"
	"time"

	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/id"
	"github.com/custos-uem/custos/storetest"
	"github.com/custos-uem/custos/websession"
)

// Run runs the suite; open must return an empty store of its own for each
// call (the subtests run in parallel).
func Run(t *testing.T, open func(*testing.T) websession.Store) {
	storetest.Run(t, open, []storetest.Case[websession.Store]{
		{Name: "CredentialUnknownIsNotFound", Fn: testCredentialUnknown},
		{Name: "SetCredentialThenCredentialReturnsItAndReplaces", Fn: testSetCredential},
		{Name: "RealmsAreSeparate", Fn: testRealmsSeparate},
		{Name: "SetCredentialClearsLockout", Fn: testSetCredentialClearsLockout},
		{Name: "RehashReplacesOnlyTheHashItWasComputedFrom", Fn: testRehash},
		{Name: "LockoutOfPrincipalThatNeverFailedIsZero", Fn: testLockoutZero},
		{Name: "RecordFailureLocksAtLimitForGrowingPeriods", Fn: testRecordFailureLocks},
		{Name: "RecordFailureRestartsAfterWindow", Fn: testRecordFailureWindow},
		{Name: "ConcurrentFailuresAreAllCounted", Fn: testConcurrentFailures},
		{Name: "ResetFailuresForgetsFailuresAndLocks", Fn: testResetFailures},
		{Name: "SessionUnknownIsNotFound", Fn: testSessionUnknown},
		{Name: "CreateSessionThenSessionReturnsIt", Fn: testCreateSession},
		{Name: "CreateSessionWithSameHashIsConflict", Fn: testCreateSessionConflict},
		{Name: "TouchSessionOnlyMovesForward", Fn: testTouchSession},
		{Name: "DeleteSessionIsIdempotent", Fn: testDeleteSession},
		{Name: "DeleteSessionsOfOnePrincipalOnly", Fn: testDeleteSessions},
		{Name: "DeleteExpiredSessionsAbsoluteAndIdle", Fn: testDeleteExpired},
		{Name: "DeleteStaleFailuresKeepsRecentAndLocked", Fn: testDeleteStaleFailures},
		{Name: "HostileStringsRoundTrip", Fn: testHostileStrings},
	})
}

// T0 is the suite's clock (whole microseconds, UTC, as stores keep time).
var T0 = time.Date(2031, 3, 4, 5, 6, 7, 8000, time.UTC)

// Policy locks at limit, the nth lock lasting n minutes, with a one-hour
// window.
func Policy(limit int) websession.FailurePolicy {
	return websession.FailurePolicy{Limit: limit, Window: time.Hour,
		LockFor: func(n int) time.Duration { return time.Duration(n) * time.Minute }}
}

// MustSetCredential stores a credential for the principal with hash.
func MustSetCredential(t testing.TB, s websession.Store, realm websession.Realm, principalID, hash string) *websession.Credential {
	t.Helper()
	c := &websession.Credential{Realm: realm, PrincipalID: principalID, Hash: hash, UpdatedAt: T0}
	storetest.WantErr(t, "SetWebCredential", s.SetWebCredential(context.Background(), c), nil)
	return c
}

// MustRecordFailure records a failure at now and returns the state.
func MustRecordFailure(t testing.TB, s websession.Store, realm websession.Realm, principalID string, now time.Time, p websession.FailurePolicy) websession.Lockout {
	t.Helper()
	l, err := s.RecordWebFailure(context.Background(), realm, principalID, now, p)
	storetest.WantErr(t, "RecordWebFailure", err, nil)
	return l
}

// MustLockout returns the principal's state.
func MustLockout(t testing.TB, s websession.Store, realm websession.Realm, principalID string) websession.Lockout {
	t.Helper()
	l, err := s.WebLockout(context.Background(), realm, principalID)
	storetest.WantErr(t, "WebLockout", err, nil)
	return l
}

// NewSession returns a session of the principal created at now with a
// random ID hash, not stored.
func NewSession(realm websession.Realm, principalID string, now time.Time) *websession.Session {
	h := make([]byte, 32)
	rand.Read(h)
	return &websession.Session{IDHash: h, Realm: realm, PrincipalID: principalID,
		CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(12 * time.Hour)}
}

// MustCreateSession stores a new session and returns it.
func MustCreateSession(t testing.TB, s websession.Store, realm websession.Realm, principalID string, now time.Time) *websession.Session {
	t.Helper()
	x := NewSession(realm, principalID, now)
	storetest.WantErr(t, "CreateWebSession", s.CreateWebSession(context.Background(), x), nil)
	return x
}

func wantSession(t testing.TB, s websession.Store, want *websession.Session) {
	t.Helper()
	got, err := s.WebSession(context.Background(), want.IDHash)
	storetest.WantErr(t, "WebSession", err, nil)
	storetest.WantEqual(t, "WebSession", got, want)
}

func wantNoSession(t testing.TB, s websession.Store, x *websession.Session) {
	t.Helper()
	_, err := s.WebSession(context.Background(), x.IDHash)
	storetest.WantErr(t, "WebSession", err, errs.ErrNotFound)
}

func testCredentialUnknown(t *testing.T, s websession.Store) {
	_, err := s.WebCredential(context.Background(), websession.RealmAdmin, id.New())
	storetest.WantErr(t, "WebCredential", err, errs.ErrNotFound)
}

func testSetCredential(t *testing.T, s websession.Store) {
	ctx := context.Background()
	p := id.New()
	c := MustSetCredential(t, s, websession.RealmUser, p, "$argon2id$one")
	got, err := s.WebCredential(ctx, websession.RealmUser, p)
	storetest.WantErr(t, "WebCredential", err, nil)
	storetest.WantEqual(t, "WebCredential", got, c)
	c2 := &websession.Credential{Realm: websession.RealmUser, PrincipalID: p, Hash: "$argon2id$two", UpdatedAt: T0.Add(time.Hour)}
	storetest.WantErr(t, "SetWebCredential again", s.SetWebCredential(ctx, c2), nil)
	got, err = s.WebCredential(ctx, websession.RealmUser, p)
	storetest.WantErr(t, "WebCredential", err, nil)
	storetest.WantEqual(t, "WebCredential after replace", got, c2)
}

func testRealmsSeparate(t *testing.T, s websession.Store) {
	ctx := context.Background()
	p := id.New()
	MustSetCredential(t, s, websession.RealmAdmin, p, "admin-hash")
	_, err := s.WebCredential(ctx, websession.RealmUser, p)
	storetest.WantErr(t, "WebCredential of the other realm", err, errs.ErrNotFound)
	MustRecordFailure(t, s, websession.RealmAdmin, p, T0, Policy(5))
	storetest.WantEqual(t, "user-realm lockout", MustLockout(t, s, websession.RealmUser, p), websession.Lockout{})
	a := MustCreateSession(t, s, websession.RealmAdmin, p, T0)
	u := MustCreateSession(t, s, websession.RealmUser, p, T0)
	n, err := s.DeleteWebSessions(ctx, websession.RealmUser, p)
	storetest.WantErr(t, "DeleteWebSessions", err, nil)
	storetest.WantEqual(t, "deleted", n, 1)
	wantSession(t, s, a)
	wantNoSession(t, s, u)
}

func testSetCredentialClearsLockout(t *testing.T, s websession.Store) {
	p := id.New()
	for range 3 {
		MustRecordFailure(t, s, websession.RealmAdmin, p, T0, Policy(3))
	}
	if !MustLockout(t, s, websession.RealmAdmin, p).Locked(T0) {
		t.Fatal("not locked after 3 failures at limit 3")
	}
	MustSetCredential(t, s, websession.RealmAdmin, p, "new")
	storetest.WantEqual(t, "lockout after SetWebCredential", MustLockout(t, s, websession.RealmAdmin, p), websession.Lockout{})
}

func testRehash(t *testing.T, s websession.Store) {
	ctx := context.Background()
	p := id.New()
	MustSetCredential(t, s, websession.RealmUser, p, "old")
	tests := []struct {
		name      string
		principal string
		old       string
		want      error
	}{
		{"fail/hash-changed-meanwhile", p, "stale", errs.ErrNotFound},
		{"fail/unknown-principal", id.New(), "old", errs.ErrNotFound},
		{"ok/same-hash", p, "old", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := s.RehashWebCredential(ctx, websession.RealmUser, tc.principal, tc.old, "new", T0.Add(time.Minute))
			storetest.WantErr(t, "RehashWebCredential", err, tc.want)
		})
	}
	got, err := s.WebCredential(ctx, websession.RealmUser, p)
	storetest.WantErr(t, "WebCredential", err, nil)
	storetest.WantEqual(t, "after rehash", got, &websession.Credential{Realm: websession.RealmUser, PrincipalID: p, Hash: "new", UpdatedAt: T0.Add(time.Minute)})
}

func testLockoutZero(t *testing.T, s websession.Store) {
	storetest.WantEqual(t, "WebLockout", MustLockout(t, s, websession.RealmAdmin, id.New()), websession.Lockout{})
}

func testRecordFailureLocks(t *testing.T, s websession.Store) {
	p := id.New()
	now := T0
	for i := 1; i <= 2; i++ {
		l := MustRecordFailure(t, s, websession.RealmUser, p, now, Policy(3))
		storetest.WantEqual(t, "failure", l, websession.Lockout{Failures: i, LastFailureAt: now})
	}
	l := MustRecordFailure(t, s, websession.RealmUser, p, now, Policy(3))
	until := now.Add(time.Minute)
	want := websession.Lockout{Failures: 0, Locks: 1, LockedUntil: &until, LastFailureAt: now}
	storetest.WantEqual(t, "third failure locks for LockFor(1)", l, want)
	storetest.WantEqual(t, "WebLockout", MustLockout(t, s, websession.RealmUser, p), want)
	// The second lock lasts LockFor(2).
	now = until
	for range 3 {
		l = MustRecordFailure(t, s, websession.RealmUser, p, now, Policy(3))
	}
	until2 := now.Add(2 * time.Minute)
	storetest.WantEqual(t, "second lock", l, websession.Lockout{Locks: 2, LockedUntil: &until2, LastFailureAt: now})
	// A limit of zero never locks.
	q := id.New()
	for i := 1; i <= 10; i++ {
		l = MustRecordFailure(t, s, websession.RealmUser, q, now, Policy(0))
	}
	storetest.WantEqual(t, "limit 0", l, websession.Lockout{Failures: 10, LastFailureAt: now})
}

func testRecordFailureWindow(t *testing.T, s websession.Store) {
	p := id.New()
	MustRecordFailure(t, s, websession.RealmAdmin, p, T0, Policy(5))
	l := MustRecordFailure(t, s, websession.RealmAdmin, p, T0.Add(time.Hour), Policy(5))
	storetest.WantEqual(t, "within the window", l.Failures, 2)
	later := T0.Add(2*time.Hour + time.Microsecond)
	l = MustRecordFailure(t, s, websession.RealmAdmin, p, later, Policy(5))
	storetest.WantEqual(t, "after the window", l, websession.Lockout{Failures: 1, LastFailureAt: later})
}

func testConcurrentFailures(t *testing.T, s websession.Store) {
	p := id.New()
	const n = 20
	var wg sync.WaitGroup
	errc := make(chan error, n)
	for range n {
		wg.Go(func() {
			_, err := s.RecordWebFailure(context.Background(), websession.RealmUser, p, T0, Policy(0))
			errc <- err
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		storetest.WantErr(t, "RecordWebFailure", err, nil)
	}
	storetest.WantEqual(t, "failures", MustLockout(t, s, websession.RealmUser, p).Failures, n)
}

func testResetFailures(t *testing.T, s websession.Store) {
	ctx := context.Background()
	p := id.New()
	for range 3 {
		MustRecordFailure(t, s, websession.RealmAdmin, p, T0, Policy(3))
	}
	storetest.WantErr(t, "ResetWebFailures", s.ResetWebFailures(ctx, websession.RealmAdmin, p), nil)
	storetest.WantEqual(t, "WebLockout", MustLockout(t, s, websession.RealmAdmin, p), websession.Lockout{})
	storetest.WantErr(t, "ResetWebFailures of nobody", s.ResetWebFailures(ctx, websession.RealmAdmin, id.New()), nil)
}

func testSessionUnknown(t *testing.T, s websession.Store) {
	wantNoSession(t, s, NewSession(websession.RealmAdmin, "a", T0))
}

func testCreateSession(t *testing.T, s websession.Store) {
	x := MustCreateSession(t, s, websession.RealmAdmin, id.New(), T0)
	wantSession(t, s, x)
}

func testCreateSessionConflict(t *testing.T, s websession.Store) {
	x := MustCreateSession(t, s, websession.RealmAdmin, id.New(), T0)
	y := NewSession(websession.RealmUser, id.New(), T0.Add(time.Hour))
	y.IDHash = x.IDHash
	storetest.WantErr(t, "CreateWebSession", s.CreateWebSession(context.Background(), y), errs.ErrConflict)
	wantSession(t, s, x)
}

func testTouchSession(t *testing.T, s websession.Store) {
	ctx := context.Background()
	x := MustCreateSession(t, s, websession.RealmUser, id.New(), T0)
	tests := []struct {
		name string
		hash []byte
		at   time.Time
		want error
		seen time.Time
	}{
		{"fail/unknown-session", NewSession(websession.RealmUser, "x", T0).IDHash, T0.Add(time.Minute), errs.ErrNotFound, T0},
		{"ok/forward", x.IDHash, T0.Add(2 * time.Minute), nil, T0.Add(2 * time.Minute)},
		{"ok/backward-keeps-later", x.IDHash, T0.Add(time.Minute), nil, T0.Add(2 * time.Minute)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			storetest.WantErr(t, "TouchWebSession", s.TouchWebSession(ctx, tc.hash, tc.at), tc.want)
			x.LastSeenAt = tc.seen
			wantSession(t, s, x)
		})
	}
}

func testDeleteSession(t *testing.T, s websession.Store) {
	ctx := context.Background()
	x := MustCreateSession(t, s, websession.RealmAdmin, id.New(), T0)
	y := MustCreateSession(t, s, websession.RealmAdmin, x.PrincipalID, T0)
	storetest.WantErr(t, "DeleteWebSession", s.DeleteWebSession(ctx, x.IDHash), nil)
	wantNoSession(t, s, x)
	wantSession(t, s, y)
	storetest.WantErr(t, "DeleteWebSession again", s.DeleteWebSession(ctx, x.IDHash), nil)
}

func testDeleteSessions(t *testing.T, s websession.Store) {
	ctx := context.Background()
	p, other := id.New(), id.New()
	a := MustCreateSession(t, s, websession.RealmAdmin, p, T0)
	b := MustCreateSession(t, s, websession.RealmAdmin, p, T0)
	c := MustCreateSession(t, s, websession.RealmAdmin, other, T0)
	n, err := s.DeleteWebSessions(ctx, websession.RealmAdmin, p)
	storetest.WantErr(t, "DeleteWebSessions", err, nil)
	storetest.WantEqual(t, "deleted", n, 2)
	wantNoSession(t, s, a)
	wantNoSession(t, s, b)
	wantSession(t, s, c)
	n, err = s.DeleteWebSessions(ctx, websession.RealmAdmin, p)
	storetest.WantErr(t, "DeleteWebSessions again", err, nil)
	storetest.WantEqual(t, "deleted again", n, 0)
}

func testDeleteExpired(t *testing.T, s websession.Store) {
	ctx := context.Background()
	now := T0.Add(24 * time.Hour)
	idleBefore := now.Add(-30 * time.Minute)
	expired := NewSession(websession.RealmAdmin, "a", T0)
	expired.ExpiresAt, expired.LastSeenAt = now, now // absolute end reached, recently active
	idle := NewSession(websession.RealmUser, "b", now.Add(-time.Hour))
	idle.LastSeenAt = idleBefore // idle exactly for the timeout
	live := NewSession(websession.RealmUser, "c", now.Add(-time.Hour))
	live.LastSeenAt = idleBefore.Add(time.Microsecond)
	for _, x := range []*websession.Session{expired, idle, live} {
		storetest.WantErr(t, "CreateWebSession", s.CreateWebSession(ctx, x), nil)
	}
	n, err := s.DeleteExpiredWebSessions(ctx, now, idleBefore)
	storetest.WantErr(t, "DeleteExpiredWebSessions", err, nil)
	storetest.WantEqual(t, "deleted", n, 2)
	wantNoSession(t, s, expired)
	wantNoSession(t, s, idle)
	wantSession(t, s, live)
}

func testDeleteStaleFailures(t *testing.T, s websession.Store) {
	ctx := context.Background()
	stale, recent, locked := id.New(), id.New(), id.New()
	MustRecordFailure(t, s, websession.RealmUser, stale, T0, Policy(5))
	MustRecordFailure(t, s, websession.RealmUser, recent, T0.Add(time.Hour), Policy(5))
	lock := websession.FailurePolicy{Limit: 1, LockFor: func(int) time.Duration { return 48 * time.Hour }}
	MustRecordFailure(t, s, websession.RealmUser, locked, T0, lock)
	now := T0.Add(25 * time.Hour)
	n, err := s.DeleteStaleWebFailures(ctx, now, T0.Add(time.Minute))
	storetest.WantErr(t, "DeleteStaleWebFailures", err, nil)
	storetest.WantEqual(t, "deleted", n, 1)
	storetest.WantEqual(t, "stale", MustLockout(t, s, websession.RealmUser, stale), websession.Lockout{})
	storetest.WantEqual(t, "recent failures", MustLockout(t, s, websession.RealmUser, recent).Failures, 1)
	if !MustLockout(t, s, websession.RealmUser, locked).Locked(now) {
		t.Fatal("a lock in force was swept")
	}
}

func testHostileStrings(t *testing.T, s websession.Store) {
	p := `o'; DROP TABLE web_sessions; -- "<script>` + "é"
	c := MustSetCredential(t, s, websession.RealmUser, p, `$argon2id$'"\`)
	got, err := s.WebCredential(context.Background(), websession.RealmUser, p)
	storetest.WantErr(t, "WebCredential", err, nil)
	storetest.WantEqual(t, "WebCredential", got, c)
	wantSession(t, s, MustCreateSession(t, s, websession.RealmUser, p, T0))
}
