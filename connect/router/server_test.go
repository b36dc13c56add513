package router_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/custos-uem/custos/connect/router"
	"github.com/custos-uem/custos/connect/router/routertest"
)

// MustSOCKS opens a raw connection to a SOCKS5 server and completes
// method selection with "no authentication required".
func MustSOCKS(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write([]byte{5, 1, 0})
	sel := make([]byte, 2)
	if _, err := io.ReadFull(c, sel); err != nil || !bytes.Equal(sel, []byte{5, 0}) {
		t.Fatalf("method selection % x, %v", sel, err)
	}
	return c
}

// MustReply reads a reply (RFC 1928 §6) and returns its code.
func MustReply(t *testing.T, c net.Conn) byte {
	t.Helper()
	hdr := make([]byte, 3)
	if _, err := io.ReadFull(c, hdr); err != nil || hdr[0] != 5 {
		t.Fatalf("reply % x, %v", hdr, err)
	}
	if hdr[1] != router.RepSucceeded {
		return hdr[1]
	}
	// BND.ADDR, BND.PORT of a success: consumed so the tunnel follows.
	if _, err := router.ReadRequest(io.MultiReader(bytes.NewReader([]byte{5, 0, 0}), c)); err != nil {
		t.Fatalf("bound address: %v", err)
	}
	return hdr[1]
}

func connectReq(t *testing.T, dest string) []byte {
	t.Helper()
	host, port, _ := net.SplitHostPort(dest)
	var p uint16
	fmt.Sscan(port, &p)
	var b []byte
	if ip := net.ParseIP(host); ip != nil {
		if ip4 := ip.To4(); ip4 != nil && !strings.Contains(host, ":") {
			b = append([]byte{5, router.CmdConnect, 0, 1}, ip4...)
		} else {
			b = append([]byte{5, router.CmdConnect, 0, 4}, ip.To16()...)
		}
	} else {
		b = append([]byte{5, router.CmdConnect, 0, 3, byte(len(host))}, host...)
	}
	return append(b, byte(p>>8), byte(p))
}

// TestServerRefuses: each class of dangerous destination is answered
// X'02' "connection not allowed by ruleset" — without a packet sent to it,
// as the check runs before connect(2).
func TestServerRefuses(t *testing.T) {
	echo := routertest.StartEcho(t)
	_, port, _ := net.SplitHostPort(echo)
	srv := routertest.MustServe(t, &router.Server{})
	for _, dest := range []string{
		echo,                         // loopback
		"127.8.9.10:" + port,         // loopback, elsewhere in 127/8
		"localhost:" + port,          // a name the router resolves to loopback
		"[::ffff:127.0.0.1]:" + port, // loopback in IPv6 clothing
		"169.254.169.254:80",         // cloud metadata (link-local)
		"169.254.1.1:80",             // link-local
		"0.0.0.0:" + port,            // unspecified: Linux connects it to this host
		"224.0.0.1:80",               // multicast
		"255.255.255.255:80",         // broadcast
		"[fd00:ec2::254]:80",         // AWS's IPv6 metadata address
	} {
		t.Run("fail/"+dest, func(t *testing.T) {
			c := MustSOCKS(t, srv)
			c.Write(connectReq(t, dest))
			rep := MustReply(t, c)
			if rep != router.RepNotAllowed {
				t.Fatalf("reply 0x%02x (%s), want 0x02", rep, router.ReplyText(rep))
			}
		})
	}
}

