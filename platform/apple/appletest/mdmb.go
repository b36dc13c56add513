package appletest

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// mdmb (github.com/jessepeterson/mdmb v0.1.0, pinned in tools/peers) is a
// simulator of Apple devices written by others: it installs an enrollment
// profile (SCEP from the profile, then Authenticate and TokenUpdate to the
// CheckInURL, signed with Mdm-Signature) and, on devices-connect, reports
// Idle to the ServerURL and answers the commands it gets. Quirks of v0.1.0
// (read in its source): it needs a CheckInURL and SignMessage, reads only
// unsigned profiles, has no APNs (a test connects it on demand), answers
// DeviceInformation (DeviceName, SerialNumber, UDID), ProfileList and
// InstallProfile, and every other command with Status Error (12021,
// "Unknown command"). It trusts servers through the system roots, which
// SSL_CERT_FILE replaces.

var (
	buildMu   sync.Mutex
	buildBins = map[string]string{}
)

// MustBuildPeer builds the command pkg of the peers module (tools/peers,
// which pins the peers' own dependencies) once per test binary and
// returns the binary's path.
func MustBuildPeer(t testing.TB, pkg string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if bin, ok := buildBins[pkg]; ok {
		return bin
	}
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	peers := filepath.Join(filepath.Dir(strings.TrimSpace(string(gomod))), "tools", "peers")
	// Binaries are kept between runs in a directory named after the
	// peers module's pins, so a changed pin builds afresh and nothing
	// piles up in the temporary directory.
	h := sha256.New()
	for _, f := range []string{"go.mod", "go.sum"} {
		b, err := os.ReadFile(filepath.Join(peers, f))
		if err != nil {
			t.Fatal(err)
		}
		h.Write(b)
	}
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("custos-peers-%x", h.Sum(nil)[:6]))
	if fi, err := os.Stat(filepath.Join(dir, filepath.Base(pkg))); err == nil && fi.Mode().IsRegular() {
		buildBins[pkg] = filepath.Join(dir, filepath.Base(pkg))
		return buildBins[pkg]
	}
	tmp, err := os.MkdirTemp(os.TempDir(), "custos-peer-build-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	out, err := exec.Command("go", "build", "-C", peers, "-o", tmp, pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("build %s: %v\n%s", pkg, err, out)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// A rename is atomic: a concurrent test binary sees the whole file
	// or none.
	if err := os.Rename(filepath.Join(tmp, filepath.Base(pkg)), filepath.Join(dir, filepath.Base(pkg))); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, filepath.Base(pkg))
	buildBins[pkg] = bin
	return bin
}

// MustBuildMDMB builds mdmb once per test binary and returns its path.
func MustBuildMDMB(t testing.TB) string {
	t.Helper()
	return MustBuildPeer(t, "github.com/jessepeterson/mdmb/cmd/mdmb")
}

// MustBuildNanoMDM builds NanoMDM's server (the benchmarks' anchor).
func MustBuildNanoMDM(t testing.TB) string {
	t.Helper()
	return MustBuildPeer(t, "github.com/micromdm/nanomdm/cmd/nanomdm")
}

// MDMB runs mdmb on a device database of its own, trusting caPEM.
type MDMB struct {
	t   testing.TB
	bin string
	db  string
	env []string
}

// NewMDMB returns an mdmb whose TLS trusts the certificates in caPEM.
func NewMDMB(t testing.TB, caPEM []byte) *MDMB {
	t.Helper()
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return &MDMB{t: t, bin: MustBuildMDMB(t), db: filepath.Join(dir, "mdmb.db"), env: append(os.Environ(), "SSL_CERT_FILE="+ca)}
}

// Run runs mdmb with args and returns its combined output; a failure to
// run (not a device's error, which mdmb only logs) fails the test.
func (m *MDMB) Run(args ...string) string {
	m.t.Helper()
	cmd := exec.Command(m.bin, append([]string{"-db", m.db}, args...)...)
	cmd.Env = m.env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		m.t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			m.t.Fatalf("mdmb %s: %v\n%s", strings.Join(args, " "), err, out.String())
		}
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		<-done
		m.t.Fatalf("mdmb %s: still running after 2 minutes\n%s", strings.Join(args, " "), out.String())
	}
	return out.String()
}

// Create makes n devices and returns their UDIDs.
func (m *MDMB) Create(n int) []string {
	m.t.Helper()
	var udids []string
	for _, l := range strings.Split(m.Run("devices-create", "-n", itoa(n)), "\n") {
		if l = strings.TrimSpace(l); len(l) == 36 && strings.Count(l, "-") == 4 {
			udids = append(udids, l)
		}
	}
	if len(udids) != n {
		m.t.Fatalf("mdmb created %d devices, want %d", len(udids), n)
	}
	return udids
}

// Install installs profile (unsigned) on the device udid: SCEP, then
// Authenticate and TokenUpdate. It returns mdmb's output.
func (m *MDMB) Install(udid string, profile []byte) string {
	m.t.Helper()
	f := filepath.Join(m.t.TempDir(), "enroll.mobileconfig")
	if err := os.WriteFile(f, profile, 0o600); err != nil {
		m.t.Fatal(err)
	}
	return m.Run("-uuids", udid, "devices-profiles-install", "-f", f)
}

// Connect makes the devices contact their ServerURL (as an APNs push
// would) with workers connections at a time, and returns mdmb's output:
// each device reports Idle and answers commands until the server ends the
// session.
func (m *MDMB) Connect(workers int, udids ...string) string {
	m.t.Helper()
	return m.Run("-uuids", strings.Join(udids, ","), "devices-connect", "-w", itoa(workers))
}

func itoa(n int) string { return strconv.Itoa(n) }
