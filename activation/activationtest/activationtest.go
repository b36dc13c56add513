// Package activationtest is the conformance suite of the activation stores
// (activation.ProfileStore, PasswordStore and SessionStore), run by every
// implementation against each of its backends, and the fixtures other
// suites use to put devices through activation.
package activationtest

import (
	"context"
	"errors"
	"github.com/custos-uem/custos/id"
	"github.com/custos-uem/custos/storetest"
	"sync"
	"testing"
	"time"

	"github.com/custos-uem/custos/activation"
	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/pki"
	"github.com/custos-uem/custos/user"
	"github.com/custos-uem/custos/user/usertest"
)

// Stores is what the suite tests, with the user, device and revocation
// stores it needs to set activation up and to watch its effects.
type Stores interface {
	Enroller
	user.GroupStore
	activation.ProfileStore
	device.Store
	device.Remover
	pki.RevocationStore
}

// Run runs the suite; open must return empty stores of their own for each
// call (the subtests run in parallel).
func Run(t *testing.T, open func(t *testing.T) Stores) {
	storetest.Run(t, open, []storetest.Case[Stores]{
		{Name: "CreateProfileThenProfileReturnsIt", Fn: testCreateProfile},
		{Name: "ListProfilesOrdersByRankThenName", Fn: testListProfiles},
		{Name: "UpdateProfileStoresFields", Fn: testUpdateProfile},
		{Name: "DeleteProfileClearsAssignments", Fn: testDeleteProfile},
		{Name: "SetPasswordRevokesOlderUnusedPasswords", Fn: testSetPassword},
		{Name: "RevokePasswordsCountsUnused", Fn: testRevokePasswords},
		{Name: "RecordFailureLocksAtLimit", Fn: testRecordFailure},
		{Name: "OpenSessionStoresDeviceAndSession", Fn: testOpenSession},
		{Name: "OpenSessionSupersedesAndDeletesStaleAttempt", Fn: testOpenSessionSupersedes},
		{Name: "CompleteSessionEnrollsDevice", Fn: testCompleteSession},
		{Name: "CompleteSessionTwiceIsClosed", Fn: testCompleteSessionTwice},
		{Name: "CompleteSessionRefusesClosedSession", Fn: testCompleteSessionClosed},
		{Name: "CompleteSessionRefusesUsedPassword", Fn: testCompleteSessionPasswordUsed},
		{Name: "CompleteSessionRefusesHardwareOfAnotherUser", Fn: testCompleteSessionHardwareInUse},
		{Name: "CompleteSessionReplacesSameUsersOlderDevice", Fn: testCompleteSessionReplaces},
		{Name: "CompleteSessionConcurrentCallsOneWins", Fn: testCompleteSessionConcurrent},
		{Name: "DeleteUserRefusesEnrolledDevice", Fn: testDeleteUserEnrolled},
		{Name: "DeleteUserRemovesActivationHistory", Fn: testDeleteUserHistory},
	})
}

func newProfile(name string, rank int) *activation.Profile {
	return &activation.Profile{ID: id.New(), Name: name, Description: "for " + name, Rank: rank, MaxDevices: 3,
		Types:     map[activation.Platform]activation.Type{activation.Android: activation.WorkSpaceOnly, activation.IOS: activation.UserPrivacy},
		CreatedAt: T0, UpdatedAt: T0}
}

func createProfile(t testing.TB, s activation.ProfileStore, name string, rank int) *activation.Profile {
	t.Helper()
	p := newProfile(name, rank)
	if err := s.CreateProfile(context.Background(), p); err != nil {
		t.Fatalf("CreateProfile(%s): %v", name, err)
	}
	return p
}

func wantProfile(t testing.TB, s activation.ProfileStore, want *activation.Profile) {
	t.Helper()
	got, err := s.Profile(context.Background(), want.ID)
	storetest.WantErr(t, "Profile", err, nil)
	storetest.WantEqual(t, "Profile", got, want)
}

