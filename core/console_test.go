package core_test

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/custos-uem/custos/core"
	"github.com/custos-uem/custos/sqlstore/sqltest"
	"github.com/custos-uem/custos/websession"
)

// webClient is a browser without a browser: cookies, no redirects
// followed, the Origin of the Core on every request.
type webClient struct {
	t    *testing.T
	e    *env
	hc   *http.Client
	csrf string
}

func newWebClient(t *testing.T, e *env) *webClient {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	return &webClient{t: t, e: e, hc: &http.Client{Jar: jar, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: e.roots}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

var csrfField = regexp.MustCompile(`name="csrf_token" value="([^"]*)"`)

func (w *webClient) do(method, path string, form url.Values) (int, string, http.Header) {
	w.t.Helper()
	var body io.Reader
	if form != nil {
		if form.Get("csrf_token") == "" && w.csrf != "" {
			form.Set("csrf_token", w.csrf)
		}
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, w.e.m.URL()+path, body)
	req.Header.Set("Origin", w.e.m.URL())
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := w.hc.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if m := csrfField.FindSubmatch(b); m != nil && len(m[1]) > 0 {
		w.csrf = string(m[1])
	}
	return resp.StatusCode, string(b), resp.Header
}

// rawStatus sends a request line exactly as written (Go's client would
// clean the path first).
func rawStatus(t *testing.T, e *env, target string) int {
	t.Helper()
	c, err := tls.Dial("tcp", strings.TrimPrefix(e.m.URL(), "https://"), &tls.Config{RootCAs: e.roots, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", target)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestConsoleRefusals: the web surface's bad input. Static files under
// odd spellings, pages without a session, a view-only administrator
// changing something (403, audited), a sign-in that is not ours.
func TestConsoleRefusals(t *testing.T) {
	e := newEnv(t, sqltest.Backends(t)[0])
	for _, tc := range []struct {
		name, target string
		want         int
	}{
		// An odd spelling never reaches the console: the router hands it
		// to the API's authentication (deny by default), which refuses it.
		{"fail/static-dotdot", "/console/static/../../admin-token", 401},
		{"fail/static-encoded-dotdot", "/console/static/%2e%2e/%2e%2e/secret.key", 401},
		{"fail/static-encoded-slash", "/portal/static/..%2f..%2fsecret.key", 401},
		{"fail/static-backslash", "/console/static/..\\..\\secret.key", 401},
		{"fail/static-missing", "/console/static/secret.key", 404},
		{"fail/page-without-session", "/console/devices", 303},
		{"fail/portal-without-session", "/portal/", 303},
		{"ok/static", "/console/static/custos.css", 200},
		{"ok/sign-in-page", "/console/login", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := rawStatus(t, e, tc.target); got != tc.want {
				t.Fatalf("GET %s = %d, want %d", tc.target, got, tc.want)
			}
		})
	}

	t.Run("fail/view-only-administrator-changes-something", func(t *testing.T) {
		var a struct{ ID string }
		if st := e.api("POST", "/api/v1/admins", map[string]any{"username": "junior", "role": "junior_help_desk"}, &a); st != 201 {
			t.Fatalf("create admin: %d", st)
		}
		if err := e.m.Sessions.SetPassword(t.Context(), websession.RealmAdmin, a.ID, "junior password 1"); err != nil {
			t.Fatal(err)
		}
		u, _ := e.mustUser("victim@example.com")
		w := newWebClient(t, e)
		w.do("GET", "/console/login", nil)
		if st, _, h := w.do("POST", "/console/login", url.Values{"login": {"junior"}, "password": {"junior password 1"}}); st != 303 || h.Get("Location") != "/console/" {
			t.Fatalf("sign in: %d %v", st, h)
		}
		if st, body, _ := w.do("GET", "/console/users/"+u.ID, nil); st != 200 || strings.Contains(body, "generate-password") {
			t.Fatalf("a view-only administrator's user page: %d, offers a password: %v", st, strings.Contains(body, "generate-password"))
		}
		st, body, _ := w.do("POST", "/console/users/"+u.ID+"/password", url.Values{})
		if st != 403 || !strings.Contains(body, "passwords.write") {
			t.Fatalf("generate a password as view-only: %d\n%s", st, body)
		}
		var audit struct {
			Items []struct{ Action, Actor, Outcome string } `json:"items"`
		}
		e.api("GET", "/api/v1/audit?action=activation_password.create.denied", nil, &audit)
		if len(audit.Items) != 1 || audit.Items[0].Actor != a.ID || audit.Items[0].Outcome != "denied" {
			t.Fatalf("the refusal in the audit trail: %+v", audit.Items)
		}
		// No CSRF token, even signed in: refused before anything runs.
		w.csrf = ""
		if st, _, _ := w.do("POST", "/console/logout", url.Values{}); st != 403 {
			t.Fatalf("a POST without its token: %d", st)
		}
	})

	t.Run("ok/assign-activation-profile", func(t *testing.T) {
		var profiles struct {
			Items []struct{ ID, Name string } `json:"items"`
		}
		if st := e.api("GET", "/api/v1/activation-profiles", nil, &profiles); st != 200 || len(profiles.Items) == 0 {
			t.Fatalf("profiles: %d %+v", st, profiles)
		}
		u, _ := e.mustUser("profiled@example.com")
		w := newWebClient(t, e)
		w.do("GET", "/console/login", nil)
		w.do("POST", "/console/login", url.Values{"login": {"admin"}, "password": {mustRead(t, e.dir, core.AdminPasswordFile)}})
		if st, body, _ := w.do("GET", "/console/users/"+u.ID, nil); st != 200 || !strings.Contains(body, "effective-profile") {
			t.Fatalf("user page: %d", st)
		}
		if st, _, _ := w.do("POST", "/console/users/"+u.ID+"/profile", url.Values{"profile_id": {profiles.Items[0].ID}}); st != 303 {
			t.Fatalf("assign: %d", st)
		}
		var got struct {
			ActivationProfileID string `json:"activation_profile_id"`
		}
		if e.api("GET", "/api/v1/users/"+u.ID, nil, &got); got.ActivationProfileID != profiles.Items[0].ID {
			t.Fatalf("user after the assignment: %+v", got)
		}
		if st, _, _ := w.do("POST", "/console/users/"+u.ID+"/profile", url.Values{"profile_id": {"no-such-profile"}}); st != 400 {
			t.Fatalf("assign an unknown profile: %d", st)
		}
	})

	t.Run("ok/cancel-command-revoke-passwords-list-tokens", func(t *testing.T) {
		u, pw := e.mustUser("dora@example.com")
		_, deviceID := e.mustEnrolled(u.Email, pw, "hw-dora")
		var cmd struct{ ID string }
		if st := e.api("POST", "/api/v1/devices/"+deviceID+"/commands", map[string]string{"type": "lock"}, &cmd); st != 201 {
			t.Fatalf("send lock: %d", st)
		}
		w := newWebClient(t, e)
		w.do("GET", "/console/login", nil)
		w.do("POST", "/console/login", url.Values{"login": {"admin"}, "password": {mustRead(t, e.dir, core.AdminPasswordFile)}})
		if _, body, _ := w.do("GET", "/console/devices/"+deviceID, nil); !strings.Contains(body, "cancel-command") {
			t.Fatal("the device page offers no cancel for an open command")
		}
		if st, _, _ := w.do("POST", "/console/devices/"+deviceID+"/commands/"+cmd.ID+"/cancel", url.Values{}); st != 303 {
			t.Fatalf("cancel: %d", st)
		}
		var got struct{ Status string }
		if e.api("GET", "/api/v1/commands/"+cmd.ID, nil, &got); got.Status != "cancelled" {
			t.Fatalf("command after the cancel: %+v", got)
		}
		// Another device's command through this device's page: 404.
		other, opw := e.mustUser("eve@example.com")
		_, otherDev := e.mustEnrolled(other.Email, opw, "hw-eve")
		var ocmd struct{ ID string }
		e.api("POST", "/api/v1/devices/"+otherDev+"/commands", map[string]string{"type": "lock"}, &ocmd)
		if st, _, _ := w.do("POST", "/console/devices/"+deviceID+"/commands/"+ocmd.ID+"/cancel", url.Values{}); st != 404 {
			t.Fatalf("cancel another device's command through this one: %d", st)
		}

		e.mustPassword(u.ID, "")
		if st, _, _ := w.do("POST", "/console/users/"+u.ID+"/passwords/revoke", url.Values{}); st != 303 {
			t.Fatalf("revoke: %d", st)
		}
		var ps struct {
			Items []struct {
				RevokedAt *string `json:"revoked_at"`
				UsedAt    *string `json:"used_at"`
			} `json:"items"`
		}
		e.api("GET", "/api/v1/users/"+u.ID+"/activation-passwords", nil, &ps)
		for _, p := range ps.Items {
			if p.RevokedAt == nil && p.UsedAt == nil {
				t.Fatalf("an unused password survived the revocation: %+v", ps.Items)
			}
		}

		if st := e.api("POST", "/api/v1/roles/help_desk/bindings", map[string]any{"group": "cn=helpdesk,ou=groups,dc=example,dc=com"}, nil); st != 201 {
			t.Fatalf("bind a directory group: %d", st)
		}
		if _, body, _ := w.do("GET", "/console/roles", nil); !strings.Contains(body, "cn=helpdesk,ou=groups,dc=example,dc=com") {
			t.Fatal("the roles page does not show the directory group bound to a role")
		}
		admins, _ := e.m.DB.ListAdmins(t.Context())
		if _, body, _ := w.do("GET", "/console/administrators/"+admins[0].ID, nil); !strings.Contains(body, "administrator-tokens") || strings.Contains(body, e.token) {
			t.Fatalf("the administrator page: tokens listed %v, a token's value shown %v", strings.Contains(body, "administrator-tokens"), strings.Contains(body, e.token))
		}
	})

	t.Run("fail/sign-in-from-another-site", func(t *testing.T) {
		req, _ := http.NewRequest("POST", e.m.URL()+"/console/login", strings.NewReader("login=admin&password="+url.QueryEscape(mustRead(t, e.dir, core.AdminPasswordFile))))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", "https://evil.example")
		resp, err := e.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 403 || len(resp.Cookies()) != 0 {
			t.Fatalf("a forged sign-in: %d, cookies %v", resp.StatusCode, resp.Cookies())
		}
	})
}
