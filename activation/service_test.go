package activation

import (
	"strings"
	"testing"
)

func TestCanonicalPassword(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"K7QM-3ZPA-WX9E-HT4C", "K7QM3ZPAWX9EHT4C"},
		{"k7qm 3zpa-wx9e-ht4c", "K7QM3ZPAWX9EHT4C"},
		{"Correct Horse", "CORRECTHORSE"},
	} {
		if got := CanonicalPassword(tc.in); got != tc.want {
			t.Errorf("CanonicalPassword(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestGeneratedPasswordShape(t *testing.T) {
	s := &Service{}
	seen := map[string]bool{}
	for i := 0; i < 200; i++ {
		p, err := s.GeneratePassword()
		if err != nil {
			t.Fatal(err)
		}
		if len(p) != 19 || strings.Count(p, "-") != 3 || strings.ContainsAny(p, "01IOl") || CanonicalPassword(p) != strings.ReplaceAll(p, "-", "") {
			t.Fatalf("generated password %q has the wrong shape", p)
		}
		if seen[p] {
			t.Fatalf("generated %q twice", p)
		}
		seen[p] = true
	}
}
