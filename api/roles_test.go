package api_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/custos-uem/custos/api"
	"github.com/custos-uem/custos/api/apitest"
	"github.com/custos-uem/custos/auth"
)

// mustAdmin creates an administrator with role (and scope, if any) through
// the API and returns a client holding their first token, and their ID.
func mustAdmin(t *testing.T, e *apitest.Env, c *client, username, role string, scope ...string) (*client, string) {
	t.Helper()
	body := map[string]any{"username": username, "role": role}
	if len(scope) > 0 {
		body["scope_groups"] = scope
	}
	r := c.must(201, "POST", api.Prefix+"/admins", body)
	if r.str("role") != role {
		t.Fatalf("admin %s: role %q, want %q", username, r.str("role"), role)
	}
	tok := r.Body["token"].(map[string]any)["token"].(string)
	return &client{t: t, e: e, token: tok}, r.str("id")
}

// mustRole creates a custom role and returns its ID.
func mustRole(t *testing.T, c *client, name string, perms ...auth.Permission) string {
	t.Helper()
	if perms == nil {
		perms = []auth.Permission{}
	}
	return c.must(201, "POST", api.Prefix+"/roles", map[string]any{"name": name, "permissions": perms}).str("id")
}

// samplePath fills a route's path parameters with well-formed IDs.
func samplePath(pattern string) (method, path string) {
	method, path, _ = strings.Cut(pattern, " ")
	return method, strings.NewReplacer("{id}", "0190a000-0000-7000-8000-00000000000f", "{userID}", "0190a000-0000-7000-8000-00000000000e",
		"{childID}", "0190a000-0000-7000-8000-00000000000d", "{bindingID}", "0190a000-0000-7000-8000-00000000000b",
		"{targetKind}", "group", "{targetID}", "0190a000-0000-7000-8000-00000000000c").Replace(path)
}

func wantDenied(t *testing.T, r *resp, perm auth.Permission, what string) {
	t.Helper()
	if r.Status != http.StatusForbidden || r.code() != "permission_denied" || r.field("permission") != string(perm) ||
		!strings.Contains(r.Body["error"].(map[string]any)["message"].(string), string(perm)) {
		t.Errorf("%s: %d %s, want 403 permission_denied naming %s", what, r.Status, r.Raw, perm)
	}
}

// TestEveryRouteHasAPermission walks the route table: every route but the
// public document names a known permission, and an administrator whose
// role has every permission but that one is refused with 403 naming it —
// not 404, not 200 — before the handler runs.
func TestEveryRouteHasAPermission(t *testing.T) {
	byPerm := map[auth.Permission][]string{}
	for _, r := range api.Routes() {
		if r.Public {
			if r.Pattern != "GET "+api.Prefix+"/openapi.json" {
				t.Errorf("%s is public", r.Pattern)
			}
			continue
		}
		if !r.Permission.Valid() {
			t.Errorf("%s: permission %q is not one of auth.Permissions", r.Pattern, r.Permission)
			continue
		}
		byPerm[r.Permission] = append(byPerm[r.Permission], r.Pattern)
	}
	if t.Failed() {
		t.FailNow()
	}
	each(t, func(t *testing.T, e *apitest.Env, c *client) {
		for _, p := range auth.Permissions() {
			patterns := byPerm[p]
			if len(patterns) == 0 {
				continue
			}
			others := slices.DeleteFunc(auth.Permissions(), func(q auth.Permission) bool { return q == p })
			role := mustRole(t, c, "all but "+string(p), others...)
			without, adminID := mustAdmin(t, e, c, "no-"+strings.ReplaceAll(string(p), ".", "-"), role)
			for _, pat := range patterns {
				method, path := samplePath(pat)
				wantDenied(t, without.do(method, path, map[string]any{}), p, pat)
			}
			// Each refusal is in the audit trail, as denied.
			entries := c.must(200, "GET", api.Prefix+"/audit?actor="+adminID, nil).items()
			if len(entries) != len(patterns) {
				t.Errorf("%s: %d audit entries for %d refusals", p, len(entries), len(patterns))
			}
			for _, en := range entries {
				if en["outcome"] != "denied" || !strings.HasSuffix(en["action"].(string), ".denied") ||
					en["detail"].(map[string]any)["permission"] != string(p) || en["actor_ip"] == "" || en["request_id"] == "" {
					t.Errorf("%s: audit entry %v", p, en)
				}
			}
		}
	})
}

