package websession

import (
	"context"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/httpx"
)

// Defaults of Config. OWASP's session management cheat sheet suggests
// idle timeouts of 15–30 minutes and absolute timeouts of 4–8 hours for
// high-value applications; an administrator's working day is longer than
// 8 hours, so the absolute timeout is 12 hours and the idle one 30
// minutes.
const (
	DefaultIdleTimeout     = 30 * time.Minute
	DefaultAbsoluteTimeout = 12 * time.Hour
	// DefaultFailureLimit failures in a row lock the principal.
	DefaultFailureLimit = 5
	// DefaultFailureWindow: a failure this long after the previous one
	// starts the count again.
	DefaultFailureWindow = 24 * time.Hour
	// DefaultLockBase is the first lock; each further lock without a
	// success in between doubles it, up to DefaultLockMax. Growing locks
	// slow a sustained attack to a few guesses an hour, while a user who
	// mistyped five times waits minutes, not a day (and an attacker who
	// locks someone out on purpose does not lock them out for long).
	DefaultLockBase = 5 * time.Minute
	DefaultLockMax  = time.Hour
	// DefaultIPRate, DefaultIPBurst: sign-in attempts per second and at
	// once per client address (one every 6 s after a burst of 10). They
	// bound guessing across many principals, which the per-principal lock
	// does not see.
	DefaultIPRate  = 1.0 / 6
	DefaultIPBurst = 10
	// TouchInterval: a session's LastSeenAt is written at most this often,
	// so that each page view is not a database write. The idle timeout is
	// therefore enforced to within this interval.
	TouchInterval = time.Minute
)

// Session ID wire format.
const (
	// sessionIDBytes of randomness (256 bits; OWASP asks for at least 64
	// bits of entropy).
	sessionIDBytes = 32
	// SessionIDLen is the length of a session ID in its cookie: unpadded
	// base64url of sessionIDBytes.
	SessionIDLen = 43
	// CSRFKeyLen is the length of the CSRF key.
	CSRFKeyLen = 32
)

// Sign-in and session errors. Their codes are stable.
//
// ErrBadCredentials is the answer to every refused sign-in — wrong
// password, unknown principal, locked principal — as OWASP's
// authentication cheat sheet asks, so that the answer tells nobody which
// accounts exist or are locked. The log says which it was.
var (
	ErrBadCredentials = errs.E(errs.Unauthenticated, "signin_failed", "the login or password is wrong")
	ErrNoSession      = errs.E(errs.Unauthenticated, "session_required", "please sign in")
	ErrSessionInvalid = errs.E(errs.Unauthenticated, "session_invalid", "the session is not valid; please sign in again")
	ErrSessionExpired = errs.E(errs.Unauthenticated, "session_expired", "the session has expired; please sign in again")
	ErrInvalidRealm   = errs.E(errs.Invalid, "invalid_realm", "unknown sign-in realm")
	ErrInvalidID      = errs.E(errs.Invalid, "invalid_principal", "the principal ID is invalid")
)

// ErrUseLocal is what a Verifier returns for a principal it does not
// handle: the local password is checked instead.
var ErrUseLocal = errors.New("websession: not a directory principal; check the local password")

// Verifier checks a password somewhere other than the local credential
// store, such as a directory bind. Verify returns nil for the right
// password, an error that errors.Is ErrBadCredentials for a wrong one
// (counted towards the lock), ErrUseLocal for a principal it does not
// handle, and any other error (the directory is unavailable) to be
// returned to the caller unchanged and not counted: the user did nothing
// wrong.
type Verifier interface {
	Verify(ctx context.Context, realm Realm, principalID, password string) error
}

