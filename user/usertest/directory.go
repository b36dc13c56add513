package usertest

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/id"
	"github.com/custos-uem/custos/storetest"
	"github.com/custos-uem/custos/user"
)

// directoryCases are the cases of the directory link (ExternalID) and the
// missing mark, appended to Run's list.
var directoryCases = []storetest.Case[Stores]{
	{Name: "UserByExternalIDFindsTheLinkedUser", Fn: testUserByExternalID},
	{Name: "ExternalIDIsUniqueWhenSet", Fn: testUserExternalIDUnique},
	{Name: "UpdateUserStoresLinkAndMissingMark", Fn: testUpdateUserDirectory},
	{Name: "GroupByExternalIDFindsTheLinkedGroup", Fn: testGroupByExternalID},
	{Name: "GroupExternalIDIsUniqueWhenSet", Fn: testGroupExternalIDUnique},
}

// NewDirectoryUser returns a directory user linked to a fresh external ID,
// not stored.
func NewDirectoryUser(name string) *user.User {
	u := NewUser(name)
	u.Source, u.ExternalID = user.SourceDirectory, id.New()
	return u
}

func testUserByExternalID(t *testing.T, s Stores) {
	ctx := context.Background()
	u := NewDirectoryUser("ada")
	missing := t0.Add(-time.Hour)
	u.DirectoryMissingSince = &missing
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	local := CreateUser(t, s, "local")
	tests := []struct {
		name, ext string
		want      error
	}{
		{"fail/unknown", id.New(), errs.ErrNotFound},
		{"fail/empty matches no local account", "", errs.ErrNotFound},
		{"fail/the user's own ID", u.ID, errs.ErrNotFound},
		{"fail/other case", strings.ToUpper(u.ExternalID), errs.ErrNotFound},
		{"ok/linked", u.ExternalID, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.UserByExternalID(ctx, tc.ext)
			storetest.WantErr(t, "UserByExternalID("+tc.ext+")", err, tc.want)
			if err == nil && !reflect.DeepEqual(got, u) {
				t.Fatalf("UserByExternalID:\n got %+v\nwant %+v", got, u)
			}
		})
	}
	wantUser(t, s, local)
	if local.ExternalID != "" || local.DirectoryMissingSince != nil {
		t.Fatalf("local user has a directory link: %+v", local)
	}
}

func testUserExternalIDUnique(t *testing.T, s Stores) {
	ctx := context.Background()
	first := NewDirectoryUser("first")
	if err := s.CreateUser(ctx, first); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		edit func(u *user.User)
		want error
	}{
		{"fail/duplicate external ID", func(u *user.User) { u.ExternalID = first.ExternalID }, errs.ErrConflict},
		{"ok/another external ID", func(u *user.User) {}, nil},
		{"ok/local without external ID", func(u *user.User) { u.ExternalID, u.Source = "", user.SourceLocal }, nil},
		{"ok/second local without external ID", func(u *user.User) { u.ExternalID, u.Source = "", user.SourceLocal }, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u := NewDirectoryUser("second")
			tc.edit(u)
			storetest.WantErr(t, "CreateUser", s.CreateUser(ctx, u), tc.want)
		})
	}
}

func testUpdateUserDirectory(t *testing.T, s Stores) {
	ctx := context.Background()
	other := NewDirectoryUser("other")
	if err := s.CreateUser(ctx, other); err != nil {
		t.Fatal(err)
	}
	missing := t0.Add(time.Hour)
	tests := []struct {
		name string
		edit func(u *user.User)
		want error
	}{
		{"fail/external ID of another user", func(u *user.User) { u.ExternalID = other.ExternalID }, errs.ErrConflict},
		{"ok/link a local user", func(u *user.User) { u.ExternalID = id.New() }, nil},
		{"ok/mark missing", func(u *user.User) { u.ExternalID, u.DirectoryMissingSince = id.New(), &missing }, nil},
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
	// Clearing the mark stores NULL again.
	u := *other
	u.DirectoryMissingSince = &missing
	storetest.WantErr(t, "UpdateUser(mark)", s.UpdateUser(ctx, &u), nil)
	u.DirectoryMissingSince = nil
	storetest.WantErr(t, "UpdateUser(unmark)", s.UpdateUser(ctx, &u), nil)
	wantUser(t, s, &u)
}

func newDirectoryGroup(name string) *user.Group {
	return &user.Group{ID: id.New(), Name: name, Description: "the " + name, ExternalID: id.New(), CreatedAt: t0, UpdatedAt: t0}
}

func testGroupByExternalID(t *testing.T, s Stores) {
	ctx := context.Background()
	g := newDirectoryGroup("staff")
	if err := s.CreateGroup(ctx, g); err != nil {
		t.Fatal(err)
	}
	local := createGroup(t, s, "local")
	tests := []struct {
		name, ext string
		want      error
	}{
		{"fail/unknown", id.New(), errs.ErrNotFound},
		{"fail/empty matches no local group", "", errs.ErrNotFound},
		{"fail/the group's own ID", g.ID, errs.ErrNotFound},
		{"ok/linked", g.ExternalID, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.GroupByExternalID(ctx, tc.ext)
			storetest.WantErr(t, "GroupByExternalID("+tc.ext+")", err, tc.want)
			if err == nil && !reflect.DeepEqual(got, g) {
				t.Fatalf("GroupByExternalID:\n got %+v\nwant %+v", got, g)
			}
		})
	}
	if got, err := s.Group(ctx, local.ID); err != nil || got.ExternalID != "" {
		t.Fatalf("Group(local) = %+v, %v; want no external ID", got, err)
	}
}

func testGroupExternalIDUnique(t *testing.T, s Stores) {
	ctx := context.Background()
	first := newDirectoryGroup("first")
	if err := s.CreateGroup(ctx, first); err != nil {
		t.Fatal(err)
	}
	local := createGroup(t, s, "local")
	tests := []struct {
		name string
		op   func() error
		want error
	}{
		{"fail/create with a taken external ID", func() error {
			g := newDirectoryGroup("second")
			g.ExternalID = first.ExternalID
			return s.CreateGroup(ctx, g)
		}, errs.ErrConflict},
		{"fail/link a local group to a taken external ID", func() error {
			g := *local
			g.ExternalID = first.ExternalID
			return s.UpdateGroup(ctx, &g)
		}, errs.ErrConflict},
		{"ok/two local groups without external ID", func() error { createGroup(t, s, "local2"); return nil }, nil},
		{"ok/link a local group", func() error {
			g := *local
			g.ExternalID, g.UpdatedAt = id.New(), t0.Add(time.Minute)
			if err := s.UpdateGroup(ctx, &g); err != nil {
				return err
			}
			if got, err := s.GroupByExternalID(ctx, g.ExternalID); err != nil || !reflect.DeepEqual(got, &g) {
				t.Fatalf("GroupByExternalID after link = %+v, %v; want %+v", got, err, &g)
			}
			return nil
		}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			storetest.WantErr(t, tc.name, tc.op(), tc.want)
		})
	}
}
