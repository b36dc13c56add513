package fcm_test

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/custos-uem/custos/push"
	"github.com/custos-uem/custos/push/fcm"
	"github.com/custos-uem/custos/push/fcm/fcmtest"
	"github.com/custos-uem/custos/push/pushtest"
)

var now = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

type fixture struct {
	srv    *fcmtest.Server
	client *fcm.Client
	sleep  *pushtest.Sleeper
	skew   atomic.Int64 // added to the client's token clock
}

func newFixture(t *testing.T, maxAttempts int, attemptTimeout time.Duration) *fixture {
	t.Helper()
	f := &fixture{srv: fcmtest.NewServer(t, fcmtest.Options{}), sleep: &pushtest.Sleeper{}}
	c, err := fcm.New(fcm.Config{
		ServiceAccountJSON: f.srv.ServiceAccountJSON(t),
		Endpoint:           f.srv.URL,
		HTTPClient:         f.srv.Client(),
		Retry:              pushtest.Policy(f.sleep, maxAttempts, attemptTimeout, now),
		Now:                func() time.Time { return time.Now().Add(time.Duration(f.skew.Load())) },
	})
	if err != nil {
		t.Fatal(err)
	}
	f.client = c
	return f
}

func target(tok string) push.Target { return push.Target{Provider: push.FCM, Token: tok} }

func TestSendShapeAndTokenCaching(t *testing.T) {
	f := newFixture(t, 3, 5*time.Second)
	got := make(chan fcmtest.Message, 2)
	f.srv.OnMessage(func(m fcmtest.Message) { got <- m })
	for range 2 {
		if err := f.client.Send(context.Background(), target("reg-token-1")); err != nil {
			t.Fatal(err)
		}
	}
	m := <-got
	if m.Token != "reg-token-1" || m.Priority != "HIGH" || m.Data["custos"] != "sync" || m.Project != fcmtest.DefaultProject {
		t.Fatalf("delivered %+v", m)
	}
	if s := f.srv.Stats(); s.TokensIssued != 1 || s.Sends != 2 {
		t.Fatalf("stats %+v: the access token was not reused", s)
	}
}

func TestTokenRefreshedBeforeExpiry(t *testing.T) {
	f := newFixture(t, 3, 5*time.Second)
	if err := f.client.Send(context.Background(), target("a")); err != nil {
		t.Fatal(err)
	}
	f.skew.Store(int64(time.Hour - time.Minute)) // inside the renewal margin
	if err := f.client.Send(context.Background(), target("a")); err != nil {
		t.Fatal(err)
	}
	if s := f.srv.Stats(); s.TokensIssued != 2 {
		t.Fatalf("stats %+v: token not renewed near expiry", s)
	}
}

func TestRevokedTokenRefreshedOnce(t *testing.T) {
	f := newFixture(t, 1, 5*time.Second)
	if err := f.client.Send(context.Background(), target("a")); err != nil {
		t.Fatal(err)
	}
	f.srv.RevokeTokens()
	if err := f.client.Send(context.Background(), target("a")); err != nil {
		t.Fatal(err)
	}
	if s := f.srv.Stats(); s.TokensIssued != 2 || s.Sends != 3 || len(f.sleep.Slept()) != 0 {
		t.Fatalf("stats %+v, slept %v", s, f.sleep.Slept())
	}
}

func TestUnregisteredAndInvalidToken(t *testing.T) {
	for name, fail := range map[string]fcmtest.Failure{"unregistered": fcmtest.Unregistered(), "invalid": fcmtest.InvalidToken()} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, 4, 5*time.Second)
			f.srv.Fail("dead", fail)
			err := f.client.Send(context.Background(), target("dead"))
			if !errors.Is(err, push.ErrUnregistered) {
				t.Fatalf("err = %v", err)
			}
			if s := f.srv.Stats(); s.Sends != 1 || len(f.sleep.Slept()) != 0 {
				t.Fatalf("stats %+v, slept %v", s, f.sleep.Slept())
			}
		})
	}
}

func TestQuotaExceededHonoursRetryAfter(t *testing.T) {
	f := newFixture(t, 4, 5*time.Second)
	f.srv.Fail("busy", fcmtest.QuotaExceeded("30", 1))
	if err := f.client.Send(context.Background(), target("busy")); err != nil {
		t.Fatal(err)
	}
	if s := f.sleep.Slept(); len(s) != 1 || s[0] != 30*time.Second {
		t.Fatalf("slept %v, want [30s]", s)
	}
	f.srv.Fail("busy", fcmtest.QuotaExceeded(now.Add(5*time.Second).Format(http.TimeFormat), 1))
	if err := f.client.Send(context.Background(), target("busy")); err != nil {
		t.Fatal(err)
	}
	if s := f.sleep.Slept(); len(s) != 2 || s[1] != 5*time.Second {
		t.Fatalf("slept %v, want [30s 5s]", s)
	}
}

