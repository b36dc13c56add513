package deptest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"html"
	"math/big"
	"testing"
	"time"

	"github.com/smallstep/pkcs7"

	"github.com/custos-uem/custos/platform/apple/dep"
)

// DeviceCA is a fake "Apple device CA": a root and an intermediate that
// issue device identities, which sign MachineInfo as an Apple device does
// during Setup Assistant.
type DeviceCA struct {
	Root         *x509.Certificate
	intermediate *x509.Certificate
	interKey     *ecdsa.PrivateKey
	alg          x509.SignatureAlgorithm // of the certificates it issues
}

// NewDeviceCA makes a fake Apple device CA.
func NewDeviceCA(tb testing.TB, name string) *DeviceCA {
	tb.Helper()
	return newDeviceCA(tb, name, x509.UnknownSignatureAlgorithm)
}

// NewSHA1DeviceCA makes a fake Apple device CA whose intermediate and
// device certificates are signed with SHA-1, as older Apple device
// identity chains are.
func NewSHA1DeviceCA(tb testing.TB, name string) *DeviceCA {
	tb.Helper()
	return newDeviceCA(tb, name, x509.ECDSAWithSHA1)
}

func newDeviceCA(tb testing.TB, name string, alg x509.SignatureAlgorithm) *DeviceCA {
	rootKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	root := issue(tb, &x509.Certificate{Subject: pkix.Name{CommonName: name + " Root CA", Organization: []string{name}}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}, nil, nil, &rootKey.PublicKey, rootKey)
	interKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	inter := issue(tb, &x509.Certificate{Subject: pkix.Name{CommonName: name + " iPhone Device CA"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, SignatureAlgorithm: alg}, root, rootKey, &interKey.PublicKey, nil)
	return &DeviceCA{Root: root, intermediate: inter, interKey: interKey, alg: alg}
}

func issue(tb testing.TB, tmpl, parent *x509.Certificate, parentKey any, pub any, selfKey any) *x509.Certificate {
	tb.Helper()
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl.SerialNumber = serial
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(10*365*24*time.Hour)
	if parent == nil {
		parent, parentKey = tmpl, selfKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, parentKey)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// Roots are the CA's root as the Core's trust roots.
func (ca *DeviceCA) Roots() *dep.Roots { return dep.RootsOf(ca.Root) }

// RootPEM is the root in PEM (the file --apple-device-ca names).
func (ca *DeviceCA) RootPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Root.Raw})
}

// MachineInfo is what a fake device reports.
type MachineInfo struct {
	UDID, Serial, Product, Version, IMEI, Language string
}

// Plist is the MachineInfo plist, as the device sends it.
func (mi MachineInfo) Plist() []byte {
	kv := func(k, v string) string {
		if v == "" {
			return ""
		}
		return "\t<key>" + k + "</key>\n\t<string>" + html.EscapeString(v) + "</string>\n"
	}
	return []byte(`<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
` + kv("IMEI", mi.IMEI) + kv("LANGUAGE", mi.Language) + kv("PRODUCT", mi.Product) + kv("SERIAL", mi.Serial) +
		kv("UDID", mi.UDID) + kv("VERSION", mi.Version) + `</dict>
</plist>
`)
}

// Sign signs content (a MachineInfo plist) as a device of this CA: CMS
// SignedData with the content attached and the device's chain included.
func (ca *DeviceCA) Sign(tb testing.TB, content []byte) []byte {
	tb.Helper()
	// Apple's device identities are RSA; P-256 keeps the tests fast and
	// exercises the same CMS verification.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	leaf := issue(tb, &x509.Certificate{Subject: pkix.Name{CommonName: "00008030-001A2B3C4D5E6F70"}, KeyUsage: x509.KeyUsageDigitalSignature,
		SignatureAlgorithm: ca.alg},
		ca.intermediate, ca.interKey, &key.PublicKey, nil)
	sd, err := pkcs7.NewSignedData(content)
	if err != nil {
		tb.Fatal(err)
	}
	// AddSigner, then the intermediate: AddSignerChain would check the
	// chain with Go's verifier, which refuses a SHA-1 one.
	if err := sd.AddSigner(leaf, key, pkcs7.SignerInfoConfig{}); err != nil {
		tb.Fatal(err)
	}
	sd.AddCertificate(ca.intermediate)
	der, err := sd.Finish()
	if err != nil {
		tb.Fatal(err)
	}
	return der
}
