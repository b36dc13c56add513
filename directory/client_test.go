package directory_test

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/custos-uem/custos/directory"
	"github.com/custos-uem/custos/directory/directorytest"
	"github.com/custos-uem/custos/errs"
)

// MustClient returns a Client for cfg or fails the test.
func MustClient(t testing.TB, cfg directory.Config) *directory.Client {
	t.Helper()
	c, err := directory.New(cfg)
	if err != nil {
		t.Fatalf("directory.New: %v", err)
	}
	return c
}

// wantCode fails unless err is an *errs.Error with code.
func wantCode(t testing.TB, err error, code string) *errs.Error {
	t.Helper()
	var e *errs.Error
	if !errors.As(err, &e) || e.Code != code {
		t.Fatalf("got error %v, want code %s", err, code)
	}
	return e
}

func TestConfigValidation(t *testing.T) {
	ok := directory.Config{URL: "ldap://127.0.0.1:389", BindDN: "cn=svc,dc=example,dc=com", BindPassword: "x", BaseDN: "dc=example,dc=com"}
	tests := []struct {
		name  string
		edit  func(c *directory.Config)
		field string // "" for valid
	}{
		{"fail/no URL", func(c *directory.Config) { c.URL = "" }, "url"},
		{"fail/http URL", func(c *directory.Config) { c.URL = "http://dir.example.com" }, "url"},
		{"fail/credentials in URL", func(c *directory.Config) { c.URL = "ldap://u:p@dir.example.com" }, "url"},
		{"fail/StartTLS on ldaps", func(c *directory.Config) { c.URL, c.StartTLS = "ldaps://dir.example.com", true }, "start_tls"},
		{"fail/unknown preset", func(c *directory.Config) { c.Preset = "novell" }, "preset"},
		{"fail/no bind DN", func(c *directory.Config) { c.BindDN = "" }, "bind_dn"},
		{"fail/bind DN not a DN", func(c *directory.Config) { c.BindDN = "svc" }, "bind_dn"},
		// RFC 4513 §5.1.2: an empty password is an unauthenticated bind.
		{"fail/empty bind password", func(c *directory.Config) { c.BindPassword = "" }, "bind_password"},
		{"fail/no base DN", func(c *directory.Config) { c.BaseDN = "" }, "base_dn"},
		{"fail/user filter unbalanced", func(c *directory.Config) { c.UserFilter = "(objectClass=person" }, "user_filter"},
		{"fail/user filter without parentheses", func(c *directory.Config) { c.UserFilter = "objectClass=person" }, "user_filter"},
		{"fail/group filter", func(c *directory.Config) { c.GroupFilter = "((" }, "group_filter"},
		{"fail/login attribute injection", func(c *directory.Config) { c.LoginAttr = "uid)(cn=*" }, "login_attr"},
		{"fail/page size too large", func(c *directory.Config) { c.PageSize = directory.MaxPageSize + 1 }, "page_size"},
		{"fail/negative page size", func(c *directory.Config) { c.PageSize = -1 }, "page_size"},
		{"fail/negative timeout", func(c *directory.Config) { c.Timeout = -time.Second }, "timeout"},
		{"ok/openldap defaults", func(c *directory.Config) {}, ""},
		{"ok/ad preset over ldaps", func(c *directory.Config) { c.Preset, c.URL = directory.PresetAD, "ldaps://dc1.example.com" }, ""},
		{"ok/StartTLS", func(c *directory.Config) { c.StartTLS = true }, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ok
			tc.edit(&cfg)
			c, err := directory.New(cfg)
			if tc.field == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			e := wantCode(t, err, directory.ErrConfig.Code)
			if e.Kind != errs.Invalid || e.Fields[tc.field] == "" {
				t.Fatalf("New: kind %v, fields %v; want field %s", e.Kind, e.Fields, tc.field)
			}
			if c != nil {
				t.Fatal("New returned a client with an error")
			}
		})
	}
}

func TestPresetDefaults(t *testing.T) {
	base := directory.Config{URL: "ldap://x", BindDN: "cn=a", BindPassword: "x", BaseDN: "dc=x"}
	tests := []struct {
		preset                            string
		filter, login, id, display, group string
	}{
		{directory.PresetOpenLDAP, "(objectClass=inetOrgPerson)", "uid", "entryUUID", "cn", directory.DefaultGroupFilter},
		{directory.PresetAD, "(&(objectCategory=person)(objectClass=user))", "sAMAccountName", "objectGUID", "displayName", directory.DefaultGroupFilter},
	}
	for _, tc := range tests {
		t.Run("ok/"+tc.preset, func(t *testing.T) {
			cfg := base
			cfg.Preset = tc.preset
			got := MustClient(t, cfg).Config()
			if got.UserFilter != tc.filter || got.LoginAttr != tc.login || got.IDAttr != tc.id || got.DisplayNameAttr != tc.display ||
				got.GroupFilter != tc.group || got.GroupMemberAttr != "member" || got.EmailAttr != "mail" ||
				got.PageSize != directory.DefaultPageSize || got.GroupBaseDN != cfg.BaseDN {
				t.Fatalf("defaults for %s: %+v", tc.preset, got)
			}
		})
	}
}

