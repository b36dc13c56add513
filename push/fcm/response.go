package fcm

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/custos-uem/custos/push"
)

// errorBody is a Google API error (google.rpc.Status in JSON) as FCM sends
// it: https://firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode
//
//	{"error": {"code": 404, "message": "...", "status": "NOT_FOUND",
//	  "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
//	               "errorCode": "UNREGISTERED"},
//	              {"@type": "type.googleapis.com/google.rpc.BadRequest",
//	               "fieldViolations": [{"field": "message.token", "description": "..."}]}]}}
type errorBody struct {
	Error struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Status  string `json:"status"`
		Details []struct {
			Type            string `json:"@type"`
			ErrorCode       string `json:"errorCode"`
			FieldViolations []struct {
				Field string `json:"field"`
			} `json:"fieldViolations"`
		} `json:"details"`
	} `json:"error"`
}

// parseResponse turns an FCM answer into an error:
//
//   - 2xx: accepted.
//   - UNREGISTERED (404): the app instance is gone; push.ErrUnregistered.
//   - INVALID_ARGUMENT (400) about the token (a field violation on
//     message.token, or the "not a valid FCM registration token" message):
//     push.ErrUnregistered — the token can never work. INVALID_ARGUMENT
//     about anything else is our bug: permanent.
//   - QUOTA_EXCEEDED (429, status RESOURCE_EXHAUSTED), UNAVAILABLE (503),
//     INTERNAL (500): retryable, honouring Retry-After ("use exponential
//     backoff ... respect the Retry-After header", ErrorCode doc above).
//   - anything else: permanent.
func parseResponse(status int, h http.Header, body []byte, now time.Time, maxRetryAfter time.Duration) error {
	if status >= 200 && status < 300 {
		return nil
	}
	var eb errorBody
	_ = json.Unmarshal(body, &eb) // a malformed body still leaves the status
	code, tokenField := "", false
	for _, d := range eb.Error.Details {
		if d.ErrorCode != "" && code == "" {
			code = d.ErrorCode
		}
		for _, v := range d.FieldViolations {
			if v.Field == "message.token" {
				tokenField = true
			}
		}
	}
	reason := code
	if reason == "" {
		reason = eb.Error.Status
	}
	if !isWord(reason) {
		reason = ""
	}
	if reason == "" {
		reason = push.StatusReason(status)
	}
	switch {
	case code == "UNREGISTERED":
		return push.Unregistered(push.FCM, status, "UNREGISTERED")
	case status == http.StatusBadRequest && (code == "INVALID_ARGUMENT" || eb.Error.Status == "INVALID_ARGUMENT") &&
		(tokenField || strings.Contains(strings.ToLower(eb.Error.Message), "registration token")):
		return push.Unregistered(push.FCM, status, "INVALID_ARGUMENT")
	}
	pe := &push.ProviderError{Provider: push.FCM, Status: status, Reason: reason}
	switch status {
	case http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusServiceUnavailable:
		pe.Retryable = true
		if d, ok := push.ParseRetryAfter(h.Get("Retry-After"), now, maxRetryAfter); ok {
			pe.RetryAfter = d
		}
	}
	return pe
}

// isWord reports whether s looks like an FCM error code (UPPER_SNAKE), so
// that only such words reach logs and metrics.
func isWord(s string) bool {
	if len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}
