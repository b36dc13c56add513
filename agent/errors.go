package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/custos-uem/custos/httpx"
)

// ErrRefused is returned (wrapped, as a *RefusedError) when the Core
// refuses the device's client certificate, by a TLS alert or an HTTP
// 401/403: the device was removed by an administrator, replaced by a newer
// activation of the same hardware, or its certificate revoked or expired.
// The device must be activated again; retrying cannot help, so Run stops,
// and the refusal is recorded in the State (StateRefused) so that later
// runs say so without contacting the Core.
var ErrRefused = errors.New("the Core refused this device's certificate; activate it again")

// reasonRemoved is the reason of a refusal by the Core.
const reasonRemoved = "the device was removed or its certificate revoked"

// Refusal records how the Core refused the device's certificate
// (State.Refusal).
type Refusal struct {
	// At is when the refusal was received.
	At time.Time `json:"at,omitzero"`
	// Step is the request refused: "check-in" or "acknowledgment".
	Step string `json:"step,omitempty"`
	// Reason is one sentence for the user.
	Reason string `json:"reason,omitempty"`
	// Code, Status and RequestID come from the Core's HTTP answer.
	Code      string `json:"code,omitempty"`
	Status    int    `json:"status,omitempty"`
	RequestID string `json:"request_id,omitempty"`
	// Alert is the TLS alert of a refusal at the handshake ("bad
	// certificate").
	Alert string `json:"tls_alert,omitempty"`
}

// Detail returns what identifies the refusal on the Core's side, as
// "certificate_revoked, HTTP 401, request ID 1a2b" or "TLS alert: bad
// certificate"; empty when there is nothing to add to the reason.
func (r *Refusal) Detail() string {
	var parts []string
	if r.Code != "" {
		parts = append(parts, display(r.Code))
	}
	if r.Status != 0 {
		parts = append(parts, "HTTP "+strconv.Itoa(r.Status))
	}
	if r.RequestID != "" {
		parts = append(parts, "request ID "+display(r.RequestID))
	}
	if r.Alert != "" {
		parts = append(parts, "TLS alert: "+display(r.Alert))
	}
	return strings.Join(parts, ", ")
}

// RefusedError is the error of a refused certificate; errors.Is(err,
// ErrRefused) holds for it, and errors.As finds the *ServerError of an HTTP
// refusal.
type RefusedError struct {
	Refusal
	// Recorded is true when the refusal was read back from the State
	// rather than received now: the message then names its time.
	Recorded bool
	// Err is the underlying error (a *ServerError, a TLS alert), or nil.
	Err error
}

// Error reads "check-in refused: the device was removed or its certificate
// revoked (certificate_revoked, HTTP 401, request ID 1a2b); activate it
// again".
func (e *RefusedError) Error() string {
	var b strings.Builder
	step := e.Step
	if step == "" {
		step = "check-in"
	}
	b.WriteString(step + " refused")
	if e.Recorded && !e.At.IsZero() {
		b.WriteString(" at " + e.At.UTC().Format(time.RFC3339))
	}
	reason := e.Reason
	if reason == "" {
		reason = reasonRemoved
	}
	b.WriteString(": " + display(reason))
	if d := e.Detail(); d != "" {
		b.WriteString(" (" + d + ")")
	}
	b.WriteString("; activate it again")
	return b.String()
}

// Is reports whether target is ErrRefused.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

// Unwrap returns the underlying error.
func (e *RefusedError) Unwrap() error { return e.Err }

// ServerError is an error answer of the Core (httpx.ErrorBody), or any other
// non-2xx answer.
type ServerError struct {
	// Status is the HTTP status code.
	Status int
	// Code is the stable error code ("activation_password_invalid"), or
	// "http_<status>" when the body was not an httpx.ErrorBody.
	Code    string
	Message string
	// RequestID identifies the request in the Core's log.
	RequestID string
	Fields    map[string]string
	// RetryAfter is the Retry-After delay the Core asked for, or 0.
	RetryAfter time.Duration
}