func testCreateProfile(t *testing.T, s Stores) {
	ctx := context.Background()
	p := createProfile(t, s, usertest.ScriptTag, 5)
	wantProfile(t, s, p)
	tests := []struct {
		name string
		p    *activation.Profile
		want error
	}{
		{"fail/duplicate name", newProfile(p.Name, 1), errs.ErrConflict},
		{"ok/no platforms", &activation.Profile{ID: id.New(), Name: usertest.SQLInject, Types: map[activation.Platform]activation.Type{},
			CreatedAt: T0, UpdatedAt: T0}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			storetest.WantErr(t, "CreateProfile", s.CreateProfile(ctx, tc.p), tc.want)
			if tc.want == nil {
				wantProfile(t, s, tc.p)
			}
		})
	}
	_, err := s.Profile(ctx, id.New())
	storetest.WantErr(t, "Profile(unknown)", err, errs.ErrNotFound)
}

func testListProfiles(t *testing.T, s Stores) {
	c := createProfile(t, s, "c", 2)
	b := createProfile(t, s, "b", 1)
	a := createProfile(t, s, "a", 2)
	got, err := s.ListProfiles(context.Background())
	storetest.WantErr(t, "ListProfiles", err, nil)
	storetest.WantEqual(t, "ListProfiles", got, []*activation.Profile{b, a, c})
}

func testUpdateProfile(t *testing.T, s Stores) {
	ctx := context.Background()
	other := createProfile(t, s, "other", 1)
	tests := []struct {
		name string
		edit func(p *activation.Profile)
		want error
	}{
		{"fail/unknown id", func(p *activation.Profile) { p.ID = id.New() }, errs.ErrNotFound},
		{"fail/duplicate name", func(p *activation.Profile) { p.Name = other.Name }, errs.ErrConflict},
		{"ok/every field", func(p *activation.Profile) {
			p.Name, p.Description, p.Rank, p.MaxDevices = p.Name+"-renamed", "changed", 9, 1
			p.Types = map[activation.Platform]activation.Type{activation.Windows: activation.MDMControls}
		}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := createProfile(t, s, tc.name, 3)
			p := *before
			tc.edit(&p)
			p.UpdatedAt = T0.Add(time.Minute)
			storetest.WantErr(t, "UpdateProfile", s.UpdateProfile(ctx, &p), tc.want)
			if tc.want == nil {
				wantProfile(t, s, &p)
			} else {
				wantProfile(t, s, before)
			}
		})
	}
}

func testDeleteProfile(t *testing.T, s Stores) {
	ctx := context.Background()
	p, kept := createProfile(t, s, "gone", 1), createProfile(t, s, "kept", 2)
	u := usertest.NewUser("ada")
	u.ActivationProfileID = p.ID
	storetest.WantErr(t, "CreateUser with profile", s.CreateUser(ctx, u), nil)
	g := &user.Group{ID: id.New(), Name: "staff", ActivationProfileID: p.ID, CreatedAt: T0, UpdatedAt: T0}
	storetest.WantErr(t, "CreateGroup with profile", s.CreateGroup(ctx, g), nil)
	g2 := &user.Group{ID: id.New(), Name: "kept", ActivationProfileID: kept.ID, CreatedAt: T0, UpdatedAt: T0}
	storetest.WantErr(t, "CreateGroup with profile", s.CreateGroup(ctx, g2), nil)

	storetest.WantErr(t, "DeleteProfile(unknown)", s.DeleteProfile(ctx, id.New()), errs.ErrNotFound)
	storetest.WantErr(t, "DeleteProfile", s.DeleteProfile(ctx, p.ID), nil)
	_, err := s.Profile(ctx, p.ID)
	storetest.WantErr(t, "Profile(deleted)", err, errs.ErrNotFound)
	gotU, err := s.User(ctx, u.ID)
	storetest.WantErr(t, "User", err, nil)
	gotG, err := s.Group(ctx, g.ID)
	storetest.WantErr(t, "Group", err, nil)
	gotG2, err := s.Group(ctx, g2.ID)
	storetest.WantErr(t, "Group", err, nil)
	if gotU.ActivationProfileID != "" || gotG.ActivationProfileID != "" || gotG2.ActivationProfileID != kept.ID {
		t.Fatalf("assignments after DeleteProfile: user %q, group %q, other group %q; want \"\", \"\", %q",
			gotU.ActivationProfileID, gotG.ActivationProfileID, gotG2.ActivationProfileID, kept.ID)
	}
}

func passwords(t testing.TB, s activation.PasswordStore, userID string) []*activation.Password {
	t.Helper()
	ps, err := s.Passwords(context.Background(), userID)
	storetest.WantErr(t, "Passwords", err, nil)
	return ps
}

