package core_test

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/custos-uem/custos/agent"
	"github.com/custos-uem/custos/core"
	"github.com/custos-uem/custos/directory/directorytest"
	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/mail/mailtest"
	"github.com/custos-uem/custos/sqlstore/sqltest"
	"github.com/custos-uem/custos/websession"
)

type passwordOut struct {
	Password string `json:"password"`
	Email    *struct {
		Sent  bool `json:"sent"`
		Error *struct {
			Code, Message string
		} `json:"error"`
	} `json:"email"`
}

// TestActivationEmail: the administrator asks for the activation email
// with a new password and the SMTP server receives it (STARTTLS, AUTH);
// an SMTP server that refuses leaves the password valid and says so in
// the same answer; a Core without SMTP refuses to pretend.
func TestActivationEmail(t *testing.T) {
	t.Run("fail/no-smtp-server", func(t *testing.T) {
		e := newEnv(t, sqltest.Backends(t)[0])
		u, _ := e.mustUser("nomail@example.com")
		var out struct {
			Error struct{ Code string } `json:"error"`
		}
		if st := e.api("POST", "/api/v1/users/"+u.ID+"/activation-passwords", map[string]any{"send_email": true}, &out); st != 400 || out.Error.Code != "mail_not_configured" {
			t.Fatalf("send_email without SMTP: %d %+v", st, out)
		}
	})
	t.Run("fail/smtp-refuses-password-stays-valid", func(t *testing.T) {
		sink := mailtest.Start(t, mailtest.Options{Username: mailtest.DefaultUsername, Password: mailtest.DefaultPassword, RefuseRcpt: true})
		e := newEnvWith(t, sqltest.Backends(t)[0], func(c *core.Config) { c.Mail.Config = sink.Config() })
		u, _ := e.mustUser("refused@example.com")
		var out passwordOut
		if st := e.api("POST", "/api/v1/users/"+u.ID+"/activation-passwords", map[string]any{"send_email": true}, &out); st != 201 {
			t.Fatalf("set password: %d", st)
		}
		if out.Email == nil || out.Email.Sent || out.Email.Error == nil || out.Email.Error.Code != "mail_refused" || out.Password == "" {
			t.Fatalf("answer %+v, want the password and the refusal", out)
		}
		if _, err := e.agent(agent.NewMemStore(), 21).Activate(context.Background(), u.Email, out.Password); err != nil {
			t.Fatalf("the password of a refused email does not activate: %v", err)
		}
	})
	t.Run("ok/sent", func(t *testing.T) {
		sink := mailtest.Start(t, mailtest.Options{Username: mailtest.DefaultUsername, Password: mailtest.DefaultPassword})
		e := newEnvWith(t, sqltest.Backends(t)[0], func(c *core.Config) {
			c.Mail.Config = sink.Config()
			c.Mail.DiscoveryURL = "http://relay.example.com:443"
		})
		u, _ := e.mustUser("carol@example.com")
		var out passwordOut
		if st := e.api("POST", "/api/v1/users/"+u.ID+"/activation-passwords", map[string]any{"send_email": true}, &out); st != 201 || out.Email == nil || !out.Email.Sent {
			t.Fatalf("set password with email: %d %+v", st, out)
		}
		got := sink.WaitMessage(t, 10*time.Second)
		if !got.TLS || len(got.To) != 1 || got.To[0] != "carol@example.com" || !strings.Contains(string(got.Data), out.Password) {
			t.Fatalf("the message that arrived: TLS %v, to %v, has the password %v", got.TLS, got.To, strings.Contains(string(got.Data), out.Password))
		}
	})
}

