package secret

import (
	"bytes"
	"strings"
	"testing"
)

func box(t testing.TB, b byte) *Box {
	t.Helper()
	x, err := New(bytes.Repeat([]byte{b}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func TestSealOpen(t *testing.T) {
	a, other := box(t, 1), box(t, 2)
	s := a.Seal("correct horse")
	if !IsSealed(s) || strings.Contains(s, "horse") {
		t.Fatalf("sealed %q", s)
	}
	if s2 := a.Seal("correct horse"); s2 == s {
		t.Fatal("two seals of one value are equal: the nonce is not fresh")
	}
	for _, tc := range []struct{ name, in string }{
		{"fail/another installation's key", s},
		{"fail/flipped byte", s[:len(s)-2] + "AA"},
		{"fail/truncated", s[:len(Prefix)+10]},
		{"fail/not base64", Prefix + "!!!"},
		{"fail/too long", Prefix + strings.Repeat("A", MaxSealed)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := a
			if strings.Contains(tc.name, "another") {
				b = other
			}
			if got, err := b.Open(tc.in); err != ErrOpen || got != "" {
				t.Fatalf("Open = %q, %v; want ErrOpen", got, err)
			}
		})
	}
	t.Run("ok/round trip", func(t *testing.T) {
		if got, err := a.Open(s); err != nil || got != "correct horse" {
			t.Fatalf("Open = %q, %v", got, err)
		}
	})
	t.Run("ok/a plain value passes through", func(t *testing.T) {
		if got, err := a.Open("stored before sealing"); err != nil || got != "stored before sealing" {
			t.Fatalf("Open = %q, %v", got, err)
		}
	})
	if _, err := New(make([]byte, 16)); err == nil {
		t.Fatal("fail/short secret accepted")
	}
}

// FuzzOpen: Open never panics on stored text, and what Seal makes opens
// to itself.
func FuzzOpen(f *testing.F) {
	b := box(f, 3)
	f.Add("x")
	f.Add(b.Seal("wifi-passphrase"))
	f.Add(Prefix)
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = b.Open(s)
		if got, err := b.Open(b.Seal(s)); err != nil || got != s {
			t.Fatalf("round trip of %q: %q, %v", s, got, err)
		}
	})
}