// TestBuiltInRoles samples, for each built-in role, routes it may and may
// not use.
func TestBuiltInRoles(t *testing.T) {
	each(t, func(t *testing.T, e *apitest.Env, c *client) {
		g := c.must(201, "POST", api.Prefix+"/groups", map[string]any{"name": "g"}).str("id")
		pol := c.must(201, "POST", api.Prefix+"/policies", map[string]any{"name": "p", "kind": "it_policy", "settings": map[string]any{}}).str("id")
		uid, dev := enrolled(t, e, c, "alice")
		type sample struct {
			method, path string
			body         any
			status       int
		}
		readOK := []sample{
			{"GET", "/users", nil, 200}, {"GET", "/users/" + uid, nil, 200}, {"GET", "/groups/" + g, nil, 200},
			{"GET", "/activation-profiles", nil, 200}, {"GET", "/devices/" + dev, nil, 200}, {"GET", "/devices/" + dev + "/commands", nil, 200},
			{"GET", "/policies/" + pol, nil, 200}, {"GET", "/devices/" + dev + "/compliance", nil, 200}, {"GET", "/tokens", nil, 200},
		}
		tests := []struct {
			name    string
			role    string
			samples []sample
		}{
			{"fail+ok/junior_help_desk reads, changes nothing", auth.RoleJuniorHelpDesk, append(slices.Clone(readOK),
				sample{"POST", "/devices/" + dev + "/commands", map[string]any{"type": "lock"}, 403},
				sample{"POST", "/users/" + uid + "/activation-passwords", nil, 403},
				sample{"POST", "/users", map[string]any{"email": "x@example.com"}, 403},
				sample{"GET", "/audit", nil, 403}, sample{"GET", "/admins", nil, 403}, sample{"GET", "/roles", nil, 403},
				sample{"POST", "/tokens", map[string]any{"name": "x"}, 403},
			)},
			{"fail+ok/help_desk sends commands and passwords, no changes, no wipe", auth.RoleHelpDesk, append(slices.Clone(readOK),
				sample{"POST", "/devices/" + dev + "/commands", map[string]any{"type": "lock"}, 201},
				sample{"POST", "/devices/" + dev + "/commands", map[string]any{"type": "wipe_device"}, 403},
				sample{"POST", "/users/" + uid + "/activation-passwords", nil, 201},
				sample{"PATCH", "/policies/" + pol, map[string]any{"name": "q"}, 403},
				sample{"PATCH", "/users/" + uid, map[string]any{"display_name": "A"}, 403},
				sample{"POST", "/activation-profiles", map[string]any{"name": "p", "types": map[string]any{}}, 403},
				sample{"DELETE", "/devices/" + dev, nil, 403},
				sample{"GET", "/audit", nil, 403}, sample{"GET", "/admins", nil, 403},
			)},
			{"fail+ok/enterprise_admin does everything but admins and roles", auth.RoleEnterpriseAdmin, append(slices.Clone(readOK),
				sample{"GET", "/audit", nil, 200}, sample{"GET", "/admins", nil, 200}, sample{"GET", "/roles", nil, 200},
				sample{"POST", "/devices/" + dev + "/commands", map[string]any{"type": "wipe_work"}, 201},
				sample{"PATCH", "/policies/" + pol, map[string]any{"name": "q"}, 200},
				sample{"POST", "/admins", map[string]any{"username": "x"}, 403},
				sample{"POST", "/roles", map[string]any{"name": "r", "permissions": []string{}}, 403},
			)},
			{"ok/security_admin does everything", auth.RoleSecurityAdmin, append(slices.Clone(readOK),
				sample{"GET", "/audit", nil, 200}, sample{"POST", "/roles", map[string]any{"name": "r", "permissions": []string{"devices.read"}}, 201},
				sample{"POST", "/admins", map[string]any{"username": "y", "role": auth.RoleHelpDesk}, 201},
			)},
		}
		for i, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				ac, _ := mustAdmin(t, e, c, "role"+string(rune('a'+i)), tc.role)
				for _, s := range tc.samples {
					r := ac.do(s.method, api.Prefix+s.path, s.body)
					if r.Status != s.status {
						t.Errorf("%s %s %v: %d %s, want %d", s.method, s.path, s.body, r.Status, r.Raw, s.status)
					}
					if s.status == 403 && r.code() != "permission_denied" {
						t.Errorf("%s %s: code %q", s.method, s.path, r.code())
					}
				}
			})
		}
	})
}

