// Package policytest is the conformance suite of policy.Store, run by every
// implementation against each of its backends, and the fixtures the policy
// service tests share.
package policytest

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/custos-uem/custos/activation/activationtest"
	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/id"
	"github.com/custos-uem/custos/policy"
	"github.com/custos-uem/custos/storetest"
	"github.com/custos-uem/custos/user"
	"github.com/custos-uem/custos/user/usertest"
)

// Stores is what the suite tests, with the user, group and activation
// stores it needs to give policies someone to reach.
type Stores interface {
	policy.Store
	activationtest.Enroller
	user.GroupStore
	user.MemberStore
	user.NestingStore
	device.Remover
}

// T0 is the suite's clock (whole microseconds, UTC, as stores keep).
var T0 = activationtest.T0

// Run runs the suite; open must return empty stores of their own for each
// call (the subtests run in parallel).
func Run(t *testing.T, open func(t *testing.T) Stores) {
	storetest.Run(t, open, []storetest.Case[Stores]{
		{Name: "CreatePolicyThenPolicyReturnsIt", Fn: testCreatePolicy},
		{Name: "CreatePolicyRefusesNameTakenInKind", Fn: testCreatePolicyConflict},
		{Name: "ListPoliciesFiltersByKindAndPages", Fn: testListPolicies},
		{Name: "ListPoliciesCapsLimitAtMaxPage", Fn: testListPoliciesCap},
		{Name: "UpdatePolicyBumpsRevisionOnSettingsOrPlatforms", Fn: testUpdatePolicy},
		{Name: "DeletePolicyRemovesAssignmentsAndStates", Fn: testDeletePolicy},
		{Name: "AssignIsIdempotentAndChecksTargets", Fn: testAssign},
		{Name: "UnassignRequiresAssignment", Fn: testUnassign},
		{Name: "DeletingTargetsRemovesAssignments", Fn: testDeleteTargets},
		{Name: "PoliciesForUserFollowsNestedGroups", Fn: testPoliciesForUser},
		{Name: "AffectedDevicesReachesNestedMembersOnly", Fn: testAffectedDevices},
		{Name: "DevicesOfTargetsFollowsNesting", Fn: testDevicesOfTargets},
		{Name: "SaveItemStatesUpsertsPerItem", Fn: testSaveItemStates},
	})
}

// NewPolicy returns a policy of kind at rank with settings, not stored.
func NewPolicy(name string, kind policy.Kind, rank int, settings string) *policy.Policy {
	return &policy.Policy{ID: id.New(), Name: name, Description: "the " + name, Kind: kind, Rank: rank,
		Platforms: []string{}, Settings: json.RawMessage(settings), Revision: 1, CreatedAt: T0, UpdatedAt: T0}
}

// CreatePolicy stores a new policy and returns it.
func CreatePolicy(t testing.TB, s policy.PolicyStore, name string, kind policy.Kind, rank int, settings string) *policy.Policy {
	t.Helper()
	p := NewPolicy(name, kind, rank, settings)
	if err := s.CreatePolicy(context.Background(), p); err != nil {
		t.Fatalf("CreatePolicy(%s): %v", name, err)
	}
	return p
}

// Assign assigns the policy or fails the test.
func Assign(t testing.TB, s policy.AssignmentStore, policyID, kind, targetID string) {
	t.Helper()
	a := policy.Assignment{PolicyID: policyID, TargetKind: kind, TargetID: targetID, CreatedAt: T0}
	if err := s.Assign(context.Background(), a); err != nil {
		t.Fatalf("Assign(%s to %s %s): %v", policyID, kind, targetID, err)
	}
}

// Enroll gives the user an enrolled device and returns it.
func Enroll(t testing.TB, s activationtest.Enroller, userID string) *device.Device {
	t.Helper()
	d, _ := activationtest.Enroll(t, s, userID, "hw-"+id.New(), T0)
	return d
}

func wantPolicy(t testing.TB, s policy.PolicyStore, want *policy.Policy) {
	t.Helper()
	got, err := s.Policy(context.Background(), want.ID)
	if err != nil {
		t.Fatalf("Policy(%s): %v", want.ID, err)
	}
	storetest.WantEqual(t, "Policy("+want.ID+")", got, want)
}

