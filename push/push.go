// Package push sends wake-up hints to devices through the platform push
// services: APNs (push/apns), FCM (push/fcm) and WNS (push/wns).
//
// A push is only a hint. It tells a device "something is pending, come and
// ask"; the device then polls the Core, and scheduled polling guarantees
// that nothing is lost when a push is. So a Sender does not queue or persist
// anything: it tries a bounded number of times, honours the provider's
// back-pressure (429 + Retry-After), and reports the one outcome the Core
// must act on, ErrUnregistered (forget the token), distinctly.
//
// The provider clients share the retry policy of this package (RetryPolicy)
// and its error types, and the Router dispatches a Target to the client of
// its provider.
package push

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/custos-uem/custos/errs"
)

// Provider names, the values of Target.Provider.
const (
	APNs = "apns"
	FCM  = "fcm"
	WNS  = "wns"
)

// Target is where a push goes. The device reported these values to the Core
// when it enrolled or refreshed its push registration.
type Target struct {
	// Provider is one of APNs, FCM, WNS.
	Provider string
	// Token is the APNs device token (hex), the FCM registration token,
	// or the WNS channel URI.
	Token string
	// Topic is the APNs topic: for MDM the push certificate's UID
	// ("com.apple.mgmt.External.<uuid>"), for an app its bundle ID.
	Topic string
	// PushMagic is the Apple MDM PushMagic string from TokenUpdate. When
	// set, the APNs client sends an MDM push ({"mdm": PushMagic}).
	PushMagic string
}

// Sender delivers a push hint to one target.
//
// Send returns nil when the provider accepted the notification, an error
// wrapping ErrUnregistered when the provider says the token is gone for good,
// ErrNotConfigured when no credentials exist for the provider, and otherwise
// an error that may wrap a *ProviderError. Send respects ctx: when it is
// done, Send stops retrying and returns an error wrapping ctx.Err().
type Sender interface {
	Send(ctx context.Context, t Target) error
}

// SenderFunc adapts a function to a Sender (handy in tests of callers).
type SenderFunc func(ctx context.Context, t Target) error

// Send calls f.
func (f SenderFunc) Send(ctx context.Context, t Target) error { return f(ctx, t) }

var (
	// ErrUnregistered means the provider says the token will never work
	// again (APNs 410 Unregistered or 400 BadDeviceToken, FCM 404
	// UNREGISTERED or 400 INVALID_ARGUMENT on the token, WNS 404/410). The
	// caller should drop the token and wait for the device to send a new one.
	ErrUnregistered = errs.E(errs.NotFound, "push_token_unregistered", "the push token is no longer registered")

	// ErrNotConfigured means there are no credentials for the provider.
	ErrNotConfigured = errs.E(errs.Unavailable, "push_not_configured", "push provider is not configured")

	// ErrInvalidTarget means the target cannot be sent to as given (bad
	// token syntax, a WNS channel URI outside the provider's hosts, ...).
	ErrInvalidTarget = errs.E(errs.Invalid, "push_target_invalid", "invalid push target")
)

// ProviderError is a failure reported by a provider (Status > 0) or met on
// the way to it (Status 0: dial, TLS, timeout, reset).
type ProviderError struct {
	Provider string
	Status   int    // HTTP status, 0 for transport failures
	Reason   string // the provider's reason code, e.g. "TooManyRequests", "UNAVAILABLE"
	// Retryable says whether the same request may succeed later.
	Retryable bool
	// RetryAfter is the delay the provider asked for (Retry-After), or 0.
	RetryAfter time.Duration
	// Err is ErrUnregistered for a dead token, or the transport error.
	Err error
}

