package linux

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/custos-uem/custos/device"
	wire "github.com/custos-uem/custos/platform/agent"
)

// Limits on the files the collector reads: they are parsed as untrusted
// bytes, and each size is checked before the file is read.
const (
	// MaxOSRelease bounds /etc/os-release (a few hundred bytes in practice).
	MaxOSRelease = 64 << 10
	// MaxOSReleaseKeys bounds the keys kept from os-release.
	MaxOSReleaseKeys = 128
	// MaxDpkgStatus bounds /var/lib/dpkg/status (a few MiB on a desktop).
	MaxDpkgStatus = 64 << 20
	// MaxAPKInstalled bounds /lib/apk/db/installed.
	MaxAPKInstalled = 64 << 20
	// MaxSmallFile bounds one-line files: hostname, kernel release, DMI
	// strings, machine-id.
	MaxSmallFile = 4 << 10
	// MaxLine bounds one line of a package database; a longer line (a
	// description, a file list) is skipped, and a stanza whose Package or
	// Version line was skipped is not reported.
	MaxLine = 64 << 10
	// MaxValue bounds one value kept: wire.MaxField bytes. A longer package
	// name is dropped (cut, it would name another package); a longer
	// version or os-release value is cut at a character boundary.
	MaxValue = wire.MaxField
)

// ErrTooLarge reports a file over its limit.
var ErrTooLarge = errors.New("file larger than its limit")

// eachLine calls fn with every line of r (without "\n" or "\r\n"); a line
// longer than MaxLine is passed as nil with long set, its bytes discarded.
func eachLine(r io.Reader, fn func(line []byte, long bool)) error {
	br := bufio.NewReaderSize(r, MaxLine)
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			fn(nil, true)
		} else if len(line) > 0 {
			line = bytes.TrimSuffix(line, []byte{'\n'})
			line = bytes.TrimSuffix(line, []byte{'\r'})
			fn(line, false)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// cleanValue returns b as a printable string: valid UTF-8, control
// characters removed, spaces trimmed, cut at a character boundary to
// MaxValue bytes.
func cleanValue(b []byte) string {
	b = bytes.TrimSpace(b)
	clean := utf8.Valid(b)
	for _, c := range b {
		if c < 0x20 || c == 0x7f {
			clean = false
			break
		}
	}
	s := string(b)
	if !clean {
		s = strings.Map(func(r rune) rune {
			if r < 0x20 || r == 0x7f {
				return -1
			}
			return r
		}, strings.ToValidUTF8(s, "\uFFFD"))
		s = strings.TrimSpace(s)
	}
	if len(s) > MaxValue {
		i := MaxValue
		for i > 0 && !utf8.RuneStart(s[i]) {
			i--
		}
		s = strings.TrimSpace(s[:i])
	}
	return s
}

// ParseOSRelease parses os-release(5) text: KEY=value lines, the value
// unquoted as the shell would ("…" with \" \\ \$ \` escapes, '…' literal,
// or bare with backslash escapes). Comments, blank lines, lines without a
// valid key ([A-Za-z0-9_]+, at most MaxValue bytes) and unterminated quotes
// are skipped. Only the first MaxOSRelease bytes and MaxOSReleaseKeys keys
// are read; values are cleaned (printable UTF-8, at most MaxValue bytes).
// A later line overrides an earlier one with the same key.
func ParseOSRelease(b []byte) map[string]string {
	if len(b) > MaxOSRelease {
		b = b[:MaxOSRelease]
	}
	out := make(map[string]string, 16)
	for len(b) > 0 {
		var line []byte
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			line, b = b, nil
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		eq := bytes.IndexByte(line, '=')
		if eq <= 0 || eq > MaxValue || !validKey(line[:eq]) {
			continue
		}
		val, ok := unquote(line[eq+1:])
		if !ok {
			continue
		}
		key := string(line[:eq])
		if _, seen := out[key]; !seen && len(out) >= MaxOSReleaseKeys {
			continue
		}
		out[key] = cleanValue(val)
	}
	return out
}

func validKey(k []byte) bool {
	for _, c := range k {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return len(k) > 0
}

// unquote undoes shell quoting of one os-release value.
func unquote(v []byte) ([]byte, bool) {
	v = bytes.TrimSpace(v)
	out := make([]byte, 0, len(v))
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '"':
			closed := false
			for i++; i < len(v); i++ {
				if v[i] == '\\' && i+1 < len(v) && bytes.IndexByte([]byte("\"\\$`"), v[i+1]) >= 0 {
					i++
					out = append(out, v[i])
					continue
				}
				if v[i] == '"' {
					closed = true
					break
				}
				out = append(out, v[i])
			}
			if !closed {
				return nil, false
			}
		case '\'':
			j := bytes.IndexByte(v[i+1:], '\'')
			if j < 0 {
				return nil, false
			}
			out = append(out, v[i+1:i+1+j]...)
			i += j + 1
		case '\\':
			if i+1 < len(v) {
				i++
				out = append(out, v[i])
			}
		default:
			out = append(out, c)
		}
	}
	return out, true
}