func testCreatePolicy(t *testing.T, s Stores) {
	ctx := context.Background()
	p := NewPolicy(usertest.ScriptTag, policy.WiFi, 7, `{"passphrase":"x'); DROP TABLE policies;--","ssid":"<b>"}`)
	p.Description, p.Platforms = usertest.SQLInject, []string{"ios", "android"}
	if err := s.CreatePolicy(ctx, p); err != nil {
		t.Fatal(err)
	}
	wantPolicy(t, s, p)
	_, err := s.Policy(ctx, id.New())
	storetest.WantErr(t, "Policy(unknown)", err, errs.ErrNotFound)
}

func testCreatePolicyConflict(t *testing.T, s Stores) {
	first := CreatePolicy(t, s, "Office", policy.WiFi, 1, `{}`)
	tests := []struct {
		name string
		edit func(p *policy.Policy)
		want error
	}{
		{"fail/name taken in kind", func(p *policy.Policy) { p.Name = first.Name }, errs.ErrConflict},
		{"fail/id taken", func(p *policy.Policy) { p.ID = first.ID }, errs.ErrConflict},
		{"ok/same name in another kind", func(p *policy.Policy) { p.Name, p.Kind = first.Name, policy.VPN }, nil},
		{"ok/name differing in case", func(p *policy.Policy) { p.Name = "office" }, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := NewPolicy("other", policy.WiFi, 1, `{}`)
			tc.edit(p)
			storetest.WantErr(t, "CreatePolicy", s.CreatePolicy(context.Background(), p), tc.want)
		})
	}
}

func policyIDs(ps []*policy.Policy) []string {
	out := []string{}
	for _, p := range ps {
		out = append(out, p.ID)
	}
	return out
}

func testListPolicies(t *testing.T, s Stores) {
	ctx := context.Background()
	var all, wifi []string
	for i := range 5 {
		kind := policy.VPN
		if i%2 == 0 {
			kind = policy.WiFi
		}
		p := CreatePolicy(t, s, fmt.Sprintf("p%d", i), kind, 1, `{}`)
		all = append(all, p.ID)
		if kind == policy.WiFi {
			wifi = append(wifi, p.ID)
		}
	}
	tests := []struct {
		name string
		q    policy.ListQuery
		want []string
	}{
		{"ok/everything", policy.ListQuery{}, all},
		{"ok/one kind", policy.ListQuery{Kind: policy.WiFi}, wifi},
		{"ok/limit", policy.ListQuery{Limit: 2}, all[:2]},
		{"ok/after", policy.ListQuery{After: all[2]}, all[3:]},
		{"ok/kind after", policy.ListQuery{Kind: policy.WiFi, After: wifi[0], Limit: 1}, wifi[1:2]},
		{"ok/kind without policies", policy.ListQuery{Kind: policy.Email}, []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ListPolicies(ctx, tc.q)
			if err != nil {
				t.Fatal(err)
			}
			storetest.WantEqual(t, "ListPolicies", policyIDs(got), tc.want)
		})
	}
}

func testListPoliciesCap(t *testing.T, s Stores) {
	for i := range policy.MaxPage + 1 {
		CreatePolicy(t, s, fmt.Sprintf("p%d", i), policy.AppConfig, 1, `{}`)
	}
	got, err := s.ListPolicies(context.Background(), policy.ListQuery{Limit: policy.MaxPage + 1})
	if err != nil || len(got) != policy.MaxPage {
		t.Fatalf("ListPolicies(MaxPage+1) = %d, %v; want %d", len(got), err, policy.MaxPage)
	}
}

