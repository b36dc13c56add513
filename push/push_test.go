package push_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/push"
	"github.com/custos-uem/custos/push/pushtest"
)

type recMetrics struct {
	mu      sync.Mutex
	sends   []string
	retries []string
}

func (m *recMetrics) ObserveSend(provider, outcome string, _ time.Duration) {
	m.mu.Lock()
	m.sends = append(m.sends, provider+":"+outcome)
	m.mu.Unlock()
}

func (m *recMetrics) ObserveRetry(provider, reason string) {
	m.mu.Lock()
	m.retries = append(m.retries, provider+":"+reason)
	m.mu.Unlock()
}

func TestRouterDispatches(t *testing.T) {
	var got []push.Target
	apns := push.SenderFunc(func(_ context.Context, t push.Target) error { got = append(got, t); return nil })
	fcm := push.SenderFunc(func(context.Context, push.Target) error { return push.Unregistered(push.FCM, 404, "UNREGISTERED") })
	m := &recMetrics{}
	r := push.NewRouter(map[string]push.Sender{push.APNs: apns, push.FCM: fcm, push.WNS: nil}, m)
	ctx := context.Background()
	if err := r.Send(ctx, push.Target{Provider: push.APNs, Token: "t"}); err != nil || len(got) != 1 || got[0].Token != "t" {
		t.Fatalf("apns: %v %v", err, got)
	}
	if err := r.Send(ctx, push.Target{Provider: push.FCM}); !errors.Is(err, push.ErrUnregistered) || errs.KindOf(err) != errs.NotFound {
		t.Fatalf("fcm: %v", err)
	}
	if err := r.Send(ctx, push.Target{Provider: push.WNS}); !errors.Is(err, push.ErrNotConfigured) || errs.KindOf(err) != errs.Unavailable {
		t.Fatalf("wns: %v", err)
	}
	if err := r.Send(ctx, push.Target{Provider: "smoke-signals"}); !errors.Is(err, push.ErrInvalidTarget) {
		t.Fatalf("unknown: %v", err)
	}
	want := "apns:ok fcm:unregistered wns:not_configured"
	if s := strings.Join(m.sends, " "); s != want {
		t.Fatalf("metrics %q, want %q", s, want)
	}
}

func TestPrometheusMetricsRegister(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := push.NewPrometheusMetrics(reg)
	r := push.NewRouter(map[string]push.Sender{push.APNs: push.SenderFunc(func(context.Context, push.Target) error { return nil })}, m)
	_ = r.Send(context.Background(), push.Target{Provider: push.APNs})
	m.ObserveRetry(push.APNs, "throttled")
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, n := range []string{"custos_push_sends_total", "custos_push_send_duration_seconds", "custos_push_retries_total"} {
		if !names[n] {
			t.Errorf("metric %s missing", n)
		}
	}
}

func retryable(status int, ra time.Duration) error {
	return &push.ProviderError{Provider: "x", Status: status, Reason: "r", Retryable: true, RetryAfter: ra}
}