// Config builds a Service.
type Config struct {
	Store Store
	// CSRFKey (CSRFKeyLen bytes) keys the CSRF tokens. When empty, the key
	// is derived from InstallationSecret, the secret.key every Core sharing
	// the database has, so that a token minted by one Core is accepted by
	// another.
	CSRFKey            []byte
	InstallationSecret []byte
	// Verifier, when set, is asked first (see Verifier).
	Verifier Verifier
	// Params hash new passwords; zero means DefaultParams.
	Params Params
	// Zero values take the Default… constants.
	IdleTimeout     time.Duration
	AbsoluteTimeout time.Duration
	FailureLimit    int
	FailureWindow   time.Duration
	LockBase        time.Duration
	LockMax         time.Duration
	// IPLimiter limits sign-in attempts per client address; nil means
	// httpx.NewIPLimiter(DefaultIPRate, DefaultIPBurst).
	IPLimiter *httpx.IPLimiter
	// OnError answers requests refused by Middleware and CSRFMiddleware
	// (the console redirects to its sign-in page); nil means
	// httpx.WriteError.
	OnError func(http.ResponseWriter, *http.Request, error)
	// Origin is the public origin of the pages ("https://uem.example.com")
	// that CSRFMiddleware accepts in an Origin header; empty means
	// "https://" and the request's Host.
	Origin string
	Now    func() time.Time
	Rand   io.Reader
}

// Service signs principals in and out and keeps their sessions. It is
// safe for concurrent use.
type Service struct {
	cfg     Config
	csrfKey []byte
	limiter *httpx.IPLimiter

	dummyOnce sync.Once
	dummy     string
}

// csrfKeyInfo separates the CSRF key from any other key derived from the
// installation secret (see package secret).
const csrfKeyInfo = "custos web csrf v1"

// New returns a Service for cfg.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil {
		return nil, errors.New("websession: no store")
	}
	s := &Service{cfg: cfg, limiter: cfg.IPLimiter}
	switch {
	case len(cfg.CSRFKey) == CSRFKeyLen:
		s.csrfKey = append([]byte(nil), cfg.CSRFKey...)
	case len(cfg.CSRFKey) != 0:
		return nil, fmt.Errorf("websession: the CSRF key has %d bytes, want %d", len(cfg.CSRFKey), CSRFKeyLen)
	case len(cfg.InstallationSecret) >= 32:
		k, err := hkdf.Key(sha256.New, cfg.InstallationSecret, nil, csrfKeyInfo, CSRFKeyLen)
		if err != nil {
			return nil, fmt.Errorf("websession: CSRF key: %w", err)
		}
		s.csrfKey = k
	default:
		return nil, errors.New("websession: no CSRF key: set CSRFKey (32 bytes) or InstallationSecret (at least 32 bytes)")
	}
	if cfg.Params == (Params{}) {
		s.cfg.Params = DefaultParams
	}
	if err := s.cfg.Params.validate(); err != nil {
		return nil, err
	}
	if s.limiter == nil {
		s.limiter = httpx.NewIPLimiter(DefaultIPRate, DefaultIPBurst)
	}
	if s.cfg.OnError == nil {
		s.cfg.OnError = httpx.WriteError
	}
	return s, nil
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func (s *Service) now() time.Time {
	if s.cfg.Now != nil {
		return s.cfg.Now().UTC()
	}
	return time.Now().UTC()
}

func (s *Service) rand() io.Reader {
	if s.cfg.Rand != nil {
		return s.cfg.Rand
	}
	return rand.Reader
}

func (s *Service) idle() time.Duration { return orDefault(s.cfg.IdleTimeout, DefaultIdleTimeout) }
func (s *Service) absolute() time.Duration {
	return orDefault(s.cfg.AbsoluteTimeout, DefaultAbsoluteTimeout)
}

// policy is the lock policy of the Config.
func (s *Service) policy() FailurePolicy {
	base, most := orDefault(s.cfg.LockBase, DefaultLockBase), orDefault(s.cfg.LockMax, DefaultLockMax)
	return FailurePolicy{
		Limit:  orDefault(s.cfg.FailureLimit, DefaultFailureLimit),
		Window: orDefault(s.cfg.FailureWindow, DefaultFailureWindow),
		LockFor: func(n int) time.Duration {
			d := base
			for i := 1; i < n && d < most; i++ {
				d *= 2
			}
			return min(d, most)
		},
	}
}

