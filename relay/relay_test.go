package relay_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custos-uem/custos/license"
	"github.com/custos-uem/custos/push"
	"github.com/custos-uem/custos/relay"
	"github.com/custos-uem/custos/relay/relayd"
)

// relayEnv is a relay on loopback with its database, and the Cores
// linked to it in a test.
type relayEnv struct {
	t      testing.TB
	m      *relayd.Main
	pushed chan push.Target
	cfg    relayd.MainConfig
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newRelay starts a relay; edit adjusts its configuration.
func newRelay(t testing.TB, edit func(*relayd.MainConfig)) *relayEnv {
	t.Helper()
	e := &relayEnv{t: t, pushed: make(chan push.Target, 16)}
	e.cfg = relayd.MainConfig{DataDir: t.TempDir(), LinkListen: "127.0.0.1:0", Listen: "127.0.0.1:0", Logger: quiet(),
		DiscoveryRate: -1,
		PushSender: push.SenderFunc(func(ctx context.Context, tg push.Target) error {
			if tg.Token == "gone" {
				return push.ErrUnregistered
			}
			e.pushed <- tg
			return nil
		})}
	if edit != nil {
		edit(&e.cfg)
	}
	e.start()
	return e
}

func (e *relayEnv) start() {
	e.t.Helper()
	e.m = relayd.NewMain(e.cfg)
	if err := e.m.Run(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { e.m.Close() })
}

// restart stops the relay and starts it again on the same ports.
func (e *relayEnv) restart() {
	e.t.Helper()
	e.cfg.LinkListen, e.cfg.Listen = e.m.LinkAddr(), e.m.DeviceAddr()
	e.m.Close()
	e.start()
}

// core is the Core's side of the link in these tests: its device streams
// are served by handle.
type core struct {
	id, key string
	c       *relay.Client
}

type coreOpt func(*relay.ClientConfig)

// mustCore registers a server (with a licence for it unless the options
// replace it) and links a Client; handle serves each device stream.
func (e *relayEnv) mustCore(handle func(net.Conn), opts ...coreOpt) *core {
	e.t.Helper()
	id, key := relay.NewServerID(), relay.NewKey()
	if err := e.m.Provision(context.Background(), id, relay.HashKey(key)); err != nil {
		e.t.Fatal(err)
	}
	lic, err := e.m.Issuer.Issue(license.License{Organisation: "Example", ServerID: id, DeviceLimit: 10, Expires: time.Now().AddDate(1, 0, 0), Features: []string{"all"}})
	if err != nil {
		e.t.Fatal(err)
	}
	cfg := relay.ClientConfig{Addresses: []string{e.m.LinkAddr()}, ServerID: id, Key: key, License: lic, Instance: "test",
		TLS: &tls.Config{RootCAs: e.m.CA.Pool()}, BackoffMax: 200 * time.Millisecond, Logger: quiet()}
	for _, o := range opts {
		o(&cfg)
	}
	c, err := relay.NewClient(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	c.Start()
	e.t.Cleanup(func() { c.Close() })
	if handle != nil {
		go func() {
			for {
				conn, err := c.Listener().Accept()
				if err != nil {
					return
				}
				go handle(conn)
			}
		}()
	}
	return &core{id: id, key: key, c: c}
}

func mustLinked(t testing.TB, c *relay.Client, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.WaitLinked(ctx, n); err != nil {
		t.Fatal(err)
	}
}

// echo answers every stream with what it receives.
func echo(c net.Conn) {
	defer c.Close()
	io.Copy(c, c)
}

// connect issues CONNECT target on the device port and returns the
// connection and the status code.
func (e *relayEnv) connect(target string) (net.Conn, *bufio.Reader, int) {
	e.t.Helper()
	c, err := net.Dial("tcp", e.m.DeviceAddr())
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		e.t.Fatalf("CONNECT %s: %v", target, err)
	}
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, resp.Body)
	}
	return c, br, resp.StatusCode
}