func TestServerProtocol(t *testing.T) {
	echo := routertest.StartEcho(t)
	policy, err := router.ParsePolicy([]string{echo})
	if err != nil {
		t.Fatal(err)
	}
	srv := routertest.MustServe(t, &router.Server{Allow: policy, HandshakeTimeout: 300 * time.Millisecond})
	_, port, _ := net.SplitHostPort(echo)
	var p uint16
	fmt.Sscan(port, &p)

	for name, cmd := range map[string]byte{"BIND": router.CmdBind, "UDP ASSOCIATE": router.CmdUDPAssociate, "unknown": 0x09} {
		t.Run("fail/command "+name, func(t *testing.T) {
			c := MustSOCKS(t, srv)
			req := connectReq(t, echo)
			req[1] = cmd
			c.Write(req)
			if rep := MustReply(t, c); rep != router.RepCommandNotSupported {
				t.Fatalf("reply 0x%02x, want 0x07", rep)
			}
		})
	}
	t.Run("fail/unknown address type", func(t *testing.T) {
		c := MustSOCKS(t, srv)
		c.Write([]byte{5, 1, 0, 9, 1, 2, 3, 4, 0, 80})
		if rep := MustReply(t, c); rep != router.RepAddrTypeNotSupported {
			t.Fatalf("reply 0x%02x, want 0x08", rep)
		}
	})
	t.Run("fail/only username-password offered", func(t *testing.T) {
		c, err := net.Dial("tcp", srv)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte{5, 1, 2})
		got, _ := io.ReadAll(c)
		if !bytes.Equal(got, []byte{5, 0xFF}) {
			t.Fatalf("got % x, want 05 ff and close", got)
		}
	})
	t.Run("fail/SOCKS4 client", func(t *testing.T) {
		c, err := net.Dial("tcp", srv)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte{4, 1, 0, 80, 127, 0, 0, 1, 0})
		if got, _ := io.ReadAll(c); len(got) != 0 {
			t.Fatalf("answered % x to SOCKS4", got)
		}
	})
	t.Run("fail/closed port", func(t *testing.T) {
		closed := closedPortAddr(t)
		pol, _ := router.ParsePolicy([]string{"127.0.0.1/32"})
		c := MustSOCKS(t, routertest.MustServe(t, &router.Server{Allow: pol}))
		c.Write(connectReq(t, closed))
		if rep := MustReply(t, c); rep != router.RepConnectionRefused {
			t.Fatalf("reply 0x%02x, want 0x05", rep)
		}
	})
	t.Run("fail/unknown host", func(t *testing.T) {
		// A resolver that answers NXDOMAIN and one that does not answer
		// at all (DialTimeout) both give X'04'.
		c := MustSOCKS(t, routertest.MustServe(t, &router.Server{DialTimeout: 3 * time.Second}))
		c.Write(connectReq(t, "no-such-host.invalid:80")) // RFC 6761 §6.4: never resolves
		if rep := MustReply(t, c); rep != router.RepHostUnreachable {
			t.Fatalf("reply 0x%02x, want 0x04", rep)
		}
	})
	for name, sent := range map[string][]byte{
		"silent":                     nil,
		"half a greeting":            {5},
		"greeting, half a request":   {5, 1, 0, 5, 1, 0, 3, 200, 'a'},
		"methods promised, not sent": {5, 200, 0},
	} {
		t.Run("fail/slowloris "+name, func(t *testing.T) {
			c, err := net.Dial("tcp", srv)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.Write(sent)
			start := time.Now()
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			io.Copy(io.Discard, c) // until the server hangs up
			if took := time.Since(start); took > 5*time.Second {
				t.Fatalf("held for %v, HandshakeTimeout is 300ms", took)
			}
		})
	}
	t.Run("ok/allowed by --allow host:port", func(t *testing.T) {
		c := MustSOCKS(t, srv)
		c.Write(connectReq(t, echo))
		if rep := MustReply(t, c); rep != router.RepSucceeded {
			t.Fatalf("reply 0x%02x", rep)
		}
		routertest.MustEcho(t, c, []byte("ping"))
	})
	t.Run("ok/request pipelined with data", func(t *testing.T) {
		c, err := net.Dial("tcp", srv)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// Optimistic client: greeting, request and payload at once; the
		// server must not swallow the payload with the handshake.
		c.Write(append(append([]byte{5, 1, 0}, connectReq(t, echo)...), "early"...))
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		sel := make([]byte, 2)
		io.ReadFull(c, sel)
		if rep := MustReply(t, c); rep != router.RepSucceeded {
			t.Fatalf("reply 0x%02x", rep)
		}
		got := make([]byte, 5)
		if _, err := io.ReadFull(c, got); err != nil || string(got) != "early" {
			t.Fatalf("echo of pipelined data %q, %v", got, err)
		}
	})
	t.Run("ok/the handshake deadline does not apply to the tunnel", func(t *testing.T) {
		c := routertest.MustDial(t, routertest.MustNew(t, "socks5://"+srv), echo)
		time.Sleep(500 * time.Millisecond) // > HandshakeTimeout
		routertest.MustEcho(t, c, []byte("still here"))
	})
}

