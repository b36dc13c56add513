package directory_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/custos-uem/custos/activation"
	"github.com/custos-uem/custos/directory"
	"github.com/custos-uem/custos/directory/directorytest"
	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/id"
	"github.com/custos-uem/custos/sqlstore"
	"github.com/custos-uem/custos/sqlstore/sqltest"
	"github.com/custos-uem/custos/user"
)

var t0 = time.Date(2031, 3, 4, 5, 6, 7, 0, time.UTC)

type fixture struct {
	dir   *directorytest.Server
	db    *sqlstore.DB
	users *user.Service
	sync  *directory.Syncer
}

// forEachBackend runs fn with a fresh slapd and database per backend.
func forEachBackend(t *testing.T, fn func(t *testing.T, f *fixture)) {
	for _, backend := range sqltest.Backends(t) {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			s := directorytest.StartSlapd(t)
			db := sqltest.Open(t, backend)
			now := func() time.Time { return t0 }
			users := &user.Service{Store: db, Now: now}
			fn(t, &fixture{dir: s, db: db, users: users,
				sync: &directory.Syncer{Dir: MustClient(t, s.Config()), Users: users, Now: now}})
		})
	}
}

// MustSync runs a sync or fails the test.
func MustSync(t testing.TB, s *directory.Syncer) directory.Report {
	t.Helper()
	r, err := s.Sync(context.Background())
	if err != nil {
		t.Fatalf("Sync: %v (report %+v)", err, r)
	}
	return r
}

// MustUser returns the Custos user linked to the directory person uid.
func (f *fixture) MustUser(t testing.TB, uid string) *user.User {
	t.Helper()
	e, err := f.sync.Dir.Authenticate(context.Background(), uid, directorytest.Password)
	if err != nil {
		t.Fatalf("Authenticate(%s): %v", uid, err)
	}
	u, err := f.users.ByExternalID(context.Background(), e.ID)
	if err != nil {
		t.Fatalf("ByExternalID(%s): %v", uid, err)
	}
	return u
}

// MustGroup returns the Custos group named name.
func (f *fixture) MustGroup(t testing.TB, name string) *user.Group {
	t.Helper()
	gs, err := f.users.Groups(context.Background(), user.Page{Limit: user.MaxPage})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range gs {
		if g.Name == name {
			return g
		}
	}
	t.Fatalf("no group %s", name)
	return nil
}

func (f *fixture) groupNames(t testing.TB, userID string) []string {
	t.Helper()
	gs, err := f.users.AllGroupsOf(context.Background(), userID)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, g := range gs {
		names = append(names, g.Name)
	}
	slices.Sort(names)
	return names
}

func wantNames(t testing.TB, what string, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
}

func TestSyncCreatesUsersAndGroups(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		r := MustSync(t, f.sync)
		if r.UsersSeen != 5 || r.Created != 5 || r.Updated != 0 || r.GroupsSeen != 3 || r.GroupsCreated != 3 ||
			r.MembersAdded != 4 || r.SubgroupsAdded != 1 || r.Failed != 0 {
			t.Fatalf("first sync: %+v", r)
		}
		ada := f.MustUser(t, "ada")
		if ada.Source != user.SourceDirectory || ada.Username != "ada" || ada.Email != "ada@example.com" ||
			ada.DisplayName != "Ada Lovelace" || ada.ExternalID == "" || ada.DirectoryMissingSince != nil {
			t.Fatalf("ada = %+v", ada)
		}
		// Nested: staff contains engineering, so ada is in staff through it.
		wantNames(t, "groups of ada", f.groupNames(t, ada.ID), "engineering", "staff")
		wantNames(t, "groups of alan", f.groupNames(t, f.MustUser(t, "alan").ID), "staff")
		wantNames(t, "groups of ken", f.groupNames(t, f.MustUser(t, "ken").ID))
		staff := f.MustGroup(t, "staff")
		subs, err := f.users.Subgroups(context.Background(), staff.ID)
		if err != nil || len(subs) != 1 || subs[0].Name != "engineering" {
			t.Fatalf("subgroups of staff = %v, %v", subs, err)
		}
		if staff.ExternalID == "" {
			t.Fatal("staff is not linked to the directory")
		}
		if last, ok := f.sync.Last(); !ok || last.Created != 5 {
			t.Fatalf("Last = %+v, %v", last, ok)
		}
	})
}