func testSetPassword(t *testing.T, s Stores) {
	u := usertest.CreateUser(t, s, "ada")
	_, cert := Enroll(t, s, u.ID, "hw-1", T0) // uses (and so keeps) a first password
	used := passwords(t, s, u.ID)[0]
	unused := SetPassword(t, s, u.ID, T0.Add(time.Minute))
	now := T0.Add(2 * time.Minute)
	newest := SetPassword(t, s, u.ID, now)

	unused.RevokedAt = &now
	storetest.WantEqual(t, "Passwords newest first", passwords(t, s, u.ID), []*activation.Password{newest, unused, used})
	if used.UsedAt == nil || used.RevokedAt != nil || used.DeviceID != cert.DeviceID {
		t.Fatalf("used password %+v: want used by %s and not revoked", used, cert.DeviceID)
	}
	err := s.SetPassword(context.Background(), NewPassword(id.New(), now), now)
	storetest.WantErr(t, "SetPassword(unknown user)", err, errs.ErrNotFound)
}

func testRevokePasswords(t *testing.T, s Stores) {
	ctx := context.Background()
	u := usertest.CreateUser(t, s, "ada")
	Enroll(t, s, u.ID, "hw-1", T0)
	p := SetPassword(t, s, u.ID, T0)
	now := T0.Add(time.Hour)
	tests := []struct {
		name string
		want int
	}{
		{"ok/unused password", 1},
		{"ok/nothing left", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, err := s.RevokePasswords(ctx, u.ID, now)
			storetest.WantErr(t, "RevokePasswords", err, nil)
			if n != tc.want {
				t.Fatalf("RevokePasswords = %d, want %d", n, tc.want)
			}
		})
	}
	p.RevokedAt = &now
	storetest.WantEqual(t, "revoked password", passwords(t, s, u.ID)[0], p)
}

func testRecordFailure(t *testing.T, s Stores) {
	ctx := context.Background()
	u := usertest.CreateUser(t, s, "ada")
	lock := T0.Add(15 * time.Minute)
	_, err := s.RecordFailure(ctx, id.New(), 3, lock)
	storetest.WantErr(t, "RecordFailure(unknown user)", err, errs.ErrNotFound)
	for i, want := range []int{1, 2, 3, 1} {
		n, err := s.RecordFailure(ctx, u.ID, 3, lock)
		storetest.WantErr(t, "RecordFailure", err, nil)
		if n != want {
			t.Fatalf("RecordFailure #%d = %d, want %d", i+1, n, want)
		}
	}
	got, err := s.User(ctx, u.ID)
	storetest.WantErr(t, "User", err, nil)
	if got.FailedActivations != 1 || got.ActivationLockedUntil == nil || !got.ActivationLockedUntil.Equal(lock) {
		t.Fatalf("after 4 failures with limit 3: counter %d, locked until %v; want 1, %v",
			got.FailedActivations, got.ActivationLockedUntil, lock)
	}

	// Opening a session clears both.
	Start(t, s, u.ID, "hw-1", T0)
	got, err = s.User(ctx, u.ID)
	storetest.WantErr(t, "User", err, nil)
	if got.FailedActivations != 0 || got.ActivationLockedUntil != nil {
		t.Fatalf("after OpenSession: counter %d, locked until %v; want 0, nil", got.FailedActivations, got.ActivationLockedUntil)
	}
}

func wantSession(t testing.TB, s activation.SessionStore, sess *activation.Session, state activation.SessionState) {
	t.Helper()
	got, err := s.SessionByToken(context.Background(), sess.TokenHash)
	storetest.WantErr(t, "SessionByToken", err, nil)
	want := *sess
	want.State = state
	storetest.WantEqual(t, "SessionByToken", got, &want)
}

func wantDevice(t testing.TB, s device.Store, want *device.Device) {
	t.Helper()
	got, err := s.Device(context.Background(), want.ID)
	storetest.WantErr(t, "Device", err, nil)
	storetest.WantEqual(t, "Device", got, want)
}

