// Package fcm is a client of Firebase Cloud Messaging's HTTP v1 API, used to
// wake the Android agent.
//
// Send: https://firebase.google.com/docs/reference/fcm/rest/v1/projects.messages/send
// Errors: https://firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode
// Auth: a service account's JWT bearer grant (RFC 7523),
// https://developers.google.com/identity/protocols/oauth2/service-account#httprest
//
// The request is one small JSON POST, so we write it with net/http rather
// than pull google.golang.org/api/fcm/v1 (and its gRPC-heavy dependency
// tree); the OAuth part uses golang.org/x/oauth2/jwt, which is what
// google.JWTConfigFromJSON builds, without the metadata-server dependency of
// package google.
package fcm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/jwt"

	"github.com/custos-uem/custos/push"
	"github.com/custos-uem/custos/push/internal/oauthx"
)

// Endpoints and names of the service.
const (
	DefaultEndpoint = "https://fcm.googleapis.com"
	DefaultTokenURL = "https://oauth2.googleapis.com/token"
	// Scope is the OAuth scope for sending messages.
	Scope = "https://www.googleapis.com/auth/firebase.messaging"
)

// Wire limits.
const (
	// MaxDataSize is the largest data payload FCM accepts ("The maximum
	// payload for both message types is 4096 bytes",
	// https://firebase.google.com/docs/cloud-messaging/concept-options).
	// We count keys and values, as FCM does.
	MaxDataSize = 4096
	// MaxTokenLen bounds a registration token (they are ~150-200
	// characters); anything longer is not a token.
	MaxTokenLen = 4096
	// MaxResponseBody bounds what we read of a response.
	MaxResponseBody = 64 << 10
	// MaxServiceAccountSize bounds the service-account JSON we parse.
	MaxServiceAccountSize = 64 << 10
	// tokenEarly renews the access token (valid 1 h) this long before expiry.
	tokenEarly = 2 * time.Minute
)

// DefaultData is the data payload of a wake-up hint: the agent only needs
// to know that it should poll.
var DefaultData = map[string]string{"custos": "sync"}

// Config configures a Client.
type Config struct {
	// ServiceAccountJSON is the Google service-account key file
	// (type "service_account": client_email, private_key, token_uri...).
	ServiceAccountJSON []byte
	// ProjectID defaults to the service account's project_id.
	ProjectID string
	// Endpoint defaults to DefaultEndpoint; TokenURL to the key file's
	// token_uri. Tests point both at fcmtest.
	Endpoint string
	TokenURL string
	// HTTPClient defaults to a client with a 30 s timeout.
	HTTPClient *http.Client
	// Data is sent as the message's data; default DefaultData.
	Data map[string]string
	// Retry is the retry policy; zero means push's defaults.
	Retry push.RetryPolicy
	// Now is the clock for token expiry; default time.Now.
	Now func() time.Time
}

// ServiceAccount is the subset of a service-account key file we use.
type ServiceAccount struct {
	Type         string `json:"type"`
	ProjectID    string `json:"project_id"`
	PrivateKeyID string `json:"private_key_id"`
	PrivateKey   string `json:"private_key"`
	ClientEmail  string `json:"client_email"`
	TokenURI     string `json:"token_uri"`
}

// Client sends FCM messages. It is safe for concurrent use.
type Client struct {
	sendURL string
	hc      *http.Client
	tokens  *oauthx.Cache
	data    map[string]string
	retry   push.RetryPolicy
}