func TestDeviceStreamReachesItsCore(t *testing.T) {
	e := newRelay(t, nil)
	a := e.mustCore(echo)
	var bGot sync.WaitGroup
	b := e.mustCore(func(c net.Conn) { bGot.Add(1); c.Close() })
	mustLinked(t, a.c, relay.DefaultPoolSize)
	mustLinked(t, b.c, relay.DefaultPoolSize)

	c, br, st := e.connect(a.id + ":443")
	if st != 200 {
		t.Fatalf("CONNECT = %d", st)
	}
	msg := bytes.Repeat([]byte("device bytes "), 10000)
	go c.Write(msg)
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(br, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("echo through the relay: %v (equal %v)", err, bytes.Equal(got, msg))
	}
	// Isolation: B saw nothing of A's device.
	bGot.Wait()
	if e.m.Relay.Sessions(a.id) != relay.DefaultPoolSize || e.m.Relay.Sessions(b.id) != relay.DefaultPoolSize {
		t.Fatalf("sessions: a %d, b %d", e.m.Relay.Sessions(a.id), e.m.Relay.Sessions(b.id))
	}
}

func TestConnectRefusals(t *testing.T) {
	e := newRelay(t, nil)
	linked := e.mustCore(echo)
	mustLinked(t, linked.c, 1)
	offline := relay.NewServerID()
	if err := e.m.Provision(context.Background(), offline, relay.HashKey(relay.NewKey())); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, target string
		want         int
	}{
		{"fail/unknown-server", relay.NewServerID() + ":443", http.StatusNotFound},
		{"fail/registered-not-linked", offline + ":443", http.StatusServiceUnavailable},
		{"fail/wrong-port", linked.id + ":22", http.StatusBadRequest},
		{"fail/not-a-server-id", "169.254.169.254:443", http.StatusBadRequest},
		{"fail/no-port", linked.id, http.StatusBadRequest},
		{"ok/linked", linked.id + ":443", http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, got := e.connect(tc.target); got != tc.want {
				t.Fatalf("CONNECT %s = %d, want %d", tc.target, got, tc.want)
			}
		})
	}
}

// rawLogin sends one length-prefixed message on a TLS connection to the
// link port and reads the welcome (or the connection's end).
func rawLogin(t *testing.T, e *relayEnv, payload []byte, length uint32) (*relay.Welcome, error) {
	t.Helper()
	c, err := tls.Dial("tcp", e.m.LinkAddr(), &tls.Config{RootCAs: e.m.CA.Pool(), ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], length)
	c.Write(append(hdr[:], payload...))
	c.SetReadDeadline(time.Now().Add(15 * time.Second))
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return nil, err
	}
	b := make([]byte, binary.BigEndian.Uint32(hdr[:]))
	if _, err := io.ReadFull(c, b); err != nil {
		return nil, err
	}
	var w relay.Welcome
	return &w, json.Unmarshal(b, &w)
}

func TestLoginRefusals(t *testing.T) {
	e := newRelay(t, nil)
	first := e.mustCore(echo)
	mustLinked(t, first.c, relay.DefaultPoolSize)
	hello := func(h relay.Hello) []byte { b, _ := json.Marshal(h); return b }
	for _, tc := range []struct {
		name     string
		payload  []byte
		length   int
		wantCode string
	}{
		{"fail/wrong-key", hello(relay.Hello{Version: 1, ServerID: first.id, Key: relay.NewKey(), Instance: "intruder"}), -1, "relay_bad_key"},
		{"fail/key-not-a-key", hello(relay.Hello{Version: 1, ServerID: first.id, Key: "hunter2", Instance: "intruder"}), -1, "relay_bad_key"},
		{"fail/unknown-server", hello(relay.Hello{Version: 1, ServerID: relay.NewServerID(), Key: relay.NewKey()}), -1, "relay_unknown_server"},
		{"fail/version", hello(relay.Hello{Version: 9, ServerID: first.id, Key: first.key}), -1, "relay_version"},
		{"fail/garbled", []byte("\x00\xff{not json"), -1, "relay_bad_message"},
		{"fail/unknown-field", []byte(`{"version":1,"server_id":"` + first.id + `","key":"` + first.key + `","admin":true}`), -1, "relay_bad_message"},
		{"fail/oversized", nil, 1 << 30, "relay_message_too_large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			length := uint32(len(tc.payload))
			if tc.length >= 0 {
				length = uint32(tc.length)
			}
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			w, err := rawLogin(t, e, tc.payload, length)
			if err != nil {
				t.Fatalf("no welcome: %v", err)
			}
			if w.Error == nil || w.Error.Code != tc.wantCode {
				t.Fatalf("welcome error %+v, want %s", w.Error, tc.wantCode)
			}
			if tc.length > 0 {
				var after runtime.MemStats
				runtime.ReadMemStats(&after)
				if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
					t.Fatalf("the relay allocated %d bytes for a frame it refused", grew)
				}
			}
		})
	}
	// The rightful Core was never disturbed.
	if got := e.m.Relay.Sessions(first.id); got != relay.DefaultPoolSize {
		t.Fatalf("first Core holds %d sessions after the refusals, want %d", got, relay.DefaultPoolSize)
	}
	if _, _, st := e.connect(first.id + ":443"); st != 200 {
		t.Fatalf("CONNECT to the first Core = %d", st)
	}
}

