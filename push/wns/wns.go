// Package wns is a client of the Windows Push Notification Services, used to
// wake enrolled Windows devices for an MDM session (the DMClient CSP reports
// the channel URI).
//
// Request and response headers and codes:
// https://learn.microsoft.com/en-us/windows/apps/design/shell/tiles-and-notifications/push-request-response-headers
// Authentication (OAuth 2.0 client credentials against login.live.com):
// https://learn.microsoft.com/en-us/windows/apps/design/shell/tiles-and-notifications/windows-push-notification-services--wns--overview
// MDM use: https://learn.microsoft.com/en-us/windows/client-management/push-notification-windows-mdm
package wns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/custos-uem/custos/push"
	"github.com/custos-uem/custos/push/internal/oauthx"
)

// Endpoints and names of the service.
const (
	DefaultTokenURL = "https://login.live.com/accesstoken.srf"
	// Scope is the scope of the access token request.
	Scope = "notify.windows.com"
	// HostSuffix is the domain every production channel URI is under
	// (e.g. https://db5p.notify.windows.com/?token=...). The Core POSTs to a
	// URL a device supplied; checking the host is what keeps that from
	// being a request forgery towards anything else.
	HostSuffix = ".notify.windows.com"
)

// Wire limits.
const (
	// MaxPayloadSize is WNS's limit on a notification body ("The
	// notification payload is limited to 5 KB", push-request-response-headers).
	MaxPayloadSize = 5 * 1024
	// MaxChannelURILen bounds a channel URI; real ones are ~200-300 bytes.
	MaxChannelURILen = 2048
	// MaxResponseBody bounds what we read of a response (WNS sends
	// information in headers; bodies are empty).
	MaxResponseBody = 4096
	// maxDescription bounds X-WNS-Error-Description kept for the log.
	maxDescription = 256
	// tokenEarly renews the access token (valid 24 h) this long before expiry.
	tokenEarly = 5 * time.Minute
)

// DefaultPayload is the raw notification body of a wake-up hint; Windows'
// DMClient starts a session on any raw push to its channel.
var DefaultPayload = []byte("custos:sync")

// Config configures a Client.
type Config struct {
	// PackageSID ("ms-app://s-1-15-2-...") and ClientSecret are the app's
	// WNS credentials from its Store registration.
	PackageSID   string
	ClientSecret string
	// TokenURL defaults to DefaultTokenURL.
	TokenURL string
	// AllowHosts are extra hosts ("host:port", exact) channel URIs may
	// point at, besides *.notify.windows.com. For tests only.
	AllowHosts []string
	// HTTPClient defaults to a client with a 30 s timeout whose dialer
	// refuses loopback, private, link-local and other non-public
	// addresses. A caller-supplied client is used as is.
	HTTPClient *http.Client
	// Payload is the raw notification body; default DefaultPayload.
	Payload []byte
	// Retry is the retry policy; zero means push's defaults.
	Retry push.RetryPolicy
	// Now is the clock for token expiry; default time.Now.
	Now func() time.Time
}

// Client sends raw notifications through WNS. It is safe for concurrent use.
type Client struct {
	hc      *http.Client
	tokens  *oauthx.Cache
	allow   map[string]bool
	payload []byte
	retry   push.RetryPolicy
}

// New returns a Client.
func New(cfg Config) (*Client, error) {
	if cfg.PackageSID == "" || cfg.ClientSecret == "" {
		return nil, fmt.Errorf("wns: no package SID or client secret: %w", push.ErrNotConfigured)
	}
	tokenURL := cfg.TokenURL
	if tokenURL == "" {
		tokenURL = DefaultTokenURL
	}
	if u, err := url.Parse(tokenURL); err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("wns: token URL %q is not an https URL", tokenURL)
	}
	payload := cfg.Payload
	if payload == nil {
		payload = DefaultPayload
	}
	if len(payload) > MaxPayloadSize {
		return nil, fmt.Errorf("wns: payload %d bytes over %d", len(payload), MaxPayloadSize)
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = guardedClient()
	}
	allow := map[string]bool{}
	for _, h := range cfg.AllowHosts {
		allow[strings.ToLower(h)] = true
	}
	cc := &clientcredentials.Config{
		ClientID:     cfg.PackageSID,
		ClientSecret: cfg.ClientSecret,
		TokenURL:     tokenURL,
		Scopes:       []string{Scope},
		// login.live.com wants the credentials in the form body.
		AuthStyle: oauth2.AuthStyleInParams,
	}
	return &Client{
		hc: hc,
		tokens: &oauthx.Cache{
			Fetch: func(ctx context.Context) (*oauth2.Token, error) {
				return cc.Token(oauthx.WithClient(ctx, hc))
			},
			Now:   cfg.Now,
			Early: tokenEarly,
		},
		allow:   allow,
		payload: payload,
		retry:   cfg.Retry.WithDefaults(),
	}, nil
}

// guardedClient returns an HTTP client whose connections may only reach
// public unicast addresses: a second line behind the host check, in case a
// name under the WNS domain (or a proxy-less redirect) resolves somewhere
// internal.
func guardedClient() *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second, Control: func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return err
		}
		if !publicAddr(ap.Addr()) {
			return fmt.Errorf("wns: refusing to connect to non-public address %s", ap.Addr())
		}
		return nil
	}}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = d.DialContext
	t.Proxy = nil
	return &http.Client{
		Transport: t,
		Timeout:   30 * time.Second,
		// WNS does not redirect; following one would leave the host check.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func publicAddr(a netip.Addr) bool {
	a = a.Unmap()
	return a.IsGlobalUnicast() && !a.IsPrivate() && !a.IsLoopback() && !a.IsLinkLocalUnicast() &&
		!netip.MustParsePrefix("100.64.0.0/10").Contains(a) // carrier-grade NAT
}