// New returns a Client.
func New(cfg Config) (*Client, error) {
	if len(cfg.ServiceAccountJSON) == 0 {
		return nil, fmt.Errorf("fcm: no service account: %w", push.ErrNotConfigured)
	}
	if len(cfg.ServiceAccountJSON) > MaxServiceAccountSize {
		return nil, fmt.Errorf("fcm: service account JSON over %d bytes", MaxServiceAccountSize)
	}
	var sa ServiceAccount
	if err := json.Unmarshal(cfg.ServiceAccountJSON, &sa); err != nil {
		return nil, fmt.Errorf("fcm: service account JSON: %w", err)
	}
	if sa.Type != "service_account" || sa.ClientEmail == "" || sa.PrivateKey == "" {
		return nil, errors.New("fcm: not a service-account key file (type, client_email, private_key)")
	}
	project := cfg.ProjectID
	if project == "" {
		project = sa.ProjectID
	}
	if !validProject(project) {
		return nil, fmt.Errorf("fcm: invalid project ID %q", project)
	}
	endpoint := cfg.Endpoint
	if endpoint == "" {
		endpoint = DefaultEndpoint
	}
	tokenURL := cfg.TokenURL
	if tokenURL == "" {
		tokenURL = sa.TokenURI
	}
	if tokenURL == "" {
		tokenURL = DefaultTokenURL
	}
	for _, u := range []string{endpoint, tokenURL} {
		if p, err := url.Parse(u); err != nil || p.Scheme != "https" || p.Host == "" {
			return nil, fmt.Errorf("fcm: %q is not an https URL", u)
		}
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	jc := &jwt.Config{
		Email:        sa.ClientEmail,
		PrivateKey:   []byte(sa.PrivateKey),
		PrivateKeyID: sa.PrivateKeyID,
		Scopes:       []string{Scope},
		TokenURL:     tokenURL,
	}
	data := cfg.Data
	if data == nil {
		data = DefaultData
	}
	size := 0
	for k, v := range data {
		size += len(k) + len(v)
	}
	if size > MaxDataSize {
		return nil, fmt.Errorf("fcm: data payload %d bytes over %d", size, MaxDataSize)
	}
	return &Client{
		sendURL: strings.TrimSuffix(endpoint, "/") + "/v1/projects/" + url.PathEscape(project) + "/messages:send",
		hc:      hc,
		tokens: &oauthx.Cache{
			// A fresh TokenSource per fetch: its own reuse layer would
			// hide Invalidate.
			Fetch: func(ctx context.Context) (*oauth2.Token, error) {
				return jc.TokenSource(oauthx.WithClient(ctx, hc)).Token()
			},
			Now:   cfg.Now,
			Early: tokenEarly,
		},
		data:  data,
		retry: cfg.Retry.WithDefaults(),
	}, nil
}

// validProject accepts Google Cloud project IDs: lowercase letters,
// digits and hyphens, optionally "domain.tld:" prefixed (legacy IDs).
func validProject(p string) bool {
	if p == "" || len(p) > 100 {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

// message is the body of projects.messages.send.
type message struct {
	Message struct {
		Token   string            `json:"token"`
		Data    map[string]string `json:"data,omitempty"`
		Android struct {
			// AndroidMessagePriority: "NORMAL" or "HIGH"; HIGH wakes a
			// dozing device, which a management hint needs.
			Priority string `json:"priority"`
		} `json:"android"`
	} `json:"message"`
}

// Send sends a high-priority data message to the registration token t.Token.
func (c *Client) Send(ctx context.Context, t push.Target) error {
	if t.Token == "" || len(t.Token) > MaxTokenLen || strings.ContainsAny(t.Token, " \t\r\n") {
		return fmt.Errorf("fcm: malformed registration token: %w", push.ErrInvalidTarget)
	}
	var m message
	m.Message.Token = t.Token
	m.Message.Data = c.data
	m.Message.Android.Priority = "HIGH"
	body, err := json.Marshal(&m)
	if err != nil {
		return err
	}
	return c.retry.Do(ctx, push.FCM, func(ctx context.Context) error {
		return c.once(ctx, body)
	})
}

// once makes one attempt; a 401 (our access token expired or was revoked)
// is answered by fetching a new token and sending again, once.
func (c *Client) once(ctx context.Context, body []byte) error {
	for try := 0; ; try++ {
		access, err := c.tokens.Token(ctx)
		if err != nil {
			return oauthx.TokenError(push.FCM, err)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.sendURL, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+access)
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
		resp, err := c.hc.Do(req)
		if err != nil {
			return push.TransportError(push.FCM, err)
		}
		rb, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBody))
		resp.Body.Close()
		if err != nil {
			return push.TransportError(push.FCM, err)
		}
		if resp.StatusCode == http.StatusUnauthorized && try == 0 {
			c.tokens.Invalidate(access)
			continue
		}
		return parseResponse(resp.StatusCode, resp.Header, rb, c.retry.Now(), c.retry.MaxRetryAfter)
	}
}