func TestSyncIsIdempotent(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		MustSync(t, f.sync)
		r := MustSync(t, f.sync)
		if r.Changed() || r.Created != 0 || r.Updated != 0 || r.Failed != 0 || r.UsersSeen != 5 {
			t.Fatalf("second sync changed something: %+v", r)
		}
	})
}

func TestSyncRenameUpdatesTheSameUser(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		MustSync(t, f.sync)
		before := f.MustUser(t, "ada")
		// A rename changes the DN; entryUUID stays. The member values are
		// updated as the refint overlay (or AD) would.
		f.dir.Rename(t, directorytest.UserDN("ada"), "uid=ada.king")
		f.dir.Modify(t, directorytest.UserDN("ada.king"), map[string][]string{"mail": {"ada.king@example.com"}, "cn": {"Ada King"}})
		f.dir.Modify(t, directorytest.GroupDN("engineering"), map[string][]string{
			"member": {directorytest.UserDN("ada.king"), directorytest.UserDN("grace")}})
		r := MustSync(t, f.sync)
		if r.Created != 0 || r.Updated != 1 || r.MembersAdded != 0 || r.MembersRemoved != 0 || r.Missing != 0 {
			t.Fatalf("sync after rename: %+v", r)
		}
		after := f.MustUser(t, "ada.king")
		if after.ID != before.ID || after.Username != "ada.king" || after.Email != "ada.king@example.com" || after.DisplayName != "Ada King" {
			t.Fatalf("after rename: %+v, before %+v", after, before)
		}
		wantNames(t, "groups of ada.king", f.groupNames(t, after.ID), "engineering", "staff")
	})
}

func TestSyncMarksRemovedUserMissing(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		MustSync(t, f.sync)
		ken := f.MustUser(t, "ken")
		f.dir.Delete(t, directorytest.UserDN("ken"))
		r := MustSync(t, f.sync)
		if r.Missing != 1 || r.Created != 0 || r.Updated != 0 {
			t.Fatalf("sync after delete: %+v", r)
		}
		got, err := f.users.Get(context.Background(), ken.ID)
		if err != nil {
			t.Fatalf("the missing user was deleted: %v", err)
		}
		if got.DirectoryMissingSince == nil || !got.DirectoryMissingSince.Equal(t0) {
			t.Fatalf("DirectoryMissingSince = %v, want %v", got.DirectoryMissingSince, t0)
		}
		if r := MustSync(t, f.sync); r.Changed() {
			t.Fatalf("third sync changed something: %+v", r)
		}
	})
}

func TestSyncUnmarksUserWhoReturns(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		MustSync(t, f.sync)
		// The filter hides alan for one run, as an edited filter or a
		// disabled-then-enabled account would.
		cfg := f.dir.Config()
		cfg.UserFilter = "(&(objectClass=inetOrgPerson)(!(uid=alan)))"
		hiding := &directory.Syncer{Dir: MustClient(t, cfg), Users: f.users, Now: f.sync.Now}
		if r := MustSync(t, hiding); r.Missing != 1 || r.MembersRemoved != 1 {
			t.Fatalf("sync hiding alan: %+v", r)
		}
		alan := f.MustUser(t, "alan")
		if alan.DirectoryMissingSince == nil {
			t.Fatal("alan not marked missing")
		}
		wantNames(t, "groups of missing alan", f.groupNames(t, alan.ID))
		r := MustSync(t, f.sync)
		if r.Returned != 1 || r.Updated != 1 || r.MembersAdded != 1 || r.Missing != 0 {
			t.Fatalf("sync after alan returns: %+v", r)
		}
		if alan = f.MustUser(t, "alan"); alan.DirectoryMissingSince != nil {
			t.Fatalf("alan still marked missing: %+v", alan)
		}
		wantNames(t, "groups of alan", f.groupNames(t, alan.ID), "staff")
	})
}