// ParseDpkgStatus reads a dpkg status database (deb822 stanzas separated by
// blank lines) and returns the packages installed: Status "install ok
// installed", or "hold ok installed" (a held package is installed too).
// Name and ID are the Package field, Version the Version field.
//
// At most max packages are returned; the others, and installed stanzas
// whose Package is not a valid Debian package name ([a-z0-9][a-z0-9+.-]+,
// at most MaxValue bytes) or that contained an over-long line, are counted
// in skipped. The caller bounds r (MaxDpkgStatus).
func ParseDpkgStatus(r io.Reader, max int) (apps []device.App, skipped int, err error) {
	var pkg, version []byte
	var installed, tainted, open bool
	flush := func() {
		if open && installed {
			name := string(pkg)
			if tainted || !validDebName(pkg) || len(apps) >= max {
				skipped++
			} else {
				apps = append(apps, device.App{Name: name, Version: cleanVersion(version), ID: name})
			}
		}
		pkg, version, installed, tainted, open = pkg[:0], version[:0], false, false, false
	}
	err = eachLine(r, func(line []byte, long bool) {
		if long {
			open, tainted = true, true
			return
		}
		if len(bytes.TrimSpace(line)) == 0 {
			flush()
			return
		}
		open = true
		if line[0] == ' ' || line[0] == '\t' {
			return // continuation of a multi-line field
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return
		}
		field, value := line[:colon], bytes.TrimSpace(line[colon+1:])
		switch {
		case bytes.EqualFold(field, []byte("Package")):
			pkg = append(pkg[:0], value...)
		case bytes.EqualFold(field, []byte("Version")):
			version = append(version[:0], value...)
		case bytes.EqualFold(field, []byte("Status")):
			installed = dpkgInstalled(value)
		}
	})
	flush()
	return apps, skipped, err
}

func dpkgInstalled(status []byte) bool {
	f := bytes.Fields(status)
	return len(f) == 3 && (string(f[0]) == "install" || string(f[0]) == "hold") &&
		string(f[1]) == "ok" && string(f[2]) == "installed"
}

// validDebName: Debian policy §5.6.1.
func validDebName(b []byte) bool {
	if len(b) < 2 || len(b) > MaxValue || !isLowerAlnum(b[0]) {
		return false
	}
	for _, c := range b[1:] {
		if !isLowerAlnum(c) && c != '+' && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

func isLowerAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

// cleanVersion keeps a version made of the characters package versions use
// (Debian and Alpine alike), at most MaxValue bytes; anything else becomes "".
func cleanVersion(b []byte) string {
	if len(b) == 0 || len(b) > MaxValue {
		return ""
	}
	for _, c := range b {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || bytes.IndexByte([]byte(".+~:-_"), c) >= 0) {
			return ""
		}
	}
	return string(b)
}

// ParseAPKInstalled reads an Alpine package database (/lib/apk/db/installed:
// "X:value" lines, stanzas separated by blank lines) and returns its
// packages: P (name) and V (version). Every stanza of that file is an
// installed package. Limits and skipping as ParseDpkgStatus, with Alpine's
// name alphabet ([A-Za-z0-9][A-Za-z0-9_.+-]*).
func ParseAPKInstalled(r io.Reader, max int) (apps []device.App, skipped int, err error) {
	var pkg, version []byte
	var tainted, open bool
	flush := func() {
		if open && (len(pkg) > 0 || tainted) {
			if tainted || !validAPKName(pkg) || len(apps) >= max {
				skipped++
			} else {
				name := string(pkg)
				apps = append(apps, device.App{Name: name, Version: cleanVersion(version), ID: name})
			}
		}
		pkg, version, tainted, open = pkg[:0], version[:0], false, false
	}
	err = eachLine(r, func(line []byte, long bool) {
		if long {
			open, tainted = true, true
			return
		}
		if len(bytes.TrimSpace(line)) == 0 {
			flush()
			return
		}
		open = true
		if len(line) < 2 || line[1] != ':' {
			return
		}
		switch line[0] {
		case 'P':
			pkg = append(pkg[:0], bytes.TrimSpace(line[2:])...)
		case 'V':
			version = append(version[:0], bytes.TrimSpace(line[2:])...)
		}
	})
	flush()
	return apps, skipped, err
}

func validAPKName(b []byte) bool {
	if len(b) == 0 || len(b) > MaxValue {
		return false
	}
	c0 := b[0]
	if !(c0 >= 'A' && c0 <= 'Z' || isLowerAlnum(c0)) {
		return false
	}
	for _, c := range b[1:] {
		if !(c >= 'A' && c <= 'Z' || isLowerAlnum(c) || c == '_' || c == '.' || c == '+' || c == '-') {
			return false
		}
	}
	return true
}
