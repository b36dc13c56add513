package relay_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"flag"
	"io"
	"math/big"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/custos-uem/custos/relay"
)

// The end-to-end benchmarks of the relay path: a device's TLS session to
// the Core (ECDSA P-256, TLS 1.3, as a real agent's) carried as one
// stream device → relay → Core's link → sink, against the same TLS
// session over a direct loopback connection, in the same run.
//
//	go test -run '^$' -bench 'BenchmarkRelay' -count 5 ./relay/

const benchChunk = 64 << 10

// innerTLS is the Core's certificate for the device's TLS session.
type innerTLS struct {
	server, client *tls.Config
}

func newInnerTLS(b *testing.B) *innerTLS {
	b.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "core"}, DNSNames: []string{"core"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		b.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &innerTLS{
		server: &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS13},
		client: &tls.Config{RootCAs: pool, ServerName: "core", MinVersion: tls.VersionTLS13},
	}
}

// sink serves TLS on every connection of ln, discards what it reads and
// reports the byte count at EOF.
func sink(ln net.Listener, cfg *tls.Config, got chan<- int64) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			tc := tls.Server(c, cfg)
			n, _ := io.Copy(io.Discard, tc)
			tc.Close()
			got <- n
		}()
	}
}

// pump writes total bytes in benchChunk writes, then closes its side for
// writing.
func pump(b *testing.B, c *tls.Conn, total int64) {
	buf := make([]byte, benchChunk)
	for sent := int64(0); sent < total; sent += benchChunk {
		if _, err := c.Write(buf); err != nil {
			b.Error(err)
			return
		}
	}
	c.CloseWrite()
}

// benchStreams moves b.N chunks over each of n streams dialled by dial.
func benchStreams(b *testing.B, n int, dial func() net.Conn, inner *innerTLS, got <-chan int64) {
	b.SetBytes(int64(n) * benchChunk)
	conns := make([]*tls.Conn, n)
	for i := range conns {
		conns[i] = tls.Client(dial(), inner.client)
		if err := conns[i].Handshake(); err != nil {
			b.Fatal(err)
		}
	}
	total := int64(b.N) * benchChunk
	b.ResetTimer()
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pump(b, c, total)
		}()
	}
	for range conns {
		if n := <-got; n != total {
			b.Fatalf("sink got %d bytes, want %d", n, total)
		}
	}
	b.StopTimer()
	wg.Wait()
	for _, c := range conns {
		c.Close()
	}
}

func BenchmarkRelayStream(b *testing.B) {
	for _, streams := range []int{1, 8} {
		inner := newInnerTLS(b)
		b.Run(itoa(streams)+"/direct-tls", func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			got := make(chan int64, streams)
			go sink(ln, inner.server, got)
			benchStreams(b, streams, func() net.Conn {
				c, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					b.Fatal(err)
				}
				return c
			}, inner, got)
		})
		b.Run(itoa(streams)+"/relay", func(b *testing.B) {
			e := newRelay(b, nil)
			got := make(chan int64, streams)
			a := e.mustCore(nil)
			mustLinked(b, a.c, relay.DefaultPoolSize)
			go sink(a.c.Listener(), inner.server, got)
			benchStreams(b, streams, func() net.Conn {
				c, br, st := e.connect(a.id + ":443")
				if st != 200 || br.Buffered() != 0 {
					b.Fatalf("CONNECT = %d", st)
				}
				return c
			}, inner, got)
		})
	}
}

func itoa(n int) string {
	if n == 1 {
		return "1-stream"
	}
	return string(rune('0'+n)) + "-streams"
}

var idleDevices = flag.Int("relay.idle", 5000, "device tunnels of BenchmarkRelayIdleDevices (each costs two file descriptors here)")

// BenchmarkRelayIdleDevices: the memory of idle device tunnels through
// the relay, everything in this process: the device's TCP connection, the
// relay's side (its accepted connection and the tunnel's two goroutines),
// both ends of the stream on the link, and a Core-side goroutine waiting
// on each stream. The sandbox caps open files at 20,000, so it runs
// -relay.idle tunnels (default 5,000) and reports the cost per tunnel;
// 100,000 idle tunnels cost 100,000 times that.
func BenchmarkRelayIdleDevices(b *testing.B) {
	for range b.N {
		e := newRelay(b, nil)
		a := e.mustCore(nil)
		mustLinked(b, a.c, relay.DefaultPoolSize)
		go func() {
			for {
				c, err := a.c.Listener().Accept()
				if err != nil {
					return
				}
				go io.Copy(io.Discard, c)
			}
		}()
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		conns := make([]net.Conn, 0, *idleDevices)
		for range *idleDevices {
			c, br, st := e.connect(a.id + ":443")
			if st != 200 || br.Buffered() != 0 {
				b.Fatalf("CONNECT = %d", st)
			}
			c.Write([]byte("x"))
			conns = append(conns, c)
		}
		time.Sleep(500 * time.Millisecond)
		runtime.GC()
		runtime.ReadMemStats(&after)
		used := float64(after.HeapInuse+after.StackInuse) - float64(before.HeapInuse+before.StackInuse)
		b.ReportMetric(used/float64(len(conns)), "B/tunnel")
		b.ReportMetric(used/float64(len(conns))*100000/(1<<20), "MiB-per-100k")
		for _, c := range conns {
			c.Close()
		}
		e.m.Close()
	}
}
