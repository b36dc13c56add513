package wintest_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"strings"
	"testing"

	"github.com/custos-uem/custos/pki"
	"github.com/custos-uem/custos/platform/windows/mde"
	"github.com/custos-uem/custos/platform/windows/wintest"
)

// TestVerifyProvisioningRefuses: the emulator's checks are real checks:
// each tampered document is refused.
func TestVerifyProvisioningRefuses(t *testing.T) {
	ca, _, err := pki.LoadOrCreateCA(t.TempDir(), pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	other, _, err := pki.LoadOrCreateCA(t.TempDir(), pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	csrFor := func() []byte {
		k, _ := rsa.GenerateKey(rand.Reader, 2048)
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "01a2b3c4d5e6"}}, k)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	sign := func(signer *pki.CA, der []byte) *x509.Certificate {
		csr, err := x509.ParseCertificateRequest(der)
		if err != nil {
			t.Fatal(err)
		}
		c, err := signer.SignDeviceCSR(csr, "01a2b3c4d5e6", 0)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	csr := csrFor()
	good := func() *mde.Provisioning {
		return &mde.Provisioning{CA: ca.Cert, Cert: sign(ca, csr), ProviderID: "Custos", ServerName: "Custos",
			ManagementURL: "https://mdm.example/device/windows/mdm", PollMinutes: 480, FirstPollMinutes: 15, FirstPolls: 8, RenewPeriodDays: 42}
	}
	if _, err := wintest.VerifyProvisioning(good().Build().Marshal(), csr, false); err != nil {
		t.Fatalf("the good document: %v", err)
	}
	for _, tc := range []struct {
		name   string
		doc    func() []byte
		device bool
		want   string
	}{
		{"fail/foreign-root", func() []byte { p := good(); p.CA = other.Cert; return p.Build().Marshal() }, false, "does not chain"},
		{"fail/another-key", func() []byte { p := good(); p.Cert = sign(ca, csrFor()); return p.Build().Marshal() }, false, "another key"},
		{"fail/wrong-thumbprint", func() []byte {
			return bytes.Replace(good().Build().Marshal(), []byte(mde.Thumbprint(ca.Cert)), []byte(strings.Repeat("A", 40)), 1)
		}, false, "thumbprint"},
		{"fail/http-management-url", func() []byte { p := good(); p.ManagementURL = "http://mdm.example/x"; return p.Build().Marshal() }, false, "ADDR"},
		{"fail/wrong-store", func() []byte { return good().Build().Marshal() }, true, `My\System`},
		{"fail/not-xml", func() []byte { return []byte("<wap-provisioningdoc") }, false, "provisioning document"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := wintest.VerifyProvisioning(tc.doc(), csr, tc.device)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one about %q", err, tc.want)
			}
		})
	}
}
