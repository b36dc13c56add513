// Package enrolltest is the conformance suite of enroll.Store (SCEP
// challenges and the certificates issued with them) and of
// activation.UserDeviceStore, run by every implementation against each of
// its backends.
package enrolltest

import (
	"context"
	"crypto/rand"
	"sync"
	"testing"
	"time"

	"github.com/custos-uem/custos/activation"
	"github.com/custos-uem/custos/activation/activationtest"
	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/id"
	"github.com/custos-uem/custos/pki"
	"github.com/custos-uem/custos/platform/apple/enroll"
	"github.com/custos-uem/custos/storetest"
	"github.com/custos-uem/custos/user/usertest"
)

// Stores is what the suite tests, with the stores it needs to create
// users and devices and to watch revocations.
type Stores interface {
	enroll.Store
	activation.UserDeviceStore
	activationtest.Enroller
	device.Store
	device.Remover
	pki.RevocationStore
}

// T0 is the suite's clock (whole microseconds, UTC).
var T0 = activationtest.T0

// TTL is the lifetime of the suite's challenges.
const TTL = time.Hour

// Run runs the suite; open must return empty stores of their own for each
// call (the subtests run in parallel).
func Run(t *testing.T, open func(t *testing.T) Stores) {
	storetest.Run(t, open, []storetest.Case[Stores]{
		{Name: "fail/ChallengeUnknownIsNotFound", Fn: testChallengeUnknown},
		{Name: "fail/CreateChallengeDuplicateIsConflict", Fn: testCreateDuplicate},
		{Name: "fail/RedeemUnknownIsClosed", Fn: testRedeemUnknown},
		{Name: "fail/RedeemTwiceIsClosed", Fn: testRedeemTwice},
		{Name: "fail/RedeemExpiredIsClosed", Fn: testRedeemExpired},
		{Name: "fail/RedeemForRemovedDeviceIsGoneAndChangesNothing", Fn: testRedeemRemoved},
		{Name: "fail/RedeemForReplacedAttemptIsGone", Fn: testRedeemReplaced},
		{Name: "fail/RedeemHardwareOfAnotherUserChangesNothing", Fn: testRedeemHardwareInUse},
		{Name: "ok/CreateChallengeThenChallengeReturnsIt", Fn: testCreateChallenge},
		{Name: "ok/CreateChallengeDeletesExpiredOnes", Fn: testCreateDeletesExpired},
		{Name: "ok/RedeemEnrollsActivatingDevice", Fn: testRedeemActivating},
		{Name: "ok/RedeemKeepsAgentCertificateOfEnrolledDevice", Fn: testRedeemEnrolled},
		{Name: "ok/RedeemConcurrentCallsOneWins", Fn: testRedeemConcurrent},
		{Name: "ok/RemovingDeviceRevokesSCEPCertificate", Fn: testRemoveRevokes},
		{Name: "ok/CreateUserDeviceReplacesStaleAttempt", Fn: testCreateUserDeviceReplaces},
	})
}

func randomHash() []byte {
	b := make([]byte, 32)
	rand.Read(b)
	return b
}

// NewChallenge returns an unused challenge for the device created at now.
func NewChallenge(deviceID string, now time.Time) *enroll.Challenge {
	return &enroll.Challenge{Hash: randomHash(), DeviceID: deviceID, CreatedAt: now, ExpiresAt: now.Add(TTL)}
}

func createChallenge(t testing.TB, s enroll.Store, deviceID string, now time.Time) *enroll.Challenge {
	t.Helper()
	c := NewChallenge(deviceID, now)
	if err := s.CreateChallenge(context.Background(), c); err != nil {
		t.Fatalf("CreateChallenge: %v", err)
	}
	return c
}

