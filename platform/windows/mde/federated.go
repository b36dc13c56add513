package mde

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/custos-uem/custos/activation"
	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/secret"
)

// The Federated policy (federated-authentication-device-enrollment): the
// device opens AuthenticationServiceUrl in a web view with
// ?appru=<ms-app://…>&login_hint=<email>; the page signs the user in and
// posts the token back to appru in the form field wresult; the device
// then sends it as the wsse:BinarySecurityToken (ValueType
// DeviceEnrollmentUserToken) of GetPolicies and RequestSecurityToken.
//
// Our page asks for the email and the activation password and checks them
// without consuming the password (activation.CheckCredentials). The token
// it hands out is 256 random bits, stored only as its SHA-256 with the
// login and the password sealed with the Core's secret.Box (every Core
// sharing the database opens it), valid FederatedTokenTTL and single use:
// GetPolicies only reads it, RequestSecurityToken consumes it atomically
// (TokenStore.UseFederatedToken) before the enrollment consumes the
// password.

// FederatedTokenTTL is how long a token from the sign-in page is valid.
const FederatedTokenTTL = 10 * time.Minute

// MaxAuthForm bounds the sign-in form.
const MaxAuthForm = 4 << 10

// MaxToken bounds a token as it comes back (43 base64url characters;
// Windows may base64 it once more).
const MaxToken = 256

// FederatedToken is a stored sign-in token.
type FederatedToken struct {
	// Hash is the SHA-256 of the token; the token itself is never stored.
	Hash []byte
	// Login is the address the user signed in with; SealedPassword the
	// activation password, sealed with secret.Box.
	Login          string
	SealedPassword string
	CreatedAt      time.Time
	ExpiresAt      time.Time
	// UsedAt is set when an enrollment consumed the token.
	UsedAt *time.Time
}

// ErrTokenClosed is what UseFederatedToken returns for a token that is
// unknown, used or expired.
var ErrTokenClosed = errs.E(errs.Unauthenticated, "federated_token_closed", "the sign-in token is unknown, used or expired")

// TokenStore keeps federated sign-in tokens.
type TokenStore interface {
	// CreateFederatedToken stores t (a hash already stored is
	// errs.ErrConflict) and deletes the tokens that expired before
	// t.CreatedAt.
	CreateFederatedToken(ctx context.Context, t *FederatedToken) error
	// FederatedToken returns the token whose hash is hash, in any state,
	// or errs.ErrNotFound.
	FederatedToken(ctx context.Context, hash []byte) (*FederatedToken, error)
	// UseFederatedToken marks the token used at now if it is unused and
	// expires after now, and returns it (UsedAt set); otherwise it changes
	// nothing and returns ErrTokenClosed. Of concurrent calls for one
	// token exactly one succeeds.
	UseFederatedToken(ctx context.Context, hash []byte, now time.Time) (*FederatedToken, error)
}

// Federated issues and checks sign-in tokens.
type Federated struct {
	Store      TokenStore
	Box        *secret.Box
	Activation Activator
	Now        func() time.Time
}

// ErrTokenInvalid is the answer to any token that is unknown, used,
// expired or malformed: one answer for all, the same as a wrong password.
var ErrTokenInvalid = errs.E(errs.Unauthenticated, "activation_password_invalid", "the sign-in token is invalid, used or expired; sign in again")

func (f *Federated) now() time.Time {
	if f.Now != nil {
		return f.Now().UTC()
	}
	return time.Now().UTC()
}

// HashToken is how a token is stored.
func HashToken(tok string) []byte {
	h := sha256.Sum256([]byte(tok))
	return h[:]
}

// Issue stores and returns a token for credentials already checked.
func (f *Federated) Issue(ctx context.Context, login, password string) (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	tok := base64.RawURLEncoding.EncodeToString(b)
	now := f.now()
	err := f.Store.CreateFederatedToken(ctx, &FederatedToken{Hash: HashToken(tok), Login: login,
		SealedPassword: f.Box.Seal(password), CreatedAt: now, ExpiresAt: now.Add(FederatedTokenTTL)})
	if err != nil {
		return "", fmt.Errorf("federated sign-in: store token: %w", err)
	}
	return tok, nil
}

// tokenHash reads a token as it comes in the Security header.
func tokenHash(raw string) ([]byte, bool) {
	tok := strings.TrimSpace(raw)
	if len(tok) > MaxToken {
		return nil, false
	}
	if b, err := base64.RawURLEncoding.DecodeString(tok); err == nil && len(b) == 32 {
		return HashToken(tok), true
	}
	// Windows may base64 the wresult it was given.
	if b, err := base64.StdEncoding.DecodeString(tok); err == nil {
		if d, err := base64.RawURLEncoding.DecodeString(string(b)); err == nil && len(d) == 32 {
			return HashToken(string(b)), true
		}
	}
	return nil, false
}

// credentialsOf opens a stored token.
func (f *Federated) credentialsOf(t *FederatedToken) (*credentials, error) {
	pw, err := f.Box.Open(t.SealedPassword)
	if err != nil || !secret.IsSealed(t.SealedPassword) {
		return nil, fmt.Errorf("federated sign-in: open token: %w", err)
	}
	return &credentials{login: t.Login, password: pw}, nil
}

