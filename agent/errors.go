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

	"github.com/custos-uem/custos/httpx"
)

// ErrRefused is returned (wrapped) when the Core refuses the device's
// client certificate, by a TLS alert or an HTTP 401/403: the device was
// removed by an administrator, replaced by a newer activation of the same
// hardware, or its certificate revoked or expired. The device must be
// activated again; retrying cannot help, so Run stops.
var ErrRefused = errors.New("the Core refused this device's certificate: the device was removed or its certificate revoked; activate it again")

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

func (e *ServerError) Error() string {
	var b strings.Builder
	b.WriteString(e.Code)
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if len(e.Fields) > 0 {
		keys := make([]string, 0, len(e.Fields))
		for k := range e.Fields {
			keys = append(keys, k)
		}
		sort.Strings(keys) // stable messages
		b.WriteString(" (")
		for i, k := range keys {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(k + ": " + e.Fields[k])
		}
		b.WriteString(")")
	}
	if e.RequestID != "" {
		b.WriteString(" (request " + e.RequestID + ")")
	}
	b.WriteString(" [HTTP " + strconv.Itoa(e.Status) + "]")
	return b.String()
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
// certificate, and returns the error to report (wrapping ErrRefused).
func refusal(err error) (error, bool) {
	var se *ServerError
	if errors.As(err, &se) && (se.Status == http.StatusUnauthorized || se.Status == http.StatusForbidden) &&
		se.Code != codeDeviceMismatch {
		return fmt.Errorf("%w: %w", ErrRefused, se), true
	}
	// A TLS alert from the peer arrives as *net.OpError{Op: "remote error"}
	// around crypto/tls's unexported alert type.
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "remote error" && op.Err != nil && refusalAlerts[op.Err.Error()] {
		return fmt.Errorf("%w: %s", ErrRefused, op.Error()), true
	}
	return err, false
}