func testUpdatePolicy(t *testing.T, s Stores) {
	ctx := context.Background()
	other := CreatePolicy(t, s, "other", policy.WiFi, 1, `{}`)
	tests := []struct {
		name    string
		edit    func(p *policy.Policy)
		want    error
		bumpsTo int
	}{
		{"fail/unknown id", func(p *policy.Policy) { p.ID = id.New() }, errs.ErrNotFound, 0},
		{"fail/name taken in kind", func(p *policy.Policy) { p.Name = other.Name }, errs.ErrConflict, 0},
		{"ok/name, description and rank keep the revision", func(p *policy.Policy) {
			p.Name, p.Description, p.Rank = p.Name+"-renamed", usertest.ScriptTag, 9
		}, nil, 1},
		{"ok/settings bump the revision", func(p *policy.Policy) { p.Settings = json.RawMessage(`{"ssid":"new"}`) }, nil, 2},
		{"ok/platforms bump the revision", func(p *policy.Policy) { p.Platforms = []string{"ios"} }, nil, 2},
		{"ok/both bump it once", func(p *policy.Policy) {
			p.Settings, p.Platforms = json.RawMessage(`{"ssid":"new"}`), []string{"ios"}
		}, nil, 2},
		{"ok/same settings again keep it", func(p *policy.Policy) {}, nil, 1},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := CreatePolicy(t, s, fmt.Sprintf("p%d", i), policy.WiFi, 1, `{"ssid":"old"}`)
			p := *before
			tc.edit(&p)
			p.UpdatedAt = T0.Add(time.Minute)
			storetest.WantErr(t, "UpdatePolicy", s.UpdatePolicy(ctx, &p), tc.want)
			if tc.want != nil {
				wantPolicy(t, s, before)
				return
			}
			if p.Revision != tc.bumpsTo {
				t.Fatalf("UpdatePolicy set Revision %d, want %d", p.Revision, tc.bumpsTo)
			}
			wantPolicy(t, s, &p)
		})
	}
}

func testDeletePolicy(t *testing.T, s Stores) {
	ctx := context.Background()
	u := usertest.CreateUser(t, s, "ada")
	d := Enroll(t, s, u.ID)
	p, kept := CreatePolicy(t, s, "gone", policy.WiFi, 1, `{}`), CreatePolicy(t, s, "kept", policy.WiFi, 1, `{}`)
	Assign(t, s, p.ID, policy.TargetUser, u.ID)
	Assign(t, s, kept.ID, policy.TargetUser, u.ID)
	states := []policy.ItemState{{ID: p.ID, Revision: 1, Status: policy.ItemApplied, At: T0}, {ID: kept.ID, Revision: 1, Status: policy.ItemApplied, At: T0}}
	storetest.WantErr(t, "SaveItemStates", s.SaveItemStates(ctx, d.ID, "v1", states, T0), nil)
	tests := []struct {
		name, id string
		want     error
	}{
		{"fail/unknown", id.New(), errs.ErrNotFound},
		{"ok/existing", p.ID, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			storetest.WantErr(t, "DeletePolicy", s.DeletePolicy(ctx, tc.id), tc.want)
		})
	}
	storetest.WantErr(t, "DeletePolicy(deleted)", s.DeletePolicy(ctx, p.ID), errs.ErrNotFound)
	_, err := s.Policy(ctx, p.ID)
	storetest.WantErr(t, "Policy(deleted)", err, errs.ErrNotFound)
	if as, err := s.Assignments(ctx, p.ID); err != nil || len(as) != 0 {
		t.Fatalf("Assignments(deleted) = %v, %v", as, err)
	}
	reach, err := s.PoliciesForUser(ctx, u.ID)
	if err != nil || len(reach) != 1 || reach[0].Policy.ID != kept.ID {
		t.Fatalf("PoliciesForUser after delete = %v, %v; want only %s", reach, err, kept.ID)
	}
	_, got, err := s.ItemStates(ctx, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	storetest.WantEqual(t, "ItemStates after delete", got, states[1:])
}

func testAssign(t *testing.T, s Stores) {
	ctx := context.Background()
	u := usertest.CreateUser(t, s, "ada")
	g := usertest.CreateGroup(t, s, "staff")
	p := CreatePolicy(t, s, "office", policy.WiFi, 1, `{}`)
	at := func(kind, target string, when time.Time) policy.Assignment {
		return policy.Assignment{PolicyID: p.ID, TargetKind: kind, TargetID: target, CreatedAt: when}
	}
	tests := []struct {
		name string
		a    policy.Assignment
		want error
	}{
		{"fail/unknown policy", policy.Assignment{PolicyID: id.New(), TargetKind: policy.TargetUser, TargetID: u.ID, CreatedAt: T0}, errs.ErrNotFound},
		{"fail/unknown user", at(policy.TargetUser, id.New(), T0), errs.ErrNotFound},
		{"fail/unknown group", at(policy.TargetGroup, id.New(), T0), errs.ErrNotFound},
		{"fail/group ID as a user", at(policy.TargetUser, g.ID, T0), errs.ErrNotFound},
		{"fail/unknown target kind", at("device", u.ID, T0), errs.ErrNotFound},
		{"ok/user", at(policy.TargetUser, u.ID, T0), nil},
		{"ok/user again keeps the first time", at(policy.TargetUser, u.ID, T0.Add(time.Hour)), nil},
		{"ok/group", at(policy.TargetGroup, g.ID, T0), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			storetest.WantErr(t, "Assign", s.Assign(ctx, tc.a), tc.want)
		})
	}
	got, err := s.Assignments(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	storetest.WantEqual(t, "Assignments", got, []policy.Assignment{at(policy.TargetUser, u.ID, T0), at(policy.TargetGroup, g.ID, T0)})
	if none, err := s.Assignments(ctx, id.New()); err != nil || len(none) != 0 {
		t.Fatalf("Assignments(unknown) = %v, %v", none, err)
	}
}