// TestDirectoryThroughTheCore: the Core synchronises a real OpenLDAP on
// demand; a directory user signs in to Self-Service with their directory
// password; with the directory down, the sign-in says so while the local
// administrator still signs in to the console.
func TestDirectoryThroughTheCore(t *testing.T) {
	srv := directorytest.StartSlapd(t)
	e := newEnvWith(t, sqltest.Backends(t)[0], func(c *core.Config) {
		c.Directory.Config = srv.Config()
		c.Directory.SyncInterval = -1
	})
	var rep struct {
		Created int `json:"created"`
	}
	if st := e.api("POST", "/api/v1/directory/sync", nil, &rep); st != 200 || rep.Created != len(directorytest.People) {
		t.Fatalf("sync: %d %+v", st, rep)
	}
	ctx := context.Background()
	ada, err := e.m.Users.ByLogin(ctx, "ada")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.m.Sessions.SignIn(ctx, websession.RealmUser, ada.ID, "wrong password here", "192.0.2.1"); errs.KindOf(err) != errs.Unauthenticated {
		t.Fatalf("a wrong directory password: %v", err)
	}
	if _, _, err := e.m.Sessions.SignIn(ctx, websession.RealmUser, ada.ID, directorytest.Password, "192.0.2.2"); err != nil {
		t.Fatalf("ada signs in with her directory password: %v", err)
	}

	srv.Stop(t)
	_, _, err = e.m.Sessions.SignIn(ctx, websession.RealmUser, ada.ID, directorytest.Password, "192.0.2.3")
	if code, msg, _ := errs.Public(err); code != "directory_unavailable" || !strings.Contains(msg, "does not answer") {
		t.Fatalf("sign-in with the directory down: %v", err)
	}
	admins, err := e.m.DB.ListAdmins(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.m.Sessions.SignIn(ctx, websession.RealmAdmin, admins[0].ID, mustRead(t, e.dir, core.AdminPasswordFile), "192.0.2.4"); err != nil {
		t.Fatalf("the local administrator with the directory down: %v", err)
	}
	var bad struct {
		Error struct{ Code string } `json:"error"`
	}
	if st := e.api("POST", "/api/v1/directory/sync", nil, &bad); st != 503 || bad.Error.Code != "directory_unavailable" {
		t.Fatalf("sync with the directory down: %d %+v", st, bad)
	}
}

// mustRead returns the trimmed content of a file in dir.
func mustRead(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestDirectoryAdministrators: an administrator signs in to the console
// with their directory account; the role comes from the directory groups
// bound to roles, nested groups included, and follows the bindings at
// every sign-in; an account in no bound group, or with a wrong password,
// gets no session and no administrator record.
func TestDirectoryAdministrators(t *testing.T) {
	srv := directorytest.StartSlapd(t)
	e := newEnvWith(t, sqltest.Backends(t)[0], func(c *core.Config) {
		c.Directory.Config = srv.Config()
		c.Directory.SyncInterval = -1
	})
	bind := func(role, group string) {
		t.Helper()
		if st := e.api("POST", "/api/v1/roles/"+role+"/bindings", map[string]any{"group": directorytest.GroupDN(group)}, nil); st != 201 {
			t.Fatalf("bind %s to %s: %d", group, role, st)
		}
	}
	roleOf := func(username string) string {
		t.Helper()
		var l struct {
			Items []struct{ Username, Role string } `json:"items"`
		}
		e.api("GET", "/api/v1/admins", nil, &l)
		for _, a := range l.Items {
			if a.Username == username {
				return a.Role
			}
		}
		return ""
	}
	signIn := func(login, password string) (int, string) {
		t.Helper()
		w := newWebClient(t, e)
		w.do("GET", "/console/login", nil)
		st, body, _ := w.do("POST", "/console/login", url.Values{"login": {login}, "password": {password}})
		return st, body
	}
	bind("help_desk", "engineering")

	for _, tc := range []struct {
		name, login, password string
		want                  string // in the refusal page
	}{
		{"fail/wrong-password", "ada", "not her password", "wrong"},
		{"fail/in-no-bound-group", "alan", directorytest.Password, "no group bound"},
		{"fail/filter-metacharacters", "ada)(|(uid=*", directorytest.Password, "wrong"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if st, body := signIn(tc.login, tc.password); st == 303 || !strings.Contains(strings.ToLower(body), tc.want) {
				t.Fatalf("sign-in of %s: %d\n%s", tc.login, st, body)
			}
			if r := roleOf(strings.ToLower(tc.login)); r != "" {
				t.Fatalf("a refused sign-in left an administrator %q", r)
			}
		})
	}
	t.Run("ok/bound-group", func(t *testing.T) {
		if st, body := signIn("ada", directorytest.Password); st != 303 {
			t.Fatalf("ada signs in: %d\n%s", st, body)
		}
		if r := roleOf("ada"); r != "help_desk" {
			t.Fatalf("ada's role: %q, want help_desk", r)
		}
	})
	t.Run("ok/role-follows-the-bindings", func(t *testing.T) {
		// staff holds engineering: a binding on it covers ada too, and
		// the role that allows more wins.
		bind("enterprise_admin", "staff")
		if st, _ := signIn("ada", directorytest.Password); st != 303 {
			t.Fatalf("ada signs in again: %d", st)
		}
		if r := roleOf("ada"); r != "enterprise_admin" {
			t.Fatalf("ada's role after the new binding: %q, want enterprise_admin", r)
		}
	})
}
