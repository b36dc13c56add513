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
		{name: "fail/HTML from a proxy", status: 502, body: "<html><body>Bad Gateway</body></html>", want: "http_502: Bad Gateway (HTTP 502)"},
		{name: "fail/plain text", status: 500, body: "upstream\nexploded", want: "http_500: Internal Server Error: upstream exploded (HTTP 500)"},
		{name: "fail/JSON without code", status: 400, body: `{"error":{}}`, header: map[string]string{"X-Request-Id": "r1"}, want: `http_400: Bad Request: {"error":{}} (HTTP 400, request ID r1)`},
		{
			name: "fail/terminal escapes from the Core are quoted", status: 400, header: map[string]string{"X-Request-Id": "r\x1b2"},
			body: `{"error":{"code":"bad","message":"a\u001b[31mb"}}`,
			want: `bad: "a\x1b[31mb" (HTTP 400, request ID "r\x1b2")`,
		},
		{
			name: "ok/error body with fields and retry", status: 503, header: map[string]string{"Retry-After": "30", "X-Request-Id": "hdr"},
			body:      `{"error":{"code":"too_busy","message":"later","request_id":"1a2b","fields":{"b":"x","a":"y"}}}`,
			want:      "too_busy: later (HTTP 503, request ID 1a2b)\n  a: y\n  b: x",
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
		name    string
		err     error
		want    bool
		wantMsg string
	}{
		{name: "fail/connection refused", err: &net.OpError{Op: "dial", Err: errors.New("connection refused")}, want: false},
		{name: "fail/server's certificate untrusted", err: errors.New("tls: failed to verify certificate: x509: certificate signed by unknown authority"), want: false},
		{name: "fail/other alert", err: remote("tls: internal error"), want: false},
		{name: "fail/503", err: &ServerError{Status: 503}, want: false},
		{name: "fail/404", err: &ServerError{Status: 404}, want: false},
		{name: "fail/403 device mismatch", err: &ServerError{Status: 403, Code: "device_mismatch"}, want: false},
		{name: "ok/bad certificate", err: remote("tls: bad certificate"), want: true,
			wantMsg: "check-in refused: the device was removed or its certificate revoked (TLS alert: bad certificate); activate it again"},
		{name: "ok/revoked", err: remote("tls: revoked certificate"), want: true},
		{name: "ok/certificate required", err: remote("tls: certificate required"), want: true},
		{name: "ok/401", err: fmt.Errorf("wrapped: %w", &ServerError{Status: http.StatusUnauthorized, Code: "client_certificate_unknown"}), want: true},
		{name: "ok/403", err: &ServerError{Status: http.StatusForbidden, Code: "device_removed"}, want: true},
		{name: "ok/401 certificate revoked", err: &ServerError{Status: http.StatusUnauthorized, Code: "certificate_revoked", Message: "the device certificate is revoked", RequestID: "1a2b"}, want: true,
			wantMsg: "check-in refused: the device was removed or its certificate revoked (certificate_revoked, HTTP 401, request ID 1a2b); activate it again"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			re, got := refusal("check-in", tt.err)
			if got != tt.want || (re != nil) != tt.want {
				t.Fatalf("refusal = %v (%v), want %v", got, re, tt.want)
			}
			if !got {
				return
			}
			if !errors.Is(re, ErrRefused) || errors.Is(re, ErrNotActivated) {
				t.Fatalf("%v: errors.Is ErrRefused %v", re, errors.Is(re, ErrRefused))
			}
			if !errors.Is(re, tt.err) && !errors.Is(re, errors.Unwrap(tt.err)) {
				t.Fatalf("%v does not wrap its cause %v", re, tt.err)
			}
			if !strings.Contains(re.Error(), "the device was removed") {
				t.Fatalf("message %q does not say the device was removed", re)
			}
			if tt.wantMsg != "" && re.Error() != tt.wantMsg {
				t.Fatalf("message\n got %q\nwant %q", re, tt.wantMsg)
			}
		})
	}
}

func TestRefusedError(t *testing.T) {
	at := time.Date(2025, 3, 4, 5, 6, 7, 0, time.FixedZone("X", 3600))
	tests := []struct {
		name string
		err  *RefusedError
		want string
	}{
		{
			name: "ok/HTTP refusal",
			err:  &RefusedError{Refusal: Refusal{Step: "check-in", Reason: reasonRemoved, Code: "certificate_revoked", Status: 401, RequestID: "1a2b"}},
			want: "check-in refused: the device was removed or its certificate revoked (certificate_revoked, HTTP 401, request ID 1a2b); activate it again",
		},
		{
			name: "ok/recorded refusal names its time",
			err:  &RefusedError{Refusal: Refusal{At: at, Step: "acknowledgment", Reason: reasonRemoved, Code: "device_removed", Status: 403}, Recorded: true},
			want: "acknowledgment refused at 2025-03-04T04:06:07Z: the device was removed or its certificate revoked (device_removed, HTTP 403); activate it again",
		},
		{
			name: "ok/live refusal does not name its time",
			err:  &RefusedError{Refusal: Refusal{At: at, Step: "check-in", Reason: "the Core reports the device removed"}},
			want: "check-in refused: the Core reports the device removed; activate it again",
		},
		{
			name: "ok/recorded refusal without details",
			err:  &RefusedError{Recorded: true},
			want: "check-in refused: the device was removed or its certificate revoked; activate it again",
		},
		{
			name: "fail/a code with terminal escapes is quoted",
			err:  &RefusedError{Refusal: Refusal{Step: "check-in", Reason: reasonRemoved, Code: "x\x1b[2J", Status: 401}},
			want: `check-in refused: the device was removed or its certificate revoked ("x\x1b[2J", HTTP 401); activate it again`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Fatalf("got  %q\nwant %q", got, tt.want)
			}
			if !errors.Is(tt.err, ErrRefused) {
				t.Fatal("not ErrRefused")
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
