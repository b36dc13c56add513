package wns_test

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/custos-uem/custos/push"
	"github.com/custos-uem/custos/push/pushtest"
	"github.com/custos-uem/custos/push/wns"
	"github.com/custos-uem/custos/push/wns/wnstest"
)

var now = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

type fixture struct {
	srv    *wnstest.Server
	client *wns.Client
	sleep  *pushtest.Sleeper
	skew   atomic.Int64
}

func newFixture(t *testing.T, maxAttempts int, attemptTimeout time.Duration) *fixture {
	t.Helper()
	f := &fixture{srv: wnstest.NewServer(t, wnstest.Options{}), sleep: &pushtest.Sleeper{}}
	c, err := wns.New(wns.Config{
		PackageSID: wnstest.DefaultSID, ClientSecret: wnstest.DefaultSecret,
		TokenURL: f.srv.TokenURL(), AllowHosts: []string{f.srv.Host()}, HTTPClient: f.srv.Client(),
		Retry: pushtest.Policy(f.sleep, maxAttempts, attemptTimeout, now),
		Now:   func() time.Time { return time.Now().Add(time.Duration(f.skew.Load())) },
	})
	if err != nil {
		t.Fatal(err)
	}
	f.client = c
	return f
}

func (f *fixture) target(tok string) push.Target {
	return push.Target{Provider: push.WNS, Token: f.srv.ChannelURI(tok)}
}

func TestSendShapeAndTokenCaching(t *testing.T) {
	f := newFixture(t, 3, 5*time.Second)
	got := make(chan wnstest.Notification, 2)
	f.srv.OnPush(func(n wnstest.Notification) { got <- n })
	for range 2 {
		if err := f.client.Send(context.Background(), f.target("ch1")); err != nil {
			t.Fatal(err)
		}
	}
	n := <-got
	if n.Channel != "ch1" || n.Type != "wns/raw" || n.CachePolicy != "cache" || string(n.Payload) != string(wns.DefaultPayload) {
		t.Fatalf("delivered %+v", n)
	}
	if s := f.srv.Stats(); s.TokensIssued != 1 || s.Sends != 2 {
		t.Fatalf("stats %+v", s)
	}
	f.skew.Store(int64(24*time.Hour - time.Minute))
	if err := f.client.Send(context.Background(), f.target("ch1")); err != nil {
		t.Fatal(err)
	}
	if s := f.srv.Stats(); s.TokensIssued != 2 {
		t.Fatalf("stats %+v: token not renewed near expiry", s)
	}
}

func TestExpiredTokenRefreshedOnce(t *testing.T) {
	f := newFixture(t, 1, 5*time.Second)
	if err := f.client.Send(context.Background(), f.target("ch")); err != nil {
		t.Fatal(err)
	}
	f.srv.ExpireTokens()
	if err := f.client.Send(context.Background(), f.target("ch")); err != nil {
		t.Fatal(err)
	}
	if s := f.srv.Stats(); s.TokensIssued != 2 || s.Sends != 3 {
		t.Fatalf("stats %+v", s)
	}
}

func TestChannelGoneIsUnregistered(t *testing.T) {
	for name, fail := range map[string]wnstest.Failure{"410": wnstest.Expired(), "404": {Status: 404}} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, 4, 5*time.Second)
			f.srv.Fail("gone", fail)
			err := f.client.Send(context.Background(), f.target("gone"))
			if !errors.Is(err, push.ErrUnregistered) {
				t.Fatalf("err = %v", err)
			}
			if f.srv.Stats().Sends != 1 || len(f.sleep.Slept()) != 0 {
				t.Fatalf("sends %d, slept %v", f.srv.Stats().Sends, f.sleep.Slept())
			}
		})
	}
}

func TestThrottledHonoursRetryAfter(t *testing.T) {
	f := newFixture(t, 4, 5*time.Second)
	f.srv.Fail("busy", wnstest.Throttled("9", 1))
	if err := f.client.Send(context.Background(), f.target("busy")); err != nil {
		t.Fatal(err)
	}
	f.srv.Fail("busy", wnstest.Failure{Status: 429, RetryAfter: now.Add(3 * time.Second).Format(http.TimeFormat), Times: 1})
	if err := f.client.Send(context.Background(), f.target("busy")); err != nil {
		t.Fatal(err)
	}
	if s := f.sleep.Slept(); len(s) != 2 || s[0] != 9*time.Second || s[1] != 3*time.Second {
		t.Fatalf("slept %v, want [9s 3s]", s)
	}
}

func TestServerErrorsRetriedWithBackoff(t *testing.T) {
	f := newFixture(t, 4, 5*time.Second)
	f.srv.Fail("flaky", wnstest.ServerError(503, 2))
	if err := f.client.Send(context.Background(), f.target("flaky")); err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{187500 * time.Microsecond, 375 * time.Millisecond}
	if s := f.sleep.Slept(); len(s) != 2 || s[0] != want[0] || s[1] != want[1] {
		t.Fatalf("slept %v, want %v", s, want)
	}
}

func TestTimeoutRetried(t *testing.T) {
	f := newFixture(t, 3, 300*time.Millisecond)
	if err := f.client.Send(context.Background(), f.target("warm")); err != nil {
		t.Fatal(err)
	}
	f.srv.Fail("slow", wnstest.Hang(1))
	if err := f.client.Send(context.Background(), f.target("slow")); err != nil {
		t.Fatal(err)
	}
	if s := f.sleep.Slept(); len(s) != 1 {
		t.Fatalf("slept %v", s)
	}
}

