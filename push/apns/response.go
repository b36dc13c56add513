package apns

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/custos-uem/custos/push"
)

// errorBody is the JSON body of an APNs error response. Timestamp (ms since
// the epoch) is present with 410: when APNs learned the token was invalid.
type errorBody struct {
	Reason    string `json:"reason"`
	Timestamp int64  `json:"timestamp"`
}

// parseResponse turns an APNs answer into an error, per the table of status
// codes and reasons in
// https://developer.apple.com/documentation/usernotifications/handling-notification-responses-from-apns
//
//   - 200: accepted.
//   - 410 (Unregistered, ExpiredToken): the token is dead;
//     push.ErrUnregistered, never retried.
//   - 400 BadDeviceToken is a permanent error but not a dead token: Apple
//     answers it also when the token belongs to the other environment
//     (sandbox or production), so a Core pointed at the wrong endpoint
//     would otherwise erase every device's token.
//   - 429 TooManyRequests (same device token too often), 500
//     InternalServerError, 503 ServiceUnavailable/Shutdown: retryable; a
//     Retry-After header, if any, is honoured.
//   - anything else (bad topic, payload too large, bad certificate...): a
//     permanent *push.ProviderError.
func parseResponse(status int, h http.Header, body []byte, now time.Time, maxRetryAfter time.Duration) error {
	if status == http.StatusOK {
		return nil
	}
	var eb errorBody
	_ = json.Unmarshal(body, &eb) // a malformed body still leaves the status
	reason := eb.Reason
	if len(reason) > 64 || !isToken(reason) { // the reason is a CamelCase word; keep logs clean
		reason = ""
	}
	if reason == "" {
		reason = push.StatusReason(status)
	}
	switch {
	case status == http.StatusGone:
		return push.Unregistered(push.APNs, status, reason)
	}
	pe := &push.ProviderError{Provider: push.APNs, Status: status, Reason: reason}
	switch status {
	case http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusServiceUnavailable,
		// Not sent by APNs itself, but by a proxy on the way when APNs is
		// unreachable: transient too.
		http.StatusBadGateway, http.StatusGatewayTimeout:
		pe.Retryable = true
		if d, ok := push.ParseRetryAfter(h.Get("Retry-After"), now, maxRetryAfter); ok {
			pe.RetryAfter = d
		}
	}
	return pe
}
