// Package authtest is the conformance suite of auth.AdminStore and
// auth.TokenStore, run by every implementation against each of its
// backends.
package authtest

import (
	"context"
	"crypto/rand"
	"github.com/custos-uem/custos/id"
	"github.com/custos-uem/custos/storetest"
	"testing"
	"time"

	"github.com/custos-uem/custos/auth"
	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/user/usertest"
)

// Stores is what the suite tests.
type Stores interface {
	auth.AdminStore
	auth.TokenStore
}

// Run runs the suite; open must return empty stores of their own for each
// call (the subtests run in parallel).
func Run(t *testing.T, open func(t *testing.T) Stores) {
	storetest.Run(t, open, []storetest.Case[Stores]{
		{Name: "CreateAdminThenAdminReturnsIt", Fn: testCreateAdmin},
		{Name: "ListAdminsInIDOrder", Fn: testListAdmins},
		{Name: "CreateTokenThenTokenByHashReturnsIt", Fn: testCreateToken},
		{Name: "ListTokensIncludesRevokedInIDOrder", Fn: testListTokens},
		{Name: "RevokeTokenOnlyOnce", Fn: testRevokeToken},
		{Name: "TouchTokenSetsLastUsed", Fn: testTouchToken},
	})
}

// t0 is the suite's clock: microseconds in UTC, which is what stores keep.
var t0 = time.Date(2031, 3, 4, 5, 6, 7, 8000, time.UTC)

func newAdmin(username string) *auth.Admin {
	return &auth.Admin{ID: id.New(), Username: username, DisplayName: "Admin " + username,
		Role: auth.RoleSecurityAdmin, CreatedAt: t0}
}

func createAdmin(t testing.TB, s auth.AdminStore, username string) *auth.Admin {
	t.Helper()
	a := newAdmin(username)
	storetest.WantErr(t, "CreateAdmin", s.CreateAdmin(context.Background(), a), nil)
	return a
}

func newToken(adminID string) *auth.Token {
	hash := make([]byte, 32)
	rand.Read(hash)
	return &auth.Token{ID: id.New(), AdminID: adminID, Name: "ci", Hash: hash, CreatedAt: t0}
}

func createToken(t testing.TB, s auth.TokenStore, adminID string) *auth.Token {
	t.Helper()
	tok := newToken(adminID)
	storetest.WantErr(t, "CreateToken", s.CreateToken(context.Background(), tok), nil)
	return tok
}

func wantToken(t testing.TB, s auth.TokenStore, want *auth.Token) {
	t.Helper()
	got, err := s.TokenByHash(context.Background(), want.Hash)
	storetest.WantErr(t, "TokenByHash", err, nil)
	storetest.WantEqual(t, "TokenByHash", got, want)
}

func testCreateAdmin(t *testing.T, s Stores) {
	ctx := context.Background()
	a := createAdmin(t, s, "root")
	got, err := s.Admin(ctx, a.ID)
	storetest.WantErr(t, "Admin", err, nil)
	storetest.WantEqual(t, "Admin", got, a)
	tests := []struct {
		name string
		a    *auth.Admin
		want error
	}{
		{"fail/duplicate username", newAdmin("root"), errs.ErrConflict},
		{"ok/hostile strings", &auth.Admin{ID: id.New(), Username: usertest.SQLInject, DisplayName: usertest.ScriptTag,
			Role: auth.RoleSecurityAdmin, CreatedAt: t0}, nil},
		{"ok/scoped", &auth.Admin{ID: id.New(), Username: "scoped", DisplayName: "Scoped", Role: auth.RoleSecurityAdmin,
			ScopeGroups: []string{id.New(), id.New()}, CreatedAt: t0}, nil},
		// An empty scope is stored as unscoped and read back as nil.
		{"ok/empty scope is none", &auth.Admin{ID: id.New(), Username: "empty", Role: auth.RoleSecurityAdmin,
			ScopeGroups: []string{}, CreatedAt: t0}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			storetest.WantErr(t, "CreateAdmin", s.CreateAdmin(ctx, tc.a), tc.want)
			if tc.want == nil {
				got, err := s.Admin(ctx, tc.a.ID)
				storetest.WantErr(t, "Admin", err, nil)
				want := *tc.a
				if len(want.ScopeGroups) == 0 {
					want.ScopeGroups = nil
				}
				storetest.WantEqual(t, "Admin", got, &want)
			}
		})
	}
	_, err = s.Admin(ctx, id.New())
	storetest.WantErr(t, "Admin(unknown)", err, errs.ErrNotFound)
}

