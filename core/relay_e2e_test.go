package core_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custos-uem/custos/agent"
	"github.com/custos-uem/custos/agent/sim"
	"github.com/custos-uem/custos/connect/router/routertest"
	"github.com/custos-uem/custos/core"
	"github.com/custos-uem/custos/license"
	"github.com/custos-uem/custos/push"
	"github.com/custos-uem/custos/relay"
	"github.com/custos-uem/custos/relay/relayd"
	"github.com/custos-uem/custos/sqlstore/sqltest"
)

// relayed is a Core whose devices reach it only through a relay, the
// relay, and the simulated devices woken by the relay's pushes.
type relayed struct {
	e  *env
	rm *relayd.Main

	mu      sync.Mutex
	byToken map[string]*sim.Device
	pushes  int
}

// newRelayed starts a relay and a Core linked to it through proxy ("" for
// direct) with DevicesViaRelayOnly. The relay holds the push credentials
// (here a sender that wakes the simulated device); the Core holds none.
// lic, when set, issues the Core's licence instead of a development one.
func newRelayed(t *testing.T, backend, proxy string, lic *license.License) *relayed {
	t.Helper()
	r := &relayed{byToken: map[string]*sim.Device{}}
	r.rm = relayd.NewMain(relayd.MainConfig{DataDir: t.TempDir(), LinkListen: "127.0.0.1:0", Listen: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), DiscoveryRate: -1,
		PushSender: push.SenderFunc(func(ctx context.Context, tg push.Target) error {
			r.mu.Lock()
			d := r.byToken[tg.Token]
			r.pushes++
			r.mu.Unlock()
			if d == nil {
				return push.ErrUnregistered
			}
			d.Wake()
			return nil
		})})
	if err := r.rm.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.rm.Close() })
	r.e = newEnvWith(t, backend, func(c *core.Config) {
		id, dev, err := r.rm.Enroll(context.Background(), c.DataDir, lic == nil)
		if err != nil {
			t.Fatal(err)
		}
		if lic != nil {
			l := *lic
			l.ServerID = id
			if dev, err = r.rm.Issuer.Issue(l); err != nil {
				t.Fatal(err)
			}
		}
		c.Relay = core.RelayConfig{Addresses: []string{r.rm.LinkAddr()}, RootCAs: r.rm.CA.Pool(), Proxy: proxy,
			License: dev, DevicesViaRelayOnly: true}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := r.e.m.Relay.WaitLinked(ctx, 2); err != nil {
		t.Fatal(err)
	}
	return r
}

// onlyTo is a dialer that reaches addr and nothing else: the device's
// only route to the Core is the relay.
func onlyTo(addr string) func(ctx context.Context, network, a string) (net.Conn, error) {
	return func(ctx context.Context, network, a string) (net.Conn, error) {
		if a != addr {
			return nil, fmt.Errorf("test network: no route to %s", a)
		}
		var d net.Dialer
		return d.DialContext(ctx, network, a)
	}
}

// activate discovers the Core through the relay, then activates a
// simulated iPhone that polls hourly: anything it does sooner came
// through a push.
func (r *relayed) activate(t *testing.T, email, password string, seed uint64) (*agent.Client, *sim.Device, string, error) {
	t.Helper()
	e := r.e
	ctx := context.Background()
	if err := e.m.Relay.SyncRoutes(ctx); err != nil {
		t.Fatal(err)
	}
	route, err := agent.Discover(ctx, nil, "http://"+r.rm.DeviceAddr(), email)
	if err != nil {
		t.Fatal(err)
	}
	if route.ServerID != e.m.ServerID {
		t.Fatalf("discovery sent the device to %s, want %s", route.ServerID, e.m.ServerID)
	}
	dev, err := sim.New("ios", seed)
	if err != nil {
		t.Fatal(err)
	}
	provider, token, _ := dev.FakePush()
	opts := dev.Bind(agent.Options{ServerURL: agent.ServerURLFor(route.ServerID), Relays: route.Relays, ServerCAs: e.roots,
		Store: agent.NewMemStore(), DialContext: onlyTo(r.rm.DeviceAddr()), PollInterval: time.Hour, Wait: agent.WaitNever,
		PushProvider: provider, PushToken: token, PushTopic: "com.example.custos.agent"})
	c, err := agent.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	dev.Attach(c)
	a, err := c.Activate(ctx, email, password)
	if err != nil {
		return nil, nil, "", err
	}
	r.mu.Lock()
	r.byToken[token] = dev
	r.mu.Unlock()
	return c, dev, a.DeviceID, nil
}

// TestDeviceThroughRelayOnly is the issue's end-to-end test: the Core
// serves no device on its own listener; an agent whose only route is the
// relay discovers its server, activates, and a lock sent through the API
// reaches it by a push the relay sends, and is acknowledged — directly,
// behind Debian's dante (SOCKS5) and behind squid (HTTP CONNECT).
func TestDeviceThroughRelayOnly(t *testing.T) {
	for _, route := range []string{"direct", "dante-socks5", "squid-http-connect"} {
		t.Run(route, func(t *testing.T) {
			proxy, proxyAddr := "", ""
			switch route {
			case "dante-socks5":
				proxyAddr = routertest.StartDante(t)
				proxy = "socks5://" + proxyAddr
			case "squid-http-connect":
				proxyAddr = routertest.StartSquid(t)
				proxy = "http://" + proxyAddr
			}
			r := newRelayed(t, sqltest.Backends(t)[0], proxy, nil)
			e := r.e
			u, pw := e.mustUser("alice@example.com")

			// The Core's own listener refuses devices.
			resp, err := e.hc.Post(e.m.URL()+"/device/v1/activate", "application/json", strings.NewReader(activateBody(u.Email, pw, "hw")))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound {
				t.Fatalf("activation on the Core's listener = %d, want 404", resp.StatusCode)
			}

			c, dev, deviceID, err := r.activate(t, u.Email, pw, 1)
			if err != nil {
				t.Fatalf("activate through the relay: %v", err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- c.Run(ctx) }()
			t.Cleanup(func() { cancel(); <-done })

			var cmd struct {
				ID string `json:"id"`
			}
			if st := e.api("POST", "/api/v1/devices/"+deviceID+"/commands", map[string]string{"type": "lock"}, &cmd); st != 201 {
				t.Fatalf("send lock: %d", st)
			}
			eventually(t, "lock acknowledged through the relay", func() (bool, string) {
				var got struct {
					Status string `json:"status"`
				}
				e.api("GET", "/api/v1/commands/"+cmd.ID, nil, &got)
				return dev.Locked() && got.Status == "acknowledged", fmt.Sprintf("locked %v, command %+v", dev.Locked(), got)
			})
			r.mu.Lock()
			pushes := r.pushes
			r.mu.Unlock()
			if pushes == 0 {
				t.Fatal("the lock arrived without a push through the relay")
			}
			if proxyAddr != "" {
				// The link really went through the proxy: it logged the
				// tunnels to the relay's link port (squid when they close).
				e.m.Relay.Close()
				eventually(t, "the proxy logged the link", func() (bool, string) {
					return routertest.Carried(t, proxyAddr, r.rm.LinkAddr()), ""
				})
			}
		})
	}
}

// TestLicenceLimitsActivations: with a licence for one device, the second
// activation is refused with a message saying so, and the first device
// stays managed.
func TestLicenceLimitsActivations(t *testing.T) {
	r := newRelayed(t, sqltest.Backends(t)[0], "", &license.License{Organisation: "Example", DeviceLimit: 1,
		Expires: time.Now().AddDate(1, 0, 0), Features: []string{"all"}})
	e := r.e
	ua, pwa := e.mustUser("a@example.com")
	ub, pwb := e.mustUser("b@example.com")
	first, _, _, err := r.activate(t, ua.Email, pwa, 1)
	if err != nil {
		t.Fatalf("first activation: %v", err)
	}
	_, _, _, err = r.activate(t, ub.Email, pwb, 2)
	var se *agent.ServerError
	if !errors.As(err, &se) || se.Code != "license_device_limit" {
		t.Fatalf("second activation: %v, want license_device_limit", err)
	}
	if _, err := first.Checkin(context.Background()); err != nil {
		t.Fatalf("the licensed device no longer checks in: %v", err)
	}
}

// TestTwoRelaysOnOnePostgreSQL: two relay processes share one PostgreSQL
// database. Both answer discovery with both relays; the Core's link pool
// spans the two; and when one relay stops, the device keeps reaching its
// Core through the other.
func TestTwoRelaysOnOnePostgreSQL(t *testing.T) {
	if os.Getenv(sqltest.EnvPostgres) == "" {
		t.Fatal(sqltest.EnvPostgres + " must be set: relays scale out on PostgreSQL")
	}
	dsn := sqltest.DSN(t, "postgres")
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	sent := make(chan push.Target, 8)
	start := func(dir string) *relayd.Main {
		t.Helper()
		m := relayd.NewMain(relayd.MainConfig{DataDir: dir, Database: dsn, LinkListen: "127.0.0.1:0", Listen: "127.0.0.1:0",
			Logger: quiet, DiscoveryRate: -1, PushSender: push.SenderFunc(func(ctx context.Context, tg push.Target) error {
				sent <- tg
				return nil
			})})
		if err := m.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		return m
	}
	dirA, dirB := t.TempDir(), t.TempDir()
	a := start(dirA)
	// The relays of one group share the address key (else neither finds
	// the other's routes) and trust the same licence issuer.
	for _, f := range []string{relayd.AddressKeyFile, relayd.IssuerKeyFile} {
		b, err := os.ReadFile(filepath.Join(dirA, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dirB, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	b := start(dirB)
	roots := a.CA.Pool()
	roots.AppendCertsFromPEM(b.CA.CertPEM)

	e := newEnvWith(t, sqltest.Backends(t)[0], func(c *core.Config) {
		_, lic, err := a.Enroll(context.Background(), c.DataDir, true)
		if err != nil {
			t.Fatal(err)
		}
		c.Relay = core.RelayConfig{Addresses: []string{a.LinkAddr(), b.LinkAddr()}, RootCAs: roots, License: lic, DevicesViaRelayOnly: true}
	})
	ctx := context.Background()
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := e.m.Relay.WaitLinked(wctx, 2*2); err != nil {
		t.Fatal(err)
	}
	u, pw := e.mustUser("alice@example.com")
	if err := e.m.Relay.SyncRoutes(ctx); err != nil {
		t.Fatal(err)
	}
	var route *relay.LookupResponse
	for _, m := range []*relayd.Main{a, b} {
		r, err := agent.Discover(ctx, nil, "http://"+m.DeviceAddr(), u.Email)
		if err != nil {
			t.Fatalf("discovery at %s: %v", m.DeviceAddr(), err)
		}
		got := strings.Join(r.Relays, ",")
		if !strings.Contains(got, a.DeviceAddr()) || !strings.Contains(got, b.DeviceAddr()) || r.ServerID != e.m.ServerID {
			t.Fatalf("discovery at %s: %+v, want server %s through both relays", m.DeviceAddr(), r, e.m.ServerID)
		}
		route = r
	}
	// The device lists relay A first, so it starts there.
	relays := []string{a.DeviceAddr(), b.DeviceAddr()}
	dev, err := sim.New("android", 7)
	if err != nil {
		t.Fatal(err)
	}
	c, err := agent.New(dev.Bind(agent.Options{ServerURL: agent.ServerURLFor(route.ServerID), Relays: relays, ServerCAs: e.roots,
		Store: agent.NewMemStore(), Wait: agent.WaitNever}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if _, err := c.Activate(ctx, u.Email, pw); err != nil {
		t.Fatalf("activate through relay A: %v", err)
	}
	// Push goes through either relay's credentials.
	if err := e.m.Relay.Send(ctx, push.Target{Provider: push.FCM, Token: "tok"}); err != nil {
		t.Fatalf("push through a relay: %v", err)
	}
	<-sent

	a.Close()
	c.Close() // drop the idle connection through A: the next check-in dials again
	if _, err := c.Checkin(ctx); err != nil {
		t.Fatalf("check-in with relay A gone: %v", err)
	}
	if err := e.m.Relay.Send(ctx, push.Target{Provider: push.FCM, Token: "tok"}); err != nil {
		t.Fatalf("push with relay A gone: %v", err)
	}
}