// macDevice returns a macOS device of the user in state activating, with
// hardware hw, not stored.
func macDevice(userID, hw string, now time.Time) *device.Device {
	return &device.Device{ID: id.New(), UserID: userID, HardwareID: hw, Platform: string(activation.MacOS),
		OSVersion: "15.1", Model: "Mac", Name: "Mac", ActivationType: string(activation.MDMControls),
		State: device.StateActivating, CreatedAt: now}
}

// CreateMac stores a new activating Mac of a new user and returns it.
func CreateMac(t testing.TB, s Stores, hw string) *device.Device {
	t.Helper()
	u := usertest.CreateUser(t, s, "mac-owner")
	d := macDevice(u.ID, hw, T0)
	if err := s.CreateUserDevice(context.Background(), d); err != nil {
		t.Fatalf("CreateUserDevice: %v", err)
	}
	return d
}

func mustDevice(t testing.TB, s device.Store, id string) *device.Device {
	t.Helper()
	d, err := s.Device(context.Background(), id)
	if err != nil {
		t.Fatalf("Device(%s): %v", id, err)
	}
	return d
}

func wantUnused(t testing.TB, s enroll.Store, hash []byte) {
	t.Helper()
	c, err := s.Challenge(context.Background(), hash)
	if err != nil {
		t.Fatalf("Challenge: %v", err)
	}
	if c.UsedAt != nil || c.CertSerial != "" {
		t.Fatalf("challenge used after a failed redemption: %+v", c)
	}
}

func revoked(t testing.TB, s pki.RevocationStore, serial string) bool {
	t.Helper()
	all, err := s.RevokedCerts(context.Background(), T0)
	if err != nil {
		t.Fatalf("RevokedCerts: %v", err)
	}
	for _, r := range all {
		if r.Serial == serial {
			return true
		}
	}
	return false
}

func testChallengeUnknown(t *testing.T, s Stores) {
	_, err := s.Challenge(context.Background(), randomHash())
	storetest.WantErr(t, "Challenge", err, errs.ErrNotFound)
}

func testCreateDuplicate(t *testing.T, s Stores) {
	d := CreateMac(t, s, "hw-dup")
	c := createChallenge(t, s, d.ID, T0)
	again := NewChallenge(d.ID, T0)
	again.Hash = c.Hash
	storetest.WantErr(t, "CreateChallenge", s.CreateChallenge(context.Background(), again), errs.ErrConflict)
}

func testRedeemUnknown(t *testing.T, s Stores) {
	d := CreateMac(t, s, "hw-unknown")
	err := s.RedeemChallenge(context.Background(), randomHash(), activationtest.NewCert(d.ID, T0), T0)
	storetest.WantErr(t, "RedeemChallenge", err, enroll.ErrChallengeClosed)
	if got := mustDevice(t, s, d.ID); got.State != device.StateActivating {
		t.Fatalf("device state %s after a refused redemption", got.State)
	}
}

func testRedeemTwice(t *testing.T, s Stores) {
	ctx := context.Background()
	d := CreateMac(t, s, "hw-twice")
	c := createChallenge(t, s, d.ID, T0)
	first := activationtest.NewCert(d.ID, T0)
	storetest.WantErr(t, "first RedeemChallenge", s.RedeemChallenge(ctx, c.Hash, first, T0), nil)
	second := activationtest.NewCert(d.ID, T0)
	storetest.WantErr(t, "second RedeemChallenge", s.RedeemChallenge(ctx, c.Hash, second, T0.Add(time.Second)), enroll.ErrChallengeClosed)
	if got := mustDevice(t, s, d.ID); got.CertSerial != first.Serial {
		t.Fatalf("CertSerial %s, want the first certificate's %s", got.CertSerial, first.Serial)
	}
	// The second certificate was never recorded: removing the device
	// revokes only the first.
	storetest.WantErr(t, "RemoveDevice", s.RemoveDevice(ctx, d.ID, T0), nil)
	if !revoked(t, s, first.Serial) || revoked(t, s, second.Serial) {
		t.Fatal("want only the first certificate recorded (and so revoked)")
	}
}

