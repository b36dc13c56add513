package policy_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/id"
	"github.com/custos-uem/custos/policy"
	"github.com/custos-uem/custos/policy/policytest"
	"github.com/custos-uem/custos/secret"
	"github.com/custos-uem/custos/sqlstore"
	"github.com/custos-uem/custos/sqlstore/sqltest"
	"github.com/custos-uem/custos/user/usertest"
)

// changedSpy records the devices Changed is told about and, through
// check, what the store held at that moment.
type changedSpy struct {
	mu    sync.Mutex
	calls [][]string
	err   error
	check func(ctx context.Context)
}

func (c *changedSpy) changed(ctx context.Context, ids []string) error {
	if c.check != nil {
		c.check(ctx)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, slices.Clone(ids))
	return c.err
}

// take returns the calls so far and forgets them.
func (c *changedSpy) take() [][]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.calls
	c.calls = nil
	return out
}

type env struct {
	svc *policy.Service
	db  *sqlstore.DB
	spy *changedSpy
}

func forEach(t *testing.T, f func(t *testing.T, e env)) {
	t.Helper()
	for _, b := range sqltest.Backends(t) {
		t.Run(b, func(t *testing.T) {
			db := sqltest.Open(t, b)
			spy := &changedSpy{}
			f(t, env{svc: &policy.Service{Store: db, Changed: spy.changed, Now: func() time.Time { return policytest.T0 }}, db: db, spy: spy})
		})
	}
}

func code(err error) string {
	var e *errs.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

func (e env) create(t testing.TB, name string, kind policy.Kind, rank int, settings string, platforms ...string) *policy.Policy {
	t.Helper()
	p, err := e.svc.Create(context.Background(), policy.NewPolicy{Name: name, Kind: kind, Rank: rank, Platforms: platforms, Settings: json.RawMessage(settings)})
	if err != nil {
		t.Fatalf("Create(%s): %v", name, err)
	}
	return p
}

func (e env) assign(t testing.TB, p *policy.Policy, kind, target string) {
	t.Helper()
	if err := e.svc.Assign(context.Background(), p.ID, kind, target); err != nil {
		t.Fatalf("Assign(%s to %s %s): %v", p.Name, kind, target, err)
	}
}

func (e env) effective(t testing.TB, d *device.Device) *policy.Effective {
	t.Helper()
	eff, err := e.svc.Effective(context.Background(), d)
	if err != nil {
		t.Fatalf("Effective: %v", err)
	}
	return eff
}

// names lists "kind:name via" of each item, in order.
func names(eff *policy.Effective) []string {
	out := []string{}
	for _, it := range eff.Items {
		out = append(out, string(it.Kind)+":"+it.Name+" "+it.Via)
	}
	return out
}

func wantItems(t testing.TB, eff *policy.Effective, want ...string) {
	t.Helper()
	if got := names(eff); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("items:\n got %q\nwant %q", got, want)
	}
}

