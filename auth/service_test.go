package auth_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/custos-uem/custos/audit"
	"github.com/custos-uem/custos/auth"
	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/httpx"
	"github.com/custos-uem/custos/sqlstore"
	"github.com/custos-uem/custos/sqlstore/sqltest"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// countingTokens counts TouchToken calls.
type countingTokens struct {
	auth.TokenStore
	touches atomic.Int64
}

func (c *countingTokens) TouchToken(ctx context.Context, id string, now time.Time) error {
	c.touches.Add(1)
	return c.TokenStore.TouchToken(ctx, id, now)
}

func code(err error) string {
	var e *errs.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

func forEach(t *testing.T, f func(t *testing.T, db *sqlstore.DB)) {
	for _, b := range sqltest.Backends(t) {
		t.Run(b, func(t *testing.T) { f(t, sqltest.Open(t, b)) })
	}
}

func newService(db *sqlstore.DB, c *clock) *auth.Service {
	return &auth.Service{Admins: db, Tokens: db, Now: c.Now}
}

func TestBootstrapWritesTokenOnceWithMode0600(t *testing.T) {
	forEach(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		s := newService(db, newClock())
		dir := filepath.Join(t.TempDir(), "data")
		created, path, err := s.Bootstrap(ctx, dir)
		if err != nil || !created || path != filepath.Join(dir, auth.TokenFile) {
			t.Fatalf("Bootstrap = %v %q %v", created, path, err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("token file mode %v, want 0600", fi.Mode().Perm())
		}
		b, _ := os.ReadFile(path)
		plain := strings.TrimSpace(string(b))
		a, tok, err := s.Authenticate(ctx, plain)
		if err != nil {
			t.Fatalf("bootstrap token does not authenticate: %v", err)
		}
		if a.Username != auth.BootstrapAdmin || a.Role != auth.RoleSecurityAdmin || tok.Name != auth.BootstrapTokenName {
			t.Errorf("admin %+v token %+v", a, tok)
		}

		// A second start does nothing.
		created, _, err = s.Bootstrap(ctx, dir)
		if err != nil || created {
			t.Fatalf("second Bootstrap = %v %v", created, err)
		}
		// An operator who deleted the file does not get a new token.
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		created, _, err = s.Bootstrap(ctx, dir)
		if err != nil || created {
			t.Fatalf("Bootstrap after removing the file = %v %v", created, err)
		}
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("token file recreated: %v", err)
		}
		tokens, _ := db.ListTokens(ctx)
		admins, _ := db.ListAdmins(ctx)
		if len(tokens) != 1 || len(admins) != 1 {
			t.Errorf("%d tokens, %d admins; want 1, 1", len(tokens), len(admins))
		}
	})
}

func TestBootstrapTwoProcessesAtOnce(t *testing.T) {
	forEach(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		dir := t.TempDir()
		c := newClock()
		const n = 4
		var wg sync.WaitGroup
		var createdN atomic.Int64
		errc := make(chan error, n)
		for range n {
			wg.Go(func() {
				// Separate Services, one database: as separate processes.
				created, _, err := newService(db, c).Bootstrap(ctx, dir)
				if created {
					createdN.Add(1)
				}
				errc <- err
			})
		}
		wg.Wait()
		close(errc)
		for err := range errc {
			if err != nil {
				t.Fatal(err)
			}
		}
		if createdN.Load() < 1 {
			t.Fatal("nobody bootstrapped")
		}
		admins, _ := db.ListAdmins(ctx)
		if len(admins) != 1 {
			t.Fatalf("%d administrators, want 1", len(admins))
		}
		b, err := os.ReadFile(filepath.Join(dir, auth.TokenFile))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := newService(db, c).Authenticate(ctx, strings.TrimSpace(string(b))); err != nil {
			t.Fatalf("the token file's token does not authenticate: %v", err)
		}
	})
}

