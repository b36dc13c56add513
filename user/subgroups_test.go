package user_test

import (
	"context"
	"errors"
	"testing"

	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/id"
	"github.com/custos-uem/custos/sqlstore"
	"github.com/custos-uem/custos/user"
)

func TestSubgroupsCodes(t *testing.T) {
	forEach(t, func(t *testing.T, s *user.Service, _ *removerSpy, _ *sqlstore.DB) {
		ctx := context.Background()
		var g [3]*user.Group
		for i, name := range []string{"a", "b", "c"} {
			var err error
			if g[i], err = s.CreateGroup(ctx, user.NewGroup{Name: name}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.AddSubgroup(ctx, g[0].ID, g[1].ID); err != nil {
			t.Fatal(err)
		}
		if err := s.AddSubgroup(ctx, g[1].ID, g[2].ID); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name      string
			fn        func() error
			wantCode  string
			wantField string
		}{
			{"fail/self-reference", func() error { return s.AddSubgroup(ctx, g[0].ID, g[0].ID) }, "group_cycle", "group_id"},
			{"fail/cycle of three", func() error { return s.AddSubgroup(ctx, g[2].ID, g[0].ID) }, "group_cycle", "group_id"},
			{"fail/unknown parent", func() error { return s.AddSubgroup(ctx, id.New(), g[0].ID) }, "group_not_found", ""},
			{"fail/unknown child", func() error { return s.AddSubgroup(ctx, g[0].ID, id.New()) }, "group_not_found", ""},
			{"fail/remove a grandchild", func() error { return s.RemoveSubgroup(ctx, g[0].ID, g[2].ID) }, "subgroup_not_found", ""},
			{"ok/add again", func() error { return s.AddSubgroup(ctx, g[0].ID, g[1].ID) }, "", ""},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				err := tc.fn()
				if code(err) != tc.wantCode || (tc.wantCode == "" && err != nil) {
					t.Fatalf("got %v, want code %q", err, tc.wantCode)
				}
				var e *errs.Error
				if tc.wantField != "" && (!errors.As(err, &e) || e.Fields[tc.wantField] == "") {
					t.Fatalf("error %v has no field %q", err, tc.wantField)
				}
			})
		}
		u, err := s.Create(ctx, user.NewUser{Email: "ada@example.com"})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.AddMember(ctx, g[2].ID, u.ID); err != nil {
			t.Fatal(err)
		}
		all, err := s.AllGroupsOf(ctx, u.ID)
		if err != nil || len(all) != 3 {
			t.Fatalf("AllGroupsOf = %d groups, %v; want 3", len(all), err)
		}
		subs, err := s.Subgroups(ctx, g[0].ID)
		if err != nil || len(subs) != 1 || subs[0].ID != g[1].ID {
			t.Fatalf("Subgroups(a) = %v, %v", subs, err)
		}
		if err := s.RemoveSubgroup(ctx, g[1].ID, g[2].ID); err != nil {
			t.Fatal(err)
		}
		if all, err := s.AllGroupsOf(ctx, u.ID); err != nil || len(all) != 1 {
			t.Fatalf("AllGroupsOf after un-nesting = %d groups, %v; want 1", len(all), err)
		}
		if _, err := s.Subgroups(ctx, id.New()); code(err) != "group_not_found" {
			t.Fatalf("Subgroups(unknown) = %v", err)
		}
	})
}
