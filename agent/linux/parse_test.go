package linux

import (
	"bytes"
	"maps"
	"os"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/custos-uem/custos/device"
)

func TestParseOSRelease(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want map[string]string
	}{
		{name: "fail/unterminated double quote skipped", in: "NAME=\"Debian\nID=debian\n", want: map[string]string{"ID": "debian"}},
		{name: "fail/unterminated single quote skipped", in: "NAME='Debian\n", want: map[string]string{}},
		{name: "fail/invalid key skipped", in: "NA-ME=x\n=y\nOK=1\n", want: map[string]string{"OK": "1"}},
		{name: "fail/control characters removed", in: "NAME=\"a\x01b\x7fc\"\n", want: map[string]string{"NAME": "abc"}},
		{name: "fail/invalid UTF-8 replaced", in: "NAME=\"a\xffb\"\n", want: map[string]string{"NAME": "a\uFFFDb"}},
		{name: "fail/long value cut", in: "NAME=" + strings.Repeat("é", 200) + "\n", want: map[string]string{"NAME": strings.Repeat("é", MaxValue/2)}},
		{name: "ok/quotes", in: "A=\"x y\"\nB='p \"q\"'\nC=plain\n", want: map[string]string{"A": "x y", "B": "p \"q\"", "C": "plain"}},
		{name: "ok/escapes", in: `A="a\"b\\c\$d\e"` + "\n" + `B=x\ y` + "\n", want: map[string]string{"A": `a"b\c$d\e`, "B": "x y"}},
		{name: "ok/comments blank lines CRLF", in: "# c\n\r\n  ID=debian\r\n", want: map[string]string{"ID": "debian"}},
		{name: "ok/later line wins", in: "ID=a\nID=b\n", want: map[string]string{"ID": "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ParseOSRelease([]byte(tt.in)); !maps.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseOSReleaseKeyCap(t *testing.T) {
	var b strings.Builder
	for i := range MaxOSReleaseKeys + 10 {
		b.WriteString("K")
		b.WriteString(strings.Repeat("X", i%7))
		b.WriteString(string(rune('A' + i%26)))
		b.WriteString(strings.Repeat("Y", i/26))
		b.WriteString("=v\n")
	}
	if got := len(ParseOSRelease([]byte(b.String()))); got != MaxOSReleaseKeys {
		t.Fatalf("keys = %d, want %d", got, MaxOSReleaseKeys)
	}
}

func TestParseDpkgStatus(t *testing.T) {
	stanza := func(name, status string) string {
		return "Package: " + name + "\nStatus: " + status + "\nVersion: 1.0-1\n\n"
	}
	tests := []struct {
		name        string
		in          string
		max         int
		want        []string
		wantSkipped int
	}{
		{name: "fail/over-long Package line skips the stanza", in: "Package: " + strings.Repeat("a", MaxLine+5) + "\nStatus: install ok installed\n\n" + stanza("zsh", "install ok installed"), max: 10, want: []string{"zsh"}, wantSkipped: 1},
		{name: "fail/name too long", in: stanza(strings.Repeat("a", MaxValue+1), "install ok installed"), max: 10, wantSkipped: 1},
		{name: "fail/name with newline-free junk", in: stanza("a b", "install ok installed") + stanza("-x", "install ok installed"), max: 10, wantSkipped: 2},
		{name: "fail/over the cap", in: stanza("aa", "install ok installed") + stanza("bb", "install ok installed") + stanza("cc", "install ok installed"), max: 2, want: []string{"aa", "bb"}, wantSkipped: 1},
		{name: "fail/bad version dropped, package kept", in: "Package: zz\nStatus: install ok installed\nVersion: 1.0\x00evil\n", max: 10, want: []string{"zz"}},
		{name: "ok/statuses", in: stanza("aa", "install ok installed") + stanza("bb", "hold ok installed") + stanza("cc", "deinstall ok config-files") + stanza("dd", "install reinstreq half-installed") + stanza("ee", "purge ok not-installed"), max: 10, want: []string{"aa", "bb"}},
		{name: "ok/CRLF, no final newline, case-insensitive fields", in: "package: aa\r\nstatus: install ok installed\r\nversion: 2", max: 10, want: []string{"aa"}},
		{name: "ok/continuation lines ignored", in: "Package: aa\nDescription: x\n Package: evil\n .\nStatus: install ok installed\n", max: 10, want: []string{"aa"}},
		{name: "ok/empty", in: "", max: 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			apps, skipped, err := ParseDpkgStatus(strings.NewReader(tt.in), tt.max)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, a := range apps {
				names = append(names, a.Name)
			}
			if strings.Join(names, ",") != strings.Join(tt.want, ",") || skipped != tt.wantSkipped {
				t.Errorf("got %q skipped %d, want %q skipped %d", names, skipped, tt.want, tt.wantSkipped)
			}
			checkApps(t, apps, tt.max)
		})
	}
}

func TestParseDpkgStatusVersion(t *testing.T) {
	apps, _, err := ParseDpkgStatus(strings.NewReader("Package: zz\nStatus: install ok installed\nVersion: 1.0\x00evil\n\nPackage: yy\nStatus: install ok installed\nVersion: 1:2.3~rc1+dfsg-4\n"), 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(apps) != 2 || apps[0].Version != "" || apps[1].Version != "1:2.3~rc1+dfsg-4" {
		t.Fatalf("apps = %+v", apps)
	}
}

func TestParseAPKInstalled(t *testing.T) {
	tests := []struct {
		name        string
		in          string
		want        []string
		wantSkipped int
	}{
		{name: "fail/invalid name", in: "P:-x\nV:1\n\nP:ok\nV:1\n", want: []string{"ok"}, wantSkipped: 1},
		{name: "fail/over-long line taints the stanza", in: "P:aa\nT:" + strings.Repeat("x", MaxLine) + "\n\nP:bb\n", want: []string{"bb"}, wantSkipped: 1},
		{name: "ok/stanzas without a name ignored", in: "C:abc\n\n\nP:musl\nV:1.2.4-r4\n", want: []string{"musl"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			apps, skipped, err := ParseAPKInstalled(strings.NewReader(tt.in), 10)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, a := range apps {
				names = append(names, a.Name)
			}
			if strings.Join(names, ",") != strings.Join(tt.want, ",") || skipped != tt.wantSkipped {
				t.Errorf("got %q skipped %d, want %q skipped %d", names, skipped, tt.want, tt.wantSkipped)
			}
		})
	}
}

// checkApps is the invariant of every package parser: at most max apps,
// each with a non-empty, printable, single-line name of at most MaxValue
// bytes, and a version of at most MaxValue bytes without control characters.
func checkApps(t *testing.T, apps []device.App, max int) {
	t.Helper()
	if len(apps) > max {
		t.Fatalf("%d apps over the cap %d", len(apps), max)
	}
	for _, a := range apps {
		if a.Name == "" || len(a.Name) > MaxValue || strings.ContainsAny(a.Name, "\r\n\x00 \t") || !utf8.ValidString(a.Name) {
			t.Fatalf("bad name %q", a.Name)
		}
		if len(a.Version) > MaxValue || strings.ContainsFunc(a.Version, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			t.Fatalf("bad version %q", a.Version)
		}
		if a.ID != a.Name {
			t.Fatalf("ID %q differs from name %q", a.ID, a.Name)
		}
	}
}

func seed(f *testing.F, path string) {
	f.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
}

func FuzzDpkgStatus(f *testing.F) {
	seed(f, "testdata/debian/var/lib/dpkg/status")
	f.Add([]byte("Package: a\nStatus: install ok installed\n\n\n"))
	f.Add([]byte("Package: aa\r\nStatus: hold ok installed\r\nVersion: 1\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		const max = 5
		apps, skipped, err := ParseDpkgStatus(bytes.NewReader(b), max)
		if err != nil {
			t.Fatal(err)
		}
		if skipped < 0 {
			t.Fatalf("skipped = %d", skipped)
		}
		checkApps(t, apps, max)
	})
}

func FuzzAPKInstalled(f *testing.F) {
	seed(f, "testdata/alpine/lib/apk/db/installed")
	f.Fuzz(func(t *testing.T, b []byte) {
		const max = 5
		apps, _, err := ParseAPKInstalled(bytes.NewReader(b), max)
		if err != nil {
			t.Fatal(err)
		}
		checkApps(t, apps, max)
	})
}

func FuzzOSRelease(f *testing.F) {
	seed(f, "testdata/debian/etc/os-release")
	seed(f, "testdata/alpine/etc/os-release")
	f.Add([]byte(`A="x\"y" B='z'` + "\n" + `C=\`))
	f.Fuzz(func(t *testing.T, b []byte) {
		kv := ParseOSRelease(b)
		if len(kv) > MaxOSReleaseKeys {
			t.Fatalf("%d keys", len(kv))
		}
		for k, v := range kv {
			if !validKey([]byte(k)) || len(k) > MaxValue {
				t.Fatalf("bad key %q", k)
			}
			if len(v) > MaxValue || !utf8.ValidString(v) || strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
				t.Fatalf("bad value %q", v)
			}
		}
	})
}
