// Package pkitest is the conformance suite of pki.RevocationStore, run by
// every implementation against each of its backends.
package pkitest

import (
	"context"
	"github.com/custos-uem/custos/storetest"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/custos-uem/custos/activation/activationtest"
	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/pki"
	"github.com/custos-uem/custos/user/usertest"
)

// Stores is what the suite tests, with the stores that issue and revoke
// certificates.
type Stores interface {
	activationtest.Enroller
	device.Remover
	pki.RevocationStore
}

// Run runs the suite; open must return empty stores of their own for each
// call (the subtests run in parallel).
func Run(t *testing.T, open func(t *testing.T) Stores) {
	storetest.Run(t, open, []storetest.Case[Stores]{
		{Name: "RevokedCertsEmptyWithoutRevocations", Fn: testNoneRevoked},
		{Name: "RevokedCertsListsRemovedDevicesInSerialOrder", Fn: testRevokedAfterRemoval},
		{Name: "RevokedCertsOmitsExpired", Fn: testExpiredOmitted},
		{Name: "RevokedCertsSurviveUserDeletion", Fn: testSurvivesUserDeletion},
	})
}

var t0 = activationtest.T0

func revoked(t testing.TB, s pki.RevocationStore, now time.Time) []pki.Revoked {
	t.Helper()
	r, err := s.RevokedCerts(context.Background(), now)
	if err != nil {
		t.Fatalf("RevokedCerts: %v", err)
	}
	return r
}

func wantRevoked(t testing.TB, s pki.RevocationStore, now time.Time, want []pki.Revoked) {
	t.Helper()
	if got := revoked(t, s, now); len(got) != len(want) || len(got) > 0 && !reflect.DeepEqual(got, want) {
		t.Fatalf("RevokedCerts(%v):\n got %+v\nwant %+v", now, got, want)
	}
}

func remove(t testing.TB, s device.Remover, id string, now time.Time) {
	t.Helper()
	if err := s.RemoveDevice(context.Background(), id, now); err != nil {
		t.Fatalf("RemoveDevice: %v", err)
	}
}

func testNoneRevoked(t *testing.T, s Stores) {
	wantRevoked(t, s, t0, nil)
	u := usertest.CreateUser(t, s, "ada")
	activationtest.Enroll(t, s, u.ID, "hw-1", t0)
	wantRevoked(t, s, t0, nil)
}

func testRevokedAfterRemoval(t *testing.T, s Stores) {
	u := usertest.CreateUser(t, s, "ada")
	var want []pki.Revoked
	for i, hw := range []string{"hw-1", "hw-2", "hw-3"} {
		d, cert := activationtest.Enroll(t, s, u.ID, hw, t0)
		at := t0.Add(time.Duration(i+1) * time.Minute)
		remove(t, s, d.ID, at)
		want = append(want, pki.Revoked{Serial: cert.Serial, RevokedAt: at})
	}
	activationtest.Enroll(t, s, u.ID, "hw-kept", t0)
	sort.Slice(want, func(i, j int) bool { return want[i].Serial < want[j].Serial })
	wantRevoked(t, s, t0.Add(time.Hour), want)
}

func testExpiredOmitted(t *testing.T, s Stores) {
	u := usertest.CreateUser(t, s, "ada")
	d, cert := activationtest.Enroll(t, s, u.ID, "hw-1", t0)
	remove(t, s, d.ID, t0)
	tests := []struct {
		name string
		now  time.Time
		want []pki.Revoked
	}{
		{"ok/before expiry", cert.NotAfter.Add(-time.Microsecond), []pki.Revoked{{Serial: cert.Serial, RevokedAt: t0}}},
		{"ok/at expiry", cert.NotAfter, nil},
		{"ok/after expiry", cert.NotAfter.Add(time.Hour), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { wantRevoked(t, s, tc.now, tc.want) })
	}
}

func testSurvivesUserDeletion(t *testing.T, s Stores) {
	u := usertest.CreateUser(t, s, "ada")
	d, cert := activationtest.Enroll(t, s, u.ID, "hw-1", t0)
	remove(t, s, d.ID, t0)
	if err := s.DeleteUser(context.Background(), u.ID); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	wantRevoked(t, s, t0, []pki.Revoked{{Serial: cert.Serial, RevokedAt: t0}})
}