func TestEffectivePrecedence(t *testing.T) {
	forEach(t, func(t *testing.T, e env) {
		u := usertest.CreateUser(t, e.db, "ada")
		top, mid, team := usertest.CreateGroup(t, e.db, "top"), usertest.CreateGroup(t, e.db, "mid"), usertest.CreateGroup(t, e.db, "team")
		usertest.AddSubgroup(t, e.db, top.ID, mid.ID)
		usertest.AddSubgroup(t, e.db, mid.ID, team.ID)
		usertest.AddMember(t, e.db, team.ID, u.ID)
		d := policytest.Enroll(t, e.db, u.ID) // linux
		ios := *d
		ios.Platform = "ios"

		wantItems(t, e.effective(t, d))

		// Among groups the lowest rank wins, however deep the group is.
		deep := e.create(t, "deep rank 5", policy.ITPolicy, 5, `{}`)
		near := e.create(t, "near rank 9", policy.ITPolicy, 9, `{}`)
		e.assign(t, deep, policy.TargetGroup, top.ID)
		e.assign(t, near, policy.TargetGroup, team.ID)
		wantItems(t, e.effective(t, d), "it_policy:deep rank 5 group:"+top.ID)

		// A direct assignment beats every group, even at a worse rank.
		direct := e.create(t, "direct rank 100", policy.ITPolicy, 100, `{}`)
		e.assign(t, direct, policy.TargetUser, u.ID)
		wantItems(t, e.effective(t, d), "it_policy:direct rank 100 user")

		// Platform filter: an iOS-only direct policy leaves Linux to the
		// groups, and wins on iOS.
		if _, err := e.svc.Update(context.Background(), direct.ID, policy.Patch{Platforms: &[]string{"ios"}}); err != nil {
			t.Fatal(err)
		}
		wantItems(t, e.effective(t, d), "it_policy:deep rank 5 group:"+top.ID)
		wantItems(t, e.effective(t, &ios), "it_policy:direct rank 100 user")

		// Other kinds accumulate, every source counted once, in the order
		// devices apply them (certificates first).
		cert := e.create(t, "root", policy.Certificate, 50, `{"type":"user_pkcs12"}`)
		w1 := e.create(t, "wifi a", policy.WiFi, 2, `{"ssid":"a","security":"none"}`)
		w2 := e.create(t, "wifi b", policy.WiFi, 1, `{"ssid":"b","security":"none"}`)
		iosWifi := e.create(t, "wifi ios", policy.WiFi, 1, `{"ssid":"i","security":"none"}`, "ios")
		e.assign(t, w1, policy.TargetGroup, mid.ID)
		e.assign(t, w1, policy.TargetUser, u.ID) // direct and via a group: once, via user
		e.assign(t, w2, policy.TargetGroup, team.ID)
		e.assign(t, iosWifi, policy.TargetGroup, top.ID)
		e.assign(t, cert, policy.TargetGroup, top.ID)
		wantItems(t, e.effective(t, d),
			"certificate:root group:"+top.ID,
			"it_policy:deep rank 5 group:"+top.ID,
			"wifi:wifi b group:"+team.ID,
			"wifi:wifi a user")
		wantItems(t, e.effective(t, &ios),
			"certificate:root group:"+top.ID,
			"it_policy:direct rank 100 user",
			"wifi:wifi b group:"+team.ID,
			"wifi:wifi ios group:"+top.ID,
			"wifi:wifi a user")

		// Un-nesting the group cuts off what it brought.
		if err := e.db.RemoveSubgroup(context.Background(), top.ID, mid.ID); err != nil {
			t.Fatal(err)
		}
		wantItems(t, e.effective(t, d), "it_policy:near rank 9 group:"+team.ID, "wifi:wifi b group:"+team.ID, "wifi:wifi a user")

		// A user outside every group gets nothing.
		other := usertest.CreateUser(t, e.db, "other")
		wantItems(t, e.effective(t, policytest.Enroll(t, e.db, other.ID)))
	})
}