func TestSyncMembershipFollowsTheDirectory(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		MustSync(t, f.sync)
		eng := f.MustGroup(t, "engineering")
		// An administrator adds a local user to a directory group: the
		// directory does not know them, and they stay.
		local, err := f.users.Create(ctx, user.NewUser{Email: "contractor@example.org"})
		if err != nil {
			t.Fatal(err)
		}
		if err := f.users.AddMember(ctx, eng.ID, local.ID); err != nil {
			t.Fatal(err)
		}
		// grace leaves engineering; engineering leaves staff.
		f.dir.Modify(t, directorytest.GroupDN("engineering"), map[string][]string{"member": {directorytest.UserDN("ada")}})
		f.dir.Modify(t, directorytest.GroupDN("staff"), map[string][]string{"member": {directorytest.UserDN("alan")}})
		r := MustSync(t, f.sync)
		if r.MembersRemoved != 1 || r.SubgroupsRemoved != 1 || r.MembersAdded != 0 {
			t.Fatalf("sync after membership change: %+v", r)
		}
		wantNames(t, "groups of grace", f.groupNames(t, f.MustUser(t, "grace").ID))
		wantNames(t, "groups of ada", f.groupNames(t, f.MustUser(t, "ada").ID), "engineering")
		wantNames(t, "groups of the local user", f.groupNames(t, local.ID), "engineering")
	})
}

func TestSyncReportsNestingCycle(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		// staff contains engineering; now engineering contains staff too.
		f.dir.Modify(t, directorytest.GroupDN("engineering"), map[string][]string{"member": {
			directorytest.UserDN("ada"), directorytest.UserDN("grace"), directorytest.GroupDN("staff")}})
		r := MustSync(t, f.sync)
		if r.Failed != 1 || len(r.Errors) != 1 || r.Errors[0].Code != user.ErrCycle.Code || r.SubgroupsAdded != 1 {
			t.Fatalf("sync with a cycle: %+v", r)
		}
		// One of the two nestings is applied (which depends on the order
		// the directory returns the groups in), and the rest of the tree.
		nested := 0
		for _, name := range []string{"engineering", "staff"} {
			subs, err := f.users.Subgroups(context.Background(), f.MustGroup(t, name).ID)
			if err != nil {
				t.Fatal(err)
			}
			nested += len(subs)
		}
		if nested != 1 {
			t.Fatalf("%d nestings between engineering and staff, want 1", nested)
		}
		wantNames(t, "groups of linus", f.groupNames(t, f.MustUser(t, "linus").ID), "ops")
		r = MustSync(t, f.sync)
		if r.Changed() || r.Failed != 1 {
			t.Fatalf("second sync with a cycle: %+v", r)
		}
	})
}

func TestSyncReportsBadEntries(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		// A uid that is no Custos username, and a local account holding
		// a directory login: both skipped and reported, the rest applied.
		f.dir.AddPerson(t, directorytest.Person{UID: "bad name!", CN: "Bad", Mail: "bad@example.com"})
		if _, err := f.users.Create(context.Background(), user.NewUser{Email: "linus@example.com", Username: "torvalds"}); err != nil {
			t.Fatal(err)
		}
		r := MustSync(t, f.sync)
		if r.Created != 4 || r.Failed != 2 || len(r.Errors) != 2 {
			t.Fatalf("sync with bad entries: %+v", r)
		}
		codes := map[string]string{}
		for _, e := range r.Errors {
			codes[e.DN] = e.Code
		}
		if codes[directorytest.UserDN("bad name!")] != "invalid_user" || codes[directorytest.UserDN("linus")] != user.ErrEmailTaken.Code {
			t.Fatalf("errors %+v", r.Errors)
		}
	})
}

