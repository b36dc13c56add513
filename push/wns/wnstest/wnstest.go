// Package wnstest is an in-process fake of the Windows Push Notification
// Services for tests: the OAuth token endpoint of login.live.com (client
// credentials) and the channel endpoint that raw notifications are POSTed to.
//
// Shapes: https://learn.microsoft.com/en-us/windows/apps/design/shell/tiles-and-notifications/push-request-response-headers
package wnstest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/custos-uem/custos/push/internal/fakepush"
)

// Names and limits the fake checks.
const (
	Scope          = "notify.windows.com"
	MaxPayloadSize = 5 * 1024
	DefaultSID     = "ms-app://s-1-15-2-1111111111-2222222222-3333333333-4444444444-5555555555-6666666666-7777777777"
	DefaultSecret  = "wnstest-secret"
)

// Notification is a notification the fake accepted.
type Notification struct {
	Channel     string // the channel's token (the URI's token query value)
	Type        string // X-WNS-Type
	CachePolicy string // X-WNS-Cache-Policy
	Payload     []byte
}

// Failure is how the fake answers a channel instead of accepting.
type Failure struct {
	Status     int // e.g. 404, 410, 406, 500, 503
	RetryAfter string
	Hang       bool
	Times      int // failures before accepting again; 0 = always
}

// Expired is WNS's answer for an expired channel.
func Expired() Failure { return Failure{Status: http.StatusGone} }

// Throttled is a 406 Not Acceptable.
func Throttled(retryAfter string, times int) Failure {
	return Failure{Status: http.StatusNotAcceptable, RetryAfter: retryAfter, Times: times}
}

// ServerError is a 500 or 503.
func ServerError(status, times int) Failure { return Failure{Status: status, Times: times} }

// Hang makes the next times requests never be answered.
func Hang(times int) Failure { return Failure{Hang: true, Times: times} }

func (f Failure) fault() fakepush.Fault {
	return fakepush.Fault{Hang: f.Hang, RetryAfter: f.RetryAfter, Times: f.Times}
}

// Options configures a Server.
type Options struct {
	PackageSID    string        // default DefaultSID
	ClientSecret  string        // default DefaultSecret
	TokenLifetime time.Duration // default 24 h, as login.live.com
}

// Stats are counters of a Server.
type Stats struct {
	TokenRequests int
	TokensIssued  int
	Sends         int
}

// Server is a running fake.
type Server struct {
	URL string

	srv   *httptest.Server
	book  *fakepush.Book[Notification, Failure]
	oauth fakepush.OAuth

	opts Options
}

// NewServer starts a fake; it is closed when the test ends.
func NewServer(tb testing.TB, opts Options) *Server {
	tb.Helper()
	if opts.PackageSID == "" {
		opts.PackageSID = DefaultSID
	}
	if opts.ClientSecret == "" {
		opts.ClientSecret = DefaultSecret
	}
	if opts.TokenLifetime <= 0 {
		opts.TokenLifetime = 24 * time.Hour
	}
	s := &Server{opts: opts, book: fakepush.New[Notification](Failure.fault, false)}
	s.srv = fakepush.ServeTLS(tb, s.Close, map[string]http.HandlerFunc{"POST /accesstoken.srf": s.token, "/": s.channel})
	s.URL = s.srv.URL
	return s
}

// Close releases hanging requests and stops the server.
func (s *Server) Close() { s.book.Stop(s.srv) }

// Client returns an HTTP client that trusts the fake.
func (s *Server) Client() *http.Client { return s.srv.Client() }

// TokenURL is the fake's token endpoint.
func (s *Server) TokenURL() string { return s.URL + "/accesstoken.srf" }

// Host is the fake's host:port, for wns.Config.AllowHosts.
func (s *Server) Host() string { return strings.TrimPrefix(s.URL, "https://") }

// ChannelURI returns a channel URI on the fake for the channel token tok,
// shaped like WNS's (https://<host>/?token=<tok>).
func (s *Server) ChannelURI(tok string) string { return s.URL + "/?token=" + url.QueryEscape(tok) }