func TestRetryPolicy(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	t.Run("backoff grows, is capped, and jitters", func(t *testing.T) {
		p := push.RetryPolicy{BaseDelay: 100 * time.Millisecond, MaxDelay: time.Second, Rand: func() float64 { return 0 }}
		want := []time.Duration{50, 100, 200, 400, 500, 500}
		for i, w := range want {
			if got := p.Backoff(i + 1); got != w*time.Millisecond {
				t.Errorf("Backoff(%d) = %v, want %v", i+1, got, w*time.Millisecond)
			}
		}
		p.Rand = func() float64 { return 0.999999 }
		if got := p.Backoff(10); got <= 999*time.Millisecond || got > time.Second {
			t.Errorf("Backoff(10) with max jitter = %v", got)
		}
	})
	t.Run("retry-after wins over backoff and is capped", func(t *testing.T) {
		sl := &pushtest.Sleeper{}
		p := pushtest.Policy(sl, 3, time.Second, t0)
		p.MaxRetryAfter = 10 * time.Second
		m := &recMetrics{}
		p.Metrics = m
		n := 0
		err := p.Do(context.Background(), "x", func(context.Context) error {
			n++
			if n == 1 {
				return retryable(429, 5*time.Second)
			}
			if n == 2 {
				return retryable(503, time.Hour)
			}
			return nil
		})
		if err != nil || n != 3 {
			t.Fatalf("err %v after %d", err, n)
		}
		if s := sl.Slept(); len(s) != 2 || s[0] != 5*time.Second || s[1] != 10*time.Second {
			t.Fatalf("slept %v", s)
		}
		if strings.Join(m.retries, " ") != "x:throttled x:server_error" {
			t.Fatalf("retries %v", m.retries)
		}
	})
	t.Run("permanent errors are returned at once", func(t *testing.T) {
		sl := &pushtest.Sleeper{}
		p := pushtest.Policy(sl, 5, time.Second, t0)
		for _, e := range []error{push.Unregistered("x", 410, "Unregistered"), &push.ProviderError{Status: 400}, errors.New("bug")} {
			n := 0
			err := p.Do(context.Background(), "x", func(context.Context) error { n++; return e })
			if !errors.Is(err, e) || n != 1 {
				t.Fatalf("%v: err %v after %d", e, err, n)
			}
		}
		if len(sl.Slept()) != 0 {
			t.Fatalf("slept %v", sl.Slept())
		}
	})
	t.Run("attempt timeout is retryable, max attempts bound", func(t *testing.T) {
		sl := &pushtest.Sleeper{}
		p := pushtest.Policy(sl, 3, 10*time.Millisecond, t0)
		n := 0
		err := p.Do(context.Background(), "x", func(ctx context.Context) error { n++; <-ctx.Done(); return ctx.Err() })
		var pe *push.ProviderError
		if !errors.As(err, &pe) || pe.Reason != "timeout" || n != 3 || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err %v after %d", err, n)
		}
	})
	t.Run("a done context stops", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		n := 0
		err := pushtest.Policy(&pushtest.Sleeper{}, 3, time.Second, t0).Do(ctx, "x", func(context.Context) error { n++; return nil })
		if !errors.Is(err, context.Canceled) || n != 0 {
			t.Fatalf("err %v after %d", err, n)
		}
	})
	t.Run("real sleep respects ctx", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		if err := push.SleepContext(ctx, time.Hour); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatal(err)
		}
	})
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"0", 0, true},
		{"120", 60 * time.Second, true},
		{"5", 5 * time.Second, true},
		{"-1", 0, false},
		{"1.5", 0, false},
		{"99999999999999999999", 0, false},
		{"9223372036854775807", 60 * time.Second, true},
		{now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second, true},
		{now.Add(-30 * time.Second).Format(http.TimeFormat), 0, true},
		{"Fri, 31 Dec 9999 23:59:59 GMT", 60 * time.Second, true},
		{"soon", 0, false},
	} {
		got, ok := push.ParseRetryAfter(tc.in, now, push.MaxRetryAfter)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"", "0", "120", "-1", "Fri, 31 Dec 9999 23:59:59 GMT", "Mon, 02 Jan 2006 15:04:05 GMT", "9223372036854775807"} {
		f.Add(s)
	}
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := push.ParseRetryAfter(s, now, push.MaxRetryAfter)
		if d < 0 || d > push.MaxRetryAfter || (!ok && d != 0) {
			t.Fatalf("ParseRetryAfter(%q) = %v, %v", s, d, ok)
		}
	})
}

func TestProviderErrorMessage(t *testing.T) {
	e := push.TransportError("apns", &urlErr)
	if strings.Contains(e.Error(), "deadbeef") {
		t.Fatalf("token leaked into %q", e.Error())
	}
}

var urlErr = url.Error{Op: "Post", URL: "https://api.push.apple.com/3/device/deadbeef", Err: errors.New("connection reset")}