// TestBootstrapTwoCoresOnOneDatabase: two Core processes starting at once
// on one PostgreSQL database create one administrator between them. (Two
// processes on one SQLite file cannot happen: the second is refused at
// Open.)
func TestBootstrapTwoCoresOnOneDatabase(t *testing.T) {
	for _, backend := range sqltest.Backends(t) {
		if backend == sqlstore.Postgres {
			bootstrapTwice(t, sqltest.DSN(t, backend))
		}
	}
}

func bootstrapTwice(t *testing.T, dsn string) {
	ctx := context.Background()
	dir := t.TempDir()
	var dbs [2]*sqlstore.DB
	for i := range dbs {
		db, err := sqlstore.Open(ctx, dsn, dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		dbs[i] = db
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range dbs {
		wg.Go(func() { _, _, errs[i] = newService(dbs[i], newClock()).Bootstrap(ctx, dir) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	admins, _ := dbs[0].ListAdmins(ctx)
	if len(admins) != 1 {
		t.Fatalf("%d administrators, want 1", len(admins))
	}
}

func TestBootstrapFinishesAnInterruptedFirstStart(t *testing.T) {
	forEach(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		// A crash after the administrator was created, before any token.
		if err := db.CreateAdmin(ctx, &auth.Admin{ID: "0190a000-0000-7000-8000-000000000001", Username: "admin", Role: auth.RoleSecurityAdmin, CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		created, path, err := newService(db, newClock()).Bootstrap(ctx, dir)
		if err != nil || !created {
			t.Fatalf("Bootstrap = %v %v", created, err)
		}
		if _, err := os.Stat(path); err != nil {
			t.Fatal(err)
		}
	})
}

func TestTokenFormatAndHashAtRest(t *testing.T) {
	forEach(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		s := newService(db, newClock())
		if _, _, err := s.Bootstrap(ctx, t.TempDir()); err != nil {
			t.Fatal(err)
		}
		admins, _ := db.ListAdmins(ctx)
		plain, tok, err := s.CreateToken(ctx, admins[0].ID, "ci", 0)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(plain, auth.TokenPrefix) || len(plain) != auth.TokenLen {
			t.Fatalf("token %q: want %s + 43 base64url characters", plain, auth.TokenPrefix)
		}
		sum := sha256.Sum256([]byte(plain))
		stored, err := db.TokenByHash(ctx, sum[:])
		if err != nil || stored.ID != tok.ID {
			t.Fatalf("stored token by SHA-256: %v %v", stored, err)
		}
		if bytes.Contains(stored.Hash, []byte(plain)) {
			t.Fatal("the token is stored in clear")
		}
		if tok.ExpiresAt != nil {
			t.Error("ttl 0 must not expire")
		}
		for _, bad := range []struct {
			name string
			ttl  time.Duration
			code string
		}{{"", 0, "invalid_token_name"}, {strings.Repeat("x", 65), 0, "invalid_token_name"}, {"a\nb", 0, "invalid_token_name"}, {"ok", -time.Second, "invalid_token_ttl"}, {"ok", auth.MaxTokenTTL + 1, "invalid_token_ttl"}} {
			if _, _, err := s.CreateToken(ctx, admins[0].ID, bad.name, bad.ttl); code(err) != bad.code {
				t.Errorf("CreateToken(%q, %v) = %v, want %s", bad.name, bad.ttl, err, bad.code)
			}
		}
		if _, _, err := s.CreateToken(ctx, "no-such-admin", "x", 0); code(err) != "admin_not_found" {
			t.Errorf("token for unknown admin: %v", err)
		}
	})
}

func TestAuthenticateUnknownRevokedExpired(t *testing.T) {
	forEach(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		c := newClock()
		s := newService(db, c)
		if _, _, err := s.Bootstrap(ctx, t.TempDir()); err != nil {
			t.Fatal(err)
		}
		admins, _ := db.ListAdmins(ctx)
		good, _, _ := s.CreateToken(ctx, admins[0].ID, "good", 0)
		revoked, rt, _ := s.CreateToken(ctx, admins[0].ID, "revoked", 0)
		short, _, _ := s.CreateToken(ctx, admins[0].ID, "short", time.Hour)
		if err := s.Revoke(ctx, rt.ID); err != nil {
			t.Fatal(err)
		}
		if err := s.Revoke(ctx, rt.ID); code(err) != "token_not_found" {
			t.Errorf("second revoke: %v", err)
		}
		if _, _, err := s.Authenticate(ctx, short); err != nil {
			t.Fatalf("fresh short token: %v", err)
		}
		c.Add(time.Hour)
		unknown := auth.TokenPrefix + strings.Repeat("A", 43)
		for _, tc := range []struct{ token, code string }{
			{"", "token_required"},
			{"garbage", "token_invalid"},
			{unknown, "token_invalid"},
			{good[:len(good)-1] + "x", "token_invalid"},
			{revoked, "token_revoked"},
			{short, "token_expired"},
		} {
			a, _, err := s.Authenticate(ctx, tc.token)
			if code(err) != tc.code || !errs.Is(err, errs.Unauthenticated) {
				t.Errorf("Authenticate(%q) = %v, want %s", tc.token, err, tc.code)
			}
			if tc.code == "token_invalid" && a != nil {
				t.Errorf("an unknown token revealed an administrator")
			}
		}
		if a, _, err := s.Authenticate(ctx, good); err != nil || a.ID != admins[0].ID {
			t.Errorf("good token: %v %v", a, err)
		}
	})
}

func TestTouchAtMostOncePerMinute(t *testing.T) {
	forEach(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		c := newClock()
		ct := &countingTokens{TokenStore: db}
		s := &auth.Service{Admins: db, Tokens: ct, Now: c.Now}
		if _, _, err := s.Bootstrap(ctx, t.TempDir()); err != nil {
			t.Fatal(err)
		}
		admins, _ := db.ListAdmins(ctx)
		plain, tok, _ := s.CreateToken(ctx, admins[0].ID, "busy", 0)
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() {
				if _, _, err := s.Authenticate(ctx, plain); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if n := ct.touches.Load(); n != 1 {
			t.Fatalf("%d touches for 20 requests in one minute, want 1", n)
		}
		c.Add(30 * time.Second)
		s.Authenticate(ctx, plain)
		if n := ct.touches.Load(); n != 1 {
			t.Fatalf("touched again after 30s (%d)", n)
		}
		// Another process (a fresh Service) sees the stored LastUsedAt.
		s2 := &auth.Service{Admins: db, Tokens: ct, Now: c.Now}
		s2.Authenticate(ctx, plain)
		if n := ct.touches.Load(); n != 1 {
			t.Fatalf("a second process touched within the minute (%d)", n)
		}
		c.Add(31 * time.Second)
		s.Authenticate(ctx, plain)
		if n := ct.touches.Load(); n != 2 {
			t.Fatalf("%d touches after a minute, want 2", n)
		}
		all, _ := db.ListTokens(ctx)
		for _, x := range all {
			if x.ID == tok.ID && (x.LastUsedAt == nil || !x.LastUsedAt.Equal(c.Now())) {
				t.Errorf("LastUsedAt = %v, want %v", x.LastUsedAt, c.Now())
			}
		}
	})
}

func TestMiddleware(t *testing.T) {
	forEach(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		c := newClock()
		log := &audit.Logger{Store: db, Now: c.Now}
		s := &auth.Service{Admins: db, Tokens: db, Now: c.Now, Audit: log}
		if _, _, err := s.Bootstrap(ctx, t.TempDir()); err != nil {
			t.Fatal(err)
		}
		admins, _ := db.ListAdmins(ctx)
		good, _, _ := s.CreateToken(ctx, admins[0].ID, "good", 0)
		bad, bt, _ := s.CreateToken(ctx, admins[0].ID, "bad", 0)
		s.Revoke(ctx, bt.ID)
		var seen *auth.Admin
		h := s.Middleware(httpx.WriteError)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			seen, _ = auth.AdminFromContext(r.Context())
			if _, ok := auth.TokenFromContext(r.Context()); !ok {
				t.Error("no token in context")
			}
		}))
		for _, tc := range []struct {
			header string
			status int
		}{{"", 401}, {"Basic Zm9vOmJhcg==", 401}, {"Bearer " + bad, 401}, {"Bearer " + good, 200}, {"bearer " + good, 200}} {
			seen = nil
			req := httptest.NewRequest("GET", "/api/v1/users", nil)
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != tc.status {
				t.Errorf("%q: status %d, want %d", tc.header, w.Code, tc.status)
			}
			if tc.status == 200 && (seen == nil || seen.ID != admins[0].ID) {
				t.Errorf("%q: admin %v not in context", tc.header, seen)
			}
			if tc.status == 401 && w.Header().Get("WWW-Authenticate") == "" {
				t.Errorf("%q: no WWW-Authenticate", tc.header)
			}
		}
		// The revoked token's refusal is audited against its administrator.
		es, _ := db.ListAudit(ctx, audit.Query{Action: "auth.denied"})
		if len(es) != 1 || es[0].Actor != admins[0].ID || es[0].Outcome != audit.OutcomeDenied || es[0].ObjectID != bt.ID {
			t.Fatalf("denied audit entries: %+v", es)
		}
	})
}

