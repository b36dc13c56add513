// Package oauthx holds what the FCM and WNS clients share about OAuth 2.0
// access tokens: a cache that refreshes shortly before expiry on an
// injectable clock and can drop a token the provider refused, and the
// classification of token-endpoint failures into push errors.
package oauthx

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/custos-uem/custos/push"
)

// Cache caches one access token.
//
// Fetch must return a fresh token on every call (not a cached one: Cache
// is the only cache, so that Invalidate really forces a new token).
// Concurrent callers of Token share one fetch.
type Cache struct {
	Fetch func(ctx context.Context) (*oauth2.Token, error)
	Now   func() time.Time
	// Early is how long before its expiry a token is replaced, so that a
	// token does not expire between our check and the provider's.
	Early time.Duration

	mu  sync.Mutex
	tok *oauth2.Token
}

// Token returns a valid access token, fetching one if needed.
func (c *Cache) Token(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	if c.tok != nil && (c.tok.Expiry.IsZero() || now().Add(c.Early).Before(c.tok.Expiry)) {
		return c.tok.AccessToken, nil
	}
	tok, err := c.Fetch(ctx)
	if err != nil {
		return "", err
	}
	if tok.AccessToken == "" {
		return "", errors.New("token endpoint returned no access_token")
	}
	c.tok = tok
	return tok.AccessToken, nil
}

// Invalidate drops the cached token if it is still access (a provider
// refused it), so that the next Token fetches a new one. A token already
// replaced by a concurrent caller is left alone.
func (c *Cache) Invalidate(access string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tok != nil && c.tok.AccessToken == access {
		c.tok = nil
	}
}

// WithClient returns ctx carrying an HTTP client for x/oauth2 that sends
// through base and binds every request to ctx. x/oauth2's JWT source posts
// without a context, so without this a caller's deadline or cancel would
// not reach the token request.
func WithClient(ctx context.Context, base *http.Client) context.Context {
	c := *base
	rt := base.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	c.Transport = ctxTransport{ctx: ctx, base: rt}
	return context.WithValue(ctx, oauth2.HTTPClient, &c)
}

type ctxTransport struct {
	ctx  context.Context
	base http.RoundTripper
}

func (t ctxTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return t.base.RoundTrip(r.WithContext(t.ctx))
}

// TokenError classifies a failure to get an access token: the token
// endpoint's 429 and 5xx and transport failures are retryable, its other
// answers (invalid_client, invalid_grant: wrong credentials) are not.
func TokenError(provider string, err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil {
		st := re.Response.StatusCode
		reason := "token endpoint"
		if re.ErrorCode != "" {
			reason += ": " + re.ErrorCode
		}
		return &push.ProviderError{Provider: provider, Status: st, Reason: reason,
			Retryable: st == http.StatusTooManyRequests || st >= 500, Err: fmt.Errorf("access token: %w", err)}
	}
	return push.TransportError(provider, fmt.Errorf("access token: %w", err))
}
