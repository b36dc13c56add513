package core_test

import (
	"fmt"
	"html"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/custos-uem/custos/console/consoletest"
	"github.com/custos-uem/custos/core"
	"github.com/custos-uem/custos/sqlstore/sqltest"
	"github.com/custos-uem/custos/websession"
)

// consoleAs signs a cookie-jar client in to the console.
func consoleAs(t *testing.T, e *env, login, password string) *webClient {
	t.Helper()
	w := newWebClient(t, e)
	w.do("GET", "/console/login", nil)
	if st, _, h := w.do("POST", "/console/login", url.Values{"login": {login}, "password": {password}}); st != 303 || h.Get("Location") != "/console/" {
		t.Fatalf("sign in as %s: %d %v", login, st, h)
	}
	w.do("GET", "/console/", nil) // the session's CSRF token
	return w
}

// createdAt posts form to path and returns the ID of the object the 303
// leads to (prefix + ID + "?done=" + done).
func (w *webClient) createdAt(path string, form url.Values, prefix, done string) string {
	w.t.Helper()
	st, body, h := w.do("POST", path, form)
	loc := h.Get("Location")
	if st != 303 || !strings.HasPrefix(loc, prefix) || !strings.HasSuffix(loc, "?done="+done) {
		w.t.Fatalf("POST %s: %d, Location %q\n%s", path, st, loc, body)
	}
	return strings.TrimSuffix(strings.TrimPrefix(loc, prefix), "?done="+done)
}

// posted posts form to path and expects a 303 with ?done=done.
func (w *webClient) posted(path string, form url.Values, done string) {
	w.t.Helper()
	st, body, h := w.do("POST", path, form)
	if st != 303 || !strings.Contains(h.Get("Location"), "done="+done) {
		w.t.Fatalf("POST %s: %d, Location %q\n%s", path, st, h.Get("Location"), body)
	}
}

// page gets path and expects 200.
func (w *webClient) page(path string) string {
	w.t.Helper()
	st, body, _ := w.do("GET", path, nil)
	if st != 200 {
		w.t.Fatalf("GET %s: %d\n%s", path, st, body)
	}
	return body
}

type auditItems struct {
	Items []struct{ Action, Actor, Outcome string } `json:"items"`
}

// hasOutcome reports whether some entry has outcome.
func (a auditItems) hasOutcome(outcome string) bool {
	for _, it := range a.Items {
		if it.Outcome == outcome {
			return true
		}
	}
	return false
}

func (e *env) audited(action string) auditItems {
	e.t.Helper()
	var a auditItems
	if st := e.api("GET", "/api/v1/audit?action="+url.QueryEscape(action), nil, &a); st != 200 {
		e.t.Fatalf("audit %s: %d", action, st)
	}
	return a
}