func TestSyncRefusesAnEmptyDirectory(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		MustSync(t, f.sync)
		cfg := f.dir.Config()
		cfg.BaseDN = "ou=services," + directorytest.BaseDN // no people there
		wrong := &directory.Syncer{Dir: MustClient(t, cfg), Users: f.users, Now: f.sync.Now}
		_, err := wrong.Sync(context.Background())
		wantCode(t, err, directory.ErrEmptyDirectory.Code)
		if u := f.MustUser(t, "ada"); u.DirectoryMissingSince != nil {
			t.Fatal("a refused sync marked users missing")
		}
	})
}

func TestSyncDirectoryDownChangesNothing(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		f.dir.Stop(t)
		r, err := f.sync.Sync(context.Background())
		wantCode(t, err, "directory_unavailable")
		if r.Changed() {
			t.Fatalf("report of a failed sync: %+v", r)
		}
		if err := f.sync.Run(context.Background()); !errs.Is(err, errs.Unavailable) {
			t.Fatalf("Run: %v", err)
		}
		if _, ok := f.sync.Last(); ok {
			t.Fatal("Last reports a failed sync")
		}
	})
}

// Group-based onboarding: a Custos group with an activation profile,
// linked to a directory group, gives the profile to the group's directory
// members.
func TestSyncGroupProfileReachesMembers(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		profile := func(name string, rank int) *activation.Profile {
			p := &activation.Profile{ID: id.New(), Name: name, Rank: rank, MaxDevices: 3,
				Types: map[activation.Platform]activation.Type{activation.Linux: activation.MDMControls}, CreatedAt: t0, UpdatedAt: t0}
			if err := f.db.CreateProfile(ctx, p); err != nil {
				t.Fatal(err)
			}
			return p
		}
		def, eng, ops := profile("default", 100), profile("engineering", 1), profile("ops", 2)
		// Prepared before the first sync: linked by name, profile kept.
		pre, err := f.users.CreateGroup(ctx, user.NewGroup{Name: "engineering", ActivationProfileID: eng.ID})
		if err != nil {
			t.Fatal(err)
		}
		r := MustSync(t, f.sync)
		if r.GroupsCreated != 2 || r.GroupsUpdated != 1 {
			t.Fatalf("sync: %+v", r)
		}
		g := f.MustGroup(t, "engineering")
		if g.ID != pre.ID || g.ExternalID == "" || g.ActivationProfileID != eng.ID {
			t.Fatalf("engineering after sync = %+v, prepared %+v", g, pre)
		}
		// Set after a sync: kept by the next one.
		opsGroup := f.MustGroup(t, "ops")
		if _, err := f.users.UpdateGroup(ctx, opsGroup.ID, user.GroupPatch{ActivationProfileID: &ops.ID}); err != nil {
			t.Fatal(err)
		}
		if r := MustSync(t, f.sync); r.Changed() {
			t.Fatalf("sync after assigning a profile: %+v", r)
		}
		act := &activation.Service{Store: f.db, DefaultProfileID: def.ID}
		for _, tc := range []struct{ uid, profile, source string }{
			{"ada", eng.ID, activation.SourceGroup},
			{"grace", eng.ID, activation.SourceGroup},
			{"linus", ops.ID, activation.SourceGroup},
			{"ken", def.ID, activation.SourceDefault},
		} {
			p, src, err := act.EffectiveProfile(ctx, f.MustUser(t, tc.uid).ID)
			if err != nil || p.ID != tc.profile || src != tc.source {
				t.Fatalf("EffectiveProfile(%s) = %v from %s, %v; want %s from %s", tc.uid, p, src, err, tc.profile, tc.source)
			}
		}
	})
}
