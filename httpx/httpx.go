// Package httpx holds the HTTP plumbing every Custos listener shares: request
// IDs and structured request logs, JSON bodies read under a named size and
// depth limit, errors mapped to status codes in one place, Prometheus
// request metrics, server timeouts, and a deny-by-default router.
package httpx

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/custos-uem/custos/errs"
)

// MaxJSONDepth is the deepest nesting of arrays and objects accepted in any
// JSON body. Our own documents nest at most four deep.
const MaxJSONDepth = 32

type ctxKey int

const (
	keyRequestID ctxKey = iota
	keyLogger
	keyRoute
)

// route is filled in by the Router with the pattern a request matched, so
// that Observe (which runs outside the Router, before any middleware copied
// the request) can label its metrics and log line with it.
type route struct{ pattern string }

// setRoute records pattern as the route of the request of ctx.
func setRoute(ctx context.Context, pattern string) {
	if r, ok := ctx.Value(keyRoute).(*route); ok {
		r.pattern = pattern
	}
}

// RequestID returns the request ID of ctx, or "".
func RequestID(ctx context.Context) string {
	s, _ := ctx.Value(keyRequestID).(string)
	return s
}

// Logger returns the logger of ctx (which carries the request ID), or the
// default logger.
func Logger(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(keyLogger).(*slog.Logger); ok {
		return l
	}
	return slog.Default()
}

// WithLogger returns ctx carrying l.
func WithLogger(ctx context.Context, l *slog.Logger) context.Context {
	return context.WithValue(ctx, keyLogger, l)
}

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// statusWriter records the status and size of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
	size   int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.size += int64(n)
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Observe wraps h: it gives every request an ID (X-Request-Id on the
// answer, request_id on every log line), logs one line per request and
// records metrics by route pattern. m may be nil.
func Observe(log *slog.Logger, m *Metrics, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := newRequestID()
		l := log.With("request_id", id)
		ctx := context.WithValue(r.Context(), keyRequestID, id)
		ctx = context.WithValue(ctx, keyLogger, l)
		rt := &route{}
		ctx = context.WithValue(ctx, keyRoute, rt)
		w.Header().Set("X-Request-Id", id)
		sw := &statusWriter{ResponseWriter: w}
		r = r.WithContext(ctx)
		h.ServeHTTP(sw, r)
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		d := time.Since(start)
		route := rt.pattern
		if route == "" {
			route = r.Pattern
		}
		if route == "" {
			route = "unmatched"
		}
		if m != nil {
			m.observe(route, r.Method, sw.status, d)
		}
		l.LogAttrs(ctx, slog.LevelInfo, "http request",
			slog.String("method", r.Method), slog.String("route", route),
			slog.Int("status", sw.status), slog.Int64("bytes", sw.size),
			slog.Duration("duration", d), slog.String("remote", r.RemoteAddr))
	})
}

// WriteJSON writes v as a JSON answer with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// ErrorBody is the body of every error answer.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the client-visible part of an error.
type ErrorDetail struct {
	Code      string            `json:"code"`
	Message   string            `json:"message"`
	RequestID string            `json:"request_id"`
	Fields    map[string]string `json:"fields,omitempty"`
}

// Status maps an error kind to its HTTP status code.
func Status(k errs.Kind) int {
	switch k {
	case errs.Invalid:
		return http.StatusBadRequest
	case errs.Unauthenticated:
		return http.StatusUnauthorized
	case errs.Forbidden:
		return http.StatusForbidden
	case errs.NotFound:
		return http.StatusNotFound
	case errs.Conflict:
		return http.StatusConflict
	case errs.TooLarge:
		return http.StatusRequestEntityTooLarge
	case errs.RateLimited:
		return http.StatusTooManyRequests
	case errs.Unavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// WriteError answers err: its kind picks the status, its public code and
// message go to the client with the request ID, and the full error goes to
// the log.
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	kind := errs.KindOf(err)
	status := Status(kind)
	code, msg, fields := errs.Public(err)
	l := Logger(r.Context())
	if status >= 500 {
		l.Error("request failed", "err", err, "code", code)
	} else {
		l.Info("request refused", "err", err, "code", code)
	}
	if kind == errs.Unauthenticated {
		w.Header().Set("WWW-Authenticate", `Bearer realm="custos"`)
	}
	WriteJSON(w, status, ErrorBody{Error: ErrorDetail{Code: code, Message: msg, RequestID: RequestID(r.Context()), Fields: fields}})
}

// Body errors.
var (
	ErrBodyTooLarge   = errs.E(errs.TooLarge, "body_too_large", "the request body is larger than this endpoint accepts")
	ErrNotJSON        = errs.E(errs.Invalid, "unsupported_media_type", "the request body must be application/json")
	ErrTooDeep        = errs.E(errs.Invalid, "json_too_deep", fmt.Sprintf("the JSON body nests deeper than %d levels", MaxJSONDepth))
	ErrTrailingData   = errs.E(errs.Invalid, "json_trailing_data", "the request body has data after the JSON value")
	errMalformedJSON  = "malformed_json"
	errUnknownField   = "unknown_field"
	errWrongFieldType = "wrong_field_type"
)

// DecodeJSON reads r's body into v: at most limit bytes (else 413
// body_too_large, checked before allocating more than limit), Content-Type
// application/json, nesting at most MaxJSONDepth, no unknown fields, one
// JSON value only.
func DecodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return ErrNotJSON
		}
	}
	if r.ContentLength > limit {
		return ErrBodyTooLarge
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return ErrBodyTooLarge
		}
		return errs.Wrap(errs.Invalid, "body_unreadable", "the request body could not be read", err)
	}
	return Unmarshal(body, v)
}

// Unmarshal is DecodeJSON's parser on bytes already read.
func Unmarshal(body []byte, v any) error {
	if err := CheckDepth(body, MaxJSONDepth); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var ute *json.UnmarshalTypeError
		switch {
		case errors.As(err, &ute):
			e := errs.Wrap(errs.Invalid, errWrongFieldType, "a field has the wrong type", err)
			e.Fields = map[string]string{ute.Field: "must be " + ute.Type.String()}
			return e
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			// encoding/json has no typed error for this; its message is
			// `json: unknown field "name"`.
			name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			e := errs.Wrap(errs.Invalid, errUnknownField, "the request has a field this endpoint does not know", err)
			e.Fields = map[string]string{name: "unknown field"}
			return e
		default:
			return errs.Wrap(errs.Invalid, errMalformedJSON, "the request body is not valid JSON", err)
		}
	}
	if dec.More() {
		return ErrTrailingData
	}
	if _, err := dec.Token(); err != io.EOF {
		return ErrTrailingData
	}
	return nil
}

// CheckDepth returns ErrTooDeep when the JSON text b nests arrays and
// objects deeper than max. It does not validate b otherwise.
func CheckDepth(b []byte, max int) error {
	depth := 0
	inString, escaped := false, false
	for _, c := range b {
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
			if depth > max {
				return ErrTooDeep
			}
		case '}', ']':
			depth--
		}
	}
	return nil
}

// Server timeouts: a slow client is cut off instead of holding a goroutine
// and a descriptor forever.
const (
	ReadHeaderTimeout = 10 * time.Second
	ReadTimeout       = 60 * time.Second
	WriteTimeout      = 60 * time.Second
	IdleTimeout       = 120 * time.Second
	MaxHeaderBytes    = 64 << 10
)

// NewServer returns an http.Server for h with the timeouts above.
func NewServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}
