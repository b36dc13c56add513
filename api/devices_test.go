package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/custos-uem/custos/api"
	"github.com/custos-uem/custos/api/apitest"
	"github.com/custos-uem/custos/command"
)

// fleet is the set-up of the command, policy and scope tests: a group
// "east" containing a subgroup "east-field"; alice (in east-field) and
// bob (in no group), each with an enrolled device; and carol, an
// administrator limited to east.
type fleet struct {
	east, field         string // group IDs
	alice, bob          string // user IDs
	aliceDev, bobDev    string // device IDs
	carol               *client
	carolID, carolToken string
}

func newFleet(t *testing.T, e *apitest.Env, c *client) *fleet {
	t.Helper()
	f := &fleet{}
	f.east = c.must(201, "POST", api.Prefix+"/groups", map[string]any{"name": "east"}).str("id")
	f.field = c.must(201, "POST", api.Prefix+"/groups", map[string]any{"name": "east-field"}).str("id")
	c.must(204, "POST", api.Prefix+"/groups/"+f.east+"/subgroups", map[string]any{"group_id": f.field})
	f.alice, f.aliceDev = enrolled(t, e, c, "alice")
	f.bob, f.bobDev = enrolled(t, e, c, "bob")
	c.must(204, "POST", api.Prefix+"/groups/"+f.field+"/members", map[string]any{"user_id": f.alice})
	r := c.must(201, "POST", api.Prefix+"/admins", map[string]any{"username": "Carol", "display_name": "Carol (east)", "scope_groups": []string{f.east}})
	tok, _ := r.Body["token"].(map[string]any)
	f.carolID, f.carolToken = r.str("id"), tok["token"].(string)
	f.carol = &client{t: t, e: e, token: f.carolToken}
	return f
}

// enrolled creates a user with an enrolled device and returns both IDs.
func enrolled(t *testing.T, e *apitest.Env, c *client, name string) (string, string) {
	t.Helper()
	email := name + "@example.com"
	uid := c.must(201, "POST", api.Prefix+"/users", map[string]any{"email": email}).str("id")
	pw := c.must(201, "POST", api.Prefix+"/users/"+uid+"/activation-passwords", nil).str("password")
	return uid, e.EnrollDevice(t, email, pw, "hw-"+name, name+"-laptop")
}

// queued returns the device's open commands, read from the service.
func queued(t *testing.T, e *apitest.Env, deviceID string) []*command.Command {
	t.Helper()
	cmds, err := e.Commands.List(context.Background(), command.Query{DeviceID: deviceID, Open: true, Limit: command.MaxPage})
	if err != nil {
		t.Fatal(err)
	}
	return cmds
}

func (r *resp) field(name string) string {
	e, _ := r.Body["error"].(map[string]any)
	f, _ := e["fields"].(map[string]any)
	s, _ := f[name].(string)
	return s
}

// bulkIDs returns n distinct, well-formed device IDs that name no device.
func bulkIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("0190a000-0000-7000-8000-%012d", i)
	}
	return ids
}