func TestAuthenticate(t *testing.T) {
	s := directorytest.StartSlapd(t)
	c := MustClient(t, s.Config())
	ctx := context.Background()
	tests := []struct {
		name, login, password string
		cause                 error // behind directory_invalid_credentials; nil for success
	}{
		{"fail/wrong password", "ada", "wrong", directory.ErrWrongPassword},
		{"fail/unknown user", "nobody", directorytest.Password, directory.ErrUnknownUser},
		{"fail/empty password", "ada", "", directory.ErrEmptyPassword},
		{"fail/empty login", "", directorytest.Password, directory.ErrUnknownUser},
		// RFC 4515 §3: each metacharacter is escaped, so it is matched
		// literally and matches nobody; unescaped, "*" would match every
		// user, "(" or ")" would break or reshape the filter.
		{"fail/filter metacharacter star", "*", directorytest.Password, directory.ErrUnknownUser},
		{"fail/filter metacharacter star suffix", "ad*", directorytest.Password, directory.ErrUnknownUser},
		{"fail/filter metacharacter open parenthesis", "ada(", directorytest.Password, directory.ErrUnknownUser},
		{"fail/filter metacharacter close parenthesis", "ada)", directorytest.Password, directory.ErrUnknownUser},
		{"fail/filter metacharacter backslash", `ada\`, directorytest.Password, directory.ErrUnknownUser},
		{"fail/filter metacharacter escaped star", `\2a`, directorytest.Password, directory.ErrUnknownUser},
		{"fail/filter metacharacter NUL", "ada\x00", directorytest.Password, directory.ErrUnknownUser},
		{"fail/filter injection OR", "admin)(|(uid=*", directorytest.Password, directory.ErrUnknownUser},
		{"fail/filter injection closes AND", "ada)(objectClass=*))(|(uid=x", directorytest.Password, directory.ErrUnknownUser},
		{"fail/invalid UTF-8", "ada\xff", directorytest.Password, directory.ErrUnknownUser},
		{"fail/login over limit", strings.Repeat("a", directory.MaxLogin+1), directorytest.Password, directory.ErrUnknownUser},
		{"ok/uid", "ada", directorytest.Password, nil},
		{"ok/uid in other case", "ADA", directorytest.Password, nil},
		{"ok/email", "ada@example.com", directorytest.Password, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := c.Authenticate(ctx, tc.login, tc.password)
			if tc.cause == nil {
				if err != nil {
					t.Fatalf("Authenticate(%q): %v", tc.login, err)
				}
				if e.Login != "ada" || e.Email != "ada@example.com" || e.DisplayName != "Ada Lovelace" ||
					e.DN != directorytest.UserDN("ada") || len(e.ID) != 36 {
					t.Fatalf("Authenticate(%q) = %+v", tc.login, e)
				}
				return
			}
			got := wantCode(t, err, directory.ErrInvalidCredentials.Code)
			if got.Kind != errs.Unauthenticated || !errors.Is(err, tc.cause) {
				t.Fatalf("Authenticate(%q): kind %v, cause %v; want Unauthenticated, %v", tc.login, got.Kind, err, tc.cause)
			}
			if e != nil {
				t.Fatalf("Authenticate(%q) returned an entry with an error", tc.login)
			}
		})
	}
}

func TestAuthenticateAmbiguousLogin(t *testing.T) {
	s := directorytest.StartSlapd(t)
	// An entry whose uid is grace's mail: the login "grace@example.com"
	// now names two entries, and neither may be picked.
	s.AddPerson(t, directorytest.Person{UID: "grace@example.com", CN: "Impostor", Mail: "impostor@example.com"})
	_, err := MustClient(t, s.Config()).Authenticate(context.Background(), "grace@example.com", directorytest.Password)
	wantCode(t, err, directory.ErrAmbiguousLogin.Code)
}

func TestServiceAccountRefused(t *testing.T) {
	s := directorytest.StartSlapd(t)
	cfg := s.Config()
	cfg.BindPassword = "wrong"
	_, err := MustClient(t, cfg).Authenticate(context.Background(), "ada", directorytest.Password)
	e := wantCode(t, err, "directory_bind_failed")
	if e.Kind != errs.Unavailable {
		t.Fatalf("kind %v, want Unavailable: the user's credentials are not the problem", e.Kind)
	}
	if err := MustClient(t, cfg).Check(context.Background()); err == nil {
		t.Fatal("Check passed with a wrong service password")
	}
	if err := MustClient(t, s.Config()).Check(context.Background()); err != nil {
		t.Fatalf("Check: %v", err)
	}
}

func TestDirectoryDownIsUnavailable(t *testing.T) {
	s := directorytest.StartSlapd(t)
	c := MustClient(t, s.Config())
	s.Stop(t)
	start := time.Now()
	_, err := c.Authenticate(context.Background(), "ada", directorytest.Password)
	e := wantCode(t, err, "directory_unavailable")
	if e.Kind != errs.Unavailable || !strings.Contains(e.Message, "company directory at "+s.URL+" does not answer") {
		t.Fatalf("error %v: want Unavailable naming %s", err, s.URL)
	}
	if took := time.Since(start); took > c.Config().DialTimeout+time.Second {
		t.Fatalf("took %v, beyond the dial timeout %v", took, c.Config().DialTimeout)
	}
	_, err = c.Users(context.Background())
	wantCode(t, err, "directory_unavailable")
}

// silentServer accepts connections and never answers, like a directory
// that hangs; it counts the connections.
func silentServer(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				for _, c := range conns {
					c.Close()
				}
				return
			}
			n.Add(1)
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
	})
	return "ldap://" + l.Addr().String(), &n
}

func TestDirectoryHangingTimesOut(t *testing.T) {
	url, _ := silentServer(t)
	cfg := directory.Config{URL: url, BindDN: "cn=svc,dc=example,dc=com", BindPassword: "x", BaseDN: "dc=example,dc=com",
		Timeout: 300 * time.Millisecond}
	start := time.Now()
	_, err := MustClient(t, cfg).Authenticate(context.Background(), "ada", "pw")
	e := wantCode(t, err, "directory_unavailable")
	if !strings.Contains(e.Message, "does not answer") {
		t.Fatalf("message %q", e.Message)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("took %v with a 300ms request timeout", took)
	}
}

func TestContextEndsAHangingRequest(t *testing.T) {
	url, _ := silentServer(t)
	cfg := directory.Config{URL: url, BindDN: "cn=svc,dc=example,dc=com", BindPassword: "x", BaseDN: "dc=example,dc=com"}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := MustClient(t, cfg).Authenticate(ctx, "ada", "pw")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want the context's deadline", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("took %v past a 200ms context", took)
	}
}

// An empty password is refused before the client even connects (RFC 4513
// §5.1.2: the bind would be unauthenticated and succeed).
func TestEmptyPasswordNeverReachesTheDirectory(t *testing.T) {
	url, conns := silentServer(t)
	cfg := directory.Config{URL: url, BindDN: "cn=svc,dc=example,dc=com", BindPassword: "x", BaseDN: "dc=example,dc=com"}
	_, err := MustClient(t, cfg).Authenticate(context.Background(), "ada", "")
	wantCode(t, err, directory.ErrInvalidCredentials.Code)
	if !errors.Is(err, directory.ErrEmptyPassword) {
		t.Fatalf("cause %v, want ErrEmptyPassword", err)
	}
	time.Sleep(50 * time.Millisecond)
	if n := conns.Load(); n != 0 {
		t.Fatalf("%d connections to the directory for an empty password", n)
	}
}

func TestStartTLS(t *testing.T) {
	s := directorytest.StartSlapd(t)
	// The certificate names localhost and 127.0.0.1.
	tests := []struct {
		name string
		edit func(c *directory.Config)
		code string
	}{
		{"fail/unknown CA", func(c *directory.Config) { c.RootCAs = x509.NewCertPool() }, "directory_tls_failed"},
		{"ok/trusted", func(c *directory.Config) {}, ""},
		{"ok/by name", func(c *directory.Config) { c.URL = strings.Replace(c.URL, "127.0.0.1", "localhost", 1) }, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := s.Config()
			cfg.StartTLS = true
			tc.edit(&cfg)
			_, err := MustClient(t, cfg).Authenticate(context.Background(), "ada", directorytest.Password)
			if tc.code == "" {
				if err != nil {
					t.Fatalf("Authenticate over StartTLS: %v", err)
				}
				return
			}
			wantCode(t, err, tc.code)
		})
	}
}

// TestPagedSearch checks RFC 2696 paging against slapd: five users in
// pages of two arrive as three pages, none larger than asked.
func TestPagedSearch(t *testing.T) {
	s := directorytest.StartSlapd(t)
	cfg := s.Config()
	cfg.PageSize = 2
	var sizes []int
	total := 0
	err := MustClient(t, cfg).UserPages(context.Background(), func(es []*directory.Entry) error {
		sizes = append(sizes, len(es))
		total += len(es)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if total != len(directorytest.People) || len(sizes) != 3 || sizes[0] != 2 || sizes[1] != 2 {
		t.Fatalf("pages %v, want [2 2 1]", sizes)
	}
	// A callback error stops the search and comes back unchanged.
	stop := errors.New("stop")
	pages := 0
	err = MustClient(t, cfg).UserPages(context.Background(), func([]*directory.Entry) error { pages++; return stop })
	if !errors.Is(err, stop) || pages != 1 {
		t.Fatalf("UserPages with a failing callback: %v after %d pages", err, pages)
	}
}
