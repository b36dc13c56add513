package router_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/custos-uem/custos/connect/router"
	"github.com/custos-uem/custos/connect/router/routertest"
)

func TestNew(t *testing.T) {
	tests := []struct {
		name, url, wantErr string
	}{
		{name: "fail/https proxy", url: "https://proxy.example:443", wantErr: `scheme "https" is not supported`},
		{name: "fail/socks4", url: "socks4://proxy.example:1080", wantErr: "socks5://host:port"},
		{name: "fail/no scheme", url: "proxy.example:3128", wantErr: "http://[user:pass@]host:port"},
		{name: "fail/socks5 with credentials", url: "socks5://u:secret@proxy.example:1080", wantErr: "SOCKS5 authentication is not supported"},
		{name: "fail/path", url: "http://proxy.example:3128/x", wantErr: "scheme://host:port only"},
		{name: "fail/no host", url: "socks5://:1080", wantErr: "scheme://host:port only"},
		{name: "fail/bad URL", url: "http://proxy.example:port", wantErr: "invalid port"},
		{name: "ok/empty", url: ""},
		{name: "ok/direct", url: "direct"},
		{name: "ok/socks5", url: "socks5://proxy.example:1080"},
		{name: "ok/socks5h", url: "socks5h://proxy.example"},
		{name: "ok/http with credentials", url: "http://u:p@proxy.example:3128"},
		{name: "ok/http default port", url: "http://proxy.example/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := router.New(tt.url, nil)
			if tt.wantErr == "" {
				if err != nil || d == nil {
					t.Fatalf("New(%q) = %v, %v", tt.url, d, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New(%q) error %v, want it to contain %q", tt.url, err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error repeats the password: %v", err)
			}
		})
	}
}

// TestDialThroughRealProxies: the Core's two proxy paths against the
// proxies operators run, dante (SOCKS5) and squid (HTTP CONNECT), to an
// address and to a host name the proxy resolves.
func TestDialThroughRealProxies(t *testing.T) {
	echo := routertest.StartEcho(t)
	_, port, _ := net.SplitHostPort(echo)
	proxies := map[string]string{
		"socks5 dante": "socks5://" + routertest.StartDante(t),
		"http squid":   "http://" + routertest.StartSquid(t),
	}
	for name, proxyURL := range proxies {
		for _, target := range []string{echo, net.JoinHostPort("localhost", port)} {
			t.Run("ok/"+name+"/"+target, func(t *testing.T) {
				c := routertest.MustDial(t, routertest.MustNew(t, proxyURL), target)
				routertest.MustEcho(t, c, []byte("hello through the proxy"))
				// 1 MiB both ways: a tunnel, not a handshake that happens
				// to pass a few bytes.
				routertest.MustEcho(t, c, make([]byte, 1<<20))
				// Half-close: the echo server sees EOF, answers it
				// with its own, and the tunnel carries both.
				c.(interface{ CloseWrite() error }).CloseWrite()
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				if n, err := io.Copy(io.Discard, c); err != nil || n != 0 {
					t.Fatalf("after CloseWrite: read %d bytes, %v; want EOF", n, err)
				}
			})
		}
	}
}