func testRedeemExpired(t *testing.T, s Stores) {
	d := CreateMac(t, s, "hw-expired")
	c := createChallenge(t, s, d.ID, T0)
	err := s.RedeemChallenge(context.Background(), c.Hash, activationtest.NewCert(d.ID, T0), c.ExpiresAt)
	storetest.WantErr(t, "RedeemChallenge at expiry", err, enroll.ErrChallengeClosed)
	wantUnused(t, s, c.Hash)
}

func testRedeemRemoved(t *testing.T, s Stores) {
	ctx := context.Background()
	d, _ := activationtest.Enroll(t, s, usertest.CreateUser(t, s, "ios").ID, "hw-removed", T0)
	c := createChallenge(t, s, d.ID, T0)
	storetest.WantErr(t, "RemoveDevice", s.RemoveDevice(ctx, d.ID, T0), nil)
	cert := activationtest.NewCert(d.ID, T0)
	storetest.WantErr(t, "RedeemChallenge", s.RedeemChallenge(ctx, c.Hash, cert, T0), enroll.ErrDeviceGone)
	wantUnused(t, s, c.Hash)
	if got := mustDevice(t, s, d.ID); got.State != device.StateRemoved {
		t.Fatalf("state %s, want removed", got.State)
	}
}

func testRedeemReplaced(t *testing.T, s Stores) {
	ctx := context.Background()
	d := CreateMac(t, s, activation.ProvisionalHardwarePrefix+"a")
	c := createChallenge(t, s, d.ID, T0)
	// A second "Enroll this Mac" of the same user replaces the first
	// attempt, whose challenge then yields nothing.
	next := macDevice(d.UserID, activation.ProvisionalHardwarePrefix+"x", T0)
	storetest.WantErr(t, "CreateUserDevice", s.CreateUserDevice(ctx, next), nil)
	err := s.RedeemChallenge(ctx, c.Hash, activationtest.NewCert(d.ID, T0), T0)
	storetest.WantErr(t, "RedeemChallenge", err, enroll.ErrDeviceGone)
	wantUnused(t, s, c.Hash)
}

func testRedeemHardwareInUse(t *testing.T, s Stores) {
	ctx := context.Background()
	other := usertest.CreateUser(t, s, "other")
	activationtest.Enroll(t, s, other.ID, "hw-taken", T0)
	d := CreateMac(t, s, "hw-taken")
	c := createChallenge(t, s, d.ID, T0)
	err := s.RedeemChallenge(ctx, c.Hash, activationtest.NewCert(d.ID, T0), T0)
	storetest.WantErr(t, "RedeemChallenge", err, activation.ErrHardwareInUse)
	wantUnused(t, s, c.Hash)
	if got := mustDevice(t, s, d.ID); got.State != device.StateActivating || got.CertSerial != "" {
		t.Fatalf("device changed by a refused redemption: %+v", got)
	}
}

func testCreateChallenge(t *testing.T, s Stores) {
	d := CreateMac(t, s, "hw-create")
	c := createChallenge(t, s, d.ID, T0)
	got, err := s.Challenge(context.Background(), c.Hash)
	storetest.WantErr(t, "Challenge", err, nil)
	storetest.WantEqual(t, "Challenge", got, c)
}

func testCreateDeletesExpired(t *testing.T, s Stores) {
	d := CreateMac(t, s, "hw-sweep")
	old := createChallenge(t, s, d.ID, T0)
	later := old.ExpiresAt.Add(time.Second)
	createChallenge(t, s, d.ID, later)
	_, err := s.Challenge(context.Background(), old.Hash)
	storetest.WantErr(t, "Challenge of an expired challenge", err, errs.ErrNotFound)
}

