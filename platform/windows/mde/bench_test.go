package mde_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/custos-uem/custos/platform/windows/mde"
	"github.com/custos-uem/custos/platform/windows/wintest"
)

func benchHandler(b *testing.B) (http.Handler, *fakeActivation) {
	fake := newFake(b)
	m := mux{http.NewServeMux()}
	(&mde.Handler{Config: mde.Config{PublicURL: "https://custos.example", ProviderID: "Custos",
		ManagementURL: "https://custos.example/device/windows/mdm"}, Activation: fake, CA: fake.ca.Cert}).Register(m)
	return m, fake
}

func serve(b *testing.B, h http.Handler, path string, body []byte, want int) {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	req.Header.Set("Content-Type", mde.ContentType)
	h.ServeHTTP(rec, req)
	if rec.Code != want {
		b.Fatalf("%s: %d %s", path, rec.Code, rec.Body.Bytes())
	}
}

func BenchmarkDiscover(b *testing.B) {
	h, _ := benchHandler(b)
	body, err := os.ReadFile(filepath.Join("testdata", "discover-request.xml"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		serve(b, h, mde.PathDiscovery, body, 200)
	}
}

// BenchmarkRequestSecurityToken is the protocol's share of an enrollment:
// decode, CSR check, certificate, provisioning document (the activation
// service is a fake; its database work is measured by cmd/custos bench).
func BenchmarkRequestSecurityToken(b *testing.B) {
	h, fake := benchHandler(b)
	k, _ := rsa.GenerateKey(rand.Reader, 2048)
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "x"}}, k)
	body := wintest.RSTMessage("urn:uuid:1", "https://custos.example", wintest.UsernameSecurity(fake.login, fake.password),
		csr, map[string]string{"HWDevID": "hw", "DeviceName": "pc", "OSEdition": "48", "EnrollmentType": "Full"})
	b.ReportAllocs()
	for b.Loop() {
		fake.mu.Lock()
		fake.used = false
		fake.mu.Unlock()
		serve(b, h, mde.PathEnroll, body, 200)
	}
}

// BenchmarkRefuseEntityExpansion: the billion-laughs message is refused
// at its DOCTYPE, before any entity is read.
func BenchmarkRefuseEntityExpansion(b *testing.B) {
	h, _ := benchHandler(b)
	body := []byte(billionLaughs)
	b.ReportAllocs()
	for b.Loop() {
		serve(b, h, mde.PathDiscovery, body, 500)
	}
}