// OnPush sets a callback run for every accepted notification.
func (s *Server) OnPush(f func(Notification)) { s.book.OnDeliver(f) }

// Fail makes the fake answer the channel token tok with f.
func (s *Server) Fail(tok string, f Failure) { s.book.Fail(tok, f) }

// ExpireTokens makes every issued access token expired: the next send gets
// 401 with WNS's "Token has expired".
func (s *Server) ExpireTokens() { s.oauth.Revoke() }

// Delivered returns the accepted notifications, oldest first.
func (s *Server) Delivered() []Notification { return s.book.Delivered() }

// Stats returns the fake's counters.
func (s *Server) Stats() Stats { return Stats(s.oauth.Counts()) }

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	s.oauth.Requested()
	fail := func(code string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": "Invalid client id or client secret"})
	}
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		fail("invalid_request")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		fail("invalid_request")
		return
	}
	f := r.PostForm
	switch {
	case f.Get("grant_type") != "client_credentials":
		fail("unsupported_grant_type")
	case f.Get("scope") != Scope:
		fail("invalid_scope")
	case f.Get("client_id") != s.opts.PackageSID || f.Get("client_secret") != s.opts.ClientSecret:
		fail("invalid_client")
	default:
		b := make([]byte, 24)
		_, _ = rand.Read(b)
		s.oauth.Grant(w, "EgAaAQMAAAAEgAAAC"+hex.EncodeToString(b), "bearer", s.opts.TokenLifetime)
	}
}

func (s *Server) channel(w http.ResponseWriter, r *http.Request) {
	s.oauth.Sending()
	desc := func(status int, d string) {
		w.Header().Set("X-WNS-Error-Description", d)
		w.WriteHeader(status)
	}
	if r.Method != http.MethodPost {
		desc(http.StatusMethodNotAllowed, "Only POST is allowed")
		return
	}
	if !s.oauth.Authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_request",error_description="Token has expired"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	tok := r.URL.Query().Get("token")
	if r.URL.Path != "/" || tok == "" {
		desc(http.StatusNotFound, "The channel URI is not valid")
		return
	}
	typ := r.Header.Get("X-WNS-Type")
	switch typ {
	case "wns/raw":
		if r.Header.Get("Content-Type") != "application/octet-stream" {
			desc(http.StatusBadRequest, "Content-Type must be application/octet-stream for wns/raw")
			return
		}
	case "wns/toast", "wns/tile", "wns/badge":
		if !strings.HasPrefix(r.Header.Get("Content-Type"), "text/xml") {
			desc(http.StatusBadRequest, "Content-Type must be text/xml")
			return
		}
	default:
		desc(http.StatusBadRequest, "X-WNS-Type is missing or invalid")
		return
	}
	switch cp := r.Header.Get("X-WNS-Cache-Policy"); cp {
	case "", "cache", "no-cache":
	default:
		desc(http.StatusBadRequest, "invalid X-WNS-Cache-Policy")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxPayloadSize+1))
	if err != nil {
		return
	}
	if len(body) > MaxPayloadSize {
		desc(http.StatusRequestEntityTooLarge, "The notification payload exceeds the 5 KB limit")
		return
	}
	if len(body) == 0 {
		desc(http.StatusBadRequest, "empty payload")
		return
	}
	if s.book.Refuse(w, r, tok, func(_ http.ResponseWriter, f Failure) { desc(f.Status, http.StatusText(f.Status)) }) {
		return
	}
	s.book.Deliver(Notification{Channel: tok, Type: typ, CachePolicy: r.Header.Get("X-WNS-Cache-Policy"), Payload: body})
	w.Header().Set("X-WNS-Status", "received")
	w.Header().Set("X-WNS-Msg-ID", "1ACD4B1B6E0F1A8D")
	if r.Header.Get("X-WNS-RequestForStatus") == "true" {
		w.Header().Set("X-WNS-DeviceConnectionStatus", "connected")
	}
	w.WriteHeader(http.StatusOK)
}
