package httpx_test

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/custos-uem/custos/httpx"
)

// TestLingerListener: closing a connection with input the server never
// read ends it in order (the peer reads EOF, not a reset that would
// destroy what the server sent last) and does not wait for the peer. The
// effect a device sees, a refused certificate reported as a TLS alert
// every time, is agent.TestRunStopsWhenRefused against a server with this
// listener.
func TestLingerListener(t *testing.T) {
	t.Run("ok/close-ends-sending-without-waiting-for-the-peer", func(t *testing.T) {
		raw, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln := httpx.LingerListener(raw)
		defer ln.Close()
		peer, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer peer.Close()
		c, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := peer.Write([]byte("unread by the server")); err != nil {
			t.Fatal(err)
		}
		if err := c.Close(); err != nil { // returns although the peer keeps its side open
			t.Fatal(err)
		}
		// The peer sees an orderly end (FIN), not a reset, and can still
		// write: the server reads and drops it.
		peer.SetDeadline(time.Now().Add(10 * time.Second))
		if n, err := peer.Read(make([]byte, 1)); n != 0 || err != io.EOF {
			t.Fatalf("peer read after Close: %d, %v; want EOF", n, err)
		}
		if _, err := peer.Write([]byte("more")); err != nil {
			t.Fatalf("peer write while the server lingers: %v", err)
		}
	})
}