func TestCreateAdminAndScope(t *testing.T) {
	forEach(t, func(t *testing.T, db *sqlstore.DB) {
		ctx := context.Background()
		s := &auth.Service{Admins: db, Tokens: db, Now: newClock().Now}
		for _, tc := range []struct {
			name  string
			in    auth.NewAdmin
			code  string
			field string
		}{
			{"fail/empty username", auth.NewAdmin{}, "invalid_admin", "username"},
			{"fail/username with a space", auth.NewAdmin{Username: "a b"}, "invalid_admin", "username"},
			{"fail/control character in the name", auth.NewAdmin{Username: "x", DisplayName: "a\x1b[2J"}, "invalid_admin", "display_name"},
			{"fail/too many scope groups", auth.NewAdmin{Username: "x", ScopeGroups: make([]string, auth.MaxScopeGroups+1)}, "invalid_admin", "scope_groups"},
			{"ok/scoped, repeats once", auth.NewAdmin{Username: "Eve", ScopeGroups: []string{"g1", "g1", "g2"}}, "", ""},
			{"fail/duplicate username", auth.NewAdmin{Username: "EVE"}, "admin_username_taken", ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				a, err := s.CreateAdmin(ctx, tc.in)
				if tc.code == "" {
					if err != nil || a.Username != "eve" || len(a.ScopeGroups) != 2 || !a.Scoped() {
						t.Fatalf("%v %v", a, err)
					}
					return
				}
				var e *errs.Error
				if !errors.As(err, &e) || e.Code != tc.code || (tc.field != "" && e.Fields[tc.field] == "") {
					t.Errorf("error %v, want %s on %s", err, tc.code, tc.field)
				}
			})
		}
		// Without a scope store a scoped administrator is refused, never
		// treated as unscoped.
		scoped := &auth.Admin{ID: "x", ScopeGroups: []string{"g"}}
		if ok, err := s.UserInScope(ctx, scoped, "u"); ok || err == nil {
			t.Errorf("no scope store: %v %v", ok, err)
		}
		if n, err := s.DevicesOutOfScope(ctx, scoped, []string{"d"}); err == nil {
			t.Errorf("no scope store: %d %v", n, err)
		}
		if ok, err := s.UserInScope(ctx, &auth.Admin{ID: "root"}, "u"); !ok || err != nil {
			t.Errorf("unscoped: %v %v", ok, err)
		}
	})
}
