// Package usertest is the conformance suite of the user stores: every
// implementation of user.Store, user.GroupStore and user.MemberStore runs
// Run against each of its backends, so that they all keep the contracts
// written in package user.
package usertest

import (
	"context"
	"fmt"
	"github.com/custos-uem/custos/id"
	"github.com/custos-uem/custos/storetest"
	"reflect"
	"testing"
	"time"

	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/user"
)

// Stores is what the suite tests.
type Stores interface {
	user.Store
	user.GroupStore
	user.MemberStore
	user.NestingStore
}

// Hostile strings that must be stored and returned byte for byte.
const (
	ScriptTag = `<script>alert(1)</script>`
	SQLInject = `Robert'); DROP TABLE users;--`
)

// t0 is the suite's clock: microseconds in UTC, which is what stores keep.
var t0 = time.Date(2031, 3, 4, 5, 6, 7, 8000, time.UTC)

// Run runs the suite; open must return empty stores of their own for each
// call (the subtests run in parallel).
func Run(t *testing.T, open func(t *testing.T) Stores) {
	storetest.Run(t, open, append([]storetest.Case[Stores]{
		{Name: "CreateUserThenUserReturnsIt", Fn: testCreateUser},
		{Name: "CreateUserRefusesDuplicateLogins", Fn: testCreateUserConflict},
		{Name: "UserUnknownIsNotFound", Fn: testUserUnknown},
		{Name: "UserByLoginMatchesEmailOrUsername", Fn: testUserByLogin},
		{Name: "ListUsersPagesInIDOrder", Fn: testListUsers},
		{Name: "ListUsersCapsLimitAtMaxPage", Fn: testListUsersCap},
		{Name: "UpdateUserStoresMutableFields", Fn: testUpdateUser},
		{Name: "DeleteUserRemovesUserAndMemberships", Fn: testDeleteUser},
		{Name: "HostileStringsRoundTrip", Fn: testHostileStrings},
		{Name: "CreateGroupThenGroupReturnsIt", Fn: testCreateGroup},
		{Name: "ListGroupsPagesInIDOrder", Fn: testListGroups},
		{Name: "UpdateGroupStoresFields", Fn: testUpdateGroup},
		{Name: "DeleteGroupRemovesMemberships", Fn: testDeleteGroup},
		{Name: "AddMemberIsIdempotent", Fn: testAddMember},
		{Name: "RemoveMemberRequiresMembership", Fn: testRemoveMember},
		{Name: "MembersAndGroupsOfInIDOrder", Fn: testMembersOrder},
		{Name: "AddSubgroupRefusesCycles", Fn: testAddSubgroup},
		{Name: "RemoveSubgroupRequiresNesting", Fn: testRemoveSubgroup},
		{Name: "UserGroupsAllFollowsNesting", Fn: testUserGroupsAll},
		{Name: "DeleteGroupRemovesNesting", Fn: testDeleteGroupNesting},
		{Name: "ConcurrentSubgroupAddsCannotCloseACycle", Fn: testConcurrentSubgroups},
	}, directoryCases...))
}

// NewUser returns a user with unique logins derived from name, not stored.
func NewUser(name string) *user.User {
	id := id.New()
	return &user.User{
		ID: id, Email: fmt.Sprintf("%s.%s@example.com", name, id[24:]), Username: name + "-" + id[24:],
		DisplayName: name, Source: user.SourceLocal, CreatedAt: t0, UpdatedAt: t0,
	}
}

// CreateUser stores a new user named name and returns it.
func CreateUser(t testing.TB, s user.Store, name string) *user.User {
	t.Helper()
	u := NewUser(name)
	if err := s.CreateUser(context.Background(), u); err != nil {
		t.Fatalf("CreateUser(%s): %v", name, err)
	}
	return u
}

func createGroup(t testing.TB, s user.GroupStore, name string) *user.Group {
	t.Helper()
	g := &user.Group{ID: id.New(), Name: name, Description: "the " + name, CreatedAt: t0, UpdatedAt: t0}
	if err := s.CreateGroup(context.Background(), g); err != nil {
		t.Fatalf("CreateGroup(%s): %v", name, err)
	}
	return g
}

func addMember(t testing.TB, s user.MemberStore, groupID, userID string) {
	t.Helper()
	if err := s.AddMember(context.Background(), groupID, userID); err != nil {
		t.Fatalf("AddMember(%s, %s): %v", groupID, userID, err)
	}
}

