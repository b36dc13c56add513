package pushcert_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/platform/apple/pushcert"
	"github.com/custos-uem/custos/push"
	"github.com/custos-uem/custos/push/apns/apnstest"
	"github.com/custos-uem/custos/secret"
)

const (
	topicA = "com.apple.mgmt.External.11111111-2222-4333-8444-555555555555"
	topicB = "com.apple.mgmt.External.99999999-8888-4777-8666-555555555555"
	token  = "00fc13adff785122b4ad28809a3420982341241421348097878e577c991de8f0"
)

// memStore is a pushcert.Store in memory (the SQL one runs the
// conformance suite in sqlstore).
type memStore struct {
	mu sync.Mutex
	c  *pushcert.Stored
}

func (m *memStore) PushCertificate(context.Context) (*pushcert.Stored, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.c == nil {
		return nil, errs.ErrNotFound
	}
	c := *m.c
	return &c, nil
}

func (m *memStore) PutPushCertificate(_ context.Context, c *pushcert.Stored) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	cc := *c
	m.c = &cc
	return nil
}

func newService(t testing.TB, fake *apnstest.Server) (*pushcert.Service, *memStore) {
	t.Helper()
	box, err := secret.New(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	st := &memStore{}
	s := &pushcert.Service{Store: st, Box: box}
	if fake != nil {
		s.APNsURL, s.RootCAs = fake.URL, fake.RootCAs()
	}
	t.Cleanup(s.Close)
	return s, st
}

// pemPair encodes a TLS certificate as the PEM certificate and key an
// administrator uploads.
func pemPair(t testing.TB, c tls.Certificate) (certPEM, keyPEM []byte) {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// selfSigned is a certificate with the given subject, valid until notAfter.
func selfSigned(t *testing.T, subject pkix.Name, notAfter time.Time) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: subject, NotBefore: notAfter.Add(-48 * time.Hour), NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestUploadRefusals(t *testing.T) {
	fake := apnstest.NewServer(t, apnstest.Options{})
	good := fake.ClientCertificate(t, topicA)
	other := fake.ClientCertificate(t, topicA)
	goodCert, goodKey := pemPair(t, good)
	_, otherKey := pemPair(t, other)
	noUID, noUIDKey := pemPair(t, selfSigned(t, pkix.Name{CommonName: "APSP:not-a-push-cert"}, time.Now().Add(time.Hour)))
	p12, err := os.ReadFile("testdata/push.p12")
	if err != nil {
		t.Fatal(err)
	}
	// 5,000,000 iterations (openssl pkcs12 -iter 5000000 -maciter):
	// refused before any derivation.
	hugeIter, err := os.ReadFile("testdata/huge-iterations.p12")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		in   pushcert.Upload
		now  time.Time
		code string
	}{
		{"fail/key-does-not-match-certificate", pushcert.Upload{CertPEM: goodCert, KeyPEM: otherKey}, time.Time{}, "push_key_mismatch"},
		{"fail/not-a-push-certificate", pushcert.Upload{CertPEM: noUID, KeyPEM: noUIDKey}, time.Time{}, "not_mdm_push_certificate"},
		{"fail/expired-certificate", pushcert.Upload{CertPEM: goodCert, KeyPEM: goodKey}, time.Now().Add(48 * time.Hour), "push_certificate_expired"},
		{"fail/garbage-p12", pushcert.Upload{P12: []byte("this is no PKCS#12 file"), Password: "x"}, time.Time{}, "invalid_pkcs12"},
		{"fail/wrong-p12-password", pushcert.Upload{P12: p12, Password: "wrong-horse"}, time.Time{}, "pkcs12_wrong_password"},
		{"fail/p12-with-too-many-iterations", pushcert.Upload{P12: hugeIter, Password: "x"}, time.Time{}, "pkcs12_too_many_iterations"},
		{"fail/garbage-pem", pushcert.Upload{CertPEM: []byte("garbage"), KeyPEM: []byte("garbage")}, time.Time{}, "invalid_pem"},
		{"fail/oversized-upload", pushcert.Upload{CertPEM: make([]byte, pushcert.MaxUpload+1), KeyPEM: goodKey}, time.Time{}, "push_certificate_too_large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, st := newService(t, fake)
			if !tc.now.IsZero() {
				s.Now = func() time.Time { return tc.now }
			}
			_, _, err := s.Upload(context.Background(), tc.in)
			if code, _, _ := errs.Public(err); code != tc.code {
				t.Fatalf("Upload: %v (code %q), want code %q", err, code, tc.code)
			}
			if st.c != nil {
				t.Fatalf("a refused upload was stored: %+v", st.c)
			}
		})
	}
	t.Run("fail/topic-change-without-confirmation", func(t *testing.T) {
		s, st := newService(t, fake)
		ctx := context.Background()
		if _, _, err := s.Upload(ctx, pushcert.Upload{CertPEM: goodCert, KeyPEM: goodKey}); err != nil {
			t.Fatal(err)
		}
		bCert, bKey := pemPair(t, fake.ClientCertificate(t, topicB))
		_, _, err := s.Upload(ctx, pushcert.Upload{CertPEM: bCert, KeyPEM: bKey})
		code, msg, _ := errs.Public(err)
		if code != "push_topic_change" || !errs.Is(err, errs.Conflict) || !strings.Contains(msg, "stop answering pushes") || !strings.Contains(msg, "replace_topic") {
			t.Fatalf("topic change: %v, want 409 push_topic_change explaining why", err)
		}
		if st.c.Topic != topicA {
			t.Fatalf("stored topic %s, want %s kept", st.c.Topic, topicA)
		}
		info, replaced, err := s.Upload(ctx, pushcert.Upload{CertPEM: bCert, KeyPEM: bKey, ReplaceTopic: true})
		if err != nil || info.Topic != topicB || replaced != topicA {
			t.Fatalf("confirmed topic change: %+v %q %v", info, replaced, err)
		}
	})
	t.Run("ok/p12-with-password", func(t *testing.T) {
		s, st := newService(t, nil)
		info, _, err := s.Upload(context.Background(), pushcert.Upload{P12: p12, Password: "correct-horse", By: "admin"})
		if err != nil {
			t.Fatal(err)
		}
		if info.Topic != "com.apple.mgmt.External.0b7c1a2e-3f4d-4c5b-9a8e-112233445566" || info.Key != "***" || info.UploadedBy != "admin" {
			t.Fatalf("info %+v", info)
		}
		if strings.Contains(st.c.KeySealed, "PRIVATE KEY") || !secret.IsSealed(st.c.KeySealed) {
			t.Fatalf("the key is stored in the clear: %.40s", st.c.KeySealed)
		}
	})
}

