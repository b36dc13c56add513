package enroll

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"

	"github.com/smallstep/scep"
	"github.com/smallstep/scep/x509util"

	"github.com/custos-uem/custos/pki"
)

// FuzzPKIMessage feeds untrusted bytes to the SCEP message path (parse,
// verify, decrypt with the RA): it must never panic. The seeds are a real
// PKCSReq to the RA, its truncations, and garbage.
func FuzzPKIMessage(f *testing.F) {
	dir := f.TempDir()
	ca, _, err := pki.LoadOrCreateCA(dir, pki.Options{})
	if err != nil {
		f.Fatal(err)
	}
	ra, err := LoadOrCreateRA(dir, ca, time.Now())
	if err != nil {
		f.Fatal(err)
	}
	real := realRequest(f, ra)
	f.Add(real)
	for _, n := range []int{1, 2, 16, len(real) / 3, len(real) / 2, len(real) - 1} {
		f.Add(real[:n])
	}
	f.Add([]byte{})
	f.Add([]byte("garbage"))
	f.Add([]byte{0x30, 0x84, 0xff, 0xff, 0xff, 0xff})
	flipped := append([]byte(nil), real...)
	flipped[len(flipped)/2] ^= 0xff
	f.Add(flipped)
	f.Fuzz(func(t *testing.T, b []byte) {
		msg, err := parsePKIMessage(b)
		if err != nil {
			return
		}
		if err := decrypt(msg, ra); err != nil {
			return
		}
		if msg.CSRReqMessage.CSR == nil {
			t.Fatal("decrypt succeeded without a CSR")
		}
	})
}

func realRequest(tb testing.TB, ra *RA) []byte {
	tb.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatal(err)
	}
	csrDER, err := x509util.CreateCertificateRequest(rand.Reader, &x509util.CertificateRequest{
		CertificateRequest: x509.CertificateRequest{Subject: pkix.Name{CommonName: "device"}}, ChallengePassword: "CHALLENGE"}, key)
	if err != nil {
		tb.Fatal(err)
	}
	csr, _ := x509.ParseCertificateRequest(csrDER)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "SCEP SIGNER"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	signer, _ := x509.ParseCertificate(der)
	msg, err := scep.NewCSRRequest(csr, &scep.PKIMessage{MessageType: scep.PKCSReq, Recipients: []*x509.Certificate{ra.Cert}, SignerKey: key, SignerCert: signer})
	if err != nil {
		tb.Fatal(err)
	}
	return msg.Raw
}
