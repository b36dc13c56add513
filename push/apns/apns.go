// Package apns is a client of the Apple Push Notification service provider
// API (HTTP/2, TLS client-certificate authentication), used to wake Apple
// devices enrolled in MDM and the agent app.
//
// Protocol: https://developer.apple.com/documentation/usernotifications/sending-notification-requests-to-apns
// MDM pushes: https://developer.apple.com/documentation/devicemanagement/sending-mdm-commands-to-a-device
//
// Why not sideshow/apns2 (the field's library, listed in DESIGN.md): it
// sends through an http.Client whose HTTP/2 transport opens an extra
// connection whenever every stream of the existing ones is busy, with no
// upper bound on connections, and it has no retry policy. We want at most
// MaxConns connections, each filled up to the server's
// SETTINGS_MAX_CONCURRENT_STREAMS, and the retry policy of package push.
// Go 1.26's http.ClientConn gives exactly the per-connection control this
// needs without a dependency (see pool.go); the request itself is a plain
// POST, so little is lost by not using apns2.
package apns

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/custos-uem/custos/push"
)

// APNs hosts (the provider API listens on 443 and on 2197).
const (
	ProductionURL  = "https://api.push.apple.com"
	DevelopmentURL = "https://api.sandbox.push.apple.com"
)

// Wire limits, from Apple's "Sending notification requests to APNs".
const (
	// MaxPayloadSize is the largest payload APNs accepts for a regular
	// remote notification ("4 KB (4096 bytes)"; 5 KB only for VoIP, which
	// we never send). A larger one is refused with 413 PayloadTooLarge,
	// so we refuse it before sending.
	MaxPayloadSize = 4096
	// MinTokenLen and MaxTokenLen bound a device token in hex. Tokens are
	// 32 bytes today, but Apple warns they may grow ("APNs device tokens
	// are of variable length. Do not hard-code their size"), so we accept
	// up to 100 bytes.
	MinTokenLen = 64
	MaxTokenLen = 200
	// MaxTopicLen bounds the apns-topic header (a bundle ID or a push
	// certificate UID topic such as com.apple.mgmt.External.<uuid>).
	MaxTopicLen = 255
	// MaxResponseBody bounds what we read of an APNs response: an error
	// body is {"reason": "...", "timestamp": n}, a few dozen bytes.
	MaxResponseBody = 4096
	// DefaultMaxConns is how many HTTP/2 connections a Client opens at most.
	DefaultMaxConns = 4
)

// Push types (header apns-push-type).
const (
	PushTypeMDM        = "mdm"
	PushTypeAlert      = "alert"
	PushTypeBackground = "background"
)

// Config configures a Client.
type Config struct {
	// Certificate is the push certificate with its private key (for MDM,
	// the "APNs certificate for MDM" from identity.apple.com). MDM supports
	// certificate authentication only, not token (.p8) authentication.
	Certificate tls.Certificate
	// URL is the APNs base URL; default ProductionURL. Tests point it at
	// apnstest.
	URL string
	// Topic is used when a Target has none: for MDM the certificate's UID
	// topic, com.apple.mgmt.External.<uuid>.
	Topic string
	// MaxConns bounds the HTTP/2 connections; default DefaultMaxConns.
	MaxConns int
	// RootCAs verifies the server; nil means the system roots.
	RootCAs *x509.CertPool
	// Proxy, if set, chooses an HTTP CONNECT proxy (see http.Transport.Proxy).
	Proxy func(*http.Request) (*url.URL, error)
	// Retry is the retry policy; the zero value means push's defaults.
	Retry push.RetryPolicy
}

// Client sends notifications to APNs. It is safe for concurrent use.
type Client struct {
	base  string // scheme://host[:port], no trailing slash
	topic string
	pool  *pool
	retry push.RetryPolicy
}

// New returns a Client. It opens no connection until the first push.
func New(cfg Config) (*Client, error) {
	if len(cfg.Certificate.Certificate) == 0 || cfg.Certificate.PrivateKey == nil {
		return nil, fmt.Errorf("apns: no push certificate: %w", push.ErrNotConfigured)
	}
	raw := cfg.URL
	if raw == "" {
		raw = ProductionURL
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return nil, fmt.Errorf("apns: URL %q must be https://host[:port]", raw)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "443")
	}
	maxConns := cfg.MaxConns
	if maxConns <= 0 {
		maxConns = DefaultMaxConns
	}
	protos := new(http.Protocols)
	protos.SetHTTP2(true) // APNs speaks HTTP/2 only
	t := &http.Transport{
		Proxy: cfg.Proxy,
		TLSClientConfig: &tls.Config{
			Certificates: []tls.Certificate{cfg.Certificate},
			RootCAs:      cfg.RootCAs,
			MinVersion:   tls.VersionTLS12,
		},
		Protocols:           protos,
		TLSHandshakeTimeout: 10 * time.Second,
		HTTP2: &http.HTTP2Config{
			// Detect dead connections; Apple asks providers to keep
			// connections open rather than reconnect per notification.
			SendPingTimeout: 60 * time.Second,
			PingTimeout:     15 * time.Second,
		},
	}
	return &Client{
		base:  u.Scheme + "://" + u.Host,
		topic: cfg.Topic,
		pool:  newPool(t, addr, maxConns),
		retry: cfg.Retry.WithDefaults(),
	}, nil
}

// Close closes the client's connections.
func (c *Client) Close() error {
	c.pool.close()
	return nil
}

