package mde_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/custos-uem/custos/platform/windows/mde"
	"github.com/custos-uem/custos/platform/windows/wintest"
)

// fuzzHandler serves the three endpoints over a fake activation, in
// process.
func fuzzHandler(f *testing.F) (http.Handler, *fakeActivation) {
	fake := newFake(f)
	m := mux{http.NewServeMux()}
	h := &mde.Handler{Config: mde.Config{PublicURL: "https://custos.example", ProviderID: "Custos",
		ManagementURL: "https://custos.example/device/windows/mdm"}, Activation: fake, CA: fake.ca.Cert}
	h.Register(m)
	return m, fake
}

func seed(f *testing.F, names ...string) {
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join("testdata", n))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(billionLaughs))
	f.Add(deepNesting(100))
	f.Add([]byte(`<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"/>`))
}

// FuzzDiscover: no input makes the discovery endpoint (or the decoder)
// panic, and every answer is a DiscoverResponse or a fault.
func FuzzDiscover(f *testing.F) {
	seed(f, "discover-request.xml", "getpolicies-request.xml")
	h, _ := fuzzHandler(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		mde.DecodeEnvelope(b)
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, mde.PathDiscovery, bytes.NewReader(b))
		req.Header.Set("Content-Type", mde.ContentType)
		h.ServeHTTP(rec, req)
		if rec.Code != 200 && rec.Code != 500 {
			t.Fatalf("status %d", rec.Code)
		}
	})
}

// FuzzRequestSecurityToken: no input makes the enrollment endpoint
// panic, whatever its credentials, CSR or context.
func FuzzRequestSecurityToken(f *testing.F) {
	seed(f, "rst-request.xml", "getpolicies-request.xml")
	k, _ := rsa.GenerateKey(rand.Reader, 2048)
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "x"}}, k)
	f.Add(wintest.RSTMessage("urn:uuid:1", "https://custos.example", wintest.UsernameSecurity("user@contoso.com", "K7QM-3ZPA-WX9E-HT4C"),
		csr, map[string]string{"HWDevID": "hw", "DeviceName": "pc", "OSEdition": "48"}))
	f.Add(wintest.RSTMessage("urn:uuid:2", "https://custos.example", wintest.UsernameSecurity("user@contoso.com", "K7QM-3ZPA-WX9E-HT4C"),
		[]byte(base64.StdEncoding.EncodeToString([]byte("junk"))), map[string]string{"DeviceID": "d"}))
	h, fake := fuzzHandler(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		fake.mu.Lock()
		fake.used = false // every input may enroll
		fake.mu.Unlock()
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, mde.PathEnroll, bytes.NewReader(b))
		req.Header.Set("Content-Type", mde.ContentType)
		h.ServeHTTP(rec, req)
		if rec.Code != 200 && rec.Code != 500 {
			t.Fatalf("status %d", rec.Code)
		}
	})
}

// FuzzProvDoc: a provisioning document that parses survives a round trip
// through Marshal unchanged.
func FuzzProvDoc(f *testing.F) {
	b, err := os.ReadFile(filepath.Join("testdata", "provisioning-doc.xml"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(`<wap-provisioningdoc version="1.1"><characteristic type="a &amp; b"><parm name="x" value="&lt;y&gt;" datatype="string"/></characteristic></wap-provisioningdoc>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d1, err := mde.ParseProvDoc(b)
		if err != nil {
			return
		}
		d2, err := mde.ParseProvDoc(d1.Marshal())
		if err != nil {
			t.Fatalf("our own document does not parse: %v\n%s", err, d1.Marshal())
		}
		d1.XMLName = d2.XMLName
		if !reflect.DeepEqual(d1, d2) {
			t.Fatalf("round trip changed the document:\n%+v\n%+v", d1, d2)
		}
	})
}