func TestVersion(t *testing.T) {
	t.Run("ok/empty configuration is 0", func(t *testing.T) {
		if v, err := policy.Version(nil); v != "0" || err != nil {
			t.Fatalf("Version(nil) = %q, %v", v, err)
		}
	})
	t.Run("ok/stable encoding", func(t *testing.T) {
		// The hash of a fixed text: any process, any run, any map order.
		items := []policy.Item{
			{ID: "b", Revision: 2, Payload: map[string]any{"z": true, "a": "<x>"}, Name: "ignored", Via: "user"},
			{ID: "a", Revision: 1, Payload: map[string]any{"n": 1.5}},
		}
		sum := sha256.Sum256([]byte(`[{"id":"a","revision":1,"payload":{"n":1.5}},{"id":"b","revision":2,"payload":{"a":"\u003cx\u003e","z":true}}]`))
		for range 20 {
			if v, err := policy.Version(items); v != hex.EncodeToString(sum[:]) || err != nil {
				t.Fatalf("Version = %q, %v; want %x", v, err, sum)
			}
			slices.Reverse(items)
		}
	})
	forEach(t, func(t *testing.T, e env) {
		ctx := context.Background()
		u := usertest.CreateUser(t, e.db, "ada")
		d := policytest.Enroll(t, e.db, u.ID)
		p := e.create(t, "office", policy.WiFi, 1, `{"ssid":"office","security":"none"}`)
		e.assign(t, p, policy.TargetUser, u.ID)
		v1 := e.effective(t, d).Version
		if v1 == "0" || len(v1) != 64 {
			t.Fatalf("version %q", v1)
		}
		// Another service on the same database (another process) agrees.
		other := &policy.Service{Store: e.db}
		if eff, err := other.Effective(ctx, d); err != nil || eff.Version != v1 {
			t.Fatalf("second service: %v, %v; want %s", eff, err, v1)
		}
		rename := "renamed"
		if _, err := e.svc.Update(ctx, p.ID, policy.Patch{Name: &rename}); err != nil {
			t.Fatal(err)
		}
		if v := e.effective(t, d).Version; v != v1 {
			t.Fatalf("a rename changed the version")
		}
		// The same settings in another key order and spacing are the same.
		if got, err := e.svc.Update(ctx, p.ID, policy.Patch{Settings: json.RawMessage(`{ "security":"none", "ssid":"office" }`)}); err != nil || got.Revision != 1 {
			t.Fatalf("Update with reordered settings: revision %v, %v; want 1", got, err)
		}
		if v := e.effective(t, d).Version; v != v1 {
			t.Fatalf("reordered settings changed the version")
		}
		got, err := e.svc.Update(ctx, p.ID, policy.Patch{Settings: json.RawMessage(`{"ssid":"office","security":"none","hidden":true}`)})
		if err != nil || got.Revision != 2 {
			t.Fatalf("Update settings: %v, %v; want revision 2", got, err)
		}
		v2 := e.effective(t, d).Version
		if v2 == v1 {
			t.Fatal("a settings change kept the version")
		}
		if err := e.svc.Unassign(ctx, p.ID, policy.TargetUser, u.ID); err != nil {
			t.Fatal(err)
		}
		if v := e.effective(t, d).Version; v != "0" {
			t.Fatalf("version after unassigning everything = %q, want 0", v)
		}
	})
}

