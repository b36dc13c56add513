package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"github.com/custos-uem/custos/id"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/custos-uem/custos/audit"
	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/httpx"
	"github.com/custos-uem/custos/pki"
)

// Token wire format and limits.
const (
	// TokenPrefix starts every API token, so that a leaked token is easy to
	// recognise (secret scanners, logs).
	TokenPrefix = "cst_"
	// tokenBytes of randomness in a token (256 bits).
	tokenBytes = 32
	// TokenLen is the length of a token: the prefix and 43 characters of
	// unpadded base64url.
	TokenLen = len(TokenPrefix) + 43
	// MaxTokenName bounds a token's name.
	MaxTokenName = 64
	// MaxTokenTTL bounds a token's lifetime; zero means no expiry.
	MaxTokenTTL = 2 * 365 * 24 * time.Hour
	// TouchInterval: a token's LastUsedAt is written at most this often, so
	// that a busy client does not turn every read into a database write.
	TouchInterval = time.Minute
)

// Bootstrap names.
const (
	// BootstrapAdmin is the administrator created on first start.
	BootstrapAdmin = "admin"
	// BootstrapTokenName names the token written to TokenFile.
	BootstrapTokenName = "bootstrap"
	// TokenFile is the file in the data directory that receives the
	// bootstrap token (mode 0600).
	TokenFile = "admin-token"
)

// Authentication errors. Their codes are stable. Only the holder of a
// token learns that it was revoked or has expired: the answer to anyone
// else (an unknown token) is token_invalid.
var (
	ErrNoToken      = errs.E(errs.Unauthenticated, "token_required", "this endpoint requires an API token (Authorization: Bearer …)")
	ErrTokenInvalid = errs.E(errs.Unauthenticated, "token_invalid", "the API token is not valid")
	ErrTokenRevoked = errs.E(errs.Unauthenticated, "token_revoked", "the API token was revoked")
	ErrTokenExpired = errs.E(errs.Unauthenticated, "token_expired", "the API token has expired")
)

