package core_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/custos-uem/custos/agent"
	"github.com/custos-uem/custos/core"
	"github.com/custos-uem/custos/mail/mailtest"
	"github.com/custos-uem/custos/sqlstore/sqltest"
	"github.com/custos-uem/custos/websession"
)

// caSignIn signs a cookie-jar client in to the console.
func caSignIn(t *testing.T, e *env, login, password string) *webClient {
	t.Helper()
	w := newWebClient(t, e)
	w.do("GET", "/console/login", nil)
	if st, body, h := w.do("POST", "/console/login", url.Values{"login": {login}, "password": {password}}); st != 303 || h.Get("Location") != "/console/" {
		t.Fatalf("sign in as %s: %d %v\n%s", login, st, h, body)
	}
	w.do("GET", "/console/", nil) // a page, for the CSRF token
	return w
}

// upload posts a multipart form with the CSV as its "file" and the
// session's CSRF token as a field, as a browser's form does.
func (w *webClient) caUpload(path, csv string) (int, string, http.Header) {
	w.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	mw.WriteField("csrf_token", w.csrf)
	fw, _ := mw.CreateFormFile("file", "users.csv")
	io.WriteString(fw, csv)
	mw.Close()
	req, _ := http.NewRequest("POST", w.e.m.URL()+path, &body)
	req.Header.Set("Origin", w.e.m.URL())
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := w.hc.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

var caJobSummary = regexp.MustCompile(`id="job-summary"[^>]*>([^<]*)<`)

// caWaitJob reloads the job's page until the job has ended and returns
// its summary line and the page.
func (w *webClient) caWaitJob(location string) (string, string) {
	w.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, body, h := w.do("GET", location, nil)
		if st != 200 {
			w.t.Fatalf("job page %s: %d\n%s", location, st, body)
		}
		if !strings.Contains(body, `http-equiv="refresh"`) {
			m := caJobSummary.FindStringSubmatch(body)
			if m == nil {
				w.t.Fatalf("job page without a summary:\n%s", body)
			}
			return strings.TrimSpace(m[1]), body
		}
		if h.Get("Cache-Control") != "no-store" {
			w.t.Fatalf("a running job's page may be cached: %v", h)
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("the job did not finish:\n%s", body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type caAuditItems struct {
	Items []struct {
		Action, Actor, Outcome, ObjectID string
		Detail                           map[string]any
	} `json:"items"`
}

func (e *env) caAudit(action string) caAuditItems {
	e.t.Helper()
	var a caAuditItems
	if st := e.api("GET", "/api/v1/audit?action="+url.QueryEscape(action), nil, &a); st != 200 {
		e.t.Fatalf("audit %s: %d", action, st)
	}
	return a
}

// caMustAdmin creates an administrator through the API with a console
// password.
func (e *env) caMustAdmin(username, role, password string) string {
	e.t.Helper()
	var a struct{ ID string }
	if st := e.api("POST", "/api/v1/admins", map[string]any{"username": username, "role": role}, &a); st != 201 {
		e.t.Fatalf("create admin %s: %d", username, st)
	}
	if err := e.m.Sessions.SetPassword(context.Background(), websession.RealmAdmin, a.ID, password); err != nil {
		e.t.Fatal(err)
	}
	return a.ID
}

func (e *env) caUserEmails() map[string]bool {
	e.t.Helper()
	var l struct {
		Items []userOut `json:"items"`
	}
	if st := e.api("GET", "/api/v1/users?limit=500", nil, &l); st != 200 {
		e.t.Fatalf("list users: %d", st)
	}
	out := map[string]bool{}
	for _, u := range l.Items {
		out[u.Email] = true
	}
	return out
}

// TestConsoleAdministration: administrators and roles, settings, and
// bulk actions with their progress pages, through the console.
func TestConsoleAdministration(t *testing.T) {
	e := newEnv(t, sqltest.Backends(t)[0])
	ctx := context.Background()
	admin := caSignIn(t, e, "admin", mustRead(t, e.dir, core.AdminPasswordFile))
	const helenPassword = "helen-console-password-1"
	var helen *webClient
	var adminJob string

	t.Run("ok/create-help-desk-administrator", func(t *testing.T) {
		st, body, _ := admin.do("GET", "/console/administrators", nil)
		if st != 200 || !strings.Contains(body, `id="add-admin"`) || !strings.Contains(body, `value="help_desk"`) {
			t.Fatalf("administrators page: %d\n%s", st, body)
		}
		st, body, h := admin.do("POST", "/console/administrators", url.Values{"username": {"helen"}, "display_name": {"Helen Desk"},
			"role": {"help_desk"}, "password": {helenPassword}})
		if st != 303 || !strings.HasPrefix(h.Get("Location"), "/console/administrators/") {
			t.Fatalf("create administrator: %d %v\n%s", st, h, body)
		}
		st, body, _ = admin.do("GET", h.Get("Location"), nil)
		if st != 200 || !strings.Contains(body, "Help Desk") || !strings.Contains(body, "commands.send") || strings.Contains(body, helenPassword) {
			t.Fatalf("the new administrator's page: %d\n%s", st, body)
		}
		if _, body, _ := admin.do("GET", "/console/administrators", nil); !strings.Contains(body, "helen") || strings.Contains(body, helenPassword) {
			t.Fatalf("the list after the creation:\n%s", body)
		}
		if a := e.caAudit("admin.create"); len(a.Items) != 1 || a.Items[0].Outcome != "ok" || a.Items[0].Detail["role"] != "help_desk" {
			t.Fatalf("audit of the creation: %+v", a.Items)
		}
		helen = caSignIn(t, e, "helen", helenPassword)
		st, body, _ = helen.do("GET", "/console/", nil)
		if st != 200 || strings.Contains(body, `href="/console/administrators"`) || strings.Contains(body, `href="/console/settings"`) {
			t.Fatalf("the help desk's dashboard offers administration: %d\n%s", st, body)
		}
		if st, _, _ := helen.do("GET", "/console/administrators", nil); st != 403 {
			t.Fatalf("the help desk opens the administrators page: %d", st)
		}
	})

	t.Run("fail/help-desk-creates-administrator", func(t *testing.T) {
		if helen == nil {
			t.Fatal("the help desk administrator was not created (see ok/create-help-desk-administrator)")
		}
		st, body, _ := helen.do("POST", "/console/administrators", url.Values{"username": {"mallory"}, "role": {"security_admin"}, "password": {"mallory's password 1"}})
		if st != 403 || !strings.Contains(body, "admins.write") {
			t.Fatalf("a help desk creates an administrator: %d\n%s", st, body)
		}
		a := e.caAudit("admin.create.denied")
		if len(a.Items) != 1 || a.Items[0].Outcome != "denied" {
			t.Fatalf("the refusal in the audit trail: %+v", a.Items)
		}
		if _, body, _ := admin.do("GET", "/console/administrators", nil); strings.Contains(body, "mallory") {
			t.Fatal("mallory was created")
		}
	})

	t.Run("fail/grant-beyond-own-permissions", func(t *testing.T) {
		// A role manager: may write roles, but holds no admins.write.
		var mgr struct{ ID string }
		if st := e.api("POST", "/api/v1/roles", map[string]any{"name": "Role managers",
			"permissions": []string{"roles.read", "roles.write", "users.read", "devices.read"}}, &mgr); st != 201 {
			t.Fatalf("create role: %d", st)
		}
		e.caMustAdmin("rory", mgr.ID, "rory-console-password-1")
		rory := caSignIn(t, e, "rory", "rory-console-password-1")
		st, body, _ := rory.do("POST", "/console/roles", url.Values{"name": {"too strong"}, "permissions": {"users.read", "admins.write"}})
		if st != 403 || !strings.Contains(body, "admins.write") {
			t.Fatalf("a role beyond one's own permissions: %d\n%s", st, body)
		}
		if a := e.caAudit("role.create.denied"); len(a.Items) != 1 || a.Items[0].Outcome != "denied" || a.Items[0].Detail["permission"] != "admins.write" {
			t.Fatalf("the refusal in the audit trail: %+v", a.Items)
		}
		var roles struct {
			Items []struct{ Name string } `json:"items"`
		}
		e.api("GET", "/api/v1/roles", nil, &roles)
		for _, r := range roles.Items {
			if r.Name == "too strong" {
				t.Fatal("the refused role exists")
			}
		}
		// The form offers it greyed out.
		if _, body, _ := rory.do("GET", "/console/roles", nil); !regexp.MustCompile(`value="admins.write"[^>]*disabled`).MatchString(body) {
			t.Fatalf("the roles form offers admins.write to someone without it:\n%s", body)
		}
		// What one holds, one grants.
		if st, body, h := rory.do("POST", "/console/roles", url.Values{"name": {"Readers"}, "permissions": {"users.read", "devices.read"}}); st != 303 || h.Get("Location") != "/console/roles?ok=role" {
			t.Fatalf("a role within one's permissions: %d\n%s", st, body)
		}
		// An enterprise administrator (no admins.write, no roles.write)
		// creates neither administrators nor roles.
		e.caMustAdmin("eve", "enterprise_admin", "eve-console-password-1")
		eve := caSignIn(t, e, "eve", "eve-console-password-1")
		if st, body, _ := eve.do("POST", "/console/administrators", url.Values{"username": {"zed"}, "role": {"junior_help_desk"}, "password": {"zed-password-123"}}); st != 403 || !strings.Contains(body, "admins.write") {
			t.Fatalf("an enterprise administrator creates an administrator: %d", st)
		}
		if st, _, _ := eve.do("POST", "/console/roles", url.Values{"name": {"Mine"}, "permissions": {"users.read"}}); st != 403 {
			t.Fatalf("an enterprise administrator creates a role: %d", st)
		}
		if _, body, _ := eve.do("GET", "/console/administrators", nil); strings.Contains(body, `id="add-admin"`) {
			t.Fatal("an enterprise administrator is offered the form")
		}
	})

	t.Run("fail/delete-role-built-in-or-held", func(t *testing.T) {
		st, body, _ := admin.do("POST", "/console/roles/help_desk/delete", url.Values{})
		if st != 409 || !strings.Contains(body, "built-in role cannot be changed or deleted") || !strings.Contains(body, `id="roles"`) {
			t.Fatalf("delete a built-in role: %d\n%s", st, body)
		}
		var role struct{ ID string }
		if st := e.api("POST", "/api/v1/roles", map[string]any{"name": "Held", "permissions": []string{"users.read"}}, &role); st != 201 {
			t.Fatalf("create role: %d", st)
		}
		if st, body, _ := admin.do("POST", "/console/administrators", url.Values{"username": {"holder"}, "role": {role.ID}, "password": {"holder's password"}}); st != 303 {
			t.Fatalf("an administrator with a custom role: %d\n%s", st, body)
		}
		st, body, _ = admin.do("POST", "/console/roles/"+role.ID+"/delete", url.Values{})
		if st != 409 || !strings.Contains(body, "held by an administrator") {
			t.Fatalf("delete a role in use: %d\n%s", st, body)
		}
	})

	t.Run("ok/csv-import", func(t *testing.T) {
		csv := "email,name\r\nann@example.com,Ann Import\r\nnot an email,Bad Row\r\nbo@example.com,\"Bo, Import\"\r\n"
		st, body, h := admin.caUpload("/console/bulk/users", csv)
		if st != 303 || !strings.HasPrefix(h.Get("Location"), "/console/jobs/") {
			t.Fatalf("import: %d %v\n%s", st, h, body)
		}
		adminJob = h.Get("Location")
		summary, page := admin.caWaitJob(adminJob)
		if summary != "3 rows: 2 created, 1 failed" || !strings.Contains(page, "line 3 (not an email)") {
			t.Fatalf("the finished import says %q\n%s", summary, page)
		}
		users := e.caUserEmails()
		if !users["ann@example.com"] || !users["bo@example.com"] {
			t.Fatalf("the imported users: %v", users)
		}
		if a := e.caAudit("user.create"); len(a.Items) != 3 {
			t.Fatalf("user.create audited %d times, want 3 (2 ok, 1 failed): %+v", len(a.Items), a.Items)
		}
		if a := e.caAudit("users.import"); len(a.Items) != 1 || a.Items[0].Outcome != "ok" {
			t.Fatalf("the job's start in the audit trail: %+v", a.Items)
		}
	})

	t.Run("fail/csv-over-row-limit", func(t *testing.T) {
		var b strings.Builder
		b.WriteString("email,name,username\n")
		for i := range 10_001 {
			fmt.Fprintf(&b, "limit%d@example.com,Limit %d,limit%d\n", i, i, i)
		}
		st, body, _ := admin.caUpload("/console/bulk/users", b.String())
		if st != 413 || !strings.Contains(body, "more than 10000 rows") {
			t.Fatalf("an import over the row limit: %d\n%s", st, body)
		}
		users := e.caUserEmails()
		for email := range users {
			if strings.HasPrefix(email, "limit") {
				t.Fatalf("a user of the refused file was created: %s", email)
			}
		}
		outcomes := map[string]int{}
		for _, it := range e.caAudit("users.import").Items {
			outcomes[it.Outcome]++
		}
		if outcomes["ok"] != 1 || outcomes["failed"] != 1 {
			t.Fatalf("the refused import in the audit trail: %v", outcomes)
		}
		// A header we do not know is refused whole, too.
		if st, body, _ := admin.caUpload("/console/bulk/users", "mail,name\nx@example.com,X\n"); st != 400 || !strings.Contains(body, "email,name[,username]") {
			t.Fatalf("an unknown header: %d\n%s", st, body)
		}
	})

	t.Run("ok/lock-a-group", func(t *testing.T) {
		// Two users with a device each: one in the group, one in its
		// subgroup.
		var devices []string
		var userIDs []string
		for i, email := range []string{"gina@example.com", "gus@example.com"} {
			u, pw := e.mustUser(email)
			act, err := e.agent(agent.NewMemStore(), uint64(40+i)).Activate(ctx, email, pw)
			if err != nil {
				t.Fatal(err)
			}
			devices = append(devices, act.DeviceID)
			userIDs = append(userIDs, u.ID)
		}
		var group, sub struct{ ID string }
		if st := e.api("POST", "/api/v1/groups", map[string]any{"name": "Field team"}, &group); st != 201 {
			t.Fatalf("create group: %d", st)
		}
		if st := e.api("POST", "/api/v1/groups", map[string]any{"name": "Field team north"}, &sub); st != 201 {
			t.Fatalf("create subgroup: %d", st)
		}
		if st := e.api("POST", "/api/v1/groups/"+group.ID+"/subgroups", map[string]any{"group_id": sub.ID}, nil); st != 204 {
			t.Fatalf("nest: %d", st)
		}
		if st := e.api("POST", "/api/v1/groups/"+group.ID+"/members", map[string]any{"user_id": userIDs[0]}, nil); st != 204 {
			t.Fatalf("add member: %d", st)
		}
		if st := e.api("POST", "/api/v1/groups/"+sub.ID+"/members", map[string]any{"user_id": userIDs[1]}, nil); st != 204 {
			t.Fatalf("add member: %d", st)
		}
		if _, body, _ := admin.do("GET", "/console/bulk", nil); !strings.Contains(body, "Field team") || !strings.Contains(body, `value="wipe_device"`) {
			t.Fatalf("the bulk page:\n%s", body)
		}
		st, body, h := admin.do("POST", "/console/bulk/command", url.Values{"group": {group.ID}, "type": {"lock"}})
		if st != 303 || !strings.HasPrefix(h.Get("Location"), "/console/jobs/") {
			t.Fatalf("lock the group: %d\n%s", st, body)
		}
		if summary, page := admin.caWaitJob(h.Get("Location")); summary != "2 devices: 2 queued, 0 failed" {
			t.Fatalf("the finished command job says %q\n%s", summary, page)
		}
		for _, d := range devices {
			var q struct {
				Items []struct{ Type, CreatedBy string } `json:"items"`
			}
			st := e.api("GET", "/api/v1/devices/"+d+"/commands?status=open", nil, &q)
			locks := 0
			for _, c := range q.Items {
				if c.Type == "lock" {
					locks++
				}
			}
			if st != 200 || locks != 1 {
				t.Fatalf("device %s's queue: %d %+v", d, st, q.Items)
			}
		}
		if a := e.caAudit("command.send_bulk"); len(a.Items) != 1 || a.Items[0].Outcome != "ok" || a.Items[0].Detail["queued"] != float64(2) {
			t.Fatalf("the chunk in the audit trail: %+v", a.Items)
		}
		// The help desk may not wipe (no wipe.send): refused, audited.
		if helen != nil {
			if _, body, _ := helen.do("GET", "/console/bulk", nil); strings.Contains(body, `value="wipe_device"`) {
				t.Fatal("the help desk is offered a wipe")
			}
			if st, _, _ := helen.do("POST", "/console/bulk/command", url.Values{"group": {group.ID}, "type": {"wipe_device"}}); st != 403 {
				t.Fatalf("the help desk wipes a group: %d", st)
			}
			if a := e.caAudit("command.send_group.denied"); len(a.Items) != 1 {
				t.Fatalf("the refused wipe in the audit trail: %+v", a.Items)
			}
		}
	})

	t.Run("fail/another-administrators-job", func(t *testing.T) {
		if helen == nil || adminJob == "" {
			t.Fatal("the help desk administrator or the job is missing (see the subtests above)")
		}
		if st, body, _ := helen.do("GET", adminJob, nil); st != 404 || strings.Contains(body, "rows:") {
			t.Fatalf("another administrator's job: %d\n%s", st, body)
		}
		if st, _, _ := helen.do("GET", "/console/jobs/00000000-0000-0000-0000-000000000000", nil); st != 404 {
			t.Fatalf("no such job: %d", st)
		}
		if st, _, _ := admin.do("GET", adminJob, nil); st != 200 {
			t.Fatalf("one's own job: %d", st)
		}
	})

	t.Run("ok/settings-without-secrets", func(t *testing.T) {
		sink := mailtest.Start(t, mailtest.Options{Username: mailtest.DefaultUsername, Password: "smtp-secret-do-not-show"})
		const bindPassword = "bind-secret-do-not-show"
		se := newEnvWith(t, sqltest.Backends(t)[0], func(c *core.Config) {
			c.Mail.Config = sink.Config()
			c.Directory.URL = "ldap://127.0.0.1:1"
			c.Directory.BindDN = "cn=custos,dc=example,dc=com"
			c.Directory.BindPassword = bindPassword
			c.Directory.BaseDN = "dc=example,dc=com"
			c.Directory.DialTimeout = time.Second
			c.Directory.SyncInterval = -1
		})
		w := caSignIn(t, se, "admin", mustRead(t, se.dir, core.AdminPasswordFile))
		st, body, _ := w.do("GET", "/console/settings", nil)
		if st != 200 || !strings.Contains(body, sink.Host) || !strings.Contains(body, "custos@example.com") ||
			!strings.Contains(body, "ldap://127.0.0.1:1") || !strings.Contains(body, `id="settings-license"`) {
			t.Fatalf("settings page: %d\n%s", st, body)
		}
		for _, secret := range []string{"smtp-secret-do-not-show", bindPassword} {
			if strings.Contains(body, secret) {
				t.Fatalf("the settings page shows a secret %q", secret)
			}
		}
		// The directory does not answer: said so, audited, nothing changed.
		st, body, _ = w.do("POST", "/console/settings/directory/sync", url.Values{})
		if st != 503 || !strings.Contains(body, "does not answer") || strings.Contains(body, bindPassword) {
			t.Fatalf("sync with the directory down: %d\n%s", st, body)
		}
		if a := se.caAudit("directory.sync"); len(a.Items) != 1 || a.Items[0].Outcome != "failed" {
			t.Fatalf("the sync in the audit trail: %+v", a.Items)
		}
		// The Core of the other subtests has no SMTP server and no directory.
		if _, body, _ := admin.do("GET", "/console/settings", nil); !regexp.MustCompile(`id="smtp-host">none<`).MatchString(body) ||
			!regexp.MustCompile(`id="directory-url">none<`).MatchString(body) || strings.Contains(body, `id="directory-sync"`) {
			t.Fatalf("settings without SMTP and directory:\n%s", body)
		}
		if helen != nil {
			if st, _, _ := helen.do("GET", "/console/settings", nil); st != 403 {
				t.Fatalf("the help desk reads the settings: %d", st)
			}
		}

		// The same pages in a real browser: the settings, and an import
		// whose page reloads itself until the job has finished.
		b := browserFor(t, se)
		signIn(t, b, se.m.URL()+"/console", "admin", mustRead(t, se.dir, core.AdminPasswordFile))
		// signIn may return on the sign-in page's own h1, before the
		// redirect: navigating then would abort the sign-in.
		b.Run("dashboard", chromedp.WaitVisible(chromedp.CSS("#total-devices")))
		b.Run("settings", chromedp.Navigate(se.m.URL()+"/console/settings"), chromedp.WaitVisible(chromedp.CSS("#settings-license")))
		if got := b.Text("#smtp-host"); got != sink.Host {
			t.Fatalf("the browser shows the SMTP host %q", got)
		}
		b.Screenshot("console-settings")
		csvPath := filepath.Join(t.TempDir(), "users.csv")
		if err := os.WriteFile(csvPath, []byte("email,name\nbrowser1@example.com,One\nbrowser2@example.com,Two\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		b.Run("import in the browser", chromedp.Navigate(se.m.URL()+"/console/bulk"),
			chromedp.WaitVisible(chromedp.CSS("#import-file")),
			chromedp.SetUploadFiles(chromedp.CSS("#import-file"), []string{csvPath}),
			chromedp.Click(chromedp.CSS("#import-start")),
			chromedp.WaitVisible(chromedp.CSS("#job-state.finished")))
		if got := b.Text("#job-summary"); got != "2 rows: 2 created, 0 failed" {
			t.Fatalf("the browser's finished job says %q", got)
		}
		b.Screenshot("console-job-finished")
	})
}