// TestHelpDeskPolicyChangeIsDeniedAndAudited: a help-desk administrator
// attempting a policy change gets 403 and leaves an audit entry.
func TestHelpDeskPolicyChangeIsDeniedAndAudited(t *testing.T) {
	each(t, func(t *testing.T, e *apitest.Env, c *client) {
		pol := c.must(201, "POST", api.Prefix+"/policies", map[string]any{"name": "p", "kind": "it_policy", "settings": map[string]any{}}).str("id")
		hd, hdID := mustAdmin(t, e, c, "helen", auth.RoleHelpDesk)
		wantDenied(t, hd.do("PATCH", api.Prefix+"/policies/"+pol, map[string]any{"name": "mine"}), auth.PoliciesWrite, "help desk policy change")
		if got := c.must(200, "GET", api.Prefix+"/policies/"+pol, nil).str("name"); got != "p" {
			t.Errorf("policy changed: %q", got)
		}
		a := c.must(200, "GET", api.Prefix+"/audit?action=policy.update.denied", nil).items()
		if len(a) != 1 {
			t.Fatalf("denied entries: %v", a)
		}
		d := a[0]["detail"].(map[string]any)
		if a[0]["actor"] != hdID || a[0]["outcome"] != "denied" || a[0]["object_id"] != pol || a[0]["object_type"] != "policy" ||
			a[0]["actor_ip"] != "127.0.0.1" || a[0]["request_id"] == "" || a[0]["at"] == "" ||
			d["permission"] != "policies.write" || d["method"] != "PATCH" || d["role"] != auth.RoleHelpDesk || d["admin"] != "helen" {
			t.Errorf("entry %v", a[0])
		}
	})
}

// TestHelpDeskCannotWipeButCanLock: wipe commands need wipe.send on top of
// commands.send, one device or many.
func TestHelpDeskCannotWipeButCanLock(t *testing.T) {
	each(t, func(t *testing.T, e *apitest.Env, c *client) {
		_, dev := enrolled(t, e, c, "alice")
		hd, _ := mustAdmin(t, e, c, "helen", auth.RoleHelpDesk)
		for _, typ := range []string{"wipe_work", "wipe_device", "raw"} {
			wantDenied(t, hd.do("POST", api.Prefix+"/devices/"+dev+"/commands", map[string]any{"type": typ}), auth.WipeSend, "single "+typ)
			wantDenied(t, hd.do("POST", api.Prefix+"/commands", map[string]any{"type": typ, "device_ids": []string{dev}}), auth.WipeSend, "bulk "+typ)
		}
		if n := len(queued(t, e, dev)); n != 0 {
			t.Fatalf("%d commands queued by refused sends", n)
		}
		hd.must(201, "POST", api.Prefix+"/devices/"+dev+"/commands", map[string]any{"type": "lock"})
		hd.must(201, "POST", api.Prefix+"/commands", map[string]any{"type": "lock", "device_ids": []string{dev}})
		if a := c.must(200, "GET", api.Prefix+"/audit?action=command.send.denied", nil).items(); len(a) != 3 {
			t.Errorf("denied single sends audited: %d", len(a))
		}
		// The security administrator may wipe.
		c.must(201, "POST", api.Prefix+"/devices/"+dev+"/commands", map[string]any{"type": "wipe_work"})
	})
}