func TestCreateAndUpdateErrors(t *testing.T) {
	forEach(t, func(t *testing.T, e env) {
		ctx := context.Background()
		first := e.create(t, "Office", policy.WiFi, 1, `{"ssid":"o","security":"none"}`)
		wifiOther := e.create(t, "Other", policy.WiFi, 1, `{"ssid":"o","security":"none"}`)
		cert := e.create(t, "Radius CA", policy.Certificate, 1, `{"type":"user_pkcs12"}`)
		tls := func(ref string) json.RawMessage {
			return json.RawMessage(`{"ssid":"c","security":"wpa2_enterprise","eap":{"eap_type":"tls","certificate_profile_id":"` + ref + `"}}`)
		}
		tests := []struct {
			name      string
			in        policy.NewPolicy
			wantCode  string
			wantField string
		}{
			{"fail/name taken in kind", policy.NewPolicy{Name: " Office ", Kind: policy.WiFi, Rank: 1, Settings: json.RawMessage(`{"ssid":"x","security":"none"}`)}, "policy_name_taken", ""},
			{"fail/negative length", policy.NewPolicy{Name: "p", Kind: policy.ITPolicy, Rank: 1, Settings: json.RawMessage(`{"password_required":true,"password_min_length":-1}`)}, policy.CodeInvalid, "settings.password_min_length"},
			{"fail/unknown key", policy.NewPolicy{Name: "p", Kind: policy.ITPolicy, Rank: 1, Settings: json.RawMessage(`{"camera":false}`)}, policy.CodeInvalid, "settings.camera"},
			{"fail/wrong type", policy.NewPolicy{Name: "p", Kind: policy.ITPolicy, Rank: 1, Settings: json.RawMessage(`{"camera_disabled":1}`)}, policy.CodeInvalid, "settings.camera_disabled"},
			{"fail/missing certificate profile", policy.NewPolicy{Name: "c", Kind: policy.WiFi, Rank: 1, Settings: tls(id.New())}, policy.CodeInvalid, "settings.eap.certificate_profile_id"},
			{"fail/certificate reference to a wifi profile", policy.NewPolicy{Name: "c", Kind: policy.WiFi, Rank: 1, Settings: tls(wifiOther.ID)}, policy.CodeInvalid, "settings.eap.certificate_profile_id"},
			{"ok/same name in another kind", policy.NewPolicy{Name: "Office", Kind: policy.VPN, Rank: 1, Settings: json.RawMessage(`{"type":"ssl","server":"vpn.example.com","auth":"password"}`)}, "", ""},
			{"ok/certificate reference", policy.NewPolicy{Name: "c", Kind: policy.WiFi, Rank: 1, Settings: tls(cert.ID)}, "", ""},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				_, err := e.svc.Create(ctx, tc.in)
				if code(err) != tc.wantCode || tc.wantCode == "" && err != nil {
					t.Fatalf("Create: %v, want code %q", err, tc.wantCode)
				}
				if tc.wantField != "" && !slices.Contains(fieldsOf(t, err), tc.wantField) {
					t.Fatalf("Create: %v, want field %s", err, tc.wantField)
				}
				if tc.wantCode != "" && errs.KindOf(err) != map[string]errs.Kind{"policy_name_taken": errs.Conflict, policy.CodeInvalid: errs.Invalid}[tc.wantCode] {
					t.Fatalf("Create: kind %v", errs.KindOf(err))
				}
			})
		}
		name := "Other"
		if _, err := e.svc.Update(ctx, first.ID, policy.Patch{Name: &name}); code(err) != "policy_name_taken" {
			t.Errorf("Update to a taken name: %v", err)
		}
		rank := 0
		if _, err := e.svc.Update(ctx, first.ID, policy.Patch{Rank: &rank}); code(err) != policy.CodeInvalid {
			t.Errorf("Update to rank 0: %v", err)
		}
		if _, err := e.svc.Update(ctx, id.New(), policy.Patch{Name: &name}); code(err) != "policy_not_found" {
			t.Errorf("Update unknown: %v", err)
		}
		if _, err := e.svc.Get(ctx, id.New()); code(err) != "policy_not_found" || errs.KindOf(err) != errs.NotFound {
			t.Errorf("Get unknown: %v", err)
		}
		if err := e.svc.Delete(ctx, id.New()); code(err) != "policy_not_found" {
			t.Errorf("Delete unknown: %v", err)
		}
		if err := e.svc.Assign(ctx, first.ID, policy.TargetUser, id.New()); code(err) != "policy_target_not_found" {
			t.Errorf("Assign to unknown user: %v", err)
		}
		if err := e.svc.Assign(ctx, id.New(), policy.TargetUser, id.New()); code(err) != "policy_not_found" {
			t.Errorf("Assign unknown policy: %v", err)
		}
		if err := e.svc.Assign(ctx, first.ID, "device", id.New()); code(err) != policy.CodeInvalid {
			t.Errorf("Assign to a device: %v", err)
		}
		if err := e.svc.Unassign(ctx, first.ID, policy.TargetGroup, id.New()); code(err) != "policy_assignment_not_found" {
			t.Errorf("Unassign missing: %v", err)
		}
		if _, err := e.svc.List(ctx, policy.ListQuery{Kind: "telex"}); code(err) != policy.CodeInvalid {
			t.Errorf("List unknown kind: %v", err)
		}
		if ps, err := e.svc.List(ctx, policy.ListQuery{Kind: policy.WiFi}); err != nil || len(ps) != 3 {
			t.Errorf("List wifi = %d, %v; want 3", len(ps), err)
		}
	})
}

