package agent

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	wire "github.com/custos-uem/custos/platform/agent"
)

func TestServerError(t *testing.T) {
	tests := []struct {
		name      string
		status    int
		header    map[string]string
		body      string
		want      string
		wantRetry time.Duration
	}{
		{name: "fail/HTML from a proxy", status: 502, body: "<html><body>Bad Gateway</body></html>", want: "http_502: Bad Gateway [HTTP 502]"},
		{name: "fail/plain text", status: 500, body: "upstream\nexploded", want: "http_500: Internal Server Error: upstream exploded [HTTP 500]"},
		{name: "fail/JSON without code", status: 400, body: `{"error":{}}`, header: map[string]string{"X-Request-Id": "r1"}, want: `http_400: Bad Request: {"error":{}} (request r1) [HTTP 400]`},
		{
			name: "ok/error body with fields and retry", status: 503, header: map[string]string{"Retry-After": "30", "X-Request-Id": "hdr"},
			body:      `{"error":{"code":"too_busy","message":"later","request_id":"1a2b","fields":{"b":"x","a":"y"}}}`,
			want:      "too_busy: later (a: y, b: x) (request 1a2b) [HTTP 503]",
			wantRetry: 30 * time.Second,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			for k, v := range tt.header {
				rec.Header().Set(k, v)
			}
			rec.WriteHeader(tt.status)
			e := serverError(rec.Result(), []byte(tt.body))
			if e.Error() != tt.want || e.RetryAfter != tt.wantRetry {
				t.Fatalf("got %q retry %v\nwant %q retry %v", e.Error(), e.RetryAfter, tt.want, tt.wantRetry)
			}
		})
	}
}

func TestRefusal(t *testing.T) {
	remote := func(msg string) error {
		return &url.Error{Op: "Post", URL: "https://x" + wire.PathCheckin, Err: &net.OpError{Op: "remote error", Err: errors.New(msg)}}
	}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{name: "fail/connection refused", err: &net.OpError{Op: "dial", Err: errors.New("connection refused")}, want: false},
		{name: "fail/server's certificate untrusted", err: errors.New("tls: failed to verify certificate: x509: certificate signed by unknown authority"), want: false},
		{name: "fail/other alert", err: remote("tls: internal error"), want: false},
		{name: "fail/503", err: &ServerError{Status: 503}, want: false},
		{name: "fail/404", err: &ServerError{Status: 404}, want: false},
		{name: "fail/403 device mismatch", err: &ServerError{Status: 403, Code: "device_mismatch"}, want: false},
		{name: "ok/bad certificate", err: remote("tls: bad certificate"), want: true},
		{name: "ok/revoked", err: remote("tls: revoked certificate"), want: true},
		{name: "ok/certificate required", err: remote("tls: certificate required"), want: true},
		{name: "ok/401", err: fmt.Errorf("wrapped: %w", &ServerError{Status: http.StatusUnauthorized, Code: "client_certificate_unknown"}), want: true},
		{name: "ok/403", err: &ServerError{Status: http.StatusForbidden, Code: "device_removed"}, want: true},
		{name: "ok/401 certificate revoked", err: &ServerError{Status: http.StatusUnauthorized, Code: "certificate_revoked"}, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err, got := refusal(tt.err)
			if got != tt.want || errors.Is(err, ErrRefused) != tt.want {
				t.Fatalf("refusal = %v (%v), want %v", got, err, tt.want)
			}
			if got && !strings.Contains(err.Error(), "removed") {
				t.Fatalf("message %q does not say the device was removed", err)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	c, err := New(Options{Store: NewMemStore()})
	if err != nil {
		t.Fatal(err)
	}
	prevMax := time.Duration(0)
	for n := 1; n <= 20; n++ {
		d := c.backoff(n)
		base := min(BackoffMin<<min(n-1, 30), BackoffMax)
		lo := time.Duration(float64(base) * 0.8)
		if d < lo || d > BackoffMax || d > time.Duration(float64(base)*1.2) {
			t.Fatalf("backoff(%d) = %v, base %v", n, d, base)
		}
		prevMax = max(prevMax, d)
	}
	if prevMax > BackoffMax {
		t.Fatalf("over the cap: %v", prevMax)
	}
}

func TestStatuses(t *testing.T) {
	items := []wire.Item{{ID: "a"}, {ID: "b"}, {ID: "c"}}
	got := statuses(items, []wire.ItemStatus{
		{ID: "a", Status: StatusApplied},
		{ID: "x", Status: StatusApplied}, // wrong ID
		// c missing
	})
	if len(got) != 3 || got[0].Status != StatusApplied || got[1].Status != StatusFailed || got[2].Status != StatusFailed {
		t.Fatalf("statuses = %+v", got)
	}
	if got[1].ID != "b" || got[2].ID != "c" {
		t.Fatalf("IDs = %+v", got)
	}
	if statuses(nil, nil) != nil {
		t.Fatal("no items, some statuses")
	}
}