func TestPermanentFailureAfterMaxAttempts(t *testing.T) {
	f := newFixture(t, 3, 5*time.Second)
	f.srv.Fail("down", wnstest.ServerError(500, 0))
	err := f.client.Send(context.Background(), f.target("down"))
	var pe *push.ProviderError
	if !errors.As(err, &pe) || pe.Status != 500 || !pe.Retryable {
		t.Fatalf("err = %v", err)
	}
	if f.srv.Stats().Sends != 3 {
		t.Fatalf("sends %d", f.srv.Stats().Sends)
	}
}

func TestContextCancelStopsRetries(t *testing.T) {
	f := newFixture(t, 10, 5*time.Second)
	f.srv.Fail("down", wnstest.ServerError(503, 0))
	ctx, cancel := context.WithCancel(context.Background())
	f.sleep.OnSleep = func(time.Duration) { cancel() }
	if err := f.client.Send(ctx, f.target("down")); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if f.srv.Stats().Sends != 1 {
		t.Fatalf("sends %d", f.srv.Stats().Sends)
	}
}

func TestWrongCredentialsArePermanent(t *testing.T) {
	srv := wnstest.NewServer(t, wnstest.Options{})
	c, err := wns.New(wns.Config{PackageSID: wnstest.DefaultSID, ClientSecret: "wrong", TokenURL: srv.TokenURL(),
		AllowHosts: []string{srv.Host()}, HTTPClient: srv.Client(), Retry: pushtest.Policy(&pushtest.Sleeper{}, 3, 5*time.Second, now)})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Send(context.Background(), push.Target{Provider: push.WNS, Token: srv.ChannelURI("x")})
	var pe *push.ProviderError
	if !errors.As(err, &pe) || pe.Status != 400 || pe.Retryable {
		t.Fatalf("err = %v", err)
	}
	if s := srv.Stats(); s.TokenRequests != 1 || s.Sends != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// TestChannelURISSRFGuard: a device supplies its channel URI, so the Core
// must refuse to POST anywhere but WNS.
func TestChannelURISSRFGuard(t *testing.T) {
	f := newFixture(t, 3, 5*time.Second)
	for _, bad := range []string{
		"http://db5p.notify.windows.com/?token=x",          // not https
		"https://169.254.169.254/latest/meta-data",         // metadata address
		"https://127.0.0.1:8080/?token=x",                  // loopback
		"https://notify.windows.com.evil.example/?token=x", // suffix trick
		"https://evilnotify.windows.com/?token=x",          // not a subdomain
		"https://.notify.windows.com/?token=x",             // empty label
		"https://user@db5p.notify.windows.com/?token=x",    // userinfo
		"https://db5p.notify.windows.com:8443/?token=x",    // odd port
		"https://db5p.notify.windows.com/?token=x#frag",
		"//db5p.notify.windows.com/?token=x",
		"",
	} {
		if err := f.client.Send(context.Background(), push.Target{Provider: push.WNS, Token: bad}); !errors.Is(err, push.ErrInvalidTarget) {
			t.Errorf("%q: err = %v, want ErrInvalidTarget", bad, err)
		}
	}
	if f.srv.Stats().Sends != 0 || f.srv.Stats().TokenRequests != 0 {
		t.Fatalf("stats %+v", f.srv.Stats())
	}
	for _, good := range []string{"https://db5p.notify.windows.com/?token=AwYAAAB", "https://DB5P.Notify.Windows.com:443/?token=x"} {
		if _, err := wns.CheckChannelURI(good, nil); err != nil {
			t.Errorf("%q refused: %v", good, err)
		}
	}
}

// TestDefaultClientRefusesPrivateAddresses checks the dial-time guard of the
// default HTTP client: even an allowed host that resolves to loopback is
// not connected to.
func TestDefaultClientRefusesPrivateAddresses(t *testing.T) {
	srv := wnstest.NewServer(t, wnstest.Options{})
	c, err := wns.New(wns.Config{PackageSID: wnstest.DefaultSID, ClientSecret: wnstest.DefaultSecret,
		TokenURL: srv.TokenURL(), AllowHosts: []string{srv.Host()},
		Retry: pushtest.Policy(&pushtest.Sleeper{}, 1, 5*time.Second, now)})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Send(context.Background(), push.Target{Provider: push.WNS, Token: srv.ChannelURI("x")})
	if err == nil || srv.Stats().TokenRequests != 0 {
		t.Fatalf("err = %v, stats %+v", err, srv.Stats())
	}
}

func TestConfigErrors(t *testing.T) {
	if _, err := wns.New(wns.Config{}); !errors.Is(err, push.ErrNotConfigured) {
		t.Fatalf("err = %v", err)
	}
	if _, err := wns.New(wns.Config{PackageSID: "a", ClientSecret: "b", Payload: make([]byte, wns.MaxPayloadSize+1)}); err == nil {
		t.Fatal("accepted an oversized payload")
	}
	if _, err := wns.New(wns.Config{PackageSID: "a", ClientSecret: "b", TokenURL: "http://login.example/t"}); err == nil {
		t.Fatal("accepted a plain-http token URL")
	}
}