// TestSecondCoreWithWrongKeyRefused: two Cores claim one server ID; the
// one with the wrong key never links, and its Client says why.
func TestSecondCoreWithWrongKeyRefused(t *testing.T) {
	e := newRelay(t, nil)
	first := e.mustCore(echo)
	mustLinked(t, first.c, relay.DefaultPoolSize)
	impostor, err := relay.NewClient(relay.ClientConfig{Addresses: []string{e.m.LinkAddr()}, ServerID: first.id, Key: relay.NewKey(),
		Instance: "impostor", TLS: &tls.Config{RootCAs: e.m.CA.Pool()}, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	impostor.Start()
	defer impostor.Close()
	time.Sleep(500 * time.Millisecond)
	if impostor.Linked() != 0 {
		t.Fatal("a Core with the wrong key linked")
	}
	if got := e.m.Relay.Sessions(first.id); got != relay.DefaultPoolSize {
		t.Fatalf("sessions of the server: %d, want only the first Core's %d", got, relay.DefaultPoolSize)
	}
}

func TestStaleSessionEvictedOnRelogin(t *testing.T) {
	e := newRelay(t, nil)
	a := e.mustCore(echo, func(c *relay.ClientConfig) { c.PoolSize = 1 })
	mustLinked(t, a.c, 1)
	// The same Core process logs in again on the same slot (it lost its
	// connection without the relay noticing): the old session goes.
	again, err := relay.NewClient(relay.ClientConfig{Addresses: []string{e.m.LinkAddr()}, ServerID: a.id, Key: a.key, PoolSize: 1,
		Instance: "test", TLS: &tls.Config{RootCAs: e.m.CA.Pool()}, Logger: quiet(), BackoffMax: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	again.Start()
	defer again.Close()
	mustLinked(t, again, 1)
	deadline := time.Now().Add(5 * time.Second)
	for a.c.Linked() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if a.c.Linked() != 0 {
		t.Fatal("the stale session was not evicted")
	}
	if got := e.m.Relay.Sessions(a.id); got > 1 {
		t.Fatalf("%d sessions on one slot", got)
	}
}

func TestLicenceChecks(t *testing.T) {
	e := newRelay(t, nil)
	other, err := license.GenerateKey(t.TempDir() + "/other.key")
	if err != nil {
		t.Fatal(err)
	}
	foreign := &license.Issuer{Key: other}
	for _, tc := range []struct {
		name     string
		lic      func(id string) []byte
		wantCode string
	}{
		{"fail/missing", func(string) []byte { return nil }, "license_missing"},
		{"fail/other-server", func(string) []byte {
			b, _ := e.m.Issuer.Issue(license.License{Organisation: "X", ServerID: relay.NewServerID(), DeviceLimit: 5, Expires: time.Now().AddDate(1, 0, 0), Features: []string{"all"}})
			return b
		}, "license_wrong_server"},
		{"fail/untrusted-issuer", func(id string) []byte {
			b, _ := foreign.Issue(license.License{Organisation: "X", ServerID: id, DeviceLimit: 5, Expires: time.Now().AddDate(1, 0, 0), Features: []string{"all"}})
			return b
		}, ""},
		{"ok/valid", func(id string) []byte {
			b, _ := e.m.Issuer.Issue(license.License{Organisation: "X", ServerID: id, DeviceLimit: 5, Expires: time.Now().AddDate(1, 0, 0), Features: []string{"all"}})
			return b
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := e.mustCore(echo, func(c *relay.ClientConfig) { c.License = tc.lic(c.ServerID) })
			mustLinked(t, c.c, 1)
			l, lerr := c.c.License()
			switch {
			case strings.HasPrefix(tc.name, "ok/"):
				if l == nil || l.DeviceLimit != 5 || lerr != nil {
					t.Fatalf("licence %+v, %v", l, lerr)
				}
			case l != nil || lerr == nil:
				t.Fatalf("licence %+v accepted, want a refusal", l)
			case tc.wantCode != "" && !strings.Contains(lerr.Error(), tc.wantCode):
				t.Fatalf("licence error %v, want %s", lerr, tc.wantCode)
			}
		})
	}
}

func TestPushThroughRelay(t *testing.T) {
	e := newRelay(t, nil)
	a := e.mustCore(echo)
	mustLinked(t, a.c, 1)
	ctx := context.Background()
	if err := a.c.Send(ctx, push.Target{Provider: push.APNs, Token: "abcd", PushMagic: "magic"}); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-e.pushed:
		if got.Token != "abcd" || got.PushMagic != "magic" || got.Provider != push.APNs {
			t.Fatalf("the relay sent %+v", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the relay sent nothing")
	}
	// The provider's verdict comes back as the push package's error, so
	// the Core drops a dead token as on a direct send.
	if err := a.c.Send(ctx, push.Target{Provider: push.APNs, Token: "gone"}); !errors.Is(err, push.ErrUnregistered) {
		t.Fatalf("Send of a dead token: %v, want ErrUnregistered", err)
	}
}

func TestRelayWithoutPushCredentialsSaysSo(t *testing.T) {
	e := newRelay(t, func(c *relayd.MainConfig) { c.PushSender = nil })
	a := e.mustCore(echo)
	mustLinked(t, a.c, 1)
	if err := a.c.Send(context.Background(), push.Target{Provider: push.FCM, Token: "t"}); !errors.Is(err, push.ErrNotConfigured) {
		t.Fatalf("Send: %v, want ErrNotConfigured", err)
	}
}

func lookup(t *testing.T, e *relayEnv, body string) (int, string) {
	t.Helper()
	resp, err := http.Post("http://"+e.m.DeviceAddr()+relay.PathLookup, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// withoutRequestID drops the request ID from an error body so that two
// answers can be compared.
func withoutRequestID(s string) string {
	var v map[string]map[string]any
	if json.Unmarshal([]byte(s), &v) != nil {
		return s
	}
	delete(v["error"], "request_id")
	b, _ := json.Marshal(v)
	return string(b)
}

func TestDiscovery(t *testing.T) {
	e := newRelay(t, nil)
	a := e.mustCore(echo, func(c *relay.ClientConfig) {
		c.Routes = func(context.Context) (*relay.RoutesRequest, error) {
			return &relay.RoutesRequest{Addresses: []string{"Alice@Example.com"}, Domains: []string{"corp.example"}}, nil
		}
	})
	mustLinked(t, a.c, 1)
	if err := a.c.SyncRoutes(context.Background()); err != nil {
		t.Fatal(err)
	}
	gone := e.mustCore(echo, func(c *relay.ClientConfig) {
		c.Routes = func(context.Context) (*relay.RoutesRequest, error) {
			return &relay.RoutesRequest{Addresses: []string{"bob@example.com"}}, nil
		}
	})
	mustLinked(t, gone.c, 1)
	if err := gone.c.SyncRoutes(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv, err := e.m.DB.Server(context.Background(), gone.id)
	if err != nil {
		t.Fatal(err)
	}
	srv.Disabled = true
	if err := e.m.DB.UpdateServer(context.Background(), srv); err != nil {
		t.Fatal(err)
	}

	_, unknown := lookup(t, e, `{"address":"nobody@example.com"}`)
	for _, tc := range []struct {
		name, body string
		want       int
	}{
		{"fail/not-json", `{"address":`, http.StatusBadRequest},
		{"fail/unknown-field", `{"address":"alice@example.com","server":"x"}`, http.StatusBadRequest},
		{"fail/no-at", `{"address":"alice"}`, http.StatusBadRequest},
		{"fail/too-long", `{"address":"` + strings.Repeat("a", 300) + `@example.com"}`, http.StatusBadRequest},
		{"fail/oversized-body", `{"address":"` + strings.Repeat("a", 8000) + `"}`, http.StatusRequestEntityTooLarge},
		{"fail/unknown-address", `{"address":"nobody@example.com"}`, http.StatusNotFound},
		{"fail/disabled-server-same-answer", `{"address":"bob@example.com"}`, http.StatusNotFound},
		{"ok/address-any-case", `{"address":"ALICE@example.com"}`, http.StatusOK},
		{"ok/domain", `{"address":"carol@corp.example"}`, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, body := lookup(t, e, tc.body)
			if st != tc.want {
				t.Fatalf("lookup = %d %s, want %d", st, body, tc.want)
			}
			if st == http.StatusNotFound && withoutRequestID(body) != withoutRequestID(unknown) {
				t.Fatalf("answer %s differs from the unknown address's %s: it tells them apart", body, unknown)
			}
			if st == http.StatusOK {
				var r relay.LookupResponse
				json.Unmarshal([]byte(body), &r)
				if r.ServerID != a.id || len(r.Relays) != 1 || r.Relays[0] != e.m.DeviceAddr() {
					t.Fatalf("route %+v, want server %s via %s", r, a.id, e.m.DeviceAddr())
				}
			}
		})
	}
	// The relay's database holds no address in clear.
	if b, err := os.ReadFile(e.cfg.DataDir + "/custos.db"); err == nil && bytes.Contains(bytes.ToLower(b), []byte("alice@example.com")) {
		t.Fatal("the relay stored an address in clear")
	}
}

func TestDiscoveryRateLimited(t *testing.T) {
	e := newRelay(t, func(c *relayd.MainConfig) { c.DiscoveryRate = 1 })
	limited := false
	for i := 0; i < 20 && !limited; i++ {
		st, _ := lookup(t, e, `{"address":"nobody@example.com"}`)
		limited = st == http.StatusTooManyRequests
	}
	if !limited {
		t.Fatal("20 lookups in a row from one address were all answered")
	}
}

// TestDiscoverySlowloris: a client that trickles its request header is
// cut off at the header timeout, and others are served meanwhile.
func TestDiscoverySlowloris(t *testing.T) {
	e := newRelay(t, func(c *relayd.MainConfig) { c.ReadHeaderTimeout = 300 * time.Millisecond })
	c, err := net.Dial("tcp", e.m.DeviceAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	closed := make(chan error, 1)
	go func() {
		for _, b := range []byte("POST /discovery/v1/lookup HTTP/1.1\r\nHost: x\r\nX-Slow: ") {
			if _, err := c.Write([]byte{b}); err != nil {
				closed <- err
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		closed <- nil
	}()
	if st, _ := lookup(t, e, `{"address":"nobody@example.com"}`); st != http.StatusNotFound {
		t.Fatalf("a lookup beside the slow client = %d", st)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(c); err != nil {
		t.Fatalf("the slow client was not cut off: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("cut off after %v", d)
	}
	// A client that sends nothing at all is cut off too.
	silent, err := net.Dial("tcp", e.m.DeviceAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	silent.SetReadDeadline(time.Now().Add(15 * time.Second))
	if _, err := io.ReadAll(silent); err != nil {
		t.Fatalf("a silent client was not cut off: %v", err)
	}
}

// TestRelayMetrics: the operator sees the links and the refused logins.
func TestRelayMetrics(t *testing.T) {
	e := newRelay(t, func(c *relayd.MainConfig) { c.MetricsListen = "127.0.0.1:0" })
	a := e.mustCore(echo)
	mustLinked(t, a.c, relay.DefaultPoolSize)
	hello, _ := json.Marshal(relay.Hello{Version: 1, ServerID: a.id, Key: relay.NewKey(), Instance: "intruder"})
	rawLogin(t, e, hello, uint32(len(hello)))
	resp, err := http.Get(e.m.MetricsURL())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, want := range []string{"custos_relay_links 2", `custos_relay_logins_total{outcome="relay_bad_key"} 1`, `custos_relay_logins_total{outcome="ok"} 2`} {
		if !strings.Contains(string(b), want) {
			t.Fatalf("metrics lack %q:\n%s", want, b)
		}
	}
}