func testUnassign(t *testing.T, s Stores) {
	ctx := context.Background()
	u := usertest.CreateUser(t, s, "ada")
	g := usertest.CreateGroup(t, s, "staff")
	p := CreatePolicy(t, s, "office", policy.WiFi, 1, `{}`)
	Assign(t, s, p.ID, policy.TargetUser, u.ID)
	Assign(t, s, p.ID, policy.TargetGroup, g.ID)
	tests := []struct {
		name, policy, kind, target string
		want                       error
	}{
		{"fail/not assigned", p.ID, policy.TargetUser, id.New(), errs.ErrNotFound},
		{"fail/user ID as a group", p.ID, policy.TargetGroup, u.ID, errs.ErrNotFound},
		{"fail/unknown policy", id.New(), policy.TargetUser, u.ID, errs.ErrNotFound},
		{"fail/unknown target kind", p.ID, "device", u.ID, errs.ErrNotFound},
		{"ok/user", p.ID, policy.TargetUser, u.ID, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			storetest.WantErr(t, "Unassign", s.Unassign(ctx, tc.policy, tc.kind, tc.target), tc.want)
		})
	}
	storetest.WantErr(t, "Unassign(again)", s.Unassign(ctx, p.ID, policy.TargetUser, u.ID), errs.ErrNotFound)
	got, err := s.Assignments(ctx, p.ID)
	if err != nil || len(got) != 1 || got[0].TargetID != g.ID {
		t.Fatalf("Assignments after Unassign = %v, %v; want the group only", got, err)
	}
}

func testDeleteTargets(t *testing.T, s Stores) {
	ctx := context.Background()
	u := usertest.CreateUser(t, s, "ada")
	g := usertest.CreateGroup(t, s, "staff")
	p := CreatePolicy(t, s, "office", policy.WiFi, 1, `{}`)
	Assign(t, s, p.ID, policy.TargetUser, u.ID)
	Assign(t, s, p.ID, policy.TargetGroup, g.ID)
	storetest.WantErr(t, "DeleteUser", s.DeleteUser(ctx, u.ID), nil)
	storetest.WantErr(t, "DeleteGroup", s.DeleteGroup(ctx, g.ID), nil)
	if got, err := s.Assignments(ctx, p.ID); err != nil || len(got) != 0 {
		t.Fatalf("Assignments after deleting the targets = %v, %v", got, err)
	}
}

type reach struct{ policy, group string }

func reaches(as []policy.Assigned) []reach {
	out := []reach{}
	for _, a := range as {
		out = append(out, reach{a.Policy.ID, a.GroupID})
	}
	return out
}