func TestSecrets(t *testing.T) {
	forEach(t, func(t *testing.T, e env) {
		ctx := context.Background()
		u := usertest.CreateUser(t, e.db, "ada")
		d := policytest.Enroll(t, e.db, u.ID)
		p := e.create(t, "office", policy.WiFi, 1, `{"ssid":"office","security":"wpa2_personal","passphrase":"hunter2hunter2"}`)
		e.assign(t, p, policy.TargetUser, u.ID)

		shown := policy.Redacted(p)
		if strings.Contains(string(shown.Settings), "hunter2") || !strings.Contains(string(shown.Settings), `"passphrase":"***"`) {
			t.Fatalf("Redacted settings = %s", shown.Settings)
		}
		if !strings.Contains(string(p.Settings), "hunter2") {
			t.Fatal("Redacted changed its argument")
		}
		if got := e.effective(t, d).Items[0].Payload["passphrase"]; got != "hunter2hunter2" {
			t.Fatalf("device payload passphrase = %v, want the secret", got)
		}
		v1 := e.effective(t, d).Version

		// The administrator edits what the API showed: the secret stays.
		edited := strings.Replace(string(shown.Settings), `"ssid":"office"`, `"ssid":"office","auto_join":true`, 1)
		got, err := e.svc.Update(ctx, p.ID, policy.Patch{Settings: json.RawMessage(edited)})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(got.Settings), `"passphrase":"hunter2hunter2"`) || !strings.Contains(string(got.Settings), `"auto_join":true`) {
			t.Fatalf("settings after an update sending *** = %s", got.Settings)
		}
		// Sending *** with nothing stored is refused, not stored.
		if _, err := e.svc.Create(ctx, policy.NewPolicy{Name: "new", Kind: policy.WiFi, Rank: 1, Settings: json.RawMessage(`{"ssid":"x","security":"wpa2_personal","passphrase":"***"}`)}); !slices.Contains(fieldsOf(t, err), "settings.passphrase") {
			t.Fatalf("Create with ***: %v", err)
		}
		// A new secret replaces the old one and changes the version.
		if _, err := e.svc.Update(ctx, p.ID, policy.Patch{Settings: json.RawMessage(`{"ssid":"office","security":"wpa2_personal","passphrase":"correct horse"}`)}); err != nil {
			t.Fatal(err)
		}
		eff := e.effective(t, d)
		if eff.Items[0].Payload["passphrase"] != "correct horse" || eff.Version == v1 {
			t.Fatalf("after a new secret: payload %v, version changed %v", eff.Items[0].Payload, eff.Version != v1)
		}
		// Redacting a kind without secrets, or settings without the
		// secret, changes nothing.
		open := e.create(t, "open", policy.WiFi, 1, `{"ssid":"o","security":"none"}`)
		if string(policy.Redacted(open).Settings) != string(open.Settings) {
			t.Fatalf("Redacted(open) = %s", policy.Redacted(open).Settings)
		}
	})
}