func TestServerErrorsRetriedWithBackoff(t *testing.T) {
	f := newFixture(t, 4, 5*time.Second)
	f.srv.Fail("flaky", fcmtest.Unavailable(1))
	if err := f.client.Send(context.Background(), target("flaky")); err != nil {
		t.Fatal(err)
	}
	f.srv.Fail("flaky", fcmtest.Internal(2))
	if err := f.client.Send(context.Background(), target("flaky")); err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{187500 * time.Microsecond, 187500 * time.Microsecond, 375 * time.Millisecond}
	s := f.sleep.Slept()
	if len(s) != 3 || s[0] != want[0] || s[1] != want[1] || s[2] != want[2] {
		t.Fatalf("slept %v, want %v", s, want)
	}
	if len(f.srv.Delivered()) != 2 {
		t.Fatalf("delivered %d", len(f.srv.Delivered()))
	}
}

func TestTimeoutRetried(t *testing.T) {
	f := newFixture(t, 3, 300*time.Millisecond)
	// Fetch the access token first so that the hang hits the send.
	if err := f.client.Send(context.Background(), target("warm")); err != nil {
		t.Fatal(err)
	}
	f.srv.Fail("slow", fcmtest.Hang(1))
	if err := f.client.Send(context.Background(), target("slow")); err != nil {
		t.Fatal(err)
	}
	if s := f.sleep.Slept(); len(s) != 1 {
		t.Fatalf("slept %v", s)
	}
}

func TestPermanentFailureAfterMaxAttempts(t *testing.T) {
	f := newFixture(t, 3, 5*time.Second)
	f.srv.Fail("down", fcmtest.Unavailable(0))
	err := f.client.Send(context.Background(), target("down"))
	var pe *push.ProviderError
	if !errors.As(err, &pe) || pe.Status != 503 || pe.Reason != "UNAVAILABLE" {
		t.Fatalf("err = %v", err)
	}
	if f.srv.Stats().Sends != 3 {
		t.Fatalf("sends %d", f.srv.Stats().Sends)
	}
}

func TestContextCancelStopsRetries(t *testing.T) {
	f := newFixture(t, 10, 5*time.Second)
	f.srv.Fail("down", fcmtest.Internal(0))
	ctx, cancel := context.WithCancel(context.Background())
	f.sleep.OnSleep = func(time.Duration) { cancel() }
	if err := f.client.Send(ctx, target("down")); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if f.srv.Stats().Sends != 1 {
		t.Fatalf("sends %d", f.srv.Stats().Sends)
	}
}

func TestForeignServiceAccountRefusedAtTokenEndpoint(t *testing.T) {
	srv := fcmtest.NewServer(t, fcmtest.Options{})
	other, _ := fcmtest.NewServiceAccount(t, srv.TokenURL(), srv.Project())
	c, err := fcm.New(fcm.Config{ServiceAccountJSON: other, Endpoint: srv.URL, HTTPClient: srv.Client(),
		Retry: pushtest.Policy(&pushtest.Sleeper{}, 3, 5*time.Second, now)})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Send(context.Background(), target("a"))
	var pe *push.ProviderError
	if !errors.As(err, &pe) || pe.Status != 400 || pe.Retryable {
		t.Fatalf("err = %v", err)
	}
	if s := srv.Stats(); s.TokenRequests != 1 || s.TokensIssued != 0 || s.Sends != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestConfigErrors(t *testing.T) {
	if _, err := fcm.New(fcm.Config{}); !errors.Is(err, push.ErrNotConfigured) {
		t.Fatalf("err = %v", err)
	}
	if _, err := fcm.New(fcm.Config{ServiceAccountJSON: []byte(`{"type":"authorized_user"}`)}); err == nil {
		t.Fatal("accepted a non-service-account key file")
	}
	srv := fcmtest.NewServer(t, fcmtest.Options{})
	sa := srv.ServiceAccountJSON(t)
	if _, err := fcm.New(fcm.Config{ServiceAccountJSON: sa, Endpoint: "http://fcm.example"}); err == nil {
		t.Fatal("accepted a plain-http endpoint")
	}
	if _, err := fcm.New(fcm.Config{ServiceAccountJSON: sa, ProjectID: "../x"}); err == nil {
		t.Fatal("accepted a project ID with a path in it")
	}
	c, err := fcm.New(fcm.Config{ServiceAccountJSON: sa, Endpoint: srv.URL, HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Send(context.Background(), target("")); !errors.Is(err, push.ErrInvalidTarget) {
		t.Fatalf("empty token: err = %v", err)
	}
	big := map[string]string{"k": string(make([]byte, fcm.MaxDataSize))}
	if _, err := fcm.New(fcm.Config{ServiceAccountJSON: sa, Data: big}); err == nil {
		t.Fatal("accepted a data payload over the limit")
	}
}