// TestInfoNeverShowsTheKey: the read shows the certificate and its expiry,
// never the key, in any encoding.
func TestInfoNeverShowsTheKey(t *testing.T) {
	fake := apnstest.NewServer(t, apnstest.Options{})
	s, _ := newService(t, fake)
	certPEM, keyPEM := pemPair(t, fake.ClientCertificate(t, topicA))
	info, _, err := s.Upload(context.Background(), pushcert.Upload{CertPEM: certPEM, KeyPEM: keyPEM})
	if err != nil {
		t.Fatal(err)
	}
	again, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []*pushcert.Info{info, again} {
		b, _ := json.Marshal(v)
		body := strings.TrimSpace(string(keyPEM))
		inner := strings.Split(body, "\n")[1]
		if strings.Contains(string(b), "PRIVATE KEY") || strings.Contains(string(b), inner) {
			t.Fatalf("the read shows the key: %s", b)
		}
		if v.Topic != topicA || !v.ExpiringSoon || v.DaysLeft != 0 {
			// apnstest's certificates last a day: within the warning window.
			t.Fatalf("info %+v: want the topic and expiring_soon", v)
		}
	}
}

// TestMDMPushThroughUploadedCertificate: an MDM push reaches APNs with
// push type mdm, the certificate's topic, the body {"mdm":"<PushMagic>"},
// over TLS authenticated by the uploaded certificate; after a renewal the
// new certificate is used.
func TestMDMPushThroughUploadedCertificate(t *testing.T) {
	fake := apnstest.NewServer(t, apnstest.Options{})
	s, _ := newService(t, fake)
	ctx := context.Background()
	var fallback []push.Target
	sender := s.Sender(push.SenderFunc(func(_ context.Context, tg push.Target) error {
		fallback = append(fallback, tg)
		return nil
	}))

	// No certificate: MDM pushes go to the fallback (a relay), untouched.
	mdm := push.Target{Provider: push.APNs, Token: token, Topic: topicA, PushMagic: "magic-1"}
	if err := sender.Send(ctx, mdm); err != nil {
		t.Fatal(err)
	}
	if len(fallback) != 1 || fallback[0] != mdm {
		t.Fatalf("without a certificate the fallback got %+v", fallback)
	}
	if _, err := s.Topic(ctx); !errors.Is(err, push.ErrNotConfigured) {
		t.Fatalf("Topic without a certificate: %v, want push.ErrNotConfigured", err)
	}

	first := fake.ClientCertificate(t, topicA)
	certPEM, keyPEM := pemPair(t, first)
	if _, _, err := s.Upload(ctx, pushcert.Upload{CertPEM: certPEM, KeyPEM: keyPEM}); err != nil {
		t.Fatal(err)
	}
	if topic, err := s.Topic(ctx); err != nil || topic != topicA {
		t.Fatalf("Topic: %q %v", topic, err)
	}
	if err := sender.Send(ctx, push.Target{Provider: push.APNs, Token: token, PushMagic: "magic-2"}); err != nil {
		t.Fatal(err)
	}
	// An agent push (another topic, no PushMagic) stays with the fallback.
	agent := push.Target{Provider: push.APNs, Token: token, Topic: "com.example.agent"}
	if err := sender.Send(ctx, agent); err != nil {
		t.Fatal(err)
	}
	if len(fallback) != 2 || fallback[1] != agent {
		t.Fatalf("the agent push went %+v", fallback)
	}
	got := fake.Delivered()
	if len(got) != 1 {
		t.Fatalf("fake APNs got %d pushes, want 1", len(got))
	}
	if n := got[0]; n.PushType != "mdm" || n.Topic != topicA || string(n.Payload) != `{"mdm":"magic-2"}` || n.Token != token {
		t.Fatalf("MDM push %+v payload %s", n, n.Payload)
	}

	// Renewal: same topic, new certificate and key; the next push uses it.
	renewed := fake.ClientCertificate(t, topicA)
	certPEM, keyPEM = pemPair(t, renewed)
	if _, replaced, err := s.Upload(ctx, pushcert.Upload{CertPEM: certPEM, KeyPEM: keyPEM}); err != nil || replaced != "" {
		t.Fatalf("renewal: %q %v", replaced, err)
	}
	if err := sender.Send(ctx, push.Target{Provider: push.APNs, Token: token, PushMagic: "magic-3"}); err != nil {
		t.Fatal(err)
	}
	if got := fake.Delivered(); len(got) != 2 || string(got[1].Payload) != `{"mdm":"magic-3"}` {
		t.Fatalf("after renewal: %+v", got)
	}
}

