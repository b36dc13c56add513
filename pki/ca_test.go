package pki

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/custos-uem/custos/errs"
)

func mustCA(t *testing.T, dir string, now func() time.Time) *CA {
	t.Helper()
	ca, _, err := LoadOrCreateCA(dir, Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func mustCSR(t *testing.T, key crypto.Signer, cn string) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func TestCACreatedOnceWithPrivateKeyFile(t *testing.T) {
	dir := t.TempDir()
	ca1, created, err := LoadOrCreateCA(dir, Options{})
	if err != nil || !created {
		t.Fatalf("first start: created=%v err=%v", created, err)
	}
	fi, err := os.Stat(filepath.Join(dir, CAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("CA key mode = %v, want 0600", fi.Mode().Perm())
	}
	ca2, created, err := LoadOrCreateCA(dir, Options{})
	if err != nil || created {
		t.Fatalf("second start: created=%v err=%v", created, err)
	}
	if ca1.Fingerprint() != ca2.Fingerprint() {
		t.Error("the CA changed across restarts")
	}
	if !ca2.Cert.IsCA || ca2.Cert.PublicKeyAlgorithm != x509.ECDSA {
		t.Errorf("root is not an ECDSA CA: %+v", ca2.Cert.PublicKeyAlgorithm)
	}
	// No temporary files are left behind.
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name() != CAFile && e.Name() != CAKeyFile {
			t.Errorf("unexpected file %s", e.Name())
		}
	}
}

func TestCAKeyMismatchRefused(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	mustCA(t, a, nil)
	mustCA(t, b, nil)
	key, _ := os.ReadFile(filepath.Join(b, CAKeyFile))
	if err := os.WriteFile(filepath.Join(a, CAKeyFile), key, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreateCA(a, Options{}); err == nil {
		t.Fatal("a CA whose key belongs to another certificate was loaded")
	}
}

func TestParseCSR(t *testing.T) {
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	good := mustCSR(t, p256, "dev-1")
	tampered := append([]byte(nil), good...)
	blk, _ := pem.Decode(tampered)
	blk.Bytes[len(blk.Bytes)-3] ^= 0xff
	tampered = pem.EncodeToMemory(blk)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: blk.Bytes})

	tests := []struct {
		name string
		in   []byte
		code string
	}{
		{"fail/empty", nil, "csr_malformed"},
		{"fail/garbage", []byte("not a csr"), "csr_malformed"},
		{"fail/oversized", make([]byte, MaxCSRBytes+1), "csr_too_large"},
		{"fail/wrong-pem-type", certPEM, "csr_malformed"},
		{"fail/trailing-data", append(append([]byte(nil), good...), "junk"...), "csr_malformed"},
		{"fail/bad-signature", tampered, "csr_bad_signature"},
		{"fail/weak-rsa-1024", mustCSR(t, rsa1024, "dev-1"), "csr_weak_key"},
		{"fail/weak-p224", mustCSR(t, p224, "dev-1"), "csr_weak_key"},
		{"ok/p256-pem", good, ""},
		{"ok/ed25519", mustCSR(t, ed, "dev-1"), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseCSR(tc.in)
			code, _, _ := errs.Public(err)
			if tc.code == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if code != tc.code {
				t.Fatalf("code = %q (%v), want %q", code, err, tc.code)
			}
		})
	}
}