func testOpenSession(t *testing.T, s Stores) {
	ctx := context.Background()
	u := usertest.CreateUser(t, s, "ada")
	p := SetPassword(t, s, u.ID, T0)
	sess, d := NewAttempt(u.ID, p.ID, usertest.SQLInject, T0)
	d.Name, d.Model, d.ProfileID = usertest.ScriptTag, usertest.SQLInject, id.New()
	storetest.WantErr(t, "OpenSession", s.OpenSession(ctx, sess, d), nil)
	wantSession(t, s, sess, activation.SessionOpen)
	wantDevice(t, s, d)
	_, err := s.SessionByToken(ctx, random(32))
	storetest.WantErr(t, "SessionByToken(unknown)", err, errs.ErrNotFound)

	other, _ := NewAttempt(id.New(), p.ID, "hw-2", T0)
	err = s.OpenSession(ctx, other, &device.Device{ID: other.DeviceID, UserID: other.UserID, HardwareID: "hw-2", CreatedAt: T0})
	storetest.WantErr(t, "OpenSession(unknown user)", err, errs.ErrNotFound)
}

func testOpenSessionSupersedes(t *testing.T, s Stores) {
	ctx := context.Background()
	u, v := usertest.CreateUser(t, s, "ada"), usertest.CreateUser(t, s, "bob")
	p := SetPassword(t, s, u.ID, T0)
	s1, d1 := OpenAttempt(t, s, u.ID, p.ID, "hw-a", T0)
	s2, d2 := OpenAttempt(t, s, u.ID, p.ID, "hw-b", T0) // same password: supersedes s1
	vs, vd := Start(t, s, v.ID, "hw-b", T0)             // another user's attempt on hw-b
	q := SetPassword(t, s, u.ID, T0)
	s3, d3 := OpenAttempt(t, s, u.ID, q.ID, "hw-b", T0) // same user and hardware: deletes d2

	wantSession(t, s, s1, activation.SessionSuperseded)
	wantDevice(t, s, d1) // other hardware: kept
	wantSession(t, s, s2, activation.SessionSuperseded)
	_, err := s.Device(ctx, d2.ID)
	storetest.WantErr(t, "Device(stale attempt)", err, errs.ErrNotFound)
	wantSession(t, s, s3, activation.SessionOpen)
	wantDevice(t, s, d3)
	wantSession(t, s, vs, activation.SessionOpen)
	wantDevice(t, s, vd)
}

func testCompleteSession(t *testing.T, s Stores) {
	ctx := context.Background()
	u := usertest.CreateUser(t, s, "ada")
	sess, d := Start(t, s, u.ID, "hw-1", T0)
	now := T0.Add(time.Minute)
	cert := NewCert(d.ID, now)
	storetest.WantErr(t, "CompleteSession", s.CompleteSession(ctx, sess.ID, cert, now), nil)

	wantSession(t, s, sess, activation.SessionConsumed)
	d.State, d.CertSerial, d.EnrolledAt = device.StateEnrolled, cert.Serial, &now
	wantDevice(t, s, d)
	p := passwords(t, s, u.ID)[0]
	if p.UsedAt == nil || !p.UsedAt.Equal(now) || p.DeviceID != d.ID {
		t.Fatalf("password after CompleteSession: used at %v by %q; want %v by %s", p.UsedAt, p.DeviceID, now, d.ID)
	}
	revoked, err := s.RevokedCerts(ctx, now)
	storetest.WantErr(t, "RevokedCerts", err, nil)
	if len(revoked) != 0 {
		t.Fatalf("RevokedCerts after a first enrollment = %v, want none", revoked)
	}
}

// snapshot is everything CompleteSession may change, read back.
type snapshot struct {
	Session   *activation.Session
	Devices   []*device.Device
	Passwords []*activation.Password
	Revoked   []pki.Revoked
}

func snap(t testing.TB, s Stores, sess *activation.Session) snapshot {
	t.Helper()
	ctx := context.Background()
	var sn snapshot
	var err error
	sn.Session, err = s.SessionByToken(ctx, sess.TokenHash)
	storetest.WantErr(t, "SessionByToken", err, nil)
	sn.Devices, err = s.ListDevices(ctx, device.Query{})
	storetest.WantErr(t, "ListDevices", err, nil)
	sn.Passwords = passwords(t, s, sess.UserID)
	sn.Revoked, err = s.RevokedCerts(ctx, T0)
	storetest.WantErr(t, "RevokedCerts", err, nil)
	return sn
}