// TestConsoleObjects: the console pages of groups, activation profiles,
// policies and profiles. Most subtests use the cookie-jar client; one
// visual flow runs in Chromium with screenshots.
func TestConsoleObjects(t *testing.T) {
	e := newEnv(t, sqltest.Backends(t)[0])
	adminPw := mustRead(t, e.dir, core.AdminPasswordFile)
	w := consoleAs(t, e, "admin", adminPw)

	t.Run("ok/create-group-add-member-assign-profile", func(t *testing.T) {
		w.t = t
		pid := w.createdAt("/console/profiles", url.Values{"name": {"Field staff"}, "description": {"phones only"}, "rank": {"5"},
			"max_devices": {"3"}, "type_android": {"work_space_only"}, "type_ios": {"user_privacy"}}, "/console/profiles/", "profile")
		var prof struct {
			MaxDevices int               `json:"max_devices"`
			Types      map[string]string `json:"types"`
		}
		if st := e.api("GET", "/api/v1/activation-profiles/"+pid, nil, &prof); st != 200 || prof.MaxDevices != 3 ||
			len(prof.Types) != 2 || prof.Types["android"] != "work_space_only" || prof.Types["ios"] != "user_privacy" {
			t.Fatalf("the profile the form created: %d %+v", st, prof)
		}
		if body := w.page("/console/profiles/" + pid + "?done=profile"); !strings.Contains(body, "Activation profile created.") ||
			!strings.Contains(body, "Work space only") {
			t.Fatalf("profile page:\n%s", body)
		}

		gid := w.createdAt("/console/groups", url.Values{"name": {"Sales"}, "description": {"the sales team"}}, "/console/groups/", "group")
		u, _ := e.mustUser("carol@example.com")
		w.posted("/console/groups/"+gid+"/members", url.Values{"email": {"Carol@Example.com"}}, "member")
		w.posted("/console/groups/"+gid, url.Values{"activation_profile_id": {pid}}, "group_saved")

		body := w.page("/console/groups/" + gid + "?done=group_saved")
		for _, want := range []string{"Group saved.", "carol@example.com", "Field staff", "the sales team"} {
			if !strings.Contains(body, want) {
				t.Fatalf("group page lacks %q:\n%s", want, body)
			}
		}
		var eff struct {
			Profile struct{ ID string }
			Source  string
		}
		if st := e.api("GET", "/api/v1/users/"+u.ID+"/effective-profile", nil, &eff); st != 200 || eff.Profile.ID != pid || eff.Source != "group" {
			t.Fatalf("carol's effective profile: %d %+v", st, eff)
		}
		if list := w.page("/console/groups"); !strings.Contains(list, `<td class="num">1</td>`) || !strings.Contains(list, "Field staff") {
			t.Fatalf("groups list lacks the member count or profile:\n%s", list)
		}
		// A user nobody has: shown on the group page, input kept.
		st, body, _ := w.do("POST", "/console/groups/"+gid+"/members", url.Values{"email": {"nobody@example.com"}})
		if st != 400 || !strings.Contains(body, `id="form-error"`) || !strings.Contains(body, `value="nobody@example.com"`) {
			t.Fatalf("adding an unknown user: %d\n%s", st, body)
		}
		// Nesting: a subgroup, then a cycle refused.
		child := w.createdAt("/console/groups", url.Values{"name": {"Sales EMEA"}}, "/console/groups/", "group")
		w.posted("/console/groups/"+gid+"/subgroups", url.Values{"group_id": {child}}, "subgroup")
		if st, body, _ := w.do("POST", "/console/groups/"+child+"/subgroups", url.Values{"group_id": {gid}}); st != 400 || !strings.Contains(body, "group_id") {
			t.Fatalf("a cycle: %d\n%s", st, body)
		}
		w.posted("/console/groups/"+gid+"/subgroups/"+child+"/remove", url.Values{}, "subgroup_removed")
		w.posted("/console/groups/"+gid+"/members/"+u.ID+"/remove", url.Values{}, "member_removed")

		for _, action := range []string{"profile.create", "group.create", "group.member.add", "group.update", "group.subgroup.add", "group.subgroup.remove", "group.member.remove"} {
			a := e.audited(action)
			if !a.hasOutcome("ok") {
				t.Fatalf("audit of %s: %+v", action, a.Items)
			}
		}
		if a := e.audited("group.subgroup.add"); len(a.Items) != 2 || !a.hasOutcome("failed") {
			t.Fatalf("the refused cycle is not audited as failed: %+v", a.Items)
		}
	})

	var itPolicy string
	t.Run("ok/it-policy-via-form-reaches-the-users-device", func(t *testing.T) {
		w.t = t
		u, pw := e.mustUser("dave@example.com")
		_, deviceID := e.mustEnrolled("dave@example.com", pw, "hw-console-objects-1")
		settings := `{"password_required": true, "password_min_length": 8, "camera_disabled": true}`
		itPolicy = w.createdAt("/console/policies", url.Values{"kind": {"it_policy"}, "name": {"Baseline"}, "rank": {"10"},
			"platforms": {"android", "ios"}, "settings": {settings}}, "/console/policies/", "policy")
		w.posted("/console/policies/"+itPolicy+"/assignments", url.Values{"target_kind": {"user"}, "email": {"dave@example.com"}}, "assigned")

		var as struct {
			Items []struct {
				TargetKind string `json:"target_kind"`
				TargetID   string `json:"target_id"`
			} `json:"items"`
		}
		if st := e.api("GET", "/api/v1/policies/"+itPolicy+"/assignments", nil, &as); st != 200 || len(as.Items) != 1 ||
			as.Items[0].TargetKind != "user" || as.Items[0].TargetID != u.ID {
			t.Fatalf("assignments after the form: %d %+v", st, as.Items)
		}
		cfg := e.configuration(deviceID)
		found := false
		for _, it := range cfg.Items {
			if it.ID == itPolicy {
				found = it.Payload["password_min_length"] == float64(8)
			}
		}
		if !found {
			t.Fatalf("the device's configuration lacks the policy: %+v", cfg)
		}
		body := html.UnescapeString(w.page("/console/policies/" + itPolicy + "?done=assigned"))
		for _, want := range []string{"Policy assigned.", "dave@example.com", `"password_min_length": 8`, "IT policy"} {
			if !strings.Contains(body, want) {
				t.Fatalf("policy page lacks %q:\n%s", want, body)
			}
		}
		if list := w.page("/console/policies?kind=it_policy"); !strings.Contains(list, "Baseline") {
			t.Fatalf("the kind filter lost the policy:\n%s", list)
		}
		if list := w.page("/console/policies?kind=compliance"); strings.Contains(list, "Baseline") {
			t.Fatalf("the compliance filter shows an IT policy:\n%s", list)
		}
		if st, _, _ := w.do("GET", "/console/policies?kind=bogus", nil); st != 400 {
			t.Fatalf("an unknown kind filter: %d", st)
		}
		// Unassign, then the device has it no more.
		w.posted("/console/policies/"+itPolicy+"/assignments/user/"+u.ID+"/remove", url.Values{}, "unassigned")
		for _, it := range e.configuration(deviceID).Items {
			if it.ID == itPolicy {
				t.Fatal("the device keeps an unassigned policy")
			}
		}
		for _, action := range []string{"policy.create", "policy.assign", "policy.unassign"} {
			if a := e.audited(action); !a.hasOutcome("ok") {
				t.Fatalf("audit of %s: %+v", action, a.Items)
			}
		}
	})

	t.Run("fail/invalid-settings-show-the-field-error-and-keep-the-input", func(t *testing.T) {
		w.t = t
		settings := `{"password_required": true, "password_min_length": 99}`
		st, raw, h := w.do("POST", "/console/policies", url.Values{"kind": {"it_policy"}, "name": {"Too strict"}, "rank": {"abc"},
			"platforms": {"android"}, "settings": {settings}})
		body := html.UnescapeString(raw)
		if st != 400 || h.Get("Cache-Control") != "no-store" {
			t.Fatalf("invalid settings: %d %v\n%s", st, h, body)
		}
		for _, want := range []string{`id="field-errors"`, "settings.password_min_length", "between 0 and 64", "rank", "a whole number",
			`value="Too strict"`, `value="abc"`, settings, `value="android" checked`, `value="it_policy" selected`} {
			if !strings.Contains(body, want) {
				t.Fatalf("the refused form lacks %q:\n%s", want, body)
			}
		}
		var list struct{ Items []struct{ Name string } }
		e.api("GET", "/api/v1/policies", nil, &list)
		for _, p := range list.Items {
			if p.Name == "Too strict" {
				t.Fatal("an invalid policy was stored")
			}
		}
		// The same on the edit form: refused, input kept, nothing changed.
		bad := `{"password_required": false, "password_min_length": 4}`
		st, raw, _ = w.do("POST", "/console/policies/"+itPolicy, url.Values{"name": {"Baseline v2"}, "rank": {"10"}, "settings": {bad}})
		body = html.UnescapeString(raw)
		if st != 400 || !strings.Contains(body, "settings.password_required") || !strings.Contains(body, bad) || !strings.Contains(body, `value="Baseline v2"`) {
			t.Fatalf("an invalid edit: %d\n%s", st, body)
		}
		var p struct{ Name string }
		if e.api("GET", "/api/v1/policies/"+itPolicy, nil, &p); p.Name != "Baseline" {
			t.Fatalf("a refused edit changed the policy: %+v", p)
		}
		if a := e.audited("policy.update"); len(a.Items) == 0 || a.Items[0].Outcome != "failed" {
			t.Fatalf("the refused edit in the audit trail: %+v", a.Items)
		}
	})

	t.Run("fail/policy-page-shows-secrets-as-stars", func(t *testing.T) {
		w.t = t
		const secret = "correct-horse-battery-staple"
		var p struct{ ID string }
		if st := e.api("POST", "/api/v1/policies", map[string]any{"name": "Office Wi-Fi", "kind": "wifi",
			"settings": map[string]any{"ssid": "office", "security": "wpa2_personal", "passphrase": secret}}, &p); st != 201 {
			t.Fatalf("create wifi: %d", st)
		}
		body := html.UnescapeString(w.page("/console/policies/" + p.ID))
		if strings.Contains(body, secret) || strings.Count(body, `"passphrase": "***"`) != 2 {
			t.Fatalf("the policy page shows the passphrase (or not *** in both view and form):\n%s", body)
		}
		if list := w.page("/console/policies?kind=wifi"); strings.Contains(list, secret) {
			t.Fatal("the list shows the passphrase")
		}
		// Saving the form as shown keeps the stored secret: the settings
		// did not change, so neither does the revision.
		w.posted("/console/policies/"+p.ID, url.Values{"name": {"Office Wi-Fi (HQ)"}, "rank": {"100"},
			"settings": {`{"ssid": "office", "security": "wpa2_personal", "passphrase": "***"}`}}, "policy_saved")
		var got struct {
			Name     string
			Revision int
		}
		if e.api("GET", "/api/v1/policies/"+p.ID, nil, &got); got.Name != "Office Wi-Fi (HQ)" || got.Revision != 1 {
			t.Fatalf("after saving the redacted form: %+v", got)
		}
	})

	t.Run("fail/help-desk-administrator-changes-a-policy", func(t *testing.T) {
		w.t = t
		var a struct{ ID string }
		if st := e.api("POST", "/api/v1/admins", map[string]any{"username": "helpdesk", "role": "help_desk"}, &a); st != 201 {
			t.Fatalf("create admin: %d", st)
		}
		if err := e.m.Sessions.SetPassword(t.Context(), websession.RealmAdmin, a.ID, "help desk password 1"); err != nil {
			t.Fatal(err)
		}
		hd := consoleAs(t, e, "helpdesk", "help desk password 1")
		for path, form := range map[string]string{"/console/policies": "add-policy", "/console/policies/" + itPolicy: "edit-policy",
			"/console/groups": "add-group", "/console/profiles": "add-profile"} {
			if body := hd.page(path); strings.Contains(body, `id="`+form+`"`) || strings.Contains(body, `id="assign-user"`) {
				t.Fatalf("the help desk is offered %s on %s", form, path)
			}
		}
		for _, tc := range []struct{ path, action string }{
			{"/console/policies/" + itPolicy, "policy.update"},
			{"/console/policies/" + itPolicy + "/assignments", "policy.assign"},
			{"/console/policies/" + itPolicy + "/delete", "policy.delete"},
			{"/console/policies", "policy.create"},
			{"/console/groups", "group.create"},
			{"/console/profiles", "profile.create"},
		} {
			st, body, _ := hd.do("POST", tc.path, url.Values{"name": {"x"}, "settings": {"{}"}, "target_kind": {"user"}, "email": {"dave@example.com"}})
			if st != 403 || !strings.Contains(body, "does not allow") {
				t.Fatalf("help desk POST %s: %d\n%s", tc.path, st, body)
			}
			au := e.audited(tc.action + ".denied")
			if len(au.Items) == 0 || au.Items[0].Actor != a.ID || au.Items[0].Outcome != "denied" {
				t.Fatalf("the refusal of %s in the audit trail: %+v", tc.action, au.Items)
			}
		}
		var p struct{ Name string }
		if e.api("GET", "/api/v1/policies/"+itPolicy, nil, &p); p.Name != "Baseline" {
			t.Fatalf("the help desk changed the policy: %+v", p)
		}
	})

	t.Run("fail/scoped-administrator-changes-a-group", func(t *testing.T) {
		w.t = t
		gid := w.createdAt("/console/groups", url.Values{"name": {"Region North"}}, "/console/groups/", "group")
		var a struct{ ID string }
		if st := e.api("POST", "/api/v1/admins", map[string]any{"username": "regional", "role": "enterprise_admin", "scope_groups": []string{gid}}, &a); st != 201 {
			t.Fatalf("create scoped admin: %d", st)
		}
		if err := e.m.Sessions.SetPassword(t.Context(), websession.RealmAdmin, a.ID, "regional password 1"); err != nil {
			t.Fatal(err)
		}
		sc := consoleAs(t, e, "regional", "regional password 1")
		if body := sc.page("/console/groups/" + gid); strings.Contains(body, `id="add-member"`) {
			t.Fatal("a scoped administrator is offered to add members")
		}
		st, body, _ := sc.do("POST", "/console/groups/"+gid+"/members", url.Values{"email": {"dave@example.com"}})
		if st != 403 || !strings.Contains(body, "limited to some groups") {
			t.Fatalf("a scoped administrator adds a member: %d\n%s", st, body)
		}
		if au := e.audited("group.member.add.denied"); len(au.Items) == 0 || au.Items[0].Actor != a.ID {
			t.Fatalf("the refusal in the audit trail: %+v", au.Items)
		}
		var members struct{ Items []struct{ ID string } }
		if e.api("GET", "/api/v1/groups/"+gid+"/members", nil, &members); len(members.Items) != 0 {
			t.Fatalf("the scoped administrator widened their scope: %+v", members.Items)
		}
	})

	t.Run("fail/script-in-a-group-name-is-inert", func(t *testing.T) {
		w.t = t
		gid := w.createdAt("/console/groups", url.Values{"name": {scriptName}, "description": {`<img src=x onerror=alert(1)>`}}, "/console/groups/", "group")
		for _, path := range []string{"/console/groups", "/console/groups/" + gid} {
			body := w.page(path)
			if strings.Contains(body, "<script>document") || strings.Contains(body, "<img src=x") || !strings.Contains(body, "&lt;script&gt;") {
				t.Fatalf("%s renders the name as markup:\n%s", path, body)
			}
		}
	})

	t.Run("fail/unknown-objects-are-404", func(t *testing.T) {
		w.t = t
		for _, path := range []string{"/console/groups/nope", "/console/profiles/nope", "/console/policies/nope",
			"/console/policies/" + strings.Repeat("a", 100)} {
			if st, _, _ := w.do("GET", path, nil); st != 404 {
				t.Fatalf("GET %s: %d", path, st)
			}
		}
		if st, _, _ := w.do("POST", "/console/policies/nope/delete", url.Values{}); st != 404 {
			t.Fatalf("delete an unknown policy: %d", st)
		}
	})

	t.Run("ok/profile-and-group-deleted", func(t *testing.T) {
		w.t = t
		pid := w.createdAt("/console/profiles", url.Values{"name": {"Temporary"}, "rank": {"7"}, "max_devices": {"1"},
			"type_windows": {"mdm_controls"}}, "/console/profiles/", "profile")
		// A type that does not apply to the platform: the service's field error.
		st, body, _ := w.do("POST", "/console/profiles/"+pid, url.Values{"name": {"Temporary"}, "rank": {"7"}, "max_devices": {"1"},
			"type_windows": {"work_space_only"}})
		if st != 400 || !strings.Contains(body, "types.windows") {
			t.Fatalf("an invalid profile edit: %d\n%s", st, body)
		}
		w.posted("/console/profiles/"+pid+"/delete", url.Values{}, "profile_deleted")
		if st := e.api("GET", "/api/v1/activation-profiles/"+pid, nil, nil); st != 404 {
			t.Fatalf("the deleted profile: %d", st)
		}
		gid := w.createdAt("/console/groups", url.Values{"name": {"Short-lived"}}, "/console/groups/", "group")
		w.posted("/console/groups/"+gid+"/delete", url.Values{}, "group_deleted")
		if st := e.api("GET", "/api/v1/groups/"+gid, nil, nil); st != 404 {
			t.Fatalf("the deleted group: %d", st)
		}
		w.posted("/console/policies/"+itPolicy+"/delete", url.Values{}, "policy_deleted")
		for _, action := range []string{"profile.delete", "group.delete", "policy.delete"} {
			if a := e.audited(action); !a.hasOutcome("ok") {
				t.Fatalf("audit of %s: %+v", action, a.Items)
			}
		}
	})

	t.Run("ok/browser-policies-and-a-policy", func(t *testing.T) {
		consoleURL := e.m.URL() + "/console"
		b := browserFor(t, e)
		signIn(t, b, consoleURL, "admin", adminPw)
		e.mustUser("erin@example.com")
		b.Run("policies page", chromedp.Navigate(consoleURL+"/policies"), chromedp.WaitVisible(chromedp.CSS("#add-policy")))
		b.Run("create an IT policy", chromedp.SetValue(chromedp.CSS("#policy-kind"), "it_policy"),
			chromedp.SendKeys(chromedp.CSS("#policy-name"), "Screen lock"),
			chromedp.SetValue(chromedp.CSS("#policy-settings"), `{"screen_lock_timeout_seconds": 300, "encryption_required": true}`),
			chromedp.Click(chromedp.CSS("#policy-add")),
			chromedp.WaitVisible(chromedp.CSS("#policy-settings-view")))
		if view := b.Text("#policy-settings-view"); !strings.Contains(view, `"screen_lock_timeout_seconds": 300`) {
			t.Fatalf("the settings shown: %s", view)
		}
		b.Run("assign to a user", chromedp.SendKeys(chromedp.CSS("#assign-email"), "erin@example.com"),
			chromedp.Click(chromedp.CSS("#assign-user-submit")),
			// The page before had a flash already (created): wait for the
			// assignment's link instead.
			chromedp.WaitVisible(chromedp.CSS(`#assignments a[href*="/users/"]`)))
		if as := b.Text("#assignments"); !strings.Contains(as, "erin@example.com") {
			t.Fatalf("assignments: %s", as)
		}
		b.Screenshot("console-policy")
		b.Run("policies list", chromedp.Navigate(consoleURL+"/policies"), chromedp.WaitVisible(chromedp.CSS("#policies")))
		if list := b.Text("#policies"); !strings.Contains(list, "Screen lock") || !strings.Contains(list, "Office Wi-Fi") {
			t.Fatalf("policies list: %s", list)
		}
		b.Screenshot("console-policies")
		b.Run("a profile with a secret", chromedp.Click(chromedp.CSS(`#policies a[href*="/policies/"]`)),
			chromedp.WaitVisible(chromedp.CSS("#policy-settings-view")))
		if view := b.Text("#policy-settings-view"); !strings.Contains(view, `"passphrase": "***"`) || strings.Contains(view, "correct-horse") {
			t.Fatalf("the Wi-Fi profile's settings shown: %s", view)
		}
		b.Screenshot("console-policy-wifi")
		b.Run("groups list", chromedp.Navigate(consoleURL+"/groups"), chromedp.WaitVisible(chromedp.CSS("#groups")))
		if title, _ := chromedp.Run(b.Ctx, chromedp.Title()); title == "pwned" {
			t.Fatal("a group's name ran as a script")
		}
		if list := b.Text("#groups"); !strings.Contains(list, scriptName) {
			t.Fatalf("the groups list does not show the hostile name as text: %s", list)
		}
		b.Screenshot("console-groups")
		fmt.Fprintln(os.Stderr, "screenshots in", os.Getenv(consoletest.EnvArtifacts))
	})
}