func TestDialFailures(t *testing.T) {
	echo := routertest.StartEcho(t)
	_, echoPort, _ := net.SplitHostPort(echo)
	var port int
	for _, c := range echoPort {
		port = port*10 + int(c-'0')
	}

	t.Run("fail/squid refuses the port with 403", func(t *testing.T) {
		d := routertest.MustNew(t, "http://"+routertest.StartSquid(t, port))
		_, err := d.DialContext(context.Background(), "tcp", echo)
		var pe *router.ProxyError
		if !errors.As(err, &pe) || pe.Status != http.StatusForbidden || pe.Msg != "forbidden" || !strings.HasPrefix(pe.Proxy, "http://127.0.0.1:") {
			t.Fatalf("err = %v, want *ProxyError 403", err)
		}
	})
	t.Run("fail/our router refuses loopback with reply 0x02", func(t *testing.T) {
		d := routertest.MustNew(t, "socks5://"+routertest.MustServe(t, &router.Server{}))
		_, err := d.DialContext(context.Background(), "tcp", echo)
		var pe *router.ProxyError
		if !errors.As(err, &pe) || pe.Status != router.RepNotAllowed || pe.Msg != "connection not allowed by ruleset" {
			t.Fatalf("err = %v, want *ProxyError 0x02", err)
		}
		if !strings.Contains(err.Error(), "SOCKS5 reply 0x02") {
			t.Errorf("message %q lacks the reply code", err)
		}
	})
	t.Run("fail/dante refuses a closed port", func(t *testing.T) {
		d := routertest.MustNew(t, "socks5://"+routertest.StartDante(t))
		_, err := d.DialContext(context.Background(), "tcp", closedPortAddr(t))
		var pe *router.ProxyError
		if !errors.As(err, &pe) || pe.Status != router.RepConnectionRefused {
			t.Fatalf("err = %v, want *ProxyError 0x05", err)
		}
	})
	for _, scheme := range []string{"socks5", "http"} {
		t.Run("fail/"+scheme+" proxy unreachable", func(t *testing.T) {
			_, err := routertest.MustNew(t, scheme+"://"+closedPortAddr(t)).DialContext(context.Background(), "tcp", echo)
			var pe *router.ProxyError
			if !errors.Is(err, syscall.ECONNREFUSED) || errors.As(err, &pe) {
				t.Fatalf("err = %v, want connection refused by the proxy's address", err)
			}
		})
	}

	garbage := func(c net.Conn) {
		c.Read(make([]byte, 512))
		c.Write([]byte("SSH-2.0-OpenSSH_9.2\r\n\r\n"))
		c.Close()
	}
	hang := func(c net.Conn) { io.Copy(io.Discard, c) }
	hugeHeader := func(c net.Conn) {
		c.Read(make([]byte, 512))
		c.Write([]byte("HTTP/1.1 200 Connection established\r\nX-Pad: " + strings.Repeat("a", router.MaxConnectResponse) + "\r\n\r\n"))
		io.Copy(io.Discard, c)
	}
	endless := func(c net.Conn) {
		c.Read(make([]byte, 512))
		c.Write([]byte("HTTP/1.1 200 Connection established\r\n"))
		line := []byte("X-Pad: " + strings.Repeat("a", 100) + "\r\n")
		for range router.MaxConnectResponse { // bounded: the client stops reading long before
			if _, err := c.Write(line); err != nil {
				return
			}
		}
	}
	hangUp := func(c net.Conn) {
		c.Read(make([]byte, 512))
		c.Close()
	}
	for _, scheme := range []string{"socks5", "http"} {
		t.Run("fail/"+scheme+" proxy answers garbage", func(t *testing.T) {
			_, err := routertest.MustNew(t, scheme+"://"+routertest.MustFakeProxy(t, garbage)).DialContext(context.Background(), "tcp", echo)
			if !errors.Is(err, router.ErrProtocol) {
				t.Fatalf("err = %v, want ErrProtocol", err)
			}
		})
		t.Run("fail/"+scheme+" proxy hangs up", func(t *testing.T) {
			_, err := routertest.MustNew(t, scheme+"://"+routertest.MustFakeProxy(t, hangUp)).DialContext(context.Background(), "tcp", echo)
			if !errors.Is(err, router.ErrProtocol) {
				t.Fatalf("err = %v, want ErrProtocol", err)
			}
		})
		t.Run("fail/"+scheme+" proxy hangs past the deadline", func(t *testing.T) {
			d := routertest.MustNew(t, scheme+"://"+routertest.MustFakeProxy(t, hang))
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			start := time.Now()
			_, err := d.DialContext(ctx, "tcp", echo)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("err = %v, want context.DeadlineExceeded", err)
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Fatalf("returned after %v: the deadline was not respected", took)
			}
		})
		t.Run("fail/"+scheme+" proxy hangs, ctx cancelled", func(t *testing.T) {
			d := routertest.MustNew(t, scheme+"://"+routertest.MustFakeProxy(t, hang))
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(100*time.Millisecond, cancel)
			_, err := d.DialContext(ctx, "tcp", echo)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled", err)
			}
		})
	}
	for name, fake := range map[string]func(net.Conn){"in one piece": hugeHeader, "line by line": endless} {
		t.Run("fail/http response header over MaxConnectResponse "+name, func(t *testing.T) {
			_, err := routertest.MustNew(t, "http://"+routertest.MustFakeProxy(t, fake)).DialContext(context.Background(), "tcp", echo)
			if !errors.Is(err, router.ErrResponseTooLarge) {
				t.Fatalf("err = %v, want ErrResponseTooLarge", err)
			}
		})
	}
	t.Run("fail/http 407 proxy authentication required", func(t *testing.T) {
		fake := routertest.MustFakeProxy(t, func(c net.Conn) {
			c.Read(make([]byte, 512))
			c.Write([]byte("HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"x\"\r\nContent-Length: 0\r\n\r\n"))
		})
		_, err := routertest.MustNew(t, "http://u:wrong@"+fake).DialContext(context.Background(), "tcp", echo)
		var pe *router.ProxyError
		if !errors.As(err, &pe) || pe.Status != 407 || pe.Msg != "proxy authentication required" {
			t.Fatalf("err = %v, want *ProxyError 407", err)
		}
		if strings.Contains(err.Error(), "wrong") {
			t.Errorf("error repeats the password: %v", err)
		}
	})
	t.Run("fail/socks5 proxy wants authentication", func(t *testing.T) {
		fake := routertest.MustFakeProxy(t, func(c net.Conn) {
			c.Read(make([]byte, 3))
			c.Write([]byte{5, 0xFF})
		})
		_, err := routertest.MustNew(t, "socks5://"+fake).DialContext(context.Background(), "tcp", echo)
		var pe *router.ProxyError
		if !errors.As(err, &pe) || pe.Status != 0xFF {
			t.Fatalf("err = %v, want *ProxyError 0xFF", err)
		}
	})
	t.Run("fail/udp", func(t *testing.T) {
		if _, err := routertest.MustNew(t, "socks5://127.0.0.1:1").DialContext(context.Background(), "udp", echo); err == nil {
			t.Fatal("dialed udp through a TCP proxy")
		}
	})
}