// wantRefused checks that CompleteSession fails with want and changes
// nothing.
func wantRefused(t testing.TB, s Stores, sess *activation.Session, now time.Time, want error) {
	t.Helper()
	before := snap(t, s, sess)
	err := s.CompleteSession(context.Background(), sess.ID, NewCert(sess.DeviceID, now), now)
	storetest.WantErr(t, "CompleteSession", err, want)
	storetest.WantEqual(t, "stores after the refused CompleteSession", snap(t, s, sess), before)
}

func testCompleteSessionTwice(t *testing.T, s Stores) {
	u := usertest.CreateUser(t, s, "ada")
	sess, d := Start(t, s, u.ID, "hw-1", T0)
	storetest.WantErr(t, "first CompleteSession", s.CompleteSession(context.Background(), sess.ID, NewCert(d.ID, T0), T0), nil)
	wantRefused(t, s, sess, T0, activation.ErrSessionClosed)
}

func testCompleteSessionClosed(t *testing.T, s Stores) {
	ctx := context.Background()
	u := usertest.CreateUser(t, s, "ada")
	tests := []struct {
		name  string
		setup func(t *testing.T) (*activation.Session, time.Time)
	}{
		{"fail/expired", func(t *testing.T) (*activation.Session, time.Time) {
			sess, _ := Start(t, s, u.ID, "hw-expired", T0)
			return sess, sess.ExpiresAt
		}},
		{"fail/superseded", func(t *testing.T) (*activation.Session, time.Time) {
			sess, _ := Start(t, s, u.ID, "hw-superseded", T0)
			OpenAttempt(t, s, u.ID, sess.PasswordID, "hw-other", T0)
			return sess, T0
		}},
		{"fail/device removed", func(t *testing.T) (*activation.Session, time.Time) {
			sess, d := Start(t, s, u.ID, "hw-removed", T0)
			storetest.WantErr(t, "RemoveDevice", s.RemoveDevice(ctx, d.ID, T0), nil)
			return sess, T0
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sess, now := tc.setup(t)
			wantRefused(t, s, sess, now, activation.ErrSessionClosed)
		})
	}
	err := s.CompleteSession(ctx, id.New(), NewCert(id.New(), T0), T0)
	storetest.WantErr(t, "CompleteSession(unknown session)", err, activation.ErrSessionClosed)
}

func testCompleteSessionPasswordUsed(t *testing.T, s Stores) {
	ctx := context.Background()
	u := usertest.CreateUser(t, s, "ada")
	tests := []struct {
		name  string
		setup func(t *testing.T) *activation.Session
	}{
		{"fail/used by another device", func(t *testing.T) *activation.Session {
			p := NewPassword(u.ID, T0)
			p.UsedAt, p.DeviceID = &T0, id.New()
			storetest.WantErr(t, "SetPassword", s.SetPassword(ctx, p, T0), nil)
			sess, _ := OpenAttempt(t, s, u.ID, p.ID, "hw-used", T0)
			return sess
		}},
		{"fail/revoked", func(t *testing.T) *activation.Session {
			sess, _ := Start(t, s, u.ID, "hw-revoked", T0)
			_, err := s.RevokePasswords(ctx, u.ID, T0)
			storetest.WantErr(t, "RevokePasswords", err, nil)
			return sess
		}},
		{"fail/replaced by a newer password", func(t *testing.T) *activation.Session {
			sess, _ := Start(t, s, u.ID, "hw-replaced", T0)
			SetPassword(t, s, u.ID, T0)
			return sess
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantRefused(t, s, tc.setup(t), T0, activation.ErrPasswordUsed)
		})
	}
}

func testCompleteSessionHardwareInUse(t *testing.T, s Stores) {
	u, v := usertest.CreateUser(t, s, "ada"), usertest.CreateUser(t, s, "bob")
	tests := []struct {
		name  string
		state device.State
	}{
		{"fail/enrolled for another user", device.StateEnrolled},
		{"fail/active for another user", device.StateActive},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hw := "hw-" + string(rune('a'+i))
			d, _ := Enroll(t, s, v.ID, hw, T0)
			if tc.state == device.StateActive {
				storetest.WantErr(t, "Acknowledge", s.Acknowledge(context.Background(), d.ID, "1", T0), nil)
			}
			sess, _ := Start(t, s, u.ID, hw, T0)
			wantRefused(t, s, sess, T0, activation.ErrHardwareInUse)
		})
	}
}