// TestCustomRoleDevicesReadOnly: a role of devices.read alone lists and
// reads devices and nothing else.
func TestCustomRoleDevicesReadOnly(t *testing.T) {
	each(t, func(t *testing.T, e *apitest.Env, c *client) {
		uid, dev := enrolled(t, e, c, "alice")
		role := mustRole(t, c, "Device viewer", auth.DevicesRead)
		v, _ := mustAdmin(t, e, c, "viewer", role)
		if it := v.must(200, "GET", api.Prefix+"/devices", nil).items(); len(it) != 1 || it[0]["id"] != dev {
			t.Errorf("devices: %v", it)
		}
		v.must(200, "GET", api.Prefix+"/devices/"+dev, nil)
		v.must(200, "GET", api.Prefix+"/devices/"+dev+"/configuration", nil)
		wantDenied(t, v.do("DELETE", api.Prefix+"/devices/"+dev, nil), auth.DevicesWrite, "remove")
		wantDenied(t, v.do("GET", api.Prefix+"/users/"+uid, nil), auth.UsersRead, "user")
		wantDenied(t, v.do("GET", api.Prefix+"/devices/"+dev+"/commands", nil), auth.CommandsRead, "commands")
		wantDenied(t, v.do("POST", api.Prefix+"/devices/"+dev+"/commands", map[string]any{"type": "lock"}), auth.CommandsSend, "send")
	})
}