func TestChangedAfterCommit(t *testing.T) {
	forEach(t, func(t *testing.T, e env) {
		ctx := context.Background()
		a, b, c := usertest.CreateUser(t, e.db, "a"), usertest.CreateUser(t, e.db, "b"), usertest.CreateUser(t, e.db, "c")
		top, sub := usertest.CreateGroup(t, e.db, "top"), usertest.CreateGroup(t, e.db, "sub")
		usertest.AddSubgroup(t, e.db, top.ID, sub.ID)
		usertest.AddMember(t, e.db, sub.ID, b.ID)
		da, db1, db2 := policytest.Enroll(t, e.db, a.ID), policytest.Enroll(t, e.db, b.ID), policytest.Enroll(t, e.db, b.ID)
		dc := policytest.Enroll(t, e.db, c.ID)
		sorted := func(ids ...string) [][]string { return [][]string{slices.Sorted(slices.Values(ids))} }

		p := e.create(t, "office", policy.WiFi, 1, `{"ssid":"o","security":"none"}`)
		wantJSON(t, "Changed after Create", e.spy.take(), [][]string(nil))

		// Changed runs after the commit: the device already sees the new
		// configuration when it is told.
		var seen []int
		e.spy.check = func(ctx context.Context) {
			eff, err := (&policy.Service{Store: e.db}).Effective(ctx, da)
			if err != nil {
				t.Error(err)
			}
			seen = append(seen, len(eff.Items))
		}
		e.assign(t, p, policy.TargetUser, a.ID)
		wantJSON(t, "Changed after Assign to a user", e.spy.take(), sorted(da.ID))
		wantJSON(t, "items the device saw when told", seen, []int{1})
		e.spy.check = nil

		e.assign(t, p, policy.TargetGroup, top.ID)
		wantJSON(t, "Changed after Assign to a group", e.spy.take(), sorted(db1.ID, db2.ID))

		rename := "renamed"
		if _, err := e.svc.Update(ctx, p.ID, policy.Patch{Name: &rename}); err != nil {
			t.Fatal(err)
		}
		wantJSON(t, "Changed after a rename", e.spy.take(), [][]string(nil))
		rank := 3
		if _, err := e.svc.Update(ctx, p.ID, policy.Patch{Rank: &rank}); err != nil {
			t.Fatal(err)
		}
		wantJSON(t, "Changed after a rank change", e.spy.take(), sorted(da.ID, db1.ID, db2.ID))
		if _, err := e.svc.Update(ctx, p.ID, policy.Patch{Platforms: &[]string{"linux"}}); err != nil {
			t.Fatal(err)
		}
		wantJSON(t, "Changed after a platforms change", e.spy.take(), sorted(da.ID, db1.ID, db2.ID))

		if err := e.svc.Unassign(ctx, p.ID, policy.TargetUser, a.ID); err != nil {
			t.Fatal(err)
		}
		wantJSON(t, "Changed after Unassign", e.spy.take(), sorted(da.ID))

		if err := e.svc.Refresh(ctx, a.ID, c.ID, a.ID); err != nil {
			t.Fatal(err)
		}
		wantJSON(t, "Changed by Refresh", e.spy.take(), sorted(da.ID, dc.ID))
		if err := e.svc.RefreshGroups(ctx, sub.ID); err != nil {
			t.Fatal(err)
		}
		wantJSON(t, "Changed by RefreshGroups", e.spy.take(), sorted(db1.ID, db2.ID))

		// A failing Changed is reported, and the change stands.
		e.spy.err = errors.New("push service down")
		settings := json.RawMessage(`{"ssid":"new","security":"none"}`)
		got, err := e.svc.Update(ctx, p.ID, policy.Patch{Settings: settings})
		if !errors.Is(err, policy.ErrNotNotified) || errs.KindOf(err) != errs.Unavailable || got == nil {
			t.Fatalf("Update with Changed failing: %v, %v", got, err)
		}
		if stored, _ := e.svc.Get(ctx, p.ID); stored.Revision != 3 || !strings.Contains(string(stored.Settings), `"new"`) {
			t.Fatalf("the update did not stand: %+v", stored)
		}
		e.spy.take()
		e.spy.err = nil

		// Delete tells the devices found before the assignments went.
		if err := e.svc.Delete(ctx, p.ID); err != nil {
			t.Fatal(err)
		}
		wantJSON(t, "Changed after Delete", e.spy.take(), sorted(db1.ID, db2.ID))
		if eff := e.effective(t, db1); len(eff.Items) != 0 {
			t.Fatalf("items after Delete: %v", names(eff))
		}
	})
}