// Error reads as the admin command line prints an API error:
// "code: message (HTTP 401, request ID 1a2b)", then one line per field.
func (e *ServerError) Error() string {
	var b strings.Builder
	b.WriteString(display(e.Code))
	if e.Message != "" {
		b.WriteString(": " + display(e.Message))
	}
	fmt.Fprintf(&b, " (HTTP %d", e.Status)
	if e.RequestID != "" {
		b.WriteString(", request ID " + display(e.RequestID))
	}
	b.WriteString(")")
	keys := make([]string, 0, len(e.Fields))
	for k := range e.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys) // stable messages
	for _, k := range keys {
		fmt.Fprintf(&b, "\n  %s: %s", display(k), display(e.Fields[k]))
	}
	return b.String()
}

// display quotes text from the Core that holds anything not printable, so
// that it cannot drive the terminal it is printed on.
func display(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return strconv.QuoteToGraphic(s)
	}
	return s
}

// maxErrorBody bounds the error answer read from the Core.
const maxErrorBody = 64 << 10

// serverError builds the ServerError of a non-2xx answer from its (bounded)
// body.
func serverError(resp *http.Response, body []byte) *ServerError {
	e := &ServerError{Status: resp.StatusCode, RequestID: resp.Header.Get("X-Request-Id")}
	var eb httpx.ErrorBody
	if json.Unmarshal(body, &eb) == nil && eb.Error.Code != "" {
		e.Code, _ = Clean(eb.Error.Code)
		e.Message, _ = Clean(eb.Error.Message)
		if eb.Error.RequestID != "" {
			e.RequestID, _ = Clean(eb.Error.RequestID)
		}
		e.Fields = eb.Error.Fields
	} else {
		e.Code = "http_" + strconv.Itoa(resp.StatusCode)
		e.Message = http.StatusText(resp.StatusCode)
		if s := strings.TrimSpace(string(body)); s != "" && !strings.HasPrefix(s, "<") {
			s, _ = Clean(strings.Join(strings.Fields(s), " "))
			if len(s) > 120 {
				s = s[:120] + "…"
			}
			e.Message += ": " + s
		}
	}
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		if secs, err := strconv.Atoi(ra); err == nil && secs > 0 {
			e.RetryAfter = time.Duration(secs) * time.Second
		}
	}
	return e
}

// codeDeviceMismatch is the Core's 403 for a body naming a device other
// than the certificate's: the agent's state is inconsistent, but the
// certificate was accepted, so it is not a refusal of the device.
const codeDeviceMismatch = "device_mismatch"

// refusalAlerts are the TLS alerts by which a server refuses a client
// certificate (RFC 8446 §6.2).
var refusalAlerts = map[string]bool{
	"tls: bad certificate":               true, // 42
	"tls: revoked certificate":           true, // 44
	"tls: expired certificate":           true, // 45
	"tls: unknown certificate":           true, // 46
	"tls: unknown certificate authority": true, // 48
	"tls: access denied":                 true, // 49
	"tls: certificate required":          true, // 116
}

// refusal reports whether err means the Core refused the client
// certificate in step, and returns the *RefusedError for it.
func refusal(step string, err error) (*RefusedError, bool) {
	var se *ServerError
	if errors.As(err, &se) && (se.Status == http.StatusUnauthorized || se.Status == http.StatusForbidden) &&
		se.Code != codeDeviceMismatch {
		return &RefusedError{Refusal: Refusal{
			Step: step, Reason: reasonRemoved, Code: se.Code, Status: se.Status, RequestID: se.RequestID,
		}, Err: se}, true
	}
	// A TLS alert from the peer arrives as *net.OpError{Op: "remote error"}
	// around crypto/tls's unexported alert type.
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "remote error" && op.Err != nil && refusalAlerts[op.Err.Error()] {
		return &RefusedError{Refusal: Refusal{
			Step: step, Reason: reasonRemoved, Alert: strings.TrimPrefix(op.Err.Error(), "tls: "),
		}, Err: op}, true
	}
	return nil, false
}
