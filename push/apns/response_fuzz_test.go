package apns

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/custos-uem/custos/push"
)

// FuzzParseResponse: any status, Retry-After and body parse without panic
// into nil (200 only), ErrUnregistered or a *push.ProviderError with a
// bounded retry delay.
func FuzzParseResponse(f *testing.F) {
	f.Add(200, "", []byte(nil))
	f.Add(410, "", []byte(`{"reason":"Unregistered","timestamp":1700000000000}`))
	f.Add(400, "", []byte(`{"reason":"BadDeviceToken"}`))
	f.Add(429, "30", []byte(`{"reason":"TooManyRequests"}`))
	f.Add(503, "Fri, 31 Dec 9999 23:59:59 GMT", []byte(`{"reason":"Shutdown"}`))
	f.Add(500, "", []byte(`{"reason":`))
	f.Add(403, "", []byte("\x00\xff"))
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, status int, retryAfter string, body []byte) {
		h := http.Header{}
		h.Set("Retry-After", retryAfter)
		err := parseResponse(status, h, body, now, push.MaxRetryAfter)
		if status == 200 {
			if err != nil {
				t.Fatal(err)
			}
			return
		}
		var pe *push.ProviderError
		if !errors.As(err, &pe) {
			t.Fatalf("status %d: %v is not a ProviderError", status, err)
		}
		if pe.RetryAfter < 0 || pe.RetryAfter > push.MaxRetryAfter || pe.Reason == "" || !isToken(pe.Reason) {
			t.Fatalf("status %d: %+v", status, pe)
		}
		if errors.Is(err, push.ErrUnregistered) && pe.Retryable {
			t.Fatal("an unregistered token is retryable")
		}
	})
}