// lookup reads a token without using it (GetPolicies).
func (f *Federated) lookup(ctx context.Context, raw string) (*credentials, error) {
	h, ok := tokenHash(raw)
	if !ok {
		return nil, ErrTokenInvalid
	}
	t, err := f.Store.FederatedToken(ctx, h)
	if errors.Is(err, errs.ErrNotFound) {
		return nil, ErrTokenInvalid
	}
	if err != nil {
		return nil, err
	}
	if t.UsedAt != nil || !f.now().Before(t.ExpiresAt) {
		return nil, ErrTokenInvalid
	}
	c, err := f.credentialsOf(t)
	if err != nil {
		return nil, err
	}
	c.federated = h
	return c, nil
}

// consume uses a token for an enrollment: atomically, so a token enrolls
// at most once even when replayed concurrently.
func (f *Federated) consume(ctx context.Context, hash []byte) (*credentials, error) {
	t, err := f.Store.UseFederatedToken(ctx, hash, f.now())
	if errors.Is(err, ErrTokenClosed) {
		return nil, ErrTokenInvalid
	}
	if err != nil {
		return nil, err
	}
	return f.credentialsOf(t)
}

var authPage = template.Must(template.New("auth").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Sign in to enroll this device</title></head>
<body>
<h1>Enroll this device</h1>
{{if .Error}}<p role="alert">{{.Error}}</p>{{end}}
<form method="post" action="{{.Action}}">
<input type="hidden" name="appru" value="{{.AppRU}}">
<p><label>Email address <input type="email" name="email" value="{{.Email}}" required autocomplete="username"></label></p>
<p><label>Activation password <input type="password" name="password" required autocomplete="one-time-code"></label></p>
<p><button type="submit">Sign in</button></p>
</form>
</body></html>
`))

// The answer posts the token to appru (federated-authentication-device-
// enrollment: "<form method=post action=appru><input name=wresult>").
var returnPage = template.Must(template.New("return").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Enrolling</title></head>
<body>
<form method="post" action="{{.AppRU}}">
<input type="hidden" name="wresult" value="{{.Token}}">
<p><button type="submit">Continue</button></p>
</form>
<script nonce="{{.Nonce}}">document.forms[0].submit();</script>
</body></html>
`))

// validAppRU accepts only the app return URI scheme Windows uses: the
// token must never be posted to a web site.
func validAppRU(s string) bool {
	u, err := url.Parse(s)
	return err == nil && len(s) <= 2048 && strings.EqualFold(u.Scheme, "ms-app") && !strings.ContainsAny(s, "\"<>'\x00\r\n")
}

func pageHeaders(w http.ResponseWriter, nonce string) {
	csp := "default-src 'none'; form-action ms-app: 'self'; frame-ancestors 'none'; base-uri 'none'"
	if nonce != "" {
		csp += "; script-src 'nonce-" + nonce + "'"
	}
	w.Header().Set("Content-Security-Policy", csp)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "no-referrer")
}

type authData struct {
	Action, AppRU, Email, Error string
}

func (h *Handler) authPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	appru := q.Get("appru")
	if !validAppRU(appru) {
		http.Error(w, "appru must be an ms-app:// URI", http.StatusBadRequest)
		return
	}
	pageHeaders(w, "")
	authPage.Execute(w, authData{Action: PathAuth, AppRU: appru, Email: clean(q.Get("login_hint"))})
}

func (h *Handler) authSubmit(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, MaxAuthForm)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "the form is too large or malformed", http.StatusBadRequest)
		return
	}
	appru := r.PostForm.Get("appru")
	if appru == "" {
		appru = r.URL.Query().Get("appru")
	}
	if !validAppRU(appru) {
		http.Error(w, "appru must be an ms-app:// URI", http.StatusBadRequest)
		return
	}
	email := clean(r.PostForm.Get("email"))
	if email == "" {
		email = clean(r.PostForm.Get("login_hint"))
	}
	password := strings.TrimSpace(r.PostForm.Get("password"))
	if password == "" {
		// The device may open the page with a POST of appru and
		// login_hint: show the form.
		pageHeaders(w, "")
		authPage.Execute(w, authData{Action: PathAuth, AppRU: appru, Email: email})
		return
	}
	err := h.Activation.CheckCredentials(r.Context(), email, password, activation.Windows)
	if err != nil {
		_, msg, _ := errs.Public(err)
		pageHeaders(w, "")
		w.WriteHeader(http.StatusUnauthorized)
		authPage.Execute(w, authData{Action: PathAuth, AppRU: appru, Email: email, Error: msg})
		return
	}
	tok, err := h.Federated.Issue(r.Context(), strings.ToLower(email), password)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	nb := make([]byte, 16)
	rand.Read(nb)
	nonce := base64.RawURLEncoding.EncodeToString(nb)
	pageHeaders(w, nonce)
	// appru passed validAppRU: html/template would otherwise replace a
	// scheme it does not know (ms-app:) with a placeholder.
	returnPage.Execute(w, struct {
		AppRU        template.URL
		Token, Nonce string
	}{template.URL(appru), tok, nonce})
}
