// Package mdetest is the conformance suite of mde.TokenStore (the
// federated sign-in tokens of Windows enrollment), run by every
// implementation against each of its backends. Refusals come first.
package mdetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/platform/windows/mde"
	"github.com/custos-uem/custos/storetest"
)

// T0 is the suite's clock (whole microseconds, UTC, as stores keep time).
var T0 = time.Date(2026, 3, 1, 9, 30, 0, 123456000, time.UTC)

// Run runs the suite; open must return an empty store of its own for each
// call (the subtests run in parallel).
func Run(t *testing.T, open func(*testing.T) mde.TokenStore) {
	storetest.Run(t, open, []storetest.Case[mde.TokenStore]{
		{Name: "fail/unknown-token-not-found", Fn: testUnknown},
		{Name: "fail/duplicate-hash-conflict", Fn: testDuplicate},
		{Name: "fail/use-unknown-closed", Fn: testUseUnknown},
		{Name: "fail/use-twice-closed", Fn: testUseTwice},
		{Name: "fail/use-expired-closed", Fn: testUseExpired},
		{Name: "ok/create-then-read", Fn: testRoundtrip},
		{Name: "ok/use-marks-used", Fn: testUse},
		{Name: "ok/create-deletes-expired", Fn: testSweep},
		{Name: "ok/concurrent-use-one-wins", Fn: testConcurrentUse},
	})
}

// Token returns a token of name created at T0, valid ten minutes.
func Token(name string) *mde.FederatedToken {
	h := sha256.Sum256([]byte(name))
	return &mde.FederatedToken{Hash: h[:], Login: name + "@example.com", SealedPassword: "sealed:v1:" + name,
		CreatedAt: T0, ExpiresAt: T0.Add(10 * time.Minute)}
}

// MustCreate stores tok.
func MustCreate(t *testing.T, s mde.TokenStore, tok *mde.FederatedToken) {
	t.Helper()
	if err := s.CreateFederatedToken(context.Background(), tok); err != nil {
		t.Fatalf("CreateFederatedToken: %v", err)
	}
}

func wantClosed(t *testing.T, what string, got *mde.FederatedToken, err error) {
	t.Helper()
	if !errors.Is(err, mde.ErrTokenClosed) || got != nil {
		t.Fatalf("%s: %+v, %v; want nil, ErrTokenClosed", what, got, err)
	}
}

func testUnknown(t *testing.T, s mde.TokenStore) {
	_, err := s.FederatedToken(context.Background(), Token("nobody").Hash)
	storetest.WantErr(t, "FederatedToken of an unknown hash", err, errs.ErrNotFound)
}

func testDuplicate(t *testing.T, s mde.TokenStore) {
	MustCreate(t, s, Token("a"))
	again := Token("a")
	again.Login = "other@example.com"
	storetest.WantErr(t, "CreateFederatedToken twice", s.CreateFederatedToken(context.Background(), again), errs.ErrConflict)
	got, err := s.FederatedToken(context.Background(), again.Hash)
	storetest.WantErr(t, "FederatedToken", err, nil)
	storetest.WantEqual(t, "the first token", got, Token("a"))
}

func testUseUnknown(t *testing.T, s mde.TokenStore) {
	got, err := s.UseFederatedToken(context.Background(), Token("nobody").Hash, T0)
	wantClosed(t, "UseFederatedToken of an unknown hash", got, err)
}

func testUseTwice(t *testing.T, s mde.TokenStore) {
	MustCreate(t, s, Token("a"))
	if _, err := s.UseFederatedToken(context.Background(), Token("a").Hash, T0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	got, err := s.UseFederatedToken(context.Background(), Token("a").Hash, T0.Add(2*time.Minute))
	wantClosed(t, "UseFederatedToken twice", got, err)
	stored, _ := s.FederatedToken(context.Background(), Token("a").Hash)
	if stored == nil || stored.UsedAt == nil || !stored.UsedAt.Equal(T0.Add(time.Minute)) {
		t.Fatalf("after the refused second use: %+v, want used at the first", stored)
	}
}

func testUseExpired(t *testing.T, s mde.TokenStore) {
	MustCreate(t, s, Token("a"))
	got, err := s.UseFederatedToken(context.Background(), Token("a").Hash, Token("a").ExpiresAt) // at expiry: expired
	wantClosed(t, "UseFederatedToken at its expiry", got, err)
	stored, _ := s.FederatedToken(context.Background(), Token("a").Hash)
	if stored == nil || stored.UsedAt != nil {
		t.Fatalf("an expired use changed the token: %+v", stored)
	}
}

func testRoundtrip(t *testing.T, s mde.TokenStore) {
	tok := Token("a")
	tok.Login = "O'Brien; DROP TABLE users;--@example.com"
	MustCreate(t, s, tok)
	MustCreate(t, s, Token("b"))
	got, err := s.FederatedToken(context.Background(), tok.Hash)
	storetest.WantErr(t, "FederatedToken", err, nil)
	storetest.WantEqual(t, "stored token", got, tok)
}

func testUse(t *testing.T, s mde.TokenStore) {
	MustCreate(t, s, Token("a"))
	MustCreate(t, s, Token("b"))
	at := T0.Add(9 * time.Minute)
	got, err := s.UseFederatedToken(context.Background(), Token("a").Hash, at)
	storetest.WantErr(t, "UseFederatedToken", err, nil)
	want := Token("a")
	want.UsedAt = &at
	storetest.WantEqual(t, "used token", got, want)
	other, _ := s.FederatedToken(context.Background(), Token("b").Hash)
	storetest.WantEqual(t, "the other token", other, Token("b"))
}

func testSweep(t *testing.T, s mde.TokenStore) {
	MustCreate(t, s, Token("old"))
	later := Token("new")
	later.CreatedAt, later.ExpiresAt = T0.Add(time.Hour), T0.Add(time.Hour+10*time.Minute)
	MustCreate(t, s, later)
	_, err := s.FederatedToken(context.Background(), Token("old").Hash)
	storetest.WantErr(t, "FederatedToken of an expired token after a sweep", err, errs.ErrNotFound)
	got, err := s.FederatedToken(context.Background(), later.Hash)
	storetest.WantErr(t, "FederatedToken", err, nil)
	if !bytes.Equal(got.Hash, later.Hash) {
		t.Fatalf("got %x", got.Hash)
	}
}

func testConcurrentUse(t *testing.T, s mde.TokenStore) {
	MustCreate(t, s, Token("a"))
	const n = 8
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range n {
		wg.Go(func() {
			_, err := s.UseFederatedToken(context.Background(), Token("a").Hash, T0.Add(time.Minute))
			switch {
			case err == nil:
				mu.Lock()
				wins++
				mu.Unlock()
			case !errors.Is(err, mde.ErrTokenClosed):
				t.Errorf("UseFederatedToken: %v", err)
			}
		})
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d concurrent uses of one token succeeded, want 1", wins)
	}
}