func TestRoleCRUD(t *testing.T) {
	const unknown = "0190a000-0000-7000-8000-000000000001"
	each(t, func(t *testing.T, e *apitest.Env, c *client) {
		roles := api.Prefix + "/roles"
		id := mustRole(t, c, "Auditor", auth.AuditRead, auth.AdminsRead)
		tests := []struct {
			name   string
			method string
			path   string
			body   any
			status int
			code   string
		}{
			{"fail/unknown permissions are listed", "POST", roles, map[string]any{"name": "x", "permissions": []string{"devices.read", "devices.nuke", "root"}}, 400, "unknown_permission"},
			{"fail/no name", "POST", roles, map[string]any{"name": " ", "permissions": []string{}}, 400, "invalid_role"},
			{"fail/name taken in another case", "POST", roles, map[string]any{"name": "AUDITOR", "permissions": []string{}}, 409, "role_name_taken"},
			{"fail/a built-in role's name", "POST", roles, map[string]any{"name": "help desk", "permissions": []string{}}, 409, "role_name_taken"},
			{"fail/a built-in role's ID", "POST", roles, map[string]any{"name": "Security_Admin", "permissions": []string{}}, 409, "role_name_taken"},
			{"fail/unknown field", "POST", roles, map[string]any{"name": "y", "permissions": []string{}, "built_in": true}, 400, "unknown_field"},
			{"fail/edit a built-in role", "PATCH", roles + "/" + auth.RoleHelpDesk, map[string]any{"permissions": []string{"wipe.send"}}, 409, "role_built_in"},
			{"fail/delete a built-in role", "DELETE", roles + "/" + auth.RoleSecurityAdmin, nil, 409, "role_built_in"},
			{"fail/get unknown", "GET", roles + "/" + unknown, nil, 404, "role_not_found"},
			{"fail/update unknown", "PATCH", roles + "/" + unknown, map[string]any{"name": "z"}, 404, "role_not_found"},
			{"fail/delete unknown", "DELETE", roles + "/" + unknown, nil, 404, "role_not_found"},
			{"fail/update with an unknown permission", "PATCH", roles + "/" + id, map[string]any{"permissions": []string{"audit.write"}}, 400, "unknown_permission"},
			{"fail/admin with an unknown role", "POST", api.Prefix + "/admins", map[string]any{"username": "u1", "role": unknown}, 400, "invalid_admin"},
			{"fail/binding of an unknown role", "POST", roles + "/" + unknown + "/bindings", map[string]any{"group": "cn=x"}, 404, "role_not_found"},
			{"fail/binding without a group", "POST", roles + "/" + id + "/bindings", map[string]any{"group": ""}, 400, "invalid_role_binding"},
			{"fail/binding with an unknown scope group", "POST", roles + "/" + id + "/bindings", map[string]any{"group": "cn=x", "scope_groups": []string{unknown}}, 400, "invalid_role_binding"},
			{"fail/remove unknown binding", "DELETE", roles + "/" + id + "/bindings/" + unknown, nil, 404, "role_binding_not_found"},
			{"ok/get built-in", "GET", roles + "/" + auth.RoleJuniorHelpDesk, nil, 200, ""},
			{"ok/get custom", "GET", roles + "/" + id, nil, 200, ""},
			{"ok/rename and change", "PATCH", roles + "/" + id, map[string]any{"name": "Auditors", "permissions": []string{"audit.read", "audit.read", "users.read"}}, 200, ""},
			{"ok/permissions listed", "GET", api.Prefix + "/permissions", nil, 200, ""},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				r := c.do(tc.method, tc.path, tc.body)
				if r.Status != tc.status || r.code() != tc.code {
					t.Fatalf("%d %s, want %d %s", r.Status, r.Raw, tc.status, tc.code)
				}
			})
		}
		r := c.must(400, "POST", roles, map[string]any{"name": "x", "permissions": []string{"devices.read", "devices.nuke", "root"}})
		if f := r.field("permissions"); !strings.Contains(f, "devices.nuke") || !strings.Contains(f, "root") || strings.Contains(f, "devices.read") {
			t.Errorf("unknown permissions field: %q", f)
		}
		got := c.must(200, "GET", roles+"/"+id, nil)
		if got.str("name") != "Auditors" || !slices.Equal(got.Body["permissions"].([]any), []any{"users.read", "audit.read"}) || got.Body["built_in"] != false {
			t.Errorf("role: %s", got.Raw)
		}
		list := c.must(200, "GET", roles, nil).items()
		if len(list) != 5 || list[0]["id"] != auth.RoleSecurityAdmin || list[4]["id"] != id {
			t.Errorf("roles: %v", list)
		}

		// A role in use is not deleted: by an administrator, then by a binding.
		au, _ := mustAdmin(t, e, c, "auditor", id)
		if r := c.do("DELETE", roles+"/"+id, nil); r.Status != 409 || r.code() != "role_in_use" {
			t.Fatalf("delete role in use: %d %s", r.Status, r.Raw)
		}
		// The holder's rights follow the role's changes at once.
		au.must(200, "GET", api.Prefix+"/users", nil)
		c.must(200, "PATCH", roles+"/"+id, map[string]any{"permissions": []string{"audit.read"}})
		wantDenied(t, au.do("GET", api.Prefix+"/users", nil), auth.UsersRead, "after the change")
		// An unused custom role is deleted.
		other := mustRole(t, c, "Unused")
		c.must(204, "DELETE", roles+"/"+other, nil)
		c.must(404, "DELETE", roles+"/"+other, nil)
	})
}