// TestBytesAfterHandshakeKept: a proxy may send the tunnel's first bytes
// in the same segment as its answer; they belong to the stream.
func TestBytesAfterHandshakeKept(t *testing.T) {
	const early = "220 early greeting from the destination\r\n"
	tests := []struct {
		name   string
		scheme string
		fake   func(c net.Conn)
	}{
		{name: "ok/http 200 and data in one write", scheme: "http", fake: func(c net.Conn) {
			br := bufio.NewReader(c)
			req, err := http.ReadRequest(br)
			if err != nil || req.Method != http.MethodConnect || req.Host != "target.example:25" || req.Header.Get("Proxy-Authorization") != "Basic dTpw" {
				c.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
				return
			}
			c.Write([]byte("HTTP/1.1 200 Connection established\r\nContent-Length: 99\r\n\r\n" + early))
			io.Copy(c, br) // then echo
		}},
		{name: "ok/http 100 then 200", scheme: "http", fake: func(c net.Conn) {
			br := bufio.NewReader(c)
			if _, err := http.ReadRequest(br); err != nil {
				return
			}
			c.Write([]byte("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 200 OK\r\n\r\n" + early))
			io.Copy(c, br)
		}},
		{name: "ok/socks5 reply and data in one write", scheme: "socks5", fake: func(c net.Conn) {
			buf := make([]byte, 3)
			io.ReadFull(c, buf)
			c.Write([]byte{5, 0})
			req, err := router.ReadRequest(c)
			if err != nil || req.Dest.Name != "target.example" || req.Dest.Port != 25 {
				c.Write([]byte{5, 1, 0, 1, 0, 0, 0, 0, 0, 0})
				return
			}
			c.Write(append([]byte{5, 0, 0, 1, 192, 0, 2, 1, 0x30, 0x39}, early...))
			io.Copy(c, c)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			creds := "" // SOCKS5 authentication (RFC 1929) is not supported
			if tt.scheme == "http" {
				creds = "u:p@"
			}
			c := routertest.MustDial(t, routertest.MustNew(t, tt.scheme+"://"+creds+routertest.MustFakeProxy(t, tt.fake)), "target.example:25")
			got := make([]byte, len(early))
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.ReadFull(c, got); err != nil || string(got) != early {
				t.Fatalf("first bytes %q, %v; want %q", got, err, early)
			}
			routertest.MustEcho(t, c, []byte("and the stream goes on"))
		})
	}
}

func TestHTTPConnect(t *testing.T) {
	t.Run("fail/target with CRLF", func(t *testing.T) {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		if _, err := router.HTTPConnect(context.Background(), a, "x.example:443\r\nX-Evil: 1", nil); err == nil {
			t.Fatal("accepted a target that injects a header")
		}
	})
	t.Run("fail/header name not a token", func(t *testing.T) {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		if _, err := router.HTTPConnect(context.Background(), a, "x.example:443", http.Header{"X-Evil:\r\n": {"1"}}); err == nil {
			t.Fatal("accepted a header name that injects a line")
		}
	})
	t.Run("ok/through squid on an existing conn", func(t *testing.T) {
		echo := routertest.StartEcho(t)
		raw, err := net.Dial("tcp", routertest.StartSquid(t))
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		c, err := router.HTTPConnect(context.Background(), raw, echo, http.Header{"User-Agent": {"custos-test"}})
		if err != nil {
			t.Fatal(err)
		}
		routertest.MustEcho(t, c, []byte("relay link through a CONNECT front door"))
	})
}

// closedPortAddr returns a loopback address nothing listens on.
func closedPortAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