func TestCommandsPoliciesAndScope(t *testing.T) {
	const unknown = "0190a000-0000-7000-8000-000000000001"
	each(t, func(t *testing.T, e *apitest.Env, c *client) {
		f := newFleet(t, e, c)
		ctx := context.Background()
		for _, tc := range []struct {
			name string
			run  func(t *testing.T)
		}{
			{"fail/a command for a device outside the caller's scope", func(t *testing.T) {
				r := f.carol.do("POST", api.Prefix+"/devices/"+f.bobDev+"/commands", map[string]any{"type": "lock"})
				if r.Status != 404 || r.code() != "device_not_found" {
					t.Errorf("out of scope: %d %s", r.Status, r.Raw)
				}
				if q := queued(t, e, f.bobDev); len(q) != 0 {
					t.Errorf("queued %v", q)
				}
				// Every device route hides it alike, and the list leaves it out.
				for _, p := range []string{"", "/commands", "/configuration", "/compliance"} {
					if r := f.carol.do("GET", api.Prefix+"/devices/"+f.bobDev+p, nil); r.Status != 404 || r.code() != "device_not_found" {
						t.Errorf("GET device%s: %d %s", p, r.Status, r.Raw)
					}
				}
				if r := f.carol.do("DELETE", api.Prefix+"/devices/"+f.bobDev, nil); r.Status != 404 || r.code() != "device_not_found" {
					t.Errorf("remove: %d %s", r.Status, r.Raw)
				}
				if r := f.carol.do("DELETE", api.Prefix+"/users/"+f.bob, nil); r.Status != 404 || r.code() != "user_not_found" {
					t.Errorf("delete user out of scope: %d %s", r.Status, r.Raw)
				}
				// A command of such a device is not found either.
				cmd := c.must(201, "POST", api.Prefix+"/devices/"+f.bobDev+"/commands", map[string]any{"type": "device_info"})
				for _, m := range []string{"GET /commands/%s", "POST /commands/%s/cancel"} {
					method, path, _ := strings.Cut(fmt.Sprintf(m, cmd.str("id")), " ")
					if r := f.carol.do(method, api.Prefix+path, nil); r.Status != 404 || r.code() != "command_not_found" {
						t.Errorf("%s: %d %s", m, r.Status, r.Raw)
					}
				}
				c.must(200, "POST", api.Prefix+"/commands/"+cmd.str("id")+"/cancel", nil)
			}},
			{"fail/a bulk send naming one device outside the caller's scope", func(t *testing.T) {
				r := f.carol.do("POST", api.Prefix+"/commands", map[string]any{"device_ids": []string{f.aliceDev, f.bobDev}, "type": "lock"})
				if r.Status != 404 || r.code() != "device_not_found" || strings.Contains(string(r.Raw), f.bobDev) {
					t.Errorf("bulk out of scope: %d %s", r.Status, r.Raw)
				}
				if len(queued(t, e, f.aliceDev)) != 0 || len(queued(t, e, f.bobDev)) != 0 {
					t.Error("a refused bulk send queued something")
				}
				// An unscoped administrator naming an unknown device: the same, all or nothing.
				if r := c.do("POST", api.Prefix+"/commands", map[string]any{"device_ids": []string{f.aliceDev, unknown}, "type": "lock"}); r.Status != 404 || r.code() != "device_not_found" {
					t.Errorf("bulk with an unknown device: %d %s", r.Status, r.Raw)
				}
				if len(queued(t, e, f.aliceDev)) != 0 {
					t.Error("a refused bulk send queued something")
				}
			}},
			{"fail/priority out of range", func(t *testing.T) {
				for _, p := range []int{-1, 101} {
					r := c.do("POST", api.Prefix+"/devices/"+f.aliceDev+"/commands", map[string]any{"type": "lock", "priority": p})
					if r.Status != 400 || r.field("priority") == "" {
						t.Errorf("priority %d: %d %s", p, r.Status, r.Raw)
					}
				}
			}},
			{"fail/unknown command type", func(t *testing.T) {
				for _, body := range []map[string]any{{"type": "self_destruct"}, {"type": ""}, {}} {
					if r := c.do("POST", api.Prefix+"/devices/"+f.aliceDev+"/commands", body); r.Status != 400 {
						t.Errorf("%v: %d %s", body, r.Status, r.Raw)
					}
				}
				if r := c.do("POST", api.Prefix+"/commands", map[string]any{"device_ids": []string{f.aliceDev}, "type": "self_destruct"}); r.Status != 400 {
					t.Errorf("bulk: %d %s", r.Status, r.Raw)
				}
				if r := c.do("POST", api.Prefix+"/devices/"+f.aliceDev+"/commands", map[string]any{"type": "lock", "expires_in": "soon"}); r.Status != 400 || r.field("expires_in") == "" {
					t.Errorf("bad expires_in: %d %s", r.Status, r.Raw)
				}
				if len(queued(t, e, f.aliceDev)) != 0 {
					t.Error("a refused command was queued")
				}
			}},
			{"fail/policy with negative length, unknown key, wrong type", func(t *testing.T) {
				for _, tc := range []struct {
					settings string
					field    string
				}{
					{`{"password_required":true,"password_min_length":-4}`, "settings.password_min_length"},
					{`{"password_required":true,"self_destruct":true}`, "settings.self_destruct"},
					{`{"password_required":"yes"}`, "settings.password_required"},
				} {
					r := c.do("POST", api.Prefix+"/policies", `{"name":"p","kind":"it_policy","settings":`+tc.settings+`}`)
					if r.Status != 400 || r.code() != "invalid_policy" || r.field(tc.field) == "" {
						t.Errorf("%s: %d %s", tc.settings, r.Status, r.Raw)
					}
				}
				if r := c.do("POST", api.Prefix+"/policies", map[string]any{"name": "p", "kind": "teleport", "settings": map[string]any{}}); r.Status != 400 || r.field("kind") == "" {
					t.Errorf("unknown kind: %d %s", r.Status, r.Raw)
				}
				if r := c.must(200, "GET", api.Prefix+"/policies", nil); len(r.items()) != 0 {
					t.Errorf("a refused policy was stored: %s", r.Raw)
				}
			}},
			{"fail/cyclic or self-referencing group nesting", func(t *testing.T) {
				for _, pair := range [][2]string{{f.east, f.east}, {f.field, f.east}} {
					r := c.do("POST", api.Prefix+"/groups/"+pair[0]+"/subgroups", map[string]any{"group_id": pair[1]})
					if r.Status != 400 || r.code() != "group_cycle" {
						t.Errorf("nest %v: %d %s", pair, r.Status, r.Raw)
					}
				}
			}},
			{"fail/bulk over the limit", func(t *testing.T) {
				ids := bulkIDs(command.MaxBulk + 1)
				r := c.do("POST", api.Prefix+"/commands", map[string]any{"device_ids": ids, "type": "lock"})
				if r.Status != 400 || r.code() != "too_many_devices" {
					t.Errorf("%d IDs: %d %.300s", len(ids), r.Status, r.Raw)
				}
				ids = bulkIDs(command.MaxBulk + 20_000)
				if r := c.do("POST", api.Prefix+"/commands", map[string]any{"device_ids": ids, "type": "lock"}); r.Status != 413 || r.code() != "body_too_large" {
					t.Errorf("%d IDs: %d %.300s", len(ids), r.Status, r.Raw)
				}
				if r := c.do("POST", api.Prefix+"/commands", map[string]any{"device_ids": []string{}, "type": "lock"}); r.Status != 400 || r.field("device_ids") == "" {
					t.Errorf("no IDs: %d %s", r.Status, r.Raw)
				}
			}},
			{"fail/cancel of a completed command", func(t *testing.T) {
				cmd := c.must(201, "POST", api.Prefix+"/devices/"+f.aliceDev+"/commands", map[string]any{"type": "device_info"})
				got, err := e.Commands.Next(ctx, f.aliceDev)
				if err != nil || got.ID != cmd.str("id") {
					t.Fatalf("next: %v %v", got, err)
				}
				if _, _, err := e.Commands.Report(ctx, f.aliceDev, command.Result{CommandID: got.ID, Status: command.StatusAcknowledged}); err != nil {
					t.Fatal(err)
				}
				if r := c.do("POST", api.Prefix+"/commands/"+got.ID+"/cancel", nil); r.Status != 409 || r.code() != "command_final" {
					t.Errorf("cancel: %d %s", r.Status, r.Raw)
				}
			}},
			{"fail/unknown IDs", func(t *testing.T) {
				for _, tc := range []struct{ method, path, code string }{
					{"GET", "/commands/" + unknown, "command_not_found"},
					{"POST", "/commands/" + unknown + "/cancel", "command_not_found"},
					{"GET", "/devices/" + unknown + "/commands", "device_not_found"},
					{"POST", "/devices/" + unknown + "/commands", "device_not_found"},
					{"GET", "/devices/" + unknown + "/configuration", "device_not_found"},
					{"GET", "/devices/" + unknown + "/compliance", "device_not_found"},
					{"GET", "/policies/" + unknown, "policy_not_found"},
					{"PATCH", "/policies/" + unknown, "policy_not_found"},
					{"DELETE", "/policies/" + unknown, "policy_not_found"},
					{"GET", "/policies/" + unknown + "/assignments", "policy_not_found"},
					{"DELETE", "/policies/" + unknown + "/assignments/group/" + f.east, "policy_assignment_not_found"},
					{"GET", "/groups/" + unknown + "/subgroups", "group_not_found"},
					{"POST", "/groups/" + unknown + "/subgroups", "group_not_found"},
					{"DELETE", "/groups/" + f.east + "/subgroups/" + unknown, "subgroup_not_found"},
				} {
					var body any
					switch {
					case tc.method == "PATCH":
						body = map[string]any{}
					case strings.HasSuffix(tc.path, "/commands") && tc.method == "POST":
						body = map[string]any{"type": "lock"}
					case strings.HasSuffix(tc.path, "/subgroups"):
						body = map[string]any{"group_id": f.east}
					}
					if r := c.do(tc.method, api.Prefix+tc.path, body); r.Status != 404 || r.code() != tc.code {
						t.Errorf("%s %s: %d %s, want 404 %s", tc.method, tc.path, r.Status, r.Raw, tc.code)
					}
				}
				p := c.must(201, "POST", api.Prefix+"/policies", map[string]any{"name": "x", "kind": "it_policy", "settings": map[string]any{}})
				if r := c.do("POST", api.Prefix+"/policies/"+p.str("id")+"/assignments", map[string]any{"target_kind": "group", "target_id": unknown}); r.Status != 404 {
					t.Errorf("assign to an unknown group: %d %s", r.Status, r.Raw)
				}
				if r := c.do("POST", api.Prefix+"/policies/"+p.str("id")+"/assignments", map[string]any{"target_kind": "device", "target_id": unknown}); r.Status != 400 || r.field("target_kind") == "" {
					t.Errorf("assign to a device: %d %s", r.Status, r.Raw)
				}
				c.must(204, "DELETE", api.Prefix+"/policies/"+p.str("id"), nil)
			}},
			{"fail/oversized bodies", func(t *testing.T) {
				for path, limit := range map[string]int{
					"/devices/" + f.aliceDev + "/commands":  api.MaxCommandBody,
					"/policies":                             api.MaxPolicyBody,
					"/policies/" + unknown + "/assignments": api.MaxAssignmentBody,
					"/groups/" + f.east + "/subgroups":      api.MaxMemberBody,
					"/admins":                               api.MaxAdminBody,
				} {
					big := `{"name":"` + strings.Repeat("a", limit) + `"}`
					if r := c.do("POST", api.Prefix+path, big); r.Status != 413 || r.code() != "body_too_large" {
						t.Errorf("POST %s with %d bytes: %d %.200s", path, len(big), r.Status, r.Raw)
					}
				}
			}},
			{"fail/a scoped administrator changes no group", func(t *testing.T) {
				// Adding someone to a group of her scope would give her
				// their devices.
				for _, call := range []struct{ method, path string }{
					{"POST", "/groups"},
					{"PATCH", "/groups/" + f.east},
					{"DELETE", "/groups/" + f.east},
					{"POST", "/groups/" + f.east + "/members"},
					{"POST", "/groups/" + f.east + "/subgroups"},
				} {
					if r := f.carol.do(call.method, api.Prefix+call.path, map[string]any{"name": "x", "user_id": unknown, "group_id": unknown}); r.Status != 403 || r.code() != "admin_scoped" {
						t.Errorf("scoped %s %s: %d %s", call.method, call.path, r.Status, r.Raw)
					}
				}
			}},
			{"fail/a scoped administrator creates no administrator", func(t *testing.T) {
				if r := f.carol.do("POST", api.Prefix+"/admins", map[string]any{"username": "dave"}); r.Status != 403 || r.code() != "admin_scoped" {
					t.Errorf("scoped create: %d %s", r.Status, r.Raw)
				}
				if r := c.do("POST", api.Prefix+"/admins", map[string]any{"username": "dave", "scope_groups": []string{unknown}}); r.Status != 400 || r.field("scope_groups") == "" {
					t.Errorf("unknown scope group: %d %s", r.Status, r.Raw)
				}
				if r := c.do("POST", api.Prefix+"/admins", map[string]any{"username": "carol"}); r.Status != 409 || r.code() != "admin_username_taken" {
					t.Errorf("duplicate: %d %s", r.Status, r.Raw)
				}
				// Carol sees her own tokens only, and cannot revoke the others'.
				ts := f.carol.must(200, "GET", api.Prefix+"/tokens", nil).items()
				if len(ts) != 1 || ts[0]["admin_id"] != f.carolID {
					t.Errorf("carol's tokens: %v", ts)
				}
				all := c.must(200, "GET", api.Prefix+"/tokens", nil).items()
				for _, tk := range all {
					if tk["admin_id"] != f.carolID {
						if r := f.carol.do("DELETE", api.Prefix+"/tokens/"+tk["id"].(string), nil); r.Status != 404 {
							t.Errorf("carol revoked another's token: %d", r.Status)
						}
					}
				}
			}},
			{"ok/a scoped administrator sees the devices of nested groups only", func(t *testing.T) {
				ds := f.carol.must(200, "GET", api.Prefix+"/devices", nil).items()
				if len(ds) != 1 || ds[0]["id"] != f.aliceDev {
					t.Errorf("carol's devices: %v", ds)
				}
				f.carol.must(200, "GET", api.Prefix+"/devices/"+f.aliceDev, nil)
				if all := c.must(200, "GET", api.Prefix+"/devices", nil).items(); len(all) != 2 {
					t.Errorf("admin's devices: %v", all)
				}
				as := c.must(200, "GET", api.Prefix+"/admins", nil).items()
				if len(as) != 2 || as[1]["username"] != "carol" || len(as[1]["scope_groups"].([]any)) != 1 || len(as[0]["scope_groups"].([]any)) != 0 {
					t.Errorf("admins: %v", as)
				}
				// Carol's audit trail is her own.
				info := f.carol.must(201, "POST", api.Prefix+"/devices/"+f.aliceDev+"/commands", map[string]any{"type": "device_info"})
				f.carol.must(200, "POST", api.Prefix+"/commands/"+info.str("id")+"/cancel", nil)
				for _, it := range f.carol.must(200, "GET", api.Prefix+"/audit", nil).items() {
					if it["actor"] != f.carolID {
						t.Errorf("carol reads %v", it)
					}
				}
			}},
			{"ok/create policy, assign to group, configuration shows the item pending", func(t *testing.T) {
				p := c.must(201, "POST", api.Prefix+"/policies", map[string]any{"name": "Office Wi-Fi", "kind": "wifi",
					"settings": map[string]any{"ssid": "office", "security": "wpa2_personal", "passphrase": "correct horse battery"}})
				if strings.Contains(string(p.Raw), "correct horse") || !strings.Contains(string(p.Raw), `"***"`) {
					t.Errorf("created policy shows its secret: %s", p.Raw)
				}
				e.Changed()
				c.must(204, "POST", api.Prefix+"/policies/"+p.str("id")+"/assignments", map[string]any{"target_kind": "group", "target_id": f.east})
				if ch := e.Changed(); len(ch) != 1 || ch[0] != f.aliceDev {
					t.Errorf("devices told of the assignment: %v", ch)
				}
				if as := c.must(200, "GET", api.Prefix+"/policies/"+p.str("id")+"/assignments", nil).items(); len(as) != 1 || as[0]["target_id"] != f.east {
					t.Errorf("assignments %v", as)
				}
				cfg := f.carol.must(200, "GET", api.Prefix+"/devices/"+f.aliceDev+"/configuration", nil)
				items, _ := cfg.Body["items"].([]any)
				if len(items) != 1 || strings.Contains(string(cfg.Raw), "correct horse") {
					t.Fatalf("configuration %s", cfg.Raw)
				}
				it := items[0].(map[string]any)
				if it["id"] != p.str("id") || it["status"] != "pending" || it["via"] != "group:"+f.east || it["payload"].(map[string]any)["passphrase"] != "***" {
					t.Errorf("item %v", it)
				}
				if cfg := c.must(200, "GET", api.Prefix+"/devices/"+f.bobDev+"/configuration", nil); len(cfg.Body["items"].([]any)) != 0 {
					t.Errorf("bob's configuration %s", cfg.Raw)
				}
				list := c.must(200, "GET", api.Prefix+"/policies?kind=wifi", nil)
				if len(list.items()) != 1 || strings.Contains(string(list.Raw), "correct horse") {
					t.Errorf("list %s", list.Raw)
				}
				if r := c.must(200, "GET", api.Prefix+"/policies?kind=vpn", nil); len(r.items()) != 0 {
					t.Errorf("kind filter %s", r.Raw)
				}
				up := c.must(200, "PATCH", api.Prefix+"/policies/"+p.str("id"), map[string]any{"description": "HQ"})
				if up.str("description") != "HQ" || strings.Contains(string(up.Raw), "correct horse") {
					t.Errorf("update %s", up.Raw)
				}
				// Membership changes re-sync the devices they touch.
				e.Changed()
				c.must(204, "DELETE", api.Prefix+"/groups/"+f.field+"/members/"+f.alice, nil)
				if ch := e.Changed(); len(ch) != 1 || ch[0] != f.aliceDev {
					t.Errorf("devices told of the removal: %v", ch)
				}
				c.must(204, "POST", api.Prefix+"/groups/"+f.field+"/members", map[string]any{"user_id": f.alice})
				c.must(204, "DELETE", api.Prefix+"/groups/"+f.east+"/subgroups/"+f.field, nil)
				c.must(204, "POST", api.Prefix+"/groups/"+f.east+"/subgroups", map[string]any{"group_id": f.field})
				if ch := e.Changed(); len(ch) != 3 {
					t.Errorf("devices told of member and nesting changes: %v", ch)
				}
				if sg := c.must(200, "GET", api.Prefix+"/groups/"+f.east+"/subgroups", nil).items(); len(sg) != 1 || sg[0]["id"] != f.field {
					t.Errorf("subgroups %v", sg)
				}
				c.must(204, "DELETE", api.Prefix+"/policies/"+p.str("id")+"/assignments/group/"+f.east, nil)
				c.must(204, "DELETE", api.Prefix+"/policies/"+p.str("id"), nil)
			}},
			{"ok/send lock, list queue, cancel, history shows cancelled", func(t *testing.T) {
				lock := f.carol.must(201, "POST", api.Prefix+"/devices/"+f.aliceDev+"/commands", map[string]any{"type": "lock", "priority": 95, "expires_in": "24h"})
				if lock.str("type") != "lock" || lock.Body["priority"] != float64(95) || lock.str("status") != "pending" || lock.str("created_by") != f.carolID {
					t.Errorf("lock %s", lock.Raw)
				}
				q := f.carol.must(200, "GET", api.Prefix+"/devices/"+f.aliceDev+"/commands?status=open", nil).items()
				if len(q) != 1 || q[0]["id"] != lock.str("id") {
					t.Errorf("queue %v", q)
				}
				if got := f.carol.must(200, "GET", api.Prefix+"/commands/"+lock.str("id"), nil); got.str("id") != lock.str("id") {
					t.Errorf("get %s", got.Raw)
				}
				if r := f.carol.must(200, "POST", api.Prefix+"/commands/"+lock.str("id")+"/cancel", nil); r.str("status") != "cancelled" {
					t.Errorf("cancel %s", r.Raw)
				}
				if q := f.carol.must(200, "GET", api.Prefix+"/devices/"+f.aliceDev+"/commands?status=open", nil).items(); len(q) != 0 {
					t.Errorf("queue after cancel %v", q)
				}
				h := f.carol.must(200, "GET", api.Prefix+"/devices/"+f.aliceDev+"/commands?status=final", nil).items()
				if len(h) == 0 || h[len(h)-1]["id"] != lock.str("id") || h[len(h)-1]["status"] != "cancelled" {
					t.Errorf("history %v", h)
				}
				if r := c.do("GET", api.Prefix+"/devices/"+f.aliceDev+"/commands?status=lost", nil); r.Status != 400 {
					t.Errorf("bad status: %d", r.Status)
				}
			}},
			{"ok/bulk send is one audit entry noting the device count", func(t *testing.T) {
				r := c.must(201, "POST", api.Prefix+"/commands", map[string]any{"device_ids": []string{f.aliceDev, f.bobDev, f.aliceDev}, "type": "message", "payload": map[string]any{"text": "hello"}})
				if r.Body["count"] != float64(2) || len(r.Body["items"].([]any)) != 2 {
					t.Errorf("bulk %s", r.Raw)
				}
				if len(queued(t, e, f.aliceDev)) != 1 || len(queued(t, e, f.bobDev)) != 1 {
					t.Error("bulk did not queue one command per device")
				}
				es := c.must(200, "GET", api.Prefix+"/audit?action=command.send_bulk", nil).items()
				if len(es) == 0 || es[0]["outcome"] != "ok" || es[0]["detail"].(map[string]any)["device_count"] != float64(2) {
					t.Errorf("bulk audit %v", es)
				}
				// Carol may bulk-send within her scope.
				f.carol.must(201, "POST", api.Prefix+"/commands", map[string]any{"device_ids": []string{f.aliceDev}, "type": "restart"})
			}},
			{"ok/compliance state", func(t *testing.T) {
				st := f.carol.must(200, "GET", api.Prefix+"/devices/"+f.aliceDev+"/compliance", nil)
				if st.str("device_id") != f.aliceDev || st.str("status") == "" {
					t.Errorf("compliance %s", st.Raw)
				}
			}},
		} {
			t.Run(tc.name, tc.run)
		}
		// Every mutating route of this test left its entry.
		var actions []string
		for _, it := range c.must(200, "GET", api.Prefix+"/audit?limit=500", nil).items() {
			actions = append(actions, it["action"].(string))
		}
		for _, want := range []string{"admin.create", "command.send", "command.send_bulk", "command.cancel", "policy.create", "policy.update",
			"policy.delete", "policy.assign", "policy.unassign", "group.subgroup.add", "group.subgroup.remove"} {
			if !strings.Contains(strings.Join(actions, " "), want) {
				t.Errorf("no %s entry", want)
			}
		}
	})
}