func TestRoleBindingsAndGrants(t *testing.T) {
	each(t, func(t *testing.T, e *apitest.Env, c *client) {
		roles := api.Prefix + "/roles"
		g := c.must(201, "POST", api.Prefix+"/groups", map[string]any{"name": "east"}).str("id")
		id := mustRole(t, c, "Viewer", auth.DevicesRead)
		b := c.must(201, "POST", roles+"/"+id+"/bindings", map[string]any{"group": "CN=Viewers,OU=IT,DC=example,DC=com", "scope_groups": []string{g}})
		if b.str("role_id") != id || b.str("group") != "CN=Viewers,OU=IT,DC=example,DC=com" || len(b.Body["scope_groups"].([]any)) != 1 {
			t.Errorf("binding: %s", b.Raw)
		}
		if r := c.do("POST", roles+"/"+id+"/bindings", map[string]any{"group": "CN=Viewers,OU=IT,DC=example,DC=com"}); r.Status != 409 || r.code() != "role_binding_exists" {
			t.Errorf("duplicate binding: %d %s", r.Status, r.Raw)
		}
		c.must(201, "POST", roles+"/"+auth.RoleHelpDesk+"/bindings", map[string]any{"group": "cn=helpdesk"})
		if bs := c.must(200, "GET", roles+"/"+id+"/bindings", nil).items(); len(bs) != 1 {
			t.Errorf("bindings: %v", bs)
		}
		got, err := e.Auth.BindingsForGroups(t.Context(), []string{"cn=helpdesk", "CN=Viewers,OU=IT,DC=example,DC=com", "cn=other"})
		if err != nil || len(got) != 2 {
			t.Errorf("BindingsForGroups: %v %v", got, err)
		}
		// A bound role is in use.
		if r := c.do("DELETE", roles+"/"+id, nil); r.Status != 409 || r.code() != "role_in_use" {
			t.Errorf("delete bound role: %d %s", r.Status, r.Raw)
		}
		c.must(204, "DELETE", roles+"/"+id+"/bindings/"+b.str("id"), nil)
		c.must(204, "DELETE", roles+"/"+id, nil)
		c.must(404, "GET", roles+"/"+id, nil)

		// No one grants what they lack: a role administrator without
		// wipe.send makes no role, administrator or binding with it.
		mgr := mustRole(t, c, "Role manager", auth.RolesRead, auth.RolesWrite, auth.AdminsWrite, auth.DevicesRead)
		m, _ := mustAdmin(t, e, c, "manager", mgr)
		wantDenied(t, m.do("POST", roles, map[string]any{"name": "wiper", "permissions": []string{"wipe.send"}}), auth.WipeSend, "create role")
		wantDenied(t, m.do("POST", api.Prefix+"/admins", map[string]any{"username": "boss"}), auth.UsersRead, "create security admin")
		wantDenied(t, m.do("POST", roles+"/"+auth.RoleSecurityAdmin+"/bindings", map[string]any{"group": "cn=all"}), auth.UsersRead, "bind security admin")
		m.must(201, "POST", roles, map[string]any{"name": "viewer 2", "permissions": []string{"devices.read"}})
		m.must(201, "POST", api.Prefix+"/admins", map[string]any{"username": "viewer2", "role": mgr})
		// A scoped administrator makes no binding.
		sc, _ := mustAdmin(t, e, c, "scoped", auth.RoleSecurityAdmin, g)
		if r := sc.do("POST", roles+"/"+auth.RoleHelpDesk+"/bindings", map[string]any{"group": "cn=x"}); r.Status != 403 || r.code() != "admin_scoped" {
			t.Errorf("scoped binding: %d %s", r.Status, r.Raw)
		}
	})
}

// TestExistingAdministratorsAreSecurityAdmins: the bootstrap administrator
// (and every one created before roles) is a security administrator, and
// an administrator created without a role is one too.
func TestExistingAdministratorsAreSecurityAdmins(t *testing.T) {
	each(t, func(t *testing.T, e *apitest.Env, c *client) {
		as := c.must(200, "GET", api.Prefix+"/admins", nil).items()
		if len(as) != 1 || as[0]["role"] != auth.RoleSecurityAdmin {
			t.Errorf("admins: %v", as)
		}
		r := c.must(201, "POST", api.Prefix+"/admins", map[string]any{"username": "dflt"})
		if r.str("role") != auth.RoleSecurityAdmin {
			t.Errorf("default role: %s", r.Raw)
		}
	})
}