func wantUser(t testing.TB, s user.Store, want *user.User) {
	t.Helper()
	got, err := s.User(context.Background(), want.ID)
	if err != nil {
		t.Fatalf("User(%s): %v", want.ID, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("User(%s):\n got %+v\nwant %+v", want.ID, got, want)
	}
}

func ids[T any](items []T, id func(T) string) []string {
	out := make([]string, len(items))
	for i, v := range items {
		out[i] = id(v)
	}
	return out
}

func userID(u *user.User) string   { return u.ID }
func groupID(g *user.Group) string { return g.ID }

func wantIDs(t testing.TB, what string, got, want []string) {
	t.Helper()
	if len(got) != len(want) || len(got) > 0 && !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got %v\nwant %v", what, got, want)
	}
}

func testCreateUser(t *testing.T, s Stores) {
	u := NewUser("ada")
	locked := t0.Add(time.Hour)
	u.FailedActivations, u.ActivationLockedUntil = 2, &locked
	if err := s.CreateUser(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	wantUser(t, s, u)
}

func testCreateUserConflict(t *testing.T, s Stores) {
	ctx := context.Background()
	first := CreateUser(t, s, "first")
	tests := []struct {
		name string
		edit func(u *user.User)
		want error
	}{
		{"fail/duplicate email", func(u *user.User) { u.Email = first.Email }, errs.ErrConflict},
		{"fail/duplicate username", func(u *user.User) { u.Username = first.Username }, errs.ErrConflict},
		{"fail/duplicate id", func(u *user.User) { u.ID = first.ID }, errs.ErrConflict},
		{"ok/distinct logins", func(u *user.User) {}, nil},
		{"ok/no username", func(u *user.User) { u.Username = "" }, nil},
		{"ok/another without username", func(u *user.User) { u.Username = "" }, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u := NewUser("second")
			tc.edit(u)
			storetest.WantErr(t, "CreateUser", s.CreateUser(ctx, u), tc.want)
		})
	}
}

func testUserUnknown(t *testing.T, s Stores) {
	_, err := s.User(context.Background(), id.New())
	storetest.WantErr(t, "User(unknown)", err, errs.ErrNotFound)
}

func testUserByLogin(t *testing.T, s Stores) {
	u := CreateUser(t, s, "grace")
	CreateUser(t, s, "other")
	tests := []struct {
		name, login string
		want        error
	}{
		{"fail/unknown", "nobody@example.com", errs.ErrNotFound},
		{"fail/empty", "", errs.ErrNotFound},
		{"fail/prefix", u.Username[:3], errs.ErrNotFound},
		{"ok/email", u.Email, nil},
		{"ok/username", u.Username, nil},
		{"ok/upper case", "GRACE" + u.Username[len("grace"):], nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.UserByLogin(context.Background(), tc.login)
			storetest.WantErr(t, "UserByLogin("+tc.login+")", err, tc.want)
			if err == nil && got.ID != u.ID {
				t.Fatalf("UserByLogin(%s) = %s, want %s", tc.login, got.ID, u.ID)
			}
		})
	}
}

