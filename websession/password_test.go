package websession

import (
	"strings"
	"testing"
)

// cheap are argon2 parameters that cost next to nothing, for tests that
// hash often.
var cheap = Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

func TestValidatePassword(t *testing.T) {
	tests := []struct {
		name string
		pw   string
		want error
	}{
		{"fail/empty", "", ErrPasswordTooShort},
		{"fail/11-characters", strings.Repeat("a", 11), ErrPasswordTooShort},
		{"fail/11-characters-in-22-bytes", strings.Repeat("é", 11), ErrPasswordTooShort},
		{"fail/1025-bytes", strings.Repeat("a", MaxPasswordLen+1), ErrPasswordTooLong},
		{"ok/12-characters", strings.Repeat("a", 12), nil},
		{"ok/12-multibyte-characters", strings.Repeat("é", 12), nil},
		{"ok/1024-bytes", strings.Repeat("a", MaxPasswordLen), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := ValidatePassword(tc.pw); err != tc.want {
				t.Fatalf("ValidatePassword = %v, want %v", err, tc.want)
			}
			if _, err := HashPasswordWith(tc.pw, cheap); err != tc.want {
				t.Fatalf("HashPasswordWith = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestHashPasswordDefault hashes once with the real parameters: the PHC
// string names them, and the password checks.
func TestHashPasswordDefault(t *testing.T) {
	h, err := HashPassword("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=65536,t=3,p=2$") {
		t.Fatalf("hash %q does not name the default parameters", h)
	}
	tests := []struct {
		name string
		pw   string
		want bool
	}{
		{"fail/wrong", "correct horse battery!", false},
		{"fail/prefix", "correct horse batter", false},
		{"fail/too-long", strings.Repeat("a", MaxPasswordLen+1), false},
		{"ok/right", "correct horse battery", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := CheckPassword(h, tc.pw); got != tc.want {
				t.Fatalf("CheckPassword = %v, want %v", got, tc.want)
			}
		})
	}
	if NeedsRehash(h, DefaultParams) {
		t.Error("NeedsRehash with the parameters it was made with")
	}
	if !NeedsRehash(h, cheap) {
		t.Error("no NeedsRehash with other parameters")
	}
}

func TestHashPasswordSaltsEachHash(t *testing.T) {
	a, err := HashPasswordWith("same password here", cheap)
	if err != nil {
		t.Fatal(err)
	}
	b, err := HashPasswordWith("same password here", cheap)
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Fatal("two hashes of one password are equal: no salt")
	}
	if !CheckPassword(a, "same password here") || !CheckPassword(b, "same password here") {
		t.Fatal("password does not check")
	}
}

func TestParsePHC(t *testing.T) {
	const salt, key = "c2FsdHNhbHRzYWx0c2FsdA", "a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U"
	ok := "$argon2id$v=19$m=65536,t=3,p=2$" + salt + "$" + key
	tests := []struct {
		name, s string
		ok      bool
	}{
		{"fail/empty", "", false},
		{"fail/argon2i", strings.Replace(ok, "argon2id", "argon2i", 1), false},
		{"fail/version-16", strings.Replace(ok, "v=19", "v=16", 1), false},
		{"fail/no-version", "$argon2id$m=65536,t=3,p=2$" + salt + "$" + key, false},
		{"fail/leading-zero", strings.Replace(ok, "t=3", "t=03", 1), false},
		{"fail/plus-sign", strings.Replace(ok, "t=3", "t=+3", 1), false},
		{"fail/order", strings.Replace(ok, "m=65536,t=3", "t=3,m=65536", 1), false},
		{"fail/extra-parameter", strings.Replace(ok, "p=2", "p=2,keyid=x", 1), false},
		{"fail/memory-over-limit", strings.Replace(ok, "m=65536", "m=4294967295", 1), false},
		{"fail/memory-under-8p", strings.Replace(ok, "m=65536", "m=15", 1), false},
		{"fail/time-zero", strings.Replace(ok, "t=3", "t=0", 1), false},
		{"fail/threads-over-limit", strings.Replace(ok, "p=2", "p=255", 1), false},
		{"fail/threads-overflow-uint8", strings.Replace(ok, "p=2", "p=258", 1), false},
		{"fail/padded-salt", strings.Replace(ok, salt, salt+"=", 1), false},
		{"fail/url-alphabet", strings.Replace(ok, salt, "c2FsdHNhbHRzYWx0c2Fsd_", 1), false},
		{"fail/short-salt", strings.Replace(ok, salt, "c2FsdA", 1), false},
		{"fail/short-key", strings.Replace(ok, key, "a2V5", 1), false},
		{"fail/trailing-field", ok + "$", false},
		{"fail/too-long", ok + strings.Repeat("A", MaxHashLen), false},
		{"ok/canonical", ok, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, err := parsePHC(tc.s)
			if (err == nil) != tc.ok {
				t.Fatalf("parsePHC(%q) error %v, want ok=%v", tc.s, err, tc.ok)
			}
			if tc.ok && h.String() != tc.s {
				t.Fatalf("round trip: %q became %q", tc.s, h.String())
			}
			if !tc.ok && CheckPassword(tc.s, "any password at all") {
				t.Fatal("an unparsable hash matched")
			}
		})
	}
}

// FuzzParsePHC: the parser never panics, and what it accepts it writes
// back byte for byte (one canonical form per hash), within its limits.
func FuzzParsePHC(f *testing.F) {
	h, err := HashPasswordWith("seed password!", cheap)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(h)
	f.Add("$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHRzYWx0c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U")
	f.Add("$argon2id$v=19$m=,t=,p=$$")
	f.Add("$argon2id$v=19$m=18446744073709551616,t=1,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parsePHC(s)
		if err != nil {
			return
		}
		if got := p.String(); got != s {
			t.Fatalf("round trip: %q became %q", s, got)
		}
		if p.params.validate() != nil || uint32(len(p.salt)) != p.params.SaltLen || uint32(len(p.key)) != p.params.KeyLen {
			t.Fatalf("accepted out-of-limit hash %q: %+v", s, p.params)
		}
	})
}

func TestParamsValidate(t *testing.T) {
	if err := DefaultParams.validate(); err != nil {
		t.Fatalf("DefaultParams: %v", err)
	}
	bad := cheap
	bad.Threads = 0
	if _, err := HashPasswordWith("long enough password", bad); err == nil {
		t.Fatal("p=0 hashed")
	}
}
