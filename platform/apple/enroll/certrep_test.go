package enroll_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/smallstep/pkcs7"
	"github.com/smallstep/scep"

	"github.com/custos-uem/custos/platform/apple/enroll/enrolltest"
)

// ASN.1 of a CMS EnvelopedData in a ContentInfo (RFC 5652 §3, §6.1), as an
// independent reader sees it. A RawValue is the whole next element,
// whatever its tag.
type (
	testContentInfo struct {
		ContentType asn1.ObjectIdentifier
		Content     asn1.RawValue
	}
	testEnvelopedData struct {
		Version              int
		RecipientInfos       asn1.RawValue
		EncryptedContentInfo struct {
			ContentType asn1.ObjectIdentifier
			Algorithm   asn1.RawValue
			Content     asn1.RawValue
		}
	}
)

var (
	oidEnvelopedData      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 3}
	oidSCEPSenderNonce    = asn1.ObjectIdentifier{2, 16, 840, 1, 113733, 1, 9, 5}
	oidSCEPRecipientNonce = asn1.ObjectIdentifier{2, 16, 840, 1, 113733, 1, 9, 6}
)

// TestCertRepEnvelopeConstructed: the CertRep SUCCESS envelopes the issued
// certificate with its encryptedContent in the constructed form ([0]
// holding one OCTET STRING), which go.mozilla.org/pkcs7 clients (mdmb,
// micromdm/scep) read, and smallstep/scep's client and OpenSSL still open
// it and find the SCEP attributes of RFC 8894 §3.3.2.
func TestCertRepEnvelopeConstructed(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	d := f.mac()
	_, prof := f.profile(d)
	certs, _, err := f.scep.CACerts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	key := rsaKey(t, 2048)
	req, signer, err := (&enrolltest.Request{Key: key, CommonName: d.ID, Challenge: challengeOf(t, prof), Recipients: certs}).Message()
	if err != nil {
		t.Fatal(err)
	}
	res, rep, err := f.scep.PKIOperation(ctx, req.Raw, false)
	if err != nil || rep == nil || res.Status != scep.SUCCESS {
		t.Fatalf("PKIOperation: %+v, %v", res, err)
	}

	// The signed layer: by the RA, with the request's transaction and
	// its senderNonce as recipientNonce, and a fresh senderNonce.
	p7, err := pkcs7.Parse(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if s := p7.GetOnlySigner(); s == nil || !s.Equal(f.svc.RA.Cert) {
		t.Fatalf("the CertRep is not signed by the RA")
	}
	if rep.TransactionID != req.TransactionID || !bytes.Equal(rep.RecipientNonce, req.SenderNonce) {
		t.Errorf("transactionID %q recipientNonce %x, want %q %x", rep.TransactionID, rep.RecipientNonce, req.TransactionID, req.SenderNonce)
	}
	var sn, rn []byte
	if err := p7.UnmarshalSignedAttribute(oidSCEPSenderNonce, &sn); err != nil || len(sn) != 16 || bytes.Equal(sn, req.SenderNonce) {
		t.Errorf("senderNonce %x, %v: want 16 fresh bytes", sn, err)
	}
	if err := p7.UnmarshalSignedAttribute(oidSCEPRecipientNonce, &rn); err != nil || !bytes.Equal(rn, req.SenderNonce) {
		t.Errorf("recipientNonce %x, %v", rn, err)
	}

	// The envelope, read with encoding/asn1.
	var ci testContentInfo
	if rest, err := asn1.Unmarshal(p7.Content, &ci); err != nil || len(rest) != 0 || !ci.ContentType.Equal(oidEnvelopedData) {
		t.Fatalf("the signed content is not one EnvelopedData ContentInfo: %v %v", ci.ContentType, err)
	}
	var ed testEnvelopedData
	if rest, err := asn1.Unmarshal(ci.Content.Bytes, &ed); err != nil || len(rest) != 0 {
		t.Fatalf("EnvelopedData: %v", err)
	}
	ec := ed.EncryptedContentInfo.Content
	if ec.Class != asn1.ClassContextSpecific || ec.Tag != 0 || !ec.IsCompound {
		t.Fatalf("encryptedContent: class %d tag %d compound %v; want the constructed [0]", ec.Class, ec.Tag, ec.IsCompound)
	}
	var octets asn1.RawValue
	if rest, err := asn1.Unmarshal(ec.Bytes, &octets); err != nil || len(rest) != 0 ||
		octets.Class != asn1.ClassUniversal || octets.Tag != asn1.TagOctetString || octets.IsCompound || len(octets.Bytes) == 0 || len(octets.Bytes)%16 != 0 {
		t.Fatalf("encryptedContent [0] holds %+v (%v), want one OCTET STRING of AES blocks", octets, err)
	}

	// smallstep/scep's client side opens it.
	if err := rep.DecryptPKIEnvelope(signer, key); err != nil {
		t.Fatalf("smallstep/scep cannot decrypt the CertRep: %v", err)
	}
	issued := rep.CertRepMessage.Certificate
	if issued.Subject.CommonName != d.ID {
		t.Fatalf("issued CN %q, want %s", issued.Subject.CommonName, d.ID)
	}

	// OpenSSL, an independent CMS implementation: verifies the signed
	// layer, shows the constructed [0] and decrypts the envelope.
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	openssl := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("openssl", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	certRep := write("certrep.der", res.Body)
	env := filepath.Join(dir, "envelope.der")
	openssl("cms", "-verify", "-noverify", "-inform", "DER", "-in", certRep, "-binary", "-out", env)
	if b, _ := os.ReadFile(env); !bytes.Equal(b, p7.Content) {
		t.Fatal("openssl's signed content differs from the envelope")
	}
	lines := strings.Split(strings.TrimSpace(openssl("asn1parse", "-inform", "DER", "-in", env)), "\n")
	if n := len(lines); n < 2 || !strings.Contains(lines[n-2], "cons: cont [ 0 ]") || !strings.Contains(lines[n-1], "prim: OCTET STRING") {
		t.Fatalf("openssl asn1parse does not end in a constructed [0] holding an OCTET STRING:\n%s", strings.Join(lines, "\n"))
	}
	recip := write("signer.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: signer.Raw}))
	keyPEM := write("key.pem", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	plain := filepath.Join(dir, "plain.der")
	openssl("cms", "-decrypt", "-inform", "DER", "-in", env, "-recip", recip, "-inkey", keyPEM, "-binary", "-out", plain)
	b, _ := os.ReadFile(plain)
	got, err := scep.CACerts(b)
	if err != nil || len(got) != 1 || !got[0].Equal(issued) {
		t.Fatalf("openssl decrypted %d certificates (%v), want the issued one", len(got), err)
	}
}
