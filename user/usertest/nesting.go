package usertest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/id"
	"github.com/custos-uem/custos/storetest"
	"github.com/custos-uem/custos/user"
)

// CreateGroup stores a new group named name and returns it.
func CreateGroup(t testing.TB, s user.GroupStore, name string) *user.Group {
	t.Helper()
	return createGroup(t, s, name)
}

// AddSubgroup nests child in parent or fails the test.
func AddSubgroup(t testing.TB, s user.NestingStore, parentID, childID string) {
	t.Helper()
	if err := s.AddSubgroup(context.Background(), parentID, childID); err != nil {
		t.Fatalf("AddSubgroup(%s, %s): %v", parentID, childID, err)
	}
}

// AddMember adds the user to the group or fails the test.
func AddMember(t testing.TB, s user.MemberStore, groupID, userID string) {
	t.Helper()
	addMember(t, s, groupID, userID)
}

func testAddSubgroup(t *testing.T, s Stores) {
	ctx := context.Background()
	a, b, c := createGroup(t, s, "a"), createGroup(t, s, "b"), createGroup(t, s, "c")
	other := createGroup(t, s, "other")
	// a contains b contains c.
	AddSubgroup(t, s, a.ID, b.ID)
	AddSubgroup(t, s, b.ID, c.ID)
	tests := []struct {
		name, parent, child string
		want                error
	}{
		{"fail/self-reference", a.ID, a.ID, user.ErrCycle},
		{"fail/cycle of two", b.ID, a.ID, user.ErrCycle},
		{"fail/cycle of three", c.ID, a.ID, user.ErrCycle},
		{"fail/unknown parent", id.New(), other.ID, errs.ErrNotFound},
		{"fail/unknown child", other.ID, id.New(), errs.ErrNotFound},
		{"ok/shortcut to a grandchild", a.ID, c.ID, nil},
		{"ok/second time", a.ID, c.ID, nil},
		{"ok/one group in two parents", other.ID, c.ID, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			storetest.WantErr(t, "AddSubgroup", s.AddSubgroup(ctx, tc.parent, tc.child), tc.want)
		})
	}
	subs, err := s.Subgroups(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantIDs(t, "Subgroups(a)", ids(subs, groupID), []string{b.ID, c.ID})
	if subs, err := s.Subgroups(ctx, c.ID); err != nil || len(subs) != 0 {
		t.Fatalf("Subgroups(c) = %d, %v; want none (the cycles were refused)", len(subs), err)
	}
	if subs, err := s.Subgroups(ctx, id.New()); err != nil || len(subs) != 0 {
		t.Fatalf("Subgroups(unknown) = %d, %v", len(subs), err)
	}
}

func testRemoveSubgroup(t *testing.T, s Stores) {
	ctx := context.Background()
	a, b, c := createGroup(t, s, "a"), createGroup(t, s, "b"), createGroup(t, s, "c")
	AddSubgroup(t, s, a.ID, b.ID)
	AddSubgroup(t, s, b.ID, c.ID)
	tests := []struct {
		name, parent, child string
		want                error
	}{
		{"fail/grandchild is not a direct subgroup", a.ID, c.ID, errs.ErrNotFound},
		{"fail/reversed", b.ID, a.ID, errs.ErrNotFound},
		{"ok/direct subgroup", a.ID, b.ID, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			storetest.WantErr(t, "RemoveSubgroup", s.RemoveSubgroup(ctx, tc.parent, tc.child), tc.want)
		})
	}
	storetest.WantErr(t, "RemoveSubgroup(removed)", s.RemoveSubgroup(ctx, a.ID, b.ID), errs.ErrNotFound)
	// With a no longer containing b, nesting b's ancestor a under c is no
	// cycle any more.
	storetest.WantErr(t, "AddSubgroup(c, a) after the removal", s.AddSubgroup(ctx, c.ID, a.ID), nil)
}

func testUserGroupsAll(t *testing.T, s Stores) {
	ctx := context.Background()
	u, outsider := CreateUser(t, s, "ada"), CreateUser(t, s, "outsider")
	// top contains left and right (a diamond), both contain team; ada is
	// in team only; lone is unrelated; side contains outsider's group.
	top, left, right, team := createGroup(t, s, "top"), createGroup(t, s, "left"), createGroup(t, s, "right"), createGroup(t, s, "team")
	lone, own := createGroup(t, s, "lone"), createGroup(t, s, "own")
	AddSubgroup(t, s, top.ID, left.ID)
	AddSubgroup(t, s, top.ID, right.ID)
	AddSubgroup(t, s, left.ID, team.ID)
	AddSubgroup(t, s, right.ID, team.ID)
	AddSubgroup(t, s, own.ID, lone.ID)
	addMember(t, s, team.ID, u.ID)
	addMember(t, s, lone.ID, outsider.ID)
	got, err := s.UserGroupsAll(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantIDs(t, "UserGroupsAll", ids(got, groupID), []string{top.ID, left.ID, right.ID, team.ID})
	direct, err := s.GroupsOf(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantIDs(t, "GroupsOf (direct only)", ids(direct, groupID), []string{team.ID})
	if none, err := s.UserGroupsAll(ctx, id.New()); err != nil || len(none) != 0 {
		t.Fatalf("UserGroupsAll(unknown) = %d, %v", len(none), err)
	}
}

func testDeleteGroupNesting(t *testing.T, s Stores) {
	ctx := context.Background()
	u := CreateUser(t, s, "ada")
	a, b, c := createGroup(t, s, "a"), createGroup(t, s, "b"), createGroup(t, s, "c")
	AddSubgroup(t, s, a.ID, b.ID)
	AddSubgroup(t, s, b.ID, c.ID)
	addMember(t, s, c.ID, u.ID)
	storetest.WantErr(t, "DeleteGroup(b)", s.DeleteGroup(ctx, b.ID), nil)
	if subs, err := s.Subgroups(ctx, a.ID); err != nil || len(subs) != 0 {
		t.Fatalf("Subgroups(a) after deleting b = %d, %v; want none", len(subs), err)
	}
	got, err := s.UserGroupsAll(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantIDs(t, "UserGroupsAll after deleting the middle group", ids(got, groupID), []string{c.ID})
}

// testConcurrentSubgroups closes rings of four from two sides at once: with
// a→b and c→d in place, b→c and d→a race. Each check alone sees no cycle;
// the store must let exactly one of them in.
func testConcurrentSubgroups(t *testing.T, s Stores) {
	ctx := context.Background()
	for round := range 8 {
		g := make([]*user.Group, 4)
		for i := range g {
			g[i] = createGroup(t, s, fmt.Sprintf("r%d-%d", round, i))
		}
		AddSubgroup(t, s, g[0].ID, g[1].ID)
		AddSubgroup(t, s, g[2].ID, g[3].ID)
		var wg sync.WaitGroup
		var errB, errD error
		start := make(chan struct{})
		wg.Go(func() { <-start; errB = s.AddSubgroup(ctx, g[1].ID, g[2].ID) })
		wg.Go(func() { <-start; errD = s.AddSubgroup(ctx, g[3].ID, g[0].ID) })
		close(start)
		wg.Wait()
		for _, err := range []error{errB, errD} {
			if err != nil && !errors.Is(err, user.ErrCycle) {
				t.Fatalf("round %d: AddSubgroup: %v", round, err)
			}
		}
		if (errB == nil) == (errD == nil) {
			t.Fatalf("round %d: b→c: %v, d→a: %v; want exactly one refused as a cycle", round, errB, errD)
		}
	}
}
