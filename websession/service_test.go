package websession_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/httpx"
	"github.com/custos-uem/custos/sqlstore"
	"github.com/custos-uem/custos/sqlstore/sqltest"
	"github.com/custos-uem/custos/websession"
)

// cheap are argon2 parameters that cost next to nothing: these tests sign
// in hundreds of times.
var cheap = websession.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

const (
	goodPassword = "correct horse battery staple"
	admin1       = "admin-1"
	ip           = "192.0.2.10"
)

// clock is the injected time of a Service.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type env struct {
	svc   *websession.Service
	clock *clock
	db    *sqlstore.DB
}

// MustEnv returns a Service on a fresh SQLite database, with cheap
// parameters, a generous IP limit and an injected clock; edit changes
// its Config first.
func MustEnv(t *testing.T, edit func(*websession.Config)) *env {
	t.Helper()
	db := sqltest.Open(t, sqlstore.SQLite)
	c := &clock{t: time.Date(2031, 3, 4, 5, 6, 7, 0, time.UTC)}
	cfg := websession.Config{Store: db, CSRFKey: make([]byte, 32), Params: cheap, Now: c.Now,
		IPLimiter: httpx.NewIPLimiter(1000, 1000)}
	if edit != nil {
		edit(&cfg)
	}
	svc, err := websession.New(cfg)
	if err != nil {
		t.Fatalf("websession.New: %v", err)
	}
	return &env{svc: svc, clock: c, db: db}
}

// MustSetPassword sets the principal's password.
func MustSetPassword(t *testing.T, e *env, realm websession.Realm, principalID, pw string) {
	t.Helper()
	if err := e.svc.SetPassword(context.Background(), realm, principalID, pw); err != nil {
		t.Fatalf("SetPassword: %v", err)
	}
}

// MustSignIn signs the principal in and returns the session ID.
func MustSignIn(t *testing.T, e *env, realm websession.Realm, principalID, pw string) string {
	t.Helper()
	id, _, err := e.svc.SignIn(context.Background(), realm, principalID, pw, ip)
	if err != nil {
		t.Fatalf("SignIn: %v", err)
	}
	return id
}

// wantBadCredentials fails unless err is exactly ErrBadCredentials: the
// same answer for every refusal.
func wantBadCredentials(t *testing.T, err error) {
	t.Helper()
	if err != websession.ErrBadCredentials {
		t.Fatalf("got %v, want ErrBadCredentials itself", err)
	}
}

func TestSignIn(t *testing.T) {
	e := MustEnv(t, nil)
	MustSetPassword(t, e, websession.RealmAdmin, admin1, goodPassword)
	tests := []struct {
		name      string
		realm     websession.Realm
		principal string
		pw        string
	}{
		{"fail/wrong-password", websession.RealmAdmin, admin1, goodPassword + "!"},
		{"fail/unknown-principal", websession.RealmAdmin, "", goodPassword},
		{"fail/principal-without-password", websession.RealmAdmin, "admin-2", goodPassword},
		{"fail/other-realm", websession.RealmUser, admin1, goodPassword},
		{"fail/empty-password", websession.RealmAdmin, admin1, ""},
		{"fail/password-too-long", websession.RealmAdmin, admin1, strings.Repeat("a", websession.MaxPasswordLen+1)},
		{"ok/right-password", websession.RealmAdmin, admin1, goodPassword},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id, sess, err := e.svc.SignIn(context.Background(), tc.realm, tc.principal, tc.pw, ip)
			if strings.HasPrefix(tc.name, "fail/") {
				wantBadCredentials(t, err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(id) != websession.SessionIDLen || sess.PrincipalID != admin1 || sess.Realm != websession.RealmAdmin {
				t.Fatalf("session %q %+v", id, sess)
			}
			if !sess.ExpiresAt.Equal(e.clock.Now().Add(websession.DefaultAbsoluteTimeout)) {
				t.Fatalf("expires at %v", sess.ExpiresAt)
			}
			got, err := e.svc.Authenticate(context.Background(), websession.RealmAdmin, id)
			if err != nil || got.PrincipalID != admin1 {
				t.Fatalf("Authenticate = %+v, %v", got, err)
			}
		})
	}
	t.Run("fail/invalid-realm", func(t *testing.T) {
		if _, _, err := e.svc.SignIn(context.Background(), "root", admin1, goodPassword, ip); err != websession.ErrInvalidRealm {
			t.Fatalf("got %v", err)
		}
	})
}