// TestRenewalSwitchesClientCertificate: the TLS client certificate APNs
// sees is the uploaded one, and the renewed one right after a renewal.
func TestRenewalSwitchesClientCertificate(t *testing.T) {
	fake := apnstest.NewServer(t, apnstest.Options{}) // issues the certificates
	var mu sync.Mutex
	var serials []string
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		serials = append(serials, r.TLS.PeerCertificates[0].SerialNumber.String())
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
	srv.StartTLS()
	defer srv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())

	s, _ := newService(t, nil)
	s.APNsURL, s.RootCAs = srv.URL, pool
	ctx := context.Background()
	sender := s.Sender(nil)
	var want []string
	for i := range 2 {
		c := fake.ClientCertificate(t, topicA)
		certPEM, keyPEM := pemPair(t, c)
		if _, _, err := s.Upload(ctx, pushcert.Upload{CertPEM: certPEM, KeyPEM: keyPEM}); err != nil {
			t.Fatal(err)
		}
		leaf, _ := x509.ParseCertificate(c.Certificate[0])
		want = append(want, leaf.SerialNumber.String())
		if err := sender.Send(ctx, push.Target{Provider: push.APNs, Token: token, PushMagic: "m"}); err != nil {
			t.Fatalf("push %d: %v", i, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(serials) != 2 || serials[0] != want[0] || serials[1] != want[1] {
		t.Fatalf("client certificates seen %v, want %v", serials, want)
	}
}

// FuzzParse: no upload makes the parser panic, and whatever it accepts
// has an MDM topic and a key of its certificate.
func FuzzParse(f *testing.F) {
	p12, err := os.ReadFile("testdata/push.p12")
	if err != nil {
		f.Fatal(err)
	}
	pemCert, _ := os.ReadFile("testdata/push.pem")
	f.Add(p12, []byte(nil), "correct-horse")
	f.Add([]byte(nil), pemCert, "")
	f.Add([]byte{0x30, 0x82, 0x01}, []byte("-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n"), "")
	f.Fuzz(func(t *testing.T, p12 []byte, certPEM []byte, password string) {
		p, err := pushcert.Parse(pushcert.Upload{P12: p12, CertPEM: certPEM, KeyPEM: certPEM, Password: password}, time.Now())
		if err != nil {
			return
		}
		if !strings.HasPrefix(p.Topic, pushcert.TopicPrefix) || p.Key == nil || p.Leaf == nil {
			t.Fatalf("accepted %+v", p)
		}
	})
}

// TestExpiryWarning: within 30 days of expiry the daily check logs a
// warning naming the topic; a certificate with a year left is silent.
func TestExpiryWarning(t *testing.T) {
	fake := apnstest.NewServer(t, apnstest.Options{})
	s, _ := newService(t, fake)
	var logged strings.Builder
	var mu sync.Mutex
	s.Log = slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logged.Write(p)
	}), nil))
	ctx := context.Background()
	if n, err := s.CheckExpiry(ctx); n != 0 || err != nil {
		t.Fatalf("without a certificate: %d %v", n, err)
	}
	certPEM, keyPEM := pemPair(t, fake.ClientCertificate(t, topicA)) // valid for a day
	if _, _, err := s.Upload(ctx, pushcert.Upload{CertPEM: certPEM, KeyPEM: keyPEM}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.CheckExpiry(ctx); n != 1 || err != nil || !strings.Contains(logged.String(), "expires soon") || !strings.Contains(logged.String(), topicA) {
		t.Fatalf("a day left: %d %v, log %q", n, err, logged.String())
	}
	s.Now = func() time.Time { return time.Now().Add(48 * time.Hour) }
	if n, _ := s.CheckExpiry(ctx); n != 1 || !strings.Contains(logged.String(), "EXPIRED") {
		t.Fatalf("expired: %d, log %q", n, logged.String())
	}
	if info, _ := s.Info(ctx); !info.Expired || info.DaysLeft >= 0 {
		t.Fatalf("info of an expired certificate %+v", info)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestConcurrentPushesDuringRenewals: pushes from many goroutines while
// the certificate is renewed all reach APNs (run with -race).
func TestConcurrentPushesDuringRenewals(t *testing.T) {
	fake := apnstest.NewServer(t, apnstest.Options{})
	s, _ := newService(t, fake)
	ctx := context.Background()
	upload := func() {
		certPEM, keyPEM := pemPair(t, fake.ClientCertificate(t, topicA))
		if _, _, err := s.Upload(ctx, pushcert.Upload{CertPEM: certPEM, KeyPEM: keyPEM}); err != nil {
			t.Error(err)
		}
	}
	upload()
	sender := s.Sender(nil)
	const workers, each = 8, 25
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				if err := sender.Send(ctx, push.Target{Provider: push.APNs, Token: token, PushMagic: "m"}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for range 5 {
		upload()
	}
	wg.Wait()
	if n := len(fake.Delivered()); n != workers*each {
		t.Fatalf("delivered %d of %d", n, workers*each)
	}
}
