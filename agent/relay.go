package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/custos-uem/custos/connect/router"
	"github.com/custos-uem/custos/relay"
)

// relays returns the relays to reach the Core through: the option, else
// the ones saved at activation.
func (c *Client) relays() []string {
	if len(c.optRelays) > 0 {
		return c.optRelays
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.st != nil {
		return c.st.Relays
	}
	return nil
}

// relayDial wraps base (nil: a net.Dialer): with relays, a connection to
// the Core is a CONNECT to addr ("<server-id>:443") through the first
// relay that carries it (seed: "establishes a connection with UEM using
// an HTTP CONNECT call over port 443"); without, base dials addr.
func (c *Client) relayDial(base func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	if base == nil {
		base = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		rs := c.relays()
		if len(rs) == 0 {
			return base(ctx, network, addr)
		}
		var errs []error
		for _, r := range rs {
			conn, err := base(ctx, network, r)
			if err == nil {
				var tunneled net.Conn
				if tunneled, err = router.HTTPConnect(ctx, conn, addr, nil); err == nil {
					return tunneled, nil
				}
				conn.Close()
			}
			errs = append(errs, fmt.Errorf("relay %s: %w", r, err))
			if ctx.Err() != nil {
				break
			}
		}
		return nil, errors.Join(errs...)
	}
}

// maxLookupAnswer bounds a discovery answer.
const maxLookupAnswer = 16 << 10

// Discover asks the relay at relayURL (http://host:port, or https://)
// which server the user with address activates against, and which relays
// carry it: the first steps of every activation flow ("retrieves the
// server address, sends the address"). hc nil is http.DefaultClient. The
// answer's server URL is "https://<server-id>", reached through the
// relays (Options.Relays).
func Discover(ctx context.Context, hc *http.Client, relayURL, address string) (*relay.LookupResponse, error) {
	u, err := url.Parse(relayURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("relay URL %q: want http(s)://host:port", relayURL)
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	body, _ := json.Marshal(relay.LookupRequest{Address: address})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(u.String(), "/")+relay.PathLookup, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxLookupAnswer+1))
	if err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	if len(b) > maxLookupAnswer {
		return nil, errors.New("discovery: the answer is over its limit")
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("discovery refused: %w", serverError(resp, b))
	}
	var out relay.LookupResponse
	if err := json.Unmarshal(b, &out); err != nil || relay.ValidServerID(out.ServerID) != nil || len(out.Relays) == 0 {
		return nil, errors.New("discovery: the relay's answer does not hold together")
	}
	return &out, nil
}

// ServerURLFor is the server URL of a server reached through relays.
func ServerURLFor(serverID string) string { return "https://" + serverID }
