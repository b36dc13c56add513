package enroll

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"testing"
	"time"

	"github.com/smallstep/pkcs7"
)

// testEnvelope returns what pkcs7.Encrypt writes (the primitive
// encryptedContent) for a throwaway RSA recipient, and its key.
func testEnvelope(t *testing.T, content []byte) ([]byte, *x509.Certificate, *rsa.PrivateKey) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "recipient"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageKeyEncipherment}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	env, err := pkcs7.Encrypt(content, []*x509.Certificate{cert})
	if err != nil {
		t.Fatal(err)
	}
	return env, cert, key
}

func TestConstructedEnvelope(t *testing.T) {
	content := []byte("the degenerate certificates")
	prim, cert, key := testEnvelope(t, content)
	var ci cmsContentInfo
	if _, err := asn1.Unmarshal(prim, &ci); err != nil {
		t.Fatal(err)
	}
	var ed cmsEnvelopedData
	if _, err := asn1.Unmarshal(ci.Content.Bytes, &ed); err != nil {
		t.Fatal(err)
	}
	if ed.EncryptedContentInfo.EncryptedContent.IsCompound {
		t.Fatal("pkcs7.Encrypt now writes the constructed form: constructedEnvelope may be retired")
	}
	ciphertext := ed.EncryptedContentInfo.EncryptedContent.Bytes
	noContent := ed
	noContent.EncryptedContentInfo.EncryptedContent = asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagNull}
	inner, _ := asn1.Marshal(noContent)
	withoutContent, _ := asn1.Marshal(cmsContentInfo{ContentType: ci.ContentType,
		Content: asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: inner}})
	notWrapped, _ := asn1.Marshal(cmsContentInfo{ContentType: ci.ContentType, Content: asn1.RawValue{FullBytes: ci.Content.Bytes}})

	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"fail/empty", nil},
		{"fail/trailing-bytes", append(append([]byte{}, prim...), 0)},
		{"fail/not-a-content-info", []byte{0x30, 0x03, 0x02, 0x01, 0x00}},
		{"fail/content-not-in-[0]", notWrapped},
		{"fail/no-encrypted-content", withoutContent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if out, err := constructedEnvelope(tc.in); err == nil {
				t.Fatalf("accepted: %x", out)
			}
		})
	}

	t.Run("ok/primitive-becomes-constructed", func(t *testing.T) {
		out, err := constructedEnvelope(prim)
		if err != nil {
			t.Fatal(err)
		}
		var ci cmsContentInfo
		var ed cmsEnvelopedData
		if _, err := asn1.Unmarshal(out, &ci); err != nil {
			t.Fatal(err)
		}
		if _, err := asn1.Unmarshal(ci.Content.Bytes, &ed); err != nil {
			t.Fatal(err)
		}
		ec := ed.EncryptedContentInfo.EncryptedContent
		var octets []byte
		if rest, err := asn1.Unmarshal(ec.Bytes, &octets); !ec.IsCompound || err != nil || len(rest) != 0 || !bytes.Equal(octets, ciphertext) {
			t.Fatalf("encryptedContent compound=%v holds %x (%v), want the ciphertext in one OCTET STRING", ec.IsCompound, octets, err)
		}
		// The library's own reader decrypts both forms.
		p7, err := pkcs7.Parse(out)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := p7.Decrypt(cert, key); err != nil || !bytes.Equal(got, content) {
			t.Fatalf("decrypt: %q, %v", got, err)
		}
	})
	t.Run("ok/constructed-unchanged", func(t *testing.T) {
		once, _ := constructedEnvelope(prim)
		twice, err := constructedEnvelope(once)
		if err != nil || !bytes.Equal(once, twice) {
			t.Fatalf("a constructed envelope was changed: %v", err)
		}
	})
}
