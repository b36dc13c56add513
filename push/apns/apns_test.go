package apns_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custos-uem/custos/push"
	"github.com/custos-uem/custos/push/apns"
	"github.com/custos-uem/custos/push/apns/apnstest"
	"github.com/custos-uem/custos/push/pushtest"
)

const topic = "com.apple.mgmt.External.8e4f0a52-6f5b-4a3b-9d53-4d1c1b7d2a10"

var now = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func token(i int) string {
	const hexdigits = "0123456789abcdef"
	b := []byte(strings.Repeat("a", 64))
	for j := 0; j < 8; j++ {
		b[63-j] = hexdigits[(i>>(4*j))&0xf]
	}
	return string(b)
}

type fixture struct {
	srv    *apnstest.Server
	client *apns.Client
	sleep  *pushtest.Sleeper
}

func newFixture(t *testing.T, opts apnstest.Options, maxAttempts int, attemptTimeout time.Duration) *fixture {
	t.Helper()
	srv := apnstest.NewServer(t, opts)
	sl := &pushtest.Sleeper{}
	c, err := apns.New(apns.Config{
		Certificate: srv.ClientCertificate(t, topic),
		URL:         srv.URL,
		Topic:       topic,
		RootCAs:     srv.RootCAs(),
		Retry:       pushtest.Policy(sl, maxAttempts, attemptTimeout, now),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &fixture{srv: srv, client: c, sleep: sl}
}

func TestMDMPushShape(t *testing.T) {
	f := newFixture(t, apnstest.Options{}, 3, 5*time.Second)
	got := make(chan apnstest.Notification, 1)
	f.srv.OnPush(func(n apnstest.Notification) { got <- n })
	if err := f.client.Send(context.Background(), push.Target{Provider: push.APNs, Token: strings.ToUpper(token(1)), Topic: topic, PushMagic: "6B2F1B2C-MAGIC"}); err != nil {
		t.Fatal(err)
	}
	n := <-got
	if n.Token != token(1) || n.Topic != topic || n.PushType != "mdm" || n.PushMagic != "6B2F1B2C-MAGIC" {
		t.Fatalf("delivered %+v", n)
	}
	if string(n.Payload) != `{"mdm":"6B2F1B2C-MAGIC"}` {
		t.Fatalf("payload %s", n.Payload)
	}
	if len(f.srv.Delivered()) != 1 || len(f.sleep.Slept()) != 0 {
		t.Fatalf("delivered %d, slept %v", len(f.srv.Delivered()), f.sleep.Slept())
	}
}

func TestBackgroundPushShapeAndDefaultTopic(t *testing.T) {
	f := newFixture(t, apnstest.Options{}, 3, 5*time.Second)
	if err := f.client.Send(context.Background(), push.Target{Provider: push.APNs, Token: token(2)}); err != nil {
		t.Fatal(err)
	}
	d := f.srv.Delivered()
	if len(d) != 1 {
		t.Fatalf("delivered %d", len(d))
	}
	n := d[0]
	if n.PushType != "background" || n.Priority != "5" || n.Topic != topic {
		t.Fatalf("delivered %+v", n)
	}
	var p struct {
		APS struct {
			ContentAvailable int `json:"content-available"`
		} `json:"aps"`
	}
	if err := json.Unmarshal(n.Payload, &p); err != nil || p.APS.ContentAvailable != 1 {
		t.Fatalf("payload %s: %v", n.Payload, err)
	}
}

func TestPushHeadersAndID(t *testing.T) {
	f := newFixture(t, apnstest.Options{}, 3, 5*time.Second)
	const id = "123E4567-E89B-12D3-A456-4266554400A0"
	got, err := f.client.Push(context.Background(), &apns.Notification{
		DeviceToken: token(3), PushType: apns.PushTypeAlert, Priority: 10,
		Expiration: time.Unix(1900000000, 0), ID: id, CollapseID: "c1",
		Payload: []byte(`{"aps":{"alert":"hi"}}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	if got != id {
		t.Fatalf("apns-id %q", got)
	}
	n := f.srv.Delivered()[0]
	if n.Priority != "10" || n.Expiration != "1900000000" || n.CollapseID != "c1" || n.ID != id {
		t.Fatalf("delivered %+v", n)
	}
}

func TestUnregisteredIsNotRetried(t *testing.T) {
	f := newFixture(t, apnstest.Options{}, 4, 5*time.Second)
	f.srv.Fail(token(4), apnstest.Unregistered())
	err := f.client.Send(context.Background(), push.Target{Provider: push.APNs, Token: token(4), PushMagic: "m"})
	if !errors.Is(err, push.ErrUnregistered) {
		t.Fatalf("err = %v, want ErrUnregistered", err)
	}
	var pe *push.ProviderError
	if !errors.As(err, &pe) || pe.Status != 410 || pe.Reason != "Unregistered" {
		t.Fatalf("err = %#v", err)
	}
	if s := f.srv.Stats(); s.Requests != 1 || len(f.sleep.Slept()) != 0 {
		t.Fatalf("requests %d, slept %v", s.Requests, f.sleep.Slept())
	}
}

// TestBadDeviceTokenKeepsToken: BadDeviceToken also means "wrong
// environment", so it fails the push (no retry) without declaring the
// token dead.
func TestBadDeviceTokenKeepsToken(t *testing.T) {
	f := newFixture(t, apnstest.Options{}, 4, 5*time.Second)
	f.srv.Fail(token(5), apnstest.Failure{Status: 400, Reason: "BadDeviceToken"})
	err := f.client.Send(context.Background(), push.Target{Provider: push.APNs, Token: token(5), PushMagic: "m"})
	var pe *push.ProviderError
	if errors.Is(err, push.ErrUnregistered) || !errors.As(err, &pe) || pe.Reason != "BadDeviceToken" || f.srv.Stats().Requests != 1 {
		t.Fatalf("err = %v after %d requests; want a permanent BadDeviceToken error, the token kept", err, f.srv.Stats().Requests)
	}
}

func TestTooManyRequestsHonoursRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		name, header string
		want         time.Duration
	}{
		{"seconds", "7", 7 * time.Second},
		{"http-date", now.Add(12 * time.Second).Format(http.TimeFormat), 12 * time.Second},
		{"capped", "86400", push.MaxRetryAfter},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, apnstest.Options{}, 4, 5*time.Second)
			f.srv.Fail(token(6), apnstest.TooManyRequests(tc.header, 1))
			if err := f.client.Send(context.Background(), push.Target{Provider: push.APNs, Token: token(6), PushMagic: "m"}); err != nil {
				t.Fatal(err)
			}
			if s := f.sleep.Slept(); len(s) != 1 || s[0] != tc.want {
				t.Fatalf("slept %v, want [%v]", s, tc.want)
			}
			if len(f.srv.Delivered()) != 1 {
				t.Fatal("not delivered after the retry")
			}
		})
	}
}

func TestServerErrorsRetriedWithBackoff(t *testing.T) {
	f := newFixture(t, apnstest.Options{}, 4, 5*time.Second)
	f.srv.Fail(token(7), apnstest.ServerError(503, 2))
	if err := f.client.Send(context.Background(), push.Target{Provider: push.APNs, Token: token(7), PushMagic: "m"}); err != nil {
		t.Fatal(err)
	}
	// Rand is 0.5: each delay is 3/4 of 250ms·2^(n-1).
	want := []time.Duration{187500 * time.Microsecond, 375 * time.Millisecond}
	if s := f.sleep.Slept(); len(s) != 2 || s[0] != want[0] || s[1] != want[1] {
		t.Fatalf("slept %v, want %v", s, want)
	}
	if f.srv.Stats().Requests != 3 {
		t.Fatalf("requests %d", f.srv.Stats().Requests)
	}
}

func TestTimeoutRetried(t *testing.T) {
	f := newFixture(t, apnstest.Options{}, 3, 200*time.Millisecond)
	f.srv.Fail(token(8), apnstest.Hang(1))
	if err := f.client.Send(context.Background(), push.Target{Provider: push.APNs, Token: token(8), PushMagic: "m"}); err != nil {
		t.Fatal(err)
	}
	if s := f.sleep.Slept(); len(s) != 1 || len(f.srv.Delivered()) != 1 {
		t.Fatalf("slept %v, delivered %d", s, len(f.srv.Delivered()))
	}
}

func TestPermanentFailureAfterMaxAttempts(t *testing.T) {
	f := newFixture(t, apnstest.Options{}, 3, 5*time.Second)
	f.srv.Fail(token(9), apnstest.ServerError(500, 0))
	err := f.client.Send(context.Background(), push.Target{Provider: push.APNs, Token: token(9), PushMagic: "m"})
	var pe *push.ProviderError
	if !errors.As(err, &pe) || pe.Status != 500 || pe.Reason != "InternalServerError" || !pe.Retryable {
		t.Fatalf("err = %v", err)
	}
	if f.srv.Stats().Requests != 3 || len(f.sleep.Slept()) != 2 {
		t.Fatalf("requests %d, slept %v", f.srv.Stats().Requests, f.sleep.Slept())
	}
}

func TestOtherClientErrorsArePermanent(t *testing.T) {
	f := newFixture(t, apnstest.Options{}, 3, 5*time.Second)
	err := f.client.Send(context.Background(), push.Target{Provider: push.APNs, Token: token(10), Topic: "com.example.other", PushMagic: "m"})
	var pe *push.ProviderError
	if !errors.As(err, &pe) || pe.Status != 400 || pe.Reason != "TopicDisallowed" || pe.Retryable {
		t.Fatalf("err = %v", err)
	}
	if f.srv.Stats().Requests != 1 {
		t.Fatalf("requests %d", f.srv.Stats().Requests)
	}
}

func TestContextCancelStopsRetries(t *testing.T) {
	f := newFixture(t, apnstest.Options{}, 10, 5*time.Second)
	f.srv.Fail(token(11), apnstest.ServerError(503, 0))
	ctx, cancel := context.WithCancel(context.Background())
	f.sleep.OnSleep = func(time.Duration) { cancel() }
	err := f.client.Send(ctx, push.Target{Provider: push.APNs, Token: token(11), PushMagic: "m"})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if f.srv.Stats().Requests != 1 {
		t.Fatalf("requests %d after cancel", f.srv.Stats().Requests)
	}
}

func TestInvalidTargetsRefusedBeforeSending(t *testing.T) {
	f := newFixture(t, apnstest.Options{}, 3, 5*time.Second)
	for name, n := range map[string]*apns.Notification{
		"short token":   {DeviceToken: "abcd", Payload: []byte(`{"mdm":"m"}`)},
		"odd token":     {DeviceToken: token(1) + "a", Payload: []byte(`{"mdm":"m"}`)},
		"non-hex token": {DeviceToken: strings.Repeat("g", 64), Payload: []byte(`{"mdm":"m"}`)},
		"path in token": {DeviceToken: strings.Repeat("a", 62) + "/x", Payload: []byte(`{"mdm":"m"}`)},
		"long token":    {DeviceToken: strings.Repeat("a", apns.MaxTokenLen+2), Payload: []byte(`{"mdm":"m"}`)},
		"big payload":   {DeviceToken: token(1), Payload: []byte(`{"mdm":"` + strings.Repeat("x", apns.MaxPayloadSize) + `"}`)},
		"not json":      {DeviceToken: token(1), Payload: []byte(`{"mdm":`)},
		"bad topic":     {DeviceToken: token(1), Topic: "a b\r\nx: y", Payload: []byte(`{"mdm":"m"}`)},
	} {
		if _, err := f.client.Push(context.Background(), n); !errors.Is(err, push.ErrInvalidTarget) {
			t.Errorf("%s: err = %v, want ErrInvalidTarget", name, err)
		}
	}
	if f.srv.Stats().Requests != 0 {
		t.Fatalf("%d requests reached the server", f.srv.Stats().Requests)
	}
}

func TestForeignClientCertificateRefused(t *testing.T) {
	srv := apnstest.NewServer(t, apnstest.Options{})
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "self"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	c, err := apns.New(apns.Config{
		Certificate: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
		URL:         srv.URL, Topic: topic, RootCAs: srv.RootCAs(),
		Retry: pushtest.Policy(&pushtest.Sleeper{}, 1, 5*time.Second, now),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.Send(context.Background(), push.Target{Provider: push.APNs, Token: token(1), PushMagic: "m"})
	var pe *push.ProviderError
	if !errors.As(err, &pe) || pe.Status != 0 {
		t.Fatalf("err = %v, want a transport error", err)
	}
	if srv.Stats().Requests != 0 {
		t.Fatal("a request without a valid client certificate was handled")
	}
}

func TestNoCertificateIsNotConfigured(t *testing.T) {
	if _, err := apns.New(apns.Config{}); !errors.Is(err, push.ErrNotConfigured) {
		t.Fatalf("err = %v", err)
	}
}

// TestStreamLimitAndConnectionCap holds every request in the fake so that
// streams pile up, and checks that the client never has more in flight on a
// connection than the server advertised (including before the server's
// SETTINGS arrive on a new connection) and never opens more than MaxConns.
func TestStreamLimitAndConnectionCap(t *testing.T) {
	srv := apnstest.NewServer(t, apnstest.Options{MaxConcurrentStreams: 5, Discard: true})
	srv.OnPush(func(apnstest.Notification) { time.Sleep(2 * time.Millisecond) })
	c, err := apns.New(apns.Config{
		Certificate: srv.ClientCertificate(t, topic), URL: srv.URL, Topic: topic,
		RootCAs: srv.RootCAs(), MaxConns: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var wg sync.WaitGroup
	errc := make(chan error, 200)
	for i := range 200 {
		wg.Go(func() {
			if err := c.Send(context.Background(), push.Target{Provider: push.APNs, Token: token(i), PushMagic: "m"}); err != nil {
				errc <- err
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	s := srv.Stats()
	if s.Requests != 200 || s.MaxStreams > 5 || s.Conns > 2 || s.Accepted > 2 || c.Conns() > 2 {
		t.Fatalf("stats %+v, client conns %d", s, c.Conns())
	}
	if s.MaxStreams < 2 {
		t.Fatalf("no concurrency at all: %+v", s)
	}
}

func TestReconnectsAfterServerDropsConnections(t *testing.T) {
	f := newFixture(t, apnstest.Options{}, 3, 5*time.Second)
	send := func() {
		t.Helper()
		if err := f.client.Send(context.Background(), push.Target{Provider: push.APNs, Token: token(12), PushMagic: "m"}); err != nil {
			t.Fatal(err)
		}
	}
	send()
	f.srv.DropConnections()
	send()
	if n := len(f.srv.Delivered()); n != 2 {
		t.Fatalf("delivered %d", n)
	}
	if s := f.srv.Stats(); s.Accepted != 2 || f.client.Conns() != 1 {
		t.Fatalf("stats %+v, client conns %d", s, f.client.Conns())
	}
}