func TestSignDeviceCSR(t *testing.T) {
	ca := mustCA(t, t.TempDir(), nil)
	ca.CRLURL = "https://core.example/pki/crl.der"
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	t.Run("fail/subject-names-another-device", func(t *testing.T) {
		csr, err := ParseCSR(mustCSR(t, key, "device-B"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ca.SignDeviceCSR(csr, "device-A", 0); !errors.Is(err, ErrCSRSubject) {
			t.Fatalf("err = %v, want ErrCSRSubject", err)
		}
	})
	t.Run("ok/client-certificate-chains-to-root", func(t *testing.T) {
		csr, _ := ParseCSR(mustCSR(t, key, "device-A"))
		cert, err := ca.SignDeviceCSR(csr, "device-A", 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Fatalf("verify: %v", err)
		}
		if cert.Subject.CommonName != "device-A" || !key.PublicKey.Equal(cert.PublicKey) {
			t.Error("certificate does not certify the CSR's key for the session's device")
		}
		if len(cert.CRLDistributionPoints) != 1 || cert.CRLDistributionPoints[0] != ca.CRLURL {
			t.Errorf("CRL distribution points = %v", cert.CRLDistributionPoints)
		}
	})
}

type fakeRevocations []Revoked

func (f fakeRevocations) RevokedCerts(context.Context, time.Time) ([]Revoked, error) { return f, nil }

func TestCRLListsRevokedAndIsSignedByRoot(t *testing.T) {
	now := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	ca := mustCA(t, t.TempDir(), clock)
	store := fakeRevocations{{Serial: "0a0b", RevokedAt: now.Add(-time.Hour)}}
	der, err := ca.CRL(context.Background(), store)
	if err != nil {
		t.Fatal(err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(ca.Cert); err != nil {
		t.Fatalf("CRL signature: %v", err)
	}
	if len(crl.RevokedCertificateEntries) != 1 || crl.RevokedCertificateEntries[0].SerialNumber.Text(16) != "a0b" {
		t.Fatalf("entries = %+v", crl.RevokedCertificateEntries)
	}
	// Cached until invalidated; then re-signed with a larger number.
	now = now.Add(time.Second)
	again, _ := ca.CRL(context.Background(), fakeRevocations{})
	if string(again) != string(der) {
		t.Error("CRL re-signed without an invalidation")
	}
	ca.InvalidateCRL()
	fresh, _ := ca.CRL(context.Background(), fakeRevocations{})
	crl2, err := x509.ParseRevocationList(fresh)
	if err != nil {
		t.Fatal(err)
	}
	if crl2.Number.Cmp(crl.Number) <= 0 || len(crl2.RevokedCertificateEntries) != 0 {
		t.Errorf("after invalidation: number %v → %v, entries %d", crl.Number, crl2.Number, len(crl2.RevokedCertificateEntries))
	}
}

func TestServerCertReusedAndRenewed(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	dir := t.TempDir()
	ca := mustCA(t, dir, clock)
	c1, err := ca.LoadOrIssueServerCert(dir, []string{"localhost", "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	c2, _ := ca.LoadOrIssueServerCert(dir, []string{"localhost", "127.0.0.1"})
	if string(c1.Certificate[0]) != string(c2.Certificate[0]) {
		t.Error("a valid server certificate was issued again")
	}
	c3, _ := ca.LoadOrIssueServerCert(dir, []string{"localhost", "mdm.example.org"})
	if string(c3.Certificate[0]) == string(c1.Certificate[0]) {
		t.Error("a certificate not covering a new host name was kept")
	}
	now = now.Add(ServerValidity - 10*24*time.Hour)
	c4, _ := ca.LoadOrIssueServerCert(dir, []string{"localhost", "mdm.example.org"})
	if string(c4.Certificate[0]) == string(c3.Certificate[0]) {
		t.Error("a certificate near expiry was kept")
	}
	fi, _ := os.Stat(filepath.Join(dir, TLSKeyFile))
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("TLS key mode %v", fi.Mode().Perm())
	}
}

func FuzzParseCSR(f *testing.F) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "x"}}, key)
	f.Add(der)
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\n-----END CERTIFICATE REQUEST-----\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		csr, err := ParseCSR(b)
		if err == nil {
			// Whatever parses must have a verified signature and a
			// strong key.
			if csr.CheckSignature() != nil || CheckKey(csr.PublicKey) != nil {
				t.Fatal("ParseCSR accepted a CSR that fails its own checks")
			}
		} else if errs.KindOf(err) == errs.Internal {
			t.Fatalf("untyped error %v", err)
		}
	})
}