// dummyCheck spends the time of a real password check, so that a refusal
// for an unknown or locked principal takes as long as one for a wrong
// password (OWASP authentication cheat sheet: no user enumeration by
// timing). The dummy hash uses the current parameters.
func (s *Service) dummyCheck(pw string) {
	s.dummyOnce.Do(func() {
		h, err := hashPassword("custos dummy password", s.cfg.Params)
		if err != nil {
			panic(err) // New validated the parameters
		}
		s.dummy = h
	})
	if len(pw) > MaxPasswordLen {
		pw = pw[:MaxPasswordLen]
	}
	CheckPassword(s.dummy, pw)
}

func checkPrincipal(realm Realm, principalID string) error {
	if !realm.Valid() {
		return ErrInvalidRealm
	}
	if principalID == "" || len(principalID) > MaxPrincipalID {
		return ErrInvalidID
	}
	return nil
}

// SetPassword sets the principal's local password (ValidatePassword's
// rules), clears its lock and signs it out everywhere: OWASP's session
// management cheat sheet asks for every session to end when the password
// changes, since one of them may be the attacker's. A caller changing the
// password of the signed-in principal signs it in again with SignIn.
func (s *Service) SetPassword(ctx context.Context, realm Realm, principalID, pw string) error {
	if err := checkPrincipal(realm, principalID); err != nil {
		return err
	}
	hash, err := HashPasswordWith(pw, s.cfg.Params)
	if err != nil {
		return err
	}
	c := &Credential{Realm: realm, PrincipalID: principalID, Hash: hash, UpdatedAt: s.now()}
	if err := s.cfg.Store.SetWebCredential(ctx, c); err != nil {
		return fmt.Errorf("websession: set password: %w", err)
	}
	if _, err := s.RevokeAll(ctx, realm, principalID); err != nil {
		return err
	}
	return nil
}