func testRedeemActivating(t *testing.T, s Stores) {
	d := CreateMac(t, s, "hw-mac")
	c := createChallenge(t, s, d.ID, T0)
	now := T0.Add(time.Minute)
	cert := activationtest.NewCert(d.ID, now)
	storetest.WantErr(t, "RedeemChallenge", s.RedeemChallenge(context.Background(), c.Hash, cert, now), nil)
	got := mustDevice(t, s, d.ID)
	if got.State != device.StateEnrolled || got.CertSerial != cert.Serial || got.EnrolledAt == nil || !got.EnrolledAt.Equal(now) {
		t.Fatalf("device after SCEP: %+v, want enrolled with serial %s at %v", got, cert.Serial, now)
	}
	used, err := s.Challenge(context.Background(), c.Hash)
	storetest.WantErr(t, "Challenge", err, nil)
	if used.UsedAt == nil || !used.UsedAt.Equal(now) || used.CertSerial != cert.Serial {
		t.Fatalf("challenge after redemption: %+v", used)
	}
}

func testRedeemEnrolled(t *testing.T, s Stores) {
	d, agentCert := activationtest.Enroll(t, s, usertest.CreateUser(t, s, "ios").ID, "hw-ios", T0)
	c := createChallenge(t, s, d.ID, T0)
	cert := activationtest.NewCert(d.ID, T0)
	storetest.WantErr(t, "RedeemChallenge", s.RedeemChallenge(context.Background(), c.Hash, cert, T0), nil)
	got := mustDevice(t, s, d.ID)
	if got.State != device.StateEnrolled || got.CertSerial != agentCert.Serial {
		t.Fatalf("device after SCEP: %+v, want enrolled keeping the agent's serial %s", got, agentCert.Serial)
	}
}

func testRedeemConcurrent(t *testing.T, s Stores) {
	d := CreateMac(t, s, "hw-race")
	c := createChallenge(t, s, d.ID, T0)
	const n = 8
	var wg sync.WaitGroup
	errsCh := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errsCh <- s.RedeemChallenge(context.Background(), c.Hash, activationtest.NewCert(d.ID, T0), T0)
		}()
	}
	wg.Wait()
	close(errsCh)
	ok := 0
	for err := range errsCh {
		switch {
		case err == nil:
			ok++
		case !errs.Is(err, errs.Conflict):
			t.Errorf("RedeemChallenge: %v, want success or ErrChallengeClosed", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d of %d concurrent redemptions succeeded, want exactly 1", ok, n)
	}
}

func testRemoveRevokes(t *testing.T, s Stores) {
	ctx := context.Background()
	d := CreateMac(t, s, "hw-revoke")
	c := createChallenge(t, s, d.ID, T0)
	cert := activationtest.NewCert(d.ID, T0)
	storetest.WantErr(t, "RedeemChallenge", s.RedeemChallenge(ctx, c.Hash, cert, T0), nil)
	storetest.WantErr(t, "RemoveDevice", s.RemoveDevice(ctx, d.ID, T0), nil)
	if !revoked(t, s, cert.Serial) {
		t.Fatal("the SCEP certificate is not revoked after the device was removed")
	}
}

func testCreateUserDeviceReplaces(t *testing.T, s Stores) {
	ctx := context.Background()
	first := CreateMac(t, s, "hw-same")
	second := macDevice(first.UserID, "hw-same", T0)
	storetest.WantErr(t, "CreateUserDevice", s.CreateUserDevice(ctx, second), nil)
	_, err := s.Device(ctx, first.ID)
	storetest.WantErr(t, "Device of the stale attempt", err, errs.ErrNotFound)
	got := mustDevice(t, s, second.ID)
	if got.State != device.StateActivating || got.UserID != first.UserID {
		t.Fatalf("new device: %+v", got)
	}
	// Another platform's attempt is not touched.
	ios := macDevice(first.UserID, "hw-same", T0)
	ios.Platform = string(activation.IOS)
	storetest.WantErr(t, "CreateUserDevice", s.CreateUserDevice(ctx, ios), nil)
	mustDevice(t, s, second.ID)
}