func testListAdmins(t *testing.T, s Stores) {
	a, b := createAdmin(t, s, "zed"), createAdmin(t, s, "amy")
	got, err := s.ListAdmins(context.Background())
	storetest.WantErr(t, "ListAdmins", err, nil)
	storetest.WantEqual(t, "ListAdmins", got, []*auth.Admin{a, b})
}

func testCreateToken(t *testing.T, s Stores) {
	ctx := context.Background()
	a := createAdmin(t, s, "root")
	tok := newToken(a.ID)
	expires, used := t0.Add(24*time.Hour), t0.Add(time.Minute)
	tok.ExpiresAt, tok.LastUsedAt, tok.Name = &expires, &used, usertest.ScriptTag
	storetest.WantErr(t, "CreateToken", s.CreateToken(ctx, tok), nil)
	wantToken(t, s, tok)
	dup := newToken(a.ID)
	dup.Hash = tok.Hash
	tests := []struct {
		name string
		tok  *auth.Token
		want error
	}{
		{"fail/unknown admin", newToken(id.New()), errs.ErrNotFound},
		{"fail/duplicate hash", dup, errs.ErrConflict},
		{"ok/no expiry", newToken(a.ID), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			storetest.WantErr(t, "CreateToken", s.CreateToken(ctx, tc.tok), tc.want)
		})
	}
	_, err := s.TokenByHash(ctx, make([]byte, 32))
	storetest.WantErr(t, "TokenByHash(unknown)", err, errs.ErrNotFound)
}

func testListTokens(t *testing.T, s Stores) {
	ctx := context.Background()
	a, b := createAdmin(t, s, "a"), createAdmin(t, s, "b")
	t1, t2, t3 := createToken(t, s, a.ID), createToken(t, s, b.ID), createToken(t, s, a.ID)
	storetest.WantErr(t, "RevokeToken", s.RevokeToken(ctx, t2.ID, t0), nil)
	t2.RevokedAt = &t0
	got, err := s.ListTokens(ctx)
	storetest.WantErr(t, "ListTokens", err, nil)
	storetest.WantEqual(t, "ListTokens", got, []*auth.Token{t1, t2, t3})
}

func testRevokeToken(t *testing.T, s Stores) {
	ctx := context.Background()
	tok := createToken(t, s, createAdmin(t, s, "root").ID)
	tests := []struct {
		name, id string
		want     error
	}{
		{"fail/unknown", id.New(), errs.ErrNotFound},
		{"ok/unrevoked", tok.ID, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			storetest.WantErr(t, "RevokeToken", s.RevokeToken(ctx, tc.id, t0), tc.want)
		})
	}
	storetest.WantErr(t, "RevokeToken(revoked)", s.RevokeToken(ctx, tok.ID, t0.Add(time.Hour)), errs.ErrNotFound)
	tok.RevokedAt = &t0
	wantToken(t, s, tok)
}

func testTouchToken(t *testing.T, s Stores) {
	ctx := context.Background()
	tok := createToken(t, s, createAdmin(t, s, "root").ID)
	for _, at := range []time.Time{t0.Add(time.Minute), t0.Add(time.Hour)} {
		storetest.WantErr(t, "TouchToken", s.TouchToken(ctx, tok.ID, at), nil)
		tok.LastUsedAt = &at
		wantToken(t, s, tok)
	}
	storetest.WantErr(t, "TouchToken(unknown)", s.TouchToken(ctx, id.New(), t0), nil)
}