// Conns returns the number of open connections (for tests and metrics).
func (c *Client) Conns() int { return c.pool.size() }

// Notification is one APNs request.
type Notification struct {
	DeviceToken string // hex
	Topic       string // apns-topic; default Config.Topic
	PushType    string // apns-push-type
	Priority    int    // apns-priority (10 immediate, 5 power-considerate, 1 lowest); 0 omits it
	// Expiration is apns-expiration: zero omits the header; a time before
	// 1970-01-01T00:00:01Z sends 0 (deliver once, do not store).
	Expiration time.Time
	ID         string // apns-id (a UUID); empty lets APNs assign one
	CollapseID string // apns-collapse-id
	Payload    []byte // JSON, at most MaxPayloadSize bytes
}

// Send sends a push hint to t. With t.PushMagic it is an MDM push (payload
// {"mdm": PushMagic}, push type mdm, which Apple's MDM protocol defines);
// otherwise a background push to the agent app ({"aps":
// {"content-available": 1}}, push type background, priority 5 — Apple
// requires priority 5 for background pushes).
func (c *Client) Send(ctx context.Context, t push.Target) error {
	n := Notification{DeviceToken: t.Token, Topic: t.Topic}
	if t.PushMagic != "" {
		magic, err := json.Marshal(t.PushMagic)
		if err != nil {
			return err
		}
		n.PushType = PushTypeMDM
		n.Payload = append(append(append(make([]byte, 0, len(magic)+8), `{"mdm":`...), magic...), '}')
	} else {
		n.PushType, n.Priority = PushTypeBackground, 5
		n.Payload = backgroundPayload
	}
	_, err := c.push(ctx, &n, false)
	return err
}

// backgroundPayload asks iOS to wake the app in the background without
// showing anything ("content-available": 1).
var backgroundPayload = []byte(`{"aps":{"content-available":1}}`)

// Push sends n with the retry policy and returns the apns-id APNs assigned.
func (c *Client) Push(ctx context.Context, n *Notification) (string, error) {
	return c.push(ctx, n, true)
}

// push validates n (its payload's JSON syntax too when checkJSON: Send's
// own payloads are JSON by construction) and sends it with retries.
func (c *Client) push(ctx context.Context, n *Notification, checkJSON bool) (string, error) {
	topic := n.Topic
	if topic == "" {
		topic = c.topic
	}
	if err := validate(n, topic); err != nil {
		return "", err
	}
	if checkJSON && !json.Valid(n.Payload) {
		return "", fmt.Errorf("apns: payload is not JSON: %w", push.ErrInvalidTarget)
	}
	var id string
	err := c.retry.Do(ctx, push.APNs, func(ctx context.Context) error {
		var err error
		id, err = c.once(ctx, n, topic)
		return err
	})
	return id, err
}

func validate(n *Notification, topic string) error {
	if l := len(n.DeviceToken); l < MinTokenLen || l > MaxTokenLen || l%2 != 0 || !isHex(n.DeviceToken) {
		return fmt.Errorf("apns: device token must be %d to %d hex digits: %w", MinTokenLen, MaxTokenLen, push.ErrInvalidTarget)
	}
	if topic == "" || len(topic) > MaxTopicLen || !isToken(topic) {
		return fmt.Errorf("apns: missing or malformed topic: %w", push.ErrInvalidTarget)
	}
	if len(n.Payload) > MaxPayloadSize {
		return fmt.Errorf("apns: payload %d bytes over %d: %w", len(n.Payload), MaxPayloadSize, push.ErrInvalidTarget)
	}
	return nil
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// isToken reports whether s is printable ASCII without spaces, which every
// topic (a reverse-DNS name) is, so that it is safe as a header value.
func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

var errPoolClosed = errors.New("apns: client closed")

// once makes one attempt.
func (c *Client) once(ctx context.Context, n *Notification, topic string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/3/device/"+n.DeviceToken, bytes.NewReader(n.Payload))
	if err != nil {
		return "", err
	}
	h := req.Header
	h["Apns-Topic"] = []string{topic}
	if n.PushType != "" {
		h["Apns-Push-Type"] = []string{n.PushType}
	}
	if n.Priority != 0 {
		h["Apns-Priority"] = []string{strconv.Itoa(n.Priority)}
	}
	if !n.Expiration.IsZero() {
		exp := n.Expiration.Unix()
		if exp < 0 {
			exp = 0
		}
		h["Apns-Expiration"] = []string{strconv.FormatInt(exp, 10)}
	}
	if n.ID != "" {
		h["Apns-Id"] = []string{n.ID}
	}
	if n.CollapseID != "" {
		h["Apns-Collapse-Id"] = []string{n.CollapseID}
	}
	h["Content-Type"] = []string{"application/json"}

	l, err := c.pool.get(ctx)
	if err != nil {
		if errors.Is(err, errPoolClosed) {
			return "", err
		}
		return "", push.TransportError(push.APNs, err)
	}
	resp, err := l.pc.cc.RoundTrip(req)
	c.pool.done(l, true, err == nil)
	if err != nil {
		return "", push.TransportError(push.APNs, err)
	}
	defer resp.Body.Close()
	var body []byte
	if resp.StatusCode != http.StatusOK {
		body, err = io.ReadAll(io.LimitReader(resp.Body, MaxResponseBody))
		if err != nil {
			return "", push.TransportError(push.APNs, err)
		}
	}
	return resp.Header.Get("apns-id"), parseResponse(resp.StatusCode, resp.Header, body, c.retry.Now(), c.retry.MaxRetryAfter)
}