// Service authenticates administrators by API token and manages tokens.
type Service struct {
	Admins AdminStore
	Tokens TokenStore
	// Audit, when set, records refused requests whose token identifies an
	// administrator (a revoked or expired token): outcome "denied".
	Audit *audit.Logger
	// Scope answers the scope questions of scoped administrators; with no
	// store, every question about a scoped administrator fails (closed).
	Scope ScopeStore
	// Roles keeps custom roles and Bindings the bindings of roles to
	// directory groups. When nil, Admins is used if it implements them;
	// otherwise only built-in roles exist and the role routes fail.
	Roles    RoleStore
	Bindings RoleBindingStore
	Now      func() time.Time
	Rand     io.Reader

	mu      sync.Mutex
	touched map[string]time.Time // token ID → last TouchToken by this process
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func (s *Service) rand() io.Reader {
	if s.Rand != nil {
		return s.Rand
	}
	return rand.Reader
}

// HashToken is the stored form of a token.
func HashToken(plain string) []byte {
	h := sha256.Sum256([]byte(plain))
	return h[:]
}

// Bootstrap creates the first administrator when there is none: user
// BootstrapAdmin with a token named BootstrapTokenName, written to
// <dataDir>/admin-token with mode 0600. It returns created=false and does
// nothing when an administrator exists — also when the token file was
// deleted since: an operator who read the token and removed the file does
// not get a fresh one on the next start.
//
// Two processes may bootstrap one database at once: the administrator's
// unique username decides which one creates it; the other returns
// created=false. A first start interrupted after the administrator was
// created but before any token existed (tokens are never deleted, so "no
// token at all" means exactly that) is finished by the next start.
func (s *Service) Bootstrap(ctx context.Context, dataDir string) (created bool, tokenPath string, err error) {
	tokenPath = filepath.Join(dataDir, TokenFile)
	admins, err := s.Admins.ListAdmins(ctx)
	if err != nil {
		return false, "", fmt.Errorf("auth: bootstrap: %w", err)
	}
	var admin *Admin
	if len(admins) > 0 {
		tokens, err := s.Tokens.ListTokens(ctx)
		if err != nil {
			return false, "", fmt.Errorf("auth: bootstrap: %w", err)
		}
		if len(tokens) > 0 {
			return false, tokenPath, nil
		}
		if _, err := os.Stat(tokenPath); err == nil {
			return false, tokenPath, nil // another process is finishing it
		}
		admin = admins[0]
	} else {
		admin = &Admin{ID: id.New(), Username: BootstrapAdmin, DisplayName: "Administrator", Role: RoleSecurityAdmin, CreatedAt: s.now()}
		if err := s.Admins.CreateAdmin(ctx, admin); err != nil {
			if errors.Is(err, errs.ErrConflict) {
				return false, tokenPath, nil // someone else bootstrapped
			}
			return false, "", fmt.Errorf("auth: bootstrap: create administrator: %w", err)
		}
	}
	plain, _, err := s.CreateToken(ctx, admin.ID, BootstrapTokenName, 0)
	if err != nil {
		return false, "", fmt.Errorf("auth: bootstrap: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return false, "", fmt.Errorf("auth: bootstrap: %w", err)
	}
	if err := pki.WriteFileAtomic(tokenPath, []byte(plain+"\n"), 0o600); err != nil {
		return false, "", fmt.Errorf("auth: bootstrap: %w", err)
	}
	return true, tokenPath, nil
}

// CreateToken issues an API token for the administrator and returns it in
// clear — the only time it is shown — with its record. ttl zero means the
// token does not expire.
func (s *Service) CreateToken(ctx context.Context, adminID, name string, ttl time.Duration) (string, *Token, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > MaxTokenName || !utf8.ValidString(name) || strings.IndexFunc(name, unicode.IsControl) >= 0 {
		e := errs.E(errs.Invalid, "invalid_token_name", "a token name has 1 to 64 printable characters")
		e.Fields = map[string]string{"name": "1 to 64 printable characters"}
		return "", nil, e
	}
	if ttl < 0 || ttl > MaxTokenTTL {
		e := errs.E(errs.Invalid, "invalid_token_ttl", "a token expires within two years, or never")
		e.Fields = map[string]string{"expires_in": "between 1s and 17520h, or empty for no expiry"}
		return "", nil, e
	}
	if _, err := s.Admins.Admin(ctx, adminID); err != nil {
		if errors.Is(err, errs.ErrNotFound) {
			return "", nil, errs.Wrap(errs.NotFound, "admin_not_found", "no such administrator", err)
		}
		return "", nil, fmt.Errorf("auth: create token: %w", err)
	}
	var b [tokenBytes]byte
	if _, err := io.ReadFull(s.rand(), b[:]); err != nil {
		return "", nil, fmt.Errorf("auth: random: %w", err)
	}
	plain := TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	now := s.now()
	t := &Token{ID: id.New(), AdminID: adminID, Name: name, Hash: HashToken(plain), CreatedAt: now}
	if ttl > 0 {
		exp := now.Add(ttl)
		t.ExpiresAt = &exp
	}
	if err := s.Tokens.CreateToken(ctx, t); err != nil {
		return "", nil, fmt.Errorf("auth: create token: %w", err)
	}
	return plain, t, nil
}

// Administrator limits.
const (
	MaxUsername    = 64
	MaxDisplayName = 128
	// MaxScopeGroups bounds an administrator's scope: a scope is a few
	// organisational units, and every scope check walks all of them.
	MaxScopeGroups = 100
)

// NewAdmin is what CreateAdmin needs. The caller checks that the scope
// groups exist (auth does not know groups).
type NewAdmin struct {
	Username    string
	DisplayName string
	// Role is a role ID, built in or custom; empty means RoleSecurityAdmin.
	Role        string
	ScopeGroups []string
	// ExternalID ties the administrator to a directory entry
	// (DirectoryAdmin); empty for a local one.
	ExternalID string
}

// ErrUsernameTaken answers a duplicate administrator username.
var ErrUsernameTaken = errs.E(errs.Conflict, "admin_username_taken", "another administrator has this username")

// CreateAdmin creates an administrator with the role in.Role (default
// RoleSecurityAdmin; an unknown role is invalid_admin). Usernames are
// stored in lower case: a-z, 0-9, '.', '_', '-'. Repeated scope groups are
// stored once. The caller checks that its administrator may grant the role
// (CheckGrant).
func (s *Service) CreateAdmin(ctx context.Context, in NewAdmin) (*Admin, error) {
	fields := map[string]string{}
	username := strings.ToLower(strings.TrimSpace(in.Username))
	if username == "" || len(username) > MaxUsername || strings.IndexFunc(username, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-')
	}) >= 0 {
		fields["username"] = "1 to 64 of a-z 0-9 . _ -"
	}
	display := strings.TrimSpace(in.DisplayName)
	if len(display) > MaxDisplayName || !utf8.ValidString(display) || strings.IndexFunc(display, unicode.IsControl) >= 0 {
		fields["display_name"] = "at most 128 printable characters"
	}
	scope, why := checkScope(in.ScopeGroups)
	if why != "" {
		fields["scope_groups"] = why
	}
	role := in.Role
	if role == "" {
		role = RoleSecurityAdmin
	}
	if _, err := s.Role(ctx, role); errs.Is(err, errs.NotFound) {
		fields["role"] = "no such role"
	} else if err != nil {
		return nil, err
	}
	if len(fields) > 0 {
		e := errs.E(errs.Invalid, "invalid_admin", "the administrator is invalid")
		e.Fields = fields
		return nil, e
	}
	if display == "" {
		display = username
	}
	a := &Admin{ID: id.New(), Username: username, DisplayName: display, Role: role, ScopeGroups: scope, CreatedAt: s.now(), ExternalID: in.ExternalID}
	if err := s.Admins.CreateAdmin(ctx, a); err != nil {
		switch {
		case errors.Is(err, errs.ErrConflict):
			return nil, errs.Wrap(ErrUsernameTaken.Kind, ErrUsernameTaken.Code, ErrUsernameTaken.Message, err)
		case errors.Is(err, errs.ErrNotFound): // the role was deleted meanwhile
			e := errs.Wrap(errs.Invalid, "invalid_admin", "the administrator is invalid", err)
			e.Fields = map[string]string{"role": "no such role"}
			return nil, e
		}
		return nil, fmt.Errorf("auth: create administrator: %w", err)
	}
	return a, nil
}

// ListAdmins lists every administrator in ID order.
func (s *Service) ListAdmins(ctx context.Context) ([]*Admin, error) {
	return s.Admins.ListAdmins(ctx)
}

// errNoScopeStore fails the scope questions of a scoped administrator
// when the Service was built without a ScopeStore: refusing is safer than
// answering as if unscoped.
var errNoScopeStore = errors.New("auth: scoped administrator, but no scope store")

// UserInScope reports whether the user's devices are in a's scope (always,
// for an unscoped administrator).
func (s *Service) UserInScope(ctx context.Context, a *Admin, userID string) (bool, error) {
	if !a.Scoped() {
		return true, nil
	}
	if s.Scope == nil {
		return false, errNoScopeStore
	}
	ok, err := s.Scope.UserInScope(ctx, a.ScopeGroups, userID)
	if err != nil {
		return false, fmt.Errorf("auth: scope of %s: %w", a.ID, err)
	}
	return ok, nil
}

// DevicesOutOfScope returns how many of ids (distinct) do not name a
// device in a's scope, unknown IDs included; 0 for an unscoped
// administrator.
func (s *Service) DevicesOutOfScope(ctx context.Context, a *Admin, ids []string) (int, error) {
	if !a.Scoped() {
		return 0, nil
	}
	if s.Scope == nil {
		return 0, errNoScopeStore
	}
	in, err := s.Scope.DevicesInScope(ctx, a.ScopeGroups, ids)
	if err != nil {
		return 0, fmt.Errorf("auth: scope of %s: %w", a.ID, err)
	}
	return len(ids) - len(in), nil
}

// ScopedDevices lists the devices matching q in a's scope (a must be
// scoped: an unscoped administrator lists the device store directly).
func (s *Service) ScopedDevices(ctx context.Context, a *Admin, q device.Query) ([]*device.Device, error) {
	if s.Scope == nil {
		return nil, errNoScopeStore
	}
	ds, err := s.Scope.ScopedDevices(ctx, a.ScopeGroups, q)
	if err != nil {
		return nil, fmt.Errorf("auth: scoped devices of %s: %w", a.ID, err)
	}
	return ds, nil
}

// ListTokens lists every token, revoked ones too (never their values or
// hashes: Token.Hash is not serialised).
func (s *Service) ListTokens(ctx context.Context) ([]*Token, error) {
	return s.Tokens.ListTokens(ctx)
}

// Admin returns the administrator with id (errs NotFound admin_not_found).
func (s *Service) Admin(ctx context.Context, id string) (*Admin, error) {
	a, err := s.Admins.Admin(ctx, id)
	if errors.Is(err, errs.ErrNotFound) {
		return nil, errs.Wrap(errs.NotFound, "admin_not_found", "no such administrator", err)
	}
	return a, err
}

// Revoke revokes a token. An unknown or already revoked token is errs
// NotFound token_not_found.
func (s *Service) Revoke(ctx context.Context, id string) error {
	if err := s.Tokens.RevokeToken(ctx, id, s.now()); err != nil {
		if errors.Is(err, errs.ErrNotFound) {
			return errs.Wrap(errs.NotFound, "token_not_found", "no such token, or it is already revoked", err)
		}
		return fmt.Errorf("auth: revoke token: %w", err)
	}
	s.mu.Lock()
	delete(s.touched, id)
	s.mu.Unlock()
	return nil
}

// Authenticate returns the administrator and token for a bearer token.
// An unknown or malformed token is ErrTokenInvalid; a revoked one
// ErrTokenRevoked, an expired one ErrTokenExpired (both still return the
// token, so the refusal can be audited against its administrator).
func (s *Service) Authenticate(ctx context.Context, bearer string) (*Admin, *Token, error) {
	if bearer == "" {
		return nil, nil, ErrNoToken
	}
	if len(bearer) != TokenLen || !strings.HasPrefix(bearer, TokenPrefix) {
		return nil, nil, ErrTokenInvalid
	}
	h := HashToken(bearer)
	t, err := s.Tokens.TokenByHash(ctx, h)
	if errors.Is(err, errs.ErrNotFound) {
		return nil, nil, ErrTokenInvalid
	}
	if err != nil {
		return nil, nil, fmt.Errorf("auth: token: %w", err)
	}
	// The lookup is by hash; compare again in constant time so that no
	// store (a case-insensitive collation, a prefix index) can ever widen
	// what matches.
	if subtle.ConstantTimeCompare(h, t.Hash) != 1 {
		return nil, nil, ErrTokenInvalid
	}
	now := s.now()
	a, err := s.Admins.Admin(ctx, t.AdminID)
	if errors.Is(err, errs.ErrNotFound) {
		return nil, nil, ErrTokenInvalid
	}
	if err != nil {
		return nil, nil, fmt.Errorf("auth: admin: %w", err)
	}
	switch {
	case t.RevokedAt != nil:
		return a, t, ErrTokenRevoked
	case t.ExpiresAt != nil && !now.Before(*t.ExpiresAt):
		return a, t, ErrTokenExpired
	}
	s.touch(ctx, t, now)
	return a, t, nil
}

// touch records the token's use at most once per TouchInterval, judged by
// both the stored LastUsedAt (other processes) and this process's memory
// (concurrent requests). A failure to record it does not fail the request.
func (s *Service) touch(ctx context.Context, t *Token, now time.Time) {
	if t.LastUsedAt != nil && now.Sub(*t.LastUsedAt) < TouchInterval {
		return
	}
	s.mu.Lock()
	if s.touched == nil {
		s.touched = map[string]time.Time{}
	}
	if last, ok := s.touched[t.ID]; ok && now.Sub(last) < TouchInterval {
		s.mu.Unlock()
		return
	}
	if len(s.touched) > 10_000 {
		for id, at := range s.touched {
			if now.Sub(at) >= TouchInterval {
				delete(s.touched, id)
			}
		}
	}
	s.touched[t.ID] = now
	s.mu.Unlock()
	if err := s.Tokens.TouchToken(context.WithoutCancel(ctx), t.ID, now); err != nil {
		httpx.Logger(ctx).Warn("auth: recording token use failed", "token_id", t.ID, "err", err)
	}
}

type ctxKey int

const (
	keyAdmin ctxKey = iota
	keyToken
)

// WithAdmin returns ctx carrying the authenticated administrator and the
// token it used (t may be nil).
func WithAdmin(ctx context.Context, a *Admin, t *Token) context.Context {
	ctx = context.WithValue(ctx, keyAdmin, a)
	return context.WithValue(ctx, keyToken, t)
}

// AdminFromContext returns the administrator authenticated by Middleware.
func AdminFromContext(ctx context.Context) (*Admin, bool) {
	a, ok := ctx.Value(keyAdmin).(*Admin)
	return a, ok && a != nil
}

// TokenFromContext returns the token the request authenticated with.
func TokenFromContext(ctx context.Context) (*Token, bool) {
	t, ok := ctx.Value(keyToken).(*Token)
	return t, ok && t != nil
}

// BearerToken returns the token of an "Authorization: Bearer …" header, or
// "" when there is none.
func BearerToken(r *http.Request) string {
	h := r.Header.Get("Authorization")
	const p = "bearer "
	if len(h) < len(p) || !strings.EqualFold(h[:len(p)], p) {
		return ""
	}
	return strings.TrimSpace(h[len(p):])
}

// ClientIP is the address an audit entry records for r.
func ClientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// Middleware authenticates every request it wraps by its bearer token and
// puts the administrator in the context (AdminFromContext); a refused
// request is answered by onError. It is the router's AdminAuth.
func (s *Service) Middleware(onError func(http.ResponseWriter, *http.Request, error)) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			a, t, err := s.Authenticate(r.Context(), BearerToken(r))
			if err != nil {
				if a != nil && t != nil {
					s.Audit.Record(r.Context(), audit.Entry{
						Actor: a.ID, ActorIP: ClientIP(r), Action: "auth.denied", ObjectType: "token", ObjectID: t.ID,
						Outcome: audit.OutcomeDenied,
						Detail:  map[string]any{"error": errCode(err), "method": r.Method, "path": truncate(r.URL.Path, 256)},
					})
				}
				onError(w, r, err)
				return
			}
			next.ServeHTTP(w, r.WithContext(WithAdmin(r.Context(), a, t)))
		})
	}
}

func errCode(err error) string {
	code, _, _ := errs.Public(err)
	return code
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
