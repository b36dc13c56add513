package websession

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"

	"github.com/custos-uem/custos/errs"
)

// Password limits, checked before anything is hashed.
const (
	// MinPasswordLen is the least number of characters (runes) of a
	// password: without a second factor, OWASP's authentication cheat
	// sheet and NIST SP 800-63B ask for length rather than composition
	// rules.
	MinPasswordLen = 12
	// MaxPasswordLen bounds a password in bytes, so that nobody makes the
	// server hash megabytes (argon2's pre-hash is linear in the input).
	MaxPasswordLen = 1024
)

// PHC string limits, checked by the parser before it decodes anything: a
// stored hash decides how much memory and time a check costs, so a damaged
// or planted row must not make the server allocate gigabytes.
const (
	// MaxHashLen bounds the text of a PHC string.
	MaxHashLen = 256
	// MaxMemoryKiB bounds argon2's m (1 GiB).
	MaxMemoryKiB = 1 << 20
	// MaxTime bounds argon2's t.
	MaxTime = 16
	// MaxThreads bounds argon2's p.
	MaxThreads = 16
	// MinSaltLen, MaxSaltLen bound the salt in bytes (RFC 9106 §3.1: at
	// least 8 bytes; 16 recommended).
	MinSaltLen = 8
	MaxSaltLen = 64
	// MinKeyLen, MaxKeyLen bound the tag in bytes (RFC 9106 §3.1: at least
	// 4 bytes; we refuse anything under 128 bits).
	MinKeyLen = 16
	MaxKeyLen = 64
)

// argon2Version is the only version we produce and accept: 0x13 (19),
// the one RFC 9106 specifies.
const argon2Version = argon2.Version

// Params are argon2id's cost parameters and output sizes.
type Params struct {
	Memory  uint32 // m, in KiB
	Time    uint32 // t, passes over the memory
	Threads uint8  // p, lanes
	SaltLen uint32 // bytes of random salt
	KeyLen  uint32 // bytes of tag
}

// DefaultParams follow RFC 9106 §4's second recommended option
// (argon2id, m = 64 MiB, t = 3, 128-bit salt, 256-bit tag) but with
// p = 2 instead of 4. The cost to an attacker is m·t block computations
// whatever p is: p only says how many lanes may run at once, and §4's
// procedure picks it as the number of threads the defender can give a
// hash. On the 2-core servers we ship for, p = 2 takes ~155 ms per hash
// where p = 4 takes ~215 ms (4 goroutines on 2 cores) and p = 1 ~285 ms,
// for the same memory-hardness. Changing these re-hashes every password
// at its next sign-in (see NeedsRehash).
var DefaultParams = Params{Memory: 64 * 1024, Time: 3, Threads: 2, SaltLen: 16, KeyLen: 32}

// validate checks p against the parser's limits, so that whatever we
// write we can read back.
func (p Params) validate() error {
	switch {
	case p.Threads < 1 || p.Threads > MaxThreads:
		return fmt.Errorf("websession: argon2 p=%d: want 1 to %d", p.Threads, MaxThreads)
	case p.Memory < 8*uint32(p.Threads) || p.Memory > MaxMemoryKiB:
		return fmt.Errorf("websession: argon2 m=%d: want %d to %d KiB", p.Memory, 8*uint32(p.Threads), MaxMemoryKiB)
	case p.Time < 1 || p.Time > MaxTime:
		return fmt.Errorf("websession: argon2 t=%d: want 1 to %d", p.Time, MaxTime)
	case p.SaltLen < MinSaltLen || p.SaltLen > MaxSaltLen:
		return fmt.Errorf("websession: salt of %d bytes: want %d to %d", p.SaltLen, MinSaltLen, MaxSaltLen)
	case p.KeyLen < MinKeyLen || p.KeyLen > MaxKeyLen:
		return fmt.Errorf("websession: key of %d bytes: want %d to %d", p.KeyLen, MinKeyLen, MaxKeyLen)
	}
	return nil
}

// hashSlots bounds the argon2 computations running at once: each holds
// Params.Memory (64 MiB) until it ends, so a burst of sign-ins queues here
// instead of exhausting the server's memory. One slot per core keeps the
// cores busy; more would only add memory.
var hashSlots = make(chan struct{}, max(2, runtime.GOMAXPROCS(0)))

func idKey(pw, salt []byte, p Params) []byte {
	hashSlots <- struct{}{}
	defer func() { <-hashSlots }()
	return argon2.IDKey(pw, salt, p.Time, p.Memory, p.Threads, p.KeyLen)
}