func testListUsers(t *testing.T, s Stores) {
	ctx := context.Background()
	var all []string
	for i := range 5 {
		all = append(all, CreateUser(t, s, fmt.Sprintf("u%d", i)).ID)
	}
	var got []string
	for p := (user.Page{Limit: 2}); ; {
		page, err := s.ListUsers(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		if len(page) > 2 {
			t.Fatalf("ListUsers(Limit 2) returned %d", len(page))
		}
		got = append(got, ids(page, userID)...)
		p.After = page[len(page)-1].ID
	}
	wantIDs(t, "ListUsers paged", got, all)
	page, err := s.ListUsers(ctx, user.Page{})
	if err != nil {
		t.Fatal(err)
	}
	wantIDs(t, "ListUsers(zero page)", ids(page, userID), all)
}

func testListUsersCap(t *testing.T, s Stores) {
	for i := range user.MaxPage + 1 {
		CreateUser(t, s, fmt.Sprintf("u%d", i))
	}
	page, err := s.ListUsers(context.Background(), user.Page{Limit: user.MaxPage + 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != user.MaxPage {
		t.Fatalf("ListUsers(Limit MaxPage+1) returned %d, want %d", len(page), user.MaxPage)
	}
}

func testUpdateUser(t *testing.T, s Stores) {
	ctx := context.Background()
	other := CreateUser(t, s, "other")
	tests := []struct {
		name string
		edit func(u *user.User)
		want error
	}{
		{"fail/unknown id", func(u *user.User) { u.ID = id.New() }, errs.ErrNotFound},
		{"fail/duplicate email", func(u *user.User) { u.Email = other.Email }, errs.ErrConflict},
		{"fail/duplicate username", func(u *user.User) { u.Username = other.Username }, errs.ErrConflict},
		{"ok/new logins and name", func(u *user.User) {
			u.Email, u.Username, u.DisplayName = "new."+u.Email, "new-"+u.Username, "New Name"
		}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := CreateUser(t, s, "ada")
			u := *before
			tc.edit(&u)
			u.UpdatedAt = t0.Add(time.Minute)
			storetest.WantErr(t, "UpdateUser", s.UpdateUser(ctx, &u), tc.want)
			if tc.want == nil {
				wantUser(t, s, &u)
			} else {
				wantUser(t, s, before)
			}
		})
	}
}

func testDeleteUser(t *testing.T, s Stores) {
	ctx := context.Background()
	u, kept := CreateUser(t, s, "ada"), CreateUser(t, s, "kept")
	g := createGroup(t, s, "staff")
	addMember(t, s, g.ID, u.ID)
	addMember(t, s, g.ID, kept.ID)
	tests := []struct {
		name, id string
		want     error
	}{
		{"fail/unknown", id.New(), errs.ErrNotFound},
		{"ok/existing", u.ID, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			storetest.WantErr(t, "DeleteUser", s.DeleteUser(ctx, tc.id), tc.want)
		})
	}
	storetest.WantErr(t, "DeleteUser(deleted)", s.DeleteUser(ctx, u.ID), errs.ErrNotFound)
	_, err := s.User(ctx, u.ID)
	storetest.WantErr(t, "User(deleted)", err, errs.ErrNotFound)
	members, err := s.Members(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantIDs(t, "Members after DeleteUser", ids(members, userID), []string{kept.ID})
}

func testHostileStrings(t *testing.T, s Stores) {
	ctx := context.Background()
	u := NewUser("x")
	u.DisplayName, u.Username, u.Email = ScriptTag, "robert'); drop table users;--", "{{.}}@example.com"
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	wantUser(t, s, u)
	got, err := s.UserByLogin(ctx, SQLInject)
	if err != nil || got.ID != u.ID {
		t.Fatalf("UserByLogin(%q) = %v, %v", SQLInject, got, err)
	}
	g := &user.Group{ID: id.New(), Name: SQLInject, Description: ScriptTag, CreatedAt: t0, UpdatedAt: t0}
	if err := s.CreateGroup(ctx, g); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Group(ctx, g.ID); err != nil || !reflect.DeepEqual(got, g) {
		t.Fatalf("Group = %+v, %v; want %+v", got, err, g)
	}
	if all, err := s.ListUsers(ctx, user.Page{}); err != nil || len(all) != 1 {
		t.Fatalf("ListUsers after hostile strings = %d users, %v", len(all), err)
	}
}

func testCreateGroup(t *testing.T, s Stores) {
	ctx := context.Background()
	g := createGroup(t, s, "staff")
	got, err := s.Group(ctx, g.ID)
	if err != nil || !reflect.DeepEqual(got, g) {
		t.Fatalf("Group = %+v, %v; want %+v", got, err, g)
	}
	tests := []struct {
		name string
		g    *user.Group
		want error
	}{
		{"fail/duplicate name", &user.Group{ID: id.New(), Name: g.Name, CreatedAt: t0, UpdatedAt: t0}, errs.ErrConflict},
		{"ok/name differing in case", &user.Group{ID: id.New(), Name: "Staff", CreatedAt: t0, UpdatedAt: t0}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			storetest.WantErr(t, "CreateGroup", s.CreateGroup(ctx, tc.g), tc.want)
		})
	}
	_, err = s.Group(ctx, id.New())
	storetest.WantErr(t, "Group(unknown)", err, errs.ErrNotFound)
}

func testListGroups(t *testing.T, s Stores) {
	ctx := context.Background()
	var all []string
	for i := range 3 {
		all = append(all, createGroup(t, s, fmt.Sprintf("g%d", i)).ID)
	}
	first, err := s.ListGroups(ctx, user.Page{Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	wantIDs(t, "ListGroups(Limit 2)", ids(first, groupID), all[:2])
	rest, err := s.ListGroups(ctx, user.Page{After: first[1].ID})
	if err != nil {
		t.Fatal(err)
	}
	wantIDs(t, "ListGroups(After)", ids(rest, groupID), all[2:])
}

func testUpdateGroup(t *testing.T, s Stores) {
	ctx := context.Background()
	other := createGroup(t, s, "other")
	tests := []struct {
		name string
		edit func(g *user.Group)
		want error
	}{
		{"fail/unknown id", func(g *user.Group) { g.ID = id.New() }, errs.ErrNotFound},
		{"fail/duplicate name", func(g *user.Group) { g.Name = other.Name }, errs.ErrConflict},
		{"ok/new name and description", func(g *user.Group) { g.Name, g.Description = g.Name+"-renamed", ScriptTag }, nil},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := createGroup(t, s, fmt.Sprintf("g%d", i))
			g := *before
			tc.edit(&g)
			g.UpdatedAt = t0.Add(time.Minute)
			storetest.WantErr(t, "UpdateGroup", s.UpdateGroup(ctx, &g), tc.want)
			want := before
			if tc.want == nil {
				want = &g
			}
			if got, err := s.Group(ctx, want.ID); err != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("Group = %+v, %v; want %+v", got, err, want)
			}
		})
	}
}