func testPoliciesForUser(t *testing.T, s Stores) {
	ctx := context.Background()
	u, other := usertest.CreateUser(t, s, "ada"), usertest.CreateUser(t, s, "other")
	// top contains mid and side; mid contains team; side contains team
	// too (a diamond); ada is in team only.
	top, mid, side, team := usertest.CreateGroup(t, s, "top"), usertest.CreateGroup(t, s, "mid"), usertest.CreateGroup(t, s, "side"), usertest.CreateGroup(t, s, "team")
	unrelated := usertest.CreateGroup(t, s, "unrelated")
	usertest.AddSubgroup(t, s, top.ID, mid.ID)
	usertest.AddSubgroup(t, s, top.ID, side.ID)
	usertest.AddSubgroup(t, s, mid.ID, team.ID)
	usertest.AddSubgroup(t, s, side.ID, team.ID)
	usertest.AddMember(t, s, team.ID, u.ID)
	usertest.AddMember(t, s, unrelated.ID, other.ID)
	direct := CreatePolicy(t, s, "direct", policy.ITPolicy, 5, `{}`)
	viaTop := CreatePolicy(t, s, "via-top", policy.WiFi, 1, `{}`)
	both := CreatePolicy(t, s, "both", policy.VPN, 1, `{}`)
	notMine := CreatePolicy(t, s, "not-mine", policy.WiFi, 1, `{}`)
	CreatePolicy(t, s, "unassigned", policy.WiFi, 1, `{}`)
	Assign(t, s, direct.ID, policy.TargetUser, u.ID)
	Assign(t, s, viaTop.ID, policy.TargetGroup, top.ID)
	Assign(t, s, both.ID, policy.TargetGroup, team.ID)
	Assign(t, s, both.ID, policy.TargetGroup, side.ID)
	Assign(t, s, both.ID, policy.TargetUser, u.ID)
	Assign(t, s, notMine.ID, policy.TargetGroup, unrelated.ID)
	Assign(t, s, notMine.ID, policy.TargetUser, other.ID)
	got, err := s.PoliciesForUser(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := []reach{{direct.ID, ""}, {viaTop.ID, top.ID}, {both.ID, ""}}
	for _, g := range slices.Sorted(slices.Values([]string{side.ID, team.ID})) {
		want = append(want, reach{both.ID, g})
	}
	slices.SortStableFunc(want, func(a, b reach) int {
		if a.policy != b.policy {
			if a.policy < b.policy {
				return -1
			}
			return 1
		}
		return 0
	})
	storetest.WantEqual(t, "PoliciesForUser", reaches(got), want)
	for _, a := range got {
		if a.Policy.ID == direct.ID {
			storetest.WantEqual(t, "the policy of a PoliciesForUser row", a.Policy, direct)
		}
	}
	if none, err := s.PoliciesForUser(ctx, id.New()); err != nil || len(none) != 0 {
		t.Fatalf("PoliciesForUser(unknown) = %v, %v", none, err)
	}
}

func testAffectedDevices(t *testing.T, s Stores) {
	ctx := context.Background()
	directUser, nestedUser, outsider, idle := usertest.CreateUser(t, s, "direct"), usertest.CreateUser(t, s, "nested"), usertest.CreateUser(t, s, "outsider"), usertest.CreateUser(t, s, "idle")
	parent, child, unrelated := usertest.CreateGroup(t, s, "parent"), usertest.CreateGroup(t, s, "child"), usertest.CreateGroup(t, s, "unrelated")
	usertest.AddSubgroup(t, s, parent.ID, child.ID)
	usertest.AddMember(t, s, child.ID, nestedUser.ID)
	usertest.AddMember(t, s, child.ID, directUser.ID) // reached twice, listed once
	usertest.AddMember(t, s, unrelated.ID, outsider.ID)
	usertest.AddMember(t, s, child.ID, idle.ID)
	d1, d2 := Enroll(t, s, directUser.ID), Enroll(t, s, directUser.ID)
	removed := Enroll(t, s, directUser.ID)
	if err := s.RemoveDevice(ctx, removed.ID, T0); err != nil {
		t.Fatal(err)
	}
	d3 := Enroll(t, s, nestedUser.ID)
	Enroll(t, s, outsider.ID)
	activationtest.Start(t, s, idle.ID, "hw-activating", T0) // still activating: no configuration yet
	p := CreatePolicy(t, s, "office", policy.WiFi, 1, `{}`)
	Assign(t, s, p.ID, policy.TargetUser, directUser.ID)
	Assign(t, s, p.ID, policy.TargetGroup, parent.ID)
	got, err := s.AffectedDevices(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	storetest.WantEqual(t, "AffectedDevices", got, slices.Sorted(slices.Values([]string{d1.ID, d2.ID, d3.ID})))
	if none, err := s.AffectedDevices(ctx, id.New()); err != nil || len(none) != 0 {
		t.Fatalf("AffectedDevices(unknown) = %v, %v", none, err)
	}
}

func testDevicesOfTargets(t *testing.T, s Stores) {
	ctx := context.Background()
	a, b := usertest.CreateUser(t, s, "a"), usertest.CreateUser(t, s, "b")
	top, sub := usertest.CreateGroup(t, s, "top"), usertest.CreateGroup(t, s, "sub")
	usertest.AddSubgroup(t, s, top.ID, sub.ID)
	usertest.AddMember(t, s, top.ID, a.ID)
	usertest.AddMember(t, s, sub.ID, b.ID)
	da, db := Enroll(t, s, a.ID), Enroll(t, s, b.ID)
	tests := []struct {
		name, kind, id string
		want           []string
		err            error
	}{
		{"fail/unknown kind", "device", da.ID, nil, errs.ErrNotFound},
		{"ok/unknown user", policy.TargetUser, id.New(), []string{}, nil},
		{"ok/unknown group", policy.TargetGroup, id.New(), []string{}, nil},
		{"ok/user", policy.TargetUser, a.ID, []string{da.ID}, nil},
		{"ok/group with subgroup", policy.TargetGroup, top.ID, slices.Sorted(slices.Values([]string{da.ID, db.ID})), nil},
		{"ok/subgroup alone", policy.TargetGroup, sub.ID, []string{db.ID}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.DevicesOfTargets(ctx, tc.kind, tc.id)
			storetest.WantErr(t, "DevicesOfTargets", err, tc.err)
			if tc.err == nil {
				storetest.WantEqual(t, "DevicesOfTargets", got, tc.want)
			}
		})
	}
}

func testSaveItemStates(t *testing.T, s Stores) {
	ctx := context.Background()
	u := usertest.CreateUser(t, s, "ada")
	d, removed := Enroll(t, s, u.ID), Enroll(t, s, u.ID)
	if err := s.RemoveDevice(ctx, removed.ID, T0); err != nil {
		t.Fatal(err)
	}
	_, activating := activationtest.Start(t, s, u.ID, "hw-activating", T0)
	p, q := CreatePolicy(t, s, "p", policy.WiFi, 1, `{}`), CreatePolicy(t, s, "q", policy.WiFi, 1, `{}`)
	first := []policy.ItemState{
		{ID: p.ID, Revision: 1, Status: policy.ItemFailed, Error: usertest.ScriptTag, At: T0},
		{ID: id.New(), Revision: 1, Status: policy.ItemApplied, At: T0}, // no such policy: dropped
	}
	tests := []struct {
		name, device string
		want         error
	}{
		{"fail/unknown device", id.New(), errs.ErrNotFound},
		{"fail/removed device", removed.ID, errs.ErrNotFound},
		{"fail/activating device", activating.ID, errs.ErrNotFound},
		{"ok/enrolled device", d.ID, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			storetest.WantErr(t, "SaveItemStates", s.SaveItemStates(ctx, tc.device, "v1", first, T0), tc.want)
		})
	}
	version, got, err := s.ItemStates(ctx, d.ID)
	if err != nil || version != "v1" {
		t.Fatalf("ItemStates = %q, %v", version, err)
	}
	storetest.WantEqual(t, "ItemStates", got, first[:1])
	later := T0.Add(time.Minute)
	second := []policy.ItemState{
		{ID: q.ID, Revision: 3, Status: policy.ItemApplied, At: later},
		{ID: p.ID, Revision: 2, Status: policy.ItemApplied, At: later},
	}
	storetest.WantErr(t, "SaveItemStates(second)", s.SaveItemStates(ctx, d.ID, "v2", second, later), nil)
	version, got, err = s.ItemStates(ctx, d.ID)
	if err != nil || version != "v2" {
		t.Fatalf("ItemStates after the second report = %q, %v", version, err)
	}
	want := slices.Clone(second)
	slices.SortFunc(want, func(a, b policy.ItemState) int {
		if a.ID < b.ID {
			return -1
		}
		return 1
	})
	storetest.WantEqual(t, "ItemStates after the second report", got, want)
	storetest.WantErr(t, "SaveItemStates(no states)", s.SaveItemStates(ctx, d.ID, "v3", nil, later), nil)
	if version, got, err := s.ItemStates(ctx, d.ID); err != nil || version != "v3" || len(got) != 2 {
		t.Fatalf("ItemStates after an empty report = %q, %d states, %v; want v3 and the states kept", version, len(got), err)
	}
	if version, got, err := s.ItemStates(ctx, id.New()); err != nil || version != "" || len(got) != 0 {
		t.Fatalf("ItemStates(unknown) = %q, %v, %v", version, got, err)
	}
}