// ipKey is the rate-limit key of a client address: the address itself for
// IPv4, its /64 for IPv6 (one subscriber usually has a whole /64, so
// limiting single IPv6 addresses would limit nothing).
func ipKey(clientIP string) string {
	ip := net.ParseIP(clientIP)
	if ip == nil || ip.To4() != nil {
		return clientIP
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

// SignIn checks the principal's password and, when it is right, opens a
// session and returns its ID (for the cookie, see Login) and record.
// principalID is what the caller resolved the login to, or "" when the
// login names nobody.
//
// Refusals: too many attempts from clientIP is httpx.ErrRateLimited; a
// wrong password, an unknown principal and a locked principal are all
// ErrBadCredentials, after about the same time. A Verifier's error other
// than a wrong password is returned unchanged. Every wrong password
// counts towards the principal's lock; while it is locked, even the right
// password is refused.
func (s *Service) SignIn(ctx context.Context, realm Realm, principalID, password, clientIP string) (string, *Session, error) {
	if !realm.Valid() {
		return "", nil, ErrInvalidRealm
	}
	log := httpx.Logger(ctx).With("realm", string(realm), "principal", principalID, "client_ip", clientIP)
	if !s.limiter.Allow(ipKey(clientIP)) {
		log.Warn("websession: sign-in refused: rate limited")
		return "", nil, httpx.ErrRateLimited
	}
	if principalID == "" || len(principalID) > MaxPrincipalID {
		s.dummyCheck(password)
		log.Info("websession: sign-in refused: unknown principal")
		return "", nil, ErrBadCredentials
	}
	if password == "" || len(password) > MaxPasswordLen {
		// Never right: no password of that length can be set.
		log.Info("websession: sign-in refused: password empty or too long")
		return "", nil, ErrBadCredentials
	}
	now := s.now()
	lo, err := s.cfg.Store.WebLockout(ctx, realm, principalID)
	if err != nil {
		return "", nil, fmt.Errorf("websession: sign in: %w", err)
	}
	if lo.Locked(now) {
		s.dummyCheck(password)
		log.Warn("websession: sign-in refused: principal locked", "locked_until", *lo.LockedUntil)
		return "", nil, ErrBadCredentials
	}
	ok, err := s.verify(ctx, realm, principalID, password, now)
	if err != nil {
		return "", nil, err
	}
	if !ok {
		after, err := s.cfg.Store.RecordWebFailure(ctx, realm, principalID, now, s.policy())
		if err != nil {
			return "", nil, fmt.Errorf("websession: sign in: %w", err)
		}
		if after.Locked(now) {
			log.Warn("websession: sign-in refused: wrong password; principal now locked", "locked_until", *after.LockedUntil, "locks", after.Locks)
		} else {
			log.Info("websession: sign-in refused: wrong password", "failures", after.Failures)
		}
		return "", nil, ErrBadCredentials
	}
	if lo.Failures > 0 || lo.Locks > 0 {
		if err := s.cfg.Store.ResetWebFailures(ctx, realm, principalID); err != nil {
			return "", nil, fmt.Errorf("websession: sign in: %w", err)
		}
	}
	return s.open(ctx, realm, principalID, now)
}

// verify checks the password with the Verifier, then locally. It returns
// an error only when the check could not be made.
func (s *Service) verify(ctx context.Context, realm Realm, principalID, password string, now time.Time) (bool, error) {
	if s.cfg.Verifier != nil {
		err := s.cfg.Verifier.Verify(ctx, realm, principalID, password)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, ErrBadCredentials):
			return false, nil
		case !errors.Is(err, ErrUseLocal):
			return false, err
		}
	}
	c, err := s.cfg.Store.WebCredential(ctx, realm, principalID)
	if errors.Is(err, errs.ErrNotFound) {
		s.dummyCheck(password) // a principal without a password is an unknown one
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("websession: sign in: %w", err)
	}
	if !CheckPassword(c.Hash, password) {
		return false, nil
	}
	if NeedsRehash(c.Hash, s.cfg.Params) {
		s.rehash(ctx, c, password, now)
	}
	return true, nil
}

// rehash stores the password under the current parameters. A failure is
// logged, not returned: the sign-in succeeded, and the next one retries.
func (s *Service) rehash(ctx context.Context, c *Credential, password string, now time.Time) {
	h, err := hashPassword(password, s.cfg.Params)
	if err == nil {
		err = s.cfg.Store.RehashWebCredential(ctx, c.Realm, c.PrincipalID, c.Hash, h, now)
	}
	if err != nil {
		httpx.Logger(ctx).Warn("websession: upgrading a password hash failed", "realm", string(c.Realm), "principal", c.PrincipalID, "err", err)
	}
}

// HashID is the stored form of a session ID.
func HashID(id string) []byte {
	h := sha256.Sum256([]byte(id))
	return h[:]
}

// open creates a session with a fresh random ID. Every sign-in gets a new
// ID, never one the browser brought, so an ID planted before sign-in
// (session fixation, OWASP session management cheat sheet) is never
// promoted.
func (s *Service) open(ctx context.Context, realm Realm, principalID string, now time.Time) (string, *Session, error) {
	var b [sessionIDBytes]byte
	if _, err := io.ReadFull(s.rand(), b[:]); err != nil {
		return "", nil, fmt.Errorf("websession: random: %w", err)
	}
	id := base64.RawURLEncoding.EncodeToString(b[:])
	sess := &Session{IDHash: HashID(id), Realm: realm, PrincipalID: principalID,
		CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(s.absolute())}
	if err := s.cfg.Store.CreateWebSession(ctx, sess); err != nil {
		return "", nil, fmt.Errorf("websession: open session: %w", err)
	}
	return id, sess, nil
}