// TestLockout: DefaultFailureLimit wrong passwords lock the principal; the
// right password is refused, with the same error, until the lock ends;
// the next lock lasts twice as long; a success resets the count.
func TestLockout(t *testing.T) {
	e := MustEnv(t, nil)
	ctx := context.Background()
	MustSetPassword(t, e, websession.RealmUser, "user-1", goodPassword)
	fail := func(n int) {
		t.Helper()
		for range n {
			_, _, err := e.svc.SignIn(ctx, websession.RealmUser, "user-1", "wrong password!!", ip)
			wantBadCredentials(t, err)
		}
	}
	fail(websession.DefaultFailureLimit)
	tests := []struct {
		name    string
		advance time.Duration
		ok      bool
	}{
		{"fail/sixth-attempt-right-password", 0, false},
		{"fail/just-before-lock-ends", websession.DefaultLockBase - time.Second, false},
		{"ok/lock-ended", time.Second, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.clock.Add(tc.advance)
			_, _, err := e.svc.SignIn(ctx, websession.RealmUser, "user-1", goodPassword, ip)
			if !tc.ok {
				wantBadCredentials(t, err)
			} else if err != nil {
				t.Fatalf("after the lock: %v", err)
			}
		})
	}
	t.Run("ok/success-resets-the-count", func(t *testing.T) {
		lo, err := e.db.WebLockout(ctx, websession.RealmUser, "user-1")
		if err != nil || lo != (websession.Lockout{}) {
			t.Fatalf("lockout after success = %+v, %v", lo, err)
		}
	})
	t.Run("fail/second-lock-in-a-row-lasts-twice-as-long", func(t *testing.T) {
		fail(websession.DefaultFailureLimit) // lock 1 (the success reset the count)
		e.clock.Add(websession.DefaultLockBase)
		fail(websession.DefaultFailureLimit) // lock 2
		e.clock.Add(2*websession.DefaultLockBase - time.Second)
		_, _, err := e.svc.SignIn(ctx, websession.RealmUser, "user-1", goodPassword, ip)
		wantBadCredentials(t, err)
		e.clock.Add(time.Second)
		MustSignIn(t, e, websession.RealmUser, "user-1", goodPassword)
	})
	t.Run("ok/set-password-unlocks", func(t *testing.T) {
		fail(websession.DefaultFailureLimit)
		MustSetPassword(t, e, websession.RealmUser, "user-1", goodPassword+"2")
		MustSignIn(t, e, websession.RealmUser, "user-1", goodPassword+"2")
	})
}