func testCompleteSessionReplaces(t *testing.T, s Stores) {
	ctx := context.Background()
	u := usertest.CreateUser(t, s, "ada")
	old, oldCert := Enroll(t, s, u.ID, "hw-1", T0)
	storetest.WantErr(t, "Acknowledge", s.Acknowledge(ctx, old.ID, "1", T0), nil)
	other, _ := Enroll(t, s, u.ID, "hw-2", T0)
	now := T0.Add(time.Hour)
	sess, d := Start(t, s, u.ID, "hw-1", now)
	cert := NewCert(d.ID, now)
	storetest.WantErr(t, "CompleteSession", s.CompleteSession(ctx, sess.ID, cert, now), nil)

	got, err := s.Device(ctx, old.ID)
	storetest.WantErr(t, "Device(old)", err, nil)
	if got.State != device.StateRemoved || got.RemovedAt == nil || !got.RemovedAt.Equal(now) {
		t.Fatalf("replaced device: state %s, removed at %v; want removed at %v", got.State, got.RemovedAt, now)
	}
	revoked, err := s.RevokedCerts(ctx, now)
	storetest.WantErr(t, "RevokedCerts", err, nil)
	storetest.WantEqual(t, "RevokedCerts", revoked, []pki.Revoked{{Serial: oldCert.Serial, RevokedAt: now}})
	d.State, d.CertSerial, d.EnrolledAt = device.StateEnrolled, cert.Serial, &now
	wantDevice(t, s, d)
	wantDevice(t, s, other)
}

func testCompleteSessionConcurrent(t *testing.T, s Stores) {
	const callers = 8
	u := usertest.CreateUser(t, s, "ada")
	sess, d := Start(t, s, u.ID, "hw-1", T0)
	var wg sync.WaitGroup
	errc := make(chan error, callers)
	for range callers {
		wg.Go(func() {
			errc <- s.CompleteSession(context.Background(), sess.ID, NewCert(d.ID, T0), T0)
		})
	}
	wg.Wait()
	close(errc)
	won := 0
	for err := range errc {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, activation.ErrSessionClosed):
			t.Errorf("concurrent CompleteSession: %v, want nil or ErrSessionClosed", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d of %d concurrent CompleteSession calls succeeded, want exactly 1", won, callers)
	}
}

func testDeleteUserEnrolled(t *testing.T, s Stores) {
	ctx := context.Background()
	u := usertest.CreateUser(t, s, "ada")
	d, _ := Enroll(t, s, u.ID, "hw-1", T0)
	storetest.WantErr(t, "DeleteUser(with enrolled device)", s.DeleteUser(ctx, u.ID), errs.ErrConflict)
	wantDevice(t, s, d)
	storetest.WantErr(t, "RemoveDevice", s.RemoveDevice(ctx, d.ID, T0), nil)
	storetest.WantErr(t, "DeleteUser(devices removed)", s.DeleteUser(ctx, u.ID), nil)
}

func testDeleteUserHistory(t *testing.T, s Stores) {
	ctx := context.Background()
	u, kept := usertest.CreateUser(t, s, "ada"), usertest.CreateUser(t, s, "kept")
	d, cert := Enroll(t, s, u.ID, "hw-1", T0)
	sess, _ := Start(t, s, u.ID, "hw-2", T0) // an open attempt
	keptDevice, _ := Enroll(t, s, kept.ID, "hw-3", T0)
	storetest.WantErr(t, "RemoveDevice", s.RemoveDevice(ctx, d.ID, T0), nil)
	storetest.WantErr(t, "DeleteUser", s.DeleteUser(ctx, u.ID), nil)

	_, err := s.SessionByToken(ctx, sess.TokenHash)
	storetest.WantErr(t, "SessionByToken(deleted user)", err, errs.ErrNotFound)
	if ps := passwords(t, s, u.ID); len(ps) != 0 {
		t.Fatalf("Passwords of deleted user = %d, want none", len(ps))
	}
	devices, err := s.ListDevices(ctx, device.Query{})
	storetest.WantErr(t, "ListDevices", err, nil)
	storetest.WantEqual(t, "devices after DeleteUser", devices, []*device.Device{keptDevice})
	revoked, err := s.RevokedCerts(ctx, T0)
	storetest.WantErr(t, "RevokedCerts", err, nil)
	storetest.WantEqual(t, "RevokedCerts after DeleteUser", revoked, []pki.Revoked{{Serial: cert.Serial, RevokedAt: T0}})
}
