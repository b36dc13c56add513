package websession

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/httpx"
)

// CookieName is the session cookie of realm: "__Host-custos_admin" or
// "__Host-custos_user". The __Host- prefix (RFC 6265bis §4.1.3.2) makes
// the browser refuse the cookie unless it is Secure, from a secure origin,
// has Path=/ and no Domain: no other host of the domain, and no plain-HTTP
// page, can set or overwrite it (a way to plant a session, see
// fixation).
func CookieName(realm Realm) string { return "__Host-custos_" + string(realm) }

// cookie returns the session cookie carrying id. It has no Expires or
// Max-Age, so the browser forgets it when it closes (OWASP: non-persistent
// session cookies); the server enforces both timeouts anyway. HttpOnly
// keeps it from scripts (an XSS cannot read it), SameSite=Strict keeps the
// browser from sending it on any cross-site request (RFC 6265bis §8.8), a
// first line against CSRF.
func cookie(realm Realm, id string) *http.Cookie {
	return &http.Cookie{Name: CookieName(realm), Value: id, Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode}
}

// clearCookie tells the browser to drop the realm's session cookie.
func clearCookie(w http.ResponseWriter, realm Realm) {
	c := cookie(realm, "")
	c.MaxAge = -1 // "Max-Age=0"
	http.SetCookie(w, c)
}

// sessionID returns the realm's session cookie of r, or "".
func sessionID(r *http.Request, realm Realm) string {
	c, err := r.Cookie(CookieName(realm))
	if err != nil {
		return ""
	}
	return c.Value
}

// ClientIP is the address sign-in attempts are limited by: the peer's
// address, never a header a client can write (X-Forwarded-For).
func ClientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// Login is SignIn for a sign-in form's handler: it signs the principal in
// with the client's address, ends the session the browser had in the
// realm, if any (the ID changes at every sign-in), and sets the new
// session's cookie. On error it sets nothing.
func (s *Service) Login(w http.ResponseWriter, r *http.Request, realm Realm, principalID, password string) (*Session, error) {
	id, sess, err := s.SignIn(r.Context(), realm, principalID, password, ClientIP(r))
	if err != nil {
		return nil, err
	}
	if old := sessionID(r, realm); old != "" {
		if err := s.SignOut(r.Context(), old); err != nil {
			httpx.Logger(r.Context()).Warn("websession: ending the previous session failed", "err", err)
		}
	}
	http.SetCookie(w, cookie(realm, id))
	return sess, nil
}

// Logout ends the browser's session in realm and clears its cookie.
func (s *Service) Logout(w http.ResponseWriter, r *http.Request, realm Realm) error {
	clearCookie(w, realm)
	return s.SignOut(r.Context(), sessionID(r, realm))
}

type ctxKey int

const keySession ctxKey = iota

// authenticated is what Middleware puts in the context.
type authenticated struct {
	sess *Session
	csrf string
}

// FromContext returns the session Middleware authenticated; its Realm and
// PrincipalID name who is signed in.
func FromContext(ctx context.Context) (*Session, bool) {
	a, ok := ctx.Value(keySession).(*authenticated)
	if !ok {
		return nil, false
	}
	return a.sess, true
}

// Token returns the CSRF token of r's session, for the csrf_token field
// of every form (and the X-CSRF-Token header of script requests), or ""
// outside Middleware.
func Token(r *http.Request) string {
	a, ok := r.Context().Value(keySession).(*authenticated)
	if !ok {
		return ""
	}
	return a.csrf
}

// csrfToken is the synchronizer token of a session (OWASP CSRF cheat
// sheet): an HMAC of the session ID under the server's key. It is bound to
// the session — another session's token, or the token of a session that
// ended, does not match — and needs no storage. It reveals nothing about
// the session ID, which stays in an HttpOnly cookie.
func (s *Service) csrfToken(realm Realm, sessionID string) string {
	m := hmac.New(sha256.New, s.csrfKey)
	m.Write([]byte("custos csrf v1\x00" + string(realm) + "\x00" + sessionID))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// Middleware authenticates every request it wraps by the realm's session
// cookie and puts the session in the context (FromContext, Token). A
// request without a valid session is answered by Config.OnError (an
// expired session's cookie is cleared too). Authenticated answers get
// Cache-Control: no-store, so that no shared or browser cache keeps a
// signed-in page (OWASP session management cheat sheet).
func (s *Service) Middleware(realm Realm) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			id := sessionID(r, realm)
			sess, err := s.Authenticate(r.Context(), realm, id)
			if err != nil {
				if errs.Is(err, errs.Unauthenticated) && id != "" {
					clearCookie(w, realm)
				}
				s.cfg.OnError(w, r, err)
				return
			}
			w.Header().Set("Cache-Control", "no-store")
			ctx := context.WithValue(r.Context(), keySession, &authenticated{sess: sess, csrf: s.csrfToken(realm, id)})
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}