func testDeleteGroup(t *testing.T, s Stores) {
	ctx := context.Background()
	u := CreateUser(t, s, "ada")
	g, kept := createGroup(t, s, "gone"), createGroup(t, s, "kept")
	addMember(t, s, g.ID, u.ID)
	addMember(t, s, kept.ID, u.ID)
	storetest.WantErr(t, "DeleteGroup(unknown)", s.DeleteGroup(ctx, id.New()), errs.ErrNotFound)
	storetest.WantErr(t, "DeleteGroup", s.DeleteGroup(ctx, g.ID), nil)
	_, err := s.Group(ctx, g.ID)
	storetest.WantErr(t, "Group(deleted)", err, errs.ErrNotFound)
	groups, err := s.GroupsOf(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantIDs(t, "GroupsOf after DeleteGroup", ids(groups, groupID), []string{kept.ID})
}

func testAddMember(t *testing.T, s Stores) {
	ctx := context.Background()
	u := CreateUser(t, s, "ada")
	g := createGroup(t, s, "staff")
	tests := []struct {
		name, group, user string
		want              error
	}{
		{"fail/unknown group", id.New(), u.ID, errs.ErrNotFound},
		{"fail/unknown user", g.ID, id.New(), errs.ErrNotFound},
		{"ok/first time", g.ID, u.ID, nil},
		{"ok/second time", g.ID, u.ID, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			storetest.WantErr(t, "AddMember", s.AddMember(ctx, tc.group, tc.user), tc.want)
		})
	}
	members, err := s.Members(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantIDs(t, "Members", ids(members, userID), []string{u.ID})
}

func testRemoveMember(t *testing.T, s Stores) {
	ctx := context.Background()
	u, outsider := CreateUser(t, s, "ada"), CreateUser(t, s, "outsider")
	g := createGroup(t, s, "staff")
	addMember(t, s, g.ID, u.ID)
	tests := []struct {
		name, user string
		want       error
	}{
		{"fail/not a member", outsider.ID, errs.ErrNotFound},
		{"ok/member", u.ID, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			storetest.WantErr(t, "RemoveMember", s.RemoveMember(ctx, g.ID, tc.user), tc.want)
		})
	}
	storetest.WantErr(t, "RemoveMember(removed)", s.RemoveMember(ctx, g.ID, u.ID), errs.ErrNotFound)
	if members, err := s.Members(ctx, g.ID); err != nil || len(members) != 0 {
		t.Fatalf("Members after RemoveMember = %d, %v", len(members), err)
	}
}

func testMembersOrder(t *testing.T, s Stores) {
	ctx := context.Background()
	var users, groups []string
	for i := range 3 {
		users = append(users, CreateUser(t, s, fmt.Sprintf("u%d", i)).ID)
		groups = append(groups, createGroup(t, s, fmt.Sprintf("g%d", i)).ID)
	}
	CreateUser(t, s, "outsider")
	// Added in reverse, listed in ID order.
	for i := 2; i >= 0; i-- {
		addMember(t, s, groups[0], users[i])
		addMember(t, s, groups[i], users[0])
	}
	members, err := s.Members(ctx, groups[0])
	if err != nil {
		t.Fatal(err)
	}
	wantIDs(t, "Members", ids(members, userID), users)
	of, err := s.GroupsOf(ctx, users[0])
	if err != nil {
		t.Fatal(err)
	}
	wantIDs(t, "GroupsOf", ids(of, groupID), groups)
	if none, err := s.Members(ctx, id.New()); err != nil || len(none) != 0 {
		t.Fatalf("Members(unknown group) = %d, %v", len(none), err)
	}
}