func TestIPRateLimit(t *testing.T) {
	e := MustEnv(t, func(c *websession.Config) { c.IPLimiter = httpx.NewIPLimiter(1e-9, 3) })
	ctx := context.Background()
	MustSetPassword(t, e, websession.RealmAdmin, admin1, goodPassword)
	for range 3 {
		_, _, err := e.svc.SignIn(ctx, websession.RealmAdmin, "", "guess guess guess", "2001:db8::1")
		wantBadCredentials(t, err)
	}
	tests := []struct {
		name, ip string
		want     error
	}{
		{"fail/fourth-attempt-right-password", "2001:db8::1", httpx.ErrRateLimited},
		{"fail/same-ipv6-64", "2001:db8::ffff", httpx.ErrRateLimited},
		{"ok/other-address", "198.51.100.7", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := e.svc.SignIn(ctx, websession.RealmAdmin, admin1, goodPassword, tc.ip)
			if err != tc.want {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestSessionExpiry(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		// steps advance the clock and use the session after each.
		steps []time.Duration
		want  error
	}{
		{"fail/idle-timeout", []time.Duration{websession.DefaultIdleTimeout}, websession.ErrSessionExpired},
		{"fail/idle-after-activity", []time.Duration{20 * time.Minute, websession.DefaultIdleTimeout}, websession.ErrSessionExpired},
		{"fail/absolute-timeout-while-active", repeat(20*time.Minute, 36), websession.ErrSessionExpired},
		{"ok/within-idle-timeout", []time.Duration{websession.DefaultIdleTimeout - time.Second}, nil},
		{"ok/active-for-eleven-hours", repeat(20*time.Minute, 33), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := MustEnv(t, nil)
			MustSetPassword(t, e, websession.RealmAdmin, admin1, goodPassword)
			id := MustSignIn(t, e, websession.RealmAdmin, admin1, goodPassword)
			var err error
			for _, d := range tc.steps {
				e.clock.Add(d)
				if _, err = e.svc.Authenticate(ctx, websession.RealmAdmin, id); err != nil {
					break
				}
			}
			if err != tc.want {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if tc.want != nil {
				if _, err := e.db.WebSession(ctx, websession.HashID(id)); !errors.Is(err, errs.ErrNotFound) {
					t.Fatalf("expired session still stored: %v", err)
				}
			}
		})
	}
}

func repeat(d time.Duration, n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = d
	}
	return out
}

func TestAuthenticate(t *testing.T) {
	e := MustEnv(t, nil)
	ctx := context.Background()
	MustSetPassword(t, e, websession.RealmAdmin, admin1, goodPassword)
	id := MustSignIn(t, e, websession.RealmAdmin, admin1, goodPassword)
	tests := []struct {
		name  string
		realm websession.Realm
		id    string
		want  error
	}{
		{"fail/no-cookie", websession.RealmAdmin, "", websession.ErrNoSession},
		{"fail/malformed", websession.RealmAdmin, "x' OR 1=1 --", websession.ErrSessionInvalid},
		{"fail/unknown", websession.RealmAdmin, strings.Repeat("A", websession.SessionIDLen), websession.ErrSessionInvalid},
		{"fail/other-realm", websession.RealmUser, id, websession.ErrSessionInvalid},
		{"ok/valid", websession.RealmAdmin, id, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := e.svc.Authenticate(ctx, tc.realm, tc.id); err != tc.want {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestRevokeAllAndSignOut(t *testing.T) {
	e := MustEnv(t, nil)
	ctx := context.Background()
	MustSetPassword(t, e, websession.RealmUser, "u1", goodPassword)
	MustSetPassword(t, e, websession.RealmUser, "u2", goodPassword)
	a := MustSignIn(t, e, websession.RealmUser, "u1", goodPassword)
	b := MustSignIn(t, e, websession.RealmUser, "u1", goodPassword)
	other := MustSignIn(t, e, websession.RealmUser, "u2", goodPassword)
	n, err := e.svc.RevokeAll(ctx, websession.RealmUser, "u1")
	if err != nil || n != 2 {
		t.Fatalf("RevokeAll = %d, %v", n, err)
	}
	for _, id := range []string{a, b} {
		if _, err := e.svc.Authenticate(ctx, websession.RealmUser, id); err != websession.ErrSessionInvalid {
			t.Fatalf("revoked session: %v", err)
		}
	}
	if _, err := e.svc.Authenticate(ctx, websession.RealmUser, other); err != nil {
		t.Fatalf("another principal's session: %v", err)
	}
	if err := e.svc.SignOut(ctx, other); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Authenticate(ctx, websession.RealmUser, other); err != websession.ErrSessionInvalid {
		t.Fatalf("after sign-out: %v", err)
	}
	t.Run("ok/set-password-signs-out-everywhere", func(t *testing.T) {
		id := MustSignIn(t, e, websession.RealmUser, "u2", goodPassword)
		MustSetPassword(t, e, websession.RealmUser, "u2", goodPassword+"x")
		if _, err := e.svc.Authenticate(ctx, websession.RealmUser, id); err != websession.ErrSessionInvalid {
			t.Fatalf("session survived a password change: %v", err)
		}
	})
}

func TestSetPassword(t *testing.T) {
	e := MustEnv(t, nil)
	tests := []struct {
		name, principal, pw string
		want                error
	}{
		{"fail/too-short", "p", strings.Repeat("a", websession.MinPasswordLen-1), websession.ErrPasswordTooShort},
		{"fail/too-long", "p", strings.Repeat("a", websession.MaxPasswordLen+1), websession.ErrPasswordTooLong},
		{"fail/no-principal", "", goodPassword, websession.ErrInvalidID},
		{"ok/shortest", "p", strings.Repeat("a", websession.MinPasswordLen), nil},
		{"ok/longest", "p", strings.Repeat("a", websession.MaxPasswordLen), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := e.svc.SetPassword(context.Background(), websession.RealmUser, tc.principal, tc.pw)
			if err != tc.want {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if err == nil {
				MustSignIn(t, e, websession.RealmUser, tc.principal, tc.pw)
			}
		})
	}
}

// TestRehashOnSignIn: a password hashed with old parameters is stored
// again with the current ones at its next successful sign-in.
func TestRehashOnSignIn(t *testing.T) {
	ctx := context.Background()
	old := MustEnv(t, nil)
	MustSetPassword(t, old, websession.RealmAdmin, admin1, goodPassword)
	stronger := cheap
	stronger.Time = 2
	e := MustEnv(t, func(c *websession.Config) { c.Store = old.db; c.Params = stronger })
	before, err := old.db.WebCredential(ctx, websession.RealmAdmin, admin1)
	if err != nil || !websession.NeedsRehash(before.Hash, stronger) {
		t.Fatalf("setup: %+v %v", before, err)
	}
	MustSignIn(t, e, websession.RealmAdmin, admin1, goodPassword)
	after, err := old.db.WebCredential(ctx, websession.RealmAdmin, admin1)
	if err != nil || websession.NeedsRehash(after.Hash, stronger) || !websession.CheckPassword(after.Hash, goodPassword) {
		t.Fatalf("not re-hashed: %+v %v", after, err)
	}
}

// directory is a Verifier for principals named dir-*: it is down for
// dir-down, knows dir-1's password, and leaves everyone else to the local
// check.
type directory struct{}

var errDirectoryDown = errs.E(errs.Unavailable, "directory_unavailable", "the directory is unavailable")

func (directory) Verify(ctx context.Context, realm websession.Realm, principalID, password string) error {
	switch {
	case principalID == "dir-down":
		return errDirectoryDown
	case principalID == "dir-1" && password == "directory password":
		return nil
	case strings.HasPrefix(principalID, "dir-"):
		return websession.ErrBadCredentials
	}
	return websession.ErrUseLocal
}

func TestVerifier(t *testing.T) {
	e := MustEnv(t, func(c *websession.Config) { c.Verifier = directory{} })
	ctx := context.Background()
	MustSetPassword(t, e, websession.RealmUser, "local-1", goodPassword)
	tests := []struct {
		name, principal, pw string
		want                error
	}{
		{"fail/directory-unavailable", "dir-down", "directory password", errDirectoryDown},
		{"fail/directory-wrong-password", "dir-1", "not the password", websession.ErrBadCredentials},
		{"fail/local-wrong-password", "local-1", "not the password", websession.ErrBadCredentials},
		{"ok/directory-account", "dir-1", "directory password", nil},
		{"ok/local-account-while-directory-down", "local-1", goodPassword, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := e.svc.SignIn(ctx, websession.RealmUser, tc.principal, tc.pw, ip)
			if err != tc.want {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("ok/directory-outage-is-not-a-failure", func(t *testing.T) {
		lo, err := e.db.WebLockout(ctx, websession.RealmUser, "dir-down")
		if err != nil || lo.Failures != 0 {
			t.Fatalf("lockout of dir-down = %+v, %v", lo, err)
		}
	})
}

func TestSweep(t *testing.T) {
	e := MustEnv(t, nil)
	ctx := context.Background()
	MustSetPassword(t, e, websession.RealmAdmin, admin1, goodPassword)
	MustSignIn(t, e, websession.RealmAdmin, admin1, goodPassword)
	e.clock.Add(websession.DefaultIdleTimeout - time.Minute)
	live := MustSignIn(t, e, websession.RealmAdmin, admin1, goodPassword)
	e.clock.Add(time.Minute)
	n, err := e.svc.Sweep(ctx)
	if err != nil || n != 1 {
		t.Fatalf("Sweep = %d, %v; want the idle session", n, err)
	}
	if _, err := e.svc.Authenticate(ctx, websession.RealmAdmin, live); err != nil {
		t.Fatalf("live session swept: %v", err)
	}
}

func TestNewNeedsCSRFKey(t *testing.T) {
	db := sqltest.Open(t, sqlstore.SQLite)
	tests := []struct {
		name string
		cfg  websession.Config
		ok   bool
	}{
		{"fail/no-key", websession.Config{Store: db}, false},
		{"fail/short-key", websession.Config{Store: db, CSRFKey: make([]byte, 16)}, false},
		{"fail/short-installation-secret", websession.Config{Store: db, InstallationSecret: make([]byte, 31)}, false},
		{"fail/no-store", websession.Config{CSRFKey: make([]byte, 32)}, false},
		{"ok/key", websession.Config{Store: db, CSRFKey: make([]byte, 32)}, true},
		{"ok/installation-secret", websession.Config{Store: db, InstallationSecret: make([]byte, 32)}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := websession.New(tc.cfg); (err == nil) != tc.ok {
				t.Fatalf("New: %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// browser is a cookie jar for one realm's session, driving a handler
// directly.
type browser struct {
	t      *testing.T
	h      http.Handler
	cookie string
}

func (b *browser) do(method, target string, form url.Values, header map[string]string) *httptest.ResponseRecorder {
	b.t.Helper()
	var r *http.Request
	if form != nil {
		r = httptest.NewRequest(method, target, strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		r = httptest.NewRequest(method, target, nil)
	}
	r.Host = "uem.example"
	r.RemoteAddr = ip + ":4711"
	if b.cookie != "" {
		r.AddCookie(&http.Cookie{Name: websession.CookieName(websession.RealmAdmin), Value: b.cookie})
	}
	for k, v := range header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	b.h.ServeHTTP(w, r)
	for _, c := range w.Result().Cookies() {
		if c.Name == websession.CookieName(websession.RealmAdmin) {
			b.cookie = c.Value
		}
	}
	return w
}

// console is a minimal console: POST /signin (no session), GET /token
// (the page's CSRF token), POST /signout, and POST|PUT|PATCH|DELETE
// /change behind the session.
func console(t *testing.T, e *env) http.Handler {
	t.Helper()
	mux := http.NewServeMux()
	realm := websession.RealmAdmin
	mux.Handle("POST /signin", e.svc.CSRFMiddleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := e.svc.Login(w, r, realm, r.PostFormValue("principal"), r.PostFormValue("password")); err != nil {
			httpx.WriteError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusSeeOther)
	})))
	signedIn := http.NewServeMux()
	signedIn.HandleFunc("GET /token", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(websession.Token(r))) })
	signedIn.HandleFunc("POST /signout", func(w http.ResponseWriter, r *http.Request) {
		if err := e.svc.Logout(w, r, realm); err != nil {
			httpx.WriteError(w, r, err)
		}
	})
	signedIn.HandleFunc("/change", func(w http.ResponseWriter, r *http.Request) {
		s, _ := websession.FromContext(r.Context())
		w.Write([]byte("changed by " + s.PrincipalID))
	})
	mux.Handle("/", e.svc.Middleware(realm)(e.svc.CSRFMiddleware(signedIn)))
	return websession.SecurityHeaders(mux)
}

// signIn signs the browser in as admin1 and returns the page's token.
func (b *browser) signIn() string {
	b.t.Helper()
	w := b.do("POST", "/signin", url.Values{"principal": {admin1}, "password": {goodPassword}}, map[string]string{"Origin": "https://uem.example"})
	if w.Code != http.StatusSeeOther {
		b.t.Fatalf("sign-in: %d %s", w.Code, w.Body)
	}
	w = b.do("GET", "/token", nil, nil)
	if w.Code != 200 || w.Body.Len() == 0 {
		b.t.Fatalf("token: %d %q", w.Code, w.Body)
	}
	return w.Body.String()
}

func wantCode(t *testing.T, w *httptest.ResponseRecorder, status int, code string) {
	t.Helper()
	if w.Code != status || code != "" && !strings.Contains(w.Body.String(), `"code":"`+code+`"`) {
		t.Fatalf("got %d %s, want %d %s", w.Code, w.Body, status, code)
	}
}

func TestCSRF(t *testing.T) {
	e := MustEnv(t, nil)
	MustSetPassword(t, e, websession.RealmAdmin, admin1, goodPassword)
	h := console(t, e)
	same := map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": "https://uem.example"}

	victim := &browser{t: t, h: h}
	token := victim.signIn()
	other := &browser{t: t, h: h}
	otherToken := other.signIn()
	// A token of a session that ended: sign in, sign out, sign in again.
	returning := &browser{t: t, h: h}
	oldToken := returning.signIn()
	wantCode(t, returning.do("POST", "/signout", url.Values{"csrf_token": {oldToken}}, same), 200, "")
	returning.signIn()

	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range same {
			m[k] = v
		}
		for k, v := range extra {
			if v == "" {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
		return m
	}
	tests := []struct {
		name   string
		b      *browser
		method string
		form   url.Values
		header map[string]string
		status int
	}{
		{"fail/post-without-token", victim, "POST", url.Values{}, same, 403},
		{"fail/put-without-token", victim, "PUT", nil, same, 403},
		{"fail/patch-without-token", victim, "PATCH", nil, same, 403},
		{"fail/delete-without-token", victim, "DELETE", nil, same, 403},
		{"fail/post-with-another-sessions-token", victim, "POST", url.Values{"csrf_token": {otherToken}}, same, 403},
		{"fail/post-with-token-after-sign-out", returning, "POST", url.Values{"csrf_token": {oldToken}}, same, 403},
		{"fail/cross-site-sec-fetch-site", victim, "POST", url.Values{"csrf_token": {token}}, with(map[string]string{"Sec-Fetch-Site": "cross-site"}), 403},
		{"fail/same-site-sec-fetch-site", victim, "POST", url.Values{"csrf_token": {token}}, with(map[string]string{"Sec-Fetch-Site": "same-site"}), 403},
		{"fail/foreign-origin", victim, "POST", url.Values{"csrf_token": {token}}, with(map[string]string{"Origin": "https://evil.example"}), 403},
		{"fail/null-origin", victim, "POST", url.Values{"csrf_token": {token}}, with(map[string]string{"Origin": "null"}), 403},
		{"fail/http-origin", victim, "POST", url.Values{"csrf_token": {token}}, with(map[string]string{"Origin": "http://uem.example"}), 403},
		{"ok/get-needs-no-token", victim, "GET", nil, nil, 200},
		{"ok/post-with-form-token", victim, "POST", url.Values{"csrf_token": {token}}, same, 200},
		{"ok/post-with-header-token", victim, "POST", nil, with(map[string]string{"X-CSRF-Token": token}), 200},
		{"ok/delete-with-header-token-no-fetch-metadata", victim, "DELETE", nil, map[string]string{"X-CSRF-Token": token}, 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := tc.b.do(tc.method, "/change", tc.form, tc.header)
			if tc.status == 403 {
				wantCode(t, w, 403, "csrf_invalid")
			} else {
				wantCode(t, w, tc.status, "")
			}
		})
	}
	t.Run("fail/signed-out-cookie-is-refused", func(t *testing.T) {
		b := &browser{t: t, h: h}
		tok := b.signIn()
		stale := b.cookie
		wantCode(t, b.do("POST", "/signout", url.Values{"csrf_token": {tok}}, same), 200, "")
		b.cookie = stale
		wantCode(t, b.do("POST", "/change", url.Values{"csrf_token": {tok}}, same), 401, "session_invalid")
	})
}

// TestLoginCSRF: the sign-in form has no session yet; a forged sign-in
// (login CSRF) is refused by its origin.
func TestLoginCSRF(t *testing.T) {
	e := MustEnv(t, nil)
	MustSetPassword(t, e, websession.RealmAdmin, admin1, goodPassword)
	h := console(t, e)
	form := url.Values{"principal": {admin1}, "password": {goodPassword}}
	tests := []struct {
		name   string
		header map[string]string
		status int
	}{
		{"fail/no-origin-headers", nil, 403},
		{"fail/cross-site", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		{"fail/foreign-origin", map[string]string{"Origin": "https://evil.example"}, 403},
		{"ok/same-origin-fetch-metadata", map[string]string{"Sec-Fetch-Site": "same-origin"}, 303},
		{"ok/same-origin", map[string]string{"Origin": "https://uem.example"}, 303},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := &browser{t: t, h: h}
			w := b.do("POST", "/signin", form, tc.header)
			if w.Code != tc.status {
				t.Fatalf("got %d %s, want %d", w.Code, w.Body, tc.status)
			}
		})
	}
}

// TestLoginRotatesSessionID: signing in again from a browser that has a
// session gives a new ID, and the old one no longer works.
func TestLoginRotatesSessionID(t *testing.T) {
	e := MustEnv(t, nil)
	MustSetPassword(t, e, websession.RealmAdmin, admin1, goodPassword)
	b := &browser{t: t, h: console(t, e)}
	b.signIn()
	first := b.cookie
	b.signIn()
	if b.cookie == first {
		t.Fatal("the session ID did not change at sign-in")
	}
	if _, err := e.svc.Authenticate(context.Background(), websession.RealmAdmin, first); err != websession.ErrSessionInvalid {
		t.Fatalf("old session ID after a new sign-in: %v", err)
	}
	if _, err := e.svc.Authenticate(context.Background(), websession.RealmAdmin, b.cookie); err != nil {
		t.Fatalf("new session ID: %v", err)
	}
}

func TestCookieAttributes(t *testing.T) {
	e := MustEnv(t, nil)
	MustSetPassword(t, e, websession.RealmAdmin, admin1, goodPassword)
	b := &browser{t: t, h: console(t, e)}
	w := b.do("POST", "/signin", url.Values{"principal": {admin1}, "password": {goodPassword}}, map[string]string{"Origin": "https://uem.example"})
	want := "__Host-custos_admin=" + b.cookie + "; Path=/; HttpOnly; Secure; SameSite=Strict"
	if got := w.Header().Values("Set-Cookie"); len(got) != 1 || got[0] != want {
		t.Fatalf("Set-Cookie = %q, want %q", got, want)
	}
	tok := b.do("GET", "/token", nil, nil).Body.String()
	w = b.do("POST", "/signout", url.Values{"csrf_token": {tok}}, map[string]string{"Origin": "https://uem.example"})
	want = "__Host-custos_admin=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict"
	if got := w.Header().Values("Set-Cookie"); len(got) != 1 || got[0] != want {
		t.Fatalf("sign-out Set-Cookie = %q, want %q", got, want)
	}
	if websession.CookieName(websession.RealmUser) != "__Host-custos_user" {
		t.Fatalf("user cookie %q", websession.CookieName(websession.RealmUser))
	}
}

func TestSecurityHeaders(t *testing.T) {
	e := MustEnv(t, nil)
	MustSetPassword(t, e, websession.RealmAdmin, admin1, goodPassword)
	b := &browser{t: t, h: console(t, e)}
	b.signIn()
	want := map[string]string{
		"Content-Security-Policy":   "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
		"X-Content-Type-Options":    "nosniff",
		"Referrer-Policy":           "same-origin",
		"Strict-Transport-Security": "max-age=63072000; includeSubDomains",
		"X-Frame-Options":           "DENY",
		"Cache-Control":             "no-store",
	}
	w := b.do("GET", "/token", nil, nil)
	for k, v := range want {
		if got := w.Header().Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	t.Run("fail/unauthenticated-page-has-headers-too", func(t *testing.T) {
		anon := &browser{t: t, h: b.h}
		w := anon.do("GET", "/token", nil, nil)
		wantCode(t, w, 401, "session_required")
		if w.Header().Get("Content-Security-Policy") != want["Content-Security-Policy"] {
			t.Fatal("no CSP on the refusal")
		}
	})
}
