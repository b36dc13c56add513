// Package consoletest drives a real headless Chromium (Debian's chromium,
// through chromedp) against the console in end-to-end tests, and keeps
// screenshots of the pages as test artifacts.
package consoletest

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// ChromiumPath is Debian's chromium.
const ChromiumPath = "/usr/bin/chromium"

// EnvArtifacts names the directory screenshots are written to; empty
// keeps them in the test's temporary directory.
const EnvArtifacts = "CUSTOS_ARTIFACTS"

// Browser is one headless Chromium with its own profile: its cookies are
// its own, so two Browsers are two people.
type Browser struct {
	t   testing.TB
	Ctx context.Context
}

// Start launches Chromium trusting exactly the server certificate cert
// (by its public key, --ignore-certificate-errors-spki-list): the test
// server's certificate comes from the Core's own CA, which the browser
// does not know, and no other certificate error is ignored. The browser
// stops when the test ends.
func Start(t testing.TB, cert *x509.Certificate) *Browser {
	t.Helper()
	if _, err := exec.LookPath(ChromiumPath); err != nil {
		t.Fatal("consoletest: install chromium (apt-get install -y chromium) or run .ci/run")
	}
	spki := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(ChromiumPath),
		chromedp.NoSandbox, // CI runs as root, where Chromium's sandbox cannot start
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("ignore-certificate-errors-spki-list", base64.StdEncoding.EncodeToString(spki[:])),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("consoletest: start chromium: %v", err)
	}
	return &Browser{t: t, Ctx: ctx}
}

// LeafOf returns the leaf certificate of a TLS certificate.
func LeafOf(t testing.TB, c tls.Certificate) *x509.Certificate {
	t.Helper()
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}

// Run runs actions with a deadline, failing the test with what was being
// done.
func (b *Browser) Run(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("browser: %s: %v\npage:\n%s", what, err, b.HTML())
	}
}

// HTML returns the page's body, for failure messages.
func (b *Browser) HTML() string {
	ctx, cancel := context.WithTimeout(b.Ctx, 5*time.Second)
	defer cancel()
	html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("body")))
	return html
}

// Text returns the text of the first element matching sel.
func (b *Browser) Text(sel string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, 30*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("browser: read %s: %v\npage:\n%s", sel, err, b.HTML())
	}
	return strings.TrimSpace(s)
}

// Screenshot saves the page as <name>.png among the test's artifacts.
func (b *Browser) Screenshot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG; less is JPEG
	if err != nil {
		b.t.Fatalf("browser: screenshot %s: %v", name, err)
	}
	dir := os.Getenv(EnvArtifacts)
	if dir == "" {
		dir = b.t.TempDir()
	}
	dir = filepath.Join(dir, "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}