// TestCommandSecretsRedactedInEveryRead: the device gets the password of
// a set_password command and the Find My PIN of a lock or an erase; the
// answer to the administrator who sent it, the command read back and the
// device's queue show "***".
func TestCommandSecretsRedactedInEveryRead(t *testing.T) {
	for _, tc := range []struct {
		typ, member, secret string
	}{
		{"set_password", "password", "Tr0ub4dor&3"},
		{"lock", "pin", "271828"},
		{"wipe_device", "pin", "161803"},
	} {
		t.Run(tc.typ, func(t *testing.T) {
			each(t, func(t *testing.T, e *apitest.Env, c *client) {
				_, dev := enrolled(t, e, c, "dora")
				sent := c.must(201, "POST", api.Prefix+"/devices/"+dev+"/commands", map[string]any{"type": tc.typ, "payload": map[string]any{tc.member: tc.secret}})
				got := c.must(200, "GET", api.Prefix+"/commands/"+sent.str("id"), nil)
				list := c.must(200, "GET", api.Prefix+"/devices/"+dev+"/commands", nil)
				for what, r := range map[string]*resp{"send": sent, "get": got, "queue": list} {
					if strings.Contains(string(r.Raw), tc.secret) || !strings.Contains(string(r.Raw), `"***"`) {
						t.Errorf("%s shows %s", what, r.Raw)
					}
				}
				// The device still gets the real secret.
				next, err := e.Commands.Next(context.Background(), dev)
				var p map[string]string
				if err != nil || json.Unmarshal(next.Payload, &p) != nil || p[tc.member] != tc.secret {
					t.Fatalf("the device's command: %v, %v", next, err)
				}
			})
		})
	}
}