func (e *ProviderError) Error() string {
	s := "push " + e.Provider + ": "
	if e.Status != 0 {
		s += strconv.Itoa(e.Status) + " "
	}
	s += e.Reason
	if e.Err != nil && e.Err != ErrUnregistered {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *ProviderError) Unwrap() error { return e.Err }

// Unregistered returns the error a client reports for a dead token: a
// *ProviderError carrying the provider's details that wraps ErrUnregistered.
func Unregistered(provider string, status int, reason string) error {
	return &ProviderError{Provider: provider, Status: status, Reason: reason, Err: ErrUnregistered}
}

// TransportError classifies an error met before a provider answered (dial,
// TLS, reset, per-attempt timeout) as a retryable *ProviderError.
//
// A *url.Error's URL is cut to scheme://host: device tokens and channel URIs
// travel in paths and queries and have no place in logs.
func TransportError(provider string, err error) *ProviderError {
	if ue, ok := err.(*url.Error); ok {
		if u, perr := url.Parse(ue.URL); perr == nil {
			c := *ue
			c.URL = u.Scheme + "://" + u.Host
			err = &c
		}
	}
	reason := "transport"
	if errors.Is(err, context.DeadlineExceeded) {
		reason = "timeout"
	}
	return &ProviderError{Provider: provider, Reason: reason, Retryable: true, Err: err}
}

// MaxRetryAfter caps a provider's Retry-After: a hint is worthless after a
// minute (the device polls anyway), and a hostile or broken value must not
// park a sender for hours.
const MaxRetryAfter = 60 * time.Second

// ParseRetryAfter reads a Retry-After header value, either delay-seconds or
// an HTTP-date (RFC 9110 §10.2.3), relative to now, capped at max (if > 0).
// It returns 0 and false when v is empty or malformed.
func ParseRetryAfter(v string, now time.Time, max time.Duration) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	var d time.Duration
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		if n > int64(MaxRetryAfter/time.Second)*1000 { // avoid overflow, far above any cap
			n = int64(MaxRetryAfter/time.Second) * 1000
		}
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
		if d < 0 {
			d = 0
		}
	} else {
		return 0, false
	}
	if max > 0 && d > max {
		d = max
	}
	return d, true
}

// Router dispatches a Target to the Sender of its provider. A provider with
// no Sender yields ErrNotConfigured. The Router is safe for concurrent use
// once built.
type Router struct {
	senders map[string]Sender
	metrics Metrics
	now     func() time.Time
}

// NewRouter returns a Router over senders, keyed by provider name (APNs,
// FCM, WNS). metrics may be nil.
func NewRouter(senders map[string]Sender, metrics Metrics) *Router {
	m := make(map[string]Sender, len(senders))
	for k, s := range senders {
		if s != nil {
			m[k] = s
		}
	}
	return &Router{senders: m, metrics: metrics, now: time.Now}
}

// Send sends t through the Sender of t.Provider.
func (r *Router) Send(ctx context.Context, t Target) error {
	s, ok := r.senders[t.Provider]
	if !ok {
		switch t.Provider {
		case APNs, FCM, WNS:
			err := fmt.Errorf("push %s: %w", t.Provider, ErrNotConfigured)
			r.observe(t.Provider, err, 0)
			return err
		}
		return fmt.Errorf("push: unknown provider %q: %w", t.Provider, ErrInvalidTarget)
	}
	start := r.now()
	err := s.Send(ctx, t)
	r.observe(t.Provider, err, r.now().Sub(start))
	return err
}

func (r *Router) observe(provider string, err error, d time.Duration) {
	if r.metrics != nil {
		r.metrics.ObserveSend(provider, Outcome(err), d)
	}
}

// Outcome names the result of a Send for metrics and logs: "ok",
// "unregistered", "not_configured", "invalid", "canceled", "error".
func Outcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrUnregistered):
		return "unregistered"
	case errors.Is(err, ErrNotConfigured):
		return "not_configured"
	case errors.Is(err, ErrInvalidTarget):
		return "invalid"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return "error"
}

// StatusReason is the reason recorded for a provider answer that carried
// none of its own: the status text as one word ("InternalServerError"), or
// "HTTP<code>" for a status without one.
func StatusReason(status int) string {
	if t := http.StatusText(status); t != "" {
		return strings.NewReplacer(" ", "", "-", "", "'", "").Replace(t)
	}
	return "HTTP" + strconv.Itoa(status)
}