func TestServerThroughOurDialer(t *testing.T) {
	echo := routertest.StartEcho(t)
	_, port, _ := net.SplitHostPort(echo)
	policy, err := router.ParsePolicy([]string{"localhost:" + port})
	if err != nil {
		t.Fatal(err)
	}
	d := routertest.MustNew(t, "socks5://"+routertest.MustServe(t, &router.Server{Allow: policy}))
	t.Run("fail/allowed name, not the address it resolves to", func(t *testing.T) {
		_, err := d.DialContext(context.Background(), "tcp", echo)
		var pe *router.ProxyError
		if !errors.As(err, &pe) || pe.Status != router.RepNotAllowed {
			t.Fatalf("err = %v, want reply 0x02", err)
		}
	})
	t.Run("ok/allowed name, half-close, 4 MiB", func(t *testing.T) {
		c := routertest.MustDial(t, d, "localhost:"+port)
		routertest.MustEcho(t, c, bytes.Repeat([]byte("0123456789abcdef"), 1<<18))
		c.(interface{ CloseWrite() error }).CloseWrite()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if n, err := io.Copy(io.Discard, c); n != 0 || err != nil {
			t.Fatalf("after CloseWrite read %d, %v; want EOF", n, err)
		}
	})
}

func TestServerTimeoutsAndClose(t *testing.T) {
	echo := routertest.StartEcho(t)
	policy, _ := router.ParsePolicy([]string{echo})
	t.Run("fail/idle tunnel is closed", func(t *testing.T) {
		d := routertest.MustNew(t, "socks5://"+routertest.MustServe(t, &router.Server{Allow: policy, IdleTimeout: 200 * time.Millisecond}))
		c := routertest.MustDial(t, d, echo)
		routertest.MustEcho(t, c, []byte("active"))
		start := time.Now()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.Copy(io.Discard, c); err != nil {
			t.Fatalf("idle tunnel: %v, want EOF from the router", err)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Fatalf("idle tunnel held for %v", took)
		}
	})
	t.Run("fail/Close cuts open tunnels", func(t *testing.T) {
		s := &router.Server{Allow: policy}
		d := routertest.MustNew(t, "socks5://"+routertest.MustServe(t, s))
		c := routertest.MustDial(t, d, echo)
		routertest.MustEcho(t, c, []byte("before"))
		done := make(chan error, 1)
		go func() { done <- s.Close() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Close did not return with a tunnel open")
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.Copy(io.Discard, c); err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
			t.Fatalf("after Close: %v", err)
		}
	})
}

// TestServerWithCurl: a real client, curl, asks by host name
// (--socks5-hostname sends ATYP X'03').
func TestServerWithCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatal("curl is missing: apt-get install -y curl")
	}
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s", r.Host)
	}))
	defer web.Close()
	_, port, _ := net.SplitHostPort(web.Listener.Addr().String())
	policy, _ := router.ParsePolicy([]string{"localhost:" + port})
	srv := routertest.MustServe(t, &router.Server{Allow: policy})
	run := func(url string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, curl, "-sS", "--max-time", "10", "--socks5-hostname", srv, url).CombinedOutput()
		return string(out), err
	}
	t.Run("fail/curl to a loopback address", func(t *testing.T) {
		out, err := run("http://127.0.0.1:" + port + "/")
		if err == nil || strings.Contains(out, "hello") {
			t.Fatalf("curl reached a refused destination: %s", out)
		}
		// curl 7.88 says "Can't complete SOCKS5 connection to 127.0.0.1. (2)";
		// other versions spell it differently but name the code.
		if !strings.Contains(out, "(2)") && !strings.Contains(out, "not allowed") {
			t.Errorf("curl did not report reply 2: %s", out)
		}
	})
	t.Run("ok/curl by host name", func(t *testing.T) {
		out, err := run("http://localhost:" + port + "/")
		if err != nil || out != "hello localhost:"+port {
			t.Fatalf("curl: %v\n%s", err, out)
		}
	})
}