func TestStatus(t *testing.T) {
	forEach(t, func(t *testing.T, e env) {
		ctx := context.Background()
		u, other := usertest.CreateUser(t, e.db, "ada"), usertest.CreateUser(t, e.db, "other")
		d := policytest.Enroll(t, e.db, u.ID)
		ok := e.create(t, "ok", policy.WiFi, 1, `{"ssid":"a","security":"none"}`)
		bad := e.create(t, "bad", policy.WiFi, 2, `{"ssid":"b","security":"none"}`)
		later := e.create(t, "later", policy.WiFi, 3, `{"ssid":"c","security":"none"}`)
		foreign := e.create(t, "foreign", policy.WiFi, 1, `{"ssid":"f","security":"none"}`)
		for _, p := range []*policy.Policy{ok, bad, later} {
			e.assign(t, p, policy.TargetUser, u.ID)
		}
		e.assign(t, foreign, policy.TargetUser, other.ID)
		eff := e.effective(t, d)

		invalid := []struct {
			name     string
			version  string
			states   []policy.ItemState
			wantCode string
		}{
			{"fail/bad status", eff.Version, []policy.ItemState{{ID: ok.ID, Revision: 1, Status: "done"}}, "invalid_status"},
			{"fail/revision 0", eff.Version, []policy.ItemState{{ID: ok.ID, Status: policy.ItemApplied}}, "invalid_status"},
			{"fail/version not hex", "<script>", nil, "invalid_status"},
			{"fail/error not UTF-8", eff.Version, []policy.ItemState{{ID: ok.ID, Revision: 1, Status: policy.ItemFailed, Error: "\xff"}}, "invalid_status"},
			{"fail/too many states", eff.Version, make([]policy.ItemState, policy.MaxStates+1), "too_many_states"},
		}
		for _, tc := range invalid {
			t.Run(tc.name, func(t *testing.T) {
				if err := e.svc.RecordStatus(ctx, d, tc.version, tc.states); code(err) != tc.wantCode {
					t.Fatalf("RecordStatus: %v, want %s", err, tc.wantCode)
				}
			})
		}
		gone := *d
		gone.ID = id.New()
		if err := e.svc.RecordStatus(ctx, &gone, eff.Version, nil); code(err) != "device_not_found" {
			t.Fatalf("RecordStatus of an unknown device: %v", err)
		}

		err := e.svc.RecordStatus(ctx, d, eff.Version, []policy.ItemState{
			{ID: ok.ID, Revision: 1, Status: policy.ItemApplied},
			{ID: bad.ID, Revision: 1, Status: policy.ItemFailed, Error: usertest.ScriptTag},
			{ID: foreign.ID, Revision: 1, Status: policy.ItemApplied}, // not this device's: dropped
		})
		if err != nil {
			t.Fatal(err)
		}
		st, err := e.svc.Status(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		if st.Version != eff.Version || st.UpToDate || st.ReportedVersion != eff.Version {
			t.Fatalf("status versions: %+v", st)
		}
		statuses := func(st *policy.DeviceStatus) []string {
			var out []string
			for _, it := range st.Items {
				out = append(out, it.Name+"="+it.Status+":"+it.Error)
			}
			return out
		}
		wantJSON(t, "item statuses", statuses(st), []string{"ok=applied:", "bad=failed:" + usertest.ScriptTag, "later=pending:"})
		if _, states, _ := e.db.ItemStates(ctx, d.ID); len(states) != 2 {
			t.Fatalf("stored %d states, want 2 (the foreign one dropped)", len(states))
		}

		// A new revision of "ok" makes it pending again until reported.
		if _, err := e.svc.Update(ctx, ok.ID, policy.Patch{Settings: json.RawMessage(`{"ssid":"a2","security":"none"}`)}); err != nil {
			t.Fatal(err)
		}
		st, err = e.svc.Status(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		wantJSON(t, "item statuses after a revision", statuses(st), []string{"ok=pending:", "bad=failed:" + usertest.ScriptTag, "later=pending:"})

		// Acknowledged: up to date.
		if err := e.db.Acknowledge(ctx, d.ID, st.Version, policytest.T0); err != nil {
			t.Fatal(err)
		}
		d.ConfigVersion = st.Version
		if st, err := e.svc.Status(ctx, d); err != nil || !st.UpToDate {
			t.Fatalf("status after acknowledging: %+v, %v", st, err)
		}
	})
}

// wantJSON compares got and want by their JSON encoding, so that a nil and
// an empty slice, which mean the same here, compare equal.
func wantJSON(t testing.TB, what string, got, want any) {
	t.Helper()
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if string(g) != string(w) {
		t.Fatalf("%s:\n got %s\nwant %s", what, g, w)
	}
}

// TestMemoHoldsWithinOneRequestOnly: inside a WithMemo context a device's
// configuration is computed once, so the reads of one request agree even
// when a change commits in between; outside it, every read sees the change.
func TestMemoHoldsWithinOneRequestOnly(t *testing.T) {
	forEach(t, func(t *testing.T, e env) {
		ctx := context.Background()
		u := usertest.CreateUser(t, e.db, "ada")
		d := policytest.Enroll(t, e.db, u.ID)
		p := e.create(t, "office", policy.WiFi, 1, `{"ssid":"office","security":"none"}`)
		e.assign(t, p, policy.TargetUser, u.ID)
		req := policy.WithMemo(ctx)
		first, err := e.svc.Effective(req, d)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.Update(ctx, p.ID, policy.Patch{Settings: json.RawMessage(`{"ssid":"office-2","security":"none"}`)}); err != nil {
			t.Fatal(err)
		}
		again, err := e.svc.Effective(req, d)
		if err != nil || again.Version != first.Version {
			t.Fatalf("within the request the version moved from %s to %v (%v)", first.Version, again, err)
		}
		if now := e.effective(t, d); now.Version == first.Version {
			t.Fatal("outside the memo the change is not seen")
		}
		if fresh, _ := e.svc.Effective(policy.WithMemo(ctx), d); fresh.Version == first.Version {
			t.Fatal("a new request's memo returned the old configuration")
		}
	})
}

// TestSecretsSealedAtRest: with a Box the database holds only the sealed
// text of a secret setting; the device still gets the plain value, an
// unchanged secret keeps its sealed text (no new revision), and a Core
// whose key differs cannot read it.
func TestSecretsSealedAtRest(t *testing.T) {
	forEach(t, func(t *testing.T, e env) {
		ctx := context.Background()
		box, err := secret.New(bytes.Repeat([]byte{7}, 32))
		if err != nil {
			t.Fatal(err)
		}
		e.svc.Box = box
		u := usertest.CreateUser(t, e.db, "ada")
		d := policytest.Enroll(t, e.db, u.ID)
		p := e.create(t, "office", policy.WiFi, 1, `{"ssid":"office","security":"wpa2_personal","passphrase":"hunter2hunter2"}`)
		e.assign(t, p, policy.TargetUser, u.ID)
		stored, err := e.db.Policy(ctx, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(stored.Settings), "hunter2") || !strings.Contains(string(stored.Settings), secret.Prefix) {
			t.Fatalf("stored settings = %s, want the passphrase sealed", stored.Settings)
		}
		if got := e.effective(t, d).Items[0].Payload["passphrase"]; got != "hunter2hunter2" {
			t.Fatalf("device payload passphrase = %v", got)
		}
		// Unchanged secret, sent back as *** or in the clear: same revision,
		// same sealed text.
		for _, settings := range []string{
			`{"ssid":"office","security":"wpa2_personal","passphrase":"***"}`,
			`{"ssid":"office","security":"wpa2_personal","passphrase":"hunter2hunter2"}`,
		} {
			got, err := e.svc.Update(ctx, p.ID, policy.Patch{Settings: json.RawMessage(settings)})
			if err != nil || got.Revision != 1 || string(got.Settings) != string(stored.Settings) {
				t.Fatalf("update with an unchanged secret: revision %v, settings %s, %v", got.Revision, got.Settings, err)
			}
		}
		got, err := e.svc.Update(ctx, p.ID, policy.Patch{Settings: json.RawMessage(`{"ssid":"office","security":"wpa2_personal","passphrase":"correct horse"}`)})
		if err != nil || got.Revision != 2 || strings.Contains(string(got.Settings), "correct horse") {
			t.Fatalf("update with a new secret: %+v, %v", got, err)
		}
		// A Core with another key fails loudly rather than send garbage.
		other, _ := secret.New(bytes.Repeat([]byte{8}, 32))
		wrong := &policy.Service{Store: e.db, Box: other}
		if _, err := wrong.Effective(ctx, d); !errors.Is(err, secret.ErrOpen) {
			t.Fatalf("Effective with another key: %v, want ErrOpen", err)
		}
	})
}