// validID reports whether id has the shape of a session ID, checked before
// it is hashed or looked up.
func validID(id string) bool {
	if len(id) != SessionIDLen {
		return false
	}
	_, err := base64.RawURLEncoding.Strict().DecodeString(id)
	return err == nil
}

// Authenticate returns the session of id in realm. An empty id is
// ErrNoSession; a malformed, unknown or other realm's one
// ErrSessionInvalid; one past its absolute lifetime or idle for the idle
// timeout is deleted and ErrSessionExpired. It records the session's use
// at most every TouchInterval.
func (s *Service) Authenticate(ctx context.Context, realm Realm, id string) (*Session, error) {
	if id == "" {
		return nil, ErrNoSession
	}
	if !validID(id) {
		return nil, ErrSessionInvalid
	}
	h := HashID(id)
	sess, err := s.cfg.Store.WebSession(ctx, h)
	if errors.Is(err, errs.ErrNotFound) {
		return nil, ErrSessionInvalid
	}
	if err != nil {
		return nil, fmt.Errorf("websession: session: %w", err)
	}
	// The lookup is by hash; compare again in constant time so that no
	// store (a collation, a prefix index) can widen what matches.
	if subtle.ConstantTimeCompare(h, sess.IDHash) != 1 || sess.Realm != realm {
		return nil, ErrSessionInvalid
	}
	now := s.now()
	if !now.Before(sess.ExpiresAt) || !now.Before(sess.LastSeenAt.Add(s.idle())) {
		if err := s.cfg.Store.DeleteWebSession(ctx, h); err != nil {
			httpx.Logger(ctx).Warn("websession: deleting an expired session failed", "err", err)
		}
		return nil, ErrSessionExpired
	}
	if now.Sub(sess.LastSeenAt) >= TouchInterval {
		if err := s.cfg.Store.TouchWebSession(ctx, h, now); err != nil {
			if errors.Is(err, errs.ErrNotFound) {
				return nil, ErrSessionInvalid // signed out meanwhile
			}
			return nil, fmt.Errorf("websession: touch session: %w", err)
		}
		sess.LastSeenAt = now
	}
	return sess, nil
}

// SignOut deletes the session of id; an unknown or malformed id is not an
// error.
func (s *Service) SignOut(ctx context.Context, id string) error {
	if !validID(id) {
		return nil
	}
	if err := s.cfg.Store.DeleteWebSession(ctx, HashID(id)); err != nil {
		return fmt.Errorf("websession: sign out: %w", err)
	}
	return nil
}

// RevokeAll ends every session of the principal in realm (a disabled
// account, a changed password, "sign out everywhere") and returns how many
// there were.
func (s *Service) RevokeAll(ctx context.Context, realm Realm, principalID string) (int, error) {
	if err := checkPrincipal(realm, principalID); err != nil {
		return 0, err
	}
	n, err := s.cfg.Store.DeleteWebSessions(ctx, realm, principalID)
	if err != nil {
		return 0, fmt.Errorf("websession: revoke sessions: %w", err)
	}
	return n, nil
}

// Sweep deletes expired and idle sessions and failure counters quiet for
// the failure window, for the Core's scheduler; it returns how many
// sessions it deleted. Any number of Core processes may sweep at once.
func (s *Service) Sweep(ctx context.Context) (int, error) {
	now := s.now()
	n, err := s.cfg.Store.DeleteExpiredWebSessions(ctx, now, now.Add(-s.idle()))
	if err != nil {
		return 0, fmt.Errorf("websession: sweep sessions: %w", err)
	}
	if _, err := s.cfg.Store.DeleteStaleWebFailures(ctx, now, now.Add(-s.policy().Window)); err != nil {
		return n, fmt.Errorf("websession: sweep failures: %w", err)
	}
	return n, nil
}