// CheckChannelURI validates a device-supplied channel URI: https, no user
// info or fragment, at most MaxChannelURILen bytes, on a host under
// HostSuffix (default port) or one of allow (exact host:port). It returns
// the parsed URL.
func CheckChannelURI(raw string, allow map[string]bool) (*url.URL, error) {
	if len(raw) > MaxChannelURILen {
		return nil, fmt.Errorf("wns: channel URI over %d bytes: %w", MaxChannelURILen, push.ErrInvalidTarget)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("wns: channel URI: %w", push.ErrInvalidTarget)
	}
	if u.Scheme != "https" || u.User != nil || u.Fragment != "" || u.Opaque != "" || u.Host == "" {
		return nil, fmt.Errorf("wns: channel URI must be https://host/...: %w", push.ErrInvalidTarget)
	}
	host := strings.ToLower(u.Host)
	if allow[host] {
		return u, nil
	}
	name := strings.ToLower(u.Hostname())
	if port := u.Port(); port != "" && port != "443" {
		return nil, fmt.Errorf("wns: channel URI port %s not allowed: %w", port, push.ErrInvalidTarget)
	}
	if !strings.HasSuffix(name, HostSuffix) || len(name) == len(HostSuffix) || strings.ContainsAny(name, "%[]") {
		return nil, fmt.Errorf("wns: channel URI host %q is not under %s: %w", name, HostSuffix, push.ErrInvalidTarget)
	}
	return u, nil
}

// Send sends the raw notification to the channel URI t.Token.
func (c *Client) Send(ctx context.Context, t push.Target) error {
	u, err := CheckChannelURI(t.Token, c.allow)
	if err != nil {
		return err
	}
	return c.retry.Do(ctx, push.WNS, func(ctx context.Context) error {
		return c.once(ctx, u.String())
	})
}

// once makes one attempt; a 401 (access token expired) is answered by
// fetching a new token and sending again, once, as Microsoft's doc says:
// "the cloud service should ... request a new access token".
func (c *Client) once(ctx context.Context, channel string) error {
	for try := 0; ; try++ {
		access, err := c.tokens.Token(ctx)
		if err != nil {
			return oauthx.TokenError(push.WNS, err)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, channel, bytes.NewReader(c.payload))
		if err != nil {
			return fmt.Errorf("wns: %w", push.ErrInvalidTarget)
		}
		h := req.Header
		h.Set("Authorization", "Bearer "+access)
		h.Set("Content-Type", "application/octet-stream") // required for wns/raw
		h.Set("X-WNS-Type", "wns/raw")
		// Keep the hint while the device is offline: WNS caches one raw
		// notification per channel with "cache".
		h.Set("X-WNS-Cache-Policy", "cache")
		h.Set("X-WNS-RequestForStatus", "true")
		resp, err := c.hc.Do(req)
		if err != nil {
			return push.TransportError(push.WNS, err)
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, MaxResponseBody))
		resp.Body.Close()
		if resp.StatusCode == http.StatusUnauthorized && try == 0 {
			c.tokens.Invalidate(access)
			continue
		}
		return parseResponse(resp.StatusCode, resp.Header, c.retry.Now(), c.retry.MaxRetryAfter)
	}
}

// parseResponse maps a WNS answer (response codes table of
// push-request-response-headers) to an error:
//
//   - 200: accepted.
//   - 404 (channel not recognised), 410 (channel expired):
//     push.ErrUnregistered; the device must report a new channel.
//   - 406 (throttled), 429, 500, 503: retryable, honouring Retry-After.
//   - 401 after a fresh token, 400, 403, 405, 413, others: permanent.
func parseResponse(status int, h http.Header, now time.Time, maxRetryAfter time.Duration) error {
	if status == http.StatusOK {
		return nil
	}
	reason := reasons[status]
	if reason == "" {
		reason = push.StatusReason(status)
	}
	var detail error
	if d := sanitize(h.Get("X-WNS-Error-Description")); d != "" {
		detail = errors.New(d)
	}
	switch status {
	case http.StatusNotFound, http.StatusGone:
		return &push.ProviderError{Provider: push.WNS, Status: status, Reason: reason, Err: push.ErrUnregistered}
	}
	pe := &push.ProviderError{Provider: push.WNS, Status: status, Reason: reason, Err: detail}
	switch status {
	case http.StatusNotAcceptable, http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusServiceUnavailable:
		pe.Retryable = true
		if d, ok := push.ParseRetryAfter(h.Get("Retry-After"), now, maxRetryAfter); ok {
			pe.RetryAfter = d
		}
	}
	return pe
}

var reasons = map[int]string{
	http.StatusBadRequest:            "BadRequest",
	http.StatusUnauthorized:          "Unauthorized",
	http.StatusForbidden:             "Forbidden",
	http.StatusNotFound:              "ChannelNotFound",
	http.StatusMethodNotAllowed:      "MethodNotAllowed",
	http.StatusNotAcceptable:         "Throttled",
	http.StatusGone:                  "ChannelExpired",
	http.StatusRequestEntityTooLarge: "PayloadTooLarge",
	http.StatusInternalServerError:   "InternalServerError",
	http.StatusServiceUnavailable:    "ServiceUnavailable",
}

// sanitize keeps a provider's free-text header printable and short.
func sanitize(s string) string {
	if len(s) > maxDescription {
		s = s[:maxDescription]
	}
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return -1
		}
		return r
	}, s)
}