// Password errors. Their codes are stable.
var (
	ErrPasswordTooShort = &errs.Error{Kind: errs.Invalid, Code: "password_too_short",
		Message: fmt.Sprintf("a password has at least %d characters", MinPasswordLen),
		Fields:  map[string]string{"password": fmt.Sprintf("at least %d characters", MinPasswordLen)}}
	ErrPasswordTooLong = &errs.Error{Kind: errs.Invalid, Code: "password_too_long",
		Message: fmt.Sprintf("a password has at most %d bytes", MaxPasswordLen),
		Fields:  map[string]string{"password": fmt.Sprintf("at most %d bytes", MaxPasswordLen)}}
)

// ValidatePassword checks pw's length: at least MinPasswordLen characters
// and at most MaxPasswordLen bytes. It checks nothing else: composition
// rules make passwords weaker in practice (NIST SP 800-63B §5.1.1.2).
func ValidatePassword(pw string) error {
	if len(pw) > MaxPasswordLen {
		return ErrPasswordTooLong
	}
	if utf8.RuneCountInString(pw) < MinPasswordLen {
		return ErrPasswordTooShort
	}
	return nil
}

// HashPassword validates pw and returns its argon2id hash with
// DefaultParams and a fresh random salt, as a PHC string:
// $argon2id$v=19$m=65536,t=3,p=2$<salt>$<tag>.
func HashPassword(pw string) (string, error) {
	return HashPasswordWith(pw, DefaultParams)
}

// HashPasswordWith is HashPassword with other parameters (tests use cheap
// ones; an operator may raise them).
func HashPasswordWith(pw string, p Params) (string, error) {
	if err := ValidatePassword(pw); err != nil {
		return "", err
	}
	return hashPassword(pw, p)
}

// hashPassword hashes without the length rules (the dummy hash, whose
// password nobody types).
func hashPassword(pw string, p Params) (string, error) {
	if err := p.validate(); err != nil {
		return "", err
	}
	salt := make([]byte, p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("websession: salt: %w", err)
	}
	h := phc{params: p, salt: salt, key: idKey([]byte(pw), salt, p)}
	return h.String(), nil
}

// CheckPassword reports whether pw matches the PHC string hash. A hash
// that does not parse, or a password over MaxPasswordLen, never matches.
// The tags are compared in constant time.
func CheckPassword(hash, pw string) bool {
	h, err := parsePHC(hash)
	if err != nil || len(pw) > MaxPasswordLen {
		return false
	}
	got := idKey([]byte(pw), h.salt, h.params)
	return subtle.ConstantTimeCompare(got, h.key) == 1
}

// NeedsRehash reports whether hash was made with parameters other than p
// (or does not parse): the caller holding the password in clear after a
// successful check then stores a fresh hash, so raising the parameters
// upgrades every account at its next sign-in.
func NeedsRehash(hash string, p Params) bool {
	h, err := parsePHC(hash)
	return err != nil || h.params != p
}

// phc is a parsed argon2id PHC string.
type phc struct {
	params    Params
	salt, key []byte
}

// PHC strings use standard base64 without padding (the PHC string format
// specification, "B64").
var b64 = base64.RawStdEncoding.Strict()

func (h phc) String() string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2Version,
		h.params.Memory, h.params.Time, h.params.Threads, b64.EncodeToString(h.salt), b64.EncodeToString(h.key))
}

var errBadHash = errors.New("websession: not an argon2id PHC string we accept")

// parsePHC parses the canonical form String writes and nothing else
// (no leading zeros, parameters in the order m, t, p, no optional
// fields), so that String(parsePHC(s)) == s for every accepted s. Every
// bound is checked before the salt and tag are decoded.
func parsePHC(s string) (phc, error) {
	var h phc
	if len(s) > MaxHashLen {
		return h, errBadHash
	}
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != "v="+strconv.Itoa(argon2Version) {
		return h, errBadHash
	}
	kv := strings.Split(parts[3], ",")
	if len(kv) != 3 {
		return h, errBadHash
	}
	var vals [3]uint32
	for i, name := range []string{"m=", "t=", "p="} {
		v, ok := strings.CutPrefix(kv[i], name)
		if !ok {
			return h, errBadHash
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || strconv.FormatUint(n, 10) != v {
			return h, errBadHash
		}
		vals[i] = uint32(n)
	}
	if vals[2] > MaxThreads {
		return h, errBadHash
	}
	h.params = Params{Memory: vals[0], Time: vals[1], Threads: uint8(vals[2]),
		SaltLen: uint32(b64.DecodedLen(len(parts[4]))), KeyLen: uint32(b64.DecodedLen(len(parts[5])))}
	if h.params.validate() != nil {
		return h, errBadHash
	}
	var err error
	if h.salt, err = b64.DecodeString(parts[4]); err != nil || uint32(len(h.salt)) != h.params.SaltLen {
		return phc{}, errBadHash
	}
	if h.key, err = b64.DecodeString(parts[5]); err != nil || uint32(len(h.key)) != h.params.KeyLen {
		return phc{}, errBadHash
	}
	return h, nil
}
