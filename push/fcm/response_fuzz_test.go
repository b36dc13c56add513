package fcm

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/custos-uem/custos/push"
)

// FuzzParseResponse: any status, Retry-After and body parse without panic
// into nil (2xx only) or a *push.ProviderError with a clean reason and a
// bounded retry delay.
func FuzzParseResponse(f *testing.F) {
	f.Add(200, "", []byte(`{"name":"projects/p/messages/1"}`))
	f.Add(404, "", []byte(`{"error":{"code":404,"message":"Requested entity was not found.","status":"NOT_FOUND","details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"UNREGISTERED"}]}}`))
	f.Add(400, "", []byte(`{"error":{"code":400,"status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":[{"field":"message.token"}]}]}}`))
	f.Add(429, "10", []byte(`{"error":{"code":429,"status":"RESOURCE_EXHAUSTED","details":[{"errorCode":"QUOTA_EXCEEDED"}]}}`))
	f.Add(503, "", []byte(`{"error":{"details":[{"errorCode":"UN AVAILABLE\n"}]}}`))
	f.Add(500, "x", []byte(`{"error":`))
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, status int, retryAfter string, body []byte) {
		h := http.Header{}
		h.Set("Retry-After", retryAfter)
		err := parseResponse(status, h, body, now, push.MaxRetryAfter)
		if status >= 200 && status < 300 {
			if err != nil {
				t.Fatal(err)
			}
			return
		}
		var pe *push.ProviderError
		if !errors.As(err, &pe) {
			t.Fatalf("status %d: %v is not a ProviderError", status, err)
		}
		if pe.RetryAfter < 0 || pe.RetryAfter > push.MaxRetryAfter || pe.Reason == "" || len(pe.Reason) > 64 {
			t.Fatalf("status %d: %+v", status, pe)
		}
		if errors.Is(err, push.ErrUnregistered) && pe.Retryable {
			t.Fatal("an unregistered token is retryable")
		}
	})
}