// CSRF limits and names.
const (
	// CSRFField is the form field and CSRFHeader the header that carry the
	// token.
	CSRFField  = "csrf_token"
	CSRFHeader = "X-CSRF-Token"
	// MaxFormBytes bounds the body CSRFMiddleware reads to find the form
	// field: the console's largest upload (a CSV import of users, at most
	// 2 MiB) with its multipart framing. Larger bodies send the token in
	// CSRFHeader instead.
	MaxFormBytes = 3 << 20
)

// ErrCSRF refuses a state-changing request without a valid token or from
// another site.
var ErrCSRF = errs.E(errs.Forbidden, "csrf_invalid", "the form is out of date or came from another site; reload the page and try again")

// safeMethod reports the methods that must not change state (RFC 9110
// §9.2.1), which therefore need no token.
func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions || m == http.MethodTrace
}

// CSRFMiddleware refuses (403 csrf_invalid, through Config.OnError) every
// request with a state-changing method (anything but GET, HEAD, OPTIONS,
// TRACE) unless:
//
//   - its Sec-Fetch-Site header, when present, is "same-origin", and its
//     Origin header, when present, is the pages' origin (OWASP CSRF cheat
//     sheet: fetch metadata and standard-header origin checks, defence in
//     depth behind SameSite=Strict); and
//   - inside Middleware: it carries the session's token in the CSRFHeader
//     header or the CSRFField form field (urlencoded or multipart, at most
//     MaxFormBytes); outside it (the sign-in form, which has no session
//     yet): at least one of those two headers is present, so that a
//     forged sign-in (login CSRF) is refused too — every browser we
//     support sends Origin on POST.
//
// Mount it inside Middleware for signed-in pages.
func (s *Service) CSRFMiddleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if safeMethod(r.Method) {
			next.ServeHTTP(w, r)
			return
		}
		if err := s.checkCSRF(w, r); err != nil {
			s.cfg.OnError(w, r, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Service) checkCSRF(w http.ResponseWriter, r *http.Request) error {
	site := r.Header.Get("Sec-Fetch-Site")
	if site != "" && site != "same-origin" {
		return ErrCSRF
	}
	origin := r.Header.Get("Origin")
	if origin != "" && !s.sameOrigin(r, origin) {
		return ErrCSRF
	}
	a, ok := r.Context().Value(keySession).(*authenticated)
	if !ok {
		if site == "" && origin == "" {
			return ErrCSRF
		}
		return nil
	}
	got := r.Header.Get(CSRFHeader)
	if got == "" {
		var err error
		if got, err = formToken(w, r); err != nil {
			return err
		}
	}
	if got == "" || !hmac.Equal([]byte(got), []byte(a.csrf)) {
		return ErrCSRF
	}
	return nil
}

// formToken reads the token from r's form under MaxFormBytes. The parsed
// form stays in r for the handler.
func formToken(w http.ResponseWriter, r *http.Request) (string, error) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/x-www-form-urlencoded" && mt != "multipart/form-data" {
		return "", nil
	}
	r.Body = http.MaxBytesReader(w, r.Body, MaxFormBytes)
	var err error
	if mt == "multipart/form-data" {
		err = r.ParseMultipartForm(MaxFormBytes)
	} else {
		err = r.ParseForm()
	}
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return "", httpx.ErrBodyTooLarge
		}
		return "", errs.Wrap(errs.Invalid, "form_unreadable", "the form could not be read", err)
	}
	return r.PostForm.Get(CSRFField), nil
}

// sameOrigin reports whether the Origin header names the pages' origin:
// Config.Origin, or https:// and the request's Host. "null" (sandboxed
// frames, some redirects) never matches.
func (s *Service) sameOrigin(r *http.Request, origin string) bool {
	want := s.cfg.Origin
	if want == "" {
		want = "https://" + r.Host
	}
	o, err := url.Parse(origin)
	w, err2 := url.Parse(want)
	if err != nil || err2 != nil || o.Scheme == "" || o.Host == "" || o.Path != "" || o.RawQuery != "" {
		return false
	}
	return strings.EqualFold(o.Scheme, w.Scheme) && strings.EqualFold(o.Host, w.Host)
}

// ContentSecurityPolicy is the policy of every page: nothing loads but
// our own scripts, styles and images (and data: images), forms post only
// to us, no site may frame us (clickjacking), and no <base> may redirect
// relative URLs. Inline scripts and styles are refused, so an injected
// <script> does not run even if a template escape were missed.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// HSTS is the Strict-Transport-Security value: two years, subdomains
// included (OWASP HTTP headers cheat sheet), so that after one visit the
// browser never tries plain HTTP, where a network attacker could strip
// TLS.
const HSTS = "max-age=63072000; includeSubDomains"

// SecurityHeaders sets the security headers of every page: the CSP above,
// HSTS, X-Content-Type-Options: nosniff (no content sniffing into
// script), Referrer-Policy: same-origin (no URL with an object ID leaves
// for another site; not no-referrer, under which browsers send
// "Origin: null" on our own form posts — Fetch, "serialize a request
// origin" — and CSRFMiddleware would refuse them), X-Frame-Options: DENY for browsers older than
// frame-ancestors, and Cross-Origin-Opener-Policy: same-origin.
// Authenticated pages also get Cache-Control: no-store from Middleware.
func SecurityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("Strict-Transport-Security", HSTS)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}
